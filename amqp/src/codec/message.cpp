// Message sections (AMQP 1.0 §3.2): decoding with validation of section order, encoding
// from typed sections, and byte-identical re-encoding of decoded messages.
#include "amqp/message.hpp"

#include <array>

#include "codec/composite_tables.hpp"
#include "codec/validator.hpp"
#include "codec/value_access.hpp"

namespace amqp {

namespace {

using detail::writer;

constexpr std::string_view section_names[] = {
    "header", "delivery-annotations", "message-annotations", "properties", "application-properties",
    "data",   "amqp-sequence",        "amqp-value",          "footer"};
constexpr std::string_view section_descriptor_names[] = {"amqp:header:list",
                                                         "amqp:delivery-annotations:map",
                                                         "amqp:message-annotations:map",
                                                         "amqp:properties:list",
                                                         "amqp:application-properties:map",
                                                         "amqp:data:binary",
                                                         "amqp:amqp-sequence:list",
                                                         "amqp:amqp-value:*",
                                                         "amqp:footer:map"};

// The type of the value whose constructor is at *p (for a described value: described).
type ctor_table_type(std::byte c) noexcept {
  return detail::ctor_table[std::to_integer<std::uint8_t>(c)].t;
}

// The place of a section (code 0x70 + k) in message_view's tables.
constexpr std::size_t index_of(section s) noexcept {
  return static_cast<std::size_t>(s) - static_cast<std::size_t>(section::header);
}

struct section_info {
  std::int8_t order; // AMQP 1.0 §3.2: the position in the message; body sections share one
  std::int8_t slot;  // the place in message_view::maps_ of a map section, else -1
};
constexpr section_info section_infos[] = {
    {0, -1}, // header
    {1, 0},  // delivery-annotations
    {2, 1},  // message-annotations
    {3, -1}, // properties
    {4, 2},  // application-properties
    {5, -1}, // data
    {5, -1}, // amqp-sequence
    {5, -1}, // amqp-value
    {6, 3},  // footer
};

// A section whose value is a value (annotations, application-properties, footer, body).
constexpr std::size_t section_header_size = 3; // 0x00 0x53 code

result<std::size_t> value_section_size(const value& v) noexcept {
  const std::size_t n = detail::size_of(v);
  if (n == 0) {
    return errc::invalid_argument;
  }
  return section_header_size + n;
}

void write_value_section(section s, const value& v, writer& w) noexcept {
  w.u8(0x00);
  w.u8(0x53);
  w.u8(static_cast<std::uint8_t>(s));
  detail::write_value(v, w);
}

// Calls f(section, const value&) or f(section, composite) for each section `m` has, in
// order; stops at the first error f returns.
template <class F> result<void> for_each_section(const message_parts& m, section_set only, F&& f) {
  auto want = [&](section_set s) { return only == section_set::none || contains(only, s); };
  result<void> r;
  if (want(section_set::header) && m.header) {
    if (r = f(section::header, *m.header); !r) {
      return r;
    }
  }
  auto map_section = [&](section_set set, section s, const value& v) -> result<void> {
    if (!want(set) || v.is_null()) {
      return {};
    }
    if (!v.is(type::map)) {
      return errc::invalid_argument;
    }
    return f(s, v);
  };
  if (r = map_section(section_set::delivery_annotations, section::delivery_annotations,
                      m.delivery_annotations);
      !r) {
    return r;
  }
  if (r = map_section(section_set::message_annotations, section::message_annotations,
                      m.message_annotations);
      !r) {
    return r;
  }
  if (want(section_set::properties) && m.properties) {
    if (r = f(section::properties, *m.properties); !r) {
      return r;
    }
  }
  if (r = map_section(section_set::application_properties, section::application_properties,
                      m.application_properties);
      !r) {
    return r;
  }
  if (want(section_set::body)) {
    section s = section::amqp_value;
    switch (m.body) {
    case body_kind::none:
      if (!m.body_sections.empty()) {
        return errc::invalid_argument;
      }
      break;
    case body_kind::data:
      s = section::data;
      break;
    case body_kind::amqp_sequence:
      s = section::amqp_sequence;
      break;
    case body_kind::amqp_value:
      if (m.body_sections.size() != 1) {
        return errc::invalid_argument;
      }
      break;
    }
    if (m.body != body_kind::none) {
      for (const value& b : m.body_sections) {
        if ((s == section::data && !b.is(type::binary)) ||
            (s == section::amqp_sequence && !b.is(type::list))) {
          return errc::invalid_argument;
        }
        if (r = f(s, b); !r) {
          return r;
        }
      }
    }
  }
  return map_section(section_set::footer, section::footer, m.footer);
}

struct sizer {
  std::size_t total = 0;
  result<void> operator()(section, const value& v) noexcept {
    auto n = value_section_size(v);
    if (!n) {
      return n.error();
    }
    total += *n;
    return {};
  }
  template <class C> result<void> operator()(section, const C& c) noexcept {
    auto n = detail::composite_size(c);
    if (!n) {
      return n.error();
    }
    total += *n;
    return {};
  }
};

// Writes each section after measuring it once, checking the room left.
struct checked_section_writer {
  writer& w;
  result<void> operator()(section s, const value& v) noexcept {
    if (3 > w.remaining()) {
      return errc::buffer_too_small;
    }
    writer at = w;
    w.u8(0x00);
    w.u8(0x53);
    w.u8(static_cast<std::uint8_t>(s));
    const std::size_t n = detail::write_checked(v, w);
    if (n == 0 || n == detail::max_size) {
      w = at;
      return n == 0 ? errc::invalid_argument : errc::buffer_too_small;
    }
    return {};
  }
  template <class C> result<void> operator()(section, const C& c) noexcept {
    const auto plan = detail::plan_composite(c);
    if (plan.full == 0) {
      return errc::invalid_argument;
    }
    if (plan.full > w.remaining()) {
      return errc::buffer_too_small;
    }
    detail::write_composite(c, plan, w);
    return {};
  }
};

struct section_writer {
  writer& w;
  result<void> operator()(section s, const value& v) noexcept {
    write_value_section(s, v, w);
    return {};
  }
  template <class C> result<void> operator()(section, const C& c) noexcept {
    detail::write_composite(c, w);
    return {};
  }
};

} // namespace

std::optional<section> section_of(const value& d) noexcept {
  if (d.is(type::ulong)) {
    auto c = d.as_ulong();
    if (c >= 0x70 && c <= 0x78) {
      return static_cast<section>(c);
    }
    return std::nullopt;
  }
  if (d.is(type::symbol)) {
    for (std::size_t k = 0; k < std::size(section_descriptor_names); ++k) {
      if (section_descriptor_names[k] == d.as_symbol()) {
        return static_cast<section>(0x70 + k);
      }
    }
  }
  return std::nullopt;
}

std::string_view section_name(section s) noexcept {
  auto k = index_of(s);
  return k < std::size(section_names) ? section_names[k] : std::string_view{};
}

result<std::size_t> encoded_size(const message_parts& m) noexcept {
  sizer s;
  auto r = for_each_section(m, section_set::none, s);
  if (!r) {
    return r.error();
  }
  return s.total;
}

result<std::size_t> encode(const message_parts& m, std::span<std::byte> out) noexcept {
  writer w(out);
  if (auto r = for_each_section(m, section_set::none, checked_section_writer{w}); !r) {
    return r.error();
  }
  return out.size() - w.remaining();
}

result<void> encode_append(const message_parts& m, std::vector<std::byte>& out) {
  auto n = encoded_size(m);
  if (!n) {
    return n.error();
  }
  std::size_t at = out.size();
  out.resize(at + *n);
  writer w(std::span<std::byte>(out).subspan(at));
  (void)for_each_section(m, section_set::none, section_writer{w});
  return {};
}

std::span<const std::byte> message_view::raw(section s) const noexcept {
  std::size_t k = index_of(s);
  if (k >= 9) {
    return {};
  }
  return bytes_.subspan(begin_[k], end_[k] - begin_[k]);
}

value_range message_view::body_sections() const noexcept {
  std::span<const std::byte> b;
  for (section s : {section::data, section::amqp_sequence, section::amqp_value}) {
    if (auto r = raw(s); !r.empty()) {
      b = r;
    }
  }
  return value_access::sequence(b, body_count_);
}

value message_view::body_value() const noexcept {
  if (body != body_kind::amqp_value) {
    return {};
  }
  return (*body_sections().begin()).described_value();
}

value message_view::value_at(std::uint32_t offset) const noexcept {
  value v;
  value_access::decode_at(bytes_.data() + offset, v);
  return v;
}

std::optional<value> message_view::find_rest(const map_index& x,
                                             std::string_view key) const noexcept {
  return detail::find_in_pairs(bytes_.data() + x.rest, x.rest_pairs, key);
}

// Decodes a message in one pass over its sections: each section is validated once (maps
// recording where their keys are as they go, header and properties decoded as they go), then
// read with the trusted reader.
struct message_decoder {
  static result<void> run(message_view& m, std::span<const std::byte> in,
                          const decode_limits& limits) noexcept;
  static errc index_map(detail::validator& check, const std::byte*& p, const std::byte* end,
                        message_view& m, message_view::map_index& x, std::uint32_t& used) noexcept;
};

// Validates the map at p (a map section's value, map8 or map32, nested 1 deep) as
// check.value(p, end, 1) would, and records its keys in m.entries_ from `used` on (the rest,
// once entries_ is full, as a range to scan).
errc message_decoder::index_map(detail::validator& check, const std::byte*& p, const std::byte* end,
                                message_view& m, message_view::map_index& x,
                                std::uint32_t& used) noexcept {
  using detail::code::str8;
  using detail::code::sym8;
  constexpr std::uint32_t depth = 1;
  const std::byte* const base = m.bytes_.data();
  detail::validator::compound_frame f;
  const detail::ctor_info& ci = detail::ctor_table[std::to_integer<std::uint8_t>(*p++)];
  if (auto e = check.open(ci, p, end, depth, f); e != errc{}) {
    return e;
  }
  std::byte* out = m.entries_ + used * sizeof(message_view::map_entry);
  std::byte* const out_end = m.entries_ + sizeof m.entries_;
  std::uint32_t rest = 0;
  std::uint32_t rest_pairs = 0;
  const std::byte* q = f.q;
  for (std::uint32_t k = 0; k < f.count; k += 2) {
    const std::byte* const key = q;
    message_view::map_entry entry{0, message_view::no_text};
    if (f.end - q >= 2 && (std::to_integer<unsigned>(*q) | 2U) == sym8) {
      // str8 or sym8, the keys of nearly every map: validated here as check.value() would.
      const auto len = std::to_integer<std::size_t>(q[1]);
      if (len > static_cast<std::size_t>(f.end - q) - 2) {
        return errc::decode_error;
      }
      const std::byte* t = q + 2;
      q = t + len;
      if (!detail::is_ascii(t, len) &&
          !(*key == std::byte{str8} && detail::is_valid_utf8_slow(t, len))) {
        return errc::decode_error;
      }
      entry = {static_cast<std::uint32_t>(t - base), static_cast<std::uint32_t>(len)};
    } else {
      if (auto e = check.value(q, f.end, depth + 1); e != errc{}) {
        return e;
      }
      const auto kc = std::to_integer<std::uint8_t>(*key);
      if (kc == detail::code::sym32 || kc == detail::code::str32) {
        entry = {static_cast<std::uint32_t>(key + 5 - base), detail::load_be32(key + 1)};
      }
    }
    const std::byte* const val = q;
    if (auto e = check.value(q, f.end, depth + 1); e != errc{}) {
      return e;
    }
    if (out == out_end) {
      // The index is full: this pair and the ones after it are scanned by find().
      rest = static_cast<std::uint32_t>(key - base);
      rest_pairs = (f.count - k) / 2;
      for (k += 2; k < f.count; ++k) {
        if (auto e = check.value(q, f.end, depth + 1); e != errc{}) {
          return e;
        }
      }
      break;
    }
    if (entry.size == message_view::no_text) {
      entry.text = static_cast<std::uint32_t>(val - base);
    }
    std::memcpy(out, &entry, sizeof entry);
    out += sizeof entry;
  }
  if (q != f.end) {
    return errc::decode_error; // nothing left over
  }
  const auto n = static_cast<std::uint32_t>(out - m.entries_) / sizeof(message_view::map_entry);
  x = {static_cast<std::uint16_t>(used), static_cast<std::uint16_t>(n - used), rest, rest_pairs};
  used = static_cast<std::uint32_t>(n);
  return {};
}

result<void> message_decoder::run(message_view& m, std::span<const std::byte> in,
                                  const decode_limits& limits) noexcept {
  m.bytes_ = in;
  const std::byte* const base = in.data();
  const std::byte* const end = base + in.size();
  const std::byte* p = base;
  int last_order = -1;
  // The kind of the body sections seen so far; no section before the first.
  auto body_section = static_cast<section>(0);
  std::uint32_t used = 0; // entries_ filled
  while (p != end) {
    const std::byte* const start = p;
    // Each section has its own budget of zero-width array elements.
    detail::validator check(limits);
    section s{};
    const std::byte* inner = nullptr; // the section's value, after the descriptor
    bool decoded = false;             // header or properties: decoded while validated
    errc fields{};                    // how decoding them went
    // A section is a described value; its descriptor is nearly always smallulong 0x70-0x78.
    const auto c = end - p >= 3 ? std::to_integer<unsigned>(p[2]) : 0U;
    if (p[0] == std::byte{0x00} && c - 0x70U <= 8U && p[1] == std::byte{0x53}) {
      s = static_cast<section>(c);
      // What the validator does for a described value at depth 0.
      if (1 > limits.max_depth) {
        return errc::depth_exceeded;
      }
      inner = p + 3;
      p = inner;
      const int slot = section_infos[index_of(s)].slot;
      errc e{};
      if (slot >= 0 && p != end && ctor_table_type(*p) == type::map) {
        e = index_map(check, p, end, m, m.maps_[slot], used);
      } else if (s == section::header) {
        e = detail::decode_fields_checked(check, p, end, 1, detail::desc_of<header>,
                                          &m.header.emplace(), fields);
        decoded = true;
      } else if (s == section::properties) {
        e = detail::decode_fields_checked(check, p, end, 1, detail::desc_of<properties>,
                                          &m.properties.emplace(), fields);
        decoded = true;
      } else {
        e = check.value(p, end, 1);
      }
      if (e != errc{}) {
        return e;
      }
    } else {
      // Any other descriptor (symbolic, or not a section at all): validate the whole value,
      // then read it.
      if (auto e = check.value(p, end, 0); e != errc{}) {
        return e;
      }
      if (start[0] != std::byte{0x00}) {
        return errc::invalid_message;
      }
      inner = start + 1;
      auto named = section_of(detail::decode_trusted(inner));
      if (!named) {
        return errc::invalid_message;
      }
      s = *named;
    }
    // AMQP 1.0 §3.2: sections in order, each at most once, except that the body may be
    // several data or several amqp-sequence sections (all of one kind).
    const std::size_t k = index_of(s);
    const int order = section_infos[k].order;
    const bool more_body = order == last_order && body_section == s && s != section::amqp_value;
    if (order <= last_order && !more_body) {
      return errc::invalid_message;
    }
    last_order = order;
    if (!more_body) {
      m.begin_[k] = static_cast<std::uint32_t>(start - base);
    }
    m.end_[k] = static_cast<std::uint32_t>(p - base);
    if (decoded) {
      if (fields != errc{}) {
        return fields;
      }
      continue;
    }
    // The section's value passed validation: only its type is left to check.
    const type t = ctor_table_type(*inner);
    switch (s) {
    case section::header:
      if (auto r = detail::decode_fields(detail::decode_trusted(inner), m.header.emplace()); !r) {
        return r;
      }
      break;
    case section::properties:
      if (auto r = detail::decode_fields(detail::decode_trusted(inner), m.properties.emplace());
          !r) {
        return r;
      }
      break;
    case section::delivery_annotations:
    case section::message_annotations:
    case section::application_properties:
    case section::footer: {
      if (t != type::map) {
        return errc::invalid_message;
      }
      (s == section::delivery_annotations     ? m.delivery_annotations
       : s == section::message_annotations    ? m.message_annotations
       : s == section::application_properties ? m.application_properties
                                              : m.footer) = value_access::compound_at(inner);
      break;
    }
    case section::data:
      if (t != type::binary) {
        return errc::invalid_message;
      }
      if (m.body_count_ == 0) {
        m.first_data_ = value_access::variable_at(inner);
      }
      [[fallthrough]];
    case section::amqp_sequence:
      if (s == section::amqp_sequence && t != type::list) {
        return errc::invalid_message;
      }
      [[fallthrough]];
    case section::amqp_value:
      ++m.body_count_;
      body_section = s;
      m.body = s == section::data            ? body_kind::data
               : s == section::amqp_sequence ? body_kind::amqp_sequence
                                             : body_kind::amqp_value;
      break;
    }
  }
  return {};
}

result<message_view> decode_message(std::span<const std::byte> in,
                                    const decode_limits& limits) noexcept {
  // Decoded in place: the view is large enough that a copy shows.
  result<message_view> r;
  if (auto e = message_decoder::run(*r, in, limits); !e) {
    r = e.error();
  }
  return r;
}

result<void> encode_append(const message_view& original, const message_parts& with,
                           section_set replaced, std::vector<std::byte>& out) {
  // Sizes first, then one resize, then writes.
  auto set_of = [](section s) {
    switch (s) {
    case section::header:
      return section_set::header;
    case section::delivery_annotations:
      return section_set::delivery_annotations;
    case section::message_annotations:
      return section_set::message_annotations;
    case section::properties:
      return section_set::properties;
    case section::application_properties:
      return section_set::application_properties;
    case section::footer:
      return section_set::footer;
    default:
      return section_set::body;
    }
  };
  constexpr std::array<section, 9> order = {section::header,
                                            section::delivery_annotations,
                                            section::message_annotations,
                                            section::properties,
                                            section::application_properties,
                                            section::data,
                                            section::amqp_sequence,
                                            section::amqp_value,
                                            section::footer};
  std::size_t total = 0;
  for (section s : order) {
    section_set ss = set_of(s);
    if (contains(replaced, ss)) {
      if (s == section::data || s == section::amqp_sequence) {
        continue; // the body is sized once, under amqp_value
      }
      sizer z;
      if (auto r = for_each_section(with, ss, z); !r) {
        return r;
      }
      total += z.total;
    } else {
      total += original.raw(s).size();
    }
  }
  std::size_t at = out.size();
  out.resize(at + total);
  writer w(std::span<std::byte>(out).subspan(at));
  for (section s : order) {
    section_set ss = set_of(s);
    if (contains(replaced, ss)) {
      if (s == section::data || s == section::amqp_sequence) {
        continue;
      }
      (void)for_each_section(with, ss, section_writer{w});
    } else {
      w.bytes(original.raw(s));
    }
  }
  return {};
}

} // namespace amqp
