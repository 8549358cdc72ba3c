// Frame trace (amqp/trace.hpp): a short text form of values, performatives, SASL frames and
// messages, with secrets redacted, and the frame tracer that follows a byte stream.
//
// Decoding is the codec's (decode_frame, decode_value, decode_message); composites are printed
// from the field tables of codec/composite_tables.hpp, so each field has its spec name and
// typed fields (roles, settle modes, nested composites) their names.
#include "amqp/trace.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstring>
#include <new>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "amqp/message.hpp"
#include "codec/composite_tables.hpp"
#include "frame/frame.hpp"
#include "frame/protocol_header.hpp"

namespace amqp {

namespace {

constexpr char hex_digits[] = "0123456789abcdef";

char lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// True if `s` begins with `lower_prefix` (given in lower case), ignoring case.
bool starts_with_nocase(std::string_view s, std::string_view lower_prefix) noexcept {
  if (s.size() < lower_prefix.size()) {
    return false;
  }
  for (std::size_t k = 0; k < lower_prefix.size(); ++k) {
    if (lower(s[k]) != lower_prefix[k]) {
      return false;
    }
  }
  return true;
}

std::string_view as_chars(std::span<const std::byte> b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// ---- redaction -----------------------------------------------------------------------------

// Secret parameters: the value after the name (lower case, with its `=` or `%3d`) is replaced.
struct secret_param {
  std::string_view name;
  bool encoded; // `=` written as %3D: the value also ends at %26, %3B, %2C, %20
};
constexpr secret_param secret_params[] = {
    {"sig=", false},
    {"sig%3d", true},
    {"sharedaccesskey=", false},
    {"sharedaccesskey%3d", true},
    {"password=", false},
    {"password%3d", true},
};

bool ends_value(std::string_view s, std::size_t j, bool encoded) noexcept {
  const auto c = static_cast<unsigned char>(s[j]);
  if (c < 0x20 || c == 0x7F) {
    return true;
  }
  switch (c) {
  case '&':
  case ';':
  case ',':
  case ' ':
  case '"':
  case '\'':
  case '<':
  case '>':
  case '#':
    return true;
  default:
    break;
  }
  if (encoded && c == '%') {
    const std::string_view rest = s.substr(j);
    return starts_with_nocase(rest, "%26") || starts_with_nocase(rest, "%3b") ||
           starts_with_nocase(rest, "%2c") || starts_with_nocase(rest, "%20");
  }
  return false;
}

// Ends the text a URL's user-info is looked for in. Not '/', '?' or '#': RFC 3986 wants them
// escaped in a password, but people write them as they are; a password must not leak because
// of it (a later '@' in a path or query only hides more than needed).
bool ends_url(char ch) noexcept {
  const auto c = static_cast<unsigned char>(ch);
  return c <= 0x20 || c == 0x7F || ch == '"' || ch == '\'' || ch == '<' || ch == '>';
}

// True if `s` holds something redact_into would change (the common case is no: no copy then).
bool may_hold_secret(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const std::string_view rest = s.substr(i);
    if (rest.starts_with("://")) {
      return true;
    }
    for (const auto& p : secret_params) {
      if (starts_with_nocase(rest, p.name)) {
        return true;
      }
    }
  }
  return false;
}

template <class String> void redact_into(std::string_view s, String& out) {
  std::size_t i = 0;
  while (i < s.size()) {
    const std::string_view rest = s.substr(i);
    bool done = false;
    for (const auto& p : secret_params) {
      if (starts_with_nocase(rest, p.name)) {
        out.append(rest.substr(0, p.name.size()));
        i += p.name.size();
        std::size_t j = i;
        while (j < s.size() && !ends_value(s, j, p.encoded)) {
          ++j;
        }
        if (j > i) {
          out.append("***");
        }
        i = j;
        done = true;
        break;
      }
    }
    if (done) {
      continue;
    }
    if (rest.starts_with("://")) {
      // scheme://user:password@host: from the first ':' to the last '@'.
      out.append("://");
      i += 3;
      std::size_t end = i;
      while (end < s.size() && !ends_url(s[end])) {
        ++end;
      }
      const std::string_view url = s.substr(i, end - i);
      const std::size_t at = url.rfind('@');
      const std::size_t colon = at == std::string_view::npos ? at : url.substr(0, at).find(':');
      if (colon != std::string_view::npos) {
        out.append(url.substr(0, colon + 1));
        out.append("***");
        i += at; // continue at the '@'
      }
      continue;
    }
    out.push_back(s[i]);
    ++i;
  }
}

// ---- the line ------------------------------------------------------------------------------

// A line being written, cut at max_line (at a UTF-8 boundary). Everything appended after the
// cut is dropped; callers check full() to stop walking big values early.
class line {
public:
  line(std::pmr::string& s, const trace_options& o) noexcept : s_(s), o_(o) {}

  void put(std::string_view t) {
    if (full_) {
      return;
    }
    const std::size_t room = o_.max_line > s_.size() ? o_.max_line - s_.size() : 0;
    if (t.size() <= room) {
      s_.append(t);
      return;
    }
    std::size_t cut = room;
    while (cut > 0 && (static_cast<unsigned char>(t[cut]) & 0xC0) == 0x80) {
      --cut;
    }
    s_.append(t.substr(0, cut));
    full_ = true;
  }
  void put(char c) { put(std::string_view(&c, 1)); }
  template <class Int> void put_int(Int v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    put(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
  }
  void put_size(std::size_t n) {
    put_int(n);
    put(n == 1 ? " byte" : " bytes");
  }
  // Ends the line: "..." if it was cut.
  void finish() {
    if (full_) {
      s_.append("...");
    }
  }
  [[nodiscard]] bool full() const noexcept { return full_; }
  [[nodiscard]] const trace_options& opts() const noexcept { return o_; }
  [[nodiscard]] std::pmr::memory_resource* memory() const noexcept {
    return s_.get_allocator().resource();
  }

private:
  std::pmr::string& s_;
  const trace_options& o_;
  bool full_ = false;
};

enum class text_kind : std::uint8_t { string, symbol, binary };

void put_escaped_byte(line& l, unsigned char c) {
  switch (c) {
  case '"':
    l.put("\\\"");
    return;
  case '\\':
    l.put("\\\\");
    return;
  case '\n':
    l.put("\\n");
    return;
  case '\r':
    l.put("\\r");
    return;
  case '\t':
    l.put("\\t");
    return;
  default:
    break;
  }
  const char esc[4] = {'\\', 'x', hex_digits[c >> 4], hex_digits[c & 0xF]};
  l.put(std::string_view(esc, 4));
}

// Text between quotes: redacted, escaped (controls, quotes; bytes above 0x7F unless UTF-8
// text, and U+0085, U+2028, U+2029, which some readers take for line ends), cut to `max`.
void put_quoted(line& l, std::string_view raw, text_kind kind, std::size_t max) {
  std::pmr::string redacted(l.memory());
  std::string_view s = raw;
  if (may_hold_secret(raw)) {
    redact_into(raw, redacted);
    s = redacted;
  }
  std::size_t cut = std::min(s.size(), max);
  if (kind == text_kind::string) {
    while (cut > 0 && cut < s.size() && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) {
      --cut;
    }
  }
  if (kind == text_kind::binary) {
    l.put('b');
  }
  l.put('"');
  std::size_t run = 0; // start of the bytes passed through as they are
  auto flush = [&](std::size_t k) {
    if (k > run) {
      l.put(s.substr(run, k - run));
    }
  };
  for (std::size_t k = 0; k < cut && !l.full(); ++k) {
    const auto c = static_cast<unsigned char>(s[k]);
    const bool plain = c >= 0x20 && c < 0x7F && c != '"' && c != '\\';
    if (plain) {
      continue;
    }
    if (c >= 0x80 && kind == text_kind::string) {
      if (c == 0xC2 && k + 1 < cut && static_cast<unsigned char>(s[k + 1]) == 0x85) {
        flush(k);
        l.put("\\u0085");
        run = ++k + 1;
      } else if (c == 0xE2 && k + 2 < cut && static_cast<unsigned char>(s[k + 1]) == 0x80 &&
                 (static_cast<unsigned char>(s[k + 2]) & 0xFE) == 0xA8) {
        flush(k);
        l.put(static_cast<unsigned char>(s[k + 2]) == 0xA8 ? "\\u2028" : "\\u2029");
        k += 2;
        run = k + 1;
      }
      continue; // other UTF-8 passes through
    }
    flush(k);
    put_escaped_byte(l, c);
    run = k + 1;
  }
  flush(cut);
  l.put('"');
  if (cut < s.size()) {
    l.put("...(");
    l.put_size(raw.size());
    l.put(')');
  }
}

bool plain_symbol(std::string_view s) noexcept {
  if (s.empty()) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == ':' || c == '/' || c == '$';
  });
}

void put_symbol(line& l, std::string_view s) {
  l.put(':');
  if (plain_symbol(s) && s.size() <= l.opts().max_string && !may_hold_secret(s)) {
    l.put(s);
  } else {
    put_quoted(l, s, text_kind::symbol, l.opts().max_string);
  }
}

void put_hex(line& l, std::span<const std::byte> b) {
  for (const std::byte x : b) {
    const auto c = std::to_integer<unsigned>(x);
    const char two[2] = {hex_digits[c >> 4], hex_digits[c & 0xF]};
    l.put(std::string_view(two, 2));
  }
}

void put_uuid(line& l, const uuid& u) {
  const std::span<const std::byte> b = u.bytes;
  put_hex(l, b.subspan(0, 4));
  l.put('-');
  put_hex(l, b.subspan(4, 2));
  l.put('-');
  put_hex(l, b.subspan(6, 2));
  l.put('-');
  put_hex(l, b.subspan(8, 2));
  l.put('-');
  put_hex(l, b.subspan(10, 6));
}

void put_timestamp(line& l, std::int64_t ms) {
  using namespace std::chrono;
  // Years 1 to 9999 in ISO 8601; anything else as the raw count.
  constexpr std::int64_t min_ms = -62135596800000;
  constexpr std::int64_t max_ms = 253402300799999;
  if (ms < min_ms || ms > max_ms) {
    l.put("timestamp(");
    l.put_int(ms);
    l.put(')');
    return;
  }
  const sys_time<milliseconds> tp{milliseconds{ms}};
  const auto day = floor<days>(tp);
  const year_month_day ymd{day};
  const hh_mm_ss<milliseconds> t{tp - day};
  char buf[32];
  auto two = [](char* p, unsigned v) {
    p[0] = static_cast<char>('0' + v / 10 % 10);
    p[1] = static_cast<char>('0' + v % 10);
  };
  const auto y = static_cast<unsigned>(static_cast<int>(ymd.year()));
  two(buf, y / 100);
  two(buf + 2, y % 100);
  buf[4] = '-';
  two(buf + 5, static_cast<unsigned>(ymd.month()));
  buf[7] = '-';
  two(buf + 8, static_cast<unsigned>(ymd.day()));
  buf[10] = 'T';
  two(buf + 11, static_cast<unsigned>(t.hours().count()));
  buf[13] = ':';
  two(buf + 14, static_cast<unsigned>(t.minutes().count()));
  buf[16] = ':';
  two(buf + 17, static_cast<unsigned>(t.seconds().count()));
  buf[19] = '.';
  const auto sub = static_cast<unsigned>(t.subseconds().count());
  buf[20] = static_cast<char>('0' + sub / 100);
  two(buf + 21, sub % 100);
  buf[23] = 'Z';
  l.put(std::string_view(buf, 24));
}

void put_binary(line& l, std::span<const std::byte> b) {
  put_quoted(l, as_chars(b), text_kind::binary, l.opts().max_binary);
}

// Nesting deeper than this is shown as "..." (decoded values are already limited by the
// decoder; built ones passed to describe() are not).
constexpr int max_print_depth = 64;

void put_value(line& l, const value& v, int depth = 0);
bool put_known_composite(line& l, const value& v);

// Elements of a list or array, or entries of a map (`pairs`), up to max_items.
void put_items(line& l, const value& v, bool pairs, int depth) {
  std::size_t shown = 0;
  bool key = true;
  bool first = true;
  const std::size_t limit = l.opts().max_items * (pairs ? 2 : 1);
  for (const value& item : v.items()) {
    if (l.full()) {
      return;
    }
    if (shown == limit) {
      l.put(", ...");
      return;
    }
    if (!pairs || key) {
      if (!first) {
        l.put(", ");
      }
      first = false;
    } else {
      l.put('=');
    }
    put_value(l, item, depth + 1);
    key = !key;
    ++shown;
  }
}

void put_value(line& l, const value& v, int depth) {
  if (l.full()) {
    return;
  }
  if (depth > max_print_depth) {
    l.put("...");
    return;
  }
  switch (v.kind()) {
  case type::null:
    l.put("null");
    return;
  case type::boolean:
    l.put(v.as_bool() ? "true" : "false");
    return;
  case type::ubyte:
  case type::ushort:
  case type::uint:
  case type::ulong:
    l.put_int(*v.get_unsigned());
    return;
  case type::byte:
  case type::short_:
  case type::int_:
  case type::long_:
    l.put_int(*v.get_signed());
    return;
  case type::float_:
  case type::double_: {
    char buf[64];
    const auto r = v.kind() == type::float_ ? std::to_chars(buf, buf + sizeof buf, v.as_float())
                                            : std::to_chars(buf, buf + sizeof buf, v.as_double());
    l.put(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
    return;
  }
  case type::decimal32:
    l.put("decimal32(0x");
    put_hex(l, v.as_decimal32().bytes);
    l.put(')');
    return;
  case type::decimal64:
    l.put("decimal64(0x");
    put_hex(l, v.as_decimal64().bytes);
    l.put(')');
    return;
  case type::decimal128:
    l.put("decimal128(0x");
    put_hex(l, v.as_decimal128().bytes);
    l.put(')');
    return;
  case type::char_: {
    const char32_t c = v.as_char();
    if (c >= 0x20 && c < 0x7F && c != '\'' && c != '\\') {
      const char q[3] = {'\'', static_cast<char>(c), '\''};
      l.put(std::string_view(q, 3));
    } else {
      l.put("U+");
      char buf[16];
      const auto r = std::to_chars(buf, buf + sizeof buf, static_cast<std::uint32_t>(c), 16);
      for (auto n = r.ptr - buf; n < 4; ++n) {
        l.put('0');
      }
      l.put(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
    }
    return;
  }
  case type::timestamp:
    put_timestamp(l, v.as_timestamp().ms);
    return;
  case type::uuid:
    put_uuid(l, v.as_uuid());
    return;
  case type::binary:
    put_binary(l, v.as_binary());
    return;
  case type::string:
    put_quoted(l, v.as_string(), text_kind::string, l.opts().max_string);
    return;
  case type::symbol:
    put_symbol(l, v.as_symbol());
    return;
  case type::list:
    l.put('[');
    put_items(l, v, false, depth);
    l.put(']');
    return;
  case type::map:
    l.put('{');
    put_items(l, v, true, depth);
    l.put('}');
    return;
  case type::array:
    l.put('@');
    l.put(type_name(v.element_type()));
    l.put('[');
    put_items(l, v, false, depth);
    l.put(']');
    return;
  case type::described: {
    if (put_known_composite(l, v)) {
      return;
    }
    l.put('@');
    const value d = v.descriptor();
    if (const auto code = v.descriptor_code()) {
      l.put("0x");
      char buf[24];
      const auto r = std::to_chars(buf, buf + sizeof buf, *code, 16);
      l.put(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
    } else {
      put_value(l, d, depth + 1);
    }
    l.put(' ');
    put_value(l, v.described_value(), depth + 1);
    return;
  }
  }
}

// A multiple symbol field: one symbol, or [:a, :b].
void put_symbols(line& l, const value& wire) {
  if (wire.is(type::array)) {
    l.put('[');
    put_items(l, wire, false, 0);
    l.put(']');
  } else {
    put_value(l, wire);
  }
}

// ---- composites ----------------------------------------------------------------------------

std::string_view enum_name(role r) noexcept {
  return r == role::receiver ? "receiver" : "sender";
}
std::string_view enum_name(sender_settle_mode m) noexcept {
  switch (m) {
  case sender_settle_mode::unsettled:
    return "unsettled";
  case sender_settle_mode::settled:
    return "settled";
  case sender_settle_mode::mixed:
    return "mixed";
  }
  return {};
}
std::string_view enum_name(receiver_settle_mode m) noexcept {
  switch (m) {
  case receiver_settle_mode::first:
    return "first";
  case receiver_settle_mode::second:
    return "second";
  }
  return {};
}
std::string_view enum_name(terminus_durability d) noexcept {
  switch (d) {
  case terminus_durability::none:
    return "none";
  case terminus_durability::configuration:
    return "configuration";
  case terminus_durability::unsettled_state:
    return "unsettled-state";
  }
  return {};
}
std::string_view enum_name(sasl_code c) noexcept {
  switch (c) {
  case sasl_code::ok:
    return "ok";
  case sasl_code::auth:
    return "auth";
  case sasl_code::sys:
    return "sys";
  case sasl_code::sys_perm:
    return "sys-perm";
  case sasl_code::sys_temp:
    return "sys-temp";
  }
  return {};
}

template <detail::composite T> void put_composite(line& l, const T& x, const value& described);

// RFC 4616 PLAIN: authzid NUL authcid NUL passwd. The password is never shown.
void put_plain_response(line& l, std::span<const std::byte> b) {
  const std::string_view s = as_chars(b);
  const std::size_t n1 = s.find('\0');
  const std::size_t n2 = n1 == std::string_view::npos ? n1 : s.find('\0', n1 + 1);
  if (n2 == std::string_view::npos) {
    l.put('<');
    l.put_size(b.size());
    l.put('>');
    return;
  }
  l.put("PLAIN(authzid=");
  // Quoted as symbols are: bytes above 0x7F escaped (the response need not be UTF-8).
  put_quoted(l, s.substr(0, n1), text_kind::symbol, l.opts().max_string);
  l.put(", authcid=");
  put_quoted(l, s.substr(n1 + 1, n2 - n1 - 1), text_kind::symbol, l.opts().max_string);
  l.put(", passwd=***)");
}

void put_secret_size(line& l, const value& wire) {
  l.put('<');
  l.put_size(wire.is(type::binary) ? wire.as_binary().size() : 0);
  l.put('>');
}

// Fields shown differently from their value: the secrets of SASL. False: not special.
template <class T> bool put_special(line&, const T&, std::string_view, const value&) {
  return false;
}
bool put_special(line& l, const sasl_init& x, std::string_view field, const value& wire) {
  if (field != "initial-response") {
    return false;
  }
  const std::string_view mech = x.mechanism.str;
  if (wire.is(type::binary) && mech.size() == 5 && starts_with_nocase(mech, "plain")) {
    put_plain_response(l, wire.as_binary());
  } else {
    put_secret_size(l, wire);
  }
  return true;
}
bool put_special(line& l, const sasl_challenge&, std::string_view field, const value& wire) {
  if (field != "challenge") {
    return false;
  }
  put_secret_size(l, wire);
  return true;
}
bool put_special(line& l, const sasl_response&, std::string_view field, const value& wire) {
  if (field != "response") {
    return false;
  }
  put_secret_size(l, wire);
  return true;
}
bool put_special(line& l, const sasl_outcome&, std::string_view field, const value& wire) {
  if (field != "additional-data") {
    return false;
  }
  put_secret_size(l, wire);
  return true;
}

// One field: `m` is its decoded member (for its type), `wire` the value sent (not null).
template <class M> void put_member(line& l, const M& m, const value& wire) {
  if constexpr (detail::is_optional<M>::value) {
    if (m) {
      put_member(l, *m, wire);
    } else {
      put_value(l, wire);
    }
  } else if constexpr (detail::is_variant<M>::value) {
    std::visit([&](const auto& alt) { put_member(l, alt, wire); }, m);
  } else if constexpr (detail::composite<M>) {
    put_composite(l, m, wire);
  } else if constexpr (std::is_enum_v<M>) {
    const std::string_view n = enum_name(m);
    if (n.empty()) {
      put_value(l, wire);
    } else {
      l.put(n);
    }
  } else if constexpr (std::is_same_v<M, symbols>) {
    put_symbols(l, wire);
  } else {
    put_value(l, wire);
  }
}

// name(field=value, ...): the fields present on the wire (not null), in the spec's order.
template <detail::composite T> void put_composite(line& l, const T& x, const value& described) {
  l.put(detail::short_name<T>());
  l.put('(');
  const value list = described.described_value();
  if (list.is(type::list)) {
    auto it = list.items().begin();
    std::uint32_t left = list.count();
    bool first = true;
    std::apply(
        [&](const auto&... f) {
          [[maybe_unused]] auto one = [&](const auto& fd) { // unused if T has no fields
            if (left == 0 || l.full()) {
              return;
            }
            const value wire = *it;
            ++it;
            --left;
            if (wire.is_null()) {
              return;
            }
            if (!first) {
              l.put(", ");
            }
            first = false;
            l.put(fd.name);
            l.put('=');
            if (!put_special(l, x, fd.name, wire)) {
              put_member(l, x.*(fd.member), wire);
            }
          };
          (one(f), ...);
        },
        detail::composite_traits<T>::fields);
  }
  l.put(')');
}

// A described value with the descriptor of a spec composite, printed as that composite (e.g.
// the delivery states of attach.unsettled). SASL frame bodies in particular are never printed
// as plain values: their responses hold passwords.
template <detail::composite T> bool put_if(line& l, const value& v, bool& secret) {
  if (!detail::has_descriptor<T>(v)) {
    return false;
  }
  T x{};
  if (detail::decode_composite(v, x)) {
    put_composite(l, x, v);
    return true;
  }
  if constexpr (std::is_same_v<T, sasl_init> || std::is_same_v<T, sasl_response> ||
                std::is_same_v<T, sasl_challenge> || std::is_same_v<T, sasl_outcome>) {
    secret = true;
  }
  return false; // malformed: shown as a plain described value
}

template <class... Ts> bool put_first_known(line& l, const value& v) {
  bool secret = false;
  if ((put_if<Ts>(l, v, secret) || ...)) {
    return true;
  }
  if (secret) {
    l.put("sasl(malformed, not shown)");
    return true;
  }
  return false;
}

bool put_known_composite(line& l, const value& v) {
  return put_first_known<open, begin, attach, flow, transfer, disposition, detach, end, close,
                         error, received, accepted, rejected, released, modified, source, target,
                         delete_on_close, delete_on_no_links, delete_on_no_messages,
                         delete_on_no_links_or_messages, coordinator, declare, discharge, declared,
                         transactional_state, sasl_mechanisms, sasl_init, sasl_challenge,
                         sasl_response, sasl_outcome, header, properties>(l, v);
}

// ---- messages ------------------------------------------------------------------------------

bool is_put_token(const message_view& m) {
  if (!m.application_properties.is(type::map)) {
    return false;
  }
  const auto op = m.application_properties.find("operation");
  return op && (op->is(type::string) || op->is(type::symbol)) && op->as_string() == "put-token";
}

// The value of a section from its raw bytes (the codec validated them).
std::optional<value> section_value(const message_view& m, section s) {
  const auto raw = m.raw(s);
  if (raw.empty()) {
    return std::nullopt;
  }
  std::size_t n = 0;
  auto v = decode_value(raw, n);
  if (!v) {
    return std::nullopt;
  }
  return *v;
}

void put_sections(line& l, const message_view& m) {
  bool first = true;
  auto sep = [&] {
    if (!first) {
      l.put(", ");
    }
    first = false;
  };
  if (m.header) {
    if (auto v = section_value(m, section::header)) {
      sep();
      put_composite(l, *m.header, *v);
    }
  }
  auto map_section = [&](section s, const value& v) {
    if (!v.is_null()) {
      sep();
      l.put(section_name(s));
      put_value(l, v);
    }
  };
  map_section(section::delivery_annotations, m.delivery_annotations);
  map_section(section::message_annotations, m.message_annotations);
  if (m.properties) {
    if (auto v = section_value(m, section::properties)) {
      sep();
      put_composite(l, *m.properties, *v);
    }
  }
  map_section(section::application_properties, m.application_properties);
  if (m.body != body_kind::none) {
    if (is_put_token(m)) {
      // CBS put-token (AMQP CBS draft §4): the body is the token, whatever its type.
      sep();
      l.put("body(put-token, ");
      l.put_size(m.raw(section::amqp_value).size() + m.raw(section::data).size() +
                 m.raw(section::amqp_sequence).size());
      l.put(" not shown)");
    } else {
      std::size_t shown = 0;
      for (const value& b : m.body_sections()) {
        if (l.full()) {
          break;
        }
        sep();
        if (shown++ == l.opts().max_items) {
          l.put("...");
          break;
        }
        const auto s = section_of(b.descriptor());
        l.put(s ? section_name(*s) : "body");
        l.put('(');
        const value inner = b.described_value();
        if (s == section::data && inner.is(type::binary)) {
          l.put_size(inner.as_binary().size());
          l.put(": ");
        }
        put_value(l, inner);
        l.put(')');
      }
    }
  }
  map_section(section::footer, m.footer);
}

void put_message(line& l, std::span<const std::byte> payload) {
  const auto m = decode_message(payload, l.opts().decode);
  if (!m) {
    l.put(" (not a valid message: ");
    l.put(m.error().message());
    l.put(')');
    return;
  }
  if (m->bytes().empty()) {
    return;
  }
  l.put(": ");
  put_sections(l, *m);
}

// A performative and what follows it. `whole`: the payload is a whole message.
void put_performative(line& l, const performative& p, const value& described,
                      std::span<const std::byte> payload, std::size_t payload_size, bool whole) {
  std::visit([&](const auto& x) { put_composite(l, x, described); }, p);
  if (const auto* t = std::get_if<transfer>(&p)) {
    l.put(" payload ");
    l.put_size(payload_size);
    if (t->aborted) {
      l.put(" (aborted)");
    } else if (!whole) {
      l.put(" (part of a message)");
    } else if (payload_size > 0) {
      put_message(l, payload);
    }
  } else if (payload_size > 0) {
    l.put(" + ");
    l.put_size(payload_size);
    l.put(" after the performative");
  }
}

void put_sasl(line& l, const sasl_frame& f, const value& described) {
  std::visit([&](const auto& x) { put_composite(l, x, described); }, f);
}

// Encodes a composite and decodes it back: `fn(decoded body, its value)`; false if it has no
// encoding.
template <class Body, class Decode, class Fn>
bool reencoded(const Body& b, std::pmr::memory_resource* mem, Decode decode_body, Fn fn) {
  const auto n = encoded_size(b);
  if (!n) {
    return false;
  }
  std::pmr::vector<std::byte> buf(*n, mem);
  if (!encode(b, buf)) {
    return false;
  }
  std::size_t used = 0;
  const auto v = decode_value(buf, used);
  if (!v) {
    return false;
  }
  const auto d = decode_body(*v);
  if (!d) {
    return false;
  }
  fn(*d, *v);
  return true;
}

std::string to_std(const std::pmr::string& s) {
  return {s.data(), s.size()};
}

// True if the header of a frame the reader refused is at fault (AMQP 1.0 §2.3.1: SIZE,
// DOFF, TYPE, as check_frame_header sees them, without a size limit: the reader skims large
// frames); false if the frame's body is.
bool header_at_fault(const detail::frame_header& h, detail::frame_type expected) noexcept {
  constexpr std::uint32_t any = 0xFFFF'FFFF;
  return !detail::check_frame_header(h, expected, detail::frame_limits{any, any, {}});
}

// The body of a frame starts at DOFF * 4 (AMQP 1.0 §2.3.1).
std::span<const std::byte> frame_body_of(std::span<const std::byte> bytes) noexcept {
  const std::size_t doff = std::to_integer<std::size_t>(bytes[4]) * 4;
  return doff <= bytes.size() ? bytes.subspan(doff) : std::span<const std::byte>{};
}

} // namespace

// ---- public helpers ------------------------------------------------------------------------

std::string trace_prefix(std::uint64_t connection, trace_direction d) {
  std::string s = "[";
  s += std::to_string(connection);
  s += d == trace_direction::out ? "] -> " : "] <- ";
  return s;
}

bool trace_frames_requested(std::string_view setting) noexcept {
  std::size_t i = 0;
  while (i < setting.size()) {
    const std::size_t end = setting.find_first_of(",; ", i);
    const std::string_view word =
        setting.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i);
    if (word.size() == 6 && starts_with_nocase(word, "frames")) {
      return true;
    }
    if (end == std::string_view::npos) {
      break;
    }
    i = end + 1;
  }
  return false;
}

std::string redact_secrets(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  redact_into(text, out);
  return out;
}

std::string describe(const value& v, const trace_options& o) {
  std::pmr::string s(o.memory);
  line l(s, o);
  put_value(l, v);
  l.finish();
  return to_std(s);
}

std::string describe(const performative& p, std::span<const std::byte> payload,
                     const trace_options& o) {
  std::pmr::string s(o.memory);
  line l(s, o);
  const bool ok =
      reencoded(p, o.memory, decode_performative, [&](const performative& d, const value& v) {
        const auto* t = std::get_if<transfer>(&d);
        put_performative(l, d, v, payload, payload.size(), t != nullptr && !t->more);
      });
  if (!ok) {
    l.put(name(p));
    l.put("(unencodable)");
  }
  l.finish();
  return to_std(s);
}

std::string describe(const sasl_frame& f, const trace_options& o) {
  std::pmr::string s(o.memory);
  line l(s, o);
  const bool ok = reencoded(f, o.memory, decode_sasl_frame,
                            [&](const sasl_frame& d, const value& v) { put_sasl(l, d, v); });
  if (!ok) {
    l.put(name(f));
    l.put("(unencodable)");
  }
  l.finish();
  return to_std(s);
}

std::string describe_message(std::span<const std::byte> encoded, const trace_options& o) {
  std::pmr::string s(o.memory);
  line l(s, o);
  const auto m = decode_message(encoded, o.decode);
  if (!m) {
    l.put("not a valid message: ");
    l.put(m.error().message());
  } else {
    put_sections(l, *m);
  }
  l.finish();
  return to_std(s);
}

// ---- the frame tracer ----------------------------------------------------------------------

void frame_tracer::reader_deleter::operator()(detail::frame_reader* r) const noexcept {
  std::pmr::polymorphic_allocator<detail::frame_reader>(memory).delete_object(r);
}

frame_tracer::frame_tracer(std::string_view prefix, sink s, const trace_options& o)
    : prefix_(prefix, o.memory), sink_(std::move(s)), opts_(o), continuing_(o.memory),
      line_(o.memory) {
  opts_.max_frame_bytes = std::max<std::size_t>(opts_.max_frame_bytes, 1024);
  // Frames up to max_frame_bytes are read whole; larger ones are skimmed (their first
  // max_frame_bytes bytes kept, the rest skipped).
  const auto limit =
      static_cast<std::uint32_t>(std::min<std::size_t>(opts_.max_frame_bytes, 0xFFFF'FFFFU));
  reader_ = {std::pmr::polymorphic_allocator<detail::frame_reader>(opts_.memory)
                 .new_object<detail::frame_reader>(detail::frame_limits{limit, limit, opts_.decode},
                                                   detail::frame_type::amqp, opts_.memory),
             reader_deleter{opts_.memory}};
  reader_->set_skim_oversized(true);
}

frame_tracer::~frame_tracer() = default;
frame_tracer::frame_tracer(frame_tracer&&) noexcept = default;
frame_tracer& frame_tracer::operator=(frame_tracer&&) noexcept = default;

std::size_t frame_tracer::buffered() const noexcept {
  return reader_ ? reader_->buffered() : 0;
}

void frame_tracer::feed(std::span<const std::byte> bytes) {
#if defined(__cpp_exceptions)
  try {
    feed_impl(bytes);
  } catch (const std::bad_alloc&) {
    phase_ = phase::stopped; // tracing is best effort: it never takes the connection down
  }
#else
  feed_impl(bytes);
#endif
  if (phase_ == phase::stopped && (reader_->at_frame_boundary() || reader_->error())) {
    reader_->release_buffer(); // nothing more is read
  }
}

void frame_tracer::feed_impl(std::span<const std::byte> in) {
  while (!in.empty() && phase_ != phase::stopped) {
    in = phase_ == phase::header || phase_ == phase::after_tls ? feed_header(in) : feed_frames(in);
  }
}

// A protocol header (AMQP 1.0 §2.2), gathered 8 bytes at a time; the rest of `in` is returned.
std::span<const std::byte> frame_tracer::feed_header(std::span<const std::byte> in) {
  static constexpr std::string_view amqp = "AMQP";
  const std::size_t n = std::min(sizeof head_ - head_have_, in.size());
  std::memcpy(head_ + head_have_, in.data(), n);
  head_have_ += n;
  // A stream that cannot become "AMQP" is known at its first differing byte.
  const std::size_t k = std::min<std::size_t>(head_have_, 4);
  if (as_chars(std::span<const std::byte>(head_, k)) != amqp.substr(0, k)) {
    stop_not_amqp();
    return {};
  }
  if (head_have_ == sizeof head_) {
    head_have_ = 0;
    on_protocol_header();
  }
  return in.subspan(n);
}

// Frames, through the reader; the rest of `in` (after at most one frame) is returned.
std::span<const std::byte> frame_tracer::feed_frames(std::span<const std::byte> in) {
  static constexpr std::string_view amqp = "AMQP";
  if (phase_ == phase::sasl && reader_->at_frame_boundary()) {
    // After SASL frames may come a protocol header (the client's AMQP header, §5.3.2): told
    // from a frame by its first 4 bytes ("AMQP" as a SIZE would be over 1 GiB).
    if (head_have_ == 0 && in.size() >= 4 && as_chars(in.first(4)) != amqp) {
      // A frame: straight to the reader (decoded in place when it is whole in `in`).
    } else {
      const std::size_t n = std::min(4 - head_have_, in.size());
      std::memcpy(head_ + head_have_, in.data(), n);
      head_have_ += n;
      in = in.subspan(n);
      if (head_have_ < 4) {
        return in;
      }
      if (std::memcmp(head_, "AMQP", 4) == 0) {
        phase_ = phase::header; // the header phase gathers its last 4 bytes
        return in;
      }
      // A frame's first 4 bytes: the reader holds them (less than a header: no frame yet).
      head_have_ = 0;
      if (auto r = reader_->feed(std::span<const std::byte>(head_, 4)); !r) {
        on_reader_error(r.error());
        return {};
      }
      return in;
    }
  }
  auto r = reader_->feed(in);
  if (!r) {
    on_reader_error(r.error());
    return {};
  }
  if (r->frame) {
    on_frame(*r->frame);
  } else if (r->oversized) {
    on_oversized(r->oversized->header, r->oversized->prefix);
  }
  return in.subspan(r->consumed);
}

void frame_tracer::on_protocol_header() {
  using detail::protocol_header_kind;
  const auto info =
      detail::classify_protocol_header(std::span<const std::byte, detail::protocol_header_size>(
          head_, detail::protocol_header_size));
  if (info.kind == protocol_header_kind::not_amqp) {
    stop_not_amqp();
    return;
  }
  line_.clear();
  line l(line_, opts_);
  l.put(prefix_);
  switch (info.kind) {
  case protocol_header_kind::amqp:
    l.put("AMQP ");
    phase_ = phase::amqp;
    reader_->set_expected_type(detail::frame_type::amqp);
    break;
  case protocol_header_kind::sasl:
    l.put("SASL ");
    phase_ = phase::sasl;
    reader_->set_expected_type(detail::frame_type::sasl);
    break;
  case protocol_header_kind::tls:
    l.put("TLS ");
    phase_ = phase::after_tls;
    break;
  default:
    l.put("unsupported protocol header AMQP ");
    phase_ = phase::stopped;
    break;
  }
  l.put_int(unsigned{info.id});
  l.put(' ');
  l.put_int(unsigned{info.major});
  l.put('.');
  l.put_int(unsigned{info.minor});
  l.put('.');
  l.put_int(unsigned{info.revision});
  if (phase_ == phase::stopped) {
    l.put("; not traced further");
  }
  l.finish();
  emit();
}

void frame_tracer::stop_not_amqp() {
  stop(phase_ == phase::after_tls ? "TLS records follow; not traced further"
                                  : "undecodable: not an AMQP protocol header; not traced further");
}

void frame_tracer::stop(std::string_view why) {
  line_.clear();
  line l(line_, opts_);
  l.put(prefix_);
  l.put(why);
  l.finish();
  phase_ = phase::stopped;
  emit();
}

// The reader refused a frame: its header (SIZE, DOFF, TYPE: the frame's length cannot be
// trusted) or its body; either way the stream is not traced further.
void frame_tracer::on_reader_error(std::error_code ec) {
  phase_ = phase::stopped;
  if (ec == errc::out_of_memory) {
    return; // tracing is best effort: no line, no connection taken down
  }
  const detail::frame_header& h = reader_->last_header();
  if (!header_at_fault(h, reader_->expected_type())) {
    undecodable_frame(h.size, ec);
    return;
  }
  line_.clear();
  line l(line_, opts_);
  l.put(prefix_);
  l.put("undecodable frame header (size ");
  l.put_int(h.size);
  l.put(", doff ");
  l.put_int(unsigned{h.doff});
  l.put(", type ");
  l.put_int(unsigned{h.type});
  l.put("): ");
  l.put(ec.message());
  l.put("; not traced further");
  l.finish();
  emit();
}

// A whole frame, decoded by the reader.
void frame_tracer::on_frame(const detail::frame_view& f) {
  line_.clear();
  line l(line_, opts_);
  l.put(prefix_);
  if (f.type == detail::frame_type::sasl) {
    l.put("[sasl] ");
  } else {
    l.put("[ch ");
    l.put_int(f.channel);
    l.put("] ");
  }
  if (std::holds_alternative<detail::heartbeat>(f.body)) {
    l.put("empty frame");
    l.finish();
    emit();
    return;
  }
  // The performative or SASL body as a value, for the fields actually on the wire.
  std::size_t used = 0;
  const auto described = decode_value(frame_body_of(f.bytes), used, opts_.decode);
  if (!described) {
    undecodable_frame(f.bytes.size(), described.error()); // not reached: the reader decoded it
    return;
  }
  if (const auto* s = std::get_if<sasl_frame>(&f.body)) {
    put_sasl(l, *s, *described);
    if (std::holds_alternative<sasl_outcome>(*s) && phase_ == phase::sasl) {
      phase_ = phase::header; // §5.3.2: the next protocol header follows the outcome
    }
  } else {
    const auto& p = std::get<performative>(f.body);
    bool whole_message = true;
    if (const auto* t = std::get_if<transfer>(&p)) {
      whole_message = !t->more && !t->aborted && !continuing(f.channel, t->handle);
      set_continuing(f.channel, t->handle, t->more && !t->aborted);
    } else {
      forget_deliveries(f.channel, p);
    }
    put_performative(l, p, *described, f.payload, f.payload.size(), whole_message);
  }
  l.finish();
  emit();
}

// A frame above max_frame_bytes: `prefix` holds its first bytes (the reader skipped the
// rest). The performative is shown if it lies in them, with the payload's size.
void frame_tracer::on_oversized(const detail::frame_header& h, std::span<const std::byte> prefix) {
  const bool sasl = h.type == static_cast<std::uint8_t>(detail::frame_type::sasl);
  line_.clear();
  line l(line_, opts_);
  l.put(prefix_);
  if (sasl) {
    l.put("[sasl] ");
  } else {
    l.put("[ch ");
    l.put_int(h.channel);
    l.put("] ");
  }
  std::size_t used = 0;
  const auto described = decode_value(frame_body_of(prefix), used, opts_.decode);
  if (!described) {
    l.put("frame of ");
    l.put_size(h.size);
    l.put(" above the trace limit: not shown");
  } else if (sasl) {
    const auto s = decode_sasl_frame(*described);
    if (!s) {
      undecodable_frame(h.size, s.error());
      return;
    }
    put_sasl(l, *s, *described);
    l.put(" (frame of ");
    l.put_size(h.size);
    l.put(")");
  } else {
    const auto p = decode_performative(*described);
    if (!p) {
      undecodable_frame(h.size, p.error());
      return;
    }
    if (const auto* t = std::get_if<transfer>(&*p)) {
      set_continuing(h.channel, t->handle, t->more && !t->aborted);
    }
    const std::size_t payload_size = h.size - std::size_t{h.doff} * 4 - used;
    put_performative(l, *p, *described, {}, payload_size, false);
  }
  l.finish();
  emit();
}

void frame_tracer::undecodable_frame(std::size_t size, std::error_code ec) {
  line_.clear();
  line l(line_, opts_);
  l.put(prefix_);
  l.put("undecodable frame (");
  l.put_size(size);
  l.put("): ");
  l.put(ec.message());
  l.put("; not traced further");
  l.finish();
  phase_ = phase::stopped;
  emit();
}

void frame_tracer::emit() {
  ++lines_;
  if (sink_) {
    sink_(line_);
  }
}

// A detach, end or close ends the deliveries of its link, session or connection, whose handle
// or channel may then be reused.
void frame_tracer::forget_deliveries(std::uint16_t channel, const performative& p) {
  const auto* d = std::get_if<detach>(&p);
  const bool end_or_close = std::holds_alternative<end>(p) || std::holds_alternative<close>(p);
  if (d == nullptr && !end_or_close) {
    return;
  }
  const bool all = std::holds_alternative<close>(p);
  std::erase_if(continuing_, [&](std::uint64_t key) {
    return all || (key >> 32 == channel && (d == nullptr || (key & 0xFFFF'FFFFU) == d->handle));
  });
  if (all) {
    continuing_full_ = false;
  }
}

bool frame_tracer::continuing(std::uint16_t channel, std::uint32_t handle) const noexcept {
  if (continuing_full_) {
    return true;
  }
  const std::uint64_t key = (std::uint64_t{channel} << 32) | handle;
  return std::find(continuing_.begin(), continuing_.end(), key) != continuing_.end();
}

void frame_tracer::set_continuing(std::uint16_t channel, std::uint32_t handle, bool on) {
  const std::uint64_t key = (std::uint64_t{channel} << 32) | handle;
  const auto it = std::find(continuing_.begin(), continuing_.end(), key);
  if (!on) {
    if (it != continuing_.end()) {
      *it = continuing_.back();
      continuing_.pop_back();
    }
    return;
  }
  if (it != continuing_.end()) {
    return;
  }
  // Bounded: past 1024 links in the middle of a delivery, every payload counts as a part.
  if (continuing_.size() >= 1024) {
    continuing_full_ = true;
    return;
  }
  continuing_.push_back(key);
}

} // namespace amqp
