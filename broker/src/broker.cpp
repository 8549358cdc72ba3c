// The in-memory broker: connections (one server engine each), queues, consumers and
// producers. Everything is driven by process(): it pulls a connection's events and acts on
// them; routing a message may send on any connection's engine (those are reported by
// take_dirty()). Messages are owned by exactly one place at a time: a queue, or the
// consumer link that holds them unsettled.
#include "amqp/broker.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <unordered_map>
#include <variant>

#include "amqp/event.hpp"
#include "amqp/message.hpp"

namespace amqp::broker {

namespace {

// The anonymous relay capability (AMQP Anonymous Terminus for Message Routing 1.0 §2.2):
// clients look for it in the open before attaching a sender with no target address.
constexpr symbol_view anonymous_relay{"ANONYMOUS-RELAY"};

// Messages a consumer looks past, from the front of its queue, for one it may take (the
// others answered undeliverable-here for it).
constexpr std::size_t pick_scan = 64;
// Consumers remembered per message as having answered undeliverable-here.
constexpr std::size_t max_undeliverable = 16;

struct queue;
struct conn_state;

// A message held by the broker: its encoded sections, copied from the producer's transfer.
struct stored_message {
  std::vector<std::byte> payload;
  std::uint32_t message_format = 0;
  std::uint64_t seq = 0;                    // arrival order: a queue is sorted by it
  std::vector<std::uint64_t> undeliverable; // keys of consumers that refused it here
};

enum class link_kind : std::uint8_t { consumer, producer };

// A link attached through the broker.
struct link_entry {
  link_kind kind = link_kind::consumer;
  link_id id{};
  session_id session{};
  std::uint64_t key = 0; // unique for the broker's life (link ids are reused)
  conn_state* conn = nullptr;
  queue* q = nullptr;      // null: a producer that is an anonymous relay
  bool owns_q = false;     // q is the dynamic queue this link created
  bool presettle = false;  // consumer: snd-settle-mode settled, send presettled
  bool second = false;     // producer: rcv-settle-mode second, outcomes sent unsettled
  bool blocked = false;    // consumer: the engine refused a send (would_block, limits)
  bool drain = false;      // consumer: the client asked to drain
  bool top_up_due = false; // producer: listed in conn->top_ups
  // Consumer: messages sent unsettled, by delivery-number.
  std::unordered_map<std::uint32_t, stored_message> unsettled;
};

struct queue {
  std::string name;
  std::deque<stored_message> messages; // sorted by seq
  std::size_t bytes = 0;
  std::size_t in_flight = 0;
  std::size_t in_flight_bytes = 0;
  std::vector<link_entry*> consumers;
  std::size_t next = 0; // round-robin position in consumers
  std::size_t draining = 0;
  std::vector<link_entry*> producers;
  bool producers_starved = false; // some producer got less than a full credit window
  bool dynamic = false;
  bool declared = false;
  queue_stats counters{};
};

struct conn_state {
  connection_handle handle = 0;
  amqp::connection engine;
  bool dirty = false;
  bool any_blocked = false;
  std::vector<std::uint32_t> top_ups; // producer links whose credit is looked at after process
  connection_info info{};
  std::unordered_map<std::uint32_t, std::unique_ptr<link_entry>> links;

  explicit conn_state(const connection_options& o) : engine(o) {}
};

// Compares two strings in time that depends on their lengths only.
bool same_secret(std::string_view a, std::string_view b) noexcept {
  unsigned diff = a.size() == b.size() ? 0U : 1U;
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    diff |=
        static_cast<unsigned>(static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]));
  }
  return diff == 0;
}

amqp::error make_error(std::string_view condition, std::string_view description) {
  return amqp::error{symbol_view{condition}, description, value{}};
}

// broker_options::admit's verdict as the outcome of a message not queued; none for accept.
// The outcome views the verdict's strings.
std::optional<delivery_state> outcome_of(const admission& a) {
  switch (a.outcome) {
  case admission::kind::accept:
    break;
  case admission::kind::reject:
    return rejected{make_error(a.condition, a.description)};
  case admission::kind::release:
    return released{};
  case admission::kind::modify: {
    modified m;
    m.delivery_failed = a.delivery_failed;
    m.undeliverable_here = a.undeliverable_here;
    return m;
  }
  }
  return std::nullopt;
}

} // namespace

struct broker::impl {
  broker_options opts;
  std::string container_id;
  std::string mechanisms;
  connection_options conn_opts;
  std::string external_mechanisms;
  connection_options external_opts; // clients with a verified certificate: EXTERNAL too

  std::unordered_map<connection_handle, std::unique_ptr<conn_state>> conns;
  std::map<std::string, queue, std::less<>> queues;
  std::vector<link_entry*> relays;
  bool relays_starved = false;
  connection_handle next_handle = 1;
  std::uint64_t next_key = 1;
  std::uint64_t next_seq = 1;
  std::uint64_t next_dynamic = 1;
  std::size_t total_bytes = 0;
  broker_stats counters{};
  std::vector<connection_handle> dirty;
  conn_state* current = nullptr;   // the connection being processed (not reported dirty)
  route_decision refused_by_route; // the last refusal of broker_options::route

  explicit impl(broker_options o);

  conn_state* find(connection_handle c) noexcept {
    auto it = conns.find(c);
    return it == conns.end() ? nullptr : it->second.get();
  }
  void touch(conn_state& c) {
    if (&c != current && !c.dirty) {
      c.dirty = true;
      dirty.push_back(c.handle);
    }
  }

  // ---- events
  void process(conn_state& c);
  void on_sasl_init(conn_state& c, const sasl_init_received& e);
  void on_attach(conn_state& c, const link_attached& e);
  void attach_consumer(conn_state& c, const link_attached& e);
  void attach_producer(conn_state& c, const link_attached& e);
  void refuse(conn_state& c, const link_attached& e, std::string_view condition,
              std::string_view description);
  link_entry& add_link(conn_state& c, const link_attached& e, link_kind k, queue* q, bool owns);
  void on_flow(link_entry& l, const link_flow& f);
  void on_delivery(link_entry& l, const delivery_received& d);
  void on_update(link_entry& l, const delivery_updated& u);
  void remove_link(conn_state& c, std::uint32_t id);
  void remove_links(conn_state& c, const std::optional<session_id>& s);
  void retry_blocked(conn_state& c);

  // ---- queues
  result<queue*> find_or_create(std::string_view address);
  result<queue*> routed(conn_state& c, bool consume, std::string_view address,
                        amqp::error& refusal);
  bool resolve(conn_state& c, const link_attached& e, bool consume, bool dynamic,
               std::string_view address, queue*& q, bool& owns);
  queue* create_dynamic();
  void delete_queue(queue& q);
  void maybe_gc(queue& q);
  [[nodiscard]] bool full(const queue& q) const noexcept;
  void enqueue(queue& q, stored_message m);
  void requeue(queue& q, stored_message m);
  void dispatch(queue& q);
  [[nodiscard]] std::size_t pick(const queue& q, const link_entry& consumer) const noexcept;
  bool deliver(queue& q, link_entry& consumer, std::size_t pos);
  void answer_drains(queue& q);

  // ---- producer credit
  [[nodiscard]] std::uint32_t grant(const link_entry& l) const noexcept;
  void top_up(link_entry& l, bool now = false);
  void run_top_ups(conn_state& c);
  void refill(queue& q);
  void refill_relays();
};

broker::impl::impl(broker_options o) : opts(std::move(o)) {
  // The producer's deliveries stay unsettled in the engine until process() settles them:
  // a credit window above the engine's unsettled limit would let a well-behaved producer
  // trip it within one read.
  opts.producer_credit = std::clamp<std::uint32_t>(
      opts.producer_credit, 1,
      std::max<std::uint32_t>(opts.connection.limits.max_unsettled_per_link, 1));
  container_id = opts.connection.container_id.empty() ? std::string("amqp-broker")
                                                      : std::string(opts.connection.container_id);
  // PLAIN is always offered: checked against the users, or (without users) as open as
  // ANONYMOUS when that is allowed, else failing with a SASL outcome (auth) rather than
  // leaving the client with no mechanism in common.
  mechanisms = opts.allow_anonymous ? "PLAIN ANONYMOUS" : "PLAIN";
  conn_opts = opts.connection;
  conn_opts.role = connection_role::server;
  conn_opts.container_id = container_id;
  if (conn_opts.offered_capabilities.is_null()) {
    conn_opts.offered_capabilities = value(anonymous_relay);
  }
  conn_opts.sasl = sasl_options{};
  conn_opts.sasl.enabled = true;
  conn_opts.sasl.server_mechanisms = mechanisms;
  conn_opts.sasl.accept_anonymous = opts.allow_anonymous;
  // A client that skips SASL (AMQP 1.0 §5.3.1) is served only when anonymous access is
  // allowed; otherwise the engine answers with the SASL header and closes.
  conn_opts.sasl.optional = opts.allow_anonymous;
  external_mechanisms = "EXTERNAL " + mechanisms;
  external_opts = conn_opts;
  external_opts.sasl.server_mechanisms = external_mechanisms;
}

// ---- events --------------------------------------------------------------------------

void broker::impl::process(conn_state& c) {
  current = &c;
  while (auto e = c.engine.next_event()) {
    if (const auto* si = std::get_if<sasl_init_received>(&*e)) {
      on_sasl_init(c, *si);
    } else if (std::holds_alternative<sasl_response_received>(*e)) {
      // No challenge is ever sent: a response is out of place.
      (void)c.engine.sasl_complete(sasl_code::auth);
    } else if (const auto* sd = std::get_if<sasl_done>(&*e)) {
      c.info.sasl = true;
      c.info.mechanism = sd->mechanism.str;
      c.info.authenticated = sd->code == sasl_code::ok;
    } else if (std::holds_alternative<connection_opened>(*e)) {
      if (c.engine.sasl_skipped()) {
        c.info.sasl = false;
        c.info.authenticated = true; // anonymous, as allowed
      }
      // AMQP 1.0 §2.4.1: the server answers the client's open with its own (our idle
      // timeout from the options; the engine keeps within the client's with heartbeats).
      if (c.engine.state().local == endpoint_status::uninit) {
        (void)c.engine.open();
      }
    } else if (const auto* sb = std::get_if<session_begun>(&*e)) {
      if (sb->remote_initiated) {
        (void)c.engine.begin(sb->session); // §2.5.1: a begin is answered
      }
    } else if (const auto* se = std::get_if<session_ended>(&*e)) {
      // The engine answers the end (§2.5.1) and forgets the session's links: so do we.
      remove_links(c, se->session);
    } else if (const auto* la = std::get_if<link_attached>(&*e)) {
      on_attach(c, *la);
    } else if (const auto* ld = std::get_if<link_detached>(&*e)) {
      // The engine answers a detach with a detach (§2.6.6); the link is gone for us either
      // way (a detach that only suspends it is treated as a close: nothing is durable).
      remove_link(c, ld->link.value);
    } else if (const auto* lf = std::get_if<link_flow>(&*e)) {
      auto it = c.links.find(lf->link.value);
      if (it != c.links.end()) {
        on_flow(*it->second, *lf);
      }
    } else if (const auto* dr = std::get_if<delivery_received>(&*e)) {
      auto it = c.links.find(dr->delivery.link.value);
      if (it != c.links.end()) {
        on_delivery(*it->second, *dr);
      }
    } else if (const auto* du = std::get_if<delivery_updated>(&*e)) {
      auto it = c.links.find(du->delivery.link.value);
      if (it != c.links.end()) {
        on_update(*it->second, *du);
      }
    } else if (std::holds_alternative<connection_closed>(*e)) {
      c.info.closed = true;
      remove_links(c, std::nullopt);
    }
  }
  retry_blocked(c);
  run_top_ups(c);
  current = nullptr;
}

void broker::impl::on_sasl_init(conn_state& c, const sasl_init_received& e) {
  bool ok = false;
  if (e.mechanism.str == "PLAIN" && opts.authenticate) {
    ok = opts.authenticate(sasl_login{e.username, e.password, e.authzid, e.hostname});
    if (ok) {
      c.info.user = e.username;
    }
  } else if (e.mechanism.str == "PLAIN") {
    if (opts.users.empty()) {
      ok = opts.allow_anonymous;
    } else {
      for (const auto& [user, password] : opts.users) {
        // Every entry is compared, so the time does not tell which user exists.
        const bool user_ok = same_secret(user, e.username);
        const bool password_ok = same_secret(password, e.password);
        ok = ok || (user_ok && password_ok);
      }
    }
    // RFC 4616 §2: an authorization identity other than the authenticated one asks to act
    // as someone else; nobody may here.
    ok = ok && (e.authzid.empty() || e.authzid == e.username);
    if (ok) {
      c.info.user = e.username;
    }
  } else if (e.mechanism.str == "ANONYMOUS") {
    ok = opts.allow_anonymous;
  } else if (e.mechanism.str == "EXTERNAL") {
    // RFC 4422 appendix A: the identity is the one the TLS layer established; the client
    // may ask for an authorization identity, which must be that identity here.
    const std::string_view authz(reinterpret_cast<const char*>(e.initial_response.data()),
                                 e.initial_response.size());
    ok = !c.info.certificate_subject.empty() &&
         (authz.empty() || authz == c.info.certificate_subject);
    if (ok) {
      c.info.user = c.info.certificate_subject;
    }
  }
  // AMQP 1.0 §5.3.3.6: auth (1) for bad credentials; the engine then ends the connection.
  (void)c.engine.sasl_complete(ok ? sasl_code::ok : sasl_code::auth);
}

// Answers a client's attach that the broker cannot serve: AMQP 1.0 §2.6.3 answers it with
// a null local terminus (the source for a link the broker would send on, the target for one
// it would receive on) and the peer's other terminus, then detaches it with the error.
void broker::impl::refuse(conn_state& c, const link_attached& e, std::string_view condition,
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

link_entry& broker::impl::add_link(conn_state& c, const link_attached& e, link_kind k, queue* q,
                                   bool owns) {
  auto l = std::make_unique<link_entry>();
  l->kind = k;
  l->id = e.link;
  l->session = e.session;
  l->key = next_key++;
  l->conn = &c;
  l->q = q;
  l->owns_q = owns;
  link_entry& ref = *l;
  c.links[e.link.value] = std::move(l);
  c.info.links = c.links.size();
  return ref;
}

void broker::impl::on_attach(conn_state& c, const link_attached& e) {
  if (!e.remote_initiated) {
    return; // the broker attaches nothing itself
  }
  remove_link(c, e.link.value); // a stale entry under a reused id (never expected)
  if (c.links.size() >= opts.max_links_per_connection) {
    refuse(c, e, amqp::symbol::resource_limit_exceeded, "too many links on this connection");
    return;
  }
  if (e.remote.role == role::receiver) {
    attach_consumer(c, e);
  } else {
    attach_producer(c, e);
  }
}

// The queue a link's terminus names: a new dynamic queue (§3.5.1 dynamic), or the queue at
// `address`, found or created. Otherwise refuses the attach and returns false.
// The queue for an address a client names, through broker_options::route if set; on failure
// `refusal` says why.
result<queue*> broker::impl::routed(conn_state& c, bool consume, std::string_view address,
                                    amqp::error& refusal) {
  route_decision d;
  if (opts.route) {
    d = opts.route(route_request{c.info, consume, address});
    if (!d.condition.empty()) {
      // Kept here: the refusal's views are written out before the next routing decision.
      refused_by_route = std::move(d);
      refusal = make_error(refused_by_route.condition, refused_by_route.description);
      return errc::unauthorized;
    }
    address = d.queue;
  }
  auto r = find_or_create(address);
  if (!r) {
    const bool full = r.error() == errc::resource_limit;
    refusal = make_error(full ? amqp::symbol::resource_limit_exceeded : amqp::symbol::not_found,
                         full ? "too many queues" : "no such queue");
  }
  return r;
}

bool broker::impl::resolve(conn_state& c, const link_attached& e, bool consume, bool dynamic,
                           std::string_view address, queue*& q, bool& owns) {
  if (dynamic) {
    q = create_dynamic();
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
void broker::impl::attach_consumer(conn_state& c, const link_attached& e) {
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
      maybe_gc(*q);
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
// a new dynamic queue, or, with no address, relays each message by its properties.to.
void broker::impl::attach_producer(conn_state& c, const link_attached& e) {
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
  o.rcv_settle_mode = opts.serve_settle_second ? a.rcv_settle_mode : receiver_settle_mode::first;
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
        maybe_gc(*q);
      }
    }
    return;
  }
  link_entry& l = add_link(c, e, link_kind::producer, q, owns);
  l.second = o.rcv_settle_mode == receiver_settle_mode::second;
  if (q != nullptr) {
    q->producers.push_back(&l);
  } else {
    relays.push_back(&l);
  }
  top_up(l);
}

void broker::impl::on_flow(link_entry& l, const link_flow& f) {
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
void broker::impl::on_delivery(link_entry& l, const delivery_received& d) {
  if (l.kind != link_kind::producer) {
    return;
  }
  if (d.aborted) {
    // AMQP 1.0 §2.6.14: an aborted delivery is discarded (the engine settled it).
    ++counters.aborted;
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
    } else if (full(**r)) {
      refusal = make_error(amqp::symbol::resource_limit_exceeded, "queue full");
      maybe_gc(**r);
    } else {
      q = *r;
    }
  }
  if (!refusal && total_bytes + d.payload.size() > opts.max_total_bytes) {
    refusal = make_error(amqp::symbol::resource_limit_exceeded, "broker memory limit reached");
    if (q != nullptr) {
      maybe_gc(*q);
    }
  }
  std::optional<delivery_state> outcome;
  admission verdict; // outlives `outcome`, which views its strings
  if (refusal) {
    outcome = rejected{refusal};
  } else if (opts.admit) {
    verdict = opts.admit(incoming_message{c.info, q->name, d.payload, d.settled});
    outcome = outcome_of(verdict);
    if (outcome) {
      maybe_gc(*q);
    }
  }
  if (outcome) {
    ++counters.refused;
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
  enqueue(*q, std::move(m));
  ++counters.received;
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
void broker::impl::on_update(link_entry& l, const delivery_updated& u) {
  if (l.kind != link_kind::consumer) {
    return; // a producer settling under rcv-settle-mode second: the engine forgot it
  }
  auto it = l.unsettled.find(u.delivery.number);
  if (it == l.unsettled.end()) {
    return;
  }
  enum class verdict : std::uint8_t { wait, accept, reject, release, modify };
  verdict v = verdict::wait;
  const amqp::modified* mod = nullptr;
  // One branch per delivery state, each with its reason, though some act alike.
  // NOLINTBEGIN(bugprone-branch-clone)
  if (!u.state) {
    // Settled with no outcome: the consumer is done with it (no default-outcome is
    // announced in our source); unsettled with none is no news.
    v = u.settled ? verdict::accept : verdict::wait;
  } else if (std::holds_alternative<accepted>(*u.state)) {
    v = verdict::accept;
  } else if (std::holds_alternative<rejected>(*u.state)) {
    v = verdict::reject;
  } else if (std::holds_alternative<released>(*u.state)) {
    v = verdict::release;
  } else if (const auto* m = std::get_if<modified>(&*u.state)) {
    v = verdict::modify;
    mod = m;
  } else if (std::holds_alternative<received>(*u.state)) {
    // §3.4.1 received is not terminal; settled with it, the consumer is done.
    v = u.settled ? verdict::accept : verdict::wait;
  } else {
    // Transactional and unknown states: not served here; the message is kept.
    v = verdict::release;
  }
  // NOLINTEND(bugprone-branch-clone)
  if (v == verdict::wait) {
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
  --q.in_flight;
  q.in_flight_bytes -= m.payload.size();
  total_bytes -= m.payload.size();
  switch (v) {
  case verdict::accept:
    ++q.counters.accepted;
    break;
  case verdict::reject:
    ++q.counters.rejected; // no dead-letter queue: the message is dropped
    break;
  case verdict::release:
    // §3.4.4: not acted upon; delivered again, delivery-count unchanged.
    ++q.counters.released;
    requeue(q, std::move(m));
    break;
  default: {
    ++q.counters.modified;
    const bool failed = mod->delivery_failed.value_or(false);
    const bool annotate =
        mod->message_annotations.is(type::map) && mod->message_annotations.count() > 0;
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
                keep = !k || !mod->message_annotations.find(*k);
                if (keep) {
                  kv.push_back(x);
                }
              } else if (keep) {
                kv.push_back(x);
              }
              is_key = !is_key;
            }
          }
          for (const value& x : mod->message_annotations.items()) {
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
    if (mod->undeliverable_here.value_or(false)) {
      // Not to this consumer again; another may take it.
      if (m.undeliverable.size() >= max_undeliverable) {
        m.undeliverable.erase(m.undeliverable.begin());
      }
      m.undeliverable.push_back(l.key);
    }
    requeue(q, std::move(m));
    break;
  }
  }
  dispatch(q);
}

// Forgets link `id` of `c`: a consumer's unsettled messages go back to the front of its
// queue in their order; a dynamic queue it created is deleted.
void broker::impl::remove_link(conn_state& c, std::uint32_t id) {
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
      --q->in_flight;
      q->in_flight_bytes -= m.payload.size();
      total_bytes -= m.payload.size();
      ++q->counters.returned;
      requeue(*q, std::move(m));
    }
  } else if (q != nullptr) {
    std::erase(q->producers, l.get());
  } else {
    std::erase(relays, l.get());
  }
  if (q == nullptr) {
    return;
  }
  if (l->owns_q) {
    delete_queue(*q);
  } else {
    dispatch(*q);
    maybe_gc(*q);
  }
}

void broker::impl::remove_links(conn_state& c, const std::optional<session_id>& s) {
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
void broker::impl::retry_blocked(conn_state& c) {
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

// ---- queues --------------------------------------------------------------------------

namespace {

// The node an address names. An absolute URL ("amqps://host:port/q", as Python uAMQP and
// Azure clients send) names the node of its path ("q"), as Azure's brokers read it.
std::string_view node_name(std::string_view address) noexcept {
  for (const std::string_view scheme : {"amqp://", "amqps://"}) {
    if (address.substr(0, scheme.size()) == scheme) {
      const auto slash = address.find('/', scheme.size());
      return slash == std::string_view::npos ? std::string_view{} : address.substr(slash + 1);
    }
  }
  return address;
}

} // namespace

result<queue*> broker::impl::find_or_create(std::string_view address) {
  address = node_name(address);
  auto it = queues.find(address);
  if (it != queues.end()) {
    return &it->second;
  }
  if (!opts.auto_create_queues) {
    return errc::invalid_state;
  }
  if (queues.size() >= opts.max_queues) {
    return errc::resource_limit;
  }
  auto [pos, inserted] = queues.try_emplace(std::string(address));
  pos->second.name = pos->first;
  return &pos->second;
}

queue* broker::impl::create_dynamic() {
  if (queues.size() >= opts.max_queues) {
    return nullptr;
  }
  std::string name;
  do {
    name = "dynamic." + std::to_string(next_dynamic++);
  } while (queues.contains(name));
  auto [pos, inserted] = queues.try_emplace(name);
  pos->second.name = pos->first;
  pos->second.dynamic = true;
  return &pos->second;
}

// Deletes a queue and its messages; links still attached to it are detached with
// amqp:resource-deleted (§2.8.15), their unsettled messages dropped.
void broker::impl::delete_queue(queue& q) {
  const auto err = make_error(amqp::symbol::resource_deleted, "queue deleted");
  std::vector<link_entry*> attached = q.consumers;
  attached.insert(attached.end(), q.producers.begin(), q.producers.end());
  for (link_entry* l : attached) {
    conn_state& c = *l->conn;
    (void)c.engine.detach(l->id, true, err);
    touch(c);
    for (auto& [number, m] : l->unsettled) {
      total_bytes -= m.payload.size();
    }
    c.links.erase(l->id.value);
    c.info.links = c.links.size();
  }
  total_bytes -= q.bytes;
  auto it = queues.find(q.name);
  queues.erase(it);
}

// Auto-created queues go when nothing uses them: no message, no link.
void broker::impl::maybe_gc(queue& q) {
  if (q.dynamic || q.declared || !q.messages.empty() || q.in_flight != 0 || !q.consumers.empty() ||
      !q.producers.empty()) {
    return;
  }
  queues.erase(queues.find(q.name));
}

bool broker::impl::full(const queue& q) const noexcept {
  return q.messages.size() + q.in_flight >= opts.max_queue_messages ||
         q.bytes + q.in_flight_bytes >= opts.max_queue_bytes;
}

void broker::impl::enqueue(queue& q, stored_message m) {
  m.seq = next_seq++;
  q.bytes += m.payload.size();
  total_bytes += m.payload.size();
  ++q.counters.enqueued;
  q.messages.push_back(std::move(m));
}

// Puts a message back at its place by arrival order: before every message that arrived
// after it, so returned messages come first and keep their order.
void broker::impl::requeue(queue& q, stored_message m) {
  auto pos =
      std::lower_bound(q.messages.begin(), q.messages.end(), m.seq,
                       [](const stored_message& x, std::uint64_t seq) { return x.seq < seq; });
  q.bytes += m.payload.size();
  total_bytes += m.payload.size();
  q.messages.insert(pos, std::move(m));
}

// The position of the first message `consumer` may take (not one it answered
// undeliverable-here for), looking at most pick_scan messages deep; or npos.
std::size_t broker::impl::pick(const queue& q, const link_entry& consumer) const noexcept {
  const std::size_t n = std::min(q.messages.size(), pick_scan);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& u = q.messages[i].undeliverable;
    if (u.empty() || std::find(u.begin(), u.end(), consumer.key) == u.end()) {
      return i;
    }
  }
  return std::string::npos;
}

// Sends the message at `pos` to `consumer`. False when the engine refused (no credit,
// output or window full, too many unsettled): the consumer is blocked until its
// connection's next input or written output.
bool broker::impl::deliver(queue& q, link_entry& consumer, std::size_t pos) {
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
  stored_message m = std::move(sm);
  q.messages.erase(q.messages.begin() + static_cast<std::ptrdiff_t>(pos));
  q.bytes -= m.payload.size();
  ++q.counters.delivered;
  if (consumer.presettle) {
    ++q.counters.accepted; // at-most-once: delivered is done
    total_bytes -= m.payload.size();
  } else {
    ++q.in_flight;
    q.in_flight_bytes += m.payload.size();
    consumer.unsettled.insert_or_assign(r->number, std::move(m));
  }
  return true;
}

// Round-robin: each turn, the next consumer with credit takes one message.
void broker::impl::dispatch(queue& q) {
  while (!q.messages.empty() && !q.consumers.empty()) {
    const std::size_t n = q.consumers.size();
    bool sent = false;
    for (std::size_t i = 0; i < n && !sent; ++i) {
      const std::size_t k = (q.next + i) % n;
      link_entry& consumer = *q.consumers[k];
      if (consumer.blocked || consumer.conn->engine.credit(consumer.id) == 0) {
        continue;
      }
      const std::size_t pos = pick(q, consumer);
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

// AMQP 1.0 §2.6.7 drain: a consumer that asked to drain, with credit left and nothing it
// can take, gets its credit used up (connection::drained sends the flow).
void broker::impl::answer_drains(queue& q) {
  if (q.draining == 0) {
    return;
  }
  for (link_entry* consumer : q.consumers) {
    if (!consumer->drain) {
      continue;
    }
    conn_state& c = *consumer->conn;
    if (c.engine.credit(consumer->id) != 0 && pick(q, *consumer) != std::string::npos) {
      continue; // still messages to send (it is blocked): later
    }
    (void)c.engine.drained(consumer->id);
    touch(c);
    consumer->drain = false;
    --q.draining;
  }
}

// ---- producer credit -----------------------------------------------------------------

// The credit window a producer may have now: producer_credit, within the room left in its
// queue and in the broker's memory limit.
std::uint32_t broker::impl::grant(const link_entry& l) const noexcept {
  if (total_bytes >= opts.max_total_bytes) {
    return 0;
  }
  if (l.q == nullptr) {
    return opts.producer_credit;
  }
  const queue& q = *l.q;
  if (full(q)) {
    return 0;
  }
  const std::size_t room = opts.max_queue_messages - (q.messages.size() + q.in_flight);
  return static_cast<std::uint32_t>(std::min<std::size_t>(opts.producer_credit, room));
}

// Tops a producer's credit up to its window once half of it is used (one flow per half
// window). A producer held back by a full queue is remembered and refilled as it drains.
// The engine counts a transfer against the credit when it reads it, the broker when it
// pulls its event: while the producer's connection has events queued the two disagree (and
// the room in the queue would be overestimated), so the top-up waits for the end of that
// connection's process().
void broker::impl::top_up(link_entry& l, bool now) {
  conn_state& c = *l.conn;
  if (!now && (&c == current || !c.engine.wants_read())) {
    if (!l.top_up_due) {
      l.top_up_due = true;
      c.top_ups.push_back(l.id.value);
    }
    return;
  }
  const std::uint32_t have = c.engine.credit(l.id);
  if (have > opts.producer_credit / 2) {
    return;
  }
  const std::uint32_t want = grant(l);
  if (want > have) {
    if (c.engine.flow(l.id, want)) {
      touch(c);
    }
  }
  if (want < opts.producer_credit) {
    if (l.q != nullptr) {
      l.q->producers_starved = true;
    } else {
      relays_starved = true;
    }
  }
}

void broker::impl::run_top_ups(conn_state& c) {
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

void broker::impl::refill(queue& q) {
  if (!q.producers_starved || full(q) || total_bytes >= opts.max_total_bytes) {
    return;
  }
  q.producers_starved = false;
  for (link_entry* p : q.producers) {
    top_up(*p);
  }
}

void broker::impl::refill_relays() {
  if (!relays_starved || total_bytes >= opts.max_total_bytes) {
    return;
  }
  relays_starved = false;
  for (link_entry* p : relays) {
    top_up(*p);
  }
}

// ---- broker --------------------------------------------------------------------------

broker::broker(broker_options o) : impl_(std::make_unique<impl>(std::move(o))) {}
broker::~broker() = default;
broker::broker(broker&&) noexcept = default;
broker& broker::operator=(broker&&) noexcept = default;

connection_handle broker::add_connection(time_point now, std::string_view certificate_subject) {
  (void)now; // the engine's clocks start at its first input or deadline
  auto c = std::make_unique<conn_state>(certificate_subject.empty() ? impl_->conn_opts
                                                                    : impl_->external_opts);
  c->info.certificate_subject = certificate_subject;
  const connection_handle h = impl_->next_handle++;
  c->handle = h;
  impl_->conns.emplace(h, std::move(c));
  return h;
}

amqp::connection* broker::engine(connection_handle c) noexcept {
  conn_state* s = impl_->find(c);
  return s == nullptr ? nullptr : &s->engine;
}

result<void> broker::receive(connection_handle c, std::span<const std::byte> in, time_point now) {
  conn_state* s = impl_->find(c);
  if (s == nullptr) {
    return errc::invalid_state;
  }
  return s->engine.receive(in, now);
}

void broker::process(connection_handle c, time_point now) {
  (void)now; // the engine has the time of its input and deadlines
  if (conn_state* s = impl_->find(c)) {
    impl_->process(*s);
  }
}

void broker::on_output_written(connection_handle c) {
  if (conn_state* s = impl_->find(c)) {
    impl_->current = s;
    impl_->retry_blocked(*s);
    impl_->run_top_ups(*s);
    impl_->current = nullptr;
  }
}

std::vector<connection_handle> broker::take_dirty() {
  std::vector<connection_handle> out;
  out.reserve(impl_->dirty.size());
  for (connection_handle h : impl_->dirty) {
    if (conn_state* s = impl_->find(h)) {
      s->dirty = false;
      out.push_back(h);
    }
  }
  impl_->dirty.clear();
  return out;
}

void broker::remove_connection(connection_handle c) {
  conn_state* s = impl_->find(c);
  if (s == nullptr) {
    return;
  }
  impl_->current = s;
  impl_->remove_links(*s, std::nullopt);
  impl_->current = nullptr;
  impl_->conns.erase(c);
}

result<void> broker::declare_queue(std::string_view address) {
  if (address.empty()) {
    return errc::invalid_argument;
  }
  auto it = impl_->queues.find(address);
  if (it == impl_->queues.end()) {
    if (impl_->queues.size() >= impl_->opts.max_queues) {
      return errc::resource_limit;
    }
    it = impl_->queues.try_emplace(std::string(address)).first;
    it->second.name = it->first;
  }
  it->second.declared = true;
  return {};
}

std::size_t broker::queue_depth(std::string_view address) const noexcept {
  auto it = impl_->queues.find(address);
  return it == impl_->queues.end() ? 0 : it->second.messages.size();
}

std::optional<queue_stats> broker::stats(std::string_view address) const {
  auto it = impl_->queues.find(address);
  if (it == impl_->queues.end()) {
    return std::nullopt;
  }
  const queue& q = it->second;
  queue_stats s = q.counters;
  s.depth = q.messages.size();
  s.bytes = q.bytes;
  s.in_flight = q.in_flight;
  s.in_flight_bytes = q.in_flight_bytes;
  s.consumers = q.consumers.size();
  s.producers = q.producers.size();
  s.dynamic = q.dynamic;
  s.declared = q.declared;
  return s;
}

broker_stats broker::stats() const noexcept {
  broker_stats s = impl_->counters;
  s.connections = impl_->conns.size();
  s.queues = impl_->queues.size();
  s.stored_bytes = impl_->total_bytes;
  return s;
}

std::vector<std::string> broker::queues() const {
  std::vector<std::string> out;
  out.reserve(impl_->queues.size());
  for (const auto& [name, q] : impl_->queues) {
    out.push_back(name);
  }
  return out;
}

const connection_info* broker::info(connection_handle c) const noexcept {
  const conn_state* s = impl_->find(c);
  return s == nullptr ? nullptr : &s->info;
}

} // namespace amqp::broker
