// Helpers shared by the IoT Hub client tests against the real emulator
// (emulator_process.hpp): running an io_context until a condition holds, a connection
// string's endpoint trusting the emulator's CA, and connecting a device client.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include <asio/io_context.hpp>
#include <doctest/doctest.h>

#include "amqp/iothub/device_client.hpp"
#include "amqp/iothub/hub_connection.hpp"
#include "iothub/client/emulator_process.hpp"

namespace amqp::test {

// Runs `io` in 10 ms steps until `done()` or `limit` has passed (restarting it when it ran
// out of work, e.g. after a close, so that what comes next runs); done() at the end.
inline bool run_until(asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    if (io.stopped()) {
      io.restart();
    }
    io.run_for(std::chrono::milliseconds(10));
  }
  return done();
}

// The endpoint of connection string `cs` over `p`, trusting the emulator's CA.
inline iothub::hub_endpoint endpoint(const emulator_process& emu, const std::string& cs,
                                     iothub::hub_protocol p = iothub::hub_protocol::amqps) {
  std::string why;
  auto e = iothub::endpoint_from(cs, p, &why);
  REQUIRE_MESSAGE(e, why);
  e->options.tls.ca_file = emu.ca;
  return std::move(*e);
}

// A device client's connect: its result and the client.
struct opened {
  std::optional<std::error_code> ec;
  iothub::device_client client;
};

inline opened connect_device(asio::io_context& io, iothub::hub_endpoint ep,
                             iothub::device_client_options o = {}) {
  opened r;
  iothub::device_client::async_connect(io, std::move(ep), std::move(o),
                                       [&](std::error_code ec, iothub::device_client c) {
                                         r.ec = ec;
                                         r.client = std::move(c);
                                       });
  REQUIRE(run_until(
      io, [&] { return r.ec.has_value(); }, std::chrono::seconds(30)));
  return r;
}

} // namespace amqp::test
