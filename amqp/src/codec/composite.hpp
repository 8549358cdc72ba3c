// Table-driven encoding and decoding of AMQP composite types (AMQP 1.0 §1.4, the
// <type class="composite"> entries of the spec XML).
//
// Each composite type T describes itself once, in a specialisation of composite_traits<T>:
//
//   template <> struct composite_traits<begin> {
//     static constexpr std::uint64_t code = 0x11;               // amqp:begin:list
//     static constexpr std::string_view name = "amqp:begin:list";
//     static constexpr auto fields = std::tuple{
//         AMQP_FIELD(begin, remote_channel, "remote-channel"),
//         AMQP_FIELD(begin, next_outgoing_id, "next-outgoing-id", mandatory), ...};
//   };
//
// From that description the compiler makes plain data, composite_desc (desc_of<T>): for each
// field its offset, its kind (the member's type) and whether it is mandatory. One generic,
// non-template decoder and encoder (composite.cpp) reads those tables: no code is generated
// per type or per field. The tuple of member pointers stays for the code that wants the
// fields typed (the frame tracer, the tests).
//
// Member types map to AMQP field types: bool, unsigned integers (any unsigned AMQP integer
// that fits is accepted), std::string_view (string), symbol_view, binary_view, timestamp,
// value (any type, maps, `*` fields), symbols (multiple symbols), enums (as their underlying
// type: restricted types with choices), std::optional<X> of those, and std::optional of
// another composite (nested) or of a std::variant<composites...> (a `*` field with
// `requires`, decoded by descriptor; an alternative of type `value` keeps a described value
// no other alternative claims). Composites are standard-layout and trivially copyable
// (checked below): a field is found by its offset, and a composite is reset by copying its
// default.
//
// Encoding: fields equal to their default (or empty optionals, null values) are written as
// null, and trailing nulls are dropped (§1.4: "a list with fewer elements than fields is
// padded with nulls"). Mandatory fields are always written.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
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

// One field of a composite: its member, the spec's name, flags (mandatory) and the member's
// offset in T (AMQP_FIELD fills it with offsetof: a member pointer gives no offset at compile
// time).
template <class T, class M> struct field {
  M T::*member;
  std::string_view name;
  unsigned flags = 0;
  std::size_t offset = 0;
};

template <class T, class M>
constexpr field<T, M> make_field(M T::*member, std::size_t offset, std::string_view name,
                                 unsigned flags = 0) noexcept {
  return {member, name, flags, offset};
}

// AMQP_FIELD(T, member, "spec-name"[, mandatory]): the field `member` of composite T.
#define AMQP_FIELD(T, member, ...)                                                                 \
  ::amqp::detail::make_field(&T::member, offsetof(T, member), __VA_ARGS__)

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

// ---- the tables ---------------------------------------------------------------------------

// What a member is, for the generic code. Enums count as their underlying type.
enum class field_kind : std::uint8_t {
  boolean,
  ubyte,
  ushort,
  uint,
  ulong,
  opt_boolean,
  opt_ubyte,
  opt_ushort,
  opt_uint,
  opt_ulong,
  string, // std::string_view
  opt_string,
  symbol, // symbol_view
  opt_symbol,
  binary, // binary_view
  opt_binary,
  timestamp,
  opt_timestamp,
  any,      // value
  multiple, // symbols
  nested,   // std::optional of a composite or of a variant (field_desc::nested)
};

struct composite_desc;

// A member holding one of several composites (a std::variant, possibly with a `value`
// alternative last, or a std::optional of one composite, or of such a variant). The three
// functions are the only code made per holder type.
struct alternatives {
  const composite_desc* const* alts; // the composite alternatives, in order
  std::uint8_t count;                // of alts
  bool other;                        // alternative `count` is a `value` (any described value)
  // The alternative held in *h: its index (count: the value) and its address; nullptr if
  // none (an empty optional).
  const void* (*held)(const void* h, std::size_t& k) noexcept;
  // Makes *h hold alternative k, default-constructed; returns its address.
  void* (*emplace)(void* h, std::size_t k) noexcept;
  // Empties an optional holder; nothing for a variant.
  void (*reset)(void* h) noexcept;
};

// One field.
struct field_desc {
  std::uint16_t offset;
  field_kind kind;
  bool mandatory;
  const alternatives* nested; // kind nested: what the optional holds
};

// One composite type.
struct composite_desc {
  std::uint64_t code;    // numeric descriptor
  std::string_view name; // symbolic descriptor ("amqp:open:list")
  const field_desc* fields;
  std::uint8_t count;      // of fields
  std::uint8_t required;   // 1 + the index of the last mandatory field; 0 if none is
  std::uint16_t size;      // sizeof(T)
  std::uint16_t mandatory; // bit k: field k is mandatory
  const void* defaults;
};

// The largest number of fields of a composite (attach).
inline constexpr std::size_t max_fields = 14;

template <class M> constexpr field_kind unsigned_kind(bool optional) {
  using k = field_kind;
  if constexpr (std::same_as<M, bool>) {
    return optional ? k::opt_boolean : k::boolean;
  } else if constexpr (sizeof(M) == 1) {
    return optional ? k::opt_ubyte : k::ubyte;
  } else if constexpr (sizeof(M) == 2) {
    return optional ? k::opt_ushort : k::ushort;
  } else if constexpr (sizeof(M) == 4) {
    return optional ? k::opt_uint : k::uint;
  } else {
    static_assert(sizeof(M) == 8);
    return optional ? k::opt_ulong : k::ulong;
  }
}

template <class M> constexpr field_kind kind_of(bool optional = false) {
  using k = field_kind;
  if constexpr (is_optional<M>::value) {
    using I = typename M::value_type;
    if constexpr (composite<I> || is_variant<I>::value) {
      return k::nested;
    } else {
      return kind_of<I>(true);
    }
  } else if constexpr (std::is_enum_v<M>) {
    return unsigned_kind<std::underlying_type_t<M>>(optional);
  } else if constexpr (std::unsigned_integral<M>) {
    return unsigned_kind<M>(optional);
  } else if constexpr (std::same_as<M, std::string_view>) {
    return optional ? k::opt_string : k::string;
  } else if constexpr (std::same_as<M, symbol_view>) {
    return optional ? k::opt_symbol : k::symbol;
  } else if constexpr (std::same_as<M, binary_view>) {
    return optional ? k::opt_binary : k::binary;
  } else if constexpr (std::same_as<M, timestamp>) {
    return optional ? k::opt_timestamp : k::timestamp;
  } else if constexpr (std::same_as<M, value>) {
    return k::any;
  } else {
    static_assert(std::same_as<M, symbols>, "no field kind for this member type");
    return k::multiple;
  }
}

template <composite T> struct composite_table;

// The alternatives of holder type H (see alternatives).
template <class H> struct holder_table;

// std::optional<C>, C a composite.
template <composite C> struct holder_table<std::optional<C>> {
  static constexpr const composite_desc* alts[] = {&composite_table<C>::desc};
  static const void* held(const void* h, std::size_t& k) noexcept {
    const auto& o = *static_cast<const std::optional<C>*>(h);
    k = 0;
    return o ? &*o : nullptr;
  }
  static void* emplace(void* h, std::size_t) noexcept {
    return &static_cast<std::optional<C>*>(h)->emplace();
  }
  static void reset(void* h) noexcept { static_cast<std::optional<C>*>(h)->reset(); }
  static constexpr alternatives table{alts, 1, false, &held, &emplace, &reset};
};

// std::variant<C..., [value]>, each C a composite.
template <class... Alts> struct holder_table<std::variant<Alts...>> {
  using V = std::variant<Alts...>;
  static constexpr bool other = (std::same_as<Alts, value> || ...);
  static constexpr std::size_t count = sizeof...(Alts) - (other ? 1 : 0);
  template <class A> static constexpr const composite_desc* desc_or_null() {
    if constexpr (composite<A>) {
      return &composite_table<A>::desc;
    } else {
      return nullptr;
    }
  }
  static constexpr std::array<const composite_desc*, sizeof...(Alts)> alts = {
      desc_or_null<Alts>()...};
  static const void* held(const void* h, std::size_t& k) noexcept {
    const auto& v = *static_cast<const V*>(h);
    k = v.index();
    return std::visit([](const auto& a) -> const void* { return &a; }, v);
  }
  template <std::size_t... I>
  static void* emplace_of(V& v, std::size_t k, std::index_sequence<I...>) {
    void* at = nullptr;
    ((k == I ? (at = &v.template emplace<I>(), 0) : 0), ...);
    return at;
  }
  static void* emplace(void* h, std::size_t k) noexcept {
    return emplace_of(*static_cast<V*>(h), k, std::index_sequence_for<Alts...>{});
  }
  static void reset(void*) noexcept {}
  static constexpr alternatives table{alts.data(), count, other, &held, &emplace, &reset};
};

// std::optional<std::variant<...>>: the variant's alternatives, the optional engaged first.
template <class... Alts> struct holder_table<std::optional<std::variant<Alts...>>> {
  using V = std::variant<Alts...>;
  using inner = holder_table<V>;
  static const void* held(const void* h, std::size_t& k) noexcept {
    const auto& o = *static_cast<const std::optional<V>*>(h);
    return o ? inner::held(&*o, k) : nullptr;
  }
  static void* emplace(void* h, std::size_t k) noexcept {
    return inner::emplace(&static_cast<std::optional<V>*>(h)->emplace(), k);
  }
  static void reset(void* h) noexcept { static_cast<std::optional<V>*>(h)->reset(); }
  static constexpr alternatives table{inner::alts.data(), inner::count, inner::other, &held,
                                      &emplace,           &reset};
};

// The default value of every composite, to tell which fields can be written as null.
template <class T> inline constexpr T defaults_of{};

// desc: the table of composite T.
template <composite T> struct composite_table {
  static_assert(std::is_standard_layout_v<T> && std::is_trivially_copyable_v<T>);
  static constexpr auto& fields = composite_traits<T>::fields;
  static constexpr std::size_t size = std::tuple_size_v<std::remove_cvref_t<decltype(fields)>>;
  static_assert(size <= max_fields);

  template <class M> static constexpr const alternatives* nested_of() {
    if constexpr (kind_of<M>() == field_kind::nested) {
      return &holder_table<M>::table;
    } else {
      return nullptr;
    }
  }
  template <class F> static constexpr field_desc one(const F& f) {
    using M = std::remove_cvref_t<decltype(std::declval<T&>().*(f.member))>;
    return {static_cast<std::uint16_t>(f.offset), kind_of<M>(), (f.flags & mandatory) != 0,
            nested_of<M>()};
  }
  static constexpr std::array<field_desc, size> field_descs =
      std::apply([](const auto&... f) { return std::array<field_desc, size>{one(f)...}; }, fields);
  static constexpr std::uint16_t mandatory_bits = [] {
    unsigned bits = 0;
    for (std::size_t k = 0; k < size; ++k) {
      bits |= field_descs[k].mandatory ? 1U << k : 0U;
    }
    return static_cast<std::uint16_t>(bits);
  }();
  static constexpr std::uint8_t required = [] {
    std::uint8_t r = 0;
    for (std::size_t k = 0; k < size; ++k) {
      r = field_descs[k].mandatory ? static_cast<std::uint8_t>(k + 1) : r;
    }
    return r;
  }();
  static constexpr composite_desc desc{composite_traits<T>::code,
                                       composite_traits<T>::name,
                                       field_descs.data(),
                                       static_cast<std::uint8_t>(size),
                                       required,
                                       static_cast<std::uint16_t>(sizeof(T)),
                                       mandatory_bits,
                                       &defaults_of<T>};
};

template <composite T> inline constexpr const composite_desc& desc_of = composite_table<T>::desc;
template <class H> inline constexpr const alternatives& alternatives_of = holder_table<H>::table;

// ---- the generic code (composite.cpp) -------------------------------------------------------

// True if `v` is a described value with the descriptor of d: its code or its symbolic name.
[[nodiscard]] bool has_descriptor(const value& v, const composite_desc& d) noexcept;

// Decodes the described value `v`, whose descriptor must be d's, into the composite at out
// (reset to its defaults first). Errors: errc::unexpected_descriptor (described, another
// descriptor), errc::type_mismatch (not described, not a list, or a field of the wrong type),
// errc::missing_field, and those of nested composites.
[[nodiscard]] errc decode_composite(const value& v, const composite_desc& d, void* out) noexcept;

// Decodes the fields described by d from the list `l` into the composite at out (not reset).
// Fields beyond those described are ignored (AMQP 1.0 §1.4 allows later versions to append
// fields). Errors: errc::type_mismatch (not a list, or a field of the wrong type),
// errc::missing_field, and those of nested composites.
[[nodiscard]] errc decode_fields(const value& l, const composite_desc& d, void* out) noexcept;

// Decodes `v` into the holder at h: the alternative whose descriptor `v` has; else the
// `value` alternative, if any, for any described value. Errors: errc::unexpected_descriptor
// (described, unclaimed), errc::type_mismatch (not described), or those of the alternative.
[[nodiscard]] errc decode_alternatives(const value& v, const alternatives& a, void* h) noexcept;

// Validates the value at p (constructor included) as validator::value(p, end, depth) does and,
// if it is a list, decodes the fields of d from it into out in the same pass; advances p past
// the value. Returns the validator's error, if any (as if the value had been validated whole
// before anything was decoded); else `status` is what decode_fields would return: errc::
// type_mismatch (not a list, or a field of the wrong type), errc::missing_field, or errc{}.
[[nodiscard]] errc decode_fields_checked(validator& check, const std::byte*& p,
                                         const std::byte* end, std::uint32_t depth,
                                         const composite_desc& d, void* out, errc& status) noexcept;

// How a composite is written, worked out once: the size of each field (0: written as null),
// how many fields are written (trailing nulls dropped) and the total size.
struct composite_plan {
  std::array<std::size_t, max_fields> sizes; // of the fields [0, count): set by plan_composite
  std::size_t n = 0;                         // fields written
  std::size_t payload = 0;                   // bytes of the written fields
  std::size_t full = 0; // descriptor and list included; 0 if it cannot be encoded
};

[[nodiscard]] composite_plan plan_composite(const composite_desc& d, const void* c) noexcept;
// Writes the composite at c as planned by plan_composite (which must have succeeded).
void write_composite(const composite_desc& d, const void* c, const composite_plan& plan,
                     writer& w) noexcept;
// The encoded size of the composite at c. Errors: errc::invalid_argument (a field with no
// encoding).
[[nodiscard]] result<std::size_t> composite_size(const composite_desc& d, const void* c) noexcept;
// Encodes the composite at c into the front of `out`. Errors: errc::invalid_argument,
// errc::buffer_too_small.
[[nodiscard]] result<std::size_t> encode_composite(const composite_desc& d, const void* c,
                                                   std::span<std::byte> out) noexcept;
// The encoded size of what the holder at h holds (a composite or a value). Errors:
// errc::invalid_argument (nothing held, or no encoding).
[[nodiscard]] result<std::size_t> held_size(const alternatives& a, const void* h) noexcept;
// Encodes what the holder at h holds into the front of `out`. Errors: those of held_size,
// errc::buffer_too_small.
[[nodiscard]] result<std::size_t> encode_held(const alternatives& a, const void* h,
                                              std::span<std::byte> out) noexcept;

// ---- typed forms --------------------------------------------------------------------------

inline result<void> as_result(errc e) noexcept {
  return e == errc{} ? result<void>{} : result<void>{e};
}

template <composite T> bool has_descriptor(const value& v) noexcept {
  return has_descriptor(v, desc_of<T>);
}
template <composite T> result<void> decode_composite(const value& v, T& out) noexcept {
  return as_result(decode_composite(v, desc_of<T>, &out));
}
template <composite T> result<void> decode_fields(const value& l, T& out) noexcept {
  return as_result(decode_fields(l, desc_of<T>, &out));
}
template <composite T> composite_plan plan_composite(const T& c) noexcept {
  return plan_composite(desc_of<T>, &c);
}
template <composite T>
void write_composite(const T& c, const composite_plan& plan, writer& w) noexcept {
  write_composite(desc_of<T>, &c, plan, w);
}
template <composite T> void write_composite(const T& c, writer& w) noexcept {
  write_composite(desc_of<T>, &c, plan_composite(desc_of<T>, &c), w);
}
template <composite T> result<std::size_t> composite_size(const T& c) noexcept {
  return composite_size(desc_of<T>, &c);
}
template <composite T>
result<std::size_t> encode_composite(const T& c, std::span<std::byte> out) noexcept {
  return encode_composite(desc_of<T>, &c, out);
}
// A variant of composites (performative, sasl_frame, delivery_state, outcome).
template <class V>
requires is_variant<V>::value result<void> decode_alternatives(const value& v, V& out)
noexcept {
  return as_result(decode_alternatives(v, alternatives_of<V>, &out));
}

} // namespace amqp::detail
