// Helpers shared by the sources of amqp::iothub (not installed).
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "amqp/iothub/errors.hpp"
#include "amqp/value.hpp"

namespace amqp::iothub::detail {

// Stores `text` in `why` (when given) and returns the error code `e`.
inline std::error_code fail(std::string* why, errc e, std::string_view text) {
  if (why != nullptr) {
    why->assign(text);
  }
  return make_error_code(e);
}

[[nodiscard]] constexpr char lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

[[nodiscard]] inline std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = lower(c);
  }
  return out;
}

// ASCII case-insensitive equality.
[[nodiscard]] constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t k = 0; k < a.size(); ++k) {
    if (lower(a[k]) != lower(b[k])) {
      return false;
    }
  }
  return true;
}

[[nodiscard]] constexpr bool istarts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

[[nodiscard]] constexpr bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}
[[nodiscard]] constexpr bool is_alnum(char c) noexcept {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// A decimal number made of digits only (no sign, no spaces), without overflow.
[[nodiscard]] inline bool parse_u64(std::string_view s, std::uint64_t& out) noexcept {
  if (s.empty() || s.size() > 20) {
    return false;
  }
  for (char c : s) {
    if (!is_digit(c)) {
      return false;
    }
  }
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc{} && r.ptr == s.data() + s.size();
}

// The text of `s` for an error message: quoted, at most 64 characters, control and non-ASCII
// bytes as \xNN (so that texts stay printable and short whatever the input).
[[nodiscard]] inline std::string quote(std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "'";
  const std::size_t n = s.size() > 64 ? 64 : s.size();
  for (std::size_t k = 0; k < n; ++k) {
    const auto c = static_cast<unsigned char>(s[k]);
    if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += hex[c >> 4U];
      out += hex[c & 0xFU];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += s.size() > n ? "'..." : "'";
  return out;
}

// The text of a string or a symbol; nullopt for other types.
[[nodiscard]] inline std::optional<std::string_view> text_of(const value& v) noexcept {
  if (auto s = v.get_string()) {
    return s;
  }
  return v.get_symbol();
}

// Any integer type (signed or unsigned) that fits an int64; nullopt otherwise.
[[nodiscard]] inline std::optional<std::int64_t> integer_of(const value& v) noexcept {
  if (auto s = v.get_signed()) {
    return s;
  }
  if (auto u = v.get_unsigned(); u && *u <= static_cast<std::uint64_t>(INT64_MAX)) {
    return static_cast<std::int64_t>(*u);
  }
  return std::nullopt;
}

} // namespace amqp::iothub::detail
