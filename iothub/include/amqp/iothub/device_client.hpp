// The IoT Hub device (and module) client over AMQP (doc §3, §4.3): telemetry one message at a
// time or in batches (format 0x80013700, doc §3.3) with the hub's outcome of each message,
// and cloud-to-device messages with complete / reject / abandon (doc §4.3), on a
// hub_connection (CBS, token renewal, reconnect).
//
// A client either owns its connection (async_connect: from a device or module connection
// string) or shares one with other devices (async_open: hub_connection::async_add_identity,
// then this device's own links). A device whose token the hub refuses fails alone; the
// others on the connection go on.
//
// Reconnects: hub_connection reconnects by itself and puts the tokens again; the links
// attach again then. Telemetry sent on the lost connection without an outcome is sent
// again (at-least-once). A C2D message received before the reconnect can no longer be
// settled (errc::invalid_state): its lock went with the connection and the hub delivers
// it again.
//
// Thread-safety: as amqp::transport::client (one io_context; call from its thread; handlers
// run there). For other threads, blocking_device_client below.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "amqp/iothub/address.hpp"
#include "amqp/iothub/hub_connection.hpp"
#include "amqp/iothub/messages.hpp"
#include "amqp/message.hpp"
#include "amqp/result.hpp"
#include "amqp/transport/client.hpp"

namespace asio {
class io_context;
}

namespace amqp::iothub {

namespace detail {
struct device_client_impl;
struct blocking_device_state;
} // namespace detail

// The hub's answer to one telemetry message: accepted, or rejected with the hub's condition
// and description (e.g. amqp:link:message-size-exceeded for a message above 256 KB).
using event_outcome = transport::delivery_outcome;

// A cloud-to-device message as received: its sections (message(), properties(),
// application_properties(), body_text(), ...) and what is needed to settle it.
using c2d_message = transport::received_message;

// The outcome of a batch: one outcome per message, in the order given, and how the messages
// were packed into transfers.
struct batch_outcome {
  std::vector<event_outcome> outcomes; // outcomes[i]: messages[i]
  // The messages of each transfer, in order (their sum is the number of messages); a
  // message too large for a batch envelope goes alone as a plain message (format 0).
  std::vector<std::size_t> transfers;
};

struct device_client_options {
  // Open the C2D receiver (/devices/{id}/messages/devicebound, rcv-settle-mode second as the
  // SDKs) when connecting. Off: the device only sends; async_receive fails.
  bool receive_c2d = true;
  // C2D messages the hub may deliver before they are asked for (.NET prefetches 50; each
  // is locked for the device until it is settled or its lock expires).
  std::uint32_t c2d_prefetch = 50;
  // Bounds of one batch transfer (doc §3.3: 256 KB of envelope, 500 messages).
  batch_limits batch{};
  // Telemetry transfers waiting for credit or an outcome at most (more fail at once with
  // amqp::errc::resource_limit).
  std::size_t max_in_flight = 10'000;
};

class device_client {
public:
  device_client() = default;

  // Connects as the device or module of `endpoint` (endpoint_from(connection string): its
  // options, e.g. protocol amqps or amqp_websockets and tls.ca_file, and its token source)
  // on a connection of its own, and attaches the telemetry sender (and the C2D receiver).
  // The handler runs from the io_context. Errors: iothub::errc::invalid_value (not a device
  // or module endpoint, or one without a token source), those of
  // hub_connection::async_connect, transport::client::async_open_sender/receiver.
  static void async_connect(asio::io_context& io, hub_endpoint endpoint,
                            device_client_options options,
                            std::function<void(std::error_code, device_client)> done);
  // The same from the text of a device or module connection string. Errors: those of
  // endpoint_from, and those above.
  static void async_connect(asio::io_context& io, std::string_view connection_string,
                            hub_protocol protocol, device_client_options options,
                            std::function<void(std::error_code, device_client)> done);
  // Adds the device or module `who`, signed by `token`, to a shared cbs connection
  // (hub_connection::async_add_identity) and attaches its own links. The connection must
  // outlive the client (close the clients first). Errors: those of async_add_identity
  // (errc::unauthorized when the hub refuses the token; other devices are not affected),
  // iothub::errc::invalid_value (an invalid device or module id), and those of the links.
  static void async_open(hub_connection& connection, device_identity who, token_source token,
                         device_client_options options,
                         std::function<void(std::error_code, device_client)> done);

  // Sends one telemetry message to /devices/{id}[/modules/{m}]/messages/events with every
  // property and section as given, and hands over the hub's outcome. Errors:
  // amqp::errc::invalid_argument (the message cannot be encoded: last_error() says why),
  // amqp::errc::message_size_exceeded (above the hub's link limit of 1 MB, which would close
  // the link: refused here; between 256 KB and 1 MB the hub answers with a rejected
  // outcome), amqp::errc::invalid_state (closed), those of transport::sender::async_send.
  void async_send_event(const amqp::message& message,
                        std::function<void(std::error_code, event_outcome)> done);
  // Sends `messages` packed in batches (format 0x80013700, doc §3.3): as many messages per
  // transfer as fit in options.batch by exact encoded size, in order, in as many transfers
  // as needed; each message gets the outcome of its transfer. The handler runs once every
  // transfer has its outcome. The error is the first transfer's error, if any (the
  // outcomes of the transfers that failed are state_kind::none). Errors: those of
  // async_send_event, amqp::errc::invalid_argument (no messages).
  void async_send_batch(std::span<const amqp::message> messages,
                        std::function<void(std::error_code, batch_outcome)> done);

  // The next C2D message (waits for one). Errors: amqp::errc::invalid_state (closed, or C2D
  // not opened: device_client_options::receive_c2d), the link's or connection's error.
  void async_receive(std::function<void(std::error_code, c2d_message)> done);
  // Calls `f` with each C2D message as it arrives (async_receive in a loop), until an error,
  // which is handed to `f` once (with an empty message) and ends the loop; async_close
  // removes `f` without calling it. Replaces a previous callback; an empty `f` stops the
  // loop once the message being waited for comes, and that message is left unsettled (the
  // hub delivers it again when its lock expires). Errors: amqp::errc::invalid_state, at
  // once (closed, or C2D not opened).
  void on_c2d_message(std::function<void(std::error_code, c2d_message)> f);
  // Settles a C2D message (doc §4.3): complete = accepted (the hub completes it), reject =
  // rejected (dead-lettered), abandon = released (back in the queue, delivery count up).
  // Errors: amqp::errc::invalid_state (settled already: the hub settles after our outcome;
  // closed; or received before a reconnect, or the connection is lost: its lock is gone and
  // the hub delivers it again).
  result<void> complete(const c2d_message& m);
  result<void> reject(const c2d_message& m);
  result<void> abandon(const c2d_message& m);

  // Detaches the device's links and, if it owns its connection, closes it. Sends and
  // receives still waiting fail with amqp::errc::invalid_state.
  void async_close(std::function<void(std::error_code)> done);

  // The device or module this client is.
  [[nodiscard]] const device_identity& identity() const noexcept;
  // The connection (owned or shared). Valid while this client is.
  [[nodiscard]] hub_connection& connection() noexcept;
  // What went wrong last, readable: the hub's condition and description, why a message
  // cannot be encoded, the connection's last error.
  [[nodiscard]] std::string last_error() const;
  [[nodiscard]] explicit operator bool() const noexcept { return impl_ != nullptr; }

private:
  friend struct detail::device_client_impl;
  std::shared_ptr<detail::device_client_impl> impl_;
  std::string failure_; // last_error() of a client whose connect failed
};

// A blocking facade: its own io_context on a thread of its own (as
// transport::blocking_client). Every call may come from any thread; calls are serialized on
// the I/O thread. After close() (or on a default-constructed or moved-from object) every
// call fails with amqp::errc::invalid_state at once.
class blocking_device_client {
public:
  blocking_device_client() = default;
  // Closes the client if still open.
  ~blocking_device_client(); // NOLINT(bugprone-exception-escape): see device_blocking.cpp
  blocking_device_client(blocking_device_client&&) noexcept;
  // NOLINTNEXTLINE(bugprone-exception-escape): see device_blocking.cpp
  blocking_device_client& operator=(blocking_device_client&&) noexcept;
  blocking_device_client(const blocking_device_client&) = delete;
  blocking_device_client& operator=(const blocking_device_client&) = delete;

  // Connects (device_client::async_connect). On failure `why` (if given) says why.
  [[nodiscard]] static result<blocking_device_client>
  connect(hub_endpoint endpoint, device_client_options options = {}, std::string* why = nullptr);
  // Sends one message and waits for its outcome (device_client::async_send_event).
  [[nodiscard]] result<event_outcome> send_event(const amqp::message& message);
  // Sends a batch and waits for every outcome (device_client::async_send_batch).
  [[nodiscard]] result<batch_outcome> send_batch(std::span<const amqp::message> messages);
  // The next C2D message, waiting at most `timeout`. A message that arrives after the
  // timeout stays for the next call. One receive at a time. Errors: amqp::errc::timeout,
  // amqp::errc::invalid_state (closed, or another thread is receiving), those of
  // device_client::async_receive.
  [[nodiscard]] result<c2d_message> receive(std::chrono::milliseconds timeout);
  // Settlement (device_client::complete, reject, abandon).
  [[nodiscard]] result<void> complete(const c2d_message& m);
  [[nodiscard]] result<void> reject(const c2d_message& m);
  [[nodiscard]] result<void> abandon(const c2d_message& m);
  // Closes the client and stops the I/O thread. Errors: amqp::errc::invalid_state (closed
  // already), those of device_client::async_close.
  [[nodiscard]] result<void> close();
  // The client's last_error(); still readable after close().
  [[nodiscard]] std::string last_error() const;

private:
  std::shared_ptr<detail::blocking_device_state> state_;
};

} // namespace amqp::iothub
