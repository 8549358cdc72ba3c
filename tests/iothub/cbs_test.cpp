// Tests of CBS put-token requests and responses (iothub/src/cbs.cpp; doc §2.4).
#include <string>

#include <doctest/doctest.h>

#include "amqp/iothub/cbs.hpp"

using namespace amqp::iothub;
using amqp::owned_value;

namespace {

const std::string token = "SharedAccessSignature sr=h%2Fdevices%2Fd1"
                          "&sig=sqF%2B8Hk3WVvp%2BhgnyXZP2BlsrIbU3s8sZyxXsmWTdR8%3D&se=1700000000";

// A request as uAMQP's cbs.c sends it: ulong message-id, no reply-to, string properties.
amqp::message uamqp_request() {
  amqp::message m{std::string_view(token)};
  m.properties.message_id = owned_value(std::uint64_t{0});
  m.application_properties.set("operation", owned_value("put-token"));
  m.application_properties.set("type", owned_value("servicebus.windows.net:sastoken"));
  m.application_properties.set("name", owned_value("h/devices/d1"));
  return m;
}

put_token_request parsed(const amqp::message& m) {
  std::string why;
  auto r = parse_put_token(m, &why);
  REQUIRE_MESSAGE(r.has_value(), why);
  return *r;
}

amqp::message through_wire(const amqp::message& m) {
  auto e = m.encode();
  REQUIRE(e.has_value());
  auto d = amqp::message::decode(*e);
  REQUIRE(d.has_value());
  return *d;
}

} // namespace

TEST_CASE("parse_put_token: every variant of doc §2.4") {
  SUBCASE("uAMQP: ulong message-id, no reply-to") {
    const auto r = parsed(through_wire(uamqp_request()));
    CHECK(r.message_id.get().is(amqp::type::ulong));
    CHECK_FALSE(r.reply_to.has_value());
    CHECK(r.token_type == cbs_token_type::servicebus_sas);
    CHECK(r.audience == "h/devices/d1");
    CHECK(r.token == token);
    CHECK_FALSE(r.expiration.has_value());
  }
  SUBCASE("Node: string message-id, to $cbs, reply-to cbs") {
    auto m = uamqp_request();
    m.properties.message_id = owned_value("5f1d1e5e-0000-4000-8000-000000000001");
    m.properties.to = "$cbs";
    m.properties.reply_to = "cbs";
    const auto r = parsed(through_wire(m));
    CHECK(r.message_id == owned_value("5f1d1e5e-0000-4000-8000-000000000001"));
    CHECK(r.reply_to == "cbs");
    CHECK(r.to == "$cbs");
  }
  SUBCASE(".NET: azure-devices.net token type, uuid id, expiration timestamp") {
    auto m = uamqp_request();
    m.properties.message_id = owned_value(amqp::uuid{});
    m.application_properties.set("type", owned_value("azure-devices.net:sastoken"));
    m.application_properties.set("expiration", owned_value(amqp::timestamp{1700000000000}));
    const auto r = parsed(through_wire(m));
    CHECK(r.token_type == cbs_token_type::iothub_sas);
    CHECK(r.message_id.get().is(amqp::type::uuid));
    CHECK(r.expiration == amqp::timestamp{1700000000000});
  }
  SUBCASE("EDGE: token type in any case; symbols for the strings; binary id; null expiration") {
    auto m = uamqp_request();
    m.properties.message_id = owned_value(amqp::binary_view{});
    m.application_properties.set("type",
                                 owned_value(amqp::symbol_view{"ServiceBus.Windows.Net:SASToken"}));
    m.application_properties.set("operation", owned_value(amqp::symbol_view{"put-token"}));
    m.application_properties.set("expiration", owned_value(nullptr));
    const auto r = parsed(through_wire(m));
    CHECK(r.token_type == cbs_token_type::servicebus_sas);
    CHECK_FALSE(r.expiration.has_value());
  }
}

TEST_CASE("build_put_token: the request parses back equal") {
  put_token_request r;
  r.message_id = owned_value(std::uint64_t{7});
  r.reply_to = "cbs";
  r.to = "$cbs";
  r.token_type = cbs_token_type::iothub_sas;
  r.audience = "h/devices/d1";
  r.token = token;
  r.expiration = amqp::timestamp{5};
  const auto m = build_put_token(r);
  CHECK(m.application_properties.get("operation")->as_string() == "put-token");
  CHECK(m.application_properties.get("type")->as_string() == "azure-devices.net:sastoken");
  CHECK(m.body_value().as_string() == token);
  CHECK(parsed(through_wire(m)) == r);
  r.reply_to.reset();
  r.to.reset();
  r.expiration.reset();
  CHECK_FALSE(build_put_token(r).application_properties.contains("expiration"));
  CHECK(parsed(through_wire(build_put_token(r))) == r);
  CHECK(to_string(cbs_token_type::servicebus_sas) == "servicebus.windows.net:sastoken");
}

TEST_CASE("parse_put_token: errors say what is wrong") {
  std::string why;
  auto m = uamqp_request();
  SUBCASE("message-id") {
    m.properties.message_id = owned_value();
    CHECK(parse_put_token(m, &why).error() == errc::missing_field);
    CHECK(why == "the put-token request has no message-id");
  }
  SUBCASE("operation") {
    m.application_properties.erase("operation");
    CHECK(parse_put_token(m, &why).error() == errc::missing_field);
    CHECK(why == "the application property 'operation' is missing");
    m.application_properties.set("operation", owned_value("delete-token"));
    CHECK(parse_put_token(m, &why).error() == errc::invalid_value);
    CHECK(why == "the CBS operation is 'delete-token', not 'put-token'");
    m.application_properties.set("operation", owned_value(std::int32_t{1}));
    CHECK(parse_put_token(m, &why).error() == errc::invalid_value);
    CHECK(why == "the application property 'operation' is a int, not a string");
  }
  SUBCASE("type") {
    m.application_properties.set("type", owned_value("jwt"));
    CHECK(parse_put_token(m, &why).error() == errc::not_supported);
    CHECK(why == "the CBS token type 'jwt' is not supported (only SAS tokens)");
    m.application_properties.erase("type");
    CHECK(parse_put_token(m, &why).error() == errc::missing_field);
  }
  SUBCASE("name") {
    m.application_properties.set("name", owned_value(""));
    CHECK(parse_put_token(m, &why).error() == errc::invalid_value);
    CHECK(why == "the CBS name (audience) is empty");
    m.application_properties.erase("name");
    CHECK(parse_put_token(m, &why).error() == errc::missing_field);
  }
  SUBCASE("expiration") {
    m.application_properties.set("expiration", owned_value(std::uint64_t{1}));
    CHECK(parse_put_token(m, &why).error() == errc::invalid_value);
    CHECK(why == "the CBS expiration is a ulong, not a timestamp");
  }
  SUBCASE("body") {
    m.set_body(amqp::binary_view{});
    CHECK(parse_put_token(m, &why).error() == errc::missing_field);
    CHECK(why == "the put-token request has no amqp-value token");
    REQUIRE(m.set_body_value(amqp::value(std::int32_t{1})).has_value());
    CHECK(parse_put_token(m, &why).error() == errc::invalid_value);
    CHECK(why == "the put-token body is a int, not a string");
    m.set_body(std::string_view(""));
    CHECK(parse_put_token(m, &why).error() == errc::invalid_value);
    CHECK(why == "the put-token token is empty");
    m.clear_body();
    CHECK(parse_put_token(m, &why).error() == errc::missing_field);
  }
}

TEST_CASE("build_cbs_response: correlation-id of the request's type, int status") {
  for (const owned_value& id : {owned_value(std::uint64_t{3}), owned_value("abc"),
                                owned_value(amqp::uuid{}), owned_value(amqp::binary_view{})}) {
    auto req = uamqp_request();
    req.properties.message_id = id;
    const auto m = through_wire(build_cbs_response(parsed(req), cbs_status::ok, "OK"));
    CHECK(m.properties.correlation_id == id);
    CHECK(m.properties.correlation_id.kind() == id.kind());
    CHECK(m.application_properties.get("status-code")->is(amqp::type::int_));
    CHECK(m.application_properties.get("status-code")->as_int() == 200);
    CHECK(m.application_properties.get("status-description")->as_string() == "OK");
    const auto r = parse_cbs_response(m);
    REQUIRE(r.has_value());
    CHECK(*r == cbs_response{id, 200, "OK"});
  }
}

TEST_CASE("parse_cbs_response: status in any integer type, description optional") {
  amqp::message m;
  m.properties.correlation_id = owned_value(std::uint64_t{1});
  m.application_properties.set("status-code", owned_value(std::uint16_t{401}));
  auto r = parse_cbs_response(m);
  REQUIRE(r.has_value());
  CHECK(r->status_code == 401);
  CHECK(r->status_description.empty());
  m.application_properties.set("status-code", owned_value(std::int64_t{202}));
  m.application_properties.set("status-description", owned_value(amqp::symbol_view{"Accepted"}));
  CHECK(parse_cbs_response(m)->status_code == 202);
  CHECK(parse_cbs_response(m)->status_description == "Accepted");
  m.application_properties.set("status-description", owned_value(nullptr));
  CHECK(parse_cbs_response(m)->status_description.empty());

  std::string why;
  m.application_properties.set("status-description", owned_value(std::int32_t{1}));
  CHECK(parse_cbs_response(m, &why).error() == errc::invalid_value);
  CHECK(why == "the CBS status-description is a int, not a string");
  m.application_properties.erase("status-description");
  m.application_properties.set("status-code", owned_value(std::int64_t{1} << 40));
  CHECK(parse_cbs_response(m, &why).error() == errc::invalid_value);
  CHECK(why == "the CBS status-code 1099511627776 is out of the int range");
  m.application_properties.set("status-code", owned_value("200"));
  CHECK(parse_cbs_response(m, &why).error() == errc::invalid_value);
  CHECK(why == "the CBS status-code is a string, not an integer");
  m.application_properties.erase("status-code");
  CHECK(parse_cbs_response(m, &why).error() == errc::missing_field);
  CHECK(why == "the CBS response has no status-code");
  m.properties.correlation_id = owned_value();
  CHECK(parse_cbs_response(m, &why).error() == errc::missing_field);
  CHECK(why == "the CBS response has no correlation-id");
}
