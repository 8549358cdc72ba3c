// AMQP 1.0 SASL frames (security.xml, §5.3.3): the bodies of SASL frames, exchanged before
// the AMQP protocol header when SASL is negotiated.
//
// Views as in messaging.hpp: nothing is owned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <variant>

#include "amqp/result.hpp"
#include "amqp/symbols.hpp"
#include "amqp/value.hpp"

namespace amqp {

// AMQP 1.0 §5.3.3.6 sasl-code: the outcome of a SASL exchange. A decoded code may hold a
// value other than these (any ubyte); the engine decides what to do with it.
enum class sasl_code : std::uint8_t {
  ok = 0,       // authentication succeeded
  auth = 1,     // failed: bad credentials
  sys = 2,      // failed: system error
  sys_perm = 3, // failed: permanent system error
  sys_temp = 4, // failed: transient system error
};

// AMQP 1.0 §5.3.3.1 sasl-mechanisms (0x40): the mechanisms the server supports.
struct sasl_mechanisms {
  symbols sasl_server_mechanisms{}; // mandatory: at least one symbol
};

// AMQP 1.0 §5.3.3.2 sasl-init (0x41): the mechanism chosen by the client.
struct sasl_init {
  symbol_view mechanism{};
  std::optional<binary_view> initial_response{};
  std::optional<std::string_view> hostname{};
};

// AMQP 1.0 §5.3.3.3 sasl-challenge (0x42): a challenge from the server.
struct sasl_challenge {
  binary_view challenge{};
};

// AMQP 1.0 §5.3.3.4 sasl-response (0x43): the client's response to a challenge.
struct sasl_response {
  binary_view response{};
};

// AMQP 1.0 §5.3.3.5 sasl-outcome (0x44): the result of the exchange.
struct sasl_outcome {
  sasl_code code{};
  std::optional<binary_view> additional_data{};
};

// The body of a SASL frame (AMQP 1.0 §5.3.1).
using sasl_frame =
    std::variant<sasl_mechanisms, sasl_init, sasl_challenge, sasl_response, sasl_outcome>;

// Decodes `described` into `out`, checking its descriptor (ulong code or symbolic name, e.g.
// "amqp:sasl-init:list"). Fields beyond those known are ignored. Views point into the bytes
// `described` was decoded from. Errors: errc::unexpected_descriptor (another descriptor),
// errc::type_mismatch (not a described list, or a field of the wrong type),
// errc::missing_field (a mandatory field absent or null).
[[nodiscard]] result<void> decode(const value& described, sasl_mechanisms& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, sasl_init& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, sasl_challenge& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, sasl_response& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, sasl_outcome& out) noexcept;

// The number of bytes `x` encodes to (trailing null or default fields dropped, default
// fields before them written as null). Errors: errc::invalid_argument (a `symbols` field
// with no encoding).
[[nodiscard]] result<std::size_t> encoded_size(const sasl_mechanisms& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const sasl_init& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const sasl_challenge& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const sasl_response& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const sasl_outcome& x) noexcept;

// Encodes `x` into the front of `out`; returns the bytes written. Errors: those of
// encoded_size, errc::buffer_too_small.
[[nodiscard]] result<std::size_t> encode(const sasl_mechanisms& x,
                                         std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const sasl_init& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const sasl_challenge& x,
                                         std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const sasl_response& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const sasl_outcome& x, std::span<std::byte> out) noexcept;

// Decodes the body of a SASL frame, whichever of the five it is. Errors:
// errc::unexpected_descriptor (a described value that is not a SASL frame body),
// errc::type_mismatch (not a described value, or a field of the wrong type),
// errc::missing_field.
[[nodiscard]] result<sasl_frame> decode_sasl_frame(const value& described) noexcept;

// Size and encoding of the frame body held, as for that type.
[[nodiscard]] result<std::size_t> encoded_size(const sasl_frame& x) noexcept;
[[nodiscard]] result<std::size_t> encode(const sasl_frame& x, std::span<std::byte> out) noexcept;

// The short spec name of the frame body held ("sasl-init", ...), for tracing.
[[nodiscard]] std::string_view name(const sasl_frame& f) noexcept;

} // namespace amqp
