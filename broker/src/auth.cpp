// The broker's SASL decisions (auth.hpp).
#include "auth.hpp"

#include <algorithm>

namespace amqp::broker {

namespace {

// Compares two strings in time that depends on their lengths only.
bool same_secret(std::string_view a, std::string_view b) noexcept {
  unsigned diff = a.size() == b.size() ? 0U : 1U;
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    diff |=
        static_cast<unsigned>(static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]));
  }
  return diff == 0;
}

} // namespace

// The engine's own split of the event is lenient (a third NUL goes into the password, an
// empty authcid passes), so the broker decides from the raw response.
std::optional<plain_response> parse_plain(std::span<const std::byte> r) noexcept {
  const std::string_view s(reinterpret_cast<const char*>(r.data()), r.size());
  const std::size_t a = s.find('\0');
  const std::size_t b = a == std::string_view::npos ? a : s.find('\0', a + 1);
  if (b == std::string_view::npos || s.find('\0', b + 1) != std::string_view::npos || b == a + 1) {
    return std::nullopt;
  }
  return plain_response{s.substr(0, a), s.substr(a + 1, b - a - 1), s.substr(b + 1)};
}

authenticator::authenticator(const broker_options& o) : opts_(o) {
  anonymous_ = o.allow_anonymous.value_or(o.users.empty() && !o.authenticate);
  // PLAIN is always offered: checked against the users, or (without users) as open as
  // ANONYMOUS when that is allowed, else failing with a SASL outcome (auth) rather than
  // leaving the client with no mechanism in common.
  mechanisms_ = anonymous_ ? "PLAIN ANONYMOUS" : "PLAIN";
  external_mechanisms_ = "EXTERNAL " + mechanisms_;
}

void authenticator::configure(sasl_options& s, bool with_certificate) const {
  s = sasl_options{};
  s.enabled = true;
  s.server_mechanisms = with_certificate ? external_mechanisms_ : mechanisms_;
  s.accept_anonymous = anonymous_;
  // A client that skips SASL (AMQP 1.0 §5.3.1) is served only when anonymous access is
  // allowed; otherwise the engine answers with the SASL header and closes.
  s.optional = anonymous_;
}

auth_decision authenticator::decide(const sasl_init_received& e,
                                    std::string_view certificate_subject) const {
  if (e.mechanism.str == "PLAIN") {
    return decide_plain(e.initial_response, e.hostname);
  }
  if (e.mechanism.str == "ANONYMOUS") {
    return {anonymous_, {}};
  }
  if (e.mechanism.str == "EXTERNAL") {
    // RFC 4422 appendix A: the identity is the one the TLS layer established; the client
    // may ask for an authorization identity, which must be that identity here.
    const std::string_view authz(reinterpret_cast<const char*>(e.initial_response.data()),
                                 e.initial_response.size());
    const bool ok = !certificate_subject.empty() && (authz.empty() || authz == certificate_subject);
    return {ok, ok ? std::string(certificate_subject) : std::string()};
  }
  return {};
}

auth_decision authenticator::decide_plain(std::span<const std::byte> response,
                                          std::string_view hostname) const {
  // A malformed response is refused before any account is looked at.
  const auto plain = parse_plain(response);
  if (!plain) {
    return {};
  }
  bool ok = false;
  if (opts_.authenticate) {
    ok = opts_.authenticate(sasl_login{plain->authcid, plain->passwd, plain->authzid, hostname});
  } else {
    if (opts_.users.empty()) {
      ok = anonymous_;
    } else {
      for (const auto& [user, password] : opts_.users) {
        // Every entry is compared, so the time does not tell which user exists.
        const bool user_ok = same_secret(user, plain->authcid);
        const bool password_ok = same_secret(password, plain->passwd);
        ok = ok || (user_ok && password_ok);
      }
    }
    // RFC 4616 §2: an authorization identity other than the authenticated one asks to act
    // as someone else; nobody may here.
    ok = ok && (plain->authzid.empty() || plain->authzid == plain->authcid);
  }
  return {ok, ok ? std::string(plain->authcid) : std::string()};
}

} // namespace amqp::broker
