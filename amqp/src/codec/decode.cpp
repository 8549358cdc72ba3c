// Decoding of AMQP 1.0 values (AMQP 1.0 §1.2 type encodings, types.xml).
#include <bit>
#include <cstring>

#include "amqp/assert.hpp"
#include "amqp/codec.hpp"
#include "codec/constructors.hpp"
#include "codec/reader.hpp"
#include "codec/value_access.hpp"

namespace amqp {
namespace detail {
namespace {

using va = value_access;

bool is_ascii(std::span<const std::byte> s) noexcept {
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    if ((w & 0x8080808080808080ULL) != 0) {
      return false;
    }
  }
  for (; i < s.size(); ++i) {
    if ((std::to_integer<unsigned>(s[i]) & 0x80U) != 0) {
      return false;
    }
  }
  return true;
}

// AMQP 1.0 §1.6.17: char is a UTF-32 code point; surrogates and values above U+10FFFF are not
// Unicode scalar values.
bool is_scalar_value(std::uint32_t c) noexcept {
  return c <= 0x10FFFF && (c < 0xD800 || c > 0xDFFF);
}

template <bool Validate>
result<value> decode_body(std::uint8_t c, reader& r, std::uint32_t depth,
                          const decode_limits& lim) noexcept;

template <bool Validate>
result<value> decode_any(reader& r, std::uint32_t depth, const decode_limits& lim) noexcept {
  auto c = r.u8();
  if (!c) {
    return c.error();
  }
  return decode_body<Validate>(*c, r, depth, lim);
}

template <bool Validate>
result<value> decode_fixed(std::uint8_t c, const ctor_info& ci, reader& r) noexcept {
  auto b = r.bytes(ci.width);
  if (!b) {
    return b.error();
  }
  const std::byte* p = b->data();
  value v = va::make(ci.t, c);
  switch (c) {
  case code::null:
    break;
  case code::true_:
    va::set_b(v, true);
    break;
  case code::false_:
    va::set_b(v, false);
    break;
  case code::boolean: {
    auto x = std::to_integer<unsigned>(p[0]);
    // AMQP 1.0 types.xml: boolean 0x56 is 0x00 (false) or 0x01 (true).
    if (Validate && x > 1) {
      return errc::decode_error;
    }
    va::set_b(v, x != 0);
    break;
  }
  case code::uint0:
  case code::ulong0:
    va::set_u(v, 0);
    break;
  case code::list0:
    va::set_count(v, 0);
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
  case code::char_: {
    auto cp = load_be32(p);
    if (Validate && !is_scalar_value(cp)) {
      return errc::decode_error;
    }
    va::set_c(v, static_cast<char32_t>(cp));
    break;
  }
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
  return v;
}

template <bool Validate>
result<value> decode_described(reader& r, std::uint32_t depth, const decode_limits& lim) noexcept {
  if (Validate && depth + 1 > lim.max_depth) {
    return errc::depth_exceeded;
  }
  const std::byte* ds = r.pos();
  auto d = decode_any<Validate>(r, depth + 1, lim);
  if (!d) {
    return d.error();
  }
  std::span<const std::byte> desc{ds, r.pos()};
  auto ic = r.u8();
  if (!ic) {
    return ic.error();
  }
  const std::byte* is = r.pos();
  auto inner = decode_body<Validate>(*ic, r, depth + 1, lim);
  if (!inner) {
    return inner.error();
  }
  value v = va::make(type::described, *ic);
  va::set_enc(v, {is, r.pos()}, desc);
  return v;
}

template <bool Validate>
result<value> decode_body(std::uint8_t c, reader& r, std::uint32_t depth,
                          const decode_limits& lim) noexcept {
  if (c == code::described) {
    return decode_described<Validate>(r, depth, lim);
  }
  const ctor_info& ci = ctor_table[c];
  switch (ci.cat) {
  case category::invalid:
    return errc::decode_error;
  case category::fixed:
    return decode_fixed<Validate>(c, ci, r);
  case category::variable: {
    auto n = r.sized(ci.width);
    if (!n) {
      return n.error();
    }
    auto b = r.bytes(*n);
    if (!b) {
      return b.error();
    }
    if constexpr (Validate) {
      if (ci.t == type::string) {
        std::string_view s{reinterpret_cast<const char*>(b->data()), b->size()};
        if (!is_valid_utf8(s)) {
          return errc::decode_error;
        }
      } else if (ci.t == type::symbol && !is_ascii(*b)) {
        return errc::decode_error;
      }
    }
    value v = va::make(ci.t, c);
    va::set_bytes(v, *b);
    return v;
  }
  case category::compound: {
    auto size = r.sized(ci.width);
    if (!size) {
      return size.error();
    }
    auto body = r.bytes(*size);
    if (!body) {
      return body.error();
    }
    reader sub(*body);
    auto count = sub.sized(ci.width);
    if (!count) {
      return count.error();
    }
    value v = va::make(ci.t, c);
    va::set_count(v, *count);
    va::set_bytes(v, {sub.pos(), sub.remaining()});
    if constexpr (Validate) {
      // Every element takes at least one byte: check the count before iterating.
      if (*count > sub.remaining() || (ci.t == type::map && *count % 2 != 0)) {
        return errc::decode_error;
      }
      if (*count != 0 && depth + 1 > lim.max_depth) {
        return errc::depth_exceeded;
      }
      for (std::uint32_t k = 0; k < *count; ++k) {
        auto e = decode_any<true>(sub, depth + 1, lim);
        if (!e) {
          return e.error();
        }
      }
      if (!sub.empty()) {
        return errc::decode_error; // bytes left over after `count` elements
      }
    }
    return v;
  }
  case category::array: {
    auto size = r.sized(ci.width);
    if (!size) {
      return size.error();
    }
    auto body = r.bytes(*size);
    if (!body) {
      return body.error();
    }
    reader sub(*body);
    auto count = sub.sized(ci.width);
    if (!count) {
      return count.error();
    }
    if (Validate && depth + 1 > lim.max_depth) {
      return errc::depth_exceeded;
    }
    auto ec = sub.u8();
    if (!ec) {
      return ec.error();
    }
    std::span<const std::byte> desc;
    if (*ec == code::described) {
      const std::byte* ds = sub.pos();
      auto d = decode_any<Validate>(sub, depth + 1, lim);
      if (!d) {
        return d.error();
      }
      desc = {ds, sub.pos()};
      ec = sub.u8();
      if (!ec) {
        return ec.error();
      }
      // A described element constructor whose inner constructor is described again is not
      // supported (no known implementation produces it).
      if (*ec == code::described) {
        return errc::decode_error;
      }
    }
    const ctor_info& ei = ctor_table[*ec];
    if (ei.cat == category::invalid) {
      return errc::decode_error;
    }
    if constexpr (Validate) {
      if (ei.cat == category::fixed && ei.width == 0) {
        if (*count > lim.max_zero_width_elements) {
          return errc::resource_limit;
        }
      } else if (*count > sub.remaining()) {
        return errc::decode_error;
      }
    }
    value v = va::make(type::array, c);
    va::set_count(v, *count);
    va::set_aux(v, *ec);
    va::set_elem(v, desc.empty() ? ei.t : type::described);
    va::set_enc(v, {sub.pos(), sub.remaining()}, desc);
    if constexpr (Validate) {
      for (std::uint32_t k = 0; k < *count; ++k) {
        auto e = decode_body<true>(*ec, sub, depth + 1, lim);
        if (!e) {
          return e.error();
        }
      }
      if (!sub.empty()) {
        return errc::decode_error;
      }
    }
    return v;
  }
  }
  return errc::decode_error;
}

constexpr decode_limits trusted_limits{};

} // namespace

value decode_trusted(const std::byte*& pos, const std::byte* end) noexcept {
  reader r(pos, end);
  auto v = decode_any<false>(r, 0, trusted_limits);
  AMQP_ASSERT(v.has_value());
  pos = r.pos();
  return *v;
}

value decode_trusted_body(std::uint8_t c, const std::byte*& pos, const std::byte* end) noexcept {
  reader r(pos, end);
  auto v = decode_body<false>(c, r, 0, trusted_limits);
  AMQP_ASSERT(v.has_value());
  pos = r.pos();
  return *v;
}

} // namespace detail

result<value> decode_value(std::span<const std::byte> in, std::size_t& consumed,
                           const decode_limits& limits) noexcept {
  detail::reader r(in);
  auto v = detail::decode_any<true>(r, 0, limits);
  consumed = v ? static_cast<std::size_t>(r.pos() - in.data()) : 0;
  return v;
}

result<value> decode_whole(std::span<const std::byte> in, const decode_limits& limits) noexcept {
  std::size_t n = 0;
  auto v = decode_value(in, n, limits);
  if (v && n != in.size()) {
    return errc::decode_error;
  }
  return v;
}

// RFC 3629 §4 well-formed UTF-8, with an ASCII fast path.
bool is_valid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char* end = p + s.size();
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

} // namespace amqp
