// Encoding and decoding of AMQP 1.0 values (AMQP 1.0 §1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "amqp/result.hpp"
#include "amqp/value.hpp"

namespace amqp {

// Bounds on what a decoder accepts from a peer. Counts and sizes are always checked against
// the bytes actually present before anything is read; these bound the rest.
struct decode_limits {
  // Maximum nesting of lists, maps, arrays and described values; deeper is
  // errc::depth_exceeded.
  std::uint32_t max_depth = 32;
  // Maximum number of elements, over all arrays of one decoded value, whose element
  // constructor occupies zero bytes (null, true, false, uint0, ulong0, list0): their count
  // cannot be bounded by the bytes present. Above it: errc::resource_limit.
  std::uint32_t max_zero_width_elements = 65536;
};

// Decodes one value from the front of `in` and stores the number of bytes it occupies in
// `consumed`. The whole value is validated (sizes, counts, nesting, UTF-8 of strings, ASCII
// of symbols), so accessing it later cannot fail. The result points into `in`.
// Errors: errc::decode_error (malformed or truncated), errc::depth_exceeded,
// errc::resource_limit (array of zero-width elements above the limit).
[[nodiscard]] result<value> decode_value(std::span<const std::byte> in, std::size_t& consumed,
                                         const decode_limits& limits = {}) noexcept;

// Decodes exactly one value that must occupy all of `in`; trailing bytes are
// errc::decode_error. Errors as decode_value.
[[nodiscard]] result<value> decode_whole(std::span<const std::byte> in,
                                         const decode_limits& limits = {}) noexcept;

// The number of bytes `v` encodes to. Errors: errc::invalid_argument when `v` has no
// encoding (array elements of mixed types, an empty described array, a size above
// 2^32 - 1). Built strings and symbols are not checked: they must be UTF-8 and ASCII.
[[nodiscard]] result<std::size_t> encoded_size(const value& v) noexcept;

// Encodes `v` into the front of `out` and returns the number of bytes written. Decoded
// values are written back exactly as they were received; built values use the smallest
// encoding of each value. Errors: those of encoded_size, errc::buffer_too_small.
[[nodiscard]] result<std::size_t> encode(const value& v, std::span<std::byte> out) noexcept;

// Appends the encoding of `v` to `out`. Errors: those of encoded_size.
[[nodiscard]] result<void> encode_append(const value& v, std::vector<std::byte>& out);

// True if `s` is well-formed UTF-8 (RFC 3629: no overlongs, surrogates or code points
// above U+10FFFF).
[[nodiscard]] bool is_valid_utf8(std::string_view s) noexcept;

} // namespace amqp
