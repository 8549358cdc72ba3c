// Internal state of the protocol engine (amqp::connection), allocated from the connection's
// memory resource. connection_impl holds the byte stream (input, output, events), the
// protocol headers and SASL, the timers, and one state struct per endpoint, each in its own
// header: the connection endpoint (connection_endpoint.hpp, one), the sessions
// (session_state.hpp) and links (link_state.hpp) in id-indexed tables whose slots are reset
// by assigning a fresh object, and the deliveries (delivery.hpp: unsettled tables, held
// transfers, reassembly, the disposition being coalesced) inside the endpoint that owns
// them. The handlers are split the same way: connection.cpp (I/O, headers, open/close,
// timers, the public API), sasl.cpp, session.cpp (begin/end, windows), link.cpp
// (attach/detach, flow), delivery.cpp (transfers, dispositions, settlement).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory_resource>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "amqp/connection.hpp"
#include "engine/byte_buffer.hpp"
#include "engine/common.hpp"
#include "engine/connection_endpoint.hpp"
#include "engine/delivery.hpp"
#include "engine/link_state.hpp"
#include "engine/session_state.hpp"
#include "frame/frame.hpp"
#include "frame/protocol_header.hpp"

namespace amqp::detail {

// Where the byte stream is.
enum class phase : std::uint8_t {
  header,      // waiting for the peer's protocol header
  sasl,        // reading SASL frames
  amqp_header, // SASL done: waiting for the peer's AMQP header
  amqp,        // reading AMQP frames
  done,        // nothing more is read
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
  byte_buffer deferred;      // AMQP frames written before our AMQP header
  pvec<byte_buffer> retired; // reassembled messages still viewed by events
  // The peer's attaches of this receive(), viewed by link_attached events (a list: stable
  // addresses, and no memory while empty).
  std::pmr::list<amqp::attach> attaches;
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

  // Endpoints.
  connection_endpoint endpoint;
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

  // ---- link.cpp
  link_state* link_at(link_id l) noexcept;
  result<link_id> attach(session_id s, const link_options& o);
  result<void> attach(link_id l, const link_options& o);
  result<void> detach(link_id l, bool closed, const std::optional<amqp::error>& e);
  result<void> flow(link_id l, std::uint32_t credit, bool drain);
  result<void> drained(link_id l);
  result<void> set_available(link_id l, std::uint32_t n, bool send_now);
  void send_detach(std::uint32_t index, const std::optional<amqp::error>& e);
  void link_error(std::uint32_t index, std::error_code ec, std::string_view description);
  void on_attach(std::uint16_t channel, const amqp::attach& a);
  void on_detach(std::uint16_t channel, const amqp::detach& d);
  void on_flow(std::uint16_t channel, const amqp::flow& f);
  void free_link(std::uint32_t index);
  session_state* session_for(std::uint16_t channel, std::string_view what);
  [[nodiscard]] std::uint32_t free_handle(const session_state& s) const noexcept;
  result<void> answer_refused_attach(std::uint32_t index);
  void free_link_if_done(std::uint32_t index);
  void send_link_flow(std::uint32_t index, bool echo = false);
  [[nodiscard]] link_state* link_by_remote(session_state& s, std::uint32_t handle) noexcept;

  // ---- delivery.cpp
  result<delivery_id> send(link_id l, const transfer_options& t);
  result<void> abort(link_id l);
  // Sends frames of `h` while the session's remote incoming window allows; true once its
  // last frame is out.
  bool send_frames(std::uint16_t sindex, held_transfer& h, std::span<const std::byte> payload);
  // Sends the held transfers of session `index` the window now allows, in order.
  void pump_held(std::uint16_t index);
  void on_transfer(std::uint16_t channel, const amqp::transfer& t,
                   std::span<const std::byte> payload);
  result<void> settle(delivery_id d, const std::optional<delivery_state>& s);
  result<void> update(delivery_id d, const delivery_state& s);
  void on_disposition(std::uint16_t channel, const amqp::disposition& d);
  void flush_disposition();
};

} // namespace amqp::detail
