// Engine: deliveries (AMQP 1.0 §2.6.12-§2.6.14, §2.7.5, §2.7.6, §3.4): multi-frame transfers
// split at the peer's max-frame-size and reassembled from any chunking, aborts, presettled
// deliveries, every outcome, rcv-settle-mode second, disposition ranges, and resume.
#include <chrono>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/connection.hpp"
#include "support/doctest_print.hpp"
#include "support/engine_pair.hpp"
#include "support/frame_script.hpp"
#include "support/hex.hpp"

using namespace amqp;
using namespace amqp::test;
using namespace std::chrono_literals;

namespace {

using names = std::vector<std::string>;

link_options sender_opts(std::string_view name = "tx") {
  link_options o;
  o.name = name;
  o.role = role::sender;
  o.source = source{};
  o.target = target{};
  o.target->address = "queue";
  return o;
}

link_options receiver_opts(std::string_view name = "rx") {
  link_options o;
  o.name = name;
  o.role = role::receiver;
  o.source = source{};
  o.source->address = "queue";
  o.target = target{};
  return o;
}

// Deterministic bytes (a 32-bit LCG): no rand().
std::vector<std::byte> pattern(std::size_t n, std::uint32_t seed) {
  std::vector<std::byte> v(n);
  std::uint32_t x = seed;
  for (auto& b : v) {
    x = x * 1664525U + 1013904223U;
    b = static_cast<std::byte>(x >> 24);
  }
  return v;
}

// A pair with the client's sender attached to the server's receiver; the server keeps
// every delivery it receives (payload copied) and the client every delivery_updated.
struct delivery_fixture {
  explicit delivery_fixture(connection_options co = {}, connection_options so = {},
                            link_options lo = sender_opts())
      : p(co, so) {
    p.auto_credit = 1000;
    p.on_event = [this](side s, connection& c, const event& e) { return on(s, c, e); };
    ssn = p.open_session();
    auto l = p.client.attach(ssn, lo);
    REQUIRE(l);
    link = *l;
    REQUIRE(p.pump());
  }

  struct received {
    delivery_id id;
    std::vector<std::byte> payload;
    std::vector<std::byte> tag;
    bool settled;
    bool aborted;
  };
  struct updated {
    delivery_id id;
    std::optional<delivery_state> state;
    bool settled;
    // Copies of the views in `state` would dangle: keep the fields tests look at.
    std::string condition, description, annotation;
  };

  bool on(side s, connection&, const event& e) {
    if (s == side::server) {
      if (const auto* a = std::get_if<link_attached>(&e)) {
        server_link = a->link;
      } else if (const auto* d = std::get_if<delivery_received>(&e)) {
        got.push_back(received{d->delivery,
                               {d->payload.begin(), d->payload.end()},
                               {d->tag.begin(), d->tag.end()},
                               d->settled,
                               d->aborted});
      }
    } else if (const auto* u = std::get_if<delivery_updated>(&e)) {
      updated x{u->delivery, u->state, u->settled, {}, {}, {}};
      if (u->state) {
        if (const auto* r = std::get_if<rejected>(&*u->state); r != nullptr && r->error) {
          x.condition = r->error->condition.str;
          x.description = r->error->description.value_or("");
        }
        if (const auto* m = std::get_if<modified>(&*u->state)) {
          if (auto v = m->message_annotations.find("x-opt-reason")) {
            x.annotation = v->get_string().value_or("");
          }
        }
      }
      updates.push_back(x);
    }
    return false;
  }

  engine_pair p;
  session_id ssn{};
  link_id link{};
  link_id server_link{};
  std::vector<received> got;
  std::vector<updated> updates;
};

} // namespace

TEST_CASE("engine: §2.6.14 a 1 MiB message is split at the peer's max-frame-size and "
          "reassembled") {
  std::uint32_t max_frame = 0;
  SUBCASE("512") {
    max_frame = 512;
  }
  SUBCASE("4096") {
    max_frame = 4096;
  }
  CAPTURE(max_frame);
  connection_options so;
  so.limits.max_frame_size = max_frame;
  delivery_fixture f({}, so);
  f.p.record_wire = true;
  const auto msg = pattern(1 << 20, max_frame);
  auto d = f.p.client.send(f.link, {.payload = msg});
  REQUIRE(d);
  REQUIRE(f.p.pump(10'000'000));
  REQUIRE(f.got.size() == 1);
  CHECK(f.got[0].payload == msg);
  CHECK_FALSE(f.got[0].aborted);
  // Every frame within the peer's limit; every frame but the last filled to it (§2.7.1).
  std::size_t transfers = 0, payload = 0;
  bool first = true, last_more = true;
  for (const auto& i : f.p.client_wire.items) {
    auto t = i.as<amqp::transfer>();
    if (!t) {
      continue;
    }
    ++transfers;
    CHECK(i.bytes.size() <= max_frame);
    payload += i.payload().size();
    if (first) {
      // §2.7.5: the first frame carries delivery-id and delivery-tag.
      CHECK(t->delivery_id);
      CHECK(t->delivery_tag);
      first = false;
    }
    if (t->more) {
      CHECK(i.bytes.size() == max_frame);
    }
    last_more = t->more;
  }
  CHECK_FALSE(last_more);
  CHECK(payload == msg.size());
  CHECK(transfers > (1U << 20) / max_frame);
  CHECK(transfers < (1U << 20) / (max_frame - 64) + 2);
}

TEST_CASE("engine: §2.3 frames reassembled from arbitrary chunks of the byte stream") {
  std::size_t chunk = 0;
  const std::size_t large = 1 << 20;
  SUBCASE("1 byte") {
    chunk = 1;
  }
  SUBCASE("7 bytes") {
    chunk = 7;
  }
  SUBCASE("513 bytes") {
    chunk = 513;
  }
  CAPTURE(chunk);
  connection_options so;
  so.limits.max_frame_size = 512;
  delivery_fixture f({}, so);
  f.p.chunk = chunk;
  std::vector<std::vector<std::byte>> sent;
  for (std::size_t n : {std::size_t{1}, std::size_t{700}, large, std::size_t{3}}) {
    sent.push_back(pattern(n, static_cast<std::uint32_t>(n)));
    auto r = f.p.client.send(f.link, {.payload = sent.back()});
    if (!r && r.error() == errc::would_block) {
      // The previous message still waits for the session window: let it through.
      REQUIRE(f.p.pump(50'000'000));
      r = f.p.client.send(f.link, {.payload = sent.back()});
    }
    REQUIRE(r);
  }
  REQUIRE(f.p.pump(50'000'000));
  REQUIRE(f.got.size() == sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    CHECK(f.got[i].payload == sent[i]);
  }
  // And back: settle all, every update arrives through the same chunking.
  for (const auto& g : f.got) {
    REQUIRE(f.p.server.settle(g.id, accepted{}));
  }
  REQUIRE(f.p.pump(50'000'000));
  CHECK(f.updates.size() == sent.size());
  CHECK(f.p.client.unsettled(f.link) == 0);
}

TEST_CASE("engine: §2.6.14 an aborted multi-frame delivery") {
  connection_options so;
  so.limits.max_frame_size = 512;
  so.incoming_window = 2; // the rest of the message waits for the window
  delivery_fixture f({}, so);
  f.p.record_wire = true;
  const auto big = pattern(5000, 1);
  REQUIRE(f.p.client.send(f.link, {.payload = big}));
  REQUIRE(f.p.client.abort(f.link));
  REQUIRE(f.p.pump());
  const auto after = pattern(10, 2);
  REQUIRE(f.p.client.send(f.link, {.payload = after}));
  REQUIRE(f.p.pump());
  REQUIRE(f.got.size() == 2);
  CHECK(f.got[0].aborted);
  CHECK(f.got[0].payload.empty());
  CHECK_FALSE(f.got[1].aborted);
  CHECK(f.got[1].payload == after);
  // §2.6.14: the aborted delivery is settled; only the second one is outstanding.
  CHECK(f.p.client.unsettled(f.link) == 1);
  std::size_t aborted_frames = 0;
  for (const auto& i : f.p.client_wire.items) {
    if (auto t = i.as<amqp::transfer>(); t && t->aborted) {
      ++aborted_frames;
    }
  }
  CHECK(aborted_frames == 1);
  // The receiver cannot settle an aborted delivery: it is gone.
  CHECK_FALSE(f.p.server.settle(f.got[0].id, accepted{}));
}

TEST_CASE("engine: §2.6.12 presettled deliveries") {
  SUBCASE("settled by the sender, per message") {
    delivery_fixture f;
    f.p.record_wire = true;
    REQUIRE(f.p.client.send(f.link, {.payload = as_bytes("pre"), .settled = true}));
    REQUIRE(f.p.pump());
    REQUIRE(f.got.size() == 1);
    CHECK(f.got[0].settled);
    CHECK(f.p.client.unsettled(f.link) == 0);
    // Nothing to settle at the receiver, and no disposition goes back.
    CHECK_FALSE(f.p.server.settle(f.got[0].id, accepted{}));
    REQUIRE(f.p.pump());
    CHECK(f.p.server_wire.count("disposition") == 0);
    CHECK(f.updates.empty());
  }
  SUBCASE("snd-settle-mode settled") {
    link_options lo = sender_opts();
    lo.snd_settle_mode = sender_settle_mode::settled;
    delivery_fixture f({}, {}, lo);
    REQUIRE(f.p.client.send(f.link, {.payload = as_bytes("forced")}));
    REQUIRE(f.p.pump());
    REQUIRE(f.got.size() == 1);
    CHECK(f.got[0].settled);
    CHECK(f.p.client.unsettled(f.link) == 0);
  }
}

TEST_CASE("engine: §3.4 every outcome reaches the sender in delivery_updated") {
  delivery_fixture f;
  for (int i = 0; i < 5; ++i) {
    REQUIRE(f.p.client.send(f.link, {.payload = as_bytes("m")}));
  }
  REQUIRE(f.p.pump());
  REQUIRE(f.got.size() == 5);
  const value ann_kv[2] = {value(symbol_view{"x-opt-reason"}), value("retry")};
  rejected rej;
  rej.error = amqp::error{symbol_view{symbol::invalid_field}, "bad header", value{}};
  modified mod;
  mod.delivery_failed = true;
  mod.undeliverable_here = true;
  mod.message_annotations = value::map(ann_kv);
  REQUIRE(f.p.server.settle(f.got[0].id, accepted{}));
  REQUIRE(f.p.server.settle(f.got[1].id, rej));
  REQUIRE(f.p.server.settle(f.got[2].id, released{}));
  REQUIRE(f.p.server.settle(f.got[3].id, mod));
  REQUIRE(f.p.server.update(f.got[4].id, amqp::received{2, 100}));
  REQUIRE(f.p.pump());
  REQUIRE(f.updates.size() == 5);
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(f.updates[i].id == f.got[i].id);
    CHECK(f.updates[i].settled);
    REQUIRE(f.updates[i].state);
  }
  CHECK(std::holds_alternative<accepted>(*f.updates[0].state));
  CHECK(std::holds_alternative<rejected>(*f.updates[1].state));
  CHECK(f.updates[1].condition == symbol::invalid_field);
  CHECK(f.updates[1].description == "bad header");
  CHECK(std::holds_alternative<released>(*f.updates[2].state));
  REQUIRE(std::holds_alternative<modified>(*f.updates[3].state));
  const auto& m = std::get<modified>(*f.updates[3].state);
  CHECK(m.delivery_failed == std::optional<bool>(true));
  CHECK(m.undeliverable_here == std::optional<bool>(true));
  CHECK(f.updates[3].annotation == "retry");
  // received (§3.4.1) is not terminal: the delivery stays unsettled.
  CHECK_FALSE(f.updates[4].settled);
  REQUIRE(f.updates[4].state);
  REQUIRE(std::holds_alternative<amqp::received>(*f.updates[4].state));
  CHECK(std::get<amqp::received>(*f.updates[4].state).section_number == 2);
  CHECK(std::get<amqp::received>(*f.updates[4].state).section_offset == 100);
  CHECK(f.p.client.unsettled(f.link) == 1);
  REQUIRE(f.p.server.settle(f.got[4].id, accepted{}));
  REQUIRE(f.p.pump());
  CHECK(f.p.client.unsettled(f.link) == 0);
}

TEST_CASE("engine: §2.6.12 rcv-settle-mode second: the receiver settles after the sender") {
  link_options lo = sender_opts();
  lo.rcv_settle_mode = receiver_settle_mode::second;
  delivery_fixture f({}, {}, lo);
  f.p.record_wire = true;
  std::vector<std::string> server_updates;
  f.p.on_event = [&, inner = f.p.on_event](side s, connection& c, const event& e) {
    if (const auto* a = std::get_if<link_attached>(&e); a != nullptr && s == side::server) {
      CHECK(a->remote.rcv_settle_mode == receiver_settle_mode::second);
    }
    if (const auto* u = std::get_if<delivery_updated>(&e); u != nullptr && s == side::server) {
      server_updates.push_back(u->settled ? "settled" : "unsettled");
    }
    return inner(s, c, e);
  };
  auto d = f.p.client.send(f.link, {.payload = as_bytes("two-phase")});
  REQUIRE(d);
  REQUIRE(f.p.pump());
  REQUIRE(f.got.size() == 1);
  // First the receiver states the outcome without settling...
  REQUIRE(f.p.server.update(f.got[0].id, accepted{}));
  REQUIRE(f.p.pump());
  REQUIRE(f.updates.size() == 1);
  CHECK_FALSE(f.updates[0].settled);
  REQUIRE(f.updates[0].state);
  CHECK(std::holds_alternative<accepted>(*f.updates[0].state));
  // ...then the sender settles, and the receiver learns it.
  REQUIRE(f.p.client.settle(*d, accepted{}));
  REQUIRE(f.p.pump());
  CHECK(server_updates == names{"settled"});
  CHECK(f.p.client.unsettled(f.link) == 0);
  std::vector<std::string> dispositions;
  for (const auto* w : {&f.p.server_wire, &f.p.client_wire}) {
    for (const auto& i : w->items) {
      if (auto x = i.as<amqp::disposition>()) {
        dispositions.push_back(std::string(x->role == role::receiver ? "receiver" : "sender") +
                               (x->settled ? " settled" : " unsettled"));
      }
    }
  }
  CHECK(dispositions == names{"receiver unsettled", "sender settled"});
}

TEST_CASE("engine: §2.7.6 consecutive settlements go out as one disposition range") {
  delivery_fixture f;
  f.p.record_wire = true;
  for (int i = 0; i < 10; ++i) {
    REQUIRE(f.p.client.send(f.link, {.payload = as_bytes("m")}));
  }
  REQUIRE(f.p.pump());
  REQUIRE(f.got.size() == 10);
  const std::size_t base = f.p.server_wire.items.size();
  SUBCASE("ten accepted: one frame") {
    for (const auto& g : f.got) {
      REQUIRE(f.p.server.settle(g.id, accepted{}));
    }
    REQUIRE(f.p.pump());
    CHECK(f.p.server_wire.count("disposition", base) == 1);
    auto d = f.p.server_wire.items.back().as<amqp::disposition>();
    REQUIRE(d);
    CHECK(d->role == role::receiver);
    CHECK(d->first == f.got.front().id.number);
    CHECK(d->last == std::optional<std::uint32_t>(f.got.back().id.number));
    CHECK(d->settled);
    REQUIRE(d->state);
    CHECK(std::holds_alternative<accepted>(*d->state));
    CHECK(f.updates.size() == 10);
    CHECK(f.p.client.unsettled(f.link) == 0);
  }
  SUBCASE("accepted, released, accepted: three ranges") {
    for (std::size_t i = 0; i < 10; ++i) {
      const delivery_state st =
          i >= 3 && i < 5 ? delivery_state{released{}} : delivery_state{accepted{}};
      REQUIRE(f.p.server.settle(f.got[i].id, st));
    }
    REQUIRE(f.p.pump());
    CHECK(f.p.server_wire.count("disposition", base) == 3);
    CHECK(f.updates.size() == 10);
  }
}

TEST_CASE("engine: §2.7.6 a range being coalesced lets transfers pass, not flows") {
  // A broker settles each message it takes and sends another one on meanwhile: the
  // settlements still go out as one range, after the transfers. A flow (credit after a
  // release) must not overtake the settlement it follows.
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s);
  const link_id rx = attach_link(s, ssn, receiver_opts(), 0);
  const link_id tx = attach_link(s, ssn, sender_opts(), 1);
  REQUIRE(s.feed(peer_flow(1, 0, 100)));
  REQUIRE(s.conn.flow(rx, 100));
  s.collect();
  std::vector<delivery_id> got;
  for (std::uint32_t i = 0; i < 5; ++i) {
    const std::byte tag{static_cast<unsigned char>(i)};
    REQUIRE(s.feed(peer_transfer(0, i, binary_view(std::span<const std::byte>(&tag, 1))), 0,
                   as_bytes("m")));
    const auto* d = s.find<delivery_received>();
    REQUIRE(d != nullptr);
    got.push_back(d->delivery);
  }
  (void)s.take();
  for (const auto& d : got) {
    REQUIRE(s.conn.settle(d, accepted{}));
    REQUIRE(s.conn.send(tx, {.payload = as_bytes("out")}));
  }
  s.collect();
  CHECK(s.take_names() ==
        names{"transfer", "transfer", "transfer", "transfer", "transfer", "disposition"});
  auto d = s.last<amqp::disposition>();
  REQUIRE(d);
  CHECK(d->first == 0);
  CHECK(d->last == std::optional<std::uint32_t>(4));

  REQUIRE(s.feed(peer_transfer(0, 5, binary_view(as_bytes("t5"))), 0, as_bytes("m")));
  const auto* d5 = s.find<delivery_received>();
  REQUIRE(d5 != nullptr);
  const delivery_id fifth = d5->delivery;
  (void)s.take();
  REQUIRE(s.conn.settle(fifth, released{}));
  REQUIRE(s.conn.flow(rx, 100));
  s.collect();
  CHECK(s.take_names() == names{"disposition", "flow"});
}

TEST_CASE("engine: §2.7.6 a disposition over a huge range costs only the unsettled "
          "deliveries") {
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s);
  auto l = attach_link(s, ssn, sender_opts(), 0);
  REQUIRE(s.feed(peer_flow(0, 0, 100)));
  for (int i = 0; i < 5; ++i) {
    REQUIRE(s.conn.send(l, {.payload = as_bytes("m")}));
  }
  s.collect();
  amqp::disposition d;
  d.role = role::receiver;
  d.first = 0;
  d.settled = true;
  d.state = accepted{};
  SUBCASE("first=0 last=0x7FFFFFF0") {
    d.last = 0x7FFF'FFF0U;
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(s.feed(d));
    const auto spent = std::chrono::steady_clock::now() - t0;
    CHECK(spent < 1s);
    CHECK(s.count<delivery_updated>() == 5);
    CHECK(s.conn.unsettled(l) == 0);
  }
  SUBCASE("first=0 last=0xFFFFFFF0") {
    // In serial-number arithmetic (RFC 1982, §2.8.10) this last is before first: the
    // engine may refuse the range or apply it, but it never walks 2^32 ids and never
    // reports a delivery that does not exist.
    d.last = 0xFFFF'FFF0U;
    const auto t0 = std::chrono::steady_clock::now();
    (void)s.feed(d);
    const auto spent = std::chrono::steady_clock::now() - t0;
    CHECK(spent < 1s);
    CHECK(s.count<delivery_updated>() <= 5);
  }
}

TEST_CASE("engine: §2.7.5 resume and the sender's delivery state pass through") {
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s);
  auto l = attach_link(s, ssn, receiver_opts(), 0);
  REQUIRE(s.conn.flow(l, 10));
  s.collect();
  const std::byte tag[3] = {std::byte{7}, std::byte{8}, std::byte{9}};
  auto t = peer_transfer(0, 0, binary_view(tag));
  t.resume = true;
  t.state = amqp::received{1, 42};
  REQUIRE(s.feed(t, 0, as_bytes("resumed")));
  const auto* d = s.find<delivery_received>();
  REQUIRE(d != nullptr);
  CHECK(d->resume);
  CHECK(d->tag.size() == 3);
  REQUIRE(d->state);
  REQUIRE(std::holds_alternative<amqp::received>(*d->state));
  CHECK(std::get<amqp::received>(*d->state).section_number == 1);
  CHECK(std::get<amqp::received>(*d->state).section_offset == 42);
  CHECK(as_string(d->payload) == "resumed");
  // A delivery without resume says so.
  auto plain = peer_transfer(0, 1, binary_view(tag).first(1));
  REQUIRE(s.feed(plain, 0, as_bytes("plain")));
  REQUIRE(s.find<delivery_received>() != nullptr);
  CHECK_FALSE(s.find<delivery_received>()->resume);
  CHECK_FALSE(s.find<delivery_received>()->state);
}

TEST_CASE("engine: §2.6.14 interleaved multi-frame deliveries of two links in one session") {
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s);
  auto la = attach_link(s, ssn, receiver_opts("a"), 0);
  auto lb = attach_link(s, ssn, receiver_opts("b"), 1);
  REQUIRE(s.conn.flow(la, 10));
  REQUIRE(s.conn.flow(lb, 10));
  s.collect();
  const std::byte ta[1] = {std::byte{0xA}};
  const std::byte tb[1] = {std::byte{0xB}};
  std::vector<std::string> got;
  auto keep = [&] {
    for (const auto& e : s.events) {
      if (const auto* d = std::get_if<delivery_received>(&e)) {
        got.push_back(std::to_string(d->delivery.link.value == la.value ? 0 : 1) + ":" +
                      as_string(d->payload));
      }
    }
  };
  REQUIRE(s.feed(peer_transfer(0, 0, binary_view(ta), true), 0, as_bytes("A1-")));
  REQUIRE(s.feed(peer_transfer(1, 1, binary_view(tb), true), 0, as_bytes("B1-")));
  amqp::transfer ca;
  ca.handle = 0;
  ca.more = true;
  REQUIRE(s.feed(ca, 0, as_bytes("A2-")));
  amqp::transfer cb;
  cb.handle = 1;
  REQUIRE(s.feed(cb, 0, as_bytes("B2")));
  keep();
  ca.more = false;
  REQUIRE(s.feed(ca, 0, as_bytes("A3")));
  keep();
  CHECK(got == names{"1:B1-B2", "0:A1-A2-A3"});
  CHECK_FALSE(s.conn.error());
}

TEST_CASE("engine: event.hpp views of deliveries received in one receive() stay valid until the "
          "next") {
  // Single-frame and multi-frame deliveries, several on the same link, in ONE write: every
  // delivery_received still shows its own bytes when all the events are pulled.
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s);
  auto l = attach_link(s, ssn, receiver_opts(), 0);
  REQUIRE(s.conn.flow(l, 10));
  s.collect();
  std::vector<std::byte> burst;
  auto add = [&](const amqp::transfer& t, std::string_view payload) {
    auto f = frame_bytes(t, 0, as_bytes(payload));
    burst.insert(burst.end(), f.begin(), f.end());
  };
  const std::byte tag[1] = {std::byte{1}};
  amqp::transfer cont;
  cont.handle = 0;
  add(peer_transfer(0, 0, binary_view(tag), true), "first-");
  add(cont, "message");
  add(peer_transfer(0, 1, binary_view(tag)), "single");
  add(peer_transfer(0, 2, binary_view(tag), true), "second-");
  add(cont, "multi");
  add(peer_transfer(0, 3, binary_view(tag), true), "third-");
  add(cont, "one");
  REQUIRE(s.feed_bytes(burst));
  std::vector<std::string> got;
  for (const auto& e : s.events) {
    if (const auto* d = std::get_if<delivery_received>(&e)) {
      got.push_back(as_string(d->payload));
    }
  }
  CHECK(got == names{"first-message", "single", "second-multi", "third-one"});
}

TEST_CASE("engine: STYLE §5 max_pending_output: send would block while the output is not written") {
  connection_options o;
  o.limits.max_pending_output = 4096;
  frame_script s(o, connection_role::client);
  auto ssn = open_session(s);
  auto l = attach_link(s, ssn, sender_opts(), 0);
  REQUIRE(s.feed(peer_flow(0, 0, 1000)));
  const std::vector<std::byte> m(1000, std::byte{7});
  int sent = 0;
  result<delivery_id> r = errc::invalid_state;
  for (; sent < 100; ++sent) {
    r = s.conn.send(l, {.payload = m, .settled = true});
    if (!r) {
      break;
    }
  }
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::would_block);
  CHECK(sent < 10);
  CHECK(s.conn.pending_output().size() >= 4096);
  s.collect(); // the output is written
  CHECK(s.conn.send(l, {.payload = m, .settled = true}));
}

TEST_CASE("regression: a message reassembled on a link keeps its bytes while its event is held, "
          "when the link's slot is reused and a new reassembly starts in the same receive()") {
  // The link is freed (the peer detaches it), this end attaches a new link in its slot while
  // the input waits behind a full event queue, and the rest of the same input starts a
  // multi-frame message on the new link: the first message's view must still show its bytes
  // (the reused slot kept the old buffer and wrote over it).
  connection_options o;
  o.limits.max_events = 2;
  frame_script s(o, connection_role::client);
  auto ssn = open_session(s);
  auto first = attach_link(s, ssn, receiver_opts("a"), 0);
  REQUIRE(s.conn.flow(first, 10));
  s.collect();
  std::vector<std::byte> burst;
  auto add = [&](const performative& p, std::string_view payload = {}) {
    auto f = frame_bytes(p, 0, as_bytes(payload));
    burst.insert(burst.end(), f.begin(), f.end());
  };
  const std::byte tag[1] = {std::byte{1}};
  amqp::transfer cont;
  cont.handle = 0;
  add(peer_transfer(0, 0, binary_view(tag), true), "first-");
  add(cont, "message");
  amqp::detach d;
  d.handle = 0;
  d.closed = true;
  add(d);
  // The peer's answer to the attach of "b" (below), and the first frame of a message on it.
  add(peer_attach("b", 1, role::sender, 1));
  amqp::transfer b_first = peer_transfer(1, 1, binary_view(tag), true);
  add(b_first, "XXXXXXXXXXXXX");
  REQUIRE(s.conn.receive(burst, s.now));
  auto e1 = s.conn.next_event();
  auto e2 = s.conn.next_event();
  REQUIRE(e1);
  REQUIRE(e2);
  const auto* got = std::get_if<delivery_received>(&*e1);
  REQUIRE(got != nullptr);
  CHECK(std::holds_alternative<link_detached>(*e2));
  CHECK(as_string(got->payload) == "first-message");
  auto second = s.conn.attach(ssn, receiver_opts("b"));
  REQUIRE(second);
  CHECK(second->value == first.value); // the freed slot is reused
  REQUIRE(s.conn.flow(*second, 10));
  std::vector<std::string> later;
  while (auto e = s.conn.next_event()) { // reads on through the rest of the input
    later.emplace_back(name(*e));
  }
  CHECK(later == names{"link_attached"});
  CHECK_FALSE(s.conn.error());
  CHECK(as_string(got->payload) == "first-message");
}
