// Table-driven encoding and decoding of AMQP composite types (AMQP 1.0 §1.4, the
// <type class="composite"> entries of the spec XML).
//
// Each composite type T describes itself once, in a specialisation of composite_traits<T>:
//
//   template <> struct composite_traits<begin> {
//     static constexpr std::uint64_t code = 0x11;               // amqp:begin:list
//     static constexpr std::string_view name = "amqp:begin:list";
//     static constexpr auto fields = std::tuple{
//         field{&begin::remote_channel, "remote-channel"},
//         field{&begin::next_outgoing_id, "next-outgoing-id", mandatory}, ...};
//   };
//
// and generic code below decodes and encodes it. Member types map to AMQP field types:
// bool, unsigned integers (any unsigned AMQP integer that fits is accepted), std::string_view
// (string), symbol_view, binary_view, timestamp, value (any type, maps, `*` fields), symbols
// (multiple symbols), enums (as their underlying type: restricted types with choices),
// std::optional<X> of those, other composites (nested), and std::variant<composites...>
// (a `*` field with `requires`, decoded by descriptor; an alternative of type `value` keeps a
// described value no other alternative claims). Variant members must be std::optional: they
// have no default to compare against.
//
// Encoding: fields equal to their default (or empty optionals, null values) are written as
// null, and trailing nulls are dropped (§1.4: "a list with fewer elements than fields is
// padded with nulls"). Mandatory fields are always written.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "amqp/result.hpp"
#include "amqp/symbols.hpp"
#include "amqp/value.hpp"
#include "codec/constructors.hpp"
#include "codec/encode_internal.hpp"
#include "codec/validator.hpp"
#include "codec/value_access.hpp"
#include "codec/writer.hpp"

namespace amqp::detail {

inline constexpr unsigned mandatory = 1;

template <class T, class M> struct field {
  M T::*member;
  std::string_view name;
  unsigned flags = 0;
};
template <class T, class M> field(M T::*, std::string_view) -> field<T, M>;
template <class T, class M> field(M T::*, std::string_view, unsigned) -> field<T, M>;

template <class T> struct composite_traits;

template <class T>
concept composite = requires {
  { composite_traits<T>::code } -> std::convertible_to<std::uint64_t>;
  composite_traits<T>::fields;
};

template <class T> struct is_optional : std::false_type {};
template <class T> struct is_optional<std::optional<T>> : std::true_type {};
template <class T> struct is_variant : std::false_type {};
template <class... Ts> struct is_variant<std::variant<Ts...>> : std::true_type {};

// ---- decoding ---------------------------------------------------------------------------

template <composite T> result<void> decode_composite(const value& v, T& out) noexcept;

inline result<void> decode_member(const value& v, bool& out) noexcept {
  if (!v.is(type::boolean)) {
    return errc::type_mismatch;
  }
  out = v.as_bool();
  return {};
}
template <std::unsigned_integral M>
requires(!std::same_as<M, bool>) result<void> decode_member(const value& v, M& out)
noexcept {
  auto u = v.get_unsigned();
  if (!u || *u > std::numeric_limits<M>::max()) {
    return errc::type_mismatch;
  }
  out = static_cast<M>(*u);
  return {};
}
inline result<void> decode_member(const value& v, std::string_view& out) noexcept {
  if (!v.is(type::string)) {
    return errc::type_mismatch;
  }
  out = v.as_string();
  return {};
}
inline result<void> decode_member(const value& v, symbol_view& out) noexcept {
  if (!v.is(type::symbol)) {
    return errc::type_mismatch;
  }
  out = {v.as_symbol()};
  return {};
}
inline result<void> decode_member(const value& v, binary_view& out) noexcept {
  if (!v.is(type::binary)) {
    return errc::type_mismatch;
  }
  out = v.as_binary();
  return {};
}
inline result<void> decode_member(const value& v, timestamp& out) noexcept {
  if (!v.is(type::timestamp)) {
    return errc::type_mismatch;
  }
  out = v.as_timestamp();
  return {};
}
inline result<void> decode_member(const value& v, value& out) noexcept {
  out = v;
  return {};
}
inline result<void> decode_member(const value& v, symbols& out) noexcept {
  if (v.is(type::symbol) || (v.is(type::array) && v.element_type() == type::symbol)) {
    out = symbols{v};
    return {};
  }
  return errc::type_mismatch;
}
template <class E>
requires std::is_enum_v<E> result<void> decode_member(const value& v, E& out)
noexcept {
  std::underlying_type_t<E> u{};
  auto r = decode_member(v, u);
  if (r) {
    out = static_cast<E>(u);
  }
  return r;
}
template <composite M> result<void> decode_member(const value& v, M& out) noexcept {
  return decode_composite(v, out);
}
template <composite T> bool has_descriptor(const value& v) noexcept;
// The alternative whose descriptor `v` has; else the `value` alternative, if any, for any
// described value. Errors: errc::unexpected_descriptor (described, unclaimed),
// errc::type_mismatch (not described), or those of the alternative's decoder.
template <class... Alts>
result<void> decode_member(const value& v, std::variant<Alts...>& out) noexcept {
  result<void> status = v.is(type::described) ? errc::unexpected_descriptor : errc::type_mismatch;
  bool found = false;
  auto one = [&]<class Alt>(std::type_identity<Alt>) {
    if constexpr (composite<Alt>) {
      if (!found && has_descriptor<Alt>(v)) {
        found = true;
        status = decode_composite(v, out.template emplace<Alt>());
      }
    }
  };
  (one(std::type_identity<Alts>{}), ...);
  if constexpr ((std::same_as<Alts, value> || ...)) {
    if (!found && v.is(type::described)) {
      out.template emplace<value>(v);
      status = {};
    }
  }
  return status;
}
template <class M> result<void> decode_member(const value& v, std::optional<M>& out) noexcept {
  M m{};
  auto r = decode_member(v, m);
  if (!r) {
    return r;
  }
  out = std::move(m);
  return {};
}

// True if `v` (a described value) has the descriptor of T: its code or its symbolic name.
template <composite T> bool has_descriptor(const value& v) noexcept {
  if (!v.is(type::described)) {
    return false;
  }
  value d = v.descriptor();
  if (d.is(type::ulong)) {
    return d.as_ulong() == composite_traits<T>::code;
  }
  return d.is(type::symbol) && d.as_symbol() == composite_traits<T>::name;
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

// The member a field of T decodes into, read from the encoded value at p, which passed
// validation. The same answers as decode_member(decode_trusted(p), out), as an errc: strings,
// symbols, binaries, timestamps and values are read in place, everything else through a
// value.
template <class M> errc decode_member_at(const std::byte* p, M& out) noexcept {
  if constexpr (is_optional<M>::value) {
    using I = typename M::value_type;
    if constexpr (std::same_as<I, std::string_view> || std::same_as<I, symbol_view> ||
                  std::same_as<I, binary_view> || std::same_as<I, timestamp>) {
      I inner{};
      const errc e = decode_member_at(p, inner);
      if (e == errc{}) {
        out = inner;
      }
      return e;
    }
  } else if constexpr (std::same_as<M, std::string_view> || std::same_as<M, symbol_view> ||
                       std::same_as<M, binary_view>) {
    constexpr std::uint8_t short_code = std::same_as<M, std::string_view> ? code::str8
                                        : std::same_as<M, symbol_view>    ? code::sym8
                                                                          : code::vbin8;
    const auto c = std::to_integer<std::uint8_t>(*p);
    const std::byte* text = nullptr;
    std::size_t n = 0;
    if (c == short_code) {
      n = std::to_integer<std::size_t>(p[1]);
      text = p + 2;
    } else if (c == short_code + 0x10) { // str32, sym32, vbin32
      n = load_be32(p + 1);
      text = p + 5;
    } else {
      return errc::type_mismatch;
    }
    if constexpr (std::same_as<M, binary_view>) {
      out = {text, n};
    } else if constexpr (std::same_as<M, symbol_view>) {
      out = {std::string_view(reinterpret_cast<const char*>(text), n)};
    } else {
      out = std::string_view(reinterpret_cast<const char*>(text), n);
    }
    return {};
  } else if constexpr (std::same_as<M, timestamp>) {
    if (*p != std::byte{code::timestamp}) {
      return errc::type_mismatch;
    }
    out = timestamp{static_cast<std::int64_t>(load_be64(p + 1))};
    return {};
  } else if constexpr (std::same_as<M, value>) {
    // Any type: the value as decode_trusted reads it.
    out = value{};
    value_access::decode_at(p, out);
    return {};
  }
  const std::byte* q = p;
  const auto r = decode_member(decode_trusted(q), out);
  return r ? errc{} : static_cast<errc>(r.error().value());
}

// ---- encoding ---------------------------------------------------------------------------

template <composite T> result<std::size_t> composite_size(const T& c) noexcept;
template <composite T> void write_composite(const T& c, writer& w) noexcept;

// Simple members become a value and use the value encoder.
inline value member_value(bool b) noexcept {
  return value{b};
}
template <std::unsigned_integral M>
requires(!std::same_as<M, bool>) value member_value(M m)
noexcept {
  return value{m};
}
inline value member_value(std::string_view s) noexcept {
  return value{s};
}
inline value member_value(symbol_view s) noexcept {
  return value{s};
}
inline value member_value(binary_view b) noexcept {
  return value{b};
}
inline value member_value(timestamp t) noexcept {
  return value{t};
}
inline value member_value(const value& v) noexcept {
  return v;
}
inline value member_value(const symbols& s) noexcept {
  return s.as_value();
}
template <class E>
requires std::is_enum_v<E> value member_value(E e)
noexcept {
  return value{static_cast<std::underlying_type_t<E>>(e)};
}

template <class M> bool member_is_null(const M& m) noexcept {
  if constexpr (is_optional<M>::value) {
    return !m.has_value();
  } else if constexpr (std::same_as<M, value>) {
    return m.is_null();
  } else if constexpr (std::same_as<M, symbols>) {
    return m.as_value().is_null();
  } else {
    return false;
  }
}

// The characters of a string or symbol member.
inline std::string_view text_of(std::string_view s) noexcept {
  return s;
}
inline std::string_view text_of(symbol_view s) noexcept {
  return s.str;
}

template <class M> result<std::size_t> member_size(const M& m) noexcept {
  if constexpr (is_optional<M>::value) {
    return m ? member_size(*m) : result<std::size_t>{std::size_t{1}};
  } else if constexpr (is_variant<M>::value) {
    return std::visit([](const auto& a) { return member_size(a); }, m);
  } else if constexpr (composite<M>) {
    return composite_size(m);
  } else if constexpr (std::same_as<M, std::string_view> || std::same_as<M, symbol_view>) {
    const std::size_t n = variable_size(text_of(m).size());
    return n != 0 ? result<std::size_t>{n} : result<std::size_t>{errc::invalid_argument};
  } else {
    if constexpr (std::same_as<M, symbols>) {
      // A multiple symbol field holds null, a symbol or an array of symbols (AMQP 1.0 §1.4).
      const value& v = m.as_value();
      if (!v.is_null() && !v.is(type::symbol) &&
          !(v.is(type::array) && v.element_type() == type::symbol)) {
        return errc::invalid_argument;
      }
    }
    const std::size_t n = size_of(member_value(m));
    return n != 0 ? result<std::size_t>{n} : result<std::size_t>{errc::invalid_argument};
  }
}

template <class M> void write_member(const M& m, writer& w) noexcept {
  if constexpr (is_optional<M>::value) {
    if (m) {
      write_member(*m, w);
    } else {
      w.u8(code::null);
    }
  } else if constexpr (is_variant<M>::value) {
    std::visit([&](const auto& a) { write_member(a, w); }, m);
  } else if constexpr (composite<M>) {
    write_composite(m, w);
  } else if constexpr (std::same_as<M, std::string_view> || std::same_as<M, symbol_view>) {
    const std::string_view s = text_of(m);
    write_variable(std::same_as<M, symbol_view> ? type::symbol : type::string,
                   {reinterpret_cast<const std::byte*>(s.data()), s.size()}, w);
  } else {
    write_value(member_value(m), w);
  }
}

// The default value of every composite, to tell which fields can be written as null.
template <class T> inline const T defaults_of{};

inline std::size_t descriptor_size(std::uint64_t code) noexcept {
  return code <= 0xFF ? 3 : 10;
}

// What the generic (non-template) composite code needs of one field: functions that decode it
// from a value into the composite at `out`, size it (0: written as null; no_encoding: none)
// and write it, and whether it is mandatory. field_table<T>::ops lists them for T.
struct field_ops {
  static constexpr std::size_t no_encoding = static_cast<std::size_t>(-1);
  result<void> (*decode)(const value& v, void* out) noexcept;
  std::size_t (*size)(const void* c) noexcept;
  void (*write)(const void* c, writer& w) noexcept;
  bool mandatory;
};

// Decodes the fields described by `ops` from the list `l` into the composite at `out`.
// Fields beyond those described are ignored (AMQP 1.0 §1.4 allows later versions to append
// fields). Errors: errc::type_mismatch (not a list, or a field of the wrong type),
// errc::missing_field, and those of nested composites.
inline result<void> decode_fields(const value& l, void* out,
                                  std::span<const field_ops> ops) noexcept {
  if (!l.is(type::list)) {
    return errc::type_mismatch;
  }
  field_cursor cursor(l);
  for (const field_ops& f : ops) {
    value fv;
    if (!cursor.next(fv)) {
      if (f.mandatory) {
        return errc::missing_field;
      }
      continue;
    }
    if (auto r = f.decode(fv, out); !r) {
      return r;
    }
  }
  return {};
}

// Sizes each field of the composite at `c` into sizes[k] (0: written as null) and returns the
// number of fields written (trailing nulls dropped), or field_ops::no_encoding.
inline std::size_t plan_fields(const void* c, std::span<const field_ops> ops,
                               std::size_t* sizes) noexcept {
  std::size_t n = 0;
  for (std::size_t k = 0; k < ops.size(); ++k) {
    const std::size_t size = ops[k].size(c);
    if (size == field_ops::no_encoding) {
      return size;
    }
    sizes[k] = size;
    if (size != 0) {
      n = k + 1;
    }
  }
  return n;
}

// Writes the first n fields of the composite at `c` as plan_fields sized them.
inline void write_fields(const void* c, std::span<const field_ops> ops, const std::size_t* sizes,
                         std::size_t n, writer& w) noexcept {
  for (std::size_t k = 0; k < n; ++k) {
    if (sizes[k] == 0) {
      w.u8(code::null);
    } else {
      ops[k].write(c, w);
    }
  }
}

// The fields of T as tables, so that composites are decoded and encoded by loops over their
// fields, not by code unrolled per field and per type: for field I, whether it is mandatory,
// and small functions that decode it (from a value, or from validated bytes), size it and
// write it. The per-member-type code (decode_member, member_size, write_member) is shared by
// every field of that type.
template <composite T> struct field_table {
  static constexpr auto& fields = composite_traits<T>::fields;
  static constexpr std::size_t size = std::tuple_size_v<std::remove_cvref_t<decltype(fields)>>;
  static constexpr std::size_t no_encoding = field_ops::no_encoding;

  template <std::size_t I> static constexpr bool mandatory_at() noexcept {
    return (std::get<I>(fields).flags & mandatory) != 0;
  }
  template <std::size_t I> static result<void> decode_value(const value& v, void* out) noexcept {
    return decode_member(v, static_cast<T*>(out)->*(std::get<I>(fields).member));
  }
  template <std::size_t I> static errc decode_at(const std::byte* p, T& out) noexcept {
    return decode_member_at(p, out.*(std::get<I>(fields).member));
  }
  // 0 if field I of c is written as null (absent, or equal to its default and not
  // mandatory: AMQP 1.0 §1.4), else its encoded size, or no_encoding.
  template <std::size_t I> static std::size_t size_at(const void* c) noexcept {
    const auto& fd = std::get<I>(fields);
    const auto& m = static_cast<const T*>(c)->*(fd.member);
    using M = std::remove_cvref_t<decltype(m)>;
    bool null = member_is_null(m);
    if constexpr (!is_optional<M>::value && !std::same_as<M, value> && !std::same_as<M, symbols> &&
                  std::equality_comparable<M>) {
      null = (fd.flags & mandatory) == 0 && m == defaults_of<T>.*(fd.member);
    }
    if (null) {
      return 0;
    }
    const auto n = member_size(m);
    return n ? *n : no_encoding;
  }
  template <std::size_t I> static void write_at(const void* c, writer& w) noexcept {
    write_member(static_cast<const T*>(c)->*(std::get<I>(fields).member), w);
  }

  template <std::size_t... I> static constexpr auto mandatory_of(std::index_sequence<I...>) {
    return std::array<bool, size>{mandatory_at<I>()...};
  }
  template <std::size_t... I> static constexpr auto decode_of(std::index_sequence<I...>) {
    return std::array<errc (*)(const std::byte*, T&) noexcept, size>{&decode_at<I>...};
  }
  template <std::size_t... I> static constexpr auto ops_of(std::index_sequence<I...>) {
    return std::array<field_ops, size>{
        field_ops{&decode_value<I>, &size_at<I>, &write_at<I>, mandatory_at<I>()}...};
  }
  using indexes = std::make_index_sequence<size>;
  static constexpr auto is_mandatory = mandatory_of(indexes{});
  static constexpr bool any_mandatory = [] {
    for (bool m : is_mandatory) {
      if (m) {
        return true;
      }
    }
    return false;
  }();
  static constexpr auto decode = decode_of(indexes{});
  static constexpr auto field_ops_array = ops_of(indexes{});
  static constexpr std::span<const field_ops> ops{field_ops_array};
};

// Decodes the fields of T from the list `l` (decode_fields above, with T's table).
template <composite T> result<void> decode_fields(const value& l, T& out) noexcept {
  return decode_fields(l, &out, field_table<T>::ops);
}

// Validates the value at p (constructor included) as validator::value(p, end, depth) does and,
// if it is a list, decodes the fields of T from it in the same pass; advances p past the
// value. Returns the validator's error, if any (as if the value had been validated whole
// before anything was decoded); else `status` is what decode_fields would return, as an errc:
// errc::type_mismatch (not a list, or a field of the wrong type), errc::missing_field, or
// errc{}.
template <composite T>
errc decode_fields_checked(validator& check, const std::byte*& p, const std::byte* end,
                           std::uint32_t depth, T& out, errc& status) noexcept {
  using table = field_table<T>;
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
      if constexpr (table::any_mandatory) {
        if (k < table::size && table::is_mandatory[k] && status == errc{}) {
          status = errc::missing_field;
        }
      }
      continue;
    }
    if (auto e = check.value(f.q, f.end, depth + 1); e != errc{}) {
      return e;
    }
    // AMQP 1.0 §1.4: fields beyond those T knows (a later version's) are ignored.
    if (k < table::size && status == errc{}) {
      status = table::decode[k](at, out);
    }
  }
  if constexpr (table::any_mandatory) {
    for (std::size_t k = f.count; k < table::size; ++k) {
      if (table::is_mandatory[k] && status == errc{}) {
        status = errc::missing_field;
      }
    }
  }
  return f.q == f.end ? errc{} : errc::decode_error; // nothing left over
}

// Decodes a described value whose descriptor must be T's.
template <composite T> result<void> decode_composite(const value& v, T& out) noexcept {
  if (!has_descriptor<T>(v)) {
    return v.is(type::described) ? errc::unexpected_descriptor : errc::type_mismatch;
  }
  out = T{};
  return decode_fields(v.described_value(), out);
}

// How a composite is written, worked out once: the size of each field (0: written as null),
// how many fields are written (trailing nulls dropped) and the total size.
template <composite T> struct composite_plan {
  static constexpr std::size_t field_count =
      std::tuple_size_v<std::remove_cv_t<decltype(composite_traits<T>::fields)>>;
  std::array<std::size_t, field_count> sizes{};
  std::size_t n = 0;       // fields written
  std::size_t payload = 0; // bytes of the written fields
  std::size_t full = 0;    // descriptor and list included; 0 if T cannot be encoded
};

template <composite T> composite_plan<T> plan_composite(const T& c) noexcept {
  composite_plan<T> plan;
  const std::size_t n = plan_fields(&c, field_table<T>::ops, plan.sizes.data());
  if (n == field_ops::no_encoding) {
    return plan; // full == 0: T cannot be encoded
  }
  plan.n = n;
  for (std::size_t j = 0; j < plan.n; ++j) {
    plan.payload += plan.sizes[j] == 0 ? 1 : plan.sizes[j];
  }
  const std::size_t list = plan.n == 0                ? 1
                           : plan.payload + 1 <= 0xFF ? 3 + plan.payload
                                                      : 9 + plan.payload;
  plan.full = descriptor_size(composite_traits<T>::code) + list;
  return plan;
}

template <composite T> result<std::size_t> composite_size(const T& c) noexcept {
  const std::size_t n = plan_composite(c).full;
  return n != 0 ? result<std::size_t>{n} : result<std::size_t>{errc::invalid_argument};
}

// Writes `c` as planned by plan_composite (which must have succeeded).
template <composite T>
void write_composite(const T& c, const composite_plan<T>& plan, writer& w) noexcept {
  constexpr std::uint64_t dcode = composite_traits<T>::code;
  w.u8(code::described);
  if (dcode <= 0xFF) {
    w.u8(code::smallulong);
    w.u8(static_cast<std::uint8_t>(dcode));
  } else {
    w.u8(code::ulong);
    w.u64(dcode);
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
  write_fields(&c, field_table<T>::ops, plan.sizes.data(), plan.n, w);
}

template <composite T> void write_composite(const T& c, writer& w) noexcept {
  write_composite(c, plan_composite(c), w);
}

// Public-API helpers: size, then write into a span.
template <composite T> result<std::size_t> encode_composite(const T& c, std::span<std::byte> out) {
  const auto plan = plan_composite(c);
  if (plan.full == 0) {
    return errc::invalid_argument;
  }
  if (plan.full > out.size()) {
    return errc::buffer_too_small;
  }
  writer w(out.first(plan.full));
  write_composite(c, plan, w);
  return plan.full;
}

} // namespace amqp::detail
