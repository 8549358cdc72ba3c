// A minimal, deterministic splitter of fuzz input into parameters and payload, in the spirit
// of LLVM's FuzzedDataProvider. Ours reads from the front, so a seed is its parameter bytes
// followed by ordinary AMQP bytes, and it behaves identically in the libFuzzer build (clang)
// and the replay build (any compiler), which lacks <fuzzer/FuzzedDataProvider.h>.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "amqp/codec.hpp"

namespace amqp::fuzz {

class data_provider {
public:
  data_provider(const std::uint8_t* data, std::size_t size) noexcept
      : data_(reinterpret_cast<const std::byte*>(data)), size_(size) {}

  // The next byte, or 0 once the input is exhausted.
  [[nodiscard]] std::uint8_t u8() noexcept {
    if (pos_ == size_) {
      return 0;
    }
    return std::to_integer<std::uint8_t>(data_[pos_++]);
  }
  // The next two bytes, big-endian (missing bytes read as 0).
  [[nodiscard]] std::uint16_t u16() noexcept {
    auto hi = static_cast<unsigned>(u8());
    return static_cast<std::uint16_t>((hi << 8) | u8());
  }
  // Everything not consumed yet.
  [[nodiscard]] std::span<const std::byte> rest() noexcept {
    std::span<const std::byte> r{data_ + pos_, size_ - pos_};
    pos_ = size_;
    return r;
  }

private:
  const std::byte* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// The decode limits at the front of a decode_value / roundtrip_value input (3 bytes):
// max_depth = byte0 % 65 (0..64), then max_zero_width_elements = the big-endian u16 of
// bytes 1-2, except that 0xffff stands for the default 65536. So `20 ff ff` = the defaults.
[[nodiscard]] inline decode_limits consume_limits(data_provider& p) noexcept {
  decode_limits l;
  l.max_depth = p.u8() % 65U;
  std::uint32_t zw = p.u16();
  l.max_zero_width_elements = zw == 0xFFFFU ? 65536U : zw;
  return l;
}

} // namespace amqp::fuzz
