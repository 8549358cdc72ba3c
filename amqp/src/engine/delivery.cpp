// Deliveries (AMQP 1.0 §2.6.12-§2.6.14, §2.7.5, §2.7.6): the unsettled delivery tables,
// transfers sent (split at the peer's max-frame-size, held while the session's remote
// incoming window is closed, aborted) and received (reassembled), and dispositions with
// ranges and settlement.
#include <algorithm>
#include <cstring>

#include "amqp/assert.hpp"
#include "engine/engine.hpp"
#include "frame/transfer_codec.hpp"

namespace amqp::detail {

namespace {

// Dispositions with these states are coalesced into ranges (§2.7.6): they carry no fields,
// so one range states them all. Any other state goes out on its own.
constexpr bool coalescable(state_kind k) noexcept {
  return k == state_kind::none || k == state_kind::accepted || k == state_kind::released;
}

} // namespace

std::size_t delivery_table::lower_bound(std::uint32_t id) const noexcept {
  if (head_ >= v_.size()) {
    return v_.size();
  }
  // Offsets from the oldest entry order the ids (serial arithmetic, RFC 1982).
  const std::uint32_t base = v_[head_].id;
  const std::uint32_t key = serial_lt(id, base) ? 0 : id - base;
  std::size_t lo = head_;
  std::size_t hi = v_.size();
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (v_[mid].id - base < key) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

delivery_slot* delivery_table::find(std::uint32_t id) noexcept {
  if (head_ < v_.size() && v_[head_].id == id) {
    return v_[head_].link == no_index ? nullptr : &v_[head_]; // the common case
  }
  const std::size_t i = lower_bound(id);
  if (i < v_.size() && v_[i].id == id && v_[i].link != no_index) {
    return &v_[i];
  }
  return nullptr;
}

result<delivery_slot*> delivery_table::push(std::uint32_t id, std::uint32_t link) {
  if (head_ < v_.size() && !serial_lt(v_.back().id, id)) {
    return errc::invalid_field;
  }
  if (head_ > 0 && head_ * 2 >= v_.size()) {
    v_.erase(v_.begin(), v_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
  v_.push_back(delivery_slot{id, link});
  ++live_;
  return &v_.back();
}

void delivery_table::erase(delivery_slot* s) noexcept {
  s->link = no_index;
  --live_;
}

void delivery_table::trim() noexcept {
  while (head_ < v_.size() && v_[head_].link == no_index) {
    ++head_;
  }
  if (head_ == v_.size()) {
    v_.clear();
    head_ = 0;
    return;
  }
  const std::size_t dead = v_.size() - head_ - live_;
  if (dead > static_cast<std::size_t>(live_) + 64) {
    std::size_t w = 0;
    for (std::size_t r = head_; r < v_.size(); ++r) {
      if (v_[r].link != no_index) {
        v_[w++] = v_[r];
      }
    }
    v_.resize(w);
    head_ = 0;
  }
}

void delivery_table::erase_link(std::uint32_t l) noexcept {
  for (std::size_t i = head_; i < v_.size(); ++i) {
    if (v_[i].link == l) {
      v_[i].link = no_index;
      --live_;
    }
  }
  trim();
}

void connection_impl::pump_held(std::uint16_t index) {
  session_state& s = sessions[index];
  std::size_t done = 0;
  while (done < s.deliveries.held.size() && s.remote_incoming_window > 0) {
    held_transfer& h = s.deliveries.held[done];
    if (!send_frames(index, h, h.payload.view())) {
      break;
    }
    links[h.link].deliveries.held = false;
    ++done;
  }
  if (done > 0) {
    s.deliveries.held.erase(s.deliveries.held.begin(),
                            s.deliveries.held.begin() + static_cast<std::ptrdiff_t>(done));
  }
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
      if (frame_header_size + transfer_performative_size(t) + remaining >
          endpoint.remote_max_frame_size) {
        t.more = true;
        const std::size_t overhead = frame_header_size + transfer_performative_size(t);
        if (overhead >= endpoint.remote_max_frame_size) {
          fail(errc::frame_size_too_small, "transfer does not fit in the peer's max-frame-size");
          return true;
        }
        take = std::min<std::size_t>(remaining, endpoint.remote_max_frame_size - overhead);
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
      l->st.remote != endpoint_status::active || endpoint.close_sent) {
    return errc::invalid_state;
  }
  session_state& s = sessions[l->session];
  if (l->deliveries.held || l->credit == 0 ||
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
  if (!settled && (l->deliveries.unsettled >= opts.limits.max_unsettled_per_link ||
                   s.deliveries.outgoing.span() >= opts.limits.max_unsettled_per_session)) {
    return errc::resource_limit;
  }
  held_transfer h{};
  h.link = id.value;
  h.delivery_id = s.deliveries.next_delivery_id;
  h.message_format = t.message_format;
  h.settled = settled;
  if (!t.tag.empty()) {
    std::memcpy(h.tag.data(), t.tag.data(), t.tag.size());
    h.tag_size = static_cast<std::uint8_t>(t.tag.size());
  } else {
    // A per-link counter, big-endian, in as few bytes as it needs.
    std::uint64_t n = l->deliveries.tag_counter++;
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
    auto slot = s.deliveries.outgoing.push(h.delivery_id, id.value);
    if (!slot) {
      return slot.error();
    }
    ++l->deliveries.unsettled;
  }
  ++s.deliveries.next_delivery_id;
  ++l->delivery_count;
  --l->credit;
  if (!s.deliveries.held.empty() || !send_frames(l->session, h, t.payload)) {
    // The session window is closed (§2.5.6): the rest waits for the peer's flow.
    h.payload = byte_buffer(mem);
    h.payload.append(t.payload.subspan(h.offset));
    h.offset = 0;
    s.deliveries.held.push_back(std::move(h));
    l->deliveries.held = true;
  }
  return delivery_id{id, s.deliveries.next_delivery_id - 1};
}

result<void> connection_impl::abort(link_id id) {
  if (fatal) {
    return fatal;
  }
  link_state* l = link_at(id);
  if (l == nullptr || l->role != amqp::role::sender || !l->deliveries.held) {
    return errc::invalid_state;
  }
  session_state& s = sessions[l->session];
  for (auto& h : s.deliveries.held) {
    if (h.link == id.value) {
      h.aborted = true;
      // §2.6.14: an aborted delivery is settled.
      if (auto* slot = s.deliveries.outgoing.find(h.delivery_id)) {
        s.deliveries.outgoing.erase(slot);
        s.deliveries.outgoing.trim();
        --l->deliveries.unsettled;
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
  incoming_delivery& rx = l->deliveries.in;
  if (!rx.in_progress) {
    // The first frame of a delivery (§2.7.5).
    if (!t.delivery_id || !t.delivery_tag) {
      session_error(sidx, errc::invalid_field,
                    "first transfer of a delivery without delivery-id or delivery-tag");
      return;
    }
    if (s->deliveries.in_delivery_seen && *t.delivery_id != s->deliveries.next_in_delivery_id) {
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
    s->deliveries.in_delivery_seen = true;
    s->deliveries.next_in_delivery_id = *t.delivery_id + 1;
    ++l->delivery_count;
    const bool settled = t.settled.value_or(false) || t.aborted;
    if (!settled) {
      if (l->deliveries.unsettled >= opts.limits.max_unsettled_per_link) {
        link_error(idx, errc::resource_limit, "too many unsettled deliveries on the link");
        return;
      }
      if (s->deliveries.incoming.span() >= opts.limits.max_unsettled_per_session) {
        session_error(sidx, errc::resource_limit, "too many unsettled deliveries in the session");
        return;
      }
      if (!s->deliveries.incoming.push(*t.delivery_id, idx)) {
        session_error(sidx, errc::invalid_field, "delivery-id out of sequence");
        return;
      }
      ++l->deliveries.unsettled;
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
      rx.in_progress = true;
      rx.id = *t.delivery_id;
      rx.format = fmt;
      rx.settled = settled;
      rx.tag_size = static_cast<std::uint8_t>(t.delivery_tag->size());
      std::memcpy(rx.tag.data(), t.delivery_tag->data(), rx.tag_size);
      if (rx.epoch == epoch && !rx.buf.empty()) {
        // The last message reassembled here is still viewed by a queued event.
        retired.push_back(std::move(rx.buf));
        rx.buf = byte_buffer(mem);
      }
      rx.buf.clear();
      if (l->max_message_size != 0 && payload.size() > l->max_message_size) {
        link_error(idx, errc::message_size_exceeded, "message above max-message-size");
        return;
      }
      rx.buf.append(payload);
    }
  } else {
    // A continuation frame (§2.6.14).
    if (t.delivery_id && *t.delivery_id != rx.id) {
      session_error(sidx, errc::invalid_field, "delivery-id changed within a delivery");
      return;
    }
    if (t.settled.value_or(false)) {
      rx.settled = true;
    }
    const binary_view tag(rx.tag.data(), rx.tag_size);
    if (t.aborted) {
      rx.in_progress = false;
      rx.buf.clear();
      if (auto* slot = s->deliveries.incoming.find(rx.id)) {
        s->deliveries.incoming.erase(slot);
        s->deliveries.incoming.trim();
        --l->deliveries.unsettled;
      }
      push(delivery_received{
          delivery_id{link_id{idx}, rx.id}, tag, {}, rx.format, true, true, t.resume, t.state});
    } else {
      if (l->max_message_size != 0 && rx.buf.size() + payload.size() > l->max_message_size) {
        link_error(idx, errc::message_size_exceeded, "message above max-message-size");
        return;
      }
      rx.buf.append(payload);
      if (!t.more) {
        rx.in_progress = false;
        rx.epoch = epoch;
        push(delivery_received{delivery_id{link_id{idx}, rx.id}, tag, rx.buf.view(), rx.format,
                               rx.settled, false, t.resume, t.state});
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
  delivery_table& ring =
      d.role == amqp::role::receiver ? s->deliveries.outgoing : s->deliveries.incoming;
  const std::uint32_t last = d.last.value_or(d.first);
  if (serial_lt(last, d.first)) {
    fail(errc::invalid_field, "disposition with last before first");
    return;
  }
  // The range costs at most the span of the unsettled table, whatever first and last are.
  ring.for_range(d.first, last, [&](std::uint32_t id, delivery_slot& slot) {
    push(delivery_updated{delivery_id{link_id{slot.link}, id}, d.state, d.settled});
    if (d.settled) {
      --links[slot.link].deliveries.unsettled;
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
  if (disp.state == state_kind::accepted) {
    d.state = accepted{};
  } else if (disp.state == state_kind::released) {
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
  const state_kind kind = kind_of(state);
  auto& p = c.disp;
  if (coalescable(kind) && p.active && p.session == session && p.role == role &&
      p.settled == settled && p.state == kind && id == p.last + 1) {
    p.last = id;
    return {};
  }
  if (!coalescable(kind)) {
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
  p.state = kind;
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
  delivery_table& ring =
      l->role == amqp::role::sender ? ss.deliveries.outgoing : ss.deliveries.incoming;
  delivery_slot* slot = ring.find(d.number);
  if (slot == nullptr || slot->link != d.link.value) {
    return errc::invalid_state;
  }
  if (ss.st.local == endpoint_status::active && !endpoint.close_sent) {
    if (auto q = queue_disposition(*this, l->session, l->role, d.number, true, s); !q) {
      return q.error(); // still unsettled
    }
  }
  --l->deliveries.unsettled;
  ring.erase(slot);
  ring.trim();
  return {};
}

result<void> connection_impl::update(delivery_id d, const delivery_state& s) {
  if (fatal) {
    return fatal;
  }
  link_state* l = link_at(d.link);
  if (l == nullptr || endpoint.close_sent ||
      sessions[l->session].st.local != endpoint_status::active) {
    return errc::invalid_state; // a disposition only goes on a session that is not ended
  }
  session_state& ss = sessions[l->session];
  delivery_table& ring =
      l->role == amqp::role::sender ? ss.deliveries.outgoing : ss.deliveries.incoming;
  delivery_slot* slot = ring.find(d.number);
  if (slot == nullptr || slot->link != d.link.value) {
    return errc::invalid_state;
  }
  return queue_disposition(*this, l->session, l->role, d.number, false, s);
}

} // namespace amqp::detail
