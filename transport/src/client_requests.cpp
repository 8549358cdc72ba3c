// The client's requesters (client_impl.hpp): each is the core's amqp::request_response on
// the current connection (it attaches the link pair, gives each request its message-id and
// our reply-to, matches responses by correlation-id, settles them and keeps credit), plus
// what the transport adds: requests waiting for credit or for a connection, their handlers
// and timeouts, reconnects.
#include <algorithm>
#include <limits>
#include <utility>

#include "amqp/error.hpp"
#include "client_impl.hpp"

namespace amqp::transport::detail {
namespace {

// Removes `r` from `v` (if there); true if it was there.
template <typename C> bool take(C& v, const std::shared_ptr<pending_request>& r) {
  auto it = std::find(v.begin(), v.end(), r);
  if (it == v.end()) {
    return false;
  }
  v.erase(it);
  return true;
}

void finish(const std::shared_ptr<pending_request>& r, std::error_code ec, received_message m) {
  if (r->deadline) {
    r->deadline->cancel();
  }
  if (auto done = std::move(r->done)) {
    r->done = nullptr;
    done(ec, std::move(m));
  }
}

} // namespace

void client_impl::open_requester(const std::shared_ptr<requester_impl>& q) {
  if (phase_ == phase::closed || phase_ == phase::closing) {
    requester_failed(q, code(errc::invalid_state));
    return;
  }
  requesters_.push_back(q);
  attach_requester(*q);
}

void client_impl::attach_requester(requester_impl& q) {
  if (!engine_ || !session_ || !session_ready_ || q.closed || q.closing) {
    return; // attached when the session is ready
  }
  request_response_options o;
  o.address = q.address;
  o.reply_to = q.reply_to;
  o.link_name = q.name;
  o.max_pending = static_cast<std::uint32_t>(
      std::clamp<std::size_t>(q.opts.max_pending, 1, std::numeric_limits<std::uint32_t>::max()));
  o.credit = 100;
  o.memory = opts_.amqp.memory;
  q.helper.emplace(o.memory);
  q.generation = generation;
  q.refused = false;
  q.attached_once = false;
  q.relinking = false;
  if (auto r = q.helper->open(*engine_, *session_, o); !r) {
    q.helper.reset();
    auto keep = std::find_if(requesters_.begin(), requesters_.end(),
                             [&](const auto& p) { return p.get() == &q; });
    if (keep != requesters_.end()) {
      requester_failed(*keep, r.error());
    }
    return;
  }
  kick();
}

void client_impl::close_requester(const std::shared_ptr<requester_impl>& q) {
  q->closing = true;
  // Requests still waiting fail now: no response can come once the links go.
  auto queue = std::move(q->queue);
  q->queue.clear();
  auto sent = std::move(q->sent);
  q->sent.clear();
  for (auto& r : queue) {
    finish(r, code(errc::invalid_state), {});
  }
  for (auto& r : sent) {
    finish(r, code(errc::invalid_state), {});
  }
  if (q->helper && engine_ && q->generation == generation && q->helper->close(*engine_)) {
    q->detached = 0;
    kick(); // closed when both detaches are in (on_requester_event)
    return;
  }
  requester_failed(q, {});
}

void client_impl::request(const std::shared_ptr<requester_impl>& q, std::vector<std::byte> bytes,
                          std::chrono::milliseconds timeout,
                          std::function<void(std::error_code, received_message)> done) {
  auto r = std::make_shared<pending_request>();
  r->bytes = std::move(bytes);
  r->done = std::move(done);
  if (timeout.count() > 0) {
    r->deadline.emplace(io_);
    r->deadline->expires_after(timeout);
    r->deadline->async_wait([wq = std::weak_ptr<requester_impl>(q),
                             wr = std::weak_ptr<pending_request>(r),
                             wc = weak_from_this()](std::error_code ec) {
      auto rq = wq.lock();
      auto req = wr.lock();
      auto c = wc.lock();
      if (ec || !rq || !req || !c || !req->done) {
        return;
      }
      // Forgotten wherever it is: a response that comes later is dropped.
      if (!take(rq->queue, req) && take(rq->sent, req) && req->id && rq->helper) {
        rq->helper->cancel(*req->id);
      }
      finish(req, code(errc::timeout), {});
    });
  }
  q->queue.push_back(std::move(r));
  pump_requests(*q);
}

void client_impl::pump_requests(requester_impl& q) {
  if (!engine_ || !q.helper || q.generation != generation || !q.helper->attached() || q.closing ||
      q.relinking) {
    return;
  }
  bool sent = false;
  while (!q.queue.empty()) {
    auto& r = q.queue.front();
    auto view = decode_message(r->bytes); // checked when the request was made
    auto id = view ? q.helper->request(*engine_, *view) : result<std::uint64_t>(view.error());
    if (!id) {
      if (id.error() == make_error_code(errc::would_block) ||
          id.error() == make_error_code(errc::resource_limit)) {
        break; // no credit, or the output is full: retried on the next flow or write
      }
      auto failed = std::move(r);
      q.queue.pop_front();
      finish(failed, id.error(), {});
      continue;
    }
    sent = true;
    r->id = *id;
    r->bytes.clear();
    r->bytes.shrink_to_fit();
    q.sent.push_back(std::move(r));
    q.queue.pop_front();
  }
  if (sent) {
    kick();
  }
}

void client_impl::offer_to_requesters(const event& e) {
  // A handler may open or close requesters: iterate over a copy.
  const auto all = requesters_;
  for (const auto& q : all) {
    if (q->helper && q->generation == generation) {
      on_requester_event(q, e);
    }
  }
}

void client_impl::on_requester_event(const std::shared_ptr<requester_impl>& q, const event& e) {
  auto& h = *q->helper;
  const bool was_attached = h.attached();
  if (const auto* la = std::get_if<link_attached>(&e)) {
    // A peer refuses a link by attaching it without its terminus (§2.6.3).
    if ((la->link == h.sender() && !la->remote.target) ||
        (la->link == h.receiver() && !la->remote.source)) {
      q->refused = true;
    }
  }
  auto response = h.on_event(*engine_, e);
  if (response) {
    auto it = std::find_if(q->sent.begin(), q->sent.end(),
                           [&](const auto& r) { return r->id == response->request; });
    if (it != q->sent.end()) {
      auto r = std::move(*it);
      q->sent.erase(it);
      received_message m;
      const auto bytes = response->message.bytes();
      m.bytes_.assign(bytes.begin(), bytes.end());
      m.settled_ = true; // the helper accepted it
      m.generation_ = generation;
      finish(r, {}, std::move(m));
    }
    return;
  }
  if (!was_attached && h.attached()) {
    const bool again = std::exchange(q->reattach_pending, false);
    q->attached_once = true;
    q->attached_at = std::chrono::steady_clock::now();
    if (auto d = std::move(q->attach_done)) {
      q->attach_done = nullptr;
      d({});
    }
    pump_requests(*q);
    if (again && q->opts.on_reattached && !q->closed) {
      auto f = q->opts.on_reattached; // it may close the requester
      f();
    }
    return;
  }
  if (const auto* lf = std::get_if<link_flow>(&e); lf != nullptr && lf->link == h.sender()) {
    pump_requests(*q);
    return;
  }
  const auto* ld = std::get_if<link_detached>(&e);
  if (ld == nullptr || (ld->link != h.sender() && ld->link != h.receiver())) {
    return;
  }
  if (q->closing) {
    if (++q->detached == 2) {
      requester_failed(q, {});
    }
    return;
  }
  if (q->relinking) {
    if (++q->detached == 2) {
      q->helper.reset(); // both links are gone: a new pair attaches after the backoff
      schedule_requester_relink(q);
    }
    return;
  }
  const bool sending = ld->link == h.sender();
  const std::string what = std::string(sending ? "sending link '" : "receiving link '") + q->name +
                           (sending ? "-sender' to '" : "-receiver' from '") + q->address +
                           "' of a requester";
  if (q->attached_once && !q->refused && may_relink(*ld)) {
    // client.hpp "Recovery": the other link is detached too, then the pair attaches again.
    // Requests sent on these links cannot be answered: they fail with connection_lost;
    // those not sent yet wait for the new links.
    set_last_error("the peer detached the " + what + " (attaching it again)", ld->error);
    q->relinking = true;
    q->detached = 1;
    auto sent = std::move(q->sent);
    q->sent.clear();
    for (auto& r : sent) {
      finish(r, code(errc::connection_lost), {});
    }
    if (q->closed || q->closing || !q->helper || q->generation != generation) {
      return; // a handler closed it, or the connection went meanwhile
    }
    const auto other = sending ? q->helper->receiver() : q->helper->sender();
    if (!other || !engine_->detach(*other, true)) {
      // The other link is gone already (the peer detached both): nothing to wait for.
      q->helper.reset();
      schedule_requester_relink(q);
      return;
    }
    kick();
    return;
  }
  set_last_error(q->refused ? "the peer refused to attach the " + what
                            : "the peer detached the " + what,
                 ld->error);
  // The other link goes too: the requester is done.
  (void)h.close(*engine_);
  kick();
  requester_failed(q, code(errc::remote_error));
}

void client_impl::schedule_requester_relink(const std::shared_ptr<requester_impl>& q) {
  if (std::chrono::steady_clock::now() - q->attached_at > opts_.reconnect.max_delay) {
    q->relink_attempt = 0;
  }
  ++q->relink_attempt;
  if (!q->relink_timer) {
    q->relink_timer.emplace(io_);
  }
  q->relink_timer->expires_after(backoff(q->relink_attempt));
  q->relink_timer->async_wait(
      [w = weak_from_this(), wq = std::weak_ptr<requester_impl>(q)](std::error_code ec) {
        auto self = w.lock();
        auto rq = wq.lock();
        // A reconnect meanwhile attached it already (or attaches it once open).
        if (ec || !self || !rq || rq->closed || rq->closing || rq->helper ||
            self->phase_ != phase::open) {
          return;
        }
        ++self->relinks;
        rq->reattach_pending = true;
        self->attach_requester(*rq);
      });
}

void client_impl::requester_failed(const std::shared_ptr<requester_impl>& q, std::error_code ec) {
  std::erase(requesters_, q);
  q->closed = true;
  if (q->relink_timer) {
    q->relink_timer->cancel();
  }
  q->error = ec;
  q->helper.reset();
  if (auto d = std::move(q->attach_done)) {
    q->attach_done = nullptr;
    d(ec ? ec : code(errc::invalid_state));
  }
  auto queue = std::move(q->queue);
  q->queue.clear();
  auto sent = std::move(q->sent);
  q->sent.clear();
  for (auto& r : queue) {
    finish(r, ec ? ec : code(errc::invalid_state), {});
  }
  for (auto& r : sent) {
    finish(r, ec ? ec : code(errc::invalid_state), {});
  }
  if (auto d = std::move(q->close_done)) {
    q->close_done = nullptr;
    d(q->closing ? std::error_code{} : ec);
  }
}

void client_impl::requests_lost(std::error_code ec) {
  const auto all = requesters_;
  for (const auto& q : all) {
    q->helper.reset();
    auto sent = std::move(q->sent);
    q->sent.clear();
    for (auto& r : sent) {
      finish(r, ec, {});
    }
  }
}

} // namespace amqp::transport::detail
