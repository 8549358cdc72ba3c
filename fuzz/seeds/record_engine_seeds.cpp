// Records the seeds of the engine fuzz targets (connection_client, connection_server, sasl)
// from real exchanges: the fuzz driver (support/engine_driver.hpp) runs its engine against a
// second, real amqp::connection (the peer) driven by a scripted application. The recorder is
// the driver's input: it answers each decision the driver asks for (from a per-scenario
// script: actions and reactions) and hands it, as the next chunk, exactly the bytes the
// peer has written by then, writing both down. The seed is then
//
//   params (tail_len = number of decisions) | the peer's bytes after its header | decisions
//
// and replaying it (the fuzz target, or engine::run here) repeats the exchange byte for byte;
// the recorder checks that it does. Seeds with a failing allocation (fail_at) are recorded
// without one and then patched: they replay the same exchange up to the failure.
//
//   fuzz_record_engine_seeds OUT-DIR   writes OUT-DIR/<target>/<scenario>
//   fuzz_record_engine_seeds --check   records and verifies every scenario, writes nothing
//
// fuzz/seeds/record_engine_seeds.sh names them by sha256 into fuzz/corpus/<target>/.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "amqp/connection.hpp"
#include "support/engine_driver.hpp"

using namespace amqp;
using namespace amqp::fuzz::engine;

namespace {

// ---- scenarios -------------------------------------------------------------------------------

// One step of a scenario's script, run when the exchange is quiet.
struct step {
  enum class what : std::uint8_t {
    act,             // the driver's application does `a` with `args`
    wait,            // the clock advances (choice::time = `t`)
    peer_close,      // the peer closes (with an error if `flag`)
    peer_end,        // the peer ends its sessions (with an error if `flag`)
    peer_detach,     // the peer detaches its links (with an error if `flag`)
    peer_open_links, // the peer begins a session and attaches a sender and a receiver
    peer_send,       // the peer sends `t` more messages where it has credit
    peer_drain,      // the peer's receivers ask for a drain
    peer_flow,       // the peer's receivers grant `t` credit
    peer_raw,        // `raw` bytes follow the peer's (frames a real engine would not send)
  } w = what::act;
  action a = action::none;
  std::vector<std::uint8_t> args{};
  std::uint8_t t = 0;
  bool flag = false;
  std::vector<std::byte> raw{};
};

step act(action a, std::vector<std::uint8_t> args = {}) {
  return step{step::what::act, a, std::move(args), 0, false};
}
step wait(std::uint8_t t) {
  return step{step::what::wait, action::none, {}, t, false};
}
step peer(step::what w, bool flag = false, std::uint8_t t = 0) {
  return step{w, action::none, {}, t, flag, {}};
}

// Frames written by hand: a hostile or broken peer.
using frame_bytes = std::vector<std::byte>;
frame_bytes frame(std::uint16_t channel, const performative& p,
                  std::span<const std::byte> payload = {}) {
  frame_bytes v;
  (void)detail::append_frame(channel, p, payload, v);
  return v;
}
frame_bytes frame(const sasl_frame& f) {
  frame_bytes v;
  (void)detail::append_frame(f, v);
  return v;
}
frame_bytes cat(std::initializer_list<frame_bytes> parts) {
  frame_bytes v;
  for (const auto& p : parts) {
    v.insert(v.end(), p.begin(), p.end());
  }
  return v;
}
frame_bytes repeat(const frame_bytes& b, std::size_t n) {
  frame_bytes v;
  for (std::size_t i = 0; i < n; ++i) {
    v.insert(v.end(), b.begin(), b.end());
  }
  return v;
}
step raw(frame_bytes b) {
  return step{step::what::peer_raw, action::none, {}, 0, false, std::move(b)};
}
// The same, without waiting for the exchange to settle.
step raw_now(frame_bytes b) {
  return step{step::what::peer_raw, action::none, {}, 0, true, std::move(b)};
}
const std::array<std::byte, 9> small_message{std::byte{0x00}, std::byte{0x53}, std::byte{0x77},
                                             std::byte{0xa1}, std::byte{0x04}, std::byte{'b'},
                                             std::byte{'o'},  std::byte{'d'},  std::byte{'y'}};
amqp::transfer xfer(std::uint32_t handle, std::optional<std::uint32_t> id, std::string_view tag,
                    bool more = false) {
  amqp::transfer t;
  t.handle = handle;
  t.delivery_id = id;
  if (!tag.empty()) {
    t.delivery_tag = binary_view(reinterpret_cast<const std::byte*>(tag.data()), tag.size());
  }
  t.more = more;
  return t;
}

struct scenario {
  std::string name;
  kind k = kind::client;
  params p{};
  std::vector<step> script;
  // The driver's reactions: cycled through, per kind of decision (empty: 0).
  std::vector<std::uint8_t> on_open, on_begin, on_attach, on_credit, on_flow, on_receive, on_update,
      on_sasl, on_challenge, consume, input{0, 1, 2};
  std::size_t max_chunk = 0; // largest chunk handed to the driver (0: all there is)
  // The peer.
  std::uint32_t peer_max_frame = 64 * 1024;
  std::uint16_t peer_channel_max = 255;
  std::uint32_t peer_window = 2048;
  std::uint32_t peer_idle_ms = 0;
  std::uint32_t peer_credit = 10;             // granted to each of the driver's senders
  std::uint32_t peer_messages = 3;            // sent to the driver, in all
  std::vector<std::size_t> peer_sizes{20};    // payload sizes, cycled
  std::vector<std::uint8_t> peer_outcomes{0}; // 0 accept 1 reject 2 release 3 modify 4 keep
  sender_settle_mode peer_snd_mode = sender_settle_mode::mixed;
  receiver_settle_mode peer_rcv_mode = receiver_settle_mode::first;
  bool peer_initiates = false; // the peer opens a session and links once open
  bool peer_rich = false;      // capabilities, properties, filters in the peer's frames
  // SASL of the peer.
  std::string_view peer_mechanisms = "PLAIN ANONYMOUS EXTERNAL X-TOKEN"; // as a server
  std::vector<std::uint8_t> peer_sasl_answers{0}; // as a server: 0 ok, 1 auth, 2 challenge,
                                                  // 3 none
  std::string_view peer_username{};               // as a client
  std::string_view peer_mechanism{};
  bool peer_external = false;
  bool peer_pipeline = false;
  bool skip_verify = false;
};

// ---- the recorder -------------------------------------------------------------------------------

std::span<const std::byte> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::vector<std::byte> data_section(std::size_t n, std::uint8_t fill) {
  n = std::max<std::size_t>(n, 8);
  std::vector<std::byte> v(n, std::byte{fill});
  const auto len = static_cast<std::uint32_t>(n - 8);
  const std::uint8_t head[8] = {0x00,
                                0x53,
                                0x75,
                                0xb0,
                                static_cast<std::uint8_t>(len >> 24U),
                                static_cast<std::uint8_t>(len >> 16U),
                                static_cast<std::uint8_t>(len >> 8U),
                                static_cast<std::uint8_t>(len)};
  for (std::size_t i = 0; i < 8; ++i) {
    v[i] = std::byte{head[i]};
  }
  return v;
}

class recorder final : public input {
public:
  explicit recorder(const scenario& s) : s_(s), peer_(peer_options(s)) {}

  std::vector<std::byte> middle, tail;

  std::uint8_t decide(choice c) override {
    const std::uint8_t v = pick(c);
    tail.push_back(std::byte{v});
    return v;
  }

  std::span<const std::byte> chunk(time_point now) override {
    now_ = now;
    if (auto d = peer_.next_deadline(); d && *d <= now) {
      peer_.on_deadline(now);
    }
    pump_peer();
    auto out = peer_.pending_output();
    if (!header_stripped_ && out.size() >= 8) {
      // The driver supplies the peer's protocol header itself.
      header_stripped_ = true;
      peer_.consume_output(8);
      out = peer_.pending_output();
    }
    queue_.insert(queue_.end(), out.begin(), out.end());
    peer_.consume_output(out.size());
    std::size_t n = std::min<std::size_t>(queue_.size(), 65535);
    if (s_.max_chunk != 0) {
      n = std::min(n, s_.max_chunk);
    }
    if (n >= 1 && n <= 254) {
      tail.push_back(std::byte{static_cast<std::uint8_t>(n)});
    } else {
      tail.push_back(std::byte{255});
      tail.push_back(std::byte{static_cast<std::uint8_t>(n >> 8U)});
      tail.push_back(std::byte{static_cast<std::uint8_t>(n & 0xFFU)});
    }
    chunked_ = true;
    last_.assign(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    middle.insert(middle.end(), last_.begin(), last_.end());
    return last_;
  }

  bool more() override {
    ++rounds_;
    if (rounds_ > 3000) {
      return false;
    }
    if (next_ < s_.script.size()) {
      return true;
    }
    // The script is done: a few more rounds while bytes are still moving.
    const bool idle = !pending_work();
    idle_rounds_ = idle ? idle_rounds_ + 1 : 0;
    return idle_rounds_ < 3;
  }

  bool out_of_decisions() const override { return false; }

  void written(std::span<const std::byte> octets, time_point now) override {
    now_ = now;
    wrote_ += octets.size();
    to_peer_.insert(to_peer_.end(), octets.begin(), octets.end());
    pump_peer();
  }

private:
  static connection_options peer_options(const scenario& s) {
    connection_options o;
    const bool driver_client = s.k == kind::client || (s.k == kind::sasl && (s.p.flags & 1U) != 0);
    o.role = driver_client ? connection_role::server : connection_role::client;
    o.container_id = driver_client ? "peer-server" : "peer-client";
    o.limits.max_frame_size = s.peer_max_frame;
    o.limits.channel_max = s.peer_channel_max;
    o.incoming_window = s.peer_window;
    o.timeouts.idle_time_out = milliseconds{s.peer_idle_ms};
    o.timeouts.handshake = milliseconds{0};
    const bool sasl = s.k == kind::sasl || (s.p.flags & 1U) != 0;
    if (sasl) {
      o.sasl.enabled = true;
      o.sasl.server_mechanisms = s.peer_mechanisms;
      o.sasl.username = s.peer_username;
      o.sasl.password = "secret";
      o.sasl.mechanism = s.peer_mechanism;
      o.sasl.external = s.peer_external;
      o.sasl.pipeline = s.peer_pipeline;
    }
    if (s.peer_rich) {
      o.hostname = "broker.example";
    }
    return o;
  }

  bool pending_work() {
    pump_peer();
    return !peer_.pending_output().empty() || !queue_.empty() || wrote_ != 0;
  }

  // Delivers what the driver wrote and lets the peer's application react.
  void pump_peer() {
    for (int i = 0; i < 100; ++i) {
      bool progress = false;
      while (auto e = peer_.next_event()) {
        progress = true;
        react(*e);
      }
      if (!to_peer_.empty() && !peer_.finished() && peer_.wants_read()) {
        (void)peer_.receive(to_peer_, now_);
        to_peer_.clear();
        progress = true;
      } else if (peer_.finished()) {
        to_peer_.clear();
      }
      if (!progress) {
        return;
      }
    }
  }

  std::uint8_t cycle(const std::vector<std::uint8_t>& v, std::size_t& i) {
    if (v.empty()) {
      return 0;
    }
    return v[i++ % v.size()];
  }

  std::uint8_t pick(choice c) {
    switch (c) {
    case choice::action: {
      if (next_ >= s_.script.size()) {
        wrote_ = 0;
        return 0;
      }
      // Let the exchange settle first, unless it is stalled: no chunk taken since the last
      // round (the driver waits for a SASL answer, the next step).
      const bool stalled = !chunked_;
      chunked_ = false;
      const bool now = s_.script[next_].w == step::what::peer_raw && s_.script[next_].flag;
      if (pending_work() && !stalled && !now) {
        wrote_ = 0;
        return 0;
      }
      const step& st = s_.script[next_++];
      args_ = {};
      time_ = 0;
      wrote_ = 0;
      switch (st.w) {
      case step::what::act:
        args_ = st.args;
        arg_pos_ = 0;
        return static_cast<std::uint8_t>(st.a);
      case step::what::wait:
        time_ = st.t;
        return 0;
      default:
        peer_step(st);
        return 0;
      }
    }
    case choice::arg:
      return arg_pos_ < args_.size() ? args_[arg_pos_++] : 0;
    case choice::time: {
      const std::uint8_t t = time_;
      time_ = 0;
      return t;
    }
    case choice::consume:
      return cycle(s_.consume, i_consume_);
    case choice::input:
      return cycle(s_.input, i_input_);
    case choice::on_open:
      return cycle(s_.on_open, i_open_);
    case choice::on_begin:
      return cycle(s_.on_begin, i_begin_);
    case choice::on_attach:
      return cycle(s_.on_attach, i_attach_);
    case choice::on_credit:
      return cycle(s_.on_credit, i_credit_);
    case choice::on_flow:
      return cycle(s_.on_flow, i_flow_);
    case choice::on_receive:
      return cycle(s_.on_receive, i_receive_);
    case choice::on_update:
      return cycle(s_.on_update, i_update_);
    case choice::on_sasl:
      return cycle(s_.on_sasl, i_sasl_);
    case choice::on_challenge:
      return cycle(s_.on_challenge, i_challenge_);
    }
    return 0;
  }

  // ---- the peer's application

  void peer_step(const step& st) {
    std::optional<amqp::error> err;
    if (st.flag) {
      err = amqp::error{symbol_view{"amqp:internal-error"}, "peer going away", value{}};
    }
    switch (st.w) {
    case step::what::peer_close:
      (void)peer_.close(err);
      break;
    case step::what::peer_end:
      for (auto s : peer_sessions_) {
        (void)peer_.end(s, err);
      }
      break;
    case step::what::peer_detach:
      for (auto& l : peer_links_) {
        (void)peer_.detach(l.first, true, err);
      }
      break;
    case step::what::peer_open_links:
      open_links();
      break;
    case step::what::peer_send:
      to_send_ += st.t;
      for (auto& l : peer_links_) {
        if (l.second == amqp::role::sender) {
          send_some(l.first);
        }
      }
      break;
    case step::what::peer_drain:
      for (auto& l : peer_links_) {
        if (l.second == amqp::role::receiver) {
          (void)peer_.flow(l.first, 5, true);
        }
      }
      break;
    case step::what::peer_flow:
      for (auto& l : peer_links_) {
        if (l.second == amqp::role::receiver) {
          (void)peer_.flow(l.first, st.t);
        }
      }
      break;
    case step::what::peer_raw: {
      // After what the peer engine has written so far.
      auto out = peer_.pending_output();
      if (!header_stripped_ && out.size() >= 8) {
        header_stripped_ = true;
        peer_.consume_output(8);
        out = peer_.pending_output();
      }
      queue_.insert(queue_.end(), out.begin(), out.end());
      peer_.consume_output(out.size());
      queue_.insert(queue_.end(), st.raw.begin(), st.raw.end());
      break;
    }
    default:
      break;
    }
    pump_peer();
  }

  void open_links() {
    if (peer_.state().local == endpoint_status::uninit) {
      (void)peer_.open();
    }
    auto s = peer_.begin();
    if (!s) {
      return;
    }
    peer_sessions_.push_back(*s);
    // The links are attached once the driver answered the begin (see react).
    link_wanted_.push_back(*s);
  }

  void attach_links(session_id s) {
    for (amqp::role r : {amqp::role::sender, amqp::role::receiver}) {
      link_options o;
      const std::string name = "peer-" + std::to_string(names_++);
      o.name = name;
      o.role = r;
      o.snd_settle_mode = s_.peer_snd_mode;
      o.rcv_settle_mode = s_.peer_rcv_mode;
      o.source = source{};
      o.source->address = "topic/x";
      o.target = target{};
      o.target->address = "topic/y";
      std::array<value, 2> caps{value(symbol_view{"shared"}), value(symbol_view{"global"})};
      std::array<value, 2> props{value(symbol_view{"x-opt"}), value(std::int32_t{-3})};
      if (s_.peer_rich) {
        o.offered_capabilities = value::array(type::symbol, caps);
        o.properties = value::map(props);
        o.source->capabilities = symbols{value::array(type::symbol, caps)};
        o.source->distribution_mode = terminus::copy;
        o.source->durable = terminus_durability::unsettled_state;
        o.source->default_outcome = released{};
      }
      if (auto l = peer_.attach(s, o)) {
        peer_links_.emplace_back(*l, r);
      }
    }
  }

  void send_some(link_id l) {
    while (to_send_ > 0 && peer_.credit(l) > 0) {
      const std::size_t n = s_.peer_sizes[sent_ % s_.peer_sizes.size()];
      const auto payload = data_section(n, static_cast<std::uint8_t>(0x30 + sent_ % 40));
      transfer_options t;
      t.payload = payload;
      t.settled = s_.peer_snd_mode == sender_settle_mode::settled;
      if (!peer_.send(l, t)) {
        return;
      }
      ++sent_;
      --to_send_;
    }
  }

  void react(const event& e) {
    if (const auto* si = std::get_if<sasl_init_received>(&e)) {
      (void)si;
      sasl_answer();
    } else if (std::holds_alternative<sasl_response_received>(e)) {
      sasl_answer();
    } else if (std::holds_alternative<sasl_challenge_received>(e)) {
      (void)peer_.sasl_respond(bytes_of("peer-response"));
    } else if (std::holds_alternative<connection_opened>(e)) {
      if (peer_.state().local == endpoint_status::uninit) {
        (void)peer_.open();
      }
      if (s_.peer_initiates && !initiated_) {
        initiated_ = true;
        open_links();
      }
    } else if (const auto* b = std::get_if<session_begun>(&e)) {
      if (auto it = std::find(link_wanted_.begin(), link_wanted_.end(), b->session);
          it != link_wanted_.end() && !b->remote_initiated) {
        link_wanted_.erase(it);
        attach_links(b->session);
      }
      if (b->remote_initiated) {
        peer_sessions_.push_back(b->session);
        (void)peer_.begin(b->session);
      }
    } else if (const auto* a = std::get_if<link_attached>(&e)) {
      const amqp::role ours =
          a->remote.role == amqp::role::sender ? amqp::role::receiver : amqp::role::sender;
      if (a->remote_initiated) {
        link_options o;
        o.role = ours;
        o.snd_settle_mode = a->remote.snd_settle_mode;
        o.rcv_settle_mode = a->remote.rcv_settle_mode;
        o.source = a->remote.source;
        if (a->remote.target && std::holds_alternative<target>(*a->remote.target)) {
          o.target = std::get<target>(*a->remote.target);
        }
        if (!peer_.attach(a->link, o)) {
          return;
        }
        peer_links_.emplace_back(a->link, ours);
      }
      if (ours == amqp::role::receiver) {
        (void)peer_.flow(a->link, s_.peer_credit);
      }
    } else if (const auto* f = std::get_if<link_flow>(&e)) {
      if (peer_.credit(f->link) > 0) {
        send_some(f->link);
      }
      if (f->drain) {
        (void)peer_.drained(f->link);
      }
    } else if (const auto* d = std::get_if<delivery_received>(&e)) {
      if (!d->settled) {
        switch (cycle(s_.peer_outcomes, i_outcome_)) {
        case 0:
          (void)peer_.settle(d->delivery, accepted{});
          break;
        case 1:
          (void)peer_.settle(
              d->delivery,
              rejected{amqp::error{symbol_view{"amqp:precondition-failed"}, "no thanks", value{}}});
          break;
        case 2:
          (void)peer_.settle(d->delivery, released{});
          break;
        case 3:
          (void)peer_.settle(d->delivery, modified{true, true, value{}});
          break;
        case 5:
          (void)peer_.update(d->delivery, accepted{}); // rcv-settle-mode second
          break;
        default:
          break;
        }
      }
      if (peer_.credit(d->delivery.link) == 0) {
        (void)peer_.flow(d->delivery.link, s_.peer_credit);
      }
    } else if (const auto* u = std::get_if<delivery_updated>(&e)) {
      if (!u->settled) {
        (void)peer_.settle(u->delivery, u->state);
      }
    }
  }

  void sasl_answer() {
    static constexpr std::string_view challenge = "server-challenge";
    switch (cycle(s_.peer_sasl_answers, i_peer_sasl_)) {
    case 1:
      (void)peer_.sasl_complete(sasl_code::auth);
      break;
    case 2:
      (void)peer_.sasl_challenge(bytes_of(challenge));
      break;
    case 3:
      break; // no answer: the exchange stalls (frames written by hand follow)
    default:
      (void)peer_.sasl_complete(sasl_code::ok);
      break;
    }
  }

  const scenario& s_;
  connection peer_;
  time_point now_{};
  bool header_stripped_ = false;
  std::vector<std::byte> to_peer_, last_, queue_;
  std::size_t wrote_ = 0;
  bool chunked_ = true;
  std::size_t rounds_ = 0;
  std::size_t idle_rounds_ = 0;
  std::size_t next_ = 0;
  std::vector<std::uint8_t> args_;
  std::size_t arg_pos_ = 0;
  std::uint8_t time_ = 0;
  std::size_t i_consume_ = 0, i_open_ = 0, i_begin_ = 0, i_attach_ = 0, i_credit_ = 0, i_flow_ = 0,
              i_receive_ = 0, i_update_ = 0, i_sasl_ = 0, i_challenge_ = 0, i_outcome_ = 0,
              i_peer_sasl_ = 0, i_input_ = 0;
  std::vector<session_id> peer_sessions_;
  std::vector<session_id> link_wanted_;
  std::vector<std::pair<link_id, amqp::role>> peer_links_;
  std::uint32_t to_send_ = 0;
  std::size_t sent_ = 0;
  std::size_t names_ = 0;
  bool initiated_ = false;

public:
  void start() {
    to_send_ = s_.peer_messages;
    const bool peer_client =
        !(s_.k == kind::client || (s_.k == kind::sasl && (s_.p.flags & 1U) != 0));
    if (peer_client) {
      // A client opens at once (pipelined with its header, or after SASL).
      if (s_.peer_initiates) {
        initiated_ = true;
        open_links();
      } else {
        (void)peer_.open();
      }
    }
  }
};

// ---- the scenarios ---------------------------------------------------------------------------

// Arguments: begin (window, handle-max), attach (session index, modes), send (size class and
// flags), flow (credit | 0x80 drain), settle/update (index, outcome), detach (link, flags),
// end (session, flags), close (flags).
std::vector<step> full_session() {
  return {act(action::open),
          act(action::begin, {0, 0}),
          act(action::attach_sender, {0, 0}),
          act(action::attach_receiver, {0, 0}),
          act(action::send, {0, 0}),
          act(action::send, {0, 1}),
          act(action::detach, {0, 0}),
          act(action::detach, {1, 0}),
          act(action::end, {0, 0}),
          act(action::close, {0})};
}

std::vector<step> server_session() {
  // The peer (client) opens a session and links; the driver answers, then sends and closes.
  return {act(action::send, {0, 0}),
          act(action::send, {0, 1}),
          peer(step::what::peer_send, false, 2),
          act(action::begin, {0, 0}),
          act(action::attach_sender, {1, 0}),
          act(action::send, {1, 4}),
          peer(step::what::peer_detach),
          peer(step::what::peer_end),
          peer(step::what::peer_close)};
}

std::vector<scenario> client_scenarios() {
  std::vector<scenario> v;
  auto add = [&](scenario s) {
    s.k = kind::client;
    v.push_back(std::move(s));
  };
  {
    scenario s;
    s.name = "full-session";
    s.script = full_session();
    add(s);
  }
  {
    scenario s;
    s.name = "multi-frame-both-ways";
    s.p.max_frame = 0; // 512
    s.peer_max_frame = 512;
    s.peer_sizes = {1500, 20, 5000};
    s.peer_messages = 4;
    s.script = full_session();
    s.script.insert(s.script.begin() + 5, act(action::send, {0, 2}));
    s.script.insert(s.script.begin() + 5, act(action::send, {0, 3}));
    add(s);
  }
  {
    scenario s;
    s.name = "small-chunks";
    s.max_chunk = 7;
    s.script = full_session();
    add(s);
  }
  {
    scenario s;
    s.name = "byte-chunks";
    s.max_chunk = 1;
    s.peer_messages = 1;
    s.script = full_session();
    add(s);
  }
  {
    scenario s;
    s.name = "outcomes";
    s.peer_messages = 8;
    s.on_receive = {1, 2, 3, 4, 5, 6, 0, 0};
    s.peer_outcomes = {1, 2, 3, 4};
    s.script = full_session();
    s.script.insert(s.script.begin() + 6,
                    {act(action::send, {0, 0}), act(action::send, {0, 0}),
                     act(action::settle, {0, 0}), act(action::update, {0, 0}),
                     act(action::settle, {1, 1}), act(action::settle, {0, 2})});
    add(s);
  }
  {
    scenario s;
    s.name = "settle-mode-second";
    s.peer_outcomes = {5};
    s.peer_messages = 2;
    s.script = full_session();
    s.script[2] = act(action::attach_sender, {0, 0x04}); // rcv-settle-mode second
    s.script[3] = act(action::attach_receiver, {0, 0x05});
    s.on_receive = {4, 0};
    add(s);
  }
  {
    scenario s;
    s.name = "presettled";
    s.peer_snd_mode = sender_settle_mode::settled;
    s.script = full_session();
    s.script[2] = act(action::attach_sender, {0, 0x01}); // snd-settle-mode settled
    s.script[4] = act(action::send, {0, 4});
    s.on_flow = {0x11};
    add(s);
  }
  {
    scenario s;
    s.name = "drain";
    s.peer_messages = 1;
    s.script = full_session();
    s.script.insert(s.script.begin() + 6,
                    {act(action::flow, {0, 0x85}), peer(step::what::peer_drain),
                     act(action::available, {0, 9}), act(action::drained, {0})});
    add(s);
  }
  {
    scenario s;
    s.name = "windows";
    s.p.window = 2;
    s.peer_window = 1;
    s.peer_messages = 6;
    s.peer_sizes = {700};
    s.peer_max_frame = 512;
    s.p.max_frame = 0;
    s.script = full_session();
    s.script.insert(s.script.begin() + 6, {act(action::send, {0, 1}), act(action::send, {0, 2}),
                                           act(action::abort, {0})});
    add(s);
  }
  {
    scenario s;
    s.name = "peer-initiated";
    s.peer_initiates = true;
    s.peer_rich = true;
    s.p.flags = 16; // rich options
    s.script = {act(action::open),
                peer(step::what::peer_send, false, 3),
                act(action::send, {0, 0}),
                act(action::send, {1, 1}),
                peer(step::what::peer_detach),
                peer(step::what::peer_end),
                act(action::close, {1})};
    add(s);
  }
  {
    scenario s;
    s.name = "refuse-peer";
    s.peer_initiates = true;
    s.on_begin = {0};
    s.on_attach = {1, 2};
    s.script = {act(action::open), wait(0), act(action::begin, {0, 0}), act(action::end, {1, 1}),
                act(action::close, {0})};
    add(s);
  }
  {
    scenario s;
    s.name = "refuse-peer-session";
    s.peer_initiates = true;
    s.on_begin = {1};
    s.script = {act(action::open), act(action::close, {0})};
    add(s);
  }
  {
    scenario s;
    s.name = "peer-errors";
    s.script = {act(action::open),
                act(action::begin, {0, 0}),
                act(action::attach_sender, {0, 0}),
                act(action::attach_receiver, {0, 0}),
                peer(step::what::peer_detach, true),
                peer(step::what::peer_end, true),
                peer(step::what::peer_close, true)};
    add(s);
  }
  {
    scenario s;
    s.name = "heartbeats";
    s.p.flags = 4; // idle-time-out 1000 ms
    s.peer_idle_ms = 1000;
    s.script = {
        act(action::open), act(action::begin, {0, 0}), wait(31), wait(31), wait(31), wait(1),
        wait(31),          act(action::close, {0})};
    add(s);
  }
  {
    scenario s;
    s.name = "idle-timeout";
    s.p.flags = 4;
    s.script = {act(action::open), act(action::begin, {0, 0}), wait(1), wait(1)};
    add(s);
  }
  {
    scenario s;
    s.name = "message-too-large";
    s.p.max_message = 4; // 256 bytes
    s.peer_sizes = {100, 1000};
    s.peer_max_frame = 512;
    s.script = full_session();
    add(s);
  }
  {
    scenario s;
    s.name = "unsettled-limit";
    s.p.unsettled_link = 2;
    s.peer_messages = 5;
    s.on_receive = {5};
    s.script = full_session();
    add(s);
  }
  {
    scenario s;
    s.name = "many-links";
    s.p.channel_max = 3;
    s.p.handle_max = 3;
    s.script = {act(action::open),
                act(action::begin, {0, 0}),
                act(action::begin, {0, 2}),
                act(action::attach_sender, {0, 0}),
                act(action::attach_sender, {1, 1}),
                act(action::attach_receiver, {1, 2}),
                act(action::attach_receiver, {0, 0}),
                act(action::send, {2, 0}),
                act(action::detach, {0, 3}),
                act(action::end, {1, 0}),
                act(action::close, {0})};
    add(s);
  }
  {
    scenario s;
    s.name = "pipelined-close-with-error";
    s.script = {act(action::open), act(action::begin, {0, 0}), act(action::attach_sender, {0, 0}),
                act(action::close, {1})};
    add(s);
  }
  {
    scenario s;
    s.name = "slow-writer";
    s.consume = {1, 2, 0};
    s.script = full_session();
    add(s);
  }
  // SASL.
  {
    scenario s;
    s.name = "sasl-anonymous";
    s.p.flags = 1;
    s.script = full_session();
    add(s);
  }
  {
    scenario s;
    s.name = "sasl-plain-pipelined";
    s.p.flags = 1 | 2 | (1 << 5);
    s.script = full_session();
    add(s);
  }
  {
    scenario s;
    s.name = "sasl-custom-challenge";
    s.p.flags = 1 | (3 << 5);
    s.peer_sasl_answers = {2, 2, 0};
    s.on_challenge = {5, 40};
    s.script = {act(action::open), act(action::close, {0})};
    add(s);
  }
  {
    scenario s;
    s.name = "sasl-refused";
    s.p.flags = 1 | (1 << 5);
    s.peer_sasl_answers = {1};
    s.script = {act(action::open)};
    add(s);
  }
  return v;
}

std::vector<scenario> server_scenarios() {
  std::vector<scenario> v;
  auto add = [&](scenario s) {
    s.k = kind::server;
    s.peer_initiates = true;
    v.push_back(std::move(s));
  };
  {
    scenario s;
    s.name = "answer-peer";
    s.script = server_session();
    add(s);
  }
  {
    scenario s;
    s.name = "answer-peer-small-frames";
    s.p.max_frame = 0;
    s.peer_max_frame = 512;
    s.peer_sizes = {3000, 100};
    s.peer_messages = 3;
    s.script = server_session();
    s.script[0] = act(action::send, {0, 2});
    add(s);
  }
  {
    scenario s;
    s.name = "chunks-of-5";
    s.max_chunk = 5;
    s.script = server_session();
    add(s);
  }
  {
    scenario s;
    s.name = "outcomes";
    s.peer_messages = 6;
    s.on_receive = {1, 2, 3, 4, 6, 5};
    s.peer_outcomes = {3, 2, 1};
    s.script = server_session();
    s.script.insert(s.script.begin() + 2,
                    {act(action::settle, {0, 0}), act(action::settle, {0, 1}),
                     act(action::update, {0, 0}), act(action::settle, {0, 3})});
    add(s);
  }
  {
    scenario s;
    s.name = "refuse-links";
    s.on_attach = {1, 2};
    s.script = {act(action::begin, {0, 0}), peer(step::what::peer_close)};
    add(s);
  }
  {
    scenario s;
    s.name = "refuse-session";
    s.on_begin = {2, 0};
    s.script = {peer(step::what::peer_open_links), peer(step::what::peer_close)};
    add(s);
  }
  {
    scenario s;
    s.name = "ignore-open";
    s.on_open = {2};
    s.on_begin = {3}; // (answering a begin before open() writes begin before open)
    s.on_attach = {3};
    s.script = {act(action::open), peer(step::what::peer_close)};
    add(s);
  }
  {
    scenario s;
    s.name = "reject-open";
    s.on_open = {1};
    s.script = {};
    add(s);
  }
  {
    scenario s;
    s.name = "settle-mode-second";
    s.peer_rcv_mode = receiver_settle_mode::second;
    s.peer_outcomes = {5};
    s.on_receive = {4, 4, 0};
    s.on_update = {0, 1};
    s.peer_messages = 3;
    s.script = server_session();
    s.script.insert(s.script.begin() + 3, act(action::settle, {0, 0}));
    add(s);
  }
  {
    scenario s;
    s.name = "presettled-rich";
    s.peer_snd_mode = sender_settle_mode::settled;
    s.peer_rich = true;
    s.p.flags = 16;
    s.on_attach = {4, 0};
    s.script = server_session();
    add(s);
  }
  {
    scenario s;
    s.name = "windows-held";
    s.p.window = 1;
    s.peer_window = 1;
    s.peer_messages = 4;
    s.peer_max_frame = 512;
    s.peer_sizes = {1200};
    s.script = server_session();
    s.script.insert(s.script.begin() + 1, {act(action::send, {0, 2}), act(action::abort, {0})});
    add(s);
  }
  {
    scenario s;
    s.name = "drain-and-flow";
    s.script = server_session();
    s.script.insert(s.script.begin() + 1,
                    {peer(step::what::peer_drain), act(action::flow, {0, 0x83}),
                     peer(step::what::peer_flow, false, 2), act(action::available, {0, 3})});
    add(s);
  }
  {
    scenario s;
    s.name = "server-closes";
    s.script = {act(action::send, {0, 0}), act(action::end, {0, 1}), act(action::close, {1})};
    add(s);
  }
  {
    scenario s;
    s.name = "detach-not-closed";
    s.script = {act(action::detach, {0, 1}), act(action::detach, {1, 3}),
                peer(step::what::peer_close)};
    add(s);
  }
  {
    scenario s;
    s.name = "limits-tight";
    s.p.channel_max = 0;
    s.p.handle_max = 0;
    s.p.unsettled_session = 1;
    s.p.max_message = 2;
    s.peer_messages = 6;
    s.peer_sizes = {50, 300};
    s.on_receive = {5};
    s.script = server_session();
    add(s);
  }
  {
    scenario s;
    s.name = "heartbeats";
    s.p.flags = 4;
    s.peer_idle_ms = 2000;
    s.script = {
        wait(31), wait(31), wait(1), wait(31), wait(31), wait(31), peer(step::what::peer_close)};
    add(s);
  }
  {
    scenario s;
    s.name = "sasl-plain";
    s.p.flags = 1;
    s.peer_username = "alice";
    s.script = server_session();
    add(s);
  }
  {
    scenario s;
    s.name = "sasl-anonymous-pipelined";
    s.p.flags = 1 | 2;
    s.peer_pipeline = true;
    s.script = server_session();
    add(s);
  }
  return v;
}

// Scenarios with a hostile or broken peer: a real peer engine first, then frames written by
// hand after it (handles and delivery-ids chosen to meet the peer engine's state).
std::vector<scenario> hostile_server_scenarios() {
  std::vector<scenario> v;
  auto add = [&](const char* name, std::vector<step> script, params p = {}) {
    scenario s;
    s.name = std::string("hostile-") + name;
    s.k = kind::server;
    s.p = p;
    s.peer_initiates = true;
    s.peer_messages = 0;
    s.script = std::move(script);
    s.script.push_back(peer(step::what::peer_close));
    v.push_back(std::move(s));
  };
  // The peer (client) attached a sender with handle 0 and a receiver with handle 1 on
  // channel 0; the driver granted 10 credit to the first.
  const auto msg = std::span<const std::byte>(small_message);
  {
    frame_bytes b;
    for (std::uint32_t i = 0; i < 12; ++i) {
      b = cat({b, frame(0, xfer(0, i, "t" + std::to_string(i)), msg)});
    }
    add("beyond-credit", {raw(b)});
  }
  add("delivery-id-gap",
      {raw(cat({frame(0, xfer(0, 0, "a"), msg), frame(0, xfer(0, 5, "b"), msg)}))});
  {
    amqp::transfer ab = xfer(0, std::nullopt, "");
    ab.aborted = true;
    add("multi-frame-aborted", {raw(cat({frame(0, xfer(0, 0, "a", true), msg), frame(0, ab),
                                         frame(0, xfer(0, 1, "b"), msg)}))});
  }
  add("multi-frame-id-changes",
      {raw(cat({frame(0, xfer(0, 0, "a", true), msg), frame(0, xfer(0, 1, ""), msg)}))});
  {
    amqp::transfer last = xfer(0, std::nullopt, "");
    last.settled = true;
    last.state = received{0, 9};
    last.resume = true;
    add("multi-frame-settled-late",
        {raw(cat({frame(0, xfer(0, 0, "a", true), msg),
                  frame(0, xfer(0, std::nullopt, "", true), msg), frame(0, last, msg)}))});
  }
  {
    amqp::disposition all;
    all.role = amqp::role::receiver;
    all.first = 0;
    all.last = 0xFFFF'FFFFU;
    all.settled = true;
    all.state = accepted{};
    amqp::disposition backwards;
    backwards.role = amqp::role::receiver;
    backwards.first = 5;
    backwards.last = 2;
    scenario s;
    add("disposition-ranges",
        {act(action::send, {0, 0}), act(action::send, {0, 0}), raw(frame(0, all)),
         act(action::send, {0, 0}), raw(frame(0, backwards))});
    v.back().peer_outcomes = {4};
  }
  {
    amqp::flow f;
    f.next_incoming_id = 0;
    f.incoming_window = 100;
    f.next_outgoing_id = 0;
    f.outgoing_window = 100;
    f.handle = 1;
    f.delivery_count = 0;
    f.link_credit = 5;
    f.echo = true;
    amqp::flow unknown = f;
    unknown.handle = 9;
    amqp::flow session_echo = f;
    session_echo.handle.reset();
    add("flow-echo",
        {raw(cat({repeat(frame(0, f), 4), frame(0, session_echo), frame(0, unknown)}))});
  }
  {
    amqp::attach a;
    a.name = "again";
    a.handle = 0;
    a.role = amqp::role::sender;
    a.initial_delivery_count = 0;
    add("attach-handle-in-use", {raw(frame(0, a))});
    a.handle = 5;
    a.initial_delivery_count.reset();
    add("attach-without-initial-count", {raw(frame(0, a))});
    a.initial_delivery_count = 7;
    std::array<value, 2> bad{value(binary_view(msg)), value("not a state")};
    a.unsettled = value::map(bad);
    add("attach-bad-unsettled", {raw(frame(0, a))});
    std::array<value, 4> good{value(binary_view(msg.first(3))), value(nullptr),
                              value(binary_view(msg.first(5))), value(nullptr)};
    a.unsettled = value::map(good);
    a.incomplete_unsettled = true;
    add("attach-unsettled", {raw(frame(0, a))});
  }
  {
    amqp::detach d;
    d.handle = 7;
    add("unknown-handles", {raw(cat({frame(0, xfer(8, 0, "x"), msg), frame(0, d)}))});
    add("no-session", {raw(frame(3, amqp::end{}))});
    amqp::begin b;
    b.remote_channel = 9;
    b.incoming_window = 10;
    b.outgoing_window = 10;
    add("begin-unknown-remote-channel", {raw(frame(2, b))});
    amqp::begin b2;
    b2.incoming_window = 5;
    b2.outgoing_window = 5;
    b2.handle_max = 3;
    amqp::attach a;
    a.name = "pipelined";
    a.handle = 3;
    a.role = amqp::role::sender;
    a.initial_delivery_count = 0;
    add("pipelined-begin-attach-transfer",
        {raw(cat({frame(1, b2), frame(1, a), frame(1, xfer(3, 0, "p"), msg)}))});
  }
  {
    amqp::open o;
    o.container_id = "again";
    add("second-open", {raw(frame(0, o))});
    add("channel-above-max", {raw(frame(300, amqp::end{}))});
    amqp::close c;
    std::array<value, 2> info{value(symbol_view{"x-reason"}), value("test")};
    c.error = amqp::error{symbol_view{"amqp:internal-error"}, "peer failed", value::map(info)};
    add("close-with-error", {raw(frame(0, c))});
    amqp::flow f;
    f.incoming_window = 1;
    f.outgoing_window = 1;
    add("payload-after-flow", {raw(frame(0, f, msg))});
    const frame_bytes heartbeat{std::byte{0}, std::byte{0}, std::byte{0}, std::byte{8},
                                std::byte{2}, std::byte{0}, std::byte{0}, std::byte{0}};
    add("heartbeats", {raw(repeat(heartbeat, 5)), wait(31)});
    const frame_bytes huge{std::byte{0x7f}, std::byte{0}, std::byte{0}, std::byte{0},
                           std::byte{2},    std::byte{0}, std::byte{0}, std::byte{0}};
    add("frame-too-large", {raw(huge)});
    add("frames-after-close",
        {act(action::close, {1}),
         raw(cat({frame(0, xfer(0, 0, "late"), msg), frame(0, f), frame(0, amqp::close{})}))});
  }
  {
    params p;
    p.window = 2;
    frame_bytes b;
    for (std::uint32_t i = 0; i < 4; ++i) {
      b = cat({b, frame(0, xfer(0, i, "w" + std::to_string(i)), msg)});
    }
    add("window-violation", {raw(b)}, p);
  }
  return v;
}

std::vector<scenario> hostile_client_scenarios() {
  std::vector<scenario> v;
  auto add = [&](const char* name, std::vector<step> extra) {
    scenario s;
    s.name = std::string("hostile-") + name;
    s.k = kind::client;
    s.peer_messages = 1;
    s.script = {act(action::open), act(action::begin, {0, 0}), act(action::attach_sender, {0, 0}),
                act(action::attach_receiver, {0, 0})};
    s.script.insert(s.script.end(), extra.begin(), extra.end());
    s.script.push_back(act(action::close, {0}));
    v.push_back(std::move(s));
  };
  const auto msg = std::span<const std::byte>(small_message);
  // The peer (server) answered the driver's sender with its receiver, handle 0, and the
  // driver's receiver with its sender, handle 1, on channel 0.
  add("transfer-to-sending-link", {raw(frame(0, xfer(0, 1, "s"), msg))});
  {
    amqp::attach a;
    a.name = "from-server";
    a.handle = 5;
    a.role = amqp::role::sender;
    a.initial_delivery_count = 3;
    std::array<value, 4> unsettled{value(binary_view(msg.first(2))), value(nullptr),
                                   value(binary_view(msg.first(4))), value(nullptr)};
    a.unsettled = value::map(unsettled);
    add("server-attach-unsettled", {raw(frame(0, a)), raw(frame(0, xfer(5, 1, "u"), msg))});
  }
  {
    amqp::flow closed;
    closed.next_incoming_id = 0;
    closed.incoming_window = 0;
    closed.next_outgoing_id = 1;
    closed.outgoing_window = 10;
    closed.handle = 0;
    closed.delivery_count = 0;
    closed.link_credit = 4;
    amqp::flow open = closed;
    open.incoming_window = 100;
    open.drain = true;
    add("zero-window-then-drain",
        {raw(frame(0, closed)), act(action::send, {0, 1}), act(action::send, {0, 2}),
         act(action::abort, {0}), raw(frame(0, open))});
  }
  {
    amqp::detach d;
    d.handle = 1;
    d.closed = false;
    d.error = amqp::error{symbol_view{"amqp:link:stolen"}, {}, value{}};
    amqp::end e;
    e.error = amqp::error{symbol_view{"amqp:session:window-violation"}, "w", value{}};
    add("detach-end-with-errors", {raw(cat({frame(0, d), frame(0, e)}))});
  }
  return v;
}

std::vector<scenario> hostile_sasl_scenarios() {
  std::vector<scenario> v;
  auto add = [&](const char* name, bool client, std::vector<step> script) {
    scenario s;
    s.name = std::string("hostile-") + name;
    s.k = kind::sasl;
    s.p.flags = client ? 1 : 0;
    s.peer_initiates = !client;
    s.peer_username = "alice";
    s.script = std::move(script);
    v.push_back(std::move(s));
  };
  const frame_bytes empty_sasl{std::byte{0}, std::byte{0}, std::byte{0}, std::byte{8},
                               std::byte{2}, std::byte{1}, std::byte{0}, std::byte{0}};
  // Server role: the frames written by hand come first, before the peer's sasl-init.
  add("sasl-empty-frame", false, {raw_now(empty_sasl)});
  add("sasl-outcome-from-client", false, {raw_now(frame(sasl_outcome{sasl_code::ok, {}}))});
  sasl_init init;
  init.mechanism = symbol_view{"ANONYMOUS"};
  add("sasl-init-twice", false, {raw_now(frame(init))});
  std::vector<std::byte> big(600, std::byte{'x'});
  add("sasl-oversized", false, {raw_now(frame(sasl_response{binary_view(big)}))});
  init.mechanism = symbol_view{"PLAIN"};
  const std::string plain("\0user\0pass", 10);
  init.initial_response =
      binary_view(reinterpret_cast<const std::byte*>(plain.data()), plain.size());
  init.hostname = "vhost";
  add("sasl-plain-by-hand", false, {raw_now(frame(init))});
  init.initial_response = binary_view(reinterpret_cast<const std::byte*>(plain.data()), 5);
  add("sasl-plain-malformed", false, {raw_now(frame(init))});
  // Client role: the peer (server) offers its mechanisms and then says nothing more; the
  // frames that follow are written by hand.
  std::array<value, 1> mechs{value(symbol_view{"ANONYMOUS"})};
  sasl_mechanisms m;
  m.sasl_server_mechanisms = symbols{value::array(type::symbol, mechs)};
  add("sasl-mechanisms-twice", true, {wait(0), raw_now(frame(m))});
  amqp::open o;
  o.container_id = "raw-server";
  const auto h = detail::protocol_header_bytes(detail::protocol_id::amqp);
  add("sasl-challenge-to-builtin", true,
      {wait(0),
       raw_now(cat({frame(amqp::sasl_challenge{binary_view(big).first(20)}),
                    frame(sasl_outcome{sasl_code::ok, binary_view(big).first(3)}),
                    frame_bytes(h.begin(), h.end()), frame(0, o)})),
       act(action::close, {0})});
  add("sasl-amqp-frame-during-sasl", true, {wait(0), raw_now(frame(0, amqp::end{}))});
  add("sasl-outcome-auth", true, {wait(0), raw_now(frame(sasl_outcome{sasl_code::auth, {}}))});
  for (auto i = v.size() - 4; i < v.size(); ++i) {
    v[i].peer_sasl_answers = {3};
  }
  return v;
}

std::vector<scenario> sasl_scenarios() {
  std::vector<scenario> v;
  auto add = [&](scenario s) {
    s.k = kind::sasl;
    v.push_back(std::move(s));
  };
  // Server role (flags bit 0 clear): the peer is a client.
  const std::vector<step> short_session = {peer(step::what::peer_send, false, 1),
                                           peer(step::what::peer_close)};
  struct server_case {
    const char* name;
    std::string_view user, mech;
    bool external, pipeline, accept_anonymous;
    std::vector<std::uint8_t> answers;
  };
  const std::vector<server_case> cases = {
      {"server-anonymous", {}, {}, false, false, false, {0}},
      {"server-anonymous-accepted", {}, {}, false, false, true, {}},
      {"server-anonymous-pipelined", {}, {}, false, true, true, {}},
      {"server-plain", "alice", {}, false, false, false, {0}},
      {"server-plain-pipelined", "alice", "PLAIN", false, true, false, {0}},
      {"server-plain-auth-failure", "mallory", {}, false, false, false, {1}},
      {"server-plain-sys", "bob", {}, false, false, false, {4}},
      {"server-plain-sys-perm", "bob", {}, false, false, false, {6}},
      {"server-plain-ok-with-data", "carol", {}, false, false, false, {5}},
      {"server-external", {}, {}, true, false, false, {0}},
      {"server-challenge-response", "dave", {}, false, false, false, {2, 7, 0}},
      {"server-challenge-then-fail", "erin", {}, false, false, false, {2, 1}},
      {"server-answer-later", "frank", {}, false, false, false, {3}},
      {"server-unknown-mechanism", {}, "X-TOKEN", false, true, false, {0}},
  };
  for (const auto& c : cases) {
    scenario s;
    s.name = c.name;
    s.p.flags = c.accept_anonymous ? 2 : 0;
    s.peer_initiates = true;
    s.peer_username = c.user;
    s.peer_mechanism = c.mech;
    s.peer_external = c.external;
    s.peer_pipeline = c.pipeline;
    s.on_sasl = c.answers;
    s.script = short_session;
    if (std::string_view(c.name) == "server-answer-later") {
      s.script.insert(s.script.begin(), act(action::sasl, {0}));
    }
    add(s);
  }
  {
    scenario s;
    s.name = "server-plain-chunks-of-3";
    s.peer_username = "alice";
    s.peer_initiates = true;
    s.max_chunk = 3;
    s.script = short_session;
    add(s);
  }
  // Client role (flags bit 0 set): the peer is a server.
  struct client_case {
    const char* name;
    std::uint8_t mech; // client_mechanism
    bool pipeline;
    std::string_view offered;
    std::vector<std::uint8_t> answers;
  };
  const std::vector<client_case> ccases = {
      {"client-anonymous", 0, false, "ANONYMOUS", {0}},
      {"client-plain", 1, false, "PLAIN ANONYMOUS", {0}},
      {"client-plain-pipelined", 1, true, "PLAIN", {0}},
      {"client-external", 2, false, "EXTERNAL PLAIN", {0}},
      {"client-token-challenges", 3, false, "X-TOKEN", {2, 2, 0}},
      {"client-token-empty", 7, false, "X-TOKEN PLAIN", {2, 0}},
      {"client-plain-authzid", 4, false, "PLAIN", {0}},
      {"client-fallback", 5, false, "EXTERNAL ANONYMOUS", {0}},
      {"client-anonymous-explicit-pipelined", 6, true, "ANONYMOUS", {0}},
      {"client-refused", 1, false, "PLAIN", {1}},
      {"client-builtin-challenged", 1, false, "PLAIN", {2, 0}},
      {"client-no-common-mechanism", 1, false, "GSSAPI", {0}},
  };
  for (const auto& c : ccases) {
    scenario s;
    s.name = c.name;
    s.p.flags = static_cast<std::uint8_t>(1U | (c.pipeline ? 2U : 0U) | (c.mech << 5U));
    s.peer_mechanisms = c.offered;
    s.peer_sasl_answers = c.answers;
    s.on_challenge = {8, 0, 47};
    s.script = {act(action::open), act(action::begin, {0, 0}), act(action::attach_receiver, {0, 0}),
                act(action::close, {0})};
    add(s);
  }
  return v;
}

// ---- running ---------------------------------------------------------------------------------

bool same(const summary& a, const summary& b) {
  return a.output_hash == b.output_hash && a.output_bytes == b.output_bytes &&
         a.events == b.events && a.rounds == b.rounds && a.error == b.error &&
         a.finished == b.finished;
}

std::vector<std::byte> record(const scenario& s, bool& ok) {
  recorder r(s);
  r.start();
  const config c = to_config(s.k, s.p);
  driver d(c, r);
  const summary live = d.run();
  params p = s.p;
  ok = r.tail.size() <= 0xFFFF;
  p.tail_len = static_cast<std::uint16_t>(std::min<std::size_t>(r.tail.size(), 0xFFFF));
  std::vector<std::byte> seed;
  p.write(seed);
  seed.insert(seed.end(), r.middle.begin(), r.middle.end());
  seed.insert(seed.end(), r.tail.begin(), r.tail.end());
  const summary again = run(s.k, reinterpret_cast<const std::uint8_t*>(seed.data()), seed.size());
  if (!same(live, again)) {
    std::fprintf(stderr, "record: %s does not replay as recorded\n", s.name.c_str());
    ok = false;
  }
  std::fprintf(stderr,
               "  %-40s %6zu bytes: %3zu rounds, %3zu events, %4zu bytes out, %2zu in, %2zu out, "
               "peak %zu B%s%s\n",
               s.name.c_str(), seed.size(), live.rounds, live.events, live.output_bytes,
               live.deliveries_received, live.messages_sent, live.peak_memory,
               live.opened ? ", opened" : "", live.error ? ", failed" : "");
  return seed;
}

const char* target_name(kind k) {
  switch (k) {
  case kind::client:
    return "connection_client";
  case kind::server:
    return "connection_server";
  case kind::sasl:
    return "sasl";
  }
  return "?";
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT-DIR | --check\n", argv[0]);
    return 2;
  }
  const std::string_view arg = argv[1];
  const bool check_only = arg == "--check";
  std::vector<scenario> all = client_scenarios();
  for (auto& s : server_scenarios()) {
    all.push_back(std::move(s));
  }
  for (auto& s : sasl_scenarios()) {
    all.push_back(std::move(s));
  }
  for (auto* f : {hostile_client_scenarios, hostile_server_scenarios, hostile_sasl_scenarios}) {
    for (auto& s : f()) {
      all.push_back(std::move(s));
    }
  }
  bool ok = true;
  std::size_t written = 0;
  std::array<std::size_t, 3> failing_seeds{}; // per target
  for (const auto& s : all) {
    bool good = true;
    std::vector<std::byte> seed = record(s, good);
    ok = ok && good;
    if (check_only || !good) {
      continue;
    }
    const std::filesystem::path dir = std::filesystem::path(argv[1]) / target_name(s.k);
    std::filesystem::create_directories(dir);
    auto write = [&](const std::string& name, const std::vector<std::byte>& octets) {
      std::ofstream f(dir / name, std::ios::binary);
      f.write(reinterpret_cast<const char*>(octets.data()),
              static_cast<std::streamsize>(octets.size()));
      ++written;
    };
    write(s.name, seed);
    // The first scenarios of each target again, with an allocation failing on the way.
    if (++failing_seeds[static_cast<std::size_t>(s.k)] <= 2) {
      const summary sum = run(s.k, reinterpret_cast<const std::uint8_t*>(seed.data()), seed.size());
      for (std::size_t part : {1U, 2U, 3U}) {
        const std::size_t at = std::min<std::size_t>(sum.allocations * part / 4 + 1, 0xFFFF);
        std::vector<std::byte> failing = seed;
        failing[14] = std::byte{static_cast<std::uint8_t>(at >> 8U)};
        failing[15] = std::byte{static_cast<std::uint8_t>(at & 0xFFU)};
        (void)run(s.k, reinterpret_cast<const std::uint8_t*>(failing.data()), failing.size());
        write(s.name + "-fail-" + std::to_string(at), failing);
      }
    }
  }
  std::fprintf(stderr, "record: %zu scenarios, %zu seeds written%s\n", all.size(), written,
               ok ? "" : ", FAILURES");
  return ok ? 0 : 1;
}
