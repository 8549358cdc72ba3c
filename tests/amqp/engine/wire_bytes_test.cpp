// Engine: the exact bytes of the frames the engine writes, derived by hand from the
// encoding rules (AMQP 1.0 §1.6 primitive encodings, §2.3.1 frame layout, §2.7 performatives;
// descriptors as smallulong 0x53, the smallest encoding of each value, trailing null or
// default fields dropped, earlier defaults written as null 0x40).
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/connection.hpp"
#include "support/doctest_print.hpp"
#include "support/frame_script.hpp"
#include "support/hex.hpp"

using namespace amqp;
using namespace amqp::test;
using namespace std::chrono_literals;

TEST_CASE("engine: §2.3.1 §2.7 exact wire bytes of open, begin, attach, transfer and "
          "disposition") {
  connection_options o;
  o.container_id = "c1";
  o.limits.max_frame_size = 4096;
  o.limits.channel_max = 7;
  o.timeouts.idle_time_out = 0ms;
  frame_script s(o, connection_role::client);
  CHECK(to_hex(s.take()[0]->bytes) == "414d515000010000");

  // open: container-id "c1" (str8 a1), hostname null (40), max-frame-size 4096 (uint 70),
  // channel-max 7 (ushort 60); the rest is default and dropped. list8: size 0x0e, count 4.
  REQUIRE(s.conn.open());
  s.collect();
  auto items = s.take();
  REQUIRE(items.size() == 1);
  CHECK(to_hex(items[0]->bytes) == to_hex(from_hex("00 00 00 1b 02 00 00 00"
                                                   "00 53 10 c0 0e 04"
                                                   "a1 02 63 31"
                                                   "40"
                                                   "70 00 00 10 00"
                                                   "60 00 07")));

  // begin: remote-channel null, next-outgoing-id 0 (uint0 43), incoming-window 16
  // (smalluint 52), outgoing-window 2^31-1 (uint 70), handle-max 7 (smalluint 52).
  session_options so;
  so.incoming_window = 16;
  so.handle_max = 7;
  auto ssn = s.conn.begin(so);
  REQUIRE(ssn);
  s.collect();
  items = s.take();
  REQUIRE(items.size() == 1);
  CHECK(to_hex(items[0]->bytes) == to_hex(from_hex("00 00 00 19 02 00 00 00"
                                                   "00 53 11 c0 0c 05"
                                                   "40 43 52 10 70 7f ff ff ff 52 07")));
  (void)s.feed_header();
  REQUIRE(s.feed(peer_open("server")));
  REQUIRE(s.feed(peer_begin(0)));
  (void)s.take();

  // attach: name "l", handle 0 (43), role sender (false 42), snd-settle-mode mixed and
  // rcv-settle-mode first (defaults: 40 40), source {address "s"} (00 53 28, list8 of 1),
  // target {address "q"} (00 53 29), unsettled null, incomplete-unsettled default (40),
  // initial-delivery-count 0 (43).
  link_options lo;
  lo.name = "l";
  lo.role = role::sender;
  lo.source = source{};
  lo.source->address = "s";
  lo.target = target{};
  lo.target->address = "q";
  auto l = s.conn.attach(*ssn, lo);
  REQUIRE(l);
  s.collect();
  items = s.take();
  REQUIRE(items.size() == 1);
  CHECK(to_hex(items[0]->bytes) == to_hex(from_hex("00 00 00 2a 02 00 00 00"
                                                   "00 53 12 c0 1d 0a"
                                                   "a1 01 6c 43 42 40 40"
                                                   "00 53 28 c0 04 01 a1 01 73"
                                                   "00 53 29 c0 04 01 a1 01 71"
                                                   "40 40 43")));
  REQUIRE(s.feed(peer_attach("l", 0, role::receiver)));
  REQUIRE(s.feed(peer_flow(0, 0, 10)));
  (void)s.take();

  // transfer: handle 0 (43), delivery-id 0 (43), delivery-tag the 1-byte counter 0 (vbin8
  // a0 01 00), message-format 0 (43: required on a first transfer, §2.7.5); settled and
  // more are default/absent and dropped. Then the payload "hi".
  REQUIRE(s.conn.send(*l, {.payload = as_bytes("hi")}));
  s.collect();
  items = s.take();
  REQUIRE(items.size() == 1);
  CHECK(to_hex(items[0]->bytes) == to_hex(from_hex("00 00 00 16 02 00 00 00"
                                                   "00 53 14 c0 07 04 43 43 a0 01 00 43"
                                                   "68 69")));

  // A receiving link, to settle a delivery from the peer.
  link_options ro;
  ro.name = "r";
  ro.role = role::receiver;
  ro.source = source{};
  ro.source->address = "s";
  ro.target = target{};
  auto r = s.conn.attach(*ssn, ro);
  REQUIRE(r);
  s.collect();
  // attach: name "r", handle 1 (smalluint 52 01), role receiver (true 41), 40 40, source,
  // target with every field default (list0 45), unsettled, incomplete-unsettled and
  // initial-delivery-count null, max-message-size 16 MiB, the receiver's default (ulong 80).
  items = s.take();
  REQUIRE(items.size() == 1);
  CHECK(to_hex(items[0]->bytes) == to_hex(from_hex("00 00 00 2f 02 00 00 00"
                                                   "00 53 12 c0 22 0b"
                                                   "a1 01 72 52 01 41 40 40"
                                                   "00 53 28 c0 04 01 a1 01 73"
                                                   "00 53 29 45"
                                                   "40 40 40"
                                                   "80 00 00 00 00 01 00 00 00")));
  REQUIRE(s.feed(peer_attach("r", 1, role::sender)));
  REQUIRE(s.conn.flow(*r, 5));
  s.collect();
  (void)s.take();
  const std::byte tag[1] = {std::byte{0x2A}};
  REQUIRE(s.feed(peer_transfer(1, 0, binary_view(tag)), 0, as_bytes("x")));
  const auto* d = s.find<delivery_received>();
  REQUIRE(d != nullptr);
  const delivery_id id = d->delivery;
  (void)s.take();

  // disposition: role receiver (41), first 0 (43), last null (40), settled (41), state
  // accepted (00 53 24 45).
  REQUIRE(s.conn.settle(id, accepted{}));
  s.collect();
  items = s.take();
  REQUIRE(items.size() == 1);
  CHECK(to_hex(items[0]->bytes) == to_hex(from_hex("00 00 00 16 02 00 00 00"
                                                   "00 53 15 c0 09 05 41 43 40 41 00 53 24 45")));
}
