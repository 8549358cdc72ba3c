// Messages to and from their JSON form (message_json.hpp).
#include "message_json.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

#include "amqp/codec.hpp"
#include "amqp/message.hpp"
#include "json_form.hpp"
#include "json_form_detail.hpp"

namespace amqp::cli {
namespace {

using json = nlohmann::json;
using detail::json_path;

// A field of a composite section and the AMQP types its value may have (AMQP 1.0 §3.2.1,
// §3.2.4; message-id-* for message-id and correlation-id, address-string for the addresses).
struct field_spec {
  std::string_view name;
  std::array<type, 4> types;
  std::size_t type_count;
};

constexpr field_spec header_fields[] = {
    {"durable", {type::boolean}, 1},
    {"priority", {type::ubyte}, 1},
    {"ttl", {type::uint}, 1},
    {"first-acquirer", {type::boolean}, 1},
    {"delivery-count", {type::uint}, 1},
};

constexpr std::array<type, 4> message_id_types = {type::ulong, type::uuid, type::binary,
                                                  type::string};

constexpr field_spec properties_fields[] = {
    {"message-id", message_id_types, 4},
    {"user-id", {type::binary}, 1},
    {"to", {type::string}, 1},
    {"subject", {type::string}, 1},
    {"reply-to", {type::string}, 1},
    {"correlation-id", message_id_types, 4},
    {"content-type", {type::symbol}, 1},
    {"content-encoding", {type::symbol}, 1},
    {"absolute-expiry-time", {type::timestamp}, 1},
    {"creation-time", {type::timestamp}, 1},
    {"group-id", {type::string}, 1},
    {"group-sequence", {type::uint}, 1},
    {"reply-to-group-id", {type::string}, 1},
};

// The sections in the order of AMQP 1.0 §3.2, by their JSON member names (the spec's).
constexpr std::string_view section_keys[] = {
    "header",     "delivery-annotations",   "message-annotations",
    "properties", "application-properties", "body",
    "footer"};

constexpr std::string_view body_keys[] = {"data", "amqp-sequence", "amqp-value"};

std::span<const field_spec> fields_of(section s) noexcept {
  if (s == section::header) {
    return header_fields;
  }
  if (s == section::properties) {
    return properties_fields;
  }
  return {};
}

template <class Names> std::string listed(const Names& names) {
  std::string s;
  for (const auto& n : names) {
    if (!s.empty()) {
      s += ", ";
    }
    s += n;
  }
  return s;
}

// The names of `fields`, listed.
std::string listed(std::span<const field_spec> fields) {
  std::vector<std::string_view> names;
  names.reserve(fields.size());
  for (const auto& f : fields) {
    names.push_back(f.name);
  }
  return listed(names);
}

// ---- writing -------------------------------------------------------------------------------

void append_key(std::string_view key, bool& first, std::string& out) {
  if (!first) {
    out += ',';
  }
  first = false;
  detail::append_json_string(key, out);
  out += ':';
}

// header or properties: the fields on the wire by name; a list longer than the spec's (or
// not a list) as its typed value.
void append_composite(const value& inner, std::span<const field_spec> fields, std::string& out) {
  if (!inner.is(type::list) || inner.count() > fields.size()) {
    append_typed_json(inner, out);
    return;
  }
  out += '{';
  bool first = true;
  std::size_t k = 0;
  for (const value& item : inner.items()) {
    if (!item.is(type::null)) {
      append_key(fields[k].name, first, out);
      append_typed_json(item, out);
    }
    ++k;
  }
  out += '}';
}

// ---- reading -------------------------------------------------------------------------------

// A violation of the message form, thrown to the top of parse_message_json: the whole
// error message (the place and what is wrong).
struct form_error {
  std::string message;
};

[[noreturn]] void fail(const json_path* p, std::string_view what) {
  throw form_error{"invalid message JSON: " + detail::render_path(p) + ": " + std::string(what)};
}

// The typed value at `p` (its errors are the typed JSON form's, with their place).
value typed(const json& node, const json_path* p, value_arena& arena) {
  std::string error;
  auto v = detail::build_typed_value(node, p, arena, error);
  if (!v) {
    throw form_error{std::move(error)};
  }
  return *v;
}

value described(std::uint64_t code, const value& inner, value_arena& arena) {
  auto pair = arena.values(2);
  pair[0] = value{code};
  pair[1] = inner;
  return value::described(pair.first<2>());
}

// header or properties: an object of fields (or a typed list), to the section's list.
value read_composite(const json& node, const json_path* p, std::span<const field_spec> fields,
                     value_arena& arena) {
  if (!node.is_object()) {
    fail(p, "expected an object of fields (" + listed(fields) + ")");
  }
  if (node.contains("type")) {
    // The typed list form, for lists with fields beyond the spec's.
    const value v = typed(node, p, arena);
    if (!v.is(type::list)) {
      fail(p, "a typed " + std::string(type_name(v.kind())) + " where a list is needed");
    }
    return v;
  }
  std::vector<value> items;
  for (const auto& [key, field] : node.items()) {
    std::size_t k = 0;
    while (k < fields.size() && fields[k].name != key) {
      ++k;
    }
    const json_path fp{p, key};
    if (k == fields.size()) {
      fail(&fp, "unknown field (" + listed(fields) + ")");
    }
    const value v = typed(field, &fp, arena);
    const auto& spec = fields[k];
    bool allowed = v.is(type::null);
    for (std::size_t t = 0; t < spec.type_count; ++t) {
      allowed = allowed || v.is(spec.types[t]);
    }
    if (!allowed) {
      std::string want;
      for (std::size_t t = 0; t < spec.type_count; ++t) {
        want += t == 0 ? "" : (t + 1 == spec.type_count ? " or " : ", ");
        want += type_name(spec.types[t]);
      }
      fail(&fp, std::string(spec.name) + " must be " + want + ", got " +
                    std::string(type_name(v.kind())));
    }
    if (items.size() <= k) {
      items.resize(k + 1);
    }
    items[k] = v;
  }
  auto stored = arena.values(items.size());
  std::copy(items.begin(), items.end(), stored.begin());
  return value::list(stored);
}

// A section whose value is a map (annotations, application-properties, footer).
value read_map(const json& node, const json_path* p, value_arena& arena) {
  const value v = typed(node, p, arena);
  if (!v.is(type::map)) {
    fail(p, "must be a typed map, got " + std::string(type_name(v.kind())));
  }
  return v;
}

// The body: {"data": [binary...]} | {"amqp-sequence": [list...]} | {"amqp-value": V}.
void read_body(const json& node, const json_path* p, value_arena& arena,
               std::vector<value>& sections) {
  if (!node.is_object() || node.size() != 1) {
    fail(p, "expected an object with one of " + listed(body_keys));
  }
  // The object's iterator, not items(): a binding to *items().begin() outlives the proxy it
  // reads the key from (AddressSanitizer: stack-use-after-scope).
  const auto only = node.begin();
  const std::string& key = only.key();
  const json& inner = only.value();
  const json_path kp{p, key};
  if (key == "amqp-value") {
    sections.push_back(described(static_cast<std::uint64_t>(section::amqp_value),
                                 typed(inner, &kp, arena), arena));
    return;
  }
  const bool data = key == "data";
  if (!data && key != "amqp-sequence") {
    fail(&kp, "unknown body kind (" + listed(body_keys) + ")");
  }
  if (!inner.is_array() || inner.empty()) {
    fail(&kp, std::string("expected a JSON array of one or more typed ") +
                  (data ? "binaries" : "lists"));
  }
  for (std::size_t k = 0; k < inner.size(); ++k) {
    const json_path ip{&kp, {}, k};
    const value v = typed(inner[k], &ip, arena);
    if (!v.is(data ? type::binary : type::list)) {
      fail(&ip, std::string("a ") + (data ? "data" : "amqp-sequence") + " section must be a " +
                    (data ? "binary" : "list") + ", got " + std::string(type_name(v.kind())));
    }
    sections.push_back(described(
        static_cast<std::uint64_t>(data ? section::data : section::amqp_sequence), v, arena));
  }
}

} // namespace

result<void> append_message_json(std::span<const std::byte> encoded, std::string& out) {
  if (const auto m = decode_message(encoded); !m) {
    return m.error();
  }
  std::string doc = "{";
  bool first = true;
  bool in_body = false; // a body member is open: `"body":{"data":[` or `..."amqp-sequence":[`
  std::size_t offset = 0;
  while (offset < encoded.size()) {
    std::size_t consumed = 0;
    const auto v = decode_value(encoded.subspan(offset), consumed);
    const auto s = v && v->is(type::described) ? section_of(v->descriptor()) : std::nullopt;
    if (!s) {
      // decode_message accepted what the value decoder does not: not expected.
      return v ? make_error_code(errc::invalid_message) : v.error();
    }
    offset += consumed;
    const value inner = v->described_value();
    const bool body =
        *s == section::data || *s == section::amqp_sequence || *s == section::amqp_value;
    if (in_body && !body) {
      doc += "]}";
      in_body = false;
    }
    if (body) {
      if (*s == section::amqp_value) {
        append_key("body", first, doc);
        doc += "{\"amqp-value\":";
        append_typed_json(inner, doc);
        doc += '}';
        continue;
      }
      if (in_body) {
        doc += ',';
      } else {
        append_key("body", first, doc);
        doc += *s == section::data ? "{\"data\":[" : "{\"amqp-sequence\":[";
        in_body = true;
      }
      append_typed_json(inner, doc);
      continue;
    }
    append_key(section_name(*s), first, doc);
    const auto fields = fields_of(*s);
    if (fields.empty()) {
      append_typed_json(inner, doc);
    } else {
      append_composite(inner, fields, doc);
    }
  }
  if (in_body) {
    doc += "]}";
  }
  doc += '}';
  out += doc;
  return {};
}

std::optional<std::vector<std::byte>> parse_message_json(std::string_view text,
                                                         std::string& error) {
  const auto doc = detail::parse_json(text, error);
  if (!doc) {
    return std::nullopt;
  }
  value_arena arena;
  std::vector<value> sections;
  std::vector<std::string_view> names; // the member each section came from, for errors
  try {
    if (!doc->is_object()) {
      fail(nullptr,
           "expected a JSON object with the sections of a message (" + listed(section_keys) + ")");
    }
    for (const auto& [key, node] : doc->items()) {
      if (std::find(std::begin(section_keys), std::end(section_keys), key) ==
          std::end(section_keys)) {
        const json_path kp{nullptr, key};
        fail(&kp, "unknown section (" + listed(section_keys) + ")");
      }
    }
    for (const std::string_view key : section_keys) {
      const auto it = doc->find(key);
      if (it == doc->end()) {
        continue;
      }
      const json_path kp{nullptr, key};
      const std::size_t before = sections.size();
      if (key == "header") {
        sections.push_back(described(0x70, read_composite(*it, &kp, header_fields, arena), arena));
      } else if (key == "properties") {
        sections.push_back(
            described(0x73, read_composite(*it, &kp, properties_fields, arena), arena));
      } else if (key == "body") {
        read_body(*it, &kp, arena, sections);
      } else {
        const auto code = key == "delivery-annotations"     ? 0x71U
                          : key == "message-annotations"    ? 0x72U
                          : key == "application-properties" ? 0x74U
                                                            : 0x78U;
        sections.push_back(described(code, read_map(*it, &kp, arena), arena));
      }
      names.insert(names.end(), sections.size() - before, key);
    }
  } catch (const form_error& e) {
    error = e.message;
    return std::nullopt;
  }
  std::vector<std::byte> out;
  std::vector<std::size_t> ends;
  for (const value& s : sections) {
    if (const auto r = encode_append(s, out); !r) {
      error = "cannot encode: " + r.error().message();
      return std::nullopt;
    }
    ends.push_back(out.size());
  }
  // The same validation as a received message's (e.g. the fields of a header given as a
  // typed list): the first section that makes the message invalid is named.
  if (const auto m = decode_message(out); !m) {
    std::string where = "$";
    for (std::size_t k = 0; k < ends.size(); ++k) {
      if (const auto prefix = decode_message(std::span(out).first(ends[k])); !prefix) {
        where = "$." + std::string(names[k]);
        break;
      }
    }
    error = "invalid message JSON: " + where + ": not a valid message: " + m.error().message();
    return std::nullopt;
  }
  return out;
}

} // namespace amqp::cli
