// Cloud-to-device messages (§4): the service's sends on /messages/devicebound, the device
// queues (50 messages, TTL), deliveries under a 1-minute lock with GUID lock tokens, the
// device's outcomes (complete, abandon, reject), delivery counts, dead-lettering and the
// feedback it makes.
#include <algorithm>

#include "amqp/codec.hpp"
#include "amqp/iothub/errors.hpp"
#include "amqp/iothub/messages.hpp"
#include "emulator/hub_state.hpp"
#include "emulator/hub_texts.hpp"

namespace amqp::iothub::emulator {

namespace {

amqp::error make_error(std::string_view condition, std::string_view description) {
  return amqp::error{symbol_view{condition}, description, value{}};
}

// The key of a device's (or module's) queue.
std::string c2d_key(const device_identity& id) {
  return id.device_id + "\n" + id.module_id;
}

std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

} // namespace

std::string hub::impl::dotnet_guid_text(const amqp::uuid& g) {
  // .NET's Guid(byte[]): Data1 (bytes 0-3), Data2 (4-5), Data3 (6-7) little-endian.
  static constexpr std::size_t order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
  amqp::uuid be;
  for (std::size_t i = 0; i < 16; ++i) {
    be.bytes[i] = g.bytes[order[i]];
  }
  return guid_text(be);
}

result<void> hub::impl::load_c2d() {
  auto all = db.c2d_messages();
  if (!all) {
    return all.error();
  }
  for (c2d_record& r : *all) {
    device_identity target{r.device, r.module};
    const std::string key = c2d_key(target);
    c2d_queue& q = c2d[key];
    q.target = target;
    q.next_sequence = std::max(q.next_sequence, r.sequence + 1);
    c2d_entry e;
    e.id = next_c2d_id++;
    const std::int64_t seq = r.sequence;
    const std::int64_t expiry = r.expiry;
    e.rec = std::move(r);
    c2d_ids[e.id] = {key, seq};
    timers.schedule(at_wall_ms(expiry), timer_kind::c2d_expiry, e.id);
    if (e.rec.lock_expiry != 0) {
      // Locked when the hub stopped (a kill: a clean stop released it): locked until its
      // lock ends, then redelivered with the delivery count it had (DOC-C2D). A lock that
      // has ended already runs out at the first deadline.
      e.lock = next_lock++;
      c2d_locks[e.lock] = {key, seq};
      timers.schedule(at_wall_ms(e.rec.lock_expiry), timer_kind::c2d_lock, e.lock);
    }
    q.messages.emplace(seq, std::move(e));
  }
  return {};
}

// §4.1: a message from the service, for the device its `to` names.
void hub::impl::on_c2d_send(conn_state& c, link_state& l, const delivery_received& d) {
  (void)l;
  if (d.message_format != 0) {
    reject_later(c, d, amqp::symbol::not_implemented,
                 "Message format " + std::to_string(d.message_format) + " is not supported.");
    return;
  }
  if (d.payload.size() > opts.c2d_max_message_size) {
    reject_later(c, d, amqp::symbol::message_size_exceeded,
                 message_size_description(d.payload.size(), opts.c2d_max_message_size));
    return;
  }
  auto m = amqp::message::decode(d.payload);
  if (!m) {
    reject_later(c, d, amqp::symbol::decode_error,
                 "The message is not a valid AMQP message: " + m.error().message());
    return;
  }
  const auto& to = m->properties.to;
  auto target = to ? parse_address(*to) : result<address>(errc::missing_field);
  if (!target || target->kind != address_kind::device_c2d) {
    reject_later(c, d, condition::argument_error, texts::bad_c2d_to(to.value_or("")));
    return;
  }
  std::string ack(ack::none);
  if (auto a = m->application_properties.get(app_property::ack)) {
    const auto text = a->get_string();
    const std::string v = lowered(text.value_or("?"));
    if (v != ack::none && v != ack::positive && v != ack::negative && v != ack::full) {
      reject_later(c, d, condition::argument_error, texts::bad_ack(text.value_or("")));
      return;
    }
    ack = v;
  }
  const device_identity& who = target->identity;
  const device_record* dev = reg.device(who.device_id);
  if (dev == nullptr || !dev->enabled ||
      (who.is_module() && reg.module(who.device_id, who.module_id) == nullptr)) {
    reject_later(c, d, amqp::symbol::not_found, texts::not_registered(who, reg.hub_name()));
    return;
  }
  const std::string key = c2d_key(who);
  c2d_queue& q = c2d[key];
  q.target = who;
  if (q.messages.size() >= opts.c2d_max_queue) {
    // DOC-C2D, CS-SVC AmqpErrorMapper: 403004 DeviceMaximumQueueDepthExceeded.
    reject_later(c, d, amqp::symbol::resource_limit_exceeded,
                 texts::queue_full(who.device_id, opts.c2d_max_queue, q.messages.size()));
    return;
  }
  const std::int64_t now_ms = wall_ms();
  std::int64_t expiry = now_ms + opts.c2d_default_ttl.count();
  if (m->properties.absolute_expiry_time) {
    expiry = std::min(m->properties.absolute_expiry_time->ms, now_ms + opts.c2d_max_ttl.count());
  }
  c2d_entry e;
  e.id = next_c2d_id++;
  e.rec.device = who.device_id;
  e.rec.module = who.module_id;
  e.rec.sequence = q.next_sequence;
  e.rec.message.assign(d.payload.begin(), d.payload.end());
  const value& mid = m->properties.message_id.get();
  e.rec.message_id = mid.get_string().value_or(std::string_view{});
  if (e.rec.message_id.empty() && mid.get_unsigned()) {
    e.rec.message_id = std::to_string(*mid.get_unsigned());
  } else if (e.rec.message_id.empty() && mid.is(type::uuid)) {
    e.rec.message_id = guid_text(mid.as_uuid());
  }
  e.rec.ack = ack;
  e.rec.expiry = expiry;
  e.rec.enqueued_time = now_ms;
  if (!ensure_transaction() || !db.put_c2d(e.rec)) {
    tx_failed = true;
    reject_later(c, d, amqp::symbol::internal_error, "The hub could not store the message.");
    return;
  }
  const std::int64_t seq = q.next_sequence++;
  c2d_ids[e.id] = {key, seq};
  timers.schedule(at_wall_ms(expiry), timer_kind::c2d_expiry, e.id);
  q.messages.emplace(seq, std::move(e));
  c2d_added.emplace_back(key, seq);
  c2d_touched.push_back(key);
  if (!d.settled) {
    pending_outcome o;
    o.delivery = d.delivery;
    c.outcomes.push_back(std::move(o));
  }
}

void hub::impl::forget_c2d_added() {
  for (const auto& [key, seq] : c2d_added) {
    auto q = c2d.find(key);
    if (q == c2d.end()) {
      continue;
    }
    auto it = q->second.messages.find(seq);
    if (it != q->second.messages.end()) {
      c2d_ids.erase(it->second.id);
      q->second.messages.erase(it);
    }
  }
  c2d_added.clear();
}

// §4.3: the device's receiver of its queue.
void hub::impl::attach_c2d_receiver(conn_state& c, const link_attached& e, const address& a) {
  if (!answer(c, e, e.remote.rcv_settle_mode)) {
    return;
  }
  link_state& l = add_link(c, e, link_kind::device_c2d);
  l.presettle = e.remote.snd_settle_mode == sender_settle_mode::settled;
  l.queue = c2d_key(a.identity);
  c2d_queue& q = c2d[l.queue];
  q.target = a.identity;
  q.receivers.emplace_back(c.handle, l.id.value);
  pump_c2d(l.queue);
}

void hub::impl::pump_c2d(const std::string& key) {
  auto qi = c2d.find(key);
  if (qi == c2d.end()) {
    return;
  }
  c2d_queue& q = qi->second;
  const std::int64_t now_ms = wall_ms();
  // Messages committed, not locked, not expired, in sequence order.
  auto next_available = [&]() -> c2d_entry* {
    for (auto& [seq, e] : q.messages) {
      const bool uncommitted = std::find(c2d_added.begin(), c2d_added.end(),
                                         std::make_pair(key, seq)) != c2d_added.end();
      if (e.lock == 0 && e.rec.expiry > now_ms && !uncommitted) {
        return &e;
      }
    }
    return nullptr;
  };
  while (!q.receivers.empty()) {
    c2d_entry* e = next_available();
    if (e == nullptr) {
      return;
    }
    // Round-robin: the next receiver with credit takes it.
    bool sent = false;
    const std::size_t n = q.receivers.size();
    for (std::size_t i = 0; i < n && !sent; ++i) {
      const std::size_t k = (q.next_receiver + i) % n;
      const auto [h, id] = q.receivers[k];
      conn_state* c = find(h);
      if (c == nullptr || c->closed) {
        continue;
      }
      auto li = c->links.find(id);
      if (li == c->links.end() || c->engine.credit(li->second->id) == 0) {
        continue;
      }
      link_state& l = *li->second;
      // §4.3: the lock token is the delivery tag (a GUID), also in x-opt-lock-token.
      const amqp::uuid token = random_guid(random);
      const std::string token_text = dotnet_guid_text(token);
      auto view = decode_message(e->rec.message);
      if (!view) {
        continue;
      }
      const value kv[8] = {
          value(symbol_view{annotation::lock_token}),
          value(std::string_view(token_text)),
          value(symbol_view{annotation::sequence_number}),
          value(static_cast<std::uint64_t>(e->rec.sequence)),
          value(symbol_view{annotation::enqueued_time}),
          value(amqp::timestamp{e->rec.enqueued_time}),
          value(symbol_view{annotation::delivery_count}),
          value(static_cast<std::uint8_t>(std::min<std::uint32_t>(e->rec.delivery_count, 255))),
      };
      message_parts with;
      with.message_annotations = value::map(kv);
      std::vector<std::byte> payload;
      if (!encode_append(*view, with, section_set::message_annotations, payload)) {
        continue;
      }
      transfer_options t;
      t.payload = payload;
      t.tag = token.bytes;
      auto r = c->engine.send(l.id, t);
      if (!r) {
        continue; // no room in its output now: retried when it is written
      }
      touch(*c);
      sent = true;
      q.next_receiver = (k + 1) % n;
      if (l.presettle) {
        // A receiver that wants presettled messages (snd-settle-mode settled): delivered is
        // done (at most once).
        finish_c2d(key, e->rec.sequence, feedback_status::success);
        break;
      }
      e->lock = next_lock++;
      e->lock_token = token;
      e->lock_conn = h;
      e->lock_link = id;
      c2d_locks[e->lock] = {key, e->rec.sequence};
      l.locks[r->number] = e->lock;
      timers.schedule(now + opts.c2d_lock, timer_kind::c2d_lock, e->lock);
      // Kept, so that a restart after a kill keeps the message locked until then.
      e->rec.lock_expiry = wall_ms() + opts.c2d_lock.count();
      (void)db.set_c2d_lock(e->rec.device, e->rec.module, e->rec.sequence, e->rec.lock_expiry);
    }
    if (!sent) {
      return;
    }
  }
}

// §4.3 outcomes: accepted = complete, released = abandon, rejected = reject;
// modified{undeliverable-here} = reject, other modified = abandon (the emulator's choice for
// what no SDK sends). A disposition of a delivery whose lock is gone is answered (when the
// device waits for the hub to settle: rcv-settle-mode second) with
// com.microsoft:message-lock-lost, and otherwise ignored.
void hub::impl::on_c2d_disposition(conn_state& c, link_state& l, const delivery_updated& u) {
  const state_kind k = kind_of(u.state);
  if (!u.settled && !is_outcome(k)) {
    return; // received, or no state: no news
  }
  auto li = l.locks.find(u.delivery.number);
  std::uint64_t serial = li == l.locks.end() ? 0 : li->second;
  if (li != l.locks.end()) {
    l.locks.erase(li);
  }
  auto where = c2d_locks.find(serial);
  if (serial == 0 || where == c2d_locks.end()) {
    if (!u.settled) {
      (void)c.engine.settle(u.delivery,
                            rejected{make_error(condition::message_lock_lost, texts::lock_lost)});
    }
    return;
  }
  const auto [key, seq] = where->second;
  c2d_locks.erase(where);
  c2d_queue& q = c2d[key];
  auto it = q.messages.find(seq);
  if (it == q.messages.end() || it->second.lock != serial) {
    if (!u.settled) {
      (void)c.engine.settle(u.delivery,
                            rejected{make_error(condition::message_lock_lost, texts::lock_lost)});
    }
    return;
  }
  c2d_entry& e = it->second;
  e.lock = 0;
  e.rec.lock_expiry = 0; // put_c2d (abandon) or delete_c2d (the others) clears the stored one
  bool reject = k == state_kind::rejected;
  bool abandon = k == state_kind::released;
  if (const auto* m = u.state ? std::get_if<modified>(&*u.state) : nullptr) {
    reject = m->undeliverable_here.value_or(false);
    abandon = !reject;
  }
  if (!u.settled) {
    // rcv-settle-mode second: the hub, the sender, settles with the device's outcome.
    (void)c.engine.settle(u.delivery, u.state);
  }
  if (reject) {
    finish_c2d(key, seq, feedback_status::rejected);
  } else if (abandon) {
    // DOC-C2D: abandon raises the delivery count; at the maximum the message is dead-lettered.
    ++e.rec.delivery_count;
    if (e.rec.delivery_count >= opts.c2d_max_delivery_count) {
      finish_c2d(key, seq, feedback_status::delivery_count_exceeded);
    } else {
      if (ensure_transaction() && !db.put_c2d(e.rec)) {
        tx_failed = true;
      }
      c2d_touched.push_back(key);
    }
  } else {
    finish_c2d(key, seq, feedback_status::success); // accepted (or settled with no outcome)
  }
}

void hub::impl::finish_c2d(const std::string& key, std::int64_t sequence, feedback_status status) {
  c2d_queue& q = c2d[key];
  auto it = q.messages.find(sequence);
  if (it == q.messages.end()) {
    return;
  }
  c2d_entry e = std::move(it->second);
  q.messages.erase(it);
  c2d_ids.erase(e.id);
  if (e.lock != 0) {
    c2d_locks.erase(e.lock);
  }
  if (ensure_transaction() && !db.delete_c2d(e.rec.device, e.rec.module, e.rec.sequence)) {
    tx_failed = true;
  }
  add_feedback(e.rec, status);
}

void hub::impl::release_c2d(conn_state& c, link_state& l) {
  (void)c;
  for (const auto& [number, serial] : l.locks) {
    auto where = c2d_locks.find(serial);
    if (where == c2d_locks.end()) {
      continue;
    }
    auto& q = c2d[where->second.first];
    auto it = q.messages.find(where->second.second);
    if (it != q.messages.end() && it->second.lock == serial) {
      it->second.lock = 0; // available again, delivery count unchanged
      it->second.rec.lock_expiry = 0;
      const c2d_record& r = it->second.rec;
      (void)db.set_c2d_lock(r.device, r.module, r.sequence, 0);
    }
    c2d_locks.erase(where);
  }
  l.locks.clear();
  auto qi = c2d.find(l.queue);
  if (qi != c2d.end()) {
    std::erase(qi->second.receivers, std::make_pair(c.handle, l.id.value));
    c2d_touched.push_back(l.queue);
  }
}

// DOC-C2D: a lock that runs out makes the message available again, delivery count unchanged.
void hub::impl::on_c2d_lock_expiry(std::uint64_t serial) {
  auto where = c2d_locks.find(serial);
  if (where == c2d_locks.end()) {
    return;
  }
  const auto [key, seq] = where->second;
  c2d_locks.erase(where);
  auto& q = c2d[key];
  auto it = q.messages.find(seq);
  if (it != q.messages.end() && it->second.lock == serial) {
    it->second.lock = 0;
    it->second.rec.lock_expiry = 0; // the stored one is past: nothing to write
  }
  c2d_touched.push_back(key);
}

// DOC-C2D: an expired message is dead-lettered (feedback Expired).
void hub::impl::on_c2d_expiry(std::uint64_t id) {
  auto where = c2d_ids.find(id);
  if (where == c2d_ids.end()) {
    return;
  }
  const auto [key, seq] = where->second;
  auto& q = c2d[key];
  auto it = q.messages.find(seq);
  if (it == q.messages.end() || it->second.rec.expiry > wall_ms()) {
    return;
  }
  finish_c2d(key, seq, feedback_status::expired);
}

} // namespace amqp::iothub::emulator
