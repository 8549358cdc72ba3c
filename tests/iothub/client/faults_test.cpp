// The device client under the emulator's fault injection (doc §9.4: the AzIoTHub_Fault*
// properties Microsoft's E2E tests put on a telemetry message): the hub breaks the TCP
// connection or closes the AMQP connection a second later; the client reconnects on its own,
// logs in again and every later message is accepted. The hub ends the session, or detaches
// the telemetry, C2D or $cbs links (or all the device's links, as an auth error): the
// transport attaches them again (client.hpp "Recovery"), the tokens are put again after a
// $cbs link goes, no send fails and C2D goes on.
#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include <asio/io_context.hpp>
#include <doctest/doctest.h>

#include "amqp/iothub/device_client.hpp"
#include "amqp/iothub/messages.hpp"
#include "amqp/iothub/service_client.hpp"
#include "iothub/client/emulator_process.hpp"

using namespace amqp;
using namespace amqp::iothub;
using namespace std::chrono_literals;

namespace {

bool run_until(asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds limit = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    if (io.stopped()) {
      io.restart();
    }
    io.run_for(10ms);
  }
  return done();
}

} // namespace

TEST_CASE("iothub client: fault injection KillTcp and KillAmqpConnection, the device goes on") {
  for (const std::string_view kind : {fault::kill_tcp, fault::kill_amqp_connection}) {
    CAPTURE(kind);
    test::emulator_process emu({.devices = {"dev-1"}});
    asio::io_context io;
    std::string why;
    auto ep = endpoint_from(emu.devices.at("dev-1"), hub_protocol::amqps, &why);
    REQUIRE_MESSAGE(ep, why);
    ep->options.tls.ca_file = emu.ca;
    ep->options.reconnect.initial_delay = 100ms;
    ep->options.reconnect.max_delay = 500ms;
    device_client_options o;
    o.receive_c2d = false;
    std::optional<std::error_code> connected;
    device_client d;
    device_client::async_connect(io, *ep, o, [&](std::error_code ec, device_client c) {
      connected = ec;
      d = std::move(c);
    });
    REQUIRE(run_until(io, [&] { return connected.has_value(); }));
    REQUIRE_MESSAGE(!*connected, d.last_error());

    amqp::message trigger("fault");
    trigger.application_properties.set(fault::operation_type, owned_value(kind));
    trigger.application_properties.set(fault::close_reason, owned_value("boom"));
    trigger.application_properties.set(fault::delay_in_secs, owned_value("1"));
    std::optional<event_outcome> first;
    d.async_send_event(trigger, [&](std::error_code ec, const event_outcome& out) {
      CHECK_FALSE(ec);
      first = out;
    });
    REQUIRE(run_until(io, [&] { return first.has_value(); }));
    CHECK(first->state == state_kind::accepted); // accepted as usual; the fault follows

    // Four seconds of sends, one every 100 ms, across the fault: every one accepted.
    std::size_t accepted = 0;
    std::size_t failed = 0;
    const auto end = std::chrono::steady_clock::now() + 4s;
    while (std::chrono::steady_clock::now() < end) {
      d.async_send_event(amqp::message("after"), [&](std::error_code ec, const event_outcome& out) {
        (!ec && out.state == state_kind::accepted ? accepted : failed) += 1;
        if (ec || out.state != state_kind::accepted) {
          MESSAGE("failed: " << ec.message() << " state " << amqp::name(out.state) << " "
                             << out.condition << " " << d.last_error());
        }
      });
      io.run_for(100ms);
    }
    REQUIRE(run_until(io, [&] { return accepted + failed >= 40; }));
    CHECK(failed == 0);
    CHECK(d.connection().reconnects() >= 1); // the fault happened, and was healed
    bool closed = false;
    d.async_close([&](std::error_code) { closed = true; });
    run_until(io, [&] { return closed; });
  }
}

TEST_CASE("iothub client: fault injection on the session and on single links (KillAmqpSession, "
          "KillAmqpD2CLink, KillAmqpC2DLink, KillAmqpCBSLinkReq/Resp, InvokeAuthError): "
          "every send accepted, C2D goes on, the tokens are put again") {
  test::emulator_process emu({.devices = {"dev-1"}});
  asio::io_context io;
  std::string why;
  auto sep = endpoint_from(emu.service, hub_protocol::amqps, &why);
  REQUIRE_MESSAGE(sep, why);
  sep->options.tls.ca_file = emu.ca;
  service_client svc;
  bool svc_done = false;
  service_client::async_connect(io, *sep, {}, [&](std::error_code ec, service_client c) {
    INFO(c.last_error());
    REQUIRE_FALSE(ec);
    svc = std::move(c);
    svc_done = true;
  });
  REQUIRE(run_until(io, [&] { return svc_done; }));

  int round = 0;
  for (const std::string_view kind :
       {fault::kill_amqp_session, fault::kill_amqp_d2c_link, fault::kill_amqp_c2d_link,
        fault::kill_amqp_cbs_link_req, fault::kill_amqp_cbs_link_resp, fault::invoke_auth_error}) {
    CAPTURE(kind);
    ++round;
    auto ep = endpoint_from(emu.devices.at("dev-1"), hub_protocol::amqps, &why);
    REQUIRE_MESSAGE(ep, why);
    ep->options.tls.ca_file = emu.ca;
    ep->options.reconnect.initial_delay = 100ms;
    ep->options.reconnect.max_delay = 500ms;
    std::optional<std::error_code> connected;
    device_client d;
    device_client::async_connect(io, *ep, {}, [&](std::error_code ec, device_client c) {
      connected = ec;
      d = std::move(c);
    });
    REQUIRE(run_until(io, [&] { return connected.has_value(); }));
    REQUIRE_MESSAGE(!*connected, d.last_error());
    std::vector<std::string> identity_errors;
    d.connection().on_identity_error([&](const std::string& audience, std::error_code ec) {
      identity_errors.push_back(audience + ": " + ec.message());
    });
    const auto puts_before = d.connection().tokens_put();

    amqp::message trigger("fault");
    trigger.application_properties.set(fault::operation_type, owned_value(kind));
    trigger.application_properties.set(fault::close_reason, owned_value("boom"));
    trigger.application_properties.set(fault::delay_in_secs, owned_value("1"));
    std::optional<event_outcome> first;
    d.async_send_event(trigger, [&](std::error_code ec, const event_outcome& out) {
      CHECK_FALSE(ec);
      first = out;
    });
    REQUIRE(run_until(io, [&] { return first.has_value(); }));
    CHECK(first->state == state_kind::accepted);

    // 2.5 s of sends, one every 100 ms, across the fault (1 s after the trigger): every one
    // accepted, those in flight when the link went sent again on the new one.
    std::size_t accepted = 0;
    std::size_t failed = 0;
    std::size_t sent = 0;
    const auto end = std::chrono::steady_clock::now() + 2500ms;
    while (std::chrono::steady_clock::now() < end) {
      ++sent;
      d.async_send_event(amqp::message("after"), [&](std::error_code ec, const event_outcome& out) {
        (!ec && out.state == state_kind::accepted ? accepted : failed) += 1;
        if (ec || out.state != state_kind::accepted) {
          MESSAGE("failed: " << ec.message() << " state " << amqp::name(out.state) << " "
                             << out.condition << " " << d.last_error());
        }
      });
      io.run_for(100ms);
    }
    REQUIRE(run_until(io, [&] { return accepted + failed >= sent; }));
    CHECK(failed == 0);
    auto& conn = d.connection();
    INFO("reconnects " << conn.reconnects() << " relinks " << conn.client().relinks() << " puts "
                       << conn.tokens_put() - puts_before << " last error "
                       << conn.client().last_error());
    if (kind == fault::kill_amqp_session) {
      CHECK(conn.reconnects() >= 1);
    } else {
      CHECK(conn.reconnects() == 0); // the connection stayed: the link was attached again
      CHECK(conn.client().relinks() >= 1);
    }
    if (kind == fault::kill_amqp_session || kind == fault::kill_amqp_cbs_link_req ||
        kind == fault::kill_amqp_cbs_link_resp) {
      CHECK(conn.tokens_put() > puts_before); // the tokens put again on the new $cbs links
    }
    CHECK(identity_errors.empty());

    // C2D after the fault reaches the device.
    const std::string body = "c2d after " + std::string(kind);
    std::optional<c2d_outcome> queued;
    svc.async_send("dev-1", amqp::message(body), {}, [&](std::error_code ec, c2d_outcome out) {
      CHECK_FALSE(ec);
      queued = std::move(out);
    });
    std::optional<std::string> got;
    std::function<void()> receive_one = [&] {
      d.async_receive([&](std::error_code ec, c2d_message m) {
        if (ec) {
          got = "error: " + ec.message() + " " + d.last_error();
          return;
        }
        (void)d.complete(m);
        if (m.body_text() == body) {
          got = body;
        } else {
          receive_one(); // one from an earlier round, delivered again
        }
      });
    };
    receive_one();
    REQUIRE(run_until(
        io, [&] { return queued.has_value() && got.has_value(); }, 10s));
    CHECK(queued->accepted());
    CHECK(*got == body);
    bool closed = false;
    d.async_close([&](std::error_code) { closed = true; });
    run_until(io, [&] { return closed; });
  }
  CHECK(round == 6);
  bool closed = false;
  svc.async_close([&](std::error_code) { closed = true; });
  run_until(io, [&] { return closed; });
}
