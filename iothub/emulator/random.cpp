#include "emulator/random.hpp"

#include <algorithm>
#include <cstring>

namespace amqp::iothub::emulator {

namespace {

std::uint64_t splitmix64(std::uint64_t& x) noexcept {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30U)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27U)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31U);
}

std::uint64_t rotl(std::uint64_t x, unsigned k) noexcept {
  return (x << k) | (x >> (64U - k));
}

constexpr char hex_digits[] = "0123456789abcdef";

} // namespace

seeded_random::seeded_random(std::uint64_t seed) noexcept {
  for (auto& w : s_) {
    w = splitmix64(seed);
  }
}

std::uint64_t seeded_random::next() noexcept {
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17U;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

void seeded_random::fill(std::span<std::byte> out) {
  std::size_t i = 0;
  while (i < out.size()) {
    const std::uint64_t v = next();
    const std::size_t n = std::min<std::size_t>(8, out.size() - i);
    std::memcpy(out.data() + i, &v, n);
    i += n;
  }
}

std::string random_hex(random_source& r, std::size_t n) {
  std::string bytes(n, '\0');
  r.fill(std::as_writable_bytes(std::span<char>(bytes)));
  std::string out;
  out.reserve(2 * n);
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(hex_digits[b >> 4U]);
    out.push_back(hex_digits[b & 0xfU]);
  }
  return out;
}

amqp::uuid random_guid(random_source& r) {
  amqp::uuid g;
  r.fill(g.bytes);
  // RFC 4122 §4.4: version 4 in the high nibble of byte 6, variant 10 in byte 8.
  g.bytes[6] = (g.bytes[6] & std::byte{0x0f}) | std::byte{0x40};
  g.bytes[8] = (g.bytes[8] & std::byte{0x3f}) | std::byte{0x80};
  return g;
}

std::string guid_text(const amqp::uuid& g) {
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < g.bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      out.push_back('-');
    }
    const auto b = static_cast<unsigned>(g.bytes[i]);
    out.push_back(hex_digits[b >> 4U]);
    out.push_back(hex_digits[b & 0xfU]);
  }
  return out;
}

} // namespace amqp::iothub::emulator
