// The blocking device client (device_client.hpp): every call is posted to the client's I/O
// thread and waited for with a promise (transport::detail::io_thread: a call never waits for
// a thread that is gone).
#include <deque>
#include <future>
#include <optional>
#include <utility>

#include <asio/steady_timer.hpp>

#include "amqp/error.hpp"
#include "amqp/iothub/device_client.hpp"
#include "amqp/transport/detail/io_thread.hpp"

namespace amqp::iothub {
namespace detail {

struct blocking_device_state : transport::detail::io_thread<device_client> {
  // Receiving: messages that arrived after their receive() timed out, the receive under
  // way on the client, and the caller waiting for it (with its timer).
  std::deque<c2d_message> early;
  bool receiving = false;
  std::optional<std::promise<result<c2d_message>>> waiter;
  std::optional<asio::steady_timer> timer;

  blocking_device_state() = default;
  // The thread stops before the members above go (it may be using them).
  ~blocking_device_state() { stop(); } // NOLINT(bugprone-exception-escape): see io_thread.hpp
  blocking_device_state(const blocking_device_state&) = delete;
  blocking_device_state& operator=(const blocking_device_state&) = delete;
  blocking_device_state(blocking_device_state&&) = delete;
  blocking_device_state& operator=(blocking_device_state&&) = delete;

  // I/O thread: hands a message (or an error) to the waiting caller, or keeps a message
  // for the next receive().
  void on_received(std::error_code ec, c2d_message m) {
    receiving = false;
    if (waiter) {
      timer.reset();
      auto w = std::move(*waiter);
      waiter.reset();
      if (ec) {
        w.set_value(ec);
      } else {
        w.set_value(std::move(m));
      }
      return;
    }
    if (!ec) {
      early.push_back(std::move(m));
    }
  }
};

namespace {
std::error_code closed() {
  return make_error_code(amqp::errc::invalid_state);
}
} // namespace
} // namespace detail

// NOLINTNEXTLINE(bugprone-exception-escape): as ~blocking_device_state.
blocking_device_client::~blocking_device_client() {
  if (state_) {
    (void)close();
  }
}

blocking_device_client::blocking_device_client(blocking_device_client&&) noexcept = default;

// NOLINTNEXTLINE(bugprone-exception-escape): as ~blocking_device_state.
blocking_device_client& blocking_device_client::operator=(blocking_device_client&& o) noexcept {
  if (this != &o) {
    if (state_) {
      (void)close();
    }
    state_ = std::move(o.state_);
  }
  return *this;
}

result<blocking_device_client> blocking_device_client::connect(hub_endpoint endpoint,
                                                               device_client_options options,
                                                               std::string* why) {
  auto st = std::make_shared<detail::blocking_device_state>();
  auto r = st->call<std::pair<std::error_code, std::string>>([&](auto& p) {
    device_client::async_connect(st->io, std::move(endpoint), options,
                                 [&p, &st](std::error_code ec, device_client c) {
                                   auto text = c.last_error();
                                   st->c = std::move(c);
                                   p.set_value({ec, std::move(text)});
                                 });
  });
  if (!r) {
    return detail::closed();
  }
  if (r->first) {
    if (why != nullptr) {
      *why = r->second;
    }
    st->stop();
    return r->first;
  }
  blocking_device_client b;
  b.state_ = std::move(st);
  return b;
}

result<event_outcome> blocking_device_client::send_event(const amqp::message& message) {
  if (!state_) {
    return detail::closed();
  }
  auto r = state_->call<result<event_outcome>>([&](auto& p) {
    state_->c.async_send_event(message, [&p](std::error_code ec, event_outcome o) {
      if (ec) {
        p.set_value(ec);
      } else {
        p.set_value(std::move(o));
      }
    });
  });
  return r ? std::move(*r) : result<event_outcome>(detail::closed());
}

result<batch_outcome> blocking_device_client::send_batch(std::span<const amqp::message> messages) {
  if (!state_) {
    return detail::closed();
  }
  auto r = state_->call<result<batch_outcome>>([&](auto& p) {
    state_->c.async_send_batch(messages, [&p](std::error_code ec, batch_outcome o) {
      if (ec) {
        p.set_value(ec);
      } else {
        p.set_value(std::move(o));
      }
    });
  });
  return r ? std::move(*r) : result<batch_outcome>(detail::closed());
}

result<c2d_message> blocking_device_client::receive(std::chrono::milliseconds timeout) {
  if (!state_) {
    return detail::closed();
  }
  auto* st = state_.get();
  std::future<result<c2d_message>> fut;
  const bool posted = st->call<bool>([&](auto& p) {
                          if (st->waiter) { // another thread is receiving
                            std::promise<result<c2d_message>> busy;
                            fut = busy.get_future();
                            busy.set_value(detail::closed());
                            p.set_value(true);
                            return;
                          }
                          st->waiter.emplace();
                          fut = st->waiter->get_future();
                          if (!st->early.empty()) {
                            auto m = std::move(st->early.front());
                            st->early.pop_front();
                            st->waiter->set_value(std::move(m));
                            st->waiter.reset();
                            p.set_value(true);
                            return;
                          }
                          if (!st->c) {
                            st->waiter->set_value(detail::closed());
                            st->waiter.reset();
                            p.set_value(true);
                            return;
                          }
                          st->timer.emplace(st->io, timeout);
                          st->timer->async_wait([st](std::error_code ec) {
                            if (ec || !st->waiter) {
                              return; // cancelled: the message came
                            }
                            auto w = std::move(*st->waiter);
                            st->waiter.reset();
                            w.set_value(make_error_code(amqp::errc::timeout));
                          });
                          if (!st->receiving) {
                            st->receiving = true;
                            st->c.async_receive([st](std::error_code ec, c2d_message m) {
                              st->on_received(ec, std::move(m));
                            });
                          }
                          p.set_value(true);
                        }).value_or(false);
  if (!posted) {
    return detail::closed();
  }
  return fut.get();
}

result<void> blocking_device_client::complete(const c2d_message& m) {
  if (!state_) {
    return detail::closed();
  }
  auto r = state_->call<result<void>>([&](auto& p) { p.set_value(state_->c.complete(m)); });
  return r ? *r : result<void>(detail::closed());
}

result<void> blocking_device_client::reject(const c2d_message& m) {
  if (!state_) {
    return detail::closed();
  }
  auto r = state_->call<result<void>>([&](auto& p) { p.set_value(state_->c.reject(m)); });
  return r ? *r : result<void>(detail::closed());
}

result<void> blocking_device_client::abandon(const c2d_message& m) {
  if (!state_) {
    return detail::closed();
  }
  auto r = state_->call<result<void>>([&](auto& p) { p.set_value(state_->c.abandon(m)); });
  return r ? *r : result<void>(detail::closed());
}

result<void> blocking_device_client::close() {
  if (!state_) {
    return detail::closed();
  }
  auto& st = state_;
  auto r = st->call<std::error_code>([&](auto& p) {
    if (st->waiter) {
      auto w = std::move(*st->waiter);
      st->waiter.reset();
      w.set_value(detail::closed());
    }
    st->c.async_close([&p, &st](std::error_code ec) {
      st->keep_last_error();
      p.set_value(ec);
    });
  });
  st->stop();
  if (!r) {
    return detail::closed();
  }
  if (*r) {
    return *r;
  }
  return {};
}

std::string blocking_device_client::last_error() const {
  if (!state_) {
    return {};
  }
  return state_->last_error();
}

} // namespace amqp::iothub
