// Tests of decimal32/64/128 <-> string (IEEE 754-2008 BID, to-scientific-string).
#include <doctest/doctest.h>

#include "amqp/decimal.hpp"
#include "support/hex.hpp"

using namespace amqp;
using amqp::test::to_hex;

namespace {
template <class D> D from_hex_bytes(std::string_view hex) {
  auto b = amqp::test::from_hex(hex);
  D d;
  REQUIRE(b.size() == d.bytes.size());
  std::copy(b.begin(), b.end(), d.bytes.begin());
  return d;
}
} // namespace

TEST_CASE("decimal: known BID encodings format as scientific strings") {
  CHECK(to_string(from_hex_bytes<decimal32>("32800001")) == "1");
  CHECK(to_string(from_hex_bytes<decimal32>("3200000f")) == "1.5");
  CHECK(to_string(from_hex_bytes<decimal32>("b2800001")) == "-1");
  CHECK(to_string(from_hex_bytes<decimal32>("32000000")) == "0.0");
  CHECK(to_string(from_hex_bytes<decimal32>("78000000")) == "Infinity");
  CHECK(to_string(from_hex_bytes<decimal32>("f8000000")) == "-Infinity");
  CHECK(to_string(from_hex_bytes<decimal32>("7c000000")) == "NaN");
  CHECK(to_string(from_hex_bytes<decimal32>("7e000000")) == "sNaN");
  CHECK(to_string(from_hex_bytes<decimal32>("7c00000c")) == "NaN12");
  // Largest coefficient 9999999 uses the large-coefficient form (0b11 prefix).
  CHECK(to_string(from_hex_bytes<decimal32>("6cb8967f")) == "9999999");
  CHECK(to_string(from_hex_bytes<decimal64>("31c0000000000001")) == "1");
  CHECK(to_string(from_hex_bytes<decimal128>("30400000000000000000000000000001")) == "1");
  CHECK(to_string(from_hex_bytes<decimal32>("2f800001")) == "0.000001");
  CHECK(to_string(from_hex_bytes<decimal32>("2f000001")) == "1E-7");
  CHECK(to_string(from_hex_bytes<decimal32>("33000001")) == "1E+1");
}

TEST_CASE("decimal: parse is the exact inverse of format") {
  for (std::string_view s :
       {"0", "1", "-1", "1.5", "1.50", "123.456", "0.000001", "1E-7", "1E+1", "9999999",
        "-9.999999E+96", "1E-101", "Infinity", "-Infinity", "NaN", "sNaN", "NaN12", "-0"}) {
    auto d = parse_decimal32(s);
    REQUIRE_MESSAGE(d.has_value(), s);
    CHECK(to_string(*d) == s);
  }
  for (std::string_view s : {"1234567890123456", "-1.234567890123456E+384", "1E-398", "0.10"}) {
    auto d = parse_decimal64(s);
    REQUIRE_MESSAGE(d.has_value(), s);
    CHECK(to_string(*d) == s);
  }
  for (std::string_view s :
       {"1234567890123456789012345678901234", "-9.999999999999999999999999999999999E+6144",
        "1E-6176", "3.14159265358979323846264338327950"}) {
    auto d = parse_decimal128(s);
    REQUIRE_MESSAGE(d.has_value(), s);
    CHECK(to_string(*d) == s);
  }
  CHECK(to_hex(parse_decimal32("1")->bytes) == "32800001");
  CHECK(to_hex(parse_decimal32("inf")->bytes) == "78000000");
}

TEST_CASE("decimal: inexact or malformed strings are refused") {
  CHECK(parse_decimal32("12345678").error() == errc::invalid_argument); // 8 digits
  CHECK(parse_decimal32("1E+200").error() == errc::invalid_argument);
  CHECK(parse_decimal32("1E-200").error() == errc::invalid_argument);
  CHECK(parse_decimal32("").error() == errc::invalid_argument);
  CHECK(parse_decimal32("1.2.3").error() == errc::invalid_argument);
  CHECK(parse_decimal32("1e").error() == errc::invalid_argument);
  CHECK(parse_decimal32("abc").error() == errc::invalid_argument);
  CHECK(parse_decimal32("1E+97").error() == errc::invalid_argument); // above 9.999999E+96
  // An exponent above the largest stored one is clamped exactly by scaling the coefficient.
  auto clamped = parse_decimal32("1E+96");
  REQUIRE(clamped.has_value());
  CHECK(to_string(*clamped) == "1.000000E+96");
}
