// amqp::broker driven by client engines in memory: N client-role amqp::connection objects,
// each wired to one broker connection, bytes moved by copy both ways as a transport would
// (receive + process, write + on_output_written), a virtual clock, no sockets.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/broker.hpp"
#include "amqp/connection.hpp"
#include "amqp/event.hpp"
#include "amqp/message.hpp"
#include "support/doctest_print.hpp"
#include "support/wire.hpp"

using namespace amqp;
using namespace std::chrono_literals;
using namespace std::string_literals;
using namespace std::string_view_literals;
namespace ab = amqp::broker;

namespace {

// ---- messages ------------------------------------------------------------------------

std::span<const std::byte> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// A message with one data section holding `body`, optionally properties.to and
// message-annotations.
std::vector<std::byte> make_message(std::string_view body,
                                    std::optional<std::string_view> to = std::nullopt,
                                    value annotations = {}) {
  message_parts m;
  const value sections[1] = {value(bytes_of(body))};
  m.body = body_kind::data;
  m.body_sections = sections;
  if (to) {
    properties p;
    p.to = *to;
    m.properties = p;
  }
  m.message_annotations = annotations;
  std::vector<std::byte> out;
  REQUIRE(encode_append(m, out));
  return out;
}

std::string body_of(std::span<const std::byte> payload) {
  auto m = decode_message(payload);
  if (!m) {
    return "<undecodable>";
  }
  const auto d = m->data();
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

std::uint32_t delivery_count_of(std::span<const std::byte> payload) {
  auto m = decode_message(payload);
  REQUIRE(m);
  return m->header ? m->header->delivery_count : 0;
}

// Deterministic bytes (a 32-bit LCG).
std::string pattern(std::size_t n, std::uint32_t seed) {
  std::string v(n, '\0');
  std::uint32_t x = seed;
  for (auto& b : v) {
    x = x * 1664525U + 1013904223U;
    b = static_cast<char>(x >> 24);
  }
  return v;
}

// "accepted", "rejected amqp:...", "released", ...; "" for no state.
std::string state_text(const std::optional<delivery_state>& s) {
  if (!s) {
    return "";
  }
  std::string text(amqp::name(kind_of(*s)));
  if (const auto* r = std::get_if<rejected>(&*s); r != nullptr && r->error) {
    text += " " + std::string(r->error->condition.str);
  }
  return text;
}

// ---- harness -------------------------------------------------------------------------

// One client event, copied (the event's views die with the next receive()).
struct rec {
  std::string kind;
  link_id link{};
  delivery_id delivery{};
  std::string body;
  std::vector<std::byte> payload;
  bool settled = false;
  bool aborted = false;
  std::string state;     // delivery_updated: state_text()
  std::string condition; // link_detached, session_ended, connection_closed: the error
  std::error_code code{};
  bool remote = false;
  std::uint32_t credit = 0;
  bool drain = false;
  int sasl_code = -1;
  bool has_source = false;
  bool has_target = false;
  std::optional<std::string> source_address;
  std::optional<std::string> target_address;
};

struct client {
  explicit client(const connection_options& o) : engine(o) {}
  connection engine;
  ab::connection_handle handle = 0;
  session_id session{};
  bool connected = true;
  bool paused = false; // the broker's output to this client is not written (a slow reader)
  std::vector<rec> log;
  std::map<std::uint32_t, std::uint32_t> windows; // receiver link -> credit kept up to this
  std::set<std::uint32_t> auto_accept;            // receiver links accepting at once
  std::uint64_t received = 0;
  std::error_code error{};
  int names = 0;
};

class harness {
public:
  explicit harness(ab::broker_options o = {}) : b(std::move(o)) {}

  ab::broker b;
  time_point now{};
  std::vector<std::unique_ptr<client>> clients;
  std::error_code broker_error{}; // last error of a broker receive()

  client& connect(connection_options o = {}, std::string_view certificate_subject = {}) {
    o.role = connection_role::client;
    const std::string id = "client-" + std::to_string(clients.size() + 1);
    if (o.container_id.empty()) {
      o.container_id = id;
    }
    clients.push_back(std::make_unique<client>(o));
    client& c = *clients.back();
    c.handle = b.add_connection(now, certificate_subject);
    return c;
  }

  // Moves bytes and events until nothing moves. True when idle.
  bool pump(long max_rounds = 1'000'000) {
    for (long i = 0; i < max_rounds; ++i) {
      bool progress = false;
      for (auto& cp : clients) {
        client& c = *cp;
        if (!c.connected) {
          continue;
        }
        progress = drain(c) || progress;
        progress = to_broker(c, 0) || progress;
        if (!c.paused) {
          progress = to_client(c, 0) || progress;
        }
      }
      (void)b.take_dirty(); // every connection is looked at each round anyway
      if (!progress) {
        return true;
      }
    }
    return false;
  }

  // Client -> broker: at most `limit` bytes (0: all), then process().
  bool to_broker(client& c, std::size_t limit) {
    auto out = c.engine.pending_output();
    if (out.empty()) {
      return false;
    }
    connection* e = b.engine(c.handle);
    if (e->finished()) {
      c.engine.consume_output(out.size());
      return true;
    }
    const std::size_t n = limit == 0 ? out.size() : std::min(limit, out.size());
    auto r = b.receive(c.handle, out.first(n), now);
    if (!r) {
      broker_error = r.error();
    }
    c.engine.consume_output(n);
    b.process(c.handle, now);
    return true;
  }

  // Broker -> client: at most `limit` bytes (0: all), then on_output_written().
  bool to_client(client& c, std::size_t limit) {
    connection* e = b.engine(c.handle);
    auto out = e->pending_output();
    if (out.empty()) {
      return false;
    }
    if (c.engine.finished()) {
      e->consume_output(out.size());
      b.on_output_written(c.handle);
      return true;
    }
    if (!c.engine.wants_read()) {
      return false;
    }
    const std::size_t n = limit == 0 ? out.size() : std::min(limit, out.size());
    auto r = c.engine.receive(out.first(n), now);
    if (!r) {
      c.error = r.error();
    }
    e->consume_output(n);
    b.on_output_written(c.handle);
    return true;
  }

  // The client's socket goes away (the transport sees EOF).
  void disconnect(client& c, bool tell_engine = true) {
    c.connected = false;
    c.engine.on_transport_closed();
    if (tell_engine) {
      b.engine(c.handle)->on_transport_closed();
      b.process(c.handle, now);
    }
    b.remove_connection(c.handle);
    pump();
  }

  // Advances the virtual clock, firing every engine's deadlines on the way.
  void advance(milliseconds d) {
    const time_point until = now + d;
    for (;;) {
      time_point next = until;
      for (auto& cp : clients) {
        if (!cp->connected) {
          continue;
        }
        for (auto dl : {cp->engine.next_deadline(), b.engine(cp->handle)->next_deadline()}) {
          if (dl && *dl < next) {
            next = *dl;
          }
        }
      }
      now = std::max(now, next);
      for (auto& cp : clients) {
        if (!cp->connected) {
          continue;
        }
        if (auto dl = cp->engine.next_deadline(); dl && *dl <= now) {
          cp->engine.on_deadline(now);
        }
        connection* e = b.engine(cp->handle);
        if (auto dl = e->next_deadline(); dl && *dl <= now) {
          e->on_deadline(now);
          b.process(cp->handle, now);
        }
      }
      pump();
      if (now >= until) {
        return;
      }
    }
  }

private:
  static bool drain(client& c) {
    bool any = false;
    while (auto e = c.engine.next_event()) {
      any = true;
      rec r;
      r.kind = std::string(name(*e));
      if (const auto* d = std::get_if<delivery_received>(&*e)) {
        r.link = d->delivery.link;
        r.delivery = d->delivery;
        r.settled = d->settled;
        r.aborted = d->aborted;
        r.payload.assign(d->payload.begin(), d->payload.end());
        r.body = body_of(d->payload);
        ++c.received;
        const std::uint32_t l = d->delivery.link.value;
        if (c.auto_accept.contains(l) && !d->settled) {
          REQUIRE(c.engine.settle(d->delivery, accepted{}));
        }
        if (auto w = c.windows.find(l); w != c.windows.end()) {
          if (c.engine.credit(d->delivery.link) <= w->second / 2) {
            REQUIRE(c.engine.flow(d->delivery.link, w->second));
          }
        }
      } else if (const auto* u = std::get_if<delivery_updated>(&*e)) {
        r.link = u->delivery.link;
        r.delivery = u->delivery;
        r.settled = u->settled;
        r.state = state_text(u->state);
      } else if (const auto* a = std::get_if<link_attached>(&*e)) {
        r.link = a->link;
        r.has_source = a->remote.source.has_value();
        r.has_target = a->remote.target.has_value();
        if (a->remote.source && a->remote.source->address) {
          r.source_address = std::string(*a->remote.source->address);
        }
        if (a->remote.target && std::holds_alternative<target>(*a->remote.target)) {
          const auto& t = std::get<target>(*a->remote.target);
          if (t.address) {
            r.target_address = std::string(*t.address);
          }
        }
      } else if (const auto* ld = std::get_if<link_detached>(&*e)) {
        r.link = ld->link;
        r.remote = ld->remote;
        r.code = ld->code;
        if (ld->error) {
          r.condition = std::string(ld->error->condition.str);
        }
      } else if (const auto* f = std::get_if<link_flow>(&*e)) {
        r.link = f->link;
        r.credit = f->credit;
        r.drain = f->drain;
      } else if (const auto* se = std::get_if<session_ended>(&*e)) {
        r.code = se->code;
        if (se->error) {
          r.condition = std::string(se->error->condition.str);
        }
      } else if (const auto* cc = std::get_if<connection_closed>(&*e)) {
        r.code = cc->code;
        r.remote = cc->remote;
        if (cc->error) {
          r.condition = std::string(cc->error->condition.str);
        }
      } else if (const auto* sd = std::get_if<sasl_done>(&*e)) {
        r.sasl_code = static_cast<int>(sd->code);
      }
      c.log.push_back(std::move(r));
    }
    return any;
  }
};

// ---- client helpers --------------------------------------------------------------------

// A connected client with its connection open and one session begun.
client& open_client(harness& h, connection_options o = {}) {
  client& c = h.connect(o);
  REQUIRE(c.engine.open());
  auto s = c.engine.begin();
  REQUIRE(s);
  c.session = *s;
  REQUIRE(h.pump());
  return c;
}

link_id attach_sender(harness& h, client& c, std::optional<std::string_view> address,
                      sender_settle_mode snd = sender_settle_mode::mixed,
                      receiver_settle_mode rcv = receiver_settle_mode::first) {
  const std::string link_name = "sender-" + std::to_string(++c.names);
  link_options o;
  o.name = link_name;
  o.role = role::sender;
  o.snd_settle_mode = snd;
  o.rcv_settle_mode = rcv;
  o.source = source{};
  o.target = target{};
  o.target->address = address;
  auto l = c.engine.attach(c.session, o);
  REQUIRE(l);
  REQUIRE(h.pump());
  return *l;
}

struct receiver_opts {
  sender_settle_mode snd = sender_settle_mode::unsettled;
  receiver_settle_mode rcv = receiver_settle_mode::first;
  std::uint32_t credit = 0;
  bool dynamic = false;
};

link_id attach_receiver(harness& h, client& c, std::optional<std::string_view> address,
                        receiver_opts ro = {}) {
  const std::string link_name = "receiver-" + std::to_string(++c.names);
  link_options o;
  o.name = link_name;
  o.role = role::receiver;
  o.snd_settle_mode = ro.snd;
  o.rcv_settle_mode = ro.rcv;
  o.source = source{};
  o.source->address = address;
  o.source->dynamic = ro.dynamic;
  o.target = target{};
  auto l = c.engine.attach(c.session, o);
  REQUIRE(l);
  if (ro.credit > 0) {
    REQUIRE(c.engine.flow(*l, ro.credit));
  }
  REQUIRE(h.pump());
  return *l;
}

delivery_id send(client& c, link_id l, std::string_view body, bool settled = false,
                 std::optional<std::string_view> to = std::nullopt) {
  const auto payload = make_message(body, to);
  transfer_options t;
  t.payload = payload;
  t.settled = settled;
  auto r = c.engine.send(l, t);
  REQUIRE(r);
  return *r;
}

std::vector<const rec*> events(const client& c, std::string_view kind,
                               std::optional<link_id> l = std::nullopt) {
  std::vector<const rec*> out;
  for (const auto& r : c.log) {
    if (r.kind == kind && (!l || r.link == *l)) {
      out.push_back(&r);
    }
  }
  return out;
}

std::vector<std::string> bodies(const client& c, link_id l) {
  std::vector<std::string> out;
  for (const rec* r : events(c, "delivery_received", l)) {
    out.push_back(r->body);
  }
  return out;
}

std::vector<std::string> states(const client& c, link_id l) {
  std::vector<std::string> out;
  for (const rec* r : events(c, "delivery_updated", l)) {
    out.push_back(r->state + (r->settled ? " settled" : ""));
  }
  return out;
}

using strings = std::vector<std::string>;

ab::queue_stats qstats(const harness& h, std::string_view q) {
  auto s = h.b.stats(q);
  REQUIRE(s);
  return *s;
}

} // namespace

// ---- basic flows -----------------------------------------------------------------------

TEST_CASE("broker: presettled messages from a presettled producer reach a presettled "
          "consumer") {
  harness h;
  client& p = open_client(h);
  const link_id tx = attach_sender(h, p, "q", sender_settle_mode::settled);
  CHECK(p.engine.credit(tx) == 1000); // producer_credit
  for (const char* m : {"m0", "m1", "m2"}) {
    send(p, tx, m, true);
  }
  REQUIRE(h.pump());
  CHECK(h.b.queue_depth("q") == 3);
  CHECK(events(p, "delivery_updated").empty()); // presettled: no disposition

  client& c = open_client(h);
  const link_id rx = attach_receiver(h, c, "q", {.snd = sender_settle_mode::settled, .credit = 10});
  CHECK(bodies(c, rx) == strings{"m0", "m1", "m2"});
  for (const rec* r : events(c, "delivery_received", rx)) {
    CHECK(r->settled);
  }
  const auto s = qstats(h, "q");
  CHECK(s.depth == 0);
  CHECK(s.in_flight == 0);
  CHECK(s.enqueued == 3);
  CHECK(s.delivered == 3);
  CHECK(h.b.stats().stored_bytes == 0);
}

TEST_CASE("broker: unsettled messages are accepted by the broker, then by the consumer") {
  harness h;
  client& p = open_client(h);
  client& c = open_client(h);
  const link_id rx = attach_receiver(h, c, "q", {.credit = 10});
  const link_id tx = attach_sender(h, p, "q");
  send(p, tx, "a");
  send(p, tx, "b");
  REQUIRE(h.pump());
  CHECK(states(p, tx) == strings{"accepted settled", "accepted settled"});
  CHECK(p.engine.unsettled(tx) == 0);
  CHECK(bodies(c, rx) == strings{"a", "b"});
  for (const rec* r : events(c, "delivery_received", rx)) {
    CHECK_FALSE(r->settled);
  }
  CHECK(qstats(h, "q").in_flight == 2);
  for (const rec* r : events(c, "delivery_received", rx)) {
    REQUIRE(c.engine.settle(r->delivery, accepted{}));
  }
  REQUIRE(h.pump());
  const auto s = qstats(h, "q");
  CHECK(s.in_flight == 0);
  CHECK(s.accepted == 2);
  CHECK(h.b.stats().stored_bytes == 0);
  CHECK(h.b.stats().received == 2);
}

TEST_CASE("broker: attach answers carry both source and target") {
  harness h;
  client& c = open_client(h);
  const link_id rx = attach_receiver(h, c, "q1");
  const link_id tx = attach_sender(h, c, "q2");
  const link_id relay = attach_sender(h, c, std::nullopt);
  for (link_id l : {rx, tx, relay}) {
    auto a = events(c, "link_attached", l);
    REQUIRE(a.size() == 1);
    CHECK(a[0]->has_source);
    CHECK(a[0]->has_target);
  }
  CHECK(events(c, "link_attached", rx)[0]->source_address == "q1");
  CHECK(events(c, "link_attached", tx)[0]->target_address == "q2");
  CHECK_FALSE(events(c, "link_attached", relay)[0]->target_address.has_value());
  // The open offers the anonymous relay.
  REQUIRE(c.engine.remote_open() != nullptr);
  CHECK(c.engine.remote_open()->offered_capabilities.contains("ANONYMOUS-RELAY"));
}

// ---- outcomes --------------------------------------------------------------------------

TEST_CASE("broker: rejected drops the message") {
  harness h;
  client& c = open_client(h);
  const link_id rx = attach_receiver(h, c, "q", {.credit = 10});
  const link_id tx = attach_sender(h, c, "q");
  send(c, tx, "bad");
  REQUIRE(h.pump());
  auto d = events(c, "delivery_received", rx);
  REQUIRE(d.size() == 1);
  REQUIRE(c.engine.settle(d[0]->delivery, rejected{}));
  REQUIRE(h.pump());
  CHECK(bodies(c, rx).size() == 1); // not redelivered
  const auto s = qstats(h, "q");
  CHECK(s.rejected == 1);
  CHECK(s.depth == 0);
  CHECK(s.in_flight == 0);
  CHECK(h.b.stats().stored_bytes == 0);
}

TEST_CASE("broker: released puts the message back at the front; it is redelivered as it was") {
  harness h;
  client& c = open_client(h);
  const link_id tx = attach_sender(h, c, "q");
  send(c, tx, "m0");
  send(c, tx, "m1");
  REQUIRE(h.pump());
  const link_id rx = attach_receiver(h, c, "q", {.credit = 1});
  auto d = events(c, "delivery_received", rx);
  REQUIRE(d.size() == 1);
  CHECK(d[0]->body == "m0");
  REQUIRE(c.engine.settle(d[0]->delivery, released{}));
  REQUIRE(c.engine.flow(rx, 2));
  REQUIRE(h.pump());
  CHECK(bodies(c, rx) == strings{"m0", "m0", "m1"});
  CHECK(delivery_count_of(events(c, "delivery_received", rx)[1]->payload) == 0);
  CHECK(qstats(h, "q").released == 1);
}

TEST_CASE("broker: modified with delivery-failed is redelivered with delivery-count + 1 and "
          "the annotations merged") {
  harness h;
  client& c = open_client(h);
  const link_id tx = attach_sender(h, c, "q");
  {
    const value kv[4] = {value(symbol_view{"x-opt-keep"}), value("kept"),
                         value(symbol_view{"x-opt-over"}), value("old")};
    const auto payload = make_message("m0", std::nullopt, value::map(kv));
    transfer_options t;
    t.payload = payload;
    REQUIRE(c.engine.send(tx, t));
  }
  REQUIRE(h.pump());
  const link_id rx = attach_receiver(h, c, "q", {.credit = 10});
  auto d = events(c, "delivery_received", rx);
  REQUIRE(d.size() == 1);
  const value ann[4] = {value(symbol_view{"x-opt-over"}), value("new"),
                        value(symbol_view{"x-opt-added"}), value(std::uint32_t{7})};
  modified m;
  m.delivery_failed = true;
  m.message_annotations = value::map(ann);
  REQUIRE(c.engine.settle(d[0]->delivery, m));
  REQUIRE(h.pump());
  d = events(c, "delivery_received", rx);
  REQUIRE(d.size() == 2);
  CHECK(d[1]->body == "m0");
  CHECK(delivery_count_of(d[1]->payload) == 1);
  auto mv = decode_message(d[1]->payload);
  REQUIRE(mv);
  CHECK(mv->message_annotations.find("x-opt-keep")->as_string() == "kept");
  CHECK(mv->message_annotations.find("x-opt-over")->as_string() == "new");
  CHECK(mv->message_annotations.find("x-opt-added")->as_uint() == 7);

  // Failing again counts again; modified without delivery-failed leaves the count.
  modified again;
  again.delivery_failed = true;
  REQUIRE(c.engine.settle(d[1]->delivery, again));
  REQUIRE(h.pump());
  d = events(c, "delivery_received", rx);
  REQUIRE(d.size() == 3);
  CHECK(delivery_count_of(d[2]->payload) == 2);
  REQUIRE(c.engine.settle(d[2]->delivery, modified{}));
  REQUIRE(h.pump());
  d = events(c, "delivery_received", rx);
  REQUIRE(d.size() == 4);
  CHECK(delivery_count_of(d[3]->payload) == 2);
  CHECK(qstats(h, "q").modified == 3);
}

TEST_CASE("broker: undeliverable-here sends the message to another consumer, never back") {
  harness h;
  client& c = open_client(h);
  const link_id tx = attach_sender(h, c, "q");
  const link_id a = attach_receiver(h, c, "q", {.credit = 10});
  send(c, tx, "m0");
  REQUIRE(h.pump());
  auto d = events(c, "delivery_received", a);
  REQUIRE(d.size() == 1);
  modified m;
  m.undeliverable_here = true;
  REQUIRE(c.engine.settle(d[0]->delivery, m));
  REQUIRE(h.pump());
  CHECK(bodies(c, a).size() == 1); // not to `a` again, though it has credit
  CHECK(h.b.queue_depth("q") == 1);

  // A message behind it still reaches `a`.
  send(c, tx, "m1");
  REQUIRE(h.pump());
  CHECK(bodies(c, a) == strings{"m0", "m1"});

  const link_id b = attach_receiver(h, c, "q", {.credit = 10});
  CHECK(bodies(c, b) == strings{"m0"});
  CHECK(h.b.queue_depth("q") == 0);
}

TEST_CASE("broker: a consumer settling with no outcome is done with the message") {
  harness h;
  client& c = open_client(h);
  const link_id tx = attach_sender(h, c, "q");
  const link_id rx = attach_receiver(h, c, "q", {.credit = 10});
  send(c, tx, "m0");
  REQUIRE(h.pump());
  auto d = events(c, "delivery_received", rx);
  REQUIRE(d.size() == 1);
  REQUIRE(c.engine.settle(d[0]->delivery));
  REQUIRE(h.pump());
  CHECK(qstats(h, "q").accepted == 1);
  CHECK(qstats(h, "q").in_flight == 0);
}

// ---- settle modes ------------------------------------------------------------------------

TEST_CASE("broker: an absolute URL as address names the node of its path (as uAMQP sends)") {
  harness h;
  client& c = open_client(h);
  const link_id tx = attach_sender(h, c, "amqps://127.0.0.1:5671/q");
  send(c, tx, "m0");
  REQUIRE(h.pump());
  CHECK(h.b.queue_depth("q") == 1);
  CHECK(h.b.queue_depth("amqps://127.0.0.1:5671/q") == 0);
}

TEST_CASE("broker: a producer asking rcv-settle-mode second gets first by default: settled "
          "outcomes") {
  // Python uAMQP asks for second and never settles: the broker, the receiver, chooses
  // first (§2.7.3), as Azure's brokers do.
  harness h;
  client& c = open_client(h);
  const link_id tx =
      attach_sender(h, c, "q", sender_settle_mode::unsettled, receiver_settle_mode::second);
  send(c, tx, "m0");
  REQUIRE(h.pump());
  auto updates = events(c, "delivery_updated", tx);
  REQUIRE(updates.size() == 1);
  CHECK(updates[0]->settled);
  CHECK(updates[0]->state == "accepted");
  CHECK(c.engine.unsettled(tx) == 0);
  CHECK(h.b.queue_depth("q") == 1);
}

TEST_CASE("broker: rcv-settle-mode second on a producer: accepted unsettled, settled after "
          "the client") {
  ab::broker_options o;
  o.serve_settle_second = true;
  harness h(o);
  client& c = open_client(h);
  const link_id tx =
      attach_sender(h, c, "q", sender_settle_mode::unsettled, receiver_settle_mode::second);
  send(c, tx, "m0");
  REQUIRE(h.pump());
  CHECK(states(c, tx) == strings{"accepted"});
  CHECK(c.engine.unsettled(tx) == 1);
  CHECK(h.b.queue_depth("q") == 1);
  REQUIRE(c.engine.settle(events(c, "delivery_updated", tx)[0]->delivery));
  REQUIRE(h.pump());
  CHECK(c.engine.unsettled(tx) == 0);
  // The broker forgot it too: a second message goes the same way.
  send(c, tx, "m1");
  REQUIRE(h.pump());
  CHECK(states(c, tx) == strings{"accepted", "accepted"});
}

TEST_CASE("broker: rcv-settle-mode second on a consumer: the broker settles after the "
          "consumer's outcome") {
  harness h;
  client& c = open_client(h);
  const link_id tx = attach_sender(h, c, "q");
  const link_id rx = attach_receiver(
      h, c, "q",
      {.snd = sender_settle_mode::unsettled, .rcv = receiver_settle_mode::second, .credit = 5});
  send(c, tx, "m0");
  REQUIRE(h.pump());
  auto d = events(c, "delivery_received", rx);
  REQUIRE(d.size() == 1);
  REQUIRE(c.engine.update(d[0]->delivery, accepted{}));
  REQUIRE(h.pump());
  CHECK(states(c, rx) == strings{"accepted settled"});
  CHECK(c.engine.unsettled(rx) == 0);
  CHECK(qstats(h, "q").accepted == 1);
  CHECK(qstats(h, "q").in_flight == 0);
}

TEST_CASE("broker: a presettled consumer (snd-settle-mode settled) drops messages as sent") {
  harness h;
  client& c = open_client(h);
  const link_id tx = attach_sender(h, c, "q");
  const link_id rx = attach_receiver(h, c, "q", {.snd = sender_settle_mode::settled, .credit = 5});
  send(c, tx, "m0");
  REQUIRE(h.pump());
  auto d = events(c, "delivery_received", rx);
  REQUIRE(d.size() == 1);
  CHECK(d[0]->settled);
  CHECK(qstats(h, "q").in_flight == 0);
  CHECK(h.b.stats().stored_bytes == 0);
}

// ---- large messages ----------------------------------------------------------------------

TEST_CASE("broker: a 1 MiB message crosses in many frames both ways") {
  ab::broker_options o;
  o.connection.limits.max_frame_size = 4096;
  harness h(o);
  connection_options co;
  co.limits.max_frame_size = 4096;
  client& p = open_client(h, co);
  client& c = open_client(h, co);
  const link_id tx = attach_sender(h, p, "big");
  const link_id rx = attach_receiver(h, c, "big", {.credit = 1});
  const std::string body = pattern(1024 * 1024, 7);
  send(p, tx, body);
  REQUIRE(h.pump());
  CHECK(states(p, tx) == strings{"accepted settled"});
  auto d = events(c, "delivery_received", rx);
  REQUIRE(d.size() == 1);
  CHECK(d[0]->body == body);
  CHECK(d[0]->payload.size() > 1024 * 1024);
}

// ---- routing -----------------------------------------------------------------------------

TEST_CASE("broker: two consumers of a queue are served round-robin") {
  harness h;
  client& p = open_client(h);
  client& c1 = open_client(h);
  client& c2 = open_client(h);
  const link_id r1 = attach_receiver(h, c1, "q", {.credit = 100});
  const link_id r2 = attach_receiver(h, c2, "q", {.credit = 100});
  const link_id tx = attach_sender(h, p, "q");
  for (int i = 0; i < 10; ++i) {
    send(p, tx, "m" + std::to_string(i));
  }
  REQUIRE(h.pump());
  CHECK(bodies(c1, r1) == strings{"m0", "m2", "m4", "m6", "m8"});
  CHECK(bodies(c2, r2) == strings{"m1", "m3", "m5", "m7", "m9"});
}

TEST_CASE("broker: a consumer without credit is skipped; the one with credit takes all") {
  harness h;
  client& c = open_client(h);
  const link_id r1 = attach_receiver(h, c, "q", {.credit = 1});
  const link_id r2 = attach_receiver(h, c, "q", {.credit = 100});
  const link_id tx = attach_sender(h, c, "q");
  for (int i = 0; i < 4; ++i) {
    send(c, tx, "m" + std::to_string(i));
  }
  REQUIRE(h.pump());
  CHECK(bodies(c, r1) == strings{"m0"});
  CHECK(bodies(c, r2) == strings{"m1", "m2", "m3"});
}

TEST_CASE("broker: dynamic source: a queue with a unique name, returned in the attach and "
          "deleted with the link") {
  harness h;
  client& c = open_client(h);
  const link_id rx = attach_receiver(h, c, std::nullopt, {.credit = 10, .dynamic = true});
  auto a = events(c, "link_attached", rx);
  REQUIRE(a.size() == 1);
  REQUIRE(a[0]->source_address);
  const std::string address = *a[0]->source_address;
  CHECK_FALSE(address.empty());
  REQUIRE(h.b.stats(address));
  CHECK(h.b.stats(address)->dynamic);

  // A second dynamic source gets another name.
  const link_id rx2 = attach_receiver(h, c, std::nullopt, {.dynamic = true});
  CHECK(*events(c, "link_attached", rx2)[0]->source_address != address);

  client& p = open_client(h);
  const link_id tx = attach_sender(h, p, address);
  send(p, tx, "reply");
  REQUIRE(h.pump());
  CHECK(bodies(c, rx) == strings{"reply"});

  REQUIRE(c.engine.detach(rx));
  REQUIRE(h.pump());
  CHECK_FALSE(h.b.stats(address));
  // The producer to the deleted queue is detached.
  auto det = events(p, "link_detached", tx);
  REQUIRE(det.size() == 1);
  CHECK(det[0]->condition == "amqp:resource-deleted");
}

TEST_CASE("broker: anonymous relay routes by properties.to; no `to` is rejected with "
          "amqp:not-found") {
  harness h;
  client& c = open_client(h);
  const link_id tx = attach_sender(h, c, std::nullopt);
  CHECK(c.engine.credit(tx) == 1000);
  send(c, tx, "to-a", false, "a");
  send(c, tx, "to-b", false, "b");
  send(c, tx, "to-a2", true, "a");
  send(c, tx, "nowhere");
  REQUIRE(h.pump());
  CHECK(states(c, tx) ==
        strings{"accepted settled", "accepted settled", "rejected amqp:not-found settled"});
  CHECK(h.b.queue_depth("a") == 2);
  CHECK(h.b.queue_depth("b") == 1);
  CHECK(h.b.stats().refused == 1);
  const link_id rx = attach_receiver(h, c, "a", {.credit = 10});
  CHECK(bodies(c, rx) == strings{"to-a", "to-a2"});
}

TEST_CASE("broker: take_dirty names the connections that routing gave output") {
  harness h;
  client& p = open_client(h);
  client& c = open_client(h);
  const link_id rx = attach_receiver(h, c, "q", {.credit = 10});
  const link_id tx = attach_sender(h, p, "q");
  (void)h.b.take_dirty();
  send(p, tx, "m0");
  // As a transport: only p's socket was readable.
  auto out = p.engine.pending_output();
  REQUIRE(h.b.receive(p.handle, out, h.now));
  p.engine.consume_output(out.size());
  h.b.process(p.handle, h.now);
  CHECK(h.b.take_dirty() == std::vector<ab::connection_handle>{c.handle});
  CHECK(h.b.take_dirty().empty());
  CHECK_FALSE(h.b.engine(c.handle)->pending_output().empty());
  REQUIRE(h.pump());
  CHECK(bodies(c, rx) == strings{"m0"});
}

// ---- consumers going away ------------------------------------------------------------------

TEST_CASE("broker: a consumer that disconnects returns its unsettled messages to the front, "
          "in order") {
  harness h;
  client& p = open_client(h);
  const link_id tx = attach_sender(h, p, "q");
  for (int i = 0; i < 10; ++i) {
    send(p, tx, "m" + std::to_string(i));
  }
  REQUIRE(h.pump());
  client& a = open_client(h);
  const link_id ra = attach_receiver(h, a, "q", {.credit = 5});
  REQUIRE(bodies(a, ra) == strings{"m0", "m1", "m2", "m3", "m4"});
  REQUIRE(a.engine.settle(events(a, "delivery_received", ra)[1]->delivery, accepted{}));
  REQUIRE(h.pump());
  CHECK(qstats(h, "q").in_flight == 4);

  SUBCASE("the transport reports the end of the stream") {
    h.disconnect(a);
  }
  SUBCASE("the connection is only removed") {
    h.disconnect(a, false);
  }

  const auto s = qstats(h, "q");
  CHECK(s.in_flight == 0);
  CHECK(s.depth == 9);
  CHECK(s.returned == 4);
  client& b = open_client(h);
  const link_id rb = attach_receiver(h, b, "q", {.credit = 100});
  CHECK(bodies(b, rb) == strings{"m0", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"});
  CHECK(h.b.stats().connections == 2);
}

TEST_CASE("broker: a consumer link detached or its session ended returns its unsettled "
          "messages") {
  harness h;
  client& c = open_client(h);
  const link_id tx = attach_sender(h, c, "q");
  for (int i = 0; i < 4; ++i) {
    send(c, tx, "m" + std::to_string(i));
  }
  REQUIRE(h.pump());
  auto s2 = c.engine.begin();
  REQUIRE(s2);
  REQUIRE(h.pump());
  const session_id first = c.session;
  c.session = *s2;
  const link_id rx = attach_receiver(h, c, "q", {.credit = 2});
  c.session = first;
  REQUIRE(bodies(c, rx) == strings{"m0", "m1"});

  SUBCASE("detach") {
    REQUIRE(c.engine.detach(rx));
  }
  SUBCASE("end") {
    REQUIRE(c.engine.end(*s2));
  }
  REQUIRE(h.pump());
  CHECK(qstats(h, "q").depth == 4);
  CHECK(qstats(h, "q").in_flight == 0);
  c.log.clear(); // link ids are reused once detached
  const link_id rx2 = attach_receiver(h, c, "q", {.credit = 10});
  CHECK(bodies(c, rx2) == strings{"m0", "m1", "m2", "m3"});
}

TEST_CASE("broker: a consumer that disconnects mid-transfer gets its message back in the "
          "queue") {
  ab::broker_options o;
  o.connection.limits.max_frame_size = 4096;
  harness h(o);
  connection_options co;
  co.limits.max_frame_size = 4096;
  client& p = open_client(h, co);
  const link_id tx = attach_sender(h, p, "q");
  const std::string body = pattern(256 * 1024, 3);
  send(p, tx, body);
  REQUIRE(h.pump());
  client& a = open_client(h, co);
  a.paused = true; // the broker's frames pile up unwritten
  (void)attach_receiver(h, a, "q", {.credit = 1});
  CHECK(qstats(h, "q").in_flight == 1);
  REQUIRE(h.to_client(a, 10'000)); // a few frames reach it
  CHECK(events(a, "delivery_received").empty());
  h.disconnect(a);
  CHECK(qstats(h, "q").depth == 1);
  client& b = open_client(h, co);
  const link_id rb = attach_receiver(h, b, "q", {.credit = 1});
  auto d = events(b, "delivery_received", rb);
  REQUIRE(d.size() == 1);
  CHECK(d[0]->body == body);
}

// ---- producers going away --------------------------------------------------------------------

TEST_CASE("broker: a producer that disconnects mid-transfer leaves nothing behind") {
  ab::broker_options o;
  o.connection.limits.max_frame_size = 4096;
  harness h(o);
  connection_options co;
  co.limits.max_frame_size = 4096;
  client& p = open_client(h, co);
  const link_id tx = attach_sender(h, p, "q");
  send(p, tx, pattern(1024 * 1024, 5));
  REQUIRE(h.to_broker(p, 300'000)); // part of the frames
  CHECK(h.b.queue_depth("q") == 0);
  h.disconnect(p);
  CHECK(h.b.queue_depth("q") == 0);
  CHECK(h.b.stats().stored_bytes == 0);
  CHECK(h.b.stats().connections == 0);
  // The broker serves the next client as usual.
  client& c = open_client(h);
  const link_id tx2 = attach_sender(h, c, "q");
  send(c, tx2, "after");
  REQUIRE(h.pump());
  CHECK(h.b.queue_depth("q") == 1);
}

TEST_CASE("broker: an aborted delivery is discarded") {
  ab::broker_options o;
  o.connection.limits.max_frame_size = 1024;
  o.connection.incoming_window = 2; // the client's transfer waits for the window: abortable
  harness h(o);
  connection_options co;
  co.limits.max_frame_size = 1024;
  client& c = open_client(h, co);
  const link_id tx = attach_sender(h, c, "q");
  send(c, tx, pattern(16 * 1024, 9));
  REQUIRE(c.engine.abort(tx));
  REQUIRE(h.pump());
  CHECK(h.b.queue_depth("q") == 0);
  CHECK(h.b.stats().aborted == 1);
  CHECK(h.b.stats().stored_bytes == 0);
  send(c, tx, "next");
  REQUIRE(h.pump());
  CHECK(h.b.queue_depth("q") == 1);
}

// ---- flow control ------------------------------------------------------------------------------

TEST_CASE("broker: a full queue stops the producer's credit; it resumes as the queue drains") {
  ab::broker_options o;
  o.max_queue_messages = 5;
  o.producer_credit = 10;
  harness h(o);
  client& p = open_client(h);
  const link_id tx = attach_sender(h, p, "q");
  CHECK(p.engine.credit(tx) == 5); // never more than the room in the queue
  for (int i = 0; i < 5; ++i) {
    send(p, tx, "m" + std::to_string(i));
  }
  REQUIRE(h.pump());
  CHECK(p.engine.credit(tx) == 0);
  CHECK(h.b.queue_depth("q") == 5);

  client& c = open_client(h);
  const link_id rx = attach_receiver(h, c, "q", {.credit = 2});
  REQUIRE(bodies(c, rx).size() == 2);
  CHECK(p.engine.credit(tx) == 0); // delivered but unsettled still counts
  for (const rec* r : events(c, "delivery_received", rx)) {
    REQUIRE(c.engine.settle(r->delivery, accepted{}));
  }
  REQUIRE(h.pump());
  CHECK(p.engine.credit(tx) == 2);
  send(p, tx, "m5");
  send(p, tx, "m6");
  REQUIRE(h.pump());
  CHECK(h.b.queue_depth("q") == 5);
  CHECK(p.engine.credit(tx) == 0);
}

TEST_CASE("broker: the queue byte limit stops the producer's credit") {
  ab::broker_options o;
  o.max_queue_bytes = 100;
  o.producer_credit = 4;
  harness h(o);
  client& p = open_client(h);
  const link_id tx = attach_sender(h, p, "q");
  CHECK(p.engine.credit(tx) == 4);
  const std::string body(60, 'x');
  for (int i = 0; i < 4; ++i) {
    send(p, tx, body);
  }
  REQUIRE(h.pump());
  CHECK(p.engine.credit(tx) == 0); // over 100 bytes after two: no top-up
  CHECK(h.b.queue_depth("q") == 4);
  client& c = open_client(h);
  const link_id rx = attach_receiver(h, c, "q", {.snd = sender_settle_mode::settled, .credit = 10});
  CHECK(bodies(c, rx).size() == 4);
  CHECK(p.engine.credit(tx) == 4);
}

TEST_CASE("broker: the broker memory limit rejects messages and resumes when drained") {
  ab::broker_options o;
  o.max_total_bytes = 200;
  harness h(o);
  client& p = open_client(h);
  const link_id tx = attach_sender(h, p, "q");
  const std::string body(60, 'x');
  for (int i = 0; i < 4; ++i) {
    send(p, tx, body);
  }
  send(p, tx, body, true); // presettled: dropped
  REQUIRE(h.pump());
  CHECK(states(p, tx) == strings{"accepted settled", "accepted settled", "accepted settled",
                                 "rejected amqp:resource-limit-exceeded settled"});
  CHECK(h.b.queue_depth("q") == 3);
  CHECK(h.b.stats().refused == 2);
  CHECK(h.b.stats().stored_bytes <= 200);
  client& c = open_client(h);
  const link_id rx = attach_receiver(h, c, "q", {.snd = sender_settle_mode::settled, .credit = 10});
  CHECK(bodies(c, rx).size() == 3);
  send(p, tx, body);
  REQUIRE(h.pump());
  CHECK(states(p, tx).back() == "accepted settled");
}

TEST_CASE("broker: an anonymous relay's message for a full queue is rejected") {
  ab::broker_options o;
  o.max_queue_messages = 2;
  harness h(o);
  client& c = open_client(h);
  const link_id tx = attach_sender(h, c, std::nullopt);
  for (int i = 0; i < 3; ++i) {
    send(c, tx, "m", false, "a");
  }
  REQUIRE(h.pump());
  CHECK(states(c, tx) == strings{"accepted settled", "accepted settled",
                                 "rejected amqp:resource-limit-exceeded settled"});
  CHECK(h.b.queue_depth("a") == 2);
}

TEST_CASE("broker: drain on an empty queue uses up the consumer's credit") {
  harness h;
  client& c = open_client(h);
  const link_id rx = attach_receiver(h, c, "q");
  REQUIRE(c.engine.flow(rx, 5, true));
  REQUIRE(h.pump());
  CHECK(c.engine.credit(rx) == 0);
  auto f = events(c, "link_flow", rx);
  REQUIRE_FALSE(f.empty());
  CHECK(f.back()->credit == 0);

  // With messages: they are sent, then the rest of the credit is used up.
  const link_id tx = attach_sender(h, c, "q");
  send(c, tx, "m0");
  send(c, tx, "m1");
  REQUIRE(h.pump());
  CHECK(bodies(c, rx).empty());
  REQUIRE(c.engine.flow(rx, 5, true));
  REQUIRE(h.pump());
  CHECK(bodies(c, rx) == strings{"m0", "m1"});
  CHECK(c.engine.credit(rx) == 0);
  // Later messages wait for new credit.
  send(c, tx, "m2");
  REQUIRE(h.pump());
  CHECK(bodies(c, rx).size() == 2);
  CHECK(h.b.queue_depth("q") == 1);
}

TEST_CASE("broker: 10,000 messages through small credit windows and a small session window") {
  ab::broker_options o;
  o.producer_credit = 20;
  harness h(o);
  client& p = open_client(h);
  connection_options co;
  co.incoming_window = 2; // the broker's transfers wait for the consumer's session window
  client& c = open_client(h, co);
  const link_id rx = attach_receiver(h, c, "q", {.credit = 10});
  c.windows[rx.value] = 10;
  c.auto_accept.insert(rx.value);
  const link_id tx = attach_sender(h, p, "q");
  constexpr int n = 10'000;
  int sent = 0;
  while (sent < n) {
    while (sent < n && p.engine.credit(tx) > 0) {
      send(p, tx, std::to_string(sent));
      ++sent;
    }
    REQUIRE(h.pump());
  }
  REQUIRE(h.pump());
  const auto got = bodies(c, rx);
  REQUIRE(got.size() == n);
  bool in_order = true;
  for (int i = 0; i < n; ++i) {
    in_order = in_order && got[static_cast<std::size_t>(i)] == std::to_string(i);
  }
  CHECK(in_order);
  const auto s = qstats(h, "q");
  CHECK(s.accepted == n);
  CHECK(s.depth == 0);
  CHECK(s.in_flight == 0);
  CHECK(states(p, tx).size() == n);
}

TEST_CASE("broker: a consumer whose output is not written stops at the pending-output limit "
          "and resumes when it is") {
  ab::broker_options o;
  o.connection.limits.max_pending_output = 4096;
  harness h(o);
  client& p = open_client(h);
  client& c = open_client(h);
  const link_id rx = attach_receiver(h, c, "q", {.credit = 1000});
  c.auto_accept.insert(rx.value);
  const link_id tx = attach_sender(h, p, "q");
  c.paused = true;
  const std::string body(500, 'x');
  for (int i = 0; i < 50; ++i) {
    send(p, tx, body);
  }
  REQUIRE(h.pump());
  const auto s = qstats(h, "q");
  CHECK(s.in_flight < 20);
  CHECK(s.depth > 30);
  CHECK(h.b.engine(c.handle)->pending_output().size() < 4096 + 1024);
  c.paused = false;
  REQUIRE(h.pump());
  CHECK(bodies(c, rx).size() == 50);
  CHECK(qstats(h, "q").accepted == 50);
}

TEST_CASE("broker: a consumer at the engine's unsettled limit gets more once it settles") {
  ab::broker_options o;
  o.connection.limits.max_unsettled_per_link = 5;
  harness h(o);
  client& c = open_client(h);
  const link_id tx = attach_sender(h, c, "q");
  const link_id rx = attach_receiver(h, c, "q", {.credit = 100});
  CHECK(c.engine.credit(tx) == 5); // producer_credit is kept within the same limit
  for (int i = 0; i < 5; ++i) {
    send(c, tx, "m" + std::to_string(i));
  }
  REQUIRE(h.pump());
  for (int i = 5; i < 8; ++i) {
    send(c, tx, "m" + std::to_string(i));
  }
  REQUIRE(h.pump());
  CHECK(bodies(c, rx).size() == 5);
  CHECK(h.b.queue_depth("q") == 3);
  for (const rec* r : events(c, "delivery_received", rx)) {
    REQUIRE(c.engine.settle(r->delivery, accepted{}));
  }
  REQUIRE(h.pump());
  CHECK(bodies(c, rx).size() == 8);
}

// ---- refused attaches
// ----------------------------------------------------------------------------

TEST_CASE("broker: refused attaches are detached with an error; the session stays") {
  SUBCASE("a receiving link without a source address") {
    harness h;
    client& c = open_client(h);
    const link_id rx = attach_receiver(h, c, std::nullopt);
    auto d = events(c, "link_detached", rx);
    REQUIRE(d.size() == 1);
    CHECK(d[0]->condition == "amqp:invalid-field");
    CHECK(events(c, "session_ended").empty());
    auto a = events(c, "link_attached", rx);
    REQUIRE(a.size() == 1);
    CHECK_FALSE(a[0]->source_address); // §2.6.3: the refused terminus is null
  }
  SUBCASE("an unknown address without auto-creation: amqp:not-found") {
    ab::broker_options o;
    o.auto_create_queues = false;
    harness h(o);
    REQUIRE(h.b.declare_queue("known"));
    client& c = open_client(h);
    const link_id bad = attach_sender(h, c, "unknown");
    auto d = events(c, "link_detached", bad);
    REQUIRE(d.size() == 1);
    CHECK(d[0]->condition == "amqp:not-found");
    c.log.clear(); // link ids are reused once detached
    const link_id bad_rx = attach_receiver(h, c, "unknown");
    CHECK(events(c, "link_detached", bad_rx).size() == 1);
    c.log.clear();
    const link_id ok = attach_sender(h, c, "known");
    CHECK(events(c, "link_detached", ok).empty());
    CHECK(c.engine.credit(ok) == 1000);
    // Relayed messages to unknown addresses are refused too.
    const link_id relay = attach_sender(h, c, std::nullopt);
    send(c, relay, "m", false, "unknown");
    REQUIRE(h.pump());
    CHECK(states(c, relay) == strings{"rejected amqp:not-found settled"});
    // Declared queues stay when unused.
    REQUIRE(c.engine.detach(ok));
    REQUIRE(h.pump());
    CHECK(h.b.stats("known"));
    CHECK(events(c, "session_ended").empty());
  }
  SUBCASE("too many queues: amqp:resource-limit-exceeded") {
    ab::broker_options o;
    o.max_queues = 2;
    harness h(o);
    client& c = open_client(h);
    const link_id a = attach_receiver(h, c, "a");
    const link_id b = attach_receiver(h, c, "b");
    CHECK(events(c, "link_detached", a).empty());
    CHECK(events(c, "link_detached", b).empty());
    for (bool dynamic : {false, true}) {
      c.log.clear(); // link ids are reused once detached
      const link_id l = dynamic ? attach_receiver(h, c, std::nullopt, {.dynamic = true})
                                : attach_receiver(h, c, "c");
      auto d = events(c, "link_detached", l);
      REQUIRE(d.size() == 1);
      CHECK(d[0]->condition == "amqp:resource-limit-exceeded");
    }
    CHECK(h.b.stats().queues == 2);
    CHECK(h.b.declare_queue("d").error() == errc::resource_limit);
    // A relay cannot create one either.
    const link_id relay = attach_sender(h, c, std::nullopt);
    send(c, relay, "m", false, "c");
    REQUIRE(h.pump());
    CHECK(states(c, relay) == strings{"rejected amqp:resource-limit-exceeded settled"});
    CHECK(events(c, "session_ended").empty());
  }
  SUBCASE("too many links on a connection: amqp:resource-limit-exceeded") {
    ab::broker_options o;
    o.max_links_per_connection = 2;
    harness h(o);
    client& c = open_client(h);
    (void)attach_receiver(h, c, "a");
    (void)attach_sender(h, c, "a");
    const link_id x = attach_sender(h, c, "b");
    auto d = events(c, "link_detached", x);
    REQUIRE(d.size() == 1);
    CHECK(d[0]->condition == "amqp:resource-limit-exceeded");
    CHECK(h.b.info(c.handle)->links == 2);
    // Another connection has its own budget.
    client& c2 = open_client(h);
    const link_id y = attach_sender(h, c2, "b");
    CHECK(events(c2, "link_detached", y).empty());
  }
}

TEST_CASE("broker: auto-created queues go when empty and unused; queues with messages stay") {
  harness h;
  client& c = open_client(h);
  const link_id rx = attach_receiver(h, c, "tmp");
  CHECK(h.b.stats("tmp"));
  REQUIRE(c.engine.detach(rx));
  REQUIRE(h.pump());
  CHECK_FALSE(h.b.stats("tmp"));
  const link_id tx = attach_sender(h, c, "kept");
  send(c, tx, "m");
  REQUIRE(h.pump());
  REQUIRE(c.engine.detach(tx));
  REQUIRE(h.pump());
  CHECK(h.b.queue_depth("kept") == 1);
  CHECK(h.b.queues() == strings{"kept"});
}

// ---- SASL
// ----------------------------------------------------------------------------------------

TEST_CASE("broker: SASL") {
  ab::broker_options o;
  o.allow_anonymous = false;
  o.users = {{"alice", "secret"}, {"bob", "hunter2"}};
  harness h(o);
  connection_options co;
  co.sasl.enabled = true;

  SUBCASE("PLAIN with the right password") {
    co.sasl.username = "alice";
    co.sasl.password = "secret";
    client& c = open_client(h, co);
    auto d = events(c, "sasl_done");
    REQUIRE(d.size() == 1);
    CHECK(d[0]->sasl_code == 0);
    CHECK(events(c, "connection_opened").size() == 1);
    const auto* i = h.b.info(c.handle);
    REQUIRE(i);
    CHECK(i->sasl);
    CHECK(i->authenticated);
    CHECK(i->mechanism == "PLAIN");
    CHECK(i->user == "alice");
    const link_id tx = attach_sender(h, c, "q");
    CHECK(c.engine.credit(tx) == 1000);
  }
  SUBCASE("PLAIN with a wrong password: outcome auth") {
    co.sasl.username = "alice";
    co.sasl.password = "hunter2";
    client& c = open_client(h, co);
    auto d = events(c, "sasl_done");
    REQUIRE(d.size() == 1);
    CHECK(d[0]->sasl_code == 1);
    auto cl = events(c, "connection_closed");
    REQUIRE(cl.size() == 1);
    CHECK(cl[0]->code == errc::unauthorized);
    CHECK(events(c, "connection_opened").empty());
    CHECK_FALSE(h.b.info(c.handle)->authenticated);
    CHECK(h.b.engine(c.handle)->finished());
  }
  SUBCASE("PLAIN asking to act as another user (authzid)") {
    co.sasl.username = "alice";
    co.sasl.password = "secret";
    co.sasl.authzid = "bob";
    client& c = open_client(h, co);
    CHECK(events(c, "sasl_done")[0]->sasl_code == 1);
  }
  SUBCASE("PLAIN with an unknown user") {
    co.sasl.username = "mallory";
    co.sasl.password = "secret";
    client& c = open_client(h, co);
    CHECK(events(c, "sasl_done")[0]->sasl_code == 1);
  }
  SUBCASE("ANONYMOUS is not offered when anonymous access is off") {
    co.sasl.mechanism = "ANONYMOUS";
    client& c = open_client(h, co);
    auto cl = events(c, "connection_closed");
    REQUIRE(cl.size() == 1);
    CHECK(cl[0]->code == errc::unauthorized); // no mechanism in common
    CHECK(events(c, "connection_opened").empty());
    CHECK_FALSE(h.b.info(c.handle)->authenticated);
  }
  SUBCASE("ANONYMOUS sent anyway (pipelined) gets outcome auth") {
    co.sasl.mechanism = "ANONYMOUS";
    co.sasl.pipeline = true;
    client& c = open_client(h, co);
    CHECK(events(c, "connection_opened").empty());
    CHECK(events(c, "connection_closed").size() == 1);
    CHECK_FALSE(h.b.info(c.handle)->authenticated);
    CHECK(h.b.info(c.handle)->mechanism == "ANONYMOUS");
    CHECK(h.b.engine(c.handle)->finished()); // the broker ended it after the outcome
  }
  SUBCASE("a client without SASL refused when anonymous access is off") {
    client& c = open_client(h); // no SASL
    auto cl = events(c, "connection_closed");
    REQUIRE(cl.size() == 1);
    CHECK(cl[0]->code == errc::protocol_mismatch);
    CHECK(events(c, "connection_opened").empty());
    CHECK(h.b.engine(c.handle)->finished());
  }
}

// A raw SASL client: the SASL header and a sasl-init for `mechanism` with `response`, fed
// to a new broker connection; returns the sasl-outcome code the broker answered (-1: none).
int raw_sasl_outcome(harness& h, std::string_view mechanism, std::string_view response,
                     ab::connection_handle* handle = nullptr) {
  const auto c = h.b.add_connection(h.now);
  if (handle != nullptr) {
    *handle = c;
  }
  std::vector<std::byte> in = test::header_bytes(detail::protocol_id::sasl);
  sasl_init init;
  init.mechanism = symbol_view{mechanism};
  init.initial_response = binary_view(bytes_of(response));
  const auto f = test::sasl_frame_bytes(init);
  in.insert(in.end(), f.begin(), f.end());
  REQUIRE(h.b.receive(c, in, h.now));
  h.b.process(c, h.now);
  test::wire_parser out;
  out.feed(h.b.engine(c)->pending_output());
  for (const auto& item : out.items) {
    if (auto o = item.sasl_as<sasl_outcome>()) {
      return static_cast<int>(o->code);
    }
  }
  return -1;
}

TEST_CASE("regression: a malformed SASL PLAIN response fails with outcome auth, whatever "
          "the accounts") {
  // RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd: exactly two NULs, a
  // non-empty authcid.
  const std::string_view malformed[] = {
      "guestguest"sv,           // no NUL at all
      "\0guestguest"sv,         // one NUL
      "\0\0guest"sv,            // empty authcid
      "\0guest\0guest\0more"sv, // three NULs
  };
  ab::broker_options o;
  std::vector<std::string> asked;
  SUBCASE("no accounts, anonymous access") {}
  SUBCASE("accounts") {
    // Each would match what a lenient split makes of one of the malformed responses.
    o.users = {{"guest", "guest"}, {"", ""}, {"", "guest"}, {"guest", "guest\0more"s}};
  }
  SUBCASE("an authenticator") {
    o.authenticate = [&](const ab::sasl_login& l) {
      asked.emplace_back(l.username);
      return true;
    };
  }
  harness h(o);
  for (const auto r : malformed) {
    std::string shown;
    for (const char ch : r) {
      shown += ch == '\0' ? std::string("\\0") : std::string(1, ch);
    }
    CAPTURE(shown);
    ab::connection_handle c = 0;
    CHECK(raw_sasl_outcome(h, "PLAIN", r, &c) == static_cast<int>(sasl_code::auth));
    CHECK_FALSE(h.b.info(c)->authenticated);
    CHECK(h.b.info(c)->user.empty());
  }
  CHECK(asked.empty()); // the authenticator never sees a malformed response
  // The same credentials, well formed, are accepted.
  CHECK(raw_sasl_outcome(h, "PLAIN", "\0guest\0guest"sv) == static_cast<int>(sasl_code::ok));
}

TEST_CASE("broker: anonymous access (the default): SASL ANONYMOUS, no SASL, and PLAIN "
          "without a user list") {
  harness h;
  connection_options co;
  SUBCASE("no SASL") {}
  SUBCASE("SASL ANONYMOUS") {
    co.sasl.enabled = true;
  }
  SUBCASE("SASL PLAIN, any credentials") {
    co.sasl.enabled = true;
    co.sasl.username = "whoever";
    co.sasl.password = "whatever";
  }
  client& c = open_client(h, co);
  CHECK(events(c, "connection_opened").size() == 1);
  CHECK(h.b.info(c.handle)->authenticated);
  CHECK(h.b.info(c.handle)->sasl == co.sasl.enabled);
  const link_id tx = attach_sender(h, c, "q");
  send(c, tx, "m");
  REQUIRE(h.pump());
  CHECK(h.b.queue_depth("q") == 1);
}

// With accounts in `o`: anonymous access is off unless allow_anonymous asks for it.
void check_anonymous_off_with_accounts(ab::broker_options o) {
  connection_options anonymous;
  anonymous.sasl.enabled = true;
  anonymous.sasl.mechanism = "ANONYMOUS";
  const connection_options no_sasl;
  {
    INFO("by default: off");
    harness h(o);
    client& a = open_client(h, anonymous);
    CHECK(events(a, "connection_opened").empty());
    REQUIRE(events(a, "connection_closed").size() == 1);
    CHECK(events(a, "connection_closed")[0]->code == errc::unauthorized);
    CHECK_FALSE(h.b.info(a.handle)->authenticated);
    client& n = open_client(h, no_sasl);
    CHECK(events(n, "connection_opened").empty());
    REQUIRE(events(n, "connection_closed").size() == 1);
    CHECK(events(n, "connection_closed")[0]->code == errc::protocol_mismatch);
    // PLAIN still works.
    connection_options plain;
    plain.sasl.enabled = true;
    plain.sasl.username = "alice";
    plain.sasl.password = "secret";
    client& p = open_client(h, plain);
    CHECK(events(p, "connection_opened").size() == 1);
  }
  {
    INFO("asked for: on");
    o.allow_anonymous = true;
    harness h(o);
    client& a = open_client(h, anonymous);
    CHECK(events(a, "connection_opened").size() == 1);
    CHECK(h.b.info(a.handle)->authenticated);
    client& n = open_client(h, no_sasl);
    CHECK(events(n, "connection_opened").size() == 1);
  }
}

TEST_CASE("regression: configured accounts turn anonymous access off unless it is asked for") {
  ab::broker_options with_users;
  with_users.users = {{"alice", "secret"}};
  ab::broker_options with_authenticator;
  with_authenticator.authenticate = [](const ab::sasl_login& l) {
    return l.username == "alice" && l.password == "secret";
  };
  check_anonymous_off_with_accounts(with_users);
  check_anonymous_off_with_accounts(with_authenticator);
}

TEST_CASE("broker: the protocol header may arrive one byte at a time, through read_buffer") {
  harness h;
  connection_options co;
  SUBCASE("no SASL") {}
  SUBCASE("SASL") {
    co.sasl.enabled = true;
  }
  client& c = h.connect(co);
  REQUIRE(c.engine.open());
  for (int i = 0; i < 8; ++i) {
    auto out = c.engine.pending_output();
    REQUIRE_FALSE(out.empty());
    auto buf = h.b.engine(c.handle)->read_buffer(1);
    REQUIRE(buf.size() == 1);
    buf[0] = out[0];
    REQUIRE(h.b.engine(c.handle)->read_done(1, h.now));
    c.engine.consume_output(1);
    h.b.process(c.handle, h.now);
  }
  auto s = c.engine.begin();
  REQUIRE(s);
  c.session = *s;
  REQUIRE(h.pump());
  CHECK(events(c, "connection_opened").size() == 1);
  CHECK(events(c, "session_begun").size() == 1);
}

TEST_CASE("broker: something that is not AMQP is refused with the SASL header") {
  ab::broker_options o;
  harness h(o);
  const auto h1 = h.b.add_connection(h.now);
  const std::string http = "GET / HTTP/1.1\r\n\r\n";
  CHECK_FALSE(h.b.receive(h1, bytes_of(http), h.now));
  h.b.process(h1, h.now);
  CHECK(h.b.engine(h1)->finished());
  const auto out = h.b.engine(h1)->pending_output();
  REQUIRE(out.size() == 8);
  CHECK(out[4] == std::byte{3}); // AMQP 1.0 §5.3.1: the SASL protocol header
  h.b.remove_connection(h1);
  CHECK(h.b.engine(h1) == nullptr);
  CHECK_FALSE(h.b.receive(h1, bytes_of(http), h.now));
}

// ---- timers
// --------------------------------------------------------------------------------------

TEST_CASE("broker: idle timeouts: the broker announces its own and keeps within the client's") {
  ab::broker_options o;
  o.connection.timeouts.idle_time_out = 5000ms;
  harness h(o);
  connection_options co;
  co.timeouts.idle_time_out = 2000ms;
  client& c = open_client(h, co);
  REQUIRE(c.engine.remote_open());
  CHECK(c.engine.remote_open()->idle_time_out == 2500U); // half its threshold (§2.4.5)
  h.advance(30'000ms);                                   // heartbeats both ways
  CHECK(events(c, "connection_closed").empty());
  CHECK_FALSE(h.b.info(c.handle)->closed);

  // A client that goes silent is closed by the broker after 5 s.
  c.paused = true;
  c.connected = false;
  for (int i = 0; i < 10; ++i) {
    h.now += 1000ms;
    connection* e = h.b.engine(c.handle);
    if (auto dl = e->next_deadline(); dl && *dl <= h.now) {
      e->on_deadline(h.now);
      h.b.process(c.handle, h.now);
    }
  }
  CHECK(h.b.info(c.handle)->closed);
  CHECK(h.b.engine(c.handle)->finished());
}

TEST_CASE("regression: a client that sends its protocol header and then nothing is closed "
          "after the broker's 10 s handshake deadline") {
  const auto sasl_header = test::header_bytes(detail::protocol_id::sasl);
  const auto amqp_header = test::header_bytes(detail::protocol_id::amqp);
  std::vector<std::byte> header;
  SUBCASE("SASL header") {
    header = sasl_header;
  }
  SUBCASE("AMQP header (anonymous access)") {
    header = amqp_header;
  }
  CHECK(ab::broker_options{}.connection.timeouts.handshake == 10'000ms);
  harness h;
  const auto c = h.b.add_connection(h.now);
  connection* e = h.b.engine(c);
  // The transport waits for the engine's first deadline at once: the clock starts.
  REQUIRE(e->next_deadline());
  e->on_deadline(h.now);
  h.b.process(c, h.now);
  REQUIRE(h.b.receive(c, header, h.now));
  h.b.process(c, h.now);
  // Fires every deadline of the broker's engine up to `until`.
  const auto run_until = [&](time_point until) {
    while (auto dl = e->next_deadline()) {
      if (*dl > until) {
        break;
      }
      h.now = std::max(h.now, *dl);
      e->on_deadline(h.now);
      h.b.process(c, h.now);
    }
    h.now = until;
  };
  const time_point start = h.now;
  run_until(start + 9'999ms);
  CHECK_FALSE(e->finished());
  run_until(start + 10'000ms);
  CHECK(e->finished());
  test::wire_parser out;
  out.feed(e->pending_output());
  REQUIRE_FALSE(out.items.empty());
  if (header == sasl_header) {
    // In the SASL exchange there is no frame to say why (AMQP 1.0 §5.3): the stream ends.
    CHECK(out.names() == strings{"header sasl", "sasl-mechanisms"});
  } else {
    // §2.4.1: the broker's open, then a close with the error (§2.7.9).
    REQUIRE(out.names() == strings{"header amqp", "open", "close"});
    const auto cl = out.items[2].as<amqp::close>();
    REQUIRE(cl);
    CHECK(cl->error);
  }
}

// ---- close and engine limits ---------------------------------------------------------------

TEST_CASE("broker: a client's close is answered; its unsettled messages go back") {
  harness h;
  client& p = open_client(h);
  const link_id tx = attach_sender(h, p, "q");
  send(p, tx, "m0");
  send(p, tx, "m1");
  REQUIRE(h.pump());
  client& c = open_client(h);
  const link_id rx = attach_receiver(h, c, "q", {.credit = 10});
  REQUIRE(bodies(c, rx).size() == 2);
  REQUIRE(c.engine.close());
  REQUIRE(h.pump());
  auto cl = events(c, "connection_closed");
  REQUIRE(cl.size() == 1);
  CHECK(cl[0]->remote);
  CHECK_FALSE(cl[0]->code);
  CHECK(h.b.info(c.handle)->closed);
  CHECK(h.b.info(c.handle)->links == 0);
  CHECK(h.b.engine(c.handle)->finished());
  CHECK(qstats(h, "q").depth == 2);
  CHECK(qstats(h, "q").in_flight == 0);
  h.b.remove_connection(c.handle);
  c.connected = false;
  CHECK(h.b.stats().connections == 1);
}

TEST_CASE("broker: the engine's max-message-size is announced to producers") {
  ab::broker_options o;
  o.connection.limits.max_message_size = 1000;
  harness h(o);
  client& c = open_client(h);
  const link_id tx = attach_sender(h, c, "q");
  const auto payload = make_message(std::string(2000, 'x'));
  transfer_options t;
  t.payload = payload;
  auto r = c.engine.send(tx, t);
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::message_size_exceeded);
  send(c, tx, std::string(900, 'x'));
  REQUIRE(h.pump());
  CHECK(h.b.queue_depth("q") == 1);
}

TEST_CASE("broker: declare_queue") {
  harness h;
  CHECK(h.b.declare_queue("").error() == errc::invalid_argument);
  REQUIRE(h.b.declare_queue("a"));
  REQUIRE(h.b.declare_queue("a")); // again: nothing changes
  CHECK(h.b.queues() == strings{"a"});
  CHECK(h.b.stats("a")->declared);
  CHECK(h.b.queue_depth("nope") == 0);
  CHECK_FALSE(h.b.stats("nope"));
}

TEST_CASE("broker: a link to a transaction coordinator is refused with amqp:not-implemented") {
  // Scripted client frames: the engine's client API only attaches messaging targets.
  harness h;
  const auto c = h.b.add_connection(h.now);
  std::vector<std::byte> in = test::header_bytes(detail::protocol_id::amqp);
  amqp::open o;
  o.container_id = "scripted";
  amqp::begin bg;
  bg.incoming_window = 100;
  bg.outgoing_window = 100;
  amqp::attach at;
  at.name = "txn";
  at.handle = 0;
  at.role = role::sender;
  at.source = source{};
  at.target = attach_target{coordinator{}};
  at.initial_delivery_count = 0;
  for (const performative& p : {performative{o}, performative{bg}, performative{at}}) {
    const auto f = test::frame_bytes(p);
    in.insert(in.end(), f.begin(), f.end());
  }
  REQUIRE(h.b.receive(c, in, h.now));
  h.b.process(c, h.now);
  test::wire_parser out;
  out.feed(h.b.engine(c)->pending_output());
  CHECK(out.names() == strings{"header amqp", "open", "begin", "attach", "detach"});
  auto answer = out.items[3].as<amqp::attach>();
  REQUIRE(answer);
  CHECK_FALSE(answer->target); // §2.6.3: the refused terminus is null
  CHECK(answer->source);
  auto d = out.items[4].as<amqp::detach>();
  REQUIRE(d);
  CHECK(d->closed);
  REQUIRE(d->error);
  CHECK(d->error->condition.str == "amqp:not-implemented");
}

// ----------------------------------------------------------------------------------------
// Server-side hooks: the authenticator and link routing.

TEST_CASE("broker: broker_options::authenticate decides SASL PLAIN logins") {
  ab::broker_options o;
  o.allow_anonymous = false;
  std::vector<std::string> asked;
  o.authenticate = [&](const ab::sasl_login& l) {
    asked.emplace_back(l.username);
    return l.username == "device-1" && l.password == "key-1" && l.authzid.empty();
  };
  harness h(o);
  connection_options co;
  co.sasl.enabled = true;
  co.sasl.username = "device-1";
  SUBCASE("accepted") {
    co.sasl.password = "key-1";
    client& c = open_client(h, co);
    CHECK(events(c, "connection_opened").size() == 1);
    CHECK(h.b.info(c.handle)->user == "device-1");
    CHECK(h.b.info(c.handle)->authenticated);
  }
  SUBCASE("refused: outcome auth") {
    co.sasl.password = "key-2";
    client& c = open_client(h, co);
    CHECK(events(c, "sasl_done")[0]->sasl_code == 1);
    CHECK(events(c, "connection_opened").empty());
    CHECK(h.b.info(c.handle)->user.empty());
  }
  CHECK(asked == strings{"device-1"});
}

TEST_CASE("broker: broker_options::route maps addresses to queues, and refuses") {
  ab::broker_options o;
  std::vector<std::string> seen;
  o.route = [&](const ab::route_request& r) {
    seen.push_back(std::string(r.consume ? "consume " : "send ") + std::string(r.address));
    CHECK(r.connection.authenticated);
    if (!r.consume && r.address.starts_with("/devices/")) {
      return ab::route_decision::to("telemetry");
    }
    if (r.consume && r.address == "telemetry") {
      return ab::route_decision::to("telemetry");
    }
    return ab::route_decision::refuse("amqp:unauthorized-access", "not for you");
  };
  harness h(o);
  client& c = open_client(h);
  const link_id tx = attach_sender(h, c, "/devices/d1/messages/events");
  CHECK(events(c, "link_detached", tx).empty());
  send(c, tx, "t1");
  REQUIRE(h.pump());
  CHECK(states(c, tx) == strings{"accepted settled"});
  CHECK(qstats(h, "telemetry").depth == 1);
  CHECK_FALSE(h.b.stats("/devices/d1/messages/events"));

  const link_id rx = attach_receiver(h, c, "telemetry", {.credit = 10});
  CHECK(bodies(c, rx) == strings{"t1"});

  SUBCASE("a refused attach carries the route's condition") {
    const link_id bad = attach_receiver(h, c, "/devices/d1/messages/events");
    auto d = events(c, "link_detached", bad);
    REQUIRE(d.size() == 1);
    CHECK(d[0]->condition == "amqp:unauthorized-access");
    CHECK(events(c, "session_ended").empty());
  }
  SUBCASE("the anonymous relay routes each message's properties.to") {
    const link_id relay = attach_sender(h, c, std::nullopt);
    send(c, relay, "t2", false, "/devices/d2/messages/events");
    send(c, relay, "t3", false, "elsewhere");
    REQUIRE(h.pump());
    CHECK(states(c, relay) ==
          strings{"accepted settled", "rejected amqp:unauthorized-access settled"});
    CHECK(bodies(c, rx) == strings{"t1", "t2"});
    CHECK(seen.back() == "send elsewhere");
  }
  CHECK(seen.front() == "send /devices/d1/messages/events");
}

TEST_CASE("broker: SASL EXTERNAL authenticates a client as its verified certificate") {
  ab::broker_options o;
  o.allow_anonymous = false;
  harness h(o);
  connection_options co;
  co.sasl.enabled = true;
  co.sasl.mechanism = "EXTERNAL";
  SUBCASE("with a certificate subject") {
    client& c = h.connect(co, "CN=device-7");
    REQUIRE(c.engine.open());
    REQUIRE(h.pump());
    CHECK(events(c, "connection_opened").size() == 1);
    const auto* i = h.b.info(c.handle);
    CHECK(i->mechanism == "EXTERNAL");
    CHECK(i->user == "CN=device-7");
    CHECK(i->authenticated);
  }
  SUBCASE("asking for another identity") {
    const std::string other = "CN=device-8";
    co.sasl.initial_response = std::as_bytes(std::span(other.data(), other.size()));
    client& c = h.connect(co, "CN=device-7");
    REQUIRE(c.engine.open());
    REQUIRE(h.pump());
    CHECK(events(c, "sasl_done")[0]->sasl_code == 1);
    CHECK(events(c, "connection_opened").empty());
  }
  SUBCASE("without a certificate EXTERNAL is not offered") {
    client& c = h.connect(co);
    REQUIRE(c.engine.open());
    REQUIRE(h.pump());
    CHECK(events(c, "connection_opened").empty());
    CHECK(events(c, "connection_closed")[0]->code == errc::unauthorized);
  }
}

TEST_CASE("broker: broker_options::admit decides each message's outcome before it is queued") {
  ab::broker_options o;
  std::vector<std::string> seen;
  o.admit = [&](const ab::incoming_message& m) {
    const auto body = decode_message(m.payload)->data();
    const std::string text(reinterpret_cast<const char*>(body.data()), body.size());
    seen.push_back(std::string(m.queue) + " " + text + (m.settled ? " settled" : ""));
    CHECK(m.connection.authenticated);
    if (text == "bad") {
      return ab::admission::reject("amqp:precondition-failed", "not today");
    }
    if (text == "later") {
      return ab::admission::release();
    }
    if (text == "elsewhere") {
      return ab::admission::modify(true, true);
    }
    return ab::admission::accept();
  };
  harness h(o);
  client& c = open_client(h);
  const link_id tx = attach_sender(h, c, "q");
  for (const char* body : {"ok", "bad", "later", "elsewhere", "ok2"}) {
    send(c, tx, body);
  }
  send(c, tx, "bad", true); // presettled: dropped, nothing goes back
  REQUIRE(h.pump());
  CHECK(states(c, tx) == strings{"accepted settled", "rejected amqp:precondition-failed settled",
                                 "released settled", "modified settled", "accepted settled"});
  CHECK(seen == strings{"q ok", "q bad", "q later", "q elsewhere", "q ok2", "q bad settled"});
  CHECK(qstats(h, "q").depth == 2);
  CHECK(h.b.stats().received == 2);
  CHECK(h.b.stats().refused == 4);
  const link_id rx = attach_receiver(h, c, "q", {.credit = 10});
  CHECK(bodies(c, rx) == strings{"ok", "ok2"});
}

TEST_CASE("broker: an admission that is not an outcome releases the message") {
  ab::broker_options o;
  o.admit = [](const ab::incoming_message&) {
    ab::admission a;
    a.outcome = state_kind::received; // not one of the four outcomes of §3.4
    return a;
  };
  harness h(o);
  client& c = open_client(h);
  const link_id tx = attach_sender(h, c, "q");
  send(c, tx, "m");
  REQUIRE(h.pump());
  CHECK(states(c, tx) == strings{"released settled"});
  CHECK(qstats(h, "q").depth == 0);
  CHECK(h.b.stats().refused == 1);
}
