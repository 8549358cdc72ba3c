// Bounds-checked big-endian reading of AMQP bytes. All codec byte access goes through here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "amqp/result.hpp"

namespace amqp::detail {

inline std::uint16_t load_be16(const std::byte* p) noexcept {
  return static_cast<std::uint16_t>((std::to_integer<unsigned>(p[0]) << 8) |
                                    std::to_integer<unsigned>(p[1]));
}
inline std::uint32_t load_be32(const std::byte* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return __builtin_bswap32(v);
}
inline std::uint64_t load_be64(const std::byte* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return __builtin_bswap64(v);
}

// Equality of n bytes; short runs without a call to memcmp.
inline bool bytes_equal(const void* a, const void* b, std::size_t n) noexcept {
  const auto* x = static_cast<const unsigned char*>(a);
  const auto* y = static_cast<const unsigned char*>(b);
  auto word = [](const unsigned char* p) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  };
  if (n >= 8 && n <= 32) {
    // Words from both ends, overlapping in the middle.
    std::uint64_t diff = (word(x) ^ word(y)) | (word(x + n - 8) ^ word(y + n - 8));
    if (n > 16) {
      diff |= (word(x + 8) ^ word(y + 8)) | (word(x + n - 16) ^ word(y + n - 16));
    }
    return diff == 0;
  }
  if (n < 8) {
    unsigned diff = 0;
    for (std::size_t k = 0; k < n; ++k) {
      diff |= static_cast<unsigned>(x[k] ^ y[k]);
    }
    return diff == 0;
  }
  return std::memcmp(x, y, n) == 0;
}

class reader {
public:
  reader() = default;
  explicit reader(std::span<const std::byte> b) noexcept
      : pos_(b.data()), end_(b.data() + b.size()) {}
  reader(const std::byte* pos, const std::byte* end) noexcept : pos_(pos), end_(end) {}

  [[nodiscard]] std::size_t remaining() const noexcept {
    return static_cast<std::size_t>(end_ - pos_);
  }
  [[nodiscard]] bool empty() const noexcept { return pos_ == end_; }
  [[nodiscard]] const std::byte* pos() const noexcept { return pos_; }
  [[nodiscard]] const std::byte* end() const noexcept { return end_; }

  [[nodiscard]] result<std::uint8_t> u8() noexcept {
    if (1 > remaining()) {
      return fail();
    }
    return std::to_integer<std::uint8_t>(*pos_++);
  }
  [[nodiscard]] result<std::uint32_t> u32() noexcept {
    if (4 > remaining()) {
      return fail();
    }
    auto v = load_be32(pos_);
    pos_ += 4;
    return v;
  }
  // A size or count field of `width` bytes (1 or 4).
  [[nodiscard]] result<std::uint32_t> sized(unsigned width) noexcept {
    if (width == 1) {
      auto r = u8();
      if (!r) {
        return r.error();
      }
      return std::uint32_t{*r};
    }
    return u32();
  }
  [[nodiscard]] result<std::span<const std::byte>> bytes(std::size_t n) noexcept {
    if (n > remaining()) {
      return fail();
    }
    std::span<const std::byte> s{pos_, n};
    pos_ += n;
    return s;
  }

private:
  errc fail() noexcept {
    pos_ = end_; // sticky: every later read fails too
    return errc::decode_error;
  }
  const std::byte* pos_ = nullptr;
  const std::byte* end_ = nullptr;
};

} // namespace amqp::detail
