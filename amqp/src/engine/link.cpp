// Links (AMQP 1.0 §2.6): attach/detach, handles, and link flow control (credit,
// delivery-count, drain, echo, available, §2.6.7). Transfers and dispositions are in
// delivery.cpp.
#include <algorithm>

#include "amqp/assert.hpp"
#include "engine/engine.hpp"

namespace amqp::detail {

namespace {

// Handles are table indexes; a handle-max above this is lowered to it.
constexpr std::uint32_t handle_table_max = 0xFFFF;

void set_handle(pvec<std::uint32_t>& table, std::uint32_t handle, std::uint32_t link) {
  if (handle >= table.size()) {
    table.resize(static_cast<std::size_t>(handle) + 1, no_index);
  }
  table[handle] = link;
}

// This end's settings for its side of a link, from its options (on either attach path:
// ours first or the answer to the peer's).
struct local_settings {
  sender_settle_mode snd_settle_mode = sender_settle_mode::mixed;
  receiver_settle_mode rcv_settle_mode = receiver_settle_mode::first;
  std::uint64_t max_message_size = 0; // 0: none
};

local_settings settings_of(amqp::role role, const link_options& o,
                           std::uint64_t max_message_size) noexcept {
  local_settings s{o.snd_settle_mode, o.rcv_settle_mode, o.max_message_size};
  if (role == amqp::role::receiver) {
    s.max_message_size =
        o.max_message_size != 0 ? std::min(o.max_message_size, max_message_size) : max_message_size;
  }
  return s;
}

void apply_local_options(link_state& l, const link_options& o, const local_settings& s) {
  l.snd_settle_mode = s.snd_settle_mode;
  l.rcv_settle_mode = s.rcv_settle_mode;
  l.max_message_size = s.max_message_size;
  if (l.role == amqp::role::receiver) {
    l.credit_overrun = o.credit_overrun;
    l.overrun_left = o.credit_overrun;
  }
}

// Our attach (§2.7.3) of link `name` on `handle`, with the termini, capabilities and
// properties of `o`. Views point into `name` and `o`.
amqp::attach make_attach(std::string_view name, std::uint32_t handle, amqp::role role,
                         const local_settings& s, std::uint32_t delivery_count,
                         const link_options& o) {
  amqp::attach a;
  a.name = name;
  a.handle = handle;
  a.role = role;
  a.snd_settle_mode = s.snd_settle_mode;
  a.rcv_settle_mode = s.rcv_settle_mode;
  a.source = o.source;
  if (o.target) {
    a.target = attach_target{*o.target};
  }
  if (role == amqp::role::sender) {
    a.initial_delivery_count = delivery_count;
  }
  if (s.max_message_size != 0) {
    a.max_message_size = s.max_message_size;
  }
  a.offered_capabilities = symbols{o.offered_capabilities};
  a.desired_capabilities = symbols{o.desired_capabilities};
  a.properties = o.properties;
  return a;
}

} // namespace

link_state* connection_impl::link_at(link_id l) noexcept {
  if (l.value >= links.size() || !links[l.value].used) {
    return nullptr;
  }
  return &links[l.value];
}

link_state* connection_impl::link_by_remote(session_state& s, std::uint32_t handle) noexcept {
  if (handle >= s.remote_handles.size() || s.remote_handles[handle] == no_index) {
    return nullptr;
  }
  return &links[s.remote_handles[handle]];
}

static std::uint32_t new_link(connection_impl& c) {
  std::uint32_t idx;
  if (!c.free_links.empty()) {
    idx = c.free_links.back();
    c.free_links.pop_back();
  } else {
    idx = static_cast<std::uint32_t>(c.links.size());
    c.links.emplace_back(c.mem);
  }
  link_state& l = c.links[idx];
  AMQP_ASSERT(!l.used && !l.detach_deadline); // a free slot holds a fresh link_state
  l.used = true;
  return idx;
}

// The lowest handle free in `s` within both handle-max values (§2.7.2), or no_index.
std::uint32_t connection_impl::free_handle(const session_state& s) const noexcept {
  const std::uint32_t max =
      std::min({s.remote_handle_max, opts.limits.handle_max, handle_table_max});
  std::uint32_t h = 0;
  while (h < s.local_handles.size() && s.local_handles[h] != no_index) {
    ++h;
  }
  return h > max ? no_index : h;
}

// Answers a peer's attach that the application did not accept, with no terminus, so that a
// detach can follow (§2.6.3). Errors: errc::resource_limit (no handle free within the peer's
// handle-max), errc::frame_too_large (the peer's link name does not fit in its own
// max-frame-size); nothing is sent then.
result<void> connection_impl::answer_refused_attach(std::uint32_t index) {
  link_state& l = links[index];
  session_state& s = sessions[l.session];
  const std::uint32_t h = free_handle(s);
  if (h == no_index) {
    return errc::resource_limit;
  }
  const amqp::attach a =
      make_attach(l.name, h, l.role, {l.snd_settle_mode, l.rcv_settle_mode, l.max_message_size},
                  l.delivery_count, link_options{});
  if (auto w = write_frame(l.session, a); !w) {
    return w.error();
  }
  l.handle = h;
  set_handle(s.local_handles, h, index);
  l.attach_sent = true;
  return {};
}

// The session a frame on `channel` belongs to (§2.5.1), or null when the frame is dropped:
// no session there (a connection error, described by `what`), or ours is ending (§2.7.8:
// the peer's frames are discarded until its end).
session_state* connection_impl::session_for(std::uint16_t channel, std::string_view what) {
  session_state* s = session_by_remote(channel);
  if (s == nullptr) {
    fail(errc::illegal_state, what);
    return nullptr;
  }
  return s->st.local == endpoint_status::closed ? nullptr : s;
}

result<link_id> connection_impl::attach(session_id sid, const link_options& o) {
  if (fatal) {
    return fatal;
  }
  session_state* s = session_at(sid);
  if (s == nullptr || s->st.local != endpoint_status::active || endpoint.close_sent) {
    return errc::invalid_state;
  }
  // §2.7.2 handle-max: our handles stay within the peer's limit, and within ours.
  const std::uint32_t h = free_handle(*s);
  if (h == no_index) {
    return errc::resource_limit;
  }
  // An attach that cannot be sent as asked is refused; none other goes out instead.
  const local_settings ls = settings_of(o.role, o, opts.limits.max_message_size);
  const amqp::attach frame = make_attach(o.name, h, o.role, ls, o.initial_delivery_count, o);
  if (auto n = frame_size(frame, 0); !n) {
    return n.error();
  }
  const std::uint32_t idx = new_link(*this);
  s = &sessions[sid.value]; // (new_link does not touch sessions; kept for clarity)
  link_state& l = links[idx];
  l.session = sid.value;
  l.handle = h;
  set_handle(s->local_handles, h, idx);
  l.role = o.role;
  l.name.assign(o.name.data(), o.name.size());
  apply_local_options(l, o, ls);
  if (o.role == amqp::role::sender) {
    l.delivery_count = o.initial_delivery_count;
  }
  l.st.local = endpoint_status::active;
  write_own_frame(l.session, frame);
  l.attach_sent = true;
  return link_id{idx};
}

result<void> connection_impl::attach(link_id id, const link_options& o) {
  if (fatal) {
    return fatal;
  }
  link_state* l = link_at(id);
  if (l == nullptr || !l->remote_initiated || l->st.local != endpoint_status::uninit ||
      endpoint.close_sent || sessions[l->session].st.local != endpoint_status::active) {
    return errc::invalid_state;
  }
  session_state& s = sessions[l->session];
  const std::uint32_t h = free_handle(s);
  if (h == no_index) {
    return errc::resource_limit;
  }
  // An attach that cannot be sent as asked is refused; none other goes out instead.
  const local_settings ls = settings_of(l->role, o, opts.limits.max_message_size);
  const amqp::attach frame = make_attach(l->name, h, l->role, ls, l->delivery_count, o);
  if (auto n = frame_size(frame, 0); !n) {
    return n.error();
  }
  l->handle = h;
  set_handle(s.local_handles, h, id.value);
  apply_local_options(*l, o, ls);
  l->st.local = endpoint_status::active;
  write_own_frame(l->session, frame);
  l->attach_sent = true;
  if (l->flow_unreported) {
    // The peer's flow came with its attach (credit, drain, available): reported now that
    // the link is open on this end too.
    l->flow_unreported = false;
    push(link_flow{id, l->credit, l->delivery_count, l->available, l->drain});
  }
  return {};
}

result<void> connection_impl::detach(link_id id, bool closed, const std::optional<amqp::error>& e) {
  if (fatal) {
    return fatal;
  }
  link_state* l = link_at(id);
  // Frames of a link only go out in a session this end has begun (§2.5.1).
  if (l == nullptr || l->st.local == endpoint_status::closed || endpoint.close_sent ||
      sessions[l->session].st.local != endpoint_status::active) {
    return errc::invalid_state;
  }
  // A detach that cannot be sent as asked is refused; none other goes out instead.
  const std::uint32_t h = l->attach_sent ? l->handle : free_handle(sessions[l->session]);
  if (h == no_index) {
    return errc::resource_limit;
  }
  amqp::detach frame;
  frame.handle = h;
  frame.closed = closed;
  frame.error = e;
  if (auto n = frame_size(frame, 0); !n) {
    return n.error();
  }
  if (!l->attach_sent) {
    // Refusing a peer's attach: §2.6.3 answers it (with no terminus) before detaching.
    if (auto r = answer_refused_attach(id.value); !r) {
      return r.error();
    }
  }
  l->st.local = endpoint_status::closed;
  l->detach_closed = closed;
  send_detach(id.value, e);
  if (l->st.remote != endpoint_status::closed) {
    arm(l->detach_deadline, detach_timers);
  }
  free_link_if_done(id.value);
  return {};
}

void connection_impl::send_detach(std::uint32_t index, const std::optional<amqp::error>& e) {
  link_state& l = links[index];
  amqp::detach d;
  d.handle = l.handle;
  d.closed = l.detach_closed;
  d.error = e;
  // detach() checked the application's condition; the engine's own (link_error) is a
  // condition symbol and a short description, which always encode within 512 bytes.
  write_own_frame(l.session, d);
  // Deliveries still being sent are dropped with the link (§2.6.14 aborts them).
  session_state& s = sessions[l.session];
  for (auto it = s.deliveries.held.begin(); it != s.deliveries.held.end();) {
    it = it->link == index ? s.deliveries.held.erase(it) : it + 1;
  }
  l.deliveries.held = false;
}

void connection_impl::link_error(std::uint32_t index, std::error_code ec,
                                 std::string_view description) {
  link_state& l = links[index];
  if (l.st.local == endpoint_status::closed) {
    return;
  }
  session_state& s = sessions[l.session];
  if (!s.begin_sent) {
    // A link error in a session we never answered: the session carries it (§2.5.1).
    session_error(l.session, ec, description);
    return;
  }
  if (!l.attach_sent && !answer_refused_attach(index)) {
    // A detach is only valid on an attached handle; with none free, the session ends.
    session_error(l.session, ec, description);
    return;
  }
  amqp::error err{symbol_view{to_condition_symbol(ec)}, description, value{}};
  l.st.local = endpoint_status::closed;
  l.detach_closed = true;
  l.deliveries.in.in_progress = false;
  send_detach(index, err);
  arm(l.detach_deadline, detach_timers);
  push(link_detached{link_id{index}, true, ec, err, false});
}

void connection_impl::free_link(std::uint32_t index) {
  link_state& l = links[index];
  session_state& s = sessions[l.session];
  if (l.handle < s.local_handles.size() && s.local_handles[l.handle] == index) {
    s.local_handles[l.handle] = no_index;
  }
  if (l.remote_handle < s.remote_handles.size() && s.remote_handles[l.remote_handle] == index) {
    s.remote_handles[l.remote_handle] = no_index;
  }
  if (l.role == amqp::role::sender) {
    s.deliveries.outgoing.erase_link(index);
  } else {
    s.deliveries.incoming.erase_link(index);
  }
  for (auto it = s.deliveries.held.begin(); it != s.deliveries.held.end();) {
    it = it->link == index ? s.deliveries.held.erase(it) : it + 1;
  }
  disarm(l.detach_deadline, detach_timers);
  const incoming_delivery& rx = l.deliveries.in;
  if (rx.epoch == epoch && !rx.buf.empty()) {
    // A message reassembled here is still viewed by a queued event: its bytes stay until
    // the next receive(), whatever the slot is used for meanwhile.
    retired.push_back(std::move(l.deliveries.in.buf));
  }
  // The slot is reset (and its memory given back) by a fresh object, unused.
  links[index] = link_state(mem);
  free_links.push_back(index);
}

void connection_impl::free_link_if_done(std::uint32_t index) {
  link_state& l = links[index];
  if (l.st.local == endpoint_status::closed && l.st.remote == endpoint_status::closed) {
    free_link(index);
  }
}

void connection_impl::on_attach(std::uint16_t channel, const amqp::attach& a) {
  session_state* s = session_for(channel, "attach on a channel with no session");
  if (s == nullptr) {
    return;
  }
  const auto sidx = static_cast<std::uint16_t>(s - sessions.data());
  if (a.handle > s->handle_max) {
    // §2.7.2 handle-max: "A peer that receives a handle outside the supported range MUST
    // close the connection with the framing-error error-code."
    fail(errc::framing_error, "handle above handle-max");
    return;
  }
  if (link_by_remote(*s, a.handle) != nullptr) {
    // §2.7.3: attaching a handle that is in use is a session error.
    session_error(sidx, errc::handle_in_use, "attach on a handle in use");
    return;
  }
  if (!a.unsettled.is_null()) {
    // The unsettled map (§2.7.3): delivery-tag keys, delivery-state (or null) values.
    bool ok = a.unsettled.is(type::map);
    if (ok) {
      bool key = true;
      for (const value& v : a.unsettled.items()) {
        if (key) {
          ok = ok && v.is(type::binary) && v.as_binary().size() <= 32;
        } else if (!v.is_null()) {
          delivery_state ds;
          ok = ok && decode(v, ds).has_value();
        }
        key = !key;
      }
    }
    if (!ok) {
      fail(errc::decode_error, "malformed unsettled map in attach");
      return;
    }
  }
  const amqp::role ours = a.role == amqp::role::sender ? amqp::role::receiver : amqp::role::sender;
  if (ours == amqp::role::receiver && !a.initial_delivery_count) {
    // §2.7.3 initial-delivery-count: "MUST NOT be null if role is sender".
    session_error(sidx, errc::invalid_field, "sender attach without initial-delivery-count");
    return;
  }
  // The answer to one of our attaches: same name, opposite role, not yet answered.
  std::uint32_t idx = no_index;
  for (std::uint32_t li : s->local_handles) {
    if (li != no_index && !links[li].remote_initiated && links[li].role == ours &&
        links[li].remote_handle == no_index && links[li].st.remote == endpoint_status::uninit &&
        links[li].name == a.name) {
      idx = li;
      break;
    }
  }
  const bool remote_initiated = idx == no_index;
  if (remote_initiated) {
    idx = new_link(*this);
    s = &sessions[sidx];
    link_state& n = links[idx];
    n.session = sidx;
    n.remote_initiated = true;
    n.role = ours;
    n.name.assign(a.name.data(), a.name.size());
    n.snd_settle_mode = a.snd_settle_mode;
    n.rcv_settle_mode = a.rcv_settle_mode;
  }
  link_state& l = links[idx];
  l.remote_handle = a.handle;
  set_handle(s->remote_handles, a.handle, idx);
  l.st.remote = endpoint_status::active;
  l.remote_max_message_size = a.max_message_size.value_or(0);
  if (ours == amqp::role::receiver) {
    l.delivery_count = *a.initial_delivery_count;
    // The sender's settle mode rules what it sends (§2.7.3).
    l.snd_settle_mode = a.snd_settle_mode;
  } else {
    l.rcv_settle_mode = a.rcv_settle_mode;
  }
  attaches.push_back(a);
  push(link_attached{link_id{idx}, session_id{sidx}, remote_initiated, attaches.back()});
}

void connection_impl::on_detach(std::uint16_t channel, const amqp::detach& d) {
  session_state* s = session_for(channel, "detach on a channel with no session");
  if (s == nullptr) {
    return;
  }
  const auto sidx = static_cast<std::uint16_t>(s - sessions.data());
  link_state* l = link_by_remote(*s, d.handle);
  if (l == nullptr) {
    // §2.7.7 (and §2.5.1): a frame on a handle with no attached link.
    session_error(sidx, errc::unattached_handle, "detach on an unattached handle");
    return;
  }
  const auto idx = static_cast<std::uint32_t>(l - links.data());
  s->remote_handles[d.handle] = no_index;
  l->remote_handle = no_index;
  l->st.remote = endpoint_status::closed;
  l->deliveries.in.in_progress = false;
  disarm(l->detach_deadline, detach_timers);
  if (l->st.local != endpoint_status::closed) {
    // §2.6.6: a detach is answered with a detach; a closing one with a closing one.
    l->st.local = endpoint_status::closed;
    l->detach_closed = d.closed;
    if (!s->begin_sent) {
      // Our session never began: nothing can be answered on it.
      push(link_detached{link_id{idx}, d.closed,
                         d.error ? std::error_code(errc::remote_error) : std::error_code{}, d.error,
                         true});
      free_link_if_done(idx);
      return;
    }
    if (l->attach_sent || answer_refused_attach(idx)) {
      send_detach(idx, std::nullopt);
    }
  }
  push(link_detached{link_id{idx}, d.closed,
                     d.error ? std::error_code(errc::remote_error) : std::error_code{}, d.error,
                     true});
  free_link_if_done(idx);
}

void connection_impl::send_link_flow(std::uint32_t index, bool echo) {
  link_state& l = links[index];
  send_session_flow(l.session, &l, echo);
}

void connection_impl::on_flow(std::uint16_t channel, const amqp::flow& f) {
  session_state* s = session_for(channel, "flow on a channel with no session");
  if (s == nullptr) {
    return;
  }
  const auto sidx = static_cast<std::uint16_t>(s - sessions.data());
  // §2.5.6: remote-incoming-window = next-incoming-id(flow) + incoming-window(flow)
  // - next-outgoing-id(endpoint); a missing next-incoming-id means our initial id (0).
  s->remote_incoming_window =
      f.next_incoming_id.value_or(0) + f.incoming_window - s->next_outgoing_id;
  if (static_cast<std::int32_t>(s->remote_incoming_window) < 0) {
    s->remote_incoming_window = 0;
  }
  if (f.handle) {
    link_state* l = link_by_remote(*s, *f.handle);
    if (l == nullptr) {
      session_error(sidx, errc::unattached_handle, "flow on an unattached handle");
      return;
    }
    const auto idx = static_cast<std::uint32_t>(l - links.data());
    if (l->role == amqp::role::sender) {
      // §2.6.7: link-credit(snd) = delivery-count(rcv) + link-credit(rcv)
      // - delivery-count(snd); delivery-count(rcv) absent: our initial delivery-count.
      const std::uint32_t rcv_count = f.delivery_count.value_or(l->delivery_count);
      const std::uint32_t limit = rcv_count + f.link_credit.value_or(0);
      l->credit = serial_lt(l->delivery_count, limit) ? limit - l->delivery_count : 0;
      l->drain = f.drain;
    } else {
      // The sender's view: its delivery-count moved on by what it sent, and by the credit
      // it used up when draining (§2.6.7).
      if (f.delivery_count && serial_lt(l->delivery_count, *f.delivery_count)) {
        const std::uint32_t advanced = *f.delivery_count - l->delivery_count;
        const std::uint32_t from_credit = std::min(advanced, l->credit);
        l->credit -= from_credit;
        l->stale_credit -= std::min(advanced - from_credit, l->stale_credit);
        l->delivery_count = *f.delivery_count;
      }
      l->available = f.available.value_or(0);
      if (l->drain && l->credit == 0) {
        l->drain = false;
      }
    }
    if (l->st.local == endpoint_status::active) {
      push(link_flow{link_id{idx}, l->credit, l->delivery_count, l->available, l->drain});
    } else if (l->st.local == endpoint_status::uninit) {
      l->flow_unreported = true;
    }
    if (f.echo && l->st.local == endpoint_status::active && l->attach_sent) {
      send_link_flow(idx); // §2.7.4 echo
    }
  } else if (f.echo && s->begin_sent && endpoint.open_sent) {
    send_session_flow(sidx, nullptr); // only on a session this end has begun (§2.5.1)
  }
  pump_held(sidx);
}

result<void> connection_impl::flow(link_id id, std::uint32_t credit, bool drain) {
  if (fatal) {
    return fatal;
  }
  link_state* l = link_at(id);
  if (l == nullptr || l->role != amqp::role::receiver || l->st.local != endpoint_status::active ||
      endpoint.close_sent) {
    return errc::invalid_state;
  }
  // §2.6.7: transfers the sender made under what we granted before may still be on their
  // way; with a lower credit they are accepted beyond it, up to what was granted.
  const std::uint64_t owed = std::uint64_t{l->credit} + l->stale_credit;
  l->stale_credit =
      owed > credit
          ? static_cast<std::uint32_t>(std::min<std::uint64_t>(owed - credit, 0xFFFF'FFFF))
          : 0;
  l->credit = credit;
  l->overrun_left = l->credit_overrun;
  l->drain = drain;
  send_link_flow(id.value);
  return {};
}

result<void> connection_impl::drained(link_id id) {
  if (fatal) {
    return fatal;
  }
  link_state* l = link_at(id);
  if (l == nullptr || l->role != amqp::role::sender || l->st.local != endpoint_status::active ||
      endpoint.close_sent) {
    return errc::invalid_state;
  }
  // §2.6.7: draining uses up the credit by advancing the delivery-count.
  l->delivery_count += l->credit;
  l->credit = 0;
  l->drain = false;
  send_link_flow(id.value);
  return {};
}

result<void> connection_impl::set_available(link_id id, std::uint32_t n, bool send_now) {
  if (fatal) {
    return fatal;
  }
  link_state* l = link_at(id);
  if (l == nullptr || l->role != amqp::role::sender || l->st.local != endpoint_status::active ||
      endpoint.close_sent) {
    return errc::invalid_state;
  }
  l->available = n;
  if (send_now) {
    send_link_flow(id.value);
  }
  return {};
}

} // namespace amqp::detail
