// The RFC 6455 framer, sans-IO: frame encoding for gather writes, masking, and an incremental
// decoder for either role with bounded memory.
#include <algorithm>

#include "amqp/assert.hpp"
#include "amqp/transport/websocket.hpp"

namespace amqp::transport::ws {
namespace {

class websocket_category_impl final : public std::error_category {
public:
  [[nodiscard]] const char* name() const noexcept override { return "websocket"; }
  [[nodiscard]] std::string message(int ev) const override {
    switch (static_cast<error>(ev)) {
    case error::header_too_large:
      return "HTTP header block too large";
    case error::bad_http:
      return "malformed HTTP message";
    case error::bad_method:
      return "HTTP method is not GET";
    case error::bad_http_version:
      return "HTTP version below 1.1";
    case error::bad_host:
      return "missing or repeated Host header";
    case error::bad_upgrade:
      return "missing Upgrade: websocket or Connection: Upgrade";
    case error::bad_version:
      return "Sec-WebSocket-Version is not 13";
    case error::bad_key:
      return "Sec-WebSocket-Key is not the base64 of 16 bytes";
    case error::bad_subprotocol:
      return "WebSocket subprotocol not agreed";
    case error::path_not_found:
      return "WebSocket path not found";
    case error::bad_status:
      return "WebSocket upgrade refused (status is not 101)";
    case error::bad_accept:
      return "Sec-WebSocket-Accept missing or wrong";
    case error::bad_extension:
      return "WebSocket extension not offered";
    case error::reserved_bits:
      return "WebSocket frame with reserved bits set";
    case error::bad_opcode:
      return "WebSocket frame with a reserved opcode";
    case error::bad_mask:
      return "WebSocket frame masking wrong for the sender's role";
    case error::bad_length:
      return "WebSocket frame length not minimally encoded or above 2^63-1";
    case error::bad_control_frame:
      return "WebSocket control frame fragmented or above 125 bytes";
    case error::bad_continuation:
      return "WebSocket continuation frame out of sequence";
    case error::bad_close_code:
      return "WebSocket close frame with an invalid status code";
    case error::bad_close_reason:
      return "WebSocket close reason is not UTF-8";
    case error::text_frame:
      return "WebSocket text frame (AMQP is binary only)";
    case error::message_too_big:
      return "WebSocket message too big";
    case error::closed:
      return "WebSocket input after the close frame";
    }
    return "unknown websocket error";
  }
};

constexpr std::uint64_t max_payload_size = (std::uint64_t{1} << 63U) - 1;

bool is_control(opcode op) noexcept {
  return (static_cast<unsigned>(op) & 0x8U) != 0;
}

std::uint8_t u8(std::byte b) noexcept {
  return std::to_integer<std::uint8_t>(b);
}

// RFC 3629 §4: well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
bool is_utf8(std::span<const std::byte> s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    const unsigned c = u8(s[i]);
    std::size_t n = 0;
    unsigned lo = 0x80;
    unsigned hi = 0xBF;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c == 0xE0) {
      n = 2;
      lo = 0xA0;
    } else if (c == 0xED) {
      n = 2;
      hi = 0x9F;
    } else if (c >= 0xE1 && c <= 0xEF) {
      n = 2;
    } else if (c == 0xF0) {
      n = 3;
      lo = 0x90;
    } else if (c == 0xF4) {
      n = 3;
      hi = 0x8F;
    } else if (c >= 0xF1 && c <= 0xF3) {
      n = 3;
    } else {
      return false;
    }
    if (n > s.size() - i - 1) {
      return false;
    }
    // The first continuation byte has the narrowed range, the others 80-BF.
    for (std::size_t k = 1; k <= n; ++k) {
      const unsigned b = u8(s[i + k]);
      if (b < (k == 1 ? lo : 0x80U) || b > (k == 1 ? hi : 0xBFU)) {
        return false;
      }
    }
    i += n + 1;
  }
  return true;
}

} // namespace

const std::error_category& websocket_category() noexcept {
  static const websocket_category_impl category;
  return category;
}

std::uint16_t close_code(std::error_code ec) noexcept {
  if (ec.category() != websocket_category()) {
    return close_code_value::internal_error;
  }
  switch (static_cast<error>(ec.value())) {
  case error::reserved_bits:
  case error::bad_opcode:
  case error::bad_mask:
  case error::bad_length:
  case error::bad_control_frame:
  case error::bad_continuation:
  case error::bad_close_code:
    return close_code_value::protocol_error;
  case error::bad_close_reason:
    return close_code_value::invalid_payload;
  case error::text_frame:
    return close_code_value::unsupported_data;
  case error::message_too_big:
    return close_code_value::message_too_big;
  case error::closed:
    return close_code_value::normal;
  default:
    return close_code_value::internal_error;
  }
}

bool is_valid_close_code(std::uint16_t code) noexcept {
  // RFC 6455 §7.4.1 defines 1000-1003 and 1007-1011 (1004 is reserved; 1005, 1006 and 1015
  // must not be sent); the IANA registry (§11.7) adds 1012-1014. §7.4.2: 0-999 are unused,
  // 1000-2999 are for the protocol (so the unassigned ones are invalid), 3000-4999 are for
  // libraries, frameworks and applications.
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

std::size_t frame_header_size(std::uint64_t payload_size, bool masked) noexcept {
  // RFC 6455 §5.2: 7-bit length up to 125, 126 + 16 bits up to 65535, else 127 + 64 bits.
  std::size_t n = 2;
  if (payload_size > 0xFFFF) {
    n += 8;
  } else if (payload_size > 125) {
    n += 2;
  }
  return masked ? n + 4 : n;
}

result<std::size_t> write_frame_header(const frame_header& h,
                                       std::span<std::byte, max_frame_header_size> out) {
  // §5.2: "the most significant bit MUST be 0" of a 64-bit length.
  if (h.payload_size > max_payload_size) {
    return errc::invalid_argument;
  }
  // §5.5: control frames have at most 125 bytes of payload and are never fragmented.
  if (is_control(h.op) && (h.payload_size > max_control_payload || !h.fin)) {
    return errc::invalid_argument;
  }
  std::size_t n = 0;
  out[n++] = static_cast<std::byte>((h.fin ? 0x80U : 0U) | static_cast<unsigned>(h.op));
  const unsigned mask_bit = h.mask ? 0x80U : 0U;
  // §5.2: "the minimal number of bytes MUST be used to encode the length".
  if (h.payload_size <= 125) {
    out[n++] = static_cast<std::byte>(mask_bit | static_cast<unsigned>(h.payload_size));
  } else if (h.payload_size <= 0xFFFF) {
    out[n++] = static_cast<std::byte>(mask_bit | 126U);
    for (unsigned k = 2; k-- > 0;) {
      out[n++] = static_cast<std::byte>((h.payload_size >> (8 * k)) & 0xFFU);
    }
  } else {
    out[n++] = static_cast<std::byte>(mask_bit | 127U);
    for (unsigned k = 8; k-- > 0;) {
      out[n++] = static_cast<std::byte>((h.payload_size >> (8 * k)) & 0xFFU);
    }
  }
  if (h.mask) {
    for (std::byte b : *h.mask) {
      out[n++] = b;
    }
  }
  return n;
}

void mask(std::span<std::byte> bytes, const masking_key& key, std::uint64_t offset) noexcept {
  // §5.3: transformed-octet-i = original-octet-i XOR masking-key-octet-(i MOD 4).
  auto j = static_cast<std::size_t>(offset % 4);
  for (std::byte& b : bytes) {
    b ^= key[j];
    j = (j + 1) & 3U;
  }
}

result<void> append_frame(std::vector<std::byte>& out, opcode op, bool fin,
                          std::span<const std::byte> payload,
                          const std::optional<masking_key>& key) {
  std::array<std::byte, max_frame_header_size> header{};
  auto n = write_frame_header(frame_header{fin, op, payload.size(), key}, header);
  if (!n) {
    return n.error();
  }
  const std::size_t start = out.size();
  out.insert(out.end(), header.begin(), header.begin() + static_cast<std::ptrdiff_t>(*n));
  out.insert(out.end(), payload.begin(), payload.end());
  if (key) {
    mask(std::span(out).subspan(start + *n), *key);
  }
  return {};
}

// ---------------------------------------------------------------------------------------
// framer
// ---------------------------------------------------------------------------------------

framer::framer(role local, const framer_options& opts) : role_(local), opts_(opts) {}

std::size_t framer::buffered() const noexcept {
  std::size_t n = header_have_ + message_.size();
  if (reading_payload_ && is_control(op_)) {
    n += static_cast<std::size_t>(payload_done_);
  }
  return n;
}

std::error_code framer::fail(error e) noexcept {
  error_ = make_error_code(e);
  return error_;
}

// The checks that need only the first two header bytes, so that a bad frame fails before
// the rest of its header arrives.
std::optional<error> framer::check_first_bytes() const noexcept {
  const unsigned b0 = u8(header_[0]);
  const unsigned b1 = u8(header_[1]);
  // §5.2: "RSV1, RSV2, RSV3: MUST be 0 unless an extension is negotiated".
  if ((b0 & 0x70U) != 0) {
    return error::reserved_bits;
  }
  const unsigned op = b0 & 0x0FU;
  const bool fin = (b0 & 0x80U) != 0;
  const unsigned len7 = b1 & 0x7FU;
  // §5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail the WebSocket
  // Connection_": 0x3-0x7 and 0xB-0xF are reserved.
  if (op > 0xA || (op > 0x2 && op < 0x8)) {
    return error::bad_opcode;
  }
  // §5.1: "a client MUST mask all frames that it sends to the server ... A server MUST close
  // the connection upon receiving a frame that is not masked"; "A client MUST close a
  // connection if it detects a masked frame."
  const bool masked = (b1 & 0x80U) != 0;
  if (masked != (role_ == role::server)) {
    return error::bad_mask;
  }
  if ((op & 0x8U) != 0) {
    // §5.5: "All control frames MUST have a payload length of 125 bytes or less and MUST NOT
    // be fragmented."
    if (!fin || len7 > 125) {
      return error::bad_control_frame;
    }
    return std::nullopt;
  }
  // §5.4: a fragmented message is a start frame (opcode != 0) and continuation frames
  // (opcode 0); "the fragments of one message MUST NOT be interleaved between the fragments
  // of another message".
  if (op == 0 && !in_message_) {
    return error::bad_continuation;
  }
  if (op != 0 && in_message_) {
    return error::bad_continuation;
  }
  // AMQP is carried in binary messages; §7.4.1: 1003 for "a type of data it cannot accept".
  if (op == static_cast<unsigned>(opcode::text)) {
    return error::text_frame;
  }
  return std::nullopt;
}

// Reads the complete header in header_ and starts the frame, checking the length.
std::optional<error> framer::start_frame() noexcept {
  const unsigned b0 = u8(header_[0]);
  const unsigned b1 = u8(header_[1]);
  fin_ = (b0 & 0x80U) != 0;
  op_ = static_cast<opcode>(b0 & 0x0FU);
  const unsigned len7 = b1 & 0x7FU;
  std::size_t at = 2;
  std::uint64_t size = len7;
  if (len7 == 126) {
    size = (std::uint64_t{u8(header_[2])} << 8U) | u8(header_[3]);
    at = 4;
    // §5.2: "the minimal number of bytes MUST be used to encode the length".
    if (size <= 125) {
      return error::bad_length;
    }
  } else if (len7 == 127) {
    size = 0;
    for (std::size_t k = 2; k < 10; ++k) {
      size = (size << 8U) | u8(header_[k]);
    }
    at = 10;
    // §5.2: "the most significant bit MUST be 0"; and the minimal encoding.
    if (size > max_payload_size || size <= 0xFFFF) {
      return error::bad_length;
    }
  }
  key_.reset();
  if ((b1 & 0x80U) != 0) {
    masking_key k{};
    std::copy_n(header_.begin() + static_cast<std::ptrdiff_t>(at), 4, k.begin());
    key_ = k;
  }
  if (!is_control(op_)) {
    // §10.4: limits on frame and message size, checked before any payload is buffered.
    // message_size_ counts the fragments before this one (it is 0 for a start frame).
    // message_size_ <= max_message_size holds, by this very check on the earlier fragments.
    if (size > opts_.max_frame_size || size > opts_.max_message_size - message_size_) {
      return error::message_too_big;
    }
    message_size_ += size;
    in_message_ = true;
  }
  payload_size_ = size;
  payload_done_ = 0;
  reading_payload_ = true;
  header_have_ = 0;
  return std::nullopt;
}

// The frame's payload is complete (`piece` is its last part, for data frames): returns the
// event it makes, if any.
result<std::optional<frame_event>> framer::end_of_frame_payload(std::span<const std::byte> piece) {
  reading_payload_ = false;
  const std::span<const std::byte> payload(control_.data(),
                                           static_cast<std::size_t>(payload_size_));
  switch (op_) {
  case opcode::ping:
    return std::optional<frame_event>{ping_received{payload}};
  case opcode::pong:
    return std::optional<frame_event>{pong_received{payload}};
  case opcode::close: {
    // §5.5.1: an optional body: a 2-byte status code, then a UTF-8 reason.
    ws::close_received ev;
    if (payload.size() == 1) {
      return fail(error::bad_close_code);
    }
    if (payload.size() >= 2) {
      const auto code =
          static_cast<std::uint16_t>((unsigned{u8(payload[0])} << 8U) | u8(payload[1]));
      // §7.4: a code that must not appear on the wire is a protocol error.
      if (!is_valid_close_code(code)) {
        return fail(error::bad_close_code);
      }
      // §8.1: a reason that is not UTF-8 fails the connection (1007, §7.4.1).
      const auto reason = payload.subspan(2);
      if (!is_utf8(reason)) {
        return fail(error::bad_close_reason);
      }
      ev.code = code;
      ev.reason = std::string_view(reinterpret_cast<const char*>(reason.data()), reason.size());
    }
    close_received_ = true;
    return std::optional<frame_event>{ev};
  }
  default:
    break;
  }
  // A data frame: the message ends with a final frame (§5.4).
  if (!fin_) {
    if (opts_.stream && !piece.empty()) {
      return std::optional<frame_event>{data_received{piece, false}};
    }
    return std::optional<frame_event>{};
  }
  in_message_ = false;
  const std::uint64_t total = message_size_;
  message_size_ = 0;
  if (opts_.stream) {
    return std::optional<frame_event>{data_received{piece, true}};
  }
  if (message_.empty()) {
    // The whole message is this one frame, in the input: no copy.
    AMQP_ASSERT(piece.size() == total);
    (void)total; // read by the assertion only
    return std::optional<frame_event>{data_received{piece, true}};
  }
  message_delivered_ = true;
  return std::optional<frame_event>{data_received{message_, true}};
}

result<feed_result> framer::feed(std::span<std::byte> in) {
  if (error_) {
    return error_;
  }
  // §5.5.1: nothing follows a close frame.
  if (close_received_) {
    return make_error_code(error::closed);
  }
  if (message_delivered_) {
    message_.clear();
    message_delivered_ = false;
  }
  std::size_t pos = 0;
  while (pos < in.size()) {
    if (!reading_payload_) {
      // The header (§5.2): 2 bytes, then 0, 2 or 8 length bytes, then 0 or 4 mask bytes.
      if (header_have_ < 2) {
        const std::size_t n = std::min(2 - header_have_, in.size() - pos);
        std::copy_n(in.begin() + static_cast<std::ptrdiff_t>(pos), n,
                    header_.begin() + static_cast<std::ptrdiff_t>(header_have_));
        header_have_ += n;
        pos += n;
        if (header_have_ < 2) {
          continue;
        }
        // A bad frame fails before the rest of its header arrives.
        if (auto e = check_first_bytes()) {
          return fail(*e);
        }
      }
      const unsigned b1 = u8(header_[1]);
      const unsigned len7 = b1 & 0x7FU;
      std::size_t need = 2;
      need += len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
      need += (b1 & 0x80U) != 0 ? 4 : 0;
      const std::size_t n = std::min(need - header_have_, in.size() - pos);
      std::copy_n(in.begin() + static_cast<std::ptrdiff_t>(pos), n,
                  header_.begin() + static_cast<std::ptrdiff_t>(header_have_));
      header_have_ += n;
      pos += n;
      if (header_have_ < need) {
        continue;
      }
      if (auto e = start_frame()) {
        return fail(*e);
      }
      if (payload_size_ == 0) {
        auto ev = end_of_frame_payload({});
        if (!ev) {
          return ev.error();
        }
        if (*ev) {
          return feed_result{pos, *ev};
        }
      }
      continue;
    }

    // The payload (§5.2), unmasked as it arrives (§5.3).
    AMQP_ASSERT(payload_done_ < payload_size_);
    AMQP_ASSERT(!is_control(op_) || payload_size_ <= max_control_payload);
    const auto left = payload_size_ - payload_done_;
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, in.size() - pos));
    const std::span<std::byte> piece = in.subspan(pos, n);
    if (key_) {
      mask(piece, *key_, payload_done_);
    }
    if (is_control(op_)) {
      std::copy(piece.begin(), piece.end(),
                control_.begin() + static_cast<std::ptrdiff_t>(payload_done_));
    } else if (!opts_.stream) {
      const bool whole_frame_here = payload_done_ == 0 && n == payload_size_;
      const bool single_frame_message = fin_ && message_.empty() && message_size_ == payload_size_;
      if (!(whole_frame_here && single_frame_message)) {
        message_.insert(message_.end(), piece.begin(), piece.end());
      }
    }
    payload_done_ += n;
    pos += n;
    if (payload_done_ < payload_size_) {
      // Stream mode hands over each piece at once.
      if (opts_.stream && !is_control(op_)) {
        return feed_result{pos, data_received{piece, false}};
      }
      continue;
    }
    auto ev = end_of_frame_payload(piece);
    if (!ev) {
      return ev.error();
    }
    if (*ev) {
      return feed_result{pos, *ev};
    }
  }
  return feed_result{pos, std::nullopt};
}

result<std::size_t> framer::write_data_header(std::span<std::byte, max_frame_header_size> out,
                                              std::uint64_t payload_size, const masking_key& key,
                                              bool fin) {
  // §5.5.1: "After sending a Close frame, the endpoint MUST NOT send any more data frames."
  if (close_sent_) {
    return errc::invalid_state;
  }
  // §5.4: the first frame of a message is binary, the others continuations.
  const opcode op = sending_fragments_ ? opcode::continuation : opcode::binary;
  std::optional<masking_key> m;
  if (role_ == role::client) {
    m = key; // §5.3: every client frame is masked
  }
  auto n = write_frame_header(frame_header{fin, op, payload_size, m}, out);
  if (n) {
    sending_fragments_ = !fin;
  }
  return n;
}

result<control_frame> framer::control(opcode op, std::span<const std::byte> payload,
                                      const masking_key& key) {
  if (close_sent_) {
    return errc::invalid_state;
  }
  if (payload.size() > max_control_payload) {
    return errc::invalid_argument;
  }
  std::optional<masking_key> m;
  if (role_ == role::client) {
    m = key;
  }
  control_frame f;
  auto n = write_frame_header(frame_header{true, op, payload.size(), m},
                              std::span(f.storage).first<max_frame_header_size>());
  if (!n) {
    return n.error();
  }
  std::copy(payload.begin(), payload.end(), f.storage.begin() + static_cast<std::ptrdiff_t>(*n));
  f.size = *n + payload.size();
  if (m) {
    mask(std::span(f.storage).subspan(*n, payload.size()), *m);
  }
  return f;
}

result<control_frame> framer::ping(std::span<const std::byte> payload, const masking_key& key) {
  return control(opcode::ping, payload, key);
}

result<control_frame> framer::pong(std::span<const std::byte> payload, const masking_key& key) {
  // §5.5.3: "A Pong frame sent in response to a Ping frame must have identical Application
  // data as found in the message body of the Ping frame being replied to."
  return control(opcode::pong, payload, key);
}

result<control_frame> framer::close(std::optional<std::uint16_t> code, std::string_view reason,
                                    const masking_key& key) {
  // §5.5.1: one close frame per endpoint.
  if (close_sent_) {
    return errc::invalid_state;
  }
  const auto reason_bytes = std::as_bytes(std::span(reason.data(), reason.size()));
  if (!code) {
    if (!reason.empty()) {
      return errc::invalid_argument;
    }
  } else if (!is_valid_close_code(*code) || reason.size() > max_control_payload - 2 ||
             !is_utf8(reason_bytes)) {
    return errc::invalid_argument;
  }
  std::array<std::byte, max_control_payload> body{};
  std::size_t n = 0;
  if (code) {
    body[0] = static_cast<std::byte>(*code >> 8U);
    body[1] = static_cast<std::byte>(*code & 0xFFU);
    std::copy(reason_bytes.begin(), reason_bytes.end(), body.begin() + 2);
    n = 2 + reason.size();
  }
  auto f = control(opcode::close, std::span(body).first(n), key);
  if (f) {
    close_sent_ = true;
  }
  return f;
}

} // namespace amqp::transport::ws
