// rcv-settle-mode second (§2.7.3) on the client's receiver, against a node written directly
// on a server-role engine behind the listener: the node sends one unsettled message and
// records the dispositions the client sends for it.
#include <mutex>
#include <set>
#include <thread>

#include <doctest/doctest.h>

#include "amqp/transport/blocking.hpp"
#include "transport/support.hpp"

using namespace amqp;
using namespace amqp::transport;
using namespace std::chrono_literals;

namespace {

// One disposition from the client: its state (accepted, released...) and settled flag.
struct seen_update {
  std::string state;
  bool settled = false;
};

// A node that sends one message on every link a client attaches to receive from it,
// answering the client's rcv-settle-mode with `answer_mode`, and settles each outcome the
// client leaves unsettled.
class source_node final : public test::raw_node {
public:
  explicit source_node(receiver_settle_mode answer_mode) : answer_mode_(answer_mode) {}

protected:
  void answer(const link_attached&, link_options& o) override {
    o.snd_settle_mode = sender_settle_mode::unsettled;
    o.rcv_settle_mode = answer_mode_;
  }

  void on_event(connection& c, const event& e) override {
    if (const auto* lf = std::get_if<link_flow>(&e)) {
      if (lf->credit > 0 && sent_.insert(lf->link.value).second) {
        const auto payload = test::make_message("m", 10);
        transfer_options t;
        t.payload = payload;
        REQUIRE(c.send(lf->link, t));
      }
    } else if (const auto* du = std::get_if<delivery_updated>(&e)) {
      std::string state = "none";
      if (du->state) {
        state = std::holds_alternative<accepted>(*du->state)   ? "accepted"
                : std::holds_alternative<released>(*du->state) ? "released"
                                                               : "other";
      }
      {
        const std::lock_guard lock(mu_);
        updates_.push_back(seen_update{state, du->settled});
      }
      if (!du->settled && du->state) {
        (void)c.settle(du->delivery, du->state); // the sender settles (§2.7.3)
      }
    }
  }

public:
  std::vector<seen_update> updates() {
    const std::lock_guard lock(mu_);
    return updates_;
  }

private:
  receiver_settle_mode answer_mode_;
  std::set<std::uint32_t> sent_;
  std::mutex mu_;
  std::vector<seen_update> updates_;
};

// Receives the node's message with `settle_second` and accepts it; returns what the node saw.
std::vector<seen_update> accept_one(receiver_settle_mode answer_mode, bool settle_second) {
  source_node node(answer_mode);
  {
    const test::serving served(node);
    auto c = blocking_client::connect(served.url());
    REQUIRE(c);
    receiver_options ro;
    ro.settle_second = settle_second;
    auto r = c->open_receiver("src", ro);
    REQUIRE(r);
    auto m = r->receive(5s);
    REQUIRE_MESSAGE(m, m.error().message());
    REQUIRE(r->accept(*m));
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (node.updates().empty() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    CHECK(c->close());
  }
  return node.updates();
}

} // namespace

TEST_CASE("transport: rcv-settle-mode second: the receiver's outcome goes unsettled and the "
          "sender settles it") {
  SUBCASE("second, echoed by the sender") {
    const auto u = accept_one(receiver_settle_mode::second, true);
    REQUIRE(u.size() == 1);
    CHECK(u[0].state == "accepted");
    CHECK_FALSE(u[0].settled);
  }
  SUBCASE("the sender answers first: the outcome goes settled") {
    const auto u = accept_one(receiver_settle_mode::first, true);
    REQUIRE(u.size() == 1);
    CHECK(u[0].state == "accepted");
    CHECK(u[0].settled);
  }
  SUBCASE("first, the default") {
    const auto u = accept_one(receiver_settle_mode::first, false);
    REQUIRE(u.size() == 1);
    CHECK(u[0].settled);
  }
}
