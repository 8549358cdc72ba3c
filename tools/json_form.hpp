// The typed JSON form of AMQP values, as amqp-cli reads and writes it.
//
// Every value is an object {"type": T, "value": V}, T being the AMQP type name
// (amqp::type_name):
// - null has no "value"; boolean: true/false; ubyte, ushort, uint, byte, short, int: a JSON
//   number; ulong, long, timestamp (ms since the epoch): a decimal string; char: the code
//   point as a number;
// - float, double: the shortest decimal that reads back as the same value, or one of the
//   strings "NaN", "Infinity", "-Infinity"; -0 stays -0;
// - decimal32/64/128: lowercase hex of the big-endian bytes; uuid: lowercase
//   8-4-4-4-12; binary: lowercase hex; string, symbol: JSON strings (symbols ASCII only);
// - list: {"type":"list","value":[V...]}; map: {"type":"map","value":[[K,V]...]} in wire
//   order; array: {"type":"array","element":T,"value":[V...]} with every element a full
//   typed value; described: {"type":"described","descriptor":D,"value":V}.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/value.hpp"

namespace amqp::cli {

// Appends the typed JSON form of `v` to `out`: one compact document, no newline. Strings and
// symbols are written as UTF-8 with only the escapes JSON requires.
void append_typed_json(const value& v, std::string& out);

// The typed JSON form of `v` (see append_typed_json).
[[nodiscard]] std::string to_typed_json(const value& v);

// Owns the storage that values built by parse_typed_json point into: element arrays,
// string characters and binary bytes. Views it hands out stay valid until clear() or
// destruction (storage is never moved).
class value_arena {
public:
  // `n` null values in new storage.
  [[nodiscard]] std::span<value> values(std::size_t n);
  // A stored copy of `s`.
  [[nodiscard]] std::string_view text(std::string s);
  // A stored copy of `b`.
  [[nodiscard]] std::span<const std::byte> bytes(std::vector<std::byte> b);
  // Releases everything; views handed out before become dangling.
  void clear() noexcept;

private:
  std::deque<std::vector<value>> values_;
  std::deque<std::string> texts_;
  std::deque<std::vector<std::byte>> bytes_;
};

// Nesting of lists, maps, arrays and described values accepted by parse_typed_json.
inline constexpr std::size_t max_typed_json_depth = 256;

// Parses one typed JSON document (the whole of `text`, surrounding whitespace allowed) into a
// built value whose storage is in `arena`. Validation is strict: exactly the keys of the
// form, the JSON type the form asks for, integers within the range of their type, valid
// code points for char, lowercase hex of the right length, ASCII symbols, array elements of
// the array's element type (described ones with equal descriptors), no duplicate keys,
// nesting up to max_typed_json_depth. On failure returns nullopt and sets `error` to a
// message naming the place in the document (a path such as `$.value[2][0]`).
[[nodiscard]] std::optional<value> parse_typed_json(std::string_view text, value_arena& arena,
                                                    std::string& error);

} // namespace amqp::cli
