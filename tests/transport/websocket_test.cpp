// Tests of the sans-IO WebSocket layer (RFC 6455): the opening handshake in both roles, frame
// encoding, and the framer's decoder in both roles and both delivery modes, with the RFC's
// examples, every error, every limit, every chunking, and client <-> server round trips.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/transport/websocket.hpp"
#include "support/doctest_print.hpp"
#include "support/hex.hpp"

namespace ws = amqp::transport::ws;
using amqp::test::from_hex;
using amqp::test::to_hex;

namespace {

std::vector<std::byte> bytes_of(std::string_view s) {
  const auto b = std::as_bytes(std::span(s.data(), s.size()));
  return {b.begin(), b.end()};
}

std::string text_of(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::vector<std::byte> cat(std::vector<std::byte> a, std::span<const std::byte> b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Error codes as text, so that a failed CHECK shows both sides.
std::string name(std::error_code ec) {
  return ec ? std::string(ec.category().name()) + ": " + ec.message() : "ok";
}
std::string name(ws::error e) {
  return name(make_error_code(e));
}
std::string name(amqp::errc e) {
  return name(make_error_code(e));
}
template <class T> std::string status_of(const amqp::result<T>& r) {
  return r ? "ok" : name(r.error());
}

constexpr ws::masking_key key_a{std::byte{0x37}, std::byte{0xfa}, std::byte{0x21}, std::byte{0x3d}};
constexpr ws::masking_key key_b{std::byte{0x01}, std::byte{0x80}, std::byte{0xfe}, std::byte{0x5a}};

// One frame, as append_frame() encodes it.
std::vector<std::byte> frame(ws::opcode op, bool fin, std::span<const std::byte> payload,
                             std::optional<ws::masking_key> key = std::nullopt) {
  std::vector<std::byte> out;
  REQUIRE(ws::append_frame(out, op, fin, payload, key).has_value());
  return out;
}

std::vector<std::byte> frame(ws::opcode op, bool fin, std::string_view payload,
                             std::optional<ws::masking_key> key = std::nullopt) {
  return frame(op, fin, bytes_of(payload), key);
}

std::vector<std::byte> pattern(std::size_t n) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = static_cast<std::byte>((i * 7 + 3) & 0xFFU);
  }
  return v;
}

// Feeds `in` (a copy: masked payloads are unmasked in place) to `f`, cut at `cuts` (sorted
// offsets), and returns the event log: "M:<hex>" a whole message (stream pieces joined),
// "P:<hex>" ping, "O:<hex>" pong, "C:<code>:<reason>" close, "E:<error>" an error (the end).
// Checks the feed contract on the way.
std::vector<std::string> run(ws::framer& f, std::vector<std::byte> in,
                             const std::vector<std::size_t>& cuts = {}) {
  std::vector<std::string> log;
  std::string partial;
  std::size_t start = 0;
  for (std::size_t c = 0; c <= cuts.size(); ++c) {
    const std::size_t end = c < cuts.size() ? cuts[c] : in.size();
    std::span<std::byte> chunk = std::span(in).subspan(start, end - start);
    start = end;
    while (!chunk.empty()) {
      auto r = f.feed(chunk);
      if (!r) {
        log.push_back("E:" + name(r.error()));
        return log;
      }
      REQUIRE(r->consumed >= 1);
      REQUIRE(r->consumed <= chunk.size());
      REQUIRE((r->event.has_value() || r->consumed == chunk.size()));
      if (r->event) {
        if (const auto* d = std::get_if<ws::data_received>(&*r->event)) {
          CHECK((d->message_end || !d->bytes.empty()));
          partial += to_hex(d->bytes);
          if (d->message_end) {
            log.push_back("M:" + partial);
            partial.clear();
          }
        } else if (const auto* p = std::get_if<ws::ping_received>(&*r->event)) {
          log.push_back("P:" + to_hex(p->payload));
        } else if (const auto* o = std::get_if<ws::pong_received>(&*r->event)) {
          log.push_back("O:" + to_hex(o->payload));
        } else if (const auto* cl = std::get_if<ws::close_received>(&*r->event)) {
          log.push_back("C:" + (cl->code ? std::to_string(*cl->code) : std::string("-")) + ":" +
                        std::string(cl->reason));
          CHECK(f.close_received());
        }
      }
      chunk = chunk.subspan(r->consumed);
    }
  }
  return log;
}

std::vector<std::string> run(ws::role role, std::vector<std::byte> in, ws::framer_options o = {}) {
  ws::framer f(role, o);
  return run(f, std::move(in));
}

std::string hex_of(std::string_view s) {
  return to_hex(bytes_of(s));
}

} // namespace

// ---------------------------------------------------------------------------------------
// Keys, base64
// ---------------------------------------------------------------------------------------

TEST_CASE("websocket: accept key of RFC 6455 §1.3") {
  // §1.3: "dGhlIHNhbXBsZSBub25jZQ==" + GUID -> SHA-1 -> base64.
  CHECK(ws::accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  // The key is the base64 of the 16-byte nonce "the sample nonce" (§4.1 item 7's example).
  CHECK(ws::base64_encode(bytes_of("the sample nonce")) == "dGhlIHNhbXBsZSBub25jZQ==");
}

TEST_CASE("websocket: base64 of RFC 4648 §10") {
  const std::vector<std::pair<std::string_view, std::string_view>> vectors = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, coded] : vectors) {
    CHECK(ws::base64_encode(bytes_of(plain)) == coded);
    auto back = ws::base64_decode(coded);
    REQUIRE(back.has_value());
    CHECK(text_of(*back) == plain);
  }
  for (std::string_view bad :
       {"Zg=", "Zg", "Z===", "====", "Zm9v=A==", "Zm 9", "Zm9\x01", "Zg=a"}) {
    CAPTURE(bad);
    CHECK_FALSE(ws::base64_decode(bad).has_value());
  }
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

TEST_CASE("websocket: encoding the examples of RFC 6455 §5.7") {
  SUBCASE("a single-frame unmasked text message") {
    CHECK(to_hex(frame(ws::opcode::text, true, "Hello")) == "810548656c6c6f");
  }
  SUBCASE("a single-frame masked text message") {
    CHECK(to_hex(frame(ws::opcode::text, true, "Hello", key_a)) == "818537fa213d7f9f4d5158");
  }
  SUBCASE("a fragmented unmasked text message") {
    CHECK(to_hex(frame(ws::opcode::text, false, "Hel")) == "010348656c");
    CHECK(to_hex(frame(ws::opcode::continuation, true, "lo")) == "80026c6f");
  }
  SUBCASE("unmasked ping, masked pong") {
    CHECK(to_hex(frame(ws::opcode::ping, true, "Hello")) == "890548656c6c6f");
    CHECK(to_hex(frame(ws::opcode::pong, true, "Hello", key_a)) == "8a8537fa213d7f9f4d5158");
  }
  SUBCASE("256 bytes and 64 KiB in a single unmasked binary message") {
    const auto b256 = frame(ws::opcode::binary, true, pattern(256));
    CHECK(to_hex(std::span(b256).first(4)) == "827e0100");
    CHECK(b256.size() == 4 + 256);
    const auto b64k = frame(ws::opcode::binary, true, pattern(65536));
    CHECK(to_hex(std::span(b64k).first(10)) == "827f0000000000010000");
    CHECK(b64k.size() == 10 + 65536);
  }
}

TEST_CASE("websocket: frame headers use the minimal length encoding") {
  std::array<std::byte, ws::max_frame_header_size> h{};
  const std::vector<std::pair<std::uint64_t, std::string>> cases = {
      {0, "8200"},
      {125, "827d"},
      {126, "827e007e"},
      {65535, "827effff"},
      {65536, "827f0000000000010000"},
      {(std::uint64_t{1} << 63U) - 1, "827f7fffffffffffffff"}};
  for (const auto& [size, hex] : cases) {
    CAPTURE(size);
    auto n = ws::write_frame_header(ws::frame_header{true, ws::opcode::binary, size, {}}, h);
    REQUIRE(n.has_value());
    CHECK(to_hex(std::span(h).first(*n)) == hex);
    CHECK(*n == ws::frame_header_size(size, false));
    auto m = ws::write_frame_header(ws::frame_header{true, ws::opcode::binary, size, key_b}, h);
    REQUIRE(m.has_value());
    CHECK(*m == *n + 4);
    CHECK(*m == ws::frame_header_size(size, true));
    CHECK(to_hex(std::span(h).subspan(*n, 4)) == "0180fe5a");
  }
  SUBCASE("what cannot be encoded") {
    CHECK(status_of(ws::write_frame_header(
              ws::frame_header{true, ws::opcode::binary, std::uint64_t{1} << 63U, {}}, h)) ==
          name(amqp::errc::invalid_argument));
    CHECK(status_of(ws::write_frame_header(ws::frame_header{true, ws::opcode::ping, 126, {}}, h)) ==
          name(amqp::errc::invalid_argument));
    CHECK(status_of(ws::write_frame_header(ws::frame_header{false, ws::opcode::close, 0, {}}, h)) ==
          name(amqp::errc::invalid_argument));
    CHECK(ws::write_frame_header(ws::frame_header{true, ws::opcode::pong, 125, {}}, h).has_value());
  }
}

TEST_CASE("websocket: masking in pieces equals masking at once") {
  const auto plain = pattern(37);
  auto whole = plain;
  ws::mask(whole, key_a);
  for (std::size_t cut = 0; cut <= plain.size(); ++cut) {
    auto pieces = plain;
    ws::mask(std::span(pieces).first(cut), key_a, 0);
    ws::mask(std::span(pieces).subspan(cut), key_a, cut);
    CHECK(pieces == whole);
  }
  ws::mask(whole, key_a);
  CHECK(whole == plain);
}

TEST_CASE("websocket: framer encodes data, control and close frames for its role") {
  std::array<std::byte, ws::max_frame_header_size> h{};
  SUBCASE("a server sends unmasked frames; a fragmented message is binary then continuations") {
    ws::framer s(ws::role::server);
    auto n = s.write_data_header(h, 3, key_a, false);
    REQUIRE(n.has_value());
    CHECK(to_hex(std::span(h).first(*n)) == "0203");
    n = s.write_data_header(h, 2, key_a, false);
    REQUIRE(n.has_value());
    CHECK(to_hex(std::span(h).first(*n)) == "0002");
    n = s.write_data_header(h, 1, key_a);
    REQUIRE(n.has_value());
    CHECK(to_hex(std::span(h).first(*n)) == "8001");
    n = s.write_data_header(h, 300, key_a);
    REQUIRE(n.has_value());
    CHECK(to_hex(std::span(h).first(*n)) == "827e012c");
    auto p = s.pong(bytes_of("Hello"), key_a);
    REQUIRE(p.has_value());
    CHECK(to_hex(p->bytes()) == "8a0548656c6c6f");
  }
  SUBCASE("a client masks every frame with the key given") {
    ws::framer c(ws::role::client);
    auto n = c.write_data_header(h, 5, key_a);
    REQUIRE(n.has_value());
    CHECK(to_hex(std::span(h).first(*n)) == "828537fa213d");
    auto p = c.pong(bytes_of("Hello"), key_a);
    REQUIRE(p.has_value());
    CHECK(to_hex(p->bytes()) == "8a8537fa213d7f9f4d5158");
    auto q = c.ping({}, key_b);
    REQUIRE(q.has_value());
    CHECK(to_hex(q->bytes()) == "89800180fe5a");
  }
  SUBCASE("control frame limits") {
    ws::framer c(ws::role::client);
    CHECK(c.ping(pattern(125), key_a).has_value());
    CHECK(status_of(c.ping(pattern(126), key_a)) == name(amqp::errc::invalid_argument));
    CHECK(status_of(c.pong(pattern(126), key_a)) == name(amqp::errc::invalid_argument));
    CHECK(status_of(c.close(1000, std::string(124, 'x'), key_a)) ==
          name(amqp::errc::invalid_argument));
    CHECK(status_of(c.close(1005, "", key_a)) == name(amqp::errc::invalid_argument));
    CHECK(status_of(c.close(999, "", key_a)) == name(amqp::errc::invalid_argument));
    CHECK(status_of(c.close(std::nullopt, "why", key_a)) == name(amqp::errc::invalid_argument));
    CHECK(status_of(c.close(1000, "\xc3\x28", key_a)) == name(amqp::errc::invalid_argument));
    CHECK_FALSE(c.close_sent());
    auto f = c.close(1000, std::string(123, 'x'), key_a);
    REQUIRE(f.has_value());
    CHECK(f->bytes().size() == ws::max_control_frame_size);
  }
  SUBCASE("a close is sent once, and nothing after it") {
    ws::framer s(ws::role::server);
    auto f = s.close(1001, "bye", key_a);
    REQUIRE(f.has_value());
    CHECK(to_hex(f->bytes()) == "880503e9" + hex_of("bye"));
    CHECK(s.close_sent());
    CHECK(status_of(s.close(1000, "", key_a)) == name(amqp::errc::invalid_state));
    CHECK(status_of(s.write_data_header(h, 1, key_a)) == name(amqp::errc::invalid_state));
    CHECK(status_of(s.ping({}, key_a)) == name(amqp::errc::invalid_state));
    CHECK(status_of(s.pong({}, key_a)) == name(amqp::errc::invalid_state));
  }
  SUBCASE("an empty close") {
    ws::framer s(ws::role::server);
    auto f = s.close(std::nullopt, "", key_a);
    REQUIRE(f.has_value());
    CHECK(to_hex(f->bytes()) == "8800");
  }
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

TEST_CASE("websocket: decoding the examples of RFC 6455 §5.7") {
  const std::string hello = "M:" + hex_of("Hello");
  ws::framer_options message_mode;
  message_mode.stream = false;
  SUBCASE("text frames are refused with 1003: AMQP is binary") {
    const auto log = run(ws::role::client, from_hex("810548656c6c6f"));
    CHECK(log == std::vector<std::string>{"E:" + name(ws::error::text_frame)});
    CHECK(ws::close_code(make_error_code(ws::error::text_frame)) == 1003);
    CHECK(run(ws::role::server, from_hex("818537fa213d7f9f4d5158")) ==
          std::vector<std::string>{"E:" + name(ws::error::text_frame)});
    CHECK(run(ws::role::client, from_hex("010348656c 80026c6f")) ==
          std::vector<std::string>{"E:" + name(ws::error::text_frame)});
  }
  SUBCASE("the same examples as binary messages") {
    CHECK(run(ws::role::client, from_hex("820548656c6c6f")) == std::vector<std::string>{hello});
    CHECK(run(ws::role::server, from_hex("828537fa213d7f9f4d5158")) ==
          std::vector<std::string>{hello});
    CHECK(run(ws::role::client, from_hex("020348656c 80026c6f")) ==
          std::vector<std::string>{hello});
    CHECK(run(ws::role::client, from_hex("020348656c 80026c6f"), message_mode) ==
          std::vector<std::string>{hello});
  }
  SUBCASE("ping and pong") {
    CHECK(run(ws::role::client, from_hex("890548656c6c6f")) ==
          std::vector<std::string>{"P:" + hex_of("Hello")});
    CHECK(run(ws::role::server, from_hex("8a8537fa213d7f9f4d5158")) ==
          std::vector<std::string>{"O:" + hex_of("Hello")});
  }
  SUBCASE("256 bytes and 64 KiB") {
    for (const std::size_t n : {std::size_t{256}, std::size_t{65536}}) {
      CAPTURE(n);
      const auto payload = pattern(n);
      const auto wire = cat(from_hex(n == 256 ? "827e0100" : "827f0000000000010000"), payload);
      CHECK(run(ws::role::client, wire) == std::vector<std::string>{"M:" + to_hex(payload)});
      CHECK(run(ws::role::client, wire, message_mode) ==
            std::vector<std::string>{"M:" + to_hex(payload)});
    }
  }
}

TEST_CASE("websocket: stream mode hands over views into the input, unmasked in place") {
  SUBCASE("server role: masked frame") {
    auto wire = frame(ws::opcode::binary, true, "Hello", key_a);
    ws::framer s(ws::role::server);
    auto r = s.feed(std::span(wire).first(8)); // header (6) and "He"
    REQUIRE(r.has_value());
    REQUIRE(r->event.has_value());
    const auto& d = std::get<ws::data_received>(*r->event);
    CHECK(d.bytes.data() == wire.data() + 6);
    CHECK(text_of(d.bytes) == "He");
    CHECK_FALSE(d.message_end);
    CHECK(s.buffered() == 0);
    r = s.feed(std::span(wire).subspan(8));
    REQUIRE(r.has_value());
    const auto& e = std::get<ws::data_received>(*r->event);
    CHECK(e.bytes.data() == wire.data() + 8);
    CHECK(text_of(e.bytes) == "llo");
    CHECK(e.message_end);
  }
  SUBCASE("message mode: a single frame whole in the input is not copied either") {
    auto wire = frame(ws::opcode::binary, true, "Hello");
    ws::framer_options o;
    o.stream = false;
    ws::framer c(ws::role::client, o);
    auto r = c.feed(wire);
    REQUIRE(r.has_value());
    const auto& d = std::get<ws::data_received>(*r->event);
    CHECK(d.bytes.data() == wire.data() + 2);
    CHECK(d.message_end);
  }
}

TEST_CASE("websocket: control frames interleaved with a fragmented message (§5.4)") {
  const auto wire = cat(cat(cat(frame(ws::opcode::binary, false, "Hel", key_a),
                                frame(ws::opcode::ping, true, "hi", key_b)),
                            frame(ws::opcode::pong, true, "", key_a)),
                        frame(ws::opcode::continuation, true, "lo", key_b));
  const std::vector<std::string> want = {"P:" + hex_of("hi"), "O:", "M:" + hex_of("Hello")};
  CHECK(run(ws::role::server, wire) == want);
  ws::framer_options o;
  o.stream = false;
  CHECK(run(ws::role::server, wire, o) == want);

  SUBCASE("stream mode: the pieces come in order around the control frames") {
    auto copy = wire;
    ws::framer s(ws::role::server);
    std::vector<std::string> kinds;
    std::span<std::byte> rest(copy);
    while (!rest.empty()) {
      auto r = s.feed(rest);
      REQUIRE(r.has_value());
      if (r->event) {
        if (const auto* d = std::get_if<ws::data_received>(&*r->event)) {
          kinds.push_back(text_of(d->bytes) + (d->message_end ? "|" : ""));
        } else {
          kinds.push_back(std::holds_alternative<ws::ping_received>(*r->event) ? "ping" : "pong");
        }
      }
      rest = rest.subspan(r->consumed);
    }
    CHECK(kinds == std::vector<std::string>{"Hel", "ping", "pong", "lo|"});
  }
}

TEST_CASE("websocket: close frames (§5.5.1, §7.4)") {
  SUBCASE("a code and a reason; answered once with the code echoed") {
    auto wire = cat(from_hex("880503e8"), bytes_of("bye"));
    ws::framer c(ws::role::client);
    CHECK(run(c, wire) == std::vector<std::string>{"C:1000:bye"});
    CHECK(c.close_received());
    CHECK_FALSE(c.close_sent());
    auto reply = c.close(1000, {}, key_a);
    REQUIRE(reply.has_value());
    CHECK(to_hex(reply->bytes()) ==
          "888237fa213d" + to_hex(std::array{std::byte{0x03 ^ 0x37}, std::byte{0xe8 ^ 0xfa}}));
    CHECK(status_of(c.close(1000, {}, key_a)) == name(amqp::errc::invalid_state));
    // Nothing is accepted after the close frame.
    auto more = from_hex("8200");
    CHECK(status_of(c.feed(more)) == name(ws::error::closed));
  }
  SUBCASE("no body: status 1005, no code") {
    CHECK(run(ws::role::client, from_hex("8800")) == std::vector<std::string>{"C:-:"});
  }
  SUBCASE("bytes after the close frame") {
    CHECK(run(ws::role::client, from_hex("8800 8200")) ==
          std::vector<std::string>{"C:-:", "E:" + name(ws::error::closed)});
  }
  SUBCASE("valid codes and UTF-8 reasons") {
    for (const std::uint16_t code :
         std::initializer_list<std::uint16_t>{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                              1012, 1013, 1014, 3000, 4000, 4999}) {
      CAPTURE(code);
      std::vector<std::byte> body = {static_cast<std::byte>(code >> 8U),
                                     static_cast<std::byte>(code & 0xFFU)};
      body = cat(body, bytes_of("d\xc3\xa9j\xc3\xa0 \xe2\x82\xac \xf0\x9f\x98\x80"));
      CHECK(run(ws::role::server, frame(ws::opcode::close, true, body, key_a)) ==
            std::vector<std::string>{"C:" + std::to_string(code) + ":" + text_of(body).substr(2)});
    }
  }
  SUBCASE("invalid codes: 1002") {
    for (const std::uint16_t code : std::initializer_list<std::uint16_t>{
             0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535}) {
      CAPTURE(code);
      const std::vector<std::byte> body = {static_cast<std::byte>(code >> 8U),
                                           static_cast<std::byte>(code & 0xFFU)};
      CHECK(run(ws::role::client, frame(ws::opcode::close, true, body)) ==
            std::vector<std::string>{"E:" + name(ws::error::bad_close_code)});
    }
    CHECK(run(ws::role::client, from_hex("880103")) ==
          std::vector<std::string>{"E:" + name(ws::error::bad_close_code)});
    CHECK(ws::close_code(make_error_code(ws::error::bad_close_code)) == 1002);
  }
  SUBCASE("a reason that is not UTF-8: 1007") {
    for (std::string_view bad : {"\xc3\x28", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                 "\xe2\x82", "\xff", "\x80", "\xf0\x8f\xbf\xbf"}) {
      CAPTURE(to_hex(bytes_of(bad)));
      auto wire = cat(from_hex("03e8"), bytes_of(bad));
      CHECK(run(ws::role::client, frame(ws::opcode::close, true, wire)) ==
            std::vector<std::string>{"E:" + name(ws::error::bad_close_reason)});
    }
    CHECK(ws::close_code(make_error_code(ws::error::bad_close_reason)) == 1007);
  }
}

TEST_CASE("websocket: every framing error, with its close code") {
  struct error_case {
    ws::role role;
    std::string hex;
    ws::error want;
    std::uint16_t code;
  };
  const auto c = ws::role::client;
  const auto s = ws::role::server;
  const std::vector<error_case> cases = {
      // §5.2: RSV1-3 must be 0.
      {c, "c200", ws::error::reserved_bits, 1002},
      {c, "a200", ws::error::reserved_bits, 1002},
      {s, "92800000000000", ws::error::reserved_bits, 1002},
      // §5.2: reserved opcodes.
      {c, "8300", ws::error::bad_opcode, 1002},
      {c, "8700", ws::error::bad_opcode, 1002},
      {c, "8b00", ws::error::bad_opcode, 1002},
      {s, "8f8000000000", ws::error::bad_opcode, 1002},
      // §5.1: masking by role.
      {s, "8200", ws::error::bad_mask, 1002},
      {s, "8900", ws::error::bad_mask, 1002},
      {c, "828000000000", ws::error::bad_mask, 1002},
      // §5.5: control frames above 125 bytes or fragmented.
      {c, "897e007e", ws::error::bad_control_frame, 1002},
      {c, "8a7f", ws::error::bad_control_frame, 1002},
      {c, "0900", ws::error::bad_control_frame, 1002},
      {c, "0800", ws::error::bad_control_frame, 1002},
      {s, "0a8000000000", ws::error::bad_control_frame, 1002},
      // §5.4: continuation without a start, a start inside a message.
      {c, "8000", ws::error::bad_continuation, 1002},
      {c, "0000", ws::error::bad_continuation, 1002},
      {c, "020161 820162", ws::error::bad_continuation, 1002},
      {c, "020161 010162", ws::error::bad_continuation, 1002},
      // §5.2: lengths not minimal, or with the top bit set.
      {c, "827e007d", ws::error::bad_length, 1002},
      {c, "827e0000", ws::error::bad_length, 1002},
      {c, "827f000000000000ffff", ws::error::bad_length, 1002},
      {c, "827f8000000000010000", ws::error::bad_length, 1002},
      {s, "82fe007d00000000", ws::error::bad_length, 1002},
      // Text: AMQP is binary only.
      {c, "8100", ws::error::text_frame, 1003},
      {c, "0100", ws::error::text_frame, 1003},
      {s, "818000000000", ws::error::text_frame, 1003},
      // Larger than the default limits (16 MiB), from the header alone.
      {c, "827f0000000001000001", ws::error::message_too_big, 1009},
      {c, "827f7fffffffffffffff", ws::error::message_too_big, 1009},
      // Close frames.
      {c, "880103", ws::error::bad_close_code, 1002},
      {c, "880403e8c328", ws::error::bad_close_reason, 1007},
  };
  for (const auto& k : cases) {
    CAPTURE(k.hex);
    CAPTURE(name(k.want));
    ws::framer f(k.role);
    auto in = from_hex(k.hex);
    CHECK(run(f, in) == std::vector<std::string>{"E:" + name(k.want)});
    CHECK(ws::close_code(make_error_code(k.want)) == k.code);
    // Sticky: the same error whatever comes next.
    auto more = from_hex("8200");
    CHECK(status_of(f.feed(more)) == name(k.want));
    // The close frame to send with the code (§7.1.7 "_Fail the WebSocket Connection_").
    auto cl = f.close(ws::close_code(make_error_code(k.want)), {}, key_a);
    REQUIRE(cl.has_value());
    const auto body = cl->bytes().last(2);
    CHECK(((std::to_integer<unsigned>(body[0]) << 8U) | std::to_integer<unsigned>(body[1])) ==
          (k.role == ws::role::client ? static_cast<unsigned>(k.code ^ 0x37fa) : k.code));
    // The error is found at the same point whatever the chunking.
    for (std::size_t cut = 0; cut <= in.size(); ++cut) {
      ws::framer g(k.role);
      CHECK(run(g, in, {cut}) == std::vector<std::string>{"E:" + name(k.want)});
    }
  }
  CHECK(ws::close_code(make_error_code(ws::error::closed)) == 1000);
  CHECK(ws::close_code(make_error_code(amqp::errc::out_of_memory)) == 1011);
  CHECK(ws::close_code(make_error_code(ws::error::bad_key)) == 1011);
}

TEST_CASE("websocket: errors are found from the first two bytes, before the header is complete") {
  // An unmasked 64-bit-length frame at a server: known bad from "82 7f".
  ws::framer s(ws::role::server);
  auto in = from_hex("827f");
  CHECK(status_of(s.feed(in)) == name(ws::error::bad_mask));
  // A frame too large for the limit: found once its length is read, before any payload.
  ws::framer_options o;
  o.max_frame_size = 1000;
  ws::framer c(ws::role::client, o);
  auto big = from_hex("827e03e9");
  CHECK(status_of(c.feed(big)) == name(ws::error::message_too_big));
}

// ---------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------

TEST_CASE("websocket: limits") {
  SUBCASE("max_frame_size: at the limit, and one above") {
    ws::framer_options o;
    o.max_frame_size = 200;
    for (const bool stream : {true, false}) {
      o.stream = stream;
      const auto ok = pattern(200);
      CHECK(run(ws::role::server, frame(ws::opcode::binary, true, ok, key_a), o) ==
            std::vector<std::string>{"M:" + to_hex(ok)});
      // The header of a 201-byte frame alone fails.
      const auto bad = frame(ws::opcode::binary, true, pattern(201), key_a);
      ws::framer s(ws::role::server, o);
      auto header = std::vector<std::byte>(bad.begin(), bad.begin() + 8);
      CHECK(status_of(s.feed(header)) == name(ws::error::message_too_big));
      CHECK(s.buffered() <= ws::max_frame_header_size);
    }
  }
  SUBCASE("max_message_size: the sum of the fragments") {
    ws::framer_options o;
    o.max_message_size = 100;
    for (const bool stream : {true, false}) {
      o.stream = stream;
      const auto ok = cat(frame(ws::opcode::binary, false, pattern(60)),
                          frame(ws::opcode::continuation, true, pattern(40)));
      CHECK(run(ws::role::client, cat(ok, ok), o) ==
            std::vector<std::string>{"M:" + to_hex(cat(pattern(60), pattern(40))),
                                     "M:" + to_hex(cat(pattern(60), pattern(40)))});
      const auto bad = cat(cat(frame(ws::opcode::binary, false, pattern(60)),
                               frame(ws::opcode::continuation, false, pattern(40))),
                           frame(ws::opcode::continuation, true, pattern(1)));
      const auto log = run(ws::role::client, bad, o);
      CHECK(log.back() == "E:" + name(ws::error::message_too_big));
    }
  }
  SUBCASE("a 2^62-byte frame claimed by the header is refused at once") {
    CHECK(run(ws::role::client, from_hex("827f4000000000000000")) ==
          std::vector<std::string>{"E:" + name(ws::error::message_too_big)});
  }
  SUBCASE("control frames: 125 bytes pass, 126 fail") {
    const auto p125 = pattern(125);
    CHECK(run(ws::role::client, frame(ws::opcode::ping, true, p125)) ==
          std::vector<std::string>{"P:" + to_hex(p125)});
    CHECK(run(ws::role::client, cat(from_hex("897e007e"), pattern(126))) ==
          std::vector<std::string>{"E:" + name(ws::error::bad_control_frame)});
  }
  SUBCASE("memory: stream mode buffers only a header, message mode at most the message") {
    const auto msg = cat(cat(frame(ws::opcode::binary, false, pattern(3000), key_a),
                             frame(ws::opcode::ping, true, pattern(125), key_b)),
                         frame(ws::opcode::continuation, true, pattern(5000), key_a));
    for (const bool stream : {true, false}) {
      ws::framer_options o;
      o.stream = stream;
      o.max_message_size = 8000;
      ws::framer s(ws::role::server, o);
      auto in = msg;
      std::size_t most = 0;
      for (std::size_t i = 0; i < in.size(); ++i) {
        auto r = s.feed(std::span(in).subspan(i, 1));
        REQUIRE(r.has_value());
        most = std::max(most, s.buffered());
      }
      CHECK(most <= (stream ? std::size_t{125} : std::size_t{8000}));
      CHECK_FALSE(s.in_message());
    }
  }
}

// ---------------------------------------------------------------------------------------
// Chunking
// ---------------------------------------------------------------------------------------

TEST_CASE("websocket: every split of a stream of frames decodes the same") {
  // One stream of every kind of frame, for each role (server frames unmasked, client frames
  // masked), decoded whole, split at every offset, and a byte at a time, in both modes.
  const auto build = [](std::optional<ws::masking_key> k1, std::optional<ws::masking_key> k2) {
    std::vector<std::byte> s;
    const auto add = [&s](const std::vector<std::byte>& f) {
      s.insert(s.end(), f.begin(), f.end());
    };
    add(frame(ws::opcode::binary, true, "Hello", k1));
    add(frame(ws::opcode::binary, false, "Hel", k2));
    add(frame(ws::opcode::ping, true, "hi", k1));
    add(frame(ws::opcode::continuation, false, "", k2));
    add(frame(ws::opcode::pong, true, "", k1));
    add(frame(ws::opcode::continuation, true, "lo", k2));
    add(frame(ws::opcode::binary, true, "", k1));
    add(frame(ws::opcode::binary, false, "", k2));
    add(frame(ws::opcode::continuation, true, "", k1));
    add(frame(ws::opcode::binary, true, pattern(300), k2));
    add(frame(ws::opcode::binary, false, pattern(130), k1));
    add(frame(ws::opcode::ping, true, pattern(125), k2));
    add(frame(ws::opcode::continuation, true, pattern(126), k1));
    add(frame(ws::opcode::close, true, cat(from_hex("0bb8"), bytes_of("done")), k2));
    return s;
  };
  const std::vector<std::string> want = {"M:" + hex_of("Hello"),
                                         "P:" + hex_of("hi"),
                                         "O:",
                                         "M:" + hex_of("Hello"),
                                         "M:",
                                         "M:",
                                         "M:" + to_hex(pattern(300)),
                                         "P:" + to_hex(pattern(125)),
                                         "M:" + to_hex(cat(pattern(130), pattern(126))),
                                         "C:3000:done"};
  for (const auto role : {ws::role::client, ws::role::server}) {
    const auto in =
        role == ws::role::client ? build(std::nullopt, std::nullopt) : build(key_a, key_b);
    for (const bool stream : {true, false}) {
      CAPTURE(static_cast<int>(role));
      CAPTURE(stream);
      ws::framer_options o;
      o.stream = stream;
      {
        ws::framer f(role, o);
        CHECK(run(f, in) == want);
      }
      for (std::size_t cut = 0; cut <= in.size(); ++cut) {
        ws::framer f(role, o);
        const auto got = run(f, in, {cut});
        if (got != want) {
          CAPTURE(cut);
          CHECK(got == want);
          break;
        }
      }
      std::vector<std::size_t> every(in.size());
      for (std::size_t i = 0; i < in.size(); ++i) {
        every[i] = i;
      }
      ws::framer f(role, o);
      CHECK(run(f, in, every) == want);
      // Three pieces: every pair of cuts around the 300-byte frame's header.
      for (std::size_t a = 20; a < 40; ++a) {
        for (std::size_t b = a; b < 60; ++b) {
          ws::framer g(role, o);
          CHECK(run(g, in, {a, b}) == want);
        }
      }
    }
  }
}

TEST_CASE("websocket: a 64-bit length frame split anywhere in its header") {
  const auto payload = pattern(70000);
  for (const auto role : {ws::role::client, ws::role::server}) {
    const auto in = frame(ws::opcode::binary, true, payload,
                          role == ws::role::server ? std::optional(key_a) : std::nullopt);
    for (std::size_t cut = 0; cut <= 20; ++cut) {
      for (const bool stream : {true, false}) {
        ws::framer_options o;
        o.stream = stream;
        ws::framer f(role, o);
        CHECK(run(f, in, {cut, cut + 1, in.size() - 1}) ==
              std::vector<std::string>{"M:" + to_hex(payload)});
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------

namespace {

// Encodes `payload` with `from`'s data header (in `pieces` frames) and its masking, decodes it
// with `to`, and returns what was received.
std::vector<std::byte> send_receive(ws::framer& from, ws::framer& to,
                                    const std::vector<std::byte>& payload, std::size_t pieces,
                                    ws::role sender) {
  std::vector<std::byte> wire;
  std::size_t at = 0;
  for (std::size_t k = 0; k < pieces; ++k) {
    const std::size_t n = k + 1 == pieces ? payload.size() - at : payload.size() / pieces;
    const ws::masking_key key{static_cast<std::byte>(k), std::byte{0x5a}, std::byte{0xa5},
                              static_cast<std::byte>(n & 0xFFU)};
    std::array<std::byte, ws::max_frame_header_size> h{};
    auto hn = from.write_data_header(h, n, key, k + 1 == pieces);
    REQUIRE(hn.has_value());
    wire.insert(wire.end(), h.begin(), h.begin() + static_cast<std::ptrdiff_t>(*hn));
    const std::size_t start = wire.size();
    wire.insert(wire.end(), payload.begin() + static_cast<std::ptrdiff_t>(at),
                payload.begin() + static_cast<std::ptrdiff_t>(at + n));
    if (sender == ws::role::client) {
      ws::mask(std::span(wire).subspan(start), key);
    }
    at += n;
  }
  std::vector<std::byte> got;
  std::span<std::byte> rest(wire);
  bool ended = false;
  while (!rest.empty()) {
    auto r = to.feed(rest);
    REQUIRE(r.has_value());
    if (r->event) {
      const auto& d = std::get<ws::data_received>(*r->event);
      REQUIRE_FALSE(ended);
      got.insert(got.end(), d.bytes.begin(), d.bytes.end());
      ended = d.message_end;
    }
    rest = rest.subspan(r->consumed);
  }
  CHECK(ended);
  return got;
}

} // namespace

TEST_CASE("websocket: round trips client <-> server") {
  for (const std::size_t size : {std::size_t{0}, std::size_t{125}, std::size_t{126},
                                 std::size_t{65535}, std::size_t{65536}, std::size_t{1} << 20U}) {
    const auto payload = pattern(size);
    for (const bool stream : {true, false}) {
      for (const std::size_t pieces : {std::size_t{1}, std::size_t{3}}) {
        CAPTURE(size);
        CAPTURE(stream);
        CAPTURE(pieces);
        ws::framer_options o;
        o.stream = stream;
        ws::framer client(ws::role::client, o);
        ws::framer server(ws::role::server, o);
        CHECK(send_receive(client, server, payload, pieces, ws::role::client) == payload);
        CHECK(send_receive(server, client, payload, pieces, ws::role::server) == payload);
        // Twice, so that the state after a message is clean.
        CHECK(send_receive(client, server, payload, pieces, ws::role::client) == payload);
        CHECK(send_receive(server, client, payload, pieces, ws::role::server) == payload);
      }
    }
  }
  SUBCASE("pings answered with pongs, and the close handshake") {
    ws::framer client(ws::role::client);
    ws::framer server(ws::role::server);
    auto ping = server.ping(bytes_of("are you there"), key_a);
    REQUIRE(ping.has_value());
    std::vector<std::byte> wire(ping->bytes().begin(), ping->bytes().end());
    auto r = client.feed(wire);
    REQUIRE(r.has_value());
    const auto payload = std::get<ws::ping_received>(*r->event).payload;
    auto pong = client.pong(payload, key_b);
    REQUIRE(pong.has_value());
    wire.assign(pong->bytes().begin(), pong->bytes().end());
    r = server.feed(wire);
    REQUIRE(r.has_value());
    CHECK(text_of(std::get<ws::pong_received>(*r->event).payload) == "are you there");

    auto close = client.close(1000, "done", key_a);
    REQUIRE(close.has_value());
    wire.assign(close->bytes().begin(), close->bytes().end());
    r = server.feed(wire);
    REQUIRE(r.has_value());
    const auto cl = std::get<ws::close_received>(*r->event);
    CHECK(cl.code == std::optional<std::uint16_t>(1000));
    CHECK(cl.reason == "done");
    REQUIRE_FALSE(server.close_sent());
    auto answer = server.close(cl.code, {}, key_b);
    REQUIRE(answer.has_value());
    wire.assign(answer->bytes().begin(), answer->bytes().end());
    r = client.feed(wire);
    REQUIRE(r.has_value());
    CHECK(std::get<ws::close_received>(*r->event).code == std::optional<std::uint16_t>(1000));
    CHECK(client.close_sent());
  }
}

// ---------------------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------------------

namespace {

const std::string nonce_text = "the sample nonce";

std::span<const std::byte, 16> sample_nonce() {
  return std::span<const std::byte, 16>(reinterpret_cast<const std::byte*>(nonce_text.data()), 16);
}

ws::client_options hub_options() {
  ws::client_options o;
  o.host = "myhub.azure-devices.net";
  o.path = "/$iothub/websocket";
  return o;
}

const std::string good_response = "HTTP/1.1 101 Switching Protocols\r\n"
                                  "Upgrade: websocket\r\n"
                                  "Connection: Upgrade\r\n"
                                  "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                  "Sec-WebSocket-Protocol: AMQPWSB10\r\n"
                                  "\r\n";

const std::string good_request = "GET /$iothub/websocket?api-version=2021 HTTP/1.1\r\n"
                                 "Host: myhub.azure-devices.net\r\n"
                                 "Upgrade: websocket\r\n"
                                 "Connection: Upgrade\r\n"
                                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                 "Sec-WebSocket-Version: 13\r\n"
                                 "Sec-WebSocket-Protocol: AMQPWSB10\r\n"
                                 "Authorization: SharedAccessSignature sr=x\r\n"
                                 "\r\n";

// Feeds `text` in the given chunks; returns the result of the last feed.
template <class Handshake>
amqp::result<ws::handshake_progress> feed_text(Handshake& h, std::string_view text,
                                               std::size_t chunk = 0) {
  const auto in = bytes_of(text);
  std::span<const std::byte> rest(in);
  std::size_t taken = 0;
  while (true) {
    const auto piece = rest.first(chunk == 0 ? rest.size() : std::min(chunk, rest.size()));
    auto r = h.feed(piece);
    if (!r || r->done || piece.size() == rest.size()) {
      if (r && r->done) {
        r->consumed += taken;
      }
      return r;
    }
    REQUIRE(r->consumed == piece.size());
    taken += piece.size();
    rest = rest.subspan(piece.size());
  }
}

ws::client_handshake make_client(ws::client_options o = hub_options()) {
  auto h = ws::client_handshake::create(o, sample_nonce());
  REQUIRE(h.has_value());
  return std::move(*h);
}

std::string client_result(std::string_view response) {
  auto h = make_client();
  return status_of(feed_text(h, response));
}

std::string replace(std::string s, std::string_view from, std::string_view to) {
  const auto at = s.find(from);
  REQUIRE(at != std::string::npos);
  return s.replace(at, from.size(), to);
}

} // namespace

TEST_CASE("websocket: client request (§4.1)") {
  auto o = hub_options();
  o.extra_headers = {{"Authorization", "SharedAccessSignature sr=x"}};
  auto h = make_client(o);
  CHECK(h.key() == "dGhlIHNhbXBsZSBub25jZQ==");
  CHECK(h.request() == "GET /$iothub/websocket HTTP/1.1\r\n"
                       "Host: myhub.azure-devices.net\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n"
                       "Sec-WebSocket-Protocol: AMQPWSB10\r\n"
                       "Authorization: SharedAccessSignature sr=x\r\n"
                       "\r\n");
  SUBCASE("the port is in Host unless it is the scheme's default") {
    o.port = 8443;
    CHECK(make_client(o).request().find("\r\nHost: myhub.azure-devices.net:8443\r\n") !=
          std::string::npos);
    o.secure = false;
    o.port = 80;
    CHECK(make_client(o).request().find("\r\nHost: myhub.azure-devices.net\r\n") !=
          std::string::npos);
    o.port = 443;
    CHECK(make_client(o).request().find("\r\nHost: myhub.azure-devices.net:443\r\n") !=
          std::string::npos);
    o.host = "::1";
    o.port = 8080;
    CHECK(make_client(o).request().find("\r\nHost: [::1]:8080\r\n") != std::string::npos);
  }
  SUBCASE("arguments that cannot be sent") {
    const auto bad = [](const ws::client_options& x) {
      return status_of(ws::client_handshake::create(x, sample_nonce()));
    };
    const auto invalid = name(amqp::errc::invalid_argument);
    auto x = hub_options();
    x.host = "";
    CHECK(bad(x) == invalid);
    x.host = "a b";
    CHECK(bad(x) == invalid);
    x = hub_options();
    x.path = "no-slash";
    CHECK(bad(x) == invalid);
    x.path = "/a b";
    CHECK(bad(x) == invalid);
    x.path = "/a\r\nX: y";
    CHECK(bad(x) == invalid);
    x = hub_options();
    x.subprotocol = "a b";
    CHECK(bad(x) == invalid);
    x = hub_options();
    x.extra_headers = {{"Bad Name", "v"}};
    CHECK(bad(x) == invalid);
    x.extra_headers = {{"Name", "v\r\nInjected: 1"}};
    CHECK(bad(x) == invalid);
    for (const char* own : {"host", "Upgrade", "CONNECTION", "Sec-WebSocket-Protocol",
                            "sec-websocket-key", "Sec-WebSocket-Extensions"}) {
      CAPTURE(own);
      x.extra_headers = {{own, "x"}};
      CHECK(bad(x) == invalid);
    }
    x.extra_headers = {{"Sec-WebSocket", "x"}, {"Origin", "https://a"}};
    CHECK(bad(x) == "ok");
  }
}

TEST_CASE("websocket: client checks the response (§4.1)") {
  SUBCASE("101 with the right accept value and subprotocol; frames after it are left") {
    const std::string frames = "\x82\x05Hello";
    const std::string all = good_response + frames;
    for (std::size_t chunk = 0; chunk <= all.size(); ++chunk) {
      auto h = make_client();
      auto r = feed_text(h, all, chunk);
      REQUIRE(r.has_value());
      CHECK(r->done);
      CHECK(r->consumed == good_response.size());
      CHECK(h.done());
      CHECK(h.status() == 101);
      CHECK(h.reason() == "Switching Protocols");
      CHECK(h.header("sec-websocket-protocol") == std::optional<std::string_view>("AMQPWSB10"));
    }
    // Every single split: the first part never completes, the second does.
    for (std::size_t cut = 0; cut < good_response.size(); ++cut) {
      auto h = make_client();
      const auto in = bytes_of(all);
      auto a = h.feed(std::span(in).first(cut));
      REQUIRE(a.has_value());
      CHECK_FALSE(a->done);
      CHECK(a->consumed == cut);
      auto b = h.feed(std::span(in).subspan(cut));
      REQUIRE(b.has_value());
      CHECK(b->done);
      CHECK(b->consumed == good_response.size() - cut);
      CHECK(text_of(std::span(in).subspan(cut + b->consumed)) == frames);
    }
  }
  SUBCASE("tokens are case-insensitive and lists are accepted") {
    CHECK(client_result(replace(good_response, "Upgrade: websocket", "upgrade: WebSocket")) ==
          "ok");
    CHECK(client_result(replace(good_response, "Connection: Upgrade",
                                "Connection: keep-alive, upgrade")) == "ok");
    CHECK(client_result(replace(good_response, "Connection: Upgrade",
                                "Connection: keep-alive\r\nConnection: Upgrade")) == "ok");
    CHECK(client_result(replace(good_response, "Switching Protocols", "")) == "ok");
    CHECK(client_result(
              replace(good_response, "HTTP/1.1 101 Switching Protocols", "HTTP/1.1 101")) == "ok");
  }
  SUBCASE("refusals") {
    const std::string refused = "HTTP/1.1 401 Unauthorized\r\n"
                                "WWW-Authenticate: SharedAccessSignature\r\n"
                                "Content-Length: 0\r\n\r\n";
    auto h = make_client();
    CHECK(status_of(feed_text(h, refused)) == name(ws::error::bad_status));
    CHECK(h.status() == 401);
    CHECK(h.reason() == "Unauthorized");
    CHECK(h.header("WWW-Authenticate") == std::optional<std::string_view>("SharedAccessSignature"));
    CHECK(h.header_count() == 2);
    CHECK(h.header_at(1).name == "Content-Length");
    // Sticky.
    CHECK(status_of(h.feed(bytes_of(good_response))) == name(ws::error::bad_status));
    CHECK_FALSE(h.done());
  }
  SUBCASE("every failed check") {
    const std::vector<std::pair<std::string, ws::error>> cases = {
        {replace(good_response, "HTTP/1.1 101", "HTTP/1.1 200"), ws::error::bad_status},
        {replace(good_response, "HTTP/1.1", "HTTP/1.0"), ws::error::bad_http_version},
        {replace(good_response, "HTTP/1.1", "HTTP/1"), ws::error::bad_http},
        {replace(good_response, "HTTP/1.1 101", "HTTP/1.1 1O1"), ws::error::bad_http},
        {replace(good_response, "HTTP/1.1 101 ", "HTTP/1.1 101x"), ws::error::bad_http},
        {replace(good_response, "Upgrade: websocket\r\n", ""), ws::error::bad_upgrade},
        {replace(good_response, "Upgrade: websocket", "Upgrade: h2c"), ws::error::bad_upgrade},
        {replace(good_response, "Connection: Upgrade\r\n", ""), ws::error::bad_upgrade},
        {replace(good_response, "Connection: Upgrade", "Connection: close"),
         ws::error::bad_upgrade},
        {replace(good_response, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "s3pPLMBiTxaQ9kYGzzhZRbK+xOp="),
         ws::error::bad_accept},
        {replace(good_response, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", ""),
         ws::error::bad_accept},
        {replace(good_response, "Sec-WebSocket-Accept",
                 "Sec-WebSocket-Accept: x\r\nSec-WebSocket-Accept"),
         ws::error::bad_accept},
        {replace(good_response, "\r\n\r\n",
                 "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"),
         ws::error::bad_extension},
        {replace(good_response, "Sec-WebSocket-Protocol: AMQPWSB10\r\n", ""),
         ws::error::bad_subprotocol},
        {replace(good_response, "AMQPWSB10", "amqpwsb10"), ws::error::bad_subprotocol},
        {replace(good_response, "AMQPWSB10", "AMQPWSB10, mqtt"), ws::error::bad_subprotocol},
        {replace(good_response, "Upgrade: websocket", "Upgrade : websocket"), ws::error::bad_http},
        {replace(good_response, "Upgrade: websocket", "Upgrade: websocket\r\n folded"),
         ws::error::bad_http},
        {replace(good_response, "Upgrade: websocket", "Upgrade websocket"), ws::error::bad_http},
        {replace(good_response, "Upgrade: websocket", "Upgrade: web\x01socket"),
         ws::error::bad_http},
        {replace(good_response, "Upgrade: websocket", "Upgrade: web\nsocket"), ws::error::bad_http},
        {"\r\n\r\n", ws::error::bad_http},
    };
    for (const auto& [response, want] : cases) {
      CAPTURE(response);
      CHECK(client_result(response) == name(want));
    }
  }
  SUBCASE("the header limit") {
    auto o = hub_options();
    o.max_header_size = good_response.size();
    auto h = make_client(o);
    CHECK(status_of(feed_text(h, good_response)) == "ok");
    o.max_header_size = good_response.size() - 1;
    auto g = make_client(o);
    CHECK(status_of(feed_text(g, good_response, 7)) == name(ws::error::header_too_large));
    // A peer that never ends its header: refused at the limit (8 KiB by default).
    auto k = make_client();
    const std::string endless(8192, 'x');
    CHECK(status_of(feed_text(k, endless)) == "ok");
    CHECK(status_of(k.feed(bytes_of("x"))) == name(ws::error::header_too_large));
  }
  SUBCASE("nothing after done") {
    auto h = make_client();
    CHECK(status_of(feed_text(h, good_response)) == "ok");
    CHECK(status_of(h.feed(bytes_of("x"))) == name(amqp::errc::invalid_state));
  }
}

TEST_CASE("websocket: server checks the request (§4.2)") {
  ws::server_options paths;
  paths.paths = {"/$iothub/websocket", "/$servicebus/websocket"};
  SUBCASE("a valid request, split anywhere") {
    const std::string frames = "\x82\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    const std::string all = good_request + frames;
    for (std::size_t chunk = 0; chunk <= 64; ++chunk) {
      ws::server_handshake h(paths);
      auto r = feed_text(h, all, chunk);
      REQUIRE(r.has_value());
      CHECK(r->done);
      CHECK(r->consumed == good_request.size());
    }
    for (std::size_t cut = 0; cut < good_request.size(); ++cut) {
      ws::server_handshake h(paths);
      const auto in = bytes_of(all);
      auto a = h.feed(std::span(in).first(cut));
      REQUIRE(a.has_value());
      CHECK_FALSE(a->done);
      CHECK(h.response().empty());
      auto b = h.feed(std::span(in).subspan(cut));
      REQUIRE(b.has_value());
      CHECK(b->done);
      CHECK(text_of(std::span(in).subspan(cut + b->consumed)) == frames);
    }
    ws::server_handshake h(paths);
    REQUIRE(feed_text(h, good_request).has_value());
    CHECK(h.done());
    CHECK(h.status() == 101);
    CHECK(h.response() == "HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                          "Sec-WebSocket-Protocol: AMQPWSB10\r\n"
                          "\r\n");
    CHECK(h.method() == "GET");
    CHECK(h.target() == "/$iothub/websocket?api-version=2021");
    CHECK(h.path() == "/$iothub/websocket");
    CHECK(h.header("authorization") ==
          std::optional<std::string_view>("SharedAccessSignature sr=x"));
    CHECK(h.header_count() == 7);
    CHECK(h.header_at(0).name == "Host");
    CHECK(h.header_at(0).value == "myhub.azure-devices.net");
    CHECK(status_of(h.feed(bytes_of("x"))) == name(amqp::errc::invalid_state));
  }
  SUBCASE("tokens are case-insensitive, lists and repeated fields are accepted") {
    const std::vector<std::string> ok = {
        replace(good_request, "Upgrade: websocket", "Upgrade: WebSocket"),
        replace(good_request, "Connection: Upgrade", "Connection: keep-alive, Upgrade"),
        replace(good_request, "Connection: Upgrade",
                "Connection: keep-alive\r\nConnection: upgrade"),
        replace(good_request, "Sec-WebSocket-Protocol: AMQPWSB10",
                "Sec-WebSocket-Protocol: mqtt,  AMQPWSB10 "),
        replace(good_request, "Sec-WebSocket-Protocol: AMQPWSB10",
                "Sec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Protocol: AMQPWSB10"),
        replace(good_request, "$iothub", "$servicebus"),
        replace(good_request, "HTTP/1.1\r\n", "HTTP/2.0\r\n"),
        replace(good_request, "\r\n\r\n",
                "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"),
    };
    for (const auto& request : ok) {
      CAPTURE(request);
      ws::server_handshake h(paths);
      CHECK(status_of(feed_text(h, request)) == "ok");
      CHECK(h.status() == 101);
    }
  }
  SUBCASE("every failed check, with its response") {
    const std::vector<std::tuple<std::string, ws::error, unsigned>> cases = {
        {replace(good_request, "GET", "POST"), ws::error::bad_method, 400},
        {replace(good_request, "GET", "get"), ws::error::bad_method, 400},
        {replace(good_request, "HTTP/1.1\r\n", "HTTP/1.0\r\n"), ws::error::bad_http_version, 400},
        {replace(good_request, "HTTP/1.1\r\n", "HTTP/1.10\r\n"), ws::error::bad_http, 400},
        {replace(good_request, "GET /", "GET  /"), ws::error::bad_http, 400},
        {replace(good_request, "GET /$iothub/websocket?api-version=2021",
                 "GET http://myhub/$iothub/websocket"),
         ws::error::bad_http, 400},
        {replace(good_request, "GET /$iothub/websocket?api-version=2021", "GET /other"),
         ws::error::path_not_found, 404},
        {replace(good_request, "Host: myhub.azure-devices.net\r\n", ""), ws::error::bad_host, 400},
        {replace(good_request, "Host: myhub.azure-devices.net\r\n", "Host: a\r\nHost: b\r\n"),
         ws::error::bad_host, 400},
        {replace(good_request, "Upgrade: websocket\r\n", ""), ws::error::bad_upgrade, 400},
        {replace(good_request, "Upgrade: websocket", "Upgrade: websockets"), ws::error::bad_upgrade,
         400},
        {replace(good_request, "Connection: Upgrade", "Connection: keep-alive"),
         ws::error::bad_upgrade, 400},
        {replace(good_request, "Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
         ws::error::bad_version, 426},
        {replace(good_request, "Sec-WebSocket-Version: 13\r\n", ""), ws::error::bad_version, 426},
        {replace(good_request, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
         ws::error::bad_key, 400},
        {replace(good_request, "dGhlIHNhbXBsZSBub25jZQ==", "AAAA"), ws::error::bad_key, 400},
        {replace(good_request, "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ"),
         ws::error::bad_key, 400},
        {replace(good_request, "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZSE="),
         ws::error::bad_key, 400},
        {replace(good_request, "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25j*Q=="),
         ws::error::bad_key, 400},
        {replace(good_request, "Sec-WebSocket-Key",
                 "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Key"),
         ws::error::bad_key, 400},
        {replace(good_request, "Sec-WebSocket-Protocol: AMQPWSB10\r\n", ""),
         ws::error::bad_subprotocol, 400},
        {replace(good_request, "AMQPWSB10", "amqpwsb10"), ws::error::bad_subprotocol, 400},
        {replace(good_request, "AMQPWSB10", "AMQPWSB100"), ws::error::bad_subprotocol, 400},
        {replace(good_request, "Upgrade: websocket", " Upgrade: websocket"), ws::error::bad_http,
         400},
        {replace(good_request, "Upgrade: websocket", "Upgrade: websocket\r\n\tmore"),
         ws::error::bad_http, 400},
        {replace(good_request, "Upgrade: websocket", "Upgrade:\x7fwebsocket"), ws::error::bad_http,
         400},
        {replace(good_request, "Upgrade: websocket", "Upgrade: web\rsocket"), ws::error::bad_http,
         400},
        {"GET /$iothub/websocket HTTP/1.1\r\n\r\n", ws::error::bad_host, 400},
        {"GET / HTTP/1.1\r\n\r\n", ws::error::path_not_found, 404},
        {"\r\n\r\n", ws::error::bad_http, 400},
        {"GET\r\n\r\n", ws::error::bad_http, 400},
    };
    for (const auto& [request, want, status] : cases) {
      CAPTURE(request);
      ws::server_handshake h(paths);
      CHECK(status_of(feed_text(h, request)) == name(want));
      CHECK(h.status() == status);
      CHECK_FALSE(h.done());
      const std::string head = "HTTP/1.1 " + std::to_string(status) + " ";
      CHECK(h.response().starts_with(head));
      CHECK(h.response().find("\r\nConnection: close\r\n") != std::string::npos);
      CHECK(h.response().ends_with("\r\n\r\n" + make_error_code(want).message()));
      CHECK((status != 426 ||
             h.response().find("\r\nSec-WebSocket-Version: 13\r\n") != std::string::npos));
      // Sticky.
      CHECK(status_of(h.feed(bytes_of(good_request))) == name(want));
    }
  }
  SUBCASE("no paths configured: any path, exposed to the caller") {
    ws::server_handshake h;
    CHECK(status_of(feed_text(h, replace(good_request, "$iothub/websocket", "anything"))) == "ok");
    CHECK(h.path() == "/anything");
  }
  SUBCASE("the header limit: 400") {
    ws::server_options o;
    o.max_header_size = good_request.size();
    ws::server_handshake h(o);
    CHECK(status_of(feed_text(h, good_request, 5)) == "ok");
    o.max_header_size = good_request.size() - 1;
    ws::server_handshake g(o);
    CHECK(status_of(feed_text(g, good_request, 5)) == name(ws::error::header_too_large));
    CHECK(g.status() == 400);
    CHECK(g.response().starts_with("HTTP/1.1 400 Bad Request\r\n"));
  }
  SUBCASE("a caller's own refusal") {
    CHECK(ws::make_error_response(401, "Token expired") ==
          "HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Type: text/plain\r\n"
          "Content-Length: 13\r\n\r\nToken expired");
  }
}

TEST_CASE("websocket: client and server handshake, then frames both ways") {
  auto o = hub_options();
  o.extra_headers = {{"Authorization", "SharedAccessSignature sr=x"}};
  std::array<std::byte, 16> nonce{};
  for (std::size_t i = 0; i < nonce.size(); ++i) {
    nonce[i] = static_cast<std::byte>(i * 17);
  }
  auto client = ws::client_handshake::create(o, nonce);
  REQUIRE(client.has_value());
  ws::server_options so;
  so.paths = {"/$iothub/websocket"};
  ws::server_handshake server(so);
  auto r = server.feed(bytes_of(client->request()));
  REQUIRE(r.has_value());
  REQUIRE(r->done);
  CHECK(server.header("Authorization") ==
        std::optional<std::string_view>("SharedAccessSignature sr=x"));

  // The server's 101 and its first frame arrive together.
  ws::framer server_framer(ws::role::server);
  std::array<std::byte, ws::max_frame_header_size> h{};
  auto hn = server_framer.write_data_header(h, 8, {});
  REQUIRE(hn.has_value());
  auto wire = cat(bytes_of(server.response()), std::span(h).first(*hn));
  wire = cat(wire, bytes_of(std::string_view("AMQP\x00\x01\x00\x00", 8)));
  auto c = client->feed(wire);
  REQUIRE(c.has_value());
  REQUIRE(c->done);
  ws::framer client_framer(ws::role::client);
  auto rest =
      std::vector<std::byte>(wire.begin() + static_cast<std::ptrdiff_t>(c->consumed), wire.end());
  CHECK(run(client_framer, rest) ==
        std::vector<std::string>{"M:" + hex_of(std::string_view("AMQP\x00\x01\x00\x00", 8))});
}
