// AMQP 1.0 frames (§2.3): the frame header, incremental reassembly of frames from a byte
// stream chunked arbitrarily, decoding of frame bodies (performatives §2.7, SASL frame bodies
// §5.3.3), and encoding of frames. Internal to the engine; sans-IO: bytes in, bytes out.
//
// Frame layout (AMQP 1.0 §2.3.1), all integers big-endian:
//
//   +0 SIZE (4 bytes) +4 DOFF (1) +5 TYPE (1) +6 type-specific (2) +8 extended header
//   +DOFF*4 frame body, up to SIZE
//
// For AMQP frames (TYPE 0x00, §2.3.2) bytes 6-7 are the channel and the body is a
// performative followed by an opaque payload (the message bytes of a transfer); an empty
// body is a heartbeat (§2.4.5). For SASL frames (TYPE 0x01, §5.3.1) bytes 6-7 are ignored
// and the body is exactly one SASL frame body.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <optional>
#include <span>
#include <system_error>
#include <variant>
#include <vector>

#include "amqp/codec.hpp"
#include "amqp/performatives.hpp"
#include "amqp/result.hpp"
#include "amqp/sasl.hpp"

namespace amqp::detail {

// The size of the fixed frame header (AMQP 1.0 §2.3.1).
inline constexpr std::size_t frame_header_size = 8;

// MIN-MAX-FRAME-SIZE (AMQP 1.0 §2.7.1): the frame size every peer must accept, the limit
// before open has been exchanged (§2.4.1), and the maximum size of SASL frames (§5.3.1).
inline constexpr std::uint32_t min_max_frame_size = 512;

// The TYPE byte of a frame (AMQP 1.0 §2.3.1). Other codes are undefined.
enum class frame_type : std::uint8_t { amqp = 0x00, sasl = 0x01 };

// A frame header as it is on the wire; parse_frame_header does not validate it.
struct frame_header {
  std::uint32_t size = frame_header_size; // SIZE: the whole frame, header included
  std::uint8_t doff = 2;                  // DOFF: offset of the body, in 4-byte words
  std::uint8_t type = 0;                  // TYPE: a frame_type code, or an undefined one
  std::uint16_t channel = 0;              // bytes 6-7: the channel of an AMQP frame
};

// Reads the 8 header bytes at the front of a frame. No validation.
[[nodiscard]] frame_header
parse_frame_header(std::span<const std::byte, frame_header_size> in) noexcept;

// Writes `h` as 8 header bytes. No validation.
void write_frame_header(const frame_header& h,
                        std::span<std::byte, frame_header_size> out) noexcept;

// The limits a frame reader enforces on a peer's frames.
struct frame_limits {
  // The largest AMQP frame accepted: the max-frame-size this end announced in its open
  // (AMQP 1.0 §2.7.1). The default, 512, is the limit before open is exchanged (§2.4.1);
  // the engine raises it once it has sent its open. Values below 512 break §2.7.1 (a peer
  // may always send 512 bytes) but are allowed, for tests.
  std::uint32_t max_frame_size = min_max_frame_size;
  // The largest SASL frame accepted: 512 (MIN-MAX-FRAME-SIZE, AMQP 1.0 §5.3.1), or more for
  // peers known to send larger SASL frames (long tokens in sasl-init).
  std::uint32_t sasl_max_frame_size = min_max_frame_size;
  // Limits of the value decoder, applied to every frame body.
  decode_limits decode{};
};

// Validates a peer's frame header, from the 8 header bytes alone, against the frame type
// the connection expects now and the limits. Errors, checked in this order:
// errc::framing_error (SIZE below 8, DOFF below 2, DOFF * 4 above SIZE),
// errc::unexpected_frame_type (TYPE other than `expected`),
// errc::frame_too_large (SIZE above the limit for `expected`).
[[nodiscard]] result<void> check_frame_header(const frame_header& h, frame_type expected,
                                              const frame_limits& limits) noexcept;

// The body of an empty AMQP frame: a heartbeat, sent to keep the connection alive within the
// peer's idle timeout (AMQP 1.0 §2.4.5). It carries nothing and must be ignored.
struct heartbeat {};

// What a frame carries: a heartbeat (empty AMQP frame), a performative (AMQP frame) or a
// SASL frame body (SASL frame).
using frame_body = std::variant<heartbeat, performative, sasl_frame>;

// One decoded frame. Non-owning: its views (`payload`, `bytes`, and the strings, binaries
// and values of `body`) point into the bytes the frame was decoded from.
struct frame_view {
  frame_type type = frame_type::amqp;
  // The channel of an AMQP frame (bytes 6-7); 0 for a SASL frame, whose bytes 6-7 are
  // ignored (AMQP 1.0 §5.3.1).
  std::uint16_t channel = 0;
  frame_body body{};
  // The bytes after the performative (AMQP 1.0 §2.3.2): for a transfer, (part of) the
  // message. Empty for heartbeats and SASL frames. Whether a payload is allowed after other
  // performatives is the engine's decision.
  std::span<const std::byte> payload{};
  // The whole frame as received, header included (for tracing).
  std::span<const std::byte> bytes{};
};

// Decodes one whole frame, `bytes` being exactly the SIZE bytes of the frame. The header is
// checked for consistency (not against a size limit or an expected type: that is
// check_frame_header's). The extended header is skipped. The result points into `bytes`.
// Errors:
// - errc::framing_error: fewer than 8 bytes, SIZE other than bytes.size(), DOFF below 2 or
//   beyond the frame; a SASL frame with an empty body (§5.3.1: "Receipt of an empty frame is
//   an irrecoverable error");
// - errc::unexpected_frame_type: TYPE neither 0x00 nor 0x01;
// - errc::decode_error, errc::depth_exceeded, errc::resource_limit: the body does not begin
//   with a valid AMQP value (decode_value), or a SASL body holds more than one value (§5.3.1);
// - errc::unexpected_descriptor: a described value that is not a performative (AMQP frame)
//   or a SASL frame body (SASL frame);
// - errc::type_mismatch, errc::missing_field: as decode_performative / decode_sasl_frame.
[[nodiscard]] result<frame_view> decode_frame(std::span<const std::byte> bytes,
                                              const decode_limits& limits = {}) noexcept;

// Reassembles and decodes a peer's frames from a byte stream chunked arbitrarily.
//
// Each call to feed() consumes bytes up to the end of at most one frame and returns that
// frame when it is complete. It never consumes a byte past the frame it returns, so the
// caller can switch to reading a protocol header exactly after the last SASL frame
// (AMQP 1.0 §5.3.2), or stop reading to apply backpressure.
//
// A frame that lies whole in the chunk passed to feed() is decoded in place, without a
// copy. Otherwise its bytes are gathered in one buffer from the memory resource, which is
// kept for later frames. The frame size limit is checked from the 8-byte header before any
// body byte is buffered; the buffer then grows with the bytes actually received (doubling),
// never beyond that limit.
//
// Every error is fatal and sticky: once feed() has failed, it fails again with the same
// error without consuming anything. The reader touches no clock, socket or thread.
//
// Skim mode (set_skim_oversized, for the frame tracer): a frame above the size limit is not
// an error. Its first bytes, up to the limit, are kept; the rest is skipped, never
// buffered; and once its last byte is consumed it is returned undecoded, as an
// oversized_frame.
class frame_reader {
public:
  // A frame above the size limit, in skim mode: its header and its first bytes (the
  // header included, up to the limit for its type, at least the 8 header bytes). Not
  // decoded: the bytes may end inside a value.
  struct oversized_frame {
    frame_header header{};
    std::span<const std::byte> prefix{};
  };

  // What feed() found: the bytes it consumed from the front of its input, and the frame
  // those bytes completed, if any (at most one of `frame` and `oversized`).
  struct read_result {
    std::size_t consumed = 0;
    std::optional<frame_view> frame{};
    std::optional<oversized_frame> oversized{};
  };

  // A reader of frames of type `expected` (AMQP after the AMQP header, SASL after the SASL
  // header) within `limits`. `memory` must outlive the reader.
  explicit frame_reader(
      const frame_limits& limits = {}, frame_type expected = frame_type::amqp,
      std::pmr::memory_resource* memory = std::pmr::new_delete_resource()) noexcept;
  ~frame_reader();
  frame_reader(const frame_reader&) = delete;
  frame_reader& operator=(const frame_reader&) = delete;

  // Consumes bytes from the front of `in`: up to the end of the first frame they complete
  // (then returned), or all of them. Call again with the rest of `in` to get the next frame;
  // an empty `in` consumes nothing and returns no frame.
  //
  // Lifetime: the returned frame's views (and an oversized frame's prefix) are valid until
  // the next call to feed(), release_buffer() or the reader's destruction, and, when the
  // frame was decoded in place, only as long as the bytes of `in` are.
  //
  // Errors: those of check_frame_header (raised as soon as the 8 header bytes are in, before
  // the body is read; in skim mode errc::frame_too_large is not one), those of decode_frame
  // (once the frame is complete), errc::out_of_memory (the memory resource refused the
  // reassembly buffer); then the same error on every later call.
  [[nodiscard]] result<read_result> feed(std::span<const std::byte> in) noexcept;

  // The frame type accepted: frames of the other type are errc::unexpected_frame_type.
  [[nodiscard]] frame_type expected_type() const noexcept { return expected_; }
  // Switches the frame type accepted, e.g. to AMQP after the SASL exchange and the AMQP
  // header. Precondition: at_frame_boundary().
  void set_expected_type(frame_type t) noexcept;

  // The limits in force.
  [[nodiscard]] const frame_limits& limits() const noexcept { return limits_; }
  // Sets the AMQP frame size limit (frame_limits::max_frame_size), from the next header read.
  void set_max_frame_size(std::uint32_t n) noexcept { limits_.max_frame_size = n; }
  // Sets the SASL frame size limit (frame_limits::sasl_max_frame_size), from the next
  // header read.
  void set_sasl_max_frame_size(std::uint32_t n) noexcept { limits_.sasl_max_frame_size = n; }

  // Skim mode: frames above the size limit are returned as oversized_frame (their first
  // bytes) instead of failing with errc::frame_too_large. Off by default.
  void set_skim_oversized(bool on) noexcept { skim_ = on; }

  // True when no part of a frame is held: the last byte consumed ended a frame (or nothing
  // was consumed yet).
  [[nodiscard]] bool at_frame_boundary() const noexcept { return have_ == 0; }
  // The bytes of an incomplete frame held, header included (in skim mode, the skipped
  // bytes of an oversized frame are not held).
  [[nodiscard]] std::size_t buffered() const noexcept { return std::min(have_, keep_); }
  // The header of the frame being read, once its 8 bytes are in; after a frame, or after
  // an error, the header of that frame (e.g. to describe what failed).
  [[nodiscard]] const frame_header& last_header() const noexcept { return last_header_; }
  // The size of the reassembly buffer currently allocated.
  [[nodiscard]] std::size_t buffer_capacity() const noexcept { return capacity_; }
  // Frees the reassembly buffer, e.g. after an unusually large frame; it is allocated again
  // when needed. Invalidates the views of a frame returned from the buffer. Precondition:
  // at_frame_boundary(), or the reader has failed.
  void release_buffer() noexcept;

  // The sticky error of a failed feed(), or an empty error_code.
  [[nodiscard]] std::error_code error() const noexcept { return error_; }

private:
  result<read_result> fail(std::error_code ec) noexcept;
  result<void> grow(std::size_t keep, std::size_t need) noexcept;

  frame_limits limits_;
  frame_type expected_;
  std::pmr::memory_resource* memory_;
  std::array<std::byte, frame_header_size> header_{}; // header bytes while fewer than 8
  std::byte* buf_ = nullptr;                          // the frame being reassembled
  std::size_t capacity_ = 0;                          // allocated size of buf_
  std::size_t have_ = 0;                              // bytes of the current frame consumed so far
  std::size_t size_ = 0; // SIZE of the current frame, once its header is in
  // Bytes of the current frame stored: SIZE, or for an oversized frame in skim mode its
  // prefix; frame_header_size while the header is collected.
  std::size_t keep_ = frame_header_size;
  frame_header last_header_{};
  bool skim_ = false;
  bool oversized_ = false; // the current frame is above the limit (skim mode)
  std::error_code error_;  // sticky
};

// The 8 bytes of a heartbeat: an empty AMQP frame on channel 0 (AMQP 1.0 §2.4.5).
inline constexpr std::array<std::byte, frame_header_size> heartbeat_frame = {
    std::byte{0}, std::byte{0}, std::byte{0}, std::byte{8},
    std::byte{2}, std::byte{0}, std::byte{0}, std::byte{0}};

// Writes a heartbeat frame into the front of `out`; returns 8.
// Errors: errc::buffer_too_small.
[[nodiscard]] result<std::size_t> encode_heartbeat(std::span<std::byte> out) noexcept;

// The size of the AMQP frame carrying `p` and `payload_size` payload bytes: header,
// performative, payload. Errors: errc::invalid_argument (a field of `p` with no encoding, or
// a frame size above 2^32 - 1).
[[nodiscard]] result<std::size_t> encoded_frame_size(const performative& p,
                                                     std::size_t payload_size) noexcept;
// The size of the SASL frame carrying `f`. Errors: errc::invalid_argument.
[[nodiscard]] result<std::size_t> encoded_frame_size(const sasl_frame& f) noexcept;

// Encodes an AMQP frame (DOFF 2, no extended header) on `channel` carrying `p` then
// `payload` into the front of `out`; returns its size. The caller checks the size against
// the peer's max-frame-size (a transfer is split with plan_transfer_frame).
// Errors: those of encoded_frame_size, errc::buffer_too_small.
[[nodiscard]] result<std::size_t> encode_frame(std::uint16_t channel, const performative& p,
                                               std::span<const std::byte> payload,
                                               std::span<std::byte> out) noexcept;
// Encodes a SASL frame (DOFF 2, bytes 6-7 zero, AMQP 1.0 §5.3.1) carrying `f`.
// Errors: those of encoded_frame_size, errc::buffer_too_small.
[[nodiscard]] result<std::size_t> encode_frame(const sasl_frame& f,
                                               std::span<std::byte> out) noexcept;

// Appends the frames encode_frame writes to `out`. Errors: those of encoded_frame_size;
// `out` is unchanged on error.
[[nodiscard]] result<void> append_frame(std::uint16_t channel, const performative& p,
                                        std::span<const std::byte> payload,
                                        std::vector<std::byte>& out);
[[nodiscard]] result<void> append_frame(const sasl_frame& f, std::vector<std::byte>& out);

// The number of payload bytes that fit in one frame of at most `max_frame_size` bytes (the
// peer's max-frame-size, AMQP 1.0 §2.7.1) after the header and `t` encoded as it is (its
// `more` flag included). Errors: errc::frame_too_large (header and `t` alone exceed
// `max_frame_size`), errc::invalid_argument (`t` has no encoding).
[[nodiscard]] result<std::size_t> transfer_payload_capacity(const transfer& t,
                                                            std::uint32_t max_frame_size) noexcept;

// How the next frame of a delivery is sent (AMQP 1.0 §2.6.14, §2.7.5).
struct transfer_frame_plan {
  std::size_t payload_size = 0; // payload bytes to put in this frame
  bool more = false;            // the `more` flag this frame must carry
};

// Plans the next transfer frame of a message with `remaining` payload bytes still to send,
// within the peer's `max_frame_size`: all of them with more = false if they fit after `t`
// encoded with more = false; otherwise as many as fit after `t` encoded with more = true
// (which may encode one byte longer), with more = true. `t.more` is ignored; the caller sets
// `more` from the plan, and may drop the fields a continuation frame need not repeat
// (§2.7.5) before planning the next frame. Errors: errc::frame_too_large (not one payload
// byte fits with more = true, while `remaining` does not fit with more = false),
// errc::invalid_argument (`t` has no encoding).
[[nodiscard]] result<transfer_frame_plan>
plan_transfer_frame(const transfer& t, std::size_t remaining,
                    std::uint32_t max_frame_size) noexcept;

} // namespace amqp::detail
