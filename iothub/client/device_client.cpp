// The device client (device_client.hpp): the telemetry sender and the C2D receiver of one
// device on a hub_connection, batches packed with build_batch.
#include "amqp/iothub/device_client.hpp"

#include <algorithm>
#include <utility>

#include "amqp/error.hpp"
#include "amqp/iothub/errors.hpp"

namespace amqp::iothub {
namespace detail {

struct device_client_impl {
  hub_connection conn;
  bool owns_connection = false;
  device_identity who;
  device_client_options opts;
  transport::sender events;
  transport::receiver c2d;
  bool closed = false;
  std::string error; // the last local error (last_error())
  // The callback form of C2D (on_c2d_message) and whether its receive loop is waiting.
  std::function<void(std::error_code, c2d_message)> on_c2d;
  bool c2d_loop = false;

  // Waits for the next C2D message for the callback form.
  static void receive_loop(const std::shared_ptr<device_client_impl>& self) {
    self->c2d_loop = true;
    std::weak_ptr<device_client_impl> weak = self;
    self->c2d.async_receive([weak](std::error_code ec, c2d_message m) {
      auto s = weak.lock();
      if (!s) {
        return;
      }
      s->c2d_loop = false;
      auto f = s->on_c2d; // the callback may replace itself
      if (ec) {
        if (f) {
          f(ec, {});
        }
        return;
      }
      if (f) {
        f({}, std::move(m));
      }
      if (s->on_c2d && !s->closed && !s->c2d_loop) {
        receive_loop(s);
      }
    });
  }

  // Attaches the telemetry sender, then the C2D receiver (if asked for).
  static void open_links(const std::shared_ptr<device_client_impl>& self,
                         std::function<void(std::error_code, device_client)> done) {
    transport::sender_options so;
    so.max_in_flight = self->opts.max_in_flight;
    self->conn.client().async_open_sender(
        telemetry_address(self->who), so,
        [self, done = std::move(done)](std::error_code ec, transport::sender s) mutable {
          if (ec) {
            fail(self, ec, done);
            return;
          }
          self->events = std::move(s);
          if (!self->opts.receive_c2d) {
            succeed(self, done);
            return;
          }
          transport::receiver_options ro;
          ro.credit = self->opts.c2d_prefetch;
          ro.settle_second = true; // as .NET: the hub settles after our outcome (doc §4.3)
          self->conn.client().async_open_receiver(
              device_c2d_address(self->who), ro,
              [self, done = std::move(done)](std::error_code ec2, transport::receiver r) mutable {
                if (ec2) {
                  fail(self, ec2, done);
                  return;
                }
                self->c2d = std::move(r);
                succeed(self, done);
              });
        });
  }

  static void succeed(const std::shared_ptr<device_client_impl>& self,
                      const std::function<void(std::error_code, device_client)>& done) {
    device_client c;
    c.impl_ = self;
    done({}, std::move(c));
  }

  // A link could not attach: what is open is closed (the connection too, if owned), and
  // the handler gets an empty client whose last_error() says why.
  static void fail(const std::shared_ptr<device_client_impl>& self, std::error_code ec,
                   const std::function<void(std::error_code, device_client)>& done) {
    device_client c;
    c.failure_ = self->conn ? self->conn.client().last_error() : std::string{};
    if (c.failure_.empty() && self->conn) {
      c.failure_ = self->conn.last_error();
    }
    if (self->events) {
      self->events.async_close([](std::error_code) {});
    }
    if (self->owns_connection && self->conn) {
      self->conn.async_close([](std::error_code) {});
    }
    done(ec, std::move(c));
  }
};

namespace {

std::error_code code(amqp::errc e) {
  return make_error_code(e);
}

// A settlement on a connection that is lost, or from one before a reconnect: the lock is
// gone either way (the hub delivers the message again), said as invalid_state.
result<void> settled(result<void> r) {
  if (!r && r.error() == make_error_code(amqp::errc::connection_lost)) {
    return code(amqp::errc::invalid_state);
  }
  return r;
}

} // namespace
} // namespace detail

void device_client::async_connect(asio::io_context& io, hub_endpoint endpoint,
                                  device_client_options options,
                                  std::function<void(std::error_code, device_client)> done) {
  if (endpoint.kind != connection_string_kind::device &&
      endpoint.kind != connection_string_kind::module) {
    device_client c;
    c.failure_ = "not a device or module connection string";
    done(make_error_code(errc::invalid_value), std::move(c));
    return;
  }
  if (!endpoint.identity && endpoint.options.auth != hub_auth::x509) {
    device_client c;
    c.failure_ = "the endpoint has no token source and is not X.509";
    done(make_error_code(errc::invalid_value), std::move(c));
    return;
  }
  auto impl = std::make_shared<detail::device_client_impl>();
  impl->owns_connection = true;
  impl->who = {endpoint.parsed.device_id, endpoint.parsed.module_id};
  impl->opts = options;
  std::vector<token_source> ids;
  if (endpoint.identity) {
    ids.push_back(*endpoint.identity);
  }
  hub_connection::async_connect(
      io, std::move(endpoint.options), std::move(ids),
      [impl, done = std::move(done)](std::error_code ec, hub_connection conn) mutable {
        if (ec) {
          device_client c;
          c.failure_ = conn.last_error();
          done(ec, std::move(c));
          return;
        }
        impl->conn = std::move(conn);
        detail::device_client_impl::open_links(impl, std::move(done));
      });
}

void device_client::async_connect(asio::io_context& io, std::string_view connection_string,
                                  hub_protocol protocol, device_client_options options,
                                  std::function<void(std::error_code, device_client)> done) {
  std::string why;
  auto ep = endpoint_from(connection_string, protocol, &why);
  if (!ep) {
    device_client c;
    c.failure_ = "invalid connection string: " + why;
    done(ep.error(), std::move(c));
    return;
  }
  async_connect(io, std::move(*ep), options, std::move(done));
}

void device_client::async_open(hub_connection& connection, device_identity who, token_source token,
                               device_client_options options,
                               std::function<void(std::error_code, device_client)> done) {
  std::string why;
  auto ok = check_device_id(who.device_id, &why);
  if (ok && who.is_module()) {
    ok = check_module_id(who.module_id, &why);
  }
  if (!ok) {
    device_client c;
    c.failure_ = "invalid identity: " + why;
    done(ok.error(), std::move(c));
    return;
  }
  auto impl = std::make_shared<detail::device_client_impl>();
  impl->conn = connection;
  impl->who = std::move(who);
  impl->opts = options;
  connection.async_add_identity(std::move(token),
                                [impl, done = std::move(done)](std::error_code ec) mutable {
                                  if (ec) {
                                    device_client c;
                                    c.failure_ = impl->conn.last_error();
                                    done(ec, std::move(c));
                                    return;
                                  }
                                  detail::device_client_impl::open_links(impl, std::move(done));
                                });
}

void device_client::async_send_event(const amqp::message& message,
                                     std::function<void(std::error_code, event_outcome)> done) {
  if (!impl_ || impl_->closed) {
    done(detail::code(amqp::errc::invalid_state), {});
    return;
  }
  impl_->error.clear();
  std::vector<std::byte> bytes;
  if (auto r = message.encode_append(bytes); !r) {
    const auto why = message.check();
    impl_->error = "message cannot be encoded: " + (why.empty() ? r.error().message() : why);
    done(r.error(), {});
    return;
  }
  if (bytes.size() > hub_max_message_size) {
    impl_->error = "the message is " + std::to_string(bytes.size()) +
                   " bytes encoded, above the hub's link limit of " +
                   std::to_string(hub_max_message_size);
    done(detail::code(amqp::errc::message_size_exceeded), {});
    return;
  }
  impl_->events.async_send(bytes, 0, std::move(done));
}

void device_client::async_send_batch(std::span<const amqp::message> messages,
                                     std::function<void(std::error_code, batch_outcome)> done) {
  if (!impl_ || impl_->closed) {
    done(detail::code(amqp::errc::invalid_state), {});
    return;
  }
  impl_->error.clear();
  if (messages.empty()) {
    impl_->error = "a batch of no messages";
    done(detail::code(amqp::errc::invalid_argument), {});
    return;
  }
  // Pack everything first, so that a message that cannot be encoded fails the call before
  // anything is sent.
  struct transfer {
    std::vector<std::byte> bytes;
    std::uint32_t format = 0;
    std::size_t first = 0;
    std::size_t count = 0;
  };
  std::vector<transfer> transfers;
  const auto& limits = impl_->opts.batch;
  for (std::size_t i = 0; i < messages.size();) {
    transfer t;
    t.first = i;
    amqp::message envelope;
    std::string why;
    auto packed =
        build_batch(messages.subspan(i), limits.max_bytes, envelope, limits.max_messages, &why);
    if (packed) {
      if (auto r = envelope.encode_append(t.bytes); !r) {
        impl_->error = "batch cannot be encoded: " + envelope.check();
        done(detail::code(amqp::errc::invalid_argument), {});
        return;
      }
      t.format = batch_message_format;
      t.count = *packed;
    } else if (packed.error() == make_error_code(errc::limit_exceeded) && limits.max_messages > 0) {
      // Too large for an envelope: alone as a plain message (the hub rejects it if it is
      // above its limit, with its own condition).
      if (auto r = messages[i].encode_append(t.bytes); !r) {
        const auto w = messages[i].check();
        impl_->error = "message " + std::to_string(i) + " cannot be encoded: " + w;
        done(detail::code(amqp::errc::invalid_argument), {});
        return;
      }
      if (t.bytes.size() > hub_max_message_size) {
        impl_->error = "message " + std::to_string(i) + " is " + std::to_string(t.bytes.size()) +
                       " bytes encoded, above the hub's link limit of " +
                       std::to_string(hub_max_message_size);
        done(detail::code(amqp::errc::message_size_exceeded), {});
        return;
      }
      t.count = 1;
    } else {
      impl_->error = "batch: " + why;
      done(detail::code(amqp::errc::invalid_argument), {});
      return;
    }
    i += t.count;
    transfers.push_back(std::move(t));
  }

  struct state {
    batch_outcome result;
    std::size_t waiting = 0;
    std::error_code error;
    std::function<void(std::error_code, batch_outcome)> done;
  };
  auto st = std::make_shared<state>();
  st->result.outcomes.resize(messages.size());
  st->waiting = transfers.size();
  st->done = std::move(done);
  for (const auto& t : transfers) {
    st->result.transfers.push_back(t.count);
  }
  for (auto& t : transfers) {
    impl_->events.async_send(
        t.bytes, t.format,
        [st, first = t.first, count = t.count](std::error_code ec, const event_outcome& o) {
          if (ec && !st->error) {
            st->error = ec;
          }
          if (!ec) {
            std::fill_n(st->result.outcomes.begin() + static_cast<std::ptrdiff_t>(first), count, o);
          }
          if (--st->waiting == 0) {
            auto d = std::move(st->done);
            d(st->error, std::move(st->result));
          }
        });
  }
}

void device_client::async_receive(std::function<void(std::error_code, c2d_message)> done) {
  if (!impl_ || impl_->closed || !impl_->c2d) {
    done(detail::code(amqp::errc::invalid_state), {});
    return;
  }
  impl_->c2d.async_receive(std::move(done));
}

void device_client::on_c2d_message(std::function<void(std::error_code, c2d_message)> f) {
  if (!impl_ || impl_->closed || !impl_->c2d) {
    if (f) {
      f(detail::code(amqp::errc::invalid_state), {});
    }
    return;
  }
  impl_->on_c2d = std::move(f);
  if (impl_->on_c2d && !impl_->c2d_loop) {
    detail::device_client_impl::receive_loop(impl_);
  }
}

result<void> device_client::complete(const c2d_message& m) {
  if (!impl_ || impl_->closed || !impl_->c2d) {
    return detail::code(amqp::errc::invalid_state);
  }
  return detail::settled(impl_->c2d.accept(m));
}

result<void> device_client::reject(const c2d_message& m) {
  if (!impl_ || impl_->closed || !impl_->c2d) {
    return detail::code(amqp::errc::invalid_state);
  }
  return detail::settled(impl_->c2d.reject(m));
}

result<void> device_client::abandon(const c2d_message& m) {
  if (!impl_ || impl_->closed || !impl_->c2d) {
    return detail::code(amqp::errc::invalid_state);
  }
  return detail::settled(impl_->c2d.release(m));
}

void device_client::async_close(std::function<void(std::error_code)> done) {
  if (!impl_ || impl_->closed) {
    done(detail::code(amqp::errc::invalid_state));
    return;
  }
  auto self = impl_;
  self->closed = true;
  self->on_c2d = nullptr;
  struct state {
    int waiting = 0;
    std::error_code error;
    std::function<void(std::error_code)> done;
  };
  auto st = std::make_shared<state>();
  st->done = std::move(done);
  // The links' closes, then the owned connection's.
  auto links_done = [self, st](std::error_code ec) {
    if (ec && !st->error) {
      st->error = ec;
    }
    if (--st->waiting > 0) {
      return;
    }
    if (self->owns_connection && self->conn) {
      self->conn.async_close([self, st](std::error_code ec2) {
        auto d = std::move(st->done);
        d(ec2 ? ec2 : st->error);
      });
      return;
    }
    auto d = std::move(st->done);
    d(st->error);
  };
  st->waiting = 1 + (self->c2d ? 1 : 0);
  if (self->c2d) {
    self->c2d.async_close(links_done);
  }
  self->events.async_close(links_done);
}

const device_identity& device_client::identity() const noexcept {
  static const device_identity none;
  return impl_ ? impl_->who : none;
}

hub_connection& device_client::connection() noexcept {
  static hub_connection none;
  return impl_ ? impl_->conn : none;
}

std::string device_client::last_error() const {
  if (!impl_) {
    return failure_;
  }
  if (!impl_->error.empty()) {
    return impl_->error;
  }
  auto e = impl_->conn.client().last_error();
  return e.empty() ? impl_->conn.last_error() : e;
}

} // namespace amqp::iothub
