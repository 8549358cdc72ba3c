// Tests of the protocol headers (AMQP 1.0 §2.2, §5.2.1, §5.3.1): bytes, classification,
// incremental reading, and the error for a mismatch.
#include <array>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/error.hpp"
#include "frame/protocol_header.hpp"
#include "support/hex.hpp"

using namespace amqp;
using namespace amqp::detail;
using amqp::test::from_hex;
using amqp::test::to_hex;

namespace {

std::vector<std::byte> bytes_of(std::string_view s) {
  const auto b = std::as_bytes(std::span{s.data(), s.size()});
  return {b.begin(), b.end()};
}

protocol_header_info classify(std::string_view hex) {
  const auto b = from_hex(hex);
  REQUIRE(b.size() == protocol_header_size);
  return classify_protocol_header(std::span<const std::byte, protocol_header_size>(b.data(), 8));
}

} // namespace

TEST_CASE("protocol header: the three 1.0.0 headers, byte for byte") {
  // As Qpid Proton sends them (tests/vectors/frames/proton.md).
  CHECK(to_hex(protocol_header_bytes(protocol_id::amqp)) == "414d515000010000");
  CHECK(to_hex(protocol_header_bytes(protocol_id::sasl)) == "414d515003010000");
  CHECK(to_hex(protocol_header_bytes(protocol_id::tls)) == "414d515002010000");

  std::array<std::byte, 10> out{};
  auto n = write_protocol_header(protocol_id::sasl, out);
  REQUIRE(n.has_value());
  CHECK(*n == 8);
  CHECK(to_hex(std::span(out).first(8)) == "414d515003010000");
  CHECK(out[8] == std::byte{0});

  std::array<std::byte, 7> small{};
  auto e = write_protocol_header(protocol_id::amqp, small);
  REQUIRE_FALSE(e.has_value());
  CHECK(e.error() == errc::buffer_too_small);
}

TEST_CASE("protocol header: classification") {
  SUBCASE("supported") {
    CHECK(classify("414d515000010000").kind == protocol_header_kind::amqp);
    CHECK(classify("414d515003010000").kind == protocol_header_kind::sasl);
    CHECK(classify("414d515002010000").kind == protocol_header_kind::tls);
  }
  SUBCASE("unsupported protocol id or version, fields kept as received") {
    auto h = classify("414d515000000901"); // AMQP 0-9-1
    CHECK(h.kind == protocol_header_kind::unsupported);
    CHECK(h.id == 0);
    CHECK(h.major == 0);
    CHECK(h.minor == 9);
    CHECK(h.revision == 1);
    CHECK(classify("414d515001010000").kind == protocol_header_kind::unsupported);
    CHECK(classify("414d515004010000").kind == protocol_header_kind::unsupported);
    CHECK(classify("414d5150ff010000").kind == protocol_header_kind::unsupported);
    CHECK(classify("414d515000010001").kind == protocol_header_kind::unsupported);
    CHECK(classify("414d515000010100").kind == protocol_header_kind::unsupported);
    CHECK(classify("414d515000020000").kind == protocol_header_kind::unsupported);
    CHECK(classify("414d515003000000").kind == protocol_header_kind::unsupported);
  }
  SUBCASE("not AMQP") {
    CHECK(classify("474554202f204854").kind == protocol_header_kind::not_amqp); // "GET / HT"
    CHECK(classify("616d717000010000").kind == protocol_header_kind::not_amqp); // "amqp"
    CHECK(classify("414d515800010000").kind == protocol_header_kind::not_amqp); // "AMQX"
    CHECK(classify("0000000802000000").kind == protocol_header_kind::not_amqp); // a frame
  }
  CHECK(to_protocol_id(protocol_header_kind::amqp) == protocol_id::amqp);
  CHECK(to_protocol_id(protocol_header_kind::sasl) == protocol_id::sasl);
  CHECK(to_protocol_id(protocol_header_kind::tls) == protocol_id::tls);
  CHECK_FALSE(to_protocol_id(protocol_header_kind::unsupported).has_value());
  CHECK_FALSE(to_protocol_id(protocol_header_kind::not_amqp).has_value());
}

TEST_CASE("protocol header: the reader takes bytes one at a time and none past the header") {
  auto stream = from_hex("414d5150 03010000 00000010");
  protocol_header_reader r;
  for (std::size_t k = 0; k < 7; ++k) {
    CHECK(r.feed(std::span(stream).subspan(k, 1)) == 1);
    CHECK_FALSE(r.header().has_value());
  }
  CHECK(r.feed(std::span(stream).subspan(7)) == 1); // the rest is the first frame's
  REQUIRE(r.header().has_value());
  CHECK(r.header()->kind == protocol_header_kind::sasl);
  CHECK(r.feed(std::span(stream).subspan(8)) == 0); // nothing more once known

  r.reset();
  CHECK_FALSE(r.header().has_value());
  auto amqp_header = from_hex("414d5150 00010000 0000");
  CHECK(r.feed(amqp_header) == 8);
  REQUIRE(r.header().has_value());
  CHECK(r.header()->kind == protocol_header_kind::amqp);
}

TEST_CASE("protocol header: the reader recognises another protocol at its first byte") {
  protocol_header_reader r;
  const auto http = bytes_of("GET / HTTP/1.1\r\n");
  CHECK(r.feed(http) == 1);
  REQUIRE(r.header().has_value());
  CHECK(r.header()->kind == protocol_header_kind::not_amqp);

  protocol_header_reader r2;
  const auto near = bytes_of("AMQ");
  CHECK(r2.feed(near) == 3);
  CHECK_FALSE(r2.header().has_value()); // still a prefix of "AMQP"
  const auto x = bytes_of("X");
  CHECK(r2.feed(x) == 1);
  REQUIRE(r2.header().has_value());
  CHECK(r2.header()->kind == protocol_header_kind::not_amqp);

  protocol_header_reader r3;
  CHECK(r3.feed({}) == 0);
  CHECK_FALSE(r3.header().has_value());
}

TEST_CASE("protocol header: a header other than the one expected is protocol_mismatch") {
  auto expect = [](std::string_view hex, protocol_id id) {
    return expect_protocol_header(classify(hex), id);
  };
  CHECK(expect("414d515000010000", protocol_id::amqp).has_value());
  CHECK(expect("414d515003010000", protocol_id::sasl).has_value());
  CHECK(expect("414d515002010000", protocol_id::tls).has_value());
  // A server that requires SASL receives the plain AMQP header, and the reverse.
  auto r = expect("414d515000010000", protocol_id::sasl);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == errc::protocol_mismatch);
  CHECK(expect("414d515003010000", protocol_id::amqp).error() == errc::protocol_mismatch);
  CHECK(expect("414d515000000901", protocol_id::amqp).error() == errc::protocol_mismatch);
  CHECK(expect("474554202f204854", protocol_id::amqp).error() == errc::protocol_mismatch);
  // Local only: no close frame can be sent before the headers agree (§2.2).
  CHECK(to_condition_symbol(make_error_code(errc::protocol_mismatch)) == symbol::not_implemented);
  CHECK(make_error_code(errc::protocol_mismatch).message() == "unsupported protocol header");
}
