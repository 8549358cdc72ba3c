// Checks and independent re-encoding shared by the fuzz targets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "amqp/value.hpp"

namespace amqp::fuzz {

// A failed check crashes, so that libFuzzer (and the replay runner, and ctest) report it.
inline void require(bool ok) noexcept {
  if (!ok) {
    __builtin_trap();
  }
}

inline bool same_bytes(std::span<const std::byte> a, std::span<const std::byte> b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t k = 0; k < a.size(); ++k) {
    if (a[k] != b[k]) {
      return false;
    }
  }
  return true;
}

// Reads every part of the decoded value `v` through the public API only (format_code, the
// typed accessors and their checked forms, items, element_type, find, descriptor,
// described_value, descriptor_code), checks that they agree with each other and with the
// encoding rules of AMQP 1.0 §1.2, and appends the encoding they imply (constructor and body,
// as received) to `out`. This is an encoder independent of the library's: for a decoded value
// its output must equal the bytes the value was decoded from. `v` must be decoded, and so must
// all its parts; violations trap.
//
// One gap: an empty array's element constructor is not visible through the API, so an empty
// array is appended with amqp::encode instead.
void reencode(const value& v, std::vector<std::byte>& out);

// Checks everything reencode checks and that amqp::encode / encoded_size of `v` agree with
// reencode; returns the encoding.
std::vector<std::byte> walk_decoded(const value& v);

} // namespace amqp::fuzz
