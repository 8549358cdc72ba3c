// Error codes of the AMQP stack and the conditions a peer sees.
#pragma once

#include <string>
#include <string_view>
#include <system_error>

namespace amqp {

// Local error codes. Every fallible function documents which of these it returns.
enum class errc {
  // Malformed AMQP encoding: bad constructor, truncated value, size or count inconsistent
  // with the bytes present, invalid UTF-8 in a string, non-ASCII symbol. Sent to the peer as
  // `amqp:decode-error`.
  decode_error = 1,
  // Nesting deeper than the configured limit. Sent as `amqp:decode-error`.
  depth_exceeded,
  // A count or size the peer controls is above a configured limit. Sent as
  // `amqp:resource-limit-exceeded`.
  resource_limit,
  // A value has the wrong AMQP type for where it is used (e.g. a performative field).
  // Sent as `amqp:decode-error`.
  type_mismatch,
  // A mandatory composite field is absent or null. Sent as `amqp:invalid-field`.
  missing_field,
  // A described value has a descriptor other than the one expected here.
  // Sent as `amqp:decode-error`.
  unexpected_descriptor,
  // Message sections out of order or repeated (AMQP 1.0 §3.2). Sent as `amqp:decode-error`.
  invalid_message,
  // The caller asked to encode something that has no AMQP encoding (e.g. an array whose
  // elements differ in type, a size above 2^32-1). Local only.
  invalid_argument,
  // The output buffer is too small for the encoding. Local only.
  buffer_too_small,
  // A memory resource refused an allocation. Sent as `amqp:internal-error`.
  out_of_memory,
  // A malformed frame (AMQP 1.0 §2.3.1): SIZE below 8, DOFF below 2, DOFF * 4 above SIZE;
  // or a SASL frame with an empty body (§5.3.1). Sent as `amqp:connection:framing-error`.
  framing_error,
  // A frame whose SIZE is above the maximum frame size in force: the max-frame-size this
  // end announced (§2.7.1: "A peer that receives an oversized frame MUST close the
  // connection with the framing-error error-code"), or 512 for SASL frames (§5.3.1).
  // Locally, also a frame that cannot be built within the peer's max-frame-size. Sent as
  // `amqp:connection:framing-error`.
  frame_too_large,
  // A frame TYPE other than the one the connection is reading: 0x00 (AMQP) after the AMQP
  // protocol header, 0x01 (SASL) after the SASL header (§2.3.1, §5.3.1); this includes
  // every undefined type code. Sent as `amqp:connection:framing-error`.
  unexpected_frame_type,
  // The peer's protocol header (AMQP 1.0 §2.2) is not one this end accepts here: not
  // "AMQP" at all, an unknown protocol id or version, or a protocol not enabled (e.g. no
  // SASL header when SASL is required). No close frame can be sent before the headers
  // agree (§2.2: answer with a supported header, then close the socket); reported locally
  // as `amqp:not-implemented`.
  protocol_mismatch,
};

// The error category of `errc`; its name is "amqp".
[[nodiscard]] const std::error_category& amqp_category() noexcept;

[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), amqp_category()};
}

// AMQP error condition symbols (AMQP 1.0 §2.8.15, §2.8.16, §2.8.17, §2.8.18).
namespace symbol {
inline constexpr std::string_view internal_error = "amqp:internal-error";
inline constexpr std::string_view not_found = "amqp:not-found";
inline constexpr std::string_view unauthorized_access = "amqp:unauthorized-access";
inline constexpr std::string_view decode_error = "amqp:decode-error";
inline constexpr std::string_view resource_limit_exceeded = "amqp:resource-limit-exceeded";
inline constexpr std::string_view not_allowed = "amqp:not-allowed";
inline constexpr std::string_view invalid_field = "amqp:invalid-field";
inline constexpr std::string_view not_implemented = "amqp:not-implemented";
inline constexpr std::string_view resource_locked = "amqp:resource-locked";
inline constexpr std::string_view precondition_failed = "amqp:precondition-failed";
inline constexpr std::string_view resource_deleted = "amqp:resource-deleted";
inline constexpr std::string_view illegal_state = "amqp:illegal-state";
inline constexpr std::string_view frame_size_too_small = "amqp:frame-size-too-small";
inline constexpr std::string_view connection_forced = "amqp:connection:forced";
inline constexpr std::string_view framing_error = "amqp:connection:framing-error";
inline constexpr std::string_view connection_redirect = "amqp:connection:redirect";
inline constexpr std::string_view window_violation = "amqp:session:window-violation";
inline constexpr std::string_view errant_link = "amqp:session:errant-link";
inline constexpr std::string_view handle_in_use = "amqp:session:handle-in-use";
inline constexpr std::string_view unattached_handle = "amqp:session:unattached-handle";
inline constexpr std::string_view detach_forced = "amqp:link:detach-forced";
inline constexpr std::string_view transfer_limit_exceeded = "amqp:link:transfer-limit-exceeded";
inline constexpr std::string_view message_size_exceeded = "amqp:link:message-size-exceeded";
inline constexpr std::string_view link_redirect = "amqp:link:redirect";
inline constexpr std::string_view stolen = "amqp:link:stolen";
} // namespace symbol

// The AMQP error condition symbol a local error is reported to the peer with.
// Errors of other categories map to `amqp:internal-error`.
[[nodiscard]] std::string_view to_condition_symbol(std::error_code ec) noexcept;

} // namespace amqp

template <> struct std::is_error_code_enum<amqp::errc> : std::true_type {};
