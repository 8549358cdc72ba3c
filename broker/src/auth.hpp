// Authentication of the broker's clients (SASL, AMQP 1.0 §5.3): the mechanisms a connection
// is offered, whether anonymous access is on, and the decision on a client's sasl-init:
// PLAIN against the accounts or the authenticator callback (RFC 4616), ANONYMOUS, and
// EXTERNAL as the subject of the client's verified TLS certificate (RFC 4422 appendix A).
// Knows nothing of queues or links.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "amqp/broker.hpp"
#include "amqp/event.hpp"
#include "amqp/options.hpp"

namespace amqp::broker {

// A SASL PLAIN response split into its parts (RFC 4616 §2). Views into the response.
struct plain_response {
  std::string_view authzid{};
  std::string_view authcid{};
  std::string_view passwd{};
};

// Splits a PLAIN response, `message = [authzid] UTF8NUL authcid UTF8NUL passwd` (RFC 4616
// §2): exactly two NULs and a non-empty authcid, else nullopt (malformed).
[[nodiscard]] std::optional<plain_response> parse_plain(std::span<const std::byte> r) noexcept;

// What the broker answers to a client's sasl-init.
struct auth_decision {
  bool ok = false;    // sasl-outcome ok, else auth (§5.3.3.6)
  std::string user{}; // the identity: PLAIN authcid or EXTERNAL subject; empty for ANONYMOUS
};

// The SASL side of broker_options. Holds a reference to the options, which must outlive it.
class authenticator {
public:
  explicit authenticator(const broker_options& o);

  // Anonymous access (SASL ANONYMOUS, clients that skip SASL): broker_options::
  // allow_anonymous, or by default on exactly when no account is configured.
  [[nodiscard]] bool anonymous() const noexcept { return anonymous_; }

  // Sets the server SASL options of a connection's engine: SASL on, the mechanisms offered
  // (EXTERNAL too for a client with a verified certificate), ANONYMOUS accepted and SASL
  // optional when anonymous access is on. The mechanism list views this object.
  void configure(sasl_options& s, bool with_certificate) const;

  // Decides a client's sasl-init (mechanism and initial response). `certificate_subject`:
  // the subject of the client's verified TLS certificate, or empty. A malformed PLAIN
  // response fails whatever the accounts; the authenticator callback sees only well-formed
  // ones.
  [[nodiscard]] auth_decision decide(const sasl_init_received& e,
                                     std::string_view certificate_subject) const;

private:
  [[nodiscard]] auth_decision decide_plain(std::span<const std::byte> response,
                                           std::string_view hostname) const;

  const broker_options& opts_;
  bool anonymous_ = false;
  std::string mechanisms_;          // "PLAIN" or "PLAIN ANONYMOUS"
  std::string external_mechanisms_; // "EXTERNAL " + mechanisms_
};

} // namespace amqp::broker
