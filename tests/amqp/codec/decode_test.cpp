// Tests of amqp::decode_value: every format code of types.xml, boundaries and malformed input.
#include <cmath>
#include <deque>
#include <limits>

#include <doctest/doctest.h>

#include "amqp/codec.hpp"
#include "support/hex.hpp"

using namespace amqp;
using amqp::test::from_hex;

namespace {
// Decoded values point into their input: keep every input alive until the end of the run.
std::deque<std::vector<std::byte>> inputs;

value decode_ok(std::vector<std::byte> bytes) {
  const auto& b = inputs.emplace_back(std::move(bytes));
  auto r = decode_whole(b);
  REQUIRE_MESSAGE(r.has_value(), r.error().message());
  return *r;
}
std::error_code decode_err(std::string_view hex, const decode_limits& lim = {}) {
  auto b = from_hex(hex);
  auto r = decode_whole(b, lim);
  REQUIRE_FALSE(r.has_value());
  return r.error();
}
} // namespace

TEST_CASE("decode: fixed-width primitives in every encoding") {
  SUBCASE("null") {
    CHECK(decode_ok(from_hex("40")).is_null());
  }
  SUBCASE("boolean") {
    CHECK(decode_ok(from_hex("41")).as_bool());
    CHECK_FALSE(decode_ok(from_hex("42")).as_bool());
    CHECK(decode_ok(from_hex("5601")).as_bool());
    CHECK_FALSE(decode_ok(from_hex("5600")).as_bool());
    CHECK(decode_err("5602") == errc::decode_error);
  }
  SUBCASE("unsigned") {
    CHECK(decode_ok(from_hex("50ff")).as_ubyte() == 255);
    CHECK(decode_ok(from_hex("60ffff")).as_ushort() == 65535);
    CHECK(decode_ok(from_hex("43")).as_uint() == 0);
    CHECK(decode_ok(from_hex("52ff")).as_uint() == 255);
    CHECK(decode_ok(from_hex("70ffffffff")).as_uint() == 0xFFFFFFFFU);
    CHECK(decode_ok(from_hex("44")).as_ulong() == 0);
    CHECK(decode_ok(from_hex("5307")).as_ulong() == 7);
    CHECK(decode_ok(from_hex("80ffffffffffffffff")).as_ulong() ==
          std::numeric_limits<std::uint64_t>::max());
  }
  SUBCASE("signed") {
    CHECK(decode_ok(from_hex("5180")).as_byte() == -128);
    CHECK(decode_ok(from_hex("618000")).as_short() == -32768);
    CHECK(decode_ok(from_hex("54ff")).as_int() == -1);
    CHECK(decode_ok(from_hex("7180000000")).as_int() == std::numeric_limits<std::int32_t>::min());
    CHECK(decode_ok(from_hex("557f")).as_long() == 127);
    CHECK(decode_ok(from_hex("818000000000000000")).as_long() ==
          std::numeric_limits<std::int64_t>::min());
  }
  SUBCASE("floating point") {
    CHECK(decode_ok(from_hex("723fc00000")).as_float() == 1.5f);
    CHECK(decode_ok(from_hex("82bff8000000000000")).as_double() == -1.5);
    CHECK(std::isnan(decode_ok(from_hex("827ff8000000000000")).as_double()));
    CHECK(std::signbit(decode_ok(from_hex("7280000000")).as_float()));
  }
  SUBCASE("char, timestamp, uuid, decimals") {
    CHECK(decode_ok(from_hex("730001f600")).as_char() == U'\U0001F600');
    CHECK(decode_err("7300110000") == errc::decode_error); // above U+10FFFF
    CHECK(decode_err("730000d800") == errc::decode_error); // surrogate
    CHECK(decode_ok(from_hex("83ffffffffffffffff")).as_timestamp().ms == -1);
    auto u = decode_ok(from_hex("98000102030405060708090a0b0c0d0e0f")).as_uuid();
    CHECK(std::to_integer<int>(u.bytes[15]) == 15);
    auto d32 = decode_ok(from_hex("7422000001")).as_decimal32();
    CHECK(std::to_integer<int>(d32.bytes[0]) == 0x22);
    CHECK(decode_ok(from_hex("842200000000000001")).as_decimal64().bytes[7] == std::byte{1});
    CHECK(decode_ok(from_hex("9422000000000000000000000000000001")).as_decimal128().bytes[0] ==
          std::byte{0x22});
  }
}

TEST_CASE("decode: variable-width primitives") {
  CHECK(decode_ok(from_hex("a003010203")).as_binary().size() == 3);
  CHECK(decode_ok(from_hex("b000000000")).as_binary().empty());
  CHECK(decode_ok(from_hex("a103616263")).as_string() == "abc");
  CHECK(decode_ok(from_hex("b100000002c3a9")).as_string() == "\xc3\xa9");
  CHECK(decode_ok(from_hex("a303616263")).as_symbol() == "abc");
  CHECK(decode_ok(from_hex("b30000000178")).as_symbol() == "x");
  SUBCASE("invalid UTF-8 and non-ASCII symbols are decode errors") {
    CHECK(decode_err("a102c0af") == errc::decode_error);   // overlong '/'
    CHECK(decode_err("a103eda080") == errc::decode_error); // surrogate U+D800
    CHECK(decode_err("a101ff") == errc::decode_error);
    CHECK(decode_err("a104f4908080") == errc::decode_error); // above U+10FFFF
    CHECK(decode_err("a301c3") == errc::decode_error);
  }
  SUBCASE("sizes larger than the input are decode errors") {
    CHECK(decode_err("a00401") == errc::decode_error);
    CHECK(decode_err("b0ffffffff00") == errc::decode_error);
  }
}

TEST_CASE("decode: compounds") {
  SUBCASE("list0, list8, list32") {
    CHECK(decode_ok(from_hex("45")).count() == 0);
    auto l = decode_ok(from_hex("c0050341425301"));
    REQUIRE(l.count() == 3);
    std::vector<value> items(l.items().begin(), l.items().end());
    CHECK(items[0].as_bool());
    CHECK_FALSE(items[1].as_bool());
    CHECK(items[2].as_ulong() == 1);
    auto l32 = decode_ok(from_hex("d0000000070000000240a100"));
    CHECK(l32.count() == 2);
  }
  SUBCASE("map8 and map32, with find") {
    auto m = decode_ok(from_hex("c10b04a3016b5201a1016e5202"));
    CHECK(m.count() == 4);
    CHECK(m.find("k")->as_uint() == 1);
    CHECK(m.find("n")->as_uint() == 2);
    CHECK_FALSE(m.find("z").has_value());
    auto m32 = decode_ok(from_hex("d1000000070000000240a100"));
    CHECK(m32.count() == 2);
  }
  SUBCASE("a map with an odd count is a decode error") {
    CHECK(decode_err("c1030140") == errc::decode_error);
  }
  SUBCASE("a count larger than the bytes is refused before iterating") {
    CHECK(decode_err("c002ff40") == errc::decode_error);
    CHECK(decode_err("d000000005ffffffff40") == errc::decode_error);
  }
  SUBCASE("bytes left over after count elements are a decode error") {
    CHECK(decode_err("c003014040") == errc::decode_error);
  }
  SUBCASE("a size smaller than the count field is a decode error") {
    CHECK(decode_err("c000") == errc::decode_error);
    CHECK(decode_err("d00000000300000000") == errc::decode_error);
  }
}

TEST_CASE("decode: arrays") {
  SUBCASE("array8 of smalluint") {
    auto a = decode_ok(from_hex("e00503520102ff"));
    CHECK(a.element_type() == type::uint);
    std::vector<std::uint32_t> got;
    for (auto& e : a.items()) {
      got.push_back(e.as_uint());
    }
    CHECK(got == std::vector<std::uint32_t>{1, 2, 255});
  }
  SUBCASE("array32 of symbols") {
    auto a = decode_ok(from_hex("f00000000a00000002a30161026263"));
    std::vector<std::string_view> got;
    for (auto& e : a.items()) {
      got.push_back(e.as_symbol());
    }
    CHECK(got == std::vector<std::string_view>{"a", "bc"});
  }
  SUBCASE("array of described elements") {
    // Descriptor smallulong 0x29, elements list8 bodies of one boolean each.
    auto a = decode_ok(from_hex("e00b02005329c0020141020142"));
    REQUIRE(a.element_type() == type::described);
    std::vector<bool> got;
    for (auto& e : a.items()) {
      CHECK(e.descriptor_code() == 0x29);
      auto inner = e.described_value();
      REQUIRE(inner.count() == 1);
      got.push_back((*inner.items().begin()).as_bool());
    }
    CHECK(got == std::vector<bool>{true, false});
  }
  SUBCASE("array of arrays") {
    auto a = decode_ok(from_hex("e00b02e0030152070402520809"));
    REQUIRE(a.element_type() == type::array);
    std::vector<std::uint32_t> got;
    for (auto& inner : a.items()) {
      for (auto& e : inner.items()) {
        got.push_back(e.as_uint());
      }
    }
    CHECK(got == std::vector<std::uint32_t>{7, 8, 9});
  }
  SUBCASE("zero-width elements are bounded by the limit") {
    decode_limits lim;
    lim.max_zero_width_elements = 3;
    CHECK(decode_err("e0020440", lim) == errc::resource_limit);
    auto ok = decode_whole(from_hex("e0020340"), lim);
    CHECK(ok.has_value());
  }
  SUBCASE("an invalid element constructor is a decode error") {
    CHECK(decode_err("e0020001") == errc::decode_error);
  }
}

TEST_CASE("decode: described values") {
  auto d = decode_ok(from_hex("005370c0020142"));
  CHECK(d.kind() == type::described);
  CHECK(d.descriptor_code() == 0x70);
  CHECK(d.described_value().count() == 1);
  auto s = decode_ok(from_hex("00a303666f6fa103626172"));
  CHECK(s.descriptor().as_symbol() == "foo");
  CHECK(s.described_value().as_string() == "bar");
  auto nested = decode_ok(from_hex("00530100530240"));
  CHECK(nested.descriptor_code() == 1);
  CHECK(nested.described_value().descriptor_code() == 2);
  CHECK(nested.described_value().described_value().is_null());
}

TEST_CASE("decode: nesting depth is bounded") {
  // 40 nested list8s around a list0.
  std::vector<std::byte> inner = from_hex("45");
  for (int k = 0; k < 40; ++k) {
    std::vector<std::byte> outer = {std::byte{0xc0}, std::byte(inner.size() + 1), std::byte{1}};
    outer.insert(outer.end(), inner.begin(), inner.end());
    inner = outer;
  }
  decode_limits lim;
  lim.max_depth = 32;
  auto r = decode_whole(inner, lim);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == errc::depth_exceeded);
  lim.max_depth = 41;
  CHECK(decode_whole(inner, lim).has_value());
}

TEST_CASE("decode: truncated input is a decode error at every length") {
  auto b = from_hex("d10000001300000004a3016b5201a1016ee00503520102ff");
  auto full = decode_whole(b);
  REQUIRE(full.has_value());
  for (std::size_t n = 0; n < b.size(); ++n) {
    auto r = decode_whole(std::span(b).first(n));
    CHECK_FALSE(r.has_value());
  }
}

TEST_CASE("decode: unknown format codes are decode errors") {
  for (int c :
       {0x01, 0x3f, 0x46, 0x57, 0x62, 0x75, 0x85, 0x90, 0x95, 0xa2, 0xb2, 0xc2, 0xe1, 0xff}) {
    std::vector<std::byte> b{std::byte(c), std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}};
    auto r = decode_whole(b);
    CHECK_FALSE(r.has_value());
  }
}

TEST_CASE("decode: zero-width array elements are budgeted over the whole value") {
  // A list of two arrays of 40 nulls each: 80 zero-width elements in all.
  // Each array8 is e0, size 2 (count and constructor), count 40, constructor null.
  auto b = from_hex("c00902e0022840e0022840");
  decode_limits lim;
  lim.max_zero_width_elements = 79;
  auto r = decode_whole(b, lim);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == errc::resource_limit);
  lim.max_zero_width_elements = 80;
  auto ok = decode_whole(b, lim);
  REQUIRE(ok.has_value());
  std::size_t n = 0;
  for (const value& a : ok->items()) {
    for (const value& e : a.items()) {
      CHECK(e.is_null());
      ++n;
    }
  }
  CHECK(n == 80);
}
