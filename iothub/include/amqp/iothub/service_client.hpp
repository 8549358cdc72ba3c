// The IoT Hub service client (doc §4.1, §5.1; azure-iothub's Client is the behaviour
// reference): cloud-to-device messages sent on /messages/devicebound, and the delivery
// feedback the hub batches on /messages/serviceBound/feedback. One hub_connection, as a hub
// policy with the ServiceConnect permission (a service connection string).
//
// - The C2D sender attaches when the client connects; each message gets `to` =
//   /devices/{id}[/modules/{m}]/messages/devicebound, a message-id (a GUID when it has none),
//   `iothub-ack` and an expiry as the options say, and its handler the hub's outcome:
//   accepted (enqueued), or rejected with the hub's condition (c2d_rejection names the
//   common ones: device not found, queue full).
// - The feedback receiver attaches on the first receive. Each feedback message is parsed
//   (parse_feedback_message) and handed out as its records; it is completed (accepted) once
//   the handler returns, or abandoned (released: the hub delivers it again) when the handler
//   says so. A message that does not parse is rejected (dead-lettered) and reported.
// - Reconnect: hub_connection reconnects and puts the token again; the transport attaches the
//   sender and the receiver again by itself. Sends without an outcome are sent again
//   (at-least-once); waiting receives go on. A feedback message received on a lost
//   connection cannot be settled any more: the hub delivers it again (its records may be
//   handed out twice).
//
// Thread-safety: as amqp::transport::client (one io_context; call from its thread; handlers
// run there). For other threads, see blocking_service_client below.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "amqp/iothub/feedback.hpp"
#include "amqp/iothub/hub_connection.hpp"
#include "amqp/message.hpp"
#include "amqp/messaging.hpp"
#include "amqp/result.hpp"

namespace asio {
class io_context;
}

namespace amqp::iothub {

namespace detail {
class service_client_impl;
struct blocking_service_state;
} // namespace detail

// The feedback a C2D message asks for: its `iothub-ack` application property (DOC-C2D).
enum class c2d_ack : std::uint8_t {
  none,     // no feedback (the hub's default)
  positive, // Success, when the device completes it
  negative, // Expired, DeliveryCountExceeded, Rejected
  full,     // both
};

// "none", "positive", "negative", "full" (the values of ack:: in messages.hpp).
[[nodiscard]] std::string_view to_string(c2d_ack a) noexcept;

// How one C2D message is sent.
struct c2d_send_options {
  // The module of the device to send to; empty: the device itself.
  std::string module_id;
  // Sets `iothub-ack`, replacing one the message carries; nullopt leaves the message's own
  // (the hub then takes none when it has none).
  std::optional<c2d_ack> ack;
  // Sets absolute-expiry-time to now + time_to_live (the hub clamps it to its maximum TTL;
  // without one, the message's own expiry or the hub's default TTL of 1 hour applies). Must
  // be positive.
  std::optional<std::chrono::milliseconds> time_to_live;
};

// Why the hub rejected a C2D message, from its condition (doc §4.1, CS-SVC AmqpErrorMapper).
enum class c2d_rejection : std::uint8_t {
  none,              // not rejected
  device_not_found,  // amqp:not-found: no such device (or module), or disabled
  queue_full,        // amqp:resource-limit-exceeded: the device's 50 messages are queued
  message_too_large, // amqp:link:message-size-exceeded: above 64 KB
  throttled,         // com.microsoft:device-container-throttled
  quota_exceeded,    // com.microsoft:quota-exceeded
  invalid_message,   // com.microsoft:argument-error, argument-out-of-range, amqp:decode-error
  other,             // another condition (see c2d_outcome::condition)
};

// The rejection a condition symbol names.
[[nodiscard]] c2d_rejection rejection_of(std::string_view condition) noexcept;

// The hub's outcome of one C2D message.
struct c2d_outcome {
  // accepted (enqueued for the device), rejected, or released / modified (not enqueued).
  state_kind state = state_kind::none;
  c2d_rejection rejection = c2d_rejection::none; // rejected: which condition
  std::string condition;   // rejected: the hub's condition, e.g. "amqp:not-found"
  std::string description; // rejected: the hub's description
  std::string message_id;  // the message-id the message was sent with (given or generated)
  // True when the hub enqueued the message.
  [[nodiscard]] bool accepted() const noexcept { return state == state_kind::accepted; }
};

// What to do with a feedback message once its records were handled.
enum class feedback_action : std::uint8_t {
  complete, // accepted: the hub drops it
  abandon,  // released: the hub delivers it again (its delivery count goes up)
};

struct service_client_options {
  // Feedback messages the hub may send ahead of the receives (the receiver's credit), at
  // least 1. Each one is locked at the hub while it waits here (60 s, then it is delivered
  // again).
  std::uint32_t feedback_credit = 10;
  // C2D messages sent and waiting for their outcome at most, at least 1 (more fail with
  // errc::resource_limit); kept for resend across a reconnect.
  std::size_t max_in_flight = 1000;
};

class service_client {
public:
  service_client() = default;
  // Connects as the hub policy of `endpoint` (endpoint_from of a service connection string:
  // set endpoint.options.tls, reconnect, ... before) and attaches the C2D sender. The
  // handler runs from the io_context. Errors: errc::invalid_argument (not a service
  // connection string, no identity, an option of 0: last_error() says why), those of
  // hub_connection::async_connect (errc::unauthorized: a refused token, e.g. a policy without
  // ServiceConnect), those of transport::client::async_open_sender.
  static void async_connect(asio::io_context& io, hub_endpoint endpoint,
                            service_client_options options,
                            std::function<void(std::error_code, service_client)> done);
  // The same from the text of a service connection string, over AMQPS with the system's
  // trusted CAs. Errors: those above, and those of endpoint_from (errc::invalid_argument).
  static void async_connect(asio::io_context& io, std::string_view connection_string,
                            service_client_options options,
                            std::function<void(std::error_code, service_client)> done);

  // Sends `message` to the device `device_id` (copied; `to`, message-id, `iothub-ack` and the
  // expiry set as above) and hands over the hub's outcome. A rejection is an outcome, not
  // an error. Errors: errc::invalid_argument (at once: a device or module id not allowed
  // (check_device_id, check_module_id), a time_to_live that is not positive, a message that
  // cannot be encoded: last_error() says why), errc::invalid_state (closed or empty),
  // errc::resource_limit (max_in_flight), the link's or connection's error.
  void async_send(std::string_view device_id, const amqp::message& message,
                  const c2d_send_options& options,
                  std::function<void(std::error_code, c2d_outcome)> done);

  // The records of the next feedback message (waits for one; attaches the feedback receiver
  // on first use); the message is completed once the handler returns. Errors:
  // errc::invalid_state (closed or empty), the errors of parse_feedback_message (a message
  // that is not feedback: it is rejected, last_error() says why; the next receive goes on),
  // errc::remote_error (the hub refused the link: last_error() has its condition), the
  // link's or connection's error.
  void
  async_receive_feedback(std::function<void(std::error_code, std::vector<feedback_record>)> done);
  // The same, but the handler says what becomes of the message: feedback_action::abandon
  // gives it back to the hub, which delivers it again. (On an error the value returned is
  // not used.)
  void async_handle_feedback(
      std::function<feedback_action(std::error_code, std::vector<feedback_record>)> done);

  // Closes the connection. Waiting sends and receives fail with errc::invalid_state.
  // Errors: errc::invalid_state (closed already, or empty), those of hub_connection.
  void async_close(std::function<void(std::error_code)> done);
  // What went wrong last, readable: a refused link or token, why a message could not be
  // sent, why a feedback message did not parse.
  [[nodiscard]] std::string last_error() const;
  // The hub connection (its client, counters). Only on a connected client (operator bool);
  // valid while it is.
  [[nodiscard]] hub_connection& connection() noexcept;
  [[nodiscard]] explicit operator bool() const noexcept { return impl_ != nullptr; }

private:
  friend struct detail::blocking_service_state;
  std::shared_ptr<detail::service_client_impl> impl_;
  std::string failure_; // last_error() of a client whose connect failed
};

// A blocking facade over service_client for simple programs: its own io_context on a thread
// of its own, as transport::blocking_client.
//
// Thread-safety: every call may come from any thread; calls are serialized on the I/O
// thread. Once close() has begun (or the object is destroyed, which closes it), every call
// returns errc::invalid_state at once; so does every call on a default-constructed or
// moved-from object.
class blocking_service_client {
public:
  blocking_service_client() = default;
  ~blocking_service_client(); // NOLINT(bugprone-exception-escape): see service_client.cpp
  blocking_service_client(blocking_service_client&&) noexcept = default;
  blocking_service_client& operator=(blocking_service_client&&) noexcept = default;

  // Connects (service_client::async_connect) and waits. On failure `why` (if given) gets
  // what went wrong, readable.
  [[nodiscard]] static result<blocking_service_client>
  connect(hub_endpoint endpoint, service_client_options options = {}, std::string* why = nullptr);
  // The same from the text of a service connection string (AMQPS, the system's CAs).
  [[nodiscard]] static result<blocking_service_client> connect(std::string_view connection_string,
                                                               service_client_options options = {},
                                                               std::string* why = nullptr);
  // Sends a C2D message and waits for the hub's outcome. Errors: errc::invalid_state (see
  // above), those of service_client::async_send.
  [[nodiscard]] result<c2d_outcome> send(std::string_view device_id, const amqp::message& message,
                                         const c2d_send_options& options = {});
  // The records of the next feedback message, waiting at most `timeout`; the message is
  // completed. A message that arrives after the timeout is kept for the next call (not
  // abandoned). Errors: errc::timeout, errc::invalid_state (see above), those of
  // service_client::async_receive_feedback.
  [[nodiscard]] result<std::vector<feedback_record>>
  receive_feedback(std::chrono::milliseconds timeout);
  // Closes the connection and stops the I/O thread. Errors: errc::invalid_state (closed
  // already or under way, default-constructed, moved-from), those of async_close.
  [[nodiscard]] result<void> close();
  // The client's last error; still readable after close().
  [[nodiscard]] std::string last_error() const;
  // Reconnections of the hub connection so far.
  [[nodiscard]] std::uint64_t reconnects() const;

private:
  std::shared_ptr<detail::blocking_service_state> state_;
};

} // namespace amqp::iothub
