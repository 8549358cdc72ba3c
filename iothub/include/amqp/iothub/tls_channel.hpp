// A byte_channel (lite_device.hpp) over a TCP socket with TLS (OpenSSL), blocking, for small
// programs without an event loop. Certificate and host-name verification are on: the peer's
// chain must verify against `ca_file` (or the system's trust store) and name `host` (or
// `server_name`). TLS 1.2 is the minimum version.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "amqp/iothub/lite_device.hpp"
#include "amqp/result.hpp"

namespace amqp::iothub {

struct tls_channel_options {
  std::string_view host{};
  std::uint16_t port = 5671;
  std::string_view ca_file{};                // empty: the system's trust store
  std::string_view server_name{};            // SNI and the name checked; empty: host
  std::chrono::milliseconds timeout{30'000}; // connect and handshake
  // X.509 (doc §2.6): the client certificate (PEM, chain allowed) and its private key
  // (PEM; empty: in cert_file).
  std::string_view cert_file{};
  std::string_view key_file{};
};

class tls_channel final : public byte_channel {
public:
  // Resolves, connects and handshakes. Errors: amqp::errc::timeout, amqp::errc::unauthorized
  // (the certificate does not verify; `why` says why), amqp::errc::invalid_argument (a CA
  // file, client certificate or key that cannot be loaded), the system's.
  [[nodiscard]] static result<std::unique_ptr<tls_channel>>
  connect(const tls_channel_options& options, std::string* why = nullptr);
  ~tls_channel() override;

  [[nodiscard]] result<std::size_t> read_some(std::span<std::byte> buf,
                                              std::chrono::milliseconds timeout) override;
  [[nodiscard]] result<void> write_all(std::span<const std::byte> bytes) override;
  // Bytes read and written on the socket so far (TLS records included).
  [[nodiscard]] std::uint64_t bytes_read() const noexcept { return read_; }
  [[nodiscard]] std::uint64_t bytes_written() const noexcept { return written_; }
  // Bytes handed out by read_some and taken by write_all (the AMQP bytes, before TLS).
  [[nodiscard]] std::uint64_t plain_bytes() const noexcept { return plain_; }

  struct state;

private:
  explicit tls_channel(std::unique_ptr<state> s) noexcept;
  std::unique_ptr<state> s_;
  std::uint64_t read_ = 0;
  std::uint64_t written_ = 0;
  std::uint64_t plain_ = 0;
};

} // namespace amqp::iothub
