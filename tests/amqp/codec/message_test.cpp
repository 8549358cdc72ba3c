// Tests of message encoding and decoding (AMQP 1.0 §3.2).
#include <cstring>
#include <fstream>
#include <iterator>

#include <doctest/doctest.h>

#include "amqp/message.hpp"
#include "support/hex.hpp"
#include "support/reference_message.hpp"

using namespace amqp;
using amqp::test::from_hex;
using amqp::test::to_hex;

namespace {
std::vector<std::byte> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), path);
  std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::byte> b(c.size());
  std::memcpy(b.data(), c.data(), c.size());
  return b;
}
std::vector<std::byte> proton_reference() {
  // The bytes of ../shared/bench/data/reference_message.bin, committed as the demo input.
  return read_file(std::string(AMQP_SOURCE_DIR) + "/tools/demo/reference_message.bin");
}

// Checks every field of the reference message as an application reads it.
void check_reference(const message_view& m, std::size_t body_size) {
  REQUIRE(m.header.has_value());
  CHECK(*m.header == header{});
  CHECK(m.message_annotations.find("x-opt-sequence-number")->as_long() == 123456);
  CHECK(m.message_annotations.find("x-opt-offset")->as_string() == "4294967296");
  CHECK(m.message_annotations.find("x-opt-enqueued-time")->as_timestamp().ms == 1700000000123);
  CHECK(m.message_annotations.find("iothub-connection-device-id")->as_string() ==
        "sensor-device-0042");
  REQUIRE(m.properties.has_value());
  CHECK(m.properties->message_id.as_string() == "9c2d0f8e-3b5a-4e6f-8a1b-2c3d4e5f6a7b");
  CHECK(m.properties->content_type->str == "application/json");
  CHECK(m.properties->content_encoding->str == "utf-8");
  CHECK(m.properties->creation_time->ms == 1700000000000);
  CHECK_FALSE(m.properties->to.has_value());
  CHECK(m.application_properties.find("sensorType")->as_string() == "thermostat");
  CHECK(m.application_properties.find("building")->as_string() == "B12-north");
  CHECK(m.application_properties.find("alert")->as_string() == "none");
  CHECK(m.body == body_kind::data);
  CHECK(m.body_section_count() == 1);
  CHECK(m.data().size() == body_size);
}
} // namespace

TEST_CASE("message: Proton's reference message decodes field by field") {
  auto bytes = proton_reference();
  REQUIRE(bytes.size() == 512);
  auto m = decode_message(bytes);
  REQUIRE_MESSAGE(m.has_value(), m.error().message());
  check_reference(*m, 200);
  CHECK(std::string_view(reinterpret_cast<const char*>(m->data().data()), m->data().size()) ==
        amqp::test::reference_body);
}

TEST_CASE("message: an unchanged decoded message re-encodes byte-identically") {
  auto bytes = proton_reference();
  auto m = decode_message(bytes);
  REQUIRE(m.has_value());
  std::vector<std::byte> out;
  REQUIRE(encode_append(*m, message_parts{}, section_set::none, out).has_value());
  CHECK(out == bytes);
}

TEST_CASE("message: replacing one section keeps the others' bytes") {
  auto bytes = proton_reference();
  auto m = decode_message(bytes);
  REQUIRE(m.has_value());
  value ann[] = {value{symbol_view{"x-opt-partition-key"}}, value{"p"}};
  message_parts with;
  with.message_annotations = value::map(ann);
  std::vector<std::byte> out;
  REQUIRE(encode_append(*m, with, section_set::message_annotations, out).has_value());
  auto again = decode_message(out);
  REQUIRE(again.has_value());
  CHECK(again->message_annotations.find("x-opt-partition-key")->as_string() == "p");
  CHECK_FALSE(again->message_annotations.find("x-opt-offset").has_value());
  for (section s :
       {section::header, section::properties, section::application_properties, section::data}) {
    CHECK(to_hex(again->raw(s)) == to_hex(m->raw(s)));
  }
  SUBCASE("a replaced section absent from `with` is dropped") {
    std::vector<std::byte> out2;
    REQUIRE(encode_append(*m, message_parts{}, section_set::header | section_set::body, out2));
    auto d = decode_message(out2);
    REQUIRE(d.has_value());
    CHECK_FALSE(d->header.has_value());
    CHECK(d->body == body_kind::none);
    CHECK(d->properties.has_value());
  }
}

TEST_CASE("message: the built reference message is smaller than Proton's and equal in content") {
  amqp::test::reference_message ref;
  std::vector<std::byte> out;
  REQUIRE(encode_append(ref.msg, out).has_value());
  CHECK(out.size() == *encoded_size(ref.msg));
  CHECK(out.size() < 512);
  auto m = decode_message(out);
  REQUIRE(m.has_value());
  check_reference(*m, 200);
  // Same section values as Proton's encoding.
  auto proton = proton_reference();
  auto pm = decode_message(proton);
  REQUIRE(pm.has_value());
  CHECK(pm->message_annotations == m->message_annotations);
  CHECK(pm->application_properties == m->application_properties);
}

TEST_CASE("message: large bodies are views into the input, not copies") {
  auto body = amqp::test::large_body(1 << 20);
  amqp::test::reference_message ref(body);
  std::vector<std::byte> out;
  REQUIRE(encode_append(ref.msg, out).has_value());
  auto m = decode_message(out);
  REQUIRE(m.has_value());
  check_reference(*m, 1 << 20);
  CHECK(m->data().data() >= out.data());
  CHECK(m->data().data() + m->data().size() <= out.data() + out.size());
}

TEST_CASE("message: every body kind") {
  value seq1_items[] = {value{1U}, value{"a"}};
  value seq2_items[] = {value{true}};
  value seqs[] = {value::list(seq1_items), value::list(seq2_items)};
  message_parts m;
  m.body = body_kind::amqp_sequence;
  m.body_sections = seqs;
  std::vector<std::byte> out;
  REQUIRE(encode_append(m, out).has_value());
  auto d = decode_message(out);
  REQUIRE(d.has_value());
  CHECK(d->body == body_kind::amqp_sequence);
  CHECK(d->body_section_count() == 2);
  std::vector<value> got;
  for (const value& s : d->body_sections()) {
    CHECK(s.descriptor_code() == 0x76);
    got.push_back(s.described_value());
  }
  REQUIRE(got.size() == 2);
  CHECK(got[0] == seqs[0]);
  CHECK(got[1] == seqs[1]);

  value v[] = {value{std::int64_t{-5}}};
  message_parts mv;
  mv.body = body_kind::amqp_value;
  mv.body_sections = v;
  out.clear();
  REQUIRE(encode_append(mv, out).has_value());
  CHECK(to_hex(out) == "005377"
                       "55fb");
  auto dv = decode_message(out);
  REQUIRE(dv.has_value());
  CHECK(dv->body_value().as_long() == -5);

  SUBCASE("mismatched body values are refused") {
    message_parts bad;
    bad.body = body_kind::data;
    bad.body_sections = v;
    CHECK(encoded_size(bad).error() == errc::invalid_argument);
    bad.body = body_kind::amqp_value;
    bad.body_sections = seqs; // two values
    CHECK(encoded_size(bad).error() == errc::invalid_argument);
  }
}

TEST_CASE("message: section order is enforced (AMQP 1.0 §3.2)") {
  // header after properties
  CHECK(decode_message(from_hex("00537345"
                                "00537045"))
            .error() == errc::invalid_message);
  // header twice
  CHECK(decode_message(from_hex("00537045"
                                "00537045"))
            .error() == errc::invalid_message);
  // amqp-value twice
  CHECK(decode_message(from_hex("00537740"
                                "00537740"))
            .error() == errc::invalid_message);
  // data then amqp-sequence
  CHECK(decode_message(from_hex("005375a000"
                                "00537645"))
            .error() == errc::invalid_message);
  // unknown section descriptor
  CHECK(decode_message(from_hex("00537945")).error() == errc::invalid_message);
  // not a described value
  CHECK(decode_message(from_hex("45")).error() == errc::invalid_message);
  // data section that is not binary
  CHECK(decode_message(from_hex("005375a100")).error() == errc::invalid_message);
  // two data sections and a footer are fine; symbolic descriptors too
  auto ok = decode_message(from_hex("005375a00101"
                                    "005375a0020203"
                                    "00a30f616d71703a666f6f7465"
                                    "723a6d6170c10100"));
  REQUIRE_MESSAGE(ok.has_value(), ok.error().message());
  CHECK(ok->body_section_count() == 2);
  CHECK(ok->data().size() == 1);
  CHECK(ok->footer.is(type::map));
}

TEST_CASE("message: header fields and defaults") {
  message_parts m;
  header h;
  h.durable = true;
  h.priority = 9;
  h.ttl = 60000;
  h.delivery_count = 3;
  m.header = h;
  std::vector<std::byte> out;
  REQUIRE(encode_append(m, out).has_value());
  // durable, priority, ttl, first-acquirer (default: null), delivery-count
  CHECK(to_hex(out) == "005370c00c05415009"
                       "700000ea60"
                       "405203");
  auto d = decode_message(out);
  REQUIRE(d.has_value());
  CHECK(*d->header == h);
  CHECK(decode_message(from_hex("005370c0030141"
                                "52"))
            .has_value() == false);
  CHECK(decode_message(from_hex("005370c00301a100")).error() == errc::type_mismatch);
}
