// A device client for small systems: blocking, one thread, no Asio and no heap of its own
// beyond the memory resource it is given. It opens the AMQP connection over a byte channel
// the caller provides (tls_channel.hpp has one for POSIX sockets with OpenSSL), logs in with
// CBS put-token (doc §2.4), and sends telemetry (doc §3), waiting for each outcome; it renews
// its token on request. What the C SDK's uAMQP transport does for one device, as a thin
// layer over the sans-IO engine (amqp::connection) and amqp::request_response.
//
// For a device with more to do (cloud-to-device messages, reconnects, many devices, an
// event loop), use device_client.hpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "amqp/connection.hpp"
#include "amqp/iothub/address.hpp"
#include "amqp/message.hpp"
#include "amqp/messaging.hpp"
#include "amqp/request_response.hpp"
#include "amqp/result.hpp"

namespace amqp::iothub {

// A byte stream: TCP with TLS, a WebSocket, a serial line.
class byte_channel {
public:
  byte_channel() = default;
  byte_channel(const byte_channel&) = delete;
  byte_channel& operator=(const byte_channel&) = delete;
  virtual ~byte_channel() = default;
  // Reads at most buf.size() bytes, waiting at most `timeout` for the first. Returns 0 when
  // nothing came in time. Errors: amqp::errc::connection_lost (the peer closed), others of
  // the system.
  [[nodiscard]] virtual result<std::size_t> read_some(std::span<std::byte> buf,
                                                      std::chrono::milliseconds timeout) = 0;
  // Writes every byte. Errors: amqp::errc::connection_lost, others of the system.
  [[nodiscard]] virtual result<void> write_all(std::span<const std::byte> bytes) = 0;
};

struct lite_device_options {
  // The hub's host name (a connection string's HostName): the open's hostname and the host
  // of the token's audience.
  std::string_view hub_host{};
  device_identity identity{};
  // The device's (or module's) shared access key, base64.
  std::string_view key{};
  // X.509 (doc §2.6): the channel's TLS client certificate is the identity (its CN the device
  // id, e.g. tls_channel_options::cert_file); SASL EXTERNAL, no CBS and no token: `key` and
  // `token_lifetime` are not used.
  bool x509 = false;
  std::chrono::seconds token_lifetime{3600};
  // Time each step (connect, put-token, attach, one send, close) may take.
  std::chrono::milliseconds timeout{30'000};
  // The largest frame either side sends (the engine's buffers follow it).
  std::uint32_t max_frame_size = 16 * 1024;
  // The AMQP container-id; empty: the device id.
  std::string_view container_id{};
  // Every allocation of the engine and of this client: a monotonic_buffer_resource over a
  // static or stack buffer makes the device run without the heap.
  std::pmr::memory_resource* memory = std::pmr::new_delete_resource();
};

class lite_device {
public:
  // Opens the connection over `channel` (SASL ANONYMOUS), puts a token made at `now` (Unix
  // seconds) on `$cbs`, and attaches the telemetry sender; with options.x509, SASL EXTERNAL
  // and the sender only. `channel` must outlive the device. Errors:
  // amqp::errc::unauthorized (the hub refused the token, or the certificate's SASL EXTERNAL
  // login: `why` has its status and description), amqp::errc::timeout,
  // amqp::errc::remote_error (a link refused),
  // errc::invalid_value (a key that is not base64), the channel's and the engine's.
  [[nodiscard]] static result<lite_device> connect(byte_channel& channel,
                                                   const lite_device_options& options,
                                                   std::uint64_t now, std::string* why = nullptr);

  // Sends one telemetry message (its encoded sections) and waits for the hub's outcome:
  // state_kind::accepted, or rejected (the hub's condition in `why`). Errors:
  // amqp::errc::timeout, amqp::errc::invalid_state (closed), the channel's and the engine's.
  [[nodiscard]] result<state_kind> send_event(std::span<const std::byte> message,
                                              std::string* why = nullptr);
  // The same for a message given as sections (encoded into the device's memory).
  [[nodiscard]] result<state_kind> send_event(const message_parts& message,
                                              std::string* why = nullptr);

  // Puts a new token made at `now` on the same links (before token_expiry(): the hub
  // detaches the telemetry link once the token expires); nothing with X.509 (no token).
  // Errors: those of connect.
  [[nodiscard]] result<void> renew_token(std::uint64_t now, std::string* why = nullptr);
  // When the token last put expires (Unix seconds); 0 with X.509.
  [[nodiscard]] std::uint64_t token_expiry() const noexcept { return expiry_; }

  // Closes the connection (close handshake). Errors: amqp::errc::timeout, the channel's.
  [[nodiscard]] result<void> close();

  lite_device(lite_device&&) noexcept = default;
  lite_device& operator=(lite_device&&) noexcept = default;
  ~lite_device() = default;

private:
  lite_device(byte_channel& channel, const lite_device_options& o, connection engine);
  template <typename Done> result<void> pump(Done done, std::string* why);
  result<void> handle(const event& e);
  result<void> put_token(std::uint64_t now, std::string* why);
  result<void> open_cbs(std::uint64_t now, std::string* why);

  byte_channel* channel_;
  std::pmr::memory_resource* memory_;
  std::chrono::milliseconds timeout_;
  std::chrono::seconds lifetime_;
  std::pmr::string audience_;
  std::pmr::string key_;
  connection engine_;
  session_id session_{};
  request_response cbs_;
  std::optional<link_id> telemetry_;
  bool telemetry_attached_ = false;
  std::uint64_t expiry_ = 0;
  // The request and the outcome being waited for.
  std::optional<std::uint64_t> put_id_;
  std::optional<std::int32_t> put_status_;
  std::pmr::string put_description_;
  std::optional<delivery_id> sending_;
  std::optional<state_kind> outcome_;
  std::pmr::string outcome_text_;
  std::error_code failure_; // the connection or a link failed
  std::pmr::string failure_text_;
  std::pmr::vector<std::byte> encoded_;
  bool x509_ = false; // no CBS, no token
};

} // namespace amqp::iothub
