// Decoding of AMQP 1.0 values (AMQP 1.0 §1.2 type encodings, types.xml).
//
// Two passes with different jobs: the validator (validator.hpp) checks untrusted bytes
// completely (bounds, counts, nesting, UTF-8, ASCII) without building anything; the
// `trusted_*` functions then read bytes that passed validation, with no checks beyond debug
// assertions. Iterating a decoded value uses the trusted functions, so accessing it can never
// fail.
#include <bit>
#include <cstring>

#include "amqp/assert.hpp"
#include "amqp/codec.hpp"
#include "codec/constructors.hpp"
#include "codec/reader.hpp"
#include "codec/validator.hpp"
#include "codec/value_access.hpp"

namespace amqp {
namespace detail {
namespace {

using va = value_access;

// AMQP 1.0 §1.6.17: char is a UTF-32 code point; surrogates and values above U+10FFFF are not
// Unicode scalar values.
bool is_scalar_value(std::uint32_t c) noexcept {
  return c <= 0x10FFFF && (c < 0xD800 || c > 0xDFFF);
}

} // namespace

// ---- validation of untrusted bytes ------------------------------------------------------

errc validator::body(std::uint8_t c, const std::byte*& p, const std::byte* end,
                     std::uint32_t depth) noexcept {
  if (c == code::described) {
    if (depth + 1 > lim_.max_depth) {
      return errc::depth_exceeded;
    }
    if (auto e = value(p, end, depth + 1); e != errc{}) { // the descriptor
      return e;
    }
    return value(p, end, depth + 1);
  }
  const ctor_info& ci = ctor_table[c];
  const auto left = static_cast<std::size_t>(end - p);
  switch (ci.cat) {
  case category::invalid:
    return errc::decode_error;
  case category::fixed:
    if (ci.width > left) {
      return errc::decode_error;
    }
    // types.xml: boolean 0x56 is 0x00 or 0x01; char is a Unicode scalar value.
    if (c == code::boolean && std::to_integer<unsigned>(p[0]) > 1) {
      return errc::decode_error;
    }
    if (c == code::char_ && !is_scalar_value(load_be32(p))) {
      return errc::decode_error;
    }
    p += ci.width;
    return {};
  case category::variable: {
    if (ci.width > left) {
      return errc::decode_error;
    }
    const std::size_t n = load_sized(p, ci.width);
    if (n > left - ci.width) {
      return errc::decode_error;
    }
    p += ci.width;
    const std::byte* s = p;
    p += n;
    return text_ok(ci.t, s, n) ? errc{} : errc::decode_error;
  }
  case category::compound:
  case category::array:
    return container(ci, p, end, depth);
  }
  return errc::decode_error;
}

errc validator::container(const ctor_info& ci, const std::byte*& p, const std::byte* end,
                          std::uint32_t depth) noexcept {
  compound_frame f;
  if (auto e = open(ci, p, end, depth, f); e != errc{}) {
    return e;
  }
  const std::byte* q = f.q;
  const std::byte* const sub_end = f.end;
  const std::uint32_t count = f.count;
  if (ci.cat == category::compound) {
    if (ci.t == type::map) {
      auto ignore = [](const std::byte*, const std::byte*) {};
      return map_pairs(f, depth, ignore);
    }
    for (std::uint32_t k = 0; k < count; ++k) {
      if (auto e = value(q, sub_end, depth + 1); e != errc{}) {
        return e;
      }
    }
    return q == sub_end ? errc{} : errc::decode_error; // nothing left over
  }
  // Array: one element constructor, then `count` bodies.
  if (q == sub_end) {
    return errc::decode_error;
  }
  auto ec = std::to_integer<std::uint8_t>(*q++);
  if (ec == code::described) {
    if (auto e = value(q, sub_end, depth + 1); e != errc{}) {
      return e;
    }
    if (q == sub_end) {
      return errc::decode_error;
    }
    ec = std::to_integer<std::uint8_t>(*q++);
    // A described element constructor whose inner constructor is described again is not
    // supported (no known implementation produces it).
    if (ec == code::described) {
      return errc::decode_error;
    }
  }
  const ctor_info& ei = ctor_table[ec];
  if (ei.cat == category::invalid) {
    return errc::decode_error;
  }
  if (ei.cat == category::fixed && ei.width == 0) {
    // Elements of no bytes: the count cannot be checked against the bytes present, so it
    // is charged to a budget for the whole value (many such arrays add up), and there is
    // nothing in the elements to validate.
    if (count > zero_width_left_) {
      return errc::resource_limit;
    }
    zero_width_left_ -= count;
    return q == sub_end ? errc{} : errc::decode_error;
  }
  if (count > static_cast<std::size_t>(sub_end - q)) {
    return errc::decode_error;
  }
  for (std::uint32_t k = 0; k < count; ++k) {
    if (auto e = body(ec, q, sub_end, depth + 1); e != errc{}) {
      return e;
    }
  }
  return q == sub_end ? errc{} : errc::decode_error;
}

// ---- reading validated bytes ------------------------------------------------------------

void trusted_skip_body(std::uint8_t c, const std::byte*& p) noexcept {
  while (c == code::described) {
    trusted_skip(p); // the descriptor
    c = std::to_integer<std::uint8_t>(*p++);
  }
  const ctor_info& ci = ctor_table[c];
  if (ci.cat == category::fixed) {
    p += ci.width;
  } else {
    p += ci.width + load_sized(p, ci.width);
  }
}

void trusted_skip(const std::byte*& p) noexcept {
  auto c = std::to_integer<std::uint8_t>(*p++);
  trusted_skip_body(c, p);
}

value decode_trusted_body(std::uint8_t c, const std::byte*& p) noexcept {
  // One value built in place (returned by NRVO): this runs for every field read.
  value v;
  if (c == code::described) {
    const std::byte* ds = p;
    trusted_skip(p);
    std::span<const std::byte> desc{ds, p};
    auto ic = std::to_integer<std::uint8_t>(*p++);
    const std::byte* is = p;
    trusted_skip_body(ic, p);
    va::init(v, type::described, ic);
    va::set_enc(v, {is, p}, desc);
    return v;
  }
  const ctor_info ci = ctor_table[c];
  va::init(v, ci.t, c);
  switch (ci.cat) {
  case category::fixed:
    switch (c) {
    case code::true_:
      va::set_b(v, true);
      break;
    case code::boolean:
      va::set_b(v, std::to_integer<unsigned>(p[0]) != 0);
      break;
    case code::false_:
      va::set_b(v, false);
      break;
    case code::null:
    case code::uint0:
    case code::ulong0:
      va::set_u(v, 0);
      break;
    case code::list0:
      va::set_bytes(v, {});
      break;
    case code::ubyte:
    case code::smalluint:
    case code::smallulong:
      va::set_u(v, std::to_integer<std::uint8_t>(p[0]));
      break;
    case code::byte:
    case code::smallint:
    case code::smalllong:
      va::set_i(v, static_cast<std::int8_t>(std::to_integer<std::uint8_t>(p[0])));
      break;
    case code::ushort:
      va::set_u(v, load_be16(p));
      break;
    case code::short_:
      va::set_i(v, static_cast<std::int16_t>(load_be16(p)));
      break;
    case code::uint:
      va::set_u(v, load_be32(p));
      break;
    case code::int_:
      va::set_i(v, static_cast<std::int32_t>(load_be32(p)));
      break;
    case code::float_:
      va::set_f(v, std::bit_cast<float>(load_be32(p)));
      break;
    case code::char_:
      va::set_c(v, static_cast<char32_t>(load_be32(p)));
      break;
    case code::ulong:
      va::set_u(v, load_be64(p));
      break;
    case code::long_:
    case code::timestamp:
      va::set_i(v, static_cast<std::int64_t>(load_be64(p)));
      break;
    case code::double_:
      va::set_d(v, std::bit_cast<double>(load_be64(p)));
      break;
    default: // decimal32/64/128, uuid: kept as wire bytes
      va::set_fixed(v, p, ci.width);
      break;
    }
    p += ci.width;
    return v;
  case category::variable: {
    const std::uint32_t n = load_sized(p, ci.width);
    p += ci.width;
    va::set_bytes(v, {p, n});
    p += n;
    return v;
  }
  case category::compound: {
    const std::uint32_t size = load_sized(p, ci.width);
    va::set_count(v, load_sized(p + ci.width, ci.width));
    va::set_bytes(v, {p + std::size_t{2} * ci.width, size - ci.width});
    p += ci.width + size;
    return v;
  }
  case category::array: {
    const std::uint32_t size = load_sized(p, ci.width);
    const std::byte* end = p + ci.width + size;
    va::set_count(v, load_sized(p + ci.width, ci.width));
    const std::byte* q = p + std::size_t{2} * ci.width;
    auto ec = std::to_integer<std::uint8_t>(*q++);
    std::span<const std::byte> desc;
    if (ec == code::described) {
      const std::byte* ds = q;
      trusted_skip(q);
      desc = {ds, q};
      ec = std::to_integer<std::uint8_t>(*q++);
    }
    va::set_aux(v, ec);
    va::set_elem(v, desc.empty() ? ctor_table[ec].t : type::described);
    va::set_enc(v, {q, end}, desc);
    p = end;
    return v;
  }
  case category::invalid:
    break;
  }
  AMQP_ASSERT(false);
  return v;
}

errc validate_value(const std::byte*& p, const std::byte* end,
                    const decode_limits& limits) noexcept {
  return validator(limits).value(p, end, 0);
}

value decode_trusted(const std::byte*& p) noexcept {
  auto c = std::to_integer<std::uint8_t>(*p++);
  return decode_trusted_body(c, p);
}

} // namespace detail

result<value> decode_value(std::span<const std::byte> in, std::size_t& consumed,
                           const decode_limits& limits) noexcept {
  consumed = 0;
  const std::byte* p = in.data();
  detail::validator check(limits);
  if (auto e = check.value(p, in.data() + in.size(), 0); e != errc{}) {
    return e;
  }
  consumed = static_cast<std::size_t>(p - in.data());
  const std::byte* q = in.data();
  return detail::decode_trusted(q);
}

result<value> decode_whole(std::span<const std::byte> in, const decode_limits& limits) noexcept {
  std::size_t n = 0;
  auto v = decode_value(in, n, limits);
  if (v && n != in.size()) {
    return errc::decode_error;
  }
  return v;
}

bool is_valid_utf8(std::string_view s) noexcept {
  return detail::is_valid_utf8(reinterpret_cast<const std::byte*>(s.data()), s.size());
}

namespace detail {

// RFC 3629 §4 well-formed UTF-8; the caller found a byte above 0x7F.
bool is_valid_utf8_slow(const std::byte* bytes, std::size_t size) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes);
  const unsigned char* end = p + size;
  while (p != end) {
    if (end - p >= 8) {
      std::uint64_t w;
      std::memcpy(&w, p, 8);
      if ((w & 0x8080808080808080ULL) == 0) {
        p += 8;
        continue;
      }
    }
    unsigned c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    std::size_t n;
    unsigned lo = 0x80;
    unsigned hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) {
        lo = 0xA0; // no overlong
      } else if (c == 0xED) {
        hi = 0x9F; // no surrogates
      }
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) {
        lo = 0x90; // no overlong
      } else if (c == 0xF4) {
        hi = 0x8F; // not above U+10FFFF
      }
    } else {
      return false;
    }
    if (static_cast<std::size_t>(end - p) < n + 1) {
      return false;
    }
    if (p[1] < lo || p[1] > hi) {
      return false;
    }
    for (std::size_t k = 2; k <= n; ++k) {
      if ((p[k] & 0xC0U) != 0x80U) {
        return false;
      }
    }
    p += n + 1;
  }
  return true;
}

} // namespace detail

} // namespace amqp
