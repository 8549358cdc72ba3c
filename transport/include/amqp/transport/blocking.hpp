// A small blocking facade over the asynchronous client (client.hpp), for simple programs:
// connect, send and wait for the outcome, receive with a timeout, settle, close. Each
// blocking_client runs its own io_context on a thread of its own.
//
// Thread-safety: every call may come from any thread; calls on one client are serialized on
// its I/O thread. Do not call from inside the I/O thread (there are no handlers here, so
// this only matters if you share an io_context, which this facade does not).
//
// Closed objects: once blocking_client::close() has begun (or the blocking_client is
// destroyed, which closes it), every call on it and on its senders, receivers and requesters
// returns errc::invalid_state at once, from any thread; so does every call on a
// default-constructed or moved-from object. No call waits for an I/O thread that is gone.
// Calls already waiting when the client closes complete (with the link's error or
// errc::invalid_state).
//
// Link handles: blocking_sender, blocking_receiver and blocking_requester own their links.
// They are move-only, and destroying one detaches its link(s) without waiting, so that a
// temporary (`c->open_receiver("q")->receive(5s)`) leaves nothing attached behind: a
// receiver's messages not yet settled go back to the sender (the broker redelivers them),
// a requester's waiting requests fail.
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "amqp/message.hpp"
#include "amqp/result.hpp"
#include "amqp/transport/client.hpp"
#include "amqp/transport/options.hpp"

namespace amqp::transport {

namespace detail {
struct blocking_state;
}

class blocking_sender {
public:
  blocking_sender() = default;
  // Detaches the link(s) without waiting (see "Link handles").
  ~blocking_sender();
  blocking_sender(blocking_sender&&) noexcept = default;
  // Detaches this handle's link(s), then takes over `o`'s.
  blocking_sender& operator=(blocking_sender&& o) noexcept;
  blocking_sender(const blocking_sender&) = delete;
  blocking_sender& operator=(const blocking_sender&) = delete;

  // Sends one encoded message and waits for its outcome (presettled: until it is written
  // to the engine). Errors: errc::invalid_state (see "Closed objects"), those of
  // sender::async_send.
  [[nodiscard]] result<delivery_outcome> send(std::span<const std::byte> message);
  // Sends `message` and waits for its outcome. Errors: those above, and
  // errc::invalid_argument when it cannot be encoded (blocking_client::last_error() says
  // which field and why).
  [[nodiscard]] result<delivery_outcome> send(const amqp::message& message);
  // Detaches the link. Errors: errc::invalid_state (see "Closed objects").
  [[nodiscard]] result<void> close();

private:
  friend class blocking_client;
  std::shared_ptr<detail::blocking_state> state_;
  sender sender_;
};

class blocking_receiver {
public:
  blocking_receiver() = default;
  // Detaches the link(s) without waiting (see "Link handles").
  ~blocking_receiver();
  blocking_receiver(blocking_receiver&&) noexcept = default;
  // Detaches this handle's link(s), then takes over `o`'s.
  blocking_receiver& operator=(blocking_receiver&& o) noexcept;
  blocking_receiver(const blocking_receiver&) = delete;
  blocking_receiver& operator=(const blocking_receiver&) = delete;

  // The next message, waiting at most `timeout`. Errors: errc::timeout, errc::invalid_state
  // (see "Closed objects"), those of receiver::async_receive.
  [[nodiscard]] result<received_message> receive(std::chrono::milliseconds timeout);
  // Settlement (see receiver). Errors: errc::invalid_state (see "Closed objects"), those of
  // receiver::accept and the others.
  [[nodiscard]] result<void> accept(const received_message& m);
  [[nodiscard]] result<void> reject(const received_message& m, std::string_view condition = {},
                                    std::string_view description = {});
  [[nodiscard]] result<void> release(const received_message& m);
  [[nodiscard]] result<void> modify(const received_message& m, bool delivery_failed,
                                    bool undeliverable_here);
  // Detaches the link. Errors: errc::invalid_state (see "Closed objects").
  [[nodiscard]] result<void> close();

private:
  friend class blocking_client;
  std::shared_ptr<detail::blocking_state> state_;
  receiver receiver_;
};

class blocking_requester {
public:
  blocking_requester() = default;
  // Detaches the link(s) without waiting (see "Link handles").
  ~blocking_requester();
  blocking_requester(blocking_requester&&) noexcept = default;
  // Detaches this handle's link(s), then takes over `o`'s.
  blocking_requester& operator=(blocking_requester&& o) noexcept;
  blocking_requester(const blocking_requester&) = delete;
  blocking_requester& operator=(const blocking_requester&) = delete;

  // Sends a request and waits at most `timeout` for its response (see requester); a request
  // that times out is forgotten (a later response is dropped). Errors: errc::timeout,
  // errc::invalid_state (see "Closed objects"), those of requester::async_request.
  [[nodiscard]] result<received_message> request(std::span<const std::byte> message,
                                                 std::chrono::milliseconds timeout);
  [[nodiscard]] result<received_message> request(const amqp::message& message,
                                                 std::chrono::milliseconds timeout);
  // Detaches both links. Errors: errc::invalid_state (see "Closed objects").
  [[nodiscard]] result<void> close();

private:
  friend class blocking_client;
  std::shared_ptr<detail::blocking_state> state_;
  requester requester_;
};

class blocking_client {
public:
  blocking_client() = default;
  ~blocking_client(); // NOLINT(bugprone-exception-escape): see blocking.cpp
  blocking_client(blocking_client&&) noexcept = default;
  blocking_client& operator=(blocking_client&&) noexcept = default;

  // Connects and opens the connection (see client::async_connect). On failure, `why` (if
  // given) gets what went wrong, readable (client::last_error() of the failed connect).
  [[nodiscard]] static result<blocking_client>
  connect(std::string_view url, client_options options = {}, std::string* why = nullptr);
  // Attach a link or a requester (see client). Errors: errc::invalid_state (see "Closed
  // objects"), those of the client's async_open_*.
  [[nodiscard]] result<blocking_sender> open_sender(std::string_view address,
                                                    sender_options options = {});
  [[nodiscard]] result<blocking_receiver> open_receiver(std::string_view address,
                                                        receiver_options options = {});
  [[nodiscard]] result<blocking_requester> open_requester(std::string_view address,
                                                          requester_options options = {});
  // Closes the connection and stops the I/O thread. Errors: errc::invalid_state (closed
  // already, or a close is under way on another thread; default-constructed, moved-from),
  // those of client::async_close.
  [[nodiscard]] result<void> close();
  // The client's last error (client::last_error()); still readable after close().
  [[nodiscard]] std::string last_error() const;

private:
  std::shared_ptr<detail::blocking_state> state_;
};

} // namespace amqp::transport
