// A plain-data view of the composite field tables, for checking them against the spec XML
// (tests/amqp/codec/spec_xml_test.cpp) and for tools that list the types. Not used by the
// codec itself; it allocates with the default allocator.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace amqp::detail {

// One field of a composite, as the table and the member type describe it.
struct field_info {
  std::string_view name; // the spec's field name, e.g. "max-frame-size"
  bool mandatory = false;
  // The member can be absent (std::optional, a null `value`, empty `symbols`); fields that
  // are neither mandatory nor have a default are nullable.
  bool nullable = false;
  // The member is `symbols` (a multiple="true" symbol field).
  bool multiple = false;
  // The member's default initialiser as the spec writes defaults, for bool ("false"),
  // unsigned integer ("65535") and symbol ("session-end") members; empty for other types.
  std::string default_text;
};

// One composite type: its descriptor (symbolic name and code) and its fields in order.
struct composite_info {
  std::string_view name; // descriptor name, e.g. "amqp:open:list"
  std::uint64_t code = 0;
  std::vector<field_info> fields;
};

// Every composite type with a table in composite_tables.hpp. The message sections header and
// properties (whose tables are in message.cpp) are not included.
[[nodiscard]] std::vector<composite_info> all_composites();

} // namespace amqp::detail
