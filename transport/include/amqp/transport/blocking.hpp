// A small blocking facade over the asynchronous client (client.hpp), for simple programs:
// connect, send and wait for the outcome, receive with a timeout, settle, close. Each
// blocking_client runs its own io_context on a thread of its own.
//
// Thread-safety: every call may come from any thread; calls on one client are serialized on
// its I/O thread. Do not call from inside the I/O thread (there are no handlers here, so
// this only matters if you share an io_context, which this facade does not).
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string_view>

#include "amqp/result.hpp"
#include "amqp/transport/client.hpp"
#include "amqp/transport/options.hpp"

namespace amqp::transport {

namespace detail {
struct blocking_state;
}

class blocking_sender {
public:
  // Sends one encoded message and waits for its outcome (presettled: until it is written
  // to the engine). Errors: those of sender::async_send.
  [[nodiscard]] result<delivery_outcome> send(std::span<const std::byte> message);
  [[nodiscard]] result<void> close();

private:
  friend class blocking_client;
  std::shared_ptr<detail::blocking_state> state_;
  sender sender_;
};

class blocking_receiver {
public:
  // The next message, waiting at most `timeout`. Errors: errc::timeout, those of
  // receiver::async_receive.
  [[nodiscard]] result<received_message> receive(std::chrono::milliseconds timeout);
  [[nodiscard]] result<void> accept(const received_message& m);
  [[nodiscard]] result<void> reject(const received_message& m, std::string_view condition = {},
                                    std::string_view description = {});
  [[nodiscard]] result<void> release(const received_message& m);
  [[nodiscard]] result<void> modify(const received_message& m, bool delivery_failed,
                                    bool undeliverable_here);
  [[nodiscard]] result<void> close();

private:
  friend class blocking_client;
  std::shared_ptr<detail::blocking_state> state_;
  receiver receiver_;
};

class blocking_requester {
public:
  // Sends a request and waits at most `timeout` for its response (see requester).
  // Errors: errc::timeout, those of requester::async_request.
  [[nodiscard]] result<received_message> request(std::span<const std::byte> message,
                                                 std::chrono::milliseconds timeout);
  [[nodiscard]] result<void> close();

private:
  friend class blocking_client;
  std::shared_ptr<detail::blocking_state> state_;
  requester requester_;
};

class blocking_client {
public:
  blocking_client() = default;
  ~blocking_client();
  blocking_client(blocking_client&&) noexcept = default;
  blocking_client& operator=(blocking_client&&) noexcept = default;

  // Connects and opens the connection (see client::async_connect).
  [[nodiscard]] static result<blocking_client> connect(std::string_view url,
                                                       client_options options = {});
  [[nodiscard]] result<blocking_sender> open_sender(std::string_view address,
                                                    sender_options options = {});
  [[nodiscard]] result<blocking_receiver> open_receiver(std::string_view address,
                                                        receiver_options options = {});
  [[nodiscard]] result<blocking_requester> open_requester(std::string_view address,
                                                          requester_options options = {});
  // Closes the connection and stops the I/O thread.
  [[nodiscard]] result<void> close();
  [[nodiscard]] std::string last_error() const;

private:
  std::shared_ptr<detail::blocking_state> state_;
};

} // namespace amqp::transport
