// amqp::connection: the sans-IO AMQP 1.0 protocol engine, client or server role.
//
// Bytes and time in; bytes, events and the next deadline out. The engine never touches a
// socket, a clock, a thread or randomness, and allocates only from
// connection_options::memory. A connection is a single-threaded object.
//
// The loop that drives it (a transport, or a test):
//   receive(bytes read, now)          // feed what the peer sent
//   while (auto e = next_event()) ... // react: attach, send, settle, ...
//   write(pending_output()); consume_output(n)
//   at next_deadline(): on_deadline(now)
//   stop when finished() and the output is written
//
// Commands (open, begin, attach, send, settle, ...) take effect at once: their frames are
// appended to the pending output as soon as the protocol allows (e.g. a begin waits for the
// open to be sent). Protocol errors of the peer close the connection (or end the session,
// or detach the link) with the right condition and are reported as events; fatal errors
// stick: every later receive() returns the same error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <system_error>

#include "amqp/event.hpp"
#include "amqp/options.hpp"
#include "amqp/result.hpp"
#include "amqp/types.hpp"

namespace amqp {

namespace detail {
struct connection_impl;
struct connection_impl_deleter {
  void operator()(connection_impl* p) const noexcept;
};
} // namespace detail

class connection {
public:
  // A new engine. A client queues its protocol header (and, when SASL is pipelined, the
  // SASL init) at once; a server waits for the client's header. Never throws: if the memory
  // resource refuses an allocation, the engine is finished and every call returns
  // errc::out_of_memory (create() reports that directly). Options whose open frame could
  // never be sent leave the engine finished the same way, with nothing written and no event:
  // errc::invalid_argument (an offered_capabilities, desired_capabilities or properties
  // value with no encoding, or not of its field's type: symbols, a map),
  // errc::frame_too_large (the open above 512 bytes, the largest frame every peer accepts
  // before its open, AMQP 1.0 §2.4.1).
  explicit connection(const connection_options& opts);
  // As the constructor, without exceptions.
  // Errors: errc::out_of_memory, errc::invalid_argument, errc::frame_too_large.
  [[nodiscard]] static result<connection> create(const connection_options& opts) noexcept;
  ~connection();
  connection(connection&&) noexcept;
  connection& operator=(connection&&) noexcept;

  // ---- I/O -------------------------------------------------------------------------------

  // Feeds bytes read from the peer. Consumes all of `in` or fails. Frames are processed
  // at once; events are queued for next_event(). Views in events stay valid until the next
  // call to receive().
  // Errors: errc::would_block (events from the previous receive() still queued: pull them
  // first; nothing consumed); the sticky error of the connection after a fatal error
  // (the peer's protocol error as its errc, errc::protocol_mismatch, ...).
  [[nodiscard]] result<void> receive(std::span<const std::byte> in, time_point now);
  // Zero-copy input, as Qpid Proton's driver: a buffer of exactly `n` bytes inside the
  // engine for the caller to read into (e.g. straight from a socket), then read_done() with
  // the number of bytes written. Empty while receive() would fail (events queued or input paused,
  // fatal error, finished). Valid until read_done() or the next non-const call. May allocate.
  [[nodiscard]] std::span<std::byte> read_buffer(std::size_t n);
  // Processes the first `n` bytes written into read_buffer(), as receive() does.
  // Errors: those of receive(); errc::invalid_argument (n above the buffer given).
  [[nodiscard]] result<void> read_done(std::size_t n, time_point now);
  // False while events are queued or input already received waits behind them (pull events
  // until next_event() gives nothing), when the connection is finished, or while it waits
  // for the application (a SASL decision).
  [[nodiscard]] bool wants_read() const noexcept;

  // The bytes to write to the peer, in order. Valid until the next non-const call.
  [[nodiscard]] std::span<const std::byte> pending_output() noexcept;
  // Marks the first `n` bytes of pending_output() written. Precondition: n <= its size.
  void consume_output(std::size_t n) noexcept;
  // Zero-copy output for asynchronous writes: takes all the pending output out of the engine
  // as one batch, which stays valid and unchanged until output_written() (or the engine's
  // destruction) while the engine writes new frames into a second buffer. One batch at a
  // time: empty while a batch is out, or when nothing is pending. Do not mix with
  // consume_output() of the same bytes.
  [[nodiscard]] std::span<const std::byte> take_output() noexcept;
  // The batch of take_output() is written (or will never be): its buffer is reused.
  void output_written() noexcept;
  // Gives the input buffer, the event queue's memory and the copies of the peer's attaches
  // that the events viewed back to the memory resource if they hold nothing: every byte
  // received processed and every event pulled (otherwise nothing happens). A large event
  // queue the last input filled to more than a quarter is kept (it would be grown again at
  // the next read of a busy connection). For a transport about to wait for input on a quiet
  // connection, so that idle connections hold no input buffer; the next read_buffer() or
  // receive() allocates again. Invalidates read_buffer() and the views of earlier events, as
  // receive() does.
  void release_input_buffer() noexcept;
  // Gives the output buffers back to the memory resource if they hold nothing (everything
  // written, no take_output() batch out). For a connection gone quiet after a burst of
  // output: the buffers keep the size of the largest batch otherwise. The next frame
  // allocates again.
  void release_output_buffers() noexcept;

  // The next event, or nothing when none is queued.
  [[nodiscard]] std::optional<event> next_event();
  // When on_deadline() must be called next (heartbeat, idle timeout, handshake or close
  // timeout), or nothing.
  [[nodiscard]] std::optional<time_point> next_deadline() const noexcept;
  // Runs the timers due at `now`: queues heartbeats, closes on timeouts.
  void on_deadline(time_point now);
  // The byte stream ended (EOF or a socket error). Reports connection_closed with
  // errc::connection_lost unless the close handshake was finished.
  void on_transport_closed();
  // True when nothing more will be read or written once pending_output() is written:
  // close the socket then.
  [[nodiscard]] bool finished() const noexcept;
  // The sticky fatal error, or {}.
  [[nodiscard]] std::error_code error() const noexcept;

  // ---- SASL ------------------------------------------------------------------------------

  // Server: sends a challenge to the client (§5.3.3.3). Errors: errc::invalid_state.
  [[nodiscard]] result<void> sasl_challenge(std::span<const std::byte> challenge);
  // Server: ends the exchange with `code` (§5.3.3.6). Errors: errc::invalid_state.
  [[nodiscard]] result<void> sasl_complete(sasl_code code,
                                           std::span<const std::byte> additional_data = {});
  // Client: answers a challenge (§5.3.3.4). Errors: errc::invalid_state.
  [[nodiscard]] result<void> sasl_respond(std::span<const std::byte> response);
  // Server with sasl_options::optional: true once the client sent the AMQP header without
  // a SASL layer (it is not authenticated).
  [[nodiscard]] bool sasl_skipped() const noexcept;

  // ---- connection ------------------------------------------------------------------------

  // Opens the connection (sends open once the protocol headers allow). A server calls it
  // after connection_opened (or before: its open then goes out right after the header).
  // Errors: errc::invalid_state (already opened or closed).
  [[nodiscard]] result<void> open();
  // Closes the connection, with an error condition or not (§2.7.9). The engine finishes
  // when the peer answers or timeouts.close passes. Errors: errc::invalid_state;
  // errc::invalid_argument (`error` has no encoding), errc::frame_too_large (the close
  // above the frame size in force: 512 bytes before the peer's open, §2.4.1, then its
  // max-frame-size, §2.7.1): nothing is sent and the connection is unchanged then.
  [[nodiscard]] result<void> close(const std::optional<amqp::error>& error = {});
  [[nodiscard]] endpoint_state state() const noexcept;
  // The peer's open, once received (views valid until the engine is destroyed).
  [[nodiscard]] const amqp::open* remote_open() const noexcept;

  // ---- sessions --------------------------------------------------------------------------

  // Begins a new session on the lowest free channel. Errors: errc::invalid_state (the
  // connection is closing), errc::resource_limit (no channel free within both channel-max).
  [[nodiscard]] result<session_id> begin(const session_options& o = {});
  // Answers the peer's begin for `s` (session_begun with remote_initiated).
  // Errors: errc::invalid_state.
  [[nodiscard]] result<void> begin(session_id s, const session_options& o = {});
  // Ends a session (§2.7.8). Errors: errc::invalid_state; errc::invalid_argument,
  // errc::frame_too_large (as for close(): nothing is sent, the session is unchanged).
  [[nodiscard]] result<void> end(session_id s, const std::optional<amqp::error>& error = {});
  [[nodiscard]] result<endpoint_state> state(session_id s) const noexcept;

  // ---- links -----------------------------------------------------------------------------

  // Attaches a new link in session `s` on the lowest free handle.
  // Errors: errc::invalid_state, errc::resource_limit (no handle free within handle-max),
  // errc::invalid_argument (a terminus, capabilities or properties value without an
  // encoding, or not of its field's type), errc::frame_too_large (the attach above the frame
  // size in force, as for close()); no link is made then and nothing is sent.
  [[nodiscard]] result<link_id> attach(session_id s, const link_options& o);
  // Answers the peer's attach for `l` (link_attached with remote_initiated). The role is
  // the opposite of the peer's; name is taken from the peer's attach.
  // Errors: those of attach(session_id, ...); the link is unchanged then.
  [[nodiscard]] result<void> attach(link_id l, const link_options& o);
  // Detaches a link (§2.7.7), closing it unless `closed` is false. A peer's attach not yet
  // answered is first answered with no terminus (§2.6.3). Errors: errc::invalid_state,
  // errc::resource_limit (no handle free for that answer), errc::invalid_argument,
  // errc::frame_too_large (as for close(): nothing is sent, the link is unchanged).
  [[nodiscard]] result<void> detach(link_id l, bool closed = true,
                                    const std::optional<amqp::error>& error = {});
  [[nodiscard]] result<endpoint_state> state(link_id l) const noexcept;

  // Receiver: sets the link credit to `credit` (§2.6.7), optionally draining.
  // Errors: errc::invalid_state (not an attached receiver).
  [[nodiscard]] result<void> flow(link_id l, std::uint32_t credit, bool drain = false);
  // The link credit (§2.6.7): for a sender, the messages it may send now; for a receiver,
  // the credit it granted less the deliveries received since. 0 for an unknown link.
  [[nodiscard]] std::uint32_t credit(link_id l) const noexcept;
  // Sender: nothing more to send on a draining link: uses up the credit (§2.6.7).
  [[nodiscard]] result<void> drained(link_id l);
  // Sender: how many messages are available (§2.7.4). Sent in a flow now, or, with
  // `send_now` false, in the next flow this end sends anyway (a drain answer, an echo).
  // Errors: errc::invalid_state (not an attached sender).
  [[nodiscard]] result<void> set_available(link_id l, std::uint32_t available,
                                           bool send_now = true);

  // Sender: sends a message (§2.6.12), split into frames at the peer's max-frame-size.
  // Errors: errc::invalid_state (not an attached sender), errc::would_block (no credit,
  // pending output above its limit, or an earlier delivery of the link still waiting for the
  // session window), errc::resource_limit (too many unsettled deliveries),
  // errc::message_size_exceeded (above the peer's max-message-size), errc::invalid_argument
  // (tag above 32 bytes).
  [[nodiscard]] result<delivery_id> send(link_id l, const transfer_options& t);
  // Aborts the delivery being sent on `l` if it has frames still to go (§2.6.14).
  [[nodiscard]] result<void> abort(link_id l);

  // Settles a delivery, with a final state or none (§2.6.12); sends a disposition if the
  // peer has not settled it. Consecutive settlements with the same state are sent as one
  // disposition range. Errors: errc::invalid_state (unknown or settled delivery);
  // errc::invalid_argument, errc::frame_too_large (`state` cannot be sent, as for close():
  // nothing is sent and the delivery stays unsettled).
  [[nodiscard]] result<void> settle(delivery_id d, const std::optional<delivery_state>& state = {});
  // Sends a new state for a delivery without settling it (e.g. received, or an outcome
  // under rcv-settle-mode second). Errors: errc::invalid_state; errc::invalid_argument,
  // errc::frame_too_large (as for settle()).
  [[nodiscard]] result<void> update(delivery_id d, const delivery_state& state);

  // ---- introspection (tests, benchmarks) -------------------------------------------------

  // The link's unsettled deliveries (sent or received), as this end counts them.
  [[nodiscard]] std::size_t unsettled(link_id l) const noexcept;

private:
  std::unique_ptr<detail::connection_impl, detail::connection_impl_deleter> impl_;
};

} // namespace amqp
