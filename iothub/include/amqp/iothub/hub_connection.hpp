// A connection to Azure IoT Hub (or to the Event Hubs-compatible endpoint of its built-in
// events): amqp::transport::client with the hub's ways in (doc §1, §2). The device, module
// and service clients and the telemetry reader are built on it.
//
// Authentication (doc §2):
// - cbs: SASL ANONYMOUS, then a CBS put-token on `$cbs` for each identity before any link
//   attaches, on the first connection and after every reconnect; each token renewed on the
//   same links once `renew_at` of its lifetime has passed, as the SDKs do. If the hub
//   detaches a `$cbs` link, the transport attaches the pair again and every token is put
//   again on it (a put the hub had not answered is made again, not reported as an error).
//   Many identities (devices) on one connection, each with its own token; a failure of one
//   is reported to that identity only.
// - sasl_plain: SASL PLAIN with the identity's SAS token as the password
//   (`{device}@sas.{hub}`, `{policy}@sas.root.{hub}`); a fresh token at each reconnect.
// - x509: a TLS client certificate, no SASL layer and no token (doc §2.6).
//
// Thread-safety: as amqp::transport::client (one io_context; call from its thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "amqp/iothub/connection_string.hpp"
#include "amqp/iothub/sas.hpp"
#include "amqp/result.hpp"
#include "amqp/transport/client.hpp"
#include "amqp/transport/options.hpp"

namespace asio {
class io_context;
}

namespace amqp::iothub {

namespace detail {
class hub_connection_impl;
}

// How the bytes go (doc §1.1).
enum class hub_protocol : std::uint8_t {
  amqps,           // AMQP over TLS, port 5671 by default
  amqp_websockets, // AMQP over WebSockets over TLS (AMQPWSB10), port 443 by default
  amqp,            // AMQP over TCP, port 5672 by default: local endpoints and tests only
};

// How the connection authenticates (doc §1.3, §2).
enum class hub_auth : std::uint8_t {
  cbs,        // SASL ANONYMOUS, then CBS put-token per identity, renewed
  sasl_plain, // SASL PLAIN, a SAS token as the password (one identity)
  x509,       // a TLS client certificate (tls.cert_file, tls.key_file); no SASL, no token
};

// The SAS tokens of one identity (a device, a module, a hub policy, an Event Hubs policy):
// made from a shared access key, fresh for each put, or one given token used as it is.
class token_source {
public:
  token_source() = default;
  // Tokens for `audience` (the resource URI: "{host}/devices/{id}", "{host}" for a hub
  // policy, "sb://{host}/{entity}" for Event Hubs), signed with `key` (base64, as in the
  // connection string) as `key_name` (a policy; empty for a device or module key), each
  // valid for `lifetime` from when it is made. `form`: sas_key_form::text for Event Hubs.
  [[nodiscard]] static token_source from_key(std::string audience, std::string key,
                                             std::string key_name = {},
                                             std::chrono::seconds lifetime = std::chrono::hours(1),
                                             sas_key_form form = sas_key_form::base64_decoded);
  // A given token (a connection string's SharedAccessSignature): its audience is its `sr`,
  // URL-decoded. It is not renewed: once it expires, the hub detaches the identity's links.
  // Errors: those of parse_sas_token and url_decode.
  [[nodiscard]] static result<token_source> from_token(std::string token,
                                                       std::string* why = nullptr);

  [[nodiscard]] const std::string& audience() const noexcept { return audience_; }
  [[nodiscard]] bool renewable() const noexcept { return !key_.empty(); }
  // A token valid at `now` (seconds since the Unix epoch) and its expiry. Errors:
  // errc::invalid_value (a key that is not base64), errc::token_expired (a given token
  // that has expired).
  struct token {
    std::string text;
    std::uint64_t expiry = 0; // seconds since the Unix epoch
  };
  [[nodiscard]] result<token> make(std::uint64_t now, std::string* why = nullptr) const;

private:
  std::string audience_;
  std::string key_; // empty: a given token
  std::string key_name_;
  std::chrono::seconds lifetime_{3600};
  sas_key_form form_ = sas_key_form::base64_decoded;
  std::string token_; // a given token
  std::uint64_t expiry_ = 0;
};

struct hub_connection_options {
  hub_protocol protocol = hub_protocol::amqps;
  hub_auth auth = hub_auth::cbs;
  // What is dialed: host[:port] (a connection string's GatewayHostName, else its HostName).
  // Without a port: 5671, 443 or 5672 by protocol.
  std::string host;
  // The AMQP open's hostname (the hub's host name); empty: the host dialed.
  std::string virtual_host;
  // The WebSocket path: "/$iothub/websocket" (the hub), "/$servicebus/websocket" (Event Hubs).
  std::string websocket_path = "/$iothub/websocket";
  // TLS: verification on by default; ca_file for a local hub's CA; cert_file/key_file for
  // X.509.
  transport::tls_options tls{};
  // Reconnection after a loss, as the SDKs: exponential backoff with jitter, from 1 s up to
  // 60 s between attempts, giving up 4 minutes after the loss (the client then fails with the
  // last error). A login or token the hub refuses (401) is not retried.
  transport::reconnect_options reconnect{
      true, std::chrono::seconds(1), std::chrono::seconds(60), 0.5, 0, std::chrono::minutes(4)};
  // Time for one connect attempt, CBS puts included.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(60)};
  // A token is renewed once this fraction of its lifetime has passed (the Node SDK: 45 of 60
  // minutes).
  double renew_at = 0.75;
  // Time the hub has to answer one put-token.
  std::chrono::milliseconds put_token_timeout{std::chrono::seconds(30)};
  // sasl_plain: the SASL user name ("{device}@sas.{hub}", "{policy}@sas.root.{hub}";
  // endpoint_from fills it).
  std::string sasl_user;
  // The AMQP container-id; empty: generated.
  std::string container_id;
  // Print every frame, secrets redacted (also AMQP_TRACE=frames).
  bool trace = false;
};

// What a connection string says to connect with: the options (host, auth, WebSocket path)
// and the identity's tokens (none for X.509). Device and module strings sign for
// "{HostName}/devices/{id}[/modules/{m}]" and dial GatewayHostName when set; service strings
// sign for "{HostName}" as their policy; Event Hubs strings sign for "sb://{host}/{EntityPath}"
// with the key's text (sas_key_form::text), use "/$servicebus/websocket", and dial the
// Endpoint's host. Errors: those of validate().
struct hub_endpoint {
  hub_connection_options options;
  std::optional<token_source> identity;
  connection_string_kind kind = connection_string_kind::device;
  connection_string parsed;
};
[[nodiscard]] result<hub_endpoint> endpoint_from(const connection_string& cs,
                                                 hub_protocol protocol = hub_protocol::amqps,
                                                 std::string* why = nullptr);
// The same from the text of a connection string.
[[nodiscard]] result<hub_endpoint> endpoint_from(std::string_view connection_string_text,
                                                 hub_protocol protocol = hub_protocol::amqps,
                                                 std::string* why = nullptr);

class hub_connection {
public:
  hub_connection() = default;
  // Connects as `identities` (cbs: each token put before any link; sasl_plain: exactly one;
  // x509: none). The handler runs from the io_context. Errors: errc::invalid_argument (bad
  // options: last_error() says which), errc::unauthorized (the hub refused a token or the
  // login: last_error() has its status and description), errc::timeout, the transport's.
  static void async_connect(asio::io_context& io, hub_connection_options options,
                            std::vector<token_source> identities,
                            std::function<void(std::error_code, hub_connection)> done);

  // Adds an identity to a cbs connection: its token is put now, after every reconnect, and
  // renewed. Errors: errc::invalid_state (not a cbs connection, or closed), errc::unauthorized
  // (refused: last_error() has the hub's status and description), errc::timeout.
  void async_add_identity(token_source identity, std::function<void(std::error_code)> done);
  // Called when a renewal, or the put after a reconnect, of one identity fails; the other
  // identities and the connection go on (the hub detaches that identity's links).
  void on_identity_error(std::function<void(const std::string& audience, std::error_code)> f);

  // The AMQP client: open links on it. Valid while this connection is.
  [[nodiscard]] transport::client& client() noexcept;
  // Closes the connection.
  void async_close(std::function<void(std::error_code)> done);
  // What went wrong last, for users (the hub's status and description of a refused token).
  [[nodiscard]] std::string last_error() const;
  // Put-tokens the hub answered with success so far (renewals included).
  [[nodiscard]] std::uint64_t tokens_put() const noexcept;
  [[nodiscard]] std::uint64_t reconnects() const noexcept;
  [[nodiscard]] explicit operator bool() const noexcept { return impl_ != nullptr; }

private:
  friend class detail::hub_connection_impl;
  std::shared_ptr<detail::hub_connection_impl> impl_;
  std::string failure_; // last_error() of a connection whose connect failed
};

} // namespace amqp::iothub
