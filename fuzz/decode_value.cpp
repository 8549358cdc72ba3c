// Fuzz target decode_value: the value decoder on untrusted bytes (AMQP 1.0 §1.2).
//
// Input: 3 bytes of decode limits (support/data_provider.hpp), then values one after
// another. Each decoded value is read completely through the public API, which re-decodes
// its parts on the trusted path (that must never assert), re-encoded independently and by
// the library, and both encodings must equal the bytes it was decoded from.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "amqp/codec.hpp"
#include "support/check.hpp"
#include "support/data_provider.hpp"

using namespace amqp;
using amqp::fuzz::require;
using amqp::fuzz::same_bytes;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::data_provider p(data, size);
  const decode_limits limits = fuzz::consume_limits(p);
  std::span<const std::byte> in = p.rest();
  while (!in.empty()) {
    std::size_t n = 0;
    auto v = decode_value(in, n, limits);
    if (!v) {
      const auto e = v.error();
      require(e == errc::decode_error || e == errc::depth_exceeded || e == errc::resource_limit);
      break;
    }
    require(n >= 1 && n <= in.size());
    const auto slice = in.first(n);

    // Decoded values re-encode to exactly their bytes, through every encoding entry point.
    const std::vector<std::byte> enc = fuzz::walk_decoded(*v);
    require(same_bytes(enc, slice));
    std::vector<std::byte> buf(n);
    auto w = encode(*v, buf);
    require(w.has_value() && *w == n && same_bytes(buf, slice));
    if (n > 1) {
      auto small = encode(*v, std::span<std::byte>(buf).first(n - 1));
      require(!small && small.error() == errc::buffer_too_small);
    }

    // The same bytes decode alone to an equal value, and a truncated copy does not decode.
    auto again = decode_whole(slice, limits);
    require(again.has_value() && *again == *v && *v == *again);
    require(!decode_whole(slice.first(n - 1), limits).has_value());

    in = in.subspan(n);
  }
  return 0;
}
