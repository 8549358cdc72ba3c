// amqp::iothub errors: the layer's error codes, and the condition symbols, descriptions and
// CBS status codes Azure IoT Hub puts on the wire (../shared/docs/iothub-amqp.md, §2.4, §3.5,
// §4.3, §9.1; the source of each is named beside it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

#include "amqp/error.hpp"

namespace amqp::iothub {

// Errors of the profile layer. Every parser also writes a human text saying what is wrong
// into its optional `std::string* why` argument ("HostName is missing").
enum class errc {
  // A required part is absent: a connection-string key, a token field, an AMQP section or
  // property, a JSON member.
  missing_field = 1,
  // A part is present but malformed: not base64, not a number, a character not allowed, an
  // unknown address, a wrong AMQP or JSON type.
  invalid_value,
  // Parts that cannot go together (SharedAccessKey and SharedAccessSignature), or a part
  // given twice.
  conflict,
  // A well-formed input this layer does not handle (a selector predicate other than the
  // simple forms, an unknown CBS token type, a filter with another descriptor).
  not_supported,
  // A size, length or count above the layer's limit for it.
  limit_exceeded,
  // A SAS token whose signature matches none of the keys.
  signature_mismatch,
  // A SAS token whose expiry has passed.
  token_expired,
};

// The error category of `errc`; its name is "amqp.iothub".
[[nodiscard]] const std::error_category& iothub_category() noexcept;

[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), iothub_category()};
}

// Condition symbols (AMQP 1.0 §2.8.14 error conditions) the hub uses besides the AMQP ones in
// amqp::symbol (doc §9.1, from CS-DEV AmqpIotErrorAdapter.cs, CS-SVC IotHubAmqpErrorCode.cs,
// EH-PY _constants.py, and wire traces).
namespace condition {
// Operation timeout (CS-SVC IotHubAmqpErrorCode.cs).
inline constexpr std::string_view timeout = "com.microsoft:timeout";
// Throttling, HTTP 429, sent in a rejected outcome (CS-DEV amqpTransportExceptions.md).
inline constexpr std::string_view device_container_throttled =
    "com.microsoft:device-container-throttled";
// A C2D lock that expired before complete/abandon/reject (CS-DEV AmqpIotErrorAdapter.cs).
inline constexpr std::string_view message_lock_lost = "com.microsoft:message-lock-lost";
inline constexpr std::string_view quota_exceeded = "com.microsoft:quota-exceeded";
inline constexpr std::string_view iot_hub_suspended = "com.microsoft:iot-hub-suspended";
inline constexpr std::string_view iot_hub_not_found = "com.microsoft:iot-hub-not-found-error";
inline constexpr std::string_view argument_error = "com.microsoft:argument-error";
inline constexpr std::string_view argument_out_of_range = "com.microsoft:argument-out-of-range";
inline constexpr std::string_view precondition_failed = "com.microsoft:precondition-failed";
inline constexpr std::string_view device_already_exists = "com.microsoft:device-already-exists";
inline constexpr std::string_view dead_letter = "com.microsoft:dead-letter";
// Event Hubs (EH-PY _constants.py).
inline constexpr std::string_view server_busy = "com.microsoft:server-busy";
inline constexpr std::string_view entity_disabled = "com.microsoft:entity-disabled";
inline constexpr std::string_view auth_failed = "com.microsoft:auth-failed";
inline constexpr std::string_view operation_cancelled = "com.microsoft:operation-cancelled";
inline constexpr std::string_view container_close = "com.microsoft:container-close";
} // namespace condition

// Keys of an error's `info` map (symbols) the hub fills (doc §3.5, §3.6, §9.1; TRACE
// azure-iot-sdk-c#2233; CS-SVC IotHubAmqpProperty.cs).
namespace error_info {
// A string such as "{guid}-G:0-TimeStamp:02/15/2022 09:32:47".
inline constexpr std::string_view tracking_id = "com.microsoft:tracking-id";
// A boolean, true on the rejected outcome of an oversized D2C message.
inline constexpr std::string_view is_filtered = "com.microsoft:is-filtered";
inline constexpr std::string_view error_code = "com.microsoft:error-code";
inline constexpr std::string_view stack_trace = "com.microsoft:stack-trace";
// Keys of the com.microsoft:dead-letter outcome (CS-SVC).
inline constexpr std::string_view dead_letter_reason = "DeadLetterReason";
inline constexpr std::string_view dead_letter_error_description = "DeadLetterErrorDescription";
} // namespace error_info

// Descriptions the hub sends, quoted from wire traces.
namespace description {
// Link detach when a token expires unrenewed, with amqp:unauthorized-access (TRACE
// azure-iot-sdk-java#180, #365).
inline constexpr std::string_view token_invalid = "Token Invalid.";
// CBS 401, signature matches neither key (TRACE azure-iot-sdk-csharp#886).
inline constexpr std::string_view invalid_signature =
    "The specified SAS token has an invalid signature. It does not match either the primary "
    "or secondary key.";
// CBS 401, token expired (TRACE azure-iot-sdks#157).
inline constexpr std::string_view token_expired = "The specified SAS token is expired";
// CBS audience mismatch, Event Hubs wording (MicrosoftDocs PR 19707).
inline constexpr std::string_view invalid_audience =
    "InvalidAudience: Invalid authorization token audience.";
// The C SDK's reject of a C2D message (doc §4.3).
inline constexpr std::string_view rejected_by_application = "Rejected by application";
} // namespace description

// The hub's description of a D2C message above the size limit (TRACE azure-iot-sdk-c#2233:
// "Message size is 349372 bytes which is greater than the max size 262144 bytes allowed.").
[[nodiscard]] std::string message_size_description(std::size_t size, std::size_t max_size);

// CBS and management status codes (doc §2.4, §6.4; HTTP-like, sent as an AMQP int).
namespace cbs_status {
inline constexpr std::int32_t ok = 200;       // put-token accepted (EDGE: "OK")
inline constexpr std::int32_t accepted = 202; // also success for MS.Amqp
inline constexpr std::int32_t bad_request = 400;
inline constexpr std::int32_t unauthorized = 401;
inline constexpr std::int32_t forbidden = 403;
inline constexpr std::int32_t not_found = 404;
inline constexpr std::int32_t internal_error = 500;
} // namespace cbs_status

// The description EDGE sends with a CBS 200: "OK".
inline constexpr std::string_view cbs_ok_description = "OK";

// True for a status a CBS client takes as success: 200..299, as uAMQP cbs.c does (Node
// accepts only 200; MS.Amqp 200 and 202).
[[nodiscard]] constexpr bool is_success_status(std::int32_t status) noexcept {
  return status >= 200 && status <= 299;
}

// The condition MS.Amqp maps a CBS failure status to on the client (doc §2.4): 400
// amqp:invalid-field, 401 amqp:unauthorized-access, 403 amqp:link:transfer-limit-exceeded,
// 404 amqp:not-found, anything else amqp:internal-error.
[[nodiscard]] std::string_view condition_of_status(std::int32_t status) noexcept;

} // namespace amqp::iothub

template <> struct std::is_error_code_enum<amqp::iothub::errc> : std::true_type {};
