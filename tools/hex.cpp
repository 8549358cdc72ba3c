#include "hex.hpp"

namespace amqp::cli {
namespace {

constexpr char digits[] = "0123456789abcdef";

// The value of hex digit `c`, or -1.
int digit_value(char c, bool upper_allowed) noexcept {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (upper_allowed && c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

} // namespace

void append_hex(std::span<const std::byte> bytes, std::string& out) {
  out.reserve(out.size() + 2 * bytes.size());
  for (std::byte b : bytes) {
    const auto u = std::to_integer<unsigned>(b);
    out.push_back(digits[u >> 4]);
    out.push_back(digits[u & 0xF]);
  }
}

std::string to_hex(std::span<const std::byte> bytes) {
  std::string s;
  append_hex(bytes, s);
  return s;
}

std::optional<std::vector<std::byte>> parse_lower_hex(std::string_view text) {
  if (text.size() % 2 != 0) {
    return std::nullopt;
  }
  std::vector<std::byte> out;
  out.reserve(text.size() / 2);
  for (std::size_t k = 0; k < text.size(); k += 2) {
    const int hi = digit_value(text[k], false);
    const int lo = digit_value(text[k + 1], false);
    if (hi < 0 || lo < 0) {
      return std::nullopt;
    }
    out.push_back(static_cast<std::byte>(hi * 16 + lo));
  }
  return out;
}

std::optional<std::vector<std::byte>> parse_hex_text(std::string_view text, std::string& error) {
  std::vector<std::byte> out;
  out.reserve(text.size() / 2);
  int pending = -1; // the high nibble read so far, if any
  for (std::size_t k = 0; k < text.size(); ++k) {
    const char c = text[k];
    if (is_space(c)) {
      continue;
    }
    const int d = digit_value(c, true);
    if (d < 0) {
      error = "invalid hex digit at character " + std::to_string(k);
      return std::nullopt;
    }
    if (pending < 0) {
      pending = d;
    } else {
      out.push_back(static_cast<std::byte>(pending * 16 + d));
      pending = -1;
    }
  }
  if (pending >= 0) {
    error = "odd number of hex digits";
    return std::nullopt;
  }
  return out;
}

} // namespace amqp::cli
