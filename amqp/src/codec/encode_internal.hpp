// Internal encoding entry points shared by the value, composite and message encoders.
// Sizes are plain numbers: 0 means "this value has no encoding" (errc::invalid_argument).
#pragma once

#include <cstddef>
#include <limits>

#include "amqp/value.hpp"
#include "codec/writer.hpp"

namespace amqp::detail {

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
