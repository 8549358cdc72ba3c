// Tests of amqp::encode: smallest encodings for built values, byte-identical re-encoding of
// decoded values, and round trips.
#include <limits>

#include <doctest/doctest.h>

#include "amqp/codec.hpp"
#include "support/hex.hpp"

using namespace amqp;
using amqp::test::from_hex;
using amqp::test::to_hex;

namespace {
std::string enc(const value& v) {
  std::vector<std::byte> out;
  auto r = encode_append(v, out);
  REQUIRE_MESSAGE(r.has_value(), r.error().message());
  auto n = encoded_size(v);
  REQUIRE(n.has_value());
  CHECK(*n == out.size());
  // Every built value decodes back to an equal value.
  auto back = decode_whole(out);
  REQUIRE(back.has_value());
  CHECK(*back == v);
  return to_hex(out);
}
} // namespace

TEST_CASE("encode: smallest encoding of each primitive") {
  CHECK(enc(value{}) == "40");
  CHECK(enc(value{true}) == "41");
  CHECK(enc(value{false}) == "42");
  CHECK(enc(value{std::uint8_t{7}}) == "5007");
  CHECK(enc(value{std::uint16_t{0x1234}}) == "601234");
  CHECK(enc(value{0U}) == "43");
  CHECK(enc(value{255U}) == "52ff");
  CHECK(enc(value{256U}) == "7000000100");
  CHECK(enc(value{std::uint64_t{0}}) == "44");
  CHECK(enc(value{std::uint64_t{255}}) == "53ff");
  CHECK(enc(value{std::uint64_t{256}}) == "800000000000000100");
  CHECK(enc(value{std::int8_t{-1}}) == "51ff");
  CHECK(enc(value{std::int16_t{-2}}) == "61fffe");
  CHECK(enc(value{127}) == "547f");
  CHECK(enc(value{-128}) == "5480");
  CHECK(enc(value{128}) == "7100000080");
  CHECK(enc(value{-129}) == "71ffffff7f");
  CHECK(enc(value{std::int64_t{-128}}) == "5580");
  CHECK(enc(value{std::int64_t{128}}) == "810000000000000080");
  CHECK(enc(value{1.5f}) == "723fc00000");
  CHECK(enc(value{-1.5}) == "82bff8000000000000");
  CHECK(enc(value{U'\U0001F600'}) == "730001f600");
  CHECK(enc(value{timestamp{1700000000123}}) == "830000018bcfe5687b");
  uuid u;
  for (int k = 0; k < 16; ++k) {
    u.bytes[static_cast<std::size_t>(k)] = std::byte(k);
  }
  CHECK(enc(value{u}) == "98000102030405060708090a0b0c0d0e0f");
  CHECK(enc(value{decimal32{{std::byte{0x22}, std::byte{0}, std::byte{0}, std::byte{1}}}}) ==
        "7422000001");
  CHECK(enc(value{"abc"}) == "a103616263");
  CHECK(enc(value{symbol_view{"ab"}}) == "a3026162");
  std::vector<std::byte> bin(3, std::byte{9});
  CHECK(enc(value{binary_view{bin}}) == "a003090909");
}

TEST_CASE("encode: 8/32-bit size boundaries") {
  std::string s255(255, 'x');
  std::string s256(256, 'x');
  CHECK(enc(value{std::string_view{s255}}).substr(0, 4) == "a1ff");
  CHECK(enc(value{std::string_view{s256}}).substr(0, 10) == "b100000100");
  CHECK(enc(value{symbol_view{s256}}).substr(0, 10) == "b300000100");
  std::vector<std::byte> b256(256);
  CHECK(enc(value{binary_view{b256}}).substr(0, 10) == "b000000100");
}

TEST_CASE("encode: compounds") {
  CHECK(enc(value::list({})) == "45");
  value items[] = {value{true}, value{1U}};
  CHECK(enc(value::list(items)) == "c00402415201");
  value kv[] = {value{symbol_view{"k"}}, value{"v"}};
  CHECK(enc(value::map(kv)) == "c10702a3016ba10176");
  CHECK(enc(value::map({})) == "c10100");
  // A list whose payload no longer fits list8 switches to list32.
  std::string s(252, 'x'); // 254 payload bytes + the count: 255
  value big[] = {value{std::string_view{s}}};
  CHECK(enc(value::list(big)).substr(0, 2) == "c0");
  std::string s2(253, 'x');
  value big2[] = {value{std::string_view{s2}}};
  CHECK(enc(value::list(big2)).substr(0, 2) == "d0");
}

TEST_CASE("encode: arrays pick one element code for all elements") {
  value small[] = {value{1U}, value{255U}};
  CHECK(enc(value::array(type::uint, small)) == "e00402"
                                                "5201ff");
  value wide[] = {value{1U}, value{256U}};
  CHECK(enc(value::array(type::uint, wide)) == "e00a02"
                                               "700000000100000100");
  value bools[] = {value{true}, value{false}};
  CHECK(enc(value::array(type::boolean, bools)) == "e00402"
                                                   "560100");
  value syms[] = {value{symbol_view{"a"}}, value{symbol_view{"bc"}}};
  CHECK(enc(value::array(type::symbol, syms)) == "e00702a30161026263");
  CHECK(enc(value::array(type::int_, {})) == "e0020054");
  value lists_inner[] = {value{true}};
  value lists[] = {value::list(lists_inner), value::list({})};
  CHECK(enc(value::array(type::list, lists)) == "e00702c0020141"
                                                "0100");
  value desc_pair1[] = {value{std::uint64_t{0x29}}, value{"a"}};
  value desc_pair2[] = {value{std::uint64_t{0x29}}, value{"b"}};
  value described[] = {value::described(std::span<const value, 2>(desc_pair1)),
                       value::described(std::span<const value, 2>(desc_pair2))};
  CHECK(enc(value::array(type::described, described)) == "e00902005329a1016101"
                                                         "62");
  value inner1[] = {value{7U}};
  value inner2[] = {value{8U}, value{9U}};
  value arrays[] = {value::array(type::uint, inner1), value::array(type::uint, inner2)};
  CHECK(enc(value::array(type::array, arrays)) == "e00b02e0030152070402520809");
}

TEST_CASE("encode: values without an encoding are refused") {
  value mixed[] = {value{1U}, value{"x"}};
  CHECK(encoded_size(value::array(type::uint, mixed)).error() == errc::invalid_argument);
  CHECK(encoded_size(value::array(type::described, {})).error() == errc::invalid_argument);
  std::vector<std::byte> small(1);
  CHECK(encode(value{"abc"}, small).error() == errc::buffer_too_small);
}

TEST_CASE("encode: decoded values re-encode byte-identically") {
  // Deliberately non-minimal encodings: Proton's list32/map32/ulong widths.
  for (std::string_view hex : {
           "d0000000080000000341520144",
           "d1000000070000000240a100",
           "800000000000000001",
           "7000000001",
           "b00000000101",
           "f00000000700000002520102",
           "005370d0000000050000000141",
           "00a303666f6fd0000000050000000141",
           "e0020043",
       }) {
    auto b = from_hex(hex);
    auto v = decode_whole(b);
    REQUIRE_MESSAGE(v.has_value(), hex);
    std::vector<std::byte> out;
    REQUIRE(encode_append(*v, out).has_value());
    CHECK(to_hex(out) == to_hex(b));
  }
}

TEST_CASE("encode: a decoded value inside a built list keeps its bytes") {
  auto b = from_hex("800000000000000001");
  auto v = decode_whole(b);
  REQUIRE(v.has_value());
  value items[] = {*v};
  CHECK(enc(value::list(items)) == "c00a01800000000000000001");
}
