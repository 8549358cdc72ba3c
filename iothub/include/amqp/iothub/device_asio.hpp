// Asio completion tokens for the device client (device_client.hpp), as
// amqp/transport/asio.hpp does for the transport: every operation as an asio::async_initiate,
// so that asio::use_awaitable (C++20 coroutines), asio::use_future, asio::deferred or a plain
// handler all work. Opt-in: this header includes Asio, device_client.hpp does not.
//
//   asio::co_spawn(io, [&]() -> asio::awaitable<void> {
//     auto d = co_await amqp::iothub::async_connect_device(io, endpoint, options,
//                                                          asio::use_awaitable);
//     auto outcome = co_await amqp::iothub::async_send_event(d, msg, asio::use_awaitable);
//     auto m = co_await amqp::iothub::async_receive(d, asio::use_awaitable);
//     d.complete(m);
//     co_await amqp::iothub::async_close(d, asio::use_awaitable);
//   }, asio::detached);
//
// Errors are reported the Asio way: as std::system_error from co_await (use_awaitable), or as
// the handler's error_code. With GCC 12, pass options and messages as named variables, not
// temporaries (transport/asio.hpp says why).
#pragma once

#include <span>
#include <utility>

#include <asio/async_result.hpp>
#include <asio/io_context.hpp>

#include "amqp/iothub/device_client.hpp"
#include "amqp/transport/asio.hpp"

namespace amqp::iothub {

// device_client::async_connect from an endpoint.
template <typename Token>
auto async_connect_device(asio::io_context& io, hub_endpoint endpoint,
                          device_client_options options, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, device_client)>(
      [&io, e = std::move(endpoint), options](auto handler) mutable {
        device_client::async_connect(io, std::move(e), options,
                                     transport::detail::shared_handler(std::move(handler)));
      },
      token);
}

// device_client::async_send_event. The message is encoded when the operation starts (at
// once for a handler or asio::use_awaitable; with asio::deferred, keep it alive until then).
template <typename Token>
auto async_send_event(device_client& d, const amqp::message& message, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, event_outcome)>(
      [&d, &message](auto handler) {
        d.async_send_event(message, transport::detail::shared_handler(std::move(handler)));
      },
      token);
}

// device_client::async_send_batch. The messages are packed and encoded when the operation
// starts (as async_send_event).
template <typename Token>
auto async_send_batch(device_client& d, std::span<const amqp::message> messages, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, batch_outcome)>(
      [&d, messages](auto handler) {
        d.async_send_batch(messages, transport::detail::shared_handler(std::move(handler)));
      },
      token);
}

// device_client::async_receive.
template <typename Token> auto async_receive(device_client& d, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, c2d_message)>(
      [&d](auto handler) {
        d.async_receive(transport::detail::shared_handler(std::move(handler)));
      },
      token);
}

// device_client::async_close.
template <typename Token> auto async_close(device_client& d, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code)>(
      [&d](auto handler) { d.async_close(transport::detail::shared_handler(std::move(handler))); },
      token);
}

} // namespace amqp::iothub
