// The in-memory broker: its public API and the event loop. Each connection is a server
// engine; process() pulls its events and hands them to the parts that act on them:
// authentication (auth.hpp: SASL decisions), dispatch (dispatch.hpp: links, credit, routing
// and outcomes) and, through dispatch, the queue store (queue_store.hpp: queues, stored
// messages, limits, requeue order). Routing a message may send on any connection's engine
// (those are reported by take_dirty()).
#include "amqp/broker.hpp"

#include <algorithm>
#include <unordered_map>
#include <variant>

#include "amqp/event.hpp"
#include "auth.hpp"
#include "dispatch.hpp"
#include "queue_store.hpp"

namespace amqp::broker {

namespace {

// The anonymous relay capability (AMQP Anonymous Terminus for Message Routing 1.0 §2.2):
// clients look for it in the open before attaching a sender with no target address.
constexpr symbol_view anonymous_relay{"ANONYMOUS-RELAY"};

} // namespace

struct broker::impl {
  broker_options opts;
  authenticator auth{opts};
  queue_store store{opts};
  dispatcher router{opts, store};
  std::string container_id;
  connection_options conn_opts;
  connection_options external_opts; // clients with a verified certificate: EXTERNAL too

  std::unordered_map<connection_handle, std::unique_ptr<conn_state>> conns;
  connection_handle next_handle = 1;

  explicit impl(broker_options o);

  conn_state* find(connection_handle c) noexcept {
    auto it = conns.find(c);
    return it == conns.end() ? nullptr : it->second.get();
  }
  void process(conn_state& c);
  void on_sasl_init(conn_state& c, const sasl_init_received& e);
};

// `auth`, `store` and `router` keep a reference to `opts`, declared (so built) before them;
// the body only adjusts fields they read later (producer_credit), never the accounts the
// authenticator reads when it is built.
broker::impl::impl(broker_options o) : opts(std::move(o)) {
  // The producer's deliveries stay unsettled in the engine until process() settles them:
  // a credit window above the engine's unsettled limit would let a well-behaved producer
  // trip it within one read.
  opts.producer_credit = std::clamp<std::uint32_t>(
      opts.producer_credit, 1,
      std::max<std::uint32_t>(opts.connection.limits.max_unsettled_per_link, 1));
  container_id = opts.connection.container_id.empty() ? std::string("amqp-broker")
                                                      : std::string(opts.connection.container_id);
  conn_opts = opts.connection;
  conn_opts.role = connection_role::server;
  conn_opts.container_id = container_id;
  if (conn_opts.offered_capabilities.is_null()) {
    conn_opts.offered_capabilities = value(anonymous_relay);
  }
  auth.configure(conn_opts.sasl, false);
  external_opts = conn_opts;
  auth.configure(external_opts.sasl, true);
}

// ---- events --------------------------------------------------------------------------

void broker::impl::process(conn_state& c) {
  router.set_current(&c);
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
      router.remove_links(c, se->session);
    } else if (const auto* la = std::get_if<link_attached>(&*e)) {
      router.on_attach(c, *la);
    } else if (const auto* ld = std::get_if<link_detached>(&*e)) {
      // The engine answers a detach with a detach (§2.6.6); the link is gone for us either
      // way (a detach that only suspends it is treated as a close: nothing is durable).
      router.remove_link(c, ld->link.value);
    } else if (const auto* lf = std::get_if<link_flow>(&*e)) {
      router.on_flow(c, *lf);
    } else if (const auto* dr = std::get_if<delivery_received>(&*e)) {
      router.on_delivery(c, *dr);
    } else if (const auto* du = std::get_if<delivery_updated>(&*e)) {
      router.on_update(c, *du);
    } else if (std::holds_alternative<connection_closed>(*e)) {
      c.info.closed = true;
      router.remove_links(c, std::nullopt);
    }
  }
  router.retry_blocked(c);
  router.run_top_ups(c);
  router.set_current(nullptr);
}

void broker::impl::on_sasl_init(conn_state& c, const sasl_init_received& e) {
  const auth_decision d = auth.decide(e, c.info.certificate_subject);
  if (d.ok) {
    c.info.user = d.user;
  }
  // AMQP 1.0 §5.3.3.6: auth (1) for bad credentials; the engine then ends the connection.
  (void)c.engine.sasl_complete(d.ok ? sasl_code::ok : sasl_code::auth);
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
    impl_->router.set_current(s);
    impl_->router.retry_blocked(*s);
    impl_->router.run_top_ups(*s);
    impl_->router.set_current(nullptr);
  }
}

std::vector<connection_handle> broker::take_dirty() {
  std::vector<connection_handle> out = impl_->router.take_dirty();
  std::erase_if(out, [&](connection_handle h) {
    conn_state* s = impl_->find(h);
    if (s == nullptr) {
      return true; // removed since
    }
    s->dirty = false;
    return false;
  });
  return out;
}

void broker::remove_connection(connection_handle c) {
  conn_state* s = impl_->find(c);
  if (s == nullptr) {
    return;
  }
  impl_->router.set_current(s);
  impl_->router.remove_links(*s, std::nullopt);
  impl_->router.set_current(nullptr);
  impl_->conns.erase(c);
}

result<void> broker::declare_queue(std::string_view address) {
  return impl_->store.declare(address);
}

std::size_t broker::queue_depth(std::string_view address) const noexcept {
  const queue* q = impl_->store.find(address);
  return q == nullptr ? 0 : q->messages.size();
}

std::optional<queue_stats> broker::stats(std::string_view address) const {
  const queue* q = impl_->store.find(address);
  if (q == nullptr) {
    return std::nullopt;
  }
  return queue_store::stats(*q);
}

broker_stats broker::stats() const noexcept {
  broker_stats s = impl_->router.counters();
  s.connections = impl_->conns.size();
  s.queues = impl_->store.size();
  s.stored_bytes = impl_->store.total_bytes();
  return s;
}

std::vector<std::string> broker::queues() const {
  return impl_->store.names();
}

const connection_info* broker::info(connection_handle c) const noexcept {
  const conn_state* s = impl_->find(c);
  return s == nullptr ? nullptr : &s->info;
}

} // namespace amqp::broker
