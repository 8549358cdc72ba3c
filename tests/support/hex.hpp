// Hex helpers for tests.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace amqp::test {

// Parses hex text, ignoring whitespace; aborts the test binary on a malformed string.
inline std::vector<std::byte> from_hex(std::string_view hex) {
  std::vector<std::byte> out;
  int hi = -1;
  for (char c : hex) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      continue;
    }
    if (hi < 0) {
      hi = d;
    } else {
      out.push_back(static_cast<std::byte>(hi * 16 + d));
      hi = -1;
    }
  }
  return out;
}

inline std::string to_hex(std::span<const std::byte> b) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  for (auto x : b) {
    auto v = std::to_integer<unsigned>(x);
    s += digits[v >> 4];
    s += digits[v & 15];
  }
  return s;
}

} // namespace amqp::test
