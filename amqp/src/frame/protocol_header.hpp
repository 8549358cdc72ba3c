// The 8-byte protocol headers that open every AMQP 1.0 connection (AMQP 1.0 §2.2) and
// start each security layer (TLS §5.2.1, SASL §5.3.1): "AMQP", a protocol id, then the
// major, minor and revision of the version. Internal to the engine; sans-IO.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "amqp/result.hpp"

namespace amqp::detail {

// The size of a protocol header in bytes.
inline constexpr std::size_t protocol_header_size = 8;

// The protocol ids of AMQP 1.0: plain AMQP (§2.2), TLS (§5.2.1), SASL (§5.3.1).
enum class protocol_id : std::uint8_t { amqp = 0, tls = 2, sasl = 3 };

// What a peer's 8 header bytes are.
enum class protocol_header_kind : std::uint8_t {
  amqp,        // "AMQP" 0 1.0.0
  tls,         // "AMQP" 2 1.0.0
  sasl,        // "AMQP" 3 1.0.0
  unsupported, // "AMQP", then a protocol id or version other than those above
  not_amqp,    // does not begin with "AMQP" (another protocol, e.g. HTTP, or garbage)
};

// A classified protocol header, with the fields as received.
struct protocol_header_info {
  protocol_header_kind kind = protocol_header_kind::not_amqp;
  std::uint8_t id = 0;       // byte 4; meaningful unless kind is not_amqp
  std::uint8_t major = 0;    // byte 5
  std::uint8_t minor = 0;    // byte 6
  std::uint8_t revision = 0; // byte 7
};

// The 8 bytes of the 1.0.0 header of protocol `id`: "AMQP" id 1 0 0.
[[nodiscard]] constexpr std::array<std::byte, protocol_header_size>
protocol_header_bytes(protocol_id id) noexcept {
  return {
      std::byte{'A'}, std::byte{'M'}, std::byte{'Q'}, std::byte{'P'}, static_cast<std::byte>(id),
      std::byte{1},   std::byte{0},   std::byte{0}};
}

// Writes the 1.0.0 header of protocol `id` into the front of `out`; returns 8.
// Errors: errc::buffer_too_small (`out` shorter than 8 bytes).
[[nodiscard]] result<std::size_t> write_protocol_header(protocol_id id,
                                                        std::span<std::byte> out) noexcept;

// Classifies 8 received header bytes. Never fails: anything that is not one of the three
// 1.0.0 headers is `unsupported` or `not_amqp`, to which AMQP 1.0 §2.2 has the receiver
// answer with a header it supports and close the socket.
[[nodiscard]] protocol_header_info
classify_protocol_header(std::span<const std::byte, protocol_header_size> in) noexcept;

// The protocol of a supported header kind (amqp, tls or sasl); nullopt for the others.
[[nodiscard]] std::optional<protocol_id> to_protocol_id(protocol_header_kind k) noexcept;

// Reads a peer's protocol header from a byte stream chunked arbitrarily, consuming no byte
// past it, so the caller can hand the rest of its chunk to the frame reader.
//
// A stream that does not begin with "AMQP" is recognised at its first differing byte
// (`not_amqp`), without waiting for 8 bytes: a peer speaking another protocol may wait for
// the server to talk first.
class protocol_header_reader {
public:
  // Consumes bytes from the front of `in`, at most up to the end of the header (none once
  // the header is known), and returns how many it consumed.
  [[nodiscard]] std::size_t feed(std::span<const std::byte> in) noexcept;

  // The classified header once it is known (8 bytes read, or an early mismatch); nullopt
  // while more bytes are needed.
  [[nodiscard]] std::optional<protocol_header_info> header() const noexcept { return info_; }

  // Forgets everything read, to read the next header (e.g. the AMQP header after SASL).
  void reset() noexcept {
    have_ = 0;
    info_.reset();
  }

private:
  std::array<std::byte, protocol_header_size> buf_{};
  std::size_t have_ = 0;
  std::optional<protocol_header_info> info_{};
};

// Checks a peer's header against the protocol this end expects next. Errors:
// errc::protocol_mismatch (any other header, or a header that is not a supported one).
[[nodiscard]] result<void> expect_protocol_header(const protocol_header_info& h,
                                                  protocol_id expected) noexcept;

} // namespace amqp::detail
