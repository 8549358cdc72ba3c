// Validation of untrusted AMQP bytes (AMQP 1.0 §1.2 type encodings, types.xml), shared by the
// value decoder (decode.cpp) and the message decoder (message.cpp), which validates its map
// sections and records where each entry is in the same pass.
//
// The validator checks everything (bounds, counts against the bytes present, nesting, UTF-8
// of strings, ASCII of symbols, booleans and chars) and builds nothing: the `trusted_*`
// readers of value_access.hpp then read bytes that passed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "amqp/codec.hpp"
#include "codec/constructors.hpp"
#include "codec/reader.hpp"

namespace amqp::detail {

// True if the n bytes at p are all ASCII. Whole-word reads: strings on the wire are nearly
// always ASCII, and this is the check every one of them pays.
inline bool is_ascii(const std::byte* p, std::size_t n) noexcept {
  auto word64 = [](const std::byte* q) {
    std::uint64_t w;
    std::memcpy(&w, q, 8);
    return w;
  };
  auto word32 = [](const std::byte* q) {
    std::uint32_t w;
    std::memcpy(&w, q, 4);
    return w;
  };
  if (n >= 8) {
    // Words from both ends, overlapping in the middle: up to 32 bytes without a loop.
    std::uint64_t acc = word64(p) | word64(p + n - 8);
    if (n > 16) {
      acc |= word64(p + 8) | word64(p + n - 16);
      for (std::size_t i = 16; i + 16 < n; i += 8) {
        acc |= word64(p + i);
      }
    }
    return (acc & 0x8080808080808080ULL) == 0;
  }
  if (n >= 4) {
    return ((word32(p) | word32(p + n - 4)) & 0x80808080U) == 0;
  }
  if (n == 0) {
    return true;
  }
  // 1 to 3 bytes: the first, the middle and the last cover them.
  return ((std::to_integer<unsigned>(p[0]) | std::to_integer<unsigned>(p[n / 2]) |
           std::to_integer<unsigned>(p[n - 1])) &
          0x80U) == 0;
}

// RFC 3629 §4 well-formed UTF-8 for text that is not all ASCII (decode.cpp).
bool is_valid_utf8_slow(const std::byte* p, std::size_t n) noexcept;

inline bool is_valid_utf8(const std::byte* p, std::size_t n) noexcept {
  return is_ascii(p, n) || is_valid_utf8_slow(p, n);
}

// Reads a size or count field of `width` (1 or 4) bytes at p; the caller checked the bounds.
inline std::uint32_t load_sized(const std::byte* p, unsigned width) noexcept {
  return width == 1 ? std::to_integer<std::uint32_t>(p[0]) : load_be32(p);
}

class validator {
public:
  explicit validator(const decode_limits& lim) noexcept
      : lim_(lim), zero_width_left_(lim.max_zero_width_elements) {}

  [[nodiscard]] const decode_limits& limits() const noexcept { return lim_; }

  // Validates one value (constructor and body) at p, nested `depth` deep; advances p past
  // it. Scalars, strings, symbols and binaries are checked inline; everything else out of
  // line. Returns errc{} or decode_error, depth_exceeded, resource_limit.
  [[gnu::always_inline]] errc value(const std::byte*& p, const std::byte* end,
                                    std::uint32_t depth) noexcept {
    if (p == end) {
      return errc::decode_error;
    }
    const auto c = std::to_integer<std::uint8_t>(*p);
    const unsigned step = ctor_table[c].step;
    const auto avail = static_cast<std::size_t>(end - p);
    if (step - 1 < short_binary - 1) { // fixed width
      if (step > avail) {
        return errc::decode_error;
      }
      p += step;
      return {};
    }
    if (step >= short_binary && avail >= 2) { // vbin8, str8, sym8
      const auto n = std::to_integer<std::size_t>(p[1]);
      if (n > avail - 2) {
        return errc::decode_error;
      }
      const std::byte* s = p + 2;
      p = s + n;
      if (step == short_binary || is_ascii(s, n)) {
        return {};
      }
      // Not ASCII: a symbol is invalid, a string must be UTF-8.
      return c == code::str8 && is_valid_utf8_slow(s, n) ? errc{} : errc::decode_error;
    }
    ++p;
    return body(c, p, end, depth);
  }

  // Validates the body of a value of format code `c` at p (its constructor already read),
  // nested `depth` deep; advances p past it. Errors as value().
  [[gnu::noinline]] errc body(std::uint8_t c, const std::byte*& p, const std::byte* end,
                              std::uint32_t depth) noexcept;

  // Validates a map (constructor and body) at p, which must hold map8 or map32, exactly as
  // value() would, and calls on_pair(key, val) with the first byte of each key and of its
  // value, in wire order, once both passed. Advances p past the map. Errors as value().
  template <class F>
  errc map(const std::byte*& p, const std::byte* end, std::uint32_t depth, F&& on_pair) noexcept {
    const ctor_info& ci = ctor_table[std::to_integer<std::uint8_t>(*p++)];
    compound_frame f;
    if (auto e = open(ci, p, end, depth, f); e != errc{}) {
      return e;
    }
    return map_pairs(f, depth, on_pair);
  }

  // The elements of a list, map or array once its size and count fields have been checked.
  struct compound_frame {
    const std::byte* q = nullptr;   // the first element (after the count field)
    const std::byte* end = nullptr; // end of the elements
    std::uint32_t count = 0;        // wire count
  };

  // Reads and checks the size and count fields of a compound or array of constructor `ci` at
  // p (after the constructor), nested `depth` deep, as body() does; advances p past the whole
  // value. The caller then validates the f.count elements from f.q, each with value(..,
  // depth + 1), and checks that they end at f.end. Errors as value().
  errc open(const ctor_info& ci, const std::byte*& p, const std::byte* end, std::uint32_t depth,
            compound_frame& f) noexcept {
    const auto left = static_cast<std::size_t>(end - p);
    const unsigned w = ci.width;
    if (std::size_t{2} * w > left) {
      return errc::decode_error;
    }
    const std::size_t size = load_sized(p, w);
    // The size covers the count field and the elements.
    if (size > left - w || size < w) {
      return errc::decode_error;
    }
    f.count = load_sized(p + w, w);
    f.q = p + std::size_t{2} * w;
    f.end = p + w + size;
    p = f.end;
    // An empty container nests nothing (and so costs no depth, as list0 does not).
    if (f.count != 0 && depth + 1 > lim_.max_depth) {
      return errc::depth_exceeded;
    }
    // Every element of a list or map takes at least one byte: check the count before
    // iterating (arrays check theirs once the element constructor is known).
    if (ci.cat == category::compound && (f.count > static_cast<std::size_t>(f.end - f.q) ||
                                         (ci.t == type::map && f.count % 2 != 0))) {
      return errc::decode_error;
    }
    return {};
  }

private:
  // True if the n bytes at s are valid content for type t (UTF-8 strings, ASCII symbols).
  static bool text_ok(type t, const std::byte* s, std::size_t n) noexcept {
    if (t == type::string) {
      return is_valid_utf8(s, n);
    }
    return t != type::symbol || is_ascii(s, n);
  }

  template <class F> errc map_pairs(compound_frame f, std::uint32_t depth, F& on_pair) noexcept {
    for (std::uint32_t k = 0; k < f.count; k += 2) {
      const std::byte* key = f.q;
      if (auto e = value(f.q, f.end, depth + 1); e != errc{}) {
        return e;
      }
      const std::byte* val = f.q;
      if (auto e = value(f.q, f.end, depth + 1); e != errc{}) {
        return e;
      }
      on_pair(key, val);
    }
    return f.q == f.end ? errc{} : errc::decode_error; // nothing left over
  }

  errc container(const ctor_info& ci, const std::byte*& p, const std::byte* end,
                 std::uint32_t depth) noexcept;

  const decode_limits& lim_;
  std::uint32_t zero_width_left_; // elements of zero-width arrays still allowed
};

} // namespace amqp::detail
