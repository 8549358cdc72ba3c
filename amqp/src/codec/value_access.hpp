// Internal access to amqp::value's representation, for the codec.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "amqp/codec.hpp"
#include "amqp/result.hpp"
#include "amqp/value.hpp"
#include "codec/constructors.hpp"
#include "codec/reader.hpp"

namespace amqp {

struct value_access {
  static constexpr std::uint8_t decoded_flag = 1;

  static type& t(value& v) noexcept { return v.t_; }
  static std::uint8_t code(const value& v) noexcept { return v.code_; }
  static std::uint8_t aux(const value& v) noexcept { return v.elem_code_; }
  static bool decoded(const value& v) noexcept { return v.decoded_; }
  static type elem(const value& v) noexcept { return v.elem_; }
  static std::uint32_t count(const value& v) noexcept { return v.count_; }
  static const value* items(const value& v) noexcept { return v.u_.items; }
  static std::span<const std::byte> bytes(const value& v) noexcept {
    return {v.u_.bytes.p, v.u_.bytes.n};
  }
  static std::span<const std::byte> enc_payload(const value& v) noexcept {
    return {v.u_.enc.p, v.u_.enc.n};
  }
  static std::span<const std::byte> enc_descriptor(const value& v) noexcept {
    return {v.u_.enc.dp, v.u_.enc.dn};
  }
  static std::uint64_t u(const value& v) noexcept { return v.u_.u; }
  static std::int64_t i(const value& v) noexcept { return v.u_.i; }
  static const std::array<std::byte, 16>& fixed(const value& v) noexcept { return v.u_.fixed; }

  // Decoded-value constructors.
  static value make(type t, std::uint8_t code) noexcept {
    value v;
    init(v, t, code);
    return v;
  }
  // Makes the null value `v` a decoded value of type t from format code `code`.
  static void init(value& v, type t, std::uint8_t code) noexcept {
    v.t_ = t;
    v.code_ = code;
    v.decoded_ = true;
  }
  static void set_u(value& v, std::uint64_t x) noexcept { v.u_.u = x; }
  static void set_i(value& v, std::int64_t x) noexcept { v.u_.i = x; }
  static void set_b(value& v, bool x) noexcept { v.u_.b = x; }
  static void set_f(value& v, float x) noexcept { v.u_.f = x; }
  static void set_d(value& v, double x) noexcept { v.u_.d = x; }
  static void set_c(value& v, char32_t x) noexcept { v.u_.c = x; }
  static void set_fixed(value& v, const std::byte* p, std::size_t n) noexcept {
    v.u_.fixed = {};
    for (std::size_t k = 0; k < n; ++k) {
      v.u_.fixed[k] = p[k];
    }
  }
  static void set_bytes(value& v, std::span<const std::byte> s) noexcept {
    v.u_.bytes.p = s.data();
    v.u_.bytes.n = s.size();
  }
  static void set_count(value& v, std::uint32_t c) noexcept { v.count_ = c; }
  static void set_enc(value& v, std::span<const std::byte> payload,
                      std::span<const std::byte> descriptor) noexcept {
    v.u_.enc = {payload.data(), descriptor.data(), static_cast<std::uint32_t>(payload.size()),
                static_cast<std::uint32_t>(descriptor.size())};
  }
  static void set_aux(value& v, std::uint8_t c) noexcept { v.elem_code_ = c; }
  static void set_elem(value& v, type t) noexcept { v.elem_ = t; }

  // The decoded list or map at p (list8, list32, map8 or map32), which passed validation:
  // what decode_trusted(p) gives for it.
  static value compound_at(const std::byte* p) noexcept {
    const auto c = std::to_integer<std::uint8_t>(*p);
    const unsigned w = c == detail::code::list8 || c == detail::code::map8 ? 1 : 4;
    const std::uint32_t size =
        w == 1 ? std::to_integer<std::uint32_t>(p[1]) : detail::load_be32(p + 1);
    const std::uint32_t count =
        w == 1 ? std::to_integer<std::uint32_t>(p[2]) : detail::load_be32(p + 1 + w);
    value v =
        make(c == detail::code::list8 || c == detail::code::list32 ? type::list : type::map, c);
    v.count_ = count;
    set_bytes(v, {p + 1 + std::size_t{2} * w, size - w});
    return v;
  }
  // Sets the null value `v` to the value at p (constructor included), which passed
  // validation: what decode_trusted(p) gives. The encodings of typical map values (vbin8,
  // str8, sym8, long, timestamp, ulong) are read inline, the others out of line.
  static void decode_at(const std::byte* p, value& v) noexcept;

  // The payload of the binary, string or symbol at p, which passed validation.
  static std::span<const std::byte> variable_at(const std::byte* p) noexcept {
    const auto c = std::to_integer<std::uint8_t>(*p);
    if ((c & 0xF0) == 0xA0) { // vbin8, str8, sym8
      return {p + 2, std::to_integer<std::size_t>(p[1])};
    }
    return {p + 5, detail::load_be32(p + 1)};
  }

  // A range over `count` already validated values encoded one after another in `bytes`.
  static value_range sequence(std::span<const std::byte> bytes, std::uint32_t count) noexcept {
    value_range r;
    r.begin_.pos_ = bytes.data();
    r.begin_.end_ = bytes.data() + bytes.size();
    r.begin_.remaining_ = count;
    if (count != 0) {
      r.begin_.load();
    }
    return r;
  }
};

namespace detail {
// Reading bytes that passed validation (decode.cpp): no checks beyond debug assertions.
// Reads one value (constructor and body) at p and advances p past it.
value decode_trusted(const std::byte*& p) noexcept;
} // namespace detail

inline void value_access::decode_at(const std::byte* p, value& v) noexcept {
  const auto c = std::to_integer<std::uint8_t>(*p);
  const detail::ctor_info ci = detail::ctor_table[c];
  if (ci.step >= detail::short_binary || c == detail::code::long_ || c == detail::code::timestamp ||
      c == detail::code::ulong) {
    init(v, ci.t, c);
    if (ci.step >= detail::short_binary) {
      set_bytes(v, {p + 2, std::to_integer<std::size_t>(p[1])});
    } else if (c == detail::code::ulong) {
      set_u(v, detail::load_be64(p + 1));
    } else {
      set_i(v, static_cast<std::int64_t>(detail::load_be64(p + 1)));
    }
    return;
  }
  const std::byte* q = p;
  v = detail::decode_trusted(q);
}

namespace detail {
// Validates one value of untrusted bytes at p (constructor and body) and advances p past
// it. Returns errc{} or the error (decode_error, depth_exceeded, resource_limit).
errc validate_value(const std::byte*& p, const std::byte* end,
                    const decode_limits& limits) noexcept;
// Reads the body of a value of format code `c` (the constructor already read).
value decode_trusted_body(std::uint8_t c, const std::byte*& p) noexcept;
// Advances p past one value, or past the body of a value of format code `c`.
void trusted_skip(const std::byte*& p) noexcept;
void trusted_skip_body(std::uint8_t c, const std::byte*& p) noexcept;
// In `pairs` validated key-value pairs encoded one after another from p, the value of the
// first pair whose key is a string or symbol with text `key` (value.cpp).
std::optional<value> find_in_pairs(const std::byte* p, std::uint32_t pairs,
                                   std::string_view key) noexcept;
} // namespace detail

} // namespace amqp
