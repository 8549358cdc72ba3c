// The hub's timer heap: earliest first, due ones only, duplicates kept.
#include <chrono>

#include <doctest/doctest.h>

#include "emulator/timers.hpp"

using namespace amqp::iothub::emulator;
using namespace std::chrono_literals;

TEST_CASE("timers: the earliest due timer comes out first; later ones wait") {
  timer_heap h;
  CHECK_FALSE(h.next());
  const amqp::time_point t0{};
  h.schedule(t0 + 30s, timer_kind::token_expiry, 1, 2);
  h.schedule(t0 + 10s, timer_kind::retention);
  h.schedule(t0 + 20s, timer_kind::c2d_lock, 3, 4);
  h.schedule(t0 + 10s, timer_kind::fault, 5, 6); // same time: both come out
  CHECK(h.size() == 4);
  CHECK(*h.next() == t0 + 10s);
  CHECK_FALSE(h.pop_due(t0 + 9s));
  auto a = h.pop_due(t0 + 15s);
  auto b = h.pop_due(t0 + 15s);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->at == t0 + 10s);
  CHECK(b->at == t0 + 10s);
  CHECK(a->kind != b->kind);
  CHECK_FALSE(h.pop_due(t0 + 15s));
  auto c = h.pop_due(t0 + 1h);
  REQUIRE(c);
  CHECK(c->kind == timer_kind::c2d_lock);
  CHECK(c->a == 3);
  CHECK(c->b == 4);
  CHECK(h.pop_due(t0 + 1h)->kind == timer_kind::token_expiry);
  CHECK_FALSE(h.next());
}
