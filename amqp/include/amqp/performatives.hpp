// AMQP 1.0 performatives (transport.xml, §2.7): the bodies of AMQP frames, and the
// restricted types they use. `error` (§2.8.14) is in messaging.hpp, with the delivery states.
//
// Every performative is a plain struct with the spec's fields in the spec's order, spelled
// with underscores. Fields with a spec default are initialised to it; optional fields without
// one are std::optional (or a null `value`/empty `symbols`). Nothing is owned: strings,
// binaries, symbols and values are views, into the decoded frame after `decode` (valid as
// long as its bytes are), into caller storage when encoding.
//
// Restricted types map to their source types: handle, seconds, milliseconds,
// delivery-number, transfer-number, sequence-no and message-format to std::uint32_t;
// delivery-tag to binary_view; fields to `value` (a map, or null); ietf-language-tag and
// other multiple symbols to `symbols`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <variant>

#include "amqp/messaging.hpp"
#include "amqp/result.hpp"
#include "amqp/symbols.hpp"
#include "amqp/transactions.hpp"
#include "amqp/value.hpp"

namespace amqp {

// AMQP 1.0 §2.8.1 role: the role of a link endpoint; a boolean on the wire.
enum class role : bool { sender = false, receiver = true };

// AMQP 1.0 §2.8.2 sender-settle-mode: settlement policy of a sender.
enum class sender_settle_mode : std::uint8_t { unsettled = 0, settled = 1, mixed = 2 };

// AMQP 1.0 §2.8.3 receiver-settle-mode: settlement policy of a receiver.
enum class receiver_settle_mode : std::uint8_t { first = 0, second = 1 };

// The target of an attach (AMQP 1.0 §2.7.3, requires="target"): a messaging target
// (§3.5.2), or a transaction coordinator (§4.5.1) for a link that declares transactions.
// Any other descriptor is refused with errc::unexpected_descriptor.
using attach_target = std::variant<target, coordinator>;

// AMQP 1.0 §2.7.1 open (0x10): negotiates connection parameters.
struct open {
  std::string_view container_id{};
  std::optional<std::string_view> hostname{};
  std::uint32_t max_frame_size = 4294967295;
  std::uint16_t channel_max = 65535;
  std::optional<std::uint32_t> idle_time_out{}; // milliseconds
  symbols outgoing_locales{};                   // ietf-language-tag
  symbols incoming_locales{};                   // ietf-language-tag
  symbols offered_capabilities{};
  symbols desired_capabilities{};
  value properties{}; // fields, or null
};

// AMQP 1.0 §2.7.2 begin (0x11): begins a session on a channel.
struct begin {
  std::optional<std::uint16_t> remote_channel{};
  std::uint32_t next_outgoing_id{}; // transfer-number
  std::uint32_t incoming_window{};
  std::uint32_t outgoing_window{};
  std::uint32_t handle_max = 4294967295;
  symbols offered_capabilities{};
  symbols desired_capabilities{};
  value properties{}; // fields, or null
};

// AMQP 1.0 §2.7.3 attach (0x12): attaches a link to a session.
struct attach {
  std::string_view name{};
  std::uint32_t handle{};
  amqp::role role{};
  sender_settle_mode snd_settle_mode = sender_settle_mode::mixed;
  receiver_settle_mode rcv_settle_mode = receiver_settle_mode::first;
  std::optional<amqp::source> source{};
  std::optional<attach_target> target{};
  value unsettled{}; // map of delivery-tag to delivery-state, or null
  bool incomplete_unsettled = false;
  std::optional<std::uint32_t> initial_delivery_count{}; // sequence-no
  std::optional<std::uint64_t> max_message_size{};
  symbols offered_capabilities{};
  symbols desired_capabilities{};
  value properties{}; // fields, or null
};

// AMQP 1.0 §2.7.4 flow (0x13): updates session and (with a handle) link flow state.
struct flow {
  std::optional<std::uint32_t> next_incoming_id{}; // transfer-number
  std::uint32_t incoming_window{};
  std::uint32_t next_outgoing_id{}; // transfer-number
  std::uint32_t outgoing_window{};
  std::optional<std::uint32_t> handle{};
  std::optional<std::uint32_t> delivery_count{}; // sequence-no
  std::optional<std::uint32_t> link_credit{};
  std::optional<std::uint32_t> available{};
  bool drain = false;
  bool echo = false;
  value properties{}; // fields, or null
};

// AMQP 1.0 §2.7.5 transfer (0x14): transfers (part of) a message. The payload follows the
// performative in the frame and is not part of this struct.
struct transfer {
  std::uint32_t handle{};
  std::optional<std::uint32_t> delivery_id{}; // delivery-number
  std::optional<binary_view> delivery_tag{};
  std::optional<std::uint32_t> message_format{};
  std::optional<bool> settled{};
  bool more = false;
  std::optional<receiver_settle_mode> rcv_settle_mode{};
  std::optional<delivery_state> state{};
  bool resume = false;
  bool aborted = false;
  bool batchable = false;
};

// AMQP 1.0 §2.7.6 disposition (0x15): informs the peer of delivery state changes.
struct disposition {
  amqp::role role{};
  std::uint32_t first{};               // delivery-number
  std::optional<std::uint32_t> last{}; // delivery-number
  bool settled = false;
  std::optional<delivery_state> state{};
  bool batchable = false;
};

// AMQP 1.0 §2.7.7 detach (0x16): detaches the link endpoint from the session.
struct detach {
  std::uint32_t handle{};
  bool closed = false;
  std::optional<amqp::error> error{};
};

// AMQP 1.0 §2.7.8 end (0x17): ends the session.
struct end {
  std::optional<amqp::error> error{};
};

// AMQP 1.0 §2.7.9 close (0x18): signals a connection close.
struct close {
  std::optional<amqp::error> error{};
};

// The body of an AMQP frame (AMQP 1.0 §2.3.2).
using performative =
    std::variant<open, begin, attach, flow, transfer, disposition, detach, end, close>;

// Decodes `described` into `out`, checking its descriptor (ulong code or symbolic name, e.g.
// "amqp:begin:list"). Fields beyond those known are ignored (AMQP 1.0 §1.4). Views in `out`
// point into the bytes `described` was decoded from. No state-machine validation is done
// (that is the engine's). Errors: errc::unexpected_descriptor (another descriptor, here or
// in a composite field such as attach.source), errc::type_mismatch (not a described list, or
// a field of the wrong type or out of range, e.g. a remote-channel above 65535),
// errc::missing_field (a mandatory field absent or null).
[[nodiscard]] result<void> decode(const value& described, open& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, begin& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, attach& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, flow& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, transfer& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, disposition& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, detach& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, end& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, close& out) noexcept;

// The number of bytes `x` encodes to: the descriptor as smallulong, then the smallest list
// holding the fields up to the last one that is not null or default; fields equal to their
// default before it are written as null. Errors: errc::invalid_argument (a `value` or
// `symbols` field with no encoding).
[[nodiscard]] result<std::size_t> encoded_size(const open& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const begin& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const attach& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const flow& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const transfer& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const disposition& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const detach& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const end& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const close& x) noexcept;

// Encodes `x` into the front of `out`; returns the bytes written. Errors: those of
// encoded_size, errc::buffer_too_small.
[[nodiscard]] result<std::size_t> encode(const open& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const begin& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const attach& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const flow& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const transfer& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const disposition& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const detach& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const end& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const close& x, std::span<std::byte> out) noexcept;

// Decodes the body of an AMQP frame, whichever performative it is. Errors:
// errc::unexpected_descriptor (a described value that is not a performative),
// errc::type_mismatch (not a described value, or a field of the wrong type),
// errc::missing_field.
[[nodiscard]] result<performative> decode_performative(const value& described) noexcept;

// Size and encoding of the performative held, as for its type.
[[nodiscard]] result<std::size_t> encoded_size(const performative& x) noexcept;
[[nodiscard]] result<std::size_t> encode(const performative& x, std::span<std::byte> out) noexcept;

// The short spec name of the performative held ("open", "begin", ...), for tracing.
[[nodiscard]] std::string_view name(const performative& p) noexcept;

} // namespace amqp
