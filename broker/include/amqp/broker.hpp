// amqp::broker: a small sans-IO, in-memory AMQP 1.0 broker in the server role (one queue per
// address), the core of `amqp-cli broker` and the base the IoT Hub emulator grows from.
//
// The broker owns one server engine (amqp::connection) per accepted byte stream and never
// touches a socket, a clock or a thread: a transport drives it from one thread.
//
//   c = add_connection(now[, tls_subject])           // a socket was accepted
//   receive(c, bytes, now) (or engine(c)->read_buffer/read_done) // bytes read
//   process(c, now)                                  // pull and act on c's events, route
//   write(engine(c)->pending_output()); engine(c)->consume_output(n); on_output_written(c)
//   for (d : take_dirty()) write d's output too      // routing put output on other engines
//   at engine(c)->next_deadline(): engine(c)->on_deadline(now); process(c, now)
//   socket gone: engine(c)->on_transport_closed(); process(c, now); remove_connection(c)
//   engine(c)->finished() and its output written: close the socket, remove_connection(c)
//
// Behaviour (details in broker/src: auth.cpp, queue_store.cpp, dispatch.cpp):
// - SASL PLAIN against broker_options::users or the broker_options::authenticate callback,
//   ANONYMOUS when allowed, and clients that skip SASL (send the AMQP header directly) when
//   anonymous access is allowed (by default: only when no accounts are configured).
// - Every address a client names goes through broker_options::route when set (link
//   routing: address to queue, or a refusal with an error condition).
// - A client's receiving link with source address A consumes from queue A; a sending link
//   with target address A produces into A; a sending link with no target address is an
//   anonymous relay (each message goes to its properties.to). A dynamic source or target
//   creates a queue with a unique name, deleted when that link detaches.
// - Producers get link credit (broker_options::producer_credit), topped up as messages are
//   accepted and withheld while their queue is full (flow control).
// - Consumers of a queue are served round-robin, each within its credit; unsettled messages
//   stay with the consumer until an outcome: accepted and rejected drop the message,
//   released and modified put it back (modified with delivery-failed counts the failure in
//   the header's delivery-count; undeliverable-here keeps it from that consumer). Messages
//   unsettled on a link that detaches, a session that ends or a connection that is lost
//   go back to the front of their queue, in their original order.
//
// Not thread-safe: one thread calls everything. The broker's memory is bounded by the
// options below and the engine limits in broker_options::connection; allocation failure
// outside the engines propagates std::bad_alloc.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "amqp/connection.hpp"
#include "amqp/messaging.hpp"
#include "amqp/options.hpp"
#include "amqp/result.hpp"
#include "amqp/types.hpp"

namespace amqp::broker {

struct connection_info;

// A SASL PLAIN login (RFC 4616) for broker_options::authenticate. Views valid for the call.
// Only well-formed responses get here (exactly two NULs, a non-empty authcid): a malformed
// one fails with sasl-outcome auth whatever the options.
struct sasl_login {
  std::string_view username{}; // authcid
  std::string_view password{};
  std::string_view authzid{};  // empty unless the client asks to act as someone else
  std::string_view hostname{}; // sasl-init hostname, if the client sent one
};

// A client naming a node (broker_options::route): the source address of a link it receives
// on, the target address of a link it sends on, or, through the anonymous relay, a
// message's properties.to. Views valid for the call.
struct route_request {
  const connection_info& connection;
  bool consume = false;       // the client receives from the node (else it sends to it)
  std::string_view address{}; // as the client wrote it
};

// broker_options::route's answer: the queue that serves the request, or a refusal (the
// attach is refused, or the relayed message rejected, with this AMQP error condition).
struct route_decision {
  std::string queue{};
  std::string condition{}; // refused when not empty, e.g. "amqp:unauthorized-access"
  std::string description{};

  static route_decision to(std::string q) { return {std::move(q), {}, {}}; }
  static route_decision refuse(std::string condition, std::string description = {}) {
    return {{}, std::move(condition), std::move(description)};
  }
};

// A message a client sent, before the broker queues it (broker_options::admit). Views valid
// for the call.
struct incoming_message {
  const connection_info& connection;
  std::string_view queue{};             // the queue it is for
  std::span<const std::byte> payload{}; // its encoded sections, as the client sent them
  bool settled = false;                 // sent presettled: no outcome goes back
};

// broker_options::admit's answer: queue the message (accepted, §3.4.2), or drop it and
// settle it with another outcome: rejected with an error condition (§3.4.3), released
// (§3.4.4) or modified (§3.4.5). `outcome` is one of those four kinds; any other is taken
// as released (the message is not queued, and the client may send it again).
struct admission {
  amqp::state_kind outcome = amqp::state_kind::accepted;
  std::string condition{}; // rejected: e.g. "amqp:precondition-failed"
  std::string description{};
  bool delivery_failed = false;    // modified
  bool undeliverable_here = false; // modified

  static admission accept() { return {}; }
  static admission reject(std::string condition, std::string description = {}) {
    return {amqp::state_kind::rejected, std::move(condition), std::move(description), false, false};
  }
  static admission release() { return {amqp::state_kind::released, {}, {}, false, false}; }
  static admission modify(bool failed, bool undeliverable) {
    return {amqp::state_kind::modified, {}, {}, failed, undeliverable};
  }
};

// A client must finish its protocol headers, SASL and open within this time after it
// connects, or the broker closes the connection (engine_timeouts::handshake): a server
// must not be held by peers that connect and stay silent.
inline constexpr std::chrono::seconds default_handshake_timeout{10};

// The engine options broker_options starts from: the engine's defaults, with the handshake
// timeout of a server (default_handshake_timeout).
[[nodiscard]] inline amqp::connection_options default_connection_options() {
  amqp::connection_options o;
  o.timeouts.handshake = default_handshake_timeout;
  return o;
}

// Options of a broker. Copied by the constructor; views inside `connection` (container-id,
// capabilities, properties) are copied too, except the `value`s of the open frame
// (offered/desired capabilities, properties), which must outlive the broker.
struct broker_options {
  // Options of every connection's engine: limits, timeouts (the idle timeout announced in
  // our open; the engine sends heartbeats within the client's), incoming window, memory.
  // The role is forced to server and `sasl` is set from the fields below. An empty
  // container_id becomes "amqp-broker"; null offered_capabilities become ANONYMOUS-RELAY
  // (the anonymous relay is always available). Defaults: the engine's, with
  // default_handshake_timeout.
  amqp::connection_options connection = default_connection_options();
  // SASL ANONYMOUS accepted, and clients that send the AMQP header without SASL. Unset (the
  // default): on when there are no accounts (`users` empty and no `authenticate`), off when
  // there are, so that configuring accounts never leaves an anonymous way in by accident.
  std::optional<bool> allow_anonymous{};
  // SASL PLAIN credentials (user, password). When empty (and no `authenticate`), PLAIN
  // accepts any well-formed credentials if anonymous access is on (the identity is
  // recorded, not checked: without a user list PLAIN is no stronger than ANONYMOUS), and
  // none if it is off: every connection then fails authentication (except EXTERNAL).
  std::vector<std::pair<std::string, std::string>> users{};
  // Decides SASL PLAIN logins instead of `users`.
  std::function<bool(const sasl_login&)> authenticate{};
  // Link routing: maps each address a client names to a queue, or refuses it. Unset: the
  // address (an absolute URL's path) is the queue's name. Queues it names are found or
  // created as for any address (auto_create_queues, max_queues). Dynamic nodes are not
  // routed.
  std::function<route_decision(const route_request&)> route{};
  // Decides each message a client sends, once its queue is known and before it is queued:
  // accepted (queued) or another outcome (dropped). Unset: every message is accepted while
  // the limits below allow.
  std::function<admission(const incoming_message&)> admit{};
  // Create the queue of an unknown address on first use. Off: only queues declared with
  // declare_queue() (and dynamic ones) exist; other addresses are refused with
  // amqp:not-found.
  bool auto_create_queues = true;
  // At most this many queues (declared, auto-created and dynamic together); beyond it an
  // attach (or a relayed message) that needs a new queue is refused with
  // amqp:resource-limit-exceeded.
  std::size_t max_queues = 10'000;
  // A queue holding (queued plus delivered but unsettled) this many messages or bytes is
  // full: its producers get no more credit until it drains below the limit, and an
  // anonymous relay's message for it is rejected with amqp:resource-limit-exceeded.
  // Credit granted to one producer never exceeds the room left in its queue.
  std::size_t max_queue_messages = 100'000;
  std::size_t max_queue_bytes = std::size_t{64} * 1024 * 1024;
  // All the messages the broker holds, every queue together: beyond it producers get no
  // more credit and messages are rejected with amqp:resource-limit-exceeded (dropped when
  // presettled).
  std::size_t max_total_bytes = std::size_t{512} * 1024 * 1024;
  // The credit window granted to each sending client link; topped up when half is used.
  // At least 1, at most connection.limits.max_unsettled_per_link.
  std::uint32_t producer_credit = 1000;
  // Serve rcv-settle-mode second when a producer asks for it (§2.7.3); otherwise the
  // broker answers first and settles each message with its outcome at once.
  bool serve_settle_second = false;
  // Links per connection; beyond it an attach is refused with
  // amqp:resource-limit-exceeded (the engine's channel_max and handle_max still apply).
  std::size_t max_links_per_connection = 1024;
};

// A connection of the broker (an accepted byte stream). Never reused.
using connection_handle = std::uint64_t;

// Counters and state of one queue.
struct queue_stats {
  std::size_t depth = 0;           // messages queued, waiting for a consumer
  std::size_t bytes = 0;           // their encoded size
  std::size_t in_flight = 0;       // delivered, unsettled, waiting for an outcome
  std::size_t in_flight_bytes = 0; // their encoded size
  std::size_t consumers = 0;
  std::size_t producers = 0; // links with this queue as target (not anonymous relays)
  bool dynamic = false;
  bool declared = false;
  std::uint64_t enqueued = 0;  // messages accepted into the queue
  std::uint64_t delivered = 0; // transfers to consumers (redeliveries included)
  std::uint64_t accepted = 0;  // outcomes from consumers; presettled deliveries count here
  std::uint64_t rejected = 0;
  std::uint64_t released = 0;
  std::uint64_t modified = 0;
  std::uint64_t returned = 0; // unsettled on a consumer that went away: back in the queue
};

// Broker-wide counters.
struct broker_stats {
  std::size_t connections = 0;
  std::size_t queues = 0;
  std::size_t stored_bytes = 0; // every queued and in-flight message
  std::uint64_t received = 0;   // messages accepted from producers
  std::uint64_t refused = 0;    // messages from producers not queued: rejected by a limit or
                                // a route, or refused by admit (dropped if presettled)
  std::uint64_t aborted = 0;    // deliveries aborted by producers, discarded
};

// What the broker knows of a connection.
struct connection_info {
  bool sasl = false;          // the client used SASL (false: it skipped it, anonymous)
  bool authenticated = false; // SASL succeeded, or anonymous access without SASL
  std::string mechanism{};    // the SASL mechanism used
  std::string user{};         // the PLAIN identity (authcid) or EXTERNAL subject; empty: anonymous
  std::string certificate_subject{}; // the client's verified TLS certificate, if any
  bool closed = false;               // the AMQP connection ended (the engine reported it)
  std::size_t links = 0;             // links attached through the broker
};

class broker {
public:
  explicit broker(broker_options o);
  ~broker();
  broker(const broker&) = delete;
  broker& operator=(const broker&) = delete;
  broker(broker&&) noexcept;
  broker& operator=(broker&&) noexcept;

  // ---- connections -------------------------------------------------------------------

  // A new accepted byte stream: creates its server engine. The handshake clock starts at
  // the first input or engine deadline. `certificate_subject`: the subject of the client's
  // verified TLS certificate, if any; the connection then also offers SASL EXTERNAL, which
  // authenticates the client as that subject (RFC 4422 appendix A).
  connection_handle add_connection(time_point now, std::string_view certificate_subject = {});
  // The engine of `c`, or null for an unknown (removed) handle. The transport uses it for
  // output (pending_output/consume_output), timers (next_deadline/on_deadline), the end of
  // the stream (on_transport_closed), finished(), and zero-copy input
  // (read_buffer/read_done). The pointer stays valid until remove_connection(c).
  [[nodiscard]] amqp::connection* engine(connection_handle c) noexcept;
  // Feeds bytes read from the socket of `c`; then call process(c, now).
  // Errors: errc::invalid_state (unknown handle), and those of connection::receive
  // (errc::would_block: process(c) first; the sticky fatal error).
  [[nodiscard]] result<void> receive(connection_handle c, std::span<const std::byte> in,
                                     time_point now);
  // Pulls every event of c's engine and acts on it (SASL, open, begin, attach, credit,
  // messages, outcomes, detach, end, close), routing messages to consumers on any
  // connection. Call after input, after on_deadline() and after on_transport_closed().
  // Does nothing for an unknown handle.
  void process(connection_handle c, time_point now);
  // The transport wrote (part of) c's pending output: deliveries that were waiting for
  // output room (errc::would_block from the engine) are retried. Then write c's output and
  // take_dirty() again.
  void on_output_written(connection_handle c);
  // The connections other than the one being processed that got new output since the last
  // call (messages routed to their consumers, credit granted to their producers, links
  // detached because their queue went away). Each is listed once; removed ones are not.
  [[nodiscard]] std::vector<connection_handle> take_dirty();
  // The byte stream of `c` is gone and its engine is destroyed: messages unsettled on its
  // consumer links go back to the front of their queues, in order; dynamic queues its links
  // created are deleted. Unknown handles are ignored.
  void remove_connection(connection_handle c);

  // ---- queues ------------------------------------------------------------------------

  // Creates queue `address` if it does not exist, and keeps it even when it is empty and
  // unused (auto-created queues are deleted then). Errors: errc::resource_limit
  // (max_queues), errc::invalid_argument (empty address).
  [[nodiscard]] result<void> declare_queue(std::string_view address);
  // The number of messages queued at `address` (not counting those in flight); 0 if no
  // such queue.
  [[nodiscard]] std::size_t queue_depth(std::string_view address) const noexcept;
  // The state and counters of queue `address`, or nothing if it does not exist.
  [[nodiscard]] std::optional<queue_stats> stats(std::string_view address) const;
  // Broker-wide counters.
  [[nodiscard]] broker_stats stats() const noexcept;
  // The names of all queues, sorted.
  [[nodiscard]] std::vector<std::string> queues() const;
  // What the broker knows of `c`, or null for an unknown handle. Valid until the next call
  // on the broker.
  [[nodiscard]] const connection_info* info(connection_handle c) const noexcept;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace amqp::broker
