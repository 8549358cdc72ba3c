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
  // A call that is not valid in the endpoint's current state (e.g. a transfer on a link that
  // is not attached, a second open), or an unknown id. Local only.
  invalid_state,
  // The call cannot proceed now: no link credit, pending output above its limit, a delivery
  // still being sent, or events waiting to be pulled before more input. Retry after the
  // next event or consume_output(). Local only; not sticky.
  would_block,
  // The peer did something the spec forbids in this state (e.g. a transfer on a receiving
  // link, a second open). Sent as `amqp:not-allowed`.
  not_allowed,
  // The peer sent a frame that is not valid in the endpoint's state (e.g. begin before
  // open, attach on a channel with no session). Sent as `amqp:illegal-state`.
  illegal_state,
  // A field holds a value that is not acceptable (e.g. a channel above channel-max, an
  // idle-time-out below the configured floor, a delivery-id out of sequence). Sent as
  // `amqp:invalid-field`.
  invalid_field,
  // The peer's max-frame-size is below 512 (AMQP 1.0 §2.7.1) or too small for a frame that
  // must be sent. Sent as `amqp:frame-size-too-small`.
  frame_size_too_small,
  // A transfer arrived while the session's incoming window was zero (§2.5.6). Sent as
  // `amqp:session:window-violation`.
  window_violation,
  // A frame named a handle with no attached link (§2.7.4-§2.7.7). Sent as
  // `amqp:session:unattached-handle`.
  unattached_handle,
  // An attach used a handle already in use (§2.7.3). Sent as `amqp:session:handle-in-use`.
  handle_in_use,
  // A transfer beyond the link credit granted (§2.6.7). Sent as
  // `amqp:link:transfer-limit-exceeded`.
  transfer_limit_exceeded,
  // A message larger than the link's max-message-size (§2.7.3). Sent as
  // `amqp:link:message-size-exceeded`.
  message_size_exceeded,
  // The peer sent nothing within the idle timeout this end announced (§2.4.5), or did not
  // finish the handshake or answer a close in the time allowed. Sent as
  // `amqp:resource-limit-exceeded`.
  timeout,
  // SASL authentication failed (sasl-outcome other than ok, or no common mechanism). Sent
  // (by a server) as `amqp:unauthorized-access`.
  unauthorized,
  // The peer closed the connection, session or link with an error condition (carried in
  // the event). Local only.
  remote_error,
  // The byte stream ended before the close handshake finished. Local only.
  connection_lost,
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
