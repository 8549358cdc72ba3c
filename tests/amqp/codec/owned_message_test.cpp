// Tests of the owning message (amqp::message, owned_value, value_map): building, encoding,
// decoding, copies, and the errors that say what is wrong.
#include <array>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include <doctest/doctest.h>

#include "amqp/error.hpp"
#include "amqp/message.hpp"
#include "support/reference_message.hpp"

using namespace amqp;

namespace {

std::span<const std::byte> bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

message round_trip(const message& m) {
  auto enc = m.encode();
  REQUIRE_MESSAGE(enc.has_value(), m.check());
  auto back = message::decode(*enc);
  REQUIRE(back.has_value());
  return std::move(*back);
}

} // namespace

TEST_CASE("message: a text message is an amqp-value string, as Qpid Proton's message(\"hello\")") {
  message m("hello");
  auto enc = m.encode();
  REQUIRE(enc.has_value());
  // 00 53 77 (amqp-value) a1 05 "hello"
  const std::vector<std::byte> want = {
      std::byte{0x00}, std::byte{0x53}, std::byte{0x77}, std::byte{0xa1}, std::byte{0x05},
      std::byte{'h'},  std::byte{'e'},  std::byte{'l'},  std::byte{'l'},  std::byte{'o'}};
  CHECK(*enc == want);
  auto back = message::decode(*enc);
  REQUIRE(back.has_value());
  CHECK(back->body_kind() == body_kind::amqp_value);
  CHECK(back->body_text() == "hello");
  CHECK(back->body_bytes() == std::vector<std::byte>(want.begin() + 5, want.end()));
  CHECK(*back == m);
}

TEST_CASE("message: every section survives encode and decode") {
  message m;
  m.header = header{true, 7, 60000u, true, 3};
  m.delivery_annotations.set("x-opt-trace", "on");
  m.message_annotations.set("x-opt-sequence-number", std::int64_t{123456});
  m.message_annotations.set("x-opt-offset", "4294967296");
  m.message_annotations.set("x-opt-enqueued-time", timestamp{1700000000123});
  m.message_annotations.set(std::uint64_t{0x468C00000004}, true); // a ulong key
  m.properties.message_id = "9c2d0f8e-3b5a-4e6f-8a1b-2c3d4e5f6a7b";
  m.properties.user_id = std::vector<std::byte>{std::byte{1}, std::byte{2}};
  m.properties.to = "/devices/d1/messages/devicebound";
  m.properties.subject = "s";
  m.properties.reply_to = "r";
  m.properties.correlation_id = std::uint64_t{42};
  m.properties.content_type = "application/json";
  m.properties.content_encoding = "utf-8";
  m.properties.absolute_expiry_time = timestamp{1800000000000};
  m.properties.creation_time = timestamp{1700000000000};
  m.properties.group_id = "g";
  m.properties.group_sequence = 9u;
  m.properties.reply_to_group_id = "rg";
  m.application_properties.set("sensorType", "thermostat");
  m.application_properties.set("count", std::int32_t{3});
  m.application_properties.set("ratio", 0.5);
  m.add_data(bytes("part one, "));
  m.add_data(bytes("part two"));
  m.footer.set("x-checksum", binary_view(bytes("abc")));

  message back = round_trip(m);
  CHECK(back == m);
  CHECK(back.header->priority == 7);
  CHECK(back.message_annotations.get("x-opt-sequence-number")->as_long() == 123456);
  CHECK(back.message_annotations.get("x-opt-enqueued-time")->as_timestamp().ms == 1700000000123);
  CHECK(back.properties.message_id.get().as_string() == "9c2d0f8e-3b5a-4e6f-8a1b-2c3d4e5f6a7b");
  CHECK(back.properties.correlation_id.get().as_ulong() == 42);
  CHECK(*back.properties.content_type == "application/json");
  CHECK(back.application_properties.get("count")->as_int() == 3);
  CHECK(back.body_kind() == body_kind::data);
  CHECK(back.body_sections().size() == 2);
  CHECK(back.body_text() == "part one, part two");
  CHECK(back.footer.get("x-checksum")->as_binary().size() == 3);

  // The encoding is the codec's: the sections decode as a message_view too.
  auto enc = m.encode();
  REQUIRE(enc.has_value());
  auto view = decode_message(*enc);
  REQUIRE(view.has_value());
  CHECK(view->properties->to == "/devices/d1/messages/devicebound");
  CHECK(view->body_section_count() == 2);
}

TEST_CASE("message: compound bodies and values are deep copies") {
  message m;
  {
    // Values built over storage that goes away before the message is used.
    std::string text = "nested";
    std::array<value, 2> entry = {value{symbol_view{"k"}}, value{std::string_view(text)}};
    std::array<value, 3> items = {value{std::int32_t{1}}, value::map(entry), value{true}};
    REQUIRE(m.set_body_value(value::list(items)).has_value());
    m.application_properties.set("temp", std::string_view(text));
    text.assign("XXXXXX");
  }
  message copy = m;
  const message moved = std::move(m);
  for (const message* x : std::array<const message*, 2>{&copy, &moved}) {
    const value body = x->body_value();
    REQUIRE(body.is(type::list));
    REQUIRE(body.count() == 3);
    auto it = body.items().begin();
    ++it;
    CHECK(it->find("k")->as_string() == "nested");
    CHECK(x->application_properties.get("temp")->as_string() == "nested");
    CHECK(round_trip(*x) == *x);
  }

  SUBCASE("amqp-sequence sections") {
    message s;
    std::array<value, 2> a = {value{"x"}, value{std::int64_t{5}}};
    REQUIRE(s.add_sequence(value::list(a)).has_value());
    REQUIRE(s.add_sequence(value::list({})).has_value());
    CHECK(s.add_sequence(value{"not a list"}).error() == errc::invalid_argument);
    CHECK(s.body_sections().size() == 2);
    CHECK(round_trip(s) == s);
    CHECK_FALSE(s.body_text().has_value());
  }
}

TEST_CASE("message: the reference message, decoded into an owned copy and encoded again") {
  test::reference_message ref;
  std::vector<std::byte> enc;
  REQUIRE(encode_append(ref.msg, enc).has_value());
  auto m = message::decode(enc);
  REQUIRE(m.has_value());
  CHECK(m->message_annotations.get("iothub-connection-device-id")->as_string() ==
        "sensor-device-0042");
  CHECK(m->application_properties.get("building")->as_string() == "B12-north");
  CHECK(*m->properties.content_encoding == "utf-8");
  CHECK(m->body_text() == test::reference_body);
  // Decoded values keep their encodings, so the copy encodes to the same bytes.
  auto again = m->encode();
  REQUIRE(again.has_value());
  CHECK(*again == enc);
}

TEST_CASE("message: body accessors") {
  message d(bytes("\xff\xfe"));
  CHECK_FALSE(d.body_text().has_value()); // not UTF-8
  CHECK(d.body_bytes()->size() == 2);
  CHECK(d.body_value().is_null());

  auto v = message::with_value(value{binary_view(bytes("bin"))});
  REQUIRE(v.has_value());
  CHECK(v->body_bytes()->size() == 3);
  CHECK_FALSE(v->body_text().has_value());

  message n;
  CHECK(n.body_kind() == body_kind::none);
  CHECK_FALSE(n.body_bytes().has_value());
  auto empty = n.encode();
  REQUIRE(empty.has_value());
  CHECK(empty->empty());
  n.set_body("t");
  n.clear_body();
  CHECK(n.body_sections().empty());
}

TEST_CASE("message: value_map keys, replacement and removal") {
  value_map a(map_keys::symbol);
  a.set("k", std::int32_t{1});
  a.set("k", std::int32_t{2});
  a.set("j", "x");
  CHECK(a.size() == 2);
  CHECK(a.get("k")->as_int() == 2);
  CHECK(a.begin()->key.get().is(type::symbol));
  CHECK(a.erase("k"));
  CHECK_FALSE(a.erase("k"));
  CHECK_FALSE(a.contains("k"));
  value_map p;
  p.set("k", "v");
  CHECK(p.begin()->key.get().is(type::string));
}

TEST_CASE("message: an unencodable field is an error that names it") {
  message m("ok");
  CHECK(m.check().empty());
  SUBCASE("invalid UTF-8 in a string property") {
    m.properties.to = std::string("\xc3\x28");
    CHECK(m.check() == "properties.to: a string must be valid UTF-8");
  }
  SUBCASE("a symbol that is not ASCII") {
    m.properties.content_type = "t\xc3\xa9xt/plain";
    CHECK(m.check() == "properties.content-type: a symbol must be ASCII");
  }
  SUBCASE("a message-id of a type §3.2.4 does not allow") {
    m.properties.message_id = std::int32_t{5};
    CHECK(m.check() ==
          "properties.message-id: a message id must be a ulong, uuid, binary or string (AMQP "
          "1.0 §3.2.4)");
  }
  SUBCASE("an application property that is a list") {
    std::array<value, 1> one = {value{true}};
    auto list = owned_value::copy_of(value::list(one));
    REQUIRE(list.has_value());
    m.application_properties.set("l", *list);
    CHECK(m.check() == "application-properties[l]: application-property values must be simple "
                       "types (AMQP 1.0 §3.2.5)");
  }
  SUBCASE("an annotation with a string key") {
    m.message_annotations.set_entry(owned_value("str-key"), true);
    CHECK(m.check() ==
          "message-annotations[str-key] key: annotation keys must be symbols or ulongs (AMQP 1.0 "
          "§3.2.10)");
  }
  CHECK(m.encode().error() == errc::invalid_argument);
  CHECK(m.encoded_size().error() == errc::invalid_argument);
}

TEST_CASE("owned_value: deep copies validate what a built value does not") {
  std::array<value, 1> bad = {value{std::string_view("\xc3\x28")}};
  CHECK(owned_value::copy_of(value::list(bad)).error() == errc::invalid_argument);
  std::array<value, 2> mixed = {value{std::int32_t{1}}, value{"x"}};
  CHECK(owned_value::copy_of(value::array(type::int_, mixed)).error() == errc::invalid_argument);
  auto u = owned_value::copy_of(value{uuid{}});
  REQUIRE(u.has_value());
  CHECK(u->kind() == type::uuid);
  owned_value s("abc");
  owned_value t = s;
  s = owned_value(std::int64_t{1});
  CHECK(t.get().as_string() == "abc");
  CHECK(s.get().as_long() == 1);
}
