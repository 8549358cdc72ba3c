// The blocking facade's objects once their client is closed, and when default-constructed or
// moved-from: every call fails at once with errc::invalid_state, from any thread.
#include <cstdio>
#include <cstdlib>
#include <future>
#include <thread>

#include <doctest/doctest.h>

#include "amqp/error.hpp"
#include "amqp/transport/blocking.hpp"
#include "transport/support.hpp"

using namespace amqp;
using namespace amqp::transport;
using namespace std::chrono_literals;

namespace {

// Runs `f` on a thread of its own and returns its result, or ends the test program if it
// has not returned within 10 s: a call that hangs must fail the test, not hang it.
template <typename F> auto within_bound(const char* what, F f) -> decltype(f()) {
  std::packaged_task<decltype(f())()> task(std::move(f));
  auto fut = task.get_future();
  std::thread(std::move(task)).detach();
  if (fut.wait_for(10s) != std::future_status::ready) {
    std::fprintf(stderr, "FAILED: %s did not return within 10 s (it hangs)\n", what);
    std::fflush(stderr);
    std::_Exit(2);
  }
  return fut.get();
}

const std::error_code invalid_state = make_error_code(errc::invalid_state);

// The error of a result, or {} if it holds a value.
template <typename R> std::error_code error_of(const R& r) {
  return r ? std::error_code{} : r.error();
}

} // namespace

TEST_CASE("blocking: every call on a closed blocking client's objects fails at once") {
  test::broker_server b;
  const auto port = b.listen("amqp://127.0.0.1:0");
  b.start();
  auto c = blocking_client::connect("amqp://127.0.0.1:" + std::to_string(port));
  REQUIRE(c);
  auto s = c->open_sender("closed");
  REQUIRE(s);
  REQUIRE(s->send(test::make_message("m")));
  auto r = c->open_receiver("closed");
  REQUIRE(r);
  auto m = r->receive(5s);
  REQUIRE(m);
  auto q = c->open_requester("closed-requests");
  REQUIRE(q);

  REQUIRE(c->close());

  const auto bytes = test::make_message("after");
  CHECK(error_of(within_bound("send", [&] { return s->send(bytes); })) == invalid_state);
  CHECK(error_of(within_bound("receive", [&] { return r->receive(5s); })) == invalid_state);
  CHECK(error_of(within_bound("accept", [&] { return r->accept(*m); })) == invalid_state);
  CHECK(error_of(within_bound("reject", [&] { return r->reject(*m); })) == invalid_state);
  CHECK(error_of(within_bound("release", [&] { return r->release(*m); })) == invalid_state);
  CHECK(error_of(within_bound("modify", [&] { return r->modify(*m, true, false); })) ==
        invalid_state);
  CHECK(error_of(within_bound("request", [&] { return q->request(bytes, 5s); })) == invalid_state);
  CHECK(error_of(within_bound("sender close", [&] { return s->close(); })) == invalid_state);
  CHECK(error_of(within_bound("receiver close", [&] { return r->close(); })) == invalid_state);
  CHECK(error_of(within_bound("requester close", [&] { return q->close(); })) == invalid_state);
  CHECK(error_of(within_bound("open_sender", [&] { return c->open_sender("x"); })) ==
        invalid_state);
  CHECK(error_of(within_bound("open_receiver", [&] { return c->open_receiver("x"); })) ==
        invalid_state);
  CHECK(error_of(within_bound("open_requester", [&] { return c->open_requester("x"); })) ==
        invalid_state);
  CHECK(error_of(within_bound("second close", [&] { return c->close(); })) == invalid_state);
  within_bound("last_error", [&] { return c->last_error(); });
}

TEST_CASE("blocking: objects of a destroyed blocking client fail at once") {
  test::broker_server b;
  const auto port = b.listen("amqp://127.0.0.1:0");
  b.start();
  std::optional<blocking_sender> s;
  std::optional<blocking_receiver> r;
  {
    auto c = blocking_client::connect("amqp://127.0.0.1:" + std::to_string(port));
    REQUIRE(c);
    auto so = c->open_sender("gone");
    REQUIRE(so);
    s = std::move(*so);
    auto ro = c->open_receiver("gone");
    REQUIRE(ro);
    r = std::move(*ro);
  } // closes the client
  const auto bytes = test::make_message("after");
  CHECK(error_of(within_bound("send", [&] { return s->send(bytes); })) == invalid_state);
  CHECK(error_of(within_bound("receive", [&] { return r->receive(5s); })) == invalid_state);
}

TEST_CASE("blocking: default-constructed and moved-from blocking objects fail at once") {
  const received_message m;
  const auto bytes = test::make_message("m");
  blocking_sender s;
  blocking_receiver r;
  blocking_requester q;
  blocking_client c;
  CHECK(error_of(s.send(bytes)) == invalid_state);
  CHECK(error_of(s.close()) == invalid_state);
  CHECK(error_of(r.receive(1s)) == invalid_state);
  CHECK(error_of(r.accept(m)) == invalid_state);
  CHECK(error_of(r.reject(m)) == invalid_state);
  CHECK(error_of(r.release(m)) == invalid_state);
  CHECK(error_of(r.modify(m, false, false)) == invalid_state);
  CHECK(error_of(r.close()) == invalid_state);
  CHECK(error_of(q.request(bytes, 1s)) == invalid_state);
  CHECK(error_of(q.close()) == invalid_state);
  CHECK(error_of(c.open_sender("x")) == invalid_state);
  CHECK(error_of(c.close()) == invalid_state);
  CHECK(c.last_error().empty());

  test::broker_server b;
  const auto port = b.listen("amqp://127.0.0.1:0");
  b.start();
  auto live = blocking_client::connect("amqp://127.0.0.1:" + std::to_string(port));
  REQUIRE(live);
  auto ls = live->open_sender("moved");
  REQUIRE(ls);
  blocking_sender taken = std::move(*ls);
  CHECK(error_of(ls->send(bytes)) == invalid_state); // NOLINT(bugprone-use-after-move)
  CHECK(taken.send(bytes));
  blocking_client other = std::move(*live);
  CHECK(error_of(live->open_sender("x")) == invalid_state); // NOLINT(bugprone-use-after-move)
  CHECK(other.close());
}

TEST_CASE("blocking: closing from one thread ends calls waiting on others") {
  test::broker_server b;
  const auto port = b.listen("amqp://127.0.0.1:0");
  b.start();
  auto c = blocking_client::connect("amqp://127.0.0.1:" + std::to_string(port));
  REQUIRE(c);
  auto r = c->open_receiver("nothing");
  REQUIRE(r);
  auto waiting = std::async(std::launch::async, [&] { return r->receive(60s); });
  // Two closes at once: one closes, the other fails at once; neither hangs.
  auto other_close = std::async(std::launch::async, [&] { return c->close(); });
  auto first = within_bound("close", [&] { return c->close(); });
  auto second = within_bound("concurrent close", [&] { return other_close.get(); });
  CHECK((first.has_value() || second.has_value()));
  CHECK_FALSE((first.has_value() && second.has_value()));
  const auto got = within_bound("waiting receive", [&] { return waiting.get(); });
  REQUIRE_FALSE(got);
  CHECK(got.error() == invalid_state);
}
