// Fuzz target decode_message: the message decoder on untrusted bytes (AMQP 1.0 §3.2).
//
// Input: the bytes of one message (a transfer payload), decoded with the default limits. A
// decoded message is read completely (header and properties fields, every annotation map, the
// body sections), must re-encode byte-identically when no section is replaced, and must
// survive having each section replaced by its own decoded content: the result decodes to an
// equal message.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "amqp/message.hpp"
#include "support/check.hpp"

using namespace amqp;
using amqp::fuzz::require;
using amqp::fuzz::same_bytes;

namespace {

constexpr std::array<section, 9> all_sections = {section::header,
                                                 section::delivery_annotations,
                                                 section::message_annotations,
                                                 section::properties,
                                                 section::application_properties,
                                                 section::data,
                                                 section::amqp_sequence,
                                                 section::amqp_value,
                                                 section::footer};

bool is_ascii(std::string_view s) noexcept {
  for (char ch : s) {
    if ((static_cast<unsigned char>(ch) & 0x80U) != 0) {
      return false;
    }
  }
  return true;
}

void check_string(const std::optional<std::string_view>& s) {
  require(!s || is_valid_utf8(*s));
}
void check_symbol(const std::optional<symbol_view>& s) {
  require(!s || is_ascii(s->str));
}

void check_id(const value& id) {
  if (!id.is_null()) {
    (void)fuzz::walk_decoded(id);
  }
}

// A section holding a map (annotations, application-properties, footer): null if absent,
// else a decoded map whose raw section bytes decode to it.
void check_map_section(const message_view& m, const value& v, section s) {
  const auto raw = m.raw(s);
  if (v.is_null()) {
    require(raw.empty());
    return;
  }
  require(v.is(type::map));
  (void)fuzz::walk_decoded(v);
  auto whole = decode_whole(raw);
  require(whole.has_value() && whole->is(type::described));
  require(whole->described_value() == v);
  // The decoder's key index finds what value::find finds, for every key of the map.
  bool is_key = true;
  for (const value& k : v.items()) {
    if (is_key && (k.is(type::string) || k.is(type::symbol))) {
      const auto want = v.find(k.as_string());
      const auto got = m.find(s, k.as_string());
      require(want.has_value() && got.has_value() && *want == *got);
    }
    is_key = !is_key;
  }
  require(m.find(s, "").has_value() == v.find("").has_value());
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

bool same_body(const message_view& a, const message_view& b) {
  if (a.body != b.body || a.body_section_count() != b.body_section_count()) {
    return false;
  }
  auto ra = a.body_sections();
  auto rb = b.body_sections();
  for (auto ia = ra.begin(), ib = rb.begin(); ia != ra.end(); ++ia, ++ib) {
    // The descriptor may be written differently (symbolic or numeric): compare the contents.
    if (!(ia->described_value() == ib->described_value())) {
      return false;
    }
  }
  return same_bytes(a.data(), b.data()) && a.body_value() == b.body_value();
}

bool same_message(const message_view& a, const message_view& b) {
  return a.header == b.header && a.delivery_annotations == b.delivery_annotations &&
         a.message_annotations == b.message_annotations &&
         a.properties.has_value() == b.properties.has_value() &&
         (!a.properties || same_properties(*a.properties, *b.properties)) &&
         a.application_properties == b.application_properties && same_body(a, b) &&
         a.footer == b.footer;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  auto r = decode_message(in);
  if (!r) {
    const auto e = r.error();
    require(e == errc::decode_error || e == errc::depth_exceeded || e == errc::resource_limit ||
            e == errc::invalid_message || e == errc::type_mismatch || e == errc::missing_field);
    return 0;
  }
  const message_view& m = *r;
  require(m.bytes().data() == in.data() && m.bytes().size() == in.size());

  // Every field of header and properties.
  if (m.header) {
    require(!m.raw(section::header).empty());
    (void)m.header->durable;
    (void)m.header->priority;
    (void)m.header->ttl;
    (void)m.header->first_acquirer;
    (void)m.header->delivery_count;
  } else {
    require(m.raw(section::header).empty());
  }
  if (m.properties) {
    const properties& p = *m.properties;
    require(!m.raw(section::properties).empty());
    check_id(p.message_id);
    check_id(p.correlation_id);
    check_string(p.to);
    check_string(p.subject);
    check_string(p.reply_to);
    check_string(p.group_id);
    check_string(p.reply_to_group_id);
    check_symbol(p.content_type);
    check_symbol(p.content_encoding);
    (void)p.user_id;
    (void)p.absolute_expiry_time;
    (void)p.creation_time;
    (void)p.group_sequence;
  } else {
    require(m.raw(section::properties).empty());
  }
  check_map_section(m, m.delivery_annotations, section::delivery_annotations);
  check_map_section(m, m.message_annotations, section::message_annotations);
  check_map_section(m, m.application_properties, section::application_properties);
  check_map_section(m, m.footer, section::footer);

  // The body sections, in order; each a described value of the body's kind.
  std::vector<value> body;
  const section body_section = m.body == body_kind::data            ? section::data
                               : m.body == body_kind::amqp_sequence ? section::amqp_sequence
                                                                    : section::amqp_value;
  std::size_t body_bytes = 0;
  std::uint32_t n = 0;
  for (const value& s : m.body_sections()) {
    require(s.is(type::described));
    const auto enc = fuzz::walk_decoded(s);
    body_bytes += enc.size();
    const value inner = s.described_value();
    switch (m.body) {
    case body_kind::data:
      require(inner.is(type::binary));
      if (n == 0) {
        require(same_bytes(inner.as_binary(), m.data()));
      }
      break;
    case body_kind::amqp_sequence:
      require(inner.is(type::list));
      break;
    case body_kind::amqp_value:
      require(n == 0 && inner == m.body_value());
      break;
    case body_kind::none:
      require(false);
    }
    body.push_back(inner);
    ++n;
  }
  require(n == m.body_section_count());
  require(m.body == body_kind::none ? n == 0 : n >= 1);
  require(m.body == body_kind::data || m.data().empty());
  require(m.body == body_kind::amqp_value || m.body_value().is_null());
  if (m.body != body_kind::none) {
    require(body_bytes == m.raw(body_section).size());
  }

  // The sections tile the input, in order.
  std::size_t total = 0;
  for (section s : all_sections) {
    const auto raw = m.raw(s);
    require(raw.empty() || raw.data() == in.data() + total);
    total += raw.size();
  }
  require(total == in.size());

  // Nothing replaced: the exact bytes come back (after whatever `out` already held).
  std::vector<std::byte> out{std::byte{0xCD}};
  require(encode_append(m, message_parts{}, section_set::none, out).has_value());
  require(out.size() == 1 + in.size() && out[0] == std::byte{0xCD});
  require(same_bytes(std::span<const std::byte>(out).subspan(1), in));

  // Each section, and then all of them, replaced by its own decoded content: the encoding
  // decodes to an equal message.
  message_parts with;
  with.header = m.header;
  with.delivery_annotations = m.delivery_annotations;
  with.message_annotations = m.message_annotations;
  with.properties = m.properties;
  with.application_properties = m.application_properties;
  with.body = m.body;
  with.body_sections = body;
  with.footer = m.footer;
  constexpr std::array<section_set, 8> replacements = {
      section_set::header,
      section_set::delivery_annotations,
      section_set::message_annotations,
      section_set::properties,
      section_set::application_properties,
      section_set::body,
      section_set::footer,
      section_set::header | section_set::delivery_annotations | section_set::message_annotations |
          section_set::properties | section_set::application_properties | section_set::body |
          section_set::footer};
  for (section_set replaced : replacements) {
    out.clear();
    require(encode_append(m, with, replaced, out).has_value());
    auto again = decode_message(out);
    require(again.has_value());
    require(same_message(m, *again));
  }

  // The message encoder agrees with itself.
  auto sz = encoded_size(with);
  require(sz.has_value());
  out.clear();
  require(encode_append(with, out).has_value() && out.size() == *sz);
  std::vector<std::byte> buf(*sz);
  auto w = encode(with, buf);
  require(w.has_value() && *w == *sz && same_bytes(buf, out));
  auto again = decode_message(out);
  require(again.has_value() && same_message(m, *again));
  return 0;
}
