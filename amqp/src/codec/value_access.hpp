// Internal access to amqp::value's representation, for the codec.
#pragma once

#include <cstddef>
#include <cstdint>

#include "amqp/codec.hpp"
#include "amqp/result.hpp"
#include "amqp/value.hpp"

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
    v.t_ = t;
    v.code_ = code;
    v.decoded_ = true;
    return v;
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
// Validates one value of untrusted bytes at p (constructor and body) and advances p past
// it. Returns errc{} or the error (decode_error, depth_exceeded, resource_limit).
errc validate_value(const std::byte*& p, const std::byte* end,
                    const decode_limits& limits) noexcept;
// Reading bytes that passed validation (decode.cpp): no checks beyond debug assertions.
// Reads one value (constructor and body) at p and advances p past it.
value decode_trusted(const std::byte*& p) noexcept;
// Reads the body of a value of format code `c` (the constructor already read).
value decode_trusted_body(std::uint8_t c, const std::byte*& p) noexcept;
// Advances p past one value, or past the body of a value of format code `c`.
void trusted_skip(const std::byte*& p) noexcept;
void trusted_skip_body(std::uint8_t c, const std::byte*& p) noexcept;
} // namespace detail

} // namespace amqp
