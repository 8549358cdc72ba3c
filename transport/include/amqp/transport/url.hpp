// AMQP URLs: amqp://, amqps://, ws://, wss:// (RFC 3986 syntax).
//
//   scheme://[user[:password]@]host[:port][/path][?query]
//
// - scheme: amqp (TCP), amqps (TLS), ws (WebSocket), wss (WebSocket over TLS); any case.
// - user, password: percent-decoded (RFC 3986 §2.1), so "p%40ss" is "p@ss". The last '@' of
//   the authority ends them, so an unescaped '@' in a password still works.
// - host: a name or IPv4 address, or an IPv6 address in brackets ("[::1]", stored without
//   the brackets; a zone "%25eth0" is stored as "%eth0"). May be empty ("amqp://:5672"): a
//   listener then binds 127.0.0.1; a client cannot connect to it.
// - port: 0 to 65535 (0: a listener picks a free port); absent or empty: the scheme's
//   default, 5672 (amqp), 5671 (amqps), 80 (ws), 443 (wss).
// - path: as written (percent escapes checked, not decoded); absent: "/" for ws and wss (the
//   HTTP request target), "" for amqp and amqps.
// - query: after '?', as written (without the '?'). A fragment ('#') is refused.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "amqp/result.hpp"

namespace amqp::transport {

struct url {
  std::string scheme;   // "amqp", "amqps", "ws" or "wss" (lower case)
  std::string user;     // percent-decoded; empty if none
  std::string password; // percent-decoded; empty if none. Never printed unless asked.
  std::string host;     // without brackets
  std::uint16_t port = 0;
  std::string path;  // "/" by default for ws and wss, "" for amqp and amqps
  std::string query; // without the '?'; empty if none

  // amqps or wss.
  [[nodiscard]] bool tls() const noexcept;
  // ws or wss.
  [[nodiscard]] bool websocket() const noexcept;

  // The URL as text, user and password percent-encoded again, IPv6 hosts in brackets, the
  // port left out when it is the scheme's default. The password is shown as *** unless
  // `redact_password` is false (for logs, keep the default).
  [[nodiscard]] std::string to_string(bool redact_password = true) const;

  friend bool operator==(const url&, const url&) = default;
};

// The default port of `scheme` (lower case): 5672, 5671, 80, 443; 0 for other schemes.
[[nodiscard]] std::uint16_t default_port(std::string_view scheme) noexcept;

// Parses an AMQP URL. Errors: errc::invalid_argument, with the reason in `why` if given
// (never quoting the password): a missing "://", a scheme other than the four, a malformed
// percent escape (user, password, path or query), an unclosed or malformed IPv6 address, a
// character not allowed in a host, a port that is not digits or above 65535, a fragment,
// spaces or control characters anywhere.
[[nodiscard]] result<url> parse_url(std::string_view text, std::string* why = nullptr);

} // namespace amqp::transport
