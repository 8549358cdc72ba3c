// device_client against the real iothub-emulator program: telemetry with every property (read
// back on the Event Hubs-compatible endpoint), the 256 KB rule, batches packed and split,
// many devices on one connection, C2D with each outcome, lock expiry and settlement after a
// reconnect, token renewal, the emulator killed and restarted, the blocking facade.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <doctest/doctest.h>
#include <unistd.h>

#include "amqp/error.hpp"
#include "amqp/iothub/address.hpp"
#include "amqp/iothub/device_asio.hpp"
#include "amqp/iothub/device_client.hpp"
#include "amqp/iothub/hub_connection.hpp"
#include "amqp/iothub/messages.hpp"
#include "iothub/client/client_support.hpp"
#include "iothub/client/emulator_process.hpp"

using namespace amqp;
using namespace amqp::iothub;
using namespace std::chrono_literals;

namespace {

using test::connect_device;
using test::endpoint;
using test::opened;
using test::run_until;

hub_connection connect_hub(asio::io_context& io, const hub_endpoint& ep) {
  std::optional<std::error_code> done;
  hub_connection conn;
  std::vector<token_source> ids;
  if (ep.identity) {
    ids.push_back(*ep.identity);
  }
  hub_connection::async_connect(io, ep.options, ids, [&](std::error_code ec, hub_connection h) {
    done = ec;
    conn = std::move(h);
  });
  REQUIRE(run_until(
      io, [&] { return done.has_value(); }, 30s));
  REQUIRE_MESSAGE(!*done, conn.last_error());
  return conn;
}

std::optional<event_outcome> send(asio::io_context& io, device_client& c, const amqp::message& m,
                                  std::error_code* error = nullptr) {
  std::optional<std::error_code> ec;
  event_outcome out;
  c.async_send_event(m, [&](std::error_code e, event_outcome o) {
    ec = e;
    out = std::move(o);
  });
  REQUIRE(run_until(io, [&] { return ec.has_value(); }));
  if (error != nullptr) {
    *error = *ec;
  }
  if (*ec) {
    return std::nullopt;
  }
  return out;
}

batch_outcome send_batch(asio::io_context& io, device_client& c,
                         const std::vector<amqp::message>& ms) {
  std::optional<std::error_code> ec;
  batch_outcome out;
  c.async_send_batch(ms, [&](std::error_code e, batch_outcome o) {
    ec = e;
    out = std::move(o);
  });
  REQUIRE(run_until(io, [&] { return ec.has_value(); }));
  REQUIRE_MESSAGE(!*ec, c.last_error());
  return out;
}

// Reads every event of the built-in endpoint (one partition: start the emulator with
// --partitions 1) with a plain transport::receiver, from the start of the stream.
class event_reader {
public:
  event_reader(asio::io_context& io, const test::emulator_process& emu)
      : io_(io), ep_(endpoint(emu, emu.eventhub)), conn_(connect_hub(io, ep_)) {
    transport::receiver_options o;
    o.filters.push_back(
        {"selector", "apache.org:selector-filter:string", "amqp.annotation.x-opt-offset > '-1'"});
    std::optional<std::error_code> ec;
    conn_.client().async_open_receiver(
        eventhub_consumer_address(ep_.parsed.entity_path, "$Default", "0"), o,
        [&](std::error_code e, transport::receiver r) {
          ec = e;
          r_ = std::move(r);
        });
    REQUIRE(run_until(io, [&] { return ec.has_value(); }));
    REQUIRE_MESSAGE(!*ec, conn_.client().last_error());
  }
  ~event_reader() {
    bool closed = false;
    conn_.async_close([&](std::error_code) { closed = true; });
    run_until(
        io_, [&] { return closed; }, 10s);
  }
  event_reader(const event_reader&) = delete;
  event_reader& operator=(const event_reader&) = delete;

  // The next `n` events (fewer if they do not come within `limit`; a receive still waiting
  // then writes into this reader, which closes its connection before it goes).
  std::vector<amqp::message> read(std::size_t n, std::chrono::milliseconds limit = 20s) {
    want_ = n;
    if (!waiting_) {
      next();
    }
    run_until(
        io_, [&] { return got_.size() >= n; }, limit);
    auto out = std::move(got_);
    got_.clear();
    want_ = 0;
    return out;
  }

private:
  asio::io_context& io_;
  hub_endpoint ep_;
  hub_connection conn_;
  transport::receiver r_;
  std::vector<amqp::message> got_;
  std::size_t want_ = 0;
  bool waiting_ = false;

  void next() {
    waiting_ = true;
    r_.async_receive([this](std::error_code ec, transport::received_message m) {
      waiting_ = false;
      if (ec) {
        return;
      }
      (void)r_.accept(m);
      auto decoded = m.message();
      REQUIRE(decoded);
      got_.push_back(std::move(*decoded));
      if (got_.size() < want_) {
        next();
      }
    });
  }
};

amqp::message full_message(std::string_view body) {
  amqp::message m(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(body.data()), body.size()));
  m.properties.message_id = owned_value("msg-1");
  m.properties.correlation_id = owned_value("corr-7");
  m.properties.content_type = "application/json";
  m.properties.content_encoding = "utf-8";
  m.properties.user_id = std::vector<std::byte>{std::byte{'u'}, std::byte{'1'}};
  m.properties.creation_time = timestamp{1'700'000'000'000};
  m.properties.absolute_expiry_time = timestamp{4'000'000'000'000};
  m.application_properties.set("temperature", owned_value("21.5"));
  m.application_properties.set(app_property::creation_time_utc,
                               owned_value("2026-12-07T02:00:00Z"));
  return m;
}

std::string app_string(const amqp::message& m, std::string_view key) {
  auto v = m.application_properties.get(key);
  if (!v || !v->get_string()) {
    return {};
  }
  return std::string(*v->get_string());
}

std::string annotation_string(const amqp::message& m, std::string_view key) {
  auto v = m.message_annotations.get(key);
  if (!v || !v->get_string()) {
    return {};
  }
  return std::string(*v->get_string());
}

amqp::message numbered(std::size_t i, std::size_t body_size = 100) {
  std::string body(body_size, 'x');
  amqp::message m(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(body.data()), body.size()));
  m.properties.message_id = owned_value("m-" + std::to_string(i));
  m.application_properties.set("i", owned_value(std::to_string(i)));
  return m;
}

std::string message_id(const amqp::message& m) {
  const auto& v = m.properties.message_id.get();
  return v.get_string() ? std::string(*v.get_string()) : std::string{};
}

} // namespace

TEST_CASE("device_client: telemetry keeps every property; the hub's annotations are added") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {"--partitions", "1"}});
  asio::io_context io;
  auto d = connect_device(io, endpoint(emu, emu.devices.at("dev-1")));
  REQUIRE_MESSAGE(!*d.ec, d.client.last_error());
  CHECK(d.client.identity().device_id == "dev-1");

  const auto sent = full_message(R"({"t":21.5})");
  auto out = send(io, d.client, sent);
  REQUIRE(out);
  CHECK(out->state == state_kind::accepted);

  event_reader reader(io, emu);
  auto got = reader.read(1);
  REQUIRE(got.size() == 1);
  CHECK(got[0].properties == sent.properties);
  CHECK(app_string(got[0], "temperature") == "21.5");
  CHECK(app_string(got[0], app_property::creation_time_utc) == "2026-12-07T02:00:00Z");
  CHECK(got[0].body_text() == R"({"t":21.5})");
  CHECK(annotation_string(got[0], annotation::connection_device_id) == "dev-1");
  CHECK(annotation_string(got[0], annotation::message_source) == "Telemetry");

  std::optional<std::error_code> closed;
  d.client.async_close([&](std::error_code ec) { closed = ec; });
  REQUIRE(run_until(io, [&] { return closed.has_value(); }));
  CHECK_FALSE(*closed);
  std::error_code after;
  CHECK_FALSE(send(io, d.client, sent, &after));
  CHECK(after == amqp::errc::invalid_state);
}

TEST_CASE("device_client: the 256 KB rule: rejected by the hub above it, refused here above 1 MB") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {}});
  asio::io_context io;
  auto d = connect_device(io, endpoint(emu, emu.devices.at("dev-1")));
  REQUIRE_MESSAGE(!*d.ec, d.client.last_error());

  const std::vector<std::byte> big(300 * 1024, std::byte{'a'});
  auto out = send(io, d.client, amqp::message(big));
  REQUIRE(out);
  CHECK(out->state == state_kind::rejected);
  CHECK(out->condition == "amqp:link:message-size-exceeded");
  CHECK(out->description.find("262144") != std::string::npos);

  // Exactly at the link limit (1 MB encoded: a data section of n bytes takes n + 8) is sent,
  // and rejected by the hub; one byte more is refused here.
  const std::vector<std::byte> limit(hub_max_message_size - 8, std::byte{'b'});
  REQUIRE(amqp::message(limit).encoded_size().value() == hub_max_message_size);
  auto at_limit = send(io, d.client, amqp::message(limit));
  REQUIRE(at_limit);
  CHECK(at_limit->state == state_kind::rejected);
  CHECK(at_limit->condition == "amqp:link:message-size-exceeded");
  const std::vector<std::byte> huge(hub_max_message_size - 7, std::byte{'b'});
  std::error_code ec;
  CHECK_FALSE(send(io, d.client, amqp::message(huge), &ec));
  CHECK(ec == amqp::errc::message_size_exceeded);
  CHECK(d.client.last_error().find("above the hub's link limit") != std::string::npos);

  // The link is still up: a small message goes.
  auto small = send(io, d.client, amqp::message("after"));
  REQUIRE(small);
  CHECK(small->state == state_kind::accepted);

  // A message that cannot be encoded fails at once with the field named.
  amqp::message bad("x");
  bad.properties.content_type = "caf\xc3\xa9";
  CHECK_FALSE(send(io, d.client, bad, &ec));
  CHECK(ec == amqp::errc::invalid_argument);
  CHECK(d.client.last_error().find("content-type") != std::string::npos);
}

TEST_CASE("device_client: many devices on one connection; a device with a wrong key fails alone") {
  test::emulator_process emu({.devices = {"dev-1", "dev-2", "dev-3"}, .args = {}});
  asio::io_context io;
  const auto e1 = endpoint(emu, emu.devices.at("dev-1"));
  const auto e2 = endpoint(emu, emu.devices.at("dev-2"));
  const auto e3 = endpoint(emu, emu.devices.at("dev-3"));
  // The connection starts with no identity; each device adds its own.
  hub_endpoint shared = e1;
  shared.identity.reset();
  auto conn = connect_hub(io, shared);

  auto open = [&](device_identity who, token_source token) {
    opened r;
    device_client::async_open(conn, std::move(who), std::move(token), {},
                              [&](std::error_code ec, device_client c) {
                                r.ec = ec;
                                r.client = std::move(c);
                              });
    REQUIRE(run_until(
        io, [&] { return r.ec.has_value(); }, 30s));
    return r;
  };
  auto d1 = open({"dev-1", {}}, *e1.identity);
  REQUIRE_MESSAGE(!*d1.ec, d1.client.last_error());
  auto d2 = open({"dev-2", {}}, *e2.identity);
  REQUIRE_MESSAGE(!*d2.ec, d2.client.last_error());
  // dev-3 signs with dev-1's key: the hub refuses its token.
  auto d3 = open({"dev-3", {}},
                 token_source::from_key(e3.identity->audience(), e1.parsed.shared_access_key));
  CHECK(*d3.ec == amqp::errc::unauthorized);
  CHECK_FALSE(d3.client);
  CHECK_FALSE(d3.client.last_error().empty());
  // An invalid id fails before anything is sent.
  auto bad = open({"no#hash", {}}, *e1.identity);
  CHECK(*bad.ec == iothub::errc::invalid_value);

  for (int i = 0; i < 3; ++i) {
    auto o1 = send(io, d1.client, amqp::message("from 1"));
    auto o2 = send(io, d2.client, amqp::message("from 2"));
    REQUIRE(o1);
    REQUIRE(o2);
    CHECK(o1->state == state_kind::accepted);
    CHECK(o2->state == state_kind::accepted);
  }
  // Closing one device leaves the connection and the other device up.
  std::optional<std::error_code> closed;
  d1.client.async_close([&](std::error_code ec) { closed = ec; });
  REQUIRE(run_until(io, [&] { return closed.has_value(); }));
  CHECK_FALSE(*closed);
  auto after = send(io, d2.client, amqp::message("still"));
  REQUIRE(after);
  CHECK(after->state == state_kind::accepted);
}

TEST_CASE("device_client: a batch in one transfer, each message kept, in order") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {"--partitions", "1"}});
  asio::io_context io;
  auto d = connect_device(io, endpoint(emu, emu.devices.at("dev-1")));
  REQUIRE_MESSAGE(!*d.ec, d.client.last_error());

  std::vector<amqp::message> ms;
  for (std::size_t i = 0; i < 20; ++i) {
    ms.push_back(numbered(i));
  }
  ms[3] = full_message("three");
  const auto out = send_batch(io, d.client, ms);
  CHECK(out.transfers == std::vector<std::size_t>{20});
  REQUIRE(out.outcomes.size() == 20);
  for (const auto& o : out.outcomes) {
    CHECK(o.state == state_kind::accepted);
  }
  event_reader reader(io, emu);
  auto got = reader.read(20);
  REQUIRE(got.size() == 20);
  for (std::size_t i = 0; i < 20; ++i) {
    if (i == 3) {
      CHECK(got[i].properties == ms[3].properties);
      CHECK(app_string(got[i], "temperature") == "21.5");
      CHECK(got[i].body_text() == "three");
    } else {
      CHECK(message_id(got[i]) == "m-" + std::to_string(i));
    }
    CHECK(annotation_string(got[i], annotation::connection_device_id) == "dev-1");
  }

  // No messages: refused at once.
  std::optional<std::error_code> ec;
  d.client.async_send_batch({}, [&](std::error_code e, batch_outcome) { ec = e; });
  REQUIRE(ec.has_value());
  CHECK(*ec == amqp::errc::invalid_argument);
}

TEST_CASE("device_client: batches split by exact size and by count; a message too large alone") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {"--partitions", "1"}});
  asio::io_context io;
  device_client_options o;
  // Each numbered(i, 500) is 500 bytes of body plus its properties: the exact envelope size of
  // k of them decides the split.
  std::vector<amqp::message> ms;
  for (std::size_t i = 0; i < 10; ++i) {
    ms.push_back(numbered(i, 500));
  }
  amqp::message envelope;
  auto three = build_batch(std::span(ms).first(3), 1 << 20, envelope);
  REQUIRE(three);
  const auto three_size = envelope.encoded_size().value();
  o.batch.max_bytes = three_size; // exactly three fit
  auto d = connect_device(io, endpoint(emu, emu.devices.at("dev-1")), o);
  REQUIRE_MESSAGE(!*d.ec, d.client.last_error());

  auto out = send_batch(io, d.client, ms);
  CHECK(out.transfers == std::vector<std::size_t>{3, 3, 3, 1});
  for (const auto& oc : out.outcomes) {
    CHECK(oc.state == state_kind::accepted);
  }

  // One byte less: two per transfer.
  std::optional<std::error_code> closed;
  d.client.async_close([&](std::error_code ec) { closed = ec; });
  REQUIRE(run_until(io, [&] { return closed.has_value(); }));
  o.batch.max_bytes = three_size - 1;
  d = connect_device(io, endpoint(emu, emu.devices.at("dev-1")), o);
  REQUIRE_MESSAGE(!*d.ec, d.client.last_error());
  out = send_batch(io, d.client, std::vector<amqp::message>(ms.begin(), ms.begin() + 4));
  CHECK(out.transfers == std::vector<std::size_t>{2, 2});

  // By count.
  closed.reset();
  d.client.async_close([&](std::error_code ec) { closed = ec; });
  REQUIRE(run_until(io, [&] { return closed.has_value(); }));
  o.batch = {};
  o.batch.max_messages = 4;
  d = connect_device(io, endpoint(emu, emu.devices.at("dev-1")), o);
  REQUIRE_MESSAGE(!*d.ec, d.client.last_error());
  out = send_batch(io, d.client, ms);
  CHECK(out.transfers == std::vector<std::size_t>{4, 4, 2});

  // A message above 256 KB in the middle: alone, as a plain message, rejected by the hub;
  // the others accepted.
  std::vector<amqp::message> mixed{numbered(100), numbered(101, 300 * 1024), numbered(102)};
  out = send_batch(io, d.client, mixed);
  CHECK(out.transfers == std::vector<std::size_t>{1, 1, 1});
  REQUIRE(out.outcomes.size() == 3);
  CHECK(out.outcomes[0].state == state_kind::accepted);
  CHECK(out.outcomes[1].state == state_kind::rejected);
  CHECK(out.outcomes[1].condition == "amqp:link:message-size-exceeded");
  CHECK(out.outcomes[2].state == state_kind::accepted);

  // Every accepted message is on the hub, in order: 10 + 4 + 10 + 2.
  event_reader reader(io, emu);
  auto got = reader.read(26);
  REQUIRE(got.size() == 26);
  CHECK(message_id(got[0]) == "m-0");
  CHECK(message_id(got[9]) == "m-9");
  CHECK(message_id(got[10]) == "m-0");
  CHECK(message_id(got[24]) == "m-100");
  CHECK(message_id(got[25]) == "m-102");
}

namespace {

// The service side of C2D: a sender on /messages/devicebound with the service policy.
class c2d_service {
public:
  c2d_service(asio::io_context& io, const test::emulator_process& emu)
      : io_(io), conn_(connect_hub(io, endpoint(emu, emu.service))) {
    std::optional<std::error_code> ec;
    conn_.client().async_open_sender(path::service_c2d, {},
                                     [&](std::error_code e, transport::sender s) {
                                       ec = e;
                                       s_ = std::move(s);
                                     });
    REQUIRE(run_until(io, [&] { return ec.has_value(); }));
    REQUIRE_MESSAGE(!*ec, conn_.client().last_error());
  }
  // Sends `id` to `device` and waits for the hub's accepted.
  void send(const std::string& device, const std::string& id) {
    amqp::message m("c2d " + id);
    m.properties.message_id = owned_value(id);
    m.properties.to = device_c2d_address({device, {}});
    m.properties.correlation_id = owned_value("corr-" + id);
    m.application_properties.set("k", owned_value("v-" + id));
    std::optional<state_kind> out;
    s_.async_send(m, [&](std::error_code ec, transport::delivery_outcome o) {
      CHECK_FALSE(ec);
      out = o.state;
    });
    REQUIRE(run_until(io_, [&] { return out.has_value(); }));
    REQUIRE(*out == state_kind::accepted);
  }

private:
  asio::io_context& io_;
  hub_connection conn_;
  transport::sender s_;
};

// The next C2D message of `c`, waiting at most `limit`; nullopt if none came.
std::optional<c2d_message> receive(asio::io_context& io, device_client& c,
                                   std::chrono::milliseconds limit = 10s) {
  std::optional<std::error_code> ec;
  c2d_message m;
  c.async_receive([&](std::error_code e, c2d_message r) {
    ec = e;
    m = std::move(r);
  });
  if (!run_until(
          io, [&] { return ec.has_value(); }, limit) ||
      *ec) {
    return std::nullopt;
  }
  return m;
}

std::string c2d_id(const c2d_message& m) {
  const auto& v = m.properties().message_id.get();
  return v.get_string() ? std::string(*v.get_string()) : std::string{};
}

} // namespace

TEST_CASE("device_client: C2D complete, reject and abandon; an abandoned message comes again") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {"--c2d-lock", "1"}});
  asio::io_context io;
  auto d = connect_device(io, endpoint(emu, emu.devices.at("dev-1")));
  REQUIRE_MESSAGE(!*d.ec, d.client.last_error());
  c2d_service svc(io, emu);
  svc.send("dev-1", "c-1");
  svc.send("dev-1", "r-1");
  svc.send("dev-1", "a-1");

  std::map<std::string, c2d_message> got;
  for (int i = 0; i < 3; ++i) {
    auto m = receive(io, d.client);
    REQUIRE(m);
    got[c2d_id(*m)] = *m;
  }
  REQUIRE(got.size() == 3);
  const auto& c = got.at("c-1");
  CHECK(c.properties().to == device_c2d_address({"dev-1", {}}));
  CHECK(c.properties().correlation_id == owned_value("corr-c-1"));
  CHECK(c.body_text() == "c2d c-1");
  CHECK(c.application_properties().get("k")->get_string() == "v-c-1");
  CHECK(c.message_annotations().contains(annotation::lock_token));

  CHECK(d.client.complete(got.at("c-1")));
  CHECK(d.client.reject(got.at("r-1")));
  CHECK(d.client.abandon(got.at("a-1")));

  // The abandoned one comes again; then nothing more, though the lock is 1 s (a message the
  // hub did not take as completed or rejected would come back within it).
  auto again = receive(io, d.client);
  REQUIRE(again);
  CHECK(c2d_id(*again) == "a-1");
  CHECK(d.client.complete(*again));
  CHECK_FALSE(receive(io, d.client, 2500ms));
  // Settled (by the hub, after our outcome): refused here.
  CHECK(d.client.complete(got.at("c-1")).error() == amqp::errc::invalid_state);
  CHECK(d.client.abandon(got.at("r-1")).error() == amqp::errc::invalid_state);
}

TEST_CASE("device_client: C2D whose lock expired is delivered again") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {"--c2d-lock", "1"}});
  asio::io_context io;
  auto d = connect_device(io, endpoint(emu, emu.devices.at("dev-1")));
  REQUIRE_MESSAGE(!*d.ec, d.client.last_error());
  c2d_service svc(io, emu);
  svc.send("dev-1", "lock-1");
  auto first = receive(io, d.client);
  REQUIRE(first);
  CHECK(c2d_id(*first) == "lock-1");
  // Not settled: once its lock (1 s) expires, the hub delivers it again.
  const auto t0 = std::chrono::steady_clock::now();
  auto second = receive(io, d.client);
  REQUIRE(second);
  CHECK(std::chrono::steady_clock::now() - t0 >= 500ms);
  CHECK(c2d_id(*second) == "lock-1");
  CHECK(d.client.complete(*second));
  CHECK_FALSE(receive(io, d.client, 2500ms));
}

TEST_CASE("device_client: C2D callback form") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {}});
  asio::io_context io;
  auto d = connect_device(io, endpoint(emu, emu.devices.at("dev-1")));
  REQUIRE_MESSAGE(!*d.ec, d.client.last_error());
  c2d_service svc(io, emu);
  std::vector<std::string> seen;
  std::optional<std::error_code> ended;
  d.client.on_c2d_message([&](std::error_code ec, c2d_message m) {
    if (ec) {
      ended = ec;
      return;
    }
    seen.push_back(c2d_id(m));
    CHECK(d.client.complete(m));
  });
  for (int i = 0; i < 5; ++i) {
    svc.send("dev-1", "cb-" + std::to_string(i));
  }
  REQUIRE(run_until(io, [&] { return seen.size() == 5; }));
  CHECK(seen == std::vector<std::string>{"cb-0", "cb-1", "cb-2", "cb-3", "cb-4"});
  // Closing ends the loop with invalid_state, once.
  std::optional<std::error_code> closed;
  d.client.async_close([&](std::error_code ec) { closed = ec; });
  REQUIRE(run_until(io, [&] { return closed.has_value(); }));
  CHECK_FALSE(ended.has_value()); // the callback was removed by the close

  // A client without C2D refuses to receive.
  device_client_options o;
  o.receive_c2d = false;
  auto nd = connect_device(io, endpoint(emu, emu.devices.at("dev-1")), o);
  REQUIRE_MESSAGE(!*nd.ec, nd.client.last_error());
  std::optional<std::error_code> rec;
  nd.client.async_receive([&](std::error_code ec, c2d_message) { rec = ec; });
  REQUIRE(rec.has_value());
  CHECK(*rec == amqp::errc::invalid_state);
}

TEST_CASE("device_client: C2D received before a reconnect cannot be settled; the hub redelivers") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("device-c2d-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  {
    test::emulator_process emu(
        {.devices = {"dev-1"}, .args = {"--c2d-lock", "2"}, .state = dir.string()});
    asio::io_context io;
    auto d = connect_device(io, endpoint(emu, emu.devices.at("dev-1")));
    REQUIRE_MESSAGE(!*d.ec, d.client.last_error());
    {
      c2d_service svc(io, emu);
      svc.send("dev-1", "rc-1");
    }
    auto m = receive(io, d.client);
    REQUIRE(m);
    emu.kill();
    emu.start();
    REQUIRE(run_until(
        io, [&] { return d.client.connection().reconnects() >= 1; }, 30s));
    // Reconnecting, or reconnected: either way the lock of `m` is gone.
    CHECK(d.client.complete(*m).error() == amqp::errc::invalid_state);
    auto again = receive(io, d.client, 20s);
    REQUIRE(again);
    CHECK(c2d_id(*again) == "rc-1");
    CHECK(d.client.complete(*m).error() == amqp::errc::invalid_state);
    CHECK(d.client.complete(*again));
    std::error_code send_error;
    auto sent = send(io, d.client, amqp::message("after the restart"), &send_error);
    REQUIRE_MESSAGE(sent, send_error.message() << ": " << d.client.last_error());
    CHECK(sent->state == state_kind::accepted);
    std::optional<std::error_code> closed;
    d.client.async_close([&](std::error_code e) { closed = e; });
    REQUIRE(run_until(io, [&] { return closed.has_value(); }));
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("blocking_device_client: connect, send, batch, receive with a timeout, settle, close") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {"--c2d-lock", "1"}});
  // A wrong key: refused, and says why.
  auto wrong = endpoint(emu, emu.devices.at("dev-1"));
  wrong.identity =
      token_source::from_key(wrong.identity->audience(), "c2VjcmV0LWtleS10aGF0LWlzLXdyb25nIQ==");
  std::string why;
  auto refused = blocking_device_client::connect(wrong, {}, &why);
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == amqp::errc::unauthorized);
  CHECK_FALSE(why.empty());

  auto c = blocking_device_client::connect(endpoint(emu, emu.devices.at("dev-1")), {}, &why);
  REQUIRE_MESSAGE(c, why);
  auto o = c->send_event(full_message("blocking"));
  REQUIRE(o);
  CHECK(o->state == state_kind::accepted);
  const std::vector<amqp::message> ms{numbered(1), numbered(2), numbered(3)};
  auto b = c->send_batch(ms);
  REQUIRE(b);
  CHECK(b->transfers == std::vector<std::size_t>{3});
  CHECK(b->outcomes.size() == 3);

  // Nothing yet: a timeout. The receive it started stays for the next call.
  auto none = c->receive(100ms);
  REQUIRE_FALSE(none);
  CHECK(none.error() == amqp::errc::timeout);
  {
    asio::io_context io;
    c2d_service svc(io, emu);
    svc.send("dev-1", "b-1");
    svc.send("dev-1", "b-2");
  }
  auto m1 = c->receive(10s);
  REQUIRE(m1);
  auto m2 = c->receive(10s);
  REQUIRE(m2);
  CHECK(std::set<std::string>{c2d_id(*m1), c2d_id(*m2)} == std::set<std::string>{"b-1", "b-2"});
  CHECK(c->reject(c2d_id(*m1) == "b-1" ? *m1 : *m2));
  CHECK(c->abandon(c2d_id(*m1) == "b-2" ? *m1 : *m2));
  auto again = c->receive(10s);
  REQUIRE(again);
  CHECK(c2d_id(*again) == "b-2");
  CHECK(c->complete(*again));
  CHECK(c->receive(2500ms).error() == amqp::errc::timeout);

  CHECK(c->close());
  CHECK(c->close().error() == amqp::errc::invalid_state);
  CHECK(c->send_event(amqp::message("late")).error() == amqp::errc::invalid_state);
  CHECK(c->receive(10ms).error() == amqp::errc::invalid_state);
  CHECK(c->complete(*again).error() == amqp::errc::invalid_state);
  blocking_device_client empty;
  CHECK(empty.send_event(amqp::message("x")).error() == amqp::errc::invalid_state);
}

TEST_CASE("device_client: a token of 3 s renewed all along a 15 s run of sends; nothing fails") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {"--token-grace", "0"}});
  asio::io_context io;
  auto ep = endpoint(emu, emu.devices.at("dev-1"));
  ep.identity =
      token_source::from_key(ep.identity->audience(), ep.parsed.shared_access_key, {}, 3s);
  // Renewed at half their life: a token's expiry is in whole seconds (up to 1 s short of its
  // lifetime), so 0.75 of 3 s can come after it (see the report of this branch).
  ep.options.renew_at = 0.5;
  auto d = connect_device(io, ep);
  REQUIRE_MESSAGE(!*d.ec, d.client.last_error());
  std::vector<std::error_code> identity_errors;
  d.client.connection().on_identity_error(
      [&](const std::string&, std::error_code ec) { identity_errors.push_back(ec); });
  std::size_t accepted = 0;
  std::size_t failed = 0;
  std::size_t sent = 0;
  std::string last_failure;
  const auto end = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < end) {
    if (sent - accepted - failed < 2) {
      ++sent;
      d.client.async_send_event(numbered(sent), [&](std::error_code ec, event_outcome o) {
        if (!ec && o.state == state_kind::accepted) {
          ++accepted;
        } else {
          ++failed;
          last_failure = ec ? ec.message() : o.condition + ": " + o.description;
        }
      });
    }
    io.run_for(50ms);
  }
  REQUIRE(run_until(io, [&] { return accepted + failed == sent; }));
  CHECK_MESSAGE(failed == 0, last_failure);
  CHECK(accepted == sent);
  CHECK(sent > 50); // sends all along (294 here; fewer on a loaded machine or under ASan)
  CHECK(identity_errors.empty());
  CHECK(d.client.connection().tokens_put() >= 9); // 1 + one per 1.5 s
  MESSAGE("sent " << sent << ", tokens put " << d.client.connection().tokens_put());
  // The C2D link lived through the renewals too.
  c2d_service svc(io, emu);
  svc.send("dev-1", "after-renewals");
  auto m = receive(io, d.client);
  REQUIRE(m);
  CHECK(c2d_id(*m) == "after-renewals");
  CHECK(d.client.complete(*m));
  std::optional<std::error_code> closed;
  d.client.async_close([&](std::error_code e) { closed = e; });
  REQUIRE(run_until(io, [&] { return closed.has_value(); }));
  CHECK_FALSE(*closed);
}

TEST_CASE("device_client: the emulator killed and restarted mid-stream: every accepted message "
          "is on the hub") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("device-kill-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  {
    test::emulator_process emu(
        {.devices = {"dev-1"}, .args = {"--partitions", "1"}, .state = dir.string()});
    asio::io_context io;
    auto d = connect_device(io, endpoint(emu, emu.devices.at("dev-1")));
    REQUIRE_MESSAGE(!*d.ec, d.client.last_error());
    constexpr std::size_t total = 300;
    std::set<std::string> accepted;
    std::size_t done = 0;
    std::size_t failed = 0;
    std::size_t sent = 0;
    bool killed = false;
    bool restarted = false;
    std::chrono::steady_clock::time_point killed_at;
    const auto deadline = std::chrono::steady_clock::now() + 90s;
    while (done < total && std::chrono::steady_clock::now() < deadline) {
      while (sent < total && sent - done < 10) {
        const auto id = "m-" + std::to_string(sent);
        ++sent;
        d.client.async_send_event(numbered(sent - 1), [&, id](std::error_code ec, event_outcome o) {
          ++done;
          if (!ec && o.state == state_kind::accepted) {
            accepted.insert(id);
          } else {
            ++failed;
          }
        });
      }
      if (!killed && done >= 100) {
        emu.kill(); // with messages in flight
        killed = true;
        killed_at = std::chrono::steady_clock::now();
      }
      if (killed && !restarted && std::chrono::steady_clock::now() - killed_at > 1500ms) {
        emu.start();
        restarted = true;
      }
      if (io.stopped()) {
        io.restart();
      }
      io.run_for(10ms);
    }
    REQUIRE(done == total);
    CHECK(restarted);
    CHECK(d.client.connection().reconnects() >= 1);
    CHECK(failed == 0);
    MESSAGE("accepted " << accepted.size() << " of " << total << ", reconnects "
                        << d.client.connection().reconnects());

    // Every accepted message is on the hub (at least once: a message whose outcome was lost
    // with the connection is sent again).
    event_reader reader(io, emu);
    auto got = reader.read(total + 50, 10s);
    std::set<std::string> on_hub;
    for (const auto& m : got) {
      on_hub.insert(message_id(m));
    }
    for (const auto& id : accepted) {
      CHECK_MESSAGE(on_hub.count(id) == 1, id);
    }
    MESSAGE("events on the hub " << got.size() << " (distinct " << on_hub.size() << ")");
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("device_client: over AMQP over WebSockets; connection strings that are not a device's") {
  // The emulator with its WebSocket listener only (emulator_process starts AMQPS).
  test::fail_prefix = "device_client_test";
  auto proc = test::spawn({IOTHUB_EMULATOR_PATH, "--state", ":memory:", "--amqps", "none", "--wss",
                           "127.0.0.1:0", "--device", "dev-1"},
                          "iothub-emulator");
  const std::string_view listening = "listening wss://127.0.0.1:";
  const auto line = test::wait_for_line(proc, listening, 60);
  const auto hub = test::wait_for_line(proc, "hub ", 60);
  REQUIRE(line);
  REQUIRE(hub);
  const auto port =
      line->substr(listening.size(), line->find('/', listening.size()) - listening.size());
  const std::string_view in = "connection strings in ";
  std::ifstream f(hub->substr(hub->find(in) + in.size()));
  const auto j = nlohmann::json::parse(f);

  std::string why;
  auto ep = endpoint_from(j.at("devices").at("dev-1").get<std::string>(),
                          hub_protocol::amqp_websockets, &why);
  REQUIRE_MESSAGE(ep, why);
  ep->options.tls.ca_file = j.at("ca").get<std::string>();
  ep->options.host = "localhost:" + port; // GatewayHostName has no port
  asio::io_context io;
  auto d = connect_device(io, *ep);
  REQUIRE_MESSAGE(!*d.ec, d.client.last_error());
  auto out = send(io, d.client, full_message("over websockets"));
  REQUIRE(out);
  CHECK(out->state == state_kind::accepted);
  std::vector<amqp::message> ms{numbered(1), numbered(2)};
  CHECK(send_batch(io, d.client, ms).outcomes.size() == 2);

  // A service connection string, and text that is no connection string: refused at once.
  auto svc = endpoint_from(j.at("service").get<std::string>(), hub_protocol::amqps);
  REQUIRE(svc);
  auto wrong_kind = connect_device(io, *svc);
  CHECK(*wrong_kind.ec == iothub::errc::invalid_value);
  CHECK(wrong_kind.client.last_error().find("not a device or module") != std::string::npos);
  std::optional<std::error_code> ec;
  device_client failed;
  device_client::async_connect(io, "HostName=h;nonsense", hub_protocol::amqps, {},
                               [&](std::error_code e, device_client c) {
                                 ec = e;
                                 failed = std::move(c);
                               });
  REQUIRE(ec.has_value());
  CHECK(*ec);
  CHECK(failed.last_error().find("invalid connection string") != std::string::npos);
  std::optional<std::error_code> closed;
  d.client.async_close([&](std::error_code e) { closed = e; });
  REQUIRE(run_until(io, [&] { return closed.has_value(); }));
  CHECK_FALSE(*closed);
  test::stop_child(proc, SIGTERM, 30);
}

TEST_CASE("device_client: from a C++20 coroutine with asio::use_awaitable (device_asio.hpp)") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {}});
  asio::io_context io;
  {
    c2d_service svc(io, emu);
    svc.send("dev-1", "co-1");
  }
  const auto ep = endpoint(emu, emu.devices.at("dev-1"));
  std::string failure;
  std::vector<std::string> log;
  bool done = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        // Named variables, not temporaries (GCC 12, see device_asio.hpp).
        const device_client_options o;
        auto d = co_await async_connect_device(io, ep, o, asio::use_awaitable);
        const amqp::message m = full_message("co");
        auto out = co_await async_send_event(d, m, asio::use_awaitable);
        log.push_back(std::string(amqp::name(out.state)));
        const std::vector<amqp::message> ms{numbered(1), numbered(2)};
        auto b = co_await async_send_batch(d, ms, asio::use_awaitable);
        log.push_back(std::to_string(b.outcomes.size()));
        auto c2d = co_await async_receive(d, asio::use_awaitable);
        log.push_back(c2d_id(c2d));
        if (!d.complete(c2d)) {
          failure = "complete failed";
        }
        co_await async_close(d, asio::use_awaitable);
        // After close: the error comes as std::system_error.
        try {
          co_await async_send_event(d, m, asio::use_awaitable);
          failure = "sent after close";
        } catch (const std::system_error& e) {
          log.push_back(e.code() == amqp::errc::invalid_state ? "closed" : e.what());
        }
        done = true;
      },
      [&](std::exception_ptr e) {
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& x) {
            failure = x.what();
          }
        }
      });
  REQUIRE(run_until(
      io, [&] { return done || !failure.empty(); }, 30s));
  CHECK_MESSAGE(failure.empty(), failure);
  CHECK(log == std::vector<std::string>{"accepted", "2", "co-1", "closed"});
}

TEST_CASE("device_client: the default batch limits (500 messages, 256 KB) are the hub's") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = {"--partitions", "1"}});
  asio::io_context io;
  auto d = connect_device(io, endpoint(emu, emu.devices.at("dev-1")));
  REQUIRE_MESSAGE(!*d.ec, d.client.last_error());
  std::vector<amqp::message> small;
  for (std::size_t i = 0; i < 501; ++i) {
    small.push_back(numbered(i, 10));
  }
  auto out = send_batch(io, d.client, small);
  CHECK(out.transfers == std::vector<std::size_t>{500, 1});
  CHECK(std::all_of(out.outcomes.begin(), out.outcomes.end(),
                    [](const event_outcome& o) { return o.state == state_kind::accepted; }));
  // 100 KB each: two per 256 KB envelope; the hub accepts each envelope.
  std::vector<amqp::message> large;
  for (std::size_t i = 0; i < 5; ++i) {
    large.push_back(numbered(i, 100 * 1024));
  }
  out = send_batch(io, d.client, large);
  CHECK(out.transfers == std::vector<std::size_t>{2, 2, 1});
  CHECK(std::all_of(out.outcomes.begin(), out.outcomes.end(),
                    [](const event_outcome& o) { return o.state == state_kind::accepted; }));
}
