// The device client under the emulator's fault injection (doc §9.4: the AzIoTHub_Fault*
// properties Microsoft's E2E tests put on a telemetry message): the hub breaks the TCP
// connection or closes the AMQP connection a second later; the client reconnects on its own,
// logs in again and every later message is accepted.
#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include <asio/io_context.hpp>
#include <doctest/doctest.h>

#include "amqp/iothub/device_client.hpp"
#include "amqp/iothub/messages.hpp"
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
    std::size_t sent = 0;
    std::size_t accepted = 0;
    std::size_t failed = 0;
    const auto end = std::chrono::steady_clock::now() + 4s;
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
    // (A loaded machine makes fewer than 40 turns of 100 ms in 4 s: wait for those sent.)
    REQUIRE(run_until(io, [&] { return accepted + failed == sent; }));
    CHECK(sent >= 10);
    CHECK(failed == 0);
    CHECK(d.connection().reconnects() >= 1); // the fault happened, and was healed
    bool closed = false;
    d.async_close([&](std::error_code) { closed = true; });
    run_until(io, [&] { return closed; });
  }
}
