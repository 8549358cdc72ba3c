// Internal state of the protocol engine (amqp::connection): the connection, its sessions,
// links and unsettled deliveries, in id-indexed tables allocated from the connection's
// memory resource. Split by concept: connection.cpp (I/O, headers, open/close, timers),
// sasl.cpp, session.cpp (begin/end, windows), link.cpp (attach/detach, flow, transfers,
// dispositions).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory_resource>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "amqp/connection.hpp"
#include "engine/byte_buffer.hpp"
#include "frame/frame.hpp"
#include "frame/protocol_header.hpp"

namespace amqp::detail {

template <class T> using pvec = std::pmr::vector<T>;
using pstring = std::pmr::string;

inline constexpr std::uint32_t no_index = 0xFFFF'FFFF;

// RFC 1982 serial number arithmetic on 32-bit sequence numbers (AMQP 1.0 §2.8.10):
// a is before b.
[[nodiscard]] constexpr bool serial_lt(std::uint32_t a, std::uint32_t b) noexcept {
  return a != b && static_cast<std::uint32_t>(b - a) < 0x8000'0000U;
}

// An unsettled delivery in a session's table, sent or received.
struct delivery_slot {
  std::uint32_t id = 0;
  std::uint32_t link = no_index; // no_index: settled (a tombstone until compacted)
};

// Unsettled deliveries of one direction of a session, keyed by delivery-id. Delivery-ids
// are assigned in sequence (AMQP 1.0 §2.6.12), so the table is a vector in serial order
// (RFC 1982) from the oldest unsettled: appending is O(1), a lookup is a binary search, and
// a disposition range [first, last] costs O(log n + the deliveries it names), whatever
// first and last are. Settled entries are tombstones, dropped from the front at once and
// compacted away when they outnumber the live ones.
class delivery_table {
public:
  explicit delivery_table(std::pmr::memory_resource* m) : v_(m) {}
  // The number of unsettled deliveries.
  [[nodiscard]] std::uint32_t span() const noexcept { return live_; }
  // The slot of unsettled delivery `id`, or null.
  [[nodiscard]] delivery_slot* find(std::uint32_t id) noexcept;
  // Appends unsettled delivery `id`, which must come after every id in the table.
  // Errors: errc::invalid_field (out of sequence).
  [[nodiscard]] result<delivery_slot*> push(std::uint32_t id, std::uint32_t link);
  // Marks `s` settled (a tombstone until trim()).
  void erase(delivery_slot* s) noexcept;
  // Drops tombstones from the front, and compacts when they outnumber live entries.
  void trim() noexcept;
  // Calls f(id, slot&) for every unsettled delivery with an id in [first, last].
  template <class F> void for_range(std::uint32_t first, std::uint32_t last, F&& f) {
    std::size_t i = lower_bound(first);
    for (; i < v_.size(); ++i) {
      delivery_slot& s = v_[i];
      if (serial_lt(last, s.id)) {
        break;
      }
      if (s.link != no_index) {
        f(s.id, s);
      }
    }
  }
  // Settles every delivery of link `l` (the link is gone).
  void erase_link(std::uint32_t l) noexcept;
  void clear() noexcept {
    v_.clear();
    head_ = 0;
    live_ = 0;
  }

private:
  // The index of the first entry whose id is not before `id`.
  [[nodiscard]] std::size_t lower_bound(std::uint32_t id) const noexcept;
  pvec<delivery_slot> v_;
  std::size_t head_ = 0; // entries before head_ are dropped
  std::uint32_t live_ = 0;
};

// A transfer whose frames wait for the session's remote incoming window (§2.5.6).
struct held_transfer {
  std::uint32_t link = no_index;
  std::uint32_t delivery_id = 0;
  std::array<std::byte, 32> tag{};
  std::uint8_t tag_size = 0;
  std::uint32_t message_format = 0;
  bool settled = false;
  bool first_sent = false; // the first frame (with delivery-id and tag) went out
  bool aborted = false;
  std::size_t offset = 0;
  byte_buffer payload;
};

struct link_state {
  bool used = false;
  endpoint_state st{};
  std::uint16_t session = 0;
  std::uint32_t handle = no_index;        // ours
  std::uint32_t remote_handle = no_index; // the peer's
  amqp::role role = amqp::role::sender;
  bool remote_initiated = false;
  bool attach_sent = false;
  bool detach_closed = true; // the closed flag of our detach
  pstring name;
  sender_settle_mode snd_settle_mode = sender_settle_mode::mixed;
  receiver_settle_mode rcv_settle_mode = receiver_settle_mode::first;
  std::uint64_t max_message_size = 0;        // ours (receiver): 0 = none
  std::uint64_t remote_max_message_size = 0; // the peer's: 0 = none
  // Flow state (§2.6.7).
  std::uint32_t delivery_count = 0;
  std::uint32_t credit = 0;
  // Receiver: transfers the sender may still make against a larger credit this end granted
  // before lowering it (§2.6.7: they were in flight when our flow went out).
  std::uint32_t stale_credit = 0;
  std::uint32_t credit_overrun = 0; // receiver: link_options::credit_overrun
  std::uint32_t overrun_left = 0;   // of it, since our last flow
  std::uint32_t available = 0;
  bool drain = false;
  bool flow_unreported = false; // the peer's flow came before this end answered its attach
  std::uint32_t unsettled = 0;
  std::uint64_t tag_counter = 0;
  bool held = false; // a delivery of this link waits in the session's held queue
  // Incoming multi-frame delivery being reassembled.
  bool in_progress = false;
  bool in_settled = false;
  std::uint32_t in_id = 0;
  std::uint32_t in_format = 0;
  std::array<std::byte, 32> in_tag{};
  std::uint8_t in_tag_size = 0;
  std::uint64_t in_epoch = 0; // receive() call in which `in_buf` last completed a message
  byte_buffer in_buf;
  std::optional<time_point> detach_deadline{};

  explicit link_state(std::pmr::memory_resource* m) : name(m), in_buf(m) {}
};

struct session_state {
  bool used = false;
  endpoint_state st{};
  bool remote_initiated = false;
  bool begin_sent = false;
  std::uint16_t remote_channel = 0;
  bool has_remote_channel = false;
  // Flow state (§2.5.6).
  std::uint32_t next_outgoing_id = 0;
  std::uint32_t next_incoming_id = 0;
  std::uint32_t incoming_window_max = 0;
  std::uint32_t incoming_window = 0; // frames the peer may still send
  std::uint32_t remote_incoming_window = 0;
  std::uint32_t handle_max = 0;
  std::uint32_t remote_handle_max = 0xFFFF'FFFF;
  std::uint32_t next_delivery_id = 0;    // ours
  std::uint32_t next_in_delivery_id = 0; // expected from the peer
  bool in_delivery_seen = false;
  pvec<std::uint32_t> local_handles;  // our handle -> link index
  pvec<std::uint32_t> remote_handles; // the peer's handle -> link index
  delivery_table outgoing;
  delivery_table incoming;
  pvec<held_transfer> held;
  std::optional<time_point> end_deadline{};
  bool window_used = false; // transfers arrived in this receive(): check the window after

  explicit session_state(std::pmr::memory_resource* m)
      : local_handles(m), remote_handles(m), outgoing(m), incoming(m), held(m) {}
};

// Where the byte stream is.
enum class phase : std::uint8_t {
  header,      // waiting for the peer's protocol header
  sasl,        // reading SASL frames
  amqp_header, // SASL done: waiting for the peer's AMQP header
  amqp,        // reading AMQP frames
  done,        // nothing more is read
};

// A disposition being coalesced (§2.7.6 ranges): consecutive delivery-ids settled with the
// same simple outcome.
struct pending_disposition {
  bool active = false;
  std::uint16_t session = 0;
  amqp::role role = amqp::role::receiver;
  std::uint32_t first = 0;
  std::uint32_t last = 0;
  bool settled = false;
  std::uint8_t outcome = 0; // 0 none, 1 accepted, 2 released
};

struct connection_impl {
  explicit connection_impl(const connection_options& o);

  std::pmr::memory_resource* mem;
  connection_options opts;
  // Copies of the option strings (opts' views point here).
  pstring container_id, hostname, sasl_mechanism, sasl_username, sasl_password, sasl_authzid,
      sasl_hostname, sasl_server_mechanisms;
  pvec<std::byte> sasl_initial_response, open_values;

  // I/O.
  byte_buffer in; // bytes received, from in_pos not yet processed
  std::size_t in_pos = 0;
  byte_buffer out; // bytes to write, from out_pos
  std::size_t out_pos = 0;
  byte_buffer out_taken; // the batch of take_output() being written by the caller
  bool output_out = false;
  byte_buffer deferred;                   // AMQP frames written before our AMQP header
  pvec<byte_buffer> retired;              // reassembled messages still viewed by events
  std::pmr::deque<amqp::attach> attaches; // the peer's attaches of this receive() (events)
  pvec<event> events;
  std::size_t event_pos = 0;
  std::uint64_t epoch = 0; // receive() calls
  frame_limits limits{};
  phase ph = phase::header;
  std::error_code fatal{};
  bool finished = false;
  bool closed_reported = false;

  // Time.
  bool started = false;
  time_point now{};
  time_point handshake_deadline{};
  time_point last_input{};
  time_point last_output{};
  std::optional<time_point> close_deadline{};

  // Protocol headers and SASL.
  bool amqp_header_sent = false;
  bool reading_input = false;   // in process_input
  bool amqp_header_due = false; // our AMQP header goes out when process_input ends
  enum class sasl_step : std::uint8_t {
    none,                  // SASL not used or finished
    wait_mechanisms,       // client
    wait_outcome,          // client: init or response sent
    wait_challenge_answer, // client: waiting for the application's sasl_respond
    wait_init,             // server
    wait_decision,         // server: waiting for sasl_challenge / sasl_complete
    wait_response,         // server: challenge sent
  } sasl = sasl_step::none;
  bool sasl_init_sent = false;
  bool sasl_skipped = false; // server, SASL optional: the client sent the AMQP header
  pstring sasl_chosen;

  // Connection endpoint.
  endpoint_state st{};
  bool open_sent = false;
  bool close_sent = false;
  bool open_received = false;
  pvec<std::byte> remote_open_bytes;
  amqp::open remote_open{};
  std::uint32_t remote_max_frame_size = 512;
  std::uint16_t remote_channel_max = 0xFFFF;
  milliseconds remote_idle{0};

  pvec<session_state> sessions;        // index = our channel
  pvec<std::uint32_t> remote_channels; // peer channel -> session index
  pvec<link_state> links;
  pvec<std::uint32_t> free_links;
  pending_disposition disp{};
  // How many end and detach deadlines are set: next_deadline() skips the scans when none.
  std::uint32_t end_timers = 0;
  std::uint32_t detach_timers = 0;
  bool window_used = false;  // some session received transfers in this receive()
  bool input_paused = false; // max_events reached: the rest of `in` waits for next_event()

  // ---- connection.cpp
  result<void> receive(std::span<const std::byte> in, time_point t);
  void make_room(std::size_t incoming);
  result<void> begin_input(std::size_t incoming, time_point t);
  result<void> end_input();
  std::span<std::byte> read_buffer(std::size_t n);
  result<void> read_done(std::size_t n, time_point t);
  void process_input();
  void read_frames();
  bool process_header();
  void handle_frame(const frame_view& f);
  void fail(std::error_code ec, std::string_view description = {});
  void fail_local(std::error_code ec); // ends without a close frame
  void push(event e);
  void write_header(protocol_id id);
  // The size of the frame carrying `p` and `payload_size` payload bytes, if it can be sent
  // now. Errors: errc::invalid_argument (a field of `p` has no encoding),
  // errc::frame_too_large (above 512 bytes before the peer's open, §2.4.1, or its
  // max-frame-size, §2.7.1).
  [[nodiscard]] result<std::size_t> frame_size(const performative& p,
                                               std::size_t payload_size) const noexcept;
  // Writes a frame; on error (those of frame_size) nothing is written.
  result<void> write_frame(std::uint16_t channel, const performative& p,
                           std::span<const std::byte> payload = {});
  // Writes a frame the engine built from values that always encode within 512 bytes (or
  // that its command checked with frame_size first).
  void write_own_frame(std::uint16_t channel, const performative& p);
  result<void> write_sasl(const sasl_frame& f);
  void on_open(const amqp::open& o, const frame_view& f);
  void end_sessions_above_channel_max();
  void on_close(const amqp::close& c);
  // Our open (§2.7.1), from the options.
  [[nodiscard]] amqp::open open_frame() const;
  // The constructor's options cannot make a valid open: the engine is failed with `ec`,
  // without an event and without writing anything.
  void refuse_options(std::error_code ec);
  void send_open();
  void send_close(const std::optional<amqp::error>& e);
  void report_closed(std::error_code ec, const std::optional<amqp::error>& e, bool remote);
  [[nodiscard]] std::optional<time_point> deadline() const noexcept;
  void on_deadline(time_point t);
  [[nodiscard]] bool can_write_amqp() const noexcept {
    return amqp_header_sent && !close_sent && fatal_ok();
  }
  [[nodiscard]] bool fatal_ok() const noexcept { return !fatal; }
  // Starts the close timeout of an end or a detach (timeouts.close from now).
  void arm(std::optional<time_point>& deadline, std::uint32_t& count) {
    if (!deadline) {
      ++count;
    }
    deadline = now + opts.timeouts.close;
  }
  static void disarm(std::optional<time_point>& deadline, std::uint32_t& count) noexcept {
    if (deadline) {
      --count;
      deadline.reset();
    }
  }

  // ---- sasl.cpp
  void on_sasl_server_start();
  void on_sasl(const sasl_frame& f);
  void sasl_client_send_init();
  void sasl_finish_client(const sasl_outcome& o);
  result<void> sasl_challenge(std::span<const std::byte> c);
  result<void> sasl_complete(sasl_code code, std::span<const std::byte> data);
  result<void> sasl_respond(std::span<const std::byte> r);

  // ---- session.cpp
  session_state* session_at(session_id s) noexcept;
  session_state* session_by_remote(std::uint16_t channel) noexcept;
  result<session_id> begin(const session_options& o);
  result<void> begin(session_id s, const session_options& o);
  result<void> end(session_id s, const std::optional<amqp::error>& e);
  void send_begin(std::uint16_t index);
  void send_end(std::uint16_t index, const std::optional<amqp::error>& e);
  void session_error(std::uint16_t index, std::error_code ec, std::string_view description);
  void on_begin(std::uint16_t channel, const amqp::begin& b);
  void on_end(std::uint16_t channel, const amqp::end& e);
  void free_session_if_done(std::uint16_t index);
  void send_session_flow(std::uint16_t index, const link_state* l, bool echo = false);
  void replenish_incoming_window(std::uint16_t index);
  void replenish_windows();
  void pump_held(std::uint16_t index);

  // ---- link.cpp
  link_state* link_at(link_id l) noexcept;
  result<link_id> attach(session_id s, const link_options& o);
  result<void> attach(link_id l, const link_options& o);
  result<void> detach(link_id l, bool closed, const std::optional<amqp::error>& e);
  result<void> flow(link_id l, std::uint32_t credit, bool drain);
  result<void> drained(link_id l);
  result<void> set_available(link_id l, std::uint32_t n, bool send_now);
  result<delivery_id> send(link_id l, const transfer_options& t);
  result<void> abort(link_id l);
  result<void> settle(delivery_id d, const std::optional<delivery_state>& s);
  result<void> update(delivery_id d, const delivery_state& s);
  void flush_disposition();
  void send_detach(std::uint32_t index, const std::optional<amqp::error>& e);
  void link_error(std::uint32_t index, std::error_code ec, std::string_view description);
  void on_attach(std::uint16_t channel, const amqp::attach& a);
  void on_detach(std::uint16_t channel, const amqp::detach& d);
  void on_flow(std::uint16_t channel, const amqp::flow& f);
  void on_transfer(std::uint16_t channel, const amqp::transfer& t,
                   std::span<const std::byte> payload);
  void on_disposition(std::uint16_t channel, const amqp::disposition& d);
  void free_link(std::uint32_t index);
  session_state* session_for(std::uint16_t channel, std::string_view what);
  [[nodiscard]] std::uint32_t free_handle(const session_state& s) const noexcept;
  result<void> answer_refused_attach(std::uint32_t index);
  void free_link_if_done(std::uint32_t index);
  bool send_frames(std::uint16_t sindex, held_transfer& h, std::span<const std::byte> payload);
  void send_link_flow(std::uint32_t index, bool echo = false);
  [[nodiscard]] link_state* link_by_remote(session_state& s, std::uint32_t handle) noexcept;
};

} // namespace amqp::detail
