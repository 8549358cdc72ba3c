// Sessions (AMQP 1.0 §2.5): begin/end, channel allocation, and the session flow state
// (next-incoming-id, next-outgoing-id, incoming and outgoing windows, §2.5.6). The
// transfers held for the peer's incoming window are sent from delivery.cpp.
#include <algorithm>

#include "amqp/assert.hpp"
#include "engine/engine.hpp"

namespace amqp::detail {

namespace {

// Our outgoing window: this end never limits what it sends by its own outgoing window.
constexpr std::uint32_t our_outgoing_window = 0x7FFF'FFFF;

// Marks a free slot used; it holds a fresh session_state (free_session_if_done).
void take_session_slot(session_state& s) noexcept {
  AMQP_ASSERT(!s.used && !s.end_deadline);
  s.used = true;
}

} // namespace

session_state* connection_impl::session_at(session_id s) noexcept {
  if (s.value >= sessions.size() || !sessions[s.value].used) {
    return nullptr;
  }
  return &sessions[s.value];
}

session_state* connection_impl::session_by_remote(std::uint16_t channel) noexcept {
  if (channel >= remote_channels.size() || remote_channels[channel] == no_index) {
    return nullptr;
  }
  return &sessions[remote_channels[channel]];
}

// The lowest free local channel within both channel-max values, or no_index.
static std::uint32_t free_channel(const pvec<session_state>& sessions, std::uint32_t max) {
  for (std::uint32_t i = 0; i <= max; ++i) {
    if (i >= sessions.size() || !sessions[i].used) {
      return i;
    }
  }
  return no_index;
}

static void init_windows(session_state& s, const connection_options& o, const session_options& so) {
  s.incoming_window_max = so.incoming_window != 0 ? so.incoming_window : o.incoming_window;
  s.incoming_window_max = std::max<std::uint32_t>(s.incoming_window_max, 1);
  s.incoming_window = s.incoming_window_max;
  s.handle_max =
      so.handle_max != 0 ? std::min(so.handle_max, o.limits.handle_max) : o.limits.handle_max;
  s.handle_max = std::min<std::uint32_t>(s.handle_max, 0xFFFF); // handles index a table
}

result<session_id> connection_impl::begin(const session_options& o) {
  if (fatal) {
    return fatal;
  }
  if (endpoint.st.local != endpoint_status::active || endpoint.close_sent) {
    return errc::invalid_state;
  }
  // §2.7.1: channels above either channel-max are not used. Before the peer's open its
  // channel-max is unknown: a session on a channel it turns out not to allow ends when the
  // open arrives (on_open).
  const std::uint32_t max = endpoint.open_received
                                ? std::min(opts.limits.channel_max, endpoint.remote_channel_max)
                                : opts.limits.channel_max;
  const std::uint32_t idx = free_channel(sessions, max);
  if (idx == no_index) {
    return errc::resource_limit;
  }
  if (idx >= sessions.size()) {
    sessions.emplace_back(mem);
  }
  session_state& s = sessions[idx];
  take_session_slot(s);
  s.st.local = endpoint_status::active;
  init_windows(s, opts, o);
  send_begin(static_cast<std::uint16_t>(idx));
  return session_id{static_cast<std::uint16_t>(idx)};
}

result<void> connection_impl::begin(session_id id, const session_options& o) {
  if (fatal) {
    return fatal;
  }
  session_state* s = session_at(id);
  // §2.4.1: nothing but open goes out before our open.
  if (s == nullptr || !s->remote_initiated || s->st.local != endpoint_status::uninit ||
      endpoint.close_sent || !endpoint.open_sent) {
    return errc::invalid_state;
  }
  s->st.local = endpoint_status::active;
  init_windows(*s, opts, o);
  send_begin(id.value);
  return {};
}

void connection_impl::send_begin(std::uint16_t index) {
  session_state& s = sessions[index];
  amqp::begin b;
  if (s.remote_initiated) {
    b.remote_channel = s.remote_channel;
  }
  b.next_outgoing_id = s.next_outgoing_id;
  b.incoming_window = s.incoming_window;
  b.outgoing_window = our_outgoing_window;
  b.handle_max = s.handle_max;
  write_own_frame(index, b);
  s.begin_sent = true;
}

result<void> connection_impl::end(session_id id, const std::optional<amqp::error>& e) {
  if (fatal) {
    return fatal;
  }
  session_state* s = session_at(id);
  if (s == nullptr || s->st.local == endpoint_status::closed || endpoint.close_sent ||
      (!s->begin_sent && !endpoint.open_sent)) {
    return errc::invalid_state;
  }
  // An end that cannot be sent as asked is refused; none other goes out instead.
  amqp::end frame;
  frame.error = e;
  if (auto n = frame_size(frame, 0); !n) {
    return n.error();
  }
  if (!s->begin_sent) {
    // A peer's begin that was never answered: answer it, then end (§2.5.1).
    init_windows(*s, opts, {});
    send_begin(id.value);
  }
  s->st.local = endpoint_status::closed;
  send_end(id.value, e);
  if (s->st.remote != endpoint_status::closed) {
    arm(s->end_deadline, end_timers);
  }
  free_session_if_done(id.value);
  return {};
}

void connection_impl::send_end(std::uint16_t index, const std::optional<amqp::error>& e) {
  session_state& s = sessions[index];
  amqp::end en;
  en.error = e;
  // end() checked the application's condition; the engine's own (session_error) is a
  // condition symbol and a short description, which always encode within 512 bytes.
  write_own_frame(index, en);
  // §2.7.8: ending a session detaches its links; their deliveries are forgotten.
  for (std::uint32_t li : s.local_handles) {
    if (li != no_index) {
      links[li].st.local = endpoint_status::closed;
    }
  }
}

void connection_impl::session_error(std::uint16_t index, std::error_code ec,
                                    std::string_view description) {
  session_state& s = sessions[index];
  if (s.st.local == endpoint_status::closed) {
    return;
  }
  if (!endpoint.open_sent) {
    // Nothing can be said on a session before our open: the error ends the connection.
    fail(ec, description);
    return;
  }
  amqp::error err{symbol_view{to_condition_symbol(ec)}, description, value{}};
  if (!s.begin_sent) {
    // §2.5.1: an end is only valid on a begun session: answer the peer's begin first.
    init_windows(s, opts, {});
    send_begin(index);
  }
  s.st.local = endpoint_status::closed;
  send_end(index, err);
  arm(s.end_deadline, end_timers);
  push(session_ended{session_id{index}, ec, err, false});
}

void connection_impl::on_begin(std::uint16_t channel, const amqp::begin& b) {
  if (session_by_remote(channel) != nullptr) {
    // §2.5.1: a channel carries one session at a time.
    fail(errc::not_allowed, "begin on a channel already in use");
    return;
  }
  std::uint32_t idx = no_index;
  bool remote_initiated = false;
  if (b.remote_channel) {
    // The answer to our begin (§2.5.1): remote-channel names our channel.
    idx = *b.remote_channel;
    if (idx >= sessions.size() || !sessions[idx].used || sessions[idx].remote_initiated ||
        sessions[idx].has_remote_channel) {
      fail(errc::invalid_field, "begin answers no session begun here");
      return;
    }
  } else {
    // Our answer goes on a channel within both channel-max values (§2.7.1).
    idx = free_channel(sessions, std::min(opts.limits.channel_max, endpoint.remote_channel_max));
    if (idx == no_index) {
      fail(errc::resource_limit, "no channel free for the peer's session");
      return;
    }
    if (idx >= sessions.size()) {
      sessions.emplace_back(mem);
    }
    take_session_slot(sessions[idx]);
    // Until the application answers, the peer may attach up to our limit (its attaches
    // often follow its begin in the same write).
    sessions[idx].handle_max = std::min<std::uint32_t>(opts.limits.handle_max, 0xFFFF);
    remote_initiated = true;
  }
  session_state& s = sessions[idx];
  s.remote_initiated = remote_initiated;
  s.has_remote_channel = true;
  s.remote_channel = channel;
  if (channel >= remote_channels.size()) {
    remote_channels.resize(static_cast<std::size_t>(channel) + 1, no_index);
  }
  remote_channels[channel] = idx;
  s.st.remote = endpoint_status::active;
  s.next_incoming_id = b.next_outgoing_id;
  s.remote_incoming_window = b.incoming_window;
  s.remote_handle_max = b.handle_max;
  push(session_begun{session_id{static_cast<std::uint16_t>(idx)}, remote_initiated, b.handle_max});
}

void connection_impl::on_end(std::uint16_t channel, const amqp::end& e) {
  session_state* s = session_by_remote(channel);
  if (s == nullptr) {
    fail(errc::illegal_state, "end on a channel with no session"); // §2.5.1
    return;
  }
  const auto idx = static_cast<std::uint16_t>(s - sessions.data());
  s->st.remote = endpoint_status::closed;
  remote_channels[channel] = no_index;
  s->has_remote_channel = false;
  const bool answer = s->st.local != endpoint_status::closed;
  if (answer) {
    // §2.5.1: an end is answered with an end (before our open nothing can be sent: the
    // session is simply forgotten).
    s->st.local = endpoint_status::closed;
    if (endpoint.open_sent) {
      if (!s->begin_sent) {
        init_windows(*s, opts, {});
        send_begin(idx);
      }
      send_end(idx, std::nullopt);
    }
  }
  if (answer || e.error) {
    push(session_ended{session_id{idx},
                       e.error ? std::error_code(errc::remote_error) : std::error_code{}, e.error,
                       true});
  } else {
    push(session_ended{session_id{idx}, {}, std::nullopt, true});
  }
  free_session_if_done(idx);
}

void connection_impl::free_session_if_done(std::uint16_t index) {
  session_state& s = sessions[index];
  if (s.st.local != endpoint_status::closed || s.st.remote != endpoint_status::closed) {
    return;
  }
  for (std::uint32_t i = 0; i < links.size(); ++i) {
    if (links[i].used && links[i].session == index) {
      free_link(i);
    }
  }
  disarm(s.end_deadline, end_timers);
  // The slot is reset (and its memory given back) by a fresh object, unused.
  sessions[index] = session_state(mem);
}

void connection_impl::send_session_flow(std::uint16_t index, const link_state* l, bool echo) {
  session_state& s = sessions[index];
  amqp::flow f;
  if (s.st.remote != endpoint_status::uninit) {
    f.next_incoming_id = s.next_incoming_id;
  }
  f.incoming_window = s.incoming_window;
  f.next_outgoing_id = s.next_outgoing_id;
  f.outgoing_window = our_outgoing_window;
  if (l != nullptr) {
    f.handle = l->handle;
    f.delivery_count = l->delivery_count;
    f.link_credit = l->credit;
    if (l->role == amqp::role::sender) {
      f.available = l->available;
    }
    f.drain = l->drain;
  }
  f.echo = echo;
  write_own_frame(index, f);
}

// Called once all the bytes of a receive() are processed. The window is restored after the
// batch, not within it: frames of one batch were all sent before the peer could see a flow
// sent while reading them, so they are all held to the window the peer knew (§2.5.6).
void connection_impl::replenish_windows() {
  if (!window_used) {
    return;
  }
  window_used = false;
  for (std::size_t i = 0; i < sessions.size(); ++i) {
    if (sessions[i].used && sessions[i].window_used) {
      sessions[i].window_used = false;
      replenish_incoming_window(static_cast<std::uint16_t>(i));
    }
  }
}

void connection_impl::replenish_incoming_window(std::uint16_t index) {
  session_state& s = sessions[index];
  // §2.5.6: the window is restored once half of it is used, so a steady stream needs one
  // session flow per half window.
  if (s.incoming_window <= s.incoming_window_max / 2 && s.st.local == endpoint_status::active) {
    s.incoming_window = s.incoming_window_max;
    send_session_flow(index, nullptr);
  }
}

} // namespace amqp::detail
