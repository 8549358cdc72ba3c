// Engine: links (AMQP 1.0 §2.6, §2.7.3, §2.7.4, §2.7.7): attach fields, the unsettled map,
// flow control (credit, drain, echo, available), the link errors
// (transfer-limit-exceeded, message-size-exceeded), and detaching: closed or not (§2.6.6),
// and the timeout when the peer never answers.
#include <chrono>
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

link_options sender_opts(std::string_view name = "tx", std::string_view address = "queue") {
  link_options o;
  o.name = name;
  o.role = role::sender;
  o.source = source{};
  o.target = target{};
  o.target->address = address;
  return o;
}

link_options receiver_opts(std::string_view name = "rx", std::string_view address = "queue") {
  link_options o;
  o.name = name;
  o.role = role::receiver;
  o.source = source{};
  o.source->address = address;
  o.target = target{};
  return o;
}

std::vector<std::string> symbol_list(const symbols& s) {
  std::vector<std::string> v;
  s.for_each([&](std::string_view x) { v.emplace_back(x); });
  return v;
}

// A described value with a ulong descriptor and an empty list (accepted, released, ...).
struct described_list0 {
  explicit described_list0(std::uint64_t code) : pair{value(code), value::list({})} {}
  value pair[2];
  [[nodiscard]] value get() const { return value::described(pair); }
};

// The detach this engine wrote, with `condition`, and the link_detached it reported.
void check_detached_with(frame_script& s, std::string_view condition) {
  INFO("engine wrote: " << joined(s.out.names()));
  INFO("engine events: " << joined(s.log));
  auto d = s.last<amqp::detach>();
  REQUIRE(d);
  CHECK(d->closed);
  CHECK(condition_of(d) == condition);
  bool reported = false;
  for (const auto& line : s.log) {
    reported = reported || line == "link_detached " + std::string(condition) + " closed";
  }
  CHECK(reported);
  // A link error leaves the session and the connection alone.
  CHECK(s.all<amqp::end>().empty());
  CHECK_FALSE(s.conn.error());
}

// Detach, end and close each given 3 s to be answered; no heartbeats to get in the way.
connection_options close_within_3s() {
  connection_options o;
  o.timeouts.close = 3000ms;
  o.timeouts.idle_time_out = 0ms;
  return o;
}

} // namespace

TEST_CASE("engine: §2.7.3 attach fields reach the peer") {
  const value filter_kv[2] = {value(symbol_view{"apache.org:selector-filter:string"}),
                              value("colour = 'red'")};
  const value outcomes[2] = {value(symbol_view{"amqp:accepted:list"}),
                             value(symbol_view{"amqp:rejected:list"})};
  const value props_kv[2] = {value(symbol_view{"priority"}), value(std::int32_t{5})};
  const value desired[2] = {value(symbol_view{"x-cap-a"}), value(symbol_view{"x-cap-b"})};
  const value lifetime_kv[2] = {value(symbol_view{"lifetime-policy"}), value("delete-on-close")};

  link_options tx = sender_opts("sender-link", "target-address");
  tx.snd_settle_mode = sender_settle_mode::unsettled;
  tx.rcv_settle_mode = receiver_settle_mode::second;
  tx.source->address = "source-address";
  tx.source->durable = terminus_durability::unsettled_state;
  tx.source->expiry_policy = terminus::never;
  tx.source->timeout = 30;
  tx.source->distribution_mode = terminus::copy;
  tx.source->filter = value::map(filter_kv);
  tx.source->outcomes = symbols{value::array(type::symbol, outcomes)};
  tx.source->capabilities = symbols{value(symbol_view{"queue"})};
  tx.target->durable = terminus_durability::configuration;
  tx.target->expiry_policy = terminus::link_detach;
  tx.target->capabilities = symbols{value(symbol_view{"topic"})};
  tx.max_message_size = 123456;
  tx.offered_capabilities = value(symbol_view{"ANONYMOUS-RELAY"});
  tx.desired_capabilities = value::array(type::symbol, desired);
  tx.properties = value::map(props_kv);

  link_options rx = receiver_opts("receiver-link");
  rx.source->address.reset();
  rx.source->dynamic = true;
  rx.source->dynamic_node_properties = value::map(lifetime_kv);
  rx.snd_settle_mode = sender_settle_mode::settled;
  rx.max_message_size = 4096;

  engine_pair p;
  int seen = 0;
  p.on_event = [&](side s, connection&, const event& e) {
    const auto* a = std::get_if<link_attached>(&e);
    if (s != side::server || a == nullptr) {
      return false;
    }
    ++seen;
    CHECK(a->remote_initiated);
    const amqp::attach& r = a->remote;
    if (r.name == "sender-link") {
      CHECK(r.role == role::sender);
      CHECK(r.snd_settle_mode == sender_settle_mode::unsettled);
      CHECK(r.rcv_settle_mode == receiver_settle_mode::second);
      REQUIRE(r.source);
      CHECK(r.source->address == std::optional<std::string_view>("source-address"));
      CHECK(r.source->durable == terminus_durability::unsettled_state);
      CHECK(r.source->expiry_policy == terminus::never);
      CHECK(r.source->timeout == 30);
      CHECK_FALSE(r.source->dynamic);
      CHECK(r.source->distribution_mode == std::optional<symbol_view>(terminus::copy));
      auto sel = r.source->filter.find("apache.org:selector-filter:string");
      REQUIRE(sel);
      CHECK(sel->get_string() == std::optional<std::string_view>("colour = 'red'"));
      CHECK(symbol_list(r.source->outcomes) == names{"amqp:accepted:list", "amqp:rejected:list"});
      CHECK(symbol_list(r.source->capabilities) == names{"queue"});
      REQUIRE(r.target);
      const auto* t = std::get_if<target>(&*r.target);
      REQUIRE(t != nullptr);
      CHECK(t->address == std::optional<std::string_view>("target-address"));
      CHECK(t->durable == terminus_durability::configuration);
      CHECK(t->expiry_policy == terminus::link_detach);
      CHECK(symbol_list(t->capabilities) == names{"topic"});
      CHECK(r.initial_delivery_count == std::optional<std::uint32_t>(0));
      CHECK(r.max_message_size == std::optional<std::uint64_t>(123456));
      CHECK(symbol_list(r.offered_capabilities) == names{"ANONYMOUS-RELAY"});
      CHECK(symbol_list(r.desired_capabilities) == names{"x-cap-a", "x-cap-b"});
      auto prio = r.properties.find("priority");
      REQUIRE(prio);
      CHECK(prio->get_signed() == std::optional<std::int64_t>(5));
    } else {
      CHECK(r.name == "receiver-link");
      CHECK(r.role == role::receiver);
      CHECK(r.snd_settle_mode == sender_settle_mode::settled);
      REQUIRE(r.source);
      CHECK_FALSE(r.source->address);
      CHECK(r.source->dynamic);
      auto lp = r.source->dynamic_node_properties.find("lifetime-policy");
      REQUIRE(lp);
      CHECK(lp->get_string() == std::optional<std::string_view>("delete-on-close"));
      // §2.7.3 initial-delivery-count: only a sender sets it.
      CHECK_FALSE(r.initial_delivery_count);
      CHECK(r.max_message_size == std::optional<std::uint64_t>(4096));
    }
    return false; // the auto-responder answers
  };
  auto ssn = p.open_session();
  REQUIRE(p.client.attach(ssn, tx));
  REQUIRE(p.client.attach(ssn, rx));
  REQUIRE(p.pump());
  CHECK(seen == 2);
  CHECK(p.client_log ==
        names{"connection_opened", "session_begun", "link_attached", "link_attached"});
}

TEST_CASE("engine: §2.7.3 the unsettled map of an attach is parsed and checked") {
  const std::byte tag1[2] = {std::byte{0xA1}, std::byte{0x01}};
  const std::byte tag2[1] = {std::byte{0xB2}};
  described_list0 acc(0x24);
  SUBCASE("delivery-tag keys, delivery-state or null values") {
    frame_script s({}, connection_role::client);
    auto ssn = open_session(s);
    REQUIRE(s.conn.attach(ssn, receiver_opts()));
    s.collect();
    const value kv[4] = {value(binary_view(tag1)), acc.get(), value(binary_view(tag2)), value()};
    auto a = peer_attach("rx", 0, role::sender);
    a.unsettled = value::map(kv);
    a.incomplete_unsettled = true;
    REQUIRE(s.feed(a));
    const auto* la = s.find<link_attached>();
    REQUIRE(la != nullptr);
    CHECK(la->remote.incomplete_unsettled);
    REQUIRE(la->remote.unsettled.is(type::map));
    CHECK(la->remote.unsettled.count() == 4);
    std::vector<value> items(la->remote.unsettled.items().begin(),
                             la->remote.unsettled.items().end());
    REQUIRE(items.size() == 4);
    REQUIRE(items[0].get_binary());
    CHECK(items[0].get_binary()->size() == 2);
    CHECK(items[1].descriptor_code() == std::optional<std::uint64_t>(0x24));
    CHECK(items[3].is_null());
    CHECK_FALSE(s.conn.error());
  }
  SUBCASE("a value that is not a delivery-state: decode-error") {
    frame_script s({}, connection_role::client);
    auto ssn = open_session(s);
    REQUIRE(s.conn.attach(ssn, receiver_opts()));
    s.collect();
    const value kv[2] = {value(binary_view(tag1)), value(std::uint32_t{5})};
    auto a = peer_attach("rx", 0, role::sender);
    a.unsettled = value::map(kv);
    (void)s.feed(a);
    auto c = s.last<amqp::close>();
    REQUIRE(c);
    CHECK(condition_of(c) == symbol::decode_error);
    CHECK(s.find<link_attached>() == nullptr);
  }
  SUBCASE("a key that is not a delivery-tag: decode-error") {
    frame_script s({}, connection_role::client);
    auto ssn = open_session(s);
    REQUIRE(s.conn.attach(ssn, receiver_opts()));
    s.collect();
    const value kv[2] = {value("not-binary"), acc.get()};
    auto a = peer_attach("rx", 0, role::sender);
    a.unsettled = value::map(kv);
    (void)s.feed(a);
    auto c = s.last<amqp::close>();
    REQUIRE(c);
    CHECK(condition_of(c) == symbol::decode_error);
  }
  SUBCASE("not a map: decode-error") {
    frame_script s({}, connection_role::client);
    auto ssn = open_session(s);
    REQUIRE(s.conn.attach(ssn, receiver_opts()));
    s.collect();
    const value items[1] = {value(binary_view(tag1))};
    auto a = peer_attach("rx", 0, role::sender);
    a.unsettled = value::list(items);
    (void)s.feed(a);
    auto c = s.last<amqp::close>();
    REQUIRE(c);
    CHECK(condition_of(c) == symbol::decode_error);
  }
}

TEST_CASE("engine: §2.6.7 credit: the receiver's flow sets the sender's credit") {
  engine_pair p;
  std::vector<std::uint32_t> credits;
  p.on_event = [&](side s, connection&, const event& e) {
    if (const auto* f = std::get_if<link_flow>(&e); f != nullptr && s == side::client) {
      credits.push_back(f->credit);
    }
    return false;
  };
  link_id server_link{};
  p.on_event = [&, inner = p.on_event](side s, connection& c, const event& e) {
    if (const auto* a = std::get_if<link_attached>(&e); a != nullptr && s == side::server) {
      server_link = a->link;
    }
    return inner(s, c, e);
  };
  auto ssn = p.open_session();
  auto l = p.client.attach(ssn, sender_opts());
  REQUIRE(l);
  REQUIRE(p.pump());
  CHECK(p.client.credit(*l) == 0);
  auto none = p.client.send(*l, {.payload = as_bytes("no credit")});
  REQUIRE_FALSE(none);
  CHECK(none.error() == errc::would_block);
  REQUIRE(p.server.flow(server_link, 5));
  REQUIRE(p.pump());
  CHECK(p.client.credit(*l) == 5);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(p.client.send(*l, {.payload = as_bytes("m"), .settled = true}));
  }
  auto sixth = p.client.send(*l, {.payload = as_bytes("m")});
  REQUIRE_FALSE(sixth);
  CHECK(sixth.error() == errc::would_block);
  CHECK(p.client.credit(*l) == 0);
  REQUIRE(p.pump());
  // §2.6.7: link-credit is absolute, from the receiver's delivery-count (now 5).
  REQUIRE(p.server.flow(server_link, 3));
  REQUIRE(p.pump());
  CHECK(p.client.credit(*l) == 3);
  CHECK(credits == std::vector<std::uint32_t>{5, 3});
}

TEST_CASE("engine: §2.6.7 drain: the sender uses up its credit and the receiver sees credit "
          "0") {
  engine_pair p;
  link_id server_link{};
  std::vector<link_flow> at_client, at_server;
  p.on_event = [&](side s, connection&, const event& e) {
    if (const auto* a = std::get_if<link_attached>(&e); a != nullptr && s == side::server) {
      server_link = a->link;
    }
    if (const auto* f = std::get_if<link_flow>(&e)) {
      (s == side::client ? at_client : at_server).push_back(*f);
    }
    return false;
  };
  auto ssn = p.open_session();
  auto l = p.client.attach(ssn, sender_opts());
  REQUIRE(l);
  REQUIRE(p.pump());
  REQUIRE(p.server.flow(server_link, 5, true));
  REQUIRE(p.pump());
  REQUIRE(at_client.size() == 1);
  CHECK(at_client[0].drain);
  CHECK(at_client[0].credit == 5);
  // Two messages are available; then nothing more: drained.
  REQUIRE(p.client.send(*l, {.payload = as_bytes("a"), .settled = true}));
  REQUIRE(p.client.send(*l, {.payload = as_bytes("b"), .settled = true}));
  REQUIRE(p.client.drained(*l));
  CHECK(p.client.credit(*l) == 0);
  REQUIRE(p.pump());
  REQUIRE_FALSE(at_server.empty());
  CHECK(at_server.back().credit == 0);
  CHECK(at_server.back().delivery_count == 5); // 2 sent + 3 used up by draining
  CHECK_FALSE(at_server.back().drain);
  CHECK(p.server_log == names{"connection_opened", "session_begun", "link_attached",
                              "delivery_received", "delivery_received", "link_flow"});
}

TEST_CASE("engine: §2.7.4 echo: the engine answers with its link state") {
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s);
  auto l = attach_link(s, ssn, sender_opts(), 3);
  REQUIRE(s.conn.set_available(l, 9));
  s.collect();
  (void)s.take();
  SUBCASE("link flow") {
    auto f = peer_flow(3, 0, 4);
    f.echo = true;
    REQUIRE(s.feed(f));
    auto items = s.take();
    REQUIRE(items.size() == 1);
    auto answer = items[0]->as<amqp::flow>();
    REQUIRE(answer);
    CHECK(answer->handle == std::optional<std::uint32_t>(0));
    CHECK(answer->delivery_count == std::optional<std::uint32_t>(0));
    CHECK(answer->link_credit == std::optional<std::uint32_t>(4));
    CHECK(answer->available == std::optional<std::uint32_t>(9));
    CHECK_FALSE(answer->echo);
    const auto* lf = s.find<link_flow>();
    REQUIRE(lf != nullptr);
    CHECK(lf->credit == 4);
  }
  SUBCASE("session flow") {
    amqp::flow f;
    f.next_incoming_id = 0;
    f.incoming_window = 10;
    f.next_outgoing_id = 0;
    f.outgoing_window = 10;
    f.echo = true;
    REQUIRE(s.feed(f));
    auto items = s.take();
    REQUIRE(items.size() == 1);
    auto answer = items[0]->as<amqp::flow>();
    REQUIRE(answer);
    CHECK_FALSE(answer->handle);
    CHECK_FALSE(answer->echo);
  }
}

TEST_CASE("engine: §2.7.4 available reaches the receiver") {
  engine_pair p;
  std::vector<std::uint32_t> available;
  link_id at_server{};
  p.on_event = [&](side s, connection&, const event& e) {
    if (const auto* f = std::get_if<link_flow>(&e); f != nullptr && s == side::server) {
      available.push_back(f->available);
    }
    if (const auto* a = std::get_if<link_attached>(&e); a != nullptr && s == side::server) {
      at_server = a->link;
    }
    return false;
  };
  auto ssn = p.open_session();
  auto l = p.client.attach(ssn, sender_opts());
  REQUIRE(l);
  REQUIRE(p.pump());
  REQUIRE(p.client.set_available(*l, 42));
  REQUIRE(p.pump());
  CHECK(available == std::vector<std::uint32_t>{42});
  SUBCASE("without a flow of its own: in the next flow sent anyway") {
    const auto before = p.client_bytes;
    REQUIRE(p.client.set_available(*l, 7, false));
    REQUIRE(p.pump());
    CHECK(p.client_bytes == before); // nothing written
    CHECK(available == std::vector<std::uint32_t>{42});
    // The receiver drains; the sender's answer carries the new value.
    REQUIRE(p.server.flow(at_server, 3, true));
    REQUIRE(p.pump());
    REQUIRE(p.client.drained(*l));
    REQUIRE(p.pump());
    REQUIRE(available.size() >= 2);
    CHECK(available.back() == 7);
  }
}

TEST_CASE("engine: §2.6.7 transfer beyond credit: amqp:link:transfer-limit-exceeded") {
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s);
  auto l = attach_link(s, ssn, receiver_opts(), 0);
  REQUIRE(s.conn.flow(l, 1));
  s.collect();
  const std::byte tag1[1] = {std::byte{1}};
  const std::byte tag2[1] = {std::byte{2}};
  REQUIRE(s.feed(peer_transfer(0, 0, binary_view(tag1)), 0, as_bytes("one")));
  CHECK(s.count<delivery_received>() == 1);
  (void)s.feed(peer_transfer(0, 1, binary_view(tag2)), 0, as_bytes("two"));
  CHECK(s.count<delivery_received>() == 0);
  check_detached_with(s, symbol::transfer_limit_exceeded);
}

// Feeds the peer's single-frame transfers with delivery-ids [first, first + n) on handle 0;
// returns how many of them the engine reported.
std::size_t feed_transfers(frame_script& s, std::uint32_t first, std::uint32_t n) {
  std::size_t received = 0;
  for (std::uint32_t i = first; i < first + n; ++i) {
    const std::byte tag[1] = {static_cast<std::byte>(i)};
    const bool fed =
        static_cast<bool>(s.feed(peer_transfer(0, i, binary_view(tag)), 0, as_bytes("m")));
    received += s.count<delivery_received>(); // the events of this feed
    if (!fed) {
      break;
    }
  }
  return received;
}

TEST_CASE("engine: §2.6.7 lowered credit: transfers sent before the sender saw it are accepted, "
          "up to what was granted") {
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s);
  auto l = attach_link(s, ssn, receiver_opts(), 0);
  REQUIRE(s.conn.flow(l, 5));
  REQUIRE(s.conn.flow(l, 1)); // the sender may already have sent 5
  s.collect();
  SUBCASE("the five in flight arrive; a sixth is beyond every grant") {
    CHECK(feed_transfers(s, 0, 5) == 5);
    CHECK(s.conn.credit(l) == 0);
    CHECK_FALSE(s.last<amqp::detach>());
    CHECK(feed_transfers(s, 5, 1) == 0);
    check_detached_with(s, symbol::transfer_limit_exceeded);
  }
  SUBCASE("a new, larger grant replaces the old one") {
    CHECK(feed_transfers(s, 0, 2) == 2); // the credit of 1, then one in flight
    REQUIRE(s.conn.flow(l, 3));          // delivery-count 2 + 3: up to delivery 5
    CHECK(feed_transfers(s, 2, 3) == 3);
    CHECK_FALSE(s.last<amqp::detach>());
    CHECK(feed_transfers(s, 5, 1) == 0);
    check_detached_with(s, symbol::transfer_limit_exceeded);
  }
  SUBCASE("the sender's flow says it used the old credit up: nothing more is owed") {
    // A drained sender moves its delivery-count on to the end of the credit it had.
    REQUIRE(s.feed(peer_flow(0, 5, 0), 0));
    CHECK(feed_transfers(s, 0, 1) == 0);
    check_detached_with(s, symbol::transfer_limit_exceeded);
  }
}

TEST_CASE("engine: §2.6.7 link_options::credit_overrun tolerates that many transfers beyond the "
          "credit, counted from this end's last flow") {
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s);
  link_options rx = receiver_opts();
  rx.credit_overrun = 2;
  auto l = attach_link(s, ssn, rx, 0);
  REQUIRE(s.conn.flow(l, 1));
  s.collect();
  CHECK(feed_transfers(s, 0, 3) == 3);
  CHECK_FALSE(s.last<amqp::detach>());
  SUBCASE("the next flow gives the tolerance again") {
    REQUIRE(s.conn.flow(l, 1));
    s.collect();
    const auto f = s.last<amqp::flow>();
    REQUIRE(f);
    CHECK(f->delivery_count == 3U); // the overshoot is counted: the grant starts after it
    CHECK(feed_transfers(s, 3, 3) == 3);
    CHECK_FALSE(s.last<amqp::detach>());
    CHECK(feed_transfers(s, 6, 1) == 0);
    check_detached_with(s, symbol::transfer_limit_exceeded);
  }
  SUBCASE("one more is beyond it") {
    CHECK(feed_transfers(s, 3, 1) == 0);
    check_detached_with(s, symbol::transfer_limit_exceeded);
  }
}

TEST_CASE("engine: §2.7.3 message above max-message-size: amqp:link:message-size-exceeded") {
  link_options rx = receiver_opts();
  rx.max_message_size = 100;
  const std::byte tag[1] = {std::byte{1}};
  const std::string big(101, 'b');
  SUBCASE("one frame of 101 bytes") {
    frame_script s({}, connection_role::client);
    auto ssn = open_session(s);
    auto l = attach_link(s, ssn, rx, 0);
    auto a = s.last<amqp::attach>();
    REQUIRE(a);
    CHECK(a->max_message_size == std::optional<std::uint64_t>(100));
    REQUIRE(s.conn.flow(l, 10));
    s.collect();
    (void)s.feed(peer_transfer(0, 0, binary_view(tag)), 0, as_bytes(big));
    CHECK(s.count<delivery_received>() == 0);
    check_detached_with(s, symbol::message_size_exceeded);
  }
  SUBCASE("two frames of 60 bytes") {
    frame_script s({}, connection_role::client);
    auto ssn = open_session(s);
    auto l = attach_link(s, ssn, rx, 0);
    REQUIRE(s.conn.flow(l, 10));
    s.collect();
    REQUIRE(s.feed(peer_transfer(0, 0, binary_view(tag), true), 0, as_bytes(std::string(60, 'x'))));
    amqp::transfer more;
    more.handle = 0;
    (void)s.feed(more, 0, as_bytes(std::string(60, 'y')));
    CHECK(s.count<delivery_received>() == 0);
    check_detached_with(s, symbol::message_size_exceeded);
  }
  SUBCASE("100 bytes is accepted") {
    frame_script s({}, connection_role::client);
    auto ssn = open_session(s);
    auto l = attach_link(s, ssn, rx, 0);
    REQUIRE(s.conn.flow(l, 10));
    s.collect();
    REQUIRE(s.feed(peer_transfer(0, 0, binary_view(tag), true), 0, as_bytes(std::string(50, 'x'))));
    amqp::transfer more;
    more.handle = 0;
    REQUIRE(s.feed(more, 0, as_bytes(std::string(50, 'y'))));
    const auto* d = s.find<delivery_received>();
    REQUIRE(d != nullptr);
    CHECK(d->payload.size() == 100);
    CHECK(s.all<amqp::detach>().empty());
  }
  SUBCASE("a sender does not send above the peer's max-message-size") {
    frame_script s({}, connection_role::client);
    auto ssn = open_session(s);
    REQUIRE(s.conn.attach(ssn, sender_opts()));
    s.collect();
    auto a = peer_attach("tx", 0, role::receiver);
    a.max_message_size = 100;
    REQUIRE(s.feed(a));
    const link_id l = s.find<link_attached>()->link;
    REQUIRE(s.feed(peer_flow(0, 0, 10)));
    auto r = s.conn.send(l, {.payload = as_bytes(big)});
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::message_size_exceeded);
    CHECK(s.conn.send(l, {.payload = as_bytes(std::string(100, 'k'))}));
  }
}

TEST_CASE("engine: §2.6.6 detach with closed=false only detaches, on both sides") {
  engine_pair p;
  p.record_wire = true;
  auto ssn = p.open_session();
  auto l = p.client.attach(ssn, sender_opts());
  REQUIRE(l);
  REQUIRE(p.pump());
  REQUIRE(p.client.detach(*l, false));
  REQUIRE(p.pump());
  CHECK(p.server_log.back() == "link_detached detached");
  CHECK(p.client_log.back() == "link_detached detached");
  std::vector<bool> flags;
  for (const auto* w : {&p.client_wire, &p.server_wire}) {
    for (const auto& i : w->items) {
      if (auto d = i.as<amqp::detach>()) {
        flags.push_back(d->closed);
      }
    }
  }
  CHECK(flags == std::vector<bool>{false, false});
}

TEST_CASE("engine: §2.6.6 peer answering a closing detach with a non-closing one") {
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s);
  auto l = attach_link(s, ssn, sender_opts("link-a"), 0);
  REQUIRE(s.conn.detach(l, true));
  s.collect();
  auto ours = s.last<amqp::detach>();
  REQUIRE(ours);
  CHECK(ours->closed);
  amqp::detach d;
  d.handle = 0;
  d.closed = false;
  REQUIRE(s.feed(d));
  // The link is detached, not closed: the event says so.
  const auto* ld = s.find<link_detached>();
  REQUIRE(ld != nullptr);
  CHECK_FALSE(ld->closed);
  CHECK(ld->remote);
  CHECK_FALSE(s.conn.error());
  // §2.6.6: the peer then signals the close by reattaching and sending a closing detach;
  // the engine answers both.
  (void)s.take();
  REQUIRE(s.feed(peer_attach("link-a", 0, role::receiver)));
  amqp::detach close_it;
  close_it.handle = 0;
  close_it.closed = true;
  REQUIRE(s.feed(close_it));
  CHECK(s.take_names() == names{"attach", "detach"});
  auto last = s.last<amqp::detach>();
  REQUIRE(last);
  CHECK(last->closed);
  CHECK(s.log.back() == "link_detached closed");
  CHECK_FALSE(s.conn.error());
}

TEST_CASE("engine: §2.6.5 detach timeout when the peer never answers") {
  frame_script s(close_within_3s(), connection_role::client);
  auto ssn = open_session(s);
  auto l = attach_link(s, ssn, sender_opts(), 0);
  REQUIRE(s.conn.detach(l));
  s.collect();
  (void)s.take();
  s.advance(2999ms);
  CHECK(s.take().empty());
  s.advance(1ms);
  // engine_timeouts::close: the link can no longer be trusted: its session ends with
  // amqp:resource-limit-exceeded; the connection stays.
  auto e = s.last<amqp::end>();
  REQUIRE(e);
  CHECK(condition_of(e) == symbol::resource_limit_exceeded);
  const auto* ended = s.find<session_ended>();
  REQUIRE(ended != nullptr);
  CHECK(ended->code == errc::timeout);
  CHECK_FALSE(s.last<amqp::close>());
  CHECK_FALSE(s.conn.error());
  SUBCASE("the peer answers the end: the connection carries on") {
    REQUIRE(s.feed(amqp::end{}, 0));
    CHECK_FALSE(s.conn.state(ssn));
    auto again = s.conn.begin();
    REQUIRE(again);
    CHECK(again->value == ssn.value);
    s.advance(10000ms);
    CHECK_FALSE(s.last<amqp::close>());
    CHECK_FALSE(s.conn.error());
  }
  SUBCASE("the peer does not answer the end either: the connection is closed") {
    (void)s.take();
    s.advance(2999ms);
    CHECK(s.take().empty());
    s.advance(1ms);
    auto c = s.last<amqp::close>();
    REQUIRE(c);
    CHECK(condition_of(c) == symbol::resource_limit_exceeded);
    CHECK(s.conn.error() == errc::timeout);
  }
}

TEST_CASE("engine: §2.4.3 after our close, an unanswered detach sends nothing more") {
  // Found by the connection fuzz targets: the detach timeout ended the session after the
  // close had gone out, writing an end after the close.
  frame_script s(close_within_3s(), connection_role::client);
  auto ssn = open_session(s);
  auto l = attach_link(s, ssn, sender_opts(), 0);
  REQUIRE(s.conn.detach(l));
  s.advance(1000ms);
  const std::byte heartbeat[8] = {std::byte{0}, std::byte{0}, std::byte{0}, std::byte{8},
                                  std::byte{2}, std::byte{0}, std::byte{0}, std::byte{0}};
  REQUIRE(s.feed_bytes(heartbeat)); // the engine's clock is at 1 s now
  REQUIRE(s.conn.close());
  s.collect();
  CHECK(s.take().back()->name() == "close");
  s.advance(2500ms); // the detach's deadline passes
  CHECK(s.take().empty());
  CHECK_FALSE(s.conn.finished());
  s.advance(500ms); // the close's deadline (4 s)
  CHECK(s.take().empty());
  CHECK(s.conn.finished());
  CHECK(s.conn.error() == errc::timeout);
}

TEST_CASE("engine: §2.5.2 end timeout when the peer never answers") {
  frame_script s(close_within_3s(), connection_role::client);
  auto ssn = open_session(s);
  REQUIRE(s.conn.end(ssn));
  s.collect();
  (void)s.take();
  s.advance(3000ms);
  auto c = s.last<amqp::close>();
  REQUIRE(c);
  CHECK(condition_of(c) == symbol::resource_limit_exceeded);
  CHECK(s.conn.error() == errc::timeout);
}

TEST_CASE("engine: §2.6.7 a flow that comes with the peer's attach is reported once this end "
          "answers the attach") {
  // A receiver commonly writes attach and flow together; the sender's application answers
  // the attach later and must still learn the credit and the drain request.
  frame_script s({}, connection_role::server);
  s.handshake(peer_open("client"));
  REQUIRE(s.feed(peer_begin(std::nullopt), 0));
  REQUIRE(s.conn.begin(s.find<session_begun>()->session));
  s.collect();
  auto bytes = frame_bytes(peer_attach("pull", 0, role::receiver));
  auto f = peer_flow(0, 0, 5);
  f.drain = true;
  const auto flow_bytes = frame_bytes(f);
  bytes.insert(bytes.end(), flow_bytes.begin(), flow_bytes.end());
  REQUIRE(s.feed_bytes(bytes));
  const auto* la = s.find<link_attached>();
  REQUIRE(la != nullptr);
  const link_id l = la->link;
  CHECK(s.count<link_flow>() == 0); // not before the link is open on this end
  link_options o;
  o.name = "pull";
  o.role = role::sender;
  o.source = source{};
  REQUIRE(s.conn.attach(l, o));
  s.collect();
  const auto* lf = s.find<link_flow>();
  REQUIRE(lf != nullptr);
  CHECK(lf->link == l);
  CHECK(lf->credit == 5);
  CHECK(lf->drain);
  // Nothing to send: the drain is answered, using up the credit (§2.6.7).
  (void)s.take();
  REQUIRE(s.conn.drained(l));
  s.collect();
  auto answer = s.last<amqp::flow>();
  REQUIRE(answer);
  CHECK(answer->delivery_count == std::optional<std::uint32_t>(5));
  CHECK(answer->link_credit == std::optional<std::uint32_t>(0));
  // Reported once.
  s.collect();
  CHECK(s.count<link_flow>() == 0);
}

TEST_CASE("engine: §2.6.3 refusing a peer's attach: attach with a null terminus, then detach") {
  frame_script s({}, connection_role::server);
  s.handshake(peer_open("client"));
  REQUIRE(s.feed(peer_begin(std::nullopt), 0));
  REQUIRE(s.conn.begin(s.find<session_begun>()->session));
  s.collect();
  auto a = peer_attach("unwanted", 0, role::sender);
  a.target = attach_target{target{}};
  std::get<target>(*a.target).address = "no-such-queue";
  REQUIRE(s.feed(a));
  const auto* la = s.find<link_attached>();
  REQUIRE(la != nullptr);
  const link_id l = la->link;
  (void)s.take();
  REQUIRE(s.conn.detach(l, true, amqp::error{symbol_view{symbol::not_found}, "no such queue", {}}));
  s.collect();
  auto items = s.take();
  REQUIRE(items.size() == 2);
  auto answer = items[0]->as<amqp::attach>();
  REQUIRE(answer);
  CHECK(answer->name == "unwanted");
  CHECK(answer->role == role::receiver);
  CHECK_FALSE(answer->target); // the terminus this end would have created
  auto d = items[1]->as<amqp::detach>();
  REQUIRE(d);
  CHECK(d->closed);
  CHECK(d->handle == answer->handle);
  CHECK(condition_of(d) == symbol::not_found);
}

TEST_CASE("engine: STYLE §5 max_unsettled_per_link: the sender stops, the peer that exceeds it is "
          "detached") {
  connection_options o;
  o.limits.max_unsettled_per_link = 3;
  SUBCASE("sending") {
    frame_script s(o, connection_role::client);
    auto ssn = open_session(s);
    auto l = attach_link(s, ssn, sender_opts(), 0);
    REQUIRE(s.feed(peer_flow(0, 0, 100)));
    for (int i = 0; i < 3; ++i) {
      REQUIRE(s.conn.send(l, {.payload = as_bytes("u")}));
    }
    auto fourth = s.conn.send(l, {.payload = as_bytes("u")});
    REQUIRE_FALSE(fourth);
    CHECK(fourth.error() == errc::resource_limit);
    CHECK(s.conn.send(l, {.payload = as_bytes("p"), .settled = true}));
  }
  SUBCASE("receiving") {
    frame_script s(o, connection_role::client);
    auto ssn = open_session(s);
    auto l = attach_link(s, ssn, receiver_opts(), 0);
    REQUIRE(s.conn.flow(l, 100));
    s.collect();
    for (std::uint32_t i = 0; i < 4; ++i) {
      const std::byte tag[1] = {static_cast<std::byte>(i)};
      (void)s.feed(peer_transfer(0, i, binary_view(tag)), 0, as_bytes("u"));
    }
    check_detached_with(s, symbol::resource_limit_exceeded);
  }
}

TEST_CASE("engine: §2.8.7 a delivery-tag is at most 32 bytes") {
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s);
  auto l = attach_link(s, ssn, sender_opts(), 0);
  REQUIRE(s.feed(peer_flow(0, 0, 100)));
  const std::vector<std::byte> tag33(33, std::byte{1});
  const std::vector<std::byte> tag32(32, std::byte{2});
  auto r = s.conn.send(l, {.payload = as_bytes("x"), .tag = tag33});
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::invalid_argument);
  REQUIRE(s.conn.send(l, {.payload = as_bytes("x"), .tag = tag32}));
  s.collect();
  auto t = s.last<amqp::transfer>();
  REQUIRE(t);
  REQUIRE(t->delivery_tag);
  CHECK(t->delivery_tag->size() == 32);
}

TEST_CASE("engine: §2.7.3 max-message-size zero or unset means no limit") {
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s);
  REQUIRE(s.conn.attach(ssn, sender_opts()));
  s.collect();
  auto a = peer_attach("tx", 0, role::receiver);
  a.max_message_size = 0;
  REQUIRE(s.feed(a));
  const link_id l = s.find<link_attached>()->link;
  REQUIRE(s.feed(peer_flow(0, 0, 10)));
  const std::vector<std::byte> big(100'000, std::byte{3});
  CHECK(s.conn.send(l, {.payload = big}));
}

TEST_CASE("engine: §2.6.5 after our detach, the peer's transfers are discarded until its "
          "detach") {
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s);
  auto l = attach_link(s, ssn, receiver_opts(), 0);
  REQUIRE(s.conn.flow(l, 10));
  REQUIRE(s.conn.detach(l));
  s.collect();
  const std::byte tag[1] = {std::byte{1}};
  REQUIRE(s.feed(peer_transfer(0, 0, binary_view(tag)), 0, as_bytes("late")));
  CHECK(s.count<delivery_received>() == 0);
  amqp::detach d;
  d.handle = 0;
  d.closed = true;
  REQUIRE(s.feed(d));
  CHECK(s.log.back() == "link_detached closed");
  CHECK(s.all<amqp::end>().empty());
  CHECK_FALSE(s.conn.error());
}

TEST_CASE("engine: §2.7.7 detach with an error reaches the peer") {
  engine_pair p;
  std::string condition, description;
  bool remote = false;
  std::error_code code;
  p.on_event = [&](side s, connection&, const event& e) {
    if (const auto* d = std::get_if<link_detached>(&e); d != nullptr && s == side::server) {
      remote = d->remote;
      code = d->code;
      if (d->error) {
        condition = d->error->condition.str;
        description = d->error->description.value_or("");
      }
    }
    return false;
  };
  auto ssn = p.open_session();
  auto l = p.client.attach(ssn, sender_opts());
  REQUIRE(l);
  REQUIRE(p.pump());
  REQUIRE(p.client.detach(*l, true, amqp::error{symbol_view{symbol::detach_forced}, "bye", {}}));
  REQUIRE(p.pump());
  CHECK(remote);
  CHECK(code == errc::remote_error);
  CHECK(condition == symbol::detach_forced);
  CHECK(description == "bye");
  CHECK(p.client_log.back() == "link_detached closed");
}

TEST_CASE("engine: STYLE §5 max_unsettled_per_session: the peer that exceeds it ends the session") {
  connection_options o;
  o.limits.max_unsettled_per_session = 4;
  frame_script s(o, connection_role::client);
  auto ssn = open_session(s);
  auto la = attach_link(s, ssn, receiver_opts("a"), 0);
  auto lb = attach_link(s, ssn, receiver_opts("b"), 1);
  REQUIRE(s.conn.flow(la, 100));
  REQUIRE(s.conn.flow(lb, 100));
  s.collect();
  for (std::uint32_t i = 0; i < 5; ++i) {
    const std::byte tag[1] = {static_cast<std::byte>(i)};
    (void)s.feed(peer_transfer(i % 2, i, binary_view(tag)), 0, as_bytes("u"));
  }
  INFO("engine wrote: " << joined(s.out.names()));
  auto items = s.all<amqp::end>();
  REQUIRE(items.size() == 1);
  CHECK(condition_of(items[0]->as<amqp::end>()) == symbol::resource_limit_exceeded);
}
