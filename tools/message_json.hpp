// Whole AMQP messages as one line of JSON: what `amqp-cli receive --json` prints and
// `amqp-cli send --message` reads. A message is a JSON object with one member per section
// present, in the order of AMQP 1.0 §3.2, each in the typed JSON form (json_form.hpp):
//
//   {"header": {"durable": {"type":"boolean","value":true}, ...},
//    "delivery-annotations": V, "message-annotations": V,
//    "properties": {"message-id": V, "to": V, ...},
//    "application-properties": V,
//    "body": {"data": [V, ...]} | {"amqp-sequence": [V, ...]} | {"amqp-value": V},
//    "footer": V}
//
// - header and properties: an object of the fields on the wire, named as in the spec
//   (durable, priority, ttl, first-acquirer, delivery-count; message-id, user-id, to,
//   subject, reply-to, correlation-id, content-type, content-encoding,
//   absolute-expiry-time, creation-time, group-id, group-sequence, reply-to-group-id), each a
//   typed value of its spec type; fields absent or null on the wire are left out. A header
//   or properties list with more fields than the spec's is written as its typed list
//   instead ({"type":"list",...}), which is also read.
// - delivery-annotations, message-annotations, application-properties, footer: the
//   section's map as a typed value.
// - body: data sections as typed binaries, amqp-sequence sections as typed lists, an
//   amqp-value as the typed value; several data or amqp-sequence sections stay several.
// Every value survives the trip (JSON to message to JSON gives the same line); section
// descriptors are written as their codes (0x70 ... 0x78). The message format of the
// transfer is not part of the message (0).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/result.hpp"

namespace amqp::cli {

// Appends the JSON form of the encoded message `encoded` to `out`: one document, no
// newline. Errors: those of amqp::decode_message (not a valid message); `out` is then
// unchanged.
[[nodiscard]] result<void> append_message_json(std::span<const std::byte> encoded,
                                               std::string& out);

// Reads one message in the JSON form (the whole of `text`) and returns its encoding,
// validated as amqp::decode_message validates a received message. On failure returns
// nullopt and sets `error` to the place (`$.properties.to`) and what is wrong.
[[nodiscard]] std::optional<std::vector<std::byte>> parse_message_json(std::string_view text,
                                                                       std::string& error);

} // namespace amqp::cli
