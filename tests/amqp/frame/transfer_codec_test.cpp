// The fast transfer path must agree with the generic codec: same bytes when encoding, same
// fields when decoding, and a fall-back (false) for shapes it does not handle.
#include <array>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "frame/frame.hpp"
#include "frame/transfer_codec.hpp"
#include "support/hex.hpp"

using namespace amqp;
using namespace amqp::detail;

namespace {

transfer to_transfer(const transfer_fields& f) {
  transfer t;
  t.handle = f.handle;
  t.delivery_id = f.delivery_id;
  if (f.delivery_tag) {
    t.delivery_tag = *f.delivery_tag;
  }
  t.message_format = f.message_format;
  if (f.settled) {
    t.settled = true;
  }
  t.more = f.more;
  t.aborted = f.aborted;
  return t;
}

void check_same(const transfer& a, const transfer& b) {
  CHECK(a.handle == b.handle);
  CHECK(a.delivery_id == b.delivery_id);
  REQUIRE(a.delivery_tag.has_value() == b.delivery_tag.has_value());
  if (a.delivery_tag) {
    CHECK(std::equal(a.delivery_tag->begin(), a.delivery_tag->end(), b.delivery_tag->begin(),
                     b.delivery_tag->end()));
  }
  CHECK(a.message_format == b.message_format);
  CHECK(a.settled == b.settled);
  CHECK(a.more == b.more);
  CHECK(a.rcv_settle_mode == b.rcv_settle_mode);
  CHECK(a.state.has_value() == b.state.has_value());
  CHECK(a.resume == b.resume);
  CHECK(a.aborted == b.aborted);
  CHECK(a.batchable == b.batchable);
}

} // namespace

TEST_CASE("transfer codec: fast encoding equals the generic encoding, and decodes back") {
  const std::array<std::byte, 32> tag_bytes{std::byte{1}, std::byte{2}, std::byte{3}};
  const std::vector<std::byte> payload(40, std::byte{0x5A});
  int cases = 0;
  for (std::uint32_t handle : {0U, 7U, 255U, 256U, 0xFFFFFFFFU}) {
    for (std::optional<std::uint32_t> id :
         {std::optional<std::uint32_t>{}, std::optional<std::uint32_t>{0U},
          std::optional<std::uint32_t>{200U}, std::optional<std::uint32_t>{0x12345678U}}) {
      for (int tag = 0; tag < 4; ++tag) {
        for (std::optional<std::uint32_t> fmt :
             {std::optional<std::uint32_t>{}, std::optional<std::uint32_t>{0U},
              std::optional<std::uint32_t>{0x80013700U}}) {
          for (int flags = 0; flags < 8; ++flags) {
            transfer_fields f;
            f.handle = handle;
            f.delivery_id = id;
            if (tag == 1) {
              f.delivery_tag = std::span<const std::byte>{};
            } else if (tag == 2) {
              f.delivery_tag = std::span<const std::byte>(tag_bytes.data(), 1);
            } else if (tag == 3) {
              f.delivery_tag = std::span<const std::byte>(tag_bytes);
            }
            f.message_format = fmt;
            f.settled = (flags & 1) != 0;
            f.more = (flags & 2) != 0;
            f.aborted = (flags & 4) != 0;
            const transfer t = to_transfer(f);
            std::vector<std::byte> generic;
            REQUIRE(append_frame(3, performative{t}, payload, generic));
            std::vector<std::byte> fast(8 + transfer_performative_size(f) + payload.size());
            write_transfer_frame(3, f, payload, fast);
            REQUIRE(amqp::test::to_hex(fast) == amqp::test::to_hex(generic));
            transfer back;
            std::span<const std::byte> rest;
            REQUIRE(try_decode_transfer(std::span<const std::byte>(fast).subspan(8), back, rest));
            check_same(back, t);
            CHECK(rest.size() == payload.size());
            ++cases;
          }
        }
      }
    }
  }
  CHECK(cases == 5 * 4 * 4 * 3 * 8);
}

TEST_CASE("transfer codec: other encodings decode as the generic decoder does") {
  // Fields in longer encodings than needed, explicit nulls, booleans as 0x56 xx,
  // rcv-settle-mode, resume and batchable.
  for (const char* hex : {
           "005314c00d04700000000170000000024040",
           "005314c0110b435205a001ff40560142500140414241",
           "005314c00d065201520aa002abcd43415600",
       }) {
    const auto body = amqp::test::from_hex(hex);
    transfer fast;
    std::span<const std::byte> rest;
    REQUIRE(try_decode_transfer(body, fast, rest));
    std::size_t used = 0;
    auto v = decode_value(body, used);
    REQUIRE(v);
    transfer generic;
    REQUIRE(decode(*v, generic));
    check_same(fast, generic);
    CHECK(rest.size() == body.size() - used);
  }
}

TEST_CASE("transfer codec: shapes left to the generic decoder") {
  for (const char* hex : {
           "005314d00000000600000001"
           "43",                           // list32
           "005314c0050343434053",         // a byte that is not a field encoding
           "005314c00402404040",           // a null handle (mandatory)
           "005314c009084343404040404024", // state present (0x24 stands for anything)
           "0053134500",                   // not a transfer (flow)
           "005314c0ff01",                 // list size beyond the body
           "005314c0060343434040",         // fewer bytes than the size says
           "005314c00403434343",           // a field of the wrong type (tag)
       }) {
    const auto body = amqp::test::from_hex(hex);
    transfer t;
    std::span<const std::byte> rest;
    INFO(std::string(hex));
    CHECK_FALSE(try_decode_transfer(body, t, rest));
  }
}
