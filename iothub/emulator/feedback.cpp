// Feedback (§5.1): records of C2D messages' fates, batched (64 records, or 15 s after the first
// waits) into messages for the service's /messages/serviceBound/feedback receivers, delivered
// under a lock with a max delivery count. The JSON and the message are the profile layer's
// (amqp/iothub/feedback.hpp).
#include <algorithm>

#include "amqp/iothub/errors.hpp"
#include "amqp/iothub/messages.hpp"
#include "emulator/hub_state.hpp"
#include "emulator/hub_texts.hpp"

namespace amqp::iothub::emulator {

namespace {

amqp::error make_error(std::string_view condition, std::string_view description) {
  return amqp::error{symbol_view{condition}, description, value{}};
}

bool wants(std::string_view ack_value, feedback_status status) {
  if (ack_value == ack::full) {
    return true;
  }
  return status == feedback_status::success ? ack_value == ack::positive
                                            : ack_value == ack::negative;
}

} // namespace

result<void> hub::impl::load_feedback() {
  auto pending = db.pending_feedback();
  if (!pending) {
    return pending.error();
  }
  feedback_pending = std::move(*pending);
  auto batches = db.feedback_batches();
  if (!batches) {
    return batches.error();
  }
  for (feedback_batch& b : *batches) {
    const std::int64_t id = b.id;
    timers.schedule(at_wall_ms(b.enqueued_time + opts.feedback_ttl.count()),
                    timer_kind::feedback_expiry, static_cast<std::uint64_t>(id));
    feedback[id].batch = std::move(b);
  }
  if (!feedback_pending.empty()) {
    feedback_window_armed = true;
    timers.schedule(time_point{}, timer_kind::feedback_window);
  }
  return {};
}

// DOC-C2D: Success when iothub-ack is positive or full; Expired, DeliveryCountExceeded and
// Rejected when it is negative or full. Feedback for a deleted device is dropped.
void hub::impl::add_feedback(const c2d_record& m, feedback_status status) {
  if (!wants(m.ack, status)) {
    return;
  }
  const device_record* d = reg.device(m.device);
  if (d == nullptr) {
    return;
  }
  stored_feedback r;
  r.original_message_id = m.message_id;
  r.device_id = m.device;
  r.device_generation_id = d->generation_id;
  r.status_code = to_string(status);
  r.description = r.status_code; // as the doc's example; the C service SDK reads only this
  r.enqueued_time = wall_ms();
  if (!ensure_transaction()) {
    return;
  }
  auto id = db.add_feedback(r);
  if (!id) {
    tx_failed = true;
    return;
  }
  r.id = *id;
  feedback_pending.push_back(std::move(r));
  if (feedback_pending.size() >= opts.feedback_batch_size) {
    make_feedback_batch();
  } else if (!feedback_window_armed) {
    feedback_window_armed = true;
    timers.schedule(now + opts.feedback_window, timer_kind::feedback_window);
  }
}

void hub::impl::make_feedback_batch() {
  while (!feedback_pending.empty()) {
    const std::size_t n = std::min(feedback_pending.size(), opts.feedback_batch_size);
    std::vector<feedback_record> records;
    std::vector<std::int64_t> ids;
    for (std::size_t i = 0; i < n; ++i) {
      const stored_feedback& s = feedback_pending[i];
      feedback_record r;
      r.original_message_id = s.original_message_id;
      r.device_id = s.device_id;
      r.device_generation_id = s.device_generation_id;
      r.status_code = feedback_status_from(s.status_code).value_or(feedback_status::success);
      r.description = s.description;
      r.enqueued_time_utc = amqp::timestamp{s.enqueued_time};
      records.push_back(std::move(r));
      ids.push_back(s.id);
    }
    const std::int64_t at = wall_ms();
    amqp::message m = build_feedback_message(records, reg.hub_name(), amqp::timestamp{at});
    m.properties.message_id = guid_text(random_guid(random));
    auto bytes = m.encode();
    if (!bytes || !ensure_transaction()) {
      return;
    }
    auto id = db.make_feedback_batch(ids, *bytes, at);
    if (!id) {
      tx_failed = true;
      return;
    }
    feedback_entry& e = feedback[*id];
    e.batch.id = *id;
    e.batch.message = std::move(*bytes);
    e.batch.enqueued_time = at;
    timers.schedule(at_wall_ms(at + opts.feedback_ttl.count()), timer_kind::feedback_expiry,
                    static_cast<std::uint64_t>(*id));
    feedback_pending.erase(feedback_pending.begin(),
                           feedback_pending.begin() + static_cast<std::ptrdiff_t>(n));
  }
  feedback_window_armed = false;
}

void hub::impl::on_feedback_window() {
  feedback_window_armed = false;
  make_feedback_batch();
}

void hub::impl::pump_feedback() {
  for (auto& [id, e] : feedback) {
    if (e.lock != 0) {
      continue;
    }
    bool sent = false;
    const std::size_t n = feedback_receivers.size();
    for (std::size_t i = 0; i < n && !sent; ++i) {
      const std::size_t k = (next_feedback_receiver + i) % n;
      const auto [h, link] = feedback_receivers[k];
      conn_state* c = find(h);
      if (c == nullptr || c->closed) {
        continue;
      }
      auto li = c->links.find(link);
      if (li == c->links.end() || c->engine.credit(li->second->id) == 0) {
        continue;
      }
      const amqp::uuid token = random_guid(random);
      transfer_options t;
      t.payload = e.batch.message;
      t.tag = token.bytes;
      auto r = c->engine.send(li->second->id, t);
      if (!r) {
        continue;
      }
      touch(*c);
      sent = true;
      next_feedback_receiver = (k + 1) % n;
      if (li->second->presettle) {
        // At most once: the receiver asked for presettled messages.
        (void)db.delete_feedback_batch(id);
        e.lock = ~std::uint64_t{0}; // erased below
        break;
      }
      e.lock = next_lock++;
      e.lock_conn = h;
      e.lock_link = link;
      feedback_locks[e.lock] = id;
      li->second->locks[r->number] = e.lock;
      timers.schedule(now + opts.feedback_lock, timer_kind::feedback_lock, e.lock);
    }
    if (!sent) {
      break;
    }
  }
  std::erase_if(feedback, [](const auto& kv) { return kv.second.lock == ~std::uint64_t{0}; });
}

// §5.1: accepted removes the batch; released (or a lock that runs out) delivers it again,
// up to the max delivery count; rejected drops it.
void hub::impl::on_feedback_disposition(conn_state& c, link_state& l, const delivery_updated& u) {
  const state_kind k = kind_of(u.state);
  if (!u.settled && !is_outcome(k)) {
    return;
  }
  auto li = l.locks.find(u.delivery.number);
  const std::uint64_t serial = li == l.locks.end() ? 0 : li->second;
  if (li != l.locks.end()) {
    l.locks.erase(li);
  }
  auto where = feedback_locks.find(serial);
  auto it = where == feedback_locks.end() ? feedback.end() : feedback.find(where->second);
  if (serial == 0 || it == feedback.end() || it->second.lock != serial) {
    if (!u.settled) {
      (void)c.engine.settle(u.delivery,
                            rejected{make_error(condition::message_lock_lost, texts::lock_lost)});
    }
    if (where != feedback_locks.end()) {
      feedback_locks.erase(where);
    }
    return;
  }
  feedback_locks.erase(where);
  feedback_entry& e = it->second;
  e.lock = 0;
  if (!u.settled) {
    (void)c.engine.settle(u.delivery, u.state);
  }
  bool drop = k == state_kind::accepted || k == state_kind::rejected || k == state_kind::none;
  if (const auto* m = u.state ? std::get_if<modified>(&*u.state) : nullptr) {
    drop = m->undeliverable_here.value_or(false);
  }
  if (!drop) {
    ++e.batch.delivery_count;
    drop = e.batch.delivery_count >= opts.feedback_max_delivery_count;
    if (!drop && ensure_transaction() &&
        !db.set_feedback_delivery_count(e.batch.id, e.batch.delivery_count)) {
      tx_failed = true;
    }
  }
  if (drop) {
    if (ensure_transaction() && !db.delete_feedback_batch(e.batch.id)) {
      tx_failed = true;
    }
    feedback.erase(it);
  }
}

void hub::impl::release_feedback(conn_state& c, link_state& l) {
  for (const auto& [number, serial] : l.locks) {
    auto where = feedback_locks.find(serial);
    if (where == feedback_locks.end()) {
      continue;
    }
    auto it = feedback.find(where->second);
    if (it != feedback.end() && it->second.lock == serial) {
      it->second.lock = 0;
    }
    feedback_locks.erase(where);
  }
  l.locks.clear();
  std::erase(feedback_receivers, std::make_pair(c.handle, l.id.value));
}

// A batch no receiver completed within the feedback TTL is dropped (one being delivered gets
// until its lock ends).
void hub::impl::on_feedback_expiry(std::int64_t id) {
  auto it = feedback.find(id);
  if (it == feedback.end()) {
    return;
  }
  if (it->second.lock != 0) {
    timers.schedule(now + opts.feedback_lock, timer_kind::feedback_expiry,
                    static_cast<std::uint64_t>(id));
    return;
  }
  if (ensure_transaction() && !db.delete_feedback_batch(id)) {
    tx_failed = true;
  }
  feedback.erase(it);
}

void hub::impl::on_feedback_lock_expiry(std::uint64_t serial) {
  auto where = feedback_locks.find(serial);
  if (where == feedback_locks.end()) {
    return;
  }
  auto it = feedback.find(where->second);
  feedback_locks.erase(where);
  if (it != feedback.end() && it->second.lock == serial) {
    it->second.lock = 0;
  }
}

} // namespace amqp::iothub::emulator
