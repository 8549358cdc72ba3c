#include <string>

#include <doctest/doctest.h>

#include "hex.hpp"

using amqp::cli::parse_hex_text;
using amqp::cli::parse_lower_hex;
using amqp::cli::to_hex;

TEST_CASE("hex: lowercase output") {
  const std::byte b[] = {std::byte{0x00}, std::byte{0x9a}, std::byte{0xff}};
  CHECK(to_hex(b) == "009aff");
  CHECK(to_hex({}).empty());
}

TEST_CASE("hex: strict lowercase input") {
  const auto b = parse_lower_hex("00ff7a");
  REQUIRE(b.has_value());
  CHECK(to_hex(*b) == "00ff7a");
  CHECK(parse_lower_hex("").has_value());
  CHECK_FALSE(parse_lower_hex("0").has_value());
  CHECK_FALSE(parse_lower_hex("FF").has_value());
  CHECK_FALSE(parse_lower_hex("0g").has_value());
  CHECK_FALSE(parse_lower_hex("00 ").has_value());
}

TEST_CASE("hex: text input ignores whitespace and case") {
  std::string error;
  const auto b = parse_hex_text(" 0 0FF\n\t7a\r\n", error);
  REQUIRE(b.has_value());
  CHECK(to_hex(*b) == "00ff7a");
  CHECK(parse_hex_text("", error).has_value());
  CHECK_FALSE(parse_hex_text("abc", error).has_value());
  CHECK(error == "odd number of hex digits");
  CHECK_FALSE(parse_hex_text("ab x", error).has_value());
  CHECK(error == "invalid hex digit at character 3");
}
