// Messages as iothub-cli prints them: one JSON object, values as plain JSON where JSON has
// the type (strings, numbers, booleans, null; timestamps as ISO 8601 UTC text, binaries as
// base64) and in amqp-cli's typed form otherwise; and messages built from the command line.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "amqp/message.hpp"

namespace amqp::iothub::cli {

// A value as plain JSON (see above).
[[nodiscard]] nlohmann::json plain_json(const amqp::value& v);

// The properties, application properties and body of `m`: {"properties": {...},
// "applicationProperties": {...}, "body": "text" or {"base64": ".."}}; empty sections left
// out.
void add_message_json(const amqp::message& m, nlohmann::json& out);

// What the command line says a message is: the body (UTF-8 text as a data section, as the
// SDKs send it), `--property K=V` application properties, and the system properties given.
struct message_args {
  std::string body;
  std::vector<std::string> properties; // K=V
  std::string message_id;
  std::string correlation_id;
  std::string content_type;
  std::string content_encoding;
};

// Builds the message. Errors: a CLI::ValidationError naming the bad --property.
[[nodiscard]] amqp::message build_message(const message_args& a);

} // namespace amqp::iothub::cli
