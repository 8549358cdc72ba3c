#include "json_form.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "amqp/codec.hpp"
#include "hex.hpp"
#include "json_form_detail.hpp"

namespace amqp::cli {
namespace {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------
// Writing

constexpr char hex_digits[] = "0123456789abcdef";

template <class Int> void append_int(Int i, std::string& out) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, i);
  out.append(buf, r.ptr);
}

template <class Int> void append_int_string(Int i, std::string& out) {
  out += '"';
  append_int(i, out);
  out += '"';
}

// std::to_chars without a precision gives the shortest decimal that reads back as the same
// float (or double), in the type's own precision.
template <class Float> void append_float(Float x, std::string& out) {
  if (std::isnan(x)) {
    out += "\"NaN\"";
  } else if (std::isinf(x)) {
    out += x > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  } else {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, x);
    out.append(buf, r.ptr);
  }
}

void append_hex_string(std::span<const std::byte> bytes, std::string& out) {
  out += '"';
  append_hex(bytes, out);
  out += '"';
}

void append_uuid(const uuid& u, std::string& out) {
  out += '"';
  const std::span<const std::byte> b = u.bytes;
  append_hex(b.subspan(0, 4), out);
  out += '-';
  append_hex(b.subspan(4, 2), out);
  out += '-';
  append_hex(b.subspan(6, 2), out);
  out += '-';
  append_hex(b.subspan(8, 2), out);
  out += '-';
  append_hex(b.subspan(10, 6), out);
  out += '"';
}

void append_items(const value& v, std::string& out) {
  out += '[';
  bool first = true;
  for (const value& item : v.items()) {
    if (!first) {
      out += ',';
    }
    first = false;
    append_typed_json(item, out);
  }
  out += ']';
}

// Map entries as [key, value] pairs, in wire order.
void append_entries(const value& v, std::string& out) {
  out += '[';
  bool is_key = true;
  bool first = true;
  for (const value& item : v.items()) {
    if (is_key) {
      if (!first) {
        out += ',';
      }
      out += '[';
    } else {
      out += ',';
    }
    first = false;
    append_typed_json(item, out);
    if (!is_key) {
      out += ']';
    }
    is_key = !is_key;
  }
  out += ']';
}

// ---------------------------------------------------------------------------------------
// Reading

using detail::append_json_string;
// Where a JSON value sits in the document, for error messages; rendered only on failure.
using path = detail::json_path;

std::string render(const path* p) {
  return detail::render_path(p);
}

// A violation of the typed JSON form, thrown to the top of parse_typed_json.
struct form_error {
  std::string message;
};

[[noreturn]] void fail(const path* p, std::string_view what) {
  throw form_error{render(p) + ": " + std::string(what)};
}

std::string json_quoted(std::string_view s) {
  std::string q;
  append_json_string(s, q);
  return q;
}

// JSON text of a (small) value, for error messages.
std::string shown(const json& j) {
  std::string s = j.dump();
  if (s.size() > 60) {
    s.resize(57);
    s += "...";
  }
  return s;
}

constexpr bool is_ascii(std::string_view s) noexcept {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      return false;
    }
  }
  return true;
}

// The typed JSON forms of integer types that are JSON numbers.
template <class Int> Int json_integer(const json& x, const path* p, std::string_view tname) {
  if (!x.is_number_integer()) {
    fail(p, std::string(tname) + " value must be an integer JSON number, got " + shown(x));
  }
  bool fits = false;
  Int out{};
  if (x.is_number_unsigned()) {
    const auto u = x.get<std::uint64_t>();
    fits = std::in_range<Int>(u);
    out = static_cast<Int>(u);
  } else {
    const auto i = x.get<std::int64_t>();
    fits = std::in_range<Int>(i);
    out = static_cast<Int>(i);
  }
  if (!fits) {
    fail(p, std::string(tname) + " out of range: " + shown(x));
  }
  return out;
}

// ulong, long and timestamp: a decimal string -?(0|[1-9][0-9]*) within range.
template <class Int> Int decimal_string(const json& x, const path* p, std::string_view tname) {
  if (!x.is_string()) {
    fail(p, std::string(tname) + " value must be a decimal string, got " + shown(x));
  }
  const auto& s = x.get_ref<const std::string&>();
  const std::string_view digits = s.starts_with('-') ? std::string_view(s).substr(1) : s;
  bool ok = !digits.empty() && (digits[0] != '0' || digits.size() == 1);
  for (char c : digits) {
    ok = ok && c >= '0' && c <= '9';
  }
  if (!ok) {
    fail(p, std::string(tname) + " value must be a decimal string, got " + json_quoted(s));
  }
  if constexpr (std::is_unsigned_v<Int>) {
    if (s.starts_with('-')) {
      if (digits == "0") {
        return 0;
      }
      fail(p, std::string(tname) + " out of range: " + json_quoted(s));
    }
  }
  Int out{};
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  if (r.ec != std::errc{} || r.ptr != s.data() + s.size()) {
    fail(p, std::string(tname) + " out of range: " + json_quoted(s));
  }
  return out;
}

// float and double: a JSON number, or "NaN", "Infinity", "-Infinity". A float is rounded
// from the number's decimal value directly (not through a double, which could round twice).
template <class Float> Float json_float(const json& x, const path* p, std::string_view tname) {
  if (x.is_string()) {
    const auto& s = x.get_ref<const std::string&>();
    if (s == "NaN") {
      return std::numeric_limits<Float>::quiet_NaN();
    }
    if (s == "Infinity") {
      return std::numeric_limits<Float>::infinity();
    }
    if (s == "-Infinity") {
      return -std::numeric_limits<Float>::infinity();
    }
  }
  if (!x.is_number()) {
    fail(p, std::string(tname) + R"( value must be a number or "NaN", "Infinity", )" +
                R"("-Infinity", got )" + shown(x));
  }
  // The number's decimal text. nlohmann keeps non-negative integers as unsigned and "-0"
  // as a signed 0, so the sign of zero survives. A fractional number was parsed to the
  // nearest double; its shortest form is the original decimal whenever that had at most 15
  // significant digits (DBL_DIG), which covers every shortest float form.
  char buf[64];
  char* end = buf;
  double d = 0;
  if (x.is_number_float()) {
    d = x.get<double>();
    if constexpr (std::is_same_v<Float, double>) {
      return d;
    }
    if (!std::isfinite(d)) {
      return static_cast<Float>(d);
    }
    end = std::to_chars(buf, buf + sizeof buf, d).ptr;
  } else if (x.is_number_unsigned()) {
    end = std::to_chars(buf, buf + sizeof buf, x.get<std::uint64_t>()).ptr;
  } else if (const auto i = x.get<std::int64_t>(); i == 0) {
    buf[0] = '-';
    buf[1] = '0';
    end = buf + 2;
  } else {
    end = std::to_chars(buf, buf + sizeof buf, i).ptr;
  }
  Float f{};
  const auto r = std::from_chars(buf, end, f);
  if (r.ec == std::errc::result_out_of_range) {
    // Beyond the type's range: overflow rounds to infinity, underflow to zero (IEEE 754).
    const Float mag = std::fabs(d) >= 1 ? std::numeric_limits<Float>::infinity() : Float{0};
    return std::signbit(d) ? -mag : mag;
  }
  if (r.ec != std::errc{}) {
    fail(p, std::string(tname) + " value unreadable: " + shown(x));
  }
  return f;
}

template <std::size_t N>
std::array<std::byte, N> fixed_hex(const json& x, const path* p, std::string_view tname) {
  std::optional<std::vector<std::byte>> bytes;
  if (x.is_string()) {
    bytes = parse_lower_hex(x.get_ref<const std::string&>());
  }
  if (!bytes || bytes->size() != N) {
    fail(p, std::string(tname) + " value must be " + std::to_string(2 * N) +
                " lowercase hex digits, got " + shown(x));
  }
  std::array<std::byte, N> out{};
  std::copy(bytes->begin(), bytes->end(), out.begin());
  return out;
}

uuid json_uuid(const json& x, const path* p) {
  std::string digits;
  bool ok = x.is_string() && x.get_ref<const std::string&>().size() == 36;
  if (ok) {
    const auto& s = x.get_ref<const std::string&>();
    for (std::size_t k = 0; k < s.size(); ++k) {
      const bool dash_here = k == 8 || k == 13 || k == 18 || k == 23;
      if (dash_here != (s[k] == '-')) {
        ok = false;
      } else if (!dash_here) {
        digits += s[k];
      }
    }
  }
  const auto bytes = ok ? parse_lower_hex(digits) : std::nullopt;
  if (!bytes) {
    fail(p, "uuid value must be lowercase 8-4-4-4-12 hex, got " + shown(x));
  }
  uuid u;
  std::copy(bytes->begin(), bytes->end(), u.bytes.begin());
  return u;
}

class builder {
public:
  explicit builder(value_arena& arena) noexcept : arena_(arena) {}

  value build(const json& j, const path* p, std::size_t depth) {
    if (!j.is_object()) {
      fail(p, "expected a typed value object {\"type\": ..., ...}, got " + shown(j));
    }
    const auto t_it = j.find("type");
    if (t_it == j.end() || !t_it->is_string()) {
      fail(p, "missing \"type\" string");
    }
    const auto& tname = t_it->get_ref<const std::string&>();
    const auto t = type_from_name(tname);
    if (!t) {
      fail(p, "unknown type " + json_quoted(tname));
    }
    check_keys(j, *t, p);
    if (*t == type::null) {
      return value{};
    }
    const json& x = j.at("value");
    const path vp{p, "value"};
    switch (*t) {
    case type::null:
      break;
    case type::boolean:
      if (!x.is_boolean()) {
        fail(&vp, "boolean value must be true or false, got " + shown(x));
      }
      return value{x.get<bool>()};
    case type::ubyte:
      return value{json_integer<std::uint8_t>(x, &vp, tname)};
    case type::ushort:
      return value{json_integer<std::uint16_t>(x, &vp, tname)};
    case type::uint:
      return value{json_integer<std::uint32_t>(x, &vp, tname)};
    case type::ulong:
      return value{decimal_string<std::uint64_t>(x, &vp, tname)};
    case type::byte:
      return value{json_integer<std::int8_t>(x, &vp, tname)};
    case type::short_:
      return value{json_integer<std::int16_t>(x, &vp, tname)};
    case type::int_:
      return value{json_integer<std::int32_t>(x, &vp, tname)};
    case type::long_:
      return value{decimal_string<std::int64_t>(x, &vp, tname)};
    case type::timestamp:
      return value{timestamp{decimal_string<std::int64_t>(x, &vp, tname)}};
    case type::float_:
      return value{json_float<float>(x, &vp, tname)};
    case type::double_:
      return value{json_float<double>(x, &vp, tname)};
    case type::decimal32:
      return value{decimal32{fixed_hex<4>(x, &vp, tname)}};
    case type::decimal64:
      return value{decimal64{fixed_hex<8>(x, &vp, tname)}};
    case type::decimal128:
      return value{decimal128{fixed_hex<16>(x, &vp, tname)}};
    case type::char_: {
      const auto c = json_integer<std::uint32_t>(x, &vp, tname);
      if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
        fail(&vp, "char is not a Unicode scalar value: " + std::to_string(c));
      }
      return value{static_cast<char32_t>(c)};
    }
    case type::uuid:
      return value{json_uuid(x, &vp)};
    case type::binary: {
      auto bytes = x.is_string() ? parse_lower_hex(x.get_ref<const std::string&>()) : std::nullopt;
      if (!bytes) {
        fail(&vp, "binary value must be lowercase hex, got " + shown(x));
      }
      return value{arena_.bytes(std::move(*bytes))};
    }
    case type::string:
    case type::symbol: {
      if (!x.is_string()) {
        fail(&vp, tname + " value must be a JSON string, got " + shown(x));
      }
      const auto& s = x.get_ref<const std::string&>();
      if (*t == type::symbol && !is_ascii(s)) {
        fail(&vp, "symbol value must be ASCII, got " + json_quoted(s));
      }
      if (!is_valid_utf8(s)) {
        fail(&vp, "string value is not valid UTF-8");
      }
      const auto stored = arena_.text(s);
      return *t == type::symbol ? value{symbol_view{stored}} : value{stored};
    }
    case type::list:
    case type::map:
    case type::array:
    case type::described:
      if (depth >= max_typed_json_depth) {
        fail(p, "nested deeper than " + std::to_string(max_typed_json_depth) + " levels");
      }
      return build_compound(j, *t, p, depth + 1);
    }
    fail(p, "unknown type " + json_quoted(tname));
  }

private:
  // Exactly the keys of the form: "type" always, "value" except for null, "element" for
  // arrays, "descriptor" for described values.
  static void check_keys(const json& j, type t, const path* p) {
    const bool has_value = t != type::null;
    const bool has_element = t == type::array;
    const bool has_descriptor = t == type::described;
    for (const auto& [k, unused] : j.items()) {
      const bool known = k == "type" || (k == "value" && has_value) ||
                         (k == "element" && has_element) || (k == "descriptor" && has_descriptor);
      if (!known) {
        fail(p, "unexpected key " + json_quoted(k) + " in " + std::string(type_name(t)));
      }
    }
    const auto need = [&](bool wanted, const char* k) {
      if (wanted && !j.contains(k)) {
        fail(p, std::string(type_name(t)) + " needs a \"" + k + "\" key");
      }
    };
    need(has_value, "value");
    need(has_element, "element");
    need(has_descriptor, "descriptor");
  }

  value build_compound(const json& j, type t, const path* p, std::size_t depth) {
    const json& x = j.at("value");
    const path vp{p, "value"};
    if (t == type::described) {
      const path dp{p, "descriptor"};
      auto pair = arena_.values(2);
      pair[0] = build(j.at("descriptor"), &dp, depth);
      pair[1] = build(x, &vp, depth);
      return value::described(pair.first<2>());
    }
    if (!x.is_array()) {
      fail(&vp, std::string(type_name(t)) + " value must be a JSON array, got " + shown(x));
    }
    if (t == type::list) {
      auto items = arena_.values(x.size());
      for (std::size_t k = 0; k < x.size(); ++k) {
        const path ip{&vp, {}, k};
        items[k] = build(x[k], &ip, depth);
      }
      return value::list(items);
    }
    if (t == type::map) {
      auto items = arena_.values(2 * x.size());
      for (std::size_t k = 0; k < x.size(); ++k) {
        const path ip{&vp, {}, k};
        const json& entry = x[k];
        if (!entry.is_array() || entry.size() != 2) {
          fail(&ip, "map entries must be [key, value] arrays, got " + shown(entry));
        }
        const path kp{&ip, {}, 0};
        const path ep{&ip, {}, 1};
        items[2 * k] = build(entry[0], &kp, depth);
        items[2 * k + 1] = build(entry[1], &ep, depth);
      }
      return value::map(items);
    }
    // An array: every element a full typed value of the element type.
    const path elp{p, "element"};
    const json& e = j.at("element");
    const auto element =
        e.is_string() ? type_from_name(e.get_ref<const std::string&>()) : std::nullopt;
    if (!element) {
      fail(&elp, "array element must be a type name, got " + shown(e));
    }
    auto items = arena_.values(x.size());
    for (std::size_t k = 0; k < x.size(); ++k) {
      const path ip{&vp, {}, k};
      items[k] = build(x[k], &ip, depth);
      if (items[k].kind() != *element) {
        fail(&ip, "element of type " + std::string(type_name(items[k].kind())) +
                      " in an array of " + std::string(type_name(*element)));
      }
      // AMQP 1.0 §1.2: a described array has one descriptor, shared by every element.
      if (*element == type::described && !(items[k].descriptor() == items[0].descriptor())) {
        fail(&ip, "described array element with a descriptor differing from the first's");
      }
    }
    return value::array(*element, items);
  }

  value_arena& arena_;
};

// Tracks the keys of the objects being parsed, to reject duplicates (nlohmann would keep
// the last silently).
struct key_tracker {
  std::vector<std::vector<std::string>> open;
  std::string duplicate;

  bool operator()(int, json::parse_event_t event, json& parsed) {
    switch (event) {
    case json::parse_event_t::object_start:
      open.emplace_back();
      break;
    case json::parse_event_t::object_end:
      if (!open.empty()) {
        open.pop_back();
      }
      break;
    case json::parse_event_t::key: {
      auto& keys = open.back();
      auto k = parsed.get<std::string>();
      for (const auto& seen : keys) {
        if (seen == k && duplicate.empty()) {
          duplicate = k;
        }
      }
      keys.push_back(std::move(k));
      break;
    }
    default:
      break;
    }
    return true;
  }
};

} // namespace

void append_typed_json(const value& v, std::string& out) {
  out += R"({"type":")";
  out += type_name(v.kind());
  out += '"';
  if (v.kind() == type::null) {
    out += '}';
    return;
  }
  if (v.kind() == type::array) {
    out += R"(,"element":")";
    out += type_name(v.element_type());
    out += '"';
  } else if (v.kind() == type::described) {
    out += ",\"descriptor\":";
    append_typed_json(v.descriptor(), out);
  }
  out += ",\"value\":";
  switch (v.kind()) {
  case type::null:
    break;
  case type::boolean:
    out += v.as_bool() ? "true" : "false";
    break;
  case type::ubyte:
    append_int(v.as_ubyte(), out);
    break;
  case type::ushort:
    append_int(v.as_ushort(), out);
    break;
  case type::uint:
    append_int(v.as_uint(), out);
    break;
  case type::ulong:
    append_int_string(v.as_ulong(), out);
    break;
  case type::byte:
    append_int(v.as_byte(), out);
    break;
  case type::short_:
    append_int(v.as_short(), out);
    break;
  case type::int_:
    append_int(v.as_int(), out);
    break;
  case type::long_:
    append_int_string(v.as_long(), out);
    break;
  case type::float_:
    append_float(v.as_float(), out);
    break;
  case type::double_:
    append_float(v.as_double(), out);
    break;
  case type::decimal32:
    append_hex_string(v.as_decimal32().bytes, out);
    break;
  case type::decimal64:
    append_hex_string(v.as_decimal64().bytes, out);
    break;
  case type::decimal128:
    append_hex_string(v.as_decimal128().bytes, out);
    break;
  case type::char_:
    append_int(static_cast<std::uint32_t>(v.as_char()), out);
    break;
  case type::timestamp:
    append_int_string(v.as_timestamp().ms, out);
    break;
  case type::uuid:
    append_uuid(v.as_uuid(), out);
    break;
  case type::binary:
    append_hex_string(v.as_binary(), out);
    break;
  case type::string:
    append_json_string(v.as_string(), out);
    break;
  case type::symbol:
    append_json_string(v.as_symbol(), out);
    break;
  case type::list:
  case type::array:
    append_items(v, out);
    break;
  case type::map:
    append_entries(v, out);
    break;
  case type::described:
    append_typed_json(v.described_value(), out);
    break;
  }
  out += '}';
}

std::string to_typed_json(const value& v) {
  std::string s;
  append_typed_json(v, s);
  return s;
}

std::span<value> value_arena::values(std::size_t n) {
  return values_.emplace_back(n);
}

std::string_view value_arena::text(std::string s) {
  return texts_.emplace_back(std::move(s));
}

std::span<const std::byte> value_arena::bytes(std::vector<std::byte> b) {
  return bytes_.emplace_back(std::move(b));
}

void value_arena::clear() noexcept {
  values_.clear();
  texts_.clear();
  bytes_.clear();
}

std::optional<value> parse_typed_json(std::string_view text, value_arena& arena,
                                      std::string& error) {
  const auto doc = detail::parse_json(text, error);
  if (!doc) {
    return std::nullopt;
  }
  return detail::build_typed_value(*doc, nullptr, arena, error);
}

// Escapes what JSON requires (quote, backslash, controls) plus U+0085, U+2028 and U+2029, which are
// line breaks to some readers (Python's str.splitlines(), JavaScript): one document stays
// one line. Everything else is UTF-8 passed through.
void detail::append_json_string(std::string_view s, std::string& out) {
  out += '"';
  for (std::size_t k = 0; k < s.size(); ++k) {
    const char ch = s[k];
    const auto c = static_cast<unsigned char>(ch);
    if (c == 0xC2 && k + 1 < s.size() && static_cast<unsigned char>(s[k + 1]) == 0x85) {
      out += "\\u0085";
      ++k;
      continue;
    }
    if (c == 0xE2 && k + 2 < s.size() && static_cast<unsigned char>(s[k + 1]) == 0x80 &&
        (static_cast<unsigned char>(s[k + 2]) & 0xFE) == 0xA8) {
      out += static_cast<unsigned char>(s[k + 2]) == 0xA8 ? "\\u2028" : "\\u2029";
      k += 2;
      continue;
    }
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\b':
      out += "\\b";
      break;
    case '\f':
      out += "\\f";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (c < 0x20) {
        out += "\\u00";
        out += hex_digits[c >> 4];
        out += hex_digits[c & 0xF];
      } else {
        out += ch;
      }
    }
  }
  out += '"';
}

std::string detail::render_path(const json_path* p) {
  if (p == nullptr) {
    return "$";
  }
  std::string s = render_path(p->parent);
  if (!p->key.empty()) {
    s += '.';
    s += p->key;
  } else {
    s += '[';
    s += std::to_string(p->index);
    s += ']';
  }
  return s;
}

std::optional<nlohmann::json> detail::parse_json(std::string_view text, std::string& error) {
  json doc;
  key_tracker keys;
  try {
    doc = json::parse(text, std::ref(keys));
  } catch (const json::exception& e) {
    // A syntax error, or a number beyond a double's range. Drop nlohmann's
    // "[json.exception.parse_error.101] " prefix.
    std::string_view what = e.what();
    if (const auto k = what.find("] "); k != std::string_view::npos) {
      what.remove_prefix(k + 2);
    }
    error = "invalid JSON: " + std::string(what);
    return std::nullopt;
  }
  if (!keys.duplicate.empty()) {
    error = "invalid typed JSON: duplicate key " + json_quoted(keys.duplicate);
    return std::nullopt;
  }
  return doc;
}

std::optional<value> detail::build_typed_value(const nlohmann::json& node, const json_path* where,
                                               value_arena& arena, std::string& error) {
  try {
    return builder{arena}.build(node, where, 0);
  } catch (const form_error& e) {
    error = "invalid typed JSON: " + e.message;
    return std::nullopt;
  }
}

} // namespace amqp::cli
