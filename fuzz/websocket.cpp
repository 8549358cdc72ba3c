// Fuzz target websocket: the RFC 6455 layer of amqp::transport on untrusted bytes: the
// opening handshake (client: the server's response; server: the client's request), then the
// framer in either role and either delivery mode.
//
// Input: 8 parameter bytes, then the peer's byte stream.
//   byte 0     flags: bit 0 = server role (else client); bit 1 = message mode (else stream);
//              bit 2 = the stream starts with the HTTP handshake (else frames at once)
//   bytes 1-2  max_frame_size, u16 BE (0xffff = the default, 16 MiB)
//   bytes 3-4  max_message_size, u16 BE (0xffff = the default, 16 MiB)
//   byte 5, 6  two chunk sizes used alternately to cut the stream (0 = all the rest)
//   byte 7     max_header_size of the handshake = 32 * byte (0 = the default, 8192)
// A client handshake uses the nonce "the sample nonce" (key dGhlIHNhbXBsZSBub25jZQ==, accept
// s3pPLMBiTxaQ9kYGzzhZRbK+xOo=); a server accepts /$iothub/websocket and
// /$servicebus/websocket.
//
// Checks: the handshake gives the same outcome whole and chunked, and a server's response is
// accepted (101) or refused with its status by a client handshake. The frames are decoded
// whole and chunked; both event logs (stream pieces joined per message) must equal the log of
// an independent, non-incremental reference parser written below. The feed contract holds,
// errors are sticky, the memory held stays within max_frame_header_size + 125 (stream) or
// max_message_size + 125 (message mode), pings and closes can be answered (once), and every
// message, ping, pong and close decoded is re-encoded by a peer-role framer and decodes the
// same.
#include "amqp/transport/websocket.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "support/check.hpp"
#include "support/data_provider.hpp"

namespace ws = amqp::transport::ws;
using amqp::fuzz::require;

namespace {

struct params {
  ws::role role = ws::role::client;
  ws::framer_options options;
  bool handshake = false;
  std::size_t chunk_a = 0;
  std::size_t chunk_b = 0;
  std::size_t max_header_size = 8192;
};

std::uint64_t limit_of(std::uint16_t v) {
  return v == 0xffff ? std::uint64_t{16} << 20U : v;
}

std::string text(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

std::string error_entry(std::error_code ec) {
  return "E" + std::to_string(ec.value());
}

ws::masking_key key_for(std::size_t n) {
  return {static_cast<std::byte>(n), std::byte{0xa5}, static_cast<std::byte>(n >> 8U),
          std::byte{0x3c}};
}

// Cuts `in` into chunks of the sizes given, alternately (0: all the rest).
template <class T> std::vector<std::span<T>> chunks(std::span<T> in, std::size_t a, std::size_t b) {
  std::vector<std::span<T>> out;
  bool use_a = true;
  while (!in.empty()) {
    const std::size_t want = use_a ? a : b;
    use_a = !use_a;
    const std::size_t n = want == 0 ? in.size() : std::min(want, in.size());
    out.push_back(in.first(n));
    in = in.subspan(n);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------------------

struct handshake_outcome {
  std::string log;          // the result, status, and what was consumed
  std::size_t consumed = 0; // header bytes, when done
  bool done = false;
};

template <class Handshake>
handshake_outcome feed_handshake(Handshake& h, std::span<const std::byte> in, std::size_t a,
                                 std::size_t b) {
  handshake_outcome out;
  std::size_t taken = 0;
  for (auto chunk : chunks(in, a, b)) {
    auto r = h.feed(chunk);
    if (!r) {
      out.log = error_entry(r.error()) + "/" + std::to_string(h.status());
      // Sticky.
      auto again = h.feed(chunk);
      require(!again && again.error() == r.error());
      return out;
    }
    require(r->consumed <= chunk.size());
    taken += r->consumed;
    if (r->done) {
      require(h.done());
      out.done = true;
      out.consumed = taken;
      out.log = "D" + std::to_string(taken) + "/" + std::to_string(h.status());
      return out;
    }
    require(r->consumed == chunk.size() && !h.done());
  }
  out.log = "I";
  return out;
}

const std::string sample_nonce = "the sample nonce";

ws::client_handshake make_client(std::size_t max_header_size) {
  ws::client_options o;
  o.host = "hub.example";
  o.path = "/$iothub/websocket";
  o.max_header_size = max_header_size;
  auto h = ws::client_handshake::create(
      o, std::span<const std::byte, 16>(bytes(sample_nonce).data(), 16));
  require(h.has_value());
  return std::move(*h);
}

// Checks a server's response as a client would read it: a 101 completes a client handshake
// whose key is the request's, an error response is refused with its status.
void check_server_response(const ws::server_handshake& server) {
  const std::string& response = server.response();
  if (!server.done()) {
    require(server.status() == 400 || server.status() == 404 || server.status() == 426);
    auto c = make_client(8192);
    auto r = c.feed(bytes(response));
    require(!r && r.error() == ws::error::bad_status && c.status() == server.status());
    return;
  }
  require(server.status() == 101);
  require(server.method() == "GET");
  require(server.path() == "/$iothub/websocket" || server.path() == "/$servicebus/websocket");
  const auto key = server.header("Sec-WebSocket-Key");
  require(key.has_value());
  const auto nonce = ws::base64_decode(*key);
  require(nonce.has_value() && nonce->size() == 16);
  require(response.find("\r\nSec-WebSocket-Accept: " + ws::accept_key(*key) + "\r\n") !=
          std::string::npos);
  if (ws::base64_encode(*nonce) != *key) {
    return; // a non-canonical encoding: a client would send another key
  }
  ws::client_options o;
  o.host = "hub.example";
  auto c = ws::client_handshake::create(o, std::span<const std::byte, 16>(nonce->data(), 16));
  require(c.has_value());
  auto r = c->feed(bytes(response));
  require(r.has_value() && r->done && r->consumed == response.size());
}

// ---------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------

// The event log: "M<bytes>" a whole message, "P<bytes>" ping, "O<bytes>" pong,
// "C<code or ->/<reason>" close, "E<error value>" the error that ended the stream; then (in
// stream mode) "R<bytes>" the bytes delivered of an unfinished message.
using event_log = std::vector<std::string>;

std::string close_entry(std::optional<std::uint16_t> code, std::string_view reason) {
  return "C" + (code ? std::to_string(*code) : std::string("-")) + "/" + std::string(reason);
}

// RFC 3629 §4, written again, independently of the library's.
bool reference_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::uint32_t cp = 0;
    std::size_t n = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xE0U) == 0xC0) {
      n = 1;
      cp = c & 0x1FU;
    } else if ((c & 0xF0U) == 0xE0) {
      n = 2;
      cp = c & 0x0FU;
    } else if ((c & 0xF8U) == 0xF0) {
      n = 3;
      cp = c & 0x07U;
    } else {
      return false;
    }
    if (n > s.size() - i - 1) {
      return false;
    }
    for (std::size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0U) != 0x80) {
        return false;
      }
      cp = (cp << 6U) | (d & 0x3FU);
    }
    const std::uint32_t min = n == 1 ? 0x80 : n == 2 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

bool reference_close_code(std::uint32_t c) {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

// The reference: the whole stream at once, frame by frame, each rule of RFC 6455 §5 checked
// in the framer's documented order.
event_log reference(std::span<const std::byte> in, const params& p) {
  event_log log;
  std::size_t pos = 0;
  bool in_message = false;
  std::uint64_t message_size = 0;
  std::string message;
  bool closed = false;
  const auto at = [&in](std::size_t k) { return std::to_integer<unsigned>(in[k]); };
  const auto fail = [&log](ws::error e) { log.push_back(error_entry(make_error_code(e))); };
  while (pos < in.size()) {
    if (closed) {
      fail(ws::error::closed);
      break;
    }
    if (in.size() - pos < 2) {
      break;
    }
    const unsigned b0 = at(pos);
    const unsigned b1 = at(pos + 1);
    const bool fin = (b0 & 0x80U) != 0;
    const unsigned op = b0 & 0x0FU;
    const bool masked = (b1 & 0x80U) != 0;
    const unsigned len7 = b1 & 0x7FU;
    const bool control = op >= 8;
    if ((b0 & 0x70U) != 0) {
      fail(ws::error::reserved_bits);
      break;
    }
    if (!(op <= 2 || (op >= 8 && op <= 10))) {
      fail(ws::error::bad_opcode);
      break;
    }
    if (masked != (p.role == ws::role::server)) {
      fail(ws::error::bad_mask);
      break;
    }
    if (control && (!fin || len7 > 125)) {
      fail(ws::error::bad_control_frame);
      break;
    }
    if (!control && (op == 0) != in_message) {
      fail(ws::error::bad_continuation);
      break;
    }
    if (op == 1) {
      fail(ws::error::text_frame);
      break;
    }
    const std::size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    const std::size_t header = 2 + ext + (masked ? 4 : 0);
    if (in.size() - pos < header) {
      break;
    }
    std::uint64_t len = len7;
    if (ext > 0) {
      len = 0;
      for (std::size_t k = 0; k < ext; ++k) {
        len = (len << 8U) | at(pos + 2 + k);
      }
      if ((ext == 2 && len < 126) || (ext == 8 && (len >> 63U != 0 || len < 65536))) {
        fail(ws::error::bad_length);
        break;
      }
    }
    if (!control) {
      if (len > p.options.max_frame_size || message_size + len > p.options.max_message_size) {
        fail(ws::error::message_too_big);
        break;
      }
      message_size += len;
      in_message = true;
    }
    const std::size_t avail =
        static_cast<std::size_t>(std::min<std::uint64_t>(len, in.size() - pos - header));
    std::string payload;
    for (std::size_t k = 0; k < avail; ++k) {
      unsigned v = at(pos + header + k);
      if (masked) {
        v ^= at(pos + header - 4 + k % 4);
      }
      payload += static_cast<char>(v);
    }
    if (!control) {
      message += payload;
    }
    if (avail < len) {
      break;
    }
    pos += header + avail;
    if (op == 9) {
      log.push_back("P" + payload);
    } else if (op == 10) {
      log.push_back("O" + payload);
    } else if (op == 8) {
      if (payload.size() == 1) {
        fail(ws::error::bad_close_code);
        break;
      }
      if (payload.empty()) {
        log.push_back(close_entry(std::nullopt, ""));
      } else {
        const std::uint32_t code =
            (static_cast<std::uint32_t>(static_cast<unsigned char>(payload[0])) << 8U) |
            static_cast<unsigned char>(payload[1]);
        if (!reference_close_code(code)) {
          fail(ws::error::bad_close_code);
          break;
        }
        if (!reference_utf8(std::string_view(payload).substr(2))) {
          fail(ws::error::bad_close_reason);
          break;
        }
        log.push_back(close_entry(static_cast<std::uint16_t>(code), payload.substr(2)));
      }
      closed = true;
    } else if (fin) {
      log.push_back("M" + message);
      message.clear();
      in_message = false;
      message_size = 0;
    }
  }
  if (p.options.stream && !message.empty()) {
    log.push_back("R" + message);
  }
  return log;
}

// The most a framer may hold: a header or a control payload in stream mode; message mode
// adds the message so far.
std::size_t max_bound(const params& p) {
  const std::size_t base = ws::max_control_payload;
  if (p.options.stream) {
    return base;
  }
  return base + static_cast<std::size_t>(std::min<std::uint64_t>(
                    p.options.max_message_size, std::numeric_limits<std::size_t>::max() / 2));
}

// Decodes `input` with a framer, cut into chunks; checks the feed contract, the memory bound,
// sticky errors, and that pings and closes can be answered.
event_log decode(std::span<const std::byte> input, const params& p, std::size_t a, std::size_t b) {
  std::vector<std::byte> copy(input.begin(), input.end()); // masked payloads unmask in place
  ws::framer f(p.role, p.options);
  event_log log;
  std::string partial;
  const std::size_t bound = max_bound(p);
  std::size_t fed = 0;
  bool closed = false;
  for (std::span<std::byte> chunk : chunks(std::span<std::byte>(copy), a, b)) {
    while (!chunk.empty()) {
      auto r = f.feed(chunk);
      if (!r) {
        const auto ec = r.error();
        require(ec.category() == ws::websocket_category());
        require(ws::close_code(ec) != ws::close_code_value::internal_error);
        require((ec == ws::error::closed) == closed);
        auto again = f.feed(chunk);
        require(!again && again.error() == ec);
        log.push_back(error_entry(ec));
        if (p.options.stream && !partial.empty()) {
          log.push_back("R" + partial);
        }
        return log;
      }
      require(!closed);
      require(r->consumed >= 1 && r->consumed <= chunk.size());
      require(r->event.has_value() || r->consumed == chunk.size());
      fed += r->consumed;
      require(f.buffered() <= bound && f.buffered() <= fed);
      if (r->event) {
        if (const auto* d = std::get_if<ws::data_received>(&*r->event)) {
          require(d->message_end || !d->bytes.empty());
          require(p.options.stream || d->message_end);
          partial += text(d->bytes);
          if (d->message_end) {
            log.push_back("M" + partial);
            partial.clear();
          }
        } else if (const auto* ping = std::get_if<ws::ping_received>(&*r->event)) {
          require(ping->payload.size() <= ws::max_control_payload);
          log.push_back("P" + text(ping->payload));
          auto pong = f.pong(ping->payload, key_for(fed));
          require(pong.has_value() &&
                  pong->size == ping->payload.size() + (p.role == ws::role::client ? 6 : 2));
        } else if (const auto* pong = std::get_if<ws::pong_received>(&*r->event)) {
          log.push_back("O" + text(pong->payload));
        } else if (const auto* cl = std::get_if<ws::close_received>(&*r->event)) {
          log.push_back(close_entry(cl->code, cl->reason));
          require(f.close_received());
          closed = true;
          // Answered once (§5.5.1), echoing the code.
          auto reply = f.close(cl->code, {}, key_for(fed));
          require(reply.has_value() && f.close_sent());
          auto twice = f.close(cl->code, {}, key_for(fed));
          require(!twice && twice.error() == amqp::errc::invalid_state);
        }
      }
      chunk = chunk.subspan(r->consumed);
    }
  }
  if (p.options.stream && !partial.empty()) {
    log.push_back("R" + partial);
  }
  return log;
}

// Encodes every complete event of `log` as the peer would (its role, single frames, new
// keys), decodes the result with a fresh framer without limits, and requires the same log.
void check_reencode(const event_log& log, const params& p) {
  const ws::role peer = p.role == ws::role::client ? ws::role::server : ws::role::client;
  ws::framer sender(peer);
  std::vector<std::byte> wire;
  event_log want;
  for (const std::string& e : log) {
    const auto body = bytes(std::string_view(e).substr(1));
    const auto key = key_for(wire.size());
    if (e[0] == 'M') {
      std::array<std::byte, ws::max_frame_header_size> h{};
      auto n = sender.write_data_header(h, body.size(), key);
      require(n.has_value() && *n == ws::frame_header_size(body.size(), peer == ws::role::client));
      wire.insert(wire.end(), h.begin(), h.begin() + static_cast<std::ptrdiff_t>(*n));
      const std::size_t start = wire.size();
      wire.insert(wire.end(), body.begin(), body.end());
      if (peer == ws::role::client) {
        ws::mask(std::span(wire).subspan(start), key);
      }
    } else if (e[0] == 'P' || e[0] == 'O') {
      auto f = e[0] == 'P' ? sender.ping(body, key) : sender.pong(body, key);
      require(f.has_value());
      wire.insert(wire.end(), f->bytes().begin(), f->bytes().end());
    } else if (e[0] == 'C') {
      const std::string_view c = std::string_view(e).substr(1);
      const std::size_t slash = c.find('/');
      std::optional<std::uint16_t> code;
      if (c.substr(0, slash) != "-") {
        code = static_cast<std::uint16_t>(std::stoul(std::string(c.substr(0, slash))));
      }
      auto f = sender.close(code, c.substr(slash + 1), key);
      require(f.has_value());
      wire.insert(wire.end(), f->bytes().begin(), f->bytes().end());
    } else {
      continue; // errors and unfinished messages are not re-encoded
    }
    want.push_back(e);
  }
  params q = p;
  q.options.max_frame_size = std::numeric_limits<std::uint64_t>::max();
  q.options.max_message_size = std::numeric_limits<std::uint64_t>::max();
  require(decode(wire, q, 0, 0) == want);
  require(decode(wire, q, 1, 3) == want);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  amqp::fuzz::data_provider dp(data, size);
  params p;
  const std::uint8_t flags = dp.u8();
  p.role = (flags & 1U) != 0 ? ws::role::server : ws::role::client;
  p.options.stream = (flags & 2U) == 0;
  p.handshake = (flags & 4U) != 0;
  p.options.max_frame_size = limit_of(dp.u16());
  p.options.max_message_size = limit_of(dp.u16());
  p.chunk_a = dp.u8();
  p.chunk_b = dp.u8();
  const std::uint8_t h = dp.u8();
  p.max_header_size = h == 0 ? 8192 : std::size_t{32} * h;
  std::span<const std::byte> in = dp.rest();

  if (p.handshake) {
    handshake_outcome whole;
    handshake_outcome cut;
    if (p.role == ws::role::client) {
      auto a = make_client(p.max_header_size);
      auto b = make_client(p.max_header_size);
      whole = feed_handshake(a, in, 0, 0);
      cut = feed_handshake(b, in, p.chunk_a, p.chunk_b);
      require(a.status() == b.status() && a.header_count() == b.header_count());
      require(!a.done() || a.status() == 101);
    } else {
      ws::server_options o;
      o.paths = {"/$iothub/websocket", "/$servicebus/websocket"};
      o.max_header_size = p.max_header_size;
      ws::server_handshake a(o);
      ws::server_handshake b(o);
      whole = feed_handshake(a, in, 0, 0);
      cut = feed_handshake(b, in, p.chunk_a, p.chunk_b);
      require(a.response() == b.response() && a.path() == b.path());
      if (a.status() != 0) {
        check_server_response(a);
      }
    }
    require(whole.log == cut.log);
    if (!whole.done) {
      return 0;
    }
    in = in.subspan(whole.consumed);
  }

  const event_log want = reference(in, p);
  require(decode(in, p, 0, 0) == want);
  require(decode(in, p, p.chunk_a, p.chunk_b) == want);
  check_reencode(want, p);
  return 0;
}
