// amqp::value: one AMQP 1.0 value of any type (AMQP 1.0 §1.6), decoded or built.
//
// A value is small (40 bytes), trivially copyable and never owns memory:
// - a *decoded* value points into the bytes it was decoded from (strings, binaries,
//   symbols, and the elements of lists, maps, arrays and described values stay encoded and
//   are read on access); it is valid as long as those bytes are, and re-encodes to exactly
//   the bytes it was decoded from;
// - a *built* value points at caller-owned storage (string data, arrays of values for
//   compounds) and encodes with the smallest encodings.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

#include "amqp/assert.hpp"

namespace amqp {

// The AMQP 1.0 primitive types (types.xml) plus `described`.
enum class type : std::uint8_t {
  null,
  boolean,
  ubyte,
  ushort,
  uint,
  ulong,
  byte,
  short_,
  int_,
  long_,
  float_,
  double_,
  decimal32,
  decimal64,
  decimal128,
  char_,
  timestamp,
  uuid,
  binary,
  string,
  symbol,
  list,
  map,
  array,
  described,
};

// The AMQP name of a type ("null", "short", "described", ...).
[[nodiscard]] std::string_view type_name(type t) noexcept;
// The type with AMQP name `name`, if any.
[[nodiscard]] std::optional<type> type_from_name(std::string_view name) noexcept;

using binary_view = std::span<const std::byte>;

// A 128-bit UUID, bytes in wire (big-endian, RFC 4122) order.
struct uuid {
  std::array<std::byte, 16> bytes{};
  friend bool operator==(const uuid&, const uuid&) = default;
};
// IEEE 754-2008 decimal values, kept exactly as their big-endian wire bytes.
struct decimal32 {
  std::array<std::byte, 4> bytes{};
  friend bool operator==(const decimal32&, const decimal32&) = default;
};
struct decimal64 {
  std::array<std::byte, 8> bytes{};
  friend bool operator==(const decimal64&, const decimal64&) = default;
};
struct decimal128 {
  std::array<std::byte, 16> bytes{};
  friend bool operator==(const decimal128&, const decimal128&) = default;
};
// Milliseconds since the Unix epoch (AMQP `timestamp`).
struct timestamp {
  std::int64_t ms = 0;
  friend bool operator==(const timestamp&, const timestamp&) = default;
};
// An AMQP symbol (ASCII), as opposed to a string (UTF-8). Non-owning.
struct symbol_view {
  std::string_view str;
  friend bool operator==(const symbol_view&, const symbol_view&) = default;
};

class value_range;

class value {
public:
  // null.
  constexpr value() noexcept : u_{} {}
  value(std::nullptr_t) noexcept : value() {}
  value(bool v) noexcept : t_(type::boolean) { u_.b = v; }
  value(std::uint8_t v) noexcept : t_(type::ubyte) { u_.u = v; }
  value(std::uint16_t v) noexcept : t_(type::ushort) { u_.u = v; }
  value(std::uint32_t v) noexcept : t_(type::uint) { u_.u = v; }
  value(std::uint64_t v) noexcept : t_(type::ulong) { u_.u = v; }
  value(std::int8_t v) noexcept : t_(type::byte) { u_.i = v; }
  value(std::int16_t v) noexcept : t_(type::short_) { u_.i = v; }
  value(std::int32_t v) noexcept : t_(type::int_) { u_.i = v; }
  value(std::int64_t v) noexcept : t_(type::long_) { u_.i = v; }
  value(float v) noexcept : t_(type::float_) { u_.f = v; }
  value(double v) noexcept : t_(type::double_) { u_.d = v; }
  value(char32_t v) noexcept : t_(type::char_) { u_.c = v; }
  value(timestamp v) noexcept : t_(type::timestamp) { u_.i = v.ms; }
  value(const uuid& v) noexcept : t_(type::uuid) { u_.fixed = v.bytes; }
  value(const decimal32& v) noexcept;
  value(const decimal64& v) noexcept;
  value(const decimal128& v) noexcept : t_(type::decimal128) { u_.fixed = v.bytes; }
  // A string; the characters are not copied. Must be valid UTF-8 to be encoded.
  value(std::string_view v) noexcept : t_(type::string) { set_bytes(v.data(), v.size()); }
  value(const char* v) noexcept : value(std::string_view(v)) {}
  // A symbol; not copied. Must be ASCII to be encoded.
  value(symbol_view v) noexcept : t_(type::symbol) { set_bytes(v.str.data(), v.str.size()); }
  // A binary; not copied.
  value(binary_view v) noexcept : t_(type::binary) { set_bytes(v.data(), v.size()); }

  // A list of `items` (not copied: `items` must outlive the value).
  static value list(std::span<const value> items) noexcept;
  // A map of `2n` values: key0, value0, key1, value1, ... (not copied).
  static value map(std::span<const value> keys_and_values) noexcept;
  // An array of elements of type `element` (not copied). Elements of a described array share
  // the first element's descriptor and must all be described values.
  static value array(type element, std::span<const value> items) noexcept;
  // A described value: `pair[0]` is the descriptor, `pair[1]` the value (not copied).
  static value described(std::span<const value, 2> pair) noexcept;

  // The AMQP type of this value.
  [[nodiscard]] type kind() const noexcept { return t_; }
  [[nodiscard]] bool is(type t) const noexcept { return t_ == t; }
  [[nodiscard]] bool is_null() const noexcept { return t_ == type::null; }
  // True if this value was decoded (it re-encodes to its original bytes).
  [[nodiscard]] bool is_decoded() const noexcept { return decoded_; }
  // The wire format code it was decoded from (for a described value: of its inner value), or
  // 0 for a built value.
  [[nodiscard]] std::uint8_t format_code() const noexcept { return code_; }

  // Typed access. Calling the accessor of another type is a programmer error (asserted);
  // check kind() first, or use the `get_*` forms below which return nullopt instead.
  [[nodiscard]] bool as_bool() const noexcept {
    AMQP_ASSERT(t_ == type::boolean);
    return u_.b;
  }
  [[nodiscard]] std::uint8_t as_ubyte() const noexcept {
    AMQP_ASSERT(t_ == type::ubyte);
    return static_cast<std::uint8_t>(u_.u);
  }
  [[nodiscard]] std::uint16_t as_ushort() const noexcept {
    AMQP_ASSERT(t_ == type::ushort);
    return static_cast<std::uint16_t>(u_.u);
  }
  [[nodiscard]] std::uint32_t as_uint() const noexcept {
    AMQP_ASSERT(t_ == type::uint);
    return static_cast<std::uint32_t>(u_.u);
  }
  [[nodiscard]] std::uint64_t as_ulong() const noexcept {
    AMQP_ASSERT(t_ == type::ulong);
    return u_.u;
  }
  [[nodiscard]] std::int8_t as_byte() const noexcept {
    AMQP_ASSERT(t_ == type::byte);
    return static_cast<std::int8_t>(u_.i);
  }
  [[nodiscard]] std::int16_t as_short() const noexcept {
    AMQP_ASSERT(t_ == type::short_);
    return static_cast<std::int16_t>(u_.i);
  }
  [[nodiscard]] std::int32_t as_int() const noexcept {
    AMQP_ASSERT(t_ == type::int_);
    return static_cast<std::int32_t>(u_.i);
  }
  [[nodiscard]] std::int64_t as_long() const noexcept {
    AMQP_ASSERT(t_ == type::long_);
    return u_.i;
  }
  [[nodiscard]] float as_float() const noexcept {
    AMQP_ASSERT(t_ == type::float_);
    return u_.f;
  }
  [[nodiscard]] double as_double() const noexcept {
    AMQP_ASSERT(t_ == type::double_);
    return u_.d;
  }
  [[nodiscard]] char32_t as_char() const noexcept {
    AMQP_ASSERT(t_ == type::char_);
    return u_.c;
  }
  [[nodiscard]] timestamp as_timestamp() const noexcept {
    AMQP_ASSERT(t_ == type::timestamp);
    return {u_.i};
  }
  [[nodiscard]] uuid as_uuid() const noexcept;
  [[nodiscard]] decimal32 as_decimal32() const noexcept;
  [[nodiscard]] decimal64 as_decimal64() const noexcept;
  [[nodiscard]] decimal128 as_decimal128() const noexcept;
  // string, symbol: the characters; binary: the bytes (as chars).
  [[nodiscard]] std::string_view as_string() const noexcept {
    AMQP_ASSERT(t_ == type::string || t_ == type::symbol || t_ == type::binary);
    return {reinterpret_cast<const char*>(u_.bytes.p), u_.bytes.n};
  }
  [[nodiscard]] std::string_view as_symbol() const noexcept {
    AMQP_ASSERT(t_ == type::symbol);
    return {reinterpret_cast<const char*>(u_.bytes.p), u_.bytes.n};
  }
  [[nodiscard]] binary_view as_binary() const noexcept {
    AMQP_ASSERT(t_ == type::binary || t_ == type::string || t_ == type::symbol);
    return {u_.bytes.p, u_.bytes.n};
  }

  // Checked forms: nullopt when the value has another type.
  [[nodiscard]] std::optional<std::string_view> get_string() const noexcept {
    return t_ == type::string ? std::optional(text()) : std::nullopt;
  }
  [[nodiscard]] std::optional<std::string_view> get_symbol() const noexcept {
    return t_ == type::symbol ? std::optional(text()) : std::nullopt;
  }
  [[nodiscard]] std::optional<binary_view> get_binary() const noexcept {
    return t_ == type::binary ? std::optional(binary_view(u_.bytes.p, u_.bytes.n)) : std::nullopt;
  }
  // Any unsigned integer type (ubyte, ushort, uint, ulong), widened.
  [[nodiscard]] std::optional<std::uint64_t> get_unsigned() const noexcept;
  // Any signed integer type (byte, short, int, long), widened.
  [[nodiscard]] std::optional<std::int64_t> get_signed() const noexcept;

  // Compounds. `count()` is the wire count: elements of a list or array, keys plus values of
  // a map (twice the number of entries). 0 for other types.
  [[nodiscard]] std::uint32_t count() const noexcept;
  // Elements of a list or array, or keys and values (interleaved) of a map.
  [[nodiscard]] value_range items() const noexcept;
  // The element type of an array.
  [[nodiscard]] type element_type() const noexcept;
  // For a map with string or symbol keys: the value of the first entry whose key's text is
  // `key`. nullopt if absent or not a map.
  [[nodiscard]] std::optional<value> find(std::string_view key) const noexcept;
  // For a described value: its descriptor and its value.
  [[nodiscard]] value descriptor() const noexcept;
  [[nodiscard]] value described_value() const noexcept;
  // For a described value whose descriptor is a ulong: that code.
  [[nodiscard]] std::optional<std::uint64_t> descriptor_code() const noexcept;

  // Deep equality of type and content (floats compared bit for bit; a decoded value equals
  // a built one with the same content whatever the encodings).
  friend bool operator==(const value& a, const value& b) noexcept;

private:
  friend class value_iterator;
  friend struct value_access;
  [[nodiscard]] std::string_view text() const noexcept {
    return {reinterpret_cast<const char*>(u_.bytes.p), u_.bytes.n};
  }
  void set_bytes(const void* p, std::size_t n) noexcept {
    u_.bytes.p = static_cast<const std::byte*>(p);
    u_.bytes.n = n;
  }

  struct span2 {
    const std::byte* p;  // payload: data, elements, or a described value's inner body
    const std::byte* dp; // descriptor bytes (described values, arrays of described)
    std::uint32_t n;
    std::uint32_t dn;
  };

  type t_ = type::null;
  std::uint8_t code_ = 0;      // wire format code if decoded (described: of the inner value)
  type elem_ = type::null;     // array element type
  std::uint8_t elem_code_ = 0; // decoded array: element format code
  bool decoded_ = false;       // decoded from bytes (re-encodes to them)
  std::uint32_t count_ = 0;    // list/map/array wire count
  union u {
    bool b;
    std::uint64_t u;
    std::int64_t i;
    float f;
    double d;
    char32_t c;
    std::array<std::byte, 16> fixed;
    struct {
      const std::byte* p;
      std::size_t n;
    } bytes;
    const value* items; // built list/map/array elements; built described: [descriptor, value]
    span2 enc;          // decoded array and described
  } u_;
};

// Iterates the elements of a list or array, or the keys and values of a map in wire order.
// Yields values by copy; each is valid as long as the container's storage.
class value_iterator {
public:
  using iterator_category = std::input_iterator_tag;
  using value_type = value;
  using difference_type = std::ptrdiff_t;

  value_iterator() = default;
  const value& operator*() const noexcept { return cur_; }
  const value* operator->() const noexcept { return &cur_; }
  value_iterator& operator++() noexcept;
  value_iterator operator++(int) noexcept {
    auto t = *this;
    ++*this;
    return t;
  }
  friend bool operator==(const value_iterator& a, const value_iterator& b) noexcept {
    return a.remaining_ == b.remaining_;
  }

private:
  friend class value;
  friend class value_range;
  friend struct value_access;
  const value* built_ = nullptr;   // built container: next element
  const std::byte* pos_ = nullptr; // decoded container: next element's bytes
  const std::byte* end_ = nullptr; // decoded container: end of elements
  binary_view elem_descriptor_;    // decoded array of described: the descriptor
  std::uint32_t remaining_ = 0;    // elements left
  std::uint8_t elem_code_ = 0;     // decoded array: element format code, else 0
  value cur_;                      // the current element
  void load() noexcept;
};

// A range of values (elements of a list/array, or keys and values of a map interleaved).
class value_range {
public:
  [[nodiscard]] value_iterator begin() const noexcept { return begin_; }
  [[nodiscard]] value_iterator end() const noexcept { return {}; }
  // Number of values in the range.
  [[nodiscard]] std::uint32_t size() const noexcept { return begin_.remaining_; }
  [[nodiscard]] bool empty() const noexcept { return size() == 0; }

private:
  friend class value;
  friend struct value_access;
  value_iterator begin_;
};

} // namespace amqp
