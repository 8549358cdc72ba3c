// amqp::value accessors, iteration and equality.
#include "amqp/value.hpp"

#include <bit>
#include <cstdint>
#include <cstring>

#include "amqp/assert.hpp"
#include "codec/constructors.hpp"
#include "codec/reader.hpp"
#include "codec/value_access.hpp"

namespace amqp {

static_assert(sizeof(value) <= 40, "value stays small: it is passed and stored by copy");

namespace {
constexpr std::string_view type_names[] = {
    "null",       "boolean", "ubyte",     "ushort",   "uint",   "ulong",     "byte",
    "short",      "int",     "long",      "float",    "double", "decimal32", "decimal64",
    "decimal128", "char",    "timestamp", "uuid",     "binary", "string",    "symbol",
    "list",       "map",     "array",     "described"};
} // namespace

std::string_view type_name(type t) noexcept {
  return type_names[static_cast<std::size_t>(t)];
}

std::optional<type> type_from_name(std::string_view name) noexcept {
  for (std::size_t k = 0; k < std::size(type_names); ++k) {
    if (type_names[k] == name) {
      return static_cast<type>(k);
    }
  }
  return std::nullopt;
}

value::value(const decimal32& v) noexcept : t_(type::decimal32) {
  u_.fixed = {};
  std::memcpy(u_.fixed.data(), v.bytes.data(), 4);
}
value::value(const decimal64& v) noexcept : t_(type::decimal64) {
  u_.fixed = {};
  std::memcpy(u_.fixed.data(), v.bytes.data(), 8);
}

value value::list(std::span<const value> items) noexcept {
  value v;
  v.t_ = type::list;
  v.count_ = static_cast<std::uint32_t>(items.size());
  v.u_.items = items.data();
  return v;
}
value value::map(std::span<const value> keys_and_values) noexcept {
  AMQP_ASSERT(keys_and_values.size() % 2 == 0);
  value v = list(keys_and_values);
  v.t_ = type::map;
  return v;
}
value value::array(type element, std::span<const value> items) noexcept {
  value v = list(items);
  v.t_ = type::array;
  v.elem_ = element;
  return v;
}
value value::described(std::span<const value, 2> pair) noexcept {
  value v;
  v.t_ = type::described;
  v.u_.items = pair.data();
  return v;
}

uuid value::as_uuid() const noexcept {
  AMQP_ASSERT(t_ == type::uuid);
  return {u_.fixed};
}
decimal32 value::as_decimal32() const noexcept {
  AMQP_ASSERT(t_ == type::decimal32);
  decimal32 d;
  std::memcpy(d.bytes.data(), u_.fixed.data(), 4);
  return d;
}
decimal64 value::as_decimal64() const noexcept {
  AMQP_ASSERT(t_ == type::decimal64);
  decimal64 d;
  std::memcpy(d.bytes.data(), u_.fixed.data(), 8);
  return d;
}
decimal128 value::as_decimal128() const noexcept {
  AMQP_ASSERT(t_ == type::decimal128);
  return {u_.fixed};
}

std::optional<std::uint64_t> value::get_unsigned() const noexcept {
  switch (t_) {
  case type::ubyte:
  case type::ushort:
  case type::uint:
  case type::ulong:
    return u_.u;
  default:
    return std::nullopt;
  }
}
std::optional<std::int64_t> value::get_signed() const noexcept {
  switch (t_) {
  case type::byte:
  case type::short_:
  case type::int_:
  case type::long_:
    return u_.i;
  default:
    return std::nullopt;
  }
}

std::uint32_t value::count() const noexcept {
  return (t_ == type::list || t_ == type::map || t_ == type::array) ? count_ : 0;
}

value_range value::items() const noexcept {
  value_range r;
  value_iterator& it = r.begin_;
  if (t_ != type::list && t_ != type::map && t_ != type::array) {
    return r;
  }
  it.remaining_ = count_;
  if (!decoded_) {
    it.built_ = u_.items;
  } else if (t_ == type::array) {
    it.pos_ = u_.enc.p;
    it.end_ = u_.enc.p + u_.enc.n;
    it.elem_descriptor_ = {u_.enc.dp, u_.enc.dn};
    it.elem_code_ = elem_code_;
  } else {
    it.pos_ = u_.bytes.p;
    it.end_ = u_.bytes.p + u_.bytes.n;
  }
  if (it.remaining_ != 0) {
    it.load();
  }
  return r;
}

void value_iterator::load() noexcept {
  if (built_ != nullptr) {
    cur_ = *built_++;
  } else if (elem_code_ == 0) {
    cur_ = detail::decode_trusted(pos_);
  } else if (elem_descriptor_.empty()) {
    cur_ = detail::decode_trusted_body(elem_code_, pos_);
  } else {
    const std::byte* start = pos_;
    detail::trusted_skip_body(elem_code_, pos_);
    cur_ = value_access::make(type::described, elem_code_);
    value_access::set_enc(cur_, {start, pos_}, elem_descriptor_);
  }
}

value_iterator& value_iterator::operator++() noexcept {
  AMQP_ASSERT(remaining_ != 0);
  if (--remaining_ != 0) {
    load();
  }
  return *this;
}

type value::element_type() const noexcept {
  AMQP_ASSERT(t_ == type::array);
  return elem_;
}

std::optional<value> value::find(std::string_view key) const noexcept {
  if (t_ != type::map) {
    return std::nullopt;
  }
  if (!decoded_) {
    for (std::uint32_t k = 0; k + 1 < count_; k += 2) {
      const value& kv = u_.items[k];
      if ((kv.t_ == type::string || kv.t_ == type::symbol) && kv.as_string() == key) {
        return u_.items[k + 1];
      }
    }
    return std::nullopt;
  }
  return detail::find_in_pairs(u_.bytes.p, count_ / 2, key);
}

namespace detail {

std::optional<value> find_in_pairs(const std::byte* p, std::uint32_t pairs,
                                   std::string_view key) noexcept {
  // Compare keys in place and skip values without decoding them: only the match is decoded.
  for (std::uint32_t k = 0; k < pairs; ++k) {
    auto c = std::to_integer<std::uint8_t>(*p);
    std::size_t n = 0;
    const std::byte* text = nullptr;
    if (c == code::sym8 || c == code::str8) {
      n = std::to_integer<std::size_t>(p[1]);
      text = p + 2;
    } else if (c == code::sym32 || c == code::str32) {
      n = load_be32(p + 1);
      text = p + 5;
    }
    if (text != nullptr) {
      p = text + n;
    } else {
      trusted_skip(p);
    }
    if (text != nullptr && n == key.size() && bytes_equal(text, key.data(), n)) {
      return decode_trusted(p);
    }
    trusted_skip(p);
  }
  return std::nullopt;
}

} // namespace detail

value value::descriptor() const noexcept {
  AMQP_ASSERT(t_ == type::described);
  if (!decoded_) {
    return u_.items[0];
  }
  const std::byte* p = u_.enc.dp;
  return detail::decode_trusted(p);
}

value value::described_value() const noexcept {
  AMQP_ASSERT(t_ == type::described);
  if (!decoded_) {
    return u_.items[1];
  }
  const std::byte* p = u_.enc.p;
  return detail::decode_trusted_body(code_, p);
}

std::optional<std::uint64_t> value::descriptor_code() const noexcept {
  if (t_ != type::described) {
    return std::nullopt;
  }
  value d = descriptor();
  if (d.t_ != type::ulong) {
    return std::nullopt;
  }
  return d.u_.u;
}

bool operator==(const value& a, const value& b) noexcept {
  if (a.t_ != b.t_) {
    return false;
  }
  switch (a.t_) {
  case type::null:
    return true;
  case type::boolean:
    return a.u_.b == b.u_.b;
  case type::ubyte:
  case type::ushort:
  case type::uint:
  case type::ulong:
    return a.u_.u == b.u_.u;
  case type::byte:
  case type::short_:
  case type::int_:
  case type::long_:
  case type::timestamp:
    return a.u_.i == b.u_.i;
  case type::float_: // bit for bit: NaN payloads and the sign of zero count
    return std::bit_cast<std::uint32_t>(a.u_.f) == std::bit_cast<std::uint32_t>(b.u_.f);
  case type::double_:
    return std::bit_cast<std::uint64_t>(a.u_.d) == std::bit_cast<std::uint64_t>(b.u_.d);
  case type::char_:
    return a.u_.c == b.u_.c;
  case type::decimal32:
  case type::decimal64:
  case type::decimal128:
  case type::uuid:
    return a.u_.fixed == b.u_.fixed;
  case type::binary:
  case type::string:
  case type::symbol:
    return a.as_string() == b.as_string();
  case type::array:
    if (a.elem_ != b.elem_) {
      return false;
    }
    [[fallthrough]];
  case type::list:
  case type::map: {
    if (a.count_ != b.count_) {
      return false;
    }
    auto ra = a.items();
    auto rb = b.items();
    for (auto ia = ra.begin(), ib = rb.begin(); ia != ra.end(); ++ia, ++ib) {
      if (!(*ia == *ib)) {
        return false;
      }
    }
    return true;
  }
  case type::described:
    return a.descriptor() == b.descriptor() && a.described_value() == b.described_value();
  }
  return false;
}

} // namespace amqp
