// AMQP 1.0 messaging composites (messaging.xml): delivery states and outcomes (§3.4),
// source and target termini (§3.5), lifetime policies (§3.5.8–§3.5.11); and the types they
// depend on from other parts of the spec: error (§2.8.14), and the transactional delivery
// states declared (§4.5.5) and transactional-state (§4.5.6), which delivery-state needs.
//
// Every type here is a plain struct with the spec's fields in the spec's order, spelled with
// underscores. Fields with a spec default are initialised to it; optional fields without one
// are std::optional (or a null `value`/empty `symbols`). Nothing is owned: strings, binaries,
// symbols and values are views, into the decoded bytes after `decode` (valid as long as those
// bytes are), into caller storage when encoding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <variant>

#include "amqp/result.hpp"
#include "amqp/symbols.hpp"
#include "amqp/value.hpp"

namespace amqp {

// AMQP 1.0 §2.8.14 error: details of an error (amqp:error:list, 0x1d). `condition` is one of
// the amqp::symbol conditions or an implementation-defined symbol.
struct error {
  symbol_view condition{};
  std::optional<std::string_view> description{};
  value info{}; // fields: map with symbol keys, or null
};

// AMQP 1.0 §3.4.1 received (0x23): a partial delivery state, the resume point.
struct received {
  std::uint32_t section_number{};
  std::uint64_t section_offset{};
};

// AMQP 1.0 §3.4.2 accepted (0x24): the terminal outcome for a successfully processed message.
struct accepted {};

// AMQP 1.0 §3.4.3 rejected (0x25): the message is invalid and cannot be processed.
struct rejected {
  std::optional<amqp::error> error{};
};

// AMQP 1.0 §3.4.4 released (0x26): the message was not (and will not be) acted upon.
struct released {};

// AMQP 1.0 §3.4.5 modified (0x27): released, with changes to apply to the message.
struct modified {
  std::optional<bool> delivery_failed{};
  std::optional<bool> undeliverable_here{};
  value message_annotations{}; // fields, or null
};

// AMQP 1.0 §4.5.5 declared (0x33): the outcome of a declare, carrying the transaction id.
// (Defined here rather than in transactions.hpp because delivery-state needs it.)
struct declared {
  binary_view txn_id{};
};

// A `*` field with requires="outcome" (AMQP 1.0 §3.4, §4.5.5). The last alternative keeps,
// undecoded, a described value with any other descriptor: AMQP 1.0 §3.4 lets peers define
// outcomes of their own, and a receiver must tolerate them.
using outcome = std::variant<accepted, rejected, released, modified, declared, value>;

// AMQP 1.0 §4.5.6 transactional-state (0x34): the state of a delivery within a transaction.
// `outcome` is typed `outcome` rather than `delivery_state` (the spec requires an outcome;
// a delivery_state member here would also make the type recursive).
struct transactional_state {
  binary_view txn_id{};
  std::optional<amqp::outcome> outcome{};
};

// A `*` field with requires="delivery-state" (transfer.state, disposition.state; AMQP 1.0
// §3.4). As for `outcome`, the last alternative keeps a described value with an unknown
// descriptor as it is (it re-encodes to the bytes it was decoded from).
using delivery_state = std::variant<received, accepted, rejected, released, modified, declared,
                                    transactional_state, value>;

// The kind of a delivery's state (AMQP 1.0 §3.4 outcomes and received, §4.5.5 declared,
// §4.5.6 transactional-state): the one vocabulary for delivery states from the engine to the
// client and the broker. `none`: no state at all (a delivery sent presettled, or settled
// without an outcome); `other`: a described value with a descriptor this library does not
// know (§3.4 lets peers define outcomes of their own).
enum class state_kind : std::uint8_t {
  none,
  received,
  accepted,
  rejected,
  released,
  modified,
  declared,
  transactional,
  other,
};

// The kind of `s`; kind_of(nullopt) is state_kind::none.
[[nodiscard]] state_kind kind_of(const delivery_state& s) noexcept;
[[nodiscard]] state_kind kind_of(const std::optional<delivery_state>& s) noexcept;
[[nodiscard]] state_kind kind_of(const outcome& o) noexcept;
// The AMQP name of the state ("accepted", "transactional-state", ...); "none" and "other"
// for those two.
[[nodiscard]] std::string_view name(state_kind k) noexcept;
// True for the terminal outcomes of AMQP 1.0 §3.4 (accepted, rejected, released, modified)
// and peer-defined ones (`other`).
[[nodiscard]] constexpr bool is_outcome(state_kind k) noexcept {
  return k == state_kind::accepted || k == state_kind::rejected || k == state_kind::released ||
         k == state_kind::modified || k == state_kind::other;
}

// AMQP 1.0 §3.5.3 terminus-durability: what terminus state is retained durably.
enum class terminus_durability : std::uint32_t { none = 0, configuration = 1, unsettled_state = 2 };

// AMQP 1.0 §3.5.4 terminus-expiry-policy and §3.5.5 std-dist-mode: the symbols the spec
// defines for source/target `expiry_policy` and source `distribution_mode`.
namespace terminus {
inline constexpr symbol_view link_detach{"link-detach"};
inline constexpr symbol_view session_end{"session-end"};
inline constexpr symbol_view connection_close{"connection-close"};
inline constexpr symbol_view never{"never"};
inline constexpr symbol_view move{"move"};
inline constexpr symbol_view copy{"copy"};
} // namespace terminus

// AMQP 1.0 §3.5.1 source (0x28): the source terminus of a link.
struct source {
  std::optional<std::string_view> address{};
  terminus_durability durable = terminus_durability::none;
  symbol_view expiry_policy = terminus::session_end; // terminus-expiry-policy
  std::uint32_t timeout = 0;                         // seconds
  bool dynamic = false;
  value dynamic_node_properties{};                // node-properties (fields), or null
  std::optional<symbol_view> distribution_mode{}; // terminus::move, terminus::copy, or other
  value filter{};                                 // filter-set (map), or null
  std::optional<amqp::outcome> default_outcome{}; // requires="outcome"
  symbols outcomes{};
  symbols capabilities{};
};

// AMQP 1.0 §3.5.2 target (0x29): the target terminus of a link.
struct target {
  std::optional<std::string_view> address{};
  terminus_durability durable = terminus_durability::none;
  symbol_view expiry_policy = terminus::session_end; // terminus-expiry-policy
  std::uint32_t timeout = 0;                         // seconds
  bool dynamic = false;
  value dynamic_node_properties{}; // node-properties (fields), or null
  symbols capabilities{};
};

// AMQP 1.0 §3.5.8–§3.5.11 lifetime policies of dynamic nodes (the value of the
// "lifetime-policy" node property): delete-on-close (0x2b), delete-on-no-links (0x2c),
// delete-on-no-messages (0x2d), delete-on-no-links-or-messages (0x2e).
struct delete_on_close {};
struct delete_on_no_links {};
struct delete_on_no_messages {};
struct delete_on_no_links_or_messages {};

// Decodes `described` (a described list) into `out`, checking its descriptor: the type's
// ulong code or its symbolic name ("amqp:accepted:list"). Fields beyond those known are
// ignored (AMQP 1.0 §1.4). Views in `out` point into the bytes `described` was decoded from.
// Errors: errc::unexpected_descriptor (a described value of another type, here or in a
// composite field), errc::type_mismatch (not a described list, or a field of the wrong type),
// errc::missing_field (a mandatory field absent or null).
[[nodiscard]] result<void> decode(const value& described, error& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, received& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, accepted& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, rejected& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, released& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, modified& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, declared& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, transactional_state& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, source& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, target& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, delete_on_close& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, delete_on_no_links& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, delete_on_no_messages& out) noexcept;
[[nodiscard]] result<void> decode(const value& described,
                                  delete_on_no_links_or_messages& out) noexcept;

// The number of bytes `x` encodes to: the descriptor as smallulong, then a list of the fields
// up to the last one that is not null or default (list0, list8 or list32, the smallest that
// fits); fields equal to their default are written as null. Errors: errc::invalid_argument
// (a `value` or `symbols` field with no encoding).
[[nodiscard]] result<std::size_t> encoded_size(const error& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const received& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const accepted& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const rejected& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const released& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const modified& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const declared& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const transactional_state& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const source& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const target& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const delete_on_close& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const delete_on_no_links& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const delete_on_no_messages& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const delete_on_no_links_or_messages& x) noexcept;

// Encodes `x` (as encoded_size describes) into the front of `out`; returns the bytes written.
// Errors: those of encoded_size, errc::buffer_too_small.
[[nodiscard]] result<std::size_t> encode(const error& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const received& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const accepted& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const rejected& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const released& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const modified& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const declared& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const transactional_state& x,
                                         std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const source& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const target& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const delete_on_close& x,
                                         std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const delete_on_no_links& x,
                                         std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const delete_on_no_messages& x,
                                         std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const delete_on_no_links_or_messages& x,
                                         std::span<std::byte> out) noexcept;

// Decodes a delivery state (transfer.state, disposition.state) or an outcome by its
// descriptor; a described value with an unknown descriptor is kept as the `value`
// alternative. (They are encoded as members of the composites that hold them.) Errors:
// errc::type_mismatch (not a described value), and those of decode for the alternative.
[[nodiscard]] result<void> decode(const value& described, delivery_state& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, outcome& out) noexcept;

} // namespace amqp
