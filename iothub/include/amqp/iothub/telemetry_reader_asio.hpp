// Asio completion tokens for the telemetry reader (telemetry_reader.hpp): each operation as an
// asio::async_initiate, so that asio::use_awaitable (C++20 coroutines), asio::use_future,
// asio::deferred or a plain handler all work. Opt-in, as amqp/transport/asio.hpp (whose
// notes apply: standalone Asio on the include path; with GCC 12, pass options as named
// variables, not temporaries, in a co_await expression).
//
//   asio::co_spawn(io, [&]() -> asio::awaitable<void> {
//     auto r = co_await amqp::iothub::async_connect(io, cs, options, asio::use_awaitable);
//     co_await amqp::iothub::async_open_all(r, start, asio::use_awaitable);
//     auto event = co_await amqp::iothub::async_receive(r, asio::use_awaitable);
//   }, asio::detached);
#pragma once

#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <asio/async_result.hpp>
#include <asio/io_context.hpp>

#include "amqp/iothub/telemetry_reader.hpp"
#include "amqp/transport/asio.hpp"

namespace amqp::iothub {

// telemetry_reader::async_connect.
template <typename Token>
auto async_connect(asio::io_context& io, std::string_view connection_string,
                   telemetry_reader_options options, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, telemetry_reader)>(
      [&io, cs = std::string(connection_string), o = std::move(options)](auto handler) mutable {
        telemetry_reader::async_connect(io, cs, std::move(o),
                                        transport::detail::shared_handler(std::move(handler)));
      },
      token);
}

// telemetry_reader::async_get_eventhub_info.
template <typename Token> auto async_get_eventhub_info(telemetry_reader& r, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, eventhub_info)>(
      [&r](auto handler) {
        r.async_get_eventhub_info(transport::detail::shared_handler(std::move(handler)));
      },
      token);
}

// telemetry_reader::async_get_partition_info.
template <typename Token>
auto async_get_partition_info(telemetry_reader& r, std::string partition, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, partition_info)>(
      [&r, p = std::move(partition)](auto handler) mutable {
        r.async_get_partition_info(std::move(p),
                                   transport::detail::shared_handler(std::move(handler)));
      },
      token);
}

// telemetry_reader::async_open_partition.
template <typename Token>
auto async_open_partition(telemetry_reader& r, std::string partition, event_position start,
                          Token&& token) {
  return asio::async_initiate<Token, void(std::error_code)>(
      [&r, p = std::move(partition), s = std::move(start)](auto handler) mutable {
        r.async_open_partition(std::move(p), std::move(s),
                               transport::detail::shared_handler(std::move(handler)));
      },
      token);
}

// telemetry_reader::async_open_all.
template <typename Token>
auto async_open_all(telemetry_reader& r, event_position start, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code)>(
      [&r, s = std::move(start)](auto handler) mutable {
        r.async_open_all(std::move(s), transport::detail::shared_handler(std::move(handler)));
      },
      token);
}

// telemetry_reader::async_receive.
template <typename Token> auto async_receive(telemetry_reader& r, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, telemetry_event)>(
      [&r](auto handler) {
        r.async_receive(transport::detail::shared_handler(std::move(handler)));
      },
      token);
}

// telemetry_reader::async_close.
template <typename Token> auto async_close(telemetry_reader& r, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code)>(
      [&r](auto handler) { r.async_close(transport::detail::shared_handler(std::move(handler))); },
      token);
}

} // namespace amqp::iothub
