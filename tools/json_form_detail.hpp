// Internals of the typed JSON form shared by the tool's readers of larger documents (the
// message form, message_json.hpp): JSON parsing without duplicate keys, and building a
// typed value from a node of a parsed document, errors naming the node's place. Uses
// nlohmann::json, which the library never sees.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "amqp/value.hpp"
#include "json_form.hpp"

namespace amqp::cli::detail {

// Where a JSON node sits in a document, for error messages: `$.key[index]...`. A chain of
// these lives on the stack of the code walking the document.
struct json_path {
  const json_path* parent = nullptr;
  std::string_view key;  // object member name, or empty for an index
  std::size_t index = 0; // array index when key is empty
};

// `$` followed by the keys and indexes of `p` (`$.properties.to`, `$.body.data[1]`).
[[nodiscard]] std::string render_path(const json_path* p);

// Writes `s` as a JSON string: the escapes JSON requires, and U+0085, U+2028, U+2029, so
// that a document stays on one line.
void append_json_string(std::string_view s, std::string& out);

// Parses one JSON document (the whole of `text`). Duplicate keys in an object are an error
// (nlohmann would keep the last one silently). On failure returns nullopt and sets `error`
// ("invalid JSON: ..." or "invalid typed JSON: duplicate key ...").
[[nodiscard]] std::optional<nlohmann::json> parse_json(std::string_view text, std::string& error);

// Builds the typed value the node at `where` holds (the typed JSON form, validated as
// parse_typed_json does) into `arena`. On failure returns nullopt and sets `error` to
// "invalid typed JSON: <path>: <what>".
[[nodiscard]] std::optional<value> build_typed_value(const nlohmann::json& node,
                                                     const json_path* where, value_arena& arena,
                                                     std::string& error);

} // namespace amqp::cli::detail
