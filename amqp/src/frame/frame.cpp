// Frames (AMQP 1.0 §2.3, §5.3.1): header checks, reassembly, decoding and encoding.
#include "frame/frame.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <type_traits>

#include "amqp/assert.hpp"
#include "codec/reader.hpp"
#include "codec/writer.hpp"

namespace amqp::detail {

frame_header parse_frame_header(std::span<const std::byte, frame_header_size> in) noexcept {
  frame_header h;
  h.size = load_be32(in.data());
  h.doff = std::to_integer<std::uint8_t>(in[4]);
  h.type = std::to_integer<std::uint8_t>(in[5]);
  h.channel = load_be16(in.data() + 6);
  return h;
}

void write_frame_header(const frame_header& h,
                        std::span<std::byte, frame_header_size> out) noexcept {
  writer w(out);
  w.u32(h.size);
  w.u8(h.doff);
  w.u8(h.type);
  w.u16(h.channel);
}

namespace {

// The structural rules of AMQP 1.0 §2.3.1, which hold whatever the type and the limits.
result<void> check_layout(const frame_header& h) noexcept {
  // §2.3.1 SIZE: "The frame is malformed if the size is less than the size of the frame
  // header (8 bytes)."
  if (h.size < frame_header_size) {
    return errc::framing_error;
  }
  // §2.3.1 DOFF: "Due to the mandatory 8-byte frame header, the frame is malformed if the
  // value is less than 2."
  if (h.doff < 2) {
    return errc::framing_error;
  }
  // The body starts at DOFF * 4, which must lie within the frame.
  if (std::uint32_t{h.doff} * 4U > h.size) {
    return errc::framing_error;
  }
  return {};
}

} // namespace

result<void> check_frame_header(const frame_header& h, frame_type expected,
                                const frame_limits& limits) noexcept {
  if (auto r = check_layout(h); !r) {
    return r;
  }
  // §2.3.1 TYPE: 0x00 is an AMQP frame, 0x01 a SASL frame. SASL frames are exchanged only
  // between the SASL header and the outcome (§5.3.2), AMQP frames only after the AMQP
  // header (§2.2); anything else, including undefined codes, cannot be interpreted.
  if (h.type != static_cast<std::uint8_t>(expected)) {
    return errc::unexpected_frame_type;
  }
  // §2.7.1 max-frame-size: "A peer that receives an oversized frame MUST close the
  // connection with the framing-error error-code." §5.3.1: SASL frames are limited to
  // MIN-MAX-FRAME-SIZE.
  const std::uint32_t limit =
      expected == frame_type::sasl ? limits.sasl_max_frame_size : limits.max_frame_size;
  if (h.size > limit) {
    return errc::frame_too_large;
  }
  return {};
}

result<frame_view> decode_frame(std::span<const std::byte> bytes,
                                const decode_limits& limits) noexcept {
  if (frame_header_size > bytes.size()) {
    return errc::framing_error;
  }
  const frame_header h = parse_frame_header(bytes.first<frame_header_size>());
  if (auto r = check_layout(h); !r) {
    return r.error();
  }
  if (h.size != bytes.size()) {
    return errc::framing_error;
  }
  if (h.type != static_cast<std::uint8_t>(frame_type::amqp) &&
      h.type != static_cast<std::uint8_t>(frame_type::sasl)) {
    return errc::unexpected_frame_type;
  }
  frame_view f;
  f.type = static_cast<frame_type>(h.type);
  f.bytes = bytes;
  // §2.3.1: the extended header, between byte 8 and DOFF * 4, is skipped.
  const auto body = bytes.subspan(std::size_t{h.doff} * 4U);

  if (f.type == frame_type::sasl) {
    // §5.3.1: "Receipt of an empty frame is an irrecoverable error."
    if (body.empty()) {
      return errc::framing_error;
    }
    std::size_t n = 0;
    auto v = decode_value(body, n, limits);
    if (!v) {
      return v.error();
    }
    // §5.3.1: the body of a SASL frame holds exactly one AMQP type.
    if (n != body.size()) {
      return errc::decode_error;
    }
    auto s = decode_sasl_frame(*v);
    if (!s) {
      return s.error();
    }
    // §5.3.1: bytes 6 and 7 of a SASL frame header are ignored.
    f.channel = 0;
    f.body = *s;
    return f;
  }

  f.channel = h.channel;
  // §2.3.2: "An AMQP frame with no body MAY be used to generate artificial traffic as
  // needed to satisfy any negotiated idle timeout interval" (§2.4.5).
  if (body.empty()) {
    f.body = heartbeat{};
    return f;
  }
  // §2.3.2: the body is a performative, encoded as a described type, followed by the
  // payload.
  std::size_t n = 0;
  auto v = decode_value(body, n, limits);
  if (!v) {
    return v.error();
  }
  auto p = decode_performative(*v);
  if (!p) {
    return p.error();
  }
  f.body = *p;
  f.payload = body.subspan(n);
  return f;
}

frame_reader::frame_reader(const frame_limits& limits, frame_type expected,
                           std::pmr::memory_resource* memory) noexcept
    : limits_(limits), expected_(expected), memory_(memory) {
  AMQP_ASSERT(memory_ != nullptr);
}

frame_reader::~frame_reader() {
  if (buf_ != nullptr) {
    memory_->deallocate(buf_, capacity_, 1);
  }
}

void frame_reader::set_expected_type(frame_type t) noexcept {
  AMQP_ASSERT(at_frame_boundary());
  expected_ = t;
}

void frame_reader::release_buffer() noexcept {
  AMQP_ASSERT(at_frame_boundary() || error_); // after an error the buffer is never read
  if (buf_ != nullptr) {
    memory_->deallocate(buf_, capacity_, 1);
    buf_ = nullptr;
    capacity_ = 0;
  }
}

result<frame_reader::read_result> frame_reader::fail(std::error_code ec) noexcept {
  error_ = ec;
  return ec;
}

result<void> frame_reader::grow(std::size_t keep, std::size_t need) noexcept {
  if (need <= capacity_) {
    return {};
  }
  // The buffer grows with the bytes actually received, not with the SIZE a header
  // announces: a peer that sends the header of a large frame and stalls holds only what it
  // sent. Doubling keeps the copying linear; the frame size limit in force caps the buffer
  // (need never exceeds it: SIZE was checked against it first).
  const std::uint32_t limit =
      expected_ == frame_type::sasl ? limits_.sasl_max_frame_size : limits_.max_frame_size;
  const std::size_t doubled = std::max<std::size_t>(capacity_ * 2, min_max_frame_size);
  const std::size_t want = std::max(need, std::min<std::size_t>(doubled, limit));
  std::byte* fresh = nullptr;
#if defined(__cpp_exceptions)
  try {
    fresh = static_cast<std::byte*>(memory_->allocate(want, 1));
  } catch (const std::bad_alloc&) {
    return errc::out_of_memory;
  }
#else
  fresh = static_cast<std::byte*>(memory_->allocate(want, 1));
#endif
  if (fresh == nullptr) {
    return errc::out_of_memory;
  }
  if (keep > 0) {
    std::memcpy(fresh, buf_, keep);
  }
  if (buf_ != nullptr) {
    memory_->deallocate(buf_, capacity_, 1);
  }
  buf_ = fresh;
  capacity_ = want;
  return {};
}

// The bytes of a frame above the limit kept in skim mode: up to the limit for its type, and
// at least its header.
static std::size_t skim_prefix(const frame_header& h, frame_type t,
                               const frame_limits& l) noexcept {
  const std::size_t limit = t == frame_type::sasl ? l.sasl_max_frame_size : l.max_frame_size;
  return std::min<std::size_t>(h.size, std::max(limit, frame_header_size));
}

result<frame_reader::read_result> frame_reader::feed(std::span<const std::byte> in) noexcept {
  if (error_) {
    return error_;
  }
  read_result out;

  // A whole frame at the front of the chunk is decoded where it lies: no copy. (A partial
  // one takes the buffered path below, which checks its header again.)
  if (have_ == 0 && in.size() >= frame_header_size) {
    const frame_header h = parse_frame_header(in.first<frame_header_size>());
    last_header_ = h;
    const auto r = check_frame_header(h, expected_, limits_);
    const bool oversized = !r && skim_ && r.error() == errc::frame_too_large;
    if (!r && !oversized) {
      return fail(r.error());
    }
    if (in.size() >= h.size) {
      out.consumed = h.size;
      if (oversized) {
        out.oversized = oversized_frame{h, in.first(skim_prefix(h, expected_, limits_))};
        return out;
      }
      auto f = decode_frame(in.first(h.size), limits_.decode);
      if (!f) {
        return fail(f.error());
      }
      out.frame = *f;
      return out;
    }
  }

  // The header: collect its 8 bytes, to check it before buffering any of the body.
  if (have_ < frame_header_size) {
    const std::size_t take = std::min(frame_header_size - have_, in.size());
    if (take > 0) {
      std::memcpy(header_.data() + have_, in.data(), take);
    }
    have_ += take;
    out.consumed = take;
    if (have_ < frame_header_size) {
      return out;
    }
    const frame_header h = parse_frame_header(header_);
    last_header_ = h;
    const auto r = check_frame_header(h, expected_, limits_);
    oversized_ = !r && skim_ && r.error() == errc::frame_too_large;
    if (!r && !oversized_) {
      return fail(r.error());
    }
    size_ = h.size;
    keep_ = oversized_ ? skim_prefix(h, expected_, limits_) : size_;
    if (size_ == frame_header_size) {
      // An empty frame (a heartbeat) is complete with its header: no buffer needed.
      have_ = 0;
      keep_ = frame_header_size;
      if (oversized_) {
        out.oversized = oversized_frame{h, header_};
        return out;
      }
      auto f = decode_frame(header_, limits_.decode);
      if (!f) {
        return fail(f.error());
      }
      out.frame = *f;
      return out;
    }
    const std::size_t first = std::min(keep_, frame_header_size + (in.size() - take));
    if (auto g = grow(0, first); !g) {
      return fail(g.error());
    }
    std::memcpy(buf_, header_.data(), frame_header_size);
  }

  // The body: copy what this chunk holds of it, up to the end of the frame; an oversized
  // frame's bytes past its prefix are only counted.
  const auto rest = in.subspan(out.consumed);
  const std::size_t take = std::min(size_ - have_, rest.size());
  const std::size_t stored = std::min(have_, keep_);
  const std::size_t store = std::min(take, keep_ - stored);
  if (auto g = grow(stored, stored + store); !g) {
    return fail(g.error());
  }
  if (store > 0) {
    std::memcpy(buf_ + stored, rest.data(), store);
  }
  have_ += take;
  out.consumed += take;
  if (have_ < size_) {
    return out;
  }
  have_ = 0;
  const std::size_t kept = keep_;
  keep_ = frame_header_size;
  if (oversized_) {
    out.oversized = oversized_frame{last_header_, std::span<const std::byte>(buf_, kept)};
    return out;
  }
  auto f = decode_frame(std::span<const std::byte>(buf_, size_), limits_.decode);
  if (!f) {
    return fail(f.error());
  }
  out.frame = *f;
  return out;
}

result<std::size_t> encode_heartbeat(std::span<std::byte> out) noexcept {
  if (frame_header_size > out.size()) {
    return errc::buffer_too_small;
  }
  std::copy(heartbeat_frame.begin(), heartbeat_frame.end(), out.begin());
  return frame_header_size;
}

namespace {

// The sizes of a frame: its body (a performative or SASL frame body) and the whole frame.
struct frame_sizes {
  std::size_t body = 0;
  std::size_t frame = 0;
};

// Sizes a frame of `body` followed by `payload_size` bytes; a SIZE field holds at most
// 2^32 - 1.
template <class Body>
result<frame_sizes> size_frame(const Body& body, std::size_t payload_size) noexcept {
  constexpr std::size_t max_size = std::numeric_limits<std::uint32_t>::max();
  auto body_size = encoded_size(body);
  if (!body_size) {
    return body_size.error();
  }
  if (payload_size > max_size || *body_size + payload_size > max_size - frame_header_size) {
    return errc::invalid_argument;
  }
  return frame_sizes{*body_size, frame_header_size + *body_size + payload_size};
}

// Writes a DOFF 2 header, `body` and `payload` into `out`, which holds exactly `sizes.frame`.
template <class Body>
result<void> write_frame(frame_type type, std::uint16_t channel, const Body& body,
                         const frame_sizes& sizes, std::span<const std::byte> payload,
                         std::span<std::byte> out) noexcept {
  frame_header h;
  h.size = static_cast<std::uint32_t>(sizes.frame);
  h.type = static_cast<std::uint8_t>(type);
  h.channel = channel;
  write_frame_header(h, out.first<frame_header_size>());
  auto w = encode(body, out.subspan(frame_header_size, sizes.body));
  if (!w) {
    return w.error();
  }
  AMQP_ASSERT(*w == sizes.body);
  if (!payload.empty()) {
    std::memcpy(out.data() + frame_header_size + sizes.body, payload.data(), payload.size());
  }
  return {};
}

template <class Body>
result<std::size_t> encode_any(frame_type type, std::uint16_t channel, const Body& body,
                               std::span<const std::byte> payload,
                               std::span<std::byte> out) noexcept {
  auto sizes = size_frame(body, payload.size());
  if (!sizes) {
    return sizes.error();
  }
  if (sizes->frame > out.size()) {
    return errc::buffer_too_small;
  }
  if (auto w = write_frame(type, channel, body, *sizes, payload, out.first(sizes->frame)); !w) {
    return w.error();
  }
  return sizes->frame;
}

template <class Body>
result<void> append_any(frame_type type, std::uint16_t channel, const Body& body,
                        std::span<const std::byte> payload, std::vector<std::byte>& out) {
  auto sizes = size_frame(body, payload.size());
  if (!sizes) {
    return sizes.error();
  }
  const std::size_t at = out.size();
  out.resize(at + sizes->frame);
  auto w = write_frame(type, channel, body, *sizes, payload, std::span<std::byte>(out).subspan(at));
  if (!w) {
    out.resize(at);
  }
  return w;
}

} // namespace

result<std::size_t> encoded_frame_size(const performative& p, std::size_t payload_size) noexcept {
  auto sizes = size_frame(p, payload_size);
  if (!sizes) {
    return sizes.error();
  }
  return sizes->frame;
}

result<std::size_t> encoded_frame_size(const sasl_frame& f) noexcept {
  auto sizes = size_frame(f, 0);
  if (!sizes) {
    return sizes.error();
  }
  return sizes->frame;
}

result<std::size_t> encode_frame(std::uint16_t channel, const performative& p,
                                 std::span<const std::byte> payload,
                                 std::span<std::byte> out) noexcept {
  return encode_any(frame_type::amqp, channel, p, payload, out);
}

result<std::size_t> encode_frame(const sasl_frame& f, std::span<std::byte> out) noexcept {
  // §5.3.1: bytes 6 and 7 are ignored and SHOULD be 0x00; DOFF SHOULD be 0x02.
  return encode_any(frame_type::sasl, 0, f, {}, out);
}

result<void> append_frame(std::uint16_t channel, const performative& p,
                          std::span<const std::byte> payload, std::vector<std::byte>& out) {
  return append_any(frame_type::amqp, channel, p, payload, out);
}

result<void> append_frame(const sasl_frame& f, std::vector<std::byte>& out) {
  return append_any(frame_type::sasl, 0, f, {}, out);
}

result<std::size_t> transfer_payload_capacity(const transfer& t,
                                              std::uint32_t max_frame_size) noexcept {
  auto n = encoded_size(t);
  if (!n) {
    return n.error();
  }
  // §2.7.1 max-frame-size bounds the whole frame, header included.
  const std::size_t overhead = frame_header_size + *n;
  if (overhead > max_frame_size) {
    return errc::frame_too_large;
  }
  return std::size_t{max_frame_size} - overhead;
}

result<transfer_frame_plan> plan_transfer_frame(const transfer& t, std::size_t remaining,
                                                std::uint32_t max_frame_size) noexcept {
  transfer last = t;
  last.more = false;
  auto cap_last = transfer_payload_capacity(last, max_frame_size);
  if (!cap_last && cap_last.error() != errc::frame_too_large) {
    return cap_last.error();
  }
  if (cap_last && remaining <= *cap_last) {
    return transfer_frame_plan{remaining, false};
  }
  // §2.7.5 more: the message continues in later transfer frames. Setting the flag may make
  // the performative longer (the field is written, not dropped as a default), so the fit is
  // computed again with it set.
  transfer cont = t;
  cont.more = true;
  auto cap_more = transfer_payload_capacity(cont, max_frame_size);
  if (!cap_more) {
    return cap_more.error();
  }
  if (*cap_more == 0) {
    return errc::frame_too_large;
  }
  return transfer_frame_plan{std::min(*cap_more, remaining), true};
}

} // namespace amqp::detail
