// Engine pair tests: the whole lifecycle between a client and a server engine in memory.
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/connection.hpp"
#include "support/engine_pair.hpp"

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
