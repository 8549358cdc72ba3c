// Encoding of AMQP 1.0 values. Decoded values are written back from their original bytes;
// built values get the smallest encoding (uint0, smalluint, list0, str8, list8, ...).
//
// Sizes are computed before writing (a container's size field comes first). Internally a
// size of 0 means "no encoding" (every encoding takes at least one byte), which keeps the
// hot paths free of error wrappers; the public functions turn it into errc::invalid_argument.
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

bool fits_ubyte(std::uint64_t u) noexcept {
  return u <= 0xFF;
}
bool fits_sbyte(std::int64_t i) noexcept {
  return i >= -128 && i <= 127;
}

// How a container is written.
struct measured {
  std::uint8_t code = 0;      // format code
  std::uint8_t elem_code = 0; // arrays: element format code
  std::size_t full = 0;       // bytes with the constructor; 0: no encoding
  std::size_t payload = 0;    // list/map: elements; array: element constructor + elements
};

// The format code of a built value that is not a container nor described: the smallest
// encoding that holds it, or 0 if none does.
std::uint8_t scalar_code(const value& v) noexcept {
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
    const auto n = va::bytes(v).size();
    if (n > max32) {
      return 0;
    }
    const bool small = n <= 0xFF;
    if (v.kind() == type::binary) {
      return small ? code::vbin8 : code::vbin32;
    }
    if (v.kind() == type::string) {
      return small ? code::str8 : code::str32;
    }
    return small ? code::sym8 : code::sym32;
  }
  default:
    return 0;
  }
}

bool is_container(type t) noexcept {
  return t == type::list || t == type::map || t == type::array || t == type::described;
}

// Size of a non-container value written with format code `c`, constructor included.
std::size_t scalar_size(const value& v, std::uint8_t c) noexcept {
  const ctor_info& ci = ctor_table[c];
  return 1 + ci.width + (ci.cat == category::variable ? va::bytes(v).size() : 0);
}

measured measure_container(const value& v) noexcept;

// The size of a built value that is not a container nor described, or 0 if it has none.
std::size_t built_scalar_size(const value& v) noexcept {
  switch (v.kind()) {
  case type::null:
  case type::boolean:
    return 1;
  case type::uint:
  case type::ulong:
    return va::u(v) == 0 ? 1 : fits_ubyte(va::u(v)) ? 2 : v.kind() == type::uint ? 5 : 9;
  case type::int_:
    return fits_sbyte(va::i(v)) ? 2 : 5;
  case type::long_:
    return fits_sbyte(va::i(v)) ? 2 : 9;
  case type::string:
  case type::symbol:
  case type::binary:
    return variable_size(va::bytes(v).size());
  default:
    return scalar_size(v, scalar_code(v));
  }
}

} // namespace

std::size_t size_of(const value& v) noexcept {
  if (!va::decoded(v)) {
    const type t = v.kind();
    if (t == type::string || t == type::symbol || t == type::binary) {
      return variable_size(va::bytes(v).size());
    }
    return is_container(t) ? measure_container(v).full : built_scalar_size(v);
  }
  if (!is_container(v.kind())) {
    return scalar_size(v, va::code(v));
  }
  return measure_container(v).full;
}

namespace {

// Sum of the full encodings of the items of a built list or map; 0 and `ok` false if one
// has no encoding.
std::size_t items_size(const value& v, bool& ok) noexcept {
  std::size_t total = 0;
  const value* items = va::items(v);
  for (std::uint32_t k = 0; k < va::count(v); ++k) {
    const std::size_t s = size_of(items[k]);
    total += s;
    if (s == 0 || total > max32) {
      ok = false;
      return 0;
    }
  }
  return total;
}

// The element code, constructor bytes and body sizes of an array, as it will be written.
struct array_plan {
  std::uint8_t elem_code = 0;
  std::size_t ctor_size = 0; // element constructor: 1, or 0x00 + descriptor + code
  std::size_t payload = 0;   // bytes of all element bodies
  bool ok = true;
};

array_plan plan_array(const value& v) noexcept;

// Bytes of the body (after the constructor) of `v` written with format code `c`; 0 with `ok`
// false if it cannot be.
std::size_t body_size(const value& v, std::uint8_t c, bool& ok) noexcept {
  const ctor_info& ci = ctor_table[c];
  switch (ci.cat) {
  case category::fixed:
    return ci.width;
  case category::variable:
    return ci.width + va::bytes(v).size();
  case category::compound: {
    const std::size_t p = va::decoded(v) ? va::bytes(v).size() : items_size(v, ok);
    return 2 * std::size_t{ci.width} + p;
  }
  case category::array: {
    array_plan p = plan_array(v);
    ok = ok && p.ok;
    return 2 * std::size_t{ci.width} + p.ctor_size + p.payload;
  }
  case category::invalid:
    break;
  }
  ok = false;
  return 0;
}

// The smallest element code able to hold every element of a built array; for a decoded
// array, its own.
array_plan plan_array(const value& v) noexcept {
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
  const bool described = va::elem(v) == type::described;
  type t = va::elem(v);
  // Elements of a described array are written as their inner values after one shared
  // descriptor (the first element's).
  if (described) {
    if (n == 0) {
      plan.ok = false; // no descriptor to write
      return plan;
    }
    const std::size_t ds = size_of(items[0].descriptor());
    if (ds == 0) {
      plan.ok = false;
      return plan;
    }
    plan.ctor_size = 2 + ds;
    t = items[0].described_value().kind();
  } else {
    plan.ctor_size = 1;
  }
  auto inner = [&](std::uint32_t k) { return described ? items[k].described_value() : items[k]; };
  bool small = true; // every element fits the 1-byte (or 8-bit size) form
  for (std::uint32_t k = 0; k < n; ++k) {
    // AMQP 1.0 §1.2: array elements share one type.
    if (items[k].kind() != va::elem(v)) {
      plan.ok = false;
      return plan;
    }
    const value e = inner(k);
    if (e.kind() != t) {
      plan.ok = false;
      return plan;
    }
    switch (t) {
    case type::uint:
    case type::ulong:
      small = small && fits_ubyte(va::u(e));
      break;
    case type::int_:
    case type::long_:
      small = small && fits_sbyte(va::i(e));
      break;
    case type::binary:
    case type::string:
    case type::symbol:
      small = small && va::bytes(e).size() <= 0xFF;
      break;
    case type::list:
    case type::map:
    case type::array: {
      bool ok = true;
      const std::size_t b = body_size(e, t == type::array ? code::array8 : code::list8, ok);
      if (!ok) {
        plan.ok = false;
        return plan;
      }
      small = small && b - 1 <= 0xFF && va::count(e) <= 0xFF;
      break;
    }
    case type::described:
      plan.ok = false; // described values as the inner values of described elements
      return plan;
    default:
      break;
    }
  }
  switch (t) {
  case type::uint:
    plan.elem_code = small ? code::smalluint : code::uint;
    break;
  case type::ulong:
    plan.elem_code = small ? code::smallulong : code::ulong;
    break;
  case type::int_:
    plan.elem_code = small ? code::smallint : code::int_;
    break;
  case type::long_:
    plan.elem_code = small ? code::smalllong : code::long_;
    break;
  case type::boolean:
    plan.elem_code = code::boolean; // true/false (0x41/0x42) carry no body
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
    plan.elem_code = small ? code::list8 : code::list32; // list0 carries no body
    break;
  case type::map:
    plan.elem_code = small ? code::map8 : code::map32;
    break;
  case type::array:
    plan.elem_code = small ? code::array8 : code::array32;
    break;
  default: { // fixed-width types have one encoding
    // An empty array still names its element type (enumerators null..uuid, in order).
    static constexpr std::uint8_t fixed_codes[] = {
        code::null,   code::boolean,   code::ubyte,     code::ushort,    code::uint,
        code::ulong,  code::byte,      code::short_,    code::int_,      code::long_,
        code::float_, code::double_,   code::decimal32, code::decimal64, code::decimal128,
        code::char_,  code::timestamp, code::uuid};
    plan.elem_code = fixed_codes[static_cast<std::size_t>(t)];
    break;
  }
  }
  for (std::uint32_t k = 0; k < n; ++k) {
    bool ok = true;
    plan.payload += body_size(inner(k), plan.elem_code, ok);
    if (!ok || plan.payload > max32) {
      plan.ok = false;
      return plan;
    }
  }
  return plan;
}

measured measure_container(const value& v) noexcept {
  measured m;
  const bool decoded = va::decoded(v);
  switch (v.kind()) {
  case type::described:
    if (decoded) {
      m.full = 2 + va::enc_descriptor(v).size() + va::enc_payload(v).size();
    } else {
      const std::size_t d = size_of(va::items(v)[0]);
      const std::size_t i = size_of(va::items(v)[1]);
      m.full = (d == 0 || i == 0) ? 0 : 1 + d + i;
    }
    return m;
  case type::list:
  case type::map: {
    bool ok = true;
    m.payload = decoded ? va::bytes(v).size() : items_size(v, ok);
    if (!ok) {
      return m;
    }
    if (decoded) {
      m.code = va::code(v);
    } else if (v.kind() == type::list && va::count(v) == 0) {
      m.code = code::list0;
      m.full = 1;
      return m;
    } else {
      const bool small = m.payload + 1 <= 0xFF && va::count(v) <= 0xFF;
      m.code = v.kind() == type::list ? (small ? code::list8 : code::list32)
                                      : (small ? code::map8 : code::map32);
    }
    break;
  }
  default: { // array
    array_plan p = plan_array(v);
    if (!p.ok) {
      return m;
    }
    m.payload = p.ctor_size + p.payload;
    m.elem_code = p.elem_code;
    m.code = decoded                                           ? va::code(v)
             : (1 + m.payload <= 0xFF && va::count(v) <= 0xFF) ? code::array8
                                                               : code::array32;
    break;
  }
  }
  if (m.code == code::list0) {
    m.full = 1;
    return m;
  }
  const unsigned w = ctor_table[m.code].width;
  if (m.payload + w <= max32) {
    m.full = 1 + 2 * std::size_t{w} + m.payload;
  }
  return m;
}

void write_body(const value& v, std::uint8_t c, writer& w) noexcept;

// The elements of a list or map (after the count).
void write_elements(const value& v, writer& w) noexcept {
  if (va::decoded(v)) {
    w.bytes(va::bytes(v));
    return;
  }
  const value* items = va::items(v);
  for (std::uint32_t k = 0; k < va::count(v); ++k) {
    write_value(items[k], w);
  }
}

// The element constructor and bodies of an array (after the count).
void write_array_elements(const value& v, std::uint8_t elem_code, writer& w) noexcept {
  if (va::decoded(v)) {
    auto desc = va::enc_descriptor(v);
    if (!desc.empty()) {
      w.u8(code::described);
      w.bytes(desc);
    }
    w.u8(elem_code);
    w.bytes(va::enc_payload(v));
    return;
  }
  const value* items = va::items(v);
  const bool described = va::elem(v) == type::described;
  if (described) {
    w.u8(code::described);
    write_value(items[0].descriptor(), w);
  }
  w.u8(elem_code);
  for (std::uint32_t k = 0; k < va::count(v); ++k) {
    write_body(described ? items[k].described_value() : items[k], elem_code, w);
  }
}

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
    bool ok = true;
    const std::size_t body = body_size(v, c, ok);
    w.sized(ci.width, static_cast<std::uint32_t>(body - ci.width));
    w.sized(ci.width, va::count(v));
    write_elements(v, w);
    return;
  }
  case category::array: {
    const array_plan p = plan_array(v);
    w.sized(ci.width, static_cast<std::uint32_t>(ci.width + p.ctor_size + p.payload));
    w.sized(ci.width, va::count(v));
    write_array_elements(v, p.elem_code, w);
    return;
  }
  case category::invalid:
    break;
  }
  AMQP_ASSERT(false);
}

void write_container(const value& v, const measured& m, writer& w) noexcept {
  if (v.kind() == type::described) {
    w.u8(code::described);
    if (va::decoded(v)) {
      w.bytes(va::enc_descriptor(v));
      w.u8(va::code(v));
      w.bytes(va::enc_payload(v));
    } else {
      write_value(va::items(v)[0], w);
      write_value(va::items(v)[1], w);
    }
    return;
  }
  w.u8(m.code);
  if (m.code == code::list0) {
    return;
  }
  const unsigned width = ctor_table[m.code].width;
  w.sized(width, static_cast<std::uint32_t>(width + m.payload));
  w.sized(width, va::count(v));
  if (v.kind() == type::array) {
    write_array_elements(v, m.elem_code, w);
  } else {
    write_elements(v, w);
  }
}

} // namespace

namespace {

// Writes a built value that is not a container nor described, in its smallest encoding.
void write_built_scalar(const value& v, writer& w) noexcept {
  switch (v.kind()) {
  case type::string:
  case type::symbol:
  case type::binary:
    write_variable(v.kind(), va::bytes(v), w);
    return;
  case type::long_:
    if (fits_sbyte(va::i(v))) {
      w.u8(code::smalllong);
      w.u8(static_cast<std::uint8_t>(va::i(v)));
    } else {
      w.u8(code::long_);
      w.u64(va::u(v));
    }
    return;
  case type::timestamp:
    w.u8(code::timestamp);
    w.u64(va::u(v));
    return;
  default: {
    const std::uint8_t c = scalar_code(v);
    w.u8(c);
    write_body(v, c, w);
    return;
  }
  }
}

} // namespace

namespace {

[[gnu::noinline]] void write_other(const value& v, writer& w) noexcept {
  if (is_container(v.kind())) {
    write_container(v, measure_container(v), w);
  } else if (va::decoded(v)) {
    w.u8(va::code(v));
    write_body(v, va::code(v), w);
  } else {
    write_built_scalar(v, w);
  }
}

} // namespace

void write_value(const value& v, writer& w) noexcept {
  // Built strings, symbols and binaries are most of what is written (map keys and values):
  // keep their path short, everything else out of line.
  const type t = v.kind();
  if (!va::decoded(v) && (t == type::string || t == type::symbol || t == type::binary)) {
    write_variable(t, va::bytes(v), w);
    return;
  }
  write_other(v, w);
}

std::size_t write_checked(const value& v, writer& w) noexcept {
  if (!is_container(v.kind())) {
    const std::size_t n = size_of(v);
    if (n == 0 || n > w.remaining()) {
      return n == 0 ? 0 : max_size;
    }
    write_value(v, w);
    return n;
  }
  const measured m = measure_container(v);
  if (m.full == 0 || m.full > w.remaining()) {
    return m.full == 0 ? 0 : max_size;
  }
  write_container(v, m, w);
  return m.full;
}

} // namespace detail

result<std::size_t> encoded_size(const value& v) noexcept {
  const std::size_t n = detail::size_of(v);
  if (n == 0) {
    return errc::invalid_argument;
  }
  return n;
}

result<std::size_t> encode(const value& v, std::span<std::byte> out) noexcept {
  detail::writer w(out);
  const std::size_t n = detail::write_checked(v, w);
  if (n == 0) {
    return errc::invalid_argument;
  }
  if (n == detail::max_size) {
    return errc::buffer_too_small;
  }
  return n;
}

result<void> encode_append(const value& v, std::vector<std::byte>& out) {
  const std::size_t n = detail::size_of(v);
  if (n == 0) {
    return errc::invalid_argument;
  }
  const std::size_t at = out.size();
  out.resize(at + n);
  detail::writer w(std::span<std::byte>(out).subspan(at));
  detail::write_value(v, w);
  return {};
}

} // namespace amqp
