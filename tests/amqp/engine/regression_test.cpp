// Engine regressions found by conformance runs and fuzzing.
#include <doctest/doctest.h>

#include "amqp/connection.hpp"
#include "support/engine_pair.hpp"

using namespace amqp;
using amqp::test::engine_pair;

TEST_CASE("regression: begin and several attaches in one write (Qpid Proton client)") {
  // The server had not answered the begin when the second attach was read, and compared its
  // handle with a handle-max of 0: it ended a session it had never begun.
  engine_pair p;
  REQUIRE(p.client.open());
  auto s = p.client.begin();
  REQUIRE(s);
  link_options a;
  a.name = "a";
  a.role = role::sender;
  a.target = target{};
  link_options b = a;
  b.name = "b";
  b.role = role::receiver;
  REQUIRE(p.client.attach(*s, a));
  REQUIRE(p.client.attach(*s, b));
  p.pump();
  CHECK(p.server_log == std::vector<std::string>{"connection_opened", "session_begun",
                                                 "link_attached", "link_attached"});
  CHECK(p.client_log == std::vector<std::string>{"connection_opened", "session_begun",
                                                 "link_attached", "link_attached"});
  CHECK_FALSE(p.client.error());
  CHECK_FALSE(p.server.error());
}

TEST_CASE("regression: no read buffer while input is paused behind a full event queue") {
  // amqp-cli receive crashed on an assertion in read_done(): the transport took a read
  // buffer after the last queued event was pulled but before the paused input was resumed;
  // resuming then consumed the buffered frames and the next read_done() dropped the bytes
  // read into that buffer. While input is paused, wants_read() is false and read_buffer()
  // gives nothing; the next next_event() resumes.
  connection_options so;
  so.limits.max_events = 4;
  engine_pair p({}, so);
  p.auto_credit = 100;
  const auto s = p.open_session();
  link_options o;
  o.name = "l";
  o.role = role::sender;
  o.target = target{};
  o.target->address = "q";
  const auto l = p.client.attach(s, o);
  REQUIRE(l);
  p.pump();
  REQUIRE(p.client.credit(*l) > 20);
  const std::byte body[1] = {std::byte{0x42}};
  for (int i = 0; i < 20; ++i) {
    REQUIRE(p.client.send(*l, {.payload = body, .settled = true}));
  }
  const auto out = p.client.pending_output();
  const std::vector<std::byte> bytes(out.begin(), out.end());
  p.client.consume_output(out.size());
  REQUIRE(p.server.receive(bytes, p.now));
  int pulled = 0;
  for (; pulled < 4; ++pulled) {
    REQUIRE(p.server.next_event());
  }
  // The queue is empty and 16 transfers wait behind it.
  CHECK_FALSE(p.server.wants_read());
  CHECK(p.server.read_buffer(64).empty());
  while (auto e = p.server.next_event()) {
    ++pulled;
  }
  CHECK(pulled == 20);
  CHECK(p.server.wants_read());
  CHECK_FALSE(p.server.read_buffer(64).empty());
}
