// The listener (listener.hpp): accepts sockets, runs TLS and WebSocket handshakes, and puts
// each connection's engine on a driver.
#include "amqp/transport/listener.hpp"

#include <chrono>
#include <unordered_map>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

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

  impl(asio::io_context& io, server_handler& hd) : acceptor(io), handler(hd) {}
  ~impl() {
    // Connections whose close is not reported yet (a read or write still in flight) must not
    // call back into a listener that is gone.
    for (auto& [h, c] : conns) {
      c->driver->detach_owner();
    }
  }
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  asio::ip::tcp::acceptor acceptor;
  server_handler& handler;
  listener_options opts;
  std::shared_ptr<asio::ssl::context> tls;
  bool websocket = false;
  bool closed_ = false;
  std::unordered_map<server_handler::handle, std::unique_ptr<connection>> conns;
  std::uint64_t accepted = 0;

  void accept() {
    acceptor.async_accept([self = shared_from_this()](std::error_code ec, asio::ip::tcp::socket s) {
      if (self->closed_ || ec == asio::error::operation_aborted) {
        return;
      }
      if (!ec) {
        self->on_socket(std::move(s));
      }
      self->accept();
    });
  }

  void on_socket(asio::ip::tcp::socket s) {
    if (conns.size() >= opts.max_connections) {
      std::error_code ignored;
      s.close(ignored);
      return;
    }
    if (tls) {
      detail::async_tls_handshake(
          tls, std::move(s), true, {}, false,
          [self = shared_from_this()](std::error_code ec, std::shared_ptr<detail::byte_stream> st) {
            if (!ec && !self->closed_) {
              self->on_secure(std::move(st));
            }
          });
      return;
    }
    on_secure(detail::make_tcp_stream(std::move(s)));
  }

  void on_secure(std::shared_ptr<detail::byte_stream> st) {
    if (websocket) {
      detail::async_websocket_server(
          std::move(st), opts.websocket_paths,
          [self = shared_from_this()](std::error_code ec, std::shared_ptr<detail::byte_stream> ws) {
            if (!ec && !self->closed_) {
              self->start(std::move(ws));
            }
          });
      return;
    }
    start(std::move(st));
  }

  void start(std::shared_ptr<detail::byte_stream> st) {
    const accepted_peer peer{st->peer(), st->peer_certificate_subject()};
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
  }

  void activity(server_handler::handle h) {
    handler.process(h, std::chrono::steady_clock::now());
    write_dirty(h); // h's own driver kicks itself after this call
  }

  // Routing may have queued output on other connections: write it.
  void write_dirty(server_handler::handle except) {
    for (const auto other : handler.take_dirty()) {
      if (auto it = conns.find(other); other != except && it != conns.end()) {
        it->second->driver->kick();
      }
    }
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
    write_dirty(h); // h is gone: requeued messages may go to the others
  }

  void close_all() {
    closed_ = true;
    std::error_code ignored;
    acceptor.close(ignored);
    std::vector<std::shared_ptr<detail::engine_driver>> drivers;
    for (auto& [h, c] : conns) {
      drivers.push_back(c->driver);
    }
    for (auto& d : drivers) {
      d->abort();
    }
  }
};

listener::~listener() {
  close();
}
listener::listener(listener&&) noexcept = default;
listener& listener::operator=(listener&& o) noexcept {
  if (this != &o) {
    close();
    impl_ = std::move(o.impl_);
  }
  return *this;
}

result<listener> listener::listen(asio::io_context& io, std::string_view url_text,
                                  listener_options options, server_handler& handler,
                                  std::string* why) {
  auto u = parse_url(url_text);
  if (!u) {
    if (why != nullptr) {
      *why = "bad URL";
    }
    return u.error();
  }
  auto im = std::make_shared<impl>(io, handler);
  im->opts = std::move(options);
  if (trace_from_environment()) {
    im->opts.trace = true;
  }
  im->websocket = u->websocket();
  if (u->tls()) {
    std::string reason;
    auto ctx = detail::make_tls_context(im->opts.tls, true, reason);
    if (!ctx) {
      if (why != nullptr) {
        *why = reason;
      }
      return ctx.error();
    }
    im->tls = std::move(*ctx);
  }
  std::error_code ec;
  const auto address = asio::ip::make_address(u->host.empty() ? "127.0.0.1" : u->host, ec);
  if (ec) {
    if (why != nullptr) {
      *why = "listen on an IP address: " + u->host;
    }
    return errc::invalid_argument;
  }
  const asio::ip::tcp::endpoint ep(address, u->port);
  im->acceptor.open(ep.protocol(), ec);
  if (!ec) {
    im->acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
    im->acceptor.bind(ep, ec);
  }
  if (!ec) {
    im->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    if (why != nullptr) {
      *why = ec.message();
    }
    return ec;
  }
  im->accept();
  listener l;
  l.impl_ = std::move(im);
  return l;
}

std::uint16_t listener::port() const noexcept {
  if (!impl_) {
    return 0;
  }
  std::error_code ec;
  return impl_->acceptor.local_endpoint(ec).port();
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
