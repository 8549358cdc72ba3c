// Messages to and from their JSON form (tools/message_json.hpp): every section, every body
// kind, both directions, and the errors of the reader.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/codec.hpp"
#include "amqp/message.hpp"
#include "hex.hpp"
#include "message_json.hpp"

using namespace amqp;
using amqp::cli::append_message_json;
using amqp::cli::parse_message_json;

namespace {

std::span<const std::byte> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::vector<std::byte> encoded(const message_parts& m) {
  std::vector<std::byte> out;
  REQUIRE(encode_append(m, out));
  return out;
}

std::string json_of(std::span<const std::byte> message) {
  std::string out;
  const auto r = append_message_json(message, out);
  REQUIRE(r);
  return out;
}

std::vector<std::byte> parse(std::string_view text) {
  std::string error;
  auto m = parse_message_json(text, error);
  INFO(text, " -> ", error);
  REQUIRE(m);
  return *m;
}

std::string parse_error(std::string_view text) {
  std::string error;
  const auto m = parse_message_json(text, error);
  INFO(text);
  CHECK_FALSE(m);
  return error;
}

// `text` is the JSON of `message`, and reads back to a message with the same JSON; when
// `same_bytes`, to the same bytes.
void check_both_ways(std::span<const std::byte> message, std::string_view text,
                     bool same_bytes = true) {
  CHECK(json_of(message) == text);
  const auto back = parse(text);
  CHECK(json_of(back) == text);
  if (same_bytes) {
    CHECK(std::vector<std::byte>(message.begin(), message.end()) == back);
  }
}

// Encodes values one after the other (sections written by hand).
std::vector<std::byte> raw(std::initializer_list<value> sections) {
  std::vector<std::byte> out;
  for (const value& v : sections) {
    REQUIRE(encode_append(v, out));
  }
  return out;
}

value section_value(std::uint64_t code, const value& inner, std::array<value, 2>& storage) {
  storage = {value{code}, inner};
  return value::described(std::span<const value, 2>(storage));
}

} // namespace

TEST_CASE("message json: every section, in order, with a data body") {
  header h;
  h.durable = true;
  h.priority = 9;
  h.ttl = 60000;
  h.first_acquirer = true;
  h.delivery_count = 3;
  std::array<value, 2> da = {value{symbol_view{"x-opt-trace"}}, value{std::int32_t{-1}}};
  std::array<value, 4> ma = {value{symbol_view{"x-opt-partition"}}, value{"p1"},
                             value{std::uint64_t{42}}, value{true}};
  properties p;
  const std::string uid = "alice";
  p.message_id = value{std::uint64_t{18446744073709551615ULL}};
  p.user_id = bytes_of(uid);
  p.to = "queue/a";
  p.subject = "s";
  p.reply_to = "r";
  uuid cid;
  for (std::size_t k = 0; k < 16; ++k) {
    cid.bytes[k] = static_cast<std::byte>(k);
  }
  p.correlation_id = value{cid};
  p.content_type = symbol_view{"application/json"};
  p.content_encoding = symbol_view{"gzip"};
  p.absolute_expiry_time = timestamp{1700000000000};
  p.creation_time = timestamp{-1};
  p.group_id = "g";
  p.group_sequence = 4294967295U;
  p.reply_to_group_id = "rg";
  std::array<value, 4> ap = {value{"k"}, value{2.5}, value{"nested"},
                             value::list(std::span<const value>(da.data(), 1))};
  std::array<value, 2> body = {value{bytes_of("hello")}, value{bytes_of("")}};
  std::array<value, 2> footer = {value{symbol_view{"x-sig"}}, value{bytes_of("\x01\x02")}};
  message_parts m;
  m.header = h;
  m.delivery_annotations = value::map(da);
  m.message_annotations = value::map(ma);
  m.properties = p;
  m.application_properties = value::map(ap);
  m.body = body_kind::data;
  m.body_sections = body;
  m.footer = value::map(footer);
  const std::string expected =
      R"({"header":{"durable":{"type":"boolean","value":true},"priority":{"type":"ubyte","value":9},)"
      R"("ttl":{"type":"uint","value":60000},"first-acquirer":{"type":"boolean","value":true},)"
      R"("delivery-count":{"type":"uint","value":3}},)"
      R"("delivery-annotations":{"type":"map","value":[[{"type":"symbol","value":"x-opt-trace"},{"type":"int","value":-1}]]},)"
      R"("message-annotations":{"type":"map","value":[[{"type":"symbol","value":"x-opt-partition"},{"type":"string","value":"p1"}],[{"type":"ulong","value":"42"},{"type":"boolean","value":true}]]},)"
      R"("properties":{"message-id":{"type":"ulong","value":"18446744073709551615"},)"
      R"("user-id":{"type":"binary","value":"616c696365"},"to":{"type":"string","value":"queue/a"},)"
      R"("subject":{"type":"string","value":"s"},"reply-to":{"type":"string","value":"r"},)"
      R"("correlation-id":{"type":"uuid","value":"00010203-0405-0607-0809-0a0b0c0d0e0f"},)"
      R"("content-type":{"type":"symbol","value":"application/json"},)"
      R"("content-encoding":{"type":"symbol","value":"gzip"},)"
      R"("absolute-expiry-time":{"type":"timestamp","value":"1700000000000"},)"
      R"("creation-time":{"type":"timestamp","value":"-1"},"group-id":{"type":"string","value":"g"},)"
      R"("group-sequence":{"type":"uint","value":4294967295},)"
      R"("reply-to-group-id":{"type":"string","value":"rg"}},)"
      R"("application-properties":{"type":"map","value":[[{"type":"string","value":"k"},{"type":"double","value":2.5}],)"
      R"([{"type":"string","value":"nested"},{"type":"list","value":[{"type":"symbol","value":"x-opt-trace"}]}]]},)"
      R"("body":{"data":[{"type":"binary","value":"68656c6c6f"},{"type":"binary","value":""}]},)"
      R"("footer":{"type":"map","value":[[{"type":"symbol","value":"x-sig"},{"type":"binary","value":"0102"}]]}})";
  check_both_ways(encoded(m), expected);
  // Members may come in any order; sections are written in the spec's.
  const auto reordered = parse(
      R"({"body":{"data":[{"type":"binary","value":"00"}]},"header":{"durable":{"type":"boolean","value":true}}})");
  CHECK(
      json_of(reordered) ==
      R"({"header":{"durable":{"type":"boolean","value":true}},"body":{"data":[{"type":"binary","value":"00"}]}})");
}

TEST_CASE("message json: body kinds") {
  SUBCASE("amqp-sequence, two sections") {
    std::array<value, 2> l1 = {value{std::int32_t{1}}, value{"two"}};
    std::array<value, 2> body = {value::list(l1), value::list({})};
    message_parts m;
    m.body = body_kind::amqp_sequence;
    m.body_sections = body;
    check_both_ways(
        encoded(m),
        R"({"body":{"amqp-sequence":[{"type":"list","value":[{"type":"int","value":1},{"type":"string","value":"two"}]},{"type":"list","value":[]}]}})");
  }
  SUBCASE("amqp-value") {
    std::array<value, 1> body = {value{"text"}};
    message_parts m;
    m.body = body_kind::amqp_value;
    m.body_sections = body;
    std::array<value, 2> ap = {value{"a"}, value{}};
    m.application_properties = value::map(ap);
    check_both_ways(
        encoded(m),
        R"({"application-properties":{"type":"map","value":[[{"type":"string","value":"a"},{"type":"null"}]]},"body":{"amqp-value":{"type":"string","value":"text"}}})");
  }
  SUBCASE("amqp-value of a described value") {
    std::array<value, 2> d;
    const value inner = section_value(0x1234, value{std::uint8_t{7}}, d);
    std::array<value, 1> body = {inner};
    message_parts m;
    m.body = body_kind::amqp_value;
    m.body_sections = body;
    check_both_ways(
        encoded(m),
        R"({"body":{"amqp-value":{"type":"described","descriptor":{"type":"ulong","value":"4660"},"value":{"type":"ubyte","value":7}}}})");
  }
  SUBCASE("no body") {
    header h;
    h.durable = true;
    message_parts m;
    m.header = h;
    check_both_ways(encoded(m), R"({"header":{"durable":{"type":"boolean","value":true}}})");
  }
}

TEST_CASE("message json: header and properties fields are shown as on the wire") {
  std::array<value, 2> s1;
  std::array<value, 2> s2;
  SUBCASE("a default value sent explicitly, and a null field, survive") {
    // priority 4 (the default) written out; durable null; delivery-count 0 written out.
    std::array<value, 5> fields = {value{}, value{std::uint8_t{4}}, value{}, value{},
                                   value{std::uint32_t{0}}};
    std::array<value, 1> d = {value{bytes_of("x")}};
    const auto m =
        raw({section_value(0x70, value::list(fields), s1), section_value(0x75, d[0], s2)});
    check_both_ways(
        m,
        R"({"header":{"priority":{"type":"ubyte","value":4},"delivery-count":{"type":"uint","value":0}},"body":{"data":[{"type":"binary","value":"78"}]}})");
  }
  SUBCASE("a header with a field beyond the spec's is shown as its typed list") {
    std::array<value, 6> fields = {value{true}, value{}, value{}, value{}, value{}, value{"ext"}};
    const auto m = raw({section_value(0x70, value::list(fields), s1)});
    check_both_ways(
        m,
        R"({"header":{"type":"list","value":[{"type":"boolean","value":true},{"type":"null"},{"type":"null"},{"type":"null"},{"type":"null"},{"type":"string","value":"ext"}]}})");
  }
  SUBCASE("an empty properties list") {
    const auto m = raw({section_value(0x73, value::list({}), s1)});
    check_both_ways(m, R"({"properties":{}})");
  }
}

TEST_CASE("message json: what is not a valid message is not written") {
  std::string out = "kept";
  std::string error;
  // A value that is not a section.
  const auto r = append_message_json(cli::parse_hex_text("a10141", error).value(), out);
  CHECK_FALSE(r);
  CHECK(out == "kept");
}

TEST_CASE("message json: errors name the place and what is wrong") {
  CHECK(parse_error("{").starts_with("invalid JSON: "));
  CHECK(parse_error("[]") == "invalid message JSON: $: expected a JSON object with the sections "
                             "of a message (header, delivery-annotations, message-annotations, "
                             "properties, application-properties, body, footer)");
  CHECK(parse_error(R"({"headers":{}})") ==
        "invalid message JSON: $.headers: unknown section (header, delivery-annotations, "
        "message-annotations, properties, application-properties, body, footer)");
  CHECK(parse_error(R"({"header":{},"header":{}})") ==
        R"(invalid typed JSON: duplicate key "header")");
  CHECK(parse_error(R"({"header":[]})") ==
        "invalid message JSON: $.header: expected an object of fields (durable, priority, ttl, "
        "first-acquirer, delivery-count)");
  CHECK(parse_error(R"({"header":{"durible":{"type":"boolean","value":true}}})") ==
        "invalid message JSON: $.header.durible: unknown field (durable, priority, ttl, "
        "first-acquirer, delivery-count)");
  CHECK(parse_error(R"({"header":{"priority":{"type":"uint","value":4}}})") ==
        "invalid message JSON: $.header.priority: priority must be ubyte, got uint");
  CHECK(parse_error(R"({"properties":{"message-id":{"type":"int","value":4}}})") ==
        "invalid message JSON: $.properties.message-id: message-id must be ulong, uuid, binary "
        "or string, got int");
  CHECK(parse_error(R"({"properties":{"to":{"type":"string","value":4}}})") ==
        "invalid typed JSON: $.properties.to.value: string value must be a JSON string, got 4");
  CHECK(parse_error(R"({"header":{"type":"map","value":[]}})") ==
        "invalid message JSON: $.header: a typed map where a list is needed");
  CHECK(parse_error(R"({"message-annotations":{"type":"list","value":[]}})") ==
        "invalid message JSON: $.message-annotations: must be a typed map, got list");
  CHECK(parse_error(R"({"body":{}})") ==
        "invalid message JSON: $.body: expected an object with one of data, amqp-sequence, "
        "amqp-value");
  CHECK(parse_error(R"({"body":{"data":[],"amqp-value":{"type":"null"}}})") ==
        "invalid message JSON: $.body: expected an object with one of data, amqp-sequence, "
        "amqp-value");
  CHECK(parse_error(R"({"body":{"value":{"type":"null"}}})") ==
        "invalid message JSON: $.body.value: unknown body kind (data, amqp-sequence, amqp-value)");
  CHECK(parse_error(R"({"body":{"data":[]}})") ==
        "invalid message JSON: $.body.data: expected a JSON array of one or more typed binaries");
  CHECK(parse_error(R"({"body":{"data":[{"type":"string","value":"x"}]}})") ==
        "invalid message JSON: $.body.data[0]: a data section must be a binary, got string");
  CHECK(parse_error(R"({"body":{"amqp-sequence":[{"type":"binary","value":""}]}})") ==
        "invalid message JSON: $.body.amqp-sequence[0]: a amqp-sequence section must be a list, "
        "got binary");
  CHECK(
      parse_error(R"({"body":{"data":[{"type":"binary","value":"zz"}]}})") ==
      R"(invalid typed JSON: $.body.data[0].value: binary value must be lowercase hex, got "zz")");
  // Valid typed values, but not a valid message: a header list whose first field (durable)
  // is not a boolean (AMQP 1.0 §3.2.1); the section is named.
  const auto bad_header = parse_error(
      R"({"header":{"type":"list","value":[{"type":"string","value":"yes"}]},"body":{"amqp-value":{"type":"null"}}})");
  CHECK(bad_header.starts_with("invalid message JSON: $.header: not a valid message: "));
}
