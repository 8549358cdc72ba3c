// CBS (claims-based security) put-token over the `$cbs` node (doc §2.4; uAMQP cbs.c and
// amqp_management.c; NODE amqp_cbs.ts; MS.Amqp AmqpCbsLink.cs; EDGE CbsNode.cs).
//
// Request: properties.message-id (any id type), optional reply-to; application-properties
// operation = "put-token", type = token type, name = audience, optional expiration
// (timestamp); body amqp-value string (the token). Response: properties.correlation-id =
// the request's message-id with the same AMQP type; application-properties status-code
// (int) and status-description (string).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "amqp/iothub/errors.hpp"
#include "amqp/message.hpp"
#include "amqp/result.hpp"

namespace amqp::iothub {

// Application-property keys and values of CBS (doc §2.4).
namespace cbs_key {
inline constexpr std::string_view operation = "operation";
inline constexpr std::string_view type = "type";
inline constexpr std::string_view name = "name";
inline constexpr std::string_view expiration = "expiration";
inline constexpr std::string_view status_code = "status-code";
inline constexpr std::string_view status_description = "status-description";
} // namespace cbs_key

inline constexpr std::string_view put_token_operation = "put-token";
// C SDK devices, Node, uAMQP Python.
inline constexpr std::string_view servicebus_sas_token_type = "servicebus.windows.net:sastoken";
// .NET device and service (CbsConstants.IotHubSasTokenType).
inline constexpr std::string_view iothub_sas_token_type = "azure-devices.net:sastoken";
// The reply-to Node sends (NODE amqp_cbs.ts); uAMQP sends none.
inline constexpr std::string_view node_cbs_reply_to = "cbs";

enum class cbs_token_type : std::uint8_t { servicebus_sas, iothub_sas };

// The type string of a token type.
[[nodiscard]] std::string_view to_string(cbs_token_type t) noexcept;

struct put_token_request {
  amqp::owned_value message_id;        // ulong (uAMQP), string (Node), uuid, binary
  std::optional<std::string> reply_to; // "cbs" (Node), absent (uAMQP)
  std::optional<std::string> to;       // "$cbs" (Node), absent otherwise
  cbs_token_type token_type = cbs_token_type::servicebus_sas;
  std::string audience;                      // `name`: what the token is for
  std::string token;                         // the SAS token text
  std::optional<amqp::timestamp> expiration; // .NET only
  friend bool operator==(const put_token_request&, const put_token_request&) = default;
};

// The request message: properties (message-id, reply-to, to when set), application-
// properties operation, type, name, expiration (when set), body amqp-value string token.
[[nodiscard]] amqp::message build_put_token(const put_token_request& r);

// Parses a put-token request, as the hub accepts it (every variant of doc §2.4): message-id
// of any type but present; reply-to and to absent or present; the token type either one,
// matched without regard to case (EDGE); operation, type and name strings or symbols;
// expiration a timestamp or absent/null; body one amqp-value string. Errors (reason in
// `why`): errc::missing_field (no properties or message-id, no operation, type, name or
// token), errc::invalid_value (a field of the wrong type, an operation other than
// put-token, an empty name or token), errc::not_supported (another token type).
[[nodiscard]] result<put_token_request> parse_put_token(const amqp::message& m,
                                                        std::string* why = nullptr);

struct cbs_response {
  amqp::owned_value correlation_id; // the request's message-id, same type
  std::int32_t status_code = 0;
  std::string status_description;
  friend bool operator==(const cbs_response&, const cbs_response&) = default;
};

// The response message: properties.correlation-id, application-properties status-code (int)
// and status-description (string, left out when empty). The body is an amqp-value null, as
// a message needs a body (AMQP 1.0 §3.2).
[[nodiscard]] amqp::message build_cbs_response(const cbs_response& r);

// The response to `request` with `status` and `description`: its correlation-id is the
// request's message-id, with the same AMQP type.
[[nodiscard]] amqp::message build_cbs_response(const put_token_request& request,
                                               std::int32_t status, std::string_view description);

// Parses a response: correlation-id present (any type); status-code any integer type that
// fits an int; status-description a string, absent (empty) or null. Errors (reason in
// `why`): errc::missing_field (no correlation-id or status-code), errc::invalid_value (a
// field of the wrong type, a status out of the int range).
[[nodiscard]] result<cbs_response> parse_cbs_response(const amqp::message& m,
                                                      std::string* why = nullptr);

} // namespace amqp::iothub
