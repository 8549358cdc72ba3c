// Errors say what was wrong: each failure reaches the caller as a specific errc and a readable
// text (client::last_error(), blocking_client::last_error(), the `why` of connect).
#include <doctest/doctest.h>

#include "amqp/error.hpp"
#include "amqp/transport/blocking.hpp"
#include "transport/support.hpp"

using namespace amqp;
using namespace amqp::transport;
using namespace std::chrono_literals;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A port on 127.0.0.1 where nothing listens.
std::uint16_t closed_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

} // namespace

TEST_CASE("errors: a bad URL") {
  std::string why;
  auto c = blocking_client::connect("http://example.com", {}, &why);
  REQUIRE_FALSE(c);
  CHECK(c.error() == make_error_code(errc::invalid_argument));
  CHECK(contains(why, "invalid URL"));
  CHECK(contains(why, "scheme"));

  // The asynchronous client: the failed connect's client carries the text.
  asio::io_context io;
  std::error_code ec;
  std::string text;
  bool usable = true;
  client::async_connect(io, "amqp://host:99999", {}, [&](std::error_code e, client failed) {
    ec = e;
    text = failed.last_error();
    usable = static_cast<bool>(failed);
  });
  io.run();
  CHECK(ec == make_error_code(errc::invalid_argument));
  CHECK(contains(text, "invalid URL"));
  CHECK(contains(text, "port"));
  CHECK_FALSE(usable);
}

TEST_CASE("errors: a TLS file that cannot be loaded fails at once, before any connection") {
  client_options o;
  o.tls.ca_file = "/nonexistent/ca.pem";
  std::string why;
  // Nothing listens on the port either: the CA file is what is reported.
  auto c = blocking_client::connect("amqps://127.0.0.1:" + std::to_string(closed_port()), o, &why);
  REQUIRE_FALSE(c);
  CHECK(c.error() == make_error_code(errc::invalid_argument));
  CHECK(contains(why, "cannot load CA file /nonexistent/ca.pem"));

  client_options cert;
  cert.tls.cert_file = test::cert_dir() + "missing-client.pem";
  auto d = blocking_client::connect("amqps://127.0.0.1:1", cert, &why);
  REQUIRE_FALSE(d);
  CHECK(d.error() == make_error_code(errc::invalid_argument));
  CHECK(contains(why, "cannot load certificate"));
  CHECK(contains(why, "missing-client.pem"));
}

TEST_CASE("errors: a refused SASL login, and no mechanism in common") {
  broker::broker_options bo;
  bo.users = {{"alice", "s3cret"}};
  bo.allow_anonymous = false;
  test::broker_server b(bo);
  const auto port = std::to_string(b.listen("amqp://127.0.0.1:0"));
  b.start();

  std::string why;
  auto bad = blocking_client::connect("amqp://alice:wrong@127.0.0.1:" + port, {}, &why);
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == make_error_code(errc::unauthorized));
  CHECK(contains(why, "authentication failed"));
  CHECK(contains(why, "refused the PLAIN login"));
  CHECK(contains(why, "sasl-outcome auth"));
  CHECK_FALSE(contains(why, "wrong")); // never the password

  // ANONYMOUS is not offered, and the client has no user name for PLAIN.
  auto anon = blocking_client::connect("amqp://127.0.0.1:" + port, {}, &why);
  REQUIRE_FALSE(anon);
  CHECK(anon.error() == make_error_code(errc::unauthorized));
  CHECK(contains(why, "no SASL mechanism this client can use"));
}

TEST_CASE("errors: a link the peer refuses: its condition and description") {
  broker::broker_options bo;
  bo.auto_create_queues = false;
  test::broker_server b(bo);
  const auto port = b.listen("amqp://127.0.0.1:0");
  b.start();
  auto c = blocking_client::connect("amqp://127.0.0.1:" + std::to_string(port));
  REQUIRE(c);
  auto r = c->open_receiver("missing");
  REQUIRE_FALSE(r);
  CHECK(r.error() == make_error_code(errc::remote_error));
  const auto text = c->last_error();
  CHECK(contains(text, "refused to attach the receiving link"));
  CHECK(contains(text, "from 'missing'"));
  CHECK(contains(text, "amqp:not-found"));
  CHECK(contains(text, "missing")); // the broker's description names the queue
  CHECK(c->close());
}

TEST_CASE("errors: a message that cannot be encoded fails at once and says which field") {
  test::broker_server b;
  const auto port = b.listen("amqp://127.0.0.1:0");
  b.start();
  auto c = blocking_client::connect("amqp://127.0.0.1:" + std::to_string(port));
  REQUIRE(c);
  auto s = c->open_sender("q");
  REQUIRE(s);
  amqp::message m("body");
  m.properties.content_type = "t\xc3\xa9xt/plain"; // a symbol must be ASCII
  auto sent = s->send(m);
  REQUIRE_FALSE(sent);
  CHECK(sent.error() == make_error_code(errc::invalid_argument));
  const auto text = c->last_error();
  CHECK(contains(text, "message cannot be encoded"));
  CHECK(contains(text, m.check()));
  CHECK(contains(text, "properties.content-type"));
  // Nothing was sent; the sender still works.
  CHECK(s->send(amqp::message("fine")));
  CHECK(b.depth("q") == 1);
  CHECK(c->close());
}

TEST_CASE("errors: connection refused, and a connect timeout") {
  std::string why;
  auto refused =
      blocking_client::connect("amqp://127.0.0.1:" + std::to_string(closed_port()), {}, &why);
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == asio::error::make_error_code(asio::error::connection_refused));
  CHECK(contains(why, "cannot connect to 127.0.0.1:"));

  // A peer that accepts and never answers.
  asio::io_context io;
  asio::ip::tcp::acceptor silent(io, {asio::ip::make_address("127.0.0.1"), 0});
  client_options o;
  o.connect_timeout = 300ms;
  auto timed_out = blocking_client::connect(
      "amqp://127.0.0.1:" + std::to_string(silent.local_endpoint().port()), o, &why);
  REQUIRE_FALSE(timed_out);
  CHECK(timed_out.error() == make_error_code(errc::timeout));
  CHECK(contains(why, "within the connect timeout (300 ms)"));
}
