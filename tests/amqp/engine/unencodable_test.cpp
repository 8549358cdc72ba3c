// Engine: a frame of ours that cannot be sent as asked is an error, never a different frame.
// A value with no encoding (an array whose elements differ in type), a value of the wrong
// type for its field (a string as capabilities), or a frame above the frame size in force
// (512 bytes before the peer's open, §2.4.1; its max-frame-size after, §2.7.1) makes the
// command fail (errc::invalid_argument, errc::frame_too_large) with nothing written and the
// endpoint unchanged; the connection options are refused when their open could never be
// sent.
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/connection.hpp"
#include "frame/frame.hpp"
#include "support/doctest_print.hpp"
#include "support/frame_script.hpp"

using namespace amqp;
using namespace amqp::test;

namespace {

using names = std::vector<std::string>;

// An array whose elements differ in type: it has no encoding (AMQP 1.0 §1.6.24 arrays hold
// values of one type). Kept alive for the views that point into it.
struct unencodable {
  value items[2] = {value{1U}, value{"x"}};
  [[nodiscard]] value get() const { return value::array(type::uint, items); }
};

std::vector<std::string> symbol_list(const symbols& s) {
  std::vector<std::string> v;
  s.for_each([&](std::string_view x) { v.emplace_back(x); });
  return v;
}

link_options sender_opts(std::string_view name = "tx") {
  link_options o;
  o.name = name;
  o.role = role::sender;
  o.source = source{};
  o.target = target{};
  o.target->address = "queue";
  return o;
}

// An error condition whose info map `kv` holds a value with no encoding.
amqp::error bad_error(const value (&kv)[2]) {
  return amqp::error{symbol_view{symbol::internal_error}, "bad", value::map(kv)};
}

} // namespace

TEST_CASE("regression: an open value without an encoding refuses the options (the next value "
          "went out in its field: desired-capabilities as offered-capabilities)") {
  const unencodable u;
  connection_options o;
  o.offered_capabilities = u.get();
  o.desired_capabilities = value(symbol_view{"DELAYED_DELIVERY"});
  o.container_id = "c";
  for (const auto r : {connection_role::client, connection_role::server}) {
    CAPTURE(static_cast<int>(r));
    o.role = r;
    auto made = connection::create(o);
    REQUIRE_FALSE(made);
    CHECK(made.error() == errc::invalid_argument);
    // The constructor leaves a failed engine that sends nothing, not even its header.
    connection c(o);
    CHECK(c.error() == errc::invalid_argument);
    CHECK(c.finished());
    CHECK(c.pending_output().empty());
    auto op = c.open();
    REQUIRE_FALSE(op);
    CHECK(op.error() == errc::invalid_argument);
    CHECK(c.pending_output().empty()); // no open with desired as offered
    CHECK_FALSE(c.next_event());
    auto rx = c.receive(header_bytes(detail::protocol_id::amqp), time_point{});
    REQUIRE_FALSE(rx);
    CHECK(rx.error() == errc::invalid_argument);
    CHECK(c.pending_output().empty());
    c.on_transport_closed();
    CHECK_FALSE(c.next_event());
  }
}

TEST_CASE("engine: §2.7.1 each open value goes out in its own field") {
  // The valid half of the regression above: desired alone is sent as desired.
  connection_options o;
  o.desired_capabilities = value(symbol_view{"DELAYED_DELIVERY"});
  const value kv[2] = {value(symbol_view{"product"}), value("test")};
  o.properties = value::map(kv);
  frame_script s(o, connection_role::client);
  REQUIRE(s.conn.open());
  s.collect();
  auto op = s.last<amqp::open>();
  REQUIRE(op);
  CHECK(op->offered_capabilities.empty());
  CHECK(symbol_list(op->desired_capabilities) == names{"DELAYED_DELIVERY"});
  auto product = op->properties.find("product");
  REQUIRE(product);
  CHECK(product->get_string() == std::optional<std::string_view>("test"));
}

TEST_CASE("engine: §2.7.1 options whose open could never be sent are refused") {
  connection_options o;
  o.container_id = "c";
  SUBCASE("capabilities that are not symbols: invalid_argument") {
    o.offered_capabilities = value("a string, not a symbol");
    auto c = connection::create(o);
    REQUIRE_FALSE(c);
    CHECK(c.error() == errc::invalid_argument);
  }
  SUBCASE("properties holding a value without an encoding: invalid_argument") {
    const unencodable u;
    const value kv[2] = {value(symbol_view{"k"}), u.get()};
    o.properties = value::map(kv);
    auto c = connection::create(o);
    REQUIRE_FALSE(c);
    CHECK(c.error() == errc::invalid_argument);
  }
  SUBCASE("§2.4.1 an open above 512 bytes (sent before the peer's max-frame-size is known): "
          "frame_too_large; 512 is accepted") {
    std::string id(600, 'x');
    o.container_id = id;
    auto big = connection::create(o);
    REQUIRE_FALSE(big);
    CHECK(big.error() == errc::frame_too_large);
    amqp::open probe;
    probe.container_id = id;
    probe.max_frame_size = o.limits.max_frame_size;
    probe.channel_max = o.limits.channel_max;
    probe.idle_time_out = static_cast<std::uint32_t>((o.timeouts.idle_time_out.count() + 1) / 2);
    auto full = detail::encoded_frame_size(probe, 0);
    REQUIRE(full);
    id.resize(id.size() - (*full - 512));
    o.container_id = id;
    auto fits = connection::create(o);
    REQUIRE(fits);
    REQUIRE(fits->open());
    auto out = fits->pending_output();
    REQUIRE(out.size() == 8 + 512);
  }
}

TEST_CASE("engine: §2.7.9 a close whose error cannot be sent is refused, not sent without it") {
  const unencodable u;
  const value kv[2] = {value(symbol_view{"k"}), u.get()};
  frame_script s({}, connection_role::client);
  s.handshake(peer_open("server", 512));
  (void)s.take();
  SUBCASE("no encoding") {
    auto r = s.conn.close(bad_error(kv));
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::invalid_argument);
  }
  SUBCASE("above the peer's max-frame-size") {
    const std::string text(600, 'd');
    auto r = s.conn.close(amqp::error{symbol_view{symbol::internal_error}, text, value{}});
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::frame_too_large);
  }
  s.collect();
  CHECK(s.take().empty());
  CHECK(s.conn.state().local == endpoint_status::active);
  CHECK_FALSE(s.conn.error());
  // The connection is untouched: a close that can be sent goes out as asked.
  REQUIRE(s.conn.close(amqp::error{symbol_view{symbol::internal_error}, "good", value{}}));
  s.collect();
  CHECK(s.take_names() == names{"close"});
  auto c = s.last<amqp::close>();
  REQUIRE(c);
  REQUIRE(c->error);
  CHECK(c->error->description == std::optional<std::string_view>("good"));
}

TEST_CASE("engine: §2.7.8 an end whose error cannot be sent is refused, not sent without it") {
  const unencodable u;
  const value kv[2] = {value(symbol_view{"k"}), u.get()};
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s);
  (void)s.take();
  auto r = s.conn.end(ssn, bad_error(kv));
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::invalid_argument);
  s.collect();
  CHECK(s.take().empty());
  CHECK(s.conn.state(ssn)->local == endpoint_status::active);
  REQUIRE(s.conn.end(ssn, amqp::error{symbol_view{symbol::internal_error}, "good", value{}}));
  s.collect();
  CHECK(s.take_names() == names{"end"});
  auto e = s.last<amqp::end>();
  REQUIRE(e);
  REQUIRE(e->error);
  CHECK(e->error->description == std::optional<std::string_view>("good"));
}

TEST_CASE("engine: §2.7.7 a detach whose error cannot be sent is refused, not sent without it") {
  const unencodable u;
  const value kv[2] = {value(symbol_view{"k"}), u.get()};
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s);
  SUBCASE("our link") {
    auto l = attach_link(s, ssn, sender_opts(), 0);
    (void)s.take();
    auto r = s.conn.detach(l, true, bad_error(kv));
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::invalid_argument);
    s.collect();
    CHECK(s.take().empty());
    CHECK(s.conn.state(l)->local == endpoint_status::active);
    REQUIRE(s.conn.detach(l, true, amqp::error{symbol_view{symbol::internal_error}, "good", {}}));
    s.collect();
    CHECK(s.take_names() == names{"detach"});
  }
  SUBCASE("refusing the peer's attach: neither the answer nor the detach goes out") {
    REQUIRE(s.feed(peer_attach("in", 0, role::sender)));
    const auto* a = s.find<link_attached>();
    REQUIRE(a != nullptr);
    const link_id l = a->link;
    (void)s.take();
    auto r = s.conn.detach(l, true, bad_error(kv));
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::invalid_argument);
    s.collect();
    CHECK(s.take().empty());
    REQUIRE(s.conn.detach(l, true, amqp::error{symbol_view{symbol::internal_error}, "good", {}}));
    s.collect();
    CHECK(s.take_names() == names{"attach", "detach"});
  }
  auto d = s.last<amqp::detach>();
  REQUIRE(d);
  REQUIRE(d->error);
  CHECK(d->error->description == std::optional<std::string_view>("good"));
}

TEST_CASE("engine: §2.7.3 an attach whose values cannot be sent is refused, not sent without "
          "them") {
  const unencodable u;
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s);
  (void)s.take();
  SUBCASE("our attach") {
    link_options bad = sender_opts();
    SUBCASE("properties without an encoding") {
      const value kv[2] = {value(symbol_view{"k"}), u.get()};
      bad.properties = value::map(kv);
      auto r = s.conn.attach(ssn, bad);
      REQUIRE_FALSE(r);
      CHECK(r.error() == errc::invalid_argument);
    }
    SUBCASE("capabilities that are not symbols") {
      bad.offered_capabilities = value("not a symbol");
      auto r = s.conn.attach(ssn, bad);
      REQUIRE_FALSE(r);
      CHECK(r.error() == errc::invalid_argument);
    }
    SUBCASE("a source filter without an encoding") {
      bad.source->filter = u.get();
      auto r = s.conn.attach(ssn, bad);
      REQUIRE_FALSE(r);
      CHECK(r.error() == errc::invalid_argument);
    }
    SUBCASE("above the peer's max-frame-size") {
      const std::string address(70'000, 'a');
      bad.target->address = address;
      auto r = s.conn.attach(ssn, bad);
      REQUIRE_FALSE(r);
      CHECK(r.error() == errc::frame_too_large);
    }
    s.collect();
    CHECK(s.take().empty());
    // No link was made and no handle taken: the next attach is handle 0.
    auto l = s.conn.attach(ssn, sender_opts());
    REQUIRE(l);
    s.collect();
    auto a = s.last<amqp::attach>();
    REQUIRE(a);
    CHECK(a->handle == 0);
    CHECK(s.take_names() == names{"attach"});
  }
  SUBCASE("our answer to the peer's attach") {
    REQUIRE(s.feed(peer_attach("in", 0, role::sender)));
    const auto* pa = s.find<link_attached>();
    REQUIRE(pa != nullptr);
    const link_id l = pa->link;
    (void)s.take();
    link_options bad;
    bad.role = role::receiver;
    const value kv[2] = {value(symbol_view{"k"}), u.get()};
    bad.properties = value::map(kv);
    auto r = s.conn.attach(l, bad);
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::invalid_argument);
    s.collect();
    CHECK(s.take().empty());
    CHECK(s.conn.state(l)->local == endpoint_status::uninit);
    link_options good;
    good.role = role::receiver;
    REQUIRE(s.conn.attach(l, good));
    s.collect();
    CHECK(s.take_names() == names{"attach"});
  }
}

TEST_CASE("engine: §2.7.6 a disposition whose state cannot be sent is refused, the delivery "
          "stays unsettled") {
  const unencodable u;
  const value kv[2] = {value(symbol_view{"k"}), u.get()};
  frame_script s({}, connection_role::client);
  auto ssn = open_session(s);
  link_options ro;
  ro.name = "rx";
  ro.role = role::receiver;
  ro.source = source{};
  ro.target = target{};
  auto l = attach_link(s, ssn, ro, 0);
  REQUIRE(s.conn.flow(l, 10));
  const std::byte tag[1] = {std::byte{1}};
  REQUIRE(s.feed(peer_transfer(0, 0, binary_view(tag)), 0, as_bytes("m")));
  const auto* d = s.find<delivery_received>();
  REQUIRE(d != nullptr);
  const delivery_id id = d->delivery;
  s.collect();
  (void)s.take();
  const rejected bad{bad_error(kv)};
  SUBCASE("settle") {
    auto r = s.conn.settle(id, bad);
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::invalid_argument);
  }
  SUBCASE("update") {
    auto r = s.conn.update(id, bad);
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::invalid_argument);
  }
  s.collect();
  CHECK(s.take().empty());
  CHECK(s.conn.unsettled(l) == 1);
  REQUIRE(s.conn.settle(id, rejected{amqp::error{symbol_view{symbol::decode_error}, "good", {}}}));
  s.collect();
  CHECK(s.take_names() == names{"disposition"});
  CHECK(s.conn.unsettled(l) == 0);
  auto disp = s.last<amqp::disposition>();
  REQUIRE(disp);
  REQUIRE(disp->state);
  REQUIRE(std::holds_alternative<rejected>(*disp->state));
}
