// The client (async and blocking) and the listener on 127.0.0.1 sockets, against the
// in-memory broker: TCP, TLS, WebSocket, SASL, outcomes, large messages, faults.
#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <type_traits>

#include <doctest/doctest.h>

#include "amqp/error.hpp"
#include "amqp/transport/blocking.hpp"
#include "transport/support.hpp"

using namespace amqp;
using namespace amqp::transport;
using namespace std::chrono_literals;

namespace {

using test::tls_client;
using test::tls_listener;

// Sends `n` messages and receives them back through the broker at `url`.
void round_trip(const std::string& url, client_options o, std::size_t n, std::size_t size,
                bool presettled) {
  auto c = blocking_client::connect(url, o);
  REQUIRE_MESSAGE(c, c.error().message());
  sender_options so;
  so.presettled = presettled;
  auto s = c->open_sender("q", so);
  REQUIRE(s);
  for (std::size_t i = 0; i < n; ++i) {
    auto out = s->send(test::make_message(std::to_string(i), size));
    REQUIRE(out);
    CHECK(out->state == (presettled ? state_kind::none : state_kind::accepted));
  }
  auto r = c->open_receiver("q");
  REQUIRE(r);
  for (std::size_t i = 0; i < n; ++i) {
    auto m = r->receive(10s);
    REQUIRE_MESSAGE(m, m.error().message());
    CHECK(test::message_id(m->bytes()) == std::to_string(i));
    auto d = m->decode();
    REQUIRE(d);
    CHECK(d->data().size() == size);
    REQUIRE(r->accept(*m));
  }
  CHECK(c->close());
}

} // namespace

TEST_CASE("transport: TCP send and receive through the broker, unsettled and presettled") {
  test::broker_server b;
  const auto port = b.listen("amqp://127.0.0.1:0");
  b.start();
  const auto url = "amqp://127.0.0.1:" + std::to_string(port);
  round_trip(url, {}, 200, 200, false);
  round_trip(url, {}, 200, 200, true);
  CHECK(b.depth("q") == 0);
}

TEST_CASE("transport: a 1 MiB message crosses in many frames") {
  test::broker_server b;
  const auto port = b.listen("amqp://127.0.0.1:0");
  b.start();
  client_options o;
  o.amqp.limits.max_frame_size = 16 * 1024;
  round_trip("amqp://127.0.0.1:" + std::to_string(port), o, 3, 1 << 20, false);
}

TEST_CASE("transport: outcomes from a receiver: release and modify redeliver, reject drops") {
  test::broker_server b;
  const auto port = b.listen("amqp://127.0.0.1:0");
  b.start();
  auto c = blocking_client::connect("amqp://127.0.0.1:" + std::to_string(port));
  REQUIRE(c);
  auto s = c->open_sender("outcomes");
  REQUIRE(s);
  REQUIRE(s->send(test::make_message("m")));
  auto r = c->open_receiver("outcomes");
  REQUIRE(r);
  auto m1 = r->receive(5s);
  REQUIRE(m1);
  REQUIRE(r->release(*m1));
  auto m2 = r->receive(5s);
  REQUIRE(m2);
  CHECK(test::message_id(m2->bytes()) == "m");
  REQUIRE(r->modify(*m2, true, false));
  auto m3 = r->receive(5s);
  REQUIRE(m3);
  auto d = m3->decode();
  REQUIRE(d);
  REQUIRE(d->header);
  CHECK(d->header->delivery_count == 1); // modified with delivery-failed counts (§3.4.5)
  REQUIRE(r->reject(*m3, "amqp:internal-error", "test"));
  auto none = r->receive(300ms);
  CHECK(none.error() == make_error_code(errc::timeout));
  CHECK(b.depth("outcomes") == 0);
  CHECK(c->close());
}

TEST_CASE("transport: SASL PLAIN accepted and refused") {
  broker::broker_options bo;
  bo.users = {{"alice", "s3cret"}};
  bo.allow_anonymous = false;
  test::broker_server b(bo);
  const auto port = b.listen("amqp://127.0.0.1:0");
  b.start();
  const auto at = "@127.0.0.1:" + std::to_string(port);
  round_trip("amqp://alice:s3cret" + at, {}, 5, 10, false);
  auto bad = blocking_client::connect("amqp://alice:wrong" + at);
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == make_error_code(errc::unauthorized));
  auto anon = blocking_client::connect("amqp://127.0.0.1:" + std::to_string(port));
  REQUIRE_FALSE(anon);
}

TEST_CASE("transport: TLS with certificate and host-name verification") {
  test::broker_server b;
  const auto port = b.listen("amqps://127.0.0.1:0", tls_listener());
  b.start();
  const auto p = std::to_string(port);
  round_trip("amqps://127.0.0.1:" + p, tls_client(), 20, 100, false);
  round_trip("amqps://localhost:" + p, tls_client(), 5, 100, true);

  // A CA that did not sign the server's certificate.
  auto untrusted = blocking_client::connect("amqps://127.0.0.1:" + p, tls_client("other-ca.pem"));
  CHECK_FALSE(untrusted);
  // The right CA, the wrong name.
  auto o = tls_client();
  o.tls.server_name = "wrong.example";
  auto wrong_name = blocking_client::connect("amqps://127.0.0.1:" + p, o);
  CHECK_FALSE(wrong_name);
  // Verification off (tests only): connects to a server whose CA is unknown.
  auto insecure = client_options{};
  insecure.tls.verify = false;
  round_trip("amqps://127.0.0.1:" + p, insecure, 1, 10, false);
}

TEST_CASE("transport: TLS client certificate and SASL EXTERNAL") {
  // The broker's router sees who each link belongs to (on the broker's thread).
  std::vector<std::string> users;
  broker::broker_options bo;
  bo.route = [&](const broker::route_request& r) {
    users.push_back(r.connection.mechanism + " " + r.connection.user + " / " +
                    r.connection.certificate_subject);
    return broker::route_decision::to(std::string(r.address));
  };
  test::broker_server b(bo);
  auto lo = tls_listener();
  lo.tls.ca_file = test::cert_dir() + "ca.pem";
  lo.tls.require_client_certificate = true;
  const auto port = b.listen("amqps://127.0.0.1:0", lo);
  b.start();
  const auto url = "amqps://127.0.0.1:" + std::to_string(port);
  auto o = tls_client();
  o.tls.cert_file = test::cert_dir() + "client.pem";
  o.tls.key_file = test::cert_dir() + "client.key";
  o.amqp.sasl.mechanism = "EXTERNAL";
  round_trip(url, o, 3, 10, false);
  // The broker authenticated the client as its certificate's subject.
  const auto seen = b.on_thread([&](broker::broker&) { return users; });
  REQUIRE_FALSE(seen.empty());
  CHECK(seen.front() == "EXTERNAL CN=client / CN=client");

  // Without a client certificate the TLS handshake is refused.
  auto no_cert = blocking_client::connect(url, tls_client());
  CHECK_FALSE(no_cert);
}

TEST_CASE("transport: an optional client certificate: EXTERNAL with one, PLAIN or ANONYMOUS "
          "without") {
  std::vector<std::string> users;
  broker::broker_options bo;
  bo.users = {{"alice", "pw"}};
  bo.allow_anonymous = true; // with accounts, anonymous access is off unless asked for
  bo.route = [&](const broker::route_request& r) {
    users.push_back(r.connection.mechanism + " " + r.connection.user);
    return broker::route_decision::to(std::string(r.address));
  };
  test::broker_server b(bo);
  auto lo = tls_listener();
  lo.tls.ca_file = test::cert_dir() + "ca.pem"; // asks for a certificate, does not require one
  const auto port = std::to_string(b.listen("amqps://127.0.0.1:0", lo));
  b.start();
  auto with_cert = [](const std::string& cert, const std::string& key) {
    auto o = tls_client();
    o.tls.cert_file = test::cert_dir() + cert;
    o.tls.key_file = test::cert_dir() + key;
    o.amqp.sasl.mechanism = "EXTERNAL";
    return o;
  };
  round_trip("amqps://127.0.0.1:" + port, with_cert("client.pem", "client.key"), 1, 10, false);
  round_trip("amqps://alice:pw@127.0.0.1:" + port, tls_client(), 1, 10, false);
  round_trip("amqps://127.0.0.1:" + port, tls_client(), 1, 10, false);
  const auto seen = b.on_thread([&](broker::broker&) { return users; });
  CHECK(std::find(seen.begin(), seen.end(), "EXTERNAL CN=client") != seen.end());
  CHECK(std::find(seen.begin(), seen.end(), "PLAIN alice") != seen.end());
  CHECK(std::find(seen.begin(), seen.end(), "ANONYMOUS ") != seen.end());
  // A certificate the CA did not sign is refused in the TLS handshake.
  auto wrong = blocking_client::connect("amqps://127.0.0.1:" + port,
                                        with_cert("other-server.pem", "other-server.key"));
  CHECK_FALSE(wrong);
  // Without a certificate, EXTERNAL is not offered: the SASL exchange fails.
  auto no_cert = tls_client();
  no_cert.amqp.sasl.mechanism = "EXTERNAL";
  auto external_without = blocking_client::connect("amqps://127.0.0.1:" + port, no_cert);
  CHECK_FALSE(external_without);
}

TEST_CASE("transport: WebSocket, plain and over TLS") {
  test::broker_server b;
  listener_options lo;
  lo.websocket_paths = {"/$iothub/websocket"};
  const auto ws_port = b.listen("ws://127.0.0.1:0", lo);
  auto tlo = tls_listener();
  tlo.websocket_paths = lo.websocket_paths;
  const auto wss_port = b.listen("wss://127.0.0.1:0", tlo);
  b.start();
  round_trip("ws://127.0.0.1:" + std::to_string(ws_port) + "/$iothub/websocket", {}, 50, 300,
             false);
  client_options big;
  big.amqp.limits.max_frame_size = 32 * 1024;
  round_trip("wss://127.0.0.1:" + std::to_string(wss_port) + "/$iothub/websocket", tls_client(), 2,
             1 << 20, false);
  // A query string goes with the path (paths match without it).
  round_trip("ws://127.0.0.1:" + std::to_string(ws_port) + "/$iothub/websocket?x=1", {}, 1, 10,
             false);
  // A path the server does not serve: the upgrade is refused (404).
  auto wrong = blocking_client::connect("ws://127.0.0.1:" + std::to_string(ws_port) + "/other");
  CHECK_FALSE(wrong);
}

TEST_CASE("transport: a refused attach is an error, not a hang") {
  broker::broker_options bo;
  bo.auto_create_queues = false;
  test::broker_server b(bo);
  const auto port = b.listen("amqp://127.0.0.1:0");
  b.start();
  auto c = blocking_client::connect("amqp://127.0.0.1:" + std::to_string(port));
  REQUIRE(c);
  auto r = c->open_receiver("missing");
  CHECK_FALSE(r);
  CHECK(c->last_error().find("amqp:not-found") != std::string::npos);
  CHECK(c->close());
}

TEST_CASE("transport: connect errors are reported within a bound") {
  // Nothing listens on the port: connection refused, at once.
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  const auto port = a.local_endpoint().port();
  a.close();
  auto refused = blocking_client::connect("amqp://127.0.0.1:" + std::to_string(port));
  CHECK_FALSE(refused);

  // A peer that accepts and never answers: the connect timeout ends it.
  asio::ip::tcp::acceptor silent(io, {asio::ip::make_address("127.0.0.1"), 0});
  client_options o;
  o.connect_timeout = 300ms;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = blocking_client::connect(
      "amqp://127.0.0.1:" + std::to_string(silent.local_endpoint().port()), o);
  CHECK_FALSE(r);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);

  // Bad URLs and TLS files are argument errors.
  CHECK(blocking_client::connect("http://x").error() == make_error_code(errc::invalid_argument));
  auto bad_ca = client_options{};
  bad_ca.tls.ca_file = "/nonexistent/ca.pem";
  CHECK_FALSE(blocking_client::connect("amqps://127.0.0.1:1", bad_ca));
}

TEST_CASE("transport: reconnect after a cut resends what was unsettled; nothing accepted is lost") {
  test::broker_server b;
  const auto port = b.listen("amqp://127.0.0.1:0");
  b.start();
  test::fault_proxy proxy(port);
  client_options o;
  o.reconnect.enabled = true;
  o.reconnect.initial_delay = 20ms;
  o.reconnect.max_delay = 200ms;
  asio::io_context io;
  client c;
  sender s;
  std::size_t accepted = 0;
  std::size_t failed = 0;
  constexpr std::size_t n = 2000;
  bool cut_done = false;
  client::async_connect(io, "amqp://127.0.0.1:" + std::to_string(proxy.port()), o,
                        [&](std::error_code ec, client cl) {
                          REQUIRE_FALSE(ec);
                          c = cl;
                          c.async_open_sender("durable", {}, [&](std::error_code e, sender sd) {
                            REQUIRE_FALSE(e);
                            s = sd;
                            for (std::size_t i = 0; i < n; ++i) {
                              s.async_send(test::make_message(std::to_string(i)),
                                           [&](std::error_code se, delivery_outcome out) {
                                             if (se) {
                                               ++failed;
                                             } else if (out.state == state_kind::accepted) {
                                               ++accepted;
                                             }
                                             if (accepted == n / 4 && !cut_done) {
                                               cut_done = true;
                                               proxy.cut(); // mid-stream
                                             }
                                           });
                            }
                          });
                        });
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (accepted + failed < n && std::chrono::steady_clock::now() < deadline) {
    io.run_for(50ms);
  }
  CHECK(cut_done);
  CHECK(failed == 0);
  CHECK(accepted == n);
  CHECK(c.reconnects() >= 1);
  CHECK(proxy.accepted() >= 2);
  bool closed = false;
  c.async_close([&](std::error_code) { closed = true; });
  while (!closed) {
    io.run_for(10ms);
  }
  // Every message is in the queue at least once (resends may duplicate: at-least-once).
  auto r = blocking_client::connect("amqp://127.0.0.1:" + std::to_string(port));
  REQUIRE(r);
  auto rv = r->open_receiver("durable");
  REQUIRE(rv);
  std::set<std::string> ids;
  while (true) {
    auto m = rv->receive(500ms);
    if (!m) {
      break;
    }
    ids.insert(test::message_id(m->bytes()));
    REQUIRE(rv->accept(*m));
  }
  CHECK(ids.size() == n);
  CHECK(r->close());
}

TEST_CASE("transport: a silent peer: the idle timeout ends the connection, and reconnect heals") {
  test::broker_server b;
  const auto port = b.listen("amqp://127.0.0.1:0");
  b.start();
  test::fault_proxy proxy(port);
  client_options o;
  o.amqp.timeouts.idle_time_out = 400ms;
  o.amqp.timeouts.min_peer_idle_time_out = 10ms;
  o.reconnect.enabled = true;
  o.reconnect.initial_delay = 20ms;
  auto c = blocking_client::connect("amqp://127.0.0.1:" + std::to_string(proxy.port()), o);
  REQUIRE(c);
  auto s = c->open_sender("idle");
  REQUIRE(s);
  REQUIRE(s->send(test::make_message("before")));
  proxy.stall(true); // the broker goes silent: no heartbeats reach us
  std::this_thread::sleep_for(1200ms);
  proxy.stall(false);
  // The client noticed (idle timeout), reconnected through a new proxied connection, and
  // the link works again.
  auto out = s->send(test::make_message("after"));
  REQUIRE_MESSAGE(out, out.error().message());
  CHECK(out->state == state_kind::accepted);
  CHECK(proxy.accepted() >= 2);
  CHECK(c->close());
}

// Regression: sends made from the attach handler were taken for resends of an earlier
// connection, sent twice, and the first outcomes never reached their handlers.
TEST_CASE("transport: sends from the attach handler are sent once and all settle") {
  test::broker_server b;
  const auto port = b.listen("amqp://127.0.0.1:0");
  b.start();
  asio::io_context io;
  client c;
  sender s;
  std::size_t accepted = 0;
  constexpr std::size_t n = 1500;
  client::async_connect(
      io, "amqp://127.0.0.1:" + std::to_string(port), {}, [&](std::error_code ec, client cl) {
        REQUIRE_FALSE(ec);
        c = cl;
        c.async_open_sender("once", {}, [&](std::error_code e, sender sd) {
          REQUIRE_FALSE(e);
          s = sd;
          for (std::size_t i = 0; i < n; ++i) {
            s.async_send(test::make_message(std::to_string(i)),
                         [&](std::error_code se, delivery_outcome) { accepted += se ? 0U : 1U; });
          }
        });
      });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (accepted < n && std::chrono::steady_clock::now() < deadline) {
    io.run_for(20ms);
  }
  CHECK(accepted == n);
  CHECK(s.in_flight() == 0);
  CHECK(b.depth("once") == n);
}

// A receiver that lowers its credit to the messages it still wants gets no more. (The bug
// this guards, credit topped up while deliveries of the same read were still queued as
// events, shows reliably only against a broker that sends a batch in one write: the
// conformance cell tshark_reads_our_traffic against Qpid Proton's C broker caught it.)
TEST_CASE("transport: a receiver lowering its credit gets no delivery beyond it") {
  test::broker_server b;
  const auto port = b.listen("amqp://127.0.0.1:0");
  b.start();
  auto c = blocking_client::connect("amqp://127.0.0.1:" + std::to_string(port));
  REQUIRE(c);
  auto s = c->open_sender("exact");
  REQUIRE(s);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(s->send(test::make_message(std::to_string(i))));
  }
  asio::io_context io;
  client ac;
  receiver r;
  int received = 0;
  std::function<void()> next = [&] {
    r.async_receive([&](std::error_code re, received_message m) {
      REQUIRE_FALSE(re);
      REQUIRE(r.accept(m));
      r.set_credit(static_cast<std::uint32_t>(2 - ++received));
      if (received < 2) {
        next();
      }
    });
  };
  client::async_connect(io, "amqp://127.0.0.1:" + std::to_string(port), {},
                        [&](std::error_code ec, client cl) {
                          REQUIRE_FALSE(ec);
                          ac = cl;
                          receiver_options ro;
                          ro.credit = 2;
                          ac.async_open_receiver("exact", ro, [&](std::error_code e, receiver rv) {
                            REQUIRE_FALSE(e);
                            r = rv;
                            next();
                          });
                        });
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (received < 2 && std::chrono::steady_clock::now() < deadline) {
    io.run_for(20ms);
  }
  io.run_for(300ms); // anything granted by mistake would arrive now
  CHECK(received == 2);
  auto st = b.on_thread([](broker::broker& br) { return br.stats("exact"); });
  REQUIRE(st);
  CHECK(st->depth == 3);
  CHECK(st->in_flight == 0);
}

namespace {

// A node that logs each receiver attach (its filter's string and its link property
// "com.microsoft:epoch") and detaches receivers from "redirect" with amqp:link:redirect and
// an info map.
class attach_log_node final : public test::raw_node {
public:
  struct seen {
    std::string address;
    std::string filter;
    std::optional<std::int64_t> epoch;
  };
  std::vector<seen> log() {
    std::lock_guard lock(mutex_);
    return log_;
  }

protected:
  void on_attached(connection& c, const link_attached& la) override {
    if (la.remote.role != role::receiver || !la.remote.source) {
      return;
    }
    seen s;
    s.address = std::string(la.remote.source->address.value_or(""));
    if (auto f = la.remote.source->filter.find("selector")) {
      s.filter = std::string(f->described_value().get_string().value_or(""));
    }
    if (auto e = la.remote.properties.find("com.microsoft:epoch")) {
      s.epoch = e->get_signed();
    }
    {
      std::lock_guard lock(mutex_);
      log_.push_back(s);
    }
    if (s.address == "redirect") {
      const value info[2] = {value(symbol_view{"address"}), value("amqps://elsewhere/q")};
      (void)c.detach(la.link, true,
                     amqp::error{symbol_view{"amqp:link:redirect"}, "go there", value::map(info)});
    }
  }

private:
  std::mutex mutex_;
  std::vector<seen> log_;
};

} // namespace

TEST_CASE("transport: receiver link properties on every attach, set_filters for the re-attach "
          "after a reconnect, and the peer's detach error with its info map") {
  attach_log_node node;
  test::serving server(node);
  test::fault_proxy proxy(server.port());
  client_options o;
  o.reconnect.enabled = true;
  o.reconnect.initial_delay = 20ms;
  o.reconnect.max_delay = 200ms;
  asio::io_context io;
  client c;
  receiver r;
  receiver redirected;
  std::error_code redirect_error;
  bool redirect_done = false;
  client::async_connect(
      io, "amqp://127.0.0.1:" + std::to_string(proxy.port()), o,
      [&](std::error_code ec, client cl) {
        REQUIRE_FALSE(ec);
        c = cl;
        receiver_options ro;
        ro.filters = {{"selector", "test:filter", "first"}};
        const value props[2] = {value(symbol_view{"com.microsoft:epoch"}), value(std::int64_t{5})};
        ro.properties = *owned_value::copy_of(value::map(props));
        c.async_open_receiver("q", ro, [&](std::error_code e, receiver rv) {
          REQUIRE_FALSE(e);
          r = rv;
          CHECK_FALSE(r.remote_error());
          r.set_filters({{"selector", "test:filter", "second"}});
          proxy.cut();
        });
        c.async_open_receiver("redirect", {}, [&](std::error_code e, receiver rv) {
          REQUIRE_FALSE(e);
          redirected = rv;
          redirected.async_receive([&](std::error_code re, received_message) {
            redirect_error = re;
            redirect_done = true;
          });
        });
      });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  auto attaches_of_q = [&] {
    const auto log = node.log();
    return std::count_if(log.begin(), log.end(), [](const auto& s) { return s.address == "q"; });
  };
  while ((attaches_of_q() < 2 || !redirect_done) && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
  std::vector<attach_log_node::seen> q;
  for (const auto& s : node.log()) {
    if (s.address == "q") {
      q.push_back(s);
    }
  }
  REQUIRE(q.size() >= 2);
  CHECK(q[0].filter == "first");
  CHECK(q[1].filter == "second");
  CHECK(q[0].epoch == std::optional<std::int64_t>(5));
  CHECK(q[1].epoch == std::optional<std::int64_t>(5));
  CHECK(c.reconnects() >= 1);

  REQUIRE(redirect_done);
  CHECK(redirect_error == make_error_code(errc::remote_error));
  const auto e = redirected.remote_error();
  REQUIRE(e);
  CHECK(e->condition == "amqp:link:redirect");
  CHECK(e->description == "go there");
  const auto address = e->info.get().find("address");
  REQUIRE(address);
  CHECK(address->get_string() == std::optional<std::string_view>("amqps://elsewhere/q"));
  bool closed = false;
  c.async_close([&](std::error_code) { closed = true; });
  while (!closed && std::chrono::steady_clock::now() < deadline + 5s) {
    io.run_for(10ms);
  }
  CHECK(closed);
}

namespace {

// A scripted peer for the client's recovery (client.hpp "Recovery"). Per address it counts
// the client's attaches, and:
// - a message whose message-id starts with "kill" is not settled: its link is detached
//   with amqp:link:detach-forced, the first time only (its resend is accepted);
// - "end-session": the session is ended with amqp:internal-error, the first time only;
// - receivers from "src": detached with amqp:link:detach-forced on their first attach; on a
//   later one, one message "hello" is sent once credit comes;
// - receivers from "stolen" or "redirect": detached with amqp:link:stolen or
//   amqp:link:redirect on every attach;
// - "refuse-again": its second attach is refused (no terminus, then a detach with
//   amqp:unauthorized-access).
class relink_node final : public test::raw_node {
public:
  int attaches(const std::string& address) {
    std::lock_guard lock(mutex_);
    return attaches_[address];
  }
  int seen(const std::string& id) {
    std::lock_guard lock(mutex_);
    return seen_[id];
  }

protected:
  void answer(const link_attached& la, link_options& o) override {
    const auto address = address_of(la);
    std::lock_guard lock(mutex_);
    const int n = ++attaches_[address];
    if (address == "refuse-again" && n >= 2) {
      if (la.remote.role == role::sender) {
        o.target.reset();
      } else {
        o.source.reset();
      }
    }
  }
  void on_attached(connection& c, const link_attached& la) override {
    const auto address = address_of(la);
    int n = 0;
    {
      std::lock_guard lock(mutex_);
      n = attaches_[address];
      links_[{&c, la.link.value}] = {address, la.session};
    }
    auto detach = [&](std::string_view condition) {
      (void)c.detach(la.link, true, amqp::error{symbol_view{condition}, "scripted", value{}});
    };
    if (address == "refuse-again" && n >= 2) {
      detach("amqp:unauthorized-access");
      return;
    }
    if (la.remote.role == role::sender) {
      (void)c.flow(la.link, 100);
    }
    if (address == "src" && n == 1) {
      detach("amqp:link:detach-forced");
    } else if (address == "stolen") {
      detach("amqp:link:stolen");
    } else if (address == "redirect") {
      detach("amqp:link:redirect");
    }
  }
  void on_event(connection& c, const event& e) override {
    if (const auto* lf = std::get_if<link_flow>(&e); lf != nullptr && lf->credit > 0) {
      std::lock_guard lock(mutex_);
      auto it = links_.find({&c, lf->link.value});
      if (it != links_.end() && it->second.first == "src" && attaches_["src"] >= 2 && !hello_) {
        hello_ = true;
        const auto bytes = test::make_message("hello");
        transfer_options t;
        t.payload = bytes;
        t.settled = true;
        REQUIRE(c.send(lf->link, t));
      }
      return;
    }
    const auto* dr = std::get_if<delivery_received>(&e);
    if (dr == nullptr) {
      return;
    }
    const auto id = test::message_id(dr->payload);
    std::pair<std::string, session_id> link;
    int n = 0;
    {
      std::lock_guard lock(mutex_);
      n = ++seen_[id];
      link = links_[{&c, dr->delivery.link.value}];
    }
    if (id.starts_with("kill") && n == 1) {
      (void)c.detach(dr->delivery.link, true,
                     amqp::error{symbol_view{"amqp:link:detach-forced"}, "scripted", value{}});
      return;
    }
    if (id == "end-session" && n == 1) {
      (void)c.end(link.second,
                  amqp::error{symbol_view{"amqp:internal-error"}, "scripted", value{}});
      return;
    }
    (void)c.settle(dr->delivery, accepted{});
  }

private:
  static std::string address_of(const link_attached& la) {
    if (la.remote.role == role::sender) { // the client sends: its target
      if (la.remote.target) {
        if (const auto* t = std::get_if<target>(&*la.remote.target)) {
          return std::string(t->address.value_or(""));
        }
      }
      return {};
    }
    return la.remote.source ? std::string(la.remote.source->address.value_or("")) : std::string{};
  }

  std::mutex mutex_;
  std::map<std::string, int> attaches_;
  std::map<std::string, int> seen_;
  std::map<std::pair<const connection*, std::uint32_t>, std::pair<std::string, session_id>> links_;
  bool hello_ = false;
};

bool run_until(asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
  return done();
}

client connect_to(asio::io_context& io, const std::string& url, const client_options& o) {
  client c;
  bool done = false;
  client::async_connect(io, url, o, [&](std::error_code ec, client cl) {
    REQUIRE_FALSE(ec);
    c = std::move(cl);
    done = true;
  });
  REQUIRE(run_until(io, [&] { return done; }));
  return c;
}

template <typename Handle>
Handle open_link(asio::io_context& io, client& c, const std::string& address) {
  Handle h;
  bool done = false;
  auto take = [&](std::error_code ec, Handle got) {
    CHECK_FALSE(ec);
    h = std::move(got);
    done = true;
  };
  if constexpr (std::is_same_v<Handle, sender>) {
    c.async_open_sender(address, {}, take);
  } else {
    c.async_open_receiver(address, {}, take);
  }
  REQUIRE(run_until(io, [&] { return done; }));
  return h;
}

// Sends the messages with these ids in a row; the outcomes (or errors) by id.
struct send_log {
  std::map<std::string, std::error_code> errors;
  std::map<std::string, state_kind> states;
  void send(sender& s, const std::string& id) {
    s.async_send(test::make_message(id), [this, id](std::error_code ec, delivery_outcome out) {
      errors[id] = ec;
      states[id] = out.state;
    });
  }
};

} // namespace

TEST_CASE("transport: the peer detaches a link with an error: it attaches again and what was "
          "in flight is sent again; redirect and stolen are not retried; a refused re-attach "
          "fails the link") {
  relink_node node;
  test::serving server(node);
  client_options o; // no reconnect: a re-attach needs none
  o.reconnect.initial_delay = 20ms;
  o.reconnect.max_delay = 100ms;
  asio::io_context io;
  client c = connect_to(io, server.url(), o);

  // A sender: "kill" dies with its link; it and "b" (queued behind) go on the new attach.
  auto s = open_link<sender>(io, c, "q");
  send_log log;
  for (const char* id : {"a", "kill", "b"}) {
    log.send(s, id);
  }
  // A receiver detached at once: the receive waiting goes on and gets what comes later.
  auto src = open_link<receiver>(io, c, "src");
  std::optional<std::string> hello;
  src.async_receive([&](std::error_code ec, const received_message& m) {
    hello = ec ? "error: " + ec.message() : test::message_id(m.bytes());
  });
  // Not retried: stolen, redirect.
  std::map<std::string, std::optional<std::error_code>> lost;
  std::map<std::string, receiver> kept;
  for (const char* address : {"stolen", "redirect"}) {
    auto r = open_link<receiver>(io, c, address);
    kept[address] = r;
    r.async_receive([&lost, a = std::string(address)](std::error_code ec, const received_message&) {
      lost[a] = ec;
    });
  }
  // Refused on its re-attach: the send in flight fails, and the link with it.
  auto refused = open_link<sender>(io, c, "refuse-again");
  send_log refused_log;
  refused_log.send(refused, "kill-r");

  REQUIRE(run_until(io, [&] {
    return log.errors.size() == 3 && hello && lost.size() == 2 && refused_log.errors.size() == 1;
  }));
  for (const char* id : {"a", "kill", "b"}) {
    CAPTURE(id);
    CHECK_FALSE(log.errors[id]);
    CHECK(log.states[id] == state_kind::accepted);
  }
  CHECK(node.attaches("q") == 2);
  CHECK(node.seen("kill") == 2); // the second accepted
  CHECK(node.seen("kill-r") == 1);
  CHECK(*hello == "hello");
  CHECK(node.attaches("src") == 2);
  CHECK(lost["stolen"] == make_error_code(errc::remote_error));
  CHECK(lost["redirect"] == make_error_code(errc::remote_error));
  REQUIRE(kept["stolen"].remote_error());
  CHECK(kept["stolen"].remote_error()->condition == "amqp:link:stolen");
  CHECK(refused_log.errors["kill-r"] == make_error_code(errc::remote_error));
  CHECK(node.attaches("refuse-again") == 2);
  // Time enough for a re-attach that should not come (delays are at most 100 ms).
  io.run_for(300ms);
  CHECK(node.attaches("stolen") == 1);
  CHECK(node.attaches("redirect") == 1);
  CHECK(node.attaches("refuse-again") == 2);
  CHECK(c.relinks() == 3); // q, src, refuse-again (refused)
  CHECK(c.reconnects() == 0);
  // The refused link is done: a send fails at once.
  std::optional<std::error_code> after;
  refused.async_send(test::make_message("late"),
                     [&](std::error_code ec, const delivery_outcome&) { after = ec; });
  REQUIRE(run_until(io, [&] { return after.has_value(); }));
  CHECK(*after);
  bool closed = false;
  c.async_close([&](std::error_code) { closed = true; });
  CHECK(run_until(io, [&] { return closed; }));
}

TEST_CASE("transport: the peer ends the session: the client reconnects and resends; with "
          "relink off the link fails, as before") {
  for (const bool relink : {true, false}) {
    CAPTURE(relink);
    relink_node node;
    test::serving server(node);
    client_options o;
    o.relink = relink;
    o.reconnect.enabled = true;
    o.reconnect.initial_delay = 20ms;
    o.reconnect.max_delay = 100ms;
    asio::io_context io;
    client c = connect_to(io, server.url(), o);
    auto s = open_link<sender>(io, c, "q");
    send_log log;
    for (const char* id : {"a", "end-session", "b"}) {
      log.send(s, id);
    }
    REQUIRE(run_until(io, [&] { return log.errors.size() == 3; }));
    CHECK_FALSE(log.errors["a"]);
    if (relink) {
      CHECK_FALSE(log.errors["end-session"]);
      CHECK(log.states["end-session"] == state_kind::accepted);
      CHECK_FALSE(log.errors["b"]);
      CHECK(log.states["b"] == state_kind::accepted);
      CHECK(c.reconnects() == 1);
      CHECK(node.attaches("q") == 2);
    } else {
      CHECK(log.errors["end-session"] == make_error_code(errc::remote_error));
      CHECK(c.reconnects() == 0);
      CHECK(node.attaches("q") == 1);
    }
    bool closed = false;
    c.async_close([&](std::error_code) { closed = true; });
    CHECK(run_until(io, [&] { return closed; }));
  }
}

TEST_CASE("transport: relink off: a link the peer detaches with an error fails at once") {
  relink_node node;
  test::serving server(node);
  client_options o;
  o.relink = false;
  asio::io_context io;
  client c = connect_to(io, server.url(), o);
  auto s = open_link<sender>(io, c, "q");
  send_log log;
  for (const char* id : {"kill", "b"}) {
    log.send(s, id);
  }
  REQUIRE(run_until(io, [&] { return log.errors.size() == 2; }));
  CHECK(log.errors["kill"] == make_error_code(errc::remote_error));
  CHECK(log.errors["b"] == make_error_code(errc::remote_error));
  CHECK(node.attaches("q") == 1);
  CHECK(c.relinks() == 0);
  bool closed = false;
  c.async_close([&](std::error_code) { closed = true; });
  CHECK(run_until(io, [&] { return closed; }));
}
