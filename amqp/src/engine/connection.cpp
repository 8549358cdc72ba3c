// The connection engine: bytes in and out, protocol headers, open/close, timers, and the
// public amqp::connection API (which forwards to connection_impl and turns allocation
// failures into a sticky errc::out_of_memory).
#include "amqp/connection.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <utility>

#include "amqp/assert.hpp"
#include "engine/engine.hpp"
#include "frame/transfer_codec.hpp"

namespace amqp::detail {

namespace {

// Copies `s` into `store` and returns a view of the copy.
std::string_view keep(pstring& store, std::string_view s) {
  store.assign(s.data(), s.size());
  return store;
}

} // namespace

connection_impl::connection_impl(const connection_options& o)
    : mem(o.memory != nullptr ? o.memory : std::pmr::new_delete_resource()), opts(o),
      container_id(mem), hostname(mem), sasl_mechanism(mem), sasl_username(mem), sasl_password(mem),
      sasl_authzid(mem), sasl_hostname(mem), sasl_server_mechanisms(mem),
      sasl_initial_response(mem), open_values(mem), in(mem), out(mem), out_taken(mem),
      deferred(mem), retired(mem), attaches(mem), events(mem), sasl_chosen(mem), endpoint(mem),
      sessions(mem), remote_channels(mem), links(mem), free_links(mem) {
  opts.memory = mem;
  opts.container_id = keep(container_id, o.container_id);
  opts.hostname = keep(hostname, o.hostname);
  opts.sasl.mechanism = keep(sasl_mechanism, o.sasl.mechanism);
  opts.sasl.username = keep(sasl_username, o.sasl.username);
  opts.sasl.password = keep(sasl_password, o.sasl.password);
  opts.sasl.authzid = keep(sasl_authzid, o.sasl.authzid);
  opts.sasl.hostname = keep(sasl_hostname, o.sasl.hostname);
  opts.sasl.server_mechanisms = keep(sasl_server_mechanisms, o.sasl.server_mechanisms);
  if (o.sasl.initial_response) {
    sasl_initial_response.assign(o.sasl.initial_response->begin(), o.sasl.initial_response->end());
    opts.sasl.initial_response = std::span<const std::byte>(sasl_initial_response);
  }
  // The open frame's values are encoded once, here, and decoded back into views. One that
  // has no encoding, or the open they make, refuses the options: our open is never another
  // frame than the one asked for (each value decodes into its own field).
  const value* vals[3] = {&o.offered_capabilities, &o.desired_capabilities, &o.properties};
  value* dst[3] = {&opts.offered_capabilities, &opts.desired_capabilities, &opts.properties};
  std::size_t offsets[3] = {};
  for (int i = 0; i < 3; ++i) {
    *dst[i] = value{};
    if (vals[i]->is_null()) {
      continue;
    }
    auto n = encoded_size(*vals[i]);
    if (!n) {
      refuse_options(n.error());
      return;
    }
    offsets[i] = open_values.size();
    open_values.resize(offsets[i] + *n);
    (void)encode(*vals[i], std::span<std::byte>(open_values).subspan(offsets[i], *n));
  }
  for (int i = 0; i < 3; ++i) {
    if (vals[i]->is_null()) {
      continue;
    }
    std::size_t used = 0;
    auto v = decode_value(std::span<const std::byte>(open_values).subspan(offsets[i]), used);
    AMQP_ASSERT(v);
    *dst[i] = *v;
  }
  // §2.4.1: until the peer's open arrives, frames are at most 512 bytes, and ours may have
  // to go first: an open that does not fit, or whose values do not fit its fields (symbols,
  // a map), could never be sent.
  if (auto n = encoded_frame_size(open_frame(), 0); !n || *n > min_max_frame_size) {
    refuse_options(n ? errc::frame_too_large : n.error());
    return;
  }
  limits.max_frame_size = min_max_frame_size; // §2.4.1: until our open has been sent
  limits.sasl_max_frame_size = opts.limits.sasl_max_frame_size;
  limits.decode = opts.limits.decode;
  if (opts.role == connection_role::client) {
    if (opts.sasl.enabled) {
      write_header(protocol_id::sasl);
      sasl = sasl_step::wait_mechanisms;
      if (opts.sasl.pipeline) {
        sasl_client_send_init();
        write_header(protocol_id::amqp);
      }
    } else {
      write_header(protocol_id::amqp);
    }
  }
}

void connection_impl::push(event e) {
  events.push_back(std::move(e));
}

void connection_impl::write_header(protocol_id id) {
  if (id == protocol_id::amqp && reading_input) {
    amqp_header_due = true; // written by process_input, after the input read
    return;
  }
  const auto h = protocol_header_bytes(id);
  out.append(h);
  last_output = now;
  if (id == protocol_id::amqp) {
    amqp_header_sent = true;
    // Frames written before the header (pipelined open, begin, attach) follow it.
    out.append(deferred.view());
    deferred.release();
  }
}

result<std::size_t> connection_impl::frame_size(const performative& p,
                                                std::size_t payload_size) const noexcept {
  auto n = encoded_frame_size(p, payload_size);
  if (!n) {
    return n.error();
  }
  // §2.4.1: until the peer's open arrives, frames are at most 512 bytes.
  const std::uint32_t limit =
      endpoint.open_received ? endpoint.remote_max_frame_size : min_max_frame_size;
  if (*n > limit) {
    return errc::frame_too_large;
  }
  return n;
}

result<void> connection_impl::write_frame(std::uint16_t channel, const performative& p,
                                          std::span<const std::byte> payload) {
  // Checked first: a frame that cannot be sent leaves the output as it was.
  auto n = frame_size(p, payload.size());
  if (!n) {
    return n.error();
  }
  // A disposition being coalesced goes out before any other frame but a transfer: a flow
  // after a release must not reach the peer first (it would send the next message before
  // taking the released one back), nor a detach, end or close. Transfers do not wait for
  // it, so a broker that settles each message it takes and sends one on meanwhile still
  // settles a whole batch with one range.
  if (disp.active && !std::holds_alternative<amqp::disposition>(p) &&
      !std::holds_alternative<amqp::transfer>(p)) {
    flush_disposition();
  }
  byte_buffer& dst = amqp_header_sent ? out : deferred;
  const std::size_t at = dst.size();
  std::byte* at_ptr = dst.grow(*n);
  auto w = encode_frame(channel, p, payload, std::span<std::byte>(at_ptr, *n));
  if (!w) {
    dst.truncate(at);
    return w.error();
  }
  last_output = now;
  return {};
}

void connection_impl::write_own_frame(std::uint16_t channel, const performative& p) {
  const auto w = write_frame(channel, p);
  AMQP_ASSERT(w);
  (void)w;
}

result<void> connection_impl::write_sasl(const sasl_frame& f) {
  auto n = encoded_frame_size(f);
  if (!n) {
    return n.error();
  }
  const std::size_t at = out.size();
  std::byte* at_ptr = out.grow(*n);
  auto w = encode_frame(f, std::span<std::byte>(at_ptr, *n));
  if (!w) {
    out.truncate(at);
    return w.error();
  }
  last_output = now;
  return {};
}

// Drops the input already processed, so that `incoming` bytes fit after the partial frame
// held. Moving that frame to the front costs a copy of it, so it is done only when the bytes
// would not fit, once per buffer's worth of input. A partial frame large against the buffer
// (big frames read in smaller pieces) would be moved at nearly every read: the buffer grows
// instead, to four times the larger of the frame part and the read, which bounds the moves
// to a quarter of the input (the peer's frames are bounded by our max-frame-size).
void connection_impl::make_room(std::size_t incoming) {
  if (in_pos == in.size()) {
    in.clear();
    in_pos = 0;
  }
  if (incoming <= in.capacity() - in.size()) {
    return;
  }
  const std::size_t partial = in.size() - in_pos;
  const std::size_t wanted = 8 * std::max(partial, incoming);
  if (partial > in.capacity() / 4 && in.capacity() < wanted) {
    in.reallocate_from(in_pos, wanted);
  } else {
    in.erase_front(in_pos);
  }
  in_pos = 0;
}

// Starts a receive of `incoming` bytes: checks the state, resets the event queue, and makes
// room in the input buffer.
result<void> connection_impl::begin_input(std::size_t incoming, time_point t) {
  if (fatal) {
    return fatal;
  }
  if (event_pos < events.size()) {
    return errc::would_block;
  }
  if (!started) {
    started = true;
    handshake_deadline = t + opts.timeouts.handshake;
    last_output = t;
  }
  now = t;
  events.clear();
  event_pos = 0;
  retired.clear();
  attaches.clear();
  ++epoch;
  make_room(incoming);
  if (incoming > 0) {
    last_input = t;
  }
  return {};
}

result<void> connection_impl::end_input() {
  if (ph != phase::done) {
    process_input();
  }
  if (!fatal) {
    replenish_windows();
  }
  if (fatal) {
    return fatal;
  }
  return {};
}

result<void> connection_impl::receive(std::span<const std::byte> bytes, time_point t) {
  if (auto r = begin_input(bytes.size(), t); !r) {
    return r;
  }
  if (ph != phase::done) {
    in.append(bytes);
  }
  return end_input();
}

std::span<std::byte> connection_impl::read_buffer(std::size_t n) {
  // Not while input waits behind a full event queue either: the next next_event() reads
  // on through it, which would clear the buffer handed out here (regression test "no read
  // buffer while input is paused").
  if (fatal || finished || event_pos < events.size() || input_paused) {
    return {};
  }
  make_room(n);
  return in.spare(n).first(n);
}

result<void> connection_impl::read_done(std::size_t n, time_point t) {
  if (n > in.capacity() - in.size()) {
    return errc::invalid_argument;
  }
  // read_buffer() already made room: nothing here moves the bytes written into it.
  const std::size_t held = in.size();
  if (auto r = begin_input(0, t); !r) {
    return r;
  }
  AMQP_ASSERT(in.size() == held);
  (void)held;
  if (n > 0) {
    last_input = t;
  }
  if (ph != phase::done) {
    in.commit(n);
  }
  return end_input();
}

void connection_impl::process_input() {
  // Our AMQP header (and the frames waiting for it) goes out once this input is read, so a
  // peer's open that came with its header is known before they are written.
  reading_input = true;
  read_frames();
  reading_input = false;
  if (amqp_header_due) {
    amqp_header_due = false;
    write_header(protocol_id::amqp);
  }
}

void connection_impl::read_frames() {
  while (ph != phase::done && !fatal) {
    if (events.size() - event_pos >= opts.limits.max_events) {
      input_paused = true; // bounded events: the rest is read once they are pulled
      return;
    }
    if (ph == phase::header || ph == phase::amqp_header) {
      if (!process_header()) {
        return;
      }
      continue;
    }
    if (sasl == sasl_step::wait_decision || sasl == sasl_step::wait_challenge_answer) {
      return; // the application decides first; the rest stays buffered
    }
    const std::size_t avail = in.size() - in_pos;
    if (avail < frame_header_size) {
      return;
    }
    const auto h =
        parse_frame_header(std::span<const std::byte, frame_header_size>(in.data() + in_pos, 8));
    const frame_type expected = ph == phase::sasl ? frame_type::sasl : frame_type::amqp;
    // §2.3.1, §2.7.1, §5.3.1: the header alone decides whether the frame is acceptable,
    // before its body is buffered.
    if (auto ok = check_frame_header(h, expected, limits); !ok) {
      fail(ok.error(), "frame header refused");
      return;
    }
    if (h.size > avail) {
      return;
    }
    if (expected == frame_type::amqp && h.doff == 2 && endpoint.open_received &&
        !endpoint.close_sent && h.channel <= opts.limits.channel_max) {
      // The common frame, decoded without the generic machinery (same result).
      amqp::transfer t;
      std::span<const std::byte> payload;
      const auto body = std::span<const std::byte>(in.data() + in_pos, h.size).subspan(8);
      if (try_decode_transfer(body, t, payload)) {
        in_pos += h.size;
        on_transfer(h.channel, t, payload);
        continue;
      }
    }
    auto f = decode_frame(std::span<const std::byte>(in.data() + in_pos, h.size), limits.decode);
    in_pos += h.size;
    if (!f) {
      fail(f.error(), "undecodable frame");
      return;
    }
    handle_frame(*f);
  }
}

bool connection_impl::process_header() {
  const std::size_t avail = in.size() - in_pos;
  static constexpr std::byte amqp_prefix[4] = {std::byte{'A'}, std::byte{'M'}, std::byte{'Q'},
                                               std::byte{'P'}};
  if (avail == 0) {
    return false;
  }
  if (avail < protocol_header_size) {
    // A stream that cannot become "AMQP" is refused at once (e.g. an HTTP request).
    if (std::memcmp(in.data() + in_pos, amqp_prefix, std::min<std::size_t>(avail, 4)) == 0) {
      return false;
    }
  }
  protocol_header_info info{};
  if (avail >= protocol_header_size) {
    info = classify_protocol_header(
        std::span<const std::byte, protocol_header_size>(in.data() + in_pos, 8));
    in_pos += protocol_header_size;
  }
  const bool sasl_on = opts.sasl.enabled;
  const bool after_sasl = ph == phase::amqp_header;
  if (opts.role == connection_role::server) {
    // §2.2: a server that does not accept the header answers with the header it supports
    // and closes the socket.
    if (!after_sasl && info.kind == protocol_header_kind::sasl && sasl_on) {
      write_header(protocol_id::sasl);
      on_sasl_server_start();
      ph = phase::sasl;
      return true;
    }
    if (info.kind == protocol_header_kind::amqp && (!sasl_on || after_sasl)) {
      write_header(protocol_id::amqp);
      ph = phase::amqp;
      return true;
    }
    if (info.kind == protocol_header_kind::amqp && !after_sasl && opts.sasl.optional) {
      // §5.3.1 lets a server require SASL; this one does not.
      sasl_skipped = true;
      write_header(protocol_id::amqp);
      ph = phase::amqp;
      return true;
    }
    write_header(sasl_on && !after_sasl ? protocol_id::sasl : protocol_id::amqp);
    fail_local(errc::protocol_mismatch);
    return false;
  }
  const auto want =
      sasl_on && !after_sasl ? protocol_header_kind::sasl : protocol_header_kind::amqp;
  if (info.kind != want) {
    fail_local(errc::protocol_mismatch);
    return false;
  }
  if (want == protocol_header_kind::sasl) {
    ph = phase::sasl;
  } else {
    ph = phase::amqp;
  }
  return true;
}

void connection_impl::handle_frame(const frame_view& f) {
  if (f.type == frame_type::sasl) {
    on_sasl(std::get<sasl_frame>(f.body));
    return;
  }
  if (std::holds_alternative<heartbeat>(f.body)) {
    return; // §2.4.5: only resets the idle timer (done in receive)
  }
  const auto& p = std::get<performative>(f.body);
  if (!endpoint.open_received && !std::holds_alternative<amqp::open>(p)) {
    // §2.4.1: the first frame after the protocol header is open.
    fail(errc::illegal_state, "the first frame must be open");
    return;
  }
  if (!f.payload.empty() && !std::holds_alternative<amqp::transfer>(p)) {
    // §2.3.2: only a transfer carries a payload after its performative.
    fail(errc::framing_error, "payload after a performative other than transfer");
    return;
  }
  if (endpoint.close_sent && !std::holds_alternative<amqp::close>(p)) {
    return; // §2.4.3: after close, everything but the peer's close is ignored
  }
  if (f.channel > opts.limits.channel_max) {
    // §2.7.1 channel-max: "A peer that receives a channel number outside the supported
    // range MUST close the connection with the framing-error error-code."
    fail(errc::framing_error, "channel above channel-max");
    return;
  }
  switch (p.index()) {
  case 0:
    on_open(std::get<amqp::open>(p), f);
    break;
  case 1:
    on_begin(f.channel, std::get<amqp::begin>(p));
    break;
  case 2:
    on_attach(f.channel, std::get<amqp::attach>(p));
    break;
  case 3:
    on_flow(f.channel, std::get<amqp::flow>(p));
    break;
  case 4:
    on_transfer(f.channel, std::get<amqp::transfer>(p), f.payload);
    break;
  case 5:
    on_disposition(f.channel, std::get<amqp::disposition>(p));
    break;
  case 6:
    on_detach(f.channel, std::get<amqp::detach>(p));
    break;
  case 7:
    on_end(f.channel, std::get<amqp::end>(p));
    break;
  default:
    on_close(std::get<amqp::close>(p));
    break;
  }
}

void connection_impl::on_open(const amqp::open& o, const frame_view& f) {
  if (endpoint.open_received) {
    fail(errc::not_allowed, "second open"); // §2.4.1: open is sent once
    return;
  }
  // The peer's open stays available for the engine's lifetime: keep its bytes.
  endpoint.remote_open_bytes.assign(f.bytes.begin(), f.bytes.end());
  auto again = decode_frame(endpoint.remote_open_bytes, limits.decode);
  endpoint.remote_open = again ? std::get<amqp::open>(std::get<performative>(again->body)) : o;
  endpoint.open_received = true;
  endpoint.st.remote = endpoint_status::active;
  if (o.max_frame_size < min_max_frame_size) {
    // §2.7.1: max-frame-size is at least MIN-MAX-FRAME-SIZE (512).
    fail(errc::frame_size_too_small, "max-frame-size below 512");
    return;
  }
  if (o.idle_time_out && *o.idle_time_out != 0 &&
      milliseconds{*o.idle_time_out} < opts.timeouts.min_peer_idle_time_out) {
    // §2.4.5: a peer that cannot support the proposed idle timeout closes with an error.
    fail(errc::invalid_field, "idle-time-out below the minimum this end supports");
    return;
  }
  endpoint.remote_max_frame_size = o.max_frame_size;
  endpoint.remote_channel_max = o.channel_max;
  endpoint.remote_idle = milliseconds{o.idle_time_out.value_or(0)};
  push(connection_opened{endpoint.remote_open});
  end_sessions_above_channel_max();
}

// §2.7.1: a session begun before the peer's open, on a channel above the channel-max that
// open announces, can say nothing more (an end on that channel breaks the same rule). Its
// frames still waiting for our AMQP header are dropped; the session ends locally.
void connection_impl::end_sessions_above_channel_max() {
  const std::size_t first = std::size_t{endpoint.remote_channel_max} + 1;
  if (first >= sessions.size()) {
    return;
  }
  if (!amqp_header_sent) {
    std::size_t keep = 0;
    for (std::size_t at = 0; at + frame_header_size <= deferred.size();) {
      const auto h = parse_frame_header(
          std::span<const std::byte, frame_header_size>(deferred.data() + at, frame_header_size));
      if (h.channel < first) {
        std::memmove(deferred.data() + keep, deferred.data() + at, h.size);
        keep += h.size;
      }
      at += h.size;
    }
    deferred.truncate(keep);
  }
  if (disp.active && disp.session >= first) {
    disp.active = false;
  }
  for (std::size_t i = first; i < sessions.size(); ++i) {
    session_state& s = sessions[i];
    if (!s.used || s.st.local == endpoint_status::closed) {
      continue;
    }
    const auto idx = static_cast<std::uint16_t>(i);
    s.st.local = endpoint_status::closed;
    s.st.remote = endpoint_status::closed;
    amqp::error err{symbol_view{to_condition_symbol(errc::resource_limit)},
                    "channel above the peer's channel-max", value{}};
    push(session_ended{session_id{idx}, errc::resource_limit, err, false});
    free_session_if_done(idx);
  }
}

void connection_impl::on_close(const amqp::close& c) {
  endpoint.st.remote = endpoint_status::closed;
  const bool answer = !endpoint.close_sent;
  if (answer) {
    // §2.4.3: a close is answered with a close.
    endpoint.st.local = endpoint_status::closed;
    send_close(std::nullopt);
  }
  ph = phase::done;
  finished = true;
  report_closed(c.error ? std::error_code(errc::remote_error) : std::error_code{}, c.error, true);
}

amqp::open connection_impl::open_frame() const {
  amqp::open o;
  o.container_id = opts.container_id;
  if (!opts.hostname.empty()) {
    o.hostname = opts.hostname;
  }
  o.max_frame_size = opts.limits.max_frame_size;
  o.channel_max = opts.limits.channel_max;
  if (opts.timeouts.idle_time_out.count() > 0) {
    // Half the real threshold (§2.4.5); see engine_timeouts::idle_time_out.
    o.idle_time_out = static_cast<std::uint32_t>((opts.timeouts.idle_time_out.count() + 1) / 2);
  }
  o.offered_capabilities = symbols{opts.offered_capabilities};
  o.desired_capabilities = symbols{opts.desired_capabilities};
  o.properties = opts.properties;
  return o;
}

void connection_impl::refuse_options(std::error_code ec) {
  fatal = ec;
  ph = phase::done;
  finished = true;
  closed_reported = true; // as when the engine cannot be allocated: no event, nothing sent
}

void connection_impl::send_open() {
  // The constructor checked that the open encodes within 512 bytes, the least frame size
  // any peer accepts (§2.4.1).
  write_own_frame(0, open_frame());
  endpoint.open_sent = true;
  // Our open announces the frame size we accept from now on (§2.7.1).
  limits.max_frame_size = std::max(opts.limits.max_frame_size, min_max_frame_size);
}

void connection_impl::send_close(const std::optional<amqp::error>& e) {
  if (!endpoint.open_sent) {
    send_open(); // §2.4.1: close is preceded by open
  }
  amqp::close c;
  c.error = e;
  // close() checked the application's condition; the engine's own (fail) is a condition
  // symbol and a short description, which always encode within 512 bytes: a protocol
  // error's close always goes out.
  write_own_frame(0, c);
  endpoint.close_sent = true;
  endpoint.close_deadline = now + opts.timeouts.close;
}

void connection_impl::report_closed(std::error_code ec, const std::optional<amqp::error>& e,
                                    bool remote) {
  if (closed_reported) {
    return;
  }
  push(connection_closed{ec, e, remote}); // may throw: then it is tried again
  closed_reported = true;
}

void connection_impl::fail(std::error_code ec, std::string_view description) {
  if (fatal) {
    return;
  }
  std::optional<amqp::error> err;
  if (ph == phase::amqp || (amqp_header_sent && ph != phase::header)) {
    err = amqp::error{symbol_view{to_condition_symbol(ec)}, description, value{}};
    if (!endpoint.close_sent) {
      endpoint.st.local = endpoint_status::closed;
      send_close(err);
    }
  }
  fatal = ec;
  ph = phase::done;
  finished = true;
  report_closed(ec, err, false);
}

void connection_impl::fail_local(std::error_code ec) {
  if (fatal) {
    return;
  }
  fatal = ec;
  ph = phase::done;
  finished = true;
  report_closed(ec, std::nullopt, false);
}

std::optional<time_point> connection_impl::deadline() const noexcept {
  if (finished) {
    return std::nullopt;
  }
  if (!started) {
    // The clocks (handshake, idle) start at the first receive() or on_deadline(): a driver
    // that only waits for deadlines starts them at once.
    return time_point::min();
  }
  std::optional<time_point> d;
  auto take = [&](time_point t) {
    if (!d || t < *d) {
      d = t;
    }
  };
  if (!endpoint.open_received && opts.timeouts.handshake.count() > 0) {
    take(handshake_deadline);
  }
  if (endpoint.open_sent && opts.timeouts.idle_time_out.count() > 0) {
    take(last_input + opts.timeouts.idle_time_out);
  }
  if (endpoint.remote_idle.count() > 0 && amqp_header_sent && !endpoint.close_sent) {
    take(last_output + endpoint.remote_idle / 2);
  }
  if (endpoint.close_deadline) {
    take(*endpoint.close_deadline);
  }
  for (std::size_t i = 0; end_timers != 0 && i < sessions.size(); ++i) {
    if (sessions[i].used && sessions[i].end_deadline) {
      take(*sessions[i].end_deadline);
    }
  }
  for (std::size_t i = 0; detach_timers != 0 && !endpoint.close_sent && i < links.size(); ++i) {
    if (links[i].used && links[i].detach_deadline) {
      take(*links[i].detach_deadline);
    }
  }
  return d;
}

void connection_impl::on_deadline(time_point t) {
  if (finished) {
    return;
  }
  if (!started) {
    started = true;
    handshake_deadline = t + opts.timeouts.handshake;
    last_output = t;
    last_input = t;
  }
  now = t;
  if (endpoint.close_deadline && t >= *endpoint.close_deadline) {
    // The peer did not answer our close in time: give up on it (§2.4.3 allows closing the
    // socket once close has been sent).
    ph = phase::done;
    finished = true;
    if (!fatal) {
      fatal = errc::timeout;
    }
    report_closed(errc::timeout, std::nullopt, false);
    return;
  }
  if (!endpoint.open_received && opts.timeouts.handshake.count() > 0 && t >= handshake_deadline) {
    fail(errc::timeout, "handshake not finished in time");
    return;
  }
  if (endpoint.open_sent && opts.timeouts.idle_time_out.count() > 0 &&
      t >= last_input + opts.timeouts.idle_time_out) {
    // §2.4.5: the peer sent nothing within our idle timeout.
    fail(errc::timeout, "idle timeout: no frame received");
    return;
  }
  for (std::size_t i = 0; end_timers != 0 && i < sessions.size(); ++i) {
    const session_state& s = sessions[i];
    if (s.used && s.end_deadline && t >= *s.end_deadline) {
      // A session the peer does not end: the connection goes (§2.4.3 bounds that too).
      fail(errc::timeout, "the peer did not answer end");
      return;
    }
  }
  // After our close, the close timeout alone bounds what is left (nothing more is sent).
  for (std::size_t i = 0; detach_timers != 0 && !endpoint.close_sent && i < links.size(); ++i) {
    link_state& l = links[i];
    if (l.used && l.detach_deadline && t >= *l.detach_deadline) {
      // A link the peer does not detach: its session ends (itself under a deadline), so
      // the rest of the connection carries on.
      disarm(l.detach_deadline, detach_timers);
      session_error(l.session, errc::timeout, "the peer did not answer detach");
      if (fatal) {
        return;
      }
    }
  }
  if (endpoint.remote_idle.count() > 0 && amqp_header_sent && !endpoint.close_sent &&
      t >= last_output + endpoint.remote_idle / 2) {
    // §2.4.5: an empty frame keeps the connection alive within the peer's idle timeout.
    flush_disposition();
    out.append(heartbeat_frame);
    last_output = t;
  }
}

} // namespace amqp::detail

namespace amqp {

using detail::connection_impl;

void detail::connection_impl_deleter::operator()(connection_impl* p) const noexcept {
  std::pmr::memory_resource* m = p->mem;
  p->~connection_impl();
  m->deallocate(p, sizeof(connection_impl), alignof(connection_impl));
}

namespace {

// Runs `f` on the engine; an allocation failure makes the connection fail for good with
// errc::out_of_memory (all its memory is still owned by its containers, so nothing leaks).
template <class F> auto guarded(connection_impl* c, F&& f) -> decltype(f()) {
  if (c == nullptr) {
    return errc::out_of_memory; // the constructor could not allocate the engine
  }
#if defined(__cpp_exceptions)
  try {
    return f();
  } catch (const std::bad_alloc&) {
    // The first fatal error stays the error (it may be a protocol error whose report ran
    // out of memory): every call returns what error() says.
    if (!c->fatal) {
      c->fatal = errc::out_of_memory;
    }
    c->ph = detail::phase::done;
    c->finished = true;
    try {
      c->report_closed(c->fatal, std::nullopt, false);
    } catch (const std::bad_alloc&) {
      c->closed_reported = true; // no room even for the event: error() still says it
    }
    return c->fatal;
  }
#else
  return f();
#endif
}

connection_impl* make_impl(const connection_options& o) noexcept {
  std::pmr::memory_resource* m = o.memory != nullptr ? o.memory : std::pmr::new_delete_resource();
#if defined(__cpp_exceptions)
  void* p = nullptr;
  try {
    p = m->allocate(sizeof(connection_impl), alignof(connection_impl));
    return new (p) connection_impl(o);
  } catch (const std::bad_alloc&) {
    // Members built before the failure were destroyed by the unwinding; the memory
    // of the engine itself is given back here.
    if (p != nullptr) {
      m->deallocate(p, sizeof(connection_impl), alignof(connection_impl));
    }
    return nullptr;
  }
#else
  void* p = m->allocate(sizeof(connection_impl), alignof(connection_impl));
  return new (p) connection_impl(o);
#endif
}

} // namespace

connection::connection(const connection_options& opts) : impl_(make_impl(opts)) {}

result<connection> connection::create(const connection_options& opts) noexcept {
  connection c(opts);
  if (!c.impl_) {
    return errc::out_of_memory;
  }
  if (c.impl_->fatal) {
    return c.impl_->fatal; // options refused (invalid_argument, frame_too_large)
  }
  return c;
}
connection::~connection() = default;
connection::connection(connection&&) noexcept = default;
connection& connection::operator=(connection&&) noexcept = default;

result<void> connection::receive(std::span<const std::byte> in, time_point now) {
  return guarded(impl_.get(), [&] { return impl_->receive(in, now); });
}

std::span<std::byte> connection::read_buffer(std::size_t n) {
  std::span<std::byte> r;
  (void)guarded(impl_.get(), [&]() -> result<void> {
    r = impl_->read_buffer(n);
    return {};
  });
  return r;
}

result<void> connection::read_done(std::size_t n, time_point now) {
  return guarded(impl_.get(), [&] { return impl_->read_done(n, now); });
}

bool connection::wants_read() const noexcept {
  if (!impl_) {
    return false;
  }
  const auto& c = *impl_;
  return !c.finished && c.event_pos >= c.events.size() && !c.input_paused &&
         c.sasl != connection_impl::sasl_step::wait_decision &&
         c.sasl != connection_impl::sasl_step::wait_challenge_answer;
}

std::span<const std::byte> connection::pending_output() noexcept {
  if (!impl_) {
    return {};
  }
  auto& c = *impl_;
  if (c.disp.active) {
    (void)guarded(&c, [&]() -> result<void> {
      c.flush_disposition();
      return {};
    });
  }
  return c.out.view().subspan(c.out_pos);
}

std::span<const std::byte> connection::take_output() noexcept {
  if (!impl_ || impl_->output_out) {
    return {};
  }
  auto& c = *impl_;
  const auto pending = pending_output();
  if (pending.empty()) {
    return {};
  }
  // The filled buffer goes to the caller; the engine goes on in the other one (empty, its
  // capacity kept from the previous batch: no allocation in steady state).
  const std::size_t from = c.out_pos;
  c.out.swap(c.out_taken);
  c.out.clear();
  c.out_pos = 0;
  c.output_out = true;
  return c.out_taken.view().subspan(from);
}

void connection::output_written() noexcept {
  if (impl_) {
    impl_->out_taken.clear();
    impl_->output_out = false;
  }
}

void connection::release_input_buffer() noexcept {
  if (!impl_) {
    return;
  }
  auto& c = *impl_;
  // Nothing is freed that holds bytes still to process or that a queued event views.
  if (c.event_pos < c.events.size() || c.input_paused || c.in_pos != c.in.size()) {
    return;
  }
  // A large event queue is kept while busy, i.e. the last input used more than a quarter of
  // it: a connection that reads a burst of events at every read would grow it again each time.
  constexpr std::size_t small_queue = 8;
  if (c.events.capacity() <= small_queue || c.events.size() <= c.events.capacity() / 4) {
    c.events.clear();
    c.events.shrink_to_fit();
    c.event_pos = 0;
  }
  if (c.retired.capacity() <= small_queue || c.retired.size() <= c.retired.capacity() / 4) {
    c.retired.clear();
    c.retired.shrink_to_fit();
  }
  // The copies of the peer's attaches that link_attached events viewed (one per link, ~700
  // bytes each): a server's last input is often the attach of a link that then stays quiet.
  c.attaches.clear();
  c.in.release();
  c.in_pos = 0;
}

void connection::release_output_buffers() noexcept {
  if (!impl_) {
    return;
  }
  auto& c = *impl_;
  if (c.out_pos == c.out.size()) {
    c.out.release();
    c.out_pos = 0;
  }
  if (!c.output_out) {
    c.out_taken.release();
  }
}

void connection::consume_output(std::size_t n) noexcept {
  if (!impl_) {
    return;
  }
  auto& c = *impl_;
  AMQP_ASSERT(n <= c.out.size() - c.out_pos);
  c.out_pos += n;
  if (c.out_pos == c.out.size()) {
    c.out.clear();
    c.out_pos = 0;
  }
}

std::optional<event> connection::next_event() {
  if (!impl_) {
    return std::nullopt;
  }
  auto& c = *impl_;
  if (c.event_pos >= c.events.size() && c.input_paused) {
    // The queue was full: read on through the input already received. Views of the events
    // pulled so far stay valid (the input buffer is not moved before the next receive()).
    c.events.clear();
    c.event_pos = 0;
    c.input_paused = false;
    (void)guarded(&c, [&]() -> result<void> {
      c.process_input();
      if (!c.fatal) {
        c.replenish_windows();
      }
      return {};
    });
  }
  if (c.event_pos >= c.events.size()) {
    return std::nullopt;
  }
  return std::move(c.events[c.event_pos++]);
}

std::optional<time_point> connection::next_deadline() const noexcept {
  return impl_ ? impl_->deadline() : std::nullopt;
}

void connection::on_deadline(time_point now) {
  (void)guarded(impl_.get(), [&]() -> result<void> {
    impl_->on_deadline(now);
    return {};
  });
}

void connection::on_transport_closed() {
  if (!impl_) {
    return;
  }
  auto& c = *impl_;
  if (c.ph == detail::phase::done && c.closed_reported) {
    c.finished = true;
    return;
  }
  (void)guarded(&c, [&]() -> result<void> {
    c.fail_local(errc::connection_lost);
    return {};
  });
}

bool connection::finished() const noexcept {
  return impl_ == nullptr || impl_->finished;
}

std::error_code connection::error() const noexcept {
  return impl_ ? impl_->fatal : std::error_code(errc::out_of_memory);
}

bool connection::sasl_skipped() const noexcept {
  return impl_ != nullptr && impl_->sasl_skipped;
}

result<void> connection::sasl_challenge(std::span<const std::byte> challenge) {
  return guarded(impl_.get(), [&] { return impl_->sasl_challenge(challenge); });
}

result<void> connection::sasl_complete(sasl_code code, std::span<const std::byte> data) {
  return guarded(impl_.get(), [&] { return impl_->sasl_complete(code, data); });
}

result<void> connection::sasl_respond(std::span<const std::byte> response) {
  return guarded(impl_.get(), [&] { return impl_->sasl_respond(response); });
}

result<void> connection::open() {
  return guarded(impl_.get(), [&]() -> result<void> {
    auto& c = *impl_;
    if (c.fatal) {
      return c.fatal;
    }
    if (c.endpoint.st.local != endpoint_status::uninit) {
      return errc::invalid_state;
    }
    c.endpoint.st.local = endpoint_status::active;
    c.send_open();
    return {};
  });
}

result<void> connection::close(const std::optional<amqp::error>& error) {
  return guarded(impl_.get(), [&]() -> result<void> {
    auto& c = *impl_;
    if (c.fatal) {
      return c.fatal;
    }
    if (c.endpoint.st.local == endpoint_status::closed || c.endpoint.close_sent) {
      return errc::invalid_state;
    }
    // A close that cannot be sent as asked is refused; none other goes out instead.
    amqp::close frame;
    frame.error = error;
    if (auto n = c.frame_size(frame, 0); !n) {
      return n.error();
    }
    c.endpoint.st.local = endpoint_status::closed;
    c.send_close(error);
    if (c.endpoint.st.remote == endpoint_status::closed) {
      c.ph = detail::phase::done;
      c.finished = true;
    }
    return {};
  });
}

endpoint_state connection::state() const noexcept {
  return impl_ ? impl_->endpoint.st : endpoint_state{};
}

const amqp::open* connection::remote_open() const noexcept {
  return impl_ && impl_->endpoint.open_received ? &impl_->endpoint.remote_open : nullptr;
}

result<session_id> connection::begin(const session_options& o) {
  return guarded(impl_.get(), [&] { return impl_->begin(o); });
}

result<void> connection::begin(session_id s, const session_options& o) {
  return guarded(impl_.get(), [&] { return impl_->begin(s, o); });
}

result<void> connection::end(session_id s, const std::optional<amqp::error>& error) {
  return guarded(impl_.get(), [&] { return impl_->end(s, error); });
}

result<endpoint_state> connection::state(session_id s) const noexcept {
  auto* p = impl_ ? impl_->session_at(s) : nullptr;
  if (p == nullptr) {
    return errc::invalid_state;
  }
  return p->st;
}

result<link_id> connection::attach(session_id s, const link_options& o) {
  return guarded(impl_.get(), [&] { return impl_->attach(s, o); });
}

result<void> connection::attach(link_id l, const link_options& o) {
  return guarded(impl_.get(), [&] { return impl_->attach(l, o); });
}

result<void> connection::detach(link_id l, bool closed, const std::optional<amqp::error>& e) {
  return guarded(impl_.get(), [&] { return impl_->detach(l, closed, e); });
}

result<endpoint_state> connection::state(link_id l) const noexcept {
  auto* p = impl_ ? impl_->link_at(l) : nullptr;
  if (p == nullptr) {
    return errc::invalid_state;
  }
  return p->st;
}

result<void> connection::flow(link_id l, std::uint32_t credit, bool drain) {
  return guarded(impl_.get(), [&] { return impl_->flow(l, credit, drain); });
}

std::uint32_t connection::credit(link_id l) const noexcept {
  auto* p = impl_ ? impl_->link_at(l) : nullptr;
  return p == nullptr ? 0 : p->credit;
}

result<void> connection::drained(link_id l) {
  return guarded(impl_.get(), [&] { return impl_->drained(l); });
}

result<void> connection::set_available(link_id l, std::uint32_t available, bool send_now) {
  return guarded(impl_.get(), [&] { return impl_->set_available(l, available, send_now); });
}

result<delivery_id> connection::send(link_id l, const transfer_options& t) {
  return guarded(impl_.get(), [&] { return impl_->send(l, t); });
}

result<void> connection::abort(link_id l) {
  return guarded(impl_.get(), [&] { return impl_->abort(l); });
}

result<void> connection::settle(delivery_id d, const std::optional<delivery_state>& state) {
  return guarded(impl_.get(), [&] { return impl_->settle(d, state); });
}

result<void> connection::update(delivery_id d, const delivery_state& state) {
  return guarded(impl_.get(), [&] { return impl_->update(d, state); });
}

std::size_t connection::unsettled(link_id l) const noexcept {
  auto* p = impl_ ? impl_->link_at(l) : nullptr;
  return p == nullptr ? 0 : p->deliveries.unsettled;
}

std::string_view name(const event& e) noexcept {
  static constexpr std::string_view names[] = {"sasl_init_received",
                                               "sasl_response_received",
                                               "sasl_challenge_received",
                                               "sasl_done",
                                               "connection_opened",
                                               "connection_closed",
                                               "session_begun",
                                               "session_ended",
                                               "link_attached",
                                               "link_detached",
                                               "link_flow",
                                               "delivery_received",
                                               "delivery_updated"};
  return names[e.index()];
}

} // namespace amqp
