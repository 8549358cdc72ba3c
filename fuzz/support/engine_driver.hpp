// The driver shared by the engine fuzz targets (connection_client, connection_server, sasl)
// and by the seed recorder (fuzz/seeds/record_engine_seeds.cpp): one amqp::connection fed a
// valid protocol header and then untrusted peer bytes, driven like an application drives it
// (it answers open, begin and attach, grants credit, sends and settles messages, detaches,
// ends and closes), with every byte it writes decoded and checked.
//
// Input layout (all integers big-endian):
//
//   params (18 bytes, `params` below) | peer bytes | decisions (the last tail_len bytes)
//
// The peer bytes are what the peer sends after its protocol header (which the driver
// supplies). The decisions are read one byte at a time, in order, whenever the driver has a
// choice to make: the application's next action and its arguments, how to react to each
// event, the size of the next receive() chunk and whether it goes through receive() or
// read_buffer()/read_done(), the advance of the virtual clock, how much of the output is
// written. Once they run out every decision reads 0, which is always the
// ordinary choice (answer, accept, grant credit; the next chunk is all the remaining peer
// bytes), so a seed may carry no decisions at all.
//
// Chunk sizes are encoded in the decisions: 0 = all the remaining peer bytes, 1-254 = that
// many bytes, 255 = the next two decision bytes (u16) are the size (0 allowed: a receive()
// of nothing). The seed recorder writes exact sizes, so that the exchange it recorded
// between two real engines replays byte for byte.
//
// Checks (a failure traps):
// - receive() succeeds, or fails with the connection's error(), which then never changes
//   and every later receive() returns; out_of_memory only after the failing resource refused
//   an allocation; finished() never goes back to false;
// - a fatal error (other than out_of_memory; protocol_mismatch, which comes before any AMQP
//   frame can be sent; connection_lost, when there is no one to send to) found once the
//   AMQP header is written and SASL (if any) is done leaves a close frame as the last frame
//   written; no byte is written after a close frame or once finished() is true and the
//   output was written;
// - every byte written parses: protocol headers (SASL first, then AMQP), and frames that
//   decode_frame accepts, of the type the last header announced, SASL frames at most 512
//   bytes, AMQP frames within the peer's max-frame-size (512 before its open), channels
//   within its channel-max, attach handles within the session's handle-max; the first AMQP
//   frame is open; a session's frames are between its begin and its end; nothing follows
//   close;
// - no event after connection_closed; connection_closed is reported once finished() (except
//   after out_of_memory: the event itself may be what could not be allocated);
// - commands return success or one of the errors they document;
// - memory (`tracking_resource`): at any time the bytes held from the connection's memory
//   resource stay below memory_bound() (see there); zero once the engine is destroyed.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory_resource>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "amqp/connection.hpp"
#include "amqp/error.hpp"
#include "frame/frame.hpp"
#include "frame/protocol_header.hpp"
#include "support/check.hpp"
#include "support/data_provider.hpp"

// Build with -DAMQP_FUZZ_ENGINE_TRACE=1 to see what the driver does (stderr).
#if defined(AMQP_FUZZ_ENGINE_TRACE) && AMQP_FUZZ_ENGINE_TRACE
#include <cstdio>
#define AMQP_FUZZ_TRACE(...) std::fprintf(stderr, __VA_ARGS__)
#else
#define AMQP_FUZZ_TRACE(...) ((void)0)
#endif

namespace amqp::fuzz::engine {

// Which fuzz target: the role and the SASL configuration differ.
enum class kind : std::uint8_t { client, server, sasl };

// ---- parameters ----------------------------------------------------------------------------

// The parameter bytes at the front of an input, as read.
struct params {
  // bit 0: SASL on (client and server targets) / client role (sasl target, else server)
  // bit 1: client: pipelined SASL; server: accept_anonymous
  // bit 2: idle-time-out of 1000 ms (else none)
  // bit 3: on_transport_closed() after the last round
  // bit 4: hostname, capabilities and properties in the open
  // bits 5-7: the client's SASL mechanism choice (`client_mechanism`)
  std::uint8_t flags = 0;
  std::uint16_t max_frame = 65024;    // max_frame_size = 512 + max_frame % 65025
  std::uint16_t channel_max = 255;    // as is
  std::uint16_t handle_max = 1023;    // 0xffff: 2^32 - 1 (the spec's default)
  std::uint16_t max_message = 0;      // 0: no limit; else max_message * 64 bytes
  std::uint8_t unsettled_link = 0;    // 0: 16384; else as is
  std::uint8_t unsettled_session = 0; // 0: 65536; else * 4
  std::uint8_t depth = 32;            // decode max_depth = depth % 65
  std::uint8_t window = 0;            // incoming window in frames; 0: 2048
  std::uint8_t sasl_frame = 0;        // sasl_max_frame_size = 512 + sasl_frame * 16
  std::uint16_t fail_at = 0;          // the n-th allocation fails; 0: none
  std::uint16_t tail_len = 0;         // the number of decision bytes at the end

  static constexpr std::size_t size = 18;

  static params read(data_provider& p) noexcept {
    params r;
    r.flags = p.u8();
    r.max_frame = p.u16();
    r.channel_max = p.u16();
    r.handle_max = p.u16();
    r.max_message = p.u16();
    r.unsettled_link = p.u8();
    r.unsettled_session = p.u8();
    r.depth = p.u8();
    r.window = p.u8();
    r.sasl_frame = p.u8();
    r.fail_at = p.u16();
    r.tail_len = p.u16();
    return r;
  }

  void write(std::vector<std::byte>& out) const {
    auto u8 = [&](std::uint8_t v) { out.push_back(std::byte{v}); };
    auto u16 = [&](std::uint16_t v) {
      u8(static_cast<std::uint8_t>(v >> 8U));
      u8(static_cast<std::uint8_t>(v & 0xFFU));
    };
    u8(flags);
    u16(max_frame);
    u16(channel_max);
    u16(handle_max);
    u16(max_message);
    u8(unsettled_link);
    u8(unsettled_session);
    u8(depth);
    u8(window);
    u8(sasl_frame);
    u16(fail_at);
    u16(tail_len);
  }
};

// The client's SASL mechanism (params bits 5-7).
enum class client_mechanism : std::uint8_t {
  implied_anonymous = 0, // no mechanism, no username: ANONYMOUS
  plain = 1,             // username and password: PLAIN
  external = 2,          // external: EXTERNAL
  custom = 3,            // "X-TOKEN" with an initial response: challenges reach the driver
  plain_authzid = 4,     // mechanism "PLAIN" with an authzid
  plain_or_anonymous = 5,
  anonymous = 6,    // mechanism "ANONYMOUS"
  custom_empty = 7, // "X-TOKEN" without an initial response
};

struct config {
  kind t = kind::client;
  connection_role role = connection_role::client;
  bool sasl = false;
  bool pipeline = false;
  bool accept_anonymous = false;
  bool idle = false;
  bool transport_close = false;
  bool rich = false;
  client_mechanism mechanism = client_mechanism::implied_anonymous;
  engine_limits limits{};
  std::uint32_t incoming_window = 2048;
  std::uint32_t fail_at = 0;
};

inline config to_config(kind t, const params& p) noexcept {
  config c;
  c.t = t;
  const bool bit0 = (p.flags & 1U) != 0;
  const bool bit1 = (p.flags & 2U) != 0;
  if (t == kind::sasl) {
    c.sasl = true;
    c.role = bit0 ? connection_role::client : connection_role::server;
  } else {
    c.sasl = bit0;
    c.role = t == kind::client ? connection_role::client : connection_role::server;
  }
  c.pipeline = c.role == connection_role::client && bit1;
  c.accept_anonymous = c.role == connection_role::server && bit1;
  c.idle = (p.flags & 4U) != 0;
  c.transport_close = (p.flags & 8U) != 0;
  c.rich = (p.flags & 16U) != 0;
  c.mechanism = static_cast<client_mechanism>(p.flags >> 5U);
  c.limits.max_frame_size = 512U + static_cast<std::uint32_t>(p.max_frame % 65025U);
  c.limits.sasl_max_frame_size = 512U + 16U * p.sasl_frame;
  c.limits.channel_max = p.channel_max;
  c.limits.handle_max = p.handle_max == 0xFFFFU ? 0xFFFF'FFFFU : p.handle_max;
  c.limits.max_message_size = 64U * static_cast<std::uint64_t>(p.max_message);
  c.limits.max_unsettled_per_link = p.unsettled_link == 0 ? 16384U : p.unsettled_link;
  c.limits.max_unsettled_per_session =
      p.unsettled_session == 0 ? 65536U : 4U * static_cast<std::uint32_t>(p.unsettled_session);
  c.limits.decode.max_depth = p.depth % 65U;
  c.incoming_window = p.window == 0 ? 2048U : p.window;
  c.fail_at = p.fail_at;
  return c;
}

// ---- decisions and peer bytes --------------------------------------------------------------

// What a decision is about (the recorder answers by kind; the fuzz input ignores it).
enum class choice : std::uint8_t {
  action,       // the application's next action (`action`), 0: none
  arg,          // an argument of an action (an index, a size, a flag)
  time,         // the clock: 0 none, 1 to the next deadline, 2-127 (n-1)*10 ms, 128-255 (n-127) s
  consume,      // output written at the end of a round: 0 all, else n * 64 bytes
  input,        // how a chunk is handed over (% 3): 0 receive(), 1 read_buffer() of its size
                // then read_done(), 2 read_buffer() of more than its size then read_done()
  on_open,      // connection_opened: 0 answer with open, 1 close with an error, 2 nothing
  on_begin,     // session_begun (peer's): 0 begin, 1 end with an error, 2 end, 3 nothing
  on_attach,    // link_attached (peer's): 0 answer (+ credit), 1 detach with an error, 2 detach
                // without closing, 3 nothing, 4 answer with other settle modes, no credit
  on_credit,    // link_attached (answer to ours), receiver: 0 credit 10, else credit n - 1
  on_flow,      // link_flow on a sender: bits 0-1 messages to send (0: 1, else n - 1),
                // bits 2-3 size class, bit 4 presettled, bit 5 explicit tag, bit 6 no drained()
  on_receive,   // delivery_received: 0 accept, 1 reject, 2 release, 3 modify, 4 received
                // (update only), 5 keep unsettled, 6 settle without a state, 7 no new credit
  on_update,    // delivery_updated, not settled by the peer: 0 settle, 1 keep
  on_sasl,      // sasl_init_received / sasl_response_received: `sasl_answer`
  on_challenge, // sasl_challenge_received: response size
};

// The application's actions (choice::action % action_count).
enum class action : std::uint8_t {
  none = 0,
  open,
  begin,
  attach_sender,
  attach_receiver,
  send,
  flow,
  settle,
  update,
  detach,
  end,
  close,
  drained,
  available,
  abort,
  sasl,
  count
};

// Server answers to a SASL step (choice::on_sasl % 8).
enum class sasl_answer : std::uint8_t {
  ok = 0,
  auth = 1,
  challenge = 2,
  later = 3, // answered by a later action::sasl (wants_read() is false meanwhile)
  sys = 4,
  ok_with_data = 5,
  sys_perm = 6,
  challenge_empty = 7,
};

// The peer bytes and the decisions.
class input {
public:
  virtual ~input() = default;
  // The next decision about `c`.
  [[nodiscard]] virtual std::uint8_t decide(choice c) = 0;
  // The peer bytes for the next receive(), at virtual time `now`.
  [[nodiscard]] virtual std::span<const std::byte> chunk(time_point now) = 0;
  // Whether another round should run.
  [[nodiscard]] virtual bool more() = 0;
  // Whether every decision from now on reads 0.
  [[nodiscard]] virtual bool out_of_decisions() const = 0;
  // The engine wrote `bytes` (to the peer) at `now`.
  virtual void written(std::span<const std::byte> bytes, time_point now) = 0;
};

// The fuzz input: params, then peer bytes, then tail_len decision bytes.
class fuzz_input final : public input {
public:
  fuzz_input(std::span<const std::byte> peer, std::span<const std::byte> decisions) noexcept
      : peer_(peer), dec_(decisions) {}

  std::uint8_t decide(choice) override {
    if (dpos_ == dec_.size()) {
      return 0;
    }
    return std::to_integer<std::uint8_t>(dec_[dpos_++]);
  }
  std::span<const std::byte> chunk(time_point) override {
    const std::uint8_t b = decide(choice::action);
    std::size_t n = peer_.size() - ppos_;
    if (b == 255) {
      const auto hi = static_cast<std::size_t>(decide(choice::action));
      n = std::min(n, (hi << 8U) | decide(choice::action));
    } else if (b != 0) {
      n = std::min<std::size_t>(n, b);
    }
    auto r = peer_.subspan(ppos_, n);
    ppos_ += n;
    return r;
  }
  bool more() override { return ppos_ < peer_.size() || dpos_ < dec_.size(); }
  bool out_of_decisions() const override { return dpos_ == dec_.size(); }
  void written(std::span<const std::byte>, time_point) override {}

private:
  std::span<const std::byte> peer_;
  std::span<const std::byte> dec_;
  std::size_t ppos_ = 0;
  std::size_t dpos_ = 0;
};

// ---- memory ----------------------------------------------------------------------------------

// Counts the bytes the engine holds, refuses the n-th allocation (bad_alloc), and traps on
// an allocation that would take the bytes held above `bound`.
class tracking_resource final : public std::pmr::memory_resource {
public:
  std::size_t outstanding = 0;
  std::size_t peak = 0;
  std::size_t allocations = 0;
  std::size_t bound = std::numeric_limits<std::size_t>::max();
  std::size_t fail_at = 0;
  bool failed = false;

private:
  void* do_allocate(std::size_t bytes, std::size_t align) override {
    ++allocations;
    if (allocations == fail_at) {
      AMQP_FUZZ_TRACE("allocation %zu (%zu bytes) fails\n", allocations, bytes);
      failed = true;
#if defined(__cpp_exceptions)
      throw std::bad_alloc();
#endif
    }
    require(bytes <= bound && outstanding <= bound - bytes);
    void* p = std::pmr::new_delete_resource()->allocate(bytes, align);
    outstanding += bytes;
    peak = std::max(peak, outstanding);
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
    require(bytes <= outstanding);
    outstanding -= bytes;
    std::pmr::new_delete_resource()->deallocate(p, bytes, align);
  }
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
    return this == &o;
  }
};

// The most memory the engine may hold, from its limits and what it was given:
// - 256 KiB fixed: the connection, its option strings, the tables of a few sessions and
//   links, small vectors' growth;
// - 4 max-frame-size: a frame being reassembled in the input buffer (with the vector's
//   doubling), the frames of one round of output;
// - 4 bytes per possible channel, twice (the peer-channel table is indexed by the peer's
//   channel number, up to channel-max);
// - for each session begun, 2 tables indexed by handle (ours and the peer's), 4 bytes per
//   handle up to handle-max (capped at 65536: no table needs more entries) with doubling;
// - 128 bytes per peer byte received: every frame the peer sends is at least 8 bytes, the
//   smallest that yields an event about 15, and an event takes 736 bytes (attach, with its
//   termini, is the largest alternative) with the vector's doubling; reassembled messages,
//   the peer's open, session and link records are much smaller per byte;
// - twice the payload the application gave to send() (held transfers and their frames).
// An engine that needs more than this for some input holds memory out of proportion to what
// the peer sent: a peer-controlled amplification.
inline std::size_t memory_bound(const config& c, std::size_t peer_bytes, std::size_t sessions,
                                std::size_t sent_payload) noexcept {
  const std::size_t handles = std::min<std::size_t>(c.limits.handle_max, 0xFFFF) + 1;
  return 256U * 1024U + 4U * std::size_t{c.limits.max_frame_size} +
         8U * (std::size_t{c.limits.channel_max} + 1U) + sessions * 2U * 2U * 4U * handles +
         128U * peer_bytes + 2U * sent_payload;
}

// ---- output checker ----------------------------------------------------------------------------

// Parses and checks the byte stream the engine writes.
class output_checker {
public:
  // What the driver knows about the peer when the bytes were written.
  struct peer_view {
    const amqp::open* remote_open = nullptr;
    const std::vector<std::uint32_t>* handle_max = nullptr; // by our channel; ~0u unknown
  };

  void feed(std::span<const std::byte> bytes, const peer_view& pv) {
    if (!bytes.empty()) {
      require(!closed_); // nothing after close
    }
    buf_.insert(buf_.end(), bytes.begin(), bytes.end());
    std::size_t pos = 0;
    for (;;) {
      const std::size_t avail = buf_.size() - pos;
      if (avail == 0) {
        break;
      }
      if (buf_[pos] == std::byte{'A'}) {
        if (avail < detail::protocol_header_size) {
          break;
        }
        const auto info = detail::classify_protocol_header(
            std::span<const std::byte, detail::protocol_header_size>(buf_.data() + pos, 8));
        if (info.kind == detail::protocol_header_kind::sasl) {
          require(mode_ == mode::none && !sasl_header_);
          sasl_header_ = true;
          mode_ = mode::sasl;
        } else {
          require(info.kind == detail::protocol_header_kind::amqp);
          require(!amqp_header_);
          amqp_header_ = true;
          mode_ = mode::amqp;
        }
        pos += detail::protocol_header_size;
        continue;
      }
      require(mode_ != mode::none); // a frame before any protocol header
      if (avail < detail::frame_header_size) {
        break;
      }
      const auto h = detail::parse_frame_header(
          std::span<const std::byte, detail::frame_header_size>(buf_.data() + pos, 8));
      require(h.size >= detail::frame_header_size);
      if (h.size > avail) {
        break;
      }
      check_frame(std::span<const std::byte>(buf_.data() + pos, h.size), pv);
      pos += h.size;
    }
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos));
  }

  [[nodiscard]] bool amqp_header() const noexcept { return amqp_header_; }
  [[nodiscard]] bool closed() const noexcept { return closed_; }
  [[nodiscard]] bool at_boundary() const noexcept { return buf_.empty(); }
  [[nodiscard]] std::size_t frames() const noexcept { return frames_; }

private:
  enum class mode : std::uint8_t { none, sasl, amqp };

  void check_frame(std::span<const std::byte> bytes, const peer_view& pv) {
    decode_limits lim;
    lim.max_depth = 200;
    lim.max_zero_width_elements = 1U << 24U;
    auto f = detail::decode_frame(bytes, lim);
    require(f.has_value());
    ++frames_;
    if (mode_ == mode::sasl) {
      require(f->type == detail::frame_type::sasl);
      require(bytes.size() <= detail::min_max_frame_size); // §5.3.1
      return;
    }
    require(f->type == detail::frame_type::amqp);
    std::uint32_t max = detail::min_max_frame_size;
    if (pv.remote_open != nullptr) {
      max = std::max(max, pv.remote_open->max_frame_size);
    }
    require(bytes.size() <= max);
    if (std::holds_alternative<detail::heartbeat>(f->body)) {
      require(f->channel == 0 || open_);
      return;
    }
    const auto& p = std::get<performative>(f->body);
    AMQP_FUZZ_TRACE("  out: performative %zu on channel %u, %zu bytes\n", p.index(),
                    static_cast<unsigned>(f->channel), bytes.size());
    if (!open_) {
      require(std::holds_alternative<amqp::open>(p)); // §2.4.1
      open_ = true;
    } else {
      require(!std::holds_alternative<amqp::open>(p));
    }
    if (pv.remote_open != nullptr && pv.remote_open->max_frame_size >= 512) {
      require(f->channel <= pv.remote_open->channel_max); // §2.7.1
    }
    if (const auto* a = std::get_if<amqp::attach>(&p); a != nullptr && pv.handle_max != nullptr) {
      if (f->channel < pv.handle_max->size()) {
        require(a->handle <= (*pv.handle_max)[f->channel]); // §2.7.2
      }
    }
    require(f->payload.empty() || std::holds_alternative<amqp::transfer>(p));
    // §2.5.1: a session's frames go on a channel between our begin and our end.
    const std::size_t ch = f->channel;
    if (std::holds_alternative<amqp::begin>(p)) {
      if (ch >= begun_.size()) {
        begun_.resize(ch + 1, false);
      }
      require(!begun_[ch]);
      begun_[ch] = true;
    } else if (!std::holds_alternative<amqp::open>(p) && !std::holds_alternative<amqp::close>(p)) {
      require(ch < begun_.size() && begun_[ch]);
      if (std::holds_alternative<amqp::end>(p)) {
        begun_[ch] = false;
      }
    }
    if (std::holds_alternative<amqp::close>(p)) {
      closed_ = true;
    }
  }

  std::vector<std::byte> buf_;
  mode mode_ = mode::none;
  bool sasl_header_ = false;
  bool amqp_header_ = false;
  bool open_ = false;
  bool closed_ = false;
  std::vector<bool> begun_; // by channel: our begin sent, our end not yet
  std::size_t frames_ = 0;
};

// ---- the driver --------------------------------------------------------------------------------

// What a run did, for the recorder (which checks that a seed replays what it recorded).
struct summary {
  std::uint64_t output_hash = 1469598103934665603ULL; // FNV-1a of every byte written
  std::size_t output_bytes = 0;
  std::size_t events = 0;
  std::size_t rounds = 0;
  std::size_t deliveries_received = 0;
  std::size_t messages_sent = 0;
  std::size_t peak_memory = 0;
  std::size_t allocations = 0;
  std::error_code error{};
  bool finished = false;
  bool sasl_ok = false;
  bool opened = false;
};

class driver {
public:
  driver(const config& c, input& in) : cfg_(c), in_(in) { mem_.fail_at = c.fail_at; }

  summary run() {
    connection_options o;
    o.role = cfg_.role;
    o.container_id = cfg_.role == connection_role::client ? "fuzz-client" : "fuzz-server";
    o.limits = cfg_.limits;
    o.incoming_window = cfg_.incoming_window;
    o.timeouts.idle_time_out = milliseconds{cfg_.idle ? 1000 : 0};
    o.memory = &mem_;
    std::array<value, 2> caps{value(symbol_view{"ANONYMOUS-RELAY"}), value(symbol_view{"X"})};
    std::array<value, 4> props{value(symbol_view{"product"}), value("fuzz"),
                               value(symbol_view{"n"}), value(std::uint32_t{7})};
    if (cfg_.rich) {
      o.hostname = "vhost.example";
      o.offered_capabilities = value::array(type::symbol, caps);
      o.desired_capabilities = value(symbol_view{"DELAYED_DELIVERY"});
      o.properties = value::map(props);
    }
    static constexpr std::array<std::byte, 5> token{std::byte{1}, std::byte{2}, std::byte{3},
                                                    std::byte{0}, std::byte{0xff}};
    if (cfg_.sasl) {
      o.sasl.enabled = true;
      o.sasl.pipeline = cfg_.pipeline;
      o.sasl.server_mechanisms =
          cfg_.t == kind::sasl ? "PLAIN ANONYMOUS EXTERNAL" : "ANONYMOUS PLAIN";
      o.sasl.accept_anonymous = cfg_.accept_anonymous;
      switch (cfg_.mechanism) {
      case client_mechanism::implied_anonymous:
        break;
      case client_mechanism::plain:
        o.sasl.username = "user";
        o.sasl.password = "secret";
        break;
      case client_mechanism::external:
        o.sasl.external = true;
        break;
      case client_mechanism::custom:
        o.sasl.mechanism = "X-TOKEN";
        o.sasl.initial_response = std::span<const std::byte>(token);
        break;
      case client_mechanism::plain_authzid:
        o.sasl.mechanism = "PLAIN";
        o.sasl.username = "user";
        o.sasl.password = "pw";
        o.sasl.authzid = "admin";
        o.sasl.hostname = "sasl.example";
        break;
      case client_mechanism::plain_or_anonymous:
        o.sasl.username = "u";
        o.sasl.external = true;
        break;
      case client_mechanism::anonymous:
        o.sasl.mechanism = "ANONYMOUS";
        break;
      case client_mechanism::custom_empty:
        o.sasl.mechanism = "X-TOKEN";
        break;
      }
    }
    update_bound();
    auto made = connection::create(o);
    if (!made) {
      require(made.error() == errc::out_of_memory && mem_.failed && mem_.outstanding == 0);
      return sum_;
    }
    conn_.emplace(std::move(*made));
    loop();
    finish();
    sum_.peak_memory = mem_.peak;
    sum_.allocations = mem_.allocations;
    conn_.reset();
    require(mem_.outstanding == 0);
    return sum_;
  }

private:
  struct link_rec {
    link_id id{};
    amqp::role role = amqp::role::sender;
    bool ours = false;
  };

  connection& c() { return *conn_; }

  void update_bound() { mem_.bound = memory_bound(cfg_, fed_, sessions_begun_, sent_payload_); }

  // ---- the rounds

  void loop() {
    // A safety net only: every round consumes a decision or all the peer bytes.
    for (std::size_t round = 0; round < 200000 && in_.more(); ++round) {
      ++sum_.rounds;
      if (!c().wants_read() && !c().finished() && in_.out_of_decisions()) {
        answer_sasl(sasl_answer::ok); // an answer left for later that no decision will give
        drain();
      }
      act();
      after_call();
      drain(); // events a command queued (sasl_complete reads on: frames, sasl_done)
      if (c().wants_read()) {
        receive();
      } else if (c().finished()) {
        break;
      }
      advance_time();
      flush(in_.decide(choice::consume));
      if (c().finished() && in_.out_of_decisions()) {
        break;
      }
    }
  }

  void finish() {
    if (cfg_.transport_close) {
      c().on_transport_closed();
      after_call();
      require(c().finished());
      drain();
    }
    flush(0);
    require(c().pending_output().empty());
    if (c().finished() && c().error() != errc::out_of_memory) {
      require(closed_seen_);
    }
    if (expect_close_ && c().error() != errc::out_of_memory && out_.amqp_header()) {
      require(out_.closed() && out_.at_boundary());
    }
    // Commands on a finished or failed connection are refused, and write nothing.
    if (c().finished()) {
      (void)check(c().open());
      (void)check(c().close());
      (void)check(c().begin());
      require(c().pending_output().empty());
    }
    sum_.error = c().error();
    sum_.finished = c().finished();
  }

  void receive() {
    auto bytes = in_.chunk(now_);
    std::span<const std::byte> feed = bytes;
    std::vector<std::byte> first;
    if (!header_sent_) {
      header_sent_ = true;
      const auto h = detail::protocol_header_bytes(cfg_.sasl ? detail::protocol_id::sasl
                                                             : detail::protocol_id::amqp);
      first.assign(h.begin(), h.end());
      first.insert(first.end(), bytes.begin(), bytes.end());
      feed = first;
    }
    fed_ += feed.size();
    update_bound();
    const std::error_code before = c().error();
    auto r = hand_over(feed, in_.decide(choice::input) % 3U);
    AMQP_FUZZ_TRACE("receive %zu bytes at %lld ms: %s\n", feed.size(),
                    static_cast<long long>(now_.time_since_epoch().count() / 1000000),
                    r ? "ok" : r.error().message().c_str());
    if (before) {
      require(!r && r.error() == before);
    }
    if (!r) {
      require(r.error() != errc::would_block); // every event was pulled
      require(r.error() == c().error());
    } else {
      require(!c().error());
    }
    after_call();
    drain();
  }

  // Gives `bytes` to the engine: receive(), or the zero-copy read_buffer() / read_done().
  result<void> hand_over(std::span<const std::byte> bytes, unsigned how) {
    if (how == 0 || bytes.empty()) {
      return c().receive(bytes, now_);
    }
    const std::size_t ask = how == 1 ? bytes.size() : bytes.size() + 100;
    auto buf = c().read_buffer(ask);
    if (buf.empty()) {
      // Only while receive() would not read (events were all pulled: a fatal error, or a
      // finished connection); receive() says which.
      require(c().error() || c().finished());
      return c().receive(bytes, now_);
    }
    require(buf.size() == ask);
    std::copy(bytes.begin(), bytes.end(), buf.begin());
    return c().read_done(bytes.size(), now_);
  }

  // After every call into the engine: error and finished are sticky, the output is checked.
  void after_call() {
    const std::error_code e = c().error();
    if (error_) {
      require(e == error_);
    } else if (e) {
      error_ = e;
      require(c().finished());
      if (e == errc::out_of_memory) {
        require(mem_.failed);
      } else if (e != errc::protocol_mismatch && e != errc::connection_lost &&
                 (!cfg_.sasl || sasl_ok_)) {
        expect_close_ = true;
      }
    }
    if (finished_) {
      require(c().finished());
    }
    finished_ = c().finished();
    if (finished_) {
      require(!c().next_deadline());
    }
    flush_all_now();
  }

  void flush_all_now() { flush(0); }

  // Writes the output: all of it (n == 0) or n * 64 bytes.
  // Whole flushes take the output as a batch (take_output) every other time, so both ways
  // of writing are exercised.
  void flush(std::uint8_t n) {
    const bool batch = n == 0 && (sum_.output_bytes / 64U) % 2U == 1U;
    auto out = batch ? c().take_output() : c().pending_output();
    if (finished_ && written_when_finished_) {
      require(out.empty());
    }
    std::size_t k = out.size();
    if (n != 0) {
      k = std::min<std::size_t>(k, std::size_t{n} * 64U);
    }
    output_checker::peer_view pv{c().remote_open(), &handle_max_};
    out_.feed(out.first(k), pv);
    for (std::size_t i = 0; i < k; ++i) {
      sum_.output_hash =
          (sum_.output_hash ^ std::to_integer<std::uint8_t>(out[i])) * 1099511628211ULL;
    }
    sum_.output_bytes += k;
    in_.written(out.first(k), now_);
    if (batch) {
      require(c().pending_output().empty());
      c().output_written();
    } else {
      c().consume_output(k);
    }
    if (finished_ && c().pending_output().empty()) {
      written_when_finished_ = true;
    }
  }

  void advance_time() {
    const std::uint8_t t = in_.decide(choice::time);
    if (t == 0) {
      return;
    }
    const auto d = c().next_deadline();
    if (t == 1) {
      if (!d) {
        return;
      }
      now_ = std::max(now_, *d);
    } else if (t < 128) {
      now_ += milliseconds{10 * (t - 1)};
    } else {
      now_ += milliseconds{1000 * (t - 127)};
    }
    AMQP_FUZZ_TRACE("time %d: now %lld ms\n", t,
                    static_cast<long long>(now_.time_since_epoch().count() / 1000000));
    if (d && *d <= now_) {
      AMQP_FUZZ_TRACE("on_deadline\n");
      c().on_deadline(now_);
      after_call();
      drain();
    }
  }

  // ---- events

  void drain() {
    while (auto e = c().next_event()) {
      require(!closed_seen_); // nothing after connection_closed
      ++sum_.events;
      AMQP_FUZZ_TRACE("event %s\n", std::string(name(*e)).c_str());
      std::visit([&](const auto& ev) { on(ev); }, *e);
      after_call();
    }
    if (c().finished() && c().error() != errc::out_of_memory) {
      require(closed_seen_);
    }
  }

  void on(const sasl_init_received& e) {
    require(cfg_.role == connection_role::server);
    if (e.mechanism.str == "PLAIN" && !e.username.empty()) {
      // The three parts are views into the response, separated by one NUL each.
      require(e.authzid.size() + e.username.size() + e.password.size() + 2 ==
              e.initial_response.size());
    }
    on_sasl_step();
  }
  void on(const sasl_response_received&) {
    require(cfg_.role == connection_role::server);
    on_sasl_step();
  }
  void on(const sasl_challenge_received& e) {
    require(cfg_.role == connection_role::client);
    const std::uint8_t n = in_.decide(choice::on_challenge);
    std::vector<std::byte> r(e.challenge.begin(), e.challenge.end());
    r.resize(n % 48U, std::byte{'r'});
    (void)check(c().sasl_respond(r));
  }
  void on(const sasl_done& e) {
    require(cfg_.sasl);
    if (e.code == sasl_code::ok) {
      sasl_ok_ = true;
      sum_.sasl_ok = true;
    }
    sasl_pending_ = false;
  }
  void on(const connection_opened& e) {
    require(c().remote_open() != nullptr);
    (void)e;
    sum_.opened = true;
    const std::uint8_t b = in_.decide(choice::on_open);
    if (b == 0) {
      if (c().state().local == endpoint_status::uninit) {
        (void)check(c().open());
      }
    } else if (b == 1) {
      (void)check(c().close(amqp::error{symbol_view{"amqp:not-allowed"}, "fuzz", value{}}));
    }
  }
  void on(const connection_closed&) { closed_seen_ = true; }
  void on(const session_begun& e) {
    ++sessions_begun_;
    update_bound();
    if (e.session.value >= handle_max_.size()) {
      handle_max_.resize(std::size_t{e.session.value} + 1, 0xFFFF'FFFFU);
    }
    handle_max_[e.session.value] = e.handle_max;
    if (!e.remote_initiated) {
      return;
    }
    remember(e.session);
    const std::uint8_t b = in_.decide(choice::on_begin);
    if (b == 0) {
      (void)check(c().begin(e.session, session_options{}));
    } else if (b == 1) {
      (void)check(c().end(e.session, amqp::error{symbol_view{"amqp:not-allowed"}, {}, value{}}));
    } else if (b == 2) {
      (void)check(c().end(e.session));
    }
  }
  void on(const session_ended& e) {
    if (e.session.value < handle_max_.size()) {
      handle_max_[e.session.value] = 0xFFFF'FFFFU;
    }
  }
  void on(const link_attached& e) {
    if (!e.remote_initiated) {
      for (const auto& l : links_) {
        if (l.id == e.link && l.role == amqp::role::receiver) {
          const std::uint8_t b = in_.decide(choice::on_credit);
          (void)check(c().flow(e.link, b == 0 ? 10U : b - 1U));
        }
      }
      return;
    }
    const amqp::role ours =
        e.remote.role == amqp::role::sender ? amqp::role::receiver : amqp::role::sender;
    links_.push_back(link_rec{e.link, ours, false});
    const std::uint8_t b = in_.decide(choice::on_attach);
    if (b == 0 || b == 4) {
      link_options o;
      o.role = ours;
      o.snd_settle_mode = e.remote.snd_settle_mode;
      o.rcv_settle_mode = e.remote.rcv_settle_mode;
      if (b == 4) {
        o.snd_settle_mode = sender_settle_mode::settled;
        o.rcv_settle_mode = receiver_settle_mode::second;
      }
      o.source = e.remote.source;
      if (e.remote.target && std::holds_alternative<target>(*e.remote.target)) {
        o.target = std::get<target>(*e.remote.target);
      }
      (void)check(c().attach(e.link, o));
      if (ours == amqp::role::receiver && b == 0) {
        (void)check(c().flow(e.link, 10));
      }
    } else if (b == 1) {
      (void)check(
          c().detach(e.link, true, amqp::error{symbol_view{"amqp:not-found"}, "no", value{}}));
    } else if (b == 2) {
      (void)check(c().detach(e.link, false));
    }
  }
  void on(const link_detached&) {}
  void on(const link_flow& e) {
    const link_rec* l = find(e.link);
    if (l == nullptr || l->role != amqp::role::sender) {
      return;
    }
    const std::uint8_t b = in_.decide(choice::on_flow);
    const unsigned n = (b & 3U) == 0 ? 1U : (b & 3U) - 1U;
    for (unsigned i = 0; i < n && c().credit(e.link) > 0; ++i) {
      send(e.link, static_cast<std::uint8_t>((b >> 2U) & 3U), (b & 16U) != 0, (b & 32U) != 0);
    }
    if (e.drain && (b & 64U) == 0) {
      (void)check(c().drained(e.link));
    }
  }
  void on(const delivery_received& e) {
    ++sum_.deliveries_received;
    require(e.tag.size() <= 32);
    require(!e.aborted || e.payload.empty());
    if (cfg_.limits.max_message_size != 0) {
      require(e.payload.size() <= cfg_.limits.max_message_size);
    }
    const std::uint8_t b = in_.decide(choice::on_receive);
    if (!e.settled) {
      switch (b % 8U) {
      case 0:
        (void)check(c().settle(e.delivery, accepted{}));
        break;
      case 1:
        (void)check(c().settle(
            e.delivery, rejected{amqp::error{symbol_view{"amqp:decode-error"}, "bad", value{}}}));
        break;
      case 2:
        (void)check(c().settle(e.delivery, released{}));
        break;
      case 3:
        (void)check(c().settle(e.delivery, modified{true, false, value{}}));
        break;
      case 4:
        (void)check(c().update(e.delivery, received{0, e.payload.size()}));
        unsettled_.push_back(e.delivery);
        break;
      case 6:
        (void)check(c().settle(e.delivery));
        break;
      default:
        unsettled_.push_back(e.delivery);
        break;
      }
    }
    if (b % 8U != 7U && c().credit(e.delivery.link) == 0 &&
        c().state(e.delivery.link).has_value() &&
        c().state(e.delivery.link)->local == endpoint_status::active) {
      (void)check(c().flow(e.delivery.link, 10));
    }
  }
  void on(const delivery_updated& e) {
    if (e.settled) {
      return;
    }
    const std::uint8_t b = in_.decide(choice::on_update);
    if (b == 0) {
      (void)check(c().settle(e.delivery, e.state));
    } else {
      unsettled_.push_back(e.delivery);
    }
  }

  void on_sasl_step() {
    sasl_pending_ = true;
    answer_sasl(static_cast<sasl_answer>(in_.decide(choice::on_sasl) % 8U));
  }

  void answer_sasl(sasl_answer a) {
    static constexpr std::array<std::byte, 4> data{std::byte{'d'}, std::byte{'a'}, std::byte{'t'},
                                                   std::byte{'a'}};
    switch (a) {
    case sasl_answer::ok:
      (void)check(c().sasl_complete(sasl_code::ok));
      break;
    case sasl_answer::auth:
      (void)check(c().sasl_complete(sasl_code::auth));
      break;
    case sasl_answer::challenge:
      (void)check(c().sasl_challenge(data));
      break;
    case sasl_answer::later:
      return;
    case sasl_answer::sys:
      (void)check(c().sasl_complete(sasl_code::sys));
      break;
    case sasl_answer::ok_with_data:
      (void)check(c().sasl_complete(sasl_code::ok, data));
      break;
    case sasl_answer::sys_perm:
      (void)check(c().sasl_complete(sasl_code::sys_perm));
      break;
    case sasl_answer::challenge_empty:
      (void)check(c().sasl_challenge({}));
      break;
    }
    sasl_pending_ = false;
  }

  // ---- actions

  void act() {
    const std::uint8_t a = in_.decide(choice::action);
    AMQP_FUZZ_TRACE("action %d\n", a % static_cast<int>(action::count));
    switch (static_cast<action>(a % static_cast<std::uint8_t>(action::count))) {
    case action::none:
    case action::count:
      break;
    case action::open:
      (void)check(c().open());
      break;
    case action::begin: {
      const std::uint8_t w = in_.decide(choice::arg);
      session_options so;
      so.incoming_window = w;
      so.handle_max = in_.decide(choice::arg);
      if (auto s = check(c().begin(so))) {
        remember(*s);
      }
      break;
    }
    case action::attach_sender:
    case action::attach_receiver: {
      const bool snd = static_cast<action>(a % static_cast<std::uint8_t>(action::count)) ==
                       action::attach_sender;
      const auto s = pick_session();
      const std::uint8_t m = in_.decide(choice::arg);
      if (!s) {
        break;
      }
      link_options o;
      const std::string name = (snd ? "snd-" : "rcv-") + std::to_string(names_++);
      o.name = name;
      o.role = snd ? amqp::role::sender : amqp::role::receiver;
      o.snd_settle_mode = static_cast<sender_settle_mode>(m % 3U);
      o.rcv_settle_mode = static_cast<receiver_settle_mode>((m >> 2U) & 1U);
      o.source = source{};
      o.source->address = "queue-a";
      o.target = target{};
      o.target->address = "queue-b";
      o.max_message_size = (m & 8U) != 0 ? 1024U : 0U;
      o.initial_delivery_count = (m & 16U) != 0 ? 0xFFFF'FFF0U : 0U;
      o.credit_overrun = (m & 32U) != 0 ? 3U : 0U; // receivers only
      if (auto l = check(c().attach(*s, o))) {
        links_.push_back(link_rec{*l, o.role, true});
      }
      break;
    }
    case action::send: {
      const auto l = pick_link(amqp::role::sender);
      const std::uint8_t m = in_.decide(choice::arg);
      if (l) {
        send(*l, m & 3U, (m & 4U) != 0, (m & 8U) != 0);
      }
      break;
    }
    case action::flow: {
      const auto l = pick_link(amqp::role::receiver);
      const std::uint8_t m = in_.decide(choice::arg);
      if (l) {
        (void)check(c().flow(*l, m & 0x7FU, (m & 0x80U) != 0));
      }
      break;
    }
    case action::settle:
    case action::update: {
      const std::uint8_t i = in_.decide(choice::arg);
      const std::uint8_t m = in_.decide(choice::arg);
      if (unsettled_.empty()) {
        break;
      }
      const std::size_t k = i % unsettled_.size();
      const delivery_id d = unsettled_[k];
      if (static_cast<action>(a % static_cast<std::uint8_t>(action::count)) == action::update) {
        (void)check(c().update(d, m % 2U == 0 ? delivery_state{received{1, 2}}
                                              : delivery_state{accepted{}}));
        break;
      }
      unsettled_.erase(unsettled_.begin() + static_cast<std::ptrdiff_t>(k));
      switch (m % 4U) {
      case 0:
        (void)check(c().settle(d, accepted{}));
        break;
      case 1:
        (void)check(c().settle(d, released{}));
        break;
      case 2:
        (void)check(c().settle(d));
        break;
      default:
        (void)check(c().settle(d, rejected{}));
        break;
      }
      break;
    }
    case action::detach: {
      const auto l = pick_link(std::nullopt);
      const std::uint8_t m = in_.decide(choice::arg);
      if (l) {
        std::optional<amqp::error> err;
        if ((m & 2U) != 0) {
          err = amqp::error{symbol_view{"amqp:internal-error"}, "going", value{}};
        }
        (void)check(c().detach(*l, (m & 1U) == 0, err));
      }
      break;
    }
    case action::end: {
      const auto s = pick_session();
      const std::uint8_t m = in_.decide(choice::arg);
      if (s) {
        std::optional<amqp::error> err;
        if ((m & 1U) != 0) {
          err = amqp::error{symbol_view{"amqp:internal-error"}, {}, value{}};
        }
        (void)check(c().end(*s, err));
      }
      break;
    }
    case action::close: {
      const std::uint8_t m = in_.decide(choice::arg);
      std::optional<amqp::error> err;
      if ((m & 1U) != 0) {
        err = amqp::error{symbol_view{"amqp:connection:forced"}, "bye", value{}};
      }
      (void)check(c().close(err));
      break;
    }
    case action::drained: {
      if (const auto l = pick_link(amqp::role::sender)) {
        (void)check(c().drained(*l));
      }
      break;
    }
    case action::available: {
      const auto l = pick_link(amqp::role::sender);
      const std::uint8_t m = in_.decide(choice::arg);
      if (l) {
        (void)check(c().set_available(*l, m, (m & 1U) == 0));
      }
      break;
    }
    case action::abort: {
      if (const auto l = pick_link(amqp::role::sender)) {
        (void)check(c().abort(*l));
      }
      break;
    }
    case action::sasl: {
      const std::uint8_t m = in_.decide(choice::arg);
      if (sasl_pending_ || cfg_.role == connection_role::server) {
        answer_sasl(static_cast<sasl_answer>(m % 8U)); // invalid_state unless pending
      } else {
        (void)check(c().sasl_respond({}));
      }
      break;
    }
    }
  }

  void send(link_id l, std::uint8_t size_class, bool settled, bool explicit_tag) {
    static constexpr std::array<std::size_t, 4> sizes{16, 700, 5000, 70000};
    const std::size_t n = sizes[size_class & 3U];
    // A data section (AMQP 1.0 §3.2.6) of n - 8 bytes.
    std::vector<std::byte> payload(n, std::byte{0x5a});
    const auto len = static_cast<std::uint32_t>(n - 8);
    const std::array<std::uint8_t, 8> head{0x00,
                                           0x53,
                                           0x75,
                                           0xb0,
                                           static_cast<std::uint8_t>(len >> 24U),
                                           static_cast<std::uint8_t>(len >> 16U),
                                           static_cast<std::uint8_t>(len >> 8U),
                                           static_cast<std::uint8_t>(len)};
    for (std::size_t i = 0; i < head.size(); ++i) {
      payload[i] = std::byte{head[i]};
    }
    const std::string tag = "tag-" + std::to_string(tags_++);
    transfer_options t;
    t.payload = payload;
    t.settled = settled;
    if (explicit_tag) {
      t.tag =
          std::span<const std::byte>(reinterpret_cast<const std::byte*>(tag.data()), tag.size());
    }
    sent_payload_ += n;
    update_bound();
    if (auto d = check(c().send(l, t))) {
      ++sum_.messages_sent;
      if (!settled) {
        unsettled_.push_back(*d);
      }
    }
  }

  // Checks a command's result: success, or an error the command may return.
  template <class T> result<T> check(result<T> r) {
    AMQP_FUZZ_TRACE("  -> %s\n", r ? "ok" : r.error().message().c_str());
    if (!r) {
      const std::error_code e = r.error();
      require(e == errc::invalid_state || e == errc::would_block || e == errc::resource_limit ||
              e == errc::message_size_exceeded || e == errc::invalid_argument ||
              e == errc::frame_too_large || e == errc::out_of_memory ||
              (c().error() && e == c().error()));
      if (e == errc::out_of_memory) {
        require(mem_.failed);
      }
    }
    after_call();
    return r;
  }

  void remember(session_id s) {
    if (std::find(sessions_.begin(), sessions_.end(), s) == sessions_.end()) {
      sessions_.push_back(s);
    }
  }

  std::optional<session_id> pick_session() {
    const std::uint8_t i = in_.decide(choice::arg);
    if (sessions_.empty()) {
      return std::nullopt;
    }
    return sessions_[i % sessions_.size()];
  }

  std::optional<link_id> pick_link(std::optional<amqp::role> role) {
    const std::uint8_t i = in_.decide(choice::arg);
    std::vector<link_id> c;
    for (const auto& l : links_) {
      if (!role || l.role == *role) {
        c.push_back(l.id);
      }
    }
    if (c.empty()) {
      return std::nullopt;
    }
    return c[i % c.size()];
  }

  const link_rec* find(link_id id) const {
    for (const auto& l : links_) {
      if (l.id == id) {
        return &l;
      }
    }
    return nullptr;
  }

  config cfg_;
  input& in_;
  tracking_resource mem_;
  std::optional<connection> conn_;
  output_checker out_;
  summary sum_;
  time_point now_{};
  std::size_t fed_ = 0;
  std::size_t sent_payload_ = 0;
  std::size_t sessions_begun_ = 0;
  bool header_sent_ = false;
  bool sasl_ok_ = false;
  bool sasl_pending_ = false;
  bool closed_seen_ = false;
  bool expect_close_ = false;
  bool finished_ = false;
  bool written_when_finished_ = false;
  std::error_code error_{};
  std::vector<session_id> sessions_;
  std::vector<link_rec> links_;
  std::vector<delivery_id> unsettled_;
  std::vector<std::uint32_t> handle_max_; // the peer's handle-max, by our channel
  std::size_t names_ = 0;
  std::size_t tags_ = 0;
};

// The whole input of a fuzz target.
inline summary run(kind t, const std::uint8_t* data, std::size_t size) {
  data_provider dp(data, size);
  const params p = params::read(dp);
  auto rest = dp.rest();
  const std::size_t tail = std::min<std::size_t>(p.tail_len, rest.size());
  fuzz_input in(rest.first(rest.size() - tail), rest.last(tail));
  driver d(to_config(t, p), in);
  return d.run();
}

} // namespace amqp::fuzz::engine
