// Links (AMQP 1.0 §2.6): attach/detach, handles, link flow control (credit, delivery-count,
// drain, echo, available, §2.6.7), transfers split and reassembled (§2.6.12-§2.6.14), and
// dispositions with ranges and settlement (§2.7.6).
#include <algorithm>
#include <cstring>

#include "amqp/assert.hpp"
#include "engine/engine.hpp"
#include "frame/transfer_codec.hpp"

namespace amqp::detail {

namespace {

// Handles are table indexes; a handle-max above this is lowered to it.
constexpr std::uint32_t handle_table_max = 0xFFFF;

void reset(link_state& l) {
  l.used = true;
  l.st = {};
  l.session = 0;
  l.handle = no_index;
  l.remote_handle = no_index;
  l.role = amqp::role::sender;
  l.remote_initiated = false;
  l.attach_sent = false;
  l.detach_closed = true;
  l.name.clear();
  l.snd_settle_mode = sender_settle_mode::mixed;
  l.rcv_settle_mode = receiver_settle_mode::first;
  l.max_message_size = 0;
  l.remote_max_message_size = 0;
  l.delivery_count = 0;
  l.credit = 0;
  l.stale_credit = 0;
  l.credit_overrun = 0;
  l.overrun_left = 0;
  l.available = 0;
  l.drain = false;
  l.flow_unreported = false;
  l.unsettled = 0;
  l.tag_counter = 0;
  l.held = false;
  l.in_progress = false;
  l.in_buf.clear();
  AMQP_ASSERT(!l.detach_deadline); // disarmed when the link was freed
}

void set_handle(pvec<std::uint32_t>& table, std::uint32_t handle, std::uint32_t link) {
  if (handle >= table.size()) {
    table.resize(static_cast<std::size_t>(handle) + 1, no_index);
  }
  table[handle] = link;
}

// The delivery-state a disposition carries when coalesced: 0 none, 1 accepted, 2 released;
// 3 for anything that is sent on its own.
std::uint8_t simple_outcome(const std::optional<delivery_state>& s) noexcept {
  if (!s) {
    return 0;
  }
  if (std::holds_alternative<accepted>(*s)) {
    return 1;
  }
  if (std::holds_alternative<released>(*s)) {
    return 2;
  }
  return 3;
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
  reset(c.links[idx]);
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
  if (s == nullptr || s->st.local != endpoint_status::active || close_sent) {
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
      close_sent || sessions[l->session].st.local != endpoint_status::active) {
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
  if (l == nullptr || l->st.local == endpoint_status::closed || close_sent ||
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
  for (auto it = s.held.begin(); it != s.held.end();) {
    it = it->link == index ? s.held.erase(it) : it + 1;
  }
  l.held = false;
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
  l.in_progress = false;
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
    s.outgoing.erase_link(index);
  } else {
    s.incoming.erase_link(index);
  }
  for (auto it = s.held.begin(); it != s.held.end();) {
    it = it->link == index ? s.held.erase(it) : it + 1;
  }
  if (l.in_epoch == epoch && !l.in_buf.empty()) {
    // A message reassembled here is still viewed by a queued event: its bytes stay until
    // the next receive(), whatever the slot is used for meanwhile.
    retired.push_back(std::move(l.in_buf));
    l.in_buf = byte_buffer(mem);
  }
  l.used = false;
  disarm(l.detach_deadline, detach_timers);
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
  l->in_progress = false;
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
  } else if (f.echo && s->begin_sent && open_sent) {
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
      close_sent) {
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
      close_sent) {
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
      close_sent) {
    return errc::invalid_state;
  }
  l->available = n;
  if (send_now) {
    send_link_flow(id.value);
  }
  return {};
}

bool connection_impl::send_frames(std::uint16_t sindex, held_transfer& h,
                                  std::span<const std::byte> payload) {
  session_state& s = sessions[sindex];
  link_state& l = links[h.link];
  while (s.remote_incoming_window > 0) {
    transfer_fields t;
    t.handle = l.handle;
    if (!h.first_sent) {
      // §2.7.5: delivery-id, delivery-tag and message-format go in the first frame; the
      // message-format "MUST be specified for the first transfer of a multi-transfer
      // message and can only be omitted for continuation transfers" (rhea refuses a first
      // transfer without it), so it is written even when it is 0.
      t.delivery_id = h.delivery_id;
      t.delivery_tag = binary_view(h.tag.data(), h.tag_size);
      t.message_format = h.message_format;
      t.settled = h.settled;
    }
    std::span<const std::byte> part;
    if (h.aborted) {
      t.aborted = true;
    } else {
      // §2.7.5 more: a message that does not fit in one frame of the peer's
      // max-frame-size (§2.7.1) continues in the next.
      const std::size_t remaining = payload.size() - h.offset;
      std::size_t take = remaining;
      if (frame_header_size + transfer_performative_size(t) + remaining > remote_max_frame_size) {
        t.more = true;
        const std::size_t overhead = frame_header_size + transfer_performative_size(t);
        if (overhead >= remote_max_frame_size) {
          fail(errc::frame_size_too_small, "transfer does not fit in the peer's max-frame-size");
          return true;
        }
        take = std::min<std::size_t>(remaining, remote_max_frame_size - overhead);
      }
      part = payload.subspan(h.offset, take);
    }
    const std::size_t size = frame_header_size + transfer_performative_size(t) + part.size();
    write_transfer_frame(sindex, t, part, std::span<std::byte>(out.grow(size), size));
    last_output = now;
    h.first_sent = true;
    h.offset += part.size();
    ++s.next_outgoing_id;
    --s.remote_incoming_window;
    if (!t.more) {
      return true;
    }
  }
  return false;
}

result<delivery_id> connection_impl::send(link_id id, const transfer_options& t) {
  if (fatal) {
    return fatal;
  }
  link_state* l = link_at(id);
  if (l == nullptr || l->role != amqp::role::sender || l->st.local != endpoint_status::active ||
      l->st.remote != endpoint_status::active || close_sent) {
    return errc::invalid_state;
  }
  session_state& s = sessions[l->session];
  if (l->held || l->credit == 0 ||
      out.size() - out_pos + out_taken.size() > opts.limits.max_pending_output) {
    return errc::would_block;
  }
  if (t.tag.size() > 32) {
    return errc::invalid_argument;
  }
  if (l->remote_max_message_size != 0 && t.payload.size() > l->remote_max_message_size) {
    return errc::message_size_exceeded;
  }
  const bool settled = l->snd_settle_mode == sender_settle_mode::settled ||
                       (t.settled && l->snd_settle_mode != sender_settle_mode::unsettled);
  if (!settled && (l->unsettled >= opts.limits.max_unsettled_per_link ||
                   s.outgoing.span() >= opts.limits.max_unsettled_per_session)) {
    return errc::resource_limit;
  }
  held_transfer h{};
  h.link = id.value;
  h.delivery_id = s.next_delivery_id;
  h.message_format = t.message_format;
  h.settled = settled;
  if (!t.tag.empty()) {
    std::memcpy(h.tag.data(), t.tag.data(), t.tag.size());
    h.tag_size = static_cast<std::uint8_t>(t.tag.size());
  } else {
    // A per-link counter, big-endian, in as few bytes as it needs.
    std::uint64_t n = l->tag_counter++;
    std::uint8_t k = 0;
    std::byte tmp[8];
    do {
      tmp[k++] = static_cast<std::byte>(n & 0xFF);
      n >>= 8;
    } while (n != 0);
    for (std::uint8_t i = 0; i < k; ++i) {
      h.tag[i] = tmp[k - 1 - i];
    }
    h.tag_size = k;
  }
  if (!settled) {
    auto slot = s.outgoing.push(h.delivery_id, id.value);
    if (!slot) {
      return slot.error();
    }
    ++l->unsettled;
  }
  ++s.next_delivery_id;
  ++l->delivery_count;
  --l->credit;
  if (!s.held.empty() || !send_frames(l->session, h, t.payload)) {
    // The session window is closed (§2.5.6): the rest waits for the peer's flow.
    h.payload = byte_buffer(mem);
    h.payload.append(t.payload.subspan(h.offset));
    h.offset = 0;
    s.held.push_back(std::move(h));
    l->held = true;
  }
  return delivery_id{id, s.next_delivery_id - 1};
}

result<void> connection_impl::abort(link_id id) {
  if (fatal) {
    return fatal;
  }
  link_state* l = link_at(id);
  if (l == nullptr || l->role != amqp::role::sender || !l->held) {
    return errc::invalid_state;
  }
  session_state& s = sessions[l->session];
  for (auto& h : s.held) {
    if (h.link == id.value) {
      h.aborted = true;
      // §2.6.14: an aborted delivery is settled.
      if (auto* slot = s.outgoing.find(h.delivery_id)) {
        s.outgoing.erase(slot);
        s.outgoing.trim();
        --l->unsettled;
      }
    }
  }
  pump_held(l->session);
  return {};
}

void connection_impl::on_transfer(std::uint16_t channel, const amqp::transfer& t,
                                  std::span<const std::byte> payload) {
  session_state* s = session_for(channel, "transfer on a channel with no session");
  if (s == nullptr) {
    return;
  }
  const auto sidx = static_cast<std::uint16_t>(s - sessions.data());
  // §2.5.6: a transfer beyond the incoming window is a window violation.
  if (s->incoming_window == 0) {
    session_error(sidx, errc::window_violation, "transfer beyond the incoming window");
    return;
  }
  --s->incoming_window;
  ++s->next_incoming_id;
  link_state* l = link_by_remote(*s, t.handle);
  if (l == nullptr) {
    session_error(sidx, errc::unattached_handle, "transfer on an unattached handle");
    return;
  }
  const auto idx = static_cast<std::uint32_t>(l - links.data());
  if (l->role != amqp::role::receiver) {
    // §2.6.1: only the sending end of a link transfers.
    link_error(idx, errc::not_allowed, "transfer to a sending link");
    return;
  }
  if (l->st.local != endpoint_status::active) {
    s->window_used = true;
    window_used = true;
    return; // detaching: frames until the peer's detach are discarded
  }
  if (!l->in_progress) {
    // The first frame of a delivery (§2.7.5).
    if (!t.delivery_id || !t.delivery_tag) {
      session_error(sidx, errc::invalid_field,
                    "first transfer of a delivery without delivery-id or delivery-tag");
      return;
    }
    if (s->in_delivery_seen && *t.delivery_id != s->next_in_delivery_id) {
      // Delivery-ids are assigned in sequence within a session (§2.6.12).
      session_error(sidx, errc::invalid_field, "delivery-id out of sequence");
      return;
    }
    if (t.delivery_tag->size() > 32) {
      session_error(sidx, errc::invalid_field, "delivery-tag longer than 32 bytes");
      return;
    }
    if (l->credit > 0) {
      --l->credit;
    } else if (l->stale_credit > 0) {
      --l->stale_credit; // sent before the sender saw us lower the credit
    } else if (l->overrun_left > 0) {
      --l->overrun_left; // tolerated: link_options::credit_overrun
    } else {
      // §2.6.7: the sender must not send beyond the credit granted.
      link_error(idx, errc::transfer_limit_exceeded, "transfer beyond link credit");
      return;
    }
    s->in_delivery_seen = true;
    s->next_in_delivery_id = *t.delivery_id + 1;
    ++l->delivery_count;
    const bool settled = t.settled.value_or(false) || t.aborted;
    if (!settled) {
      if (l->unsettled >= opts.limits.max_unsettled_per_link) {
        link_error(idx, errc::resource_limit, "too many unsettled deliveries on the link");
        return;
      }
      if (s->incoming.span() >= opts.limits.max_unsettled_per_session) {
        session_error(sidx, errc::resource_limit, "too many unsettled deliveries in the session");
        return;
      }
      if (!s->incoming.push(*t.delivery_id, idx)) {
        session_error(sidx, errc::invalid_field, "delivery-id out of sequence");
        return;
      }
      ++l->unsettled;
    }
    const std::uint32_t fmt = t.message_format.value_or(0);
    if (t.aborted) {
      push(delivery_received{delivery_id{link_id{idx}, *t.delivery_id},
                             *t.delivery_tag,
                             {},
                             fmt,
                             true,
                             true,
                             t.resume,
                             t.state});
    } else if (!t.more) {
      if (l->max_message_size != 0 && payload.size() > l->max_message_size) {
        link_error(idx, errc::message_size_exceeded, "message above max-message-size");
        return;
      }
      push(delivery_received{delivery_id{link_id{idx}, *t.delivery_id}, *t.delivery_tag, payload,
                             fmt, settled, false, t.resume, t.state});
    } else {
      l->in_progress = true;
      l->in_id = *t.delivery_id;
      l->in_format = fmt;
      l->in_settled = settled;
      l->in_tag_size = static_cast<std::uint8_t>(t.delivery_tag->size());
      std::memcpy(l->in_tag.data(), t.delivery_tag->data(), l->in_tag_size);
      if (l->in_epoch == epoch && !l->in_buf.empty()) {
        // The last message reassembled here is still viewed by a queued event.
        retired.push_back(std::move(l->in_buf));
        l->in_buf = byte_buffer(mem);
      }
      l->in_buf.clear();
      if (l->max_message_size != 0 && payload.size() > l->max_message_size) {
        link_error(idx, errc::message_size_exceeded, "message above max-message-size");
        return;
      }
      l->in_buf.append(payload);
    }
  } else {
    // A continuation frame (§2.6.14).
    if (t.delivery_id && *t.delivery_id != l->in_id) {
      session_error(sidx, errc::invalid_field, "delivery-id changed within a delivery");
      return;
    }
    if (t.settled.value_or(false)) {
      l->in_settled = true;
    }
    const binary_view tag(l->in_tag.data(), l->in_tag_size);
    if (t.aborted) {
      l->in_progress = false;
      l->in_buf.clear();
      if (auto* slot = s->incoming.find(l->in_id)) {
        s->incoming.erase(slot);
        s->incoming.trim();
        --l->unsettled;
      }
      push(delivery_received{delivery_id{link_id{idx}, l->in_id},
                             tag,
                             {},
                             l->in_format,
                             true,
                             true,
                             t.resume,
                             t.state});
    } else {
      if (l->max_message_size != 0 && l->in_buf.size() + payload.size() > l->max_message_size) {
        link_error(idx, errc::message_size_exceeded, "message above max-message-size");
        return;
      }
      l->in_buf.append(payload);
      if (!t.more) {
        l->in_progress = false;
        l->in_epoch = epoch;
        push(delivery_received{delivery_id{link_id{idx}, l->in_id}, tag, l->in_buf.view(),
                               l->in_format, l->in_settled, false, t.resume, t.state});
      }
    }
  }
  s->window_used = true;
  window_used = true;
}

void connection_impl::on_disposition(std::uint16_t channel, const amqp::disposition& d) {
  session_state* s = session_for(channel, "disposition on a channel with no session");
  if (s == nullptr) {
    return;
  }
  // role = receiver: about deliveries we sent; role = sender: about ones we received.
  delivery_table& ring = d.role == amqp::role::receiver ? s->outgoing : s->incoming;
  const std::uint32_t last = d.last.value_or(d.first);
  if (serial_lt(last, d.first)) {
    fail(errc::invalid_field, "disposition with last before first");
    return;
  }
  // The range costs at most the span of the unsettled table, whatever first and last are.
  ring.for_range(d.first, last, [&](std::uint32_t id, delivery_slot& slot) {
    push(delivery_updated{delivery_id{link_id{slot.link}, id}, d.state, d.settled});
    if (d.settled) {
      --links[slot.link].unsettled;
      ring.erase(&slot);
    }
  });
  ring.trim();
}

void connection_impl::flush_disposition() {
  if (!disp.active) {
    return;
  }
  disp.active = false;
  amqp::disposition d;
  d.role = disp.role;
  d.first = disp.first;
  if (disp.last != disp.first) {
    d.last = disp.last;
  }
  d.settled = disp.settled;
  if (disp.outcome == 1) {
    d.state = accepted{};
  } else if (disp.outcome == 2) {
    d.state = released{};
  }
  write_own_frame(disp.session, d);
}

// Queues a disposition, coalescing consecutive delivery-ids with the same simple state.
// Errors: those of connection_impl::frame_size, for a state sent on its own (nothing is
// sent then).
static result<void> queue_disposition(connection_impl& c, std::uint16_t session, amqp::role role,
                                      std::uint32_t id, bool settled,
                                      const std::optional<delivery_state>& state) {
  const std::uint8_t kind = simple_outcome(state);
  auto& p = c.disp;
  if (kind != 3 && p.active && p.session == session && p.role == role && p.settled == settled &&
      p.outcome == kind && id == p.last + 1) {
    p.last = id;
    return {};
  }
  if (kind == 3) {
    amqp::disposition d;
    d.role = role;
    d.first = id;
    d.settled = settled;
    d.state = state;
    // A state that cannot be sent as asked is refused; none other goes out instead.
    if (auto n = c.frame_size(d, 0); !n) {
      return n.error();
    }
    c.flush_disposition();
    c.write_own_frame(session, d);
    return {};
  }
  c.flush_disposition();
  p.active = true;
  p.session = session;
  p.role = role;
  p.first = id;
  p.last = id;
  p.settled = settled;
  p.outcome = kind;
  return {};
}

result<void> connection_impl::settle(delivery_id d, const std::optional<delivery_state>& s) {
  if (fatal) {
    return fatal;
  }
  link_state* l = link_at(d.link);
  if (l == nullptr) {
    return errc::invalid_state;
  }
  session_state& ss = sessions[l->session];
  delivery_table& ring = l->role == amqp::role::sender ? ss.outgoing : ss.incoming;
  delivery_slot* slot = ring.find(d.number);
  if (slot == nullptr || slot->link != d.link.value) {
    return errc::invalid_state;
  }
  if (ss.st.local == endpoint_status::active && !close_sent) {
    if (auto q = queue_disposition(*this, l->session, l->role, d.number, true, s); !q) {
      return q.error(); // still unsettled
    }
  }
  --l->unsettled;
  ring.erase(slot);
  ring.trim();
  return {};
}

result<void> connection_impl::update(delivery_id d, const delivery_state& s) {
  if (fatal) {
    return fatal;
  }
  link_state* l = link_at(d.link);
  if (l == nullptr || close_sent || sessions[l->session].st.local != endpoint_status::active) {
    return errc::invalid_state; // a disposition only goes on a session that is not ended
  }
  session_state& ss = sessions[l->session];
  delivery_table& ring = l->role == amqp::role::sender ? ss.outgoing : ss.incoming;
  delivery_slot* slot = ring.find(d.number);
  if (slot == nullptr || slot->link != d.link.value) {
    return errc::invalid_state;
  }
  return queue_disposition(*this, l->session, l->role, d.number, false, s);
}

} // namespace amqp::detail
