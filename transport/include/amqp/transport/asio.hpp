// Asio completion tokens for the asynchronous client (client.hpp): every operation as an
// asio::async_initiate, so that asio::use_awaitable (C++20 coroutines), asio::use_future,
// asio::deferred or a plain handler all work. Opt-in: this header includes Asio, client.hpp
// does not. It needs standalone Asio (Debian: libasio-dev) on the include path: the
// installed amqp::transport (CMake package, amqp-transport.pc) does not provide it, as no
// other installed header uses it.
//
//   asio::co_spawn(io, [&]() -> asio::awaitable<void> {
//     auto c = co_await amqp::transport::async_connect(io, url, {}, asio::use_awaitable);
//     auto s = co_await amqp::transport::async_open_sender(c, "q", {}, asio::use_awaitable);
//     auto outcome = co_await amqp::transport::async_send(s, msg, asio::use_awaitable);
//     auto q = co_await amqp::transport::async_open_requester(c, "$management", {}, ...);
//     auto response = co_await amqp::transport::async_request(q, request, asio::use_awaitable);
//     co_await amqp::transport::async_close(q, asio::use_awaitable);
//   }, asio::detached);
//
// Errors are reported the Asio way: as std::system_error from co_await (use_awaitable), or as
// the handler's error_code. With GCC 12, pass options and messages as named variables, not
// temporaries (`{}`, `amqp::message("x")`): it destroys temporaries in a co_await expression
// twice.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include <asio/async_result.hpp>
#include <asio/io_context.hpp>

#include "amqp/transport/client.hpp"

namespace amqp::transport {

namespace detail {
// Our operations take std::function, which must be copyable; Asio's handlers (a coroutine's
// continuation) may be move-only: they are held by a shared_ptr and called once.
template <typename Handler> auto shared_handler(Handler&& h) {
  return [p = std::make_shared<std::decay_t<Handler>>(std::forward<Handler>(h))](auto&&... args) {
    std::move (*p)(std::forward<decltype(args)>(args)...);
  };
}
} // namespace detail

template <typename Token>
auto async_connect(asio::io_context& io, std::string_view url, client_options options,
                   Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, client)>(
      [&io, u = std::string(url), o = std::move(options)](auto handler) mutable {
        client::async_connect(io, u, std::move(o), detail::shared_handler(std::move(handler)));
      },
      token);
}

template <typename Token>
auto async_open_sender(client& c, std::string_view address, sender_options options, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, sender)>(
      [&c, a = std::string(address), o = std::move(options)](auto handler) mutable {
        c.async_open_sender(a, std::move(o), detail::shared_handler(std::move(handler)));
      },
      token);
}

template <typename Token>
auto async_open_receiver(client& c, std::string_view address, receiver_options options,
                         Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, receiver)>(
      [&c, a = std::string(address), o = std::move(options)](auto handler) mutable {
        c.async_open_receiver(a, std::move(o), detail::shared_handler(std::move(handler)));
      },
      token);
}

template <typename Token>
auto async_open_requester(client& c, std::string_view address, requester_options options,
                          Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, requester)>(
      [&c, a = std::string(address), o = std::move(options)](auto handler) mutable {
        c.async_open_requester(a, std::move(o), detail::shared_handler(std::move(handler)));
      },
      token);
}

// The message bytes are copied when the operation starts.
template <typename Token>
auto async_send(sender& s, std::span<const std::byte> message, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, delivery_outcome)>(
      [&s, message](auto handler) {
        s.async_send(message, detail::shared_handler(std::move(handler)));
      },
      token);
}

// The message is encoded when the operation starts (at once for a handler or
// asio::use_awaitable; with asio::deferred, keep it alive until then).
template <typename Token> auto async_send(sender& s, const amqp::message& message, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, delivery_outcome)>(
      [&s, &message](auto handler) {
        s.async_send(message, detail::shared_handler(std::move(handler)));
      },
      token);
}

// The request is encoded when the operation starts (as async_send).
template <typename Token>
auto async_request(requester& q, const amqp::message& request, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, received_message)>(
      [&q, &request](auto handler) {
        q.async_request(request, detail::shared_handler(std::move(handler)));
      },
      token);
}

// The request bytes are copied when the operation starts.
template <typename Token>
auto async_request(requester& q, std::span<const std::byte> request, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, received_message)>(
      [&q, request](auto handler) {
        q.async_request(request, detail::shared_handler(std::move(handler)));
      },
      token);
}

template <typename Token> auto async_receive(receiver& r, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code, received_message)>(
      [&r](auto handler) { r.async_receive(detail::shared_handler(std::move(handler))); }, token);
}

// Closes a client, sender, receiver or requester.
template <typename Handle, typename Token>
requires(std::is_same_v<Handle, client> || std::is_same_v<Handle, sender> ||
         std::is_same_v<Handle, receiver> ||
         std::is_same_v<Handle, requester>) auto async_close(Handle& h, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code)>(
      [&h](auto handler) { h.async_close(detail::shared_handler(std::move(handler))); }, token);
}

} // namespace amqp::transport
