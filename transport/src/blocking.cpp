// The blocking facade (blocking.hpp): every call is posted to the client's I/O thread and
// waited for with a promise.
#include "amqp/transport/blocking.hpp"

#include <future>
#include <optional>
#include <thread>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "amqp/error.hpp"

namespace amqp::transport {
namespace detail {

struct blocking_state {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread;
  client c;

  blocking_state() : thread([this] { io.run(); }) {}
  ~blocking_state() { stop(); }

  void stop() {
    work.reset();
    io.stop();
    if (thread.joinable() && thread.get_id() != std::this_thread::get_id()) {
      thread.join();
    }
  }

  // Runs `f` on the I/O thread and returns its result.
  template <typename T, typename F> T call(F&& f) {
    std::promise<T> p;
    auto fut = p.get_future();
    asio::post(io, [&p, &f] { f(p); });
    return fut.get();
  }
};

} // namespace detail

namespace {
template <typename T> void set(std::promise<result<T>>& p, std::error_code ec, T v) {
  if (ec) {
    p.set_value(ec);
  } else {
    p.set_value(std::move(v));
  }
}
} // namespace

namespace {
// Closes a client, sender, receiver or requester on the I/O thread and waits.
template <typename Handle> result<void> close_on(detail::blocking_state& st, Handle& h) {
  return st.call<result<void>>([&](std::promise<result<void>>& p) {
    h.async_close(
        [&p](std::error_code ec) { p.set_value(ec ? result<void>(ec) : result<void>{}); });
  });
}
} // namespace

blocking_client::~blocking_client() {
  if (state_) {
    (void)close();
  }
}

result<blocking_client> blocking_client::connect(std::string_view url, client_options options) {
  auto st = std::make_shared<detail::blocking_state>();
  const std::string u(url);
  auto r = st->call<result<client>>([&](std::promise<result<client>>& p) {
    client::async_connect(st->io, u, std::move(options),
                          [&p](std::error_code ec, client c) { set(p, ec, std::move(c)); });
  });
  if (!r) {
    st->stop();
    return r.error();
  }
  st->c = std::move(*r);
  blocking_client b;
  b.state_ = std::move(st);
  return b;
}

result<blocking_sender> blocking_client::open_sender(std::string_view address,
                                                     sender_options options) {
  if (!state_) {
    return errc::invalid_state;
  }
  auto r = state_->call<result<sender>>([&](std::promise<result<sender>>& p) {
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
  if (!state_) {
    return errc::invalid_state;
  }
  auto r = state_->call<result<receiver>>([&](std::promise<result<receiver>>& p) {
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
  if (!state_) {
    return errc::invalid_state;
  }
  auto r = state_->call<result<requester>>([&](std::promise<result<requester>>& p) {
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
  if (!state_) {
    return {};
  }
  auto st = std::move(state_);
  auto r = close_on(*st, st->c);
  st->stop();
  return r;
}

std::string blocking_client::last_error() const {
  if (!state_) {
    return {};
  }
  return state_->call<std::string>(
      [&](std::promise<std::string>& p) { p.set_value(state_->c.last_error()); });
}

result<delivery_outcome> blocking_sender::send(std::span<const std::byte> message) {
  if (!state_) {
    return errc::invalid_state;
  }
  return state_->call<result<delivery_outcome>>([&](std::promise<result<delivery_outcome>>& p) {
    sender_.async_send(message,
                       [&p](std::error_code ec, delivery_outcome o) { set(p, ec, std::move(o)); });
  });
}

result<void> blocking_sender::close() {
  if (!state_) {
    return {};
  }
  return close_on(*state_, sender_);
}

namespace {

// Starts an operation on the I/O thread (`start(done)`) and waits for its result, or for
// `timeout`: then errc::timeout, and a result that comes later goes to `late`.
result<received_message>
wait_for(detail::blocking_state& st, std::chrono::milliseconds timeout,
         std::function<void(std::function<void(std::error_code, received_message)>)> start,
         std::function<void(std::error_code, received_message&)> late) {
  struct waiter {
    std::promise<result<received_message>> p;
    bool done = false;
    std::optional<asio::steady_timer> timer;
  };
  auto w = std::make_shared<waiter>();
  auto fut = w->p.get_future();
  asio::post(st.io, [&st, w, timeout, start = std::move(start), late = std::move(late)] {
    w->timer.emplace(st.io);
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
  return fut.get();
}

} // namespace

result<received_message> blocking_receiver::receive(std::chrono::milliseconds timeout) {
  if (!state_) {
    return errc::invalid_state;
  }
  return wait_for(
      *state_, timeout, [r = receiver_](auto done) mutable { r.async_receive(std::move(done)); },
      [r = receiver_](std::error_code ec, received_message& m) mutable {
        // Timed out already: the message is not lost, it goes back to the sender.
        if (!ec && !m.settled()) {
          (void)r.release(m);
        }
      });
}

result<received_message> blocking_requester::request(std::span<const std::byte> message,
                                                     std::chrono::milliseconds timeout) {
  if (!state_) {
    return errc::invalid_state;
  }
  // A response after the timeout is dropped.
  return wait_for(*state_, timeout,
                  [q = requester_, bytes = std::vector<std::byte>(message.begin(), message.end())](
                      auto done) mutable { q.async_request(bytes, std::move(done)); },
                  {});
}

result<void> blocking_requester::close() {
  if (!state_) {
    return {};
  }
  return close_on(*state_, requester_);
}

namespace {
template <typename F> result<void> settle_on(detail::blocking_state& st, F&& f) {
  return st.call<result<void>>([&](std::promise<result<void>>& p) { p.set_value(f()); });
}
} // namespace

result<void> blocking_receiver::accept(const received_message& m) {
  return settle_on(*state_, [&] { return receiver_.accept(m); });
}
result<void> blocking_receiver::reject(const received_message& m, std::string_view condition,
                                       std::string_view description) {
  return settle_on(*state_, [&] { return receiver_.reject(m, condition, description); });
}
result<void> blocking_receiver::release(const received_message& m) {
  return settle_on(*state_, [&] { return receiver_.release(m); });
}
result<void> blocking_receiver::modify(const received_message& m, bool delivery_failed,
                                       bool undeliverable_here) {
  return settle_on(*state_,
                   [&] { return receiver_.modify(m, delivery_failed, undeliverable_here); });
}

result<void> blocking_receiver::close() {
  if (!state_) {
    return {};
  }
  return close_on(*state_, receiver_);
}

} // namespace amqp::transport
