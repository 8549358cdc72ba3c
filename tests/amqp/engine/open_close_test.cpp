// Engine: the connection endpoint (AMQP 1.0 §2.4, §2.7.1, §2.7.9): open fields, close with
// errors, frame-size and idle-timeout negotiation, heartbeats, timers, and the connection
// errors raised by malformed or misplaced frames (§2.3).
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
using namespace std::chrono_literals;

namespace {

using names = std::vector<std::string>;

std::vector<std::string> symbol_list(const symbols& s) {
  std::vector<std::string> v;
  s.for_each([&](std::string_view x) { v.emplace_back(x); });
  return v;
}

// A server engine that has exchanged headers and opens with the scripted client.
frame_script opened_server(connection_options o = {}) {
  frame_script s(o, connection_role::server);
  s.handshake(peer_open("client"));
  (void)s.take();
  return s;
}

// The close this end wrote, its condition, and the connection_closed it reported.
void check_closed_with(frame_script& s, std::string_view condition, errc code) {
  INFO("engine wrote: " << joined(s.out.names()));
  INFO("engine events: " << joined(s.log));
  auto c = s.last<amqp::close>();
  REQUIRE(c);
  CHECK(condition_of(c) == condition);
  CHECK(s.conn.error() == code);
  bool reported = false;
  for (const auto& line : s.log) {
    reported = reported || line == "connection_closed " + std::string(condition);
  }
  CHECK(reported);
}

} // namespace

TEST_CASE("engine: §2.7.1 open fields reach the peer both ways (remote_open)") {
  const value client_props_kv[2] = {value(symbol_view{"product"}), value("amqp-test")};
  const value client_desired[2] = {value(symbol_view{"DELAYED_DELIVERY"}),
                                   value(symbol_view{"SHARED-SUBS"})};
  const value server_props_kv[4] = {value(symbol_view{"version"}), value("1.0"),
                                    value(symbol_view{"limit"}), value(std::uint32_t{7})};
  const value server_offered[1] = {value(symbol_view{"DELAYED_DELIVERY"})};

  connection_options co;
  co.container_id = "client-1";
  co.hostname = "broker.example";
  co.limits.max_frame_size = 4096;
  co.limits.channel_max = 7;
  co.timeouts.idle_time_out = 30'000ms;
  co.properties = value::map(client_props_kv);
  co.offered_capabilities = value(symbol_view{"ANONYMOUS-RELAY"});
  co.desired_capabilities = value::array(type::symbol, client_desired);

  connection_options so;
  so.container_id = "server-1";
  so.limits.max_frame_size = 16384;
  so.limits.channel_max = 3;
  so.timeouts.idle_time_out = 20'000ms;
  so.properties = value::map(server_props_kv);
  so.offered_capabilities = value::array(type::symbol, server_offered);

  engine_pair p(co, so);
  CHECK(p.client.remote_open() == nullptr);
  REQUIRE(p.client.open());
  REQUIRE(p.pump());
  // Later traffic must not disturb the stored opens.
  REQUIRE(p.client.begin());
  REQUIRE(p.pump());

  const amqp::open* at_server = p.server.remote_open();
  REQUIRE(at_server != nullptr);
  CHECK(at_server->container_id == "client-1");
  REQUIRE(at_server->hostname);
  CHECK(*at_server->hostname == "broker.example");
  CHECK(at_server->max_frame_size == 4096);
  CHECK(at_server->channel_max == 7);
  REQUIRE(at_server->idle_time_out);
  CHECK(*at_server->idle_time_out == 15'000); // half the threshold, as §2.4.5 recommends
  CHECK(symbol_list(at_server->offered_capabilities) == names{"ANONYMOUS-RELAY"});
  CHECK(symbol_list(at_server->desired_capabilities) == names{"DELAYED_DELIVERY", "SHARED-SUBS"});
  auto product = at_server->properties.find("product");
  REQUIRE(product);
  CHECK(product->get_string() == std::optional<std::string_view>("amqp-test"));

  const amqp::open* at_client = p.client.remote_open();
  REQUIRE(at_client != nullptr);
  CHECK(at_client->container_id == "server-1");
  CHECK_FALSE(at_client->hostname);
  CHECK(at_client->max_frame_size == 16384);
  CHECK(at_client->channel_max == 3);
  REQUIRE(at_client->idle_time_out);
  CHECK(*at_client->idle_time_out == 10'000);
  CHECK(symbol_list(at_client->offered_capabilities) == names{"DELAYED_DELIVERY"});
  CHECK(at_client->desired_capabilities.empty());
  auto version = at_client->properties.find("version");
  REQUIRE(version);
  CHECK(version->get_string() == std::optional<std::string_view>("1.0"));
  auto limit = at_client->properties.find("limit");
  REQUIRE(limit);
  CHECK(limit->get_unsigned() == std::optional<std::uint64_t>(7));
}

TEST_CASE("engine: §2.7.9 close with an error reaches the peer") {
  engine_pair p;
  p.record_wire = true;
  std::optional<connection_closed> at_server, at_client;
  std::string description, condition;
  std::optional<std::uint64_t> retry;
  p.on_event = [&](side s, connection&, const event& e) {
    if (const auto* c = std::get_if<connection_closed>(&e)) {
      (s == side::server ? at_server : at_client) = *c;
      if (s == side::server && c->error) {
        condition = c->error->condition.str;
        description = c->error->description.value_or("");
        if (auto r = c->error->info.find("retry-after")) {
          retry = r->get_unsigned();
        }
      }
    }
    return false;
  };
  REQUIRE(p.client.open());
  REQUIRE(p.pump());
  const value info_kv[2] = {value(symbol_view{"retry-after"}), value(std::uint32_t{5})};
  amqp::error err{symbol_view{symbol::connection_forced}, "maintenance", value::map(info_kv)};
  REQUIRE(p.client.close(err));
  REQUIRE(p.pump());
  REQUIRE(at_server);
  CHECK(at_server->remote);
  CHECK(at_server->code == errc::remote_error);
  CHECK(condition == symbol::connection_forced);
  CHECK(description == "maintenance");
  CHECK(retry == std::optional<std::uint64_t>(5));
  // §2.4.3: the answer is a close without error.
  REQUIRE(at_client);
  CHECK(at_client->remote);
  CHECK_FALSE(at_client->code);
  CHECK_FALSE(at_client->error);
  CHECK(p.client.finished());
  CHECK(p.server.finished());
  CHECK(p.server_wire.names().back() == "close");
  auto answer = p.server_wire.items.back().as<amqp::close>();
  REQUIRE(answer);
  CHECK_FALSE(answer->error);
}

TEST_CASE("engine: §2.7.1 max-frame-size below 512 is refused with amqp:frame-size-too-small") {
  SUBCASE("511") {
    frame_script s({}, connection_role::server);
    REQUIRE(s.feed_header());
    (void)s.feed(peer_open("client", 511));
    // §2.4.1: open precedes every other frame, close included.
    CHECK(s.take_names() == names{"header amqp", "open", "close"});
    check_closed_with(s, symbol::frame_size_too_small, errc::frame_size_too_small);
    CHECK(s.conn.finished());
  }
  SUBCASE("512 is the minimum and is accepted") {
    frame_script s({}, connection_role::server);
    REQUIRE(s.feed_header());
    REQUIRE(s.feed(peer_open("client", 512)));
    CHECK(s.count<connection_opened>() == 1);
    CHECK_FALSE(s.conn.error());
  }
}

TEST_CASE("engine: §2.4.5 idle-time-out below min_peer_idle_time_out is refused with "
          "amqp:invalid-field") {
  connection_options o;
  o.timeouts.min_peer_idle_time_out = 100ms;
  SUBCASE("99 ms") {
    frame_script s(o, connection_role::server);
    REQUIRE(s.feed_header());
    auto op = peer_open("client");
    op.idle_time_out = 99;
    (void)s.feed(op);
    check_closed_with(s, symbol::invalid_field, errc::invalid_field);
  }
  SUBCASE("100 ms is accepted") {
    frame_script s(o, connection_role::server);
    REQUIRE(s.feed_header());
    auto op = peer_open("client");
    op.idle_time_out = 100;
    REQUIRE(s.feed(op));
    CHECK_FALSE(s.conn.error());
  }
  SUBCASE("0 means none and is accepted") {
    frame_script s(o, connection_role::server);
    REQUIRE(s.feed_header());
    auto op = peer_open("client");
    op.idle_time_out = 0;
    REQUIRE(s.feed(op));
    CHECK_FALSE(s.conn.error());
  }
}

TEST_CASE("engine: §2.4.5 heartbeats at half the peer's idle timeout") {
  connection_options co;
  co.timeouts.idle_time_out = 2000ms; // the client announces 1000 ms
  connection_options so;
  so.timeouts.idle_time_out = 0ms; // the server asks for none
  engine_pair p(co, so);
  p.record_wire = true;
  REQUIRE(p.client.open());
  REQUIRE(p.pump());
  const std::size_t base = p.server_wire.items.size();
  auto heartbeats = [&] { return p.server_wire.count("heartbeat", base); };
  p.advance(499ms);
  CHECK(heartbeats() == 0);
  p.advance(1ms);
  CHECK(heartbeats() == 1);
  p.advance(499ms);
  CHECK(heartbeats() == 1);
  p.advance(1ms);
  CHECK(heartbeats() == 2);
  p.advance(10'000ms);
  CHECK(heartbeats() == 22);
  for (std::size_t i = base; i < p.server_wire.items.size(); ++i) {
    CHECK(p.server_wire.items[i].bytes == from_hex("00 00 00 08 02 00 00 00"));
  }
  // The heartbeats kept the client's idle timer from firing; the client owes none.
  CHECK(p.client_wire.count("heartbeat") == 0);
  CHECK_FALSE(p.client.finished());
  CHECK(p.client_log == names{"connection_opened"});
}

TEST_CASE("engine: §2.4.5 silent peer: close with amqp:resource-limit-exceeded after the idle "
          "timeout") {
  connection_options o;
  o.timeouts.idle_time_out = 1000ms;
  SUBCASE("our open announces half the threshold, rounded up") {
    for (const auto& [threshold, announced] :
         {std::pair{1000ms, 500U}, std::pair{1ms, 1U}, std::pair{2001ms, 1001U}}) {
      connection_options x;
      x.timeouts.idle_time_out = threshold;
      frame_script t(x, connection_role::server);
      t.handshake(peer_open("client"));
      const auto ours = t.last<amqp::open>();
      REQUIRE(ours);
      REQUIRE(ours->idle_time_out);
      CHECK(*ours->idle_time_out == announced);
    }
  }
  SUBCASE("nothing at all") {
    frame_script s = opened_server(o);
    s.advance(999ms);
    CHECK(s.take().empty());
    CHECK_FALSE(s.conn.finished());
    s.advance(1ms);
    CHECK(s.take_names() == names{"close"});
    check_closed_with(s, symbol::resource_limit_exceeded, errc::timeout);
  }
  SUBCASE("a heartbeat restarts the timer") {
    frame_script s = opened_server(o);
    s.advance(900ms);
    REQUIRE(s.feed_bytes(from_hex("00 00 00 08 02 00 00 00")));
    s.advance(999ms);
    CHECK(s.take().empty());
    s.advance(1ms);
    CHECK(s.take_names() == names{"close"});
    check_closed_with(s, symbol::resource_limit_exceeded, errc::timeout);
  }
}

TEST_CASE("engine: §2.4.1 handshake deadline") {
  connection_options o;
  o.timeouts.handshake = 5000ms;
  o.timeouts.idle_time_out = 0ms;
  SUBCASE("server: a silent peer, driven only by next_deadline()") {
    // The driver loop of connection.hpp: nothing is read, so only next_deadline() can
    // bring the engine to life; a peer that connects and says nothing must still time out.
    frame_script s(o, connection_role::server);
    s.advance(4999ms);
    CHECK_FALSE(s.conn.finished());
    s.advance(1ms);
    CHECK(s.conn.finished());
    CHECK(s.conn.error() == errc::timeout);
    CHECK(s.take().empty()); // no header was agreed: nothing can be said
  }
  SUBCASE("server: a header but no open") {
    frame_script s(o, connection_role::server);
    REQUIRE(s.feed_header());
    CHECK(s.take_names() == names{"header amqp"});
    s.advance(5000ms);
    CHECK(s.take_names() == names{"open", "close"});
    check_closed_with(s, symbol::resource_limit_exceeded, errc::timeout);
    CHECK(s.conn.finished());
  }
  SUBCASE("client: the server never answers") {
    frame_script s(o, connection_role::client);
    REQUIRE(s.conn.open());
    s.collect();
    (void)s.take();
    s.advance(4999ms);
    CHECK_FALSE(s.conn.finished());
    s.advance(1ms);
    CHECK(s.conn.finished());
    CHECK(s.conn.error() == errc::timeout);
  }
  SUBCASE("an open in time disarms it") {
    frame_script s(o, connection_role::server);
    s.advance(4999ms);
    s.handshake(peer_open("client"));
    CHECK(s.count<connection_opened>() == 1);
    s.advance(60'000ms);
    CHECK_FALSE(s.conn.finished());
    CHECK_FALSE(s.conn.error());
  }
}

TEST_CASE("engine: §2.4.1 the handshake deadline is 10 s by default, in both roles") {
  CHECK(connection_options{}.timeouts.handshake == 10'000ms);
  SUBCASE("server: a client that sends only its protocol header is closed at 10 s") {
    connection_options co;
    co.timeouts.handshake = 0ms; // the silent client never gives up on its own
    engine_pair p(co, connection_options{});
    p.record_wire = true;
    p.auto_respond = false;
    REQUIRE(p.pump());
    CHECK(p.client_wire.names() == names{"header amqp"});
    CHECK(p.server_wire.names() == names{"header amqp"});
    p.advance(9'999ms);
    CHECK_FALSE(p.server.finished());
    CHECK(p.server_log.empty());
    CHECK(p.server_wire.names() == names{"header amqp"});
    p.advance(1ms);
    CHECK(p.server.finished());
    CHECK(p.server.error() == errc::timeout);
    // §2.4.1: open precedes every frame, close included.
    CHECK(p.server_wire.names() == names{"header amqp", "open", "close"});
    auto c = p.server_wire.items.back().as<amqp::close>();
    REQUIRE(c);
    CHECK(condition_of(c) == symbol::resource_limit_exceeded);
    REQUIRE(c->error);
    CHECK(c->error->description == std::optional<std::string_view>("handshake not finished in "
                                                                   "time"));
    CHECK(p.server_log == names{"connection_closed amqp:resource-limit-exceeded"});
    CHECK(p.client_log ==
          names{"connection_opened", "connection_closed amqp:resource-limit-exceeded remote"});
    // Well before 15 s, the old default's symptom (still connected after 15 s).
    p.advance(5'000ms);
    CHECK(p.server_wire.names() == names{"header amqp", "open", "close"});
  }
  SUBCASE("server: a client that opens just in time is kept") {
    engine_pair p;
    p.record_wire = true;
    REQUIRE(p.pump());
    p.advance(9'999ms);
    REQUIRE(p.client.open());
    REQUIRE(p.pump());
    p.advance(60'000ms); // heartbeats keep both idle timers quiet
    CHECK_FALSE(p.server.finished());
    CHECK_FALSE(p.server.error());
    CHECK_FALSE(p.client.finished());
    CHECK(p.server_log == names{"connection_opened"});
    CHECK(p.client_log == names{"connection_opened"});
    CHECK(p.server_wire.count("close") == 0);
  }
  SUBCASE("client: a server that never opens is closed at 10 s") {
    connection_options so;
    so.timeouts.handshake = 0ms;
    engine_pair p(connection_options{}, so);
    p.record_wire = true;
    p.auto_respond = false; // the server never answers the client's open
    REQUIRE(p.client.open());
    REQUIRE(p.pump());
    p.advance(9'999ms);
    CHECK_FALSE(p.client.finished());
    p.advance(1ms);
    CHECK(p.client.finished());
    CHECK(p.client.error() == errc::timeout);
    CHECK(p.client_wire.names() == names{"header amqp", "open", "close"});
    CHECK(condition_of(p.client_wire.items.back().as<amqp::close>()) ==
          symbol::resource_limit_exceeded);
    CHECK(p.client_log == names{"connection_closed amqp:resource-limit-exceeded"});
  }
}

TEST_CASE("engine: §2.2 receive() of zero bytes before the protocol header is harmless") {
  // A driver may hand over an empty read (nothing arrived yet): no header, no error.
  SUBCASE("server") {
    frame_script s({}, connection_role::server);
    REQUIRE(s.feed_bytes({}));
    CHECK(s.take().empty());
    CHECK_FALSE(s.conn.finished());
    REQUIRE(s.feed_header());
    CHECK(s.take_names() == names{"header amqp"});
  }
  SUBCASE("client") {
    frame_script s({}, connection_role::client);
    (void)s.take();
    REQUIRE(s.feed_bytes({}));
    CHECK(s.take().empty());
    CHECK_FALSE(s.conn.finished());
  }
}

TEST_CASE("engine: §2.4.3 close timeout when the peer never answers") {
  connection_options o;
  o.timeouts.close = 2000ms;
  o.timeouts.idle_time_out = 0ms;
  frame_script s(o, connection_role::client);
  s.handshake(peer_open("server"));
  (void)s.take();
  REQUIRE(s.conn.close());
  s.collect();
  CHECK(s.take_names() == names{"close"});
  CHECK_FALSE(s.conn.finished());
  s.advance(1999ms);
  CHECK_FALSE(s.conn.finished());
  s.advance(1ms);
  CHECK(s.conn.finished());
  const auto* c = s.find<connection_closed>();
  REQUIRE(c != nullptr);
  CHECK(c->code == errc::timeout);
}

TEST_CASE("engine: §2.7.1 frame above max-frame-size refused from its header with "
          "framing-error") {
  connection_options o;
  o.limits.max_frame_size = 1024;
  SUBCASE("1025 after our open: refused before the body arrives") {
    frame_script s = opened_server(o);
    auto r = s.feed_bytes(from_hex("00 00 04 01 02 00 00 00"));
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::frame_too_large);
    CHECK(s.take_names() == names{"close"});
    check_closed_with(s, symbol::framing_error, errc::frame_too_large);
    CHECK(s.conn.finished());
  }
  SUBCASE("1024 is accepted") {
    frame_script s = opened_server(o);
    std::string pad(2000, 'p');
    const value kv[2] = {value(symbol_view{"pad"}), value(std::string_view(pad))};
    amqp::begin b = peer_begin(std::nullopt);
    b.properties = value::map(kv);
    auto full = detail::encoded_frame_size(performative{b}, 0);
    REQUIRE(full);
    const std::string_view cut = std::string_view(pad).substr(0, pad.size() - (*full - 1024));
    const value kv2[2] = {value(symbol_view{"pad"}), value(cut)};
    b.properties = value::map(kv2);
    auto bytes = frame_bytes(b);
    REQUIRE(bytes.size() == 1024);
    REQUIRE(s.feed_bytes(bytes));
    CHECK(s.count<session_begun>() == 1);
  }
  SUBCASE("before any open the limit is 512 (§2.4.1)") {
    frame_script s(o, connection_role::server);
    REQUIRE(s.feed_header());
    std::string pad(600, 'p');
    const value kv[2] = {value(symbol_view{"pad"}), value(std::string_view(pad))};
    amqp::open op = peer_open("client");
    op.properties = value::map(kv);
    auto bytes = frame_bytes(op);
    REQUIRE(bytes.size() > 512);
    auto r = s.feed_bytes(std::span<const std::byte>(bytes).first(8));
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::frame_too_large);
    CHECK(s.conn.finished());
  }
}

TEST_CASE("engine: §2.3.2 undecodable frame body: close with amqp:decode-error") {
  frame_script s = opened_server();
  // A begin whose list8 claims 5 bytes when 1 follows.
  (void)s.feed_bytes(raw_frame(0, 0, from_hex("00 53 11 c0 05 03 43")));
  CHECK(s.take_names() == names{"close"});
  check_closed_with(s, symbol::decode_error, errc::decode_error);
  CHECK(s.conn.finished());
}

TEST_CASE("engine: §2.3.1 malformed frame header or unknown frame type: framing-error") {
  SUBCASE("TYPE 0x02") {
    frame_script s = opened_server();
    (void)s.feed_bytes(raw_frame(0x02, 0, from_hex("00 53 18 45")));
    check_closed_with(s, symbol::framing_error, errc::unexpected_frame_type);
  }
  SUBCASE("TYPE 0x01 (SASL) after the AMQP header") {
    frame_script s = opened_server();
    (void)s.feed_bytes(raw_frame(0x01, 0, from_hex("00 53 44 c0 02 01 50 00")));
    check_closed_with(s, symbol::framing_error, errc::unexpected_frame_type);
  }
  SUBCASE("DOFF 1") {
    frame_script s = opened_server();
    (void)s.feed_bytes(raw_frame(0x00, 0, from_hex("00 53 18 45"), 1));
    check_closed_with(s, symbol::framing_error, errc::framing_error);
  }
  SUBCASE("SIZE 7") {
    frame_script s = opened_server();
    (void)s.feed_bytes(from_hex("00 00 00 07 02 00 00 00"));
    check_closed_with(s, symbol::framing_error, errc::framing_error);
  }
}

TEST_CASE("engine: §2.7 unknown performative descriptor: close with amqp:decode-error, then "
          "finished") {
  SUBCASE("0x99") {
    frame_script s = opened_server();
    (void)s.feed_bytes(raw_frame(0, 0, from_hex("00 53 99 45")));
    CHECK(s.take_names() == names{"close"});
    check_closed_with(s, symbol::decode_error, errc::unexpected_descriptor);
    CHECK(s.conn.finished());
  }
  SUBCASE("accepted (0x24) is not a performative") {
    frame_script s = opened_server();
    (void)s.feed_bytes(raw_frame(0, 0, from_hex("00 53 24 45")));
    check_closed_with(s, symbol::decode_error, errc::unexpected_descriptor);
    CHECK(s.conn.finished());
  }
}

TEST_CASE("engine: §2.4.1 a frame before open is a connection error") {
  frame_script s({}, connection_role::server);
  REQUIRE(s.feed_header());
  (void)s.feed(peer_begin(std::nullopt));
  CHECK(s.take_names() == names{"header amqp", "open", "close"});
  // error.hpp: begin before open is errc::illegal_state, sent as amqp:illegal-state.
  check_closed_with(s, symbol::illegal_state, errc::illegal_state);
  CHECK(s.find<session_begun>() == nullptr);
  CHECK(s.conn.finished());
}

TEST_CASE("engine: §2.4.1 a second open is a connection error") {
  frame_script s = opened_server();
  (void)s.feed(peer_open("client"));
  CHECK(s.take_names() == names{"close"});
  // error.hpp documents a second open as errc::not_allowed, sent as amqp:not-allowed.
  check_closed_with(s, symbol::not_allowed, errc::not_allowed);
  CHECK(s.count<connection_opened>() == 0);
}

TEST_CASE("engine: §2.4.3 close from the peer is answered with close, then finished") {
  frame_script s = opened_server();
  REQUIRE(s.feed(amqp::close{}));
  CHECK(s.take_names() == names{"close"});
  CHECK(s.conn.finished());
  const auto* c = s.find<connection_closed>();
  REQUIRE(c != nullptr);
  CHECK(c->remote);
  CHECK_FALSE(c->code);
}

TEST_CASE("engine: §2.4.1 close before the peer's open is still preceded by our open") {
  frame_script s({}, connection_role::client);
  (void)s.take();
  REQUIRE(s.conn.close());
  s.collect();
  CHECK(s.take_names() == names{"open", "close"});
}

TEST_CASE("engine: §2.4.3 after sending close, frames other than close are ignored") {
  connection_options o;
  o.timeouts.idle_time_out = 0ms;
  frame_script s(o, connection_role::client);
  s.handshake(peer_open("server"));
  REQUIRE(s.conn.close());
  s.collect();
  (void)s.take();
  REQUIRE(s.feed(peer_begin(std::nullopt), 0));
  CHECK(s.find<session_begun>() == nullptr);
  CHECK(s.take().empty());
  CHECK_FALSE(s.conn.finished());
  REQUIRE(s.feed(amqp::close{}));
  CHECK(s.take().empty()); // nothing more to say: our close went first
  CHECK(s.conn.finished());
  const auto* c = s.find<connection_closed>();
  REQUIRE(c != nullptr);
  CHECK_FALSE(c->code);
  CHECK(c->remote);
}

TEST_CASE("engine: §2.4.3 the byte stream ending before the close handshake is connection_lost") {
  SUBCASE("while open") {
    frame_script s = opened_server();
    s.conn.on_transport_closed();
    s.collect();
    const auto* c = s.find<connection_closed>();
    REQUIRE(c != nullptr);
    CHECK(c->code == errc::connection_lost);
    CHECK(s.conn.finished());
  }
  SUBCASE("after the close handshake: nothing more to report") {
    frame_script s = opened_server();
    REQUIRE(s.feed(amqp::close{}));
    const std::size_t before = s.log.size();
    s.conn.on_transport_closed();
    s.collect();
    CHECK(s.log.size() == before);
    CHECK(s.conn.finished());
  }
}

TEST_CASE("engine: STYLE §5 nesting deeper than the decode limit: close with amqp:decode-error") {
  connection_options o;
  o.limits.decode.max_depth = 4;
  frame_script s = opened_server(o);
  // begin.properties: a map whose value nests lists 6 deep.
  const value l0[1] = {value(std::uint32_t{1})};
  const value l1[1] = {value::list(l0)};
  const value l2[1] = {value::list(l1)};
  const value l3[1] = {value::list(l2)};
  const value l4[1] = {value::list(l3)};
  const value kv[2] = {value(symbol_view{"deep"}), value::list(l4)};
  amqp::begin b = peer_begin(std::nullopt);
  b.properties = value::map(kv);
  (void)s.feed(b);
  check_closed_with(s, symbol::decode_error, errc::depth_exceeded);
  CHECK(s.find<session_begun>() == nullptr);
}
