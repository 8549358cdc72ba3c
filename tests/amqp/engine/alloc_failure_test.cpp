// Engine: allocation failure (STYLE §5, §8; nghttp2's failmalloc). A whole scenario (SASL
// PLAIN, open, begin, attach, single- and multi-frame transfers, settlement, drain,
// detach, end, close) runs with both engines on one failing_resource, failing allocation i
// for every i until a run sees no failure. Every run must end cleanly: the engine that met
// the failure reports errc::out_of_memory from receive() and every command, nothing
// crashes, and once both engines are destroyed no byte is left allocated.
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/connection.hpp"
#include "support/engine_pair.hpp"
#include "support/failing_resource.hpp"

using namespace amqp;
using namespace amqp::test;

namespace {

struct run_report {
  bool constructed = true;   // both engines were constructed without throwing
  bool completed = false;    // the scenario ran to its end
  bool oom_seen = false;     // an engine reported errc::out_of_memory
  bool clean = true;         // every error seen was out_of_memory, and it stuck
  std::string first_problem; // what was wrong, for the failure message
};

class scenario {
public:
  // `heavy`: the byte stream in 7-byte chunks, two sessions with two links each and a few
  // dozen deliveries of up to 3000 bytes (reassembly buffers, held transfers, tables).
  scenario(failing_resource& res, bool heavy) : res_(res), heavy_(heavy) {}

  run_report run() {
    run_report rep;
    connection_options co;
    co.memory = &res_;
    co.sasl.enabled = true;
    co.sasl.username = "user";
    co.sasl.password = "pw";
    connection_options so;
    so.memory = &res_;
    so.sasl.enabled = true;
    so.sasl.server_mechanisms = "PLAIN";
    so.limits.max_frame_size = 512;
    so.incoming_window = 4;
    std::optional<engine_pair> pair;
    try {
      pair.emplace(co, so);
    } catch (const std::bad_alloc&) {
      rep.constructed = false;
      return rep;
    }
    engine_pair& p = *pair;
    p.auto_credit = 100;
    p.chunk = heavy_ ? 7 : 0;
    link_id server_link{};
    p.on_event = [&](side s, connection& c, const event& e) {
      if (s != side::server) {
        return false;
      }
      if (std::holds_alternative<sasl_init_received>(e)) {
        note(rep, c.sasl_complete(sasl_code::ok), "sasl_complete");
        return true;
      }
      if (const auto* a = std::get_if<link_attached>(&e)) {
        server_link = a->link;
      }
      if (const auto* d = std::get_if<delivery_received>(&e)) {
        if (!d->settled) {
          note(rep, c.settle(d->delivery, accepted{}), "settle");
        }
        return true;
      }
      return false;
    };
    auto step = [&](auto&& f, const char* what) {
      if (failed(p)) {
        return false;
      }
      note(rep, f(), what);
      (void)p.pump(1'000'000);
      return !failed(p);
    };
    auto send = [&](link_id l, std::size_t n, bool settled) -> result<void> {
      const std::vector<std::byte> payload(n, std::byte{0x5A});
      auto d = p.client.send(l, {.payload = payload, .settled = settled});
      if (!d && d.error() != errc::would_block) {
        return d.error();
      }
      return {};
    };
    std::vector<session_id> sessions;
    std::vector<link_id> links;
    const int n_sessions = heavy_ ? 2 : 1;
    const int n_links = heavy_ ? 2 : 1;
    const int n_messages = heavy_ ? 12 : 3;
    bool ok = step([&] { return p.client.open(); }, "open");
    for (int si = 0; ok && si < n_sessions; ++si) {
      ok = step(
          [&]() -> result<void> {
            auto x = p.client.begin();
            if (!x) {
              return x.error();
            }
            sessions.push_back(*x);
            return {};
          },
          "begin");
      for (int li = 0; ok && li < n_links; ++li) {
        ok = step(
            [&]() -> result<void> {
              link_options lo;
              lo.name = li == 0 ? "alloc-0" : "alloc-1";
              lo.role = role::sender;
              lo.target = target{};
              lo.target->address = "q";
              auto x = p.client.attach(sessions.back(), lo);
              if (!x) {
                return x.error();
              }
              links.push_back(*x);
              return {};
            },
            "attach");
      }
    }
    const std::size_t sizes[3] = {10, 3000, 700};
    for (int m = 0; ok && m < n_messages; ++m) {
      for (std::size_t li = 0; ok && li < links.size(); ++li) {
        const std::size_t n = sizes[static_cast<std::size_t>(m) % 3];
        ok = step([&] { return send(links[li], n, m % 3 == 2); }, "send");
      }
    }
    ok = ok && step([&] { return p.server.flow(server_link, 5, true); }, "drain") &&
         step([&] { return p.client.drained(links.back()); }, "drained") &&
         step([&] { return p.client.detach(links.front()); }, "detach");
    for (std::size_t si = 0; ok && si < sessions.size(); ++si) {
      ok = step([&] { return p.client.end(sessions[si]); }, "end");
    }
    ok = ok && step([&] { return p.client.close(); }, "close");
    if (ok) {
      rep.completed = p.client.finished() && p.server.finished();
      if (!rep.completed && rep.first_problem.empty()) {
        rep.first_problem = "scenario did not finish both engines";
      }
    }
    check_sticky(rep, p);
    return rep;
  }

private:
  static bool failed(engine_pair& p) { return p.client.error() || p.server.error(); }

  static void note(run_report& rep, const result<void>& r, const char* what) {
    if (!r && r.error() != errc::out_of_memory && rep.first_problem.empty()) {
      rep.clean = false;
      rep.first_problem = std::string(what) + " returned " + r.error().message();
    }
  }

  void check_sticky(run_report& rep, engine_pair& p) {
    for (connection* c : {&p.client, &p.server}) {
      const std::error_code ec = c->error();
      if (!ec) {
        continue;
      }
      if (ec != errc::out_of_memory) {
        if (rep.first_problem.empty()) {
          rep.first_problem = "engine error " + ec.message() + " instead of out_of_memory";
        }
        rep.clean = false;
        continue;
      }
      rep.oom_seen = true;
      // Fatal errors stick (STYLE §4): receive and the commands return the same error.
      auto r = c->receive({}, p.now);
      auto b = c->begin();
      auto o = c->close();
      if (r || r.error() != errc::out_of_memory || b || b.error() != errc::out_of_memory || o ||
          o.error() != errc::out_of_memory) {
        rep.clean = false;
        if (rep.first_problem.empty()) {
          rep.first_problem = "out_of_memory did not stick";
        }
      }
      while (c->next_event()) {
      }
      c->consume_output(c->pending_output().size());
      (void)c->next_deadline();
    }
  }

  failing_resource& res_;
  bool heavy_;
};

} // namespace

TEST_CASE("engine: STYLE §5 allocation failure sweep: every allocation of a full scenario") {
  bool heavy = false;
  bool sticky = false;
  SUBCASE("light scenario, allocation i fails") {}
  SUBCASE("light scenario, allocation i and all later ones fail") {
    sticky = true;
  }
  SUBCASE("heavy scenario, allocation i fails") {
    heavy = true;
  }
  SUBCASE("heavy scenario, allocation i and all later ones fail") {
    heavy = true;
    sticky = true;
  }
  CAPTURE(heavy);
  CAPTURE(sticky);
  // The baseline: no failure, the scenario completes and frees everything.
  std::size_t total = 0;
  {
    failing_resource res;
    {
      scenario sc(res, heavy);
      auto rep = sc.run();
      REQUIRE(rep.constructed);
      CHECK(rep.clean);
      CHECK(rep.first_problem == "");
      REQUIRE(rep.completed);
    }
    total = res.allocations();
    CHECK(res.outstanding_bytes() == 0);
    CHECK(res.mismatches() == 0);
  }
  REQUIRE(total > 0);
  INFO("allocations in the scenario: " << total);

  std::size_t runs = 0, ctor_throws = 0, unclean = 0, leaks = 0, no_oom = 0;
  std::string first_ctor, first_unclean, first_leak, first_no_oom;
  std::size_t i = 0;
  for (; i < 100'000; ++i) {
    failing_resource res;
    res.fail_at(i, sticky);
    run_report rep;
    {
      scenario sc(res, heavy);
      rep = sc.run();
    }
    ++runs;
    if (!res.failed()) {
      // Allocation i was never reached: the sweep is over, and this run must be whole.
      CHECK(rep.completed);
      break;
    }
    if (!rep.constructed) {
      if (ctor_throws++ == 0) {
        first_ctor = "allocation " + std::to_string(i);
      }
    } else if (!rep.clean) {
      if (unclean++ == 0) {
        first_unclean = "allocation " + std::to_string(i) + ": " + rep.first_problem;
      }
    } else if (!rep.oom_seen) {
      if (no_oom++ == 0) {
        first_no_oom = "allocation " + std::to_string(i) +
                       (rep.completed ? ": scenario completed" : ": scenario stopped");
      }
    }
    if (res.outstanding_bytes() != 0 || res.mismatches() != 0) {
      if (leaks++ == 0) {
        first_leak = "allocation " + std::to_string(i) + ": " +
                     std::to_string(res.outstanding_bytes()) + " bytes outstanding, " +
                     std::to_string(res.mismatches()) + " mismatched deallocations";
      }
    }
  }
  INFO("runs: " << runs);
  CHECK(i < 100'000);
  // STYLE §4: the library never throws; a failed allocation in the constructor must leave
  // an engine that reports errc::out_of_memory, like any other.
  CHECK_MESSAGE(ctor_throws == 0, ctor_throws << " runs threw std::bad_alloc from the "
                                              << "connection constructor; first: " << first_ctor);
  CHECK_MESSAGE(unclean == 0, unclean << " runs ended unclean; first: " << first_unclean);
  CHECK_MESSAGE(no_oom == 0, no_oom << " runs met a refused allocation but no engine reported "
                                    << "out_of_memory; first: " << first_no_oom);
  CHECK_MESSAGE(leaks == 0, leaks << " runs leaked; first: " << first_leak);
}

TEST_CASE("engine: STYLE §5 connection::create reports a refused allocation as out_of_memory") {
  for (std::size_t i = 0; i < 64; ++i) {
    CAPTURE(i);
    failing_resource res;
    res.fail_at(i);
    connection_options o;
    o.memory = &res;
    o.sasl.enabled = true;
    o.sasl.pipeline = true;
    {
      auto c = connection::create(o);
      if (!res.failed()) {
        CHECK(c);
        break;
      }
      if (!c) {
        CHECK(c.error() == errc::out_of_memory);
      } else {
        // An engine made despite the failure must be a failed one.
        CHECK(c->error() == errc::out_of_memory);
      }
    }
    CHECK(res.outstanding_bytes() == 0);
    CHECK(res.mismatches() == 0);
  }
}
