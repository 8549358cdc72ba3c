// The IoT Hub service client (service_client.hpp): the C2D sender and the feedback receiver
// on one hub_connection, and the blocking facade over them.
#include "amqp/iothub/service_client.hpp"

#include <algorithm>
#include <array>
#include <deque>
#include <future>
#include <limits>
#include <random>
#include <utility>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "amqp/error.hpp"
#include "amqp/iothub/address.hpp"
#include "amqp/iothub/errors.hpp"
#include "amqp/iothub/messages.hpp"
#include "amqp/transport/detail/io_thread.hpp"
#include "amqp/types.hpp"

namespace amqp::iothub {

std::string_view to_string(c2d_ack a) noexcept {
  switch (a) {
  case c2d_ack::none:
    return ack::none;
  case c2d_ack::positive:
    return ack::positive;
  case c2d_ack::negative:
    return ack::negative;
  case c2d_ack::full:
    return ack::full;
  }
  return ack::none;
}

c2d_rejection rejection_of(std::string_view condition) noexcept {
  if (condition.empty()) {
    return c2d_rejection::none;
  }
  if (condition == amqp::symbol::not_found) {
    return c2d_rejection::device_not_found;
  }
  if (condition == amqp::symbol::resource_limit_exceeded) {
    return c2d_rejection::queue_full;
  }
  if (condition == amqp::symbol::message_size_exceeded) {
    return c2d_rejection::message_too_large;
  }
  if (condition == condition::device_container_throttled) {
    return c2d_rejection::throttled;
  }
  if (condition == condition::quota_exceeded) {
    return c2d_rejection::quota_exceeded;
  }
  if (condition == condition::argument_error || condition == condition::argument_out_of_range ||
      condition == amqp::symbol::decode_error) {
    return c2d_rejection::invalid_message;
  }
  return c2d_rejection::other;
}

namespace detail {

namespace {

constexpr std::array<char, 16> hex_digits{'0', '1', '2', '3', '4', '5', '6', '7',
                                          '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};

// 8-4-4-4-12 lower-case hex, as .NET's Guid.ToString().
std::string guid_text(const amqp::uuid& u) {
  std::string s;
  s.reserve(36);
  for (std::size_t i = 0; i < u.bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      s.push_back('-');
    }
    const auto b = std::to_integer<unsigned>(u.bytes[i]);
    s.push_back(hex_digits[b >> 4U]);
    s.push_back(hex_digits[b & 0xFU]);
  }
  return s;
}

// The message-id as the hub reports it in feedback (originalMessageId): a string as it is,
// a ulong in decimal, a uuid as a GUID; empty for a binary.
std::string message_id_text(const amqp::value& v) {
  if (auto s = v.get_string()) {
    return std::string(*s);
  }
  if (auto u = v.get_unsigned()) {
    return std::to_string(*u);
  }
  if (v.is(type::uuid)) {
    return guid_text(v.as_uuid());
  }
  return {};
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

} // namespace

class service_client_impl : public std::enable_shared_from_this<service_client_impl> {
public:
  using raw_handler = std::function<void(std::error_code, transport::received_message)>;
  using feedback_handler =
      std::function<feedback_action(std::error_code, std::vector<feedback_record>)>;

  service_client_impl(asio::io_context& io, hub_connection conn, service_client_options o)
      : io_(io), conn_(std::move(conn)), options_(o), rng_(std::random_device{}()) {}

  asio::io_context& io_;
  hub_connection conn_;
  service_client_options options_;
  transport::sender c2d_;
  std::string last_error_;
  bool closed_ = false;

  // A random (version 4) GUID, for message-ids.
  std::string new_guid() {
    amqp::uuid u;
    for (std::size_t i = 0; i < u.bytes.size(); i += 8) {
      const std::uint64_t r = rng_();
      for (std::size_t k = 0; k < 8; ++k) {
        u.bytes[i + k] = static_cast<std::byte>((r >> (8 * k)) & 0xFFU);
      }
    }
    u.bytes[6] = (u.bytes[6] & std::byte{0x0F}) | std::byte{0x40};
    u.bytes[8] = (u.bytes[8] & std::byte{0x3F}) | std::byte{0x80};
    return guid_text(u);
  }

  void send(std::string_view device_id, const amqp::message& message, const c2d_send_options& o,
            std::function<void(std::error_code, c2d_outcome)> done) {
    auto fail_now = [this, &done](std::error_code ec, std::string why) {
      last_error_ = std::move(why);
      asio::post(io_, [done = std::move(done), ec] { done(ec, {}); });
    };
    if (closed_ || !c2d_) {
      fail_now(make_error_code(amqp::errc::invalid_state), "the service client is closed");
      return;
    }
    std::string why;
    if (!check_device_id(device_id, &why)) {
      fail_now(make_error_code(amqp::errc::invalid_argument), "device id: " + why);
      return;
    }
    if (!o.module_id.empty() && !check_module_id(o.module_id, &why)) {
      fail_now(make_error_code(amqp::errc::invalid_argument), "module id: " + why);
      return;
    }
    if (o.time_to_live && o.time_to_live->count() <= 0) {
      fail_now(make_error_code(amqp::errc::invalid_argument),
               "time_to_live must be positive, not " + std::to_string(o.time_to_live->count()) +
                   " ms");
      return;
    }
    amqp::message m = message;
    m.properties.to = device_c2d_address({std::string(device_id), o.module_id});
    if (m.properties.message_id.is_null()) {
      m.properties.message_id = owned_value(new_guid());
    }
    if (o.ack) {
      m.application_properties.set(app_property::ack, owned_value(to_string(*o.ack)));
    }
    if (o.time_to_live) {
      // Clamped to the last timestamp: the hub clamps it further, to its maximum TTL.
      const std::int64_t now = now_ms();
      const std::int64_t ttl = std::min<std::int64_t>(
          o.time_to_live->count(), std::numeric_limits<std::int64_t>::max() - now);
      m.properties.absolute_expiry_time = amqp::timestamp{now + ttl};
    }
    std::string id = message_id_text(m.properties.message_id.get());
    c2d_.async_send(m, [self = shared_from_this(), id = std::move(id),
                        done = std::move(done)](std::error_code ec, transport::delivery_outcome d) {
      if (ec) {
        self->last_error_ = self->conn_.client().last_error();
        done(ec, {});
        return;
      }
      c2d_outcome out;
      out.state = d.state;
      out.condition = std::move(d.condition);
      out.description = std::move(d.description);
      out.rejection =
          d.state == state_kind::rejected ? rejection_of(out.condition) : c2d_rejection::none;
      if (d.state == state_kind::rejected && out.rejection == c2d_rejection::none) {
        out.rejection = c2d_rejection::other; // rejected without a condition
      }
      out.message_id = id;
      done({}, std::move(out));
    });
  }

  // ---- feedback ----------------------------------------------------------------------------

  // The next feedback message as received, to `done` (from the io_context, never inside
  // this call). Receives are served in order, from one receive on the link at a time:
  // messages that came for a receive cancelled since wait in the stash for the next one.
  // Returns an id for cancel_raw (0: failed at once).
  std::uint64_t receive_raw(raw_handler done) {
    if (closed_) {
      asio::post(
          io_, [done = std::move(done)] { done(make_error_code(amqp::errc::invalid_state), {}); });
      return 0;
    }
    const std::uint64_t id = next_waiter_++;
    waiters_.push_back({id, std::move(done)});
    pump();
    return id;
  }

  // Forgets a waiting receive (its handler is dropped, not called).
  void cancel_raw(std::uint64_t id) {
    std::erase_if(waiters_, [id](const raw_waiter& w) { return w.id == id; });
  }

  // Parses `m` and hands its records to `done`, then settles it as `done` says.
  void deliver(std::error_code ec, const transport::received_message& m,
               const feedback_handler& done) {
    if (ec) {
      (void)done(ec, {});
      return;
    }
    std::string why;
    auto decoded = m.message();
    result<std::vector<feedback_record>> records =
        decoded ? parse_feedback_message(*decoded, &why)
                : result<std::vector<feedback_record>>(decoded.error());
    if (!decoded) {
      why = "the message does not decode: " + decoded.error().message();
    }
    if (!records) {
      last_error_ = "a feedback message was rejected: " + why;
      (void)feedback_.reject(m, amqp::symbol::decode_error, why);
      (void)done(records.error(), {});
      return;
    }
    const feedback_action a = done({}, std::move(*records));
    // A message from a lost connection cannot be settled: the hub delivers it again.
    if (a == feedback_action::abandon) {
      (void)feedback_.release(m);
    } else {
      (void)feedback_.accept(m);
    }
  }

  void receive_feedback(feedback_handler done) {
    receive_raw([self = shared_from_this(),
                 done = std::move(done)](std::error_code ec, const transport::received_message& m) {
      self->deliver(ec, m, done);
    });
  }

  void close(std::function<void(std::error_code)> done) {
    if (closed_) {
      asio::post(io_,
                 [done = std::move(done)] { done(make_error_code(amqp::errc::invalid_state)); });
      return;
    }
    closed_ = true;
    stash_.clear();
    fail_waiters(make_error_code(amqp::errc::invalid_state), false);
    conn_.async_close(std::move(done));
  }

private:
  struct raw_waiter {
    std::uint64_t id;
    raw_handler done;
  };

  // Hands stashed messages to waiting receives, then receives on the link (attaching it
  // first) while some receive still waits.
  void pump() {
    while (!waiters_.empty() && !stash_.empty()) {
      auto done = std::move(waiters_.front().done);
      waiters_.pop_front();
      auto m = std::move(stash_.front());
      stash_.pop_front();
      asio::post(io_,
                 [done = std::move(done), m = std::move(m)]() mutable { done({}, std::move(m)); });
    }
    if (waiters_.empty() || receiving_ || opening_ || closed_) {
      return;
    }
    if (!feedback_) {
      open_feedback();
      return;
    }
    receiving_ = true;
    feedback_.async_receive(
        [self = shared_from_this()](std::error_code ec, transport::received_message m) {
          self->receiving_ = false;
          if (ec) {
            self->fail_waiters(ec);
            // A link the hub detached (or closed) is attached again by the next receive.
            self->feedback_ = {};
            return;
          }
          self->stash_.push_back(std::move(m));
          self->pump();
        });
  }

  void open_feedback() {
    opening_ = true;
    transport::receiver_options ro;
    ro.credit = options_.feedback_credit;
    conn_.client().async_open_receiver(
        path::feedback, ro, [self = shared_from_this()](std::error_code ec, transport::receiver r) {
          self->opening_ = false;
          if (ec) {
            self->fail_waiters(ec);
            return;
          }
          self->feedback_ = std::move(r);
          self->pump();
        });
  }

  // Fails every waiting receive with `ec`; `report`: last_error() says why.
  void fail_waiters(std::error_code ec, bool report = true) {
    if (report) {
      last_error_ = conn_.client() ? conn_.client().last_error() : std::string{};
      if (last_error_.empty()) {
        last_error_ = "the feedback receiver failed: " + ec.message();
      }
    }
    auto waiting = std::move(waiters_);
    waiters_.clear();
    for (auto& w : waiting) {
      asio::post(io_, [done = std::move(w.done), ec] { done(ec, {}); });
    }
  }

  std::mt19937_64 rng_;
  transport::receiver feedback_;
  bool opening_ = false;   // the feedback link is being attached
  bool receiving_ = false; // a receive on the feedback link is under way
  std::uint64_t next_waiter_ = 1;
  std::deque<raw_waiter> waiters_;
  std::deque<transport::received_message> stash_;
};

} // namespace detail

// ---- service_client ----------------------------------------------------------------------------

void service_client::async_connect(asio::io_context& io, hub_endpoint endpoint,
                                   service_client_options options,
                                   std::function<void(std::error_code, service_client)> done) {
  auto fail = [&io, &done](std::string why) {
    asio::post(io, [done = std::move(done), why = std::move(why)] {
      service_client c;
      c.failure_ = why;
      done(make_error_code(amqp::errc::invalid_argument), std::move(c));
    });
  };
  if (endpoint.kind != connection_string_kind::service) {
    fail("not a service connection string (a hub policy with SharedAccessKeyName)");
    return;
  }
  if (!endpoint.identity) {
    fail("the connection string has no key or token");
    return;
  }
  if (options.feedback_credit == 0 || options.max_in_flight == 0) {
    fail("feedback_credit and max_in_flight must be at least 1");
    return;
  }
  std::vector<token_source> identities{*endpoint.identity};
  hub_connection::async_connect(
      io, endpoint.options, std::move(identities),
      [&io, options, done = std::move(done)](std::error_code ec, hub_connection conn) mutable {
        if (ec) {
          service_client c;
          c.failure_ = conn.last_error();
          done(ec, std::move(c));
          return;
        }
        auto impl = std::make_shared<detail::service_client_impl>(io, std::move(conn), options);
        transport::sender_options so;
        so.max_in_flight = options.max_in_flight;
        impl->conn_.client().async_open_sender(
            path::service_c2d, so,
            [impl, done = std::move(done)](std::error_code ec2, transport::sender s) mutable {
              if (ec2) {
                service_client c;
                c.failure_ = impl->conn_.client().last_error();
                impl->close([impl](std::error_code) {});
                done(ec2, std::move(c));
                return;
              }
              impl->c2d_ = std::move(s);
              service_client c;
              c.impl_ = std::move(impl);
              done({}, std::move(c));
            });
      });
}

void service_client::async_connect(asio::io_context& io, std::string_view connection_string,
                                   service_client_options options,
                                   std::function<void(std::error_code, service_client)> done) {
  std::string why;
  auto ep = endpoint_from(connection_string, hub_protocol::amqps, &why);
  if (!ep) {
    asio::post(io, [done = std::move(done), why = std::move(why)] {
      service_client c;
      c.failure_ = "invalid connection string: " + why;
      done(make_error_code(amqp::errc::invalid_argument), std::move(c));
    });
    return;
  }
  async_connect(io, std::move(*ep), options, std::move(done));
}

void service_client::async_send(std::string_view device_id, const amqp::message& message,
                                const c2d_send_options& options,
                                std::function<void(std::error_code, c2d_outcome)> done) {
  if (!impl_) {
    done(make_error_code(amqp::errc::invalid_state), {});
    return;
  }
  impl_->send(device_id, message, options, std::move(done));
}

void service_client::async_receive_feedback(
    std::function<void(std::error_code, std::vector<feedback_record>)> done) {
  if (!impl_) {
    done(make_error_code(amqp::errc::invalid_state), {});
    return;
  }
  impl_->receive_feedback(
      [done = std::move(done)](std::error_code ec, std::vector<feedback_record> r) {
        done(ec, std::move(r));
        return feedback_action::complete;
      });
}

void service_client::async_handle_feedback(
    std::function<feedback_action(std::error_code, std::vector<feedback_record>)> done) {
  if (!impl_) {
    (void)done(make_error_code(amqp::errc::invalid_state), {});
    return;
  }
  impl_->receive_feedback(std::move(done));
}

void service_client::async_close(std::function<void(std::error_code)> done) {
  if (!impl_) {
    done(make_error_code(amqp::errc::invalid_state));
    return;
  }
  impl_->close(std::move(done));
}

std::string service_client::last_error() const {
  return impl_ ? impl_->last_error_ : failure_;
}

hub_connection& service_client::connection() noexcept {
  return impl_->conn_;
}

// ---- blocking_service_client -------------------------------------------------------------------

namespace detail {

// The service client on its I/O thread (transport::detail::io_thread), and the feedback wait.
struct blocking_service_state : transport::detail::io_thread<service_client> {
  // The next feedback batch within `timeout` (see blocking_service_client).
  result<std::vector<feedback_record>> receive_feedback(std::chrono::milliseconds timeout) {
    struct waiter {
      std::promise<result<std::vector<feedback_record>>> p;
      bool done = false;
      std::optional<asio::steady_timer> timer;
    };
    auto w = std::make_shared<waiter>();
    auto fut = w->p.get_future();
    const bool posted = post([this, w, timeout] {
      if (!c) {
        w->p.set_value(amqp::errc::invalid_state);
        return;
      }
      w->timer.emplace(io);
      w->timer->expires_after(timeout);
      auto impl = c.impl_;
      const std::uint64_t id =
          impl->receive_raw([impl, w](std::error_code ec, const transport::received_message& m) {
            if (w->done) {
              return;
            }
            w->done = true;
            w->timer->cancel();
            impl->deliver(ec, m, [w](std::error_code e, std::vector<feedback_record> records) {
              if (e) {
                w->p.set_value(e);
              } else {
                w->p.set_value(std::move(records));
              }
              return feedback_action::complete;
            });
          });
      w->timer->async_wait([w, impl, id](std::error_code ec) {
        if (!ec && !w->done) {
          w->done = true;
          impl->cancel_raw(id); // a message that comes later waits for the next receive
          w->p.set_value(amqp::errc::timeout);
        }
      });
    });
    if (!posted) {
      return amqp::errc::invalid_state;
    }
    return fut.get();
  }
};

} // namespace detail

// NOLINTNEXTLINE(bugprone-exception-escape): as ~blocking_service_state.
blocking_service_client::~blocking_service_client() {
  if (state_) {
    (void)close();
  }
}

result<blocking_service_client> blocking_service_client::connect(hub_endpoint endpoint,
                                                                 service_client_options options,
                                                                 std::string* why) {
  auto st = std::make_shared<detail::blocking_service_state>();
  auto r = st->call<std::error_code>([&st, &endpoint, options](std::promise<std::error_code>& p) {
    service_client::async_connect(st->io, std::move(endpoint), options,
                                  [&st, &p](std::error_code ec, service_client c) {
                                    st->c = std::move(c);
                                    p.set_value(ec);
                                  });
  });
  if (!r) {
    return amqp::errc::invalid_state;
  }
  if (*r) {
    st->keep_last_error();
    if (why != nullptr) {
      *why = st->last_error();
    }
    st->stop();
    return *r;
  }
  blocking_service_client b;
  b.state_ = std::move(st);
  return b;
}

result<blocking_service_client> blocking_service_client::connect(std::string_view connection_string,
                                                                 service_client_options options,
                                                                 std::string* why) {
  std::string reason;
  auto ep = endpoint_from(connection_string, hub_protocol::amqps, &reason);
  if (!ep) {
    if (why != nullptr) {
      *why = "invalid connection string: " + reason;
    }
    return amqp::errc::invalid_argument;
  }
  return connect(std::move(*ep), options, why);
}

result<c2d_outcome> blocking_service_client::send(std::string_view device_id,
                                                  const amqp::message& message,
                                                  const c2d_send_options& options) {
  if (!state_) {
    return amqp::errc::invalid_state;
  }
  auto& st = *state_;
  auto r = st.call<result<c2d_outcome>>([&](std::promise<result<c2d_outcome>>& p) {
    st.c.async_send(device_id, message, options, [&p](std::error_code ec, c2d_outcome o) {
      if (ec) {
        p.set_value(ec);
      } else {
        p.set_value(std::move(o));
      }
    });
  });
  if (!r) {
    return amqp::errc::invalid_state;
  }
  return std::move(*r);
}

result<std::vector<feedback_record>>
blocking_service_client::receive_feedback(std::chrono::milliseconds timeout) {
  if (!state_) {
    return amqp::errc::invalid_state;
  }
  return state_->receive_feedback(timeout);
}

result<void> blocking_service_client::close() {
  if (!state_ || !state_->begin_close()) {
    return amqp::errc::invalid_state;
  }
  auto& st = *state_;
  auto r = st.call<std::error_code>([&st](std::promise<std::error_code>& p) {
    st.c.async_close([&st, &p](std::error_code ec) {
      st.keep_last_error();
      p.set_value(ec);
    });
  });
  st.stop();
  if (!r) {
    return amqp::errc::invalid_state;
  }
  if (*r) {
    return *r;
  }
  return {};
}

std::string blocking_service_client::last_error() const {
  return state_ ? state_->last_error() : std::string{};
}

std::uint64_t blocking_service_client::reconnects() const {
  if (!state_) {
    return 0;
  }
  auto& st = *state_;
  auto r = st.call<std::uint64_t>([&st](std::promise<std::uint64_t>& p) {
    p.set_value(st.c ? st.c.connection().reconnects() : 0);
  });
  return r.value_or(0);
}

} // namespace amqp::iothub
