// CBS put-token requests and responses (doc §2.4).
#include "amqp/iothub/cbs.hpp"

#include <limits>

#include "detail.hpp"

namespace amqp::iothub {

using detail::fail;

namespace {

// A required string-or-symbol application property.
result<std::string_view> text_property(const amqp::message& m, std::string_view key,
                                       std::string* why) {
  const auto v = m.application_properties.get(key);
  if (!v || v->is_null()) {
    return fail(why, errc::missing_field,
                "the application property '" + std::string(key) + "' is missing");
  }
  const auto t = detail::text_of(*v);
  if (!t) {
    return fail(why, errc::invalid_value,
                "the application property '" + std::string(key) + "' is a " +
                    std::string(type_name(v->kind())) + ", not a string");
  }
  return *t;
}

} // namespace

std::string_view to_string(cbs_token_type t) noexcept {
  return t == cbs_token_type::iothub_sas ? iothub_sas_token_type : servicebus_sas_token_type;
}

amqp::message build_put_token(const put_token_request& r) {
  amqp::message m(std::string_view(r.token));
  m.properties.message_id = r.message_id;
  m.properties.reply_to = r.reply_to;
  m.properties.to = r.to;
  auto& ap = m.application_properties;
  ap.set(cbs_key::operation, owned_value(put_token_operation));
  ap.set(cbs_key::type, owned_value(to_string(r.token_type)));
  ap.set(cbs_key::name, owned_value(r.audience));
  if (r.expiration) {
    ap.set(cbs_key::expiration, owned_value(*r.expiration));
  }
  return m;
}

result<put_token_request> parse_put_token(const amqp::message& m, std::string* why) {
  put_token_request r;
  if (m.properties.message_id.is_null()) {
    return fail(why, errc::missing_field, "the put-token request has no message-id");
  }
  r.message_id = m.properties.message_id;
  r.reply_to = m.properties.reply_to;
  r.to = m.properties.to;
  auto op = text_property(m, cbs_key::operation, why);
  if (!op) {
    return op.error();
  }
  if (*op != put_token_operation) {
    return fail(why, errc::invalid_value,
                "the CBS operation is " + detail::quote(*op) + ", not 'put-token'");
  }
  auto type = text_property(m, cbs_key::type, why);
  if (!type) {
    return type.error();
  }
  // EDGE compares the token type without regard to case.
  if (detail::iequals(*type, servicebus_sas_token_type)) {
    r.token_type = cbs_token_type::servicebus_sas;
  } else if (detail::iequals(*type, iothub_sas_token_type)) {
    r.token_type = cbs_token_type::iothub_sas;
  } else {
    return fail(why, errc::not_supported,
                "the CBS token type " + detail::quote(*type) +
                    " is not supported (only SAS tokens)");
  }
  auto name = text_property(m, cbs_key::name, why);
  if (!name) {
    return name.error();
  }
  if (name->empty()) {
    return fail(why, errc::invalid_value, "the CBS name (audience) is empty");
  }
  r.audience.assign(*name);
  if (const auto e = m.application_properties.get(cbs_key::expiration); e && !e->is_null()) {
    if (!e->is(type::timestamp)) {
      return fail(why, errc::invalid_value,
                  "the CBS expiration is a " + std::string(type_name(e->kind())) +
                      ", not a timestamp");
    }
    r.expiration = e->as_timestamp();
  }
  const value body = m.body_value();
  if (m.body_kind() != body_kind::amqp_value || body.is_null()) {
    return fail(why, errc::missing_field, "the put-token request has no amqp-value token");
  }
  const auto token = body.get_string();
  if (!token) {
    return fail(why, errc::invalid_value,
                "the put-token body is a " + std::string(type_name(body.kind())) +
                    ", not a string");
  }
  if (token->empty()) {
    return fail(why, errc::invalid_value, "the put-token token is empty");
  }
  r.token.assign(*token);
  return r;
}

amqp::message build_cbs_response(const cbs_response& r) {
  amqp::message m;
  (void)m.set_body_value(value{});
  m.properties.correlation_id = r.correlation_id;
  m.application_properties.set(cbs_key::status_code, owned_value(r.status_code));
  if (!r.status_description.empty()) {
    m.application_properties.set(cbs_key::status_description, owned_value(r.status_description));
  }
  return m;
}

amqp::message build_cbs_response(const put_token_request& request, std::int32_t status,
                                 std::string_view description) {
  return build_cbs_response(cbs_response{request.message_id, status, std::string(description)});
}

result<cbs_response> parse_cbs_response(const amqp::message& m, std::string* why) {
  cbs_response r;
  if (m.properties.correlation_id.is_null()) {
    return fail(why, errc::missing_field, "the CBS response has no correlation-id");
  }
  r.correlation_id = m.properties.correlation_id;
  const auto code = m.application_properties.get(cbs_key::status_code);
  if (!code || code->is_null()) {
    return fail(why, errc::missing_field, "the CBS response has no status-code");
  }
  const auto n = detail::integer_of(*code);
  if (!n) {
    return fail(why, errc::invalid_value,
                "the CBS status-code is a " + std::string(type_name(code->kind())) +
                    ", not an integer");
  }
  if (*n < std::numeric_limits<std::int32_t>::min() ||
      *n > std::numeric_limits<std::int32_t>::max()) {
    return fail(why, errc::invalid_value,
                "the CBS status-code " + std::to_string(*n) + " is out of the int range");
  }
  r.status_code = static_cast<std::int32_t>(*n);
  if (const auto d = m.application_properties.get(cbs_key::status_description);
      d && !d->is_null()) {
    const auto t = detail::text_of(*d);
    if (!t) {
      return fail(why, errc::invalid_value,
                  "the CBS status-description is a " + std::string(type_name(d->kind())) +
                      ", not a string");
    }
    r.status_description.assign(*t);
  }
  return r;
}

} // namespace amqp::iothub
