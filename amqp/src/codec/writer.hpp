// Big-endian writing into a buffer sized beforehand (encoded_size first, then write).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "amqp/assert.hpp"

namespace amqp::detail {

class writer {
public:
  explicit writer(std::span<std::byte> out) noexcept
      : pos_(out.data()), end_(out.data() + out.size()) {}
  writer(std::byte* pos, std::byte* end) noexcept : pos_(pos), end_(end) {}

  void u8(std::uint8_t v) noexcept {
    AMQP_ASSERT(1 <= remaining());
    *pos_++ = std::byte{v};
  }
  void u16(std::uint16_t v) noexcept {
    AMQP_ASSERT(2 <= remaining());
    pos_[0] = std::byte(v >> 8);
    pos_[1] = std::byte(v & 0xff);
    pos_ += 2;
  }
  void u32(std::uint32_t v) noexcept {
    AMQP_ASSERT(4 <= remaining());
    v = __builtin_bswap32(v);
    std::memcpy(pos_, &v, 4);
    pos_ += 4;
  }
  void u64(std::uint64_t v) noexcept {
    AMQP_ASSERT(8 <= remaining());
    v = __builtin_bswap64(v);
    std::memcpy(pos_, &v, 8);
    pos_ += 8;
  }
  // A size or count field of `width` bytes (1 or 4).
  void sized(unsigned width, std::uint32_t v) noexcept {
    if (width == 1) {
      u8(static_cast<std::uint8_t>(v));
    } else {
      u32(v);
    }
  }
  void bytes(const void* p, std::size_t n) noexcept {
    AMQP_ASSERT(n <= remaining());
    const auto* src = static_cast<const unsigned char*>(p);
    // Short strings are the common case: copy them with two overlapping fixed-size moves
    // instead of a call to memcpy.
    if (n >= 8 && n <= 16) {
      std::memcpy(pos_, src, 8);
      std::memcpy(pos_ + n - 8, src + n - 8, 8);
    } else if (n > 16 && n <= 32) {
      std::memcpy(pos_, src, 16);
      std::memcpy(pos_ + n - 16, src + n - 16, 16);
    } else if (n >= 4 && n < 8) {
      std::memcpy(pos_, src, 4);
      std::memcpy(pos_ + n - 4, src + n - 4, 4);
    } else if (n < 4) {
      for (std::size_t k = 0; k < n; ++k) {
        pos_[k] = static_cast<std::byte>(src[k]);
      }
    } else {
      std::memcpy(pos_, src, n);
    }
    pos_ += n;
  }
  void bytes(std::span<const std::byte> s) noexcept { bytes(s.data(), s.size()); }

  [[nodiscard]] std::size_t remaining() const noexcept {
    return static_cast<std::size_t>(end_ - pos_);
  }
  [[nodiscard]] std::byte* pos() const noexcept { return pos_; }

private:
  std::byte* pos_;
  std::byte* end_;
};

} // namespace amqp::detail
