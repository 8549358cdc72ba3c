// The asynchronous client (client.hpp): connect, senders, receivers, reconnect.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>

#include <asio/connect.hpp>
#include <asio/post.hpp>

#include "amqp/error.hpp"
#include "client_impl.hpp"
#include "trace_hook.hpp"
#include "ws_stream.hpp"

namespace amqp::transport {
namespace detail {
namespace {

std::error_code code(errc e) {
  return make_error_code(e);
}

delivery_outcome outcome_of(const std::optional<delivery_state>& s) {
  delivery_outcome o;
  if (!s) {
    return o;
  }
  if (std::holds_alternative<accepted>(*s)) {
    o.state = delivery_outcome::kind::accepted;
  } else if (const auto* r = std::get_if<rejected>(&*s)) {
    o.state = delivery_outcome::kind::rejected;
    if (r->error) {
      o.condition = std::string(r->error->condition.str);
      o.description = std::string(r->error->description.value_or(""));
    }
  } else if (std::holds_alternative<released>(*s)) {
    o.state = delivery_outcome::kind::released;
  } else if (const auto* m = std::get_if<modified>(&*s)) {
    o.state = delivery_outcome::kind::modified;
    o.delivery_failed = m->delivery_failed.value_or(false);
    o.undeliverable_here = m->undeliverable_here.value_or(false);
  }
  return o;
}

bool is_outcome(const delivery_state& s) {
  return !std::holds_alternative<received>(s);
}

// Serial-number order of delivery-ids (RFC 1982, as AMQP 1.0 §2.6.12 numbers them).
bool serial_before(std::uint32_t a, std::uint32_t b) {
  return a != b && static_cast<std::uint32_t>(b - a) < 0x8000'0000u;
}

} // namespace

client_impl::client_impl(asio::io_context& io, url u, client_options o)
    : io_(io), url_(std::move(u)), opts_(std::move(o)), timer_(io), resolver_(io),
      rng_(
          static_cast<std::uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count())) {
  container_id_ = std::string(opts_.amqp.container_id);
  if (container_id_.empty()) {
    container_id_ = "amqp-cpp-" + std::to_string(rng_()) + "-" + std::to_string(rng_());
  }
  opts_.trace = opts_.trace || trace_from_environment();
}

client_impl::~client_impl() {
  if (driver_) {
    driver_->detach_owner();
    // Operations in flight may still use the engine's buffers: it lives on with the driver.
    driver_->keep_alive(engine_);
    driver_->abort();
  }
}

std::string client_impl::next_link_name(bool sender) {
  return container_id_ + (sender ? "-sender-" : "-receiver-") + std::to_string(++name_counter_);
}

void client_impl::connect(std::function<void(std::error_code)> done) {
  connect_done_ = std::move(done);
  phase_ = phase::connecting;
  start_attempt();
}

void client_impl::start_attempt() {
  const auto id = ++attempt_id_;
  phase_ = phase::connecting;
  ws_done_ = false;
  timer_.expires_after(opts_.connect_timeout);
  timer_.async_wait([self = shared_from_this(), id](std::error_code ec) {
    if (ec || id != self->attempt_id_ || self->phase_ != phase::connecting) {
      return;
    }
    self->resolver_.cancel();
    if (self->driver_) {
      self->driver_->abort();
    } else {
      self->attempt_failed(code(errc::timeout));
    }
  });
  resolver_.async_resolve(
      url_.host, std::to_string(url_.port),
      [self = shared_from_this(), id](std::error_code ec,
                                      const asio::ip::tcp::resolver::results_type& results) {
        if (id != self->attempt_id_) {
          return;
        }
        if (ec) {
          self->attempt_failed(ec);
          return;
        }
        auto socket = std::make_shared<asio::ip::tcp::socket>(self->io_);
        asio::async_connect(*socket, results,
                            [self, socket, id](std::error_code e, const asio::ip::tcp::endpoint&) {
                              if (id != self->attempt_id_) {
                                return;
                              }
                              if (e) {
                                self->attempt_failed(e);
                                return;
                              }
                              if (!self->url_.tls()) {
                                self->on_connected({}, make_tcp_stream(std::move(*socket)));
                                return;
                              }
                              std::string why;
                              auto ctx = make_tls_context(self->opts_.tls, false, why);
                              if (!ctx) {
                                self->last_error = why;
                                self->attempt_failed(ctx.error());
                                return;
                              }
                              const std::string host = self->opts_.tls.server_name.empty()
                                                           ? self->url_.host
                                                           : self->opts_.tls.server_name;
                              async_tls_handshake(
                                  std::move(*ctx), std::move(*socket), false, host,
                                  self->opts_.tls.verify,
                                  [self, id](std::error_code he, std::shared_ptr<byte_stream> s) {
                                    if (id != self->attempt_id_) {
                                      return;
                                    }
                                    if (he) {
                                      self->last_error = "TLS handshake failed: " + he.message();
                                    }
                                    self->on_connected(he, std::move(s));
                                  });
                            });
      });
}

void client_impl::on_connected(std::error_code ec, std::shared_ptr<byte_stream> stream) {
  if (ec) {
    attempt_failed(ec);
    return;
  }
  if (url_.websocket() && !ws_done_) {
    ws_done_ = true;
    const auto id = attempt_id_;
    // The request-target: the URL's path and query (e.g. an SAS token in a query string).
    const std::string target = url_.query.empty() ? url_.path : url_.path + "?" + url_.query;
    async_websocket_client(
        std::move(stream), url_.host, url_.port, url_.tls(), target,
        [self = shared_from_this(), id](std::error_code e, std::shared_ptr<byte_stream> s) {
          if (id != self->attempt_id_) {
            return;
          }
          if (e) {
            self->last_error = "WebSocket handshake failed: " + e.message();
          }
          self->on_connected(e, std::move(s));
        });
    return;
  }
  ws_done_ = false;
  connection_options co = opts_.amqp;
  co.role = connection_role::client;
  co.container_id = container_id_;
  if (co.hostname.empty()) {
    co.hostname = url_.host;
  }
  if (!url_.user.empty()) {
    co.sasl.enabled = true;
    if (co.sasl.mechanism.empty()) {
      co.sasl.mechanism = "PLAIN";
    }
    co.sasl.username = url_.user;
    co.sasl.password = url_.password;
  } else if (!opts_.no_sasl) {
    co.sasl.enabled = true;
  }
  engine_ = std::make_shared<amqp::connection>(co);
  session_.reset();
  session_ready_ = false;
  ++generation;
  for (auto& l : links_) {
    l->id.reset();
    l->attached = false;
    l->refused = false;
  }
  driver_ = std::make_shared<engine_driver>(std::move(stream), *engine_, *this,
                                            opts_.trace ? make_trace_hook("client", generation)
                                                        : engine_driver::trace_hook{});
  (void)engine_->open();
  if (auto s = engine_->begin()) {
    session_ = *s;
  }
  driver_->start();
}

void client_impl::attempt_failed(std::error_code ec) {
  if (phase_ != phase::connecting) {
    return;
  }
  if (last_error.empty()) {
    last_error = ec.message();
  }
  const bool retry = opts_.reconnect.enabled && ec != make_error_code(errc::unauthorized) &&
                     (opts_.reconnect.max_attempts == 0 || attempt_ < opts_.reconnect.max_attempts);
  // The first connection reports its failure: a URL or credential error should not be
  // retried in silence.
  if (!retry || !ever_open_) {
    phase_ = phase::closed;
    timer_.cancel();
    fail_all(ec);
    finish_connect(ec);
    return;
  }
  phase_ = phase::waiting_reconnect;
  // Exponential backoff with jitter: initial * 2^attempt, capped, reduced by up to jitter.
  ++attempt_;
  auto delay = opts_.reconnect.initial_delay;
  for (std::uint32_t i = 1; i < attempt_ && delay < opts_.reconnect.max_delay; ++i) {
    delay *= 2;
  }
  delay = std::min(delay, opts_.reconnect.max_delay);
  const double j = std::clamp(opts_.reconnect.jitter, 0.0, 1.0);
  std::uniform_real_distribution<double> dist(1.0 - j, 1.0);
  delay = std::chrono::milliseconds(
      static_cast<std::int64_t>(static_cast<double>(delay.count()) * dist(rng_)));
  const auto id = ++attempt_id_;
  timer_.expires_after(delay);
  timer_.async_wait([self = shared_from_this(), id](std::error_code e) {
    if (e || id != self->attempt_id_ || self->phase_ != phase::waiting_reconnect) {
      return;
    }
    ++self->reconnects;
    self->start_attempt();
  });
}

void client_impl::finish_connect(std::error_code ec) {
  if (auto done = std::move(connect_done_)) {
    connect_done_ = nullptr;
    done(ec);
  }
}

void client_impl::finish_close(std::error_code ec) {
  phase_ = phase::closed;
  timer_.cancel();
  fail_all(code(errc::invalid_state));
  if (auto done = std::move(close_done_)) {
    close_done_ = nullptr;
    done(ec);
  }
}

void client_impl::on_engine_activity() {
  if (!engine_) {
    return;
  }
  // A handler may close the client or open links: the engine stays valid for the loop
  // (it is replaced only from on_stream_closed/on_connected, never from inside here).
  auto keep = shared_from_this();
  in_events_ = true;
  while (auto e = engine_->next_event()) {
    handle(*e);
  }
  in_events_ = false;
  // Credit is topped up once the batch is handed out: the engine has already counted every
  // delivery of the batch, the application not yet.
  for (auto& l : links_) {
    if (l->top_up_due) {
      l->top_up_due = false;
      top_up(*l);
    }
  }
}

void client_impl::on_output_written() {
  for (auto& l : links_) {
    if (l->is_sender && !l->queue.empty()) {
      pump(*l);
    }
  }
}

void client_impl::on_stream_closed(std::error_code ec) {
  if (driver_) {
    writes_before += driver_->writes();
  }
  driver_.reset();
  switch (phase_) {
  case phase::closing:
    finish_close({});
    return;
  case phase::connecting:
    attempt_failed(ec ? ec : code(errc::connection_lost));
    return;
  case phase::open:
    connection_lost(ec ? ec : code(errc::connection_lost));
    return;
  default:
    return;
  }
}

void client_impl::connection_lost(std::error_code ec) {
  if (!opts_.reconnect.enabled) {
    phase_ = phase::closed;
    fail_all(ec);
    return;
  }
  attempt_ = 0;
  phase_ = phase::connecting; // attempt_failed() schedules the next attempt
  attempt_failed(ec);
}

void client_impl::fail_all(std::error_code ec) {
  for (auto& l : links_) {
    link_failed(*l, ec);
  }
  links_.clear();
}

void client_impl::link_failed(link_impl& l, std::error_code ec) {
  l.closed = true;
  l.error = ec;
  l.id.reset();
  if (auto d = std::move(l.attach_done)) {
    l.attach_done = nullptr;
    d(ec);
  }
  auto queue = std::move(l.unsettled);
  for (auto& p : l.queue) {
    queue.push_back(std::move(p));
  }
  l.queue.clear();
  l.unsettled.clear();
  for (auto& p : queue) {
    if (p.done) {
      p.done(ec, {});
    }
  }
  if (l.requests && !l.is_sender) {
    auto pending = std::move(l.requests->pending);
    l.requests->pending.clear();
    for (auto& p : pending) {
      p.second(ec ? ec : code(errc::invalid_state), {});
    }
  }
  auto waiting = std::move(l.waiting);
  l.waiting.clear();
  for (auto& w : waiting) {
    w(ec, {});
  }
  if (auto d = std::move(l.close_done)) {
    l.close_done = nullptr;
    d(l.closing ? std::error_code{} : ec);
  }
}

void client_impl::set_last_error(std::string_view what, const std::optional<amqp::error>& e) {
  last_error = std::string(what);
  if (e) {
    last_error += ": ";
    last_error += e->condition.str;
    if (e->description) {
      last_error += ": ";
      last_error += *e->description;
    }
  }
}

link_impl* client_impl::find(link_id id) {
  for (auto& l : links_) {
    if (l->id && *l->id == id && l->generation == generation) {
      return l.get();
    }
  }
  return nullptr;
}

void client_impl::on_session_ready() {
  session_ready_ = true;
  if (phase_ == phase::connecting) {
    phase_ = phase::open;
    timer_.cancel();
    attempt_ = 0;
    const bool first = !ever_open_;
    ever_open_ = true;
    if (first) {
      finish_connect({});
    }
  }
  for (auto& l : links_) {
    if (!l->id && !l->closed) {
      attach(*l);
    }
  }
}

void client_impl::attach(link_impl& l) {
  if (!engine_ || !session_ || !session_ready_) {
    return; // attached when the session is ready
  }
  link_options o;
  o.name = l.name;
  if (l.is_sender) {
    o.role = role::sender;
    o.snd_settle_mode =
        l.sopts.presettled ? sender_settle_mode::settled : sender_settle_mode::unsettled;
    o.source = source{};
    o.source->address = l.local_address.empty() ? l.name : l.local_address;
    o.target = target{};
    o.target->address = l.address;
    if (l.sopts.durable) {
      o.target->durable = terminus_durability::configuration;
    }
  } else {
    o.role = role::receiver;
    o.rcv_settle_mode =
        l.ropts.settle_second ? receiver_settle_mode::second : receiver_settle_mode::first;
    o.credit_overrun = l.ropts.credit_overrun.value_or(l.ropts.credit);
    o.source = source{};
    o.source->address = l.address;
    o.target = target{};
    o.target->address = l.local_address.empty() ? l.name : l.local_address;
  }
  // The filter-set: symbol keys, described string values (held until attach() copies them).
  std::vector<value> filter_items;
  std::vector<std::array<value, 2>> described;
  if (!l.is_sender && !l.ropts.filters.empty()) {
    described.reserve(l.ropts.filters.size());
    for (const auto& f : l.ropts.filters) {
      described.push_back({value(symbol_view{f.descriptor}), value(std::string_view(f.value))});
    }
    for (std::size_t i = 0; i < l.ropts.filters.size(); ++i) {
      filter_items.emplace_back(symbol_view{l.ropts.filters[i].name});
      filter_items.push_back(value::described(described[i]));
    }
    o.source->filter = value::map(filter_items);
  }
  auto r = engine_->attach(*session_, o);
  if (!r) {
    link_failed(l, r.error());
    return;
  }
  l.id = *r;
  l.generation = generation;
  kick();
}

void client_impl::open_link(const std::shared_ptr<link_impl>& l) {
  if (phase_ == phase::closed || phase_ == phase::closing) {
    link_failed(*l, code(errc::invalid_state));
    return;
  }
  links_.push_back(l);
  attach(*l);
}

void client_impl::close_link(const std::shared_ptr<link_impl>& l) {
  l->closing = true;
  if (l->id && engine_ && l->generation == generation) {
    if (engine_->detach(*l->id, true)) {
      kick();
      return;
    }
  }
  link_failed(*l, {});
  std::erase(links_, l);
}

void client_impl::close(std::function<void(std::error_code)> done) {
  close_done_ = std::move(done);
  if (phase_ == phase::closed) {
    finish_close({});
    return;
  }
  const bool had_engine = engine_ != nullptr && driver_ != nullptr;
  phase_ = phase::closing;
  ++attempt_id_; // no more reconnects
  if (!had_engine) {
    finish_close({});
    return;
  }
  (void)engine_->close();
  timer_.expires_after(opts_.close_timeout);
  timer_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (!ec && self->phase_ == phase::closing && self->driver_) {
      self->driver_->abort();
    }
  });
  kick();
}

std::uint32_t client_impl::credit(const link_impl& l) const noexcept {
  if (!engine_ || !l.id || l.generation != generation) {
    return 0;
  }
  return engine_->credit(*l.id);
}

void client_impl::pump(link_impl& l) {
  if (!engine_ || !l.id || !l.attached || l.generation != generation) {
    return;
  }
  bool sent = false;
  while (!l.queue.empty()) {
    auto& p = l.queue.front();
    transfer_options t;
    t.payload = p.bytes;
    t.settled = l.sopts.presettled;
    auto r = engine_->send(*l.id, t);
    if (!r) {
      if (r.error() == make_error_code(errc::would_block) ||
          r.error() == make_error_code(errc::resource_limit)) {
        break; // retried on the next flow or once the output is written
      }
      auto failed = std::move(p);
      l.queue.pop_front();
      if (failed.done) {
        failed.done(r.error(), {});
      }
      continue;
    }
    sent = true;
    p.delivery = r->number;
    if (l.sopts.presettled) {
      auto done = std::move(p.done);
      l.queue.pop_front();
      if (done) {
        done({}, delivery_outcome{});
      }
    } else {
      l.unsettled.push_back(std::move(p));
      l.queue.pop_front();
    }
  }
  if (sent) {
    kick();
  }
}

void client_impl::top_up(link_impl& l) {
  if (!engine_ || !l.id || !l.attached || l.generation != generation || l.closing) {
    return;
  }
  if (in_events_) {
    l.top_up_due = true; // deliveries of this batch may still be queued as events
    return;
  }
  // Keep `credit` messages granted or buffered; top up when below half, so that flows go out
  // once per half window rather than once per message.
  const std::uint32_t target = l.ropts.credit;
  const std::uint64_t have = engine_->credit(*l.id) + l.ready.size();
  if (target > 0 && have <= target / 2) {
    (void)engine_->flow(*l.id, static_cast<std::uint32_t>(target - l.ready.size()));
    kick();
  }
}

void client_impl::set_credit(link_impl& l, std::uint32_t credit) {
  l.ropts.credit = credit;
  if (!engine_ || !l.id || !l.attached || l.generation != generation || l.closing) {
    return;
  }
  const auto ready = static_cast<std::uint32_t>(std::min<std::size_t>(l.ready.size(), credit));
  if (engine_->credit(*l.id) + l.ready.size() > credit) {
    (void)engine_->flow(*l.id, credit - ready); // §2.6.7: the receiver may lower its credit
    kick();
    return;
  }
  top_up(l);
}

void client_impl::receive(const std::shared_ptr<link_impl>& l,
                          std::function<void(std::error_code, received_message)> done) {
  if (l->closed) {
    done(l->error ? l->error : code(errc::invalid_state), {});
    return;
  }
  if (!l->ready.empty()) {
    auto m = std::move(l->ready.front());
    l->ready.pop_front();
    top_up(*l);
    done({}, std::move(m));
    return;
  }
  l->waiting.push_back(std::move(done));
  top_up(*l);
}

result<void> client_impl::settle(link_impl& l, const received_message& m,
                                 const delivery_state& state) {
  if (m.settled_ || m.generation_ != generation || !engine_ || !l.id ||
      l.generation != generation) {
    return errc::invalid_state;
  }
  // rcv-settle-mode second (§2.7.3): the outcome goes unsettled; the sender settles it, and
  // the engine forgets the delivery then. First: settled with the outcome.
  const delivery_id d{*l.id, m.delivery_};
  auto r = l.settle_second ? engine_->update(d, state) : engine_->settle(d, state);
  kick();
  return r;
}

void client_impl::answer_request(link_impl& l, received_message m) {
  // The response's correlation-id names the request (a ulong message-id of ours).
  std::optional<std::uint64_t> id;
  if (auto v = m.decode(); v && v->properties) {
    id = v->properties->correlation_id.get_unsigned();
  }
  if (!m.settled_) {
    (void)settle(l, m, accepted{});
  }
  auto& pending = l.requests->pending;
  auto it = std::find_if(pending.begin(), pending.end(),
                         [&](const auto& p) { return id && p.first == *id; });
  if (it == pending.end()) {
    return; // an answer to no request of ours (cancelled, or not for us): dropped
  }
  auto done = std::move(it->second);
  pending.erase(it);
  done({}, std::move(m));
}

void client_impl::handle(const event& e) {
  if (const auto* sb = std::get_if<session_begun>(&e)) {
    if (session_ && sb->session == *session_) {
      on_session_ready();
    }
  } else if (const auto* la = std::get_if<link_attached>(&e)) {
    auto* l = find(la->link);
    if (l == nullptr) {
      if (la->remote_initiated) {
        (void)engine_->detach(la->link, true);
      }
      return;
    }
    // A refusal (§2.6.3): the peer's attach has no terminus and its detach follows.
    if ((l->is_sender && !la->remote.target) || (!l->is_sender && !la->remote.source)) {
      l->refused = true;
      return;
    }
    l->attached = true;
    if (l->is_sender) {
      // After a reconnect: everything without an outcome goes again, first (at-least-once).
      // (Before the application hears of the attach: what it sends then is new.)
      for (auto it = l->unsettled.rbegin(); it != l->unsettled.rend(); ++it) {
        if (it->done) {
          l->queue.push_front(std::move(*it));
        }
      }
      l->unsettled.clear();
      pump(*l);
    } else {
      // A sender that cannot settle second says first in its attach (§2.7.3): then the
      // outcomes go settled.
      l->settle_second =
          l->ropts.settle_second && la->remote.rcv_settle_mode == receiver_settle_mode::second;
      top_up(*l);
    }
    if (auto d = std::move(l->attach_done)) {
      l->attach_done = nullptr;
      d({});
    }
  } else if (const auto* lf = std::get_if<link_flow>(&e)) {
    if (auto* l = find(lf->link); l != nullptr && l->is_sender) {
      pump(*l);
      if (lf->drain && l->queue.empty()) {
        (void)engine_->drained(lf->link);
      }
    }
  } else if (const auto* dr = std::get_if<delivery_received>(&e)) {
    auto* l = find(dr->delivery.link);
    if (l == nullptr || dr->aborted) {
      return;
    }
    received_message m;
    m.bytes_.assign(dr->payload.begin(), dr->payload.end());
    m.format_ = dr->message_format;
    m.settled_ = dr->settled;
    m.generation_ = generation;
    m.delivery_ = dr->delivery.number;
    if (l->requests) {
      answer_request(*l, std::move(m));
      top_up(*l);
      return;
    }
    if (!l->waiting.empty()) {
      auto w = std::move(l->waiting.front());
      l->waiting.pop_front();
      w({}, std::move(m));
    } else {
      l->ready.push_back(std::move(m));
    }
    top_up(*l);
  } else if (const auto* du = std::get_if<delivery_updated>(&e)) {
    auto* l = find(du->delivery.link);
    if (l == nullptr || !l->is_sender) {
      return;
    }
    const bool final_state = du->state && is_outcome(*du->state);
    if (!du->settled && !final_state) {
      return;
    }
    // Find the delivery: the deque is in send order, i.e. serial order of delivery-ids.
    auto it = std::lower_bound(
        l->unsettled.begin(), l->unsettled.end(), du->delivery.number,
        [](const pending_send& p, std::uint32_t n) { return serial_before(p.delivery, n); });
    if (it == l->unsettled.end() || it->delivery != du->delivery.number) {
      return;
    }
    if (!du->settled) {
      // An outcome without settlement (the receiver settles second): settle it here.
      (void)engine_->settle(du->delivery);
    }
    auto done = std::move(it->done);
    it->done = nullptr;
    it->bytes.clear();
    it->bytes.shrink_to_fit();
    // Settled entries leave from the front; one in the middle waits as an empty shell.
    while (!l->unsettled.empty() && !l->unsettled.front().done) {
      l->unsettled.pop_front();
    }
    if (done) {
      done({}, outcome_of(du->state));
    }
    if (!l->queue.empty()) {
      pump(*l);
    }
  } else if (const auto* ld = std::get_if<link_detached>(&e)) {
    auto* l = find(ld->link);
    if (l == nullptr) {
      return;
    }
    if (!l->closing) {
      set_last_error("link " + l->name + " detached", ld->error);
    }
    auto keep =
        std::find_if(links_.begin(), links_.end(), [&](const auto& p) { return p.get() == l; });
    std::shared_ptr<link_impl> hold = *keep;
    links_.erase(keep);
    link_failed(*hold, hold->closing ? std::error_code{} : code(errc::remote_error));
  } else if (const auto* se = std::get_if<session_ended>(&e)) {
    if (session_ && se->session == *session_) {
      set_last_error("session ended", se->error);
      // The peer ended the session (RabbitMQ does so on a link error): its links are gone.
      // Links of the application fail; a new session serves later links.
      session_.reset();
      session_ready_ = false;
      std::vector<std::shared_ptr<link_impl>> gone;
      for (auto& l : links_) {
        if (l->id && l->generation == generation) {
          gone.push_back(l);
        }
      }
      for (auto& l : gone) {
        std::erase(links_, l);
        link_failed(*l, code(errc::remote_error));
      }
      if (phase_ == phase::open) {
        if (auto s = engine_->begin()) {
          session_ = *s;
        }
      }
    }
  } else if (const auto* cc = std::get_if<connection_closed>(&e)) {
    if (phase_ != phase::closing) {
      set_last_error(cc->remote ? "connection closed by the peer" : "connection closed", cc->error);
      if (cc->code == make_error_code(errc::unauthorized)) {
        last_error = "authentication failed";
        ++attempt_id_;
        phase_ = phase::closed;
        fail_all(cc->code);
        finish_connect(cc->code);
      }
    }
  } else if (const auto* sd = std::get_if<sasl_done>(&e)) {
    if (sd->code != sasl_code::ok) {
      last_error =
          "authentication failed (SASL code " + std::to_string(static_cast<int>(sd->code)) + ")";
    }
  }
}

} // namespace detail

// ---- public handles ----------------------------------------------------------------------

std::string_view name(delivery_outcome::kind k) noexcept {
  switch (k) {
  case delivery_outcome::kind::accepted:
    return "accepted";
  case delivery_outcome::kind::rejected:
    return "rejected";
  case delivery_outcome::kind::released:
    return "released";
  case delivery_outcome::kind::modified:
    return "modified";
  case delivery_outcome::kind::settled:
    return "settled";
  }
  return "?";
}

void client::async_connect(asio::io_context& io, std::string_view url_text, client_options options,
                           std::function<void(std::error_code, client)> done) {
  auto u = parse_url(url_text);
  if (!u) {
    asio::post(io, [done = std::move(done), ec = u.error()] { done(ec, {}); });
    return;
  }
  auto impl = std::make_shared<detail::client_impl>(io, std::move(*u), std::move(options));
  asio::post(io, [impl, done = std::move(done)]() mutable {
    impl->connect([impl, done = std::move(done)](std::error_code ec) {
      client c;
      if (!ec) {
        c.impl_ = impl;
      }
      done(ec, std::move(c));
    });
  });
}

namespace {

std::shared_ptr<detail::link_impl> new_link(const std::shared_ptr<detail::client_impl>& c,
                                            bool is_sender, std::string_view address,
                                            std::string name) {
  auto l = std::make_shared<detail::link_impl>();
  l->client = c;
  l->is_sender = is_sender;
  l->address = std::string(address);
  l->name = name.empty() ? c->next_link_name(is_sender) : std::move(name);
  return l;
}

} // namespace

// The handle given to the application once the link is attached (empty on failure).
template <typename Handle>
void client::on_attached(const std::shared_ptr<detail::link_impl>& l,
                         std::function<void(std::error_code, Handle)> done) {
  l->attach_done = [l, done = std::move(done)](std::error_code ec) {
    done(ec, ec ? Handle{} : Handle(l));
  };
}

void client::async_open_sender(std::string_view address, sender_options options,
                               std::function<void(std::error_code, sender)> done) {
  auto l = new_link(impl_, true, address, options.name);
  l->sopts = std::move(options);
  on_attached(l, std::move(done));
  impl_->open_link(l);
}

void client::async_open_receiver(std::string_view address, receiver_options options,
                                 std::function<void(std::error_code, receiver)> done) {
  auto l = new_link(impl_, false, address, options.name);
  l->ropts = std::move(options);
  on_attached(l, std::move(done));
  impl_->open_link(l);
}

// By value like the other async_open_* (which move theirs); only read here.
// NOLINTNEXTLINE(performance-unnecessary-value-param)
void client::async_open_requester(std::string_view address, requester_options options,
                                  std::function<void(std::error_code, requester)> done) {
  const std::string base = options.name.empty() ? impl_->next_link_name(false) : options.name;
  const std::string reply = options.reply_to.empty() ? base + "-reply" : options.reply_to;
  auto table = std::make_shared<detail::request_table>();
  table->max_pending = options.max_pending;
  auto s = new_link(impl_, true, address, base + "-sender");
  s->local_address = reply;
  s->requests = table;
  auto r = new_link(impl_, false, address, base + "-receiver");
  r->local_address = reply;
  r->requests = table;
  r->ropts.credit = 100;
  // Ready when both links are attached.
  auto state = std::make_shared<std::pair<int, std::error_code>>(0, std::error_code{});
  auto one = [s, r, state, done = std::move(done)](std::error_code ec) {
    if (ec && !state->second) {
      state->second = ec;
    }
    if (++state->first < 2) {
      return;
    }
    requester q;
    if (!state->second) {
      q.sender_ = s;
      q.receiver_ = r;
    }
    done(state->second, std::move(q));
  };
  s->attach_done = one;
  r->attach_done = one;
  impl_->open_link(r);
  impl_->open_link(s);
}

void requester::async_request(std::span<const std::byte> request,
                              std::function<void(std::error_code, received_message)> done) {
  auto c = sender_ ? sender_->client.lock() : nullptr;
  if (!c || sender_->closed || receiver_->closed) {
    done(make_error_code(errc::invalid_state), {});
    return;
  }
  auto& table = *receiver_->requests;
  if (table.pending.size() >= table.max_pending) {
    done(make_error_code(errc::resource_limit), {});
    return;
  }
  auto view = decode_message(request);
  if (!view) {
    done(make_error_code(errc::invalid_argument), {});
    return;
  }
  // The same message with our message-id and reply-to in its properties.
  const std::uint64_t id = table.next_id++;
  message_parts with;
  with.properties = view->properties.value_or(properties{});
  with.properties->message_id = value(id);
  with.properties->reply_to = std::string_view(receiver_->local_address);
  std::vector<std::byte> bytes;
  if (auto r = encode_append(*view, with, section_set::properties, bytes); !r) {
    done(r.error(), {});
    return;
  }
  table.pending.emplace_back(id, std::move(done));
  auto table_ref = receiver_->requests;
  // The sender's own outcome matters only if it is a failure: the answer ends the request.
  sender(sender_).async_send(bytes, [table_ref, id](std::error_code ec, const delivery_outcome& o) {
    if (!ec && o.state != delivery_outcome::kind::rejected) {
      return;
    }
    auto& p = table_ref->pending;
    auto it = std::find_if(p.begin(), p.end(), [&](const auto& e) { return e.first == id; });
    if (it != p.end()) {
      auto d = std::move(it->second);
      p.erase(it);
      d(ec ? ec : make_error_code(errc::remote_error), {});
    }
  });
}

void requester::async_close(std::function<void(std::error_code)> done) {
  auto r = receiver_;
  sender(sender_).async_close(
      [r, done = std::move(done)](std::error_code) { receiver(r).async_close(done); });
}

void client::async_close(std::function<void(std::error_code)> done) {
  impl_->close(std::move(done));
}

std::string client::last_error() const {
  return impl_ ? impl_->last_error : std::string();
}
std::uint64_t client::reconnects() const noexcept {
  return impl_ ? impl_->reconnects : 0;
}
std::uint64_t client::writes() const noexcept {
  return impl_ ? impl_->writes() : 0;
}

void sender::async_send(std::span<const std::byte> message,
                        std::function<void(std::error_code, delivery_outcome)> done) {
  auto c = impl_ ? impl_->client.lock() : nullptr;
  if (!c || impl_->closed || impl_->closing) {
    done(make_error_code(errc::invalid_state), {});
    return;
  }
  if (impl_->queue.size() + impl_->unsettled.size() >= impl_->sopts.max_in_flight) {
    done(make_error_code(errc::resource_limit), {});
    return;
  }
  detail::pending_send p;
  p.bytes.assign(message.begin(), message.end());
  p.done = std::move(done);
  impl_->queue.push_back(std::move(p));
  c->pump(*impl_);
}

void sender::async_close(std::function<void(std::error_code)> done) {
  auto c = impl_ ? impl_->client.lock() : nullptr;
  if (!c || impl_->closed) {
    done({});
    return;
  }
  impl_->close_done = std::move(done);
  c->close_link(impl_);
}

std::uint32_t sender::credit() const noexcept {
  auto c = impl_ ? impl_->client.lock() : nullptr;
  return c ? c->credit(*impl_) : 0;
}

std::size_t sender::in_flight() const noexcept {
  return impl_ ? impl_->queue.size() + impl_->unsettled.size() : 0;
}

void receiver::async_receive(std::function<void(std::error_code, received_message)> done) {
  auto c = impl_ ? impl_->client.lock() : nullptr;
  if (!c) {
    done(make_error_code(errc::invalid_state), {});
    return;
  }
  c->receive(impl_, std::move(done));
}

result<void> receiver::settle(const received_message& m, int outcome, std::string_view condition,
                              std::string_view description, bool failed, bool undeliverable) {
  auto c = impl_ ? impl_->client.lock() : nullptr;
  if (!c) {
    return errc::invalid_state;
  }
  switch (outcome) {
  case 0:
    return c->settle(*impl_, m, accepted{});
  case 1: {
    rejected r;
    if (!condition.empty()) {
      r.error = amqp::error{symbol_view{condition},
                            description.empty() ? std::optional<std::string_view>{}
                                                : std::optional{description},
                            {}};
    }
    return c->settle(*impl_, m, r);
  }
  case 2:
    return c->settle(*impl_, m, released{});
  default: {
    modified mo;
    mo.delivery_failed = failed;
    mo.undeliverable_here = undeliverable;
    return c->settle(*impl_, m, mo);
  }
  }
}

result<void> receiver::accept(const received_message& m) {
  return settle(m, 0, {}, {}, false, false);
}
result<void> receiver::reject(const received_message& m, std::string_view condition,
                              std::string_view description) {
  return settle(m, 1, condition, description, false, false);
}
result<void> receiver::release(const received_message& m) {
  return settle(m, 2, {}, {}, false, false);
}
result<void> receiver::modify(const received_message& m, bool delivery_failed,
                              bool undeliverable_here) {
  return settle(m, 3, {}, {}, delivery_failed, undeliverable_here);
}

void receiver::set_credit(std::uint32_t credit) {
  if (auto c = impl_ ? impl_->client.lock() : nullptr) {
    c->set_credit(*impl_, credit);
  }
}

void receiver::async_close(std::function<void(std::error_code)> done) {
  auto c = impl_ ? impl_->client.lock() : nullptr;
  if (!c || impl_->closed) {
    done({});
    return;
  }
  impl_->close_done = std::move(done);
  c->close_link(impl_);
}

} // namespace amqp::transport
