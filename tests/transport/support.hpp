// Test support for the transport: the in-memory broker on a listener in a thread of its own,
// a fault-injecting TCP proxy, and message helpers.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

#include "amqp/broker.hpp"
#include "amqp/message.hpp"
#include "amqp/transport/client.hpp"
#include "amqp/transport/listener.hpp"
#include "broker_handler.hpp"
#include "support/raw_node.hpp"

namespace amqp::test {

inline std::string cert_dir() {
  return std::string(AMQP_TEST_DATA_DIR) + "/transport/certs/";
}

// A client trusting the test CA (`ca`, a file of cert_dir()).
inline transport::client_options tls_client(const std::string& ca = "ca.pem") {
  transport::client_options o;
  o.tls.ca_file = cert_dir() + ca;
  return o;
}

// A listener with the test server certificate (localhost, 127.0.0.1).
inline transport::listener_options tls_listener() {
  transport::listener_options lo;
  lo.tls.cert_file = cert_dir() + "server.pem";
  lo.tls.key_file = cert_dir() + "server.key";
  return lo;
}

// `handler` behind a plain listener on 127.0.0.1, served by a thread of its own until
// destroyed.
class serving {
public:
  explicit serving(transport::server_handler& handler) {
    std::string why;
    auto l = transport::listener::listen(io_, "amqp://127.0.0.1:0", {}, handler, &why);
    if (!l) {
      throw std::runtime_error("listen: " + why);
    }
    listener_.emplace(std::move(*l));
    thread_ = std::thread([this] { io_.run(); });
  }
  ~serving() {
    asio::post(io_, [this] { listener_->close(); });
    work_.reset();
    thread_.join();
  }
  serving(const serving&) = delete;
  serving& operator=(const serving&) = delete;

  [[nodiscard]] std::string url() const { return "amqp://127.0.0.1:" + std::to_string(port()); }
  [[nodiscard]] std::uint16_t port() const { return listener_->port(); }

private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::optional<transport::listener> listener_;
  std::thread thread_;
};

// The broker behind listener(s), served by one thread.
class broker_server {
public:
  explicit broker_server(broker::broker_options bo = {}) : broker_(std::move(bo)) {}
  ~broker_server() { stop(); }

  // Listens on `url` (port 0); returns the port. Call before start().
  std::uint16_t listen(const std::string& url, transport::listener_options lo = {}) {
    std::string why;
    auto l = transport::listener::listen(io_, url, std::move(lo), handler_, &why);
    if (!l) {
      throw std::runtime_error("listen " + url + ": " + why);
    }
    const auto port = l->port();
    listeners_.push_back(std::move(*l));
    return port;
  }
  void start() {
    thread_ = std::thread([this] { io_.run(); });
  }
  void stop() {
    if (!thread_.joinable()) {
      return;
    }
    asio::post(io_, [this] {
      for (auto& l : listeners_) {
        l.close();
      }
    });
    work_.reset();
    thread_.join();
  }
  // Runs `f` on the broker's thread (its state is single-threaded).
  template <typename F> auto on_thread(F f) -> decltype(f(std::declval<broker::broker&>())) {
    std::promise<decltype(f(broker_))> p;
    asio::post(io_, [&] { p.set_value(f(broker_)); });
    return p.get_future().get();
  }
  std::size_t depth(const std::string& address) {
    return on_thread([&](broker::broker& b) { return b.queue_depth(address); });
  }

private:
  broker::broker broker_;
  cli::broker_handler handler_{broker_};
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::vector<transport::listener> listeners_;
  std::thread thread_;
};

// A TCP proxy on 127.0.0.1 in front of `target_port`, in a thread of its own, that can cut
// every connection (both sockets closed at once) or stall them (stop forwarding, keep the
// sockets open: a silent peer).
class fault_proxy {
public:
  explicit fault_proxy(std::uint16_t target_port)
      : target_(asio::ip::make_address("127.0.0.1"), target_port),
        acceptor_(io_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~fault_proxy() {
    asio::post(io_, [this] {
      std::error_code ec;
      acceptor_.close(ec);
      cut_now();
    });
    work_.reset();
    io_.stop();
    thread_.join();
  }
  [[nodiscard]] std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  // Closes every proxied connection.
  void cut() {
    std::promise<void> p;
    asio::post(io_, [&] {
      cut_now();
      p.set_value();
    });
    p.get_future().get();
  }
  // Stops (or resumes) forwarding; the sockets stay open.
  void stall(bool on) { stalled_ = on; }
  [[nodiscard]] std::size_t accepted() const { return accepted_; }

private:
  struct pipe {
    asio::ip::tcp::socket a;
    asio::ip::tcp::socket b;
    std::array<char, 16384> ab{};
    std::array<char, 16384> ba{};
    explicit pipe(asio::io_context& io) : a(io), b(io) {}
  };
  void accept() {
    acceptor_.async_accept([this](std::error_code ec, asio::ip::tcp::socket s) {
      if (ec) {
        return;
      }
      ++accepted_;
      auto p = std::make_shared<pipe>(io_);
      p->a = std::move(s);
      pipes_.push_back(p);
      p->b.async_connect(target_, [this, p](std::error_code e) {
        if (e) {
          close(*p);
          return;
        }
        forward(p, p->a, p->b, p->ab);
        forward(p, p->b, p->a, p->ba);
      });
      accept();
    });
  }
  void forward(const std::shared_ptr<pipe>& p, asio::ip::tcp::socket& from,
               asio::ip::tcp::socket& to, std::array<char, 16384>& buf) {
    from.async_read_some(
        asio::buffer(buf), [this, p, &from, &to, &buf](std::error_code ec, std::size_t n) {
          if (ec) {
            close(*p);
            return;
          }
          if (stalled_) {
            // Swallow: the peer sees silence.
            forward(p, from, to, buf);
            return;
          }
          asio::async_write(to, asio::buffer(buf.data(), n),
                            [this, p, &from, &to, &buf](std::error_code e, std::size_t) {
                              if (e) {
                                close(*p);
                                return;
                              }
                              forward(p, from, to, buf);
                            });
        });
  }
  static void close(pipe& p) {
    std::error_code ec;
    p.a.close(ec);
    p.b.close(ec);
  }
  void cut_now() {
    for (auto& p : pipes_) {
      close(*p);
    }
    pipes_.clear();
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  asio::ip::tcp::endpoint target_;
  asio::ip::tcp::acceptor acceptor_;
  std::vector<std::shared_ptr<pipe>> pipes_;
  std::atomic<bool> stalled_{false};
  std::atomic<std::size_t> accepted_{0};
  std::thread thread_;
};

// An encoded message: message-id `id` (string), a data body of `size` bytes ('A' + i % 26).
inline std::vector<std::byte> make_message(const std::string& id, std::size_t size = 16) {
  std::vector<std::byte> body(size);
  for (std::size_t i = 0; i < size; ++i) {
    body[i] = static_cast<std::byte>('A' + i % 26);
  }
  message_parts m;
  m.properties = properties{};
  m.properties->message_id = value(std::string_view(id));
  const value sections[1] = {value(binary_view(body))};
  m.body = body_kind::data;
  m.body_sections = sections;
  std::vector<std::byte> out;
  (void)encode_append(m, out);
  return out;
}

// The message-id of an encoded message, as a string ("" if none).
inline std::string message_id(std::span<const std::byte> bytes) {
  auto v = decode_message(bytes);
  if (!v || !v->properties) {
    return {};
  }
  auto s = v->properties->message_id.get_string();
  return s ? std::string(*s) : std::string();
}

} // namespace amqp::test
