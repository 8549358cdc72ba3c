// The blocking facade (blocking.hpp): every call is posted to the client's I/O thread and
// waited for with a promise (detail::io_thread: a call never waits for a thread that is gone).
#include "amqp/transport/blocking.hpp"

#include <algorithm>
#include <future>
#include <optional>
#include <utility>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "amqp/error.hpp"
#include "amqp/transport/detail/io_thread.hpp"

namespace amqp::transport {
namespace detail {

// The client on its I/O thread (io_thread.hpp); blocking.hpp forward-declares it.
struct blocking_state : io_thread<client> {};

} // namespace detail

namespace {

template <typename T> void set(std::promise<result<T>>& p, std::error_code ec, T v) {
  if (ec) {
    p.set_value(ec);
  } else {
    p.set_value(std::move(v));
  }
}

// Runs `f(promise)` on the I/O thread of `st` (null: default-constructed or moved-from)
// and returns its result; errc::invalid_state at once when there is no running I/O thread.
template <typename T, typename F>
result<T> call(const std::shared_ptr<detail::blocking_state>& st, F&& f) {
  if (!st) {
    return errc::invalid_state;
  }
  auto r = st->call<result<T>>(std::forward<F>(f));
  if (!r) {
    return errc::invalid_state;
  }
  return std::move(*r);
}

// Closes a sender, receiver or requester on the I/O thread and waits.
template <typename Handle>
result<void> close_on(const std::shared_ptr<detail::blocking_state>& st, Handle& h) {
  return call<void>(st, [&](std::promise<result<void>>& p) {
    h.async_close(
        [&p](std::error_code ec) { p.set_value(ec ? result<void>(ec) : result<void>{}); });
  });
}

// Runs a settlement (which completes at once) on the I/O thread.
template <typename F>
result<void> settle_on(const std::shared_ptr<detail::blocking_state>& st, F&& f) {
  return call<void>(st, [&](std::promise<result<void>>& p) { p.set_value(f()); });
}

// Starts an operation on the I/O thread (`start(done)`) and waits for its result, or for
// `timeout`: then errc::timeout, and a result that comes later goes to `late`.
result<received_message>
wait_for(const std::shared_ptr<detail::blocking_state>& st, std::chrono::milliseconds timeout,
         std::function<void(std::function<void(std::error_code, received_message)>)> start,
         std::function<void(std::error_code, received_message&)> late) {
  if (!st) {
    return errc::invalid_state;
  }
  struct waiter {
    std::promise<result<received_message>> p;
    bool done = false;
    std::optional<asio::steady_timer> timer;
  };
  auto w = std::make_shared<waiter>();
  auto fut = w->p.get_future();
  auto& io = st->io;
  const bool posted = st->post([&io, w, timeout, start = std::move(start), late = std::move(late)] {
    w->timer.emplace(io);
    w->timer->expires_after(timeout);
    w->timer->async_wait([w](std::error_code ec) {
      if (!ec && !w->done) {
        w->done = true;
        w->p.set_value(errc::timeout);
      }
    });
    start([w, late](std::error_code ec, received_message m) {
      if (w->done) {
        if (late) {
          late(ec, m);
        }
        return;
      }
      w->done = true;
      w->timer->cancel();
      set(w->p, ec, std::move(m));
    });
  });
  if (!posted) {
    return errc::invalid_state;
  }
  return fut.get();
}

// Detaches `h`'s link(s) on the I/O thread, without waiting; nothing once it is stopped.
template <typename Handle>
void detach_later(const std::shared_ptr<detail::blocking_state>& st, Handle& h) {
  if (st && h) {
    (void)st->post([h]() mutable { h.async_close([](std::error_code) {}); });
  }
}

} // namespace

blocking_sender::~blocking_sender() {
  detach_later(state_, sender_);
}
blocking_sender& blocking_sender::operator=(blocking_sender&& o) noexcept {
  if (this != &o) {
    detach_later(state_, sender_);
    state_ = std::move(o.state_);
    sender_ = std::exchange(o.sender_, {});
  }
  return *this;
}

blocking_receiver::~blocking_receiver() {
  detach_later(state_, receiver_);
}
blocking_receiver& blocking_receiver::operator=(blocking_receiver&& o) noexcept {
  if (this != &o) {
    detach_later(state_, receiver_);
    state_ = std::move(o.state_);
    receiver_ = std::exchange(o.receiver_, {});
  }
  return *this;
}

blocking_requester::~blocking_requester() {
  detach_later(state_, requester_);
}
blocking_requester& blocking_requester::operator=(blocking_requester&& o) noexcept {
  if (this != &o) {
    detach_later(state_, requester_);
    state_ = std::move(o.state_);
    requester_ = std::exchange(o.requester_, {});
  }
  return *this;
}

// NOLINTNEXTLINE(bugprone-exception-escape): as ~blocking_state.
blocking_client::~blocking_client() {
  if (state_) {
    (void)close();
  }
}

result<blocking_client> blocking_client::connect(std::string_view url, client_options options,
                                                 std::string* why) {
  auto st = std::make_shared<detail::blocking_state>();
  const std::string u(url);
  std::string failure;
  auto r = call<client>(st, [&](std::promise<result<client>>& p) {
    client::async_connect(st->io, u, std::move(options),
                          [&p, &failure](std::error_code ec, client c) {
                            if (ec) {
                              failure = c.last_error();
                            }
                            set(p, ec, std::move(c));
                          });
  });
  if (!r) {
    st->stop();
    if (why != nullptr) {
      *why = std::move(failure);
    }
    return r.error();
  }
  st->c = std::move(*r);
  blocking_client b;
  b.state_ = std::move(st);
  return b;
}

result<blocking_sender> blocking_client::open_sender(std::string_view address,
                                                     sender_options options) {
  auto r = call<sender>(state_, [&](std::promise<result<sender>>& p) {
    state_->c.async_open_sender(address, std::move(options),
                                [&p](std::error_code ec, sender s) { set(p, ec, std::move(s)); });
  });
  if (!r) {
    return r.error();
  }
  blocking_sender s;
  s.state_ = state_;
  s.sender_ = std::move(*r);
  return s;
}

result<blocking_receiver> blocking_client::open_receiver(std::string_view address,
                                                         receiver_options options) {
  auto r = call<receiver>(state_, [&](std::promise<result<receiver>>& p) {
    state_->c.async_open_receiver(
        address, std::move(options),
        [&p](std::error_code ec, receiver rv) { set(p, ec, std::move(rv)); });
  });
  if (!r) {
    return r.error();
  }
  blocking_receiver rv;
  rv.state_ = state_;
  rv.receiver_ = std::move(*r);
  return rv;
}

result<blocking_requester> blocking_client::open_requester(std::string_view address,
                                                           requester_options options) {
  auto r = call<requester>(state_, [&](std::promise<result<requester>>& p) {
    state_->c.async_open_requester(
        address, std::move(options),
        [&p](std::error_code ec, requester q) { set(p, ec, std::move(q)); });
  });
  if (!r) {
    return r.error();
  }
  blocking_requester q;
  q.state_ = state_;
  q.requester_ = std::move(*r);
  return q;
}

result<void> blocking_client::close() {
  // One close stops the I/O thread, once its close handshake is done; any other (from
  // another thread meanwhile, or later) fails at once.
  if (!state_ || !state_->begin_close()) {
    return errc::invalid_state;
  }
  auto* st = state_.get();
  auto r = call<void>(state_, [st](std::promise<result<void>>& p) {
    st->c.async_close([st, &p](std::error_code ec) {
      st->keep_last_error();
      p.set_value(ec ? result<void>(ec) : result<void>{});
    });
  });
  st->stop();
  return r;
}

std::string blocking_client::last_error() const {
  return state_ ? state_->last_error() : std::string();
}

result<delivery_outcome> blocking_sender::send(std::span<const std::byte> message) {
  return call<delivery_outcome>(state_, [&](std::promise<result<delivery_outcome>>& p) {
    sender_.async_send(message,
                       [&p](std::error_code ec, delivery_outcome o) { set(p, ec, std::move(o)); });
  });
}

result<delivery_outcome> blocking_sender::send(const amqp::message& message) {
  return call<delivery_outcome>(state_, [&](std::promise<result<delivery_outcome>>& p) {
    sender_.async_send(message,
                       [&p](std::error_code ec, delivery_outcome o) { set(p, ec, std::move(o)); });
  });
}

result<void> blocking_sender::close() {
  return close_on(state_, sender_);
}

result<received_message> blocking_receiver::receive(std::chrono::milliseconds timeout) {
  return wait_for(
      state_, timeout, [r = receiver_](auto done) mutable { r.async_receive(std::move(done)); },
      [r = receiver_](std::error_code ec, received_message& m) mutable {
        // Timed out already: the message is not lost, it goes back to the sender.
        if (!ec && !m.settled()) {
          (void)r.release(m);
        }
      });
}

result<received_message> blocking_requester::request(std::span<const std::byte> message,
                                                     std::chrono::milliseconds timeout) {
  // The requester's own timeout: a request that times out is forgotten there too.
  return call<received_message>(state_, [&](std::promise<result<received_message>>& p) {
    requester_.request_bytes(
        message, std::max(timeout, std::chrono::milliseconds{1}),
        [&p](std::error_code ec, received_message m) { set(p, ec, std::move(m)); });
  });
}

result<received_message> blocking_requester::request(const amqp::message& message,
                                                     std::chrono::milliseconds timeout) {
  return call<received_message>(state_, [&](std::promise<result<received_message>>& p) {
    requester_.request_message(
        message, std::max(timeout, std::chrono::milliseconds{1}),
        [&p](std::error_code ec, received_message m) { set(p, ec, std::move(m)); });
  });
}

result<void> blocking_requester::close() {
  return close_on(state_, requester_);
}

result<void> blocking_receiver::accept(const received_message& m) {
  return settle_on(state_, [&] { return receiver_.accept(m); });
}
result<void> blocking_receiver::reject(const received_message& m, std::string_view condition,
                                       std::string_view description) {
  return settle_on(state_, [&] { return receiver_.reject(m, condition, description); });
}
result<void> blocking_receiver::release(const received_message& m) {
  return settle_on(state_, [&] { return receiver_.release(m); });
}
result<void> blocking_receiver::modify(const received_message& m, bool delivery_failed,
                                       bool undeliverable_here) {
  return settle_on(state_,
                   [&] { return receiver_.modify(m, delivery_failed, undeliverable_here); });
}

result<void> blocking_receiver::close() {
  return close_on(state_, receiver_);
}

} // namespace amqp::transport
