// The listener's server-handler extensions on 127.0.0.1 sockets: what it tells of an
// accepted peer (TLS, SNI, WebSocket path, local port), several endpoints sharing one
// connection table, the handler's own timer, and connections aborted without a close frame.
#include <array>
#include <atomic>
#include <future>
#include <optional>
#include <thread>
#include <vector>

#include <asio/read.hpp>
#include <doctest/doctest.h>

#include "amqp/transport/blocking.hpp"
#include "transport/support.hpp"

using namespace amqp;
using namespace amqp::transport;
using namespace std::chrono_literals;

namespace {

listener_options tls_websocket_listener() {
  listener_options lo;
  lo.tls.cert_file = test::cert_dir() + "server.pem";
  lo.tls.key_file = test::cert_dir() + "server.key";
  lo.websocket_paths = {"/$iothub/websocket", "/$servicebus/websocket"};
  return lo;
}

using test::tls_client;

// raw_node plus what these tests look at; everything runs on the listener's thread, and the
// test thread reads what it recorded through promises.
class recording_node final : public test::raw_node {
public:
  handle on_accept(time_point now, const accepted_peer& peer) override {
    const auto h = raw_node::on_accept(now, peer);
    peers.push_back(peer);
    handles.push_back(h);
    if (accepted_at_most > 0 && peers.size() == accepted_at_most) {
      all_accepted.set_value();
    }
    if (abort_after) {
      deadline = now + *abort_after;
      to_abort.push_back(h);
    }
    return h;
  }
  void on_closed(handle h) override {
    closed.push_back(h);
    raw_node::on_closed(h);
    if (closed_promise && closed.size() == 1) {
      closed_promise->set_value();
    }
  }
  std::optional<time_point> next_deadline() override { return deadline; }
  void on_deadline(time_point now) override {
    ++deadlines_run;
    fired_at = now;
    deadline.reset();
    aborting = std::move(to_abort);
    to_abort.clear();
    if (deadline_promise) {
      deadline_promise->set_value();
      deadline_promise.reset();
    }
  }
  std::vector<handle> take_aborted() override { return std::exchange(aborting, {}); }
  void process(handle h, time_point now) override {
    raw_node::process(h, now);
    if (abort_in_process) {
      // Output is pending (the SASL header and mechanisms, and a close): none may go out.
      (void)engine(h)->close(amqp::error{"amqp:connection:forced", "killed", {}});
      aborting.push_back(h);
    }
  }
  std::vector<handle> take_dirty() override { return std::exchange(dirty, {}); }

  // When the second connection opens, close the first one's engine (output routed from one
  // connection to another) and report it dirty.
  void on_opened(amqp::connection&, const amqp::open&) override {
    if (close_first_on_second && handles.size() == 2) {
      auto* first = engine(handles[0]);
      (void)first->close(amqp::error{"amqp:connection:forced", "routed close", {}});
      dirty.push_back(handles[0]);
    }
  }

  std::vector<accepted_peer> peers;
  std::vector<handle> handles;
  std::vector<handle> closed;
  std::size_t accepted_at_most = 0;
  std::promise<void> all_accepted;
  std::optional<std::promise<void>> closed_promise;
  std::optional<std::promise<void>> deadline_promise;
  std::optional<time_point> deadline;
  std::optional<time_point> fired_at;
  std::optional<std::chrono::milliseconds> abort_after;
  std::vector<handle> to_abort;
  std::vector<handle> aborting;
  std::vector<handle> dirty;
  int deadlines_run = 0;
  bool close_first_on_second = false;
  bool abort_in_process = false;
};

// One listener with several endpoints on its own thread.
class multi_serving {
public:
  multi_serving(server_handler& h, const std::vector<std::string>& urls, listener_options lo) {
    std::string why;
    auto l = listener::listen(io_, urls.front(), lo, h, &why);
    REQUIRE_MESSAGE(l, why);
    ports.push_back(l->port());
    for (std::size_t i = 1; i < urls.size(); ++i) {
      auto p = l->add(urls[i], &why);
      REQUIRE_MESSAGE(p, why);
      ports.push_back(*p);
    }
    listener_.emplace(std::move(*l));
    thread_ = std::thread([this] { io_.run(); });
  }
  ~multi_serving() {
    asio::post(io_, [this] { listener_->close(); });
    work_.reset();
    thread_.join();
  }
  multi_serving(const multi_serving&) = delete;
  multi_serving& operator=(const multi_serving&) = delete;
  template <typename F> auto on_thread(F f) -> decltype(f()) {
    std::promise<decltype(f())> p;
    asio::post(io_, [&] { p.set_value(f()); });
    return p.get_future().get();
  }
  std::vector<std::uint16_t> ports;
  // The listener, for calls made on the serving thread (on_thread).
  listener& get() { return *listener_; }

private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::optional<listener> listener_;
  std::thread thread_;
};

} // namespace

TEST_CASE("listener: accepted_peer tells TLS, the SNI name, the WebSocket path and the port") {
  recording_node node;
  node.accepted_at_most = 4;
  auto done = node.all_accepted.get_future();
  multi_serving s(
      node, {"amqp://127.0.0.1:0", "amqps://127.0.0.1:0", "wss://127.0.0.1:0", "ws://127.0.0.1:0"},
      tls_websocket_listener());
  const auto plain = s.ports[0];
  const auto tls = s.ports[1];
  const auto wss = s.ports[2];
  const auto ws = s.ports[3];
  std::string why;
  auto c1 = blocking_client::connect("amqp://127.0.0.1:" + std::to_string(plain), {}, &why);
  REQUIRE_MESSAGE(c1, why);
  // SNI: the URL's host name (the client never sends an address, RFC 6066 §3).
  auto c2 =
      blocking_client::connect("amqps://localhost:" + std::to_string(tls), tls_client(), &why);
  REQUIRE_MESSAGE(c2, why);
  auto c3 = blocking_client::connect(
      "wss://localhost:" + std::to_string(wss) + "/$iothub/websocket", tls_client(), &why);
  REQUIRE_MESSAGE(c3, why);
  auto c4 = blocking_client::connect(
      "ws://127.0.0.1:" + std::to_string(ws) + "/$servicebus/websocket?x=1", {}, &why);
  REQUIRE_MESSAGE(c4, why);
  REQUIRE(done.wait_for(10s) == std::future_status::ready);
  const auto peers = s.on_thread([&] { return node.peers; });
  REQUIRE(peers.size() == 4);
  CHECK_FALSE(peers[0].tls);
  CHECK(peers[0].server_name.empty());
  CHECK(peers[0].websocket_path.empty());
  CHECK(peers[0].local_port == plain);
  CHECK(peers[0].address.starts_with("127.0.0.1:"));
  CHECK(peers[1].tls);
  CHECK(peers[1].server_name == "localhost");
  CHECK(peers[1].websocket_path.empty());
  CHECK(peers[1].local_port == tls);
  CHECK(peers[2].tls);
  CHECK(peers[2].server_name == "localhost");
  CHECK(peers[2].websocket_path == "/$iothub/websocket");
  CHECK(peers[2].local_port == wss);
  CHECK_FALSE(peers[3].tls);
  CHECK(peers[3].websocket_path == "/$servicebus/websocket"); // the query is not the path
  CHECK(peers[3].local_port == ws);
  // A client that sends no SNI (an IP address as host): empty.
  auto c5 =
      blocking_client::connect("amqps://127.0.0.1:" + std::to_string(tls), tls_client(), &why);
  REQUIRE_MESSAGE(c5, why);
  const auto last = s.on_thread([&] { return node.peers.back(); });
  CHECK(last.tls);
  CHECK(last.server_name.empty());
}

TEST_CASE("listener: WebSocket paths other than the configured ones are refused") {
  recording_node node;
  multi_serving s(node, {"ws://127.0.0.1:0"}, tls_websocket_listener());
  std::string why;
  auto c =
      blocking_client::connect("ws://127.0.0.1:" + std::to_string(s.ports[0]) + "/other", {}, &why);
  CHECK_FALSE(c);
  CHECK(s.on_thread([&] { return node.peers.size(); }) == 0);
}

TEST_CASE("listener: the handler's deadline runs on the listener's timer") {
  recording_node node;
  node.deadline_promise.emplace();
  auto f = node.deadline_promise->get_future();
  const auto armed_at = std::chrono::steady_clock::now() + 30ms;
  node.deadline = armed_at; // known before anything was accepted: armed by listen()
  multi_serving s(node, {"amqp://127.0.0.1:0"}, {});
  REQUIRE(f.wait_for(10s) == std::future_status::ready);
  const auto [runs, at] = s.on_thread([&] { return std::pair{node.deadlines_run, node.fired_at}; });
  CHECK(runs == 1);
  REQUIRE(at);
  CHECK(*at >= armed_at);

  // A deadline set while serving a connection is armed after that call.
  auto f2 = s.on_thread([&] {
    node.abort_after = 20ms;
    node.deadline_promise.emplace();
    return node.deadline_promise->get_future();
  });
  std::string why;
  auto c = blocking_client::connect("amqp://127.0.0.1:" + std::to_string(s.ports[0]), {}, &why);
  REQUIRE_MESSAGE(c, why);
  REQUIRE(f2.wait_for(10s) == std::future_status::ready);
  CHECK(s.on_thread([&] { return node.deadlines_run; }) == 2);
}

TEST_CASE("listener: refresh_deadline arms a deadline the handler got outside a call") {
  recording_node node;
  multi_serving s(node, {"amqp://127.0.0.1:0"}, {});
  auto fired = s.on_thread([&] {
    node.deadline_promise.emplace();
    node.deadline = std::chrono::steady_clock::now() + 20ms; // no call into the handler since
    s.get().refresh_deadline();
    return node.deadline_promise->get_future();
  });
  REQUIRE(fired.wait_for(10s) == std::future_status::ready);
  CHECK(s.on_thread([&] { return node.deadlines_run; }) == 1);
}

TEST_CASE("listener: take_aborted drops the socket at once, with no close frame") {
  recording_node node;
  node.abort_in_process = true;
  node.closed_promise.emplace();
  auto closed = node.closed_promise->get_future();
  multi_serving s(node, {"amqp://127.0.0.1:0"}, {});
  asio::io_context io;
  asio::ip::tcp::socket sock(io);
  sock.connect({asio::ip::make_address("127.0.0.1"), s.ports[0]});
  // The SASL header: the engine answers it with its header and sasl-mechanisms, and the
  // handler closes the connection too; the abort drops all of it.
  const std::array<std::uint8_t, 8> header{'A', 'M', 'Q', 'P', 3, 1, 0, 0};
  asio::write(sock, asio::buffer(header));
  REQUIRE(closed.wait_for(10s) == std::future_status::ready);
  std::array<std::byte, 256> buf{};
  std::error_code ec;
  const auto n = asio::read(sock, asio::buffer(buf), ec);
  CHECK(n == 0); // nothing at all: no header, no SASL frame, no close frame
  CHECK((ec == asio::error::eof || ec == asio::error::connection_reset));
  const auto [accepted, gone] = s.on_thread([&] {
    return std::pair{node.handles.size(), node.closed.size()};
  });
  CHECK(accepted == 1);
  CHECK(gone == 1);
}

TEST_CASE("listener: output routed to a connection of another endpoint is written") {
  recording_node node;
  node.close_first_on_second = true;
  multi_serving s(node, {"amqp://127.0.0.1:0", "ws://127.0.0.1:0"}, tls_websocket_listener());
  std::string why;
  auto a = blocking_client::connect("amqp://127.0.0.1:" + std::to_string(s.ports[0]), {}, &why);
  REQUIRE_MESSAGE(a, why);
  auto b = blocking_client::connect(
      "ws://127.0.0.1:" + std::to_string(s.ports[1]) + "/$iothub/websocket", {}, &why);
  REQUIRE_MESSAGE(b, why);
  // a's engine was closed while b was processed: a hears of it only if the listener wrote
  // a's output, though a came in on the other endpoint.
  auto r = a->open_receiver("q");
  CHECK_FALSE(r);
  CHECK(a->last_error().find("routed close") != std::string::npos);
}

TEST_CASE("listener: beyond max_connections, a connection is closed at once (limit)") {
  recording_node node;
  listener_options lo;
  lo.max_connections = 1;
  multi_serving s(node, {"amqp://127.0.0.1:0"}, lo);
  const std::string url = "amqp://127.0.0.1:" + std::to_string(s.ports[0]);
  std::string why;
  auto first = blocking_client::connect(url, {}, &why);
  REQUIRE_MESSAGE(first, why);
  client_options quick;
  quick.connect_timeout = 5s;
  auto second = blocking_client::connect(url, quick, &why);
  CHECK_FALSE(second);
  CHECK(s.on_thread([&] { return node.peers.size(); }) == 1);
  // The first one still works; once it is gone, a new one is served.
  CHECK(first->open_sender("q"));
  auto gone = s.on_thread([&] {
    node.closed_promise.emplace();
    return node.closed_promise->get_future();
  });
  REQUIRE(first->close());
  REQUIRE(gone.wait_for(10s) == std::future_status::ready);
  auto third = blocking_client::connect(url, quick, &why);
  CHECK_MESSAGE(third, why);
}
