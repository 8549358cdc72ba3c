// Fuzz target roundtrip_value: decode → build → encode → decode gives the same value.
//
// Input: 3 bytes of decode limits and 1 mode byte (support/data_provider.hpp), then values one
// after another. Each decoded value is copied into a *built* value (arena-owned arrays of
// amqp::value, so the encoder chooses the smallest encodings); mode bit 0 set copies only the
// outermost container and keeps its decoded elements, which mixes built and decoded values.
// The built value must encode (encoded_size = bytes written, by every entry point), its
// encoding must decode to a value equal to the original and be no larger than the original
// bytes, and (deep copies) encoding is canonical: re-building the re-decoded value gives the
// same bytes again.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "amqp/codec.hpp"
#include "support/check.hpp"
#include "support/data_provider.hpp"

using namespace amqp;
using amqp::fuzz::require;
using amqp::fuzz::same_bytes;

namespace {

// Owns the element arrays of built values.
class arena {
public:
  // Storage for n values, or nullptr once more than `budget` values were allocated in total
  // (zero-width array elements are 1 byte of input per 65536 values: bound the memory).
  value* alloc(std::size_t n) {
    if (n > budget_ - used_) {
      return nullptr;
    }
    used_ += n;
    blocks_.push_back(std::make_unique<value[]>(n == 0 ? 1 : n));
    return blocks_.back().get();
  }

private:
  static constexpr std::size_t budget_ = std::size_t{1} << 20;
  std::size_t used_ = 0;
  std::vector<std::unique_ptr<value[]>> blocks_;
};

struct builder {
  arena& a;
  bool deep;
  bool over_budget = false;
  // A decoded empty array of described elements has no encoding once built (no first element
  // to take the descriptor from): encoded_size documents errc::invalid_argument for it.
  bool empty_described_array = false;
  // Elements of decoded arrays whose element constructor takes no bytes (true, false, uint0,
  // ulong0, list0). The encoder never picks those for arrays (a peer's decoder may not
  // expect them, and ours budgets them), so each may grow by up to 2 bytes (list8 "01 00"),
  // and its array by 6 more (array8 becoming array32).
  std::size_t zero_width_elements = 0;
  std::size_t zero_width_arrays = 0;

  value copy(const value& v) { return deep ? build(v) : v; }

  value build(const value& v) {
    switch (v.kind()) {
    case type::null:
      return {};
    case type::boolean:
      return v.as_bool();
    case type::ubyte:
      return v.as_ubyte();
    case type::ushort:
      return v.as_ushort();
    case type::uint:
      return v.as_uint();
    case type::ulong:
      return v.as_ulong();
    case type::byte:
      return v.as_byte();
    case type::short_:
      return v.as_short();
    case type::int_:
      return v.as_int();
    case type::long_:
      return v.as_long();
    case type::float_:
      return v.as_float();
    case type::double_:
      return v.as_double();
    case type::decimal32:
      return v.as_decimal32();
    case type::decimal64:
      return v.as_decimal64();
    case type::decimal128:
      return v.as_decimal128();
    case type::char_:
      return v.as_char();
    case type::timestamp:
      return v.as_timestamp();
    case type::uuid:
      return v.as_uuid();
    case type::binary:
      return v.as_binary();
    case type::string:
      return v.as_string();
    case type::symbol:
      return symbol_view{v.as_symbol()};
    case type::list:
    case type::map:
    case type::array: {
      const std::uint32_t n = v.count();
      value* items = a.alloc(n);
      if (items == nullptr) {
        over_budget = true;
        return {};
      }
      std::uint32_t k = 0;
      const std::size_t zero_width_before = zero_width_elements;
      for (const value& e : v.items()) {
        require(k < n);
        const std::uint8_t c = e.format_code();
        if (v.is(type::array) && c >= 0x41 && c <= 0x45) {
          ++zero_width_elements;
        }
        items[k++] = copy(e);
      }
      if (zero_width_elements != zero_width_before) {
        ++zero_width_arrays;
      }
      require(k == n);
      std::span<const value> s(items, n);
      if (v.is(type::list)) {
        return value::list(s);
      }
      if (v.is(type::map)) {
        return value::map(s);
      }
      if (n == 0 && v.element_type() == type::described) {
        empty_described_array = true;
      }
      return value::array(v.element_type(), s);
    }
    case type::described: {
      value* pair = a.alloc(2);
      if (pair == nullptr) {
        over_budget = true;
        return {};
      }
      pair[0] = copy(v.descriptor());
      pair[1] = copy(v.described_value());
      return value::described(std::span<const value, 2>(pair, 2));
    }
    }
    require(false);
    return {};
  }
};

// Encodes the built value `b` through every entry point; they must agree. Returns nothing if
// `b` has no encoding (allowed only when `allow_invalid`).
std::optional<std::vector<std::byte>> encode_built(const value& b, bool allow_invalid) {
  auto size = encoded_size(b);
  if (!size) {
    require(allow_invalid && size.error() == errc::invalid_argument);
    std::vector<std::byte> out;
    auto r = encode_append(b, out);
    require(!r && r.error() == errc::invalid_argument);
    return std::nullopt;
  }
  std::vector<std::byte> out{std::byte{0xAB}}; // appends after what is there
  require(encode_append(b, out).has_value());
  require(out.size() == 1 + *size && out[0] == std::byte{0xAB});
  out.erase(out.begin());
  std::vector<std::byte> buf(*size);
  auto w = encode(b, buf);
  require(w.has_value() && *w == *size && same_bytes(buf, out));
  if (*size > 0) {
    auto small = encode(b, std::span<std::byte>(buf).first(*size - 1));
    require(!small && small.error() == errc::buffer_too_small);
  }
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::data_provider p(data, size);
  const decode_limits limits = fuzz::consume_limits(p);
  const bool shallow = (p.u8() & 1U) != 0;
  std::span<const std::byte> in = p.rest();
  while (!in.empty()) {
    std::size_t n = 0;
    auto v = decode_value(in, n, limits);
    if (!v) {
      break;
    }
    const auto original = in.first(n);
    in = in.subspan(n);

    arena a;
    builder bld{a, !shallow};
    const value b = bld.build(*v);
    if (bld.over_budget) {
      continue;
    }
    require(!b.is_decoded() && b.kind() == v->kind());
    require(b == *v && *v == b);

    auto enc = encode_built(b, bld.empty_described_array);
    if (!enc) {
      continue;
    }
    // Smallest encodings: never larger, but for zero-width array elements (see builder).
    require(enc->size() <=
            original.size() + 2 * bld.zero_width_elements + 6 * bld.zero_width_arrays);

    // The built encoding decodes, within the same limits, to an equal value.
    auto back = decode_whole(*enc, limits);
    require(back.has_value());
    require(*back == *v && *v == *back && *back == b);

    if (!shallow) {
      // Smallest encodings are canonical: building the re-decoded value again is a fixed point.
      arena a2;
      builder bld2{a2, true};
      const value b2 = bld2.build(*back);
      require(!bld2.over_budget);
      auto enc2 = encode_built(b2, false);
      require(enc2.has_value() && same_bytes(*enc2, *enc));
    }
  }
  return 0;
}
