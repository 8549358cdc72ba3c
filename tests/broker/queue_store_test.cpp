// The broker's queue store (broker/src/queue_store.hpp), without engines: names, limits,
// byte accounting, arrival order on requeue, and picking past undeliverable messages.
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "queue_store.hpp"

using namespace amqp;
namespace ab = amqp::broker;

namespace {

ab::stored_message msg(std::size_t size, std::uint8_t fill = 0) {
  ab::stored_message m;
  m.payload.assign(size, std::byte{fill});
  return m;
}

std::vector<int> fills(const ab::queue& q) {
  std::vector<int> v;
  for (const auto& m : q.messages) {
    v.push_back(std::to_integer<int>(m.payload.at(0)));
  }
  return v;
}

} // namespace

TEST_CASE("broker queue_store: addresses, absolute URLs, auto-creation and max_queues") {
  ab::broker_options o;
  o.max_queues = 2;
  ab::queue_store s(o);
  auto q = s.find_or_create("amqps://host:5671/orders");
  REQUIRE(q);
  CHECK((*q)->name == "orders");
  CHECK(s.find_or_create("orders").value() == *q);
  REQUIRE(s.create_dynamic());
  CHECK(s.find_or_create("third").error() == errc::resource_limit);
  CHECK(s.create_dynamic() == nullptr);
  CHECK(s.declare("fourth").error() == errc::resource_limit);
  CHECK(s.declare("").error() == errc::invalid_argument);
  CHECK(s.names() == std::vector<std::string>{"dynamic.1", "orders"});
  ab::broker_options closed;
  closed.auto_create_queues = false;
  ab::queue_store t(closed);
  CHECK(t.find_or_create("q").error() == errc::invalid_state);
  REQUIRE(t.declare("q"));
  CHECK(t.find_or_create("q"));
}

TEST_CASE("broker queue_store: auto-created queues go when unused; declared ones stay") {
  ab::broker_options o;
  ab::queue_store s(o);
  ab::queue& a = *s.find_or_create("a").value();
  s.maybe_gc(a);
  CHECK(s.find("a") == nullptr);
  REQUIRE(s.declare("d"));
  s.maybe_gc(*s.find("d"));
  CHECK(s.find("d") != nullptr);
  ab::queue& b = *s.find_or_create("b").value();
  s.enqueue(b, msg(3));
  s.maybe_gc(b);
  CHECK(s.find("b") != nullptr);
}

TEST_CASE("broker queue_store: bytes and messages are counted queued, in flight and gone") {
  ab::broker_options o;
  o.max_queue_messages = 3;
  o.max_queue_bytes = 1000;
  o.max_total_bytes = 250;
  ab::queue_store s(o);
  ab::queue& q = *s.find_or_create("q").value();
  s.enqueue(q, msg(100, 1));
  s.enqueue(q, msg(100, 2));
  CHECK(s.total_bytes() == 200);
  CHECK(s.room(q) == 1);
  CHECK(s.fits(50));
  CHECK_FALSE(s.fits(51));
  CHECK_FALSE(s.memory_full());
  // Delivered unsettled: still held, in flight.
  auto first = s.take(q, 0, true);
  CHECK(q.in_flight == 1);
  CHECK(q.in_flight_bytes == 100);
  CHECK(q.bytes == 100);
  CHECK(s.total_bytes() == 200);
  // Delivered presettled: gone.
  auto second = s.take(q, 0, false);
  CHECK(s.total_bytes() == 100);
  CHECK(q.messages.empty());
  s.settle(q, first);
  CHECK(q.in_flight == 0);
  CHECK(s.total_bytes() == 0);
  // The limits: 3 messages, or max_total_bytes broker-wide.
  s.enqueue(q, msg(100));
  s.enqueue(q, msg(100));
  s.enqueue(q, msg(50));
  CHECK(s.full(q));
  CHECK(s.room(q) == 0);
  CHECK(s.memory_full());
  CHECK(ab::queue_store::stats(q).depth == 3);
  CHECK(ab::queue_store::stats(q).enqueued == 5);
  s.erase(q);
  CHECK(s.total_bytes() == 0);
  CHECK(s.size() == 0);
  (void)second;
}

TEST_CASE("broker queue_store: returned messages go back at their place in arrival order") {
  ab::broker_options o;
  ab::queue_store s(o);
  ab::queue& q = *s.find_or_create("q").value();
  for (std::uint8_t i = 1; i <= 5; ++i) {
    s.enqueue(q, msg(1, i));
  }
  auto m1 = s.take(q, 0, true);
  auto m2 = s.take(q, 0, true);
  auto m4 = s.take(q, 1, true);
  CHECK(fills(q) == std::vector<int>{3, 5});
  for (auto* m : {&m4, &m1, &m2}) {
    s.settle(q, *m);
    s.requeue(q, std::move(*m));
  }
  CHECK(fills(q) == std::vector<int>{1, 2, 3, 4, 5});
  CHECK(s.total_bytes() == 5);
}

TEST_CASE("broker queue_store: pick skips messages a consumer answered undeliverable-here, "
          "64 deep at most") {
  ab::broker_options o;
  ab::queue_store s(o);
  ab::queue& q = *s.find_or_create("q").value();
  for (int i = 0; i < 70; ++i) {
    auto m = msg(1);
    if (i < 65) {
      m.undeliverable = {7};
    }
    s.enqueue(q, std::move(m));
  }
  CHECK(ab::queue_store::pick(q, 8) == 0);
  CHECK(ab::queue_store::pick(q, 7) == std::string::npos); // the 66th is beyond the scan
  q.messages[63].undeliverable.clear();
  CHECK(ab::queue_store::pick(q, 7) == 63);
}
