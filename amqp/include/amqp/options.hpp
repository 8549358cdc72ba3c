// Options of the protocol engine: what this end announces, the limits it enforces on the
// peer, SASL, and the memory resource every allocation comes from.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <optional>
#include <span>
#include <string_view>

#include "amqp/codec.hpp"
#include "amqp/messaging.hpp"
#include "amqp/performatives.hpp"
#include "amqp/types.hpp"

namespace amqp {

// Which end of the connection this engine is. The client sends its protocol header first;
// the server answers (AMQP 1.0 §2.2). Both roles can open sessions and links.
enum class connection_role : std::uint8_t { client, server };

// Limits on what the peer controls. Going past one is a protocol error sent with the
// condition given (errc in brackets), never a crash or unbounded memory.
struct engine_limits {
  // The largest frame accepted: announced as max-frame-size in our open (AMQP 1.0 §2.7.1);
  // a bigger frame is refused from its header (framing-error). At least 512.
  // The default holds a 64 KiB message in one frame and bounds what one frame can make the
  // engine buffer.
  std::uint32_t max_frame_size = 256 * 1024;
  // The largest SASL frame accepted (§5.3.1 fixes 512; raise it only for peers known to
  // send larger ones).
  std::uint32_t sasl_max_frame_size = 512;
  // The highest channel the peer may use: announced as channel-max (§2.7.1); sessions are
  // at most channel_max + 1 [invalid_field].
  std::uint16_t channel_max = 255;
  // The highest handle the peer may use in a session: announced as handle-max (§2.7.2)
  // [invalid_field].
  std::uint32_t handle_max = 1023;
  // The largest message accepted on a receiving link (announced as max-message-size in
  // attach, §2.7.3) [message_size_exceeded]. Multi-frame messages are reassembled up to it.
  std::uint64_t max_message_size = std::uint64_t{16} * 1024 * 1024;
  // Unsettled deliveries per link and per session, both directions [resource_limit]; also
  // the span of delivery-ids a disposition range is looked up in.
  std::uint32_t max_unsettled_per_link = 16384;
  std::uint32_t max_unsettled_per_session = 65536;
  // Events queued before the engine stops reading buffered input until they are pulled
  // (next_event() then reads on). One frame may still queue one event per delivery it
  // names (a disposition range), at most max_unsettled_per_session.
  std::uint32_t max_events = 256;
  // Bytes of output the engine holds before send calls return errc::would_block (a message
  // larger than this still goes out whole when less is pending). 1 MiB keeps the memory per
  // connection small and a burst of large messages within a core's cache until it is
  // written (with 4 MiB, 64 KiB transfers ran a third slower in the engine benchmark).
  std::size_t max_pending_output = std::size_t{1024} * 1024;
  // Limits of the value decoder (nesting depth, element counts), applied to every frame.
  decode_limits decode{};
};

// Timers. All are enforced through next_deadline()/on_deadline().
struct engine_timeouts {
  // §2.4.5 idle timeout: if the peer sends nothing for this long, the connection is closed
  // with amqp:resource-limit-exceeded. Our open announces half of it (rounded up), as §2.4.5
  // recommends to avoid spurious timeouts: peers send at half the announced value, but some
  // (Qpid Proton) only check on their next timer tick and can stay silent for the whole
  // announced time. Zero: none.
  milliseconds idle_time_out{60'000};
  // The smallest idle-time-out accepted from the peer: a smaller one would make this end
  // send heartbeats more often than it can guarantee, so the connection is closed with
  // amqp:invalid-field (§2.4.5: "SHOULD close the connection ... with an error explaining
  // why").
  milliseconds min_peer_idle_time_out{100};
  // Protocol headers, SASL and open must all be done within this time after the first
  // call (hostile peers that connect and stay silent), in both roles: the peer's open must
  // have arrived. Past it, the connection is closed with amqp:resource-limit-exceeded
  // (errc::timeout; without a close frame when the protocol headers did not agree). 10 s
  // is ample for a round trip or two and a SASL exchange, and bounds how long a server
  // holds a connection that never opens. Zero: none.
  milliseconds handshake{10'000};
  // After this end sends close (or end, or detach), how long it waits for the peer's
  // answer before giving up: the connection is then finished (for end and detach: closed
  // with amqp:resource-limit-exceeded, as the session or link can no longer be trusted).
  milliseconds close{10'000};
};

// SASL (AMQP 1.0 §5.3). Disabled by default: the AMQP header is sent directly.
struct sasl_options {
  bool enabled = false;
  // Client: the mechanism to use. Empty: PLAIN if `username` is set, else EXTERNAL if
  // `external` is set, else ANONYMOUS; the first one the server offers wins.
  // Any other name is a pluggable mechanism: the engine sends `initial_response` and
  // reports challenges as sasl_challenge_received events (answered with sasl_respond()).
  std::string_view mechanism{};
  std::string_view username{}; // PLAIN authcid
  std::string_view password{}; // PLAIN passwd; never traced or logged
  std::string_view authzid{};  // PLAIN authzid, usually empty
  bool external = false;       // offer EXTERNAL (identity from TLS client certificate)
  std::optional<std::span<const std::byte>> initial_response{};
  std::string_view hostname{}; // sasl-init hostname (virtual host)
  // Client: send the SASL header, sasl-init, AMQP header and open without waiting for the
  // server's mechanisms (requires `mechanism` or the implied default to be offered).
  bool pipeline = false;
  // Server: the mechanisms offered, space-separated, e.g. "PLAIN ANONYMOUS EXTERNAL".
  // Each sasl-init is reported as a sasl_init_received event; the application answers with
  // sasl_challenge() or sasl_complete().
  std::string_view server_mechanisms = "ANONYMOUS";
  // Server: accept ANONYMOUS without asking the application.
  bool accept_anonymous = false;
  // Server: a client that sends the AMQP header instead of the SASL one (§5.3.1) is served
  // without SASL rather than refused; connection::sasl_skipped() then tells it apart.
  bool optional = false;
};

// Options of a connection engine. Strings are copied by the constructor.
struct connection_options {
  connection_role role = connection_role::client;
  // Our container-id (§2.7.1); must be set by the caller (unique per container).
  std::string_view container_id{};
  // The hostname of the open frame (§2.7.1): the virtual host asked for. Client only.
  std::string_view hostname{};
  // The open frame's offered and desired capabilities and properties, as AMQP values (a
  // symbol or array of symbols; a map), or null. Encoded by the constructor, which refuses
  // a value with no encoding or of another type (errc::invalid_argument): each goes out in
  // its own field or the engine does not start.
  value offered_capabilities{};
  value desired_capabilities{};
  value properties{};
  engine_limits limits{};
  engine_timeouts timeouts{};
  sasl_options sasl{};
  // Incoming window (in transfer frames) each session announces and restores when half of
  // it is used (§2.5.6).
  std::uint32_t incoming_window = 2048;
  // Where every allocation of the engine comes from. Must outlive the engine.
  std::pmr::memory_resource* memory = std::pmr::new_delete_resource();
};

// Options of a session begun by this end, or of the answer to a peer's begin.
struct session_options {
  // Incoming window in frames; 0: connection_options::incoming_window.
  std::uint32_t incoming_window = 0;
  // The handle-max announced; 0: engine_limits::handle_max.
  std::uint32_t handle_max = 0;
};

// Options of a link attached by this end, or of the answer to a peer's attach.
struct link_options {
  std::string_view name{}; // unique per direction and container pair (§2.6.1)
  amqp::role role = amqp::role::sender;
  sender_settle_mode snd_settle_mode = sender_settle_mode::mixed;
  receiver_settle_mode rcv_settle_mode = receiver_settle_mode::first;
  std::optional<amqp::source> source{};
  std::optional<amqp::target> target{};
  // max-message-size announced; 0: engine_limits::max_message_size for a receiver, none
  // (unlimited) for a sender.
  std::uint64_t max_message_size = 0;
  std::uint32_t initial_delivery_count = 0; // sender only
  // Receiver only: transfers accepted beyond the credit this end granted, counted from its
  // last flow, before the link is detached with amqp:link:transfer-limit-exceeded (§2.6.7).
  // 0 is strict. Some brokers overshoot now and then (RabbitMQ before 4.0, its issue
  // #2597); the session's incoming window and max_unsettled_per_link still bound them.
  // Transfers the sender made before it saw this end lower its credit are always accepted.
  std::uint32_t credit_overrun = 0;
  value offered_capabilities{};
  value desired_capabilities{};
  value properties{};
};

// A message to send on a link (AMQP 1.0 §2.6.12). The payload is the encoded message
// sections; it is copied into the engine's output (or held until the session window
// opens), so it need not outlive the call.
struct transfer_options {
  std::span<const std::byte> payload{};
  // The delivery-tag (at most 32 bytes, unique among the link's unsettled deliveries).
  // Empty: the engine makes one from a per-link counter.
  std::span<const std::byte> tag{};
  std::uint32_t message_format = 0;
  // Send presettled. Forced true on a link whose snd-settle-mode is settled.
  bool settled = false;
  bool batchable = false;
};

} // namespace amqp
