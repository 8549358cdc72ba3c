// Asio completion tokens for the service client (service_client.hpp), as transport/asio.hpp
// does for the transport: each operation as an asio::async_initiate, so that
// asio::use_awaitable (C++20 coroutines), asio::use_future, asio::deferred or a plain handler
// all work. Opt-in: this header includes Asio, service_client.hpp does not.
//
//   asio::co_spawn(io, [&]() -> asio::awaitable<void> {
//     auto svc = co_await amqp::iothub::async_connect(io, endpoint, opts, asio::use_awaitable);
//     auto outcome = co_await amqp::iothub::async_send(svc, "dev-1", msg, send_opts,
//                                                     asio::use_awaitable);
//     auto records = co_await amqp::iothub::async_receive_feedback(svc, asio::use_awaitable);
//     co_await amqp::iothub::async_close(svc, asio::use_awaitable);
//   }, asio::detached);
//
// Errors are reported the Asio way: as std::system_error from co_await (use_awaitable), or as
// the handler's error_code. As with transport/asio.hpp under GCC 12, pass options and
// messages as named variables, not temporaries.
#pragma once

#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <asio/async_result.hpp>
#include <asio/io_context.hpp>

#include "amqp/iothub/service_client.hpp"
#include "amqp/transport/asio.hpp"

namespace amqp::iothub {

// service_client::async_connect from an endpoint (endpoint_from; its options set).
template <typename Token>
auto async_connect(asio::io_context& io, hub_endpoint endpoint, service_client_options options,
                   Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, service_client)>(
      [&io, e = std::move(endpoint), options](auto handler) mutable {
        service_client::async_connect(io, std::move(e), options,
                                      transport::detail::shared_handler(std::move(handler)));
      },
      token);
}

// service_client::async_send. The message is copied when the operation starts (at once for a
// handler or asio::use_awaitable; with asio::deferred, keep it alive until then).
template <typename Token>
auto async_send(service_client& c, std::string_view device_id, const amqp::message& message,
                const c2d_send_options& options, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, c2d_outcome)>(
      [&c, id = std::string(device_id), &message, options](auto handler) {
        c.async_send(id, message, options, transport::detail::shared_handler(std::move(handler)));
      },
      token);
}

// service_client::async_receive_feedback: the records of the next feedback message, which
// is completed.
template <typename Token> auto async_receive_feedback(service_client& c, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, std::vector<feedback_record>)>(
      [&c](auto handler) {
        c.async_receive_feedback(transport::detail::shared_handler(std::move(handler)));
      },
      token);
}

// service_client::async_close.
template <typename Token> auto async_close(service_client& c, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code)>(
      [&c](auto handler) { c.async_close(transport::detail::shared_handler(std::move(handler))); },
      token);
}

} // namespace amqp::iothub
