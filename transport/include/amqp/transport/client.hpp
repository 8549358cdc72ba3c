// The asynchronous client: one AMQP connection (TCP, TLS, WebSocket) driven on an
// asio::io_context, with senders, receivers, reconnect and at-least-once resend.
//
// Thread-safety: a client and its senders and receivers are single-threaded objects bound to
// the io_context given to connect(): call them from a thread running that io_context (from a
// completion handler, or after asio::post). Completion handlers run there too. For use from
// other threads, see blocking.hpp.
//
// Handlers: std::function; with C++20 coroutines, wrap a call in an awaitable of your choice
// (the handler signatures are the usual (error_code, value) pairs).
//
// Recovery. What the client does by itself when the peer or the network takes something away
// (client_options::reconnect, client_options::relink):
// - The socket or the AMQP connection is lost (reconnect.enabled): a new connection after
//   the backoff; every sender, receiver and requester attaches again; sends without an
//   outcome are sent again (at-least-once); requests sent on the lost connection fail.
// - The peer ends the session of an open connection (relink and reconnect.enabled): taken as
//   a lost connection (the client has one session per connection), so as above. Links whose
//   attach the peer had not answered yet fail (errc::remote_error): a peer may end the
//   session to refuse one (RabbitMQ does).
// - The peer detaches an attached sender, receiver or requester link with an error while the
//   connection stays up (relink; IoT Hub and Event Hubs do so on token expiry, throttling,
//   load balancing): the link attaches again after a backoff (the delays of `reconnect`,
//   growing while the peer keeps detaching it; client::relinks() counts the re-attaches).
//   Meanwhile sends wait, and those the peer had not settled are sent again on the new
//   attach; receives wait; a message received on the old attach can no longer be settled
//   (errc::invalid_state: the peer delivers it again). A requester detaches its other link
//   and attaches both again; requests sent on the old links fail with errc::connection_lost
//   (the operation may or may not have been done), the others wait.
//   Not retried, the link fails to the application as before (errc::remote_error, the
//   condition in last_error() and receiver::remote_error()): a detach without an error; a
//   detach with amqp:link:redirect or amqp:link:stolen (the application decides where to go
//   or whether to take the link back) or with a condition a re-attach would meet again
//   (amqp:link:message-size-exceeded, amqp:not-found, amqp:not-allowed,
//   amqp:not-implemented, amqp:resource-deleted, amqp:precondition-failed,
//   amqp:decode-error, amqp:invalid-field, amqp:illegal-state, amqp:frame-size-too-small);
//   a detach the application asked for (async_close); and a re-attach the peer refuses
//   (e.g. amqp:unauthorized-access or amqp:not-found on the attach itself).
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
#include <system_error>
#include <vector>

#include "amqp/message.hpp"
#include "amqp/messaging.hpp"
#include "amqp/result.hpp"
#include "amqp/transport/options.hpp"

namespace asio {
class io_context;
}

namespace amqp::transport {

namespace detail {
class client_impl;
struct link_impl;
struct requester_impl;
} // namespace detail

// The outcome of a sent message (AMQP 1.0 §3.4), owned.
struct delivery_outcome {
  // state_kind::accepted, rejected, released or modified; none when sent presettled (no
  // outcome) or settled by the peer without one; other for an outcome the peer defined
  // (§3.4). amqp::name(state) gives its AMQP name.
  state_kind state = state_kind::none;
  std::string condition; // rejected: the error condition, e.g. "amqp:decode-error"
  std::string description;
  bool delivery_failed = false;    // modified
  bool undeliverable_here = false; // modified
};

// A received message: its encoded bytes (owned) and what is needed to settle it.
//
// The bytes are all that is kept when a message arrives. The sections are decoded (and
// copied) on first use of message(), body_text(), body_bytes() or a section accessor, once,
// then kept; bytes() and decode() never pay for that. Copies share what was decoded.
// Thread-safety: the first of those calls fills the cache, so it must not race with another
// call on the same object; after it, const calls from several threads are safe. Separate
// copies are independent.
class received_message {
public:
  // The message as sent (owned here; valid as long as this object).
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return bytes_; }
  // A zero-copy decode: views into bytes(). Errors: those of amqp::decode_message.
  [[nodiscard]] result<message_view> decode() const noexcept { return decode_message(bytes_); }
  [[nodiscard]] std::uint32_t message_format() const noexcept { return format_; }
  // Sent presettled: nothing to settle.
  [[nodiscard]] bool settled() const noexcept { return settled_; }

  // The message decoded and copied: every section owned. Errors: those of
  // amqp::message::decode (errc::decode_error, errc::invalid_message, ...).
  [[nodiscard]] result<amqp::message> message() const;
  // The body as text: an amqp-value string or symbol, or data sections that are valid UTF-8
  // (amqp::message::body_text). nullopt for another body, or if the message does not decode
  // (message() then says why).
  [[nodiscard]] std::optional<std::string> body_text() const;
  // The body as bytes: the data sections joined, or an amqp-value binary, string or symbol
  // (amqp::message::body_bytes). nullopt otherwise, or if the message does not decode.
  [[nodiscard]] std::optional<std::vector<std::byte>> body_bytes() const;
  // The sections (AMQP 1.0 §3.2), decoded once. A message that does not decode has none:
  // they are empty then (message() says why). References valid as long as this object.
  [[nodiscard]] const std::optional<amqp::header>& header() const;
  [[nodiscard]] const value_map& delivery_annotations() const;
  [[nodiscard]] const value_map& message_annotations() const;
  [[nodiscard]] const message_properties& properties() const;
  [[nodiscard]] const value_map& application_properties() const;
  [[nodiscard]] const value_map& footer() const;

private:
  friend class detail::client_impl;
  friend class receiver;
  // The decoded message, decoded on first use (an empty one if it does not decode).
  const amqp::message& decoded() const;
  std::vector<std::byte> bytes_;
  std::uint32_t format_ = 0;
  bool settled_ = false;
  std::uint64_t generation_ = 0; // the link's attach it arrived on (settling after a
                                 // reconnect or re-attach is not possible: the broker
                                 // redelivers it)
  std::uint32_t delivery_ = 0;
  mutable std::shared_ptr<const amqp::message> decoded_;
  mutable std::error_code decode_error_;
};

struct sender_options {
  std::string name; // empty: generated
  bool presettled = false;
  // Ask for a durable target node (§3.5.3 terminus-durable "configuration"), e.g. a
  // durable queue on a broker that declares queues on attach.
  bool durable = false;
  // Outcomes are reported at once for presettled sends; otherwise when the peer settles.
  // Messages kept for resend after a reconnect (and waiting for credit): at most this many.
  std::size_t max_in_flight = 10'000;
};

// A filter of a receiver's source (AMQP 1.0 §3.5.1 filter-set): `name` maps to a described
// string, e.g. {"selector", "apache.org:selector-filter:string",
// "amqp.annotation.x-opt-offset > '100'"}.
struct source_filter {
  std::string name;
  std::string descriptor;
  std::string value;
};

struct receiver_options {
  std::string name; // empty: generated
  std::vector<source_filter> filters;
  // Credit kept granted to the sender (prefetch): topped up as messages are handed out.
  std::uint32_t credit = 1000;
  // rcv-settle-mode second (§2.7.3): accept/reject/release/modify send the outcome
  // unsettled and the sender settles it. First (settled with the outcome) by default.
  bool settle_second = false;
  // Transfers accepted beyond the credit before the link fails with
  // amqp:link:transfer-limit-exceeded (amqp::link_options::credit_overrun); unset: as many
  // as `credit` at attach. RabbitMQ before 4.0 overshoots the credit now and then (its issue
  // #2597; a frame trace here shows 15 transfers after a grant of 10), so a strict receiver
  // fails against it. 0 is strict.
  std::optional<std::uint32_t> credit_overrun;
  // Messages received before async_receive() asks for them are buffered, bounded by
  // credit + credit_overrun.
  // The attach's link properties (AMQP 1.0 §2.7.3 attach `properties`): a map with symbol
  // keys, e.g. Event Hubs' com.microsoft:epoch (long); null: none. Sent on every attach.
  amqp::owned_value properties{};
};

// The error the peer detached a link with (AMQP 1.0 §2.7.6 detach `error`), owned: its
// condition (e.g. amqp:link:redirect, amqp:link:stolen), description and info map (null if
// none; e.g. a redirect's hostname, port and address).
struct link_error {
  std::string condition;
  std::string description;
  amqp::owned_value info{};
};

class client;
class requester;
class blocking_requester;

class sender {
public:
  sender() = default;
  // Sends one encoded message (its bytes are copied). The handler gets the peer's outcome
  // (unsettled), or state_kind::none at once when presettled and written. Sends wait for
  // credit; after a reconnect or a re-attach (client.hpp "Recovery"), those without an outcome
  // are sent again (at-least-once).
  // Errors: errc::invalid_state (closed), errc::resource_limit (max_in_flight), the link's
  // or connection's error.
  void async_send(std::span<const std::byte> message,
                  std::function<void(std::error_code, delivery_outcome)> done);
  // The same with the transfer's message-format (AMQP 1.0 §2.7.5: 0 for a plain message;
  // e.g. IoT Hub's batch format 0x80013700), kept when the message is sent again after a
  // reconnect. The bytes are sent as given.
  void async_send(std::span<const std::byte> message, std::uint32_t message_format,
                  std::function<void(std::error_code, delivery_outcome)> done);
  // Sends `message`, encoded here (its bytes are kept, not the message); otherwise as above.
  // Errors: those above, and errc::invalid_argument, at once, when the message cannot be
  // encoded: client::last_error() then names the field and why (amqp::message::check()).
  void async_send(const amqp::message& message,
                  std::function<void(std::error_code, delivery_outcome)> done);
  // Detaches the link (closing it). Pending sends fail with errc::invalid_state.
  // Errors: errc::invalid_state (an empty handle).
  void async_close(std::function<void(std::error_code)> done);
  [[nodiscard]] std::uint32_t credit() const noexcept;
  [[nodiscard]] std::size_t in_flight() const noexcept;
  [[nodiscard]] explicit operator bool() const noexcept { return impl_ != nullptr; }

private:
  friend class detail::client_impl;
  friend class client;
  friend class requester;
  explicit sender(std::shared_ptr<detail::link_impl> l) : impl_(std::move(l)) {}
  std::shared_ptr<detail::link_impl> impl_;
};

class receiver {
public:
  receiver() = default;
  // The next message (waits for one). Errors: errc::invalid_state (closed), the link's or
  // the connection's error.
  void async_receive(std::function<void(std::error_code, received_message)> done);
  // Settlement (§3.4). Errors: errc::invalid_state (already settled, or from a previous
  // connection: the broker will redeliver it).
  result<void> accept(const received_message& m);
  result<void> reject(const received_message& m, std::string_view condition = {},
                      std::string_view description = {});
  result<void> release(const received_message& m);
  result<void> modify(const received_message& m, bool delivery_failed, bool undeliverable_here);
  void async_close(std::function<void(std::error_code)> done);
  // Changes the credit kept granted (receiver_options::credit). Lowering it takes back
  // unused credit at once (a flow with the new, smaller link-credit), e.g. to receive
  // exactly the messages still wanted from a broker that sends presettled.
  void set_credit(std::uint32_t credit);
  // Replaces the source filters (receiver_options::filters) of the attaches to come: those
  // after a reconnect. The link attached now keeps the filters it attached with. (A reader
  // of a stream keeps its resume position here, so that a re-attach starts after the last
  // message it took.)
  void set_filters(std::vector<source_filter> filters);
  // The error the peer detached this link with, once it did (async_receive then fails with
  // errc::remote_error); nullopt before, or if the detach carried no error.
  [[nodiscard]] std::optional<link_error> remote_error() const;
  [[nodiscard]] explicit operator bool() const noexcept { return impl_ != nullptr; }

private:
  friend class detail::client_impl;
  friend class client;
  friend class requester;
  explicit receiver(std::shared_ptr<detail::link_impl> l) : impl_(std::move(l)) {}
  result<void> settle(const received_message& m, state_kind outcome, std::string_view condition,
                      std::string_view description, bool failed, bool undeliverable);
  std::shared_ptr<detail::link_impl> impl_;
};

struct requester_options {
  // Our reply address: the receiving link's target and each request's reply-to. Empty:
  // a generated one. (IoT Hub's $cbs node answers to "cbs".)
  std::string reply_to;
  std::string name; // link names: name + "-sender" / "-receiver"; empty: generated
  // Requests waiting to be sent or for their response at most (more fail at once with
  // errc::resource_limit).
  std::size_t max_pending = 1000;
  // How long async_request waits for a response before it fails with errc::timeout (the
  // request is forgotten: a later response is dropped). Zero: no limit.
  std::chrono::milliseconds timeout{0};
  // Runs each time the requester's links are attached again after the peer detached one of
  // them (client.hpp "Recovery"; not after a reconnect: client_options::before_links runs
  // then), once the new links are ready for requests: e.g. to put the CBS tokens again.
  std::function<void()> on_reattached;
};

// Request/response over a sender and a receiver link to one node (the pattern of AMQP CBS
// `$cbs` put-token and `$management` operations), built on the core's
// amqp::request_response: each request gets a message-id (ulong) and our reply-to; the
// response is the message whose correlation-id equals it, settled (accepted) on arrival.
// Requests are sent presettled; the response is their outcome.
//
// Reconnects: a requester attaches again after a reconnect. Requests not sent yet go on the
// new links; those sent on the lost connection fail with the connection's error (their
// responses cannot come back): send them again if the operation may be repeated. The same
// after the peer detaches one of its links with an error (client.hpp "Recovery"): both
// attach again, and the requests sent on the old links fail with errc::connection_lost.
class requester {
public:
  requester() = default;
  // Sends `request` (encoded here; its message-id and reply-to are set, every other field
  // and section is sent as given) and hands over the response. Requests wait for credit
  // and, after a reconnect, for the new links. Errors: errc::invalid_state (closed, or an
  // empty handle), errc::invalid_argument (at once: the message cannot be encoded;
  // client::last_error() says why), errc::resource_limit (at once: max_pending),
  // errc::timeout (requester_options::timeout), errc::remote_error (the peer detached a
  // link and it is not attached again: client::last_error() has its condition),
  // errc::connection_lost (sent, then the peer detached a link that attaches again), the
  // connection's error.
  void async_request(const amqp::message& request,
                     std::function<void(std::error_code, received_message)> done);
  // The same for an encoded message (its bytes are copied); errc::invalid_argument if it
  // does not decode as a message.
  void async_request(std::span<const std::byte> request,
                     std::function<void(std::error_code, received_message)> done);
  // Detaches both links. Requests still waiting fail with errc::invalid_state.
  // Errors: errc::invalid_state (an empty handle, or a close already under way).
  void async_close(std::function<void(std::error_code)> done);
  [[nodiscard]] explicit operator bool() const noexcept { return impl_ != nullptr; }

private:
  friend class client;
  friend class detail::client_impl;
  friend class blocking_requester;
  // async_request with the timeout given (0: none).
  void request_message(const amqp::message& request, std::chrono::milliseconds timeout,
                       std::function<void(std::error_code, received_message)> done);
  void request_bytes(std::span<const std::byte> request, std::chrono::milliseconds timeout,
                     std::function<void(std::error_code, received_message)> done);
  void start(std::vector<std::byte> bytes, std::chrono::milliseconds timeout,
             std::function<void(std::error_code, received_message)> done);
  std::shared_ptr<detail::requester_impl> impl_;
};

class client {
public:
  client() = default;
  // Connects to `url` (amqp://, amqps://, ws://, wss://; user and password select SASL
  // PLAIN), opens the connection and a session. The handler always runs from the
  // io_context, never inside this call. On failure its client is empty (operator bool is
  // false, every operation fails with errc::invalid_state) but its last_error() says what
  // went wrong. Errors: errc::invalid_argument (a bad URL; a TLS file that cannot be loaded;
  // a capabilities or properties value with no encoding), errc::unauthorized (SASL: the
  // login refused, or no mechanism in common), errc::timeout (connect_timeout), the
  // resolver's, socket's or TLS handshake's error.
  static void async_connect(asio::io_context& io, std::string_view url, client_options options,
                            std::function<void(std::error_code, client)> done);
  // Attaches a sending link to `address` (the target). Errors: errc::invalid_state (an
  // empty or closed client), errc::remote_error (the peer refused the link: last_error()
  // has its condition and description), the connection's error.
  void async_open_sender(std::string_view address, sender_options options,
                         std::function<void(std::error_code, sender)> done);
  // Attaches a receiving link from `address` (the source). Errors: as async_open_sender.
  void async_open_receiver(std::string_view address, receiver_options options,
                           std::function<void(std::error_code, receiver)> done);
  // Attaches a requester to the node `address` (e.g. "$cbs", "$management"): ready once
  // the peer attached both links. Errors: as async_open_sender.
  void async_open_requester(std::string_view address, requester_options options,
                            std::function<void(std::error_code, requester)> done);
  // Closes the connection (close handshake, bounded by client_options::close_timeout).
  void async_close(std::function<void(std::error_code)> done);
  // What went wrong last, readable, for messages to users: the condition and description
  // the peer sent ("the peer refused to attach link ... : amqp:not-found: no queue 'x'"),
  // why a connect failed ("invalid URL: ...", "cannot load CA file ...", "authentication
  // failed: ..."), which field of a message cannot be encoded. Empty if nothing failed.
  [[nodiscard]] std::string last_error() const;
  // Reconnections so far.
  [[nodiscard]] std::uint64_t reconnects() const noexcept;
  // Re-attaches so far of links (a requester's pair counts once) the peer detached with an
  // error while the connection stayed up (client.hpp "Recovery").
  [[nodiscard]] std::uint64_t relinks() const noexcept;
  // Write batches (system-level writes) so far.
  [[nodiscard]] std::uint64_t writes() const noexcept;
  [[nodiscard]] explicit operator bool() const noexcept { return impl_ != nullptr; }

private:
  friend class detail::client_impl;
  template <typename Handle>
  static void on_attached(const std::shared_ptr<detail::link_impl>& l,
                          std::function<void(std::error_code, Handle)> done);
  std::shared_ptr<detail::client_impl> impl_;
  std::string failure_; // last_error() of a client whose connect failed
};

} // namespace amqp::transport
