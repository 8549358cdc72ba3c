// Wire-level helpers for engine tests: split the byte stream an engine writes into protocol
// headers and frames (AMQP 1.0 §2.2, §2.3.1), decode them, and build raw frames to feed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "amqp/performatives.hpp"
#include "amqp/sasl.hpp"
#include "frame/frame.hpp"
#include "frame/protocol_header.hpp"

namespace amqp::test {

// Bytes of a string (no terminator).
inline std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

inline std::string as_string(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// One protocol header or one frame as an engine wrote it. Owns its bytes; decoded views
// point into them and stay valid as long as the item is neither copied nor destroyed.
struct wire_item {
  std::vector<std::byte> bytes;
  bool header = false; // an 8-byte protocol header ("AMQP" id major minor revision)

  [[nodiscard]] std::uint8_t header_id() const { return std::to_integer<std::uint8_t>(bytes[4]); }
  [[nodiscard]] bool is_frame() const { return !header; }
  // The frame header fields (AMQP 1.0 §2.3.1).
  [[nodiscard]] detail::frame_header frame_header() const {
    return detail::parse_frame_header(
        std::span<const std::byte, detail::frame_header_size>(bytes.data(), 8));
  }
  // An empty AMQP frame (§2.4.5).
  [[nodiscard]] bool is_heartbeat() const {
    return !header && bytes.size() == 8 && frame_header().type == 0;
  }
  [[nodiscard]] std::uint16_t channel() const { return frame_header().channel; }
  // The decoded frame; the test fails on an undecodable frame (the engine wrote garbage).
  [[nodiscard]] std::optional<detail::frame_view> view() const {
    auto f = detail::decode_frame(bytes);
    if (!f) {
      return std::nullopt;
    }
    return *f;
  }
  // The performative of an AMQP frame, if it holds a `P`.
  template <class P> [[nodiscard]] std::optional<P> as() const {
    if (header) {
      return std::nullopt;
    }
    auto f = view();
    if (!f) {
      return std::nullopt;
    }
    if (const auto* p = std::get_if<performative>(&f->body)) {
      if (const auto* x = std::get_if<P>(p)) {
        return *x;
      }
    }
    return std::nullopt;
  }
  // The SASL frame body, if it holds an `F`.
  template <class F> [[nodiscard]] std::optional<F> sasl_as() const {
    if (header) {
      return std::nullopt;
    }
    auto f = view();
    if (!f) {
      return std::nullopt;
    }
    if (const auto* p = std::get_if<sasl_frame>(&f->body)) {
      if (const auto* x = std::get_if<F>(p)) {
        return *x;
      }
    }
    return std::nullopt;
  }
  // The payload after the performative (a transfer's message bytes).
  [[nodiscard]] std::span<const std::byte> payload() const {
    auto f = view();
    return f ? f->payload : std::span<const std::byte>{};
  }
  // "header amqp", "header sasl", "header tls", "heartbeat", "open", "sasl-init", ...,
  // or "undecodable".
  [[nodiscard]] std::string name() const {
    if (header) {
      switch (header_id()) {
      case 0:
        return "header amqp";
      case 2:
        return "header tls";
      case 3:
        return "header sasl";
      default:
        return "header ?";
      }
    }
    if (is_heartbeat()) {
      return "heartbeat";
    }
    auto f = view();
    if (!f) {
      return "undecodable";
    }
    if (const auto* p = std::get_if<performative>(&f->body)) {
      return std::string(amqp::name(*p));
    }
    if (const auto* s = std::get_if<sasl_frame>(&f->body)) {
      return std::string(amqp::name(*s));
    }
    return "heartbeat";
  }
};

// Splits a byte stream, fed in arbitrary pieces, into protocol headers and frames. A piece
// beginning with "AMQP" where a frame would begin is a protocol header (a frame that large
// would be over 1 GiB).
class wire_parser {
public:
  void feed(std::span<const std::byte> b) {
    buf_.insert(buf_.end(), b.begin(), b.end());
    for (;;) {
      const std::size_t avail = buf_.size() - pos_;
      if (avail < 8) {
        break;
      }
      const std::byte* p = buf_.data() + pos_;
      std::size_t n = 0;
      bool header = false;
      if (std::memcmp(p, "AMQP", 4) == 0) {
        n = 8;
        header = true;
      } else {
        n = (std::to_integer<std::size_t>(p[0]) << 24) |
            (std::to_integer<std::size_t>(p[1]) << 16) | (std::to_integer<std::size_t>(p[2]) << 8) |
            std::to_integer<std::size_t>(p[3]);
        if (n < 8) {
          broken_ = true;
          break;
        }
      }
      if (avail < n) {
        break;
      }
      items.push_back(wire_item{std::vector<std::byte>(p, p + n), header});
      pos_ += n;
    }
    if (pos_ > 0 && pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    }
  }
  // Bytes of an incomplete item held.
  [[nodiscard]] std::size_t pending() const { return buf_.size() - pos_; }
  // A frame with SIZE below 8 was seen.
  [[nodiscard]] bool broken() const { return broken_; }
  // The names of the items from `from` on.
  [[nodiscard]] std::vector<std::string> names(std::size_t from = 0) const {
    std::vector<std::string> v;
    for (std::size_t i = from; i < items.size(); ++i) {
      v.push_back(items[i].name());
    }
    return v;
  }
  // The number of items named `n` from `from` on.
  [[nodiscard]] std::size_t count(std::string_view n, std::size_t from = 0) const {
    std::size_t c = 0;
    for (std::size_t i = from; i < items.size(); ++i) {
      if (items[i].name() == n) {
        ++c;
      }
    }
    return c;
  }
  void clear() { items.clear(); }

  std::deque<wire_item> items;

private:
  std::vector<std::byte> buf_;
  std::size_t pos_ = 0;
  bool broken_ = false;
};

// ---- building raw input --------------------------------------------------------------------

// The 8 bytes of a protocol header.
inline std::vector<std::byte> header_bytes(detail::protocol_id id) {
  const auto h = detail::protocol_header_bytes(id);
  return {h.begin(), h.end()};
}

// An AMQP frame carrying `p` (and `payload`) on `channel`.
inline std::vector<std::byte> frame_bytes(const performative& p, std::uint16_t channel = 0,
                                          std::span<const std::byte> payload = {}) {
  std::vector<std::byte> out;
  auto r = detail::append_frame(channel, p, payload, out);
  (void)r;
  return out;
}

// A SASL frame carrying `f`.
inline std::vector<std::byte> sasl_frame_bytes(const sasl_frame& f) {
  std::vector<std::byte> out;
  auto r = detail::append_frame(f, out);
  (void)r;
  return out;
}

// A frame from its header fields and raw body bytes (for malformed input).
inline std::vector<std::byte> raw_frame(std::uint8_t type, std::uint16_t channel,
                                        std::span<const std::byte> body, std::uint8_t doff = 2) {
  std::vector<std::byte> out(8 + body.size());
  detail::frame_header h;
  h.size = static_cast<std::uint32_t>(out.size());
  h.doff = doff;
  h.type = type;
  h.channel = channel;
  detail::write_frame_header(h, std::span<std::byte, 8>(out.data(), 8));
  std::memcpy(out.data() + 8, body.data(), body.size());
  return out;
}

} // namespace amqp::test
