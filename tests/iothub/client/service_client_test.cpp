// The service client (C2D send, feedback) against the real iothub-emulator program. The
// device side is a hub_connection as the device (CBS put-token) with a receiver on its
// /devices/{id}/messages/devicebound, accepting or rejecting what comes.

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <doctest/doctest.h>
#include <unistd.h>

#include "amqp/connection.hpp"
#include "amqp/error.hpp"
#include "amqp/event.hpp"
#include "amqp/iothub/address.hpp"
#include "amqp/iothub/hub_connection.hpp"
#include "amqp/iothub/messages.hpp"
#include "amqp/iothub/service_client.hpp"
#include "amqp/iothub/service_client_asio.hpp"
#include "amqp/transport/listener.hpp"
#include "amqp/types.hpp"
#include "iothub/client/client_support.hpp"
#include "iothub/client/emulator_process.hpp"
#include "support/raw_node.hpp"

using namespace amqp;
using namespace amqp::iothub;
using namespace std::chrono_literals;

namespace {

using test::run_until;

service_client connect_service(asio::io_context& io, const test::emulator_process& emu,
                               service_client_options o = {}) {
  service_client svc;
  bool done = false;
  service_client::async_connect(io, test::endpoint(emu, emu.service), o,
                                [&](std::error_code ec, service_client c) {
                                  INFO(c.last_error());
                                  REQUIRE_FALSE(ec);
                                  svc = std::move(c);
                                  done = true;
                                });
  REQUIRE(run_until(io, [&] { return done; }));
  return svc;
}

// A device receiving its C2D messages.
struct device {
  hub_connection conn;
  transport::receiver rx;
  std::vector<transport::received_message> received;

  void connect(asio::io_context& io, const test::emulator_process& emu, const std::string& id) {
    auto ep = test::endpoint(emu, emu.devices.at(id));
    bool done = false;
    hub_connection::async_connect(io, ep.options, {*ep.identity},
                                  [&](std::error_code ec, hub_connection c) {
                                    INFO(c.last_error());
                                    REQUIRE_FALSE(ec);
                                    conn = std::move(c);
                                    done = true;
                                  });
    REQUIRE(run_until(io, [&] { return done; }));
    done = false;
    conn.client().async_open_receiver(device_c2d_address({id, {}}), {},
                                      [&](std::error_code ec, transport::receiver r) {
                                        REQUIRE_FALSE(ec);
                                        rx = std::move(r);
                                        done = true;
                                      });
    REQUIRE(run_until(io, [&] { return done; }));
  }
  // Receives `n` more messages into `received`.
  void receive(asio::io_context& io, std::size_t n) {
    const std::size_t want = received.size() + n;
    std::function<void()> next = [&] {
      rx.async_receive([&](std::error_code ec, transport::received_message m) {
        REQUIRE_FALSE(ec);
        received.push_back(std::move(m));
        if (received.size() < want) {
          next();
        }
      });
    };
    next();
    REQUIRE(run_until(io, [&] { return received.size() >= want; }));
  }
  void close(asio::io_context& io) {
    bool done = false;
    conn.async_close([&](std::error_code) { done = true; });
    REQUIRE(run_until(io, [&] { return done; }));
  }
};

// Closes the client (and its connection), waiting for the close to end.
void close_service(asio::io_context& io, service_client& svc) {
  bool closed = false;
  svc.async_close([&](std::error_code) { closed = true; });
  REQUIRE(run_until(io, [&] { return closed; }));
}

c2d_outcome send(asio::io_context& io, service_client& svc, std::string_view device_id,
                 const amqp::message& m, const c2d_send_options& o = {}) {
  std::optional<c2d_outcome> out;
  svc.async_send(device_id, m, o, [&](std::error_code ec, c2d_outcome r) {
    INFO(svc.last_error());
    REQUIRE_FALSE(ec);
    out = std::move(r);
  });
  REQUIRE(run_until(io, [&] { return out.has_value(); }));
  return *out;
}

amqp::message with_id(std::string_view body, std::string_view id) {
  amqp::message m{body};
  m.properties.message_id = owned_value(id);
  return m;
}

// Receives feedback until records for every id in `ids` came; returns every record seen,
// keyed by originalMessageId.
std::multimap<std::string, feedback_record> feedback_for(asio::io_context& io, service_client& svc,
                                                         const std::set<std::string>& ids,
                                                         std::chrono::milliseconds limit = 20s) {
  std::multimap<std::string, feedback_record> seen;
  auto all = [&] {
    return std::all_of(ids.begin(), ids.end(), [&](const auto& id) { return seen.contains(id); });
  };
  bool waiting = false;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!all() && std::chrono::steady_clock::now() < deadline) {
    if (!waiting) {
      waiting = true;
      svc.async_receive_feedback([&](std::error_code ec, std::vector<feedback_record> records) {
        INFO(svc.last_error());
        REQUIRE_FALSE(ec);
        for (auto& r : records) {
          seen.emplace(r.original_message_id, r);
        }
        waiting = false;
      });
    }
    io.run_for(10ms);
  }
  // The loop ends as soon as the handler that completed the set ran: no receive is left.
  REQUIRE(all());
  CHECK_FALSE(waiting);
  return seen;
}

// A stand-in for the hub on a plain listener, for what the emulator never sends: SASL PLAIN
// (any password), every link attached, and on a /messages/serviceBound/feedback link the
// messages of `feedback`, in order, as credit comes. What the client settles them with is
// logged: "accepted", "released", "rejected CONDITION". C2D messages are kept in `c2d` and
// accepted, or rejected with the condition their body names after "reject:" ("reject:" alone:
// rejected without an error).
class fake_hub final : public test::raw_node {
public:
  explicit fake_hub(std::vector<std::vector<std::byte>> feedback)
      : feedback_(std::move(feedback)) {}
  std::vector<std::string> outcomes;
  std::vector<amqp::message> c2d;
  std::size_t feedback_sent = 0; // feedback messages sent so far

protected:
  void configure(connection_options& o) override {
    o.container_id = "fake-hub";
    o.sasl.accept_anonymous = false;
    o.sasl.server_mechanisms = "PLAIN";
  }

  void on_attached(amqp::connection& c, const link_attached& la) override {
    if (la.remote.role == role::receiver && la.remote.source &&
        la.remote.source->address == std::optional<std::string_view>(path::feedback)) {
      feedback_link_ = la.link;
    }
    if (la.remote.role == role::sender) {
      (void)c.flow(la.link, 100);
    }
  }

  void on_event(amqp::connection& c, const amqp::event& e) override {
    if (std::get_if<sasl_init_received>(&e) != nullptr) {
      (void)c.sasl_complete(sasl_code::ok);
    } else if (const auto* f = std::get_if<link_flow>(&e)) {
      for (std::uint32_t n = 0; f->link == feedback_link_ && n < f->credit && !feedback_.empty();
           ++n) {
        transfer_options t;
        t.payload = feedback_.front();
        REQUIRE(c.send(feedback_link_, t));
        feedback_.erase(feedback_.begin());
        ++feedback_sent;
      }
    } else if (const auto* d = std::get_if<delivery_received>(&e)) {
      auto m = amqp::message::decode(d->payload);
      REQUIRE(m);
      const std::string body = m->body_text().value_or("");
      c2d.push_back(std::move(*m));
      if (body.starts_with("reject:")) {
        rejected r;
        if (body.size() > 7) {
          r.error = amqp::error{symbol_view{std::string_view(body).substr(7)}, "no", {}};
        }
        REQUIRE(c.settle(d->delivery, r));
      } else {
        REQUIRE(c.settle(d->delivery, accepted{}));
      }
    } else if (const auto* u = std::get_if<delivery_updated>(&e)) {
      if (!u->state) {
        return;
      }
      if (std::holds_alternative<accepted>(*u->state)) {
        outcomes.emplace_back("accepted");
      } else if (std::holds_alternative<released>(*u->state)) {
        outcomes.emplace_back("released");
      } else if (const auto* r = std::get_if<rejected>(&*u->state)) {
        outcomes.push_back("rejected " + std::string(r->error ? r->error->condition.str : "-"));
      }
    }
  }

private:
  std::vector<std::vector<std::byte>> feedback_;
  link_id feedback_link_{};
};

const std::vector<std::string> fast_feedback{"--feedback-window", "0.2"};

// A service client logged in with SASL PLAIN to the stand-in hub listening on `port`.
service_client connect_stand_in(asio::io_context& io, std::uint16_t port,
                                service_client_options o = {}) {
  auto ep = endpoint_from("HostName=hub.azure-devices.net;SharedAccessKeyName=service;"
                          "SharedAccessKey=c2VjcmV0",
                          hub_protocol::amqp);
  REQUIRE(ep);
  ep->options.auth = hub_auth::sasl_plain;
  ep->options.host = "127.0.0.1:" + std::to_string(port);
  service_client svc;
  service_client::async_connect(io, *ep, o, [&](std::error_code ec, service_client c) {
    INFO(c.last_error());
    REQUIRE_FALSE(ec);
    svc = std::move(c);
  });
  REQUIRE(run_until(io, [&] { return bool(svc); }));
  return svc;
}

} // namespace

TEST_CASE("service_client: C2D with each iothub-ack mode; the device completes or rejects; the "
          "feedback records") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = fast_feedback});
  asio::io_context io;
  auto svc = connect_service(io, emu);
  device dev;
  dev.connect(io, emu, "dev-1");

  // Accepted by the device: Success for positive and full only. The first has no message-id:
  // one is generated.
  const c2d_ack modes[] = {c2d_ack::none, c2d_ack::positive, c2d_ack::negative, c2d_ack::full};
  std::vector<std::string> ids;
  for (const auto mode : modes) {
    amqp::message m{"complete me"};
    if (mode != c2d_ack::none) {
      m.properties.message_id = owned_value("a-" + std::string(to_string(mode)));
    }
    auto out = send(io, svc, "dev-1", m, {.ack = mode});
    CHECK(out.accepted());
    CHECK(out.rejection == c2d_rejection::none);
    ids.push_back(out.message_id);
  }
  CHECK(ids[0].size() == 36); // a GUID
  CHECK(ids[0][14] == '4');   // version 4
  CHECK(ids[1] == "a-positive");
  dev.receive(io, 4);
  for (std::size_t i = 0; i < 4; ++i) {
    const auto& m = dev.received[i];
    CHECK(m.properties().to == std::optional<std::string>("/devices/dev-1/messages/devicebound"));
    CHECK(m.properties().message_id.get().get_string() == std::optional<std::string_view>(ids[i]));
    auto ack_value = m.application_properties().get(app_property::ack);
    REQUIRE(ack_value);
    CHECK(ack_value->get_string() == std::optional<std::string_view>(to_string(modes[i])));
    REQUIRE(dev.rx.accept(m));
  }

  // Rejected by the device: Rejected for negative and full only.
  for (const auto mode : modes) {
    (void)send(io, svc, "dev-1", with_id("reject me", "r-" + std::string(to_string(mode))),
               {.ack = mode});
  }
  dev.receive(io, 4);
  for (std::size_t i = 4; i < 8; ++i) {
    REQUIRE(dev.rx.reject(dev.received[i], "amqp:internal-error", "Rejected by application"));
  }

  const auto seen = feedback_for(io, svc, {"a-positive", "a-full", "r-negative", "r-full"});
  std::map<std::string, feedback_status> got;
  for (const auto& [id, r] : seen) {
    CHECK(r.device_id == "dev-1");
    CHECK(r.description == to_string(r.status_code));
    CHECK_FALSE(r.device_generation_id.empty());
    CHECK(r.enqueued_time_utc.ms > 0);
    got[id] = r.status_code;
  }
  CHECK(seen.size() == 4);
  CHECK(got == std::map<std::string, feedback_status>{{"a-positive", feedback_status::success},
                                                      {"a-full", feedback_status::success},
                                                      {"r-negative", feedback_status::rejected},
                                                      {"r-full", feedback_status::rejected}});
  dev.close(io);
  close_service(io, svc);
}

TEST_CASE("service_client: the ack and expiry options replace the message's; a module target") {
  test::emulator_process emu({.devices = {"dev-1"}});
  asio::io_context io;
  auto svc = connect_service(io, emu);
  device dev;
  dev.connect(io, emu, "dev-1");

  amqp::message m = with_id("x", "keep");
  m.application_properties.set(app_property::ack, owned_value("negative"));
  CHECK(send(io, svc, "dev-1", m).accepted()); // no option: the message's own iothub-ack
  const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  CHECK(send(io, svc, "dev-1", m, {.ack = c2d_ack::full, .time_to_live = 30s}).accepted());
  dev.receive(io, 2);
  CHECK(dev.received[0].application_properties().get(app_property::ack)->get_string() ==
        std::optional<std::string_view>("negative"));
  CHECK_FALSE(dev.received[0].properties().absolute_expiry_time);
  CHECK(dev.received[1].application_properties().get(app_property::ack)->get_string() ==
        std::optional<std::string_view>("full"));
  REQUIRE(dev.received[1].properties().absolute_expiry_time);
  const auto expiry = dev.received[1].properties().absolute_expiry_time->ms;
  CHECK(expiry >= before + 30'000);
  CHECK(expiry <= before + 40'000);

  // The longest time to live is clamped to the last timestamp (the hub clamps its queue's
  // expiry further, to its maximum TTL) and does not wrap around into the past.
  CHECK(send(io, svc, "dev-1", with_id("y", "forever"),
             {.time_to_live = std::chrono::milliseconds::max()})
            .accepted());
  dev.receive(io, 1);
  REQUIRE(dev.received[2].properties().absolute_expiry_time);
  CHECK(dev.received[2].properties().absolute_expiry_time->ms ==
        std::numeric_limits<std::int64_t>::max());

  // A module of a registered device that has no such module: the hub refuses it.
  auto out = send(io, svc, "dev-1", m, {.module_id = "mod-1"});
  CHECK(out.rejection == c2d_rejection::device_not_found);
  dev.close(io);
  close_service(io, svc);
}

TEST_CASE("service_client: an unknown device is rejected with amqp:not-found") {
  test::emulator_process emu({.devices = {"dev-1"}});
  asio::io_context io;
  auto svc = connect_service(io, emu);
  auto out = send(io, svc, "no-such-device", with_id("x", "m1"));
  CHECK_FALSE(out.accepted());
  CHECK(out.state == state_kind::rejected);
  CHECK(out.rejection == c2d_rejection::device_not_found);
  CHECK(out.condition == "amqp:not-found");
  CHECK_FALSE(out.description.empty());
  CHECK(out.message_id == "m1");
  // The link goes on: the next message to a known device is enqueued.
  CHECK(send(io, svc, "dev-1", with_id("x", "m2")).accepted());

  // Above the C2D limit of 64 KB.
  const std::vector<std::byte> big(max_c2d_message_size + 1, std::byte{'b'});
  auto large = send(io, svc, "dev-1", amqp::message{std::span<const std::byte>(big)});
  CHECK(large.rejection == c2d_rejection::message_too_large);
  CHECK(large.condition == "amqp:link:message-size-exceeded");
  close_service(io, svc);
}

TEST_CASE("service_client: the 51st message to a device is rejected (queue of 50 full)") {
  test::emulator_process emu({.devices = {"dev-1"}});
  asio::io_context io;
  auto svc = connect_service(io, emu);
  std::vector<c2d_outcome> outs;
  for (int i = 0; i < 51; ++i) {
    svc.async_send("dev-1", with_id("x", "q" + std::to_string(i)), {},
                   [&](std::error_code ec, c2d_outcome o) {
                     REQUIRE_FALSE(ec);
                     outs.push_back(std::move(o));
                   });
  }
  REQUIRE(run_until(io, [&] { return outs.size() == 51; }));
  for (int i = 0; i < 50; ++i) {
    CHECK(outs[static_cast<std::size_t>(i)].accepted());
  }
  CHECK(outs[50].rejection == c2d_rejection::queue_full);
  CHECK(outs[50].condition == "amqp:resource-limit-exceeded");
  CHECK(outs[50].message_id == "q50");

  // The device completes one: there is room for one more.
  device dev;
  dev.connect(io, emu, "dev-1");
  dev.receive(io, 1);
  REQUIRE(dev.rx.accept(dev.received[0]));
  dev.close(io);
  CHECK(send(io, svc, "dev-1", with_id("x", "q51")).accepted());
  CHECK(send(io, svc, "dev-1", with_id("x", "q52")).rejection == c2d_rejection::queue_full);
  close_service(io, svc);
}

TEST_CASE("service_client: a message that expires before the device takes it: feedback "
          "Expired") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = fast_feedback});
  asio::io_context io;
  auto svc = connect_service(io, emu);
  CHECK(send(io, svc, "dev-1", with_id("late", "exp-1"),
             {.ack = c2d_ack::negative, .time_to_live = 300ms})
            .accepted());
  CHECK(send(io, svc, "dev-1", with_id("on time", "exp-2"), {.ack = c2d_ack::full}).accepted());
  const auto seen = feedback_for(io, svc, {"exp-1"});
  REQUIRE(seen.count("exp-1") == 1);
  CHECK(seen.find("exp-1")->second.status_code == feedback_status::expired);
  CHECK(seen.find("exp-1")->second.device_id == "dev-1");
  CHECK_FALSE(seen.contains("exp-2"));
  close_service(io, svc);
}

TEST_CASE("service_client: a C2D message the device abandons 10 times: feedback "
          "DeliveryCountExceeded") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = fast_feedback});
  asio::io_context io;
  auto svc = connect_service(io, emu);
  device dev;
  dev.connect(io, emu, "dev-1");
  CHECK(send(io, svc, "dev-1", with_id("x", "dc-1"), {.ack = c2d_ack::negative}).accepted());
  for (std::size_t i = 0; i < 10; ++i) {
    dev.receive(io, 1);
    CHECK(dev.received[i].properties().message_id.get().get_string() ==
          std::optional<std::string_view>("dc-1"));
    REQUIRE(dev.rx.release(dev.received[i]));
  }
  const auto seen = feedback_for(io, svc, {"dc-1"});
  REQUIRE(seen.count("dc-1") == 1);
  CHECK(seen.find("dc-1")->second.status_code == feedback_status::delivery_count_exceeded);
  CHECK(seen.find("dc-1")->second.description == "DeliveryCountExceeded");
  dev.close(io);
  close_service(io, svc);
}

TEST_CASE("service_client: an abandoned feedback message comes again; completed, it does not") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = fast_feedback});
  asio::io_context io;
  auto svc = connect_service(io, emu);
  device dev;
  dev.connect(io, emu, "dev-1");
  CHECK(send(io, svc, "dev-1", with_id("x", "ab-1"), {.ack = c2d_ack::positive}).accepted());
  dev.receive(io, 1);
  REQUIRE(dev.rx.accept(dev.received[0]));

  std::vector<std::vector<feedback_record>> batches;
  auto handle = [&](feedback_action a) {
    const std::size_t before = batches.size();
    svc.async_handle_feedback([&, a](std::error_code ec, std::vector<feedback_record> r) {
      REQUIRE_FALSE(ec);
      batches.push_back(std::move(r));
      return a;
    });
    REQUIRE(run_until(io, [&] { return batches.size() > before; }));
  };
  handle(feedback_action::abandon);
  handle(feedback_action::complete);
  REQUIRE(batches.size() == 2);
  CHECK(batches[0] == batches[1]);
  REQUIRE(batches[0].size() == 1);
  CHECK(batches[0][0].original_message_id == "ab-1");
  CHECK(batches[0][0].status_code == feedback_status::success);

  // Completed: nothing comes within a few feedback windows, while a new record does.
  CHECK(send(io, svc, "dev-1", with_id("y", "ab-2"), {.ack = c2d_ack::positive}).accepted());
  dev.receive(io, 1);
  REQUIRE(dev.rx.accept(dev.received[1]));
  const auto seen = feedback_for(io, svc, {"ab-2"});
  CHECK_FALSE(seen.contains("ab-1"));
  dev.close(io);
  close_service(io, svc);
}

TEST_CASE("service_client: bad arguments fail at once, with a reason") {
  test::emulator_process emu({.devices = {"dev-1"}});
  asio::io_context io;
  auto svc = connect_service(io, emu);
  auto fails = [&](std::string_view id, const c2d_send_options& o) {
    std::optional<std::error_code> got;
    svc.async_send(id, amqp::message{"x"}, o, [&](std::error_code ec, c2d_outcome) { got = ec; });
    REQUIRE(run_until(io, [&] { return got.has_value(); }));
    CHECK(*got == amqp::errc::invalid_argument);
    CHECK_FALSE(svc.last_error().empty());
  };
  fails("", {});
  fails("has space", {});
  fails(std::string(129, 'd'), {});
  fails("dev-1", {.module_id = "bad/module"});
  fails("dev-1", {.time_to_live = 0ms});

  // A device connection string is not a service one.
  std::optional<std::error_code> got;
  service_client::async_connect(io, test::endpoint(emu, emu.devices.at("dev-1")), {},
                                [&](std::error_code ec, service_client c) {
                                  got = ec;
                                  CHECK_FALSE(c);
                                  CHECK(c.last_error().find("service") != std::string::npos);
                                });
  REQUIRE(run_until(io, [&] { return got.has_value(); }));
  CHECK(*got == amqp::errc::invalid_argument);
  for (const service_client_options& zero :
       {service_client_options{.feedback_credit = 0}, service_client_options{.max_in_flight = 0}}) {
    got.reset();
    service_client::async_connect(io, test::endpoint(emu, emu.service), zero,
                                  [&](std::error_code ec, service_client c) {
                                    got = ec;
                                    CHECK(c.last_error().find("at least 1") != std::string::npos);
                                  });
    REQUIRE(run_until(io, [&] { return got.has_value(); }));
    CHECK(*got == amqp::errc::invalid_argument);
  }

  // max_in_flight: the sends beyond it fail at once, the others are enqueued.
  {
    auto small = connect_service(io, emu, {.max_in_flight = 2});
    std::vector<std::error_code> ecs;
    for (int i = 0; i < 3; ++i) {
      small.async_send("dev-1", amqp::message{"x"}, {},
                       [&](std::error_code ec, c2d_outcome) { ecs.push_back(ec); });
    }
    REQUIRE(run_until(io, [&] { return ecs.size() == 3; }));
    CHECK(std::count(ecs.begin(), ecs.end(), std::error_code{}) == 2);
    CHECK(std::count(ecs.begin(), ecs.end(), make_error_code(amqp::errc::resource_limit)) == 1);
    close_service(io, small);
  }

  // Closed: sends and receives fail with invalid_state.
  bool closed = false;
  svc.async_close([&](std::error_code ec) {
    CHECK_FALSE(ec);
    closed = true;
  });
  REQUIRE(run_until(io, [&] { return closed; }));
  std::optional<std::error_code> send_ec;
  std::optional<std::error_code> recv_ec;
  svc.async_send("dev-1", amqp::message{"x"}, {},
                 [&](std::error_code ec, c2d_outcome) { send_ec = ec; });
  svc.async_receive_feedback(
      [&](std::error_code ec, std::vector<feedback_record>) { recv_ec = ec; });
  REQUIRE(run_until(io, [&] { return send_ec && recv_ec; }));
  CHECK(*send_ec == amqp::errc::invalid_state);
  CHECK(*recv_ec == amqp::errc::invalid_state);
}

TEST_CASE("blocking_service_client: connect, send, receive_feedback with a timeout, close") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = fast_feedback});
  std::string why;
  auto svc = blocking_service_client::connect(test::endpoint(emu, emu.service), {}, &why);
  INFO(why);
  REQUIRE(svc);

  // Nothing yet: the timeout.
  auto none = svc->receive_feedback(100ms);
  REQUIRE_FALSE(none);
  CHECK(none.error() == amqp::errc::timeout);

  auto out = svc->send("dev-1", with_id("x", "b-1"), {.ack = c2d_ack::full});
  REQUIRE(out);
  CHECK(out->accepted());
  CHECK(out->message_id == "b-1");
  auto missing = svc->send("nobody", with_id("x", "b-0"));
  REQUIRE(missing);
  CHECK(missing->rejection == c2d_rejection::device_not_found);

  asio::io_context io;
  device dev;
  dev.connect(io, emu, "dev-1");
  dev.receive(io, 1);
  REQUIRE(dev.rx.accept(dev.received[0]));
  // The records are batched for 0.2 s: this receive gives up before they come, and the
  // batch waits for the next receive (it is neither lost nor abandoned).
  auto early = svc->receive_feedback(1ms);
  REQUIRE_FALSE(early);
  CHECK(early.error() == amqp::errc::timeout);
  auto records = svc->receive_feedback(10s);
  INFO(svc->last_error());
  REQUIRE(records);
  REQUIRE(records->size() == 1);
  CHECK((*records)[0].original_message_id == "b-1");
  CHECK((*records)[0].status_code == feedback_status::success);
  CHECK((*records)[0].device_id == "dev-1");
  // Completed: it does not come again.
  auto again = svc->receive_feedback(600ms);
  REQUIRE_FALSE(again);
  CHECK(again.error() == amqp::errc::timeout);
  dev.close(io);

  CHECK(svc->reconnects() == 0);
  REQUIRE(svc->close());
  CHECK(svc->close().error() == amqp::errc::invalid_state);
  CHECK(svc->send("dev-1", amqp::message{"x"}).error() == amqp::errc::invalid_state);
  CHECK(svc->receive_feedback(1s).error() == amqp::errc::invalid_state);

  blocking_service_client empty;
  CHECK(empty.send("dev-1", amqp::message{"x"}).error() == amqp::errc::invalid_state);
  CHECK(empty.receive_feedback(1s).error() == amqp::errc::invalid_state);
  CHECK(empty.close().error() == amqp::errc::invalid_state);
}

TEST_CASE("blocking_service_client: connect failures say why") {
  test::emulator_process emu({.devices = {"dev-1"}});
  std::string why;
  auto dev =
      blocking_service_client::connect(test::endpoint(emu, emu.devices.at("dev-1")), {}, &why);
  REQUIRE_FALSE(dev);
  CHECK(dev.error() == amqp::errc::invalid_argument);
  CHECK(why.find("service") != std::string::npos);

  why.clear();
  auto text = blocking_service_client::connect("HostName=h.azure-devices.net;nonsense", {}, &why);
  REQUIRE_FALSE(text);
  CHECK(text.error() == amqp::errc::invalid_argument);
  CHECK(why.find("invalid connection string") != std::string::npos);

  // The policy's name with a key that is not its own: the hub refuses the token.
  auto ep = test::endpoint(emu, emu.service);
  ep.identity = token_source::from_key(
      ep.identity->audience(),
      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", ep.parsed.shared_access_key_name);
  why.clear();
  auto refused = blocking_service_client::connect(ep, {}, &why);
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == amqp::errc::unauthorized);
  CHECK_FALSE(why.empty());
}

TEST_CASE("service_client: the emulator killed and restarted: sends go on, the waiting feedback "
          "receive resumes on its own") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("svc-client-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  test::emulator_process emu({.devices = {"dev-1"}, .args = fast_feedback, .state = dir.string()});
  asio::io_context io;
  auto ep = test::endpoint(emu, emu.service);
  ep.options.reconnect.initial_delay = 100ms;
  ep.options.reconnect.max_delay = 500ms;
  service_client svc;
  service_client::async_connect(io, ep, {}, [&](std::error_code ec, service_client c) {
    INFO(c.last_error());
    REQUIRE_FALSE(ec);
    svc = std::move(c);
  });
  REQUIRE(run_until(io, [&] { return bool(svc); }));

  // One receive loop for the whole test: it is never called again after an error.
  std::vector<feedback_record> records;
  std::vector<std::error_code> errors;
  std::function<void()> receive = [&] {
    svc.async_receive_feedback([&](std::error_code ec, std::vector<feedback_record> r) {
      if (ec) {
        errors.push_back(ec);
        return;
      }
      records.insert(records.end(), r.begin(), r.end());
      receive();
    });
  };
  receive();
  auto has = [&](std::string_view id) {
    return std::any_of(records.begin(), records.end(),
                       [&](const feedback_record& r) { return r.original_message_id == id; });
  };

  {
    device dev;
    dev.connect(io, emu, "dev-1");
    CHECK(send(io, svc, "dev-1", with_id("x", "rc-1"), {.ack = c2d_ack::full}).accepted());
    dev.receive(io, 1);
    REQUIRE(dev.rx.accept(dev.received[0]));
    REQUIRE(run_until(io, [&] { return has("rc-1"); }));
    dev.close(io);
  }

  emu.kill();
  // Sent while the hub is down: it waits, then goes on the new connection.
  std::optional<c2d_outcome> during;
  svc.async_send("dev-1", with_id("y", "rc-2"), {.ack = c2d_ack::full},
                 [&](std::error_code ec, c2d_outcome o) {
                   INFO(svc.last_error());
                   CHECK_FALSE(ec);
                   during = std::move(o);
                 });
  io.run_for(300ms);
  CHECK_FALSE(during);
  emu.start();
  REQUIRE(run_until(
      io, [&] { return during.has_value(); }, 30s));
  CHECK(during->accepted());
  CHECK(svc.connection().reconnects() >= 1);

  device dev;
  dev.connect(io, emu, "dev-1");
  dev.receive(io, 1);
  CHECK(dev.received[0].properties().message_id.get().get_string() ==
        std::optional<std::string_view>("rc-2"));
  REQUIRE(dev.rx.accept(dev.received[0]));
  REQUIRE(run_until(io, [&] { return has("rc-2") || !errors.empty(); }));
  CHECK(errors.empty());
  CHECK(has("rc-2"));
  dev.close(io);
  bool closed = false;
  svc.async_close([&](std::error_code) { closed = true; });
  REQUIRE(run_until(io, [&] { return closed; }));
  emu.stop(SIGTERM);
  std::filesystem::remove_all(dir);
}

TEST_CASE("service_client: a feedback message that does not parse is rejected and reported; the "
          "next one is handed out") {
  auto bytes = [](const amqp::message& m) {
    auto b = m.encode();
    REQUIRE(b);
    return *b;
  };
  amqp::message wrong_type{R"([{"deviceId":"d1"}])"};
  wrong_type.properties.content_type = "text/plain";
  amqp::message bad_json = build_feedback_message({}, "hub", amqp::timestamp{0});
  bad_json.set_body(std::string_view("[{\"deviceId\": 1}]"));
  feedback_record rec;
  rec.original_message_id = "m-1";
  rec.device_id = "d1";
  rec.status_code = feedback_status::rejected;
  rec.description = "Rejected";
  rec.enqueued_time_utc = amqp::timestamp{1'700'000'000'000};
  const feedback_record records[1] = {rec};
  fake_hub hub({bytes(wrong_type), bytes(bad_json),
                bytes(build_feedback_message(records, "hub", amqp::timestamp{0}))});
  asio::io_context io;
  std::string why;
  auto l = transport::listener::listen(io, "amqp://127.0.0.1:0", {}, hub, &why);
  REQUIRE_MESSAGE(l, why);

  auto svc = connect_stand_in(io, l->port());

  std::vector<std::error_code> errors;
  std::vector<std::string> texts;
  std::vector<feedback_record> got;
  for (int i = 0; i < 3; ++i) {
    bool done = false;
    svc.async_receive_feedback([&](std::error_code ec, std::vector<feedback_record> r) {
      errors.push_back(ec);
      texts.push_back(svc.last_error());
      got = std::move(r);
      done = true;
    });
    REQUIRE(run_until(io, [&] { return done; }));
  }
  REQUIRE(run_until(io, [&] { return hub.outcomes.size() == 3; }));
  CHECK(errors[0] == iothub::errc::invalid_value);
  CHECK(texts[0].find("content") != std::string::npos);
  CHECK(errors[1] == iothub::errc::invalid_value);
  CHECK(texts[1].find("feedback message was rejected") != std::string::npos);
  CHECK_FALSE(errors[2]);
  CHECK(got == std::vector<feedback_record>{rec});
  CHECK(hub.outcomes == std::vector<std::string>{"rejected amqp:decode-error",
                                                 "rejected amqp:decode-error", "accepted"});
  bool closed = false;
  svc.async_close([&](std::error_code) { closed = true; });
  REQUIRE(run_until(io, [&] { return closed; }));
}

TEST_CASE("service_client: the address of a module and of ids to encode; each rejection "
          "condition") {
  fake_hub hub({});
  asio::io_context io;
  std::string why;
  auto l = transport::listener::listen(io, "amqp://127.0.0.1:0", {}, hub, &why);
  REQUIRE_MESSAGE(l, why);
  auto svc = connect_stand_in(io, l->port());

  CHECK(send(io, svc, "dev-1", amqp::message{"x"}, {.module_id = "mod-1"}).accepted());
  CHECK(send(io, svc, "d@v$1", amqp::message{"x"}, {.module_id = "m#1"}).accepted());
  REQUIRE(hub.c2d.size() == 2);
  CHECK(hub.c2d[0].properties.to ==
        std::optional<std::string>("/devices/dev-1/modules/mod-1/messages/devicebound"));
  CHECK(hub.c2d[1].properties.to ==
        std::optional<std::string>("/devices/d%40v%241/modules/m%231/messages/devicebound"));
  // No option: no iothub-ack is added.
  CHECK_FALSE(hub.c2d[0].application_properties.contains(app_property::ack));

  const std::pair<std::string_view, c2d_rejection> cases[] = {
      {"amqp:not-found", c2d_rejection::device_not_found},
      {"amqp:resource-limit-exceeded", c2d_rejection::queue_full},
      {"amqp:link:message-size-exceeded", c2d_rejection::message_too_large},
      {"com.microsoft:device-container-throttled", c2d_rejection::throttled},
      {"com.microsoft:quota-exceeded", c2d_rejection::quota_exceeded},
      {"com.microsoft:argument-error", c2d_rejection::invalid_message},
      {"com.microsoft:argument-out-of-range", c2d_rejection::invalid_message},
      {"amqp:decode-error", c2d_rejection::invalid_message},
      {"com.microsoft:iot-hub-suspended", c2d_rejection::other},
      {"", c2d_rejection::other},
  };
  for (const auto& [condition, rejection] : cases) {
    INFO(condition);
    auto out = send(io, svc, "dev-1", amqp::message{"reject:" + std::string(condition)});
    CHECK(out.state == state_kind::rejected);
    CHECK(out.rejection == rejection);
    CHECK(out.condition == condition);
    CHECK(rejection_of(condition) == (condition.empty() ? c2d_rejection::none : rejection));
  }
  bool closed = false;
  svc.async_close([&](std::error_code) { closed = true; });
  REQUIRE(run_until(io, [&] { return closed; }));
}

TEST_CASE("service_client: completion tokens (a coroutine): connect, send, feedback, close") {
  test::emulator_process emu({.devices = {"dev-1"}, .args = fast_feedback});
  asio::io_context io;
  device dev;
  dev.connect(io, emu, "dev-1");
  const auto ep = test::endpoint(emu, emu.service);
  const service_client_options options;
  const amqp::message m = with_id("co", "co-1");
  const c2d_send_options full{.ack = c2d_ack::full};
  std::optional<c2d_outcome> outcome;
  std::vector<feedback_record> records;
  bool closed = false;
  std::optional<std::exception_ptr> finished;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto svc = co_await async_connect(io, ep, options, asio::use_awaitable);
        outcome = co_await async_send(svc, "dev-1", m, full, asio::use_awaitable);
        records = co_await async_receive_feedback(svc, asio::use_awaitable);
        co_await async_close(svc, asio::use_awaitable);
        closed = true;
      },
      [&](std::exception_ptr e) { finished = e; });
  REQUIRE(run_until(io, [&] { return outcome.has_value(); }));
  CHECK(outcome->accepted());
  dev.receive(io, 1);
  REQUIRE(dev.rx.accept(dev.received[0]));
  REQUIRE(run_until(io, [&] { return finished.has_value(); }));
  CHECK(*finished == nullptr); // no error thrown
  REQUIRE(records.size() == 1);
  CHECK(records[0].original_message_id == "co-1");
  CHECK(records[0].status_code == feedback_status::success);
  CHECK(closed);
  dev.close(io);
}

TEST_CASE("service_client: feedback_credit bounds the feedback messages sent ahead") {
  feedback_record rec;
  rec.device_id = "d1";
  rec.enqueued_time_utc = amqp::timestamp{1'700'000'000'000};
  std::vector<std::vector<std::byte>> batches;
  for (int i = 0; i < 4; ++i) {
    rec.original_message_id = "m-" + std::to_string(i);
    const feedback_record one[1] = {rec};
    auto b = build_feedback_message(one, "hub", amqp::timestamp{0}).encode();
    REQUIRE(b);
    batches.push_back(std::move(*b));
  }
  fake_hub hub(std::move(batches));
  asio::io_context io;
  std::string why;
  auto l = transport::listener::listen(io, "amqp://127.0.0.1:0", {}, hub, &why);
  REQUIRE_MESSAGE(l, why);
  auto svc = connect_stand_in(io, l->port(), {.feedback_credit = 1});
  std::vector<std::string> got;
  svc.async_receive_feedback([&](std::error_code ec, std::vector<feedback_record> r) {
    REQUIRE_FALSE(ec);
    REQUIRE(r.size() == 1);
    got.push_back(r[0].original_message_id);
  });
  REQUIRE(run_until(io, [&] { return got.size() == 1; }));
  io.run_for(200ms); // time for more to come, if the credit allowed it
  // The one handed out and the one its credit was given back for; the rest wait at the hub.
  CHECK(hub.feedback_sent == 2);
  CHECK(got == std::vector<std::string>{"m-0"});
  close_service(io, svc);
}
