// The client's links (client_impl.hpp): attach on every connection, senders (credit, the
// send queue, outcomes, resend after a reconnect), receivers (credit top-up, settlement),
// and the link events of the engine.
#include <algorithm>
#include <array>

#include "amqp/error.hpp"
#include "client_impl.hpp"

namespace amqp::transport::detail {
namespace {

delivery_outcome outcome_of(const std::optional<delivery_state>& s) {
  delivery_outcome o;
  o.state = kind_of(s);
  if (!s) {
    return o;
  }
  if (const auto* r = std::get_if<rejected>(&*s); r != nullptr && r->error) {
    o.condition = std::string(r->error->condition.str);
    o.description = std::string(r->error->description.value_or(""));
  } else if (const auto* m = std::get_if<modified>(&*s)) {
    o.delivery_failed = m->delivery_failed.value_or(false);
    o.undeliverable_here = m->undeliverable_here.value_or(false);
  }
  return o;
}

// Serial-number order of delivery-ids (RFC 1982, as AMQP 1.0 §2.6.12 numbers them).
bool serial_before(std::uint32_t a, std::uint32_t b) {
  return a != b && static_cast<std::uint32_t>(b - a) < 0x8000'0000u;
}

} // namespace

void client_impl::link_failed(link_impl& l, std::error_code ec) {
  l.closed = true;
  l.error = ec;
  l.id.reset();
  if (l.relink_timer) {
    l.relink_timer->cancel();
  }
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

link_impl* client_impl::find(link_id id) {
  for (auto& l : links_) {
    if (l->id && *l->id == id && l->generation == generation) {
      return l.get();
    }
  }
  return nullptr;
}

void client_impl::attach(link_impl& l) {
  if (!engine_ || !session_ || !session_ready_ || !links_ready_) {
    return; // attached when the session is ready
  }
  link_options o;
  o.name = l.name;
  if (l.is_sender) {
    o.role = role::sender;
    o.snd_settle_mode =
        l.sopts.presettled ? sender_settle_mode::settled : sender_settle_mode::unsettled;
    o.source = source{};
    o.source->address = l.name;
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
    o.target->address = l.name;
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
  if (!l.is_sender && !l.ropts.properties.is_null()) {
    o.properties = l.ropts.properties.get();
  }
  auto r = engine_->attach(*session_, o);
  if (!r) {
    link_failed(l, r.error());
    return;
  }
  l.id = *r;
  l.generation = generation;
  l.serial = ++attach_serial_;
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
    t.message_format = p.message_format;
    t.settled = l.sopts.presettled;
    auto r = engine_->send(*l.id, t);
    if (!r) {
      if (r.error() == make_error_code(errc::would_block) ||
          r.error() == make_error_code(errc::resource_limit)) {
        break; // retried on the next flow or once the output is written
      }
      // The connection is going (the peer closed it, the socket is lost): the message waits
      // for the next connection, as those without an outcome do; without reconnect,
      // connection_lost() fails it with the connection's error.
      const auto st = engine_->state();
      if (engine_->error() || st.local != endpoint_status::active ||
          st.remote == endpoint_status::closed) {
        break;
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
  if (m.settled_ || m.generation_ != l.serial || !engine_ || !l.id || l.generation != generation) {
    return errc::invalid_state;
  }
  // rcv-settle-mode second (§2.7.3): the outcome goes unsettled; the sender settles it, and
  // the engine forgets the delivery then. First: settled with the outcome.
  const delivery_id d{*l.id, m.delivery_};
  auto r = l.settle_second ? engine_->update(d, state) : engine_->settle(d, state);
  kick();
  return r;
}

void client_impl::on_link_attached(const link_attached& la) {
  auto* l = find(la.link);
  if (l == nullptr) {
    if (la.remote_initiated) {
      (void)engine_->detach(la.link, true);
    }
    return;
  }
  // A refusal (§2.6.3): the peer's attach has no terminus and its detach follows.
  if ((l->is_sender && !la.remote.target) || (!l->is_sender && !la.remote.source)) {
    l->refused = true;
    return;
  }
  l->attached = true;
  l->attached_at = std::chrono::steady_clock::now();
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
        l->ropts.settle_second && la.remote.rcv_settle_mode == receiver_settle_mode::second;
    top_up(*l);
  }
  if (auto d = std::move(l->attach_done)) {
    l->attach_done = nullptr;
    d({});
  }
}

void client_impl::on_link_flow(const link_flow& lf) {
  if (auto* l = find(lf.link); l != nullptr && l->is_sender) {
    pump(*l);
    if (lf.drain && l->queue.empty()) {
      (void)engine_->drained(lf.link);
    }
  }
}

void client_impl::on_delivery_received(const delivery_received& dr) {
  auto* l = find(dr.delivery.link);
  if (l == nullptr || dr.aborted) {
    return;
  }
  received_message m;
  m.bytes_.assign(dr.payload.begin(), dr.payload.end());
  m.format_ = dr.message_format;
  m.settled_ = dr.settled;
  m.generation_ = l->serial;
  m.delivery_ = dr.delivery.number;
  if (!l->waiting.empty()) {
    auto w = std::move(l->waiting.front());
    l->waiting.pop_front();
    w({}, std::move(m));
  } else {
    l->ready.push_back(std::move(m));
  }
  top_up(*l);
}

void client_impl::on_delivery_updated(const delivery_updated& du) {
  auto* l = find(du.delivery.link);
  if (l == nullptr || !l->is_sender) {
    return;
  }
  const bool final_state = is_outcome(kind_of(du.state));
  if (!du.settled && !final_state) {
    return;
  }
  // Find the delivery: the deque is in send order, i.e. serial order of delivery-ids.
  auto it = std::lower_bound(
      l->unsettled.begin(), l->unsettled.end(), du.delivery.number,
      [](const pending_send& p, std::uint32_t n) { return serial_before(p.delivery, n); });
  if (it == l->unsettled.end() || it->delivery != du.delivery.number) {
    return;
  }
  if (!du.settled) {
    // An outcome without settlement (the receiver settles second): settle it here.
    (void)engine_->settle(du.delivery);
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
    done({}, outcome_of(du.state));
  }
  if (!l->queue.empty()) {
    pump(*l);
  }
}

bool client_impl::may_relink(const link_detached& ld) const {
  if (!opts_.relink || !ld.remote || !ld.error || phase_ != phase::open) {
    return false;
  }
  // Never retried: the peer sends us elsewhere or gave the link to another receiver (the
  // application acts on those), or a re-attach would meet the same answer (the node is gone
  // or refuses what we do, a message too large would be sent again).
  static constexpr std::string_view never[] = {
      "amqp:link:redirect",    "amqp:link:stolen",         "amqp:link:message-size-exceeded",
      "amqp:not-found",        "amqp:not-allowed",         "amqp:not-implemented",
      "amqp:resource-deleted", "amqp:precondition-failed", "amqp:decode-error",
      "amqp:invalid-field",    "amqp:illegal-state",       "amqp:frame-size-too-small"};
  const std::string_view condition = ld.error->condition.str;
  return std::find(std::begin(never), std::end(never), condition) == std::end(never);
}

void client_impl::schedule_relink(const std::shared_ptr<link_impl>& l) {
  // Consecutive re-attaches back off; a link that stayed attached longer than the longest
  // delay starts again from the shortest.
  if (std::chrono::steady_clock::now() - l->attached_at > opts_.reconnect.max_delay) {
    l->relink_attempt = 0;
  }
  ++l->relink_attempt;
  if (!l->relink_timer) {
    l->relink_timer.emplace(io_);
  }
  l->relink_timer->expires_after(backoff(l->relink_attempt));
  l->relink_timer->async_wait(
      [w = weak_from_this(), wl = std::weak_ptr<link_impl>(l)](std::error_code ec) {
        auto self = w.lock();
        auto link = wl.lock();
        // A reconnect meanwhile attached it already (or attaches it once open).
        if (ec || !self || !link || link->closed || link->closing || link->id ||
            self->phase_ != phase::open) {
          return;
        }
        ++self->relinks;
        self->attach(*link);
      });
}

void client_impl::on_link_detached(const link_detached& ld) {
  auto* l = find(ld.link);
  if (l == nullptr) {
    return;
  }
  const auto keep =
      std::find_if(links_.begin(), links_.end(), [&](const auto& p) { return p.get() == l; });
  const std::string what = std::string(l->is_sender ? "sending" : "receiving") + " link '" +
                           l->name + "' " + (l->is_sender ? "to" : "from") + " '" + l->address +
                           "'";
  if (!l->closing && l->attached && !l->refused && may_relink(ld)) {
    // client.hpp "Recovery": the link attaches again after the backoff; sends wait, those
    // without an outcome go again on the new attach, receives wait.
    set_last_error("the peer detached the " + what + " (attaching it again)", ld.error);
    l->id.reset();
    l->attached = false;
    schedule_relink(*keep);
    return;
  }
  if (!l->closing) {
    // A refusal (§2.6.3: an attach without a terminus, then this detach) or a detach later.
    set_last_error(l->refused ? "the peer refused to attach the " + what
                              : "the peer detached the " + what,
                   ld.error);
    if (ld.error) {
      link_error e;
      e.condition = std::string(ld.error->condition.str);
      e.description = std::string(ld.error->description.value_or(""));
      if (auto info = owned_value::copy_of(ld.error->info)) {
        e.info = std::move(*info);
      }
      l->remote_error = std::move(e);
    }
  }
  std::shared_ptr<link_impl> hold = *keep;
  links_.erase(keep);
  link_failed(*hold, hold->closing ? std::error_code{} : code(errc::remote_error));
}

} // namespace amqp::transport::detail
