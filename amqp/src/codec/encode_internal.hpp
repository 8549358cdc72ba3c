// Internal encoding entry points shared by the value, composite and message encoders.
// Sizes are plain numbers: 0 means "this value has no encoding" (errc::invalid_argument).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>

#include "amqp/value.hpp"
#include "codec/writer.hpp"

namespace amqp::detail {

// The size of a built string, symbol or binary of n bytes: str8/sym8/vbin8 up to 255 bytes,
// the 32-bit forms above; 0 above 2^32 - 1 bytes (no encoding).
inline std::size_t variable_size(std::size_t n) noexcept {
  return n <= 0xFF ? 2 + n : n <= 0xFFFF'FFFFU ? 5 + n : 0;
}

// Writes a string, symbol or binary (`t`) of bytes `b` in its smallest encoding.
inline void write_variable(type t, std::span<const std::byte> b, writer& w) noexcept {
  const bool small = b.size() <= 0xFF;
  const std::uint8_t c = t == type::string   ? (small ? 0xa1 : 0xb1)
                         : t == type::symbol ? (small ? 0xa3 : 0xb3)
                                             : (small ? 0xa0 : 0xb0);
  w.u8(c);
  w.sized(small ? 1 : 4, static_cast<std::uint32_t>(b.size()));
  w.bytes(b);
}

// write_checked's answer when the value does not fit.
inline constexpr std::size_t max_size = std::numeric_limits<std::size_t>::max();

// The full encoded size of `v` (constructor included), or 0 if it has no encoding.
[[nodiscard]] std::size_t size_of(const value& v) noexcept;
// Writes `v`; size_of(v) must be non-zero and `w` must have room for it.
void write_value(const value& v, writer& w) noexcept;
// Measures `v` once and writes it if it fits: returns its size, 0 if it has no encoding,
// or max_size if it does not fit in `w` (nothing written then).
[[nodiscard]] std::size_t write_checked(const value& v, writer& w) noexcept;

} // namespace amqp::detail
