// Dispatch (dispatch.hpp): links, credit, routing and outcomes.
#include "dispatch.hpp"

#include <algorithm>
#include <variant>

#include "amqp/message.hpp"

namespace amqp::broker {

namespace {

// The link an event names, or null (one the broker refused or already forgot).
link_entry* find_link(conn_state& c, link_id id) noexcept {
  auto it = c.links.find(id.value);
  return it == c.links.end() ? nullptr : it->second.get();
}

amqp::error make_error(std::string_view condition, std::string_view description) {
  return amqp::error{symbol_view{condition}, description, value{}};
}

// broker_options::admit's verdict as the outcome of a message not queued; none for accepted.
// The outcome views the verdict's strings.
std::optional<delivery_state> outcome_of(const admission& a) {
  switch (a.outcome) {
  case state_kind::accepted:
    return std::nullopt;
  case state_kind::rejected:
    return rejected{make_error(a.condition, a.description)};
  case state_kind::modified: {
    modified m;
    m.delivery_failed = a.delivery_failed;
    m.undeliverable_here = a.undeliverable_here;
    return m;
  }
  case state_kind::released:
  case state_kind::none:
  case state_kind::received:
  case state_kind::declared:
  case state_kind::transactional:
  case state_kind::other:
    break;
  }
  return released{}; // not an outcome admit may give: the message is not queued
}

} // namespace

std::vector<connection_handle> dispatcher::take_dirty() {
  std::vector<connection_handle> out = std::move(dirty_);
  dirty_.clear();
  return out;
}

void dispatcher::touch(conn_state& c) {
  if (&c != current_ && !c.dirty) {
    c.dirty = true;
    dirty_.push_back(c.handle);
  }
}

void dispatcher::on_flow(conn_state& c, const link_flow& f) {
  if (link_entry* l = find_link(c, f.link)) {
    on_flow(*l, f);
  }
}

void dispatcher::on_delivery(conn_state& c, const delivery_received& d) {
  if (link_entry* l = find_link(c, d.delivery.link)) {
    on_delivery(*l, d);
  }
}

void dispatcher::on_update(conn_state& c, const delivery_updated& u) {
  if (link_entry* l = find_link(c, u.delivery.link)) {
    on_update(*l, u);
  }
}

// Answers a client's attach that the broker cannot serve: AMQP 1.0 §2.6.3 answers it with
// a null local terminus (the source for a link the broker would send on, the target for one
// it would receive on) and the peer's other terminus, then detaches it with the error.
void dispatcher::refuse(conn_state& c, const link_attached& e, std::string_view condition,
                        std::string_view description) {
  const amqp::attach& a = e.remote;
  link_options o;
  o.role = a.role == role::sender ? role::receiver : role::sender;
  o.snd_settle_mode = a.snd_settle_mode;
  o.rcv_settle_mode = a.rcv_settle_mode;
  if (o.role == role::receiver) {
    o.source = a.source.value_or(amqp::source{});
  } else if (a.target && std::holds_alternative<amqp::target>(*a.target)) {
    o.target = std::get<amqp::target>(*a.target);
  } else {
    o.target = amqp::target{};
  }
  (void)c.engine.attach(e.link, o);
  (void)c.engine.detach(e.link, true, make_error(condition, description));
}

link_entry& dispatcher::add_link(conn_state& c, const link_attached& e, link_kind k, queue* q,
                                 bool owns) {
  auto l = std::make_unique<link_entry>();
  l->kind = k;
  l->id = e.link;
  l->session = e.session;
  l->key = next_key_++;
  l->conn = &c;
  l->q = q;
  l->owns_q = owns;
  link_entry& ref = *l;
  c.links[e.link.value] = std::move(l);
  c.info.links = c.links.size();
  return ref;
}

void dispatcher::on_attach(conn_state& c, const link_attached& e) {
  if (!e.remote_initiated) {
    return; // the broker attaches nothing itself
  }
  remove_link(c, e.link.value); // a stale entry under a reused id (never expected)
  if (c.links.size() >= opts_.max_links_per_connection) {
    refuse(c, e, amqp::symbol::resource_limit_exceeded, "too many links on this connection");
    return;
  }
  if (e.remote.role == role::receiver) {
    attach_consumer(c, e);
  } else {
    attach_producer(c, e);
  }
}

// The queue for an address a client names, through broker_options::route if set; on failure
// `refusal` says why.
result<queue*> dispatcher::routed(conn_state& c, bool consume, std::string_view address,
                                  amqp::error& refusal) {
  route_decision d;
  if (opts_.route) {
    d = opts_.route(route_request{c.info, consume, address});
    if (!d.condition.empty()) {
      // Kept here: the refusal's views are written out before the next routing decision.
      refused_by_route_ = std::move(d);
      refusal = make_error(refused_by_route_.condition, refused_by_route_.description);
      return errc::unauthorized;
    }
    address = d.queue;
  }
  auto r = store_.find_or_create(address);
  if (!r) {
    const bool full = r.error() == errc::resource_limit;
    refusal = make_error(full ? amqp::symbol::resource_limit_exceeded : amqp::symbol::not_found,
                         full ? "too many queues" : "no such queue");
  }
  return r;
}

// The queue a link's terminus names: a new dynamic queue (§3.5.1 dynamic), or the queue at
// `address`, found or created. Otherwise refuses the attach and returns false.
bool dispatcher::resolve(conn_state& c, const link_attached& e, bool consume, bool dynamic,
                         std::string_view address, queue*& q, bool& owns) {
  if (dynamic) {
    q = store_.create_dynamic();
    if (q == nullptr) {
      refuse(c, e, amqp::symbol::resource_limit_exceeded, "too many queues");
      return false;
    }
    owns = true;
    return true;
  }
  amqp::error refusal{};
  auto r = routed(c, consume, address, refusal);
  if (!r) {
    refuse(c, e, refusal.condition.str, refusal.description.value_or(std::string_view{}));
    return false;
  }
  q = *r;
  return true;
}

// A client's receiving link: the broker sends from the queue named by the source address,
// or from a new dynamic queue (AMQP 1.0 §3.5.1 dynamic: the node is created and its address
// returned in the answer's source).
void dispatcher::attach_consumer(conn_state& c, const link_attached& e) {
  const amqp::attach& a = e.remote;
  queue* q = nullptr;
  bool owns = false;
  const bool dynamic = a.source && a.source->dynamic;
  if (!dynamic && (!a.source || !a.source->address || a.source->address->empty())) {
    refuse(c, e, amqp::symbol::invalid_field, "a receiving link needs a source address");
    return;
  }
  if (!resolve(c, e, true, dynamic, dynamic ? std::string_view{} : *a.source->address, q, owns)) {
    return;
  }
  // The answer carries both termini (some clients refuse an attach without either): the
  // source as asked, at the queue's address, without the filters (none is applied, §3.5.1
  // filter: the answer lists the filters in force); the client's target as it is.
  link_options o;
  o.role = role::sender;
  o.snd_settle_mode = a.snd_settle_mode;
  o.rcv_settle_mode = a.rcv_settle_mode;
  amqp::source s = a.source.value_or(amqp::source{});
  s.address = q->name;
  s.filter = value{};
  o.source = s;
  if (a.target && std::holds_alternative<amqp::target>(*a.target)) {
    o.target = std::get<amqp::target>(*a.target);
  } else {
    o.target = amqp::target{};
  }
  if (!c.engine.attach(e.link, o)) {
    (void)c.engine.detach(e.link, true,
                          make_error(amqp::symbol::resource_limit_exceeded, "no handle free"));
    if (owns) {
      delete_queue(*q);
    } else {
      store_.maybe_gc(*q);
    }
    return;
  }
  link_entry& l = add_link(c, e, link_kind::consumer, q, owns);
  // AMQP 1.0 §2.8.2: settled means the receiver wants presettled transfers; mixed and
  // unsettled get unsettled ones (at-least-once).
  l.presettle = a.snd_settle_mode == sender_settle_mode::settled;
  q->consumers.push_back(&l);
  // Credit the client sent with its attach (before this answer) is in the engine: serve it
  // now (its link_flow event follows this answer).
  dispatch(*q);
}

// A client's sending link: the broker receives into the queue named by the target address,
// a new dynamic queue, or, with no address, relays_ each message by its properties.to.
void dispatcher::attach_producer(conn_state& c, const link_attached& e) {
  const amqp::attach& a = e.remote;
  if (a.target && std::holds_alternative<coordinator>(*a.target)) {
    refuse(c, e, amqp::symbol::not_implemented, "transactions are not supported");
    return;
  }
  amqp::target t = a.target ? std::get<amqp::target>(*a.target) : amqp::target{};
  queue* q = nullptr;
  bool owns = false;
  // No address (and not dynamic): the anonymous relay, q stays null.
  if ((t.dynamic || (t.address && !t.address->empty())) &&
      !resolve(c, e, false, t.dynamic, t.dynamic ? std::string_view{} : *t.address, q, owns)) {
    return;
  }
  link_options o;
  o.role = role::receiver;
  // §2.7.3: the sender's settle mode rules what it sends. The receiver's rcv-settle-mode is
  // the broker's to choose: first (outcomes go settled) unless the options serve second
  // (outcomes sent unsettled, settled once the client settles). Python uAMQP asks for
  // second and then never settles, so first is the default, as Azure's brokers answer.
  o.snd_settle_mode = a.snd_settle_mode;
  o.rcv_settle_mode = opts_.serve_settle_second ? a.rcv_settle_mode : receiver_settle_mode::first;
  o.source = a.source.value_or(amqp::source{});
  if (q != nullptr) {
    t.address = q->name;
  }
  o.target = t;
  if (!c.engine.attach(e.link, o)) {
    (void)c.engine.detach(e.link, true,
                          make_error(amqp::symbol::resource_limit_exceeded, "no handle free"));
    if (q != nullptr) {
      if (owns) {
        delete_queue(*q);
      } else {
        store_.maybe_gc(*q);
      }
    }
    return;
  }
  link_entry& l = add_link(c, e, link_kind::producer, q, owns);
  l.second = o.rcv_settle_mode == receiver_settle_mode::second;
  if (q != nullptr) {
    q->producers.push_back(&l);
  } else {
    relays_.push_back(&l);
  }
  top_up(l);
}

void dispatcher::on_flow(link_entry& l, const link_flow& f) {
  if (l.kind != link_kind::consumer) {
    return; // a producer's flow answers ours (drain, available): nothing to do
  }
  if (f.drain != l.drain) {
    l.drain = f.drain;
    if (f.drain) {
      ++l.q->draining;
    } else {
      --l.q->draining;
    }
  }
  dispatch(*l.q);
}

// A message from a producer: copied (the event's view dies at the next receive), queued,
// and accepted (or rejected with the reason).
void dispatcher::on_delivery(link_entry& l, const delivery_received& d) {
  if (l.kind != link_kind::producer) {
    return;
  }
  if (d.aborted) {
    // AMQP 1.0 §2.6.14: an aborted delivery is discarded (the engine settled it).
    ++counters_.aborted;
    return;
  }
  conn_state& c = *l.conn;
  queue* q = l.q;
  std::optional<amqp::error> refusal;
  if (q == nullptr) {
    // Anonymous relay: the message names its address (§3.2.4 properties.to).
    auto m = decode_message(d.payload);
    amqp::error why{};
    result<queue*> r = errc::invalid_argument;
    if (!m || !m->properties || !m->properties->to || m->properties->to->empty()) {
      refusal = make_error(amqp::symbol::not_found, "no address in properties.to");
    } else if (r = routed(c, false, *m->properties->to, why); !r) {
      refusal = why;
    } else if (store_.full(**r)) {
      refusal = make_error(amqp::symbol::resource_limit_exceeded, "queue full");
      store_.maybe_gc(**r);
    } else {
      q = *r;
    }
  }
  if (!refusal && !store_.fits(d.payload.size())) {
    refusal = make_error(amqp::symbol::resource_limit_exceeded, "broker memory limit reached");
    if (q != nullptr) {
      store_.maybe_gc(*q);
    }
  }
  std::optional<delivery_state> outcome;
  admission verdict; // outlives `outcome`, which views its strings
  if (refusal) {
    outcome = rejected{refusal};
  } else if (opts_.admit) {
    verdict = opts_.admit(incoming_message{c.info, q->name, d.payload, d.settled});
    outcome = outcome_of(verdict);
    if (outcome) {
      store_.maybe_gc(*q);
    }
  }
  if (outcome) {
    ++counters_.refused;
    if (!d.settled) {
      if (l.second) {
        (void)c.engine.update(d.delivery, *outcome);
      } else {
        (void)c.engine.settle(d.delivery, *outcome);
      }
    }
    top_up(l);
    return;
  }
  stored_message m;
  m.payload.assign(d.payload.begin(), d.payload.end());
  m.message_format = d.message_format;
  store_.enqueue(*q, std::move(m));
  ++counters_.received;
  if (!d.settled) {
    // §3.4.2 accepted. Under rcv-settle-mode second the outcome goes unsettled and the
    // client settles first (§2.8.3); the engine forgets the delivery then.
    if (l.second) {
      (void)c.engine.update(d.delivery, accepted{});
    } else {
      (void)c.engine.settle(d.delivery, accepted{});
    }
  }
  top_up(l);
  dispatch(*q);
}

// An outcome from a consumer (AMQP 1.0 §3.4) for a message it holds unsettled.
void dispatcher::on_update(link_entry& l, const delivery_updated& u) {
  if (l.kind != link_kind::consumer) {
    return; // a producer settling under rcv-settle-mode second: the engine forgot it
  }
  auto it = l.unsettled.find(u.delivery.number);
  if (it == l.unsettled.end()) {
    return;
  }
  // What the consumer's state means for the message: none (wait) while it is not done.
  state_kind v = kind_of(u.state);
  switch (v) {
  case state_kind::accepted:
  case state_kind::rejected:
  case state_kind::released:
  case state_kind::modified:
    break;
  case state_kind::none:
    // Settled with no outcome: the consumer is done with it (no default-outcome is
    // announced in our source); unsettled with none is no news.
  case state_kind::received:
    // §3.4.1 received is not terminal; settled with it, the consumer is done.
    v = u.settled ? state_kind::accepted : state_kind::none;
    break;
  case state_kind::declared:
  case state_kind::transactional:
  case state_kind::other:
    // Transactional and unknown states: not served here; the message is kept.
    v = state_kind::released;
    break;
  }
  if (v == state_kind::none) {
    return;
  }
  if (!u.settled) {
    // rcv-settle-mode second (or a consumer that sends its outcome first): the broker,
    // the sender, settles now (§2.8.3) and the consumer settles in turn.
    (void)l.conn->engine.settle(u.delivery, u.state);
    touch(*l.conn);
  }
  queue& q = *l.q;
  stored_message m = std::move(it->second);
  l.unsettled.erase(it);
  store_.settle(q, m);
  switch (v) {
  case state_kind::accepted:
    ++q.counters.accepted;
    break;
  case state_kind::rejected:
    ++q.counters.rejected; // no dead-letter queue: the message is dropped
    break;
  case state_kind::released:
    // §3.4.4: not acted upon; delivered again, delivery-count unchanged.
    ++q.counters.released;
    store_.requeue(q, std::move(m));
    break;
  case state_kind::modified: {
    const auto& mod = std::get<amqp::modified>(*u.state);
    ++q.counters.modified;
    const bool failed = mod.delivery_failed.value_or(false);
    const bool annotate =
        mod.message_annotations.is(type::map) && mod.message_annotations.count() > 0;
    if (failed || annotate) {
      // §3.4.5: delivery-failed counts in the header's delivery-count; message-annotations
      // are merged into the message's. Only the sections changed are re-encoded.
      if (auto mv = decode_message(m.payload)) {
        message_parts with;
        section_set replaced = section_set::none;
        if (failed) {
          header h = mv->header.value_or(header{});
          ++h.delivery_count;
          with.header = h;
          replaced = replaced | section_set::header;
        }
        std::vector<value> kv;
        if (annotate) {
          if (mv->message_annotations.is(type::map)) {
            bool is_key = true;
            bool keep = true;
            for (const value& x : mv->message_annotations.items()) {
              if (is_key) {
                const auto k = x.get_symbol();
                keep = !k || !mod.message_annotations.find(*k);
                if (keep) {
                  kv.push_back(x);
                }
              } else if (keep) {
                kv.push_back(x);
              }
              is_key = !is_key;
            }
          }
          for (const value& x : mod.message_annotations.items()) {
            kv.push_back(x);
          }
          with.message_annotations = value::map(kv);
          replaced = replaced | section_set::message_annotations;
        }
        std::vector<std::byte> out;
        out.reserve(m.payload.size() + 16);
        if (encode_append(*mv, with, replaced, out)) {
          m.payload = std::move(out);
        }
      }
    }
    if (mod.undeliverable_here.value_or(false)) {
      // Not to this consumer again; another may take it.
      if (m.undeliverable.size() >= max_undeliverable) {
        m.undeliverable.erase(m.undeliverable.begin());
      }
      m.undeliverable.push_back(l.key);
    }
    store_.requeue(q, std::move(m));
    break;
  }
  case state_kind::none:
  case state_kind::received:
  case state_kind::declared:
  case state_kind::transactional:
  case state_kind::other:
    break; // not reached: mapped to one of the four outcomes above
  }
  dispatch(q);
}

// Forgets link `id` of `c`: a consumer's unsettled messages go back to the front of its
// queue in their order; a dynamic queue it created is deleted.
void dispatcher::remove_link(conn_state& c, std::uint32_t id) {
  auto it = c.links.find(id);
  if (it == c.links.end()) {
    return;
  }
  std::unique_ptr<link_entry> l = std::move(it->second);
  c.links.erase(it);
  c.info.links = c.links.size();
  queue* q = l->q;
  if (l->kind == link_kind::consumer) {
    std::erase(q->consumers, l.get());
    if (q->next >= q->consumers.size()) {
      q->next = 0;
    }
    if (l->drain) {
      --q->draining;
    }
    std::vector<stored_message> back;
    back.reserve(l->unsettled.size());
    for (auto& [number, m] : l->unsettled) {
      back.push_back(std::move(m));
    }
    std::sort(back.begin(), back.end(),
              [](const stored_message& a, const stored_message& b) { return a.seq < b.seq; });
    for (auto& m : back) {
      store_.settle(*q, m);
      ++q->counters.returned;
      store_.requeue(*q, std::move(m));
    }
  } else if (q != nullptr) {
    std::erase(q->producers, l.get());
  } else {
    std::erase(relays_, l.get());
  }
  if (q == nullptr) {
    return;
  }
  if (l->owns_q) {
    delete_queue(*q);
  } else {
    dispatch(*q);
    store_.maybe_gc(*q);
  }
}

void dispatcher::remove_links(conn_state& c, const std::optional<session_id>& s) {
  std::vector<std::uint32_t> ids;
  for (const auto& [id, l] : c.links) {
    if (!s || l->session == *s) {
      ids.push_back(id);
      // Messages returned by the first links removed must not go to the others.
      l->blocked = true;
    }
  }
  // Oldest links first: returned messages land in the same order whatever the map's.
  std::sort(ids.begin(), ids.end(),
            [&](std::uint32_t a, std::uint32_t b) { return c.links[a]->key < c.links[b]->key; });
  for (std::uint32_t id : ids) {
    remove_link(c, id);
  }
}

// Consumers of `c` whose sends were refused (output above its limit, session window, too
// many unsettled) try again: after c's input (flow, dispositions) or output was written.
void dispatcher::retry_blocked(conn_state& c) {
  if (!c.any_blocked) {
    return;
  }
  c.any_blocked = false;
  std::vector<queue*> qs;
  for (auto& [id, l] : c.links) {
    if (l->blocked) {
      l->blocked = false;
      if (std::find(qs.begin(), qs.end(), l->q) == qs.end()) {
        qs.push_back(l->q);
      }
    }
  }
  for (queue* q : qs) {
    dispatch(*q);
  }
}

// Deletes a queue and its messages; links still attached to it are detached with
// amqp:resource-deleted (§2.8.15), their unsettled messages dropped.
void dispatcher::delete_queue(queue& q) {
  const auto err = make_error(amqp::symbol::resource_deleted, "queue deleted");
  std::vector<link_entry*> attached = q.consumers;
  attached.insert(attached.end(), q.producers.begin(), q.producers.end());
  for (link_entry* l : attached) {
    conn_state& c = *l->conn;
    (void)c.engine.detach(l->id, true, err);
    touch(c);
    c.links.erase(l->id.value);
    c.info.links = c.links.size();
  }
  store_.erase(q); // with the messages in flight on the links just detached
}

// Round-robin: each turn, the next consumer with credit takes one message.
void dispatcher::dispatch(queue& q) {
  while (!q.messages.empty() && !q.consumers.empty()) {
    const std::size_t n = q.consumers.size();
    bool sent = false;
    for (std::size_t i = 0; i < n && !sent; ++i) {
      const std::size_t k = (q.next + i) % n;
      link_entry& consumer = *q.consumers[k];
      if (consumer.blocked || consumer.conn->engine.credit(consumer.id) == 0) {
        continue;
      }
      const std::size_t pos = queue_store::pick(q, consumer.key);
      if (pos == std::string::npos) {
        continue;
      }
      if (deliver(q, consumer, pos)) {
        sent = true;
        q.next = (k + 1) % n;
      }
    }
    if (!sent) {
      break;
    }
  }
  answer_drains(q);
  refill(q);
  refill_relays();
}

// Sends the message at `pos` to `consumer`. False when the engine refused (no credit,
// output or window full, too many unsettled): the consumer is blocked until its
// connection's next input or written output.
bool dispatcher::deliver(queue& q, link_entry& consumer, std::size_t pos) {
  conn_state& c = *consumer.conn;
  stored_message& sm = q.messages[pos];
  transfer_options t;
  t.payload = sm.payload;
  t.message_format = sm.message_format;
  t.settled = consumer.presettle;
  auto r = c.engine.send(consumer.id, t);
  if (!r) {
    consumer.blocked = true;
    c.any_blocked = true;
    return false;
  }
  touch(c);
  stored_message m = store_.take(q, pos, !consumer.presettle);
  ++q.counters.delivered;
  if (consumer.presettle) {
    ++q.counters.accepted; // at-most-once: delivered is done
  } else {
    consumer.unsettled.insert_or_assign(r->number, std::move(m));
  }
  return true;
}

// AMQP 1.0 §2.6.7 drain: a consumer that asked to drain, with credit left and nothing it
// can take, gets its credit used up (connection::drained sends the flow).
void dispatcher::answer_drains(queue& q) {
  if (q.draining == 0) {
    return;
  }
  for (link_entry* consumer : q.consumers) {
    if (!consumer->drain) {
      continue;
    }
    conn_state& c = *consumer->conn;
    if (c.engine.credit(consumer->id) != 0 &&
        queue_store::pick(q, consumer->key) != std::string::npos) {
      continue; // still messages to send (it is blocked): later
    }
    (void)c.engine.drained(consumer->id);
    touch(c);
    consumer->drain = false;
    --q.draining;
  }
}

// The credit window a producer may have now: producer_credit, within the room left in its
// queue and in the broker's memory limit.
std::uint32_t dispatcher::grant(const link_entry& l) const noexcept {
  if (store_.memory_full()) {
    return 0;
  }
  if (l.q == nullptr) {
    return opts_.producer_credit;
  }
  const queue& q = *l.q;
  if (store_.full(q)) {
    return 0;
  }
  return static_cast<std::uint32_t>(std::min<std::size_t>(opts_.producer_credit, store_.room(q)));
}

// Tops a producer's credit up to its window once half of it is used (one flow per half
// window). A producer held back by a full queue is remembered and refilled as it drains.
// The engine counts a transfer against the credit when it reads it, the broker when it
// pulls its event: while the producer's connection has events queued the two disagree (and
// the room in the queue would be overestimated), so the top-up waits for the end of that
// connection's process().
void dispatcher::top_up(link_entry& l, bool now) {
  conn_state& c = *l.conn;
  if (!now && (&c == current_ || !c.engine.wants_read())) {
    if (!l.top_up_due) {
      l.top_up_due = true;
      c.top_ups.push_back(l.id.value);
    }
    return;
  }
  const std::uint32_t have = c.engine.credit(l.id);
  if (have > opts_.producer_credit / 2) {
    return;
  }
  const std::uint32_t want = grant(l);
  if (want > have) {
    if (c.engine.flow(l.id, want)) {
      touch(c);
    }
  }
  if (want < opts_.producer_credit) {
    if (l.q != nullptr) {
      l.q->producers_starved = true;
    } else {
      relays_starved_ = true;
    }
  }
}

void dispatcher::run_top_ups(conn_state& c) {
  // Every event of `c` is pulled: its credit is up to date.
  std::vector<std::uint32_t> ids = std::move(c.top_ups);
  c.top_ups.clear();
  for (std::uint32_t id : ids) {
    auto it = c.links.find(id);
    if (it != c.links.end() && it->second->top_up_due) {
      it->second->top_up_due = false;
      top_up(*it->second, true);
    }
  }
}

void dispatcher::refill(queue& q) {
  if (!q.producers_starved || store_.full(q) || store_.memory_full()) {
    return;
  }
  q.producers_starved = false;
  for (link_entry* p : q.producers) {
    top_up(*p);
  }
}

void dispatcher::refill_relays() {
  if (!relays_starved_ || store_.memory_full()) {
    return;
  }
  relays_starved_ = false;
  for (link_entry* p : relays_) {
    top_up(*p);
  }
}

} // namespace amqp::broker
