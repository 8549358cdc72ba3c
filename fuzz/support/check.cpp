// The independent re-encoder behind the fuzz targets' checks (see check.hpp).
#include "support/check.hpp"

#include <bit>
#include <optional>
#include <string_view>

#include "amqp/codec.hpp"

namespace amqp::fuzz {
namespace {

// AMQP 1.0 types.xml: the type every format code decodes to (null for invalid codes and for
// 0x00, described, which is handled separately).
std::optional<type> type_of_code(std::uint8_t c) noexcept {
  switch (c) {
  case 0x40:
    return type::null;
  case 0x41:
  case 0x42:
  case 0x56:
    return type::boolean;
  case 0x50:
    return type::ubyte;
  case 0x51:
    return type::byte;
  case 0x43:
  case 0x52:
  case 0x70:
    return type::uint;
  case 0x44:
  case 0x53:
  case 0x80:
    return type::ulong;
  case 0x54:
  case 0x71:
    return type::int_;
  case 0x55:
  case 0x81:
    return type::long_;
  case 0x60:
    return type::ushort;
  case 0x61:
    return type::short_;
  case 0x72:
    return type::float_;
  case 0x73:
    return type::char_;
  case 0x74:
    return type::decimal32;
  case 0x82:
    return type::double_;
  case 0x83:
    return type::timestamp;
  case 0x84:
    return type::decimal64;
  case 0x94:
    return type::decimal128;
  case 0x98:
    return type::uuid;
  case 0xa0:
  case 0xb0:
    return type::binary;
  case 0xa1:
  case 0xb1:
    return type::string;
  case 0xa3:
  case 0xb3:
    return type::symbol;
  case 0x45:
  case 0xc0:
  case 0xd0:
    return type::list;
  case 0xc1:
  case 0xd1:
    return type::map;
  case 0xe0:
  case 0xf0:
    return type::array;
  default:
    return std::nullopt;
  }
}

void put(std::vector<std::byte>& out, std::uint64_t x, unsigned n) {
  for (unsigned k = n; k-- > 0;) {
    out.push_back(static_cast<std::byte>((x >> (8 * k)) & 0xFFU));
  }
}

void put(std::vector<std::byte>& out, std::span<const std::byte> b) {
  out.insert(out.end(), b.begin(), b.end());
}

template <std::size_t N> void put(std::vector<std::byte>& out, const std::array<std::byte, N>& b) {
  out.insert(out.end(), b.begin(), b.end());
}

bool is_ascii(std::string_view s) noexcept {
  for (char ch : s) {
    if ((static_cast<unsigned char>(ch) & 0x80U) != 0) {
      return false;
    }
  }
  return true;
}

// Size and count fields of width `w` (1 or 4), filled in by finish().
struct sized_body {
  std::size_t at;
  unsigned w;
};

sized_body start(std::vector<std::byte>& out, unsigned w) {
  sized_body s{out.size(), w};
  out.resize(out.size() + w); // size, patched by finish()
  return s;
}

void finish(std::vector<std::byte>& out, const sized_body& s) {
  std::size_t size = out.size() - s.at - s.w;
  require(s.w == 4 || size <= 0xFF);
  require(size <= 0xFFFF'FFFFU);
  for (unsigned k = 0; k < s.w; ++k) {
    out[s.at + k] = static_cast<std::byte>((size >> (8 * (s.w - 1 - k))) & 0xFFU);
  }
}

// The value of the first map entry whose key is a string or symbol with text `key`.
std::optional<value> expected_find(const value& map, std::string_view key) {
  auto r = map.items();
  for (auto it = r.begin(); it != r.end(); ++it) {
    value k = *it;
    ++it;
    if ((k.is(type::string) || k.is(type::symbol)) && k.as_string() == key) {
      return *it;
    }
  }
  return std::nullopt;
}

void check_find(const value& map, const value& key) {
  std::string_view text = key.as_string();
  auto got = map.find(text);
  auto want = expected_find(map, text);
  require(got.has_value() && want.has_value() && *got == *want);
}

void reencode_body(const value& v, std::uint8_t c, std::vector<std::byte>& out);

void reencode_compound(const value& v, std::uint8_t c, std::vector<std::byte>& out) {
  const unsigned w = (c == 0xc0 || c == 0xc1) ? 1 : 4;
  auto body = start(out, w);
  put(out, v.count(), w);
  std::uint32_t n = 0;
  std::optional<value> first_text_key;
  std::optional<value> last_text_key;
  auto r = v.items();
  require(r.size() == v.count());
  for (auto it = r.begin(); it != r.end(); ++it, ++n) {
    const value& e = *it;
    if (v.is(type::map) && n % 2 == 0 && (e.is(type::string) || e.is(type::symbol))) {
      if (!first_text_key) {
        first_text_key = e;
      }
      last_text_key = e;
    }
    reencode(e, out);
  }
  require(n == v.count());
  require(!v.is(type::map) || n % 2 == 0);
  if (first_text_key) {
    check_find(v, *first_text_key);
    check_find(v, *last_text_key);
  }
  if (!v.is(type::map)) {
    require(!v.find("").has_value());
  }
  finish(out, body);
}

void reencode_array(const value& v, std::uint8_t c, std::vector<std::byte>& out) {
  const unsigned w = c == 0xe0 ? 1 : 4;
  const type et = v.element_type();
  auto r = v.items();
  require(r.size() == v.count());
  if (r.empty()) {
    // The element constructor of an empty array is not observable: take it from the library.
    std::vector<std::byte> enc;
    require(encode_append(v, enc).has_value());
    require(enc.size() >= 1 + 2 * w + 1 && std::to_integer<std::uint8_t>(enc[0]) == c);
    put(out, std::span<const std::byte>(enc).subspan(1));
    return;
  }
  auto body = start(out, w);
  put(out, v.count(), w);
  const value first = *r.begin();
  require(first.kind() == et);
  const std::uint8_t ec = first.format_code();
  std::vector<std::byte> descriptor;
  if (et == type::described) {
    reencode(first.descriptor(), descriptor);
    out.push_back(std::byte{0x00});
    put(out, descriptor);
  }
  out.push_back(static_cast<std::byte>(ec));
  std::uint32_t n = 0;
  std::vector<std::byte> d;
  for (auto it = r.begin(); it != r.end(); ++it, ++n) {
    const value& e = *it;
    require(e.kind() == et && e.format_code() == ec && e.is_decoded());
    if (et == type::described) {
      // Every element shares the array's one descriptor.
      d.clear();
      reencode(e.descriptor(), d);
      require(same_bytes(d, descriptor));
      const value inner = e.described_value();
      require(inner.format_code() == ec);
      if (e.descriptor().is(type::ulong)) {
        require(e.descriptor_code() == e.descriptor().as_ulong());
      } else {
        require(!e.descriptor_code().has_value());
      }
      reencode_body(inner, ec, out);
    } else {
      reencode_body(e, ec, out);
    }
  }
  require(n == v.count());
  finish(out, body);
}

void reencode_body(const value& v, std::uint8_t c, std::vector<std::byte>& out) {
  require(v.is_decoded());
  auto t = type_of_code(c);
  require(t.has_value() && v.kind() == *t);
  require(type_from_name(type_name(v.kind())) == v.kind());
  require(v.count() == 0 || v.is(type::list) || v.is(type::map) || v.is(type::array));
  require(v.get_unsigned().has_value() ==
          (v.is(type::ubyte) || v.is(type::ushort) || v.is(type::uint) || v.is(type::ulong)));
  require(v.get_signed().has_value() ==
          (v.is(type::byte) || v.is(type::short_) || v.is(type::int_) || v.is(type::long_)));
  require(v.get_string().has_value() == v.is(type::string));
  require(v.get_symbol().has_value() == v.is(type::symbol));
  require(v.get_binary().has_value() == v.is(type::binary));
  require(!v.descriptor_code().has_value());
  switch (c) {
  case 0x40:
    require(v.is_null());
    return;
  case 0x41:
    require(v.as_bool());
    return;
  case 0x42:
    require(!v.as_bool());
    return;
  case 0x56:
    put(out, v.as_bool() ? 1 : 0, 1);
    return;
  case 0x43:
    require(v.as_uint() == 0);
    return;
  case 0x44:
    require(v.as_ulong() == 0);
    return;
  case 0x45:
    require(v.count() == 0 && v.items().empty());
    return;
  case 0x50:
    put(out, v.as_ubyte(), 1);
    require(*v.get_unsigned() == v.as_ubyte());
    return;
  case 0x51:
    put(out, static_cast<std::uint8_t>(v.as_byte()), 1);
    require(*v.get_signed() == v.as_byte());
    return;
  case 0x52:
    require(v.as_uint() <= 0xFF);
    put(out, v.as_uint(), 1);
    return;
  case 0x53:
    require(v.as_ulong() <= 0xFF);
    put(out, v.as_ulong(), 1);
    return;
  case 0x54:
    require(v.as_int() >= -128 && v.as_int() <= 127);
    put(out, static_cast<std::uint8_t>(v.as_int()), 1);
    return;
  case 0x55:
    require(v.as_long() >= -128 && v.as_long() <= 127);
    put(out, static_cast<std::uint8_t>(v.as_long()), 1);
    return;
  case 0x60:
    put(out, v.as_ushort(), 2);
    require(*v.get_unsigned() == v.as_ushort());
    return;
  case 0x61:
    put(out, static_cast<std::uint16_t>(v.as_short()), 2);
    require(*v.get_signed() == v.as_short());
    return;
  case 0x70:
    put(out, v.as_uint(), 4);
    require(*v.get_unsigned() == v.as_uint());
    return;
  case 0x71:
    put(out, static_cast<std::uint32_t>(v.as_int()), 4);
    require(*v.get_signed() == v.as_int());
    return;
  case 0x72:
    put(out, std::bit_cast<std::uint32_t>(v.as_float()), 4);
    return;
  case 0x73: {
    auto cp = static_cast<std::uint32_t>(v.as_char());
    require(cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF)); // a Unicode scalar value
    put(out, cp, 4);
    return;
  }
  case 0x74:
    put(out, v.as_decimal32().bytes);
    return;
  case 0x80:
    put(out, v.as_ulong(), 8);
    require(*v.get_unsigned() == v.as_ulong());
    return;
  case 0x81:
    put(out, static_cast<std::uint64_t>(v.as_long()), 8);
    require(*v.get_signed() == v.as_long());
    return;
  case 0x82:
    put(out, std::bit_cast<std::uint64_t>(v.as_double()), 8);
    return;
  case 0x83:
    put(out, static_cast<std::uint64_t>(v.as_timestamp().ms), 8);
    return;
  case 0x84:
    put(out, v.as_decimal64().bytes);
    return;
  case 0x94:
    put(out, v.as_decimal128().bytes);
    return;
  case 0x98:
    put(out, v.as_uuid().bytes);
    return;
  case 0xa0:
  case 0xb0: {
    auto b = v.as_binary();
    require(b.size() == v.as_string().size());
    put(out, b.size(), c == 0xa0 ? 1 : 4);
    put(out, b);
    return;
  }
  case 0xa1:
  case 0xb1: {
    auto s = v.as_string();
    require(is_valid_utf8(s));
    put(out, s.size(), c == 0xa1 ? 1 : 4);
    put(out, v.as_binary());
    return;
  }
  case 0xa3:
  case 0xb3: {
    auto s = v.as_symbol();
    require(is_ascii(s) && s == v.as_string());
    put(out, s.size(), c == 0xa3 ? 1 : 4);
    put(out, v.as_binary());
    return;
  }
  case 0xc0:
  case 0xc1:
  case 0xd0:
  case 0xd1:
    reencode_compound(v, c, out);
    return;
  case 0xe0:
  case 0xf0:
    reencode_array(v, c, out);
    return;
  default:
    require(false);
  }
}

} // namespace

void reencode(const value& v, std::vector<std::byte>& out) {
  require(v.is_decoded());
  if (v.is(type::described)) {
    const value d = v.descriptor();
    const value inner = v.described_value();
    require(d.is_decoded() && inner.is_decoded());
    auto code = v.descriptor_code();
    require(code.has_value() == d.is(type::ulong));
    require(!code || *code == d.as_ulong());
    require(v.count() == 0 && v.items().empty());
    require(v == v);
    out.push_back(std::byte{0x00});
    reencode(d, out);
    // A described value's format code is its inner value's; the inner value of a described
    // value whose inner constructor is 0x00 is itself described (with its own inner code).
    require(v.format_code() == 0x00 ? inner.is(type::described)
                                    : inner.format_code() == v.format_code());
    reencode(inner, out);
    return;
  }
  const std::uint8_t c = v.format_code();
  out.push_back(static_cast<std::byte>(c));
  reencode_body(v, c, out);
}

std::vector<std::byte> walk_decoded(const value& v) {
  std::vector<std::byte> mine;
  reencode(v, mine);
  std::vector<std::byte> lib;
  require(encode_append(v, lib).has_value());
  require(same_bytes(mine, lib));
  auto n = encoded_size(v);
  require(n.has_value() && *n == lib.size());
  return lib;
}

} // namespace amqp::fuzz
