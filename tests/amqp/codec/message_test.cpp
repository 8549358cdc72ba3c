// Tests of message encoding and decoding (AMQP 1.0 §3.2).
#include <array>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/message.hpp"
#include "codec/composite_tables.hpp"
#include "codec/value_access.hpp"
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

// ---- The one-pass decoder against the two-pass one it replaced -------------------------------

namespace {

// The message decoder as it was before it validated and read each section in one pass: every
// section validated whole by the value validator, then read with the trusted reader, header
// and properties through decode_fields. decode_message must accept exactly what this accepts,
// with the same error, and read the same fields.
struct reference_message_view {
  std::optional<header> hdr;
  value delivery_annotations, message_annotations, application_properties, footer;
  std::optional<properties> props;
  body_kind body = body_kind::none;
  std::uint32_t body_count = 0;
  binary_view first_data;
  std::array<std::pair<std::size_t, std::size_t>, 9> ranges{}; // [begin, end) per section
};

std::variant<errc, reference_message_view> reference_decode(std::span<const std::byte> in) {
  auto err = [](const std::error_code& e) { return static_cast<errc>(e.value()); };
  reference_message_view m;
  int last_order = -1;
  std::optional<section> body_section;
  std::size_t pos = 0;
  while (pos < in.size()) {
    const std::byte* start = in.data() + pos;
    const std::byte* next = start;
    if (auto e = detail::validate_value(next, in.data() + in.size(), decode_limits{});
        e != errc{}) {
      return e;
    }
    const auto n = static_cast<std::size_t>(next - start);
    if (start[0] != std::byte{0x00}) {
      return errc::invalid_message;
    }
    const std::byte* body = start + 1;
    const auto s = section_of(detail::decode_trusted(body));
    if (!s) {
      return errc::invalid_message;
    }
    const std::array<int, 9> orders = {0, 1, 2, 3, 4, 5, 5, 5, 6};
    const auto k = static_cast<std::size_t>(*s) - 0x70;
    const int order = orders[k];
    const bool more_body = order == last_order && body_section == *s && *s != section::amqp_value;
    if (order <= last_order && !more_body) {
      return errc::invalid_message;
    }
    last_order = order;
    if (!more_body) {
      m.ranges[k].first = pos;
    }
    m.ranges[k].second = pos + n;
    const value inner = detail::decode_trusted(body);
    switch (*s) {
    case section::header: {
      header h;
      if (auto r = detail::decode_fields(inner, h); !r) {
        return err(r.error());
      }
      m.hdr = h;
      break;
    }
    case section::properties: {
      properties p;
      if (auto r = detail::decode_fields(inner, p); !r) {
        return err(r.error());
      }
      m.props = p;
      break;
    }
    case section::delivery_annotations:
    case section::message_annotations:
    case section::application_properties:
    case section::footer:
      if (!inner.is(type::map)) {
        return errc::invalid_message;
      }
      (*s == section::delivery_annotations     ? m.delivery_annotations
       : *s == section::message_annotations    ? m.message_annotations
       : *s == section::application_properties ? m.application_properties
                                               : m.footer) = inner;
      break;
    case section::data:
      if (!inner.is(type::binary)) {
        return errc::invalid_message;
      }
      if (m.body_count == 0) {
        m.first_data = inner.as_binary();
      }
      [[fallthrough]];
    case section::amqp_sequence:
      if (*s == section::amqp_sequence && !inner.is(type::list)) {
        return errc::invalid_message;
      }
      [[fallthrough]];
    case section::amqp_value:
      ++m.body_count;
      body_section = *s;
      m.body = *s == section::data            ? body_kind::data
               : *s == section::amqp_sequence ? body_kind::amqp_sequence
                                              : body_kind::amqp_value;
      break;
    }
    pos += n;
  }
  return m;
}

bool same_bytes(binary_view a, binary_view b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

bool same_properties(const properties& a, const properties& b) {
  return a.message_id == b.message_id && a.user_id.has_value() == b.user_id.has_value() &&
         (!a.user_id || same_bytes(*a.user_id, *b.user_id)) && a.to == b.to &&
         a.subject == b.subject && a.reply_to == b.reply_to &&
         a.correlation_id == b.correlation_id && a.content_type == b.content_type &&
         a.content_encoding == b.content_encoding &&
         a.absolute_expiry_time == b.absolute_expiry_time && a.creation_time == b.creation_time &&
         a.group_id == b.group_id && a.group_sequence == b.group_sequence &&
         a.reply_to_group_id == b.reply_to_group_id;
}

// Every key of every map section, looked up through the index, gives what value::find gives
// on the map; so do keys that are absent.
void check_index(const message_view& m) {
  const std::pair<section, const value*> maps[] = {
      {section::delivery_annotations, &m.delivery_annotations},
      {section::message_annotations, &m.message_annotations},
      {section::application_properties, &m.application_properties},
      {section::footer, &m.footer}};
  for (const auto& [s, map] : maps) {
    std::vector<std::string_view> keys = {"", "absent", "x-opt-offset", "sensorType"};
    if (map->is(type::map)) {
      bool is_key = true;
      for (const value& v : map->items()) {
        if (is_key && (v.is(type::string) || v.is(type::symbol))) {
          keys.push_back(v.as_string());
        }
        is_key = !is_key;
      }
    }
    for (std::string_view key : keys) {
      const auto want = map->find(key);
      const auto got = m.find(s, key);
      REQUIRE(want.has_value() == got.has_value());
      if (want) {
        CHECK(*want == *got);
        CHECK(want->format_code() == got->format_code());
        if (want->get_string() || want->get_symbol() || want->get_binary()) {
          CHECK(want->as_binary().data() == got->as_binary().data()); // the same bytes
        }
      }
    }
  }
  CHECK_FALSE(m.find(section::properties, "x-opt-offset").has_value());
  CHECK_FALSE(m.find(section::data, "x-opt-offset").has_value());
}

// decode_message(in) and reference_decode(in) agree: same error, or the same fields.
void check_against_reference(std::span<const std::byte> in) {
  const auto got = decode_message(in);
  const auto want = reference_decode(in);
  if (const errc* e = std::get_if<errc>(&want)) {
    REQUIRE_MESSAGE(!got.has_value(), to_hex(in));
    REQUIRE_MESSAGE(got.error() == *e, to_hex(in));
    return;
  }
  REQUIRE_MESSAGE(got.has_value(), to_hex(in), " ", got.error().message());
  const auto& r = std::get<reference_message_view>(want);
  const message_view& m = *got;
  CHECK(m.header == r.hdr);
  REQUIRE(m.properties.has_value() == r.props.has_value());
  if (r.props) {
    CHECK(same_properties(*m.properties, *r.props));
  }
  CHECK(m.delivery_annotations == r.delivery_annotations);
  CHECK(m.message_annotations == r.message_annotations);
  CHECK(m.application_properties == r.application_properties);
  CHECK(m.footer == r.footer);
  CHECK(m.body == r.body);
  CHECK(m.body_section_count() == r.body_count);
  CHECK(same_bytes(m.data(), r.first_data));
  CHECK(m.data().data() == r.first_data.data());
  for (std::size_t k = 0; k < 9; ++k) {
    const auto raw = m.raw(static_cast<section>(0x70 + k));
    CHECK(static_cast<std::size_t>(raw.data() - in.data()) == r.ranges[k].first);
    CHECK(raw.size() == r.ranges[k].second - r.ranges[k].first);
  }
  check_index(m);
}

// A message with every section, maps of every key kind (ulong, str8, sym8, str32, sym32,
// UTF-8), lists and maps as values, and an amqp-value body.
std::vector<std::byte> rich_message() {
  const std::string long_key(300, 'k');
  value da[] = {value{std::uint64_t{7}}, value{"ulong key"}, value{symbol_view{"x-da"}},
                value{std::int32_t{-5}}};
  value list_items[] = {value{1U}, value{"two"}};
  value ma[] = {value{symbol_view{"x-opt-offset"}},
                value::list(list_items),
                value{symbol_view{std::string_view(long_key)}},
                value{true},
                value{symbol_view{"x-a"}},
                value{timestamp{42}}};
  value inner_map[] = {value{"k"}, value{"v"}};
  value ap[] = {value{"température"},
                value{"21 °C"},
                value{std::string_view(long_key)},
                value::map(inner_map),
                value{"sensorType"},
                value{binary_view{}},
                value{"sensorType"},
                value{"a second entry with the same key"}};
  value footer[] = {value{symbol_view{"x-f"}}, value{std::uint8_t{1}}};
  value body[] = {value{"an amqp-value body"}};
  message_parts p;
  p.header = header{true, 7, 1000U, true, 3};
  p.delivery_annotations = value::map(da);
  p.message_annotations = value::map(ma);
  properties props;
  props.message_id = value{std::uint64_t{99}};
  props.user_id = binary_view{};
  props.to = "queue";
  props.subject = "subject";
  props.reply_to = "reply";
  props.correlation_id = value{"corr"};
  props.content_type = symbol_view{"text/plain"};
  props.content_encoding = symbol_view{"utf-8"};
  props.absolute_expiry_time = timestamp{1};
  props.creation_time = timestamp{2};
  props.group_id = "group";
  props.group_sequence = 5U;
  props.reply_to_group_id = "reply-group";
  p.properties = props;
  p.application_properties = value::map(ap);
  p.body = body_kind::amqp_value;
  p.body_sections = body;
  p.footer = value::map(footer);
  std::vector<std::byte> out;
  REQUIRE(encode_append(p, out).has_value());
  return out;
}

// Each byte replaced by bytes that matter to the decoder (format codes, sizes off by one, the
// high bit), and every truncation.
void check_mutations(const std::vector<std::byte>& original) {
  check_against_reference(original);
  std::vector<std::byte> in = original;
  const std::uint8_t codes[] = {0x00, 0x40, 0x41, 0x43, 0x45, 0x53, 0x56, 0x70,
                                0x73, 0x74, 0x80, 0x83, 0xa0, 0xa1, 0xa3, 0xb1,
                                0xb3, 0xc0, 0xc1, 0xd0, 0xd1, 0xe0, 0xf0, 0xff};
  for (std::size_t i = 0; i < in.size(); ++i) {
    const auto b = std::to_integer<std::uint8_t>(original[i]);
    for (std::uint8_t c : codes) {
      in[i] = std::byte{c};
      check_against_reference(in);
    }
    for (std::uint8_t c : {static_cast<std::uint8_t>(b + 1), static_cast<std::uint8_t>(b - 1),
                           static_cast<std::uint8_t>(b ^ 0x80)}) {
      in[i] = std::byte{c};
      check_against_reference(in);
    }
    in[i] = original[i];
  }
  for (std::size_t n = 0; n < original.size(); ++n) {
    check_against_reference(std::span<const std::byte>(original).first(n));
  }
}

} // namespace

TEST_CASE("message: the one-pass decoder agrees with the two-pass one on every mutation") {
  SUBCASE("Proton's reference message") {
    check_mutations(proton_reference());
  }
  SUBCASE("a message with every section and every kind of key") {
    check_mutations(rich_message());
  }
  SUBCASE("symbolic descriptors and repeated sections") {
    check_against_reference(from_hex("00a30f616d71703a666f6f7465723a6d6170c10100"));
    check_against_reference(from_hex("00a3106d71703a6d6573736167652d616e6e6fc10100"));
    check_against_reference(from_hex("005372c10100005372c10100"));
    check_against_reference(from_hex("005370c00100005373c00100"));
  }
}

TEST_CASE("message: annotations and application properties are found through the index") {
  auto bytes = proton_reference();
  auto m = decode_message(bytes);
  REQUIRE(m.has_value());
  CHECK(m->message_annotation("x-opt-sequence-number")->as_long() == 123456);
  CHECK(m->message_annotation("x-opt-offset")->as_string() == "4294967296");
  CHECK(m->message_annotation("x-opt-enqueued-time")->as_timestamp().ms == 1700000000123);
  CHECK(m->message_annotation("iothub-connection-device-id")->as_string() == "sensor-device-0042");
  CHECK_FALSE(m->message_annotation("sensorType").has_value());
  CHECK(m->application_property("sensorType")->as_string() == "thermostat");
  CHECK(m->application_property("building")->as_string() == "B12-north");
  CHECK(m->application_property("alert")->as_string() == "none");
  CHECK_FALSE(m->application_property("x-opt-offset").has_value());
  CHECK_FALSE(m->application_property("alert2").has_value());
  CHECK_FALSE(m->application_property("aler").has_value());
  SUBCASE("a copy of the view keeps its index") {
    const message_view copy = *m;
    CHECK(copy.application_property("alert")->as_string() == "none");
  }
  SUBCASE("the first of two equal keys wins, as in value::find") {
    auto rich = rich_message();
    auto r = decode_message(rich);
    REQUIRE(r.has_value());
    CHECK(r->application_property("sensorType")->is(type::binary));
    CHECK(r->find(section::footer, "x-f")->as_ubyte() == 1);
    CHECK(r->find(section::delivery_annotations, "x-da")->as_int() == -5);
    CHECK(r->application_property("température")->as_string() == "21 °C");
    CHECK(r->application_property(std::string(300, 'k'))->is(type::map));
    CHECK(r->message_annotation(std::string(300, 'k'))->as_bool());
  }
}

TEST_CASE("message: keys beyond max_indexed_entries are found by a scan") {
  // 20 + 20 + 4 map entries: the index holds the first 32 of the message; the rest of the
  // application properties and all of the footer are scanned.
  constexpr std::size_t per_map = 20;
  std::vector<std::string> names;
  for (std::size_t i = 0; i < 2 * per_map + 4; ++i) {
    names.push_back("key-" + std::to_string(i));
  }
  std::vector<value> ma, ap, footer;
  for (std::size_t i = 0; i < names.size(); ++i) {
    auto& map = i < per_map ? ma : i < 2 * per_map ? ap : footer;
    map.push_back(i < per_map || i >= 2 * per_map ? value{symbol_view{names[i]}}
                                                  : value{std::string_view(names[i])});
    map.push_back(value{static_cast<std::uint64_t>(i)});
  }
  message_parts p;
  p.message_annotations = value::map(ma);
  p.application_properties = value::map(ap);
  p.footer = value::map(footer);
  std::vector<std::byte> out;
  REQUIRE(encode_append(p, out).has_value());
  REQUIRE(ma.size() / 2 + ap.size() / 2 > message_view::max_indexed_entries);
  auto m = decode_message(out);
  REQUIRE(m.has_value());
  for (std::size_t i = 0; i < names.size(); ++i) {
    const section s = i < per_map       ? section::message_annotations
                      : i < 2 * per_map ? section::application_properties
                                        : section::footer;
    auto v = m->find(s, names[i]);
    REQUIRE_MESSAGE(v.has_value(), names[i]);
    CHECK(v->as_ulong() == i);
  }
  CHECK_FALSE(m->application_property("key-0").has_value());
  CHECK_FALSE(m->application_property("key-99").has_value());
  check_index(*m);
  check_mutations(out);
}
