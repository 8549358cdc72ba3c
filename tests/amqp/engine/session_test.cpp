// Engine: sessions (AMQP 1.0 §2.5, §2.7.2, §2.7.8): channel allocation and limits, end,
// the session errors (window-violation, unattached-handle, handle-in-use), handle-max, and
// serial-number arithmetic on transfer-ids.
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
using namespace std::chrono_literals;

namespace {

using names = std::vector<std::string>;

link_options receiver_opts(std::string_view name = "rx") {
  link_options o;
  o.name = name;
  o.role = role::receiver;
  o.source = source{};
  o.source->address = "queue";
  o.target = target{};
  return o;
}

// The end this engine wrote on `channel` with `condition`, and the session_ended it reported.
void check_ended_with(frame_script& s, std::string_view condition, std::uint16_t channel = 0) {
  INFO("engine wrote: " << joined(s.out.names()));
  INFO("engine events: " << joined(s.log));
  auto items = s.all<amqp::end>();
  REQUIRE_FALSE(items.empty());
  CHECK(items.back()->channel() == channel);
  auto e = items.back()->as<amqp::end>();
  CHECK(condition_of(e) == condition);
  bool reported = false;
  for (const auto& line : s.log) {
    reported = reported || line == "session_ended " + std::string(condition);
  }
  CHECK(reported);
  // A session error leaves the connection open (§2.5.4).
  CHECK_FALSE(s.conn.error());
  CHECK_FALSE(s.conn.finished());
}

} // namespace

TEST_CASE("engine: §2.5.1 sessions use the lowest free channel; the answer names the peer's "
          "channel") {
  engine_pair p;
  p.record_wire = true;
  REQUIRE(p.client.open());
  std::vector<session_id> ids;
  for (int i = 0; i < 3; ++i) {
    auto s = p.client.begin();
    REQUIRE(s);
    ids.push_back(*s);
  }
  REQUIRE(p.pump());
  CHECK(ids[0].value == 0);
  CHECK(ids[1].value == 1);
  CHECK(ids[2].value == 2);
  // §2.5.1: a locally initiated begin has no remote-channel; the answer has one.
  std::vector<std::uint16_t> client_channels, server_channels, server_remote;
  for (const auto& i : p.client_wire.items) {
    if (auto b = i.as<amqp::begin>()) {
      client_channels.push_back(i.channel());
      CHECK_FALSE(b->remote_channel);
    }
  }
  for (const auto& i : p.server_wire.items) {
    if (auto b = i.as<amqp::begin>()) {
      server_channels.push_back(i.channel());
      REQUIRE(b->remote_channel);
      server_remote.push_back(*b->remote_channel);
    }
  }
  CHECK(client_channels == std::vector<std::uint16_t>{0, 1, 2});
  CHECK(server_channels == std::vector<std::uint16_t>{0, 1, 2});
  CHECK(server_remote == std::vector<std::uint16_t>{0, 1, 2});

  // A session begun by the server takes the server's lowest free channel, and the client's.
  auto from_server = p.server.begin();
  REQUIRE(from_server);
  CHECK(from_server->value == 3);
  REQUIRE(p.pump());
  CHECK(p.client_log.back() == "session_begun");

  // An ended channel is reused.
  REQUIRE(p.client.end(ids[1]));
  REQUIRE(p.pump());
  CHECK_FALSE(p.client.state(ids[1]));
  auto again = p.client.begin();
  REQUIRE(again);
  CHECK(again->value == 1);
  REQUIRE(p.pump());
  auto st = p.client.state(*again);
  REQUIRE(st);
  CHECK(*st == endpoint_state{endpoint_status::active, endpoint_status::active});
}

TEST_CASE("engine: §2.5.5 links attached before the peer answers begin (BEGIN SENT)") {
  // §2.5.5 BEGIN SENT: "the endpoint MAY send frames": a client pipelines begin and three
  // attaches (handles 0, 1, 2, well within any handle-max) in one write.
  engine_pair p;
  p.record_wire = true;
  REQUIRE(p.client.open());
  auto ssn = p.client.begin();
  REQUIRE(ssn);
  for (const char* n : {"a", "b", "c"}) {
    link_options o;
    o.name = n;
    o.role = role::sender;
    o.target = target{};
    REQUIRE(p.client.attach(*ssn, o));
  }
  REQUIRE(p.pump());
  CHECK(p.server_log == names{"connection_opened", "session_begun", "link_attached",
                              "link_attached", "link_attached"});
  CHECK(p.client_log == names{"connection_opened", "session_begun", "link_attached",
                              "link_attached", "link_attached"});
  // §2.4.1: whatever happens, the server's first frame is its open.
  REQUIRE(p.server_wire.items.size() >= 2);
  CHECK(p.server_wire.items[1].name() == "open");
  CHECK_FALSE(p.client.error());
  CHECK_FALSE(p.server.error());
}

TEST_CASE("engine: §2.7.1 begin stays within the peer's channel-max") {
  connection_options so;
  so.limits.channel_max = 1;
  engine_pair p({}, so);
  REQUIRE(p.client.open());
  REQUIRE(p.pump());
  REQUIRE(p.client.begin());
  REQUIRE(p.client.begin());
  auto third = p.client.begin();
  REQUIRE_FALSE(third);
  CHECK(third.error() == errc::resource_limit);
}

TEST_CASE("engine: §2.7.1 sessions begun before the peer's open, above its channel-max, end "
          "without another frame on their channel") {
  // Found by the sasl fuzz target: a session begun before the peer's open sat on channel 1;
  // the peer's open said channel-max 0, and the session's frames still went out.
  auto open_ch0 = peer_open("peer");
  open_ch0.channel_max = 0;
  auto header_and_open = header_bytes(detail::protocol_id::amqp);
  const auto open_bytes = frame_bytes(open_ch0);
  header_and_open.insert(header_and_open.end(), open_bytes.begin(), open_bytes.end());
  const auto frames_on = [](const frame_script& s, std::uint16_t ch) {
    std::size_t n = 0;
    for (const auto& i : s.out.items) {
      if (i.is_frame() && i.channel() == ch) {
        ++n;
      }
    }
    return n;
  };
  const auto check_ended = [](const frame_script& s, session_id ssn) {
    const session_ended* e = nullptr;
    for (const auto& ev : s.events) {
      if (const auto* x = std::get_if<session_ended>(&ev); x != nullptr && x->session == ssn) {
        e = x;
      }
    }
    REQUIRE(e != nullptr);
    CHECK(e->code == errc::resource_limit);
    CHECK_FALSE(e->remote);
  };

  // Opens, then begins sessions on channels 0 and 1, all before the peer's open.
  const auto open_and_begin_two = [](frame_script& s) {
    REQUIRE(s.conn.open());
    auto s0 = s.conn.begin();
    auto s1 = s.conn.begin();
    REQUIRE(s0);
    REQUIRE(s1);
    return std::pair{*s0, *s1};
  };

  SUBCASE("server: its begin waits for our AMQP header and is dropped") {
    frame_script s({}, connection_role::server);
    const auto [s0, s1] = open_and_begin_two(s);
    CHECK(s1.value == 1);
    s.collect();
    CHECK(s.out.items.empty()); // nothing before the peer's header
    REQUIRE(s.feed_bytes(header_and_open));
    INFO("engine wrote: " << joined(s.out.names()));
    CHECK(s.out.names() == std::vector<std::string>{"header amqp", "open", "begin"});
    CHECK(frames_on(s, 1) == 0);
    check_ended(s, s1);
    CHECK_FALSE(s.conn.state(s1));
    CHECK(s.conn.state(s0));
    CHECK_FALSE(s.conn.error());
  }
  SUBCASE("client: its pipelined begin is out; nothing more follows on that channel") {
    frame_script s({}, connection_role::client);
    const auto [s0, s1] = open_and_begin_two(s);
    s.collect();
    CHECK(frames_on(s, 1) == 1);
    REQUIRE(s.feed_bytes(header_and_open));
    check_ended(s, s1);
    link_options o;
    o.name = "late";
    o.role = role::sender;
    o.target = target{};
    auto a = s.conn.attach(s1, o);
    REQUIRE_FALSE(a);
    CHECK(a.error() == errc::invalid_state);
    CHECK_FALSE(s.conn.end(s1));
    REQUIRE(s.conn.attach(s0, o));
    s.collect();
    CHECK(frames_on(s, 1) == 1);
    CHECK(s.out.names().back() == "attach");
    CHECK_FALSE(s.conn.error());
  }
}

TEST_CASE("engine: §2.7.1 a channel above our channel-max: close with framing-error") {
  connection_options o;
  o.limits.channel_max = 3;
  SUBCASE("channel 4") {
    frame_script s(o, connection_role::server);
    s.handshake(peer_open("client"));
    (void)s.take();
    (void)s.feed(peer_begin(std::nullopt), 4);
    INFO("engine wrote: " << joined(s.out.names()));
    INFO("engine events: " << joined(s.log));
    // §2.7.1 channel-max: "A peer that receives a channel number outside the supported
    // range MUST close the connection with the framing-error error-code."
    auto c = s.last<amqp::close>();
    REQUIRE(c);
    CHECK(condition_of(c) == symbol::framing_error);
    CHECK(s.find<session_begun>() == nullptr);
    CHECK(s.conn.finished());
  }
  SUBCASE("channel 3 is accepted") {
    frame_script s(o, connection_role::server);
    s.handshake(peer_open("client"));
    REQUIRE(s.feed(peer_begin(std::nullopt), 3));
    CHECK(s.count<session_begun>() == 1);
    CHECK_FALSE(s.conn.error());
  }
}

TEST_CASE("engine: §2.5.2 end is answered with end on the session's own channel") {
  frame_script s({}, connection_role::server);
  s.handshake(peer_open("client"));
  (void)s.take();
  REQUIRE(s.feed(peer_begin(std::nullopt), 5));
  const auto* b = s.find<session_begun>();
  REQUIRE(b != nullptr);
  CHECK(b->remote_initiated);
  const session_id ssn = b->session;
  REQUIRE(s.conn.begin(ssn));
  s.collect();
  auto items = s.take();
  REQUIRE(items.size() == 1);
  auto answer = items[0]->as<amqp::begin>();
  REQUIRE(answer);
  REQUIRE(answer->remote_channel);
  CHECK(*answer->remote_channel == 5);
  CHECK(items[0]->channel() == ssn.value);

  const value info_kv[2] = {value(symbol_view{"why"}), value("done")};
  amqp::end e;
  e.error = amqp::error{symbol_view{"x-test:gone"}, "bye", value::map(info_kv)};
  REQUIRE(s.feed(e, 5));
  const auto* ended = s.find<session_ended>();
  REQUIRE(ended != nullptr);
  CHECK(ended->remote);
  CHECK(ended->code == errc::remote_error);
  REQUIRE(ended->error);
  CHECK(ended->error->condition.str == "x-test:gone");
  items = s.take();
  REQUIRE(items.size() == 1);
  CHECK(items[0]->channel() == ssn.value);
  auto end_answer = items[0]->as<amqp::end>();
  REQUIRE(end_answer);
  CHECK_FALSE(end_answer->error);
  CHECK_FALSE(s.conn.state(ssn));
}

TEST_CASE("engine: §2.5.2 end between two engines") {
  engine_pair p;
  auto ssn = p.open_session();
  REQUIRE(p.client.end(ssn));
  REQUIRE(p.pump());
  CHECK(p.client_log == names{"connection_opened", "session_begun", "session_ended"});
  CHECK(p.server_log == names{"connection_opened", "session_begun", "session_ended"});
  CHECK_FALSE(p.client.state(ssn));
  CHECK_FALSE(p.client.error());
}

TEST_CASE("engine: §2.5.6 transfers beyond the incoming window: amqp:session:window-violation") {
  // The session announces an incoming window of 4 frames; the peer sends 5 transfers in one
  // write, before it could have seen any flow widening the window.
  frame_script s({}, connection_role::client);
  session_options so;
  so.incoming_window = 4;
  auto ssn = open_session(s, so);
  auto l = attach_link(s, ssn, receiver_opts(), 0);
  REQUIRE(s.conn.flow(l, 100));
  s.collect();
  (void)s.take();
  std::vector<std::byte> burst;
  const std::byte tag[1] = {std::byte{1}};
  for (std::uint32_t i = 0; i < 5; ++i) {
    auto t = peer_transfer(0, i, binary_view(tag, 1));
    t.settled = true;
    auto f = frame_bytes(t, 0, as_bytes("x"));
    burst.insert(burst.end(), f.begin(), f.end());
  }
  (void)s.feed_bytes(burst);
  check_ended_with(s, symbol::window_violation);
  CHECK(s.count<delivery_received>() == 4);
}

TEST_CASE("engine: §2.5.6 a peer that waits for the window to reopen is no violation") {
  frame_script s({}, connection_role::client);
  session_options so;
  so.incoming_window = 4;
  auto ssn = open_session(s, so);
  auto l = attach_link(s, ssn, receiver_opts(), 0);
  REQUIRE(s.conn.flow(l, 100));
  s.collect();
  const std::byte tag[1] = {std::byte{1}};
  std::uint32_t sent = 0;
  for (int round = 0; round < 10; ++round) {
    // Send what the last flow allows: next-incoming-id + incoming-window - next-outgoing-id.
    std::optional<amqp::flow> f = s.last<amqp::flow>();
    REQUIRE(f);
    const std::uint32_t window = f->next_incoming_id.value_or(0) + f->incoming_window - sent;
    REQUIRE(window > 0);
    for (std::uint32_t i = 0; i < window && sent < 20; ++i, ++sent) {
      auto t = peer_transfer(0, sent, binary_view(tag, 1));
      t.settled = true;
      REQUIRE(s.feed(t, 0, as_bytes("x")));
    }
  }
  CHECK(sent == 20);
  CHECK(s.all<amqp::end>().empty());
}

TEST_CASE("engine: §2.7.5 a frame on an unattached handle: amqp:session:unattached-handle") {
  const std::byte tag[1] = {std::byte{1}};
  SUBCASE("transfer") {
    frame_script s({}, connection_role::client);
    auto ssn = open_session(s);
    (void)ssn;
    (void)s.feed(peer_transfer(7, 0, binary_view(tag, 1)), 0, as_bytes("x"));
    check_ended_with(s, symbol::unattached_handle);
  }
  SUBCASE("flow") {
    frame_script s({}, connection_role::client);
    (void)open_session(s);
    (void)s.feed(peer_flow(7, 0, 10));
    check_ended_with(s, symbol::unattached_handle);
  }
  SUBCASE("detach") {
    frame_script s({}, connection_role::client);
    (void)open_session(s);
    amqp::detach d;
    d.handle = 7;
    d.closed = true;
    (void)s.feed(d);
    check_ended_with(s, symbol::unattached_handle);
  }
  SUBCASE("transfer on a handle detached before") {
    frame_script s({}, connection_role::client);
    auto ssn = open_session(s);
    auto l = attach_link(s, ssn, receiver_opts(), 0);
    REQUIRE(s.conn.detach(l));
    s.collect();
    amqp::detach d;
    d.handle = 0;
    d.closed = true;
    REQUIRE(s.feed(d));
    (void)s.feed(peer_transfer(0, 0, binary_view(tag, 1)), 0, as_bytes("x"));
    check_ended_with(s, symbol::unattached_handle);
  }
}

TEST_CASE("engine: §2.7.3 attach on a handle in use: amqp:session:handle-in-use") {
  frame_script s({}, connection_role::server);
  s.handshake(peer_open("client"));
  REQUIRE(s.feed(peer_begin(std::nullopt), 0));
  REQUIRE(s.conn.begin(s.find<session_begun>()->session));
  s.collect();
  REQUIRE(s.feed(peer_attach("first", 0, role::sender)));
  CHECK(s.count<link_attached>() == 1);
  (void)s.feed(peer_attach("second", 0, role::sender));
  CHECK(s.count<link_attached>() == 0);
  check_ended_with(s, symbol::handle_in_use);
}

TEST_CASE("engine: §2.7.2 a handle above our handle-max: close with framing-error") {
  frame_script s({}, connection_role::client);
  session_options so;
  so.handle_max = 3;
  auto ssn = open_session(s, so);
  (void)ssn;
  auto b = s.last<amqp::begin>();
  REQUIRE(b);
  CHECK(b->handle_max == 3);
  SUBCASE("handle 4") {
    (void)s.feed(peer_attach("too-high", 4, role::sender));
    INFO("engine wrote: " << joined(s.out.names()));
    INFO("engine events: " << joined(s.log));
    // §2.7.2 handle-max: "A peer that receives a handle outside the supported range MUST
    // close the connection with the framing-error error-code."
    CHECK(s.count<link_attached>() == 0);
    auto c = s.last<amqp::close>();
    REQUIRE(c);
    CHECK(condition_of(c) == symbol::framing_error);
    CHECK(s.conn.finished());
  }
  SUBCASE("handle 3 is accepted") {
    REQUIRE(s.feed(peer_attach("highest", 3, role::sender)));
    CHECK(s.count<link_attached>() == 1);
    CHECK_FALSE(s.conn.error());
  }
}

TEST_CASE("engine: §2.7.2 attach stays within the peer's handle-max") {
  frame_script s({}, connection_role::client);
  auto pb = peer_begin(0);
  pb.handle_max = 1;
  auto ssn = open_session(s, {}, pb);
  link_options lo = receiver_opts("a");
  REQUIRE(s.conn.attach(ssn, lo));
  lo.name = "b";
  REQUIRE(s.conn.attach(ssn, lo));
  lo.name = "c";
  auto third = s.conn.attach(ssn, lo);
  REQUIRE_FALSE(third);
  CHECK(third.error() == errc::resource_limit);
}

TEST_CASE("engine: §2.5.6 transfer-ids wrap past 2^32 (serial-number arithmetic)") {
  frame_script s({}, connection_role::client);
  // The peer's first transfer-id is 2^32 - 3.
  auto ssn = open_session(s, {}, peer_begin(0, 2048, 0xFFFF'FFFDU));
  auto l = attach_link(s, ssn, receiver_opts(), 0, 0, 0xFFFF'FFFEU);
  REQUIRE(s.conn.flow(l, 100));
  s.collect();
  std::vector<delivery_id> got;
  // Delivery-ids wrap too: 2^32 - 2, 2^32 - 1, 0, 1, 2, 3.
  std::uint32_t id = 0xFFFF'FFFEU;
  for (int i = 0; i < 6; ++i, ++id) {
    const std::byte tag[1] = {static_cast<std::byte>(i)};
    REQUIRE(s.feed(peer_transfer(0, id, binary_view(tag, 1)), 0, as_bytes("m")));
    const auto* d = s.find<delivery_received>();
    REQUIRE(d != nullptr);
    CHECK(d->delivery.number == id);
    got.push_back(d->delivery);
  }
  CHECK(s.all<amqp::end>().empty());
  CHECK_FALSE(s.conn.error());
  // The next flow reports next-incoming-id past the wrap: 2^32 - 3 + 6 = 3.
  REQUIRE(s.conn.flow(l, 50));
  s.collect();
  auto f = s.last<amqp::flow>();
  REQUIRE(f);
  REQUIRE(f->next_incoming_id);
  CHECK(*f->next_incoming_id == 3);
  // Link delivery-count wraps with them: initial 2^32 - 2, six deliveries later 4.
  REQUIRE(f->delivery_count);
  CHECK(*f->delivery_count == 4);
  // Settling all six coalesces into one range across the wrap (§2.7.6).
  (void)s.take();
  for (auto d : got) {
    REQUIRE(s.conn.settle(d, accepted{}));
  }
  s.collect();
  auto items = s.take();
  REQUIRE(items.size() == 1);
  auto disp = items[0]->as<amqp::disposition>();
  REQUIRE(disp);
  CHECK(disp->first == 0xFFFF'FFFEU);
  CHECK(disp->last == std::optional<std::uint32_t>(3));
  CHECK(disp->settled);
}

TEST_CASE("engine: §2.5.6 the sender never exceeds the peer's incoming window") {
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s, {}, peer_begin(0, 2));
  link_options lo;
  lo.name = "tx";
  lo.role = role::sender;
  lo.target = target{};
  auto l = attach_link(s, ssn, lo, 0);
  REQUIRE(s.feed(peer_flow(0, 0, 100, 0, 2)));
  (void)s.take();
  // Two frames fit the window; the third delivery waits for it.
  for (int i = 0; i < 3; ++i) {
    REQUIRE(s.conn.send(l, {.payload = as_bytes("w"), .settled = true}));
  }
  s.collect();
  CHECK(s.take_names() == names{"transfer", "transfer"});
  // A delivery still waiting: the next send would block (errc::would_block).
  auto blocked = s.conn.send(l, {.payload = as_bytes("w"), .settled = true});
  REQUIRE_FALSE(blocked);
  CHECK(blocked.error() == errc::would_block);
  // The peer opens its window by 1 (next-incoming-id 2, incoming-window 1): one more frame.
  REQUIRE(s.feed(peer_flow(0, 0, 100, 2, 1)));
  CHECK(s.take_names() == names{"transfer"});
  // Then wide open.
  REQUIRE(s.feed(peer_flow(0, 0, 100, 3, 100)));
  REQUIRE(s.conn.send(l, {.payload = as_bytes("w"), .settled = true}));
  REQUIRE(s.conn.send(l, {.payload = as_bytes("w"), .settled = true}));
  s.collect();
  CHECK(s.take_names() == names{"transfer", "transfer"});
  CHECK_FALSE(s.conn.error());
}

TEST_CASE("engine: §2.5.6 a peer window of zero holds every transfer until its flow") {
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s, {}, peer_begin(0, 0));
  link_options lo;
  lo.name = "tx";
  lo.role = role::sender;
  lo.target = target{};
  auto l = attach_link(s, ssn, lo, 0);
  REQUIRE(s.feed(peer_flow(0, 0, 100, 0, 0)));
  (void)s.take();
  REQUIRE(s.conn.send(l, {.payload = as_bytes("held")}));
  s.collect();
  CHECK(s.take().empty());
  REQUIRE(s.feed(peer_flow(0, 0, 100, 0, 10)));
  auto items = s.take();
  REQUIRE(items.size() == 1);
  CHECK(as_string(items[0]->payload()) == "held");
}
