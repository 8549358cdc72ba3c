// bench_idle_tls: the memory an idle, authenticated TLS connection holds in our transport,
// server side and client side, each in a process of its own.
//
// The server process: an amqps:// listener on 127.0.0.1 (the test certificate of
// tests/transport/certs) serving the in-memory broker with one SASL PLAIN account. The client
// process: N asynchronous amqp::transport::client connections (TLS with the certificate
// verified against the test CA, SASL PLAIN), each with one sender link attached and granted
// credit, as a device holds its telemetry link; then nothing more is sent. Once every
// connection is up and a second has passed, the orchestrator (this program without --role)
// reads each process's VmRSS and heap in use (glibc mallinfo2) and subtracts what each held
// before the connections.
//
// Figures (bytes per connection):
//   ours.memory.idle_tls_connection.server        VmRSS of the server process
//   ours.memory.idle_tls_connection.server.heap   the server's heap in use
//   ours.memory.idle_tls_connection.client        VmRSS of the client process
//   ours.memory.idle_tls_connection.client.heap   the client's heap in use
// With --rounds R, each process pair is started R times and the medians are printed.
//
// Usage: bench_idle_tls [--quick] [--connections N] [--rounds R] [--certs DIR]
// --quick: 200 connections, one round (a smoke run).
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include "amqp/broker.hpp"
#include "amqp/transport/client.hpp"
#include "amqp/transport/listener.hpp"
#include "bench_rounds.hpp"
#include "broker_handler.hpp"
#include "memory_probe.hpp"
#include "tcp_bench_common.hpp"

namespace amqp::bench {
namespace {

constexpr std::string_view user = "device";
constexpr std::string_view password = "secret";

struct options {
  bool quick = false;
  int rounds = 3;
  std::size_t connections = 10'000;
  std::string certs = AMQP_BENCH_CERT_DIR;
  std::string role;
  std::uint16_t port = 0;
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: bench_idle_tls [--quick] [--connections N] [--rounds R] [--certs DIR]\n");
  std::exit(2);
}

// --- The server -------------------------------------------------------------------------------

int run_server(const options& o) {
  raise_open_files(o.connections + 64);
  broker::broker_options bo;
  bo.users.emplace_back(user, password);
  broker::broker b(std::move(bo));
  cli::broker_handler handler(b);
  asio::io_context io;
  transport::listener_options lo;
  lo.tls.cert_file = o.certs + "/server.pem";
  lo.tls.key_file = o.certs + "/server.key";
  lo.max_connections = o.connections + 16;
  std::string why;
  auto l = transport::listener::listen(io, "amqps://127.0.0.1:0", lo, handler, &why);
  if (!l) {
    role_fail("server", "listen: " + why);
  }
  // SIGTERM: exit at once, every connection still open (a heap profiler run with the server
  // under it, e.g. heaptrack, then lists what they hold as leaked).
  asio::signal_set term(io, SIGTERM);
  term.async_wait([](std::error_code ec, int) {
    if (!ec) {
      std::exit(0);
    }
  });
  // SIGUSR1: print the heap in use and the connections open, numbered.
  asio::signal_set signals(io, SIGUSR1);
  int probes = 0;
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](std::error_code ec, int) {
      if (ec) {
        return;
      }
      std::printf("probe%d heap=%llu conns=%zu\n", probes++,
                  static_cast<unsigned long long>(heap_in_use()), l->connections());
      std::fflush(stdout);
      wait_signal();
    });
  };
  wait_signal();
  std::printf("port %u\n", static_cast<unsigned>(l->port()));
  std::fflush(stdout);
  io.run();
  return 0;
}

// --- The client -------------------------------------------------------------------------------

class idle_clients {
public:
  idle_clients(asio::io_context& io, const options& o) : io_(io), o_(o) {
    url_ = "amqps://" + std::string(user) + ":" + std::string(password) +
           "@127.0.0.1:" + std::to_string(o.port);
    // Reserved up front: their growth would otherwise count as connection memory.
    clients_.reserve(o.connections);
    senders_.reserve(o.connections);
  }

  void start() {
    // A bounded number of handshakes at once, so that none waits past its timeout.
    for (std::size_t i = 0; i < 64 && started_ < o_.connections; ++i) {
      connect_next();
    }
  }
  [[nodiscard]] std::size_t ready() const noexcept { return ready_; }
  [[nodiscard]] bool done() const noexcept { return ready_ == o_.connections; }

private:
  void connect_next() {
    if (started_ == o_.connections) {
      return;
    }
    ++started_;
    transport::client_options co;
    co.tls.ca_file = o_.certs + "/ca.pem";
    const std::string id = "idle-" + std::to_string(started_);
    co.amqp.container_id = id; // a view: the client copies it in async_connect
    transport::client::async_connect(
        io_, url_, co, [this](std::error_code ec, transport::client c) {
          if (ec) {
            role_fail("client", "connect: " + c.last_error());
          }
          auto* kept = &clients_.emplace_back(std::move(c));
          kept->async_open_sender("telemetry", {}, [this](std::error_code e, transport::sender s) {
            if (e) {
              role_fail("client", "open sender: " + e.message());
            }
            senders_.push_back(std::move(s));
            ++ready_;
            if (done()) {
              on_done();
            } else {
              connect_next();
            }
          });
        });
  }

  void on_done();

  asio::io_context& io_;
  const options& o_;
  std::string url_;
  std::size_t started_ = 0;
  std::size_t ready_ = 0;
  std::vector<transport::client> clients_;
  std::vector<transport::sender> senders_;
  std::unique_ptr<asio::steady_timer> settle_;
};

void idle_clients::on_done() {
  // The last flows and heartbeats settle; then the figures.
  settle_ = std::make_unique<asio::steady_timer>(io_, std::chrono::seconds(1));
  settle_->async_wait([this](std::error_code) {
    std::printf("ready rss=%llu heap=%llu connected=%zu\n",
                static_cast<unsigned long long>(rss_bytes()),
                static_cast<unsigned long long>(heap_in_use()), ready_);
    std::fflush(stdout);
  });
}

int run_client(const options& o) {
  raise_open_files(o.connections + 64);
  asio::io_context io;
  std::printf("base rss=%llu heap=%llu\n", static_cast<unsigned long long>(rss_bytes()),
              static_cast<unsigned long long>(heap_in_use()));
  std::fflush(stdout);
  idle_clients clients(io, o);
  clients.start();
  io.run();
  return 0;
}

// --- The orchestrator --------------------------------------------------------------------------

double field(const std::string& line, std::string_view key) {
  const std::string k = " " + std::string(key) + "=";
  const auto at = line.find(k);
  if (at == std::string::npos) {
    die("no " + std::string(key) + " in: " + line);
  }
  return std::strtod(line.c_str() + at + k.size(), nullptr);
}

struct figures {
  double server_rss = 0;
  double server_heap = 0;
  double client_rss = 0;
  double client_heap = 0;
};

figures run_round(const options& o) {
  const std::string self = self_path();
  const std::string n = std::to_string(o.connections);
  child server =
      spawn({self, "--role", "server", "--connections", n, "--certs", o.certs}, "server");
  const auto port_line = wait_for_line(server, "port ", 10);
  if (!port_line) {
    die("the server did not start");
  }
  const std::string port = port_line->substr(5);
  // The server's own start-up allocations are done once it listens; its first figures.
  const double server_rss0 = static_cast<double>(rss_bytes(server.pid));
  ::kill(server.pid, SIGUSR1);
  const auto probe0 = wait_for_line(server, "probe0 ", 10);
  if (!probe0) {
    die("the server did not answer probe 0");
  }
  child client = spawn(
      {self, "--role", "client", "--port", port, "--connections", n, "--certs", o.certs}, "client");
  const auto base = wait_for_line(client, "base ", 10);
  const auto ready = wait_for_line(client, "ready ", 60 + static_cast<double>(o.connections) / 50);
  if (!base || !ready) {
    die("the client did not connect every connection");
  }
  const double server_rss1 = static_cast<double>(rss_bytes(server.pid));
  ::kill(server.pid, SIGUSR1);
  const auto probe1 = wait_for_line(server, "probe1 ", 10);
  if (!probe1) {
    die("the server did not answer probe 1");
  }
  if (field(*probe1, "conns") != static_cast<double>(o.connections)) {
    die("the server holds " + std::to_string(field(*probe1, "conns")) + " connections, not " + n);
  }
  stop_child(client, SIGKILL, 10);
  stop_child(server, SIGKILL, 10);
  const double per = static_cast<double>(o.connections);
  figures f;
  f.server_rss = (server_rss1 - server_rss0) / per;
  f.server_heap = (field(*probe1, "heap") - field(*probe0, "heap")) / per;
  f.client_rss = (field(*ready, "rss") - field(*base, "rss")) / per;
  f.client_heap = (field(*ready, "heap") - field(*base, "heap")) / per;
  std::printf("round: server %.0f B rss, %.0f B heap; client %.0f B rss, %.0f B heap per "
              "connection\n",
              f.server_rss, f.server_heap, f.client_rss, f.client_heap);
  std::fflush(stdout);
  return f;
}

int run_orchestrator(const options& o) {
  install_signal_handlers();
  if (raise_open_files(o.connections + 64) < o.connections + 64) {
    die("the open-files limit is below " + std::to_string(o.connections + 64) +
        " (ulimit -Hn): use fewer --connections");
  }
  std::vector<double> sr, sh, cr, ch;
  for (int r = 0; r < o.rounds; ++r) {
    const figures f = run_round(o);
    sr.push_back(f.server_rss);
    sh.push_back(f.server_heap);
    cr.push_back(f.client_rss);
    ch.push_back(f.client_heap);
  }
  std::printf("connections %zu, rounds %d (medians)\n", o.connections, o.rounds);
  std::printf("ours.memory.idle_tls_connection.server %.0f bytes\n", median(sr));
  std::printf("ours.memory.idle_tls_connection.server.heap %.0f bytes\n", median(sh));
  std::printf("ours.memory.idle_tls_connection.client %.0f bytes\n", median(cr));
  std::printf("ours.memory.idle_tls_connection.client.heap %.0f bytes\n", median(ch));
  return 0;
}

} // namespace
} // namespace amqp::bench

int main(int argc, char** argv) {
  using namespace amqp::bench;
  fail_prefix = "bench_idle_tls";
  options o;
  for_each_arg(argc, argv, usage, [&](std::string_view a, auto& next) {
    if (a == "--quick") {
      o.quick = true;
      o.rounds = 1;
      o.connections = 200;
    } else if (a == "--connections") {
      o.connections = std::strtoull(next(), nullptr, 10);
    } else if (a == "--rounds") {
      o.rounds = std::atoi(next());
    } else if (a == "--certs") {
      o.certs = next();
    } else if (a == "--role") {
      o.role = next();
    } else if (a == "--port") {
      o.port = static_cast<std::uint16_t>(std::atoi(next()));
    } else {
      return false;
    }
    return true;
  });
  if (o.connections == 0 || o.rounds < 1) {
    usage();
  }
  if (o.role == "server") {
    return run_server(o);
  }
  if (o.role == "client") {
    arm_watchdog(600, "bench_idle_tls: client timed out\n");
    return run_client(o);
  }
  if (!o.role.empty()) {
    usage();
  }
  return run_orchestrator(o);
}
