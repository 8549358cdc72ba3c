// The hub's source of randomness, injected (the hub never calls an RNG itself, so tests and
// the fuzz target are deterministic): container ids, lock tokens, tracking ids, keys.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "amqp/value.hpp"

namespace amqp::iothub::emulator {

// Fills buffers with random bytes. The program passes one backed by the OS (OpenSSL's
// RAND_bytes); tests pass seeded_random.
class random_source {
public:
  virtual ~random_source() = default;
  // Fills `out` with random bytes.
  virtual void fill(std::span<std::byte> out) = 0;
};

// A deterministic random_source: xoshiro256** seeded through splitmix64 (Blackman and
// Vigna). Not for secrets.
class seeded_random final : public random_source {
public:
  explicit seeded_random(std::uint64_t seed) noexcept;
  void fill(std::span<std::byte> out) override;
  // The next 64 random bits.
  [[nodiscard]] std::uint64_t next() noexcept;

private:
  std::array<std::uint64_t, 4> s_{};
};

// `n` random bytes as 2n lower-case hex digits.
[[nodiscard]] std::string random_hex(random_source& r, std::size_t n);

// A random (version 4, RFC 4122 §4.4) GUID, bytes in wire order.
[[nodiscard]] amqp::uuid random_guid(random_source& r);

// A GUID as text, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" in lower case (RFC 4122 §3), the
// bytes in wire (big-endian) order.
[[nodiscard]] std::string guid_text(const amqp::uuid& g);

} // namespace amqp::iothub::emulator
