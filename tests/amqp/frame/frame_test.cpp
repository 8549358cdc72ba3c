// Tests of the frame layer (AMQP 1.0 §2.3, §5.3.1): header checks and every limit, decoding,
// reassembly from any chunking without copies where possible, encoding, and the transfer
// payload fit computation. Stream-level vectors are in frame_vectors_test.cpp.
#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <memory_resource>
#include <new>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/error.hpp"
#include "frame/frame.hpp"
#include "support/hex.hpp"

using namespace amqp;
using namespace amqp::detail;
using amqp::test::from_hex;
using amqp::test::to_hex;

namespace {

// Frames exactly as Qpid Proton 0.37 sends them (tests/vectors/frames/proton.md).
const std::string proton_open = "0000002b02000000005310c01e0aa106636c69656e74a1096c6f63616c68"
                                "6f737440607fff404040404040";
const std::string proton_begin = "0000001a02000000005311c00d044043707fffffff707fffffff";
const std::string proton_transfer =
    "0000002a02000000005314c00b044343a0057461672d31430053704500537345005377a10568656c6c6f";
const std::string proton_detach = "0000001002000000005316c003024341";
const std::string proton_close = "0000000c0200000000531845";
const std::string proton_heartbeat = "0000000802000000";
const std::string proton_sasl_init =
    "0000002402010000005341c01702a309414e4f4e594d4f5553a009616e6f6e796d6f7573";
const std::string proton_sasl_outcome = "0000001002010000005344c003015000";

frame_header header(std::uint32_t size, std::uint8_t doff, std::uint8_t type,
                    std::uint16_t channel = 0) {
  return frame_header{size, doff, type, channel};
}

std::error_code check(const frame_header& h, frame_type expected = frame_type::amqp,
                      const frame_limits& limits = {}) {
  auto r = check_frame_header(h, expected, limits);
  return r ? std::error_code{} : r.error();
}

// A transfer frame on channel 0 (handle 0) of exactly `size` bytes: header, the 7-byte
// performative 00 53 14 c0 02 01 43, and payload.
std::vector<std::byte> transfer_frame(std::uint32_t size) {
  REQUIRE(size >= 15);
  std::vector<std::byte> f(size, std::byte{0xab});
  write_frame_header(header(size, 2, 0), std::span<std::byte, 8>(f.data(), 8));
  const auto perf = from_hex("005314c0020143");
  std::copy(perf.begin(), perf.end(), f.begin() + 8);
  return f;
}

// Feeds `in` whole to `r`, frame by frame, and returns the names of the frames.
std::vector<std::string> drain(frame_reader& r, std::span<const std::byte> in,
                               std::error_code* error = nullptr) {
  std::vector<std::string> out;
  while (!in.empty()) {
    auto x = r.feed(in);
    if (!x) {
      if (error != nullptr) {
        *error = x.error();
      }
      return out;
    }
    if (x->frame) {
      const auto& b = x->frame->body;
      if (std::holds_alternative<heartbeat>(b)) {
        out.emplace_back("heartbeat");
      } else if (const auto* p = std::get_if<performative>(&b)) {
        out.emplace_back(name(*p));
      } else {
        out.emplace_back(name(std::get<sasl_frame>(b)));
      }
    }
    in = in.subspan(x->consumed);
  }
  return out;
}

// A memory resource that counts allocations and can refuse them.
class test_resource final : public std::pmr::memory_resource {
public:
  std::size_t allocations = 0;
  std::size_t live_bytes = 0;
  std::size_t peak_bytes = 0;
  bool refuse = false;

private:
  void* do_allocate(std::size_t n, std::size_t align) override {
    if (refuse) {
#if defined(__cpp_exceptions)
      throw std::bad_alloc();
#else
      std::abort(); // refusals are tested with exceptions only
#endif
    }
    ++allocations;
    live_bytes += n;
    peak_bytes = std::max(peak_bytes, live_bytes);
    return std::pmr::new_delete_resource()->allocate(n, align);
  }
  void do_deallocate(void* p, std::size_t n, std::size_t align) override {
    live_bytes -= n;
    std::pmr::new_delete_resource()->deallocate(p, n, align);
  }
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
    return this == &o;
  }
};

} // namespace

TEST_CASE("frame header: parsed and written big-endian") {
  const auto b = from_hex("00 00 01 02 03 00 ab cd");
  const frame_header h = parse_frame_header(std::span<const std::byte, 8>(b.data(), 8));
  CHECK(h.size == 0x102);
  CHECK(h.doff == 3);
  CHECK(h.type == 0);
  CHECK(h.channel == 0xabcd);
  std::array<std::byte, 8> out{};
  write_frame_header(h, out);
  CHECK(to_hex(out) == "000001020300abcd");
}

TEST_CASE("frame header: structural errors are framing errors") {
  // AMQP 1.0 §2.3.1: SIZE below 8, DOFF below 2, DOFF * 4 beyond SIZE.
  CHECK(check(header(0, 2, 0)) == errc::framing_error);
  CHECK(check(header(7, 2, 0)) == errc::framing_error);
  CHECK(check(header(8, 2, 0)) == std::error_code{});
  CHECK(check(header(8, 1, 0)) == errc::framing_error);
  CHECK(check(header(8, 0, 0)) == errc::framing_error);
  CHECK(check(header(12, 3, 0)) == std::error_code{});
  CHECK(check(header(12, 4, 0)) == errc::framing_error);
  CHECK(check(header(255 * 4, 255, 0), frame_type::amqp, {.max_frame_size = 2000}) ==
        std::error_code{});
  CHECK(check(header(255 * 4 - 1, 255, 0), frame_type::amqp, {.max_frame_size = 2000}) ==
        errc::framing_error);
  // The structure is checked first, whatever the type and size.
  CHECK(check(header(4, 1, 7)) == errc::framing_error);
  CHECK(check(header(0xffffffff, 1, 0)) == errc::framing_error);
}

TEST_CASE("frame header: the type must be the one expected") {
  CHECK(check(header(8, 2, 0), frame_type::amqp) == std::error_code{});
  CHECK(check(header(16, 2, 1), frame_type::sasl) == std::error_code{});
  CHECK(check(header(16, 2, 1), frame_type::amqp) == errc::unexpected_frame_type);
  CHECK(check(header(16, 2, 0), frame_type::sasl) == errc::unexpected_frame_type);
  for (unsigned t = 2; t < 256; ++t) {
    CHECK(check(header(16, 2, static_cast<std::uint8_t>(t)), frame_type::amqp) ==
          errc::unexpected_frame_type);
    CHECK(check(header(16, 2, static_cast<std::uint8_t>(t)), frame_type::sasl) ==
          errc::unexpected_frame_type);
  }
  // The type is checked before the size.
  CHECK(check(header(100000, 2, 5)) == errc::unexpected_frame_type);
}

TEST_CASE("frame header: max-frame-size boundaries") {
  SUBCASE("default: 512 before open (§2.4.1)") {
    const frame_limits l{};
    CHECK(l.max_frame_size == 512);
    CHECK(check(header(512, 2, 0), frame_type::amqp, l) == std::error_code{});
    CHECK(check(header(513, 2, 0), frame_type::amqp, l) == errc::frame_too_large);
    CHECK(check(header(0xffffffff, 2, 0), frame_type::amqp, l) == errc::frame_too_large);
  }
  SUBCASE("negotiated") {
    const frame_limits l{.max_frame_size = 65536};
    CHECK(check(header(65536, 2, 0), frame_type::amqp, l) == std::error_code{});
    CHECK(check(header(65537, 2, 0), frame_type::amqp, l) == errc::frame_too_large);
  }
  SUBCASE("no limit") {
    const frame_limits l{.max_frame_size = 0xffffffff};
    CHECK(check(header(0xffffffff, 2, 0), frame_type::amqp, l) == std::error_code{});
  }
  SUBCASE("SASL: 512 whatever max-frame-size (§5.3.1), and settable") {
    frame_limits l{.max_frame_size = 65536};
    CHECK(l.sasl_max_frame_size == 512);
    CHECK(check(header(512, 2, 1), frame_type::sasl, l) == std::error_code{});
    CHECK(check(header(513, 2, 1), frame_type::sasl, l) == errc::frame_too_large);
    l.sasl_max_frame_size = 4096;
    CHECK(check(header(4096, 2, 1), frame_type::sasl, l) == std::error_code{});
    CHECK(check(header(4097, 2, 1), frame_type::sasl, l) == errc::frame_too_large);
    // And the SASL limit does not apply to AMQP frames.
    l.sasl_max_frame_size = 100;
    CHECK(check(header(1000, 2, 0), frame_type::amqp, l) == std::error_code{});
  }
}

TEST_CASE("frame errors: messages and wire conditions") {
  CHECK(to_condition_symbol(make_error_code(errc::framing_error)) == symbol::framing_error);
  CHECK(to_condition_symbol(make_error_code(errc::frame_too_large)) == symbol::framing_error);
  CHECK(to_condition_symbol(make_error_code(errc::unexpected_frame_type)) == symbol::framing_error);
  CHECK(symbol::framing_error == "amqp:connection:framing-error");
  CHECK(make_error_code(errc::framing_error).message() == "malformed frame");
  CHECK(make_error_code(errc::frame_too_large).message() ==
        "frame larger than the maximum frame size");
  CHECK(make_error_code(errc::unexpected_frame_type).message() == "unexpected frame type");
  // The codec's errors raised from frame bodies keep their conditions.
  CHECK(to_condition_symbol(make_error_code(errc::decode_error)) == symbol::decode_error);
  CHECK(to_condition_symbol(make_error_code(errc::unexpected_descriptor)) == symbol::decode_error);
}

TEST_CASE("frame decode: Proton's frames") {
  SUBCASE("open") {
    const auto b = from_hex(proton_open);
    auto f = decode_frame(b);
    REQUIRE(f.has_value());
    CHECK(f->type == frame_type::amqp);
    CHECK(f->channel == 0);
    const auto* o = std::get_if<open>(&std::get<performative>(f->body));
    REQUIRE(o != nullptr);
    CHECK(o->container_id == "client");
    CHECK(o->hostname == "localhost");
    CHECK(o->channel_max == 0x7fff);
    CHECK(o->max_frame_size == 0xffffffff);
    CHECK(f->payload.empty());
    CHECK(f->bytes.data() == b.data());
    CHECK(f->bytes.size() == b.size());
  }
  SUBCASE("transfer and its payload") {
    const auto b = from_hex(proton_transfer);
    auto f = decode_frame(b);
    REQUIRE(f.has_value());
    const auto& t = std::get<transfer>(std::get<performative>(f->body));
    CHECK(t.handle == 0);
    CHECK(t.delivery_id == 0u);
    REQUIRE(t.delivery_tag.has_value());
    CHECK(to_hex(*t.delivery_tag) == to_hex(from_hex("7461672d31"))); // "tag-1"
    CHECK(t.message_format == 0u);
    CHECK_FALSE(t.more);
    // The payload is the message: header, properties, and an amqp-value "hello".
    CHECK(f->payload.size() == 18);
    CHECK(f->payload.data() == b.data() + 24);
    CHECK(to_hex(f->payload) == "0053704500537345005377a10568656c6c6f");
  }
  SUBCASE("heartbeat") {
    const auto b = from_hex(proton_heartbeat);
    auto f = decode_frame(b);
    REQUIRE(f.has_value());
    CHECK(std::holds_alternative<heartbeat>(f->body));
    CHECK(f->payload.empty());
  }
  SUBCASE("SASL frames, channel ignored") {
    auto b = from_hex(proton_sasl_init);
    b[6] = std::byte{0x12};
    b[7] = std::byte{0x34};
    auto f = decode_frame(b);
    REQUIRE(f.has_value());
    CHECK(f->type == frame_type::sasl);
    CHECK(f->channel == 0);
    const auto& init = std::get<sasl_init>(std::get<sasl_frame>(f->body));
    CHECK(init.mechanism.str == "ANONYMOUS");
    auto o = decode_frame(from_hex(proton_sasl_outcome));
    REQUIRE(o.has_value());
    CHECK(std::get<sasl_outcome>(std::get<sasl_frame>(o->body)).code == sasl_code::ok);
  }
}

TEST_CASE("frame decode: malformed frames and bodies") {
  auto err = [](std::string_view hex) {
    auto r = decode_frame(from_hex(hex));
    REQUIRE_FALSE(r.has_value());
    return r.error();
  };
  CHECK(err("") == errc::framing_error);
  CHECK(err("00000008020000") == errc::framing_error);            // 7 bytes
  CHECK(err("0000000902000000") == errc::framing_error);          // SIZE 9, 8 bytes
  CHECK(err("000000080200000000") == errc::framing_error);        // SIZE 8, 9 bytes
  CHECK(err("0000000801000000") == errc::framing_error);          // DOFF 1
  CHECK(err("0000000c04000000 00531845") == errc::framing_error); // DOFF beyond
  CHECK(err("0000000c02020000 00531845") == errc::unexpected_frame_type);
  CHECK(err("0000000802010000") == errc::framing_error); // empty SASL frame (§5.3.1)
  CHECK(err("0000000c02000000 00531945") == errc::unexpected_descriptor);
  CHECK(err("0000000c02010000 00531845") == errc::unexpected_descriptor); // close in SASL
  CHECK(err("0000000c02000000 00534445") == errc::unexpected_descriptor); // outcome in AMQP
  CHECK(err("0000000902000000 45") == errc::type_mismatch);
  CHECK(err("0000000902000000 ff") == errc::decode_error);
  CHECK(err("0000000f02000000 005310c0100aa1") == errc::decode_error);
  CHECK(err("0000000c02000000 00531045") == errc::missing_field);
  CHECK(err("0000001102010000 005344c00301500040") == errc::decode_error); // SASL trailing
  // The nesting limit of the value decoder applies.
  auto deep = decode_frame(from_hex("0000000f02000000 005316c0020143"), {.max_depth = 1});
  REQUIRE_FALSE(deep.has_value());
  CHECK(deep.error() == errc::depth_exceeded);
}

TEST_CASE("frame decode: extended header skipped; empty body after it is a heartbeat") {
  auto f = decode_frame(from_hex("00000010 03 00 0007 deadbeef 00531845"));
  REQUIRE(f.has_value());
  CHECK(f->channel == 7);
  CHECK(std::holds_alternative<close>(std::get<performative>(f->body)));
  auto h = decode_frame(from_hex("0000000c 03 00 0000 ffffffff"));
  REQUIRE(h.has_value());
  CHECK(std::holds_alternative<heartbeat>(h->body));
}

TEST_CASE("frame reader: a whole frame in the input is decoded in place") {
  const auto stream = from_hex(proton_open + proton_begin + proton_close);
  test_resource mem;
  frame_reader r({}, frame_type::amqp, &mem);
  std::span<const std::byte> in = stream;
  std::vector<std::string> names;
  while (!in.empty()) {
    auto x = r.feed(in);
    REQUIRE(x.has_value());
    REQUIRE(x->frame.has_value());
    // Exactly one frame consumed, and its views point into the input: no copy.
    CHECK(x->frame->bytes.data() == in.data());
    CHECK(x->consumed == x->frame->bytes.size());
    names.emplace_back(name(std::get<performative>(x->frame->body)));
    in = in.subspan(x->consumed);
  }
  CHECK(names == std::vector<std::string>{"open", "begin", "close"});
  CHECK(mem.allocations == 0);
  CHECK(r.buffer_capacity() == 0);
  CHECK(r.at_frame_boundary());
}

TEST_CASE("frame reader: frames split at every offset are reassembled in one buffer") {
  const auto stream =
      from_hex(proton_open + proton_begin + proton_heartbeat + proton_transfer + proton_close);
  const std::vector<std::string> expected{"open", "begin", "heartbeat", "transfer", "close"};
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    INFO("split at " << split);
    test_resource mem;
    frame_reader r({}, frame_type::amqp, &mem);
    auto names = drain(r, std::span(stream).first(split));
    auto rest = drain(r, std::span(stream).subspan(split));
    names.insert(names.end(), rest.begin(), rest.end());
    CHECK(names == expected);
    CHECK(r.at_frame_boundary());
    // At most one frame is ever split, and it needs one allocation of at most 512 bytes.
    CHECK(mem.allocations <= 1);
    CHECK(mem.peak_bytes <= 512);
  }
}

TEST_CASE("frame reader: byte by byte, buffered frames point into the buffer") {
  const auto stream = from_hex(proton_transfer + proton_heartbeat + proton_detach);
  frame_reader r;
  std::vector<std::string> names;
  for (std::size_t k = 0; k < stream.size(); ++k) {
    auto x = r.feed(std::span(stream).subspan(k, 1));
    REQUIRE(x.has_value());
    CHECK(x->consumed == 1);
    if (x->frame) {
      const auto* p = x->frame->bytes.data();
      CHECK_FALSE((p >= stream.data() && p < stream.data() + stream.size()));
      if (const auto* perf = std::get_if<performative>(&x->frame->body)) {
        names.emplace_back(name(*perf));
        if (std::holds_alternative<transfer>(*perf)) {
          CHECK(to_hex(x->frame->payload) == "0053704500537345005377a10568656c6c6f");
        }
      } else {
        names.emplace_back("heartbeat");
      }
    } else {
      CHECK_FALSE(r.at_frame_boundary());
    }
  }
  CHECK(names == std::vector<std::string>{"transfer", "heartbeat", "detach"});
  CHECK(r.buffered() == 0);
}

TEST_CASE("frame reader: never consumes past the frame it returns") {
  // The SASL outcome, then the AMQP header: the reader must stop at the frame's end.
  const auto stream = from_hex(proton_sasl_outcome + "414d515000010000");
  frame_reader r({}, frame_type::sasl);
  auto x = r.feed(stream);
  REQUIRE(x.has_value());
  REQUIRE(x->frame.has_value());
  CHECK(x->consumed == 16);
  CHECK(r.at_frame_boundary());
  r.set_expected_type(frame_type::amqp);
  CHECK(r.expected_type() == frame_type::amqp);
  // Split inside the frame, the second chunk's tail is left alone too.
  frame_reader r2({}, frame_type::sasl);
  auto a = r2.feed(std::span(stream).first(5));
  REQUIRE(a.has_value());
  CHECK(a->consumed == 5);
  auto b = r2.feed(std::span(stream).subspan(5));
  REQUIRE(b.has_value());
  REQUIRE(b->frame.has_value());
  CHECK(b->consumed == 11);
}

TEST_CASE("frame reader: limits are enforced from the header, before any body is buffered") {
  SUBCASE("AMQP frame over max-frame-size") {
    test_resource mem;
    frame_reader r({.max_frame_size = 1024}, frame_type::amqp, &mem);
    // The header of a 1025-byte frame, in pieces: refused as soon as its 8 bytes are in.
    const auto f = transfer_frame(1025);
    auto a = r.feed(std::span(f).first(5));
    REQUIRE(a.has_value());
    CHECK(a->consumed == 5);
    auto b = r.feed(std::span(f).subspan(5));
    REQUIRE_FALSE(b.has_value());
    CHECK(b.error() == errc::frame_too_large);
    CHECK(mem.allocations == 0);
  }
  SUBCASE("exactly max-frame-size is accepted") {
    frame_reader r({.max_frame_size = 1024});
    const auto f = transfer_frame(1024);
    std::error_code ec;
    CHECK(drain(r, f, &ec) == std::vector<std::string>{"transfer"});
    CHECK(!ec);
  }
  SUBCASE("default limit 512") {
    frame_reader r;
    CHECK(r.limits().max_frame_size == 512);
    auto ok = transfer_frame(512);
    CHECK(drain(r, ok) == std::vector<std::string>{"transfer"});
    auto big = transfer_frame(513);
    std::error_code ec;
    CHECK(drain(r, big, &ec).empty());
    CHECK(ec == errc::frame_too_large);
  }
  SUBCASE("raised after open") {
    frame_reader r;
    r.set_max_frame_size(65536);
    CHECK(r.limits().max_frame_size == 65536);
    auto big = transfer_frame(65536);
    CHECK(drain(r, big) == std::vector<std::string>{"transfer"});
  }
  SUBCASE("SASL frame over 512") {
    frame_reader r({.max_frame_size = 65536}, frame_type::sasl);
    auto f = from_hex("0000020102010000");
    auto x = r.feed(f);
    REQUIRE_FALSE(x.has_value());
    CHECK(x.error() == errc::frame_too_large);
  }
  SUBCASE("SASL limit raised") {
    frame_reader r({}, frame_type::sasl);
    r.set_sasl_max_frame_size(1024);
    CHECK(r.limits().sasl_max_frame_size == 1024);
    auto f = from_hex("0000020102010000");
    auto x = r.feed(f);
    REQUIRE(x.has_value());
    CHECK(x->consumed == 8);
    CHECK_FALSE(x->frame.has_value());
  }
  SUBCASE("structural errors") {
    for (const char* hex : {"0000000702000000", "0000000001000000", "0000000c04000000"}) {
      INFO(hex);
      frame_reader r;
      auto x = r.feed(from_hex(hex));
      REQUIRE_FALSE(x.has_value());
      CHECK(x.error() == errc::framing_error);
    }
  }
  SUBCASE("wrong or unknown type") {
    frame_reader r;
    auto x = r.feed(from_hex(proton_sasl_outcome));
    REQUIRE_FALSE(x.has_value());
    CHECK(x.error() == errc::unexpected_frame_type);
    frame_reader s({}, frame_type::sasl);
    auto y = s.feed(from_hex(proton_heartbeat));
    REQUIRE_FALSE(y.has_value());
    CHECK(y.error() == errc::unexpected_frame_type);
    frame_reader u;
    auto z = u.feed(from_hex("0000000802 07 0000"));
    REQUIRE_FALSE(z.has_value());
    CHECK(z.error() == errc::unexpected_frame_type);
  }
}

TEST_CASE("frame reader: the buffer grows with the bytes received, not the size announced") {
  test_resource mem;
  frame_reader r({.max_frame_size = 1U << 20}, frame_type::amqp, &mem);
  const auto f = transfer_frame(1U << 20);
  // A peer announcing a 1 MiB frame and sending 100 bytes of it holds 512 bytes of ours.
  auto a = r.feed(std::span(f).first(100));
  REQUIRE(a.has_value());
  CHECK(a->consumed == 100);
  CHECK(r.buffered() == 100);
  CHECK(mem.peak_bytes == 512);
  // Fed 1000 bytes at a time, the buffer doubles up to the limit: it holds at most twice
  // what was received, and never more than the limit.
  std::span<const std::byte> rest = std::span(f).subspan(100);
  std::optional<std::size_t> payload;
  while (!rest.empty()) {
    const std::size_t n = std::min<std::size_t>(1000, rest.size());
    auto x = r.feed(rest.first(n));
    REQUIRE(x.has_value());
    CHECK(x->consumed == n);
    const std::size_t received = f.size() - rest.size() + n;
    CHECK(mem.live_bytes <= std::max<std::size_t>(2 * received, 512));
    CHECK(mem.live_bytes <= (1U << 20));
    if (x->frame) {
      payload = x->frame->payload.size();
    }
    rest = rest.subspan(n);
  }
  CHECK(payload == f.size() - 15);
  // While the last copy is made, the old and the new buffer are both held.
  CHECK(mem.peak_bytes < 2 * (1U << 20));
  CHECK(mem.allocations <= 12);
  // The buffer is kept for the next frame, and can be released.
  CHECK(r.buffer_capacity() == (1U << 20));
  r.release_buffer();
  CHECK(r.buffer_capacity() == 0);
  CHECK(mem.live_bytes == 0);
}

TEST_CASE("frame reader: skim mode returns a frame above the limit by its first bytes and "
          "skips the rest") {
  // A 5000-byte transfer between a close and a heartbeat, the limit 1024.
  std::vector<std::byte> stream = from_hex(proton_close);
  const auto big = transfer_frame(5000);
  stream.insert(stream.end(), big.begin(), big.end());
  const auto tail = from_hex(proton_heartbeat + proton_close);
  stream.insert(stream.end(), tail.begin(), tail.end());
  const std::vector<std::string> expected{"close", "oversized 5000: 1024 bytes", "heartbeat",
                                          "close"};
  // Feeds `stream` in chunks of `chunk` bytes; the names of what came out.
  const auto run = [&](std::size_t chunk, test_resource& mem, std::size_t& most_buffered) {
    frame_reader r({.max_frame_size = 1024}, frame_type::amqp, &mem);
    r.set_skim_oversized(true);
    std::vector<std::string> names;
    std::span<const std::byte> in = stream;
    while (!in.empty()) {
      auto piece = in.first(std::min(chunk, in.size()));
      while (!piece.empty()) {
        auto x = r.feed(piece);
        REQUIRE(x.has_value());
        most_buffered = std::max({most_buffered, r.buffered(), r.buffer_capacity()});
        if (x->oversized) {
          CHECK_FALSE(x->frame);
          CHECK(r.at_frame_boundary());
          CHECK(x->oversized->header.size == 5000);
          CHECK(r.last_header().size == 5000);
          // The prefix is the frame's first bytes.
          REQUIRE(x->oversized->prefix.size() <= big.size());
          CHECK(std::equal(x->oversized->prefix.begin(), x->oversized->prefix.end(), big.begin()));
          names.push_back("oversized " + std::to_string(x->oversized->header.size) + ": " +
                          std::to_string(x->oversized->prefix.size()) + " bytes");
        } else if (x->frame) {
          const auto& b = x->frame->body;
          names.emplace_back(std::holds_alternative<heartbeat>(b)
                                 ? std::string("heartbeat")
                                 : std::string(name(std::get<performative>(b))));
        }
        piece = piece.subspan(x->consumed);
        in = in.subspan(x->consumed);
      }
    }
    return names;
  };
  SUBCASE("whole: described in place, nothing allocated") {
    test_resource mem;
    std::size_t most = 0;
    CHECK(run(stream.size(), mem, most) == expected);
    CHECK(mem.allocations == 0);
  }
  SUBCASE("in chunks: never more than the limit buffered, whatever the frame's size") {
    for (const std::size_t chunk :
         {std::size_t{1}, std::size_t{7}, std::size_t{100}, std::size_t{1000}, std::size_t{4096}}) {
      CAPTURE(chunk);
      test_resource mem;
      std::size_t most = 0;
      CHECK(run(chunk, mem, most) == expected);
      CHECK(most <= 1024);
      CHECK(mem.peak_bytes < 2 * 1024); // old and new buffer while it grows
    }
  }
  SUBCASE("off: the same frame is frame_too_large") {
    frame_reader r({.max_frame_size = 1024});
    std::error_code ec;
    CHECK(drain(r, stream, &ec) == std::vector<std::string>{"close"});
    CHECK(ec == errc::frame_too_large);
    CHECK(r.last_header().size == 5000);
  }
  SUBCASE("other header errors stay errors") {
    frame_reader r({.max_frame_size = 1024});
    r.set_skim_oversized(true);
    auto x = r.feed(from_hex("0000000702000000"));
    REQUIRE_FALSE(x.has_value());
    CHECK(x.error() == errc::framing_error);
    CHECK(r.last_header().size == 7);
  }
  SUBCASE("a SASL frame uses the SASL limit") {
    frame_reader r({.max_frame_size = 65536}, frame_type::sasl);
    r.set_skim_oversized(true);
    std::vector<std::byte> f(600, std::byte{0});
    write_frame_header(header(600, 2, 1), std::span<std::byte, 8>(f.data(), 8));
    auto x = r.feed(f);
    REQUIRE(x.has_value());
    REQUIRE(x->oversized);
    CHECK(x->consumed == 600);
    CHECK(x->oversized->prefix.size() == 512);
  }
}

TEST_CASE("frame reader: errors are sticky") {
  frame_reader r;
  const auto bad = from_hex("0000000702000000" + proton_close);
  auto x = r.feed(bad);
  REQUIRE_FALSE(x.has_value());
  CHECK(r.error() == errc::framing_error);
  // The same error again, even for valid input.
  auto y = r.feed(from_hex(proton_close));
  REQUIRE_FALSE(y.has_value());
  CHECK(y.error() == errc::framing_error);
  auto z = r.feed({});
  REQUIRE_FALSE(z.has_value());

  SUBCASE("also a decode error of a complete frame") {
    frame_reader d;
    auto e = d.feed(from_hex("0000000c02000000 00531945"));
    REQUIRE_FALSE(e.has_value());
    CHECK(e.error() == errc::unexpected_descriptor);
    CHECK(d.error() == errc::unexpected_descriptor);
    CHECK(d.feed(from_hex(proton_close)).error() == errc::unexpected_descriptor);
  }
}

TEST_CASE("frame reader: an empty input consumes nothing") {
  frame_reader r;
  auto x = r.feed({});
  REQUIRE(x.has_value());
  CHECK(x->consumed == 0);
  CHECK_FALSE(x->frame.has_value());
  CHECK(r.at_frame_boundary());
}

TEST_CASE("frame reader: heartbeats split across chunks need no buffer") {
  test_resource mem;
  frame_reader r({}, frame_type::amqp, &mem);
  const auto hb = from_hex(proton_heartbeat);
  for (std::size_t split = 1; split < 8; ++split) {
    auto a = r.feed(std::span(hb).first(split));
    REQUIRE(a.has_value());
    CHECK_FALSE(a->frame.has_value());
    auto b = r.feed(std::span(hb).subspan(split));
    REQUIRE(b.has_value());
    REQUIRE(b->frame.has_value());
    CHECK(std::holds_alternative<heartbeat>(b->frame->body));
  }
  CHECK(mem.allocations == 0);
}

#if defined(__cpp_exceptions)
TEST_CASE("frame reader: a refused allocation is out_of_memory") {
  test_resource mem;
  mem.refuse = true;
  frame_reader r({}, frame_type::amqp, &mem);
  const auto f = from_hex(proton_open);
  auto x = r.feed(std::span(f).first(20));
  REQUIRE_FALSE(x.has_value());
  CHECK(x.error() == errc::out_of_memory);
  CHECK(r.error() == errc::out_of_memory);
  // Whole frames need no memory: a fresh reader decodes them in place.
  frame_reader r2({}, frame_type::amqp, &mem);
  CHECK(drain(r2, f) == std::vector<std::string>{"open"});
}
#endif

TEST_CASE("frame encode: frames as Proton writes them") {
  // Where our smallest encoding is also Proton's, the bytes are identical.
  std::vector<std::byte> out;
  REQUIRE(append_frame(0, performative{detach{.handle = 0, .closed = true}}, {}, out));
  CHECK(to_hex(out) == proton_detach);
  out.clear();
  REQUIRE(append_frame(0, performative{close{}}, {}, out));
  CHECK(to_hex(out) == proton_close);
  out.clear();
  REQUIRE(append_frame(sasl_frame{sasl_outcome{.code = sasl_code::ok}}, out));
  CHECK(to_hex(out) == proton_sasl_outcome);
  std::array<std::byte, 8> hb{};
  auto n = encode_heartbeat(hb);
  REQUIRE(n.has_value());
  CHECK(*n == 8);
  CHECK(to_hex(hb) == proton_heartbeat);
  CHECK(to_hex(heartbeat_frame) == proton_heartbeat);
  std::array<std::byte, 7> small{};
  CHECK(encode_heartbeat(small).error() == errc::buffer_too_small);
}

TEST_CASE("frame encode: every performative round-trips through the reader") {
  const auto tag = from_hex("01020304");
  const auto payload = from_hex("0053770a48656c6c6f");
  const std::vector<performative> all{
      open{.container_id = "c1", .max_frame_size = 65536},
      begin{.remote_channel = 3,
            .next_outgoing_id = 1,
            .incoming_window = 100,
            .outgoing_window = 100},
      attach{.name = "link", .handle = 7, .role = role::receiver},
      flow{.incoming_window = 10,
           .next_outgoing_id = 2,
           .outgoing_window = 10,
           .handle = 7,
           .link_credit = 50},
      transfer{.handle = 7, .delivery_id = 9, .delivery_tag = tag, .more = true},
      disposition{.role = role::receiver, .first = 9, .settled = true, .state = accepted{}},
      detach{.handle = 7, .closed = true},
      end{},
      close{.error = amqp::error{.condition = symbol::framing_error}},
  };
  std::vector<std::byte> stream;
  for (std::size_t k = 0; k < all.size(); ++k) {
    const bool with_payload = std::holds_alternative<transfer>(all[k]);
    const std::span<const std::byte> pl =
        with_payload ? std::span<const std::byte>(payload) : std::span<const std::byte>();
    auto size = encoded_frame_size(all[k], pl.size());
    REQUIRE(size.has_value());
    const std::size_t before = stream.size();
    REQUIRE(append_frame(static_cast<std::uint16_t>(k), all[k], pl, stream));
    CHECK(stream.size() - before == *size);
    // Into a span: the same bytes; one byte short: buffer_too_small.
    std::vector<std::byte> buf(*size);
    auto w = encode_frame(static_cast<std::uint16_t>(k), all[k], pl, buf);
    REQUIRE(w.has_value());
    CHECK(*w == *size);
    CHECK(to_hex(buf) == to_hex(std::span(stream).subspan(before)));
    auto shorter =
        encode_frame(static_cast<std::uint16_t>(k), all[k], pl, std::span(buf).first(*size - 1));
    REQUIRE_FALSE(shorter.has_value());
    CHECK(shorter.error() == errc::buffer_too_small);
  }
  frame_reader r({.max_frame_size = 65536});
  std::span<const std::byte> in = stream;
  std::size_t k = 0;
  while (!in.empty()) {
    auto x = r.feed(in);
    REQUIRE(x.has_value());
    REQUIRE(x->frame.has_value());
    CHECK(x->frame->channel == k);
    const auto& p = std::get<performative>(x->frame->body);
    CHECK(name(p) == name(all[k]));
    CHECK(p.index() == all[k].index());
    if (const auto* t = std::get_if<transfer>(&p)) {
      CHECK(t->more);
      CHECK(t->delivery_id == 9u);
      CHECK(to_hex(x->frame->payload) == to_hex(payload));
    } else {
      CHECK(x->frame->payload.empty());
    }
    in = in.subspan(x->consumed);
    ++k;
  }
  CHECK(k == all.size());
}

TEST_CASE("frame encode: SASL frames") {
  const auto resp = from_hex("00757365720070617373");
  const sasl_frame init = sasl_init{.mechanism = symbol_view{"PLAIN"}, .initial_response = resp};
  auto size = encoded_frame_size(init);
  REQUIRE(size.has_value());
  std::vector<std::byte> out(*size);
  auto w = encode_frame(init, out);
  REQUIRE(w.has_value());
  CHECK(out[5] == std::byte{1}); // TYPE SASL
  CHECK(out[6] == std::byte{0}); // §5.3.1: bytes 6-7 SHOULD be 0
  CHECK(out[7] == std::byte{0});
  CHECK(out[4] == std::byte{2}); // DOFF 2
  frame_reader r({}, frame_type::sasl);
  auto x = r.feed(out);
  REQUIRE(x.has_value());
  REQUIRE(x->frame.has_value());
  const auto& got = std::get<sasl_init>(std::get<sasl_frame>(x->frame->body));
  CHECK(got.mechanism.str == "PLAIN");
  REQUIRE(got.initial_response.has_value());
  CHECK(to_hex(*got.initial_response) == to_hex(resp));
}

TEST_CASE("frame encode: a field with no encoding leaves the vector unchanged") {
  // An open whose properties is a list, not a map: refused by the encoder.
  const value items[] = {value{"x"}};
  const open bad{.container_id = "c", .properties = value::list(items)};
  std::vector<std::byte> out = from_hex("aa");
  auto r = append_frame(0, performative{bad}, {}, out);
  if (!r) {
    CHECK(out.size() == 1);
    CHECK_FALSE(encoded_frame_size(performative{bad}, 0).has_value());
  }
  // A frame above 2^32 - 1 bytes has no SIZE.
  auto huge = encoded_frame_size(performative{close{}}, 0xffffffffULL);
  REQUIRE_FALSE(huge.has_value());
  CHECK(huge.error() == errc::invalid_argument);
  auto edge = encoded_frame_size(performative{close{}}, 0xffffffffULL - 12);
  REQUIRE(edge.has_value());
  CHECK(*edge == 0xffffffffULL);
  CHECK(encoded_frame_size(performative{close{}}, 0xffffffffULL - 11).error() ==
        errc::invalid_argument);
}

TEST_CASE("frame transfer fit: payload capacity boundaries") {
  const auto tag = from_hex("0102030405060708");
  transfer t{.handle = 1, .delivery_id = 5, .delivery_tag = tag, .message_format = 0};
  auto perf = encoded_size(t);
  REQUIRE(perf.has_value());
  const std::uint32_t max = 512;
  auto cap = transfer_payload_capacity(t, max);
  REQUIRE(cap.has_value());
  CHECK(*cap == max - 8 - *perf);
  // A frame carrying exactly the capacity is max bytes; one more byte is over.
  const std::vector<std::byte> payload(*cap + 1, std::byte{0x5a});
  auto exact = encoded_frame_size(performative{t}, *cap);
  REQUIRE(exact.has_value());
  CHECK(*exact == max);
  CHECK(*encoded_frame_size(performative{t}, *cap + 1) == max + 1);
  // The frame with exactly the capacity passes the reader's limit; one more does not.
  std::vector<std::byte> out;
  REQUIRE(append_frame(1, performative{t}, std::span(payload).first(*cap), out));
  frame_reader r({.max_frame_size = max});
  auto ok = r.feed(out);
  REQUIRE(ok.has_value());
  CHECK(ok->frame->payload.size() == *cap);
  out.clear();
  REQUIRE(append_frame(1, performative{t}, payload, out));
  frame_reader r2({.max_frame_size = max});
  CHECK(r2.feed(out).error() == errc::frame_too_large);

  // Header and performative alone: capacity 0; one byte less: nothing fits.
  const auto overhead = static_cast<std::uint32_t>(8 + *perf);
  CHECK(*transfer_payload_capacity(t, overhead) == 0);
  CHECK(transfer_payload_capacity(t, overhead - 1).error() == errc::frame_too_large);
  CHECK(*transfer_payload_capacity(t, 0xffffffff) == 0xffffffffULL - overhead);
}

TEST_CASE("frame transfer fit: planning frames with the more flag") {
  const auto tag = from_hex("0102");
  // A first transfer: setting more adds fields (written as null up to `more`), so it fits
  // less payload than the last frame of a message.
  const transfer first{.handle = 0, .delivery_id = 0, .delivery_tag = tag};
  transfer as_last = first;
  transfer as_more = first;
  as_more.more = true;
  const std::uint32_t max = 512;
  const std::size_t cap_last = *transfer_payload_capacity(as_last, max);
  const std::size_t cap_more = *transfer_payload_capacity(as_more, max);
  REQUIRE(cap_more < cap_last);

  auto plan = [&](std::size_t remaining) {
    auto p = plan_transfer_frame(first, remaining, max);
    REQUIRE(p.has_value());
    return *p;
  };
  CHECK(plan(0).payload_size == 0);
  CHECK_FALSE(plan(0).more);
  CHECK(plan(cap_last).payload_size == cap_last);
  CHECK_FALSE(plan(cap_last).more);
  // Between the two capacities: all of it fits in one last frame.
  CHECK(plan(cap_more + 1).payload_size == cap_more + 1);
  CHECK_FALSE(plan(cap_more + 1).more);
  CHECK(plan(cap_last + 1).payload_size == cap_more);
  CHECK(plan(cap_last + 1).more);
  CHECK(plan(1000000).payload_size == cap_more);
  CHECK(plan(1000000).more);

  SUBCASE("nothing fits") {
    // Exactly room for header and performative with more = true: what fits after the
    // shorter last-frame performative can go; one byte more cannot.
    const auto tight = static_cast<std::uint32_t>(max - cap_more);
    const std::size_t diff = cap_last - cap_more;
    auto all = plan_transfer_frame(first, diff, tight);
    REQUIRE(all.has_value());
    CHECK(all->payload_size == diff);
    CHECK_FALSE(all->more);
    auto p = plan_transfer_frame(first, diff + 1, tight);
    REQUIRE_FALSE(p.has_value());
    CHECK(p.error() == errc::frame_too_large);
    CHECK(plan_transfer_frame(first, 0, 8).error() == errc::frame_too_large);
  }
}

TEST_CASE("frame transfer fit: a message split by the plan reads back whole") {
  const auto tag = from_hex("aabbccdd");
  for (std::uint32_t max : {512U, 513U, 600U, 1024U}) {
    for (std::size_t size : {0UL, 1UL, 400UL, 470UL, 471UL, 480UL, 500UL, 1500UL, 5000UL}) {
      INFO("max " << max << " size " << size);
      std::vector<std::byte> message(size);
      for (std::size_t k = 0; k < size; ++k) {
        message[k] = static_cast<std::byte>(k * 7);
      }
      std::vector<std::byte> stream;
      std::vector<std::size_t> frame_sizes;
      transfer t{.handle = 0, .delivery_id = 3, .delivery_tag = tag, .message_format = 0};
      std::size_t sent = 0;
      do {
        auto p = plan_transfer_frame(t, size - sent, max);
        REQUIRE(p.has_value());
        t.more = p->more;
        const std::size_t before = stream.size();
        REQUIRE(append_frame(0, performative{t}, std::span(message).subspan(sent, p->payload_size),
                             stream));
        frame_sizes.push_back(stream.size() - before);
        sent += p->payload_size;
        // §2.7.5: continuation frames may omit delivery-id, delivery-tag, message-format.
        t.delivery_id.reset();
        t.delivery_tag.reset();
        t.message_format.reset();
      } while (t.more);
      CHECK(sent == size);
      // Every frame but the last is filled to max.
      for (std::size_t k = 0; k + 1 < frame_sizes.size(); ++k) {
        CHECK(frame_sizes[k] == max);
      }
      CHECK(frame_sizes.back() <= max);
      // Read back at that limit: the payloads concatenate to the message.
      frame_reader r({.max_frame_size = max});
      std::vector<std::byte> got;
      std::span<const std::byte> in = stream;
      bool last_more = true;
      while (!in.empty()) {
        auto x = r.feed(in);
        REQUIRE(x.has_value());
        REQUIRE(x->frame.has_value());
        last_more = std::get<transfer>(std::get<performative>(x->frame->body)).more;
        got.insert(got.end(), x->frame->payload.begin(), x->frame->payload.end());
        in = in.subspan(x->consumed);
      }
      CHECK_FALSE(last_more);
      CHECK(got == message);
    }
  }
}
