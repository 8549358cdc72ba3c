// Engine pair tests: the whole lifecycle between a client and a server engine in memory.
#include <algorithm>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/connection.hpp"
#include "support/engine_pair.hpp"
#include "support/failing_resource.hpp"
#include "support/frame_script.hpp"

using namespace amqp;
using amqp::test::engine_pair;
using amqp::test::side;

namespace {

std::span<const std::byte> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

link_options sender_to(std::string_view address) {
  link_options o;
  o.name = "sender-link";
  o.role = role::sender;
  o.target = target{};
  o.target->address = address;
  o.source = source{};
  return o;
}

} // namespace

TEST_CASE("engine: open, begin, attach, transfer, settle, detach, end, close") {
  engine_pair p;
  p.auto_credit = 10;
  std::vector<std::string> received;
  std::vector<delivery_id> to_settle;
  p.on_event = [&](side s, connection&, const event& e) {
    if (s == side::server) {
      if (const auto* d = std::get_if<delivery_received>(&e)) {
        received.emplace_back(reinterpret_cast<const char*>(d->payload.data()), d->payload.size());
        to_settle.push_back(d->delivery);
        return true;
      }
    }
    return false;
  };
  auto ssn = p.open_session();
  auto l = p.client.attach(ssn, sender_to("queue-1"));
  REQUIRE(l);
  p.pump();
  CHECK(p.client.credit(*l) == 10);
  auto d1 = p.client.send(*l, {.payload = bytes_of("hello")});
  auto d2 = p.client.send(*l, {.payload = bytes_of("world")});
  REQUIRE(d1);
  REQUIRE(d2);
  p.pump();
  CHECK(received == std::vector<std::string>{"hello", "world"});
  CHECK(p.client.unsettled(*l) == 2);
  for (auto d : to_settle) {
    REQUIRE(p.server.settle(d, accepted{}));
  }
  p.pump();
  CHECK(p.client.unsettled(*l) == 0);
  REQUIRE(p.client.detach(*l));
  p.pump();
  REQUIRE(p.client.end(ssn));
  p.pump();
  REQUIRE(p.client.close());
  p.pump();
  CHECK(p.client.finished());
  CHECK(p.server.finished());
  CHECK(p.client_log == std::vector<std::string>{"connection_opened", "session_begun",
                                                 "link_attached", "link_flow", "delivery_updated",
                                                 "delivery_updated", "link_detached closed",
                                                 "session_ended", "connection_closed remote"});
  CHECK(p.server_log == std::vector<std::string>{"connection_opened", "session_begun",
                                                 "link_attached", "delivery_received",
                                                 "delivery_received", "link_detached closed",
                                                 "session_ended", "connection_closed remote"});
}

TEST_CASE("engine: take_output hands a batch out unchanged while the engine writes on, and "
          "reuses its buffer") {
  amqp::test::failing_resource mem;
  connection_options o;
  o.memory = &mem;
  amqp::test::frame_script s(o, connection_role::client);
  auto ssn = amqp::test::open_session(s);
  link_options lo = sender_to("q");
  lo.snd_settle_mode = sender_settle_mode::settled;
  auto l = amqp::test::attach_link(s, ssn, lo, 0);
  REQUIRE(s.feed(amqp::test::peer_flow(0, 0, 1000)));
  CHECK(s.conn.pending_output().empty());

  REQUIRE(s.conn.send(l, {.payload = bytes_of("first")}));
  const auto batch = s.conn.take_output();
  REQUIRE_FALSE(batch.empty());
  const std::vector<std::byte> copy(batch.begin(), batch.end());
  CHECK(s.conn.pending_output().empty()); // everything went into the batch

  REQUIRE(s.conn.send(l, {.payload = bytes_of("second")}));
  CHECK(std::equal(batch.begin(), batch.end(), copy.begin(), copy.end())); // unchanged
  CHECK(s.conn.take_output().empty());                                     // one batch at a time
  const auto next = s.conn.pending_output();
  REQUIRE_FALSE(next.empty());
  const std::vector<std::byte> second(next.begin(), next.end());
  s.conn.output_written();
  const auto batch2 = s.conn.take_output();
  CHECK(std::equal(batch2.begin(), batch2.end(), second.begin(), second.end()));
  s.conn.output_written();

  // Steady state: the two buffers alternate without allocating.
  for (int i = 0; i < 8; ++i) {
    REQUIRE(s.conn.send(l, {.payload = bytes_of("warm")}));
    REQUIRE_FALSE(s.conn.take_output().empty());
    s.conn.output_written();
  }
  const std::size_t before = mem.allocations();
  for (int i = 0; i < 100; ++i) {
    REQUIRE(s.conn.send(l, {.payload = bytes_of("steady")}));
    REQUIRE_FALSE(s.conn.take_output().empty());
    s.conn.output_written();
  }
  CHECK(mem.allocations() == before);
}
