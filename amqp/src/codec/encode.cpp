// Encoding of AMQP 1.0 values. Decoded values are written back from their original bytes;
// built values get the smallest encoding (uint0, smalluint, list0, str8, list8, ...).
#include <bit>
#include <cstring>

#include "amqp/codec.hpp"
#include "codec/constructors.hpp"
#include "codec/encode_internal.hpp"
#include "codec/value_access.hpp"
#include "codec/writer.hpp"

namespace amqp {
namespace detail {
namespace {

using va = value_access;

constexpr std::size_t max32 = 0xFFFF'FFFFU;

// The element code, constructor bytes and body sizes of an array, as it will be written.
struct array_plan {
  std::uint8_t elem_code = 0;
  std::size_t ctor_size = 0; // element constructor: 1, or 0x00 + descriptor + code
  std::size_t payload = 0;   // bytes of all element bodies
};

result<std::size_t> body_size(const value& v, std::uint8_t c) noexcept;

bool fits_ubyte(std::uint64_t u) noexcept { return u <= 0xFF; }
bool fits_sbyte(std::int64_t i) noexcept { return i >= -128 && i <= 127; }

// Sum of the full encodings of the items of a built list or map.
result<std::size_t> items_size(const value& v) noexcept {
  std::size_t total = 0;
  const value* items = va::items(v);
  for (std::uint32_t k = 0; k < va::count(v); ++k) {
    auto s = full_size(items[k]);
    if (!s) {
      return s.error();
    }
    total += *s;
    if (total > max32) {
      return errc::invalid_argument;
    }
  }
  return total;
}

// The bytes of a list or map's elements (after the count field).
result<std::size_t> compound_payload(const value& v) noexcept {
  if (va::decoded(v)) {
    return va::bytes(v).size();
  }
  return items_size(v);
}

// The smallest element code able to hold every element of a built array.
result<array_plan> plan_array(const value& v) noexcept {
  array_plan plan;
  if (va::decoded(v)) {
    auto desc = va::enc_descriptor(v);
    plan.elem_code = va::aux(v);
    plan.ctor_size = desc.empty() ? 1 : 2 + desc.size();
    plan.payload = va::enc_payload(v).size();
    return plan;
  }
  const value* items = va::items(v);
  const std::uint32_t n = va::count(v);
  type t = va::elem(v);
  for (std::uint32_t k = 0; k < n; ++k) {
    if (items[k].kind() != t) {
      return errc::invalid_argument; // AMQP 1.0 §1.2: array elements share one type
    }
  }
  // Elements of a described array are written as their inner values after one shared
  // descriptor (taken from the first element).
  value first_desc;
  if (t == type::described) {
    if (n == 0) {
      return errc::invalid_argument; // no descriptor to write
    }
    first_desc = items[0].descriptor();
    t = items[0].described_value().kind();
    auto ds = full_size(first_desc);
    if (!ds) {
      return ds.error();
    }
    plan.ctor_size = 2 + *ds;
  } else {
    plan.ctor_size = 1;
  }
  auto inner = [&](std::uint32_t k) {
    return va::elem(v) == type::described ? items[k].described_value() : items[k];
  };
  bool small = true; // every element fits the 1-byte (or 8-bit size) form
  for (std::uint32_t k = 0; k < n && small; ++k) {
    value e = inner(k);
    if (e.kind() != t) {
      return errc::invalid_argument;
    }
    switch (t) {
    case type::uint:
    case type::ulong:
      small = fits_ubyte(va::u(e));
      break;
    case type::int_:
    case type::long_:
      small = fits_sbyte(va::i(e));
      break;
    case type::binary:
    case type::string:
    case type::symbol:
      small = va::bytes(e).size() <= 0xFF;
      break;
    case type::list:
    case type::map: {
      auto p = compound_payload(e);
      if (!p) {
        return p.error();
      }
      small = *p + 1 <= 0xFF && va::count(e) <= 0xFF;
      break;
    }
    case type::array: {
      auto p = plan_array(e);
      if (!p) {
        return p.error();
      }
      small = 1 + p->ctor_size + p->payload <= 0xFF && va::count(e) <= 0xFF;
      break;
    }
    default:
      break;
    }
  }
  switch (t) {
  case type::null:
    plan.elem_code = code::null;
    break;
  case type::boolean:
    plan.elem_code = code::boolean;
    break;
  case type::ubyte:
    plan.elem_code = code::ubyte;
    break;
  case type::ushort:
    plan.elem_code = code::ushort;
    break;
  case type::uint:
    plan.elem_code = small ? code::smalluint : code::uint;
    break;
  case type::ulong:
    plan.elem_code = small ? code::smallulong : code::ulong;
    break;
  case type::byte:
    plan.elem_code = code::byte;
    break;
  case type::short_:
    plan.elem_code = code::short_;
    break;
  case type::int_:
    plan.elem_code = small ? code::smallint : code::int_;
    break;
  case type::long_:
    plan.elem_code = small ? code::smalllong : code::long_;
    break;
  case type::float_:
    plan.elem_code = code::float_;
    break;
  case type::double_:
    plan.elem_code = code::double_;
    break;
  case type::decimal32:
    plan.elem_code = code::decimal32;
    break;
  case type::decimal64:
    plan.elem_code = code::decimal64;
    break;
  case type::decimal128:
    plan.elem_code = code::decimal128;
    break;
  case type::char_:
    plan.elem_code = code::char_;
    break;
  case type::timestamp:
    plan.elem_code = code::timestamp;
    break;
  case type::uuid:
    plan.elem_code = code::uuid;
    break;
  case type::binary:
    plan.elem_code = small ? code::vbin8 : code::vbin32;
    break;
  case type::string:
    plan.elem_code = small ? code::str8 : code::str32;
    break;
  case type::symbol:
    plan.elem_code = small ? code::sym8 : code::sym32;
    break;
  case type::list:
    plan.elem_code = small ? code::list8 : code::list32;
    break;
  case type::map:
    plan.elem_code = small ? code::map8 : code::map32;
    break;
  case type::array:
    plan.elem_code = small ? code::array8 : code::array32;
    break;
  case type::described:
    return errc::invalid_argument; // described inside described array elements
  }
  for (std::uint32_t k = 0; k < n; ++k) {
    auto s = body_size(inner(k), plan.elem_code);
    if (!s) {
      return s.error();
    }
    plan.payload += *s;
    if (plan.payload > max32) {
      return errc::invalid_argument;
    }
  }
  return plan;
}

// The format code a built value is written with: the smallest that holds it.
result<std::uint8_t> choose_code(const value& v) noexcept {
  switch (v.kind()) {
  case type::null:
    return code::null;
  case type::boolean:
    return v.as_bool() ? code::true_ : code::false_;
  case type::ubyte:
    return code::ubyte;
  case type::ushort:
    return code::ushort;
  case type::uint:
    return va::u(v) == 0 ? code::uint0 : fits_ubyte(va::u(v)) ? code::smalluint : code::uint;
  case type::ulong:
    return va::u(v) == 0 ? code::ulong0 : fits_ubyte(va::u(v)) ? code::smallulong : code::ulong;
  case type::byte:
    return code::byte;
  case type::short_:
    return code::short_;
  case type::int_:
    return fits_sbyte(va::i(v)) ? code::smallint : code::int_;
  case type::long_:
    return fits_sbyte(va::i(v)) ? code::smalllong : code::long_;
  case type::float_:
    return code::float_;
  case type::double_:
    return code::double_;
  case type::decimal32:
    return code::decimal32;
  case type::decimal64:
    return code::decimal64;
  case type::decimal128:
    return code::decimal128;
  case type::char_:
    return code::char_;
  case type::timestamp:
    return code::timestamp;
  case type::uuid:
    return code::uuid;
  case type::binary:
  case type::string:
  case type::symbol: {
    auto n = va::bytes(v).size();
    if (n > max32) {
      return errc::invalid_argument;
    }
    bool small = n <= 0xFF;
    if (v.kind() == type::binary) {
      return small ? code::vbin8 : code::vbin32;
    }
    if (v.kind() == type::string) {
      return small ? code::str8 : code::str32;
    }
    return small ? code::sym8 : code::sym32;
  }
  case type::list:
  case type::map: {
    if (v.kind() == type::list && va::count(v) == 0) {
      return code::list0;
    }
    auto p = compound_payload(v);
    if (!p) {
      return p.error();
    }
    bool small = *p + 1 <= 0xFF && va::count(v) <= 0xFF;
    if (v.kind() == type::list) {
      return small ? code::list8 : code::list32;
    }
    return small ? code::map8 : code::map32;
  }
  case type::array: {
    auto p = plan_array(v);
    if (!p) {
      return p.error();
    }
    return (1 + p->ctor_size + p->payload <= 0xFF && va::count(v) <= 0xFF) ? code::array8
                                                                           : code::array32;
  }
  case type::described:
    break;
  }
  return errc::invalid_argument;
}

// Bytes of the body (after the constructor) of `v` written with format code `c`.
result<std::size_t> body_size(const value& v, std::uint8_t c) noexcept {
  const ctor_info& ci = ctor_table[c];
  switch (ci.cat) {
  case category::fixed:
    return std::size_t{ci.width};
  case category::variable:
    return ci.width + va::bytes(v).size();
  case category::compound: {
    auto p = compound_payload(v);
    if (!p) {
      return p.error();
    }
    std::size_t s = 2 * std::size_t{ci.width} + *p;
    if (s - ci.width > max32) {
      return errc::invalid_argument;
    }
    return s;
  }
  case category::array: {
    auto p = plan_array(v);
    if (!p) {
      return p.error();
    }
    std::size_t s = 2 * std::size_t{ci.width} + p->ctor_size + p->payload;
    if (s - ci.width > max32) {
      return errc::invalid_argument;
    }
    return s;
  }
  case category::invalid:
    break;
  }
  return errc::invalid_argument;
}

} // namespace

result<std::size_t> full_size(const value& v) noexcept {
  if (v.kind() == type::described) {
    if (va::decoded(v)) {
      return 2 + va::enc_descriptor(v).size() + va::enc_payload(v).size();
    }
    auto d = full_size(va::items(v)[0]);
    if (!d) {
      return d.error();
    }
    auto i = full_size(va::items(v)[1]);
    if (!i) {
      return i.error();
    }
    return 1 + *d + *i;
  }
  std::uint8_t c = va::code(v);
  if (!va::decoded(v)) {
    auto cc = choose_code(v);
    if (!cc) {
      return cc.error();
    }
    c = *cc;
  }
  auto b = body_size(v, c);
  if (!b) {
    return b.error();
  }
  return 1 + *b;
}

namespace {

// Writes the body of `v` with format code `c`. Sizes were checked by the caller.
void write_body(const value& v, std::uint8_t c, writer& w) noexcept {
  const ctor_info& ci = ctor_table[c];
  switch (ci.cat) {
  case category::fixed:
    switch (ci.width) {
    case 0:
      return;
    case 1:
      w.u8(ci.t == type::boolean ? static_cast<std::uint8_t>(v.as_bool())
                                 : static_cast<std::uint8_t>(va::u(v)));
      return;
    case 2:
      w.u16(static_cast<std::uint16_t>(va::u(v)));
      return;
    case 4:
      if (ci.t == type::float_) {
        w.u32(std::bit_cast<std::uint32_t>(v.as_float()));
      } else if (ci.t == type::decimal32) {
        w.bytes(va::fixed(v).data(), 4);
      } else {
        w.u32(static_cast<std::uint32_t>(va::u(v)));
      }
      return;
    case 8:
      if (ci.t == type::double_) {
        w.u64(std::bit_cast<std::uint64_t>(v.as_double()));
      } else if (ci.t == type::decimal64) {
        w.bytes(va::fixed(v).data(), 8);
      } else {
        w.u64(va::u(v));
      }
      return;
    default:
      w.bytes(va::fixed(v).data(), 16);
      return;
    }
  case category::variable: {
    auto b = va::bytes(v);
    w.sized(ci.width, static_cast<std::uint32_t>(b.size()));
    w.bytes(b);
    return;
  }
  case category::compound: {
    std::size_t payload = *compound_payload(v);
    w.sized(ci.width, static_cast<std::uint32_t>(ci.width + payload));
    w.sized(ci.width, va::count(v));
    if (va::decoded(v)) {
      w.bytes(va::bytes(v));
    } else {
      const value* items = va::items(v);
      for (std::uint32_t k = 0; k < va::count(v); ++k) {
        write_full(items[k], w);
      }
    }
    return;
  }
  case category::array: {
    array_plan p = *plan_array(v);
    w.sized(ci.width, static_cast<std::uint32_t>(ci.width + p.ctor_size + p.payload));
    w.sized(ci.width, va::count(v));
    if (va::decoded(v)) {
      auto desc = va::enc_descriptor(v);
      if (!desc.empty()) {
        w.u8(code::described);
        w.bytes(desc);
      }
      w.u8(p.elem_code);
      w.bytes(va::enc_payload(v));
      return;
    }
    const value* items = va::items(v);
    const bool described = va::elem(v) == type::described;
    if (described) {
      w.u8(code::described);
      write_full(items[0].descriptor(), w);
    }
    w.u8(p.elem_code);
    for (std::uint32_t k = 0; k < va::count(v); ++k) {
      write_body(described ? items[k].described_value() : items[k], p.elem_code, w);
    }
    return;
  }
  case category::invalid:
    break;
  }
  AMQP_ASSERT(false);
}

} // namespace

void write_full(const value& v, writer& w) noexcept {
  if (v.kind() == type::described) {
    w.u8(code::described);
    if (va::decoded(v)) {
      w.bytes(va::enc_descriptor(v));
      w.u8(va::code(v));
      w.bytes(va::enc_payload(v));
    } else {
      write_full(va::items(v)[0], w);
      write_full(va::items(v)[1], w);
    }
    return;
  }
  std::uint8_t c = va::decoded(v) ? va::code(v) : *choose_code(v);
  w.u8(c);
  write_body(v, c, w);
}

} // namespace detail

result<std::size_t> encoded_size(const value& v) noexcept { return detail::full_size(v); }

result<std::size_t> encode(const value& v, std::span<std::byte> out) noexcept {
  auto n = detail::full_size(v);
  if (!n) {
    return n.error();
  }
  if (*n > out.size()) {
    return errc::buffer_too_small;
  }
  detail::writer w(out.first(*n));
  detail::write_full(v, w);
  AMQP_ASSERT(w.remaining() == 0);
  return *n;
}

result<void> encode_append(const value& v, std::vector<std::byte>& out) {
  auto n = detail::full_size(v);
  if (!n) {
    return n.error();
  }
  std::size_t at = out.size();
  out.resize(at + *n);
  detail::writer w(std::span<std::byte>(out).subspan(at));
  detail::write_full(v, w);
  return {};
}

} // namespace amqp
