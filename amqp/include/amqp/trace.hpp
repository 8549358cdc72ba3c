// Frame trace: one line of text per protocol header and per frame of one direction of a
// connection's byte stream, with secrets redacted. Sans-IO: bytes in, lines out. The
// transport feeds it what it writes and what it reads when tracing is on (option, or the
// environment variable AMQP_TRACE=frames, which the transport reads: see
// trace_frames_requested).
//
// Library amqp::trace (target amqp_trace), apart from the core amqp::amqp: the engine does
// not use it, and a program that never traces does not link it.
//
// A line names the frame and decodes every field the peer put on the wire (fields sent as
// null or absent are left out, as Qpid Proton's PN_TRACE_FRM does):
//
//   AMQP 0 1.0.0
//   [ch 0] open(container-id="client", max-frame-size=262144, channel-max=255)
//   [ch 1] attach(name="x", handle=0, role=receiver, source=source(address="q"))
//   [ch 1] transfer(handle=0, delivery-id=0, delivery-tag=b"\x00\x00\x00\x00",
//          message-format=0) payload 25 bytes: properties(to="q"), data(5 bytes: b"hello")
//   [ch 0] empty frame
//   [sasl] sasl-init(mechanism=:PLAIN, initial-response=PLAIN(authzid="", authcid="user",
//          passwd=***))
//
// (one line each; wrapped here). Values use a short form: strings "..", symbols :sym,
// binaries b"..", lists [..], maps {k=v, ..}, arrays @type[..], described values @descriptor
// value, timestamps in UTC (2023-11-14T22:13:20.000Z).
//
// Redaction: secrets never appear in a line.
// - SASL PLAIN: the initial-response shows authzid and authcid, the password as ***. Any
//   other initial-response, and every challenge, response and additional-data, shows its
//   size only.
// - Every string, symbol and binary (performative fields, message sections, bodies shown as
//   text) goes through redact_secrets: the values of `sig=` (Shared Access Signatures),
//   `SharedAccessKey=` and `password=` parameters, percent-encoded or not, and the password
//   of a URL's user-info become ***.
// - A CBS put-token request (application-properties operation = "put-token") shows its body
//   as its size only, whatever the token type.
// - A payload that is only part of a message (a transfer with more = true, the frames that
//   follow it, an aborted delivery, a frame above the trace limit) shows its size only.
//
// Bounded: a frame up to trace_options::max_frame_bytes is buffered whole; a larger one is
// described from its first max_frame_bytes bytes (performative and payload size) and the rest
// is skipped, not buffered. Each line is cut at trace_options::max_line. Frames are read by
// the engine's own frame reader, with its checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <memory_resource>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "amqp/codec.hpp"
#include "amqp/performatives.hpp"
#include "amqp/sasl.hpp"
#include "amqp/value.hpp"

namespace amqp {

namespace detail {
class frame_reader;
struct frame_view;
struct frame_header;
} // namespace detail

// How much of a frame a trace line shows. Whatever the peer sends, a line stays within these.
struct trace_options {
  // Frames up to this size (header included) are buffered and described whole; a larger one
  // is described from its first max_frame_bytes bytes and the rest is skipped. At least 1024
  // is used.
  std::size_t max_frame_bytes = std::size_t{64} * 1024;
  // Strings and symbols: longer ones are cut (at a UTF-8 boundary) and followed by their size.
  std::size_t max_string = 256;
  // Binaries (and data body sections): the first bytes shown, then the size.
  std::size_t max_binary = 64;
  // Elements shown of a list, map (entries) or array, or body sections of a message.
  std::size_t max_items = 64;
  // A longer line is cut and ends with "...".
  std::size_t max_line = std::size_t{8} * 1024;
  // Limits of the value decoder, for frame bodies and messages.
  decode_limits decode{};
  // The tracer's buffers (frame reassembly, the line) come from here. Must outlive it.
  std::pmr::memory_resource* memory = std::pmr::new_delete_resource();
};

// Which way the bytes go, for trace_prefix.
enum class trace_direction : std::uint8_t { in, out };

// "[<connection>] -> " for bytes written (out), "[<connection>] <- " for bytes read (in).
[[nodiscard]] std::string trace_prefix(std::uint64_t connection, trace_direction d);

// True if `setting` (the value of AMQP_TRACE) asks for frames: one of its words (separated by
// commas, semicolons or spaces) is "frames", case-insensitive.
[[nodiscard]] bool trace_frames_requested(std::string_view setting) noexcept;

// Follows one direction of a connection's byte stream and calls the sink with one line (the
// prefix, then the description, no newline) per protocol header and per frame. The line is
// valid during the call only.
//
// It knows the protocol's shape: a protocol header first (AMQP 1.0 §2.2); after a SASL
// header, SASL frames until a protocol header (the client's AMQP header) or a sasl-outcome
// (then a protocol header follows, §5.3.2); after a TLS header, a protocol header inside TLS
// if the caller feeds decrypted bytes (TLS records themselves are reported once and not
// traced); after the AMQP header, AMQP frames.
//
// Frames are read by the engine's frame reader, with the engine's checks (a frame of the
// other type, a SASL frame after the AMQP header or the reverse, is malformed).
//
// Garbage never crashes it: a malformed header or frame is reported in one line ending with
// "not traced further", and the rest of the stream is ignored.
class frame_tracer {
public:
  using sink = std::function<void(std::string_view line)>;

  // `prefix` is copied and starts every line (e.g. trace_prefix(3, trace_direction::out)).
  frame_tracer(std::string_view prefix, sink s, const trace_options& o = {});
  ~frame_tracer();
  frame_tracer(frame_tracer&&) noexcept;
  frame_tracer& operator=(frame_tracer&&) noexcept;
  frame_tracer(const frame_tracer&) = delete;
  frame_tracer& operator=(const frame_tracer&) = delete;

  // Consumes `bytes`, the next chunk of the stream (any size, including a part of a header
  // or frame), calling the sink for every header and frame it completes. Throws only what
  // the sink throws; if the memory resource fails, tracing stops.
  void feed(std::span<const std::byte> bytes);

  // True once tracing has stopped (undecodable input, TLS records, memory).
  [[nodiscard]] bool stopped() const noexcept { return phase_ == phase::stopped; }
  // Bytes of an unfinished frame held (at most max_frame_bytes).
  [[nodiscard]] std::size_t buffered() const noexcept;
  // Headers and frames described so far.
  [[nodiscard]] std::uint64_t lines() const noexcept { return lines_; }

private:
  enum class phase : std::uint8_t { header, after_tls, sasl, amqp, stopped };
  // The engine's frame reader (amqp/src/frame), in skim mode: frames above max_frame_bytes
  // come out as their first bytes. Allocated from trace_options::memory.
  struct reader_deleter {
    std::pmr::memory_resource* memory;
    void operator()(detail::frame_reader* r) const noexcept;
  };

  void feed_impl(std::span<const std::byte> bytes);
  std::span<const std::byte> feed_header(std::span<const std::byte> in);
  std::span<const std::byte> feed_frames(std::span<const std::byte> in);
  void on_protocol_header();
  void stop_not_amqp();
  void on_frame(const detail::frame_view& f);
  void on_oversized(const detail::frame_header& h, std::span<const std::byte> prefix);
  void on_reader_error(std::error_code ec);
  void undecodable_frame(std::size_t size, std::error_code ec);
  void emit();
  void stop(std::string_view why);
  void forget_deliveries(std::uint16_t channel, const performative& p);
  [[nodiscard]] bool continuing(std::uint16_t channel, std::uint32_t handle) const noexcept;
  void set_continuing(std::uint16_t channel, std::uint32_t handle, bool on);

  std::pmr::string prefix_;
  sink sink_;
  trace_options opts_;
  phase phase_ = phase::header;
  std::byte head_[8] = {};    // a protocol header being gathered (or, in the SASL phase,
  std::size_t head_have_ = 0; // the first 4 bytes that tell one from a frame)
  std::unique_ptr<detail::frame_reader, reader_deleter> reader_;
  // Links (channel << 32 | handle) inside a multi-frame delivery; bounded: when full, every
  // payload is shown as a part.
  std::pmr::vector<std::uint64_t> continuing_;
  bool continuing_full_ = false;
  std::pmr::string line_;
  std::uint64_t lines_ = 0;
};

// Short descriptions of single items, redacted as the frame tracer's lines.
// A value.
[[nodiscard]] std::string describe(const value& v, const trace_options& o = {});
// A performative, as it would be traced once encoded (fields at their default are not
// written, so not shown). For a transfer, `payload` is summarised as a whole message unless
// `t.more` is set.
[[nodiscard]] std::string describe(const performative& p, std::span<const std::byte> payload = {},
                                   const trace_options& o = {});
// A SASL frame body.
[[nodiscard]] std::string describe(const sasl_frame& f, const trace_options& o = {});
// An encoded message: its sections in short form.
[[nodiscard]] std::string describe_message(std::span<const std::byte> encoded,
                                           const trace_options& o = {});

// `text` with the values of secret parameters replaced by ***: `sig=` (Shared Access
// Signature), `SharedAccessKey=` and `password=` (names case-insensitive, `=` also as %3D),
// up to the next `&`, `;`, `,`, `#`, quote, angle bracket, space or control character (or
// %26, %3B, %2C, %20 after %3D); and the password of a URL's user-info
// (scheme://user:password@host: from the first ':' to the last '@' before a space or quote,
// so that a password with unescaped '/', '?', '#' or '@' does not leak).
[[nodiscard]] std::string redact_secrets(std::string_view text);

} // namespace amqp
