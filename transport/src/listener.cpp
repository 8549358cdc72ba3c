// The listener (listener.hpp): accepts sockets, runs TLS and WebSocket handshakes, and puts
// each connection's engine on a driver.
#include "amqp/transport/listener.hpp"

#include <chrono>
#include <optional>
#include <unordered_map>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "amqp/error.hpp"
#include "amqp/transport/url.hpp"
#include "driver.hpp"
#include "stream.hpp"
#include "trace_hook.hpp"
#include "ws_stream.hpp"

namespace amqp::transport {

struct listener::impl : std::enable_shared_from_this<listener::impl> {
  struct connection final : detail::engine_driver::owner {
    impl* owner = nullptr;
    server_handler::handle h = 0;
    std::shared_ptr<detail::engine_driver> driver;

    void on_engine_activity() override { owner->activity(h); }
    void on_output_written() override { owner->handler.on_output_written(h); }
    void on_stream_closed(std::error_code) override { owner->closed(h); }
  };

  // One socket listened on: its acceptor and what its connections run over.
  struct endpoint {
    explicit endpoint(asio::io_context& io) : acceptor(io) {}
    asio::ip::tcp::acceptor acceptor;
    std::shared_ptr<asio::ssl::context> tls;
    bool websocket = false;
    std::uint16_t port = 0;
  };

  impl(asio::io_context& i, server_handler& hd) : io(i), handler(hd), timer(i) {}
  ~impl() {
    // Connections whose close is not reported yet (a read or write still in flight) must not
    // call back into a listener that is gone.
    for (auto& [h, c] : conns) {
      c->driver->detach_owner();
    }
  }
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  asio::io_context& io;
  server_handler& handler;
  listener_options opts;
  std::vector<std::unique_ptr<endpoint>> endpoints;
  bool closed_ = false;
  std::unordered_map<server_handler::handle, std::unique_ptr<connection>> conns;
  std::uint64_t accepted = 0;
  // The handler's timer: armed on handler.next_deadline(); `armed` is the time it waits for.
  asio::steady_timer timer;
  std::optional<time_point> armed;

  result<std::uint16_t> add(std::string_view url_text, std::string* why) {
    auto u = parse_url(url_text);
    if (!u) {
      if (why != nullptr) {
        *why = "bad URL";
      }
      return u.error();
    }
    auto ep = std::make_unique<endpoint>(io);
    ep->websocket = u->websocket();
    if (u->tls()) {
      std::string reason;
      auto ctx = detail::make_tls_context(opts.tls, true, reason);
      if (!ctx) {
        if (why != nullptr) {
          *why = reason;
        }
        return ctx.error();
      }
      ep->tls = std::move(*ctx);
    }
    std::error_code ec;
    const auto address = asio::ip::make_address(u->host.empty() ? "127.0.0.1" : u->host, ec);
    if (ec) {
      if (why != nullptr) {
        *why = "listen on an IP address: " + u->host;
      }
      return errc::invalid_argument;
    }
    const asio::ip::tcp::endpoint where(address, u->port);
    ep->acceptor.open(where.protocol(), ec);
    if (!ec) {
      ep->acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
      ep->acceptor.bind(where, ec);
    }
    if (!ec) {
      ep->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (!ec) {
      ep->port = ep->acceptor.local_endpoint(ec).port();
    }
    if (ec) {
      if (why != nullptr) {
        *why = ec.message();
      }
      return ec;
    }
    auto* raw = ep.get();
    endpoints.push_back(std::move(ep));
    accept(*raw);
    return raw->port;
  }

  void accept(endpoint& ep) {
    ep.acceptor.async_accept(
        [self = shared_from_this(), &ep](std::error_code ec, asio::ip::tcp::socket s) {
          if (self->closed_ || ec == asio::error::operation_aborted) {
            return;
          }
          if (!ec) {
            self->on_socket(ep, std::move(s));
          }
          self->accept(ep);
        });
  }

  void on_socket(endpoint& ep, asio::ip::tcp::socket s) {
    if (conns.size() >= opts.max_connections) {
      std::error_code ignored;
      s.close(ignored);
      return;
    }
    const bool websocket = ep.websocket;
    const std::uint16_t port = ep.port;
    if (ep.tls) {
      detail::async_tls_handshake(ep.tls, std::move(s), true, {}, false,
                                  [self = shared_from_this(), websocket, port](
                                      std::error_code ec, std::shared_ptr<detail::byte_stream> st) {
                                    if (!ec && !self->closed_) {
                                      self->on_secure(websocket, port, std::move(st));
                                    }
                                  });
      return;
    }
    on_secure(websocket, port, detail::make_tcp_stream(std::move(s)));
  }

  void on_secure(bool websocket, std::uint16_t port, std::shared_ptr<detail::byte_stream> st) {
    if (websocket) {
      detail::async_websocket_server(
          std::move(st), opts.websocket_paths,
          [self = shared_from_this(), port](std::error_code ec,
                                            std::shared_ptr<detail::byte_stream> ws) {
            if (!ec && !self->closed_) {
              self->start(port, std::move(ws));
            }
          });
      return;
    }
    start(port, std::move(st));
  }

  void start(std::uint16_t port, std::shared_ptr<detail::byte_stream> st) {
    accepted_peer peer;
    peer.address = st->peer();
    peer.certificate_subject = st->peer_certificate_subject();
    peer.tls = st->tls();
    peer.server_name = st->tls_server_name();
    peer.websocket_path = st->websocket_path();
    peer.local_port = port;
    const auto h = handler.on_accept(std::chrono::steady_clock::now(), peer);
    auto* engine = handler.engine(h);
    if (engine == nullptr) {
      st->close();
      return;
    }
    auto c = std::make_unique<connection>();
    c->owner = this;
    c->h = h;
    ++accepted;
    c->driver = std::make_shared<detail::engine_driver>(
        std::move(st), *engine, *c,
        opts.trace ? detail::make_trace_hook("server", accepted)
                   : detail::engine_driver::trace_hook{});
    auto* raw = c.get();
    conns.emplace(h, std::move(c));
    raw->driver->start();
    after_handler(h);
  }

  void activity(server_handler::handle h) {
    handler.process(h, std::chrono::steady_clock::now());
    after_handler(h); // h's own driver kicks itself after this call
  }

  // After any call into the handler: write what it routed to other connections, drop the
  // connections it aborted, and follow its next deadline.
  void after_handler(server_handler::handle except) {
    for (const auto other : handler.take_dirty()) {
      if (auto it = conns.find(other); other != except && it != conns.end()) {
        it->second->driver->kick();
      }
    }
    for (const auto gone : handler.take_aborted()) {
      if (auto it = conns.find(gone); it != conns.end()) {
        // No close frame: the stream is closed now; on_stream_closed() reports it.
        it->second->driver->abort();
      }
    }
    arm_timer();
  }

  void arm_timer() {
    if (closed_) {
      return;
    }
    const auto next = handler.next_deadline();
    if (next == armed) {
      return;
    }
    armed = next;
    if (!next) {
      timer.cancel();
      return;
    }
    timer.expires_at(*next); // cancels the wait in progress, if any
    timer.async_wait([self = shared_from_this(), at = *next](std::error_code ec) {
      if (ec || self->closed_ || self->armed != at) {
        return; // re-armed or cancelled
      }
      self->armed.reset();
      self->handler.on_deadline(std::chrono::steady_clock::now());
      self->after_handler(0);
    });
  }

  void closed(server_handler::handle h) {
    auto it = conns.find(h);
    if (it == conns.end()) {
      return;
    }
    // The driver may still be running its own completion: keep it alive until then.
    auto keep = std::move(it->second);
    conns.erase(it);
    handler.on_closed(h);
    after_handler(h); // h is gone: requeued messages may go to the others
  }

  void close_all() {
    closed_ = true;
    std::error_code ignored;
    for (auto& ep : endpoints) {
      ep->acceptor.close(ignored);
    }
    timer.cancel();
    std::vector<std::shared_ptr<detail::engine_driver>> drivers;
    for (auto& [h, c] : conns) {
      drivers.push_back(c->driver);
    }
    for (auto& d : drivers) {
      d->abort();
    }
  }
};

// A failure inside close() (an allocation) leaves nothing to recover: std::terminate, which a
// noexcept function gives, is the right end.
listener::~listener() { // NOLINT(bugprone-exception-escape)
  close();
}
listener::listener(listener&&) noexcept = default;
listener& listener::operator=(listener&& o) noexcept { // NOLINT(bugprone-exception-escape)
  if (this != &o) {
    close();
    impl_ = std::move(o.impl_);
  }
  return *this;
}

result<listener> listener::listen(asio::io_context& io, std::string_view url,
                                  listener_options options, server_handler& handler,
                                  std::string* why) {
  auto im = std::make_shared<impl>(io, handler);
  im->opts = std::move(options);
  if (trace_from_environment()) {
    im->opts.trace = true;
  }
  if (auto p = im->add(url, why); !p) {
    return p.error();
  }
  im->arm_timer(); // the handler may have timers before any connection
  listener l;
  l.impl_ = std::move(im);
  return l;
}

result<std::uint16_t> listener::add(std::string_view url, std::string* why) {
  if (!impl_) {
    if (why != nullptr) {
      *why = "the listener is closed";
    }
    return errc::invalid_state;
  }
  return impl_->add(url, why);
}

std::uint16_t listener::port() const noexcept {
  if (!impl_) {
    return 0;
  }
  return impl_->endpoints.empty() ? 0 : impl_->endpoints.front()->port;
}

void listener::refresh_deadline() {
  if (impl_) {
    impl_->arm_timer();
  }
}

void listener::close() {
  if (impl_) {
    impl_->close_all();
    impl_.reset();
  }
}

std::size_t listener::connections() const noexcept {
  return impl_ ? impl_->conns.size() : 0;
}

} // namespace amqp::transport
