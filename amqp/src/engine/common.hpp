// What the engine's state structs share: containers from the connection's memory resource,
// the empty slot of an id-indexed table, and serial number arithmetic.
#pragma once

#include <cstdint>
#include <memory_resource>
#include <string>
#include <vector>

namespace amqp::detail {

template <class T> using pvec = std::pmr::vector<T>;
using pstring = std::pmr::string;

// An empty entry of an id-indexed table (a handle or channel with no endpoint).
inline constexpr std::uint32_t no_index = 0xFFFF'FFFF;

// RFC 1982 serial number arithmetic on 32-bit sequence numbers (AMQP 1.0 §2.8.10):
// a is before b.
[[nodiscard]] constexpr bool serial_lt(std::uint32_t a, std::uint32_t b) noexcept {
  return a != b && static_cast<std::uint32_t>(b - a) < 0x8000'0000U;
}

} // namespace amqp::detail
