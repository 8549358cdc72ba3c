// Engine: protocol headers (AMQP 1.0 §2.2, §5.2.1, §5.3.1) in both roles, refusal of
// headers this end does not speak, and a client that pipelines SASL and AMQP (§5.3.2).
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/connection.hpp"
#include "support/doctest_print.hpp"
#include "support/engine_pair.hpp"
#include "support/frame_script.hpp"
#include "support/hex.hpp"

using namespace amqp;
using namespace amqp::test;
using detail::protocol_id;

namespace {

using names = std::vector<std::string>;

connection_options sasl_server_options() {
  connection_options o;
  o.sasl.enabled = true;
  o.sasl.server_mechanisms = "PLAIN ANONYMOUS";
  return o;
}

// A server that refused the peer's header: it wrote exactly its own header, nothing else,
// is finished, and reported the mismatch once.
void check_refused(frame_script& s, const std::string& own_header) {
  CHECK(s.take_names() == names{own_header});
  CHECK(s.conn.finished());
  CHECK(s.conn.error() == errc::protocol_mismatch);
  const auto* c = s.find<connection_closed>();
  REQUIRE(c != nullptr);
  CHECK(c->code == errc::protocol_mismatch);
  CHECK_FALSE(c->remote);
  // Fatal errors stick (STYLE §4): the next receive returns the same error.
  auto again = s.conn.receive(header_bytes(protocol_id::amqp), s.now);
  REQUIRE_FALSE(again);
  CHECK(again.error() == errc::protocol_mismatch);
}

} // namespace

TEST_CASE("engine: §2.2 client writes the AMQP 1.0.0 header first and nothing else") {
  frame_script s({}, connection_role::client);
  const auto items = s.take();
  REQUIRE(items.size() == 1);
  CHECK(items[0]->bytes == header_bytes(protocol_id::amqp));
  // The client's frames follow only once it opens.
  REQUIRE(s.conn.open());
  s.collect();
  CHECK(s.take_names() == names{"open"});
}

TEST_CASE("engine: §2.2 server writes nothing until the client's header, then answers with its "
          "own") {
  frame_script s({}, connection_role::server);
  CHECK(s.take().empty());
  REQUIRE(s.feed_header());
  const auto items = s.take();
  REQUIRE(items.size() == 1);
  CHECK(items[0]->bytes == header_bytes(protocol_id::amqp));
  REQUIRE(s.feed(peer_open("client")));
  CHECK(s.count<connection_opened>() == 1);
  REQUIRE(s.conn.open());
  s.collect();
  CHECK(s.take_names() == names{"open"});
}

TEST_CASE("engine: §5.3.1 client with SASL writes the SASL header first") {
  connection_options o;
  o.sasl.enabled = true;
  frame_script s(o, connection_role::client);
  const auto items = s.take();
  REQUIRE(items.size() == 1);
  CHECK(items[0]->bytes == header_bytes(protocol_id::sasl));
}

TEST_CASE("engine: §5.3.1 server with SASL answers the SASL header with its own and "
          "sasl-mechanisms") {
  frame_script s(sasl_server_options(), connection_role::server);
  REQUIRE(s.feed_header(protocol_id::sasl));
  const auto items = s.take();
  REQUIRE(items.size() == 2);
  CHECK(items[0]->bytes == header_bytes(protocol_id::sasl));
  auto m = items[1]->sasl_as<sasl_mechanisms>();
  REQUIRE(m);
  std::vector<std::string> mechs;
  m->sasl_server_mechanisms.for_each([&](std::string_view x) { mechs.emplace_back(x); });
  CHECK(mechs == names{"PLAIN", "ANONYMOUS"});
  CHECK_FALSE(s.conn.finished());
}

TEST_CASE("engine: §5.2.1 server answers the TLS header with its own header, then finishes") {
  SUBCASE("without SASL: the AMQP header") {
    frame_script s({}, connection_role::server);
    (void)s.feed_header(protocol_id::tls);
    check_refused(s, "header amqp");
  }
  SUBCASE("with SASL: the SASL header") {
    frame_script s(sasl_server_options(), connection_role::server);
    (void)s.feed_header(protocol_id::tls);
    check_refused(s, "header sasl");
  }
}

TEST_CASE("engine: §2.2 server answers an unsupported version with its own header, then "
          "finishes") {
  const std::vector<std::vector<std::byte>> headers = {
      from_hex("41 4d 51 50 00 01 01 00"), // AMQP 0 1.1.0
      from_hex("41 4d 51 50 00 02 00 00"), // AMQP 0 2.0.0
      from_hex("41 4d 51 50 00 00 09 01"), // AMQP 0 0.9.1
      from_hex("41 4d 51 50 04 01 00 00"), // an undefined protocol id
      from_hex("41 4d 51 50 01 01 00 09"), // AMQP 0-10's id and version
  };
  for (const auto& h : headers) {
    CAPTURE(to_hex(h));
    frame_script s({}, connection_role::server);
    (void)s.feed_bytes(h);
    check_refused(s, "header amqp");
  }
}

TEST_CASE("engine: §2.2 server answers HTTP with its own header, then finishes") {
  SUBCASE("a whole request") {
    frame_script s({}, connection_role::server);
    (void)s.feed_bytes(as_bytes("GET / HTTP/1.1\r\nHost: example\r\n\r\n"));
    check_refused(s, "header amqp");
  }
  SUBCASE("three bytes are enough to tell") {
    // A peer speaking another protocol may wait for the server to talk first.
    frame_script s({}, connection_role::server);
    (void)s.feed_bytes(as_bytes("GET"));
    check_refused(s, "header amqp");
  }
  SUBCASE("garbage after a valid prefix") {
    frame_script s({}, connection_role::server);
    (void)s.feed_bytes(as_bytes("AMQ"));
    CHECK(s.take().empty());
    CHECK_FALSE(s.conn.finished());
    (void)s.feed_bytes(from_hex("00 00 00 00 00"));
    check_refused(s, "header amqp");
  }
  SUBCASE("with SASL") {
    frame_script s(sasl_server_options(), connection_role::server);
    (void)s.feed_bytes(as_bytes("\x16\x03\x01\x02\x00\x01\x00\x01"));
    check_refused(s, "header sasl");
  }
}

TEST_CASE("engine: §5.3.1 server that requires SASL answers the AMQP header with the SASL "
          "header") {
  frame_script s(sasl_server_options(), connection_role::server);
  (void)s.feed_header(protocol_id::amqp);
  check_refused(s, "header sasl");
}

TEST_CASE("engine: §5.3.1 server with optional SASL serves either header") {
  auto o = sasl_server_options();
  o.sasl.optional = true;
  SUBCASE("AMQP header: no SASL layer") {
    engine_pair p({}, o);
    p.record_wire = true;
    REQUIRE(p.client.open());
    REQUIRE(p.pump());
    CHECK(p.server_wire.names() == std::vector<std::string>{"header amqp", "open"});
    CHECK(p.server_log == std::vector<std::string>{"connection_opened"});
    CHECK(p.server.sasl_skipped());
    CHECK_FALSE(p.server.error());
  }
  SUBCASE("SASL header: the SASL exchange") {
    connection_options c;
    c.sasl.enabled = true;
    o.sasl.server_mechanisms = "ANONYMOUS";
    o.sasl.accept_anonymous = true;
    engine_pair p(c, o);
    p.record_wire = true;
    REQUIRE(p.client.open());
    REQUIRE(p.pump());
    CHECK(p.server_wire.names().front() == "header sasl");
    CHECK(p.server_log == std::vector<std::string>{"sasl_done 0", "connection_opened"});
    CHECK_FALSE(p.server.sasl_skipped());
  }
  SUBCASE("anything else is still refused") {
    frame_script s(o, connection_role::server);
    (void)s.feed_header(protocol_id::tls);
    check_refused(s, "header sasl");
  }
}

TEST_CASE("engine: §2.2 server without SASL answers the SASL header with the AMQP header") {
  frame_script s({}, connection_role::server);
  (void)s.feed_header(protocol_id::sasl);
  check_refused(s, "header amqp");
}

TEST_CASE("engine: §2.2 client gives up on a header other than the one it sent") {
  SUBCASE("SASL header to a plain client") {
    frame_script s({}, connection_role::client);
    (void)s.take();
    REQUIRE(s.conn.open());
    s.collect();
    (void)s.take();
    (void)s.feed_header(protocol_id::sasl);
    CHECK(s.take().empty()); // no close frame before the headers agree
    CHECK(s.conn.finished());
    CHECK(s.conn.error() == errc::protocol_mismatch);
    REQUIRE(s.find<connection_closed>() != nullptr);
    CHECK(s.find<connection_closed>()->code == errc::protocol_mismatch);
  }
  SUBCASE("another version") {
    frame_script s({}, connection_role::client);
    (void)s.take();
    (void)s.feed_bytes(from_hex("41 4d 51 50 00 01 01 00"));
    CHECK(s.take().empty());
    CHECK(s.conn.finished());
    CHECK(s.conn.error() == errc::protocol_mismatch);
  }
  SUBCASE("AMQP header to a SASL client") {
    connection_options o;
    o.sasl.enabled = true;
    frame_script s(o, connection_role::client);
    (void)s.take();
    (void)s.feed_header(protocol_id::amqp);
    CHECK(s.take().empty());
    CHECK(s.conn.finished());
    CHECK(s.conn.error() == errc::protocol_mismatch);
  }
}

TEST_CASE("engine: §5.3.2 pipelined client sends SASL header, init, AMQP header, open, begin and "
          "attach in one write") {
  connection_options co;
  co.sasl.enabled = true;
  co.sasl.pipeline = true;
  connection_options so;
  so.sasl.enabled = true;
  so.sasl.server_mechanisms = "ANONYMOUS";
  so.sasl.accept_anonymous = true;

  std::size_t chunk = 0;
  SUBCASE("one write") {
    chunk = 0;
  }
  SUBCASE("byte by byte") {
    chunk = 1;
  }
  SUBCASE("in pieces of 7") {
    chunk = 7;
  }
  CAPTURE(chunk);

  engine_pair p(co, so);
  p.record_wire = true;
  p.chunk = chunk;
  REQUIRE(p.client.open());
  auto ssn = p.client.begin();
  REQUIRE(ssn);
  link_options lo;
  lo.name = "pipelined";
  lo.role = role::sender;
  lo.target = target{};
  lo.target->address = "q";
  auto l = p.client.attach(*ssn, lo);
  REQUIRE(l);
  // Everything is in the client's output before a single byte came back.
  {
    wire_parser w;
    w.feed(p.client.pending_output());
    CHECK(w.pending() == 0);
    CHECK(w.names() == names{"header sasl", "sasl-init", "header amqp", "open", "begin", "attach"});
    auto init = w.items[1].sasl_as<sasl_init>();
    REQUIRE(init);
    CHECK(init->mechanism.str == "ANONYMOUS");
  }
  REQUIRE(p.pump(10'000'000));
  CHECK(p.server_log ==
        names{"sasl_done 0", "connection_opened", "session_begun", "link_attached"});
  CHECK(p.client_log ==
        names{"sasl_done 0", "connection_opened", "session_begun", "link_attached"});
  CHECK(p.server_wire.names() == names{"header sasl", "sasl-mechanisms", "sasl-outcome",
                                       "header amqp", "open", "begin", "attach"});
  CHECK_FALSE(p.client.error());
  CHECK_FALSE(p.server.error());
  auto st = p.client.state(*l);
  REQUIRE(st);
  CHECK(*st == endpoint_state{endpoint_status::active, endpoint_status::active});
}
