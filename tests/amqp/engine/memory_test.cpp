// Engine: its memory (STYLE §5). Every allocation goes through the connection's memory
// resource, and an idle connection with one session and one link holds little: at most
// 8 KiB per side (Qpid Proton C holds 31.5 KiB for the same).
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory_resource>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/connection.hpp"
#include "support/engine_pair.hpp"
#include "support/failing_resource.hpp"

using namespace amqp;
using namespace amqp::test;

namespace {

link_options sender_opts() {
  link_options o;
  o.name = "sender-link";
  o.role = role::sender;
  o.source = source{};
  o.target = target{};
  o.target->address = "queue";
  return o;
}

// Counts what is allocated from std::pmr::get_default_resource() while it is installed.
class default_resource_probe : public std::pmr::memory_resource {
public:
  default_resource_probe() : previous_(std::pmr::set_default_resource(this)) {}
  ~default_resource_probe() override { std::pmr::set_default_resource(previous_); }
  default_resource_probe(const default_resource_probe&) = delete;
  default_resource_probe& operator=(const default_resource_probe&) = delete;
  std::size_t allocations = 0;
  std::size_t bytes = 0;

private:
  void* do_allocate(std::size_t n, std::size_t align) override {
    ++allocations;
    bytes += n;
    return previous_->allocate(n, align);
  }
  void do_deallocate(void* p, std::size_t n, std::size_t align) override {
    previous_->deallocate(p, n, align);
  }
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
    return this == &o;
  }
  std::pmr::memory_resource* previous_;
};

} // namespace

TEST_CASE("regression: STYLE §5 the engine allocates nothing outside its memory resource (the "
          "peer's attaches were kept in a container of the default resource)") {
  failing_resource cm, sm;
  connection_options co, so;
  co.memory = &cm;
  so.memory = &sm;
  default_resource_probe probe;
  {
    engine_pair p(co, so);
    p.auto_credit = 10;
    p.log_events = false;
    auto ssn = p.open_session();
    auto l = p.client.attach(ssn, sender_opts());
    REQUIRE(l);
    REQUIRE(p.pump());
    REQUIRE(p.client.send(*l, {.payload = as_bytes("hello")}));
    REQUIRE(p.pump());
    REQUIRE(p.client.detach(*l));
    REQUIRE(p.client.end(ssn));
    REQUIRE(p.client.close());
    REQUIRE(p.pump());
    CHECK(p.client.finished());
    CHECK(p.server.finished());
  }
  CHECK(probe.allocations == 0);
  CHECK(probe.bytes == 0);
  CHECK(cm.allocations() > 0);
  CHECK(sm.allocations() > 0);
}

TEST_CASE("engine: STYLE §5 an idle connection + session + link holds at most 8 KiB per side") {
  // Client sender, server receiver, after open, begin, attach and the first flow, nothing in
  // flight. The figures are deterministic (the engines' own allocations, counted through
  // their memory resources; the engine pair moves whole writes).
  failing_resource cm, sm;
  connection_options co, so;
  co.memory = &cm;
  so.memory = &sm;
  engine_pair p(co, so);
  p.auto_credit = 100;
  p.log_events = false;
  auto ssn = p.open_session();
  auto l = p.client.attach(ssn, sender_opts());
  REQUIRE(l);
  REQUIRE(p.pump());
  REQUIRE(p.client.credit(*l) == 100); // the server's first flow arrived
  CHECK(p.client.state(*l)->remote == endpoint_status::active);
  INFO("client holds " << cm.outstanding_bytes() << " bytes in " << cm.outstanding_blocks()
                       << " blocks; server " << sm.outstanding_bytes() << " bytes in "
                       << sm.outstanding_blocks() << " blocks");
  CHECK(cm.outstanding_bytes() <= 8 * 1024);
  CHECK(sm.outstanding_bytes() <= 8 * 1024);
}

TEST_CASE("engine: STYLE §5 release_input_buffer and release_output_buffers give a quiet "
          "connection's buffers back, never bytes still to process, write or view") {
  failing_resource cm, sm;
  connection_options co, so;
  co.memory = &cm;
  so.memory = &sm;
  engine_pair p(co, so);
  p.auto_credit = 100;
  p.log_events = false;
  auto ssn = p.open_session();
  auto l = p.client.attach(ssn, sender_opts());
  REQUIRE(l);
  REQUIRE(p.pump());
  const std::size_t client_idle = cm.outstanding_bytes();
  const std::size_t server_idle = sm.outstanding_bytes();

  // A 64 KiB message: the client's output buffer and the server's input buffer grow to it.
  const std::vector<std::byte> big(64 * 1024, std::byte{'m'});
  REQUIRE(p.client.send(*l, {.payload = big}));
  const auto out = p.client.pending_output();
  const std::vector<std::byte> wire(out.begin(), out.end());
  p.client.consume_output(wire.size());
  REQUIRE(p.server.receive(wire, p.now));
  CHECK(cm.outstanding_bytes() >= big.size());
  CHECK(sm.outstanding_bytes() >= big.size());

  // The event that views the message is not pulled yet: the input stays.
  const std::size_t server_full = sm.outstanding_bytes();
  p.server.release_input_buffer();
  CHECK(sm.outstanding_bytes() == server_full);
  bool delivered = false;
  while (auto e = p.server.next_event()) {
    if (const auto* d = std::get_if<delivery_received>(&*e)) {
      delivered = true;
      CHECK(d->payload.size() == big.size());
      CHECK(std::equal(d->payload.begin(), d->payload.end(), big.begin()));
    }
  }
  CHECK(delivered);
  // Every event pulled, every byte processed: the input buffer goes.
  p.server.release_input_buffer();
  CHECK(sm.outstanding_bytes() + big.size() <= server_full);
  CHECK(sm.outstanding_bytes() <= server_idle);

  // Output waiting to be written stays; once written, the buffers go.
  REQUIRE(p.client.send(*l, {.payload = as_bytes("after")}));
  const std::size_t client_pending = cm.outstanding_bytes();
  p.client.release_output_buffers();
  CHECK(cm.outstanding_bytes() == client_pending);
  CHECK_FALSE(p.client.pending_output().empty());
  REQUIRE(p.pump()); // written and delivered
  p.client.release_output_buffers();
  CHECK(cm.outstanding_bytes() + big.size() <= client_pending);
  CHECK(cm.outstanding_bytes() <= client_idle);
  CHECK(cm.mismatches() == 0);
  CHECK(sm.mismatches() == 0);

  // Both engines go on as before: another message, read into a new buffer.
  REQUIRE(p.client.send(*l, {.payload = big}));
  REQUIRE(p.pump());
  CHECK(p.client.state(*l)->remote == endpoint_status::active);
}

TEST_CASE("regression: STYLE §5 release_input_buffer gives back the copy of the peer's attach "
          "(a quiet server kept one per link until its next input)") {
  failing_resource cm, sm;
  connection_options co, so;
  co.memory = &cm;
  so.memory = &sm;
  // The server announces an idle-time-out of a second: the client's heartbeat (at half of it)
  // is the next input after the attach.
  so.timeouts.idle_time_out = std::chrono::milliseconds(2000);
  engine_pair p(co, so);
  p.auto_credit = 100;
  p.log_events = false;
  auto ssn = p.open_session();
  auto l = p.client.attach(ssn, sender_opts());
  REQUIRE(l);
  REQUIRE(p.pump());
  p.server.release_input_buffer();
  p.server.release_output_buffers();
  const std::size_t after_attach = sm.outstanding_bytes();
  // An empty frame arrives (receive() drops the events of the last input), then the same
  // release: the server holds what it held, nothing of the attach was left behind.
  p.advance(std::chrono::milliseconds(700));
  p.server.release_input_buffer();
  p.server.release_output_buffers();
  INFO("after the attach " << after_attach << " bytes, after the heartbeat "
                           << sm.outstanding_bytes());
  CHECK(sm.outstanding_bytes() == after_attach);
  CHECK(p.client.state(*l)->remote == endpoint_status::active);
  CHECK(sm.mismatches() == 0);
}
