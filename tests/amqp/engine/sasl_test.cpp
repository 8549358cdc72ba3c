// Engine: SASL (AMQP 1.0 §5.3) in both roles: ANONYMOUS, PLAIN, EXTERNAL, a pluggable
// mechanism with challenge/response rounds, failures, and the 512-byte SASL frame limit.
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

connection_options sasl_client() {
  connection_options o;
  o.sasl.enabled = true;
  return o;
}

connection_options sasl_server(std::string_view mechanisms, bool accept_anonymous = false) {
  connection_options o;
  o.sasl.enabled = true;
  o.sasl.server_mechanisms = mechanisms;
  o.sasl.accept_anonymous = accept_anonymous;
  return o;
}

} // namespace

TEST_CASE("engine: §5.3.3 SASL ANONYMOUS accepted by the server itself (accept_anonymous)") {
  engine_pair p(sasl_client(), sasl_server("ANONYMOUS", true));
  p.record_wire = true;
  REQUIRE(p.client.open());
  REQUIRE(p.pump());
  CHECK(p.client_log == names{"sasl_done 0", "connection_opened"});
  CHECK(p.server_log == names{"sasl_done 0", "connection_opened"});
  // §5.3.2: the AMQP header follows the SASL exchange on both sides.
  CHECK(p.client_wire.names() == names{"header sasl", "sasl-init", "header amqp", "open"});
  CHECK(p.server_wire.names() ==
        names{"header sasl", "sasl-mechanisms", "sasl-outcome", "header amqp", "open"});
  auto init = p.client_wire.items[1].sasl_as<sasl_init>();
  REQUIRE(init);
  CHECK(init->mechanism.str == "ANONYMOUS");
  auto outcome = p.server_wire.items[2].sasl_as<sasl_outcome>();
  REQUIRE(outcome);
  CHECK(outcome->code == sasl_code::ok);
}

TEST_CASE("engine: §5.3.3.2 SASL ANONYMOUS decided by the application from "
          "sasl_init_received") {
  engine_pair p(sasl_client(), sasl_server("ANONYMOUS"));
  int inits = 0;
  p.on_event = [&](side s, connection& c, const event& e) {
    if (s == side::server) {
      if (const auto* i = std::get_if<sasl_init_received>(&e)) {
        ++inits;
        CHECK(i->mechanism.str == "ANONYMOUS");
        CHECK(c.sasl_complete(sasl_code::ok));
        return true;
      }
    }
    return false;
  };
  REQUIRE(p.client.open());
  REQUIRE(p.pump());
  CHECK(inits == 1);
  CHECK(p.client_log == names{"sasl_done 0", "connection_opened"});
  CHECK(p.server_log == names{"sasl_init_received", "sasl_done 0", "connection_opened"});
}

TEST_CASE("engine: §5.3.3.2 SASL PLAIN: the credentials reach the server's "
          "sasl_init_received") {
  connection_options co = sasl_client();
  co.sasl.username = "user";
  co.sasl.password = "s3cret";
  co.sasl.hostname = "vhost.example";
  // The server lists ANONYMOUS first; a client with a username still picks PLAIN.
  engine_pair p(co, sasl_server("ANONYMOUS PLAIN"));
  std::string mechanism, username, password, authzid, hostname, response;
  bool accept = true;
  SUBCASE("right password") {
    accept = true;
  }
  SUBCASE("wrong password") {
    accept = false;
  }
  p.on_event = [&](side s, connection& c, const event& e) {
    if (s == side::server) {
      if (const auto* i = std::get_if<sasl_init_received>(&e)) {
        mechanism = i->mechanism.str;
        username = i->username;
        password = i->password;
        authzid = i->authzid;
        hostname = i->hostname;
        response = as_string(i->initial_response);
        CHECK(c.sasl_complete(accept ? sasl_code::ok : sasl_code::auth));
        return true;
      }
    }
    return false;
  };
  REQUIRE(p.client.open());
  REQUIRE(p.pump());
  CHECK(mechanism == "PLAIN");
  CHECK(username == "user");
  CHECK(password == "s3cret");
  CHECK(authzid.empty());
  CHECK(hostname == "vhost.example");
  // RFC 4616: authzid NUL authcid NUL passwd.
  CHECK(response == std::string("\0user\0s3cret", 12));
  if (accept) {
    CHECK(p.client_log == names{"sasl_done 0", "connection_opened"});
    CHECK_FALSE(p.client.finished());
  } else {
    // sasl-outcome auth (1): the client reports it, then the connection ends, unauthorized.
    CHECK(p.client_log == names{"sasl_done 1", "connection_closed"});
    CHECK(p.client.finished());
    CHECK(p.server.finished());
    CHECK(p.client.error() == errc::unauthorized);
    auto r = p.client.receive({}, p.now);
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::unauthorized);
    CHECK(p.client.begin().error() == errc::unauthorized);
  }
}

TEST_CASE("engine: §5.3.3.6 SASL failure: the client sees sasl_done code 1 then "
          "connection_closed unauthorized") {
  connection_options co = sasl_client();
  co.sasl.username = "user";
  co.sasl.password = "wrong";
  engine_pair p(co, sasl_server("PLAIN"));
  p.on_event = [&](side s, connection& c, const event& e) {
    if (s == side::server && std::holds_alternative<sasl_init_received>(e)) {
      CHECK(c.sasl_complete(sasl_code::auth));
      return true;
    }
    return false;
  };
  std::vector<event> client_events;
  p.on_event = [&, inner = p.on_event](side s, connection& c, const event& e) {
    if (s == side::client) {
      client_events.push_back(e);
    }
    return inner(s, c, e);
  };
  REQUIRE(p.client.open());
  REQUIRE(p.pump());
  REQUIRE(client_events.size() == 2);
  const auto* done = std::get_if<sasl_done>(&client_events[0]);
  REQUIRE(done != nullptr);
  CHECK(done->code == sasl_code::auth);
  CHECK(done->mechanism.str == "PLAIN");
  const auto* closed = std::get_if<connection_closed>(&client_events[1]);
  REQUIRE(closed != nullptr);
  CHECK(closed->code == errc::unauthorized);
  CHECK_FALSE(closed->remote);
  CHECK(p.client.state().remote != endpoint_status::active);
}

TEST_CASE("engine: §5.3.3.2 SASL EXTERNAL") {
  connection_options co = sasl_client();
  co.sasl.external = true;
  engine_pair p(co, sasl_server("EXTERNAL"));
  std::string mechanism;
  std::size_t response_size = 99;
  p.on_event = [&](side s, connection& c, const event& e) {
    if (s == side::server) {
      if (const auto* i = std::get_if<sasl_init_received>(&e)) {
        mechanism = i->mechanism.str;
        response_size = i->initial_response.size();
        CHECK(c.sasl_complete(sasl_code::ok));
        return true;
      }
    }
    return false;
  };
  REQUIRE(p.client.open());
  REQUIRE(p.pump());
  CHECK(mechanism == "EXTERNAL");
  CHECK(response_size == 0); // the identity comes from the TLS layer
  CHECK(p.client_log == names{"sasl_done 0", "connection_opened"});
  CHECK(p.server_log == names{"sasl_init_received", "sasl_done 0", "connection_opened"});
}

TEST_CASE("engine: §5.3.3.3 pluggable SASL mechanism with challenge/response rounds") {
  const auto first = as_bytes("client-first");
  connection_options co = sasl_client();
  co.sasl.mechanism = "X-TEST-ROUNDS";
  co.sasl.initial_response = first;
  engine_pair p(co, sasl_server("PLAIN X-TEST-ROUNDS"));
  p.record_wire = true;
  std::vector<std::string> server_saw, client_saw;
  std::string final_data;
  p.on_event = [&](side s, connection& c, const event& e) {
    if (s == side::server) {
      if (const auto* i = std::get_if<sasl_init_received>(&e)) {
        server_saw.push_back(std::string(i->mechanism.str) + ":" + as_string(i->initial_response));
        CHECK(c.sasl_challenge(as_bytes("challenge-1")));
        return true;
      }
      if (const auto* r = std::get_if<sasl_response_received>(&e)) {
        const std::string resp = as_string(r->response);
        server_saw.push_back(resp);
        if (resp == "response-1") {
          CHECK(c.sasl_challenge(as_bytes("challenge-2")));
        } else {
          CHECK(c.sasl_complete(sasl_code::ok, as_bytes("server-final")));
        }
        return true;
      }
    } else {
      if (const auto* ch = std::get_if<sasl_challenge_received>(&e)) {
        const std::string text = as_string(ch->challenge);
        client_saw.push_back(text);
        CHECK(c.sasl_respond(as_bytes(text == "challenge-1" ? "response-1" : "response-2")));
        return true;
      }
      if (const auto* d = std::get_if<sasl_done>(&e)) {
        final_data = as_string(d->additional_data);
        CHECK(d->mechanism.str == "X-TEST-ROUNDS");
      }
    }
    return false;
  };
  REQUIRE(p.client.open());
  REQUIRE(p.pump());
  CHECK(server_saw == names{"X-TEST-ROUNDS:client-first", "response-1", "response-2"});
  CHECK(client_saw == names{"challenge-1", "challenge-2"});
  CHECK(final_data == "server-final");
  CHECK(p.client_log == names{"sasl_challenge_received", "sasl_challenge_received", "sasl_done 0",
                              "connection_opened"});
  CHECK(p.server_log == names{"sasl_init_received", "sasl_response_received",
                              "sasl_response_received", "sasl_done 0", "connection_opened"});
  CHECK(p.client_wire.names() ==
        names{"header sasl", "sasl-init", "sasl-response", "sasl-response", "header amqp", "open"});
  CHECK(p.server_wire.names() == names{"header sasl", "sasl-mechanisms", "sasl-challenge",
                                       "sasl-challenge", "sasl-outcome", "header amqp", "open"});
}

TEST_CASE("engine: §5.3.3.1 client with no mechanism in common gives up, unauthorized") {
  connection_options co = sasl_client();
  co.sasl.username = "user";
  co.sasl.password = "pw";
  engine_pair p(co, sasl_server("EXTERNAL"));
  REQUIRE(p.client.open());
  (void)p.pump();
  CHECK(p.client.finished());
  CHECK(p.client.error() == errc::unauthorized);
  REQUIRE_FALSE(p.client_log.empty());
  CHECK(p.client_log.back() == "connection_closed");
}

TEST_CASE("engine: §5.3.3.2 server refuses a mechanism it does not offer with an "
          "authentication failure") {
  frame_script s(sasl_server("PLAIN"), connection_role::server);
  REQUIRE(s.feed_header(protocol_id::sasl));
  (void)s.take();
  sasl_init init;
  init.mechanism = symbol_view{"CRAM-MD5"};
  (void)s.feed_sasl(init);
  CHECK(s.find<sasl_init_received>() == nullptr);
  auto items = s.take();
  REQUIRE(items.size() == 1);
  auto o = items[0]->sasl_as<sasl_outcome>();
  REQUIRE(o);
  CHECK(o->code == sasl_code::auth);
  CHECK(s.conn.finished());
}

TEST_CASE("engine: §5.3.1 SASL frame above 512 bytes refused from its header before "
          "authentication") {
  SUBCASE("server: an oversized sasl-init") {
    frame_script s(sasl_server("PLAIN ANONYMOUS"), connection_role::server);
    REQUIRE(s.feed_header(protocol_id::sasl));
    (void)s.take();
    // The 8 header bytes alone (SIZE 513, DOFF 2, TYPE 1): no body follows yet.
    auto r = s.feed_bytes(from_hex("00 00 02 01 02 01 00 00"));
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::frame_too_large);
    CHECK(s.conn.error() == errc::frame_too_large);
    CHECK(s.conn.finished());
    CHECK(s.find<sasl_init_received>() == nullptr);
    const auto* c = s.find<connection_closed>();
    REQUIRE(c != nullptr);
    CHECK(c->code == errc::frame_too_large);
    for (const auto* i : s.take()) {
      CHECK(i->name() != "sasl-outcome"); // nobody was authenticated
    }
  }
  SUBCASE("server: exactly 512 bytes is accepted") {
    frame_script s(sasl_server("PLAIN ANONYMOUS"), connection_role::server);
    REQUIRE(s.feed_header(protocol_id::sasl));
    std::vector<std::byte> filler(600, std::byte{'x'});
    sasl_init init;
    init.mechanism = symbol_view{"PLAIN"};
    init.initial_response = binary_view(filler);
    auto full = detail::encoded_frame_size(sasl_frame{init});
    REQUIRE(full);
    init.initial_response = binary_view(filler).first(600 - (*full - 512));
    auto f = sasl_frame_bytes(init);
    REQUIRE(f.size() == 512);
    REQUIRE(s.feed_bytes(f));
    CHECK(s.find<sasl_init_received>() != nullptr);
  }
  SUBCASE("client: an oversized sasl-mechanisms") {
    frame_script s(sasl_client(), connection_role::client);
    REQUIRE(s.feed_header(protocol_id::sasl));
    (void)s.take();
    auto r = s.feed_bytes(from_hex("00 00 10 00 02 01 00 00"));
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::frame_too_large);
    CHECK(s.conn.finished());
    CHECK(s.take().empty());
  }
}

TEST_CASE("engine: §5.3.2 pipelined PLAIN: the server holds the AMQP frames until the "
          "application decides") {
  connection_options co = sasl_client();
  co.sasl.username = "user";
  co.sasl.password = "pw";
  co.sasl.pipeline = true;
  bool accept = true;
  SUBCASE("accepted later") {
    accept = true;
  }
  SUBCASE("refused later") {
    accept = false;
  }
  engine_pair p(co, sasl_server("PLAIN"));
  p.on_event = [&](side s, connection&, const event& e) {
    // The decision is not taken in the handler: the server waits for the application.
    return s == side::server && std::holds_alternative<sasl_init_received>(e);
  };
  REQUIRE(p.client.open());
  auto ssn = p.client.begin();
  REQUIRE(ssn);
  link_options lo;
  lo.name = "early";
  lo.role = role::sender;
  lo.target = target{};
  REQUIRE(p.client.attach(*ssn, lo));
  REQUIRE(p.pump());
  CHECK(p.server_log == names{"sasl_init_received"});
  CHECK_FALSE(p.server.wants_read());
  REQUIRE(p.server.sasl_complete(accept ? sasl_code::ok : sasl_code::auth));
  REQUIRE(p.pump());
  if (accept) {
    CHECK(p.server_log == names{"sasl_init_received", "sasl_done 0", "connection_opened",
                                "session_begun", "link_attached"});
    CHECK(p.client_log ==
          names{"sasl_done 0", "connection_opened", "session_begun", "link_attached"});
  } else {
    // Nothing the client pipelined after its sasl-init may reach the application.
    CHECK(p.server_log == names{"sasl_init_received", "sasl_done 1", "connection_closed"});
    CHECK(p.client_log == names{"sasl_done 1", "connection_closed"});
    CHECK(p.client.error() == errc::unauthorized);
    CHECK(p.server.finished());
  }
}

TEST_CASE("engine: §5.3.3.1 the server offers every mechanism configured, however many") {
  // Before, a fixed table of 16 silently dropped the rest from sasl-mechanisms.
  std::string list;
  names expected;
  for (int i = 0; i < 20; ++i) {
    expected.push_back("X-MECH-" + std::to_string(i));
    list += (i == 0 ? "" : " ") + expected.back();
  }
  frame_script s(sasl_server(list), connection_role::server);
  REQUIRE(s.feed_header(protocol_id::sasl));
  auto items = s.take();
  REQUIRE(items.size() == 2);
  auto m = items[1]->sasl_as<sasl_mechanisms>();
  REQUIRE(m);
  names offered;
  m->sasl_server_mechanisms.for_each([&](std::string_view x) { offered.emplace_back(x); });
  CHECK(offered == expected);
}
