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
