// Events the engine reports, pulled by the caller with connection::next_event(). They carry
// ids, never pointers. Views (strings, binaries, values, payloads) point into engine buffers
// and stay valid until the next call to receive() (or the engine's destruction).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <variant>

#include "amqp/messaging.hpp"
#include "amqp/performatives.hpp"
#include "amqp/sasl.hpp"
#include "amqp/types.hpp"

namespace amqp {

// SASL, server side: the client chose a mechanism (AMQP 1.0 §5.3.3.2). For PLAIN the
// response is also split into its three parts (RFC 4616). Answer with
// connection::sasl_challenge() or connection::sasl_complete().
struct sasl_init_received {
  symbol_view mechanism{};
  std::span<const std::byte> initial_response{};
  std::string_view hostname{};
  std::string_view authzid{};  // PLAIN only
  std::string_view username{}; // PLAIN authcid
  std::string_view password{}; // PLAIN passwd
};

// SASL, server side: the client answered a challenge (§5.3.3.4).
struct sasl_response_received {
  std::span<const std::byte> response{};
};

// SASL, client side: the server sent a challenge for a pluggable mechanism (§5.3.3.3).
// Answer with connection::sasl_respond().
struct sasl_challenge_received {
  std::span<const std::byte> challenge{};
};

// SASL finished (§5.3.3.6), in either role. On failure the connection then ends
// (connection_closed with errc::unauthorized follows).
struct sasl_done {
  sasl_code code = sasl_code::ok;
  std::span<const std::byte> additional_data{};
  symbol_view mechanism{};
};

// The peer's open arrived (§2.7.1). A server answers with connection::open().
// `remote` is the engine's copy, valid as long as the engine (also connection::remote_open()).
struct connection_opened {
  const amqp::open& remote;
};

// The connection ended. `error` is the condition the peer sent in its close (or the one
// this end sent, for a local protocol error), `code` the local reason: {} for a clean
// close, errc::remote_error, errc::timeout, errc::connection_lost, or the protocol error
// this end detected. No event follows; finished() becomes true once the output is written.
struct connection_closed {
  std::error_code code{};
  std::optional<amqp::error> error{};
  bool remote = false; // the peer sent close
};

// The peer began a session (§2.7.2). If this end did not begin it, answer with
// connection::begin(session, ...) or end it.
struct session_begun {
  session_id session{};
  bool remote_initiated = false;
  std::uint32_t handle_max = 0;
};

// The session ended (end from the peer, or an error detected here).
struct session_ended {
  session_id session{};
  std::error_code code{};
  std::optional<amqp::error> error{};
  bool remote = false;
};

// The peer attached a link (§2.7.3). If this end did not attach it, answer with
// connection::attach(link, ...) or detach it. `attach` is the peer's frame as decoded
// (its unsettled map has been checked: delivery-tag keys, delivery-state values).
struct link_attached {
  link_id link{};
  session_id session{};
  bool remote_initiated = false;
  const amqp::attach& remote; // held by the engine until the next receive()
};

// The link was detached (§2.7.7) by the peer or because of an error found here. `closed`
// is the peer's closed flag: false after a closing detach from this end means the peer
// only detached (§2.6.6).
struct link_detached {
  link_id link{};
  bool closed = false;
  std::error_code code{};
  std::optional<amqp::error> error{};
  bool remote = false;
};

// Link flow state changed (§2.6.7): for a sender, new credit or a drain request (then
// send what is available and call connection::drained()); for a receiver, the sender
// answered a drain or reported `available`.
struct link_flow {
  link_id link{};
  std::uint32_t credit = 0;
  std::uint32_t delivery_count = 0;
  std::uint32_t available = 0;
  bool drain = false;
};

// A complete message arrived (all its transfer frames, §2.6.14), or an aborted one.
struct delivery_received {
  delivery_id delivery{};
  binary_view tag{};
  std::span<const std::byte> payload{}; // the message sections, reassembled
  std::uint32_t message_format = 0;
  bool settled = false; // presettled by the sender: no disposition expected
  bool aborted = false; // the sender aborted it (§2.6.14); the payload is empty
  bool resume = false;
  std::optional<delivery_state> state{}; // the sender's state, for resumed deliveries
};

// The peer updated a delivery's state and/or settled it (disposition, §2.7.6). Once
// `settled`, the delivery is forgotten by the engine.
struct delivery_updated {
  delivery_id delivery{};
  std::optional<delivery_state> state{};
  bool settled = false;
};

using event =
    std::variant<sasl_init_received, sasl_response_received, sasl_challenge_received, sasl_done,
                 connection_opened, connection_closed, session_begun, session_ended, link_attached,
                 link_detached, link_flow, delivery_received, delivery_updated>;

// The short name of the event held ("link_attached", ...), for logs and tests.
[[nodiscard]] std::string_view name(const event& e) noexcept;

} // namespace amqp
