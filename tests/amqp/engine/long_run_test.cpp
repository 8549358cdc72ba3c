// Engine: long runs (AMQP 1.0 §2.5.6, §2.6.7, §2.8.10): over 100,000 deliveries through one
// link with small session windows and small credit, no stall at the boundaries of the
// engine's tables (2,047 / 2,048 / 65,535 / 65,536), delivery-count wrapping past 2^32, and
// multi-frame deliveries interleaved over several links and sessions.
#include <array>
#include <cstring>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/connection.hpp"
#include "support/doctest_print.hpp"
#include "support/engine_pair.hpp"
#include "support/frame_script.hpp"

using namespace amqp;
using namespace amqp::test;

namespace {

link_options sender_opts(std::string_view name) {
  link_options o;
  o.name = name;
  o.role = role::sender;
  o.source = source{};
  o.target = target{};
  o.target->address = "queue";
  return o;
}

// A deterministic generator (no rand()): a 32-bit LCG.
struct lcg {
  std::uint32_t x;
  std::uint32_t next(std::uint32_t lo, std::uint32_t hi) { // in [lo, hi]
    x = x * 1664525U + 1013904223U;
    return lo + (x >> 8) % (hi - lo + 1);
  }
};

std::array<std::byte, 8> encode_seq(std::uint64_t n) {
  std::array<std::byte, 8> b{};
  for (int i = 0; i < 8; ++i) {
    b[static_cast<std::size_t>(i)] = static_cast<std::byte>(n >> (56 - 8 * i));
  }
  return b;
}

std::uint64_t decode_seq(std::span<const std::byte> b) {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < 8 && i < b.size(); ++i) {
    n = (n << 8) | std::to_integer<std::uint64_t>(b[i]);
  }
  return n;
}

struct run_result {
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::uint64_t out_of_order = 0;
  std::uint64_t stalled_at = ~std::uint64_t{0};
  std::size_t unsettled_left = 0;
};

// Sends `total` deliveries from the client to the server. The server's session announces
// `window` frames; its receiver grants credit from [1, max_credit] each time the previous
// grant is used up; it settles each delivery (unless presettled) as it arrives.
run_result run(std::uint64_t total, std::uint32_t window, std::uint32_t max_credit, bool presettled,
               std::uint32_t seed) {
  connection_options so;
  so.incoming_window = window;
  connection_options co;
  co.incoming_window = window;
  engine_pair p(co, so);
  p.auto_respond = true;
  p.auto_credit = 0;
  p.log_events = false;
  lcg rng{seed};
  run_result r;
  std::uint32_t credit_left = 0;
  link_id server_link{};
  p.on_event = [&](side s, connection& c, const event& e) {
    if (s != side::server) {
      return false;
    }
    if (const auto* a = std::get_if<link_attached>(&e)) {
      server_link = a->link;
      link_options o;
      o.role = role::receiver;
      o.source = a->remote.source;
      (void)c.attach(a->link, o);
      credit_left = rng.next(1, max_credit);
      (void)c.flow(a->link, credit_left);
      return true;
    }
    if (const auto* d = std::get_if<delivery_received>(&e)) {
      if (decode_seq(d->payload) != r.received) {
        ++r.out_of_order;
      }
      ++r.received;
      if (!d->settled) {
        (void)c.settle(d->delivery, accepted{});
      }
      if (--credit_left == 0) {
        credit_left = rng.next(1, max_credit);
        (void)c.flow(server_link, credit_left);
      }
      return true;
    }
    return false;
  };
  auto ssn = p.open_session();
  auto l = p.client.attach(ssn, sender_opts("long"));
  if (!l) {
    return r;
  }
  p.pump();
  while (r.received < total) {
    const std::uint64_t before = r.received;
    while (r.sent < total) {
      const auto seq = encode_seq(r.sent);
      auto d = p.client.send(*l, {.payload = seq, .settled = presettled});
      if (!d) {
        break; // would_block: no credit or window until the peer's flow
      }
      ++r.sent;
    }
    if (!p.pump(1'000'000)) {
      break;
    }
    if (r.received == before) {
      r.stalled_at = r.received;
      break;
    }
  }
  r.unsettled_left = p.client.unsettled(*l);
  return r;
}

} // namespace

TEST_CASE("engine: §2.5.6 §2.6.7 100,000+ unsettled deliveries with small windows and credit, "
          "in order, no stall") {
  // Past 2,047 / 2,048 (the default window), 65,535 / 65,536 (16-bit boundaries).
  const std::uint64_t total = 100'003;
  auto r = run(total, 3, 7, false, 12345);
  CHECK(r.stalled_at == ~std::uint64_t{0});
  CHECK(r.received == total);
  CHECK(r.sent == total);
  CHECK(r.out_of_order == 0);
  CHECK(r.unsettled_left == 0);
}

TEST_CASE("engine: §2.5.6 §2.6.7 100,000+ presettled deliveries with small windows and credit, "
          "in order, no stall") {
  const std::uint64_t total = 100'003;
  auto r = run(total, 1, 5, true, 777);
  CHECK(r.stalled_at == ~std::uint64_t{0});
  CHECK(r.received == total);
  CHECK(r.out_of_order == 0);
  CHECK(r.unsettled_left == 0);
}

TEST_CASE("engine: §2.5.6 every incoming window from 1 to 16 with credit 1..7 past 2,048") {
  for (std::uint32_t window = 1; window <= 16; ++window) {
    CAPTURE(window);
    auto r = run(2'100, window, 7, window % 2 == 0, window);
    CHECK(r.stalled_at == ~std::uint64_t{0});
    CHECK(r.received == 2'100);
    CHECK(r.out_of_order == 0);
    CHECK(r.unsettled_left == 0);
  }
}

TEST_CASE("engine: §2.6.7 delivery-count wraps past 2^32 (initial-delivery-count near 2^32)") {
  engine_pair p;
  p.auto_respond = true;
  std::vector<link_flow> sender_flows;
  std::vector<std::uint64_t> got;
  std::uint32_t credit_left = 0;
  link_id server_link{};
  p.on_event = [&](side s, connection& c, const event& e) {
    if (s == side::client) {
      if (const auto* f = std::get_if<link_flow>(&e)) {
        sender_flows.push_back(*f);
      }
      return false;
    }
    if (const auto* a = std::get_if<link_attached>(&e)) {
      server_link = a->link;
      CHECK(a->remote.initial_delivery_count == std::optional<std::uint32_t>(0xFFFF'FFF0U));
      link_options o;
      o.role = role::receiver;
      (void)c.attach(a->link, o);
      credit_left = 3;
      (void)c.flow(a->link, 3);
      return true;
    }
    if (const auto* d = std::get_if<delivery_received>(&e)) {
      got.push_back(decode_seq(d->payload));
      (void)c.settle(d->delivery, accepted{});
      if (--credit_left == 0) {
        credit_left = 3;
        (void)c.flow(server_link, 3);
      }
      return true;
    }
    return false;
  };
  auto ssn = p.open_session();
  link_options lo = sender_opts("wrap");
  lo.initial_delivery_count = 0xFFFF'FFF0U;
  auto l = p.client.attach(ssn, lo);
  REQUIRE(l);
  REQUIRE(p.pump());
  std::uint64_t sent = 0;
  for (int round = 0; round < 100 && sent < 60; ++round) {
    while (sent < 60 && p.client.send(*l, {.payload = encode_seq(sent)})) {
      ++sent;
    }
    REQUIRE(p.pump());
  }
  CHECK(sent == 60);
  REQUIRE(got.size() == 60);
  for (std::uint64_t i = 0; i < got.size(); ++i) {
    CHECK(got[i] == i);
  }
  // Every grant of 3 arrives as credit 3 at the delivery-count the sender has reached.
  REQUIRE(sender_flows.size() == 21); // the first grant, then one per 3 deliveries
  for (std::size_t i = 0; i < sender_flows.size(); ++i) {
    CHECK(sender_flows[i].credit == 3);
    CHECK(sender_flows[i].delivery_count == static_cast<std::uint32_t>(0xFFFF'FFF0U + 3 * i));
  }
  CHECK(p.client.unsettled(*l) == 0);
}

TEST_CASE("engine: §2.6.14 multi-frame deliveries interleaved over several links and "
          "sessions") {
  connection_options so;
  so.limits.max_frame_size = 512;
  so.incoming_window = 2;
  engine_pair p({}, so);
  p.record_wire = true;
  p.auto_credit = 1000;
  struct got_t {
    std::uint32_t link;
    std::vector<std::byte> payload;
  };
  std::vector<got_t> got;
  p.on_event = [&](side s, connection&, const event& e) {
    if (const auto* d = std::get_if<delivery_received>(&e); d != nullptr && s == side::server) {
      got.push_back(got_t{d->delivery.link.value, {d->payload.begin(), d->payload.end()}});
    }
    return false;
  };
  REQUIRE(p.client.open());
  std::vector<link_id> links;
  for (int si = 0; si < 2; ++si) {
    auto ssn = p.client.begin();
    REQUIRE(ssn);
    REQUIRE(p.pump()); // (attaching before the answer is session_test's business)
    for (int li = 0; li < 2; ++li) {
      auto l = p.client.attach(*ssn, sender_opts("link-" + std::to_string(si * 2 + li)));
      REQUIRE(l);
      links.push_back(*l);
    }
  }
  REQUIRE(p.pump());
  // Per link, in order: messages of varied sizes, most of them several frames long.
  lcg rng{99};
  std::vector<std::vector<std::vector<std::byte>>> sent(links.size());
  const int per_link = 25;
  int queued = 0;
  for (int round = 0; round < 10'000 && queued < per_link * 4; ++round) {
    for (std::size_t i = 0; i < links.size(); ++i) {
      if (sent[i].size() == per_link) {
        continue;
      }
      std::vector<std::byte> m(rng.next(1, 3000));
      for (auto& b : m) {
        b = static_cast<std::byte>(rng.next(0, 255));
      }
      auto d = p.client.send(links[i], {.payload = m});
      if (d) {
        sent[i].push_back(std::move(m));
        ++queued;
      } else {
        INFO("send failed: " << d.error().message());
        REQUIRE(d.error() == errc::would_block);
      }
    }
    REQUIRE(p.pump());
  }
  CHECK(queued == per_link * 4);
  // On the server, each link's messages arrive whole and in order.
  std::vector<std::size_t> next(links.size(), 0);
  CHECK(got.size() == static_cast<std::size_t>(per_link * 4));
  // Match server links to client links by the first message each carried.
  std::map<std::uint32_t, std::size_t> to_client;
  for (const auto& g : got) {
    if (to_client.count(g.link)) {
      continue;
    }
    for (std::size_t i = 0; i < links.size(); ++i) {
      if (!sent[i].empty() && sent[i][0] == g.payload) {
        to_client[g.link] = i;
      }
    }
  }
  REQUIRE(to_client.size() == links.size());
  for (const auto& g : got) {
    const std::size_t i = to_client[g.link];
    REQUIRE(next[i] < sent[i].size());
    CHECK(g.payload == sent[i][next[i]]);
    ++next[i];
  }
  // The transfer frames of the two sessions did interleave on the wire.
  std::size_t switches = 0;
  int last_channel = -1;
  for (const auto& item : p.client_wire.items) {
    if (auto t = item.as<amqp::transfer>()) {
      if (last_channel >= 0 && last_channel != item.channel()) {
        ++switches;
      }
      last_channel = item.channel();
    }
  }
  CHECK(switches > 10);
}
