// AMQP URLs (amqp/transport/url.hpp): RFC 3986 generic syntax, the four AMQP schemes.
#include "amqp/transport/url.hpp"

#include <algorithm>
#include <cstddef>
#include <optional>

namespace amqp::transport {

namespace {

constexpr char hex_digits[] = "0123456789ABCDEF";

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

bool is_alnum(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 3986 §2.3 unreserved.
bool is_unreserved(char c) noexcept {
  return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

// RFC 3986 §2.2 sub-delims.
bool is_sub_delim(char c) noexcept {
  return c == '!' || c == '$' || c == '&' || c == '\'' || c == '(' || c == ')' || c == '*' ||
         c == '+' || c == ',' || c == ';' || c == '=';
}

bool is_space_or_control(char ch) noexcept {
  const auto c = static_cast<unsigned char>(ch);
  return c <= 0x20 || c == 0x7F;
}

char lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// Sets the reason of a parse failure and returns the error.
std::error_code fail(std::string* why, std::string_view reason) {
  if (why != nullptr) {
    *why = reason;
  }
  return make_error_code(errc::invalid_argument);
}

// True if every '%' in `s` starts a two-hex-digit escape.
bool escapes_ok(std::string_view s) noexcept {
  for (std::size_t k = 0; k < s.size(); ++k) {
    if (s[k] == '%') {
      if (k + 2 >= s.size() || hex_value(s[k + 1]) < 0 || hex_value(s[k + 2]) < 0) {
        return false;
      }
      k += 2;
    }
  }
  return true;
}

// Percent-decodes `s`, which escapes_ok accepted.
std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t k = 0; k < s.size(); ++k) {
    if (s[k] == '%') {
      out += static_cast<char>(hex_value(s[k + 1]) * 16 + hex_value(s[k + 2]));
      k += 2;
    } else {
      out += s[k];
    }
  }
  return out;
}

// Percent-encodes what RFC 3986 §3.2.1 does not allow as is in user-info (and ':', which
// separates user and password).
void append_userinfo(std::string& out, std::string_view s) {
  for (const char c : s) {
    if (is_unreserved(c) || is_sub_delim(c)) {
      out += c;
    } else {
      const auto b = static_cast<unsigned char>(c);
      out += '%';
      out += hex_digits[b >> 4];
      out += hex_digits[b & 0xF];
    }
  }
}

// RFC 3986 §3.2.2 IPv6address: eight groups of 1-4 hex digits, "::" once for a run of zero
// groups, the last 32 bits optionally as a dotted IPv4 address.
bool valid_ipv4(std::string_view s) noexcept {
  int parts = 0;
  std::size_t k = 0;
  while (true) {
    std::size_t digits = 0;
    unsigned v = 0;
    while (k < s.size() && s[k] >= '0' && s[k] <= '9' && digits < 4) {
      v = v * 10 + static_cast<unsigned>(s[k] - '0');
      ++k;
      ++digits;
    }
    if (digits == 0 || digits > 3 || v > 255 || (digits > 1 && s[k - digits] == '0')) {
      return false;
    }
    ++parts;
    if (k == s.size()) {
      return parts == 4;
    }
    if (s[k] != '.' || parts == 4) {
      return false;
    }
    ++k;
  }
}

bool valid_ipv6(std::string_view s) noexcept {
  const std::size_t gap = s.find("::");
  if (gap != std::string_view::npos && s.find("::", gap + 1) != std::string_view::npos) {
    return false;
  }
  // Counts the 16-bit groups of one side of "::" (or of the whole address).
  auto groups = [](std::string_view side, bool last, int& count) {
    count = 0;
    if (side.empty()) {
      return true;
    }
    std::size_t k = 0;
    while (true) {
      const std::size_t colon = side.find(':', k);
      const std::string_view g =
          side.substr(k, colon == std::string_view::npos ? std::string_view::npos : colon - k);
      if (colon == std::string_view::npos && last && g.find('.') != std::string_view::npos) {
        if (!valid_ipv4(g)) {
          return false;
        }
        count += 2;
        return true;
      }
      if (g.empty() || g.size() > 4 ||
          !std::all_of(g.begin(), g.end(), [](char c) { return hex_value(c) >= 0; })) {
        return false;
      }
      ++count;
      if (colon == std::string_view::npos) {
        return true;
      }
      k = colon + 1;
    }
  };
  int left = 0;
  int right = 0;
  if (gap == std::string_view::npos) {
    return groups(s, true, left) && left == 8;
  }
  return groups(s.substr(0, gap), false, left) && groups(s.substr(gap + 2), true, right) &&
         left + right <= 7;
}

// The host inside brackets: an IPv6 address, optionally with a zone (RFC 6874: "%25" then
// unreserved characters or escapes), returned with the zone decoded.
std::optional<std::string> parse_ipv6_host(std::string_view inside) {
  std::string_view address = inside;
  std::string_view zone;
  if (const std::size_t pct = inside.find('%'); pct != std::string_view::npos) {
    address = inside.substr(0, pct);
    zone = inside.substr(pct);
    if (zone.size() < 4 || zone.substr(0, 3) != "%25") {
      return std::nullopt;
    }
    zone.remove_prefix(3);
    if (!escapes_ok(zone) || !std::all_of(zone.begin(), zone.end(),
                                          [](char c) { return is_unreserved(c) || c == '%'; })) {
      return std::nullopt;
    }
  }
  if (!valid_ipv6(address)) {
    return std::nullopt;
  }
  std::string host(address);
  if (!zone.empty()) {
    host += '%';
    host += percent_decode(zone);
  }
  return host;
}

bool valid_path_char(char c) noexcept {
  // RFC 3986 §3.3 pchar, plus '/' (segments) and '%' (escapes checked separately).
  return is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@' || c == '/' || c == '%';
}

} // namespace

bool url::tls() const noexcept {
  return scheme == "amqps" || scheme == "wss";
}

bool url::websocket() const noexcept {
  return scheme == "ws" || scheme == "wss";
}

std::uint16_t default_port(std::string_view scheme) noexcept {
  if (scheme == "amqp") {
    return 5672;
  }
  if (scheme == "amqps") {
    return 5671;
  }
  if (scheme == "ws") {
    return 80;
  }
  if (scheme == "wss") {
    return 443;
  }
  return 0;
}

std::string url::to_string(bool redact_password) const {
  std::string s = scheme;
  s += "://";
  if (!user.empty() || !password.empty()) {
    append_userinfo(s, user);
    if (!password.empty()) {
      s += ':';
      if (redact_password) {
        s += "***";
      } else {
        append_userinfo(s, password);
      }
    }
    s += '@';
  }
  if (host.find(':') != std::string::npos) {
    // IPv6, its zone's '%' escaped again (RFC 6874).
    s += '[';
    const std::size_t pct = host.find('%');
    s += host.substr(0, pct);
    if (pct != std::string::npos) {
      s += "%25";
      s += host.substr(pct + 1);
    }
    s += ']';
  } else {
    s += host;
  }
  if (port != default_port(scheme)) {
    s += ':';
    s += std::to_string(port);
  }
  if (!(websocket() && path == "/")) {
    s += path;
  }
  if (!query.empty()) {
    s += '?';
    s += query;
  }
  return s;
}

result<url> parse_url(std::string_view text, std::string* why) {
  if (std::any_of(text.begin(), text.end(), is_space_or_control)) {
    return fail(why, "spaces or control characters in the URL");
  }
  const std::size_t sep = text.find("://");
  if (sep == std::string_view::npos) {
    return fail(why, "not a URL: no \"://\" after the scheme");
  }
  url u;
  for (const char c : text.substr(0, sep)) {
    u.scheme += lower(c);
  }
  if (u.scheme != "amqp" && u.scheme != "amqps" && u.scheme != "ws" && u.scheme != "wss") {
    // The scheme is quoted only when it is short and plain: a mistyped URL may hold secrets.
    std::string reason = "unsupported scheme";
    if (!u.scheme.empty() && u.scheme.size() <= 16 &&
        std::all_of(u.scheme.begin(), u.scheme.end(), is_alnum)) {
      reason += " \"" + u.scheme + "\"";
    }
    reason += " (amqp, amqps, ws or wss)";
    return fail(why, reason);
  }
  std::string_view rest = text.substr(sep + 3);
  if (rest.find('#') != std::string_view::npos) {
    return fail(why, "a fragment ('#') has no meaning in an AMQP URL");
  }
  const std::size_t authority_end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, authority_end);
  rest = authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);

  // user-info (RFC 3986 §3.2.1), up to the last '@'.
  if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view info = authority.substr(0, at);
    authority.remove_prefix(at + 1);
    const std::size_t colon = info.find(':');
    const std::string_view user = info.substr(0, colon);
    const std::string_view password =
        colon == std::string_view::npos ? std::string_view{} : info.substr(colon + 1);
    if (!escapes_ok(user)) {
      return fail(why, "bad percent escape in the user name");
    }
    if (!escapes_ok(password)) {
      return fail(why, "bad percent escape in the password");
    }
    u.user = percent_decode(user);
    u.password = percent_decode(password);
  }

  // host (RFC 3986 §3.2.2) and port (§3.2.3).
  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return fail(why, "unclosed '[' in the host");
    }
    auto host = parse_ipv6_host(authority.substr(1, close - 1));
    if (!host) {
      return fail(why, "malformed IPv6 address in the host");
    }
    u.host = std::move(*host);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return fail(why, "unexpected characters after the IPv6 address");
      }
      has_port = true;
      port_text = after.substr(1);
    }
  } else {
    const std::size_t colon = authority.find(':');
    const std::string_view host = authority.substr(0, colon);
    if (!std::all_of(host.begin(), host.end(), [](char c) { return is_unreserved(c); })) {
      return fail(why, "a character not allowed in a host name (IPv6 addresses go in brackets)");
    }
    u.host = std::string(host);
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = authority.substr(colon + 1);
    }
  }
  u.port = default_port(u.scheme);
  if (has_port && !port_text.empty()) {
    if (!std::all_of(port_text.begin(), port_text.end(),
                     [](char c) { return c >= '0' && c <= '9'; })) {
      return fail(why, "the port is not a number");
    }
    unsigned long v = 0;
    for (const char c : port_text) {
      v = v * 10 + static_cast<unsigned long>(c - '0');
      if (v > 65535) {
        return fail(why, "the port is above 65535");
      }
    }
    u.port = static_cast<std::uint16_t>(v);
  }

  // path (§3.3) and query (§3.4), kept as written.
  const std::size_t q = rest.find('?');
  const std::string_view path = rest.substr(0, q);
  const std::string_view query =
      q == std::string_view::npos ? std::string_view{} : rest.substr(q + 1);
  if (!std::all_of(path.begin(), path.end(), valid_path_char) || !escapes_ok(path)) {
    return fail(why, "bad character or percent escape in the path");
  }
  if (!std::all_of(query.begin(), query.end(),
                   [](char c) { return valid_path_char(c) || c == '?'; }) ||
      !escapes_ok(query)) {
    return fail(why, "bad character or percent escape in the query");
  }
  u.path = std::string(path);
  if (u.path.empty() && u.websocket()) {
    u.path = "/";
  }
  u.query = std::string(query);
  return u;
}

} // namespace amqp::transport
