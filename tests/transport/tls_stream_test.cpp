// The TLS stream (transport/src/tls_stream.cpp: OpenSSL on the socket, no asio::ssl::stream)
// on 127.0.0.1 against the in-memory broker: verification failures read as OpenSSL's
// reasons, the server's alert reaches the client, records larger than reads and batches
// larger than records cross whole, a cut is a lost connection that reconnect heals.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <doctest/doctest.h>

#include "amqp/transport/blocking.hpp"
#include "amqp/transport/client.hpp"
#include "stream.hpp"
#include "transport/support.hpp"

using namespace amqp;
using namespace amqp::transport;
using namespace std::chrono_literals;
namespace td = amqp::transport::detail;

namespace {

using test::tls_client;
using test::tls_listener;

// Connects once (no reconnect) and returns the client's last_error() ("" if it connected).
std::string connect_error(const std::string& url, client_options o) {
  asio::io_context io;
  std::string why = "no answer";
  client::async_connect(io, url, std::move(o), [&](std::error_code ec, client c) {
    why = ec ? c.last_error() : std::string();
    if (c) {
      c.async_close([](std::error_code) {});
    }
  });
  io.run_for(20s);
  return why;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("tls stream: verification failures read as OpenSSL's reasons") {
  test::broker_server b;
  const auto port = std::to_string(b.listen("amqps://127.0.0.1:0", tls_listener()));
  b.start();
  CHECK(connect_error("amqps://127.0.0.1:" + port, tls_client()).empty());
  CHECK(connect_error("amqps://localhost:" + port, tls_client()).empty());

  // A CA that did not sign the server's certificate.
  const auto untrusted = connect_error("amqps://127.0.0.1:" + port, tls_client("other-ca.pem"));
  INFO(untrusted);
  CHECK(contains(untrusted, "TLS handshake"));
  CHECK(contains(untrusted, "certificate verify failed"));
  // The right CA, another name: a DNS name, and an IP address the certificate does not list.
  auto o = tls_client();
  o.tls.server_name = "wrong.example";
  const auto wrong_name = connect_error("amqps://127.0.0.1:" + port, o);
  INFO(wrong_name);
  CHECK(contains(wrong_name, "certificate verify failed"));
  auto ip = tls_client();
  ip.tls.server_name = "127.0.0.2";
  CHECK(contains(connect_error("amqps://127.0.0.1:" + port, ip), "certificate verify failed"));
}

TEST_CASE("tls stream: the server's alert reaches the client before the socket closes") {
  test::broker_server b;
  auto lo = tls_listener();
  lo.tls.ca_file = test::cert_dir() + "ca.pem";
  lo.tls.require_client_certificate = true;
  const auto port = b.listen("amqps://127.0.0.1:0", lo);
  b.start();
  // Without a client certificate the server refuses the handshake with an alert (TLS 1.3:
  // certificate_required, after the client's side of the handshake is done). The client's
  // first read reports it, rather than an end of stream.
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});
  std::string why;
  auto ctx = td::make_tls_context(tls_client().tls, false, why);
  REQUIRE(ctx);
  std::shared_ptr<td::byte_stream> stream;
  std::error_code handshake_error = make_error_code(errc::timeout);
  td::async_tls_handshake(*ctx, std::move(socket), false, "127.0.0.1", true,
                          [&](std::error_code ec, std::shared_ptr<td::byte_stream> s) {
                            handshake_error = ec;
                            stream = std::move(s);
                          });
  io.run_for(10s);
  REQUIRE_FALSE(handshake_error);
  REQUIRE(stream);
  std::vector<std::byte> buffer(1024);
  std::error_code read_error = make_error_code(errc::timeout);
  stream->async_read_some(buffer, [&](std::error_code ec, std::size_t) { read_error = ec; });
  io.restart();
  io.run_for(10s);
  INFO(read_error.message());
  CHECK(contains(read_error.message(), "alert"));
  stream->close();
}

TEST_CASE("tls stream: large and many messages cross whole, both ways") {
  test::broker_server b;
  const auto port = std::to_string(b.listen("amqps://127.0.0.1:0", tls_listener()));
  b.start();
  auto c = blocking_client::connect("amqps://127.0.0.1:" + port, tls_client());
  REQUIRE_MESSAGE(c, c.error().message());
  auto s = c->open_sender("tls");
  REQUIRE(s);
  // 1 MiB messages: batches of many 16 KiB records; 3000 small ones: many frames per record.
  for (int i = 0; i < 3; ++i) {
    auto out = s->send(test::make_message("big" + std::to_string(i), 1 << 20));
    REQUIRE(out);
    CHECK(out->state == state_kind::accepted);
  }
  for (int i = 0; i < 3000; ++i) {
    REQUIRE(s->send(test::make_message(std::to_string(i), 200)));
  }
  auto r = c->open_receiver("tls");
  REQUIRE(r);
  for (int i = 0; i < 3003; ++i) {
    auto m = r->receive(10s);
    REQUIRE_MESSAGE(m, m.error().message());
    auto d = m->decode();
    REQUIRE(d);
    const auto id = test::message_id(m->bytes());
    CHECK(id == (i < 3 ? "big" + std::to_string(i) : std::to_string(i - 3)));
    CHECK(d->data().size() == (i < 3 ? std::size_t{1} << 20 : 200));
    REQUIRE(r->accept(*m));
  }
  CHECK(c->close());
}

TEST_CASE("tls stream: a cut connection is lost, and reconnect heals over TLS") {
  test::broker_server b;
  const auto port = b.listen("amqps://127.0.0.1:0", tls_listener());
  b.start();
  test::fault_proxy proxy(port);
  auto o = tls_client();
  o.reconnect.enabled = true;
  o.reconnect.initial_delay = 20ms;
  o.reconnect.max_delay = 200ms;
  asio::io_context io;
  client c;
  sender s;
  std::size_t accepted = 0;
  std::size_t failed = 0;
  constexpr std::size_t n = 1000;
  bool cut_done = false;
  // The first half, all accepted; then the cut (mid-stream, no close_notify) and the second
  // half, which only a new connection can carry. (Cutting after some outcomes of one batch
  // may come too late: the broker may settle the whole batch in one disposition.)
  std::function<void(std::size_t, std::size_t)> send_range = [&](std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to; ++i) {
      s.async_send(test::make_message(std::to_string(i)),
                   [&](std::error_code se, delivery_outcome out) {
                     if (se) {
                       ++failed;
                     } else if (out.state == state_kind::accepted) {
                       ++accepted;
                     }
                     if (accepted == n / 2 && !cut_done) {
                       cut_done = true;
                       proxy.cut();
                       send_range(n / 2, n);
                     }
                   });
    }
  };
  client::async_connect(io, "amqps://127.0.0.1:" + std::to_string(proxy.port()), o,
                        [&](std::error_code ec, client cl) {
                          REQUIRE_FALSE(ec);
                          c = cl;
                          c.async_open_sender("cut", {}, [&](std::error_code e, sender sd) {
                            REQUIRE_FALSE(e);
                            s = sd;
                            send_range(0, n / 2);
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
  bool closed = false;
  c.async_close([&](std::error_code) { closed = true; });
  while (!closed) {
    io.run_for(10ms);
  }
}

TEST_CASE("tls stream: clients with the same files share one TLS context while one holds it") {
  std::string why;
  std::weak_ptr<asio::ssl::context> first;
  {
    auto a = td::shared_client_tls_context(tls_client().tls, why);
    auto b = td::shared_client_tls_context(tls_client().tls, why);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->get() == b->get());
    first = *a;
    // Another CA, or verification off: a context of its own.
    auto other = td::shared_client_tls_context(tls_client("other-ca.pem").tls, why);
    auto unverified_options = tls_client().tls;
    unverified_options.verify = false;
    auto unverified = td::shared_client_tls_context(unverified_options, why);
    REQUIRE(other);
    REQUIRE(unverified);
    CHECK(other->get() != a->get());
    CHECK(unverified->get() != a->get());
    // A file that cannot be read fails as make_tls_context does.
    auto missing = td::shared_client_tls_context(tls_client("no-such-ca.pem").tls, why);
    CHECK_FALSE(missing);
    CHECK(contains(why, "no-such-ca.pem"));
  }
  // Once no one holds it, it is gone, and the next client loads the files again.
  CHECK(first.expired());
  auto c = td::shared_client_tls_context(tls_client().tls, why);
  REQUIRE(c);
  CHECK(*c != nullptr);

  // Clients connected with the same options work as before (bench_idle_tls: 10,000 at once).
  test::broker_server broker;
  const auto port = broker.listen("amqps://127.0.0.1:0", tls_listener());
  broker.start();
  CHECK(connect_error("amqps://127.0.0.1:" + std::to_string(port), tls_client()).empty());
  CHECK(connect_error("amqps://127.0.0.1:" + std::to_string(port), tls_client()).empty());
}

TEST_CASE("tls stream: a connection dropped with its io_context, never closed, is freed") {
  // The stream keeps the driver's read and write handlers, which keep the stream: an
  // io_context destroyed with the connection open (a write in flight, a read waiting) must
  // still free it (found by ASan in the IoT Hub client tests).
  test::broker_server b;
  const auto port = std::to_string(b.listen("amqps://127.0.0.1:0", tls_listener()));
  b.start();
  const auto before = td::live_tls_streams();
  {
    asio::io_context io;
    client c;
    sender s;
    client::async_connect(io, "amqps://127.0.0.1:" + port, tls_client(),
                          [&](std::error_code ec, client cl) {
                            REQUIRE_FALSE(ec);
                            c = std::move(cl);
                            c.async_open_sender("q", {}, [&](std::error_code e, sender sn) {
                              REQUIRE_FALSE(e);
                              s = std::move(sn);
                            });
                          });
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!s && std::chrono::steady_clock::now() < deadline) {
      io.run_for(10ms);
    }
    REQUIRE(s);
    CHECK(td::live_tls_streams() == before + 2); // the client's and the broker's
    // A large message: its write is still in flight when everything goes.
    const std::vector<std::byte> big(4 * 1024 * 1024, std::byte{'x'});
    s.async_send(big, [](std::error_code, delivery_outcome) {});
    io.poll();
  }
  // The client's stream went with its io_context; the broker's once it sees the socket close.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (td::live_tls_streams() != before && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  CHECK(td::live_tls_streams() == before);
}
