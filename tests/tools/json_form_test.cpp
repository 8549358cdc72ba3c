#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/codec.hpp"
#include "hex.hpp"
#include "json_form.hpp"

using amqp::type;
using amqp::value;
using amqp::cli::parse_typed_json;
using amqp::cli::to_typed_json;
using amqp::cli::value_arena;

namespace {

std::vector<std::byte> encode(const value& v) {
  std::vector<std::byte> out;
  REQUIRE(amqp::encode_append(v, out).has_value());
  return out;
}

// The typed JSON of `v` after an encode/decode trip (the form `decode` prints).
std::string json_of_decoded(const value& v) {
  const auto bytes = encode(v);
  const auto d = amqp::decode_whole(bytes);
  REQUIRE(d.has_value());
  return to_typed_json(*d);
}

value parse(std::string_view text, value_arena& arena) {
  std::string error;
  const auto v = parse_typed_json(text, arena, error);
  INFO(text, " -> ", error);
  REQUIRE(v.has_value());
  return *v;
}

std::string parse_error(std::string_view text) {
  value_arena arena;
  std::string error;
  const auto v = parse_typed_json(text, arena, error);
  INFO(text);
  CHECK_FALSE(v.has_value());
  return error;
}

// `text` is the typed JSON of `expected` both ways: written from the built value, written
// from its decoded encoding, and parsed back to an equal value with the same encoding.
void check_both_ways(const value& expected, std::string_view text) {
  INFO(text);
  CHECK(to_typed_json(expected) == text);
  CHECK(json_of_decoded(expected) == text);
  value_arena arena;
  const value parsed = parse(text, arena);
  CHECK(parsed == expected);
  CHECK(amqp::cli::to_hex(encode(parsed)) == amqp::cli::to_hex(encode(expected)));
}

std::uint32_t bits(float f) {
  return std::bit_cast<std::uint32_t>(f);
}
std::uint64_t bits(double d) {
  return std::bit_cast<std::uint64_t>(d);
}

float parse_float(std::string_view number) {
  value_arena arena;
  const value v = parse(R"({"type":"float","value":)" + std::string(number) + "}", arena);
  REQUIRE(v.kind() == type::float_);
  return v.as_float();
}

double parse_double(std::string_view number) {
  value_arena arena;
  const value v = parse(R"({"type":"double","value":)" + std::string(number) + "}", arena);
  REQUIRE(v.kind() == type::double_);
  return v.as_double();
}

} // namespace

TEST_CASE("json_form: scalars both ways") {
  SUBCASE("null and boolean") {
    check_both_ways(value{}, R"({"type":"null"})");
    check_both_ways(value{true}, R"({"type":"boolean","value":true})");
    check_both_ways(value{false}, R"({"type":"boolean","value":false})");
  }
  SUBCASE("unsigned integers") {
    check_both_ways(value{std::uint8_t{255}}, R"({"type":"ubyte","value":255})");
    check_both_ways(value{std::uint16_t{65535}}, R"({"type":"ushort","value":65535})");
    check_both_ways(value{std::uint32_t{0}}, R"({"type":"uint","value":0})");
    check_both_ways(value{std::uint32_t{4294967295U}}, R"({"type":"uint","value":4294967295})");
    check_both_ways(value{std::uint64_t{0}}, R"({"type":"ulong","value":"0"})");
    check_both_ways(value{std::numeric_limits<std::uint64_t>::max()},
                    R"({"type":"ulong","value":"18446744073709551615"})");
  }
  SUBCASE("signed integers") {
    check_both_ways(value{std::int8_t{-128}}, R"({"type":"byte","value":-128})");
    check_both_ways(value{std::int16_t{-32768}}, R"({"type":"short","value":-32768})");
    check_both_ways(value{std::int32_t{2147483647}}, R"({"type":"int","value":2147483647})");
    check_both_ways(value{std::numeric_limits<std::int64_t>::min()},
                    R"({"type":"long","value":"-9223372036854775808"})");
    check_both_ways(value{std::int64_t{42}}, R"({"type":"long","value":"42"})");
  }
  SUBCASE("timestamp and char") {
    check_both_ways(value{amqp::timestamp{1700000000000}},
                    R"({"type":"timestamp","value":"1700000000000"})");
    check_both_ways(value{amqp::timestamp{-1}}, R"({"type":"timestamp","value":"-1"})");
    check_both_ways(value{char32_t{0x41}}, R"({"type":"char","value":65})");
    check_both_ways(value{char32_t{0x10FFFF}}, R"({"type":"char","value":1114111})");
  }
  SUBCASE("decimals and uuid") {
    amqp::decimal32 d32{{std::byte{0x22}, std::byte{0x50}, std::byte{0x00}, std::byte{0x01}}};
    check_both_ways(value{d32}, R"({"type":"decimal32","value":"22500001"})");
    amqp::decimal64 d64{};
    d64.bytes[0] = std::byte{0xff};
    d64.bytes[7] = std::byte{0x0a};
    check_both_ways(value{d64}, R"({"type":"decimal64","value":"ff0000000000000a"})");
    amqp::decimal128 d128{};
    d128.bytes[15] = std::byte{0x01};
    check_both_ways(value{d128},
                    R"({"type":"decimal128","value":"00000000000000000000000000000001"})");
    amqp::uuid u{};
    for (std::size_t k = 0; k < 16; ++k) {
      u.bytes[k] = static_cast<std::byte>(0x10 * k + k);
    }
    check_both_ways(value{u}, R"({"type":"uuid","value":"00112233-4455-6677-8899-aabbccddeeff"})");
  }
  SUBCASE("binary, string, symbol") {
    const std::byte b[] = {std::byte{0x00}, std::byte{0xab}, std::byte{0xff}};
    check_both_ways(value{amqp::binary_view{b}}, R"({"type":"binary","value":"00abff"})");
    check_both_ways(value{amqp::binary_view{}}, R"({"type":"binary","value":""})");
    check_both_ways(value{std::string_view{}}, R"({"type":"string","value":""})");
    check_both_ways(value{std::string_view{"a\"b\\c\n\t\x01\x1f\x7f h\xc3\xa9 \xf0\x9f\x98\x80"}},
                    "{\"type\":\"string\",\"value\":\"a\\\"b\\\\c\\n\\t\\u0001\\u001f\x7f "
                    "h\xc3\xa9 \xf0\x9f\x98\x80\"}");
    check_both_ways(value{amqp::symbol_view{"amqp:decode-error"}},
                    R"({"type":"symbol","value":"amqp:decode-error"})");
  }
}

TEST_CASE("json_form: line separators are escaped, so one document stays one line") {
  // U+0085, U+2028, U+2029: line breaks to Python's str.splitlines() and to JavaScript.
  check_both_ways(value{std::string_view{"a\xc2\x85"
                                         "b\xe2\x80\xa8"
                                         "c\xe2\x80\xa9"
                                         "d\xe2\x80\xaa"}},
                  "{\"type\":\"string\",\"value\":\"a\\u0085b\\u2028c\\u2029d\xe2\x80\xaa\"}");
  // Truncated look-alikes at the end are passed through (not valid UTF-8 anyway, but safe).
  CHECK(to_typed_json(value{std::string_view{"\xc2"}}) ==
        "{\"type\":\"string\",\"value\":\"\xc2\"}");
}

TEST_CASE("json_form: escaped input strings") {
  value_arena arena;
  const value v = parse(R"({"type":"string","value":"\u00e9\ud83d\ude00\/\b\f\r"})", arena);
  CHECK(v.as_string() == "\xc3\xa9\xf0\x9f\x98\x80/\b\f\r");
  CHECK(to_typed_json(v) ==
        "{\"type\":\"string\",\"value\":\"\xc3\xa9\xf0\x9f\x98\x80/\\b\\f\\r\"}");
}

TEST_CASE("json_form: floats print their shortest form") {
  check_both_ways(value{0.1F}, R"({"type":"float","value":0.1})");
  check_both_ways(value{std::numeric_limits<float>::denorm_min()},
                  R"({"type":"float","value":1e-45})");
  check_both_ways(value{std::numeric_limits<float>::max()},
                  R"({"type":"float","value":3.4028235e+38})");
  check_both_ways(value{-0.0F}, R"({"type":"float","value":-0})");
  check_both_ways(value{1.0F}, R"({"type":"float","value":1})");
  check_both_ways(value{16777216.0F}, R"({"type":"float","value":16777216})");
  check_both_ways(value{std::numeric_limits<float>::infinity()},
                  R"({"type":"float","value":"Infinity"})");
  check_both_ways(value{-std::numeric_limits<float>::infinity()},
                  R"({"type":"float","value":"-Infinity"})");
  check_both_ways(value{0.1}, R"({"type":"double","value":0.1})");
  check_both_ways(value{-0.0}, R"({"type":"double","value":-0})");
  check_both_ways(value{std::numeric_limits<double>::denorm_min()},
                  R"({"type":"double","value":5e-324})");
  check_both_ways(value{std::numeric_limits<double>::max()},
                  R"({"type":"double","value":1.7976931348623157e+308})");
  check_both_ways(value{std::numeric_limits<double>::infinity()},
                  R"({"type":"double","value":"Infinity"})");
  // A double's own shortest form, not the float's: 0.1f widened is 0.10000000149011612.
  CHECK(to_typed_json(value{static_cast<double>(0.1F)}) ==
        R"({"type":"double","value":0.10000000149011612})");

  SUBCASE("NaN") {
    CHECK(to_typed_json(value{std::numeric_limits<float>::quiet_NaN()}) ==
          R"({"type":"float","value":"NaN"})");
    CHECK(to_typed_json(value{-std::numeric_limits<double>::quiet_NaN()}) ==
          R"({"type":"double","value":"NaN"})");
    CHECK(std::isnan(parse_float(R"("NaN")")));
    CHECK(std::isnan(parse_double(R"("NaN")")));
  }
}

TEST_CASE("json_form: float input is rounded once, from the decimal") {
  CHECK(bits(parse_float("0.1")) == bits(0.1F));
  CHECK(bits(parse_float("1e-45")) == bits(std::numeric_limits<float>::denorm_min()));
  CHECK(bits(parse_float("-0")) == bits(-0.0F));
  CHECK(bits(parse_float("-0.0")) == bits(-0.0F));
  CHECK(bits(parse_float("0")) == bits(0.0F));
  CHECK(bits(parse_float("16777217")) == bits(16777216.0F));
  CHECK(bits(parse_float("18446744073709551615")) == bits(18446744073709551616.0F));
  CHECK(bits(parse_float("-9223372036854775807")) == bits(-9223372036854775808.0F));
  CHECK(bits(parse_float("3.4028235e38")) == bits(std::numeric_limits<float>::max()));
  CHECK(bits(parse_float("1e39")) == bits(std::numeric_limits<float>::infinity()));
  CHECK(bits(parse_float("-1e39")) == bits(-std::numeric_limits<float>::infinity()));
  CHECK(bits(parse_float("1e-50")) == bits(0.0F));
  CHECK(bits(parse_float("-1e-50")) == bits(-0.0F));
  // 1.00000005960464477539 (halfway between 1 and the next float, plus a little) rounds up
  // directly, but to exactly the halfway double and then down to 1 through a double.
  CHECK(bits(parse_float("1.0000000596046448")) == bits(1.0000001F));
  CHECK(bits(parse_double("-0")) == bits(-0.0));
  CHECK(bits(parse_double("9007199254740993")) == bits(9007199254740992.0));
  CHECK(bits(parse_double("2e-324")) == bits(0.0));
  CHECK(bits(parse_double("3e-324")) == bits(std::numeric_limits<double>::denorm_min()));
  CHECK(bits(parse_double("1.7976931348623158e308")) == bits(std::numeric_limits<double>::max()));
}

TEST_CASE("json_form: compounds both ways") {
  const value items[] = {value{std::int32_t{1}}, value{}, value{std::string_view{"x"}}};
  SUBCASE("list") {
    check_both_ways(value::list({}), R"({"type":"list","value":[]})");
    check_both_ways(value::list(items),
                    R"({"type":"list","value":[{"type":"int","value":1},{"type":"null"},)"
                    R"({"type":"string","value":"x"}]})");
  }
  SUBCASE("map keeps wire order") {
    const value kv[] = {value{amqp::symbol_view{"z"}}, value{std::int32_t{1}},
                        value{amqp::symbol_view{"a"}}, value{std::int32_t{2}},
                        value{amqp::symbol_view{"m"}}, value::list(items)};
    check_both_ways(value::map({}), R"({"type":"map","value":[]})");
    check_both_ways(
        value::map(kv),
        R"({"type":"map","value":[[{"type":"symbol","value":"z"},{"type":"int","value":1}],)"
        R"([{"type":"symbol","value":"a"},{"type":"int","value":2}],)"
        R"([{"type":"symbol","value":"m"},{"type":"list","value":[{"type":"int","value":1},)"
        R"({"type":"null"},{"type":"string","value":"x"}]}]]})");
  }
  SUBCASE("arrays") {
    const value ints[] = {value{std::int32_t{1}}, value{std::int32_t{-70000}}};
    check_both_ways(value::array(type::int_, ints),
                    R"({"type":"array","element":"int","value":[{"type":"int","value":1},)"
                    R"({"type":"int","value":-70000}]})");
    check_both_ways(value::array(type::symbol, {}),
                    R"({"type":"array","element":"symbol","value":[]})");
    const value more[] = {value{std::int32_t{5}}};
    const value arrays[] = {value::array(type::int_, ints), value::array(type::int_, more)};
    check_both_ways(value::array(type::array, arrays),
                    R"({"type":"array","element":"array","value":[)"
                    R"({"type":"array","element":"int","value":[{"type":"int","value":1},)"
                    R"({"type":"int","value":-70000}]},)"
                    R"({"type":"array","element":"int","value":[{"type":"int","value":5}]}]})");
  }
  SUBCASE("described") {
    const value pair[] = {value{std::uint64_t{0x77}}, value::list(items)};
    check_both_ways(value::described(std::span<const value, 2>(pair)),
                    R"({"type":"described","descriptor":{"type":"ulong","value":"119"},)"
                    R"("value":{"type":"list","value":[{"type":"int","value":1},)"
                    R"({"type":"null"},{"type":"string","value":"x"}]}})");
    const value a[] = {value{std::uint64_t{0x70}}, value::list({})};
    const value b[] = {value{std::uint64_t{0x70}}, value::list(items)};
    const value elems[] = {value::described(std::span<const value, 2>(a)),
                           value::described(std::span<const value, 2>(b))};
    check_both_ways(value::array(type::described, elems),
                    R"({"type":"array","element":"described","value":[)"
                    R"({"type":"described","descriptor":{"type":"ulong","value":"112"},)"
                    R"("value":{"type":"list","value":[]}},)"
                    R"({"type":"described","descriptor":{"type":"ulong","value":"112"},)"
                    R"("value":{"type":"list","value":[{"type":"int","value":1},{"type":"null"},)"
                    R"({"type":"string","value":"x"}]}}]})");
  }
}

TEST_CASE("json_form: arena storage outlives the document") {
  value_arena arena;
  std::string text = R"({"type":"list","value":[{"type":"binary","value":"0102"},)"
                     R"({"type":"symbol","value":"s"},{"type":"list","value":[]}]})";
  const value v = parse(text, arena);
  text.assign(text.size(), ' ');
  CHECK(to_typed_json(v) == R"({"type":"list","value":[{"type":"binary","value":"0102"},)"
                            R"({"type":"symbol","value":"s"},{"type":"list","value":[]}]})");
}

TEST_CASE("json_form: whitespace and key order are free on input") {
  value_arena arena;
  const value v =
      parse(" {\n \"value\" : [ ] , \"element\":\"uint\", \"type\":\"array\" } ", arena);
  CHECK(to_typed_json(v) == R"({"type":"array","element":"uint","value":[]})");
}

TEST_CASE("json_form: invalid documents are rejected with a place and a reason") {
  struct bad_case {
    const char* text;
    const char* reason;
  };
  const bad_case cases[] = {
      {"", "invalid JSON"},
      {"nope", "invalid JSON"},
      // nlohmann refuses numbers beyond a double's range; "Infinity" is the way to say it.
      {R"({"type":"double","value":1e400})", "invalid JSON: number overflow"},
      {R"({"type":"uint","value":1} x)", "invalid JSON"},
      {R"({"type":"uint","value":1,"value":2})", "duplicate key \"value\""},
      {R"([1])", "$: expected a typed value object"},
      {R"({"value":1})", "missing \"type\""},
      {R"({"type":"bogus","value":1})", "unknown type \"bogus\""},
      {R"({"type":"null","value":null})", "unexpected key \"value\""},
      {R"({"type":"int"})", "int needs a \"value\" key"},
      {R"({"type":"int","value":1,"extra":2})", "unexpected key \"extra\""},
      {R"({"type":"array","value":[]})", "array needs a \"element\" key"},
      {R"({"type":"described","value":{"type":"null"}})", "needs a \"descriptor\" key"},
      {R"({"type":"boolean","value":1})", "$.value: boolean value must be true or false"},
      {R"({"type":"ubyte","value":256})", "$.value: ubyte out of range: 256"},
      {R"({"type":"ubyte","value":-1})", "ubyte out of range"},
      {R"({"type":"ubyte","value":1.0})", "integer JSON number"},
      {R"({"type":"ubyte","value":"1"})", "integer JSON number"},
      {R"({"type":"ushort","value":65536})", "out of range"},
      {R"({"type":"uint","value":4294967296})", "out of range"},
      {R"({"type":"byte","value":128})", "out of range"},
      {R"({"type":"byte","value":-129})", "out of range"},
      {R"({"type":"short","value":32768})", "out of range"},
      {R"({"type":"int","value":-2147483649})", "out of range"},
      {R"({"type":"int","value":1e3})", "integer JSON number"},
      {R"({"type":"ulong","value":18})", "decimal string"},
      {R"({"type":"ulong","value":"18446744073709551616"})", "ulong out of range"},
      {R"({"type":"ulong","value":"-1"})", "ulong out of range"},
      {R"({"type":"long","value":"9223372036854775808"})", "long out of range"},
      {R"({"type":"long","value":"01"})", "decimal string"},
      {R"({"type":"long","value":"+1"})", "decimal string"},
      {R"({"type":"long","value":"-"})", "decimal string"},
      {R"({"type":"long","value":" 1"})", "decimal string"},
      {R"({"type":"timestamp","value":"1.5"})", "decimal string"},
      {R"({"type":"float","value":"nan"})", "float value must be a number"},
      {R"({"type":"double","value":true})", "double value must be a number"},
      {R"({"type":"char","value":55296})", "not a Unicode scalar value"},
      {R"({"type":"char","value":1114112})", "not a Unicode scalar value"},
      {R"({"type":"char","value":-1})", "out of range"},
      {R"({"type":"decimal32","value":"00"})", "8 lowercase hex digits"},
      {R"({"type":"decimal64","value":"00000000000000000"})", "16 lowercase hex digits"},
      {R"({"type":"decimal128","value":"0000000000000000000000000000000A"})",
       "32 lowercase hex digits"},
      {R"({"type":"uuid","value":"00112233445566778899aabbccddeeff"})", "8-4-4-4-12"},
      {R"({"type":"uuid","value":"00112233-4455-6677-8899-AABBCCDDEEFF"})", "8-4-4-4-12"},
      {R"({"type":"uuid","value":"0011223-34455-6677-8899-aabbccddeeff"})", "8-4-4-4-12"},
      {R"({"type":"binary","value":"abc"})", "lowercase hex"},
      {R"({"type":"binary","value":"AB"})", "lowercase hex"},
      {R"({"type":"binary","value":"zz"})", "lowercase hex"},
      {R"({"type":"binary","value":[1]})", "lowercase hex"},
      {R"({"type":"string","value":1})", "string value must be a JSON string"},
      {"{\"type\":\"symbol\",\"value\":\"h\xc3\xa9\"}", "symbol value must be ASCII"},
      {R"({"type":"symbol","value":"\u00e9"})", "symbol value must be ASCII"},
      {"{\"type\":\"string\",\"value\":\"\xff\"}", "invalid JSON"},
      {R"({"type":"string","value":"\ud800"})", "invalid JSON"},
      {R"({"type":"list","value":{}})", "list value must be a JSON array"},
      {R"({"type":"list","value":[{"type":"int","value":"x"}]})",
       "$.value[0].value: int value must be an integer"},
      {R"({"type":"map","value":[[{"type":"null"}]]})", "$.value[0]: map entries must be"},
      {R"({"type":"map","value":[{"type":"null"},{"type":"null"}]})", "map entries must be"},
      {R"({"type":"map","value":[[{"type":"null"},{"type":"int"}]]})",
       "$.value[0][1]: int needs a \"value\" key"},
      {R"({"type":"array","element":"integer","value":[]})", "$.element: array element"},
      {R"({"type":"array","element":1,"value":[]})", "array element must be a type name"},
      {R"({"type":"array","element":"int","value":[{"type":"uint","value":1}]})",
       "$.value[0]: element of type uint in an array of int"},
      {R"({"type":"array","element":"described","value":[)"
       R"({"type":"described","descriptor":{"type":"ulong","value":"1"},"value":{"type":"null"}},)"
       R"({"type":"described","descriptor":{"type":"ulong","value":"2"},"value":{"type":"null"}}]})",
       "$.value[1]: described array element with a descriptor differing"},
      {R"({"type":"described","descriptor":{"type":"ulong","value":1},"value":{"type":"null"}})",
       "$.descriptor.value: ulong value must be a decimal string"},
  };
  for (const auto& c : cases) {
    const std::string error = parse_error(c.text);
    INFO(c.text, " -> ", error);
    CHECK(error.find(c.reason) != std::string::npos);
  }
}

TEST_CASE("json_form: nesting is bounded") {
  std::string deep;
  const std::size_t levels = amqp::cli::max_typed_json_depth + 1;
  for (std::size_t k = 0; k < levels; ++k) {
    deep += R"({"type":"list","value":[)";
  }
  for (std::size_t k = 0; k < levels; ++k) {
    deep += "]}";
  }
  CHECK(parse_error(deep).find("nested deeper than") != std::string::npos);

  // One level less is accepted.
  std::string ok = deep.substr(std::string_view(R"({"type":"list","value":[)").size());
  ok.resize(ok.size() - 2);
  value_arena arena;
  std::string error;
  CHECK(parse_typed_json(ok, arena, error).has_value());
}

TEST_CASE("json_form: built values that cannot be encoded are left to the encoder") {
  // An empty described array has no descriptor to write: the form accepts it, encoding
  // reports errc::invalid_argument.
  value_arena arena;
  const value v = parse(R"({"type":"array","element":"described","value":[]})", arena);
  std::vector<std::byte> out;
  const auto r = amqp::encode_append(v, out);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == amqp::errc::invalid_argument);
}
