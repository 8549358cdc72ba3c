// AMQP 1.0 messages (AMQP 1.0 §3.2): sections, the bare message and its annotations.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "amqp/codec.hpp"
#include "amqp/result.hpp"
#include "amqp/value.hpp"

namespace amqp {

// The descriptor codes of the message sections (messaging.xml).
enum class section : std::uint8_t {
  header = 0x70,
  delivery_annotations = 0x71,
  message_annotations = 0x72,
  properties = 0x73,
  application_properties = 0x74,
  data = 0x75,
  amqp_sequence = 0x76,
  amqp_value = 0x77,
  footer = 0x78,
};

// The AMQP name of a section ("header", "delivery-annotations", ..., "footer").
[[nodiscard]] std::string_view section_name(section s) noexcept;

// The section a descriptor names: its code (0x70-0x78) or its symbolic name
// ("amqp:header:list", ...); nullopt for any other descriptor.
[[nodiscard]] std::optional<section> section_of(const value& descriptor) noexcept;

// A set of sections, for choosing which sections of a decoded message to replace.
// `body` stands for all body sections (data, amqp-sequence, amqp-value) together.
enum class section_set : std::uint16_t {
  none = 0,
  header = 1U << 0,
  delivery_annotations = 1U << 1,
  message_annotations = 1U << 2,
  properties = 1U << 3,
  application_properties = 1U << 4,
  body = 1U << 5,
  footer = 1U << 6,
};
[[nodiscard]] constexpr section_set operator|(section_set a, section_set b) noexcept {
  return static_cast<section_set>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}
[[nodiscard]] constexpr bool contains(section_set s, section_set x) noexcept {
  return (static_cast<unsigned>(s) & static_cast<unsigned>(x)) != 0;
}

// AMQP 1.0 §3.2.1 header. Defaults are the spec's.
struct header {
  bool durable = false;
  std::uint8_t priority = 4;
  std::optional<std::uint32_t> ttl; // milliseconds
  bool first_acquirer = false;
  std::uint32_t delivery_count = 0;
  friend bool operator==(const header&, const header&) = default;
};

// AMQP 1.0 §3.2.4 properties. Views: the strings and binaries are not owned.
struct properties {
  value message_id; // ulong, uuid, binary or string; null if absent
  std::optional<binary_view> user_id;
  std::optional<std::string_view> to; // address
  std::optional<std::string_view> subject;
  std::optional<std::string_view> reply_to;
  value correlation_id; // as message_id
  std::optional<symbol_view> content_type;
  std::optional<symbol_view> content_encoding;
  std::optional<timestamp> absolute_expiry_time;
  std::optional<timestamp> creation_time;
  std::optional<std::string_view> group_id;
  std::optional<std::uint32_t> group_sequence;
  std::optional<std::string_view> reply_to_group_id;
};

// The kind of body a message carries (AMQP 1.0 §3.2: data*, amqp-sequence*, or amqp-value).
enum class body_kind : std::uint8_t { none, data, amqp_sequence, amqp_value };

// A message to encode. Nothing is owned: values, strings and the body array must outlive
// the encoding call. Sections left null/empty are not written.
struct message_parts {
  std::optional<amqp::header> header;
  value delivery_annotations; // map with symbol keys, or null
  value message_annotations;  // map with symbol keys, or null
  std::optional<amqp::properties> properties;
  value application_properties; // map with string keys, or null
  body_kind body = body_kind::none;
  // data: one binary per data section; amqp_sequence: one list per section; amqp_value:
  // exactly one value.
  std::span<const value> body_sections;
  value footer; // map, or null
};

// The encoded size of `m`. Errors: errc::invalid_argument (a section value of the wrong type,
// e.g. a data section that is not a binary, or an unencodable value).
[[nodiscard]] result<std::size_t> encoded_size(const message_parts& m) noexcept;
// Encodes `m` into the front of `out`; returns the bytes written. Errors: those of
// encoded_size, errc::buffer_too_small.
[[nodiscard]] result<std::size_t> encode(const message_parts& m, std::span<std::byte> out) noexcept;
// Appends the encoding of `m` to `out`. Errors: those of encoded_size.
[[nodiscard]] result<void> encode_append(const message_parts& m, std::vector<std::byte>& out);

// A decoded message. Every section was validated when decoded, so reading it cannot fail.
// All views point into the decoded bytes and are valid as long as they are.
class message_view {
public:
  // An empty message (no sections). User-provided so that making one does not first clear
  // the key index, which only the decoder fills.
  message_view() noexcept {} // NOLINT(modernize-use-equals-default): see above

  std::optional<amqp::header> header;
  value delivery_annotations; // map, or null if absent
  value message_annotations;  // map, or null if absent
  std::optional<amqp::properties> properties;
  value application_properties; // map, or null if absent
  body_kind body = body_kind::none;
  value footer; // map, or null if absent

  // The whole encoded message.
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return bytes_; }
  // The encoded bytes of one kind of section; for a body kind, all body sections together.
  // Empty if the message has no such section.
  [[nodiscard]] std::span<const std::byte> raw(section s) const noexcept;
  // The body sections, in order, each a described value (descriptor 0x75, 0x76 or 0x77).
  [[nodiscard]] value_range body_sections() const noexcept;
  [[nodiscard]] std::uint32_t body_section_count() const noexcept { return body_count_; }
  // The payload of the first data section (empty if the body is not data).
  [[nodiscard]] binary_view data() const noexcept { return first_data_; }
  // The value of an amqp-value body (null otherwise).
  [[nodiscard]] value body_value() const noexcept;

  // In the map of section `s` (delivery_annotations, message_annotations,
  // application_properties or footer), the value of the first entry whose key is a string or
  // symbol with text `key`; nullopt if there is none, or if `s` is another section. The
  // same answer as `m.message_annotations.find(key)`, without walking the map: the decoder
  // recorded where every key is (the first max_indexed_entries entries of the message;
  // later ones are found by a scan of the keys that follow). The value points into bytes().
  [[nodiscard, gnu::always_inline]] std::optional<value> find(section s,
                                                              std::string_view key) const noexcept {
    // Inline: the loop over the recorded keys is a few instructions per key, and a call would
    // cost more than the search.
    const int slot = map_slot(s);
    if (slot < 0 || key.size() >= no_text) {
      return std::nullopt;
    }
    const map_index& x = maps_[slot];
    for (std::size_t i = x.first, last = std::size_t{x.first} + x.count; i < last; ++i) {
      const map_entry e = entry(i);
      if (e.size == key.size() &&
          (key.empty() || std::memcmp(bytes_.data() + e.text, key.data(), key.size()) == 0)) {
        return value_at(e.text + e.size);
      }
    }
    if (x.rest_pairs == 0) {
      return std::nullopt;
    }
    return find_rest(x, key);
  }
  // find(section::message_annotations, key).
  [[nodiscard]] std::optional<value> message_annotation(std::string_view key) const noexcept {
    return find(section::message_annotations, key);
  }
  // find(section::application_properties, key).
  [[nodiscard]] std::optional<value> application_property(std::string_view key) const noexcept {
    return find(section::application_properties, key);
  }

  // How many map entries, over the four map sections, the decoder indexes.
  static constexpr std::size_t max_indexed_entries = 32;

private:
  friend struct message_decoder;
  // A key of a map section: its text is bytes_[text, text + size) and its value follows.
  // Keys that are neither string nor symbol have size no_text.
  struct map_entry {
    std::uint32_t text;
    std::uint32_t size;
  };
  // entries_[k], k < the number the decoder set.
  [[nodiscard]] map_entry entry(std::size_t k) const noexcept {
    map_entry e;
    std::memcpy(&e, entries_ + k * sizeof(map_entry), sizeof e);
    return e;
  }
  static constexpr std::uint32_t no_text = 0xFFFF'FFFF;
  // The place of a map section in maps_, or -1.
  static constexpr int map_slot(section s) noexcept {
    switch (s) {
    case section::delivery_annotations:
      return 0;
    case section::message_annotations:
      return 1;
    case section::application_properties:
      return 2;
    case section::footer:
      return 3;
    default:
      return -1;
    }
  }
  // The index of one map section: entries_[first, first + count), then `rest_pairs` pairs
  // not indexed, from offset `rest` in bytes_.
  struct map_index {
    std::uint16_t first;
    std::uint16_t count;
    std::uint32_t rest;
    std::uint32_t rest_pairs;
  };

  // The value encoded at bytes_[offset] (validated by the decoder).
  [[nodiscard]] value value_at(std::uint32_t offset) const noexcept;
  // In the pairs of `x` that were not indexed, the value of the first key `key`.
  [[nodiscard]] std::optional<value> find_rest(const map_index& x,
                                               std::string_view key) const noexcept;

  std::span<const std::byte> bytes_;
  // Offsets of each section kind in bytes_: [begin, end) per section index 0..8; body
  // sections share one range.
  std::uint32_t begin_[9] = {};
  std::uint32_t end_[9] = {};
  std::uint32_t body_count_ = 0;
  binary_view first_data_;
  // Map sections in the order delivery-annotations, message-annotations,
  // application-properties, footer; they share entries_ (map_entry values, set by the
  // decoder as far as it indexed: bytes, so that copying the rest is well defined).
  map_index maps_[4] = {};
  alignas(map_entry) std::byte entries_[max_indexed_entries * sizeof(map_entry)];
};

// Decodes a message: sections in the order of AMQP 1.0 §3.2 (header, delivery-annotations,
// message-annotations, properties, application-properties, body, footer), each at most once
// (body: one or more data, or one or more amqp-sequence, or one amqp-value). Every value is
// validated. Errors: errc::decode_error, errc::depth_exceeded, errc::resource_limit (from the
// value decoder), errc::invalid_message (a section out of order, repeated, or with an unknown
// descriptor), errc::type_mismatch / errc::missing_field (a header or properties field of the
// wrong type).
[[nodiscard]] result<message_view> decode_message(std::span<const std::byte> in,
                                                  const decode_limits& limits = {}) noexcept;

// Re-encodes a decoded message: every section is written back from its original bytes
// (byte-identical), except the sections named in `replaced`, which are taken from `with`
// (a replaced section that is absent/null in `with` is dropped). This is how a broker adds
// or changes annotations and forwards the rest untouched.
[[nodiscard]] result<void> encode_append(const message_view& original, const message_parts& with,
                                         section_set replaced, std::vector<std::byte>& out);

} // namespace amqp

// ---- the owning message --------------------------------------------------------------------
//
// amqp::message is the message applications build, send and receive, as Qpid Proton's
// proton::message: every section owned (deep copies), so it can be kept, copied and passed
// between threads. The views above (message_parts, message_view) are the codec's zero-copy
// forms; message converts to and from them.
//
//   amqp::message m("hello");                           // amqp-value "hello"
//   m.properties.message_id = "order-42";
//   m.properties.content_type = "text/plain";
//   m.application_properties.set("priority", "high");
//   auto bytes = m.encode();                            // result<std::vector<std::byte>>
//   auto back = amqp::message::decode(*bytes);          // result<message>
//   back->body_text();                                  // "hello"

namespace amqp {

// One AMQP value that owns its data (a deep copy): scalars are held inline, strings, symbols
// and binaries as their bytes, lists, maps, arrays and described values as their encoding.
// get() is a view valid as long as this object, unchanged.
class owned_value {
public:
  owned_value() noexcept = default;
  owned_value(std::nullptr_t) noexcept {}
  // A scalar (bool, the fixed-width integers, float, double, char32_t, timestamp, uuid,
  // decimals): every type amqp::value has a constructor for.
  template <class T>
  requires(std::is_arithmetic_v<T> || std::is_same_v<T, timestamp> || std::is_same_v<T, uuid> ||
           std::is_same_v<T, decimal32> || std::is_same_v<T, decimal64> ||
           std::is_same_v<T, decimal128>) owned_value(T v)
  noexcept : v_(v) {}
  // A string (UTF-8), copied.
  owned_value(std::string_view s);
  owned_value(const char* s) : owned_value(std::string_view(s)) {}
  owned_value(const std::string& s) : owned_value(std::string_view(s)) {}
  // A symbol (ASCII), copied.
  owned_value(symbol_view s);
  // A binary, copied.
  owned_value(binary_view b);
  // Any value, deep-copied (a decoded value keeps its exact encoding).
  // Errors: errc::invalid_argument (a value with no encoding).
  [[nodiscard]] static result<owned_value> copy_of(const value& v);

  owned_value(const owned_value& o);
  owned_value& operator=(const owned_value& o);
  owned_value(owned_value&& o) noexcept;
  owned_value& operator=(owned_value&& o) noexcept;
  ~owned_value() = default;

  // The value, a view into this object.
  [[nodiscard]] const value& get() const noexcept { return v_; }
  [[nodiscard]] type kind() const noexcept { return v_.kind(); }
  [[nodiscard]] bool is_null() const noexcept { return v_.is_null(); }
  friend bool operator==(const owned_value& a, const owned_value& b) noexcept {
    return a.v_ == b.v_;
  }

private:
  void rebind() noexcept; // points v_ at bytes_ again (after a copy or move)
  value v_{};
  std::vector<std::byte> bytes_{}; // string/symbol/binary bytes, or the encoding of a compound
};

// The key type of a value_map's entries set by text: symbols for annotations and the footer
// (AMQP 1.0 §3.2.10, §3.2.3, §3.2.11), strings for application-properties (§3.2.5).
enum class map_keys : std::uint8_t { symbol, string };

// An owned map section (annotations, application-properties, footer): entries in insertion
// order (the wire order), one per key.
class value_map {
public:
  struct entry {
    owned_value key;
    owned_value value;
    friend bool operator==(const entry&, const entry&) = default;
  };

  explicit value_map(map_keys keys = map_keys::string) noexcept : keys_(keys) {}

  // Sets `key` (a symbol or a string, as this map's keys are) to `v`, replacing the value
  // of an entry with the same key text.
  void set(std::string_view key, owned_value v);
  // Sets the entry with a ulong key (annotations only: AMQP 1.0 §3.2.10 reserves them).
  void set(std::uint64_t key, owned_value v) { set_entry(owned_value(key), std::move(v)); }
  // Sets an entry with any key (as decoded), replacing the value of an equal key.
  void set_entry(owned_value key, owned_value v);
  // The value whose key (string or symbol) has the text `key`, or nullopt. The view is valid
  // until the map changes.
  [[nodiscard]] std::optional<value> get(std::string_view key) const noexcept;
  [[nodiscard]] bool contains(std::string_view key) const noexcept { return get(key).has_value(); }
  // Removes the entry with key text `key`; false if there was none.
  bool erase(std::string_view key) noexcept;
  void clear() noexcept { entries_.clear(); }
  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
  [[nodiscard]] bool empty() const noexcept { return entries_.empty(); }
  [[nodiscard]] const entry* begin() const noexcept { return entries_.data(); }
  [[nodiscard]] const entry* end() const noexcept { return entries_.data() + entries_.size(); }
  [[nodiscard]] map_keys keys() const noexcept { return keys_; }
  friend bool operator==(const value_map& a, const value_map& b) noexcept {
    return a.entries_ == b.entries_;
  }

private:
  map_keys keys_;
  std::vector<entry> entries_;
};

// AMQP 1.0 §3.2.4 properties, owned. Fields left empty (null, nullopt) are not sent; the
// section is left out when every field is empty.
struct message_properties {
  owned_value message_id; // ulong, uuid, binary or string
  std::optional<std::vector<std::byte>> user_id;
  std::optional<std::string> to;
  std::optional<std::string> subject;
  std::optional<std::string> reply_to;
  owned_value correlation_id;                  // as message_id
  std::optional<std::string> content_type;     // a symbol (ASCII)
  std::optional<std::string> content_encoding; // a symbol (ASCII)
  std::optional<timestamp> absolute_expiry_time;
  std::optional<timestamp> creation_time;
  std::optional<std::string> group_id;
  std::optional<std::uint32_t> group_sequence;
  std::optional<std::string> reply_to_group_id;

  // True when no field is set.
  [[nodiscard]] bool empty() const noexcept;
  friend bool operator==(const message_properties&, const message_properties&) = default;
};

class message {
public:
  message() = default;
  // Body: one amqp-value section holding the string `text` (as proton::message("hello")).
  explicit message(std::string_view text) { set_body(text); }
  explicit message(const char* text) : message(std::string_view(text)) {}
  // Body: one data section holding a copy of `data`.
  explicit message(std::span<const std::byte> data) { set_body(data); }
  // Body: one amqp-value section holding a deep copy of `body`.
  // Errors: errc::invalid_argument (a value with no encoding).
  [[nodiscard]] static result<message> with_value(const value& body);
  // Every section of an encoded message, copied (see decode_message for what is checked).
  // Errors: those of decode_message.
  [[nodiscard]] static result<message> decode(std::span<const std::byte> encoded,
                                              const decode_limits& limits = {});
  // Every section of a decoded message, copied. Errors: errc::invalid_argument (only for a
  // message_view that was not produced by decode_message).
  [[nodiscard]] static result<message> copy_of(const message_view& v);

  std::optional<amqp::header> header;                 // §3.2.1
  value_map delivery_annotations{map_keys::symbol};   // §3.2.2
  value_map message_annotations{map_keys::symbol};    // §3.2.3
  message_properties properties;                      // §3.2.4
  value_map application_properties{map_keys::string}; // §3.2.5
  value_map footer{map_keys::symbol};                 // §3.2.11

  // ---- body (§3.2.6 data, §3.2.7 amqp-sequence, §3.2.8 amqp-value)

  [[nodiscard]] amqp::body_kind body_kind() const noexcept { return body_kind_; }
  // Replaces the body with one amqp-value section holding the string `text`.
  void set_body(std::string_view text);
  // Replaces the body with one data section holding a copy of `data`.
  void set_body(std::span<const std::byte> data);
  // Replaces the body with one amqp-value section holding a copy of `v`.
  // Errors: errc::invalid_argument (no encoding); the body is then unchanged.
  [[nodiscard]] result<void> set_body_value(const value& v);
  // Appends a data section (the body becomes data if it was another kind).
  void add_data(std::span<const std::byte> data);
  // Appends an amqp-sequence section holding a copy of the list `items` (the body becomes
  // amqp-sequence if it was another kind). Errors: errc::invalid_argument (not a list, or
  // no encoding); the body is then unchanged.
  [[nodiscard]] result<void> add_sequence(const value& items);
  void clear_body() noexcept;
  // The body sections: binaries (data), lists (amqp-sequence) or one value (amqp-value).
  [[nodiscard]] std::span<const owned_value> body_sections() const noexcept { return body_; }
  // The body as text: an amqp-value string or symbol, or the data sections joined when they
  // are valid UTF-8; nullopt otherwise.
  [[nodiscard]] std::optional<std::string> body_text() const;
  // The body as bytes: the data sections joined, or an amqp-value binary, string or symbol;
  // nullopt otherwise.
  [[nodiscard]] std::optional<std::vector<std::byte>> body_bytes() const;
  // The amqp-value body, or null.
  [[nodiscard]] value body_value() const noexcept;

  // ---- encoding

  // Errors (all three): errc::invalid_argument, when a field cannot be encoded: check() says
  // which and why.
  [[nodiscard]] result<std::size_t> encoded_size() const;
  [[nodiscard]] result<void> encode_append(std::vector<std::byte>& out) const;
  [[nodiscard]] result<std::vector<std::byte>> encode() const;
  // Empty if the message can be encoded; otherwise what is wrong, naming the field
  // ("properties.content-type: a symbol must be ASCII").
  [[nodiscard]] std::string check() const;

  friend bool operator==(const message&, const message&) = default;

private:
  amqp::body_kind body_kind_ = amqp::body_kind::none;
  std::vector<owned_value> body_;
};

} // namespace amqp
