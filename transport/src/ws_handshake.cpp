// The RFC 6455 opening handshake, sans-IO: the client's request and the server's response
// checks (§4.1), the server's request checks and responses (§4.2), over a bounded,
// incremental HTTP/1.1 header reader (RFC 7230 §3).
#include <algorithm>
#include <array>
#include <charconv>

#include <openssl/evp.h>

#include "amqp/transport/websocket.hpp"

namespace amqp::transport::ws {
namespace {

constexpr std::string_view crlf = "\r\n";

char lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

bool is_alpha(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// RFC 7230 §3.2.6: tchar.
bool is_tchar(char c) noexcept {
  return is_alpha(c) || is_digit(c) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

// RFC 7230 §3.2: field-value characters: HTAB, SP, VCHAR, obs-text.
bool is_field_value_char(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u == '\t' || u == ' ' || (u >= 0x21 && u != 0x7F);
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// RFC 7230 §2.6: HTTP-version = "HTTP/" DIGIT "." DIGIT. Returns major * 10 + minor.
std::optional<unsigned> parse_http_version(std::string_view s) noexcept {
  if (s.size() != 8 || !s.starts_with("HTTP/") || !is_digit(s[5]) || s[6] != '.' ||
      !is_digit(s[7])) {
    return std::nullopt;
  }
  return static_cast<unsigned>(s[5] - '0') * 10U + static_cast<unsigned>(s[7] - '0');
}

std::string_view status_text(unsigned status) noexcept {
  switch (status) {
  case 101:
    return "Switching Protocols";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 426:
    return "Upgrade Required";
  case 500:
    return "Internal Server Error";
  case 503:
    return "Service Unavailable";
  default:
    return "Error";
  }
}

constexpr std::string_view base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) noexcept {
  const auto at = base64_alphabet.find(c);
  return at == std::string_view::npos ? -1 : static_cast<int>(at);
}

// Host characters (RFC 3986 §3.2.2): reg-name (unreserved, pct-encoded, sub-delims) or an
// IP literal (hex digits, ':', '.', brackets).
bool is_host_char(char c) noexcept {
  return is_alpha(c) || is_digit(c) ||
         std::string_view("-._~%!$&'()*+,;=:[]").find(c) != std::string_view::npos;
}

// An origin-form request-target (RFC 7230 §5.3.1): "/" then visible ASCII, no fragment.
bool is_origin_form(std::string_view s) noexcept {
  return !s.empty() && s.front() == '/' && std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7F && c != '#';
  });
}

} // namespace

// ---------------------------------------------------------------------------------------
// Keys and base64
// ---------------------------------------------------------------------------------------

std::string base64_encode(std::span<const std::byte> bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; bytes.size() - i >= 3; i += 3) {
    const unsigned v = (std::to_integer<unsigned>(bytes[i]) << 16U) |
                       (std::to_integer<unsigned>(bytes[i + 1]) << 8U) |
                       std::to_integer<unsigned>(bytes[i + 2]);
    out += base64_alphabet[(v >> 18U) & 63U];
    out += base64_alphabet[(v >> 12U) & 63U];
    out += base64_alphabet[(v >> 6U) & 63U];
    out += base64_alphabet[v & 63U];
  }
  if (bytes.size() - i == 1) {
    const unsigned v = std::to_integer<unsigned>(bytes[i]) << 16U;
    out += base64_alphabet[(v >> 18U) & 63U];
    out += base64_alphabet[(v >> 12U) & 63U];
    out += "==";
  } else if (bytes.size() - i == 2) {
    const unsigned v = (std::to_integer<unsigned>(bytes[i]) << 16U) |
                       (std::to_integer<unsigned>(bytes[i + 1]) << 8U);
    out += base64_alphabet[(v >> 18U) & 63U];
    out += base64_alphabet[(v >> 12U) & 63U];
    out += base64_alphabet[(v >> 6U) & 63U];
    out += '=';
  }
  return out;
}

std::optional<std::vector<std::byte>> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return std::nullopt;
  }
  std::size_t pad = 0;
  if (!text.empty() && text.back() == '=') {
    pad = text.size() >= 2 && text[text.size() - 2] == '=' ? 2 : 1;
  }
  std::vector<std::byte> out;
  out.reserve(text.size() / 4 * 3);
  unsigned acc = 0;
  unsigned bits = 0;
  for (std::size_t i = 0; i < text.size() - pad; ++i) {
    const int v = base64_value(text[i]);
    if (v < 0) {
      return std::nullopt; // includes '=' before the end
    }
    acc = (acc << 6U) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::byte>((acc >> bits) & 0xFFU));
    }
  }
  return out;
}

std::string accept_key(std::string_view key) {
  // RFC 6455 §1.3, §4.2.2 item 5.4: the SHA-1 of the key and this GUID, base64-encoded.
  constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string input;
  input.reserve(key.size() + guid.size());
  input.append(key);
  input.append(guid);
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int size = 0;
  if (EVP_Digest(input.data(), input.size(), md.data(), &size, EVP_sha1(), nullptr) != 1) {
    return {}; // never matches a received accept value
  }
  return base64_encode(std::as_bytes(std::span(md.data(), size)));
}

// ---------------------------------------------------------------------------------------
// detail::http_head
// ---------------------------------------------------------------------------------------

namespace detail {

result<handshake_progress> http_head::feed(std::span<const std::byte> in) {
  if (complete_) {
    return handshake_progress{true, 0};
  }
  // RFC 7230 §3: the header block ends with an empty line. The peer controls its length:
  // bounded by max_size_.
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (buf_.size() >= max_size_) {
      return make_error_code(error::header_too_large);
    }
    buf_ += static_cast<char>(in[i]);
    if (buf_.size() >= 4 && buf_.ends_with("\r\n\r\n")) {
      complete_ = true;
      auto r = parse();
      if (!r) {
        return r.error();
      }
      return handshake_progress{true, i + 1};
    }
  }
  return handshake_progress{false, in.size()};
}

result<void> http_head::parse() {
  const std::string_view all(buf_);
  const auto bad = make_error_code(error::bad_http);
  std::size_t at = all.find(crlf);
  start_line_size_ = at;
  // RFC 7230 §3.1: the start line holds no control characters.
  if (at == 0 || !std::all_of(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(at),
                              [](char c) { return is_field_value_char(c) && c != '\t'; })) {
    return bad;
  }
  at += 2;
  while (true) {
    const std::size_t end = all.find(crlf, at);
    if (end == at) {
      break; // the empty line
    }
    const std::string_view line = all.substr(at, end - at);
    // RFC 7230 §3.2.4: obs-fold (a line starting with whitespace) is rejected, and so is
    // whitespace between the field name and the colon.
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || !is_token(line.substr(0, colon)) ||
        !std::all_of(line.begin(), line.end(), is_field_value_char)) {
      return bad;
    }
    const std::string_view value = trim(line.substr(colon + 1));
    fields_.push_back(
        field_pos{at, colon, static_cast<std::size_t>(value.data() - all.data()), value.size()});
    at = end + 2;
  }
  return {};
}

std::string_view http_head::start_line() const noexcept {
  return std::string_view(buf_).substr(0, complete_ ? start_line_size_ : 0);
}

header_field http_head::field(std::size_t i) const noexcept {
  const std::string_view all(buf_);
  const field_pos& f = fields_[i];
  return {all.substr(f.name_at, f.name_size), all.substr(f.value_at, f.value_size)};
}

std::optional<std::string_view> http_head::find(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < fields_.size(); ++i) {
    const header_field f = field(i);
    if (iequals(f.name, name)) {
      return f.value;
    }
  }
  return std::nullopt;
}

std::size_t http_head::count(std::string_view name) const noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < fields_.size(); ++i) {
    if (iequals(field(i).name, name)) {
      ++n;
    }
  }
  return n;
}

bool http_head::has_token(std::string_view name, std::string_view token,
                          bool case_insensitive) const noexcept {
  // RFC 7230 §3.2.2: repeated list fields are one comma-separated list; §7: elements may be
  // empty and are surrounded by optional whitespace.
  for (std::size_t i = 0; i < fields_.size(); ++i) {
    const header_field f = field(i);
    if (!iequals(f.name, name)) {
      continue;
    }
    std::string_view rest = f.value;
    while (true) {
      const std::size_t comma = rest.find(',');
      const std::string_view item = trim(rest.substr(0, comma));
      if (case_insensitive ? iequals(item, token) : item == token) {
        return true;
      }
      if (comma == std::string_view::npos) {
        break;
      }
      rest.remove_prefix(comma + 1);
    }
  }
  return false;
}

} // namespace detail

// ---------------------------------------------------------------------------------------
// client_handshake
// ---------------------------------------------------------------------------------------

result<client_handshake> client_handshake::create(const client_options& opts,
                                                  std::span<const std::byte, 16> nonce) {
  if (opts.host.empty() || !std::all_of(opts.host.begin(), opts.host.end(), is_host_char) ||
      !is_origin_form(opts.path) || !is_token(opts.subprotocol)) {
    return errc::invalid_argument;
  }
  for (const auto& [name, value] : opts.extra_headers) {
    if (!is_token(name) || !std::all_of(value.begin(), value.end(), is_field_value_char)) {
      return errc::invalid_argument;
    }
    // The fields of the handshake itself are sent once, by us.
    for (std::string_view own : {"Host", "Upgrade", "Connection"}) {
      if (iequals(name, own)) {
        return errc::invalid_argument;
      }
    }
    if (iequals(std::string_view(name).substr(0, 14), "Sec-WebSocket-")) {
      return errc::invalid_argument;
    }
  }
  client_handshake h(opts.max_header_size);
  // §4.1 item 7: the key is the base64 of a 16-byte nonce.
  h.key_ = base64_encode(nonce);
  h.expected_accept_ = accept_key(h.key_);
  h.subprotocol_ = opts.subprotocol;

  // §4.1 item 4: Host, with the port unless it is the scheme's default (RFC 7230 §5.4); an
  // IPv6 literal in brackets (RFC 3986 §3.2.2).
  std::string host = opts.host;
  if (host.find(':') != std::string::npos && host.front() != '[') {
    host = "[" + host + "]";
  }
  if (opts.port != (opts.secure ? 443 : 80)) {
    host += ":" + std::to_string(opts.port);
  }
  std::string& r = h.request_;
  // §4.1 items 2-10: GET, HTTP/1.1, Host, Upgrade, Connection, Key, Version, Protocol.
  r += "GET " + opts.path + " HTTP/1.1\r\n";
  r += "Host: " + host + "\r\n";
  r += "Upgrade: websocket\r\n";
  r += "Connection: Upgrade\r\n";
  r += "Sec-WebSocket-Key: " + h.key_ + "\r\n";
  r += "Sec-WebSocket-Version: 13\r\n";
  r += "Sec-WebSocket-Protocol: " + opts.subprotocol + "\r\n";
  for (const auto& [name, value] : opts.extra_headers) {
    r.append(name).append(": ").append(value).append("\r\n");
  }
  r += "\r\n";
  return h;
}

std::string_view client_handshake::reason() const noexcept {
  // "HTTP/1.1 101 Switching Protocols": the reason phrase starts at offset 13.
  const std::string_view line = head_.start_line();
  return line.size() > 13 ? line.substr(13) : std::string_view{};
}

result<handshake_progress> client_handshake::feed(std::span<const std::byte> in) {
  if (error_) {
    return error_;
  }
  if (done_) {
    return errc::invalid_state;
  }
  auto p = head_.feed(in);
  if (!p) {
    error_ = p.error();
    return error_;
  }
  if (!p->done) {
    return p;
  }
  if (auto v = validate(); !v) {
    error_ = v.error();
    return error_;
  }
  done_ = true;
  return p;
}

result<void> client_handshake::validate() {
  // RFC 7230 §3.1.2: status-line = HTTP-version SP status-code SP reason-phrase. A missing
  // reason (and its SP) is tolerated.
  const std::string_view line = head_.start_line();
  if (line.size() < 12 || line[8] != ' ' || !is_digit(line[9]) || !is_digit(line[10]) ||
      !is_digit(line[11]) || (line.size() > 12 && line[12] != ' ')) {
    return make_error_code(error::bad_http);
  }
  const auto version = parse_http_version(line.substr(0, 8));
  if (!version) {
    return make_error_code(error::bad_http);
  }
  static_cast<void>(std::from_chars(line.data() + 9, line.data() + 12, status_));
  if (*version < 11) {
    return make_error_code(error::bad_http_version);
  }
  // §4.1, the client's checks of the response, in order:
  // 1. "If the status code received from the server is not 101 ..."
  if (status_ != 101) {
    return make_error_code(error::bad_status);
  }
  // 2-3. Upgrade is "websocket" and Connection is "Upgrade", case-insensitively.
  if (!head_.has_token("Upgrade", "websocket", true) ||
      !head_.has_token("Connection", "Upgrade", true)) {
    return make_error_code(error::bad_upgrade);
  }
  // 4. Sec-WebSocket-Accept is base64(SHA-1(key + GUID)), trimmed.
  if (head_.count("Sec-WebSocket-Accept") != 1 ||
      *head_.find("Sec-WebSocket-Accept") != expected_accept_) {
    return make_error_code(error::bad_accept);
  }
  // 5. No extension was offered, so none may be in use.
  for (std::size_t i = 0; i < head_.field_count(); ++i) {
    const header_field f = head_.field(i);
    if (iequals(f.name, "Sec-WebSocket-Extensions") && !f.value.empty()) {
      return make_error_code(error::bad_extension);
    }
  }
  // 6. The subprotocol must be the one offered; AMQP requires it (§4.2.2: the server selects
  // exactly one of those offered, or none, and none fails the AMQP binding).
  if (head_.count("Sec-WebSocket-Protocol") != 1 ||
      *head_.find("Sec-WebSocket-Protocol") != subprotocol_) {
    return make_error_code(error::bad_subprotocol);
  }
  return {};
}

// ---------------------------------------------------------------------------------------
// server_handshake
// ---------------------------------------------------------------------------------------

server_handshake::server_handshake(server_options opts)
    : opts_(std::move(opts)), head_(opts_.max_header_size) {}

std::string_view server_handshake::method() const noexcept {
  const std::string_view line = head_.start_line();
  const std::size_t space = line.find(' ');
  return space == std::string_view::npos ? std::string_view{} : line.substr(0, space);
}

std::string_view server_handshake::target() const noexcept {
  const std::string_view line = head_.start_line();
  const std::size_t a = line.find(' ');
  if (a == std::string_view::npos) {
    return {};
  }
  const std::size_t b = line.find(' ', a + 1);
  return b == std::string_view::npos ? std::string_view{} : line.substr(a + 1, b - a - 1);
}

std::string_view server_handshake::path() const noexcept {
  const std::string_view t = target();
  return t.substr(0, t.find('?'));
}

void server_handshake::reject(error e) {
  error_ = make_error_code(e);
  switch (e) {
  case error::path_not_found:
    status_ = 404;
    break;
  case error::bad_version:
    status_ = 426;
    break;
  default:
    status_ = 400;
    break;
  }
  response_ = make_error_response(status_, error_.message());
  if (e == error::bad_version) {
    // §4.4: a server that does not understand the version answers with the versions it
    // supports.
    response_.insert(response_.find("\r\n") + 2, "Sec-WebSocket-Version: 13\r\n");
  }
}

error server_handshake::validate() {
  // RFC 7230 §3.1.1: request-line = method SP request-target SP HTTP-version.
  const std::string_view line = head_.start_line();
  const std::size_t a = line.find(' ');
  const std::size_t b = a == std::string_view::npos ? a : line.find(' ', a + 1);
  if (b == std::string_view::npos || line.find(' ', b + 1) != std::string_view::npos ||
      !is_token(method())) {
    return error::bad_http;
  }
  const auto version = parse_http_version(line.substr(b + 1));
  if (!version || !is_origin_form(target())) {
    return error::bad_http;
  }
  // RFC 6455 §4.2.1, the server's checks of the request, in order:
  // 1. "An HTTP/1.1 or higher GET request".
  if (method() != "GET") {
    return error::bad_method;
  }
  if (*version < 11) {
    return error::bad_http_version;
  }
  // The resource: one of the configured paths (§4.2.1 item 1 "Request-URI"; 404 otherwise,
  // §4.2.1 "If the requested service is not available").
  if (!opts_.paths.empty() &&
      std::find(opts_.paths.begin(), opts_.paths.end(), path()) == opts_.paths.end()) {
    return error::path_not_found;
  }
  // 2. Exactly one Host (RFC 7230 §5.4: 400 if missing or repeated).
  if (head_.count("Host") != 1) {
    return error::bad_host;
  }
  // 3-4. Upgrade lists "websocket" and Connection lists "Upgrade", case-insensitively.
  if (!head_.has_token("Upgrade", "websocket", true) ||
      !head_.has_token("Connection", "Upgrade", true)) {
    return error::bad_upgrade;
  }
  // 6. Version 13 (checked before the key so that an old client learns the version, §4.4).
  if (head_.count("Sec-WebSocket-Version") != 1 || *head_.find("Sec-WebSocket-Version") != "13") {
    return error::bad_version;
  }
  // 5. The key "when decoded, is 16 bytes in length".
  if (head_.count("Sec-WebSocket-Key") != 1) {
    return error::bad_key;
  }
  const auto key = base64_decode(*head_.find("Sec-WebSocket-Key"));
  if (!key || key->size() != 16) {
    return error::bad_key;
  }
  // 8. The subprotocols the client offers (a comma list, case-sensitive tokens) include ours.
  if (!head_.has_token("Sec-WebSocket-Protocol", opts_.subprotocol, false)) {
    return error::bad_subprotocol;
  }
  return error{};
}

result<handshake_progress> server_handshake::feed(std::span<const std::byte> in) {
  if (error_) {
    return error_;
  }
  if (done_) {
    return errc::invalid_state;
  }
  auto p = head_.feed(in);
  if (!p) {
    reject(static_cast<error>(p.error().value()));
    return error_;
  }
  if (!p->done) {
    return p;
  }
  if (const error e = validate(); e != error{}) {
    reject(e);
    return error_;
  }
  // §4.2.2 item 5: 101, Upgrade, Connection, the accept value and the subprotocol selected.
  status_ = 101;
  response_ = "HTTP/1.1 101 Switching Protocols\r\n"
              "Upgrade: websocket\r\n"
              "Connection: Upgrade\r\n";
  response_ += "Sec-WebSocket-Accept: " + accept_key(*head_.find("Sec-WebSocket-Key")) + "\r\n";
  response_ += "Sec-WebSocket-Protocol: " + opts_.subprotocol + "\r\n\r\n";
  done_ = true;
  return p;
}

std::string make_error_response(unsigned status, std::string_view reason) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " ";
  r += status_text(status);
  r += "\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ";
  r += std::to_string(reason.size());
  r += "\r\n\r\n";
  r += reason;
  return r;
}

} // namespace amqp::transport::ws
