// Tests of the table-driven composite codecs (performatives, delivery states, termini, SASL,
// transactions): minimal encodings, round trips, errors, and bytes as other peers send them.
#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/codec.hpp"
#include "amqp/messaging.hpp"
#include "amqp/performatives.hpp"
#include "amqp/sasl.hpp"
#include "amqp/transactions.hpp"
#include "codec/composite_tables.hpp"
#include "support/hex.hpp"

using namespace amqp;
using amqp::test::from_hex;
using amqp::test::to_hex;

namespace {

// The hex of a str8/sym8 payload: length byte, then the characters.
std::string str_hex(std::string_view s) {
  std::string out = to_hex(std::as_bytes(std::span{s.data(), s.size()}));
  return to_hex(std::array{std::byte(s.size())}) + out;
}

// Hex text without the spaces used to group it for the reader.
std::string h(std::string_view hex) {
  return to_hex(from_hex(hex));
}

// Encodes `x`, checking encoded_size and the buffer_too_small error on the way.
template <class T> std::string enc(const T& x) {
  auto n = encoded_size(x);
  REQUIRE_MESSAGE(n.has_value(), n.error().message());
  std::vector<std::byte> out(*n);
  auto w = encode(x, out);
  REQUIRE(w.has_value());
  CHECK(*w == *n);
  std::vector<std::byte> small(*n - 1);
  auto e = encode(x, small);
  REQUIRE_FALSE(e.has_value());
  CHECK(e.error() == errc::buffer_too_small);
  return to_hex(out);
}

// Decodes a T from `bytes`, which must outlive the result (its views point into them).
template <class T> result<T> dec(const std::vector<std::byte>& bytes) {
  auto v = decode_whole(bytes);
  REQUIRE_MESSAGE(v.has_value(), v.error().message());
  T out{};
  auto r = decode(*v, out);
  if (!r) {
    return r.error();
  }
  return out;
}

// The error of decoding a T from `hex`.
template <class T> std::error_code dec_err(std::string_view hex) {
  auto bytes = from_hex(hex);
  auto r = dec<T>(bytes);
  REQUIRE_FALSE(r.has_value());
  return r.error();
}

// Field-by-field equality through the tables (binary_view and symbols have no operator==).
template <class M> bool same(const M& a, const M& b) {
  if constexpr (detail::is_optional<M>::value) {
    return a.has_value() == b.has_value() && (!a || same(*a, *b));
  } else if constexpr (detail::is_variant<M>::value) {
    return a.index() == b.index() && std::visit(
                                         [&](const auto& x) {
                                           using X = std::remove_cvref_t<decltype(x)>;
                                           return same(x, std::get<X>(b));
                                         },
                                         a);
  } else if constexpr (detail::composite<M>) {
    return std::apply([&](const auto&... f) { return (same(a.*(f.member), b.*(f.member)) && ...); },
                      detail::composite_traits<M>::fields);
  } else if constexpr (std::same_as<M, binary_view>) {
    return std::ranges::equal(a, b);
  } else if constexpr (std::same_as<M, symbols>) {
    return a.as_value() == b.as_value();
  } else {
    return a == b;
  }
}

// encode, decode, compare; and the decoded struct re-encodes to the same bytes.
template <class T> void round_trip(const T& x) {
  auto hex = enc(x);
  auto bytes = from_hex(hex);
  auto y = dec<T>(bytes);
  REQUIRE_MESSAGE(y.has_value(), y.error().message());
  CHECK(same(x, *y));
  CHECK(enc(*y) == hex);
}

// Test data with static storage: values and symbols do not own what they point to.
const std::array<std::byte, 4> tag_bytes{std::byte{0xde}, std::byte{0xad}, std::byte{0xbe},
                                         std::byte{0xef}};
const binary_view tag{tag_bytes};
const std::array<std::byte, 3> txn_bytes{std::byte{1}, std::byte{2}, std::byte{3}};
const binary_view txn{txn_bytes};
const value cap_items[] = {value{symbol_view{"cap-a"}}, value{symbol_view{"cap-b"}}};
const symbols caps{value::array(type::symbol, cap_items)};
const symbols one_cap{value{symbol_view{"single"}}};
const value prop_items[] = {value{symbol_view{"key"}}, value{"val"}, value{symbol_view{"n"}},
                            value{42U}};
const value props = value::map(prop_items);
const value accepted_pair[] = {value{std::uint64_t{0x24}}, value::list({})};
const value unsettled_items[] = {value{tag}, value::described(accepted_pair)};
const value unsettled = value::map(unsettled_items);

error full_error() {
  return {symbol_view{symbol::not_found}, "gone", props};
}

source full_source() {
  return {"queue",
          terminus_durability::unsettled_state,
          terminus::never,
          60,
          true,
          props,
          terminus::move,
          props,
          modified{true, false, props},
          caps,
          one_cap};
}

target full_target() {
  return {"queue", terminus_durability::configuration, terminus::link_detach, 5, true, props, caps};
}

} // namespace

TEST_CASE("composite: field-less composites and all-default values encode as list0") {
  CHECK(enc(accepted{}) == "00532445");
  CHECK(enc(released{}) == "00532645");
  CHECK(enc(rejected{}) == "00532545");
  CHECK(enc(modified{}) == "00532745");
  CHECK(enc(source{}) == "00532845");
  CHECK(enc(target{}) == "00532945");
  CHECK(enc(delete_on_close{}) == "00532b45");
  CHECK(enc(delete_on_no_links{}) == "00532c45");
  CHECK(enc(delete_on_no_messages{}) == "00532d45");
  CHECK(enc(delete_on_no_links_or_messages{}) == "00532e45");
  CHECK(enc(coordinator{}) == "00533045");
  CHECK(enc(declare{}) == "00533145");
  CHECK(enc(amqp::end{}) == "00531745");
  CHECK(enc(amqp::close{}) == "00531845");
}

TEST_CASE("composite: defaults are the spec's") {
  amqp::open o;
  CHECK(o.max_frame_size == 4294967295U);
  CHECK(o.channel_max == 65535);
  CHECK(amqp::begin{}.handle_max == 4294967295U);
  attach a;
  CHECK(a.snd_settle_mode == sender_settle_mode::mixed);
  CHECK(a.rcv_settle_mode == receiver_settle_mode::first);
  CHECK_FALSE(a.incomplete_unsettled);
  source s;
  CHECK(s.durable == terminus_durability::none);
  CHECK(s.expiry_policy == terminus::session_end);
  CHECK(s.timeout == 0U);
  CHECK_FALSE(s.dynamic);
  CHECK_FALSE(flow{}.drain);
  CHECK_FALSE(flow{}.echo);
  CHECK_FALSE(transfer{}.more);
  CHECK_FALSE(detach{}.closed);
  CHECK_FALSE(disposition{}.settled);
}

TEST_CASE("composite: mandatory fields only, trailing defaults trimmed") {
  // remote-channel null, next-outgoing-id smalluint, incoming-window uint, outgoing-window uint0.
  CHECK(enc(amqp::begin{.next_outgoing_id = 1, .incoming_window = 2147483647}) ==
        "005311c00a04405201707fffffff43");
  CHECK(enc(amqp::open{.container_id = "c"}) == "005310c00401a10163");
  // A field set to its default value is not written either.
  CHECK(enc(amqp::open{.container_id = "c", .max_frame_size = 4294967295}) == "005310c00401a10163");
  CHECK(enc(attach{.name = "l", .role = role::receiver}) == "005312c00603a1016c4341");
  // Mandatory fields are written even when zero.
  CHECK(enc(received{}) == "005323c003024344");
  CHECK(enc(sasl_outcome{}) == "005344c003015000");
  CHECK(enc(declared{.txn_id = txn}) == "005333c00601a003010203");
}

TEST_CASE("composite: default-valued fields before a set one are written as null") {
  CHECK(enc(amqp::open{.container_id = "c", .channel_max = 100}) == "005310c00904a101634040600064");
  CHECK(enc(amqp::open{.container_id = "c", .max_frame_size = 512}) ==
        "005310c00a03a10163407000000200");
  CHECK(enc(attach{.name = "l",
                   .role = role::receiver,
                   .rcv_settle_mode = receiver_settle_mode::second}) ==
        "005312c00905a1016c4341405001");
  CHECK(enc(source{.expiry_policy = terminus::never}) == "005328c00a034040a3056e65766572");
}

TEST_CASE("composite: round trip of fully populated values") {
  SUBCASE("open") {
    round_trip(
        amqp::open{"container", "host", 65536, 7, 30000, one_cap, caps, caps, one_cap, props});
  }
  SUBCASE("begin") {
    round_trip(amqp::begin{3, 100, 5000, 6000, 255, caps, one_cap, props});
  }
  SUBCASE("attach with a target") {
    round_trip(attach{"link", 7, role::receiver, sender_settle_mode::settled,
                      receiver_settle_mode::second, full_source(), attach_target{full_target()},
                      unsettled, true, 9, std::uint64_t{1} << 40, caps, one_cap, props});
  }
  SUBCASE("attach with a coordinator") {
    attach a{.name = "txn", .role = role::sender};
    a.target = coordinator{caps};
    round_trip(a);
  }
  SUBCASE("flow") {
    round_trip(flow{1, 2, 3, 4, 5, 6, 7, 8, true, true, props});
  }
  SUBCASE("transfer") {
    transfer t{1,  2,    tag,  0x80013700, false, true, receiver_settle_mode::second,
               {}, true, true, true};
    SUBCASE("received") {
      t.state = received{1, 1000};
    }
    SUBCASE("accepted") {
      t.state = accepted{};
    }
    SUBCASE("rejected") {
      t.state = rejected{full_error()};
    }
    SUBCASE("released") {
      t.state = released{};
    }
    SUBCASE("modified") {
      t.state = modified{true, false, props};
    }
    SUBCASE("declared") {
      t.state = declared{txn};
    }
    SUBCASE("transactional-state") {
      t.state = transactional_state{txn, rejected{full_error()}};
    }
    round_trip(t);
  }
  SUBCASE("disposition") {
    round_trip(disposition{role::receiver, 10, 20, true, modified{true, true, props}, true});
  }
  SUBCASE("detach") {
    round_trip(detach{3, true, full_error()});
  }
  SUBCASE("end") {
    round_trip(amqp::end{full_error()});
  }
  SUBCASE("close") {
    round_trip(amqp::close{full_error()});
  }
  SUBCASE("error") {
    round_trip(full_error());
  }
  SUBCASE("received") {
    round_trip(received{4, std::uint64_t{1} << 33});
  }
  SUBCASE("rejected") {
    round_trip(rejected{full_error()});
  }
  SUBCASE("modified") {
    round_trip(modified{false, true, props});
  }
  SUBCASE("source") {
    round_trip(full_source());
  }
  SUBCASE("target") {
    round_trip(full_target());
  }
  SUBCASE("sasl-mechanisms") {
    round_trip(sasl_mechanisms{caps});
  }
  SUBCASE("sasl-init") {
    round_trip(sasl_init{symbol_view{"PLAIN"}, tag, "host"});
  }
  SUBCASE("sasl-challenge") {
    round_trip(sasl_challenge{tag});
  }
  SUBCASE("sasl-response") {
    round_trip(sasl_response{tag});
  }
  SUBCASE("sasl-outcome") {
    round_trip(sasl_outcome{sasl_code::sys_temp, tag});
  }
  SUBCASE("coordinator") {
    round_trip(coordinator{one_cap});
  }
  SUBCASE("declare") {
    round_trip(declare{value{txn}});
  }
  SUBCASE("discharge") {
    round_trip(discharge{txn, true});
  }
  SUBCASE("declared") {
    round_trip(declared{txn});
  }
  SUBCASE("transactional-state") {
    round_trip(transactional_state{txn, declared{txn}});
  }
  SUBCASE("lifetime policies") {
    round_trip(delete_on_close{});
    round_trip(delete_on_no_links{});
    round_trip(delete_on_no_messages{});
    round_trip(delete_on_no_links_or_messages{});
  }
}

TEST_CASE("composite: list32 when the fields exceed 254 bytes") {
  std::string id(300, 'x');
  auto hex = enc(amqp::open{.container_id = id});
  // list32: size = 4 (count) + 5 (str32 constructor and size) + 300 = 0x135, count 1.
  CHECK(hex.substr(0, 36) == "005310d00000013500000001b10000012c78");
  round_trip(amqp::open{.container_id = id, .properties = props});
}

TEST_CASE("composite: mandatory field missing") {
  CHECK(dec_err<amqp::begin>("00531145") == errc::missing_field);
  CHECK(dec_err<amqp::begin>("005311c00904 40 40 707fffffff 43") == errc::missing_field);
  // A list shorter than the mandatory fields.
  CHECK(dec_err<amqp::begin>("005311c00903405201707fffffff") == errc::missing_field);
  CHECK(dec_err<attach>("005312c00603a1016c4340") == errc::missing_field);
  CHECK(dec_err<error>("00531dc0020140") == errc::missing_field);
  // In a nested composite: an error without a condition inside a close.
  CHECK(dec_err<amqp::close>("005318c0050100531d45") == errc::missing_field);
  CHECK(dec_err<received>("005323c0020143") == errc::missing_field);
  CHECK(dec_err<sasl_mechanisms>("00534045") == errc::missing_field);
  CHECK(dec_err<sasl_init>("00534145") == errc::missing_field);
  CHECK(dec_err<sasl_outcome>("00534445") == errc::missing_field);
  CHECK(dec_err<declared>("00533345") == errc::missing_field);
  CHECK(dec_err<discharge>("00533245") == errc::missing_field);
  CHECK(dec_err<transactional_state>("00533445") == errc::missing_field);
}

TEST_CASE("composite: field of the wrong type") {
  // next-outgoing-id as a string.
  CHECK(dec_err<amqp::begin>("005311c00b0440a10178707fffffff43") == errc::type_mismatch);
  // remote-channel 65536 does not fit a ushort.
  CHECK(dec_err<amqp::begin>("005311c00e0470000100005201707fffffff43") == errc::type_mismatch);
  // role as a ubyte.
  CHECK(dec_err<attach>("005312c00703a1016c435001") == errc::type_mismatch);
  // container-id as a symbol.
  CHECK(dec_err<amqp::open>("005310c00401a30163") == errc::type_mismatch);
  // drain as a uint.
  CHECK(dec_err<flow>("005313c00b09434343434040404052 01") == errc::type_mismatch);
  // delivery-tag as a string.
  CHECK(dec_err<transfer>("005314c006034340a10178") == errc::type_mismatch);
  // state not a described value.
  CHECK(dec_err<transfer>("005314c009084340404040404043") == errc::type_mismatch);
  // sasl-server-mechanisms as an array of strings.
  CHECK(dec_err<sasl_mechanisms>("005340c00701e00401a10141") == errc::type_mismatch);
  // The described value is not a list.
  CHECK(dec_err<amqp::begin>("00531140") == errc::type_mismatch);
  CHECK(dec_err<amqp::begin>("005311c10100") == errc::type_mismatch);
  // Not a described value at all.
  CHECK(dec_err<amqp::begin>("45") == errc::type_mismatch);
}

TEST_CASE("composite: wrong descriptor") {
  CHECK(dec_err<amqp::begin>("00531045") == errc::unexpected_descriptor);
  CHECK(dec_err<accepted>("00532645") == errc::unexpected_descriptor);
  CHECK(dec_err<amqp::open>("00a3" + str_hex("amqp:begin:list") + "45") ==
        errc::unexpected_descriptor);
  // A descriptor that is neither a ulong nor a symbol.
  CHECK(dec_err<accepted>("00a1" + str_hex("amqp:accepted:list") + "45") ==
        errc::unexpected_descriptor);
  // In a field: attach.target holding a source; rejected.error holding an accepted.
  CHECK(dec_err<attach>("005312c00d07a1016c434140404000532845") == errc::unexpected_descriptor);
  CHECK(dec_err<rejected>("005325c0050100532445") == errc::unexpected_descriptor);
}

TEST_CASE("composite: symbolic and 8-byte ulong descriptors") {
  auto b = from_hex("00a3" + str_hex("amqp:begin:list") + "c00a044052017007ffffff43");
  auto r = dec<amqp::begin>(b);
  REQUIRE(r.has_value());
  CHECK(r->next_outgoing_id == 1);
  CHECK(r->incoming_window == 0x07ffffff);
  auto a = from_hex("00a3" + str_hex("amqp:accepted:list") + "45");
  CHECK(dec<accepted>(a).has_value());
  auto o = from_hex("00800000000000000010c00401a10163");
  auto ro = dec<amqp::open>(o);
  REQUIRE(ro.has_value());
  CHECK(ro->container_id == "c");
}

TEST_CASE("composite: unknown trailing fields are ignored") {
  CHECK(dec<accepted>(from_hex("005324c0020140")).has_value());
  auto extra = from_hex("005324c003015207");
  CHECK(dec<accepted>(extra).has_value());
  auto b = from_hex("005311c01109405201707fffffff4340404040a10178");
  auto r = dec<amqp::begin>(b);
  REQUIRE(r.has_value());
  CHECK(r->next_outgoing_id == 1);
  CHECK(r->handle_max == 4294967295U);
  auto e = from_hex("00531dc00b04a30178a1017940a10178");
  auto re = dec<error>(e);
  REQUIRE(re.has_value());
  CHECK(re->condition.str == "x");
  CHECK(re->description == "y");
}

TEST_CASE("composite: list32 and non-smallest encodings from other implementations") {
  SUBCASE("open as list32") {
    auto b = from_hex("005310d00000000800000002a1016340");
    auto r = dec<amqp::open>(b);
    REQUIRE(r.has_value());
    CHECK(r->container_id == "c");
    CHECK_FALSE(r->hostname.has_value());
    CHECK(enc(*r) == "005310c00401a10163");
  }
  SUBCASE("flow as list32") {
    auto b = from_hex("005313d0000000160000000943707fffffff43707fffffff4343520a4042");
    auto r = dec<flow>(b);
    REQUIRE_MESSAGE(r.has_value(), r.error().message());
    CHECK(r->link_credit == 10U);
    CHECK(r->incoming_window == 2147483647U);
  }
  SUBCASE("transfer with full-width uints") {
    auto b = from_hex("005314d00000001600000004 7000000000 7000000007 a00137 7000000000");
    auto r = dec<transfer>(b);
    REQUIRE(r.has_value());
    CHECK(r->handle == 0);
    CHECK(r->delivery_id == 7U);
    REQUIRE(r->delivery_tag.has_value());
    CHECK(to_hex(*r->delivery_tag) == "37");
    CHECK(r->message_format == 0U);
    CHECK(enc(*r) == "005314c00804435207a0013743");
  }
  SUBCASE("boolean as 0x56") {
    auto b = from_hex("005312c00703a1016c435601");
    auto r = dec<attach>(b);
    REQUIRE(r.has_value());
    CHECK(r->role == role::receiver);
  }
}

// Frames as Qpid Proton-C sends them (from its protocol traces), computed by hand from the
// spec: Proton writes some default-valued fields (drain=false, snd-settle-mode=2,
// incomplete-unsettled=false) that we leave null or trim.
TEST_CASE("composite: frames as Proton sends them") {
  SUBCASE("transfer [handle=0, delivery-id=0, delivery-tag=b\"0\", message-format=0]") {
    std::string hex = h("005314c00704 43 43 a00130 43");
    auto b = from_hex(hex);
    auto r = dec<transfer>(b);
    REQUIRE(r.has_value());
    CHECK(r->handle == 0);
    CHECK(r->delivery_id == 0U);
    CHECK(to_hex(*r->delivery_tag) == "30");
    CHECK(r->message_format == 0U);
    CHECK_FALSE(r->settled.has_value());
    CHECK_FALSE(r->more);
    CHECK_FALSE(r->state.has_value());
    std::array<std::byte, 1> t0{std::byte{'0'}};
    CHECK(enc(transfer{.handle = 0, .delivery_id = 0, .delivery_tag = t0, .message_format = 0}) ==
          hex);
  }
  SUBCASE("flow [next-incoming-id=0, incoming-window=2147483647, next-outgoing-id=0, "
          "outgoing-window=2147483647, handle=0, delivery-count=0, link-credit=10, drain=false]") {
    // available (null) comes between link-credit and drain.
    auto b = from_hex("005313c01309 43 707fffffff 43 707fffffff 43 43 520a 40 42");
    auto r = dec<flow>(b);
    REQUIRE(r.has_value());
    CHECK(r->next_incoming_id == 0U);
    CHECK(r->incoming_window == 2147483647U);
    CHECK(r->next_outgoing_id == 0U);
    CHECK(r->outgoing_window == 2147483647U);
    CHECK(r->handle == 0U);
    CHECK(r->delivery_count == 0U);
    CHECK(r->link_credit == 10U);
    CHECK_FALSE(r->available.has_value());
    CHECK_FALSE(r->drain);
    // We trim drain=false.
    CHECK(enc(*r) == h("005313c01107 43 707fffffff 43 707fffffff 43 43 520a"));
  }
  SUBCASE("attach [name=\"sender\", handle=0, role=false, snd-settle-mode=2, rcv-settle-mode=0, "
          "source=@source [address=\"q\", durable=0, timeout=0, dynamic=false], target=@target "
          "[...], incomplete-unsettled=false, initial-delivery-count=0, max-message-size=0]") {
    std::string term = "c00805a1017143404342"; // [address="q", 0, null, 0, false]
    auto b = from_hex("005312c02d0b a106 73656e646572 43 42 5002 5000 005328" + term + "005329" +
                      term + "40 42 43 44");
    auto r = dec<attach>(b);
    REQUIRE_MESSAGE(r.has_value(), r.error().message());
    CHECK(r->name == "sender");
    CHECK(r->role == role::sender);
    CHECK(r->snd_settle_mode == sender_settle_mode::mixed);
    CHECK(r->rcv_settle_mode == receiver_settle_mode::first);
    REQUIRE(r->source.has_value());
    CHECK(r->source->address == "q");
    CHECK(r->source->expiry_policy == terminus::session_end);
    REQUIRE(r->target.has_value());
    REQUIRE(std::holds_alternative<target>(*r->target));
    CHECK(std::get<target>(*r->target).address == "q");
    CHECK(r->initial_delivery_count == 0U);
    CHECK(r->max_message_size == 0U);
    CHECK(enc(*r) == h("005312c0230b a106 73656e646572 43 42 40 40 005328c00401a10171 "
                       "005329c00401a10171 40 40 43 44"));
  }
  SUBCASE("disposition [role=true, first=0, last=0, settled=true, state=@accepted []]") {
    std::string hex = h("005315c00905 41 43 43 41 00532445");
    auto b = from_hex(hex);
    auto r = dec<disposition>(b);
    REQUIRE(r.has_value());
    CHECK(r->role == role::receiver);
    CHECK(r->last == 0U);
    CHECK(r->settled);
    REQUIRE(r->state.has_value());
    CHECK(std::holds_alternative<accepted>(*r->state));
    CHECK(enc(*r) == hex);
  }
  SUBCASE("sasl-mechanisms [sasl-server-mechanisms=@PN_SYMBOL[:PLAIN, :ANONYMOUS]]") {
    auto b = from_hex("005340c01501e01202a305504c41494e09414e4f4e594d4f5553");
    auto r = dec<sasl_mechanisms>(b);
    REQUIRE(r.has_value());
    CHECK(r->sasl_server_mechanisms.size() == 2);
    CHECK(r->sasl_server_mechanisms.contains("ANONYMOUS"));
    auto one = from_hex("005340c00801a305504c41494e");
    auto r1 = dec<sasl_mechanisms>(one);
    REQUIRE(r1.has_value());
    CHECK(r1->sasl_server_mechanisms.contains("PLAIN"));
  }
  SUBCASE("sasl-init [mechanism=:PLAIN, initial-response=b\"\\0u\\0p\", hostname=\"h\"]") {
    std::string hex = h("005341c01103 a305504c41494e a00400750070 a10168");
    auto b = from_hex(hex);
    auto r = dec<sasl_init>(b);
    REQUIRE(r.has_value());
    CHECK(r->mechanism.str == "PLAIN");
    CHECK(to_hex(*r->initial_response) == "00750070");
    CHECK(r->hostname == "h");
    CHECK(enc(*r) == hex);
  }
  SUBCASE("close [error=@error [condition=:\"amqp:connection:forced\", description=\"bye\"]]") {
    std::string err = "00531dc01e02a3" + str_hex("amqp:connection:forced") + "a103627965";
    auto b = from_hex("005318c02401" + err);
    auto r = dec<amqp::close>(b);
    REQUIRE_MESSAGE(r.has_value(), r.error().message());
    REQUIRE(r->error.has_value());
    CHECK(r->error->condition.str == symbol::connection_forced);
    CHECK(r->error->description == "bye");
    CHECK(enc(*r) == "005318c02401" + err);
  }
}

TEST_CASE("composite: delivery states by descriptor, unknown ones kept") {
  auto state_of = [](std::string_view hex, std::vector<std::byte>& store) {
    store = from_hex(hex);
    auto v = decode_whole(store);
    REQUIRE(v.has_value());
    delivery_state s;
    auto r = decode(*v, s);
    REQUIRE_MESSAGE(r.has_value(), r.error().message());
    return s;
  };
  std::vector<std::byte> b;
  CHECK(std::holds_alternative<accepted>(state_of("00532445", b)));
  CHECK(std::holds_alternative<released>(state_of("00532645", b)));
  CHECK(std::holds_alternative<received>(state_of("005323c003024344", b)));
  CHECK(std::holds_alternative<modified>(state_of("00532745", b)));
  CHECK(std::holds_alternative<rejected>(state_of("00532545", b)));
  CHECK(std::holds_alternative<declared>(state_of("005333c00601a003010203", b)));
  auto ts = state_of("005334c00a02a003010203 00532445", b);
  REQUIRE(std::holds_alternative<transactional_state>(ts));
  CHECK(std::holds_alternative<accepted>(*std::get<transactional_state>(ts).outcome));
  // Symbolic descriptors work for the alternatives too.
  CHECK(
      std::holds_alternative<accepted>(state_of("00a3" + str_hex("amqp:accepted:list") + "45", b)));
  // Unknown outcomes (AMQP 1.0 §3.4) are kept, symbolic or numeric.
  auto u = state_of("00a3" + str_hex("x:state") + "45", b);
  REQUIRE(std::holds_alternative<value>(u));
  CHECK(std::get<value>(u).descriptor().as_symbol() == "x:state");
  auto n = state_of("00800000013700000001c00201 40", b);
  REQUIRE(std::holds_alternative<value>(n));
  CHECK(std::get<value>(n).descriptor_code() == 0x0000013700000001U);
  // A known descriptor with a bad body is an error, not an unknown state.
  delivery_state s;
  auto bad = from_hex("005323c0020143");
  CHECK(decode(*decode_whole(bad), s).error() == errc::missing_field);
  auto notdesc = from_hex("43");
  CHECK(decode(*decode_whole(notdesc), s).error() == errc::type_mismatch);
  outcome o;
  auto oc = from_hex("00532745");
  REQUIRE(decode(*decode_whole(oc), o).has_value());
  CHECK(std::holds_alternative<modified>(o));
}

TEST_CASE("composite: state_kind names every delivery state") {
  CHECK(kind_of(std::optional<delivery_state>{}) == state_kind::none);
  CHECK(kind_of(delivery_state{received{}}) == state_kind::received);
  CHECK(kind_of(delivery_state{accepted{}}) == state_kind::accepted);
  CHECK(kind_of(delivery_state{rejected{}}) == state_kind::rejected);
  CHECK(kind_of(delivery_state{released{}}) == state_kind::released);
  CHECK(kind_of(delivery_state{modified{}}) == state_kind::modified);
  CHECK(kind_of(delivery_state{declared{}}) == state_kind::declared);
  CHECK(kind_of(delivery_state{transactional_state{}}) == state_kind::transactional);
  CHECK(kind_of(delivery_state{value{}}) == state_kind::other);
  CHECK(kind_of(outcome{released{}}) == state_kind::released);
  CHECK(name(state_kind::transactional) == "transactional-state");
  CHECK(name(state_kind::accepted) == "accepted");
  CHECK(is_outcome(state_kind::modified));
  CHECK(is_outcome(state_kind::other));
  CHECK_FALSE(is_outcome(state_kind::received));
  CHECK_FALSE(is_outcome(state_kind::none));
}

TEST_CASE("composite: an unknown state in a disposition re-encodes byte for byte") {
  std::string hex = h("005315c01005 41 43 40 41 00a3" + str_hex("x:state") + "45");
  auto b = from_hex(hex);
  auto r = dec<disposition>(b);
  REQUIRE(r.has_value());
  REQUIRE(r->state.has_value());
  CHECK(std::holds_alternative<value>(*r->state));
  CHECK(enc(*r) == hex);
  // Also in a source's default-outcome (after eight null fields).
  std::string src = h("005328c01409 4040404040404040 00a3" + str_hex("x:state") + "45");
  auto sb = from_hex(src);
  auto rs = dec<source>(sb);
  REQUIRE(rs.has_value());
  REQUIRE(rs->default_outcome.has_value());
  CHECK(std::holds_alternative<value>(*rs->default_outcome));
  CHECK(enc(*rs) == src);
}

TEST_CASE("composite: attach target is a target or a coordinator") {
  std::string coord = "005330c01a01a3" + str_hex("amqp:local-transactions");
  std::string hex = h("005312c02a07a103747831 43 42 40 40 40" + coord);
  auto b = from_hex(hex);
  auto r = dec<attach>(b);
  REQUIRE_MESSAGE(r.has_value(), r.error().message());
  REQUIRE(r->target.has_value());
  REQUIRE(std::holds_alternative<coordinator>(*r->target));
  CHECK(std::get<coordinator>(*r->target).capabilities.contains("amqp:local-transactions"));
  CHECK(enc(*r) == hex);
}

TEST_CASE("composite: performative and SASL frame dispatch") {
  const std::pair<std::string_view, std::string_view> frames[] = {
      {"open", "005310c00401a10163"},
      {"begin", "005311c00a044052017007ffffff43"},
      {"attach", "005312c00603a1016c4341"},
      {"flow", "005313c00504 43434343"},
      {"transfer", "005314c0020143"},
      {"disposition", "005315c003024143"},
      {"detach", "005316c0020143"},
      {"end", "00531745"},
      {"close", "00531845"},
  };
  std::size_t index = 0;
  for (const auto& frame : frames) {
    std::string_view nm = frame.first;
    std::string_view hex = frame.second;
    CAPTURE(nm);
    auto b = from_hex(hex);
    auto v = decode_whole(b);
    REQUIRE(v.has_value());
    auto p = decode_performative(*v);
    REQUIRE_MESSAGE(p.has_value(), p.error().message());
    CHECK(p->index() == index++);
    CHECK(name(*p) == nm);
    auto n = encoded_size(*p);
    REQUIRE(n.has_value());
    std::vector<std::byte> out(*n);
    REQUIRE(encode(*p, out).has_value());
    CHECK(to_hex(out) == h(hex));
  }
  auto acc = from_hex("00532445");
  CHECK(decode_performative(*decode_whole(acc)).error() == errc::unexpected_descriptor);
  auto init = from_hex("005341c00801a305504c41494e");
  CHECK(decode_performative(*decode_whole(init)).error() == errc::unexpected_descriptor);
  auto plain = from_hex("45");
  CHECK(decode_performative(*decode_whole(plain)).error() == errc::type_mismatch);
  auto bad_begin = from_hex("00531145");
  CHECK(decode_performative(*decode_whole(bad_begin)).error() == errc::missing_field);

  auto f = decode_sasl_frame(*decode_whole(init));
  REQUIRE(f.has_value());
  CHECK(name(*f) == "sasl-init");
  CHECK(std::get<sasl_init>(*f).mechanism.str == "PLAIN");
  auto outcome_bytes = from_hex("005344c003015001");
  auto o = decode_sasl_frame(*decode_whole(outcome_bytes));
  REQUIRE(o.has_value());
  CHECK(name(*o) == "sasl-outcome");
  CHECK(std::get<sasl_outcome>(*o).code == sasl_code::auth);
  auto n = encoded_size(*o);
  REQUIRE(n.has_value());
  CHECK(*n == 8);
  CHECK(decode_sasl_frame(*decode_whole(acc)).error() == errc::unexpected_descriptor);
  auto open_bytes = from_hex("005310c00401a10163");
  CHECK(decode_sasl_frame(*decode_whole(open_bytes)).error() == errc::unexpected_descriptor);
}

TEST_CASE("composite: a multiple symbol field holding another type is refused") {
  amqp::value bad{"not a symbol"};
  amqp::open o;
  o.container_id = "c";
  o.offered_capabilities = amqp::symbols{bad};
  CHECK(amqp::encoded_size(o).error() == amqp::errc::invalid_argument);
  amqp::value caps[] = {amqp::value{amqp::symbol_view{"a"}}, amqp::value{amqp::symbol_view{"b"}}};
  o.offered_capabilities = amqp::symbols{amqp::value::array(amqp::type::symbol, caps)};
  CHECK(amqp::encoded_size(o).has_value());
}
