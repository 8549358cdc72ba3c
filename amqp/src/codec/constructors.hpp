// The AMQP 1.0 format codes (types.xml, "encodings"): one constexpr table mapping each code
// to its type, category and width.
#pragma once

#include <array>
#include <cstdint>

#include "amqp/value.hpp"

namespace amqp::detail {

enum class category : std::uint8_t { invalid, fixed, variable, compound, array };

struct ctor_info {
  type t = type::null;
  category cat = category::invalid;
  std::uint8_t width = 0; // fixed: payload bytes; others: bytes of the size (and count) fields
  // How the validator's inline path treats the code: fixed-width codes whose payload any
  // bytes are valid for (all but boolean 0x56 and char 0x73): 1 + width, the bytes to step
  // over; vbin8: short_binary; str8 and sym8: short_text; every other code: 0 (out of line).
  std::uint8_t step = 0;
};

// ctor_info::step of vbin8, and of str8 and sym8 (whose bytes must be ASCII, or UTF-8 for
// str8).
inline constexpr std::uint8_t short_binary = 0x80;
inline constexpr std::uint8_t short_text = 0x81;

namespace code {
inline constexpr std::uint8_t described = 0x00;
inline constexpr std::uint8_t null = 0x40, true_ = 0x41, false_ = 0x42, uint0 = 0x43, ulong0 = 0x44,
                              list0 = 0x45;
inline constexpr std::uint8_t ubyte = 0x50, byte = 0x51, smalluint = 0x52, smallulong = 0x53,
                              smallint = 0x54, smalllong = 0x55, boolean = 0x56;
inline constexpr std::uint8_t ushort = 0x60, short_ = 0x61;
inline constexpr std::uint8_t uint = 0x70, int_ = 0x71, float_ = 0x72, char_ = 0x73,
                              decimal32 = 0x74;
inline constexpr std::uint8_t ulong = 0x80, long_ = 0x81, double_ = 0x82, timestamp = 0x83,
                              decimal64 = 0x84;
inline constexpr std::uint8_t decimal128 = 0x94, uuid = 0x98;
inline constexpr std::uint8_t vbin8 = 0xa0, str8 = 0xa1, sym8 = 0xa3;
inline constexpr std::uint8_t vbin32 = 0xb0, str32 = 0xb1, sym32 = 0xb3;
inline constexpr std::uint8_t list8 = 0xc0, map8 = 0xc1, list32 = 0xd0, map32 = 0xd1;
inline constexpr std::uint8_t array8 = 0xe0, array32 = 0xf0;
} // namespace code

constexpr std::array<ctor_info, 256> make_ctor_table() {
  std::array<ctor_info, 256> t{};
  auto fixed = [&](std::uint8_t c, type ty, std::uint8_t w) {
    t[c] = {ty, category::fixed, w, static_cast<std::uint8_t>(1 + w)};
  };
  fixed(code::null, type::null, 0);
  fixed(code::true_, type::boolean, 0);
  fixed(code::false_, type::boolean, 0);
  fixed(code::boolean, type::boolean, 1);
  fixed(code::uint0, type::uint, 0);
  fixed(code::ulong0, type::ulong, 0);
  fixed(code::ubyte, type::ubyte, 1);
  fixed(code::byte, type::byte, 1);
  fixed(code::smalluint, type::uint, 1);
  fixed(code::smallulong, type::ulong, 1);
  fixed(code::smallint, type::int_, 1);
  fixed(code::smalllong, type::long_, 1);
  fixed(code::ushort, type::ushort, 2);
  fixed(code::short_, type::short_, 2);
  fixed(code::uint, type::uint, 4);
  fixed(code::int_, type::int_, 4);
  fixed(code::float_, type::float_, 4);
  fixed(code::char_, type::char_, 4);
  fixed(code::decimal32, type::decimal32, 4);
  fixed(code::ulong, type::ulong, 8);
  fixed(code::long_, type::long_, 8);
  fixed(code::double_, type::double_, 8);
  fixed(code::timestamp, type::timestamp, 8);
  fixed(code::decimal64, type::decimal64, 8);
  fixed(code::decimal128, type::decimal128, 16);
  fixed(code::uuid, type::uuid, 16);
  // Every byte of their payload is not valid (types.xml: boolean is 0x00 or 0x01; char is a
  // Unicode scalar value): the validator checks them.
  t[code::boolean].step = 0;
  t[code::char_].step = 0;
  // list0 is a fixed-width (0) encoding of a list (types.xml).
  t[code::list0] = {type::list, category::fixed, 0, 1};
  t[code::vbin8] = {type::binary, category::variable, 1, short_binary};
  t[code::vbin32] = {type::binary, category::variable, 4};
  t[code::str8] = {type::string, category::variable, 1, short_text};
  t[code::str32] = {type::string, category::variable, 4};
  t[code::sym8] = {type::symbol, category::variable, 1, short_text};
  t[code::sym32] = {type::symbol, category::variable, 4};
  t[code::list8] = {type::list, category::compound, 1};
  t[code::list32] = {type::list, category::compound, 4};
  t[code::map8] = {type::map, category::compound, 1};
  t[code::map32] = {type::map, category::compound, 4};
  t[code::array8] = {type::array, category::array, 1};
  t[code::array32] = {type::array, category::array, 4};
  return t;
}

inline constexpr std::array<ctor_info, 256> ctor_table = make_ctor_table();

} // namespace amqp::detail
