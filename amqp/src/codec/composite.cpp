// The generic composite decoder and encoder (composite.hpp): loops over the field tables, one
// switch on the kind of each field. Nothing here is made per type.
#include "codec/composite.hpp"

#include <cstring>
#include <limits>

namespace amqp::detail {

namespace {

// Scalar members (bool, unsigned integers, enums on them, and std::optional of those) are
// read and written as bytes of their underlying type: an enum and its underlying type have
// the same representation, as do std::optional of either.
template <class U> U load(const void* m) noexcept {
  U u;
  std::memcpy(&u, m, sizeof u);
  return u;
}
template <class U> void store(void* m, const U& u) noexcept {
  std::memcpy(m, &u, sizeof u);
}

template <class M> M& member(void* obj, const field_desc& f) noexcept {
  return *static_cast<M*>(static_cast<void*>(static_cast<std::byte*>(obj) + f.offset));
}
template <class M> const M& member(const void* obj, const field_desc& f) noexcept {
  return *static_cast<const M*>(
      static_cast<const void*>(static_cast<const std::byte*>(obj) + f.offset));
}

// An unsigned field of `bytes` bytes (1, 2, 4, 8; enums on bool are kind boolean).
template <class U> errc decode_unsigned(const value& v, void* m, bool optional) noexcept {
  const auto u = v.get_unsigned();
  if (!u || *u > std::numeric_limits<U>::max()) {
    return errc::type_mismatch;
  }
  if (optional) {
    store(m, std::optional<U>(static_cast<U>(*u)));
  } else {
    store(m, static_cast<U>(*u));
  }
  return {};
}

// Any value: the composite decoder's type checks, by the member's kind.
errc decode_field(const field_desc& f, const value& v, void* obj) noexcept {
  void* const m = static_cast<std::byte*>(obj) + f.offset;
  using k = field_kind;
  switch (f.kind) {
  case k::boolean:
  case k::opt_boolean:
    if (!v.is(type::boolean)) {
      return errc::type_mismatch;
    }
    if (f.kind == k::boolean) {
      store(m, v.as_bool());
    } else {
      store(m, std::optional<bool>(v.as_bool()));
    }
    return {};
  case k::ubyte:
  case k::opt_ubyte:
    return decode_unsigned<std::uint8_t>(v, m, f.kind == k::opt_ubyte);
  case k::ushort:
  case k::opt_ushort:
    return decode_unsigned<std::uint16_t>(v, m, f.kind == k::opt_ushort);
  case k::uint:
  case k::opt_uint:
    return decode_unsigned<std::uint32_t>(v, m, f.kind == k::opt_uint);
  case k::ulong:
  case k::opt_ulong:
    return decode_unsigned<std::uint64_t>(v, m, f.kind == k::opt_ulong);
  case k::string:
  case k::opt_string:
    if (!v.is(type::string)) {
      return errc::type_mismatch;
    }
    if (f.kind == k::string) {
      member<std::string_view>(obj, f) = v.as_string();
    } else {
      member<std::optional<std::string_view>>(obj, f) = v.as_string();
    }
    return {};
  case k::symbol:
  case k::opt_symbol:
    if (!v.is(type::symbol)) {
      return errc::type_mismatch;
    }
    if (f.kind == k::symbol) {
      member<symbol_view>(obj, f) = {v.as_symbol()};
    } else {
      member<std::optional<symbol_view>>(obj, f) = symbol_view{v.as_symbol()};
    }
    return {};
  case k::binary:
  case k::opt_binary:
    if (!v.is(type::binary)) {
      return errc::type_mismatch;
    }
    if (f.kind == k::binary) {
      member<binary_view>(obj, f) = v.as_binary();
    } else {
      member<std::optional<binary_view>>(obj, f) = v.as_binary();
    }
    return {};
  case k::timestamp:
  case k::opt_timestamp:
    if (!v.is(type::timestamp)) {
      return errc::type_mismatch;
    }
    if (f.kind == k::timestamp) {
      member<timestamp>(obj, f) = v.as_timestamp();
    } else {
      member<std::optional<timestamp>>(obj, f) = v.as_timestamp();
    }
    return {};
  case k::any:
    member<value>(obj, f) = v;
    return {};
  case k::multiple:
    if (v.is(type::symbol) || (v.is(type::array) && v.element_type() == type::symbol)) {
      member<symbols>(obj, f) = symbols{v};
      return {};
    }
    return errc::type_mismatch;
  case k::nested:
    return decode_alternatives(v, *f.nested, m);
  }
  return errc::type_mismatch;
}

// A string, symbol or binary field read in place from validated bytes: `short_code` is str8,
// sym8 or vbin8 (the 32-bit form is short_code + 0x10).
errc variable_at(const std::byte* p, std::uint8_t short_code,
                 std::span<const std::byte>& out) noexcept {
  const auto c = std::to_integer<std::uint8_t>(*p);
  if (c == short_code) {
    out = {p + 2, std::to_integer<std::size_t>(p[1])};
  } else if (c == short_code + 0x10) {
    out = {p + 5, load_be32(p + 1)};
  } else {
    return errc::type_mismatch;
  }
  return {};
}

std::string_view chars(std::span<const std::byte> b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// The field of `f` from the encoded value at p, which passed validation. The same answers as
// decode_field(f, decode_trusted(p), obj): strings, symbols, binaries, timestamps and values
// are read in place, everything else through a value.
errc decode_field_at(const field_desc& f, const std::byte* p, void* obj) noexcept {
  using k = field_kind;
  std::span<const std::byte> b;
  errc e{};
  switch (f.kind) {
  case k::string:
  case k::opt_string:
    if (e = variable_at(p, code::str8, b); e == errc{}) {
      if (f.kind == k::string) {
        member<std::string_view>(obj, f) = chars(b);
      } else {
        member<std::optional<std::string_view>>(obj, f) = chars(b);
      }
    }
    return e;
  case k::symbol:
  case k::opt_symbol:
    if (e = variable_at(p, code::sym8, b); e == errc{}) {
      if (f.kind == k::symbol) {
        member<symbol_view>(obj, f) = {chars(b)};
      } else {
        member<std::optional<symbol_view>>(obj, f) = symbol_view{chars(b)};
      }
    }
    return e;
  case k::binary:
  case k::opt_binary:
    if (e = variable_at(p, code::vbin8, b); e == errc{}) {
      if (f.kind == k::binary) {
        member<binary_view>(obj, f) = b;
      } else {
        member<std::optional<binary_view>>(obj, f) = b;
      }
    }
    return e;
  case k::timestamp:
  case k::opt_timestamp: {
    if (*p != std::byte{code::timestamp}) {
      return errc::type_mismatch;
    }
    const timestamp t{static_cast<std::int64_t>(load_be64(p + 1))};
    if (f.kind == k::timestamp) {
      member<timestamp>(obj, f) = t;
    } else {
      member<std::optional<timestamp>>(obj, f) = t;
    }
    return {};
  }
  case k::any: {
    auto& v = member<value>(obj, f);
    v = value{};
    value_access::decode_at(p, v);
    return {};
  }
  default: {
    const std::byte* q = p;
    return decode_field(f, decode_trusted(q), obj);
  }
  }
}

// Walks the fields of a list: decoded lists are read in place, and null fields are skipped
// without building a value.
class field_cursor {
public:
  explicit field_cursor(const value& l) noexcept
      : left_(value_access::count(l)),
        built_(value_access::decoded(l) ? nullptr : value_access::items(l)),
        pos_(value_access::decoded(l) ? value_access::bytes(l).data() : nullptr) {}

  // The next field in `v`; false if it is null or absent (v untouched then).
  bool next(value& v) noexcept {
    if (left_ == 0) {
      return false;
    }
    --left_;
    if (pos_ != nullptr) {
      if (*pos_ == std::byte{code::null}) {
        ++pos_;
        return false;
      }
      v = decode_trusted(pos_);
      return true;
    }
    if (built_ == nullptr) {
      return false;
    }
    v = *built_++;
    return !v.is_null();
  }

private:
  std::uint32_t left_;
  const value* built_;
  const std::byte* pos_;
};

constexpr std::size_t no_encoding = static_cast<std::size_t>(-1);

std::size_t sized(std::size_t n) noexcept {
  return n != 0 ? n : no_encoding;
}

std::size_t uint_size(std::uint64_t u) noexcept {
  return u == 0 ? 1 : u <= 0xFF ? 2 : 5;
}
std::size_t ulong_size(std::uint64_t u) noexcept {
  return u == 0 ? 1 : u <= 0xFF ? 2 : 9;
}

// 0 if the field is written as null (absent, or equal to its default and not mandatory: AMQP
// 1.0 §1.4), else its encoded size, or no_encoding. One switch: this runs for every field of
// every composite encoded.
[[gnu::always_inline]] inline std::size_t field_size(const field_desc& f, const composite_desc& d,
                                                     const void* c) noexcept {
  const void* const m = static_cast<const std::byte*>(c) + f.offset;
  const void* const dm = static_cast<const std::byte*>(d.defaults) + f.offset;
  using k = field_kind;
  switch (f.kind) {
  case k::boolean:
    return !f.mandatory && load<bool>(m) == load<bool>(dm) ? 0 : 1;
  case k::ubyte:
    return !f.mandatory && load<std::uint8_t>(m) == load<std::uint8_t>(dm) ? 0 : 2;
  case k::ushort:
    return !f.mandatory && load<std::uint16_t>(m) == load<std::uint16_t>(dm) ? 0 : 3;
  case k::uint: {
    const auto u = load<std::uint32_t>(m);
    return !f.mandatory && u == load<std::uint32_t>(dm) ? 0 : uint_size(u);
  }
  case k::ulong: {
    const auto u = load<std::uint64_t>(m);
    return !f.mandatory && u == load<std::uint64_t>(dm) ? 0 : ulong_size(u);
  }
  case k::opt_boolean:
    return load<std::optional<bool>>(m) ? 1 : 0;
  case k::opt_ubyte:
    return load<std::optional<std::uint8_t>>(m) ? 2 : 0;
  case k::opt_ushort:
    return load<std::optional<std::uint16_t>>(m) ? 3 : 0;
  case k::opt_uint: {
    const auto o = load<std::optional<std::uint32_t>>(m);
    return o ? uint_size(*o) : 0;
  }
  case k::opt_ulong: {
    const auto o = load<std::optional<std::uint64_t>>(m);
    return o ? ulong_size(*o) : 0;
  }
  case k::string: {
    const auto s = member<std::string_view>(c, f);
    return !f.mandatory && s == member<std::string_view>(d.defaults, f)
               ? 0
               : sized(variable_size(s.size()));
  }
  case k::symbol: {
    const auto s = member<symbol_view>(c, f).str;
    return !f.mandatory && s == member<symbol_view>(d.defaults, f).str
               ? 0
               : sized(variable_size(s.size()));
  }
  case k::opt_string: {
    const auto& o = member<std::optional<std::string_view>>(c, f);
    return o ? sized(variable_size(o->size())) : 0;
  }
  case k::opt_symbol: {
    const auto& o = member<std::optional<symbol_view>>(c, f);
    return o ? sized(variable_size(o->str.size())) : 0;
  }
  case k::binary:
    return sized(variable_size(member<binary_view>(c, f).size()));
  case k::opt_binary: {
    const auto& o = member<std::optional<binary_view>>(c, f);
    return o ? sized(variable_size(o->size())) : 0;
  }
  case k::timestamp:
    return !f.mandatory && member<timestamp>(c, f) == member<timestamp>(d.defaults, f) ? 0 : 9;
  case k::opt_timestamp:
    return member<std::optional<timestamp>>(c, f) ? 9 : 0;
  case k::any: {
    const auto& v = member<value>(c, f);
    return v.is_null() ? 0 : sized(size_of(v));
  }
  case k::multiple: {
    // A multiple symbol field holds null, a symbol or an array of symbols (AMQP 1.0 §1.4).
    const value& v = member<symbols>(c, f).as_value();
    if (v.is_null()) {
      return 0;
    }
    if (!v.is(type::symbol) && !(v.is(type::array) && v.element_type() == type::symbol)) {
      return no_encoding;
    }
    return sized(size_of(v));
  }
  case k::nested: {
    std::size_t alt = 0;
    const void* x = f.nested->held(m, alt);
    if (x == nullptr) {
      return 0;
    }
    if (alt < f.nested->count) {
      return sized(plan_composite(*f.nested->alts[alt], x).full);
    }
    return sized(size_of(*static_cast<const value*>(x)));
  }
  }
  return no_encoding;
}

void write_uint(std::uint32_t u, writer& w) noexcept {
  if (u == 0) {
    w.u8(code::uint0);
  } else if (u <= 0xFF) {
    w.u8(code::smalluint);
    w.u8(static_cast<std::uint8_t>(u));
  } else {
    w.u8(code::uint);
    w.u32(u);
  }
}

void write_ulong(std::uint64_t u, writer& w) noexcept {
  if (u == 0) {
    w.u8(code::ulong0);
  } else if (u <= 0xFF) {
    w.u8(code::smallulong);
    w.u8(static_cast<std::uint8_t>(u));
  } else {
    w.u8(code::ulong);
    w.u64(u);
  }
}

void write_text(type t, std::string_view s, writer& w) noexcept {
  write_variable(t, {reinterpret_cast<const std::byte*>(s.data()), s.size()}, w);
}

// Writes a field field_size found not null, in the smallest encoding (the value encoder's
// choices: encode.cpp scalar_code).
[[gnu::always_inline]] inline void write_field(const field_desc& f, const void* c,
                                               writer& w) noexcept {
  const void* const m = static_cast<const std::byte*>(c) + f.offset;
  using k = field_kind;
  switch (f.kind) {
  case k::boolean:
    w.u8(load<bool>(m) ? code::true_ : code::false_);
    return;
  case k::opt_boolean:
    w.u8(*load<std::optional<bool>>(m) ? code::true_ : code::false_);
    return;
  case k::ubyte:
    w.u8(code::ubyte);
    w.u8(load<std::uint8_t>(m));
    return;
  case k::opt_ubyte:
    w.u8(code::ubyte);
    w.u8(*load<std::optional<std::uint8_t>>(m));
    return;
  case k::ushort:
    w.u8(code::ushort);
    w.u16(load<std::uint16_t>(m));
    return;
  case k::opt_ushort:
    w.u8(code::ushort);
    w.u16(*load<std::optional<std::uint16_t>>(m));
    return;
  case k::uint:
    write_uint(load<std::uint32_t>(m), w);
    return;
  case k::opt_uint:
    write_uint(*load<std::optional<std::uint32_t>>(m), w);
    return;
  case k::ulong:
    write_ulong(load<std::uint64_t>(m), w);
    return;
  case k::opt_ulong:
    write_ulong(*load<std::optional<std::uint64_t>>(m), w);
    return;
  case k::string:
    write_text(type::string, member<std::string_view>(c, f), w);
    return;
  case k::opt_string:
    write_text(type::string, *member<std::optional<std::string_view>>(c, f), w);
    return;
  case k::symbol:
    write_text(type::symbol, member<symbol_view>(c, f).str, w);
    return;
  case k::opt_symbol:
    write_text(type::symbol, member<std::optional<symbol_view>>(c, f)->str, w);
    return;
  case k::binary:
    write_variable(type::binary, member<binary_view>(c, f), w);
    return;
  case k::opt_binary:
    write_variable(type::binary, *member<std::optional<binary_view>>(c, f), w);
    return;
  case k::timestamp:
  case k::opt_timestamp: {
    const timestamp t =
        f.kind == k::timestamp ? member<timestamp>(c, f) : *member<std::optional<timestamp>>(c, f);
    w.u8(code::timestamp);
    w.u64(static_cast<std::uint64_t>(t.ms));
    return;
  }
  case k::any:
    write_value(member<value>(c, f), w);
    return;
  case k::multiple:
    write_value(member<symbols>(c, f).as_value(), w);
    return;
  case k::nested: {
    std::size_t alt = 0;
    const void* x = f.nested->held(m, alt);
    if (alt < f.nested->count) {
      const composite_desc& nd = *f.nested->alts[alt];
      write_composite(nd, x, plan_composite(nd, x), w);
    } else {
      write_value(*static_cast<const value*>(x), w);
    }
    return;
  }
  }
}

// The alternative of `a` whose descriptor is `descriptor`, or a.count.
std::size_t find_alternative(const value& descriptor, const alternatives& a) noexcept {
  if (descriptor.is(type::ulong)) {
    const std::uint64_t code = descriptor.as_ulong();
    for (std::size_t k = 0; k < a.count; ++k) {
      if (a.alts[k]->code == code) {
        return k;
      }
    }
  } else if (descriptor.is(type::symbol)) {
    for (std::size_t k = 0; k < a.count; ++k) {
      if (a.alts[k]->name == descriptor.as_symbol()) {
        return k;
      }
    }
  }
  return a.count;
}

} // namespace

bool has_descriptor(const value& v, const composite_desc& d) noexcept {
  if (!v.is(type::described)) {
    return false;
  }
  const value dv = v.descriptor();
  if (dv.is(type::ulong)) {
    return dv.as_ulong() == d.code;
  }
  return dv.is(type::symbol) && dv.as_symbol() == d.name;
}

errc decode_fields(const value& l, const composite_desc& d, void* out) noexcept {
  if (!l.is(type::list)) {
    return errc::type_mismatch;
  }
  field_cursor cursor(l);
  for (std::size_t k = 0; k < d.count; ++k) {
    const field_desc& f = d.fields[k];
    value fv;
    if (!cursor.next(fv)) {
      if (f.mandatory) {
        return errc::missing_field;
      }
      continue;
    }
    if (const errc e = decode_field(f, fv, out); e != errc{}) {
      return e;
    }
  }
  return {};
}

errc decode_composite(const value& v, const composite_desc& d, void* out) noexcept {
  if (!has_descriptor(v, d)) {
    return v.is(type::described) ? errc::unexpected_descriptor : errc::type_mismatch;
  }
  std::memcpy(out, d.defaults, d.size);
  return decode_fields(v.described_value(), d, out);
}

errc decode_alternatives(const value& v, const alternatives& a, void* h) noexcept {
  if (!v.is(type::described)) {
    return errc::type_mismatch;
  }
  const std::size_t k = find_alternative(v.descriptor(), a);
  if (k == a.count) {
    if (!a.other) {
      return errc::unexpected_descriptor;
    }
    *static_cast<value*>(a.emplace(h, k)) = v;
    return {};
  }
  void* x = a.emplace(h, k);
  const errc e = decode_fields(v.described_value(), *a.alts[k], x);
  if (e != errc{}) {
    a.reset(h);
  }
  return e;
}

errc decode_fields_checked(validator& check, const std::byte*& p, const std::byte* end,
                           std::uint32_t depth, const composite_desc& d, void* out,
                           errc& status) noexcept {
  status = {};
  if (p == end) {
    return errc::decode_error;
  }
  const auto c = std::to_integer<std::uint8_t>(*p);
  validator::compound_frame f;
  if (c == code::list0) {
    ++p;
  } else if (c == code::list8 || c == code::list32) {
    ++p;
    if (auto e = check.open(ctor_table[c], p, end, depth, f); e != errc{}) {
      return e;
    }
  } else {
    if (auto e = check.value(p, end, depth); e != errc{}) {
      return e;
    }
    status = errc::type_mismatch;
    return {};
  }
  // The first decoding error wins, as in decode_fields; validation goes on to the end.
  for (std::uint32_t k = 0; k < f.count; ++k) {
    const std::byte* at = f.q;
    if (at != f.end && *at == std::byte{code::null}) {
      ++f.q;
      if (d.mandatory != 0 && k < d.count && (d.mandatory >> k & 1U) != 0 && status == errc{}) {
        status = errc::missing_field;
      }
      continue;
    }
    if (auto e = check.value(f.q, f.end, depth + 1); e != errc{}) {
      return e;
    }
    // AMQP 1.0 §1.4: fields beyond those the table knows (a later version's) are ignored.
    if (k < d.count && status == errc{}) {
      status = decode_field_at(d.fields[k], at, out);
    }
  }
  if (f.count < d.required && status == errc{}) {
    status = errc::missing_field; // a mandatory field is absent
  }
  return f.q == f.end ? errc{} : errc::decode_error; // nothing left over
}

composite_plan plan_composite(const composite_desc& d, const void* c) noexcept {
  composite_plan plan;
  std::size_t all = 0; // bytes of every field so far, nulls included
  for (std::size_t k = 0; k < d.count; ++k) {
    const std::size_t size = field_size(d.fields[k], d, c);
    if (size == no_encoding) {
      plan.full = 0;
      return plan; // cannot be encoded
    }
    plan.sizes[k] = size;
    if (size == 0) {
      ++all;
    } else {
      all += size;
      plan.n = k + 1; // trailing nulls are dropped
      plan.payload = all;
    }
  }
  const std::size_t list = plan.n == 0                ? 1
                           : plan.payload + 1 <= 0xFF ? 3 + plan.payload
                                                      : 9 + plan.payload;
  plan.full = (d.code <= 0xFF ? 3 : 10) + list;
  return plan;
}

void write_composite(const composite_desc& d, const void* c, const composite_plan& plan,
                     writer& w) noexcept {
  w.u8(code::described);
  if (d.code <= 0xFF) {
    w.u8(code::smallulong);
    w.u8(static_cast<std::uint8_t>(d.code));
  } else {
    w.u8(code::ulong);
    w.u64(d.code);
  }
  if (plan.n == 0) {
    w.u8(code::list0);
    return;
  }
  if (plan.payload + 1 <= 0xFF) {
    w.u8(code::list8);
    w.u8(static_cast<std::uint8_t>(plan.payload + 1));
    w.u8(static_cast<std::uint8_t>(plan.n));
  } else {
    w.u8(code::list32);
    w.u32(static_cast<std::uint32_t>(plan.payload + 4));
    w.u32(static_cast<std::uint32_t>(plan.n));
  }
  for (std::size_t k = 0; k < plan.n; ++k) {
    if (plan.sizes[k] == 0) {
      w.u8(code::null);
    } else {
      write_field(d.fields[k], c, w);
    }
  }
}

result<std::size_t> composite_size(const composite_desc& d, const void* c) noexcept {
  const std::size_t n = plan_composite(d, c).full;
  return n != 0 ? result<std::size_t>{n} : result<std::size_t>{errc::invalid_argument};
}

result<std::size_t> encode_composite(const composite_desc& d, const void* c,
                                     std::span<std::byte> out) noexcept {
  const composite_plan plan = plan_composite(d, c);
  if (plan.full == 0) {
    return errc::invalid_argument;
  }
  if (plan.full > out.size()) {
    return errc::buffer_too_small;
  }
  writer w(out.first(plan.full));
  write_composite(d, c, plan, w);
  return plan.full;
}

result<std::size_t> held_size(const alternatives& a, const void* h) noexcept {
  std::size_t k = 0;
  const void* x = a.held(h, k);
  if (x == nullptr) {
    return errc::invalid_argument;
  }
  if (k < a.count) {
    return composite_size(*a.alts[k], x);
  }
  const std::size_t n = size_of(*static_cast<const value*>(x));
  return n != 0 ? result<std::size_t>{n} : result<std::size_t>{errc::invalid_argument};
}

result<std::size_t> encode_held(const alternatives& a, const void* h,
                                std::span<std::byte> out) noexcept {
  std::size_t k = 0;
  const void* x = a.held(h, k);
  if (x == nullptr) {
    return errc::invalid_argument;
  }
  if (k < a.count) {
    return encode_composite(*a.alts[k], x, out);
  }
  const value& v = *static_cast<const value*>(x);
  const std::size_t n = size_of(v);
  if (n == 0) {
    return errc::invalid_argument;
  }
  if (n > out.size()) {
    return errc::buffer_too_small;
  }
  writer w(out.first(n));
  write_value(v, w);
  return n;
}

} // namespace amqp::detail
