// The telemetry reader against the real iothub-emulator program: device telemetry sent with
// a plain transport client (SASL PLAIN, a SAS token), read back through the Event Hubs string
// and through the redirect of the service string; each start position; $management; epoch
// stealing; every partition; resume after the emulator is killed and restarted.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <doctest/doctest.h>
#include <unistd.h>

#include "amqp/error.hpp"
#include "amqp/iothub/connection_string.hpp"
#include "amqp/iothub/sas.hpp"
#include "amqp/iothub/telemetry_reader.hpp"
#include "amqp/iothub/telemetry_reader_asio.hpp"
#include "amqp/transport/blocking.hpp"
#include "iothub/client/emulator_process.hpp"

using namespace amqp;
using namespace amqp::iothub;
using namespace std::chrono_literals;

namespace {

// Sends `bodies` as device `id`: a plain transport client, SASL PLAIN with the device's SAS
// token (doc §2.3), to /devices/{id}/messages/events; each with message-id "{id}-{i}",
// content-type application/json and the application property "n" = i. Returns the outcomes
// that were accepted.
std::size_t send_telemetry(const test::emulator_process& emu, const std::string& id,
                           const std::vector<std::string>& bodies) {
  std::string why;
  auto cs = parse_connection_string(emu.devices.at(id), &why);
  REQUIRE_MESSAGE(cs, why);
  const auto now =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  auto token = make_sas_token(cs->host_name + "/devices/" + id, cs->shared_access_key, now + 600);
  REQUIRE(token);
  const std::string hub = cs->host_name.substr(0, cs->host_name.find('.'));
  const std::string username = id + "@sas." + hub;
  transport::client_options o;
  o.tls.ca_file = emu.ca;
  o.amqp.hostname = cs->host_name;
  o.amqp.sasl.enabled = true;
  o.amqp.sasl.mechanism = "PLAIN";
  o.amqp.sasl.username = username;
  o.amqp.sasl.password = *token;
  auto c = transport::blocking_client::connect(
      "amqps://localhost:" + std::to_string(emu.amqps_port), o, &why);
  REQUIRE_MESSAGE(c, why);
  auto s = c->open_sender("/devices/" + id + "/messages/events");
  REQUIRE_MESSAGE(s, c->last_error());
  std::size_t accepted = 0;
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    amqp::message m;
    m.set_body(std::span(reinterpret_cast<const std::byte*>(bodies[i].data()), bodies[i].size()));
    m.properties.message_id = owned_value(id + "-" + std::to_string(i));
    m.properties.content_type = "application/json";
    m.application_properties.set("n", owned_value(static_cast<std::int64_t>(i)));
    auto out = s->send(m);
    REQUIRE(out);
    if (out->state == amqp::state_kind::accepted) {
      ++accepted;
    }
  }
  CHECK(c->close());
  return accepted;
}

telemetry_reader_options reader_options(const test::emulator_process& emu) {
  telemetry_reader_options o;
  o.tls.ca_file = emu.ca;
  return o;
}

blocking_telemetry_reader connect(const std::string& cs, telemetry_reader_options o) {
  std::string why;
  auto r = blocking_telemetry_reader::connect(cs, std::move(o), &why);
  REQUIRE_MESSAGE(r, why);
  return std::move(*r);
}

// Receives events until `n` have come or `timeout` passes with none.
std::vector<telemetry_event> receive_n(blocking_telemetry_reader& r, std::size_t n,
                                       std::chrono::milliseconds timeout = 10s) {
  std::vector<telemetry_event> out;
  while (out.size() < n) {
    auto e = r.receive(timeout);
    if (!e) {
      break;
    }
    out.push_back(std::move(*e));
  }
  return out;
}

std::string body(const telemetry_event& e) {
  return e.message.body_text().value_or("");
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

} // namespace

TEST_CASE("telemetry reader: the Event Hubs string, events with their annotations as typed "
          "fields, properties and application properties; a checkpoint per partition") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {"--partitions", "1"}});
  const auto before = now_ms();
  REQUIRE(send_telemetry(emu, "dev-1", {R"({"t":1})", R"({"t":2})", R"({"t":3})"}) == 3);
  auto r = connect(emu.eventhub, reader_options(emu));
  REQUIRE(r.open_partition("0", event_position::earliest()));
  const auto events = receive_n(r, 3);
  REQUIRE(events.size() == 3);
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    CHECK(e.partition == "0");
    CHECK(e.sequence_number == static_cast<std::int64_t>(i));
    CHECK_FALSE(e.offset.empty());
    CHECK(e.enqueued_time.ms >= before - 1000);
    CHECK(e.enqueued_time.ms <= now_ms() + 1000);
    CHECK(e.device_id == std::optional<std::string>("dev-1"));
    CHECK_FALSE(e.module_id);
    CHECK_FALSE(e.partition_key);
    CHECK(body(e) == R"({"t":)" + std::to_string(i + 1) + "}");
    CHECK(e.message.properties.message_id.get().get_string() ==
          std::optional<std::string_view>("dev-1-" + std::to_string(i)));
    CHECK(e.message.properties.content_type == std::optional<std::string>("application/json"));
    const auto n = e.message.application_properties.get("n");
    REQUIRE(n);
    CHECK(n->get_signed() == std::optional<std::int64_t>(static_cast<std::int64_t>(i)));
    CHECK(e.message.message_annotations.contains("iothub-enqueuedtime"));
  }
  CHECK(events[0].offset != events[1].offset);
  const auto cps = r.checkpoints();
  REQUIRE(cps.size() == 1);
  CHECK(cps[0].partition == "0");
  CHECK(cps[0].sequence_number == 2);
  CHECK(cps[0].offset == events[2].offset);
  CHECK(cps[0].next() == event_position::from_sequence_number(2));
  // Nothing more.
  auto more = r.receive(300ms);
  REQUIRE_FALSE(more);
  CHECK(more.error() == make_error_code(amqp::errc::timeout));
  CHECK(r.close());
  CHECK(r.close().error() == make_error_code(amqp::errc::invalid_state));
  CHECK(r.receive(10ms).error() == make_error_code(amqp::errc::invalid_state));
}

TEST_CASE("telemetry reader: the service string follows the redirect; the caller sees events") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {"--partitions", "2"}});
  REQUIRE(send_telemetry(emu, "dev-1", {"a", "b"}) == 2);
  asio::io_context io;
  std::optional<std::error_code> connected;
  telemetry_reader reader;
  telemetry_reader::async_connect(io, emu.service, reader_options(emu),
                                  [&](std::error_code ec, telemetry_reader r) {
                                    connected = ec;
                                    reader = std::move(r);
                                  });
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!connected && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
  REQUIRE(connected);
  REQUIRE_MESSAGE(!*connected, reader.last_error());
  CHECK(reader.redirects() == 1); // the discovery of the Event Hubs endpoint
  CHECK(reader.event_hub_name() == emu.hostname.substr(0, emu.hostname.find('.')));
  std::optional<std::error_code> opened;
  reader.async_open_all(event_position::earliest(), [&](std::error_code ec) { opened = ec; });
  std::vector<telemetry_event> got;
  std::vector<std::error_code> errors;
  std::function<void()> next = [&] {
    reader.async_receive([&](std::error_code ec, telemetry_event e) {
      if (ec) {
        errors.push_back(ec);
        return;
      }
      got.push_back(std::move(e));
      next();
    });
  };
  next();
  while (got.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
  REQUIRE(opened);
  CHECK_FALSE(*opened);
  REQUIRE(got.size() == 2);
  CHECK(body(got[0]) == "a");
  CHECK(body(got[1]) == "b");
  CHECK(got[0].device_id == std::optional<std::string>("dev-1"));
  CHECK(reader.redirects() == 3); // and one per partition
  std::optional<std::error_code> closed;
  reader.async_close([&](std::error_code ec) { closed = ec; });
  while (!closed && std::chrono::steady_clock::now() < deadline + 10s) {
    io.run_for(10ms);
  }
  REQUIRE(closed);
  CHECK_FALSE(*closed);
  // The receive still waiting ends with the close.
  CHECK(errors == std::vector<std::error_code>{make_error_code(amqp::errc::invalid_state)});
}

TEST_CASE("telemetry reader: $management READ of the event hub and of a partition") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {"--partitions", "4"}});
  const auto before = now_ms();
  REQUIRE(send_telemetry(emu, "dev-1", {"x", "y", "z"}) == 3);
  for (const auto* cs : {&emu.service, &emu.eventhub}) {
    auto r = connect(*cs, reader_options(emu));
    auto hub = r.eventhub();
    REQUIRE_MESSAGE(hub, r.last_error());
    CHECK(hub->name == emu.hostname.substr(0, emu.hostname.find('.')));
    CHECK(hub->partition_ids == std::vector<std::string>{"0", "1", "2", "3"});
    CHECK(hub->created_at.ms > 0);
    auto ids = r.partitions();
    REQUIRE(ids);
    CHECK(ids->size() == 4);
    // The partition dev-1 hashes to holds the three events; the others none.
    std::size_t with_events = 0;
    for (const auto& id : *ids) {
      auto p = r.partition(id);
      REQUIRE_MESSAGE(p, r.last_error());
      CHECK(p->partition == id);
      CHECK(p->name == hub->name);
      if (!p->is_partition_empty) {
        ++with_events;
        CHECK(p->begin_sequence_number == 0);
        CHECK(p->last_enqueued_sequence_number == 2);
        CHECK_FALSE(p->last_enqueued_offset.empty());
        CHECK(p->last_enqueued_time_utc.ms >= before - 1000);
      }
    }
    CHECK(with_events == 1);
    auto bad = r.partition("17");
    REQUIRE_FALSE(bad);
    CHECK(bad.error() == make_error_code(amqp::errc::remote_error));
    CHECK(r.last_error().find("status 404") != std::string::npos);
    CHECK(r.close());
  }
}

TEST_CASE("telemetry reader: each start position") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {"--partitions", "1"}});
  REQUIRE(send_telemetry(emu, "dev-1", {"e0", "e1", "e2", "e3", "e4"}) == 5);
  auto all = connect(emu.eventhub, reader_options(emu));
  REQUIRE(all.open_partition("0", event_position::earliest()));
  const auto known = receive_n(all, 5);
  REQUIRE(known.size() == 5);
  CHECK(all.close());

  // The first event read from `start` (the reader sees nothing else within a short wait
  // when `expect_none`).
  auto first_from = [&](const event_position& start) -> std::optional<telemetry_event> {
    auto r = connect(emu.eventhub, reader_options(emu));
    REQUIRE_MESSAGE(r.open_partition("0", start), r.last_error());
    auto e = r.receive(2s);
    CHECK(r.close());
    if (!e) {
      CHECK(e.error() == make_error_code(amqp::errc::timeout));
      return std::nullopt;
    }
    return std::move(*e);
  };
  auto seq_from = [&](const event_position& start) -> std::int64_t {
    auto e = first_from(start);
    return e ? e->sequence_number : -1;
  };
  CHECK(seq_from(event_position::earliest()) == 0);
  CHECK(seq_from(event_position::from_sequence_number(2)) == 3);
  CHECK(seq_from(event_position::from_sequence_number(2, true)) == 2);
  CHECK(seq_from(event_position::from_offset(known[1].offset)) == 2);
  CHECK(seq_from(event_position::from_offset(known[1].offset, true)) == 1);
  CHECK(seq_from(event_position::from_sequence_number(4)) == -1); // nothing after the last
  // Enqueued time: the first event after (or at) that of event 2.
  const auto t = known[2].enqueued_time;
  auto first_after = [&](bool inclusive) {
    for (const auto& e : known) {
      if (inclusive ? e.enqueued_time.ms >= t.ms : e.enqueued_time.ms > t.ms) {
        return e.sequence_number;
      }
    }
    return std::int64_t{-1};
  };
  CHECK(seq_from(event_position::from_enqueued_time(t, true)) == first_after(true));
  CHECK(seq_from(event_position::from_enqueued_time(t)) == first_after(false));

  // @latest: only what is sent after the attach.
  auto r = connect(emu.eventhub, reader_options(emu));
  REQUIRE(r.open_partition("0", event_position::latest()));
  auto none = r.receive(500ms);
  CHECK_FALSE(none);
  REQUIRE(send_telemetry(emu, "dev-1", {"e5"}) == 1);
  auto e5 = r.receive(10s);
  REQUIRE(e5);
  CHECK(e5->sequence_number == 5);
  CHECK(body(*e5) == "e5");
  CHECK(r.close());
}

TEST_CASE("telemetry reader: a higher epoch steals the partition; a lower or no epoch is refused") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {"--partitions", "1"}});
  auto o1 = reader_options(emu);
  o1.epoch = 1;
  auto first = connect(emu.eventhub, o1);
  REQUIRE(first.open_partition("0", event_position::earliest()));
  REQUIRE(send_telemetry(emu, "dev-1", {"one"}) == 1);
  auto e = first.receive(10s);
  REQUIRE(e);
  CHECK(body(*e) == "one");

  // No epoch while an epoch reader holds the partition: refused.
  auto plain = connect(emu.eventhub, reader_options(emu));
  auto refused = plain.open_partition("0", event_position::earliest());
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == make_error_code(amqp::errc::remote_error));
  CHECK(plain.last_error().find("amqp:link:stolen") != std::string::npos);
  CHECK(plain.close());

  // Epoch 2 (through the redirect): the first reader gets amqp:link:stolen as an error.
  auto o2 = reader_options(emu);
  o2.epoch = 2;
  auto second = connect(emu.service, o2);
  REQUIRE_MESSAGE(second.open_partition("0", event_position::earliest()), second.last_error());
  auto stolen = first.receive(10s);
  REQUIRE_FALSE(stolen);
  CHECK(stolen.error() == make_error_code(amqp::errc::remote_error));
  CHECK(first.last_error().find("amqp:link:stolen") != std::string::npos);
  const auto why_stolen = first.partition_error("0");
  REQUIRE(why_stolen);
  CHECK(why_stolen->condition == "amqp:link:stolen");
  CHECK_FALSE(second.partition_error("0"));
  // The second reads from the start.
  auto again = second.receive(10s);
  REQUIRE(again);
  CHECK(body(*again) == "one");

  // A lower epoch is refused now.
  auto o0 = reader_options(emu);
  o0.epoch = 0;
  auto lower = connect(emu.eventhub, o0);
  REQUIRE_FALSE(lower.open_partition("0", event_position::earliest()));
  CHECK(lower.last_error().find("amqp:link:stolen") != std::string::npos);
  CHECK(lower.close());
  CHECK(first.close());
  CHECK(second.close());
}

TEST_CASE("telemetry reader: every partition; the events of each in order") {
  const std::vector<std::string> devices{"dev-1", "dev-2", "dev-3", "dev-4",
                                         "dev-5", "dev-6", "dev-7", "dev-8"};
  test::emulator_process emu({.devices = devices, .args = {"--partitions", "4"}});
  for (const auto& d : devices) {
    REQUIRE(send_telemetry(emu, d, {d + "-a", d + "-b"}) == 2);
  }
  auto r = connect(emu.service, reader_options(emu));
  REQUIRE_MESSAGE(r.open_all(event_position::earliest()), r.last_error());
  const auto events = receive_n(r, devices.size() * 2);
  REQUIRE(events.size() == devices.size() * 2);
  std::map<std::string, std::vector<std::string>> by_device;
  std::map<std::string, std::int64_t> last_seq;
  std::set<std::string> partitions;
  for (const auto& e : events) {
    REQUIRE(e.device_id);
    by_device[*e.device_id].push_back(body(e));
    partitions.insert(e.partition);
    if (auto it = last_seq.find(e.partition); it != last_seq.end()) {
      CHECK(e.sequence_number == it->second + 1);
    } else {
      CHECK(e.sequence_number == 0);
    }
    last_seq[e.partition] = e.sequence_number;
  }
  CHECK(by_device.size() == devices.size());
  for (const auto& d : devices) {
    CHECK(by_device[d] == std::vector<std::string>{d + "-a", d + "-b"});
  }
  CHECK(partitions.size() > 1); // the devices hash to several partitions
  const auto cps = r.checkpoints();
  CHECK(cps.size() == partitions.size());
  for (const auto& cp : cps) {
    CHECK(cp.sequence_number == last_seq[cp.partition]);
  }
  CHECK_FALSE(r.receive(300ms));
  // Opening a partition twice is an error.
  CHECK(r.open_partition("0", event_position::earliest()).error() ==
        make_error_code(amqp::errc::invalid_state));
  CHECK(r.close());
}

TEST_CASE("telemetry reader: the emulator killed and restarted: the reader reconnects and "
          "re-attaches from its checkpoint (nothing twice, nothing lost); a new reader resumes "
          "from a checkpoint") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("telemetry-reader-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    test::emulator_process emu(
        {.devices = {"dev-1"}, .args = {"--partitions", "1"}, .state = dir.string()});
    auto o = reader_options(emu);
    // The reconnect comes 1 to 2 s after the loss: the events below are on the restarted
    // hub before the receiver re-attaches, so a re-attach at @latest would miss them.
    o.reconnect.initial_delay = 2s;
    o.reconnect.max_delay = 2s;
    auto r = connect(emu.service, o);
    REQUIRE(r.open_partition("0", event_position::latest()));
    REQUIRE(send_telemetry(emu, "dev-1", {"e0", "e1", "e2"}) == 3);
    const auto before = receive_n(r, 3);
    REQUIRE(before.size() == 3);
    const auto cps = r.checkpoints();
    REQUIRE(cps.size() == 1);
    const checkpoint saved = cps[0];
    CHECK(saved.sequence_number == 2);

    emu.kill();
    emu.start();
    REQUIRE(send_telemetry(emu, "dev-1", {"e3", "e4", "e5"}) == 3);
    const auto after = receive_n(r, 3, 20s);
    REQUIRE(after.size() == 3);
    for (std::size_t i = 0; i < after.size(); ++i) {
      CHECK(after[i].sequence_number == static_cast<std::int64_t>(3 + i));
      CHECK(body(after[i]) == "e" + std::to_string(3 + i));
    }
    CHECK_FALSE(r.receive(1s)); // nothing twice
    CHECK(r.reconnects() >= 1);
    auto cp = r.checkpoints();
    REQUIRE(cp.size() == 1);
    CHECK(cp[0].sequence_number == 5);
    CHECK(r.close());

    // A new reader from the checkpoint taken before the kill.
    auto resumed = connect(emu.eventhub, reader_options(emu));
    REQUIRE(resumed.open_partition(saved.partition, saved.next()));
    const auto rest = receive_n(resumed, 3);
    REQUIRE(rest.size() == 3);
    CHECK(body(rest[0]) == "e3");
    CHECK(body(rest[2]) == "e5");
    CHECK_FALSE(resumed.receive(300ms));
    CHECK(resumed.close());
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST_CASE("telemetry reader: consumer groups read independently; an unknown one is refused") {
  test::emulator_process emu(
      {.devices = {"dev-1"}, .args = {"--partitions", "1", "--consumer-group", "analytics"}});
  REQUIRE(send_telemetry(emu, "dev-1", {"a", "b"}) == 2);
  auto o = reader_options(emu);
  o.consumer_group = "analytics";
  o.epoch = 7;
  auto analytics = connect(emu.service, o);
  REQUIRE_MESSAGE(analytics.open_partition("0", event_position::earliest()),
                  analytics.last_error());
  // The epoch of "analytics" does not hold $Default.
  auto plain = connect(emu.eventhub, reader_options(emu));
  REQUIRE_MESSAGE(plain.open_partition("0", event_position::earliest()), plain.last_error());
  CHECK(receive_n(analytics, 2).size() == 2);
  CHECK(receive_n(plain, 2).size() == 2);
  CHECK(analytics.close());
  CHECK(plain.close());

  o.consumer_group = "nobody";
  for (const auto* cs : {&emu.service, &emu.eventhub}) {
    auto none = connect(*cs, o);
    auto r = none.open_partition("0", event_position::earliest());
    REQUIRE_FALSE(r);
    CHECK(r.error() == make_error_code(amqp::errc::remote_error));
    CHECK(none.last_error().find("amqp:not-found") != std::string::npos);
    // The failed partition may be opened again (here: in vain, the same way).
    CHECK_FALSE(none.open_partition("0", event_position::earliest()));
    CHECK(none.close());
  }
}

TEST_CASE("telemetry reader: connect errors") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {"--partitions", "1"}});
  std::string why;
  // A device string cannot read the built-in endpoint.
  auto device =
      blocking_telemetry_reader::connect(emu.devices.at("dev-1"), reader_options(emu), &why);
  REQUIRE_FALSE(device);
  CHECK(device.error() == make_error_code(amqp::errc::invalid_argument));
  CHECK(why.find("service or an Event Hubs connection string") != std::string::npos);
  // Not a connection string.
  auto garbage = blocking_telemetry_reader::connect("nonsense", reader_options(emu), &why);
  REQUIRE_FALSE(garbage);
  CHECK(why.find("invalid connection string") != std::string::npos);
  // A wrong key: the hub refuses the token.
  auto cs = *parse_connection_string(emu.service);
  const std::string wrong_key = "AAAA" + cs.shared_access_key.substr(4);
  for (std::string text : {emu.service, emu.eventhub}) {
    text.replace(text.find(cs.shared_access_key), cs.shared_access_key.size(),
                 cs.shared_access_key.starts_with("AAAA") ? "BBBB" + cs.shared_access_key.substr(4)
                                                          : wrong_key);
    auto o = reader_options(emu);
    o.reconnect.enabled = false;
    auto refused = blocking_telemetry_reader::connect(text, o, &why);
    REQUIRE_FALSE(refused);
    CHECK(refused.error() == make_error_code(amqp::errc::unauthorized));
    CHECK_FALSE(why.empty());
  }
  // Default-constructed: every call fails at once.
  blocking_telemetry_reader empty;
  CHECK(empty.receive(10ms).error() == make_error_code(amqp::errc::invalid_state));
  CHECK(empty.open_all(event_position::earliest()).error() ==
        make_error_code(amqp::errc::invalid_state));
  CHECK(empty.close().error() == make_error_code(amqp::errc::invalid_state));
}

TEST_CASE("telemetry reader: prefetch 1 (the most events of a partition waiting in the reader): "
          "the receiver pauses at it and resumes as events are taken, in order") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {"--partitions", "1"}});
  std::vector<std::string> bodies;
  for (int i = 0; i < 20; ++i) {
    bodies.push_back("m" + std::to_string(i));
  }
  REQUIRE(send_telemetry(emu, "dev-1", bodies) == bodies.size());
  auto o = reader_options(emu);
  o.prefetch = 1;
  auto r = connect(emu.eventhub, o);
  REQUIRE(r.open_partition("0", event_position::earliest()));
  const auto events = receive_n(r, bodies.size());
  REQUIRE(events.size() == bodies.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    CHECK(body(events[i]) == bodies[i]);
  }
  CHECK(r.close());
}

TEST_CASE("telemetry reader: coroutines through the completion-token header") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {"--partitions", "2"}});
  REQUIRE(send_telemetry(emu, "dev-1", {"c0", "c1"}) == 2);
  asio::io_context io;
  std::vector<std::string> bodies;
  std::size_t partitions = 0;
  bool partition_known = false;
  std::string failure;
  bool done = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        // Named variables, not temporaries, in co_await expressions (GCC 12).
        const auto options = reader_options(emu);
        const auto start = event_position::earliest();
        const std::string zero = "0";
        auto r =
            co_await amqp::iothub::async_connect(io, emu.service, options, asio::use_awaitable);
        auto hub = co_await async_get_eventhub_info(r, asio::use_awaitable);
        partitions = hub.partition_ids.size();
        auto p0 = co_await async_get_partition_info(r, zero, asio::use_awaitable);
        partition_known = p0.partition == "0";
        co_await async_open_all(r, start, asio::use_awaitable);
        for (int i = 0; i < 2; ++i) {
          auto e = co_await amqp::iothub::async_receive(r, asio::use_awaitable);
          bodies.push_back(body(e));
        }
        try {
          co_await async_open_partition(r, zero, start, asio::use_awaitable);
          failure = "a partition opened twice";
        } catch (const std::system_error& e) {
          if (e.code() != make_error_code(amqp::errc::invalid_state)) {
            failure = e.what();
          }
        }
        co_await amqp::iothub::async_close(r, asio::use_awaitable);
        done = true;
      },
      [&](const std::exception_ptr& ep) {
        if (ep) {
          try {
            std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            failure = e.what();
          }
          done = true;
        }
      });
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
  REQUIRE(done);
  CHECK(failure.empty());
  CHECK(partitions == 2);
  CHECK(partition_known);
  CHECK(bodies == std::vector<std::string>{"c0", "c1"});
}
