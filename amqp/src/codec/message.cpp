// Message sections (AMQP 1.0 §3.2): decoding with validation of section order, encoding
// from typed sections, and byte-identical re-encoding of decoded messages.
#include "amqp/message.hpp"

#include <array>

#include "codec/composite_tables.hpp"
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

constexpr std::size_t index_of(section s) noexcept {
  return static_cast<std::size_t>(s) - static_cast<std::size_t>(section::header);
}

// AMQP 1.0 §3.2: the position of each section in the message; body sections share one.
constexpr unsigned order_of(section s) noexcept {
  switch (s) {
  case section::header:
    return 0;
  case section::delivery_annotations:
    return 1;
  case section::message_annotations:
    return 2;
  case section::properties:
    return 3;
  case section::application_properties:
    return 4;
  case section::data:
  case section::amqp_sequence:
  case section::amqp_value:
    return 5;
  case section::footer:
    return 6;
  }
  return 7;
}

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

result<message_view> decode_message(std::span<const std::byte> in,
                                    const decode_limits& limits) noexcept {
  message_view m;
  m.bytes_ = in;
  int last_order = -1;
  std::optional<section> body_section;
  std::size_t pos = 0;
  while (pos < in.size()) {
    const std::byte* start = in.data() + pos;
    const std::byte* next = start;
    if (auto e = detail::validate_value(next, in.data() + in.size(), limits); e != errc{}) {
      return e;
    }
    const auto n = static_cast<std::size_t>(next - start);
    // A section is a described value; its descriptor is nearly always smallulong 0x70-0x78.
    if (start[0] != std::byte{0x00}) {
      return errc::invalid_message;
    }
    const std::byte* body = start + 1;
    std::optional<section> s;
    if (start[1] == std::byte{0x53}) {
      const auto c = std::to_integer<unsigned>(start[2]);
      if (c >= 0x70 && c <= 0x78) {
        s = static_cast<section>(c);
      }
      body += 2;
    } else {
      s = section_of(detail::decode_trusted(body));
    }
    if (!s) {
      return errc::invalid_message;
    }
    // AMQP 1.0 §3.2: sections in order, each at most once, except that the body may be
    // several data or several amqp-sequence sections (all of one kind).
    const int order = static_cast<int>(order_of(*s));
    const bool more_body = order == last_order && body_section == *s && *s != section::amqp_value;
    if (order <= last_order && !more_body) {
      return errc::invalid_message;
    }
    last_order = order;
    const std::size_t k = index_of(*s);
    if (!more_body) {
      m.begin_[k] = static_cast<std::uint32_t>(pos);
    }
    m.end_[k] = static_cast<std::uint32_t>(pos + n);
    const value inner = detail::decode_trusted(body);
    switch (*s) {
    case section::header: {
      header h;
      if (auto r = detail::decode_fields(inner, h); !r) {
        return r.error();
      }
      m.header = h;
      break;
    }
    case section::properties: {
      properties p;
      if (auto r = detail::decode_fields(inner, p); !r) {
        return r.error();
      }
      m.properties = p;
      break;
    }
    case section::delivery_annotations:
    case section::message_annotations:
    case section::application_properties:
    case section::footer: {
      if (!inner.is(type::map)) {
        return errc::invalid_message;
      }
      (*s == section::delivery_annotations     ? m.delivery_annotations
       : *s == section::message_annotations    ? m.message_annotations
       : *s == section::application_properties ? m.application_properties
                                               : m.footer) = inner;
      break;
    }
    case section::data:
      if (!inner.is(type::binary)) {
        return errc::invalid_message;
      }
      if (m.body_count_ == 0) {
        m.first_data_ = inner.as_binary();
      }
      [[fallthrough]];
    case section::amqp_sequence:
      if (*s == section::amqp_sequence && !inner.is(type::list)) {
        return errc::invalid_message;
      }
      [[fallthrough]];
    case section::amqp_value:
      ++m.body_count_;
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
