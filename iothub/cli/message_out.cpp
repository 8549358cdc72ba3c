// message_out.hpp.
#include "message_out.hpp"

#include <CLI/CLI.hpp>

#include "amqp/iothub/feedback.hpp"
#include "amqp/iothub/sas.hpp"
#include "json_form.hpp"

namespace amqp::iothub::cli {

nlohmann::json plain_json(const amqp::value& v) {
  switch (v.kind()) {
  case type::null:
    return nullptr;
  case type::boolean:
    return v.as_bool();
  case type::ubyte:
    return v.as_ubyte();
  case type::ushort:
    return v.as_ushort();
  case type::uint:
    return v.as_uint();
  case type::ulong:
    return v.as_ulong();
  case type::byte:
    return v.as_byte();
  case type::short_:
    return v.as_short();
  case type::int_:
    return v.as_int();
  case type::long_:
    return v.as_long();
  case type::float_:
    return v.as_float();
  case type::double_:
    return v.as_double();
  case type::timestamp:
    return format_utc_time(v.as_timestamp());
  case type::string:
    return std::string(v.as_string());
  case type::symbol:
    return std::string(v.as_symbol());
  case type::binary: {
    const auto b = v.as_binary();
    return nlohmann::json{
        {"base64", base64_encode(std::span<const std::byte>(b.data(), b.size()))}};
  }
  default:
    return nlohmann::json::parse(amqp::cli::to_typed_json(v));
  }
}

void add_message_json(const amqp::message& m, nlohmann::json& out) {
  const auto& p = m.properties;
  nlohmann::json props = nlohmann::json::object();
  if (!p.message_id.is_null()) {
    props["messageId"] = plain_json(p.message_id.get());
  }
  if (!p.correlation_id.is_null()) {
    props["correlationId"] = plain_json(p.correlation_id.get());
  }
  if (p.to) {
    props["to"] = *p.to;
  }
  if (p.user_id) {
    props["userId"] =
        std::string(reinterpret_cast<const char*>(p.user_id->data()), p.user_id->size());
  }
  if (p.content_type) {
    props["contentType"] = *p.content_type;
  }
  if (p.content_encoding) {
    props["contentEncoding"] = *p.content_encoding;
  }
  if (p.creation_time) {
    props["creationTime"] = format_utc_time(*p.creation_time);
  }
  if (p.absolute_expiry_time) {
    props["absoluteExpiryTime"] = format_utc_time(*p.absolute_expiry_time);
  }
  if (!props.empty()) {
    out["properties"] = std::move(props);
  }
  if (!m.application_properties.empty()) {
    nlohmann::json app = nlohmann::json::object();
    for (const auto& e : m.application_properties) {
      const auto& k = e.key.get();
      const std::string key =
          k.is(type::string) ? std::string(k.as_string()) : amqp::cli::to_typed_json(k);
      app[key] = plain_json(e.value.get());
    }
    out["applicationProperties"] = std::move(app);
  }
  if (auto text = m.body_text()) {
    out["body"] = *text;
  } else if (auto bytes = m.body_bytes()) {
    out["body"] = nlohmann::json{{"base64", base64_encode(*bytes)}};
  }
}

amqp::message build_message(const message_args& a) {
  amqp::message m(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(a.body.data()), a.body.size()));
  for (const auto& kv : a.properties) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw CLI::ValidationError("--property", "'" + kv + "' is not KEY=VALUE");
    }
    m.application_properties.set(std::string_view(kv).substr(0, eq),
                                 owned_value(std::string_view(kv).substr(eq + 1)));
  }
  if (!a.message_id.empty()) {
    m.properties.message_id = owned_value(a.message_id);
  }
  if (!a.correlation_id.empty()) {
    m.properties.correlation_id = owned_value(a.correlation_id);
  }
  if (!a.content_type.empty()) {
    m.properties.content_type = a.content_type;
  }
  if (!a.content_encoding.empty()) {
    m.properties.content_encoding = a.content_encoding;
  }
  return m;
}

} // namespace amqp::iothub::cli
