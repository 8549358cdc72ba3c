// The public handles of the asynchronous client (client.hpp): client, sender, receiver,
// requester. Each forwards to the client's state (client_impl.hpp) on the caller's thread,
// which must be the io_context's.
#include <algorithm>

#include <asio/post.hpp>

#include "amqp/error.hpp"
#include "client_impl.hpp"

namespace amqp::transport {

void client::async_connect(asio::io_context& io, std::string_view url_text, client_options options,
                           std::function<void(std::error_code, client)> done) {
  std::string why;
  auto u = parse_url(url_text, &why);
  if (!u) {
    client failed;
    failed.failure_ = "invalid URL: " + why;
    asio::post(io, [done = std::move(done), ec = u.error(), failed = std::move(failed)] {
      done(ec, failed);
    });
    return;
  }
  auto impl = std::make_shared<detail::client_impl>(io, std::move(*u), std::move(options));
  asio::post(io, [impl, done = std::move(done)]() mutable {
    impl->connect([impl, done = std::move(done)](std::error_code ec) {
      client c;
      if (!ec) {
        c.impl_ = impl;
      } else {
        c.failure_ = impl->last_error.empty() ? ec.message() : impl->last_error;
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
  if (!impl_) {
    done(make_error_code(errc::invalid_state), {});
    return;
  }
  auto l = new_link(impl_, true, address, options.name);
  l->sopts = std::move(options);
  on_attached(l, std::move(done));
  impl_->open_link(l);
}

void client::async_open_receiver(std::string_view address, receiver_options options,
                                 std::function<void(std::error_code, receiver)> done) {
  if (!impl_) {
    done(make_error_code(errc::invalid_state), {});
    return;
  }
  auto l = new_link(impl_, false, address, options.name);
  l->ropts = std::move(options);
  on_attached(l, std::move(done));
  impl_->open_link(l);
}

void client::async_open_requester(std::string_view address, requester_options options,
                                  std::function<void(std::error_code, requester)> done) {
  if (!impl_) {
    done(make_error_code(errc::invalid_state), {});
    return;
  }
  auto q = std::make_shared<detail::requester_impl>();
  q->client = impl_;
  q->address = std::string(address);
  q->name = options.name.empty() ? impl_->next_link_name(false) : options.name;
  q->reply_to = options.reply_to.empty() ? q->name + "-reply" : options.reply_to;
  q->opts = std::move(options);
  q->attach_done = [q, done = std::move(done)](std::error_code ec) {
    requester r;
    if (!ec) {
      r.impl_ = q;
    }
    done(ec, std::move(r));
  };
  impl_->open_requester(q);
}

void requester::start(std::vector<std::byte> bytes, std::chrono::milliseconds timeout,
                      std::function<void(std::error_code, received_message)> done) {
  auto c = impl_ ? impl_->client.lock() : nullptr;
  if (!c || impl_->closed || impl_->closing) {
    done(make_error_code(errc::invalid_state), {});
    return;
  }
  if (impl_->queue.size() + impl_->sent.size() >= impl_->opts.max_pending) {
    done(make_error_code(errc::resource_limit), {});
    return;
  }
  c->request(impl_, std::move(bytes), timeout, std::move(done));
}

void requester::request_message(const amqp::message& request, std::chrono::milliseconds timeout,
                                std::function<void(std::error_code, received_message)> done) {
  auto c = impl_ ? impl_->client.lock() : nullptr;
  std::vector<std::byte> bytes;
  if (c && !impl_->closed && !impl_->closing) {
    if (auto r = request.encode_append(bytes); !r) {
      const auto why = request.check();
      c->last_error = "request cannot be encoded: " + (why.empty() ? r.error().message() : why);
      done(r.error(), {});
      return;
    }
  }
  start(std::move(bytes), timeout, std::move(done));
}

void requester::request_bytes(std::span<const std::byte> request, std::chrono::milliseconds timeout,
                              std::function<void(std::error_code, received_message)> done) {
  auto c = impl_ ? impl_->client.lock() : nullptr;
  if (c && !impl_->closed && !impl_->closing) {
    if (auto v = decode_message(request); !v) {
      c->last_error = "request is not a valid message: " + v.error().message();
      done(make_error_code(errc::invalid_argument), {});
      return;
    }
  }
  start(std::vector<std::byte>(request.begin(), request.end()), timeout, std::move(done));
}

void requester::async_request(const amqp::message& request,
                              std::function<void(std::error_code, received_message)> done) {
  request_message(request, impl_ ? impl_->opts.timeout : std::chrono::milliseconds{0},
                  std::move(done));
}

void requester::async_request(std::span<const std::byte> request,
                              std::function<void(std::error_code, received_message)> done) {
  request_bytes(request, impl_ ? impl_->opts.timeout : std::chrono::milliseconds{0},
                std::move(done));
}

void requester::async_close(std::function<void(std::error_code)> done) {
  auto c = impl_ ? impl_->client.lock() : nullptr;
  if (!impl_) {
    done(make_error_code(errc::invalid_state));
    return;
  }
  if (!c || impl_->closed) {
    done({});
    return;
  }
  if (impl_->closing) {
    done(make_error_code(errc::invalid_state)); // a close is under way
    return;
  }
  impl_->close_done = std::move(done);
  c->close_requester(impl_);
}

void client::async_close(std::function<void(std::error_code)> done) {
  if (!impl_) {
    done(make_error_code(errc::invalid_state));
    return;
  }
  impl_->close(std::move(done));
}

std::string client::last_error() const {
  return impl_ ? impl_->last_error : failure_;
}
std::uint64_t client::reconnects() const noexcept {
  return impl_ ? impl_->reconnects : 0;
}
std::uint64_t client::relinks() const noexcept {
  return impl_ ? impl_->relinks : 0;
}
std::uint64_t client::writes() const noexcept {
  return impl_ ? impl_->writes() : 0;
}

namespace {

// The client of a sender that can take a send now, or the error to fail it with.
result<std::shared_ptr<detail::client_impl>> sendable(const std::shared_ptr<detail::link_impl>& l) {
  auto c = l ? l->client.lock() : nullptr;
  if (!c || l->closed || l->closing) {
    return errc::invalid_state;
  }
  if (l->queue.size() + l->unsettled.size() >= l->sopts.max_in_flight) {
    return errc::resource_limit;
  }
  return c;
}

} // namespace

void sender::async_send(std::span<const std::byte> message,
                        std::function<void(std::error_code, delivery_outcome)> done) {
  async_send(message, 0, std::move(done));
}

void sender::async_send(std::span<const std::byte> message, std::uint32_t message_format,
                        std::function<void(std::error_code, delivery_outcome)> done) {
  auto c = sendable(impl_);
  if (!c) {
    done(c.error(), {});
    return;
  }
  detail::pending_send p;
  p.bytes.assign(message.begin(), message.end());
  p.message_format = message_format;
  p.done = std::move(done);
  impl_->queue.push_back(std::move(p));
  (*c)->pump(*impl_);
}

void sender::async_send(const amqp::message& message,
                        std::function<void(std::error_code, delivery_outcome)> done) {
  auto c = sendable(impl_);
  if (!c) {
    done(c.error(), {});
    return;
  }
  detail::pending_send p;
  if (auto r = message.encode_append(p.bytes); !r) {
    const auto why = message.check();
    (*c)->last_error = "message cannot be encoded: " + (why.empty() ? r.error().message() : why);
    done(r.error(), {});
    return;
  }
  p.done = std::move(done);
  impl_->queue.push_back(std::move(p));
  (*c)->pump(*impl_);
}

void sender::async_close(std::function<void(std::error_code)> done) {
  if (!impl_) {
    done(make_error_code(errc::invalid_state));
    return;
  }
  auto c = impl_->client.lock();
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

result<void> receiver::settle(const received_message& m, state_kind outcome,
                              std::string_view condition, std::string_view description, bool failed,
                              bool undeliverable) {
  auto c = impl_ ? impl_->client.lock() : nullptr;
  if (!c) {
    return errc::invalid_state;
  }
  delivery_state state = accepted{};
  if (outcome == state_kind::rejected) {
    rejected r;
    if (!condition.empty()) {
      r.error = amqp::error{symbol_view{condition},
                            description.empty() ? std::optional<std::string_view>{}
                                                : std::optional{description},
                            {}};
    }
    state = r;
  } else if (outcome == state_kind::released) {
    state = released{};
  } else if (outcome == state_kind::modified) {
    modified mo;
    mo.delivery_failed = failed;
    mo.undeliverable_here = undeliverable;
    state = mo;
  }
  return c->settle(*impl_, m, state);
}

result<void> receiver::accept(const received_message& m) {
  return settle(m, state_kind::accepted, {}, {}, false, false);
}
result<void> receiver::reject(const received_message& m, std::string_view condition,
                              std::string_view description) {
  return settle(m, state_kind::rejected, condition, description, false, false);
}
result<void> receiver::release(const received_message& m) {
  return settle(m, state_kind::released, {}, {}, false, false);
}
result<void> receiver::modify(const received_message& m, bool delivery_failed,
                              bool undeliverable_here) {
  return settle(m, state_kind::modified, {}, {}, delivery_failed, undeliverable_here);
}

void receiver::set_credit(std::uint32_t credit) {
  if (auto c = impl_ ? impl_->client.lock() : nullptr) {
    c->set_credit(*impl_, credit);
  }
}

void receiver::set_filters(std::vector<source_filter> filters) {
  if (impl_) {
    impl_->ropts.filters = std::move(filters);
  }
}

std::optional<link_error> receiver::remote_error() const {
  return impl_ ? impl_->remote_error : std::nullopt;
}

void receiver::async_close(std::function<void(std::error_code)> done) {
  if (!impl_) {
    done(make_error_code(errc::invalid_state));
    return;
  }
  auto c = impl_->client.lock();
  if (!c || impl_->closed) {
    done({});
    return;
  }
  impl_->close_done = std::move(done);
  c->close_link(impl_);
}

// ---- received_message ----------------------------------------------------------------------

const amqp::message& received_message::decoded() const {
  if (!decoded_) {
    auto m = amqp::message::decode(bytes_);
    if (m) {
      decoded_ = std::make_shared<const amqp::message>(std::move(*m));
    } else {
      decode_error_ = m.error();
      decoded_ = std::make_shared<const amqp::message>();
    }
  }
  return *decoded_;
}

result<amqp::message> received_message::message() const {
  const auto& m = decoded();
  if (decode_error_) {
    return decode_error_;
  }
  return m;
}

std::optional<std::string> received_message::body_text() const {
  return decoded().body_text();
}
std::optional<std::vector<std::byte>> received_message::body_bytes() const {
  return decoded().body_bytes();
}
const std::optional<amqp::header>& received_message::header() const {
  return decoded().header;
}
const value_map& received_message::delivery_annotations() const {
  return decoded().delivery_annotations;
}
const value_map& received_message::message_annotations() const {
  return decoded().message_annotations;
}
const message_properties& received_message::properties() const {
  return decoded().properties;
}
const value_map& received_message::application_properties() const {
  return decoded().application_properties;
}
const value_map& received_message::footer() const {
  return decoded().footer;
}

} // namespace amqp::transport
