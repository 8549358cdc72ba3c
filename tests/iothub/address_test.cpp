// Tests of link addresses and device identities (iothub/src/address.cpp; doc §1.5).
#include <array>
#include <string>

#include <doctest/doctest.h>

#include "amqp/iothub/address.hpp"

using namespace amqp::iothub;

namespace {

address parsed(std::string_view text) {
  std::string why;
  auto a = parse_address(text, &why);
  REQUIRE_MESSAGE(a.has_value(), why);
  // Every parsed address formats to text that parses back to it.
  auto again = parse_address(to_string(*a));
  REQUIRE(again.has_value());
  CHECK(*again == *a);
  return *a;
}

} // namespace

TEST_CASE("check_device_id / check_module_id: the registry's characters and length") {
  CHECK(check_device_id("device-1.a_b%c*d?e!f(g)h,i:j=k@l$m'n").has_value());
  CHECK(check_device_id(std::string(128, 'd')).has_value());
  std::string why;
  CHECK(check_device_id(std::string(129, 'd'), &why).error() == errc::limit_exceeded);
  CHECK(why == "the device id is longer than 128 characters");
  CHECK(check_device_id("", &why).error() == errc::invalid_value);
  CHECK(why == "the device id is empty");
  CHECK(check_device_id("a+b", &why).error() == errc::invalid_value); // + not supported
  CHECK(why == "the device id 'a+b' has a character not allowed: '+'");
  CHECK(check_device_id("a#b").error() == errc::invalid_value);
  CHECK(check_device_id("a/b").error() == errc::invalid_value);
  CHECK(check_device_id("a b").error() == errc::invalid_value);
  CHECK(check_device_id("\xc3\xa9").error() == errc::invalid_value);
  CHECK(check_module_id("m+1#x").has_value());
  CHECK(check_module_id(std::string(129, 'm')).error() == errc::limit_exceeded);
  CHECK(check_module_id("m/1").error() == errc::invalid_value);
}

TEST_CASE("parse_address: device addresses in every spelling the SDKs use") {
  SUBCASE("Node: bare paths") {
    const auto a = parsed("/devices/d1/messages/events");
    CHECK(a.kind == address_kind::telemetry);
    CHECK(a.identity == device_identity{"d1", ""});
    CHECK(a.host.empty());
    CHECK(to_string(a) == "/devices/d1/messages/events");
  }
  SUBCASE("C SDK: amqps://host/...") {
    const auto a = parsed("amqps://myhub.azure-devices.net/devices/d1/messages/devicebound");
    CHECK(a.kind == address_kind::device_c2d);
    CHECK(a.scheme == "amqps");
    CHECK(a.host == "myhub.azure-devices.net");
    CHECK_FALSE(a.port.has_value());
    CHECK(to_string(a) == "amqps://myhub.azure-devices.net/devices/d1/messages/devicebound");
  }
  SUBCASE(".NET: with the port, deviceBound with a capital B") {
    const auto a = parsed("amqps://localhost:5671/devices/d1/messages/deviceBound");
    CHECK(a.kind == address_kind::device_c2d);
    CHECK(a.port == 5671);
    CHECK(parsed("amqps://localhost:5671/devices/d1/methods/deviceBound").kind ==
          address_kind::methods);
  }
  SUBCASE("modules, twin, methods") {
    auto a = parsed("/devices/d1/modules/m1/messages/events");
    CHECK(a.kind == address_kind::telemetry);
    CHECK(a.identity == device_identity{"d1", "m1"});
    CHECK(parsed("/devices/d1/twin").kind == address_kind::twin);
    a = parsed("/devices/d1/modules/m1/twin");
    CHECK(a.kind == address_kind::twin);
    CHECK(a.identity.module_id == "m1");
    CHECK(parsed("/devices/d1/modules/m1/methods/devicebound").kind == address_kind::methods);
    CHECK(parsed("/devices/d1/modules/m1/messages/devicebound").kind == address_kind::device_c2d);
  }
  SUBCASE("words without regard to case, ids as sent, escapes decoded") {
    const auto a = parsed("/DEVICES/Dev%2A1/MESSAGES/EVENTS/");
    CHECK(a.kind == address_kind::telemetry);
    CHECK(a.identity.device_id == "Dev*1");
    CHECK(to_string(a) == "/devices/Dev%2A1/messages/events");
  }
}

TEST_CASE("parse_address: service and built-in endpoint addresses") {
  CHECK(parsed("/messages/devicebound").kind == address_kind::service_c2d);
  CHECK(parsed("amqps://h/messages/deviceBound").kind == address_kind::service_c2d);
  CHECK(parsed("/messages/serviceBound/feedback").kind == address_kind::feedback);
  CHECK(parsed("amqps://h/messages/servicebound/feedback").kind == address_kind::feedback);
  CHECK(parsed("/messages/serviceBound/filenotifications").kind ==
        address_kind::file_notifications);
  auto a = parsed("/messages/events/ConsumerGroups/$Default/Partitions/3");
  CHECK(a.kind == address_kind::builtin_events);
  CHECK(a.consumer_group == "$Default");
  CHECK(a.partition == "3");
  CHECK(a.events_path == "ConsumerGroups/$Default/Partitions/3");
  a = parsed("amqps://h:5671/messages/events/$management");
  CHECK(a.kind == address_kind::builtin_events);
  CHECK(a.events_path == "$management");
  CHECK(a.consumer_group.empty());
  a = parsed("/messages/events");
  CHECK(a.kind == address_kind::builtin_events);
  CHECK(a.events_path.empty());
  CHECK(parsed("$cbs").kind == address_kind::cbs);
  CHECK(parsed("/$cbs").kind == address_kind::cbs);
  CHECK(parsed("amqps://h/$cbs").kind == address_kind::cbs);
  CHECK(parsed("$management").kind == address_kind::management);
  CHECK(builtin_events_address("$Default", "0") ==
        "/messages/events/ConsumerGroups/%24Default/Partitions/0");
  CHECK(parsed(builtin_events_address("$Default", "0")).consumer_group == "$Default");
}

TEST_CASE("parse_address: Event Hubs forms") {
  auto a = parsed("myhub/ConsumerGroups/$Default/Partitions/0");
  CHECK(a.kind == address_kind::eventhub_consumer);
  CHECK(a.event_hub == "myhub");
  CHECK(a.consumer_group == "$Default");
  CHECK(a.partition == "0");
  a = parsed(
      "amqps://iothub-ns-h-1.servicebus.windows.net:5671/myhub/consumergroups/cg/partitions/1");
  CHECK(a.kind == address_kind::eventhub_consumer);
  CHECK(a.host == "iothub-ns-h-1.servicebus.windows.net");
  a = parsed("sb://ns/myhub/Partitions/2");
  CHECK(a.kind == address_kind::eventhub_partition);
  CHECK(a.scheme == "sb");
  CHECK(a.partition == "2");
  CHECK(parsed("myhub").kind == address_kind::eventhub);
  a = parsed("myhub/$management");
  CHECK(a.kind == address_kind::eventhub_management);
  CHECK(a.event_hub == "myhub");
  CHECK(eventhub_consumer_address("hub", "$Default", "0") ==
        "hub/ConsumerGroups/%24Default/Partitions/0");
  CHECK(eventhub_partition_address("hub", "1") == "hub/Partitions/1");
  CHECK(eventhub_management_address("hub") == "hub/$management");
  a.scheme = "amqps";
  a.host = "::1";
  a.port = 5671;
  CHECK(to_string(a) == "amqps://[::1]:5671/myhub/$management");
  CHECK(parsed(to_string(a)) == a);
}

TEST_CASE("parse_address: malformed addresses are errors that say why") {
  struct bad {
    std::string text;
    errc code;
    std::string_view says;
  };
  const std::array<bad, 16> cases = {{
      {"", errc::invalid_value, "empty"},
      {"/", errc::invalid_value, "empty segment"},
      {"/devices//messages/events", errc::invalid_value, "empty segment"},
      {"/devices/d1", errc::invalid_value, "needs a path after the device id"},
      {"/devices/d1/modules/m1", errc::invalid_value, "needs a path after the module id"},
      {"/devices/d1/messages/foo", errc::invalid_value, "unknown device address"},
      {"/devices/d+1/messages/events", errc::invalid_value, "not allowed: '+'"},
      {"/devices/d1/modules/m%2F1/twin", errc::invalid_value, "decodes to a '/'"},
      {"/devices/d%zz/twin", errc::invalid_value, "two hex digits"},
      {"/messages/foo", errc::invalid_value, "unknown service address"},
      {"hub/Partitions", errc::invalid_value, "unknown address"},
      {"hub/ConsumerGroups/cg/Partitions/0/x", errc::invalid_value, "unknown address"},
      {"amqps://h", errc::invalid_value, "has no path"},
      {"amqps://h:x/$cbs", errc::invalid_value, "port"},
      {"1bad://h/$cbs", errc::invalid_value, "malformed scheme"},
      {"amqps:///$cbs", errc::invalid_value, "host name is empty"},
  }};
  for (const bad& b : cases) {
    CAPTURE(b.text);
    std::string why;
    auto r = parse_address(b.text, &why);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == b.code);
    CHECK_MESSAGE(why.find(b.says) != std::string::npos, why);
  }
}

TEST_CASE("parse_address: the length limit") {
  std::string text = "/messages/events/" + std::string(max_address_length - 17, 'x');
  CHECK(parse_address(text).has_value());
  text += 'x';
  std::string why;
  CHECK(parse_address(text, &why).error() == errc::limit_exceeded);
  CHECK(why == "the address is longer than 2048 characters");
}

TEST_CASE("builders: ids URL-encoded, paths canonical") {
  const device_identity d{"d 1", ""};
  const device_identity m{"d1", "m#1"};
  CHECK(telemetry_address(d) == "/devices/d%201/messages/events");
  CHECK(telemetry_address(m) == "/devices/d1/modules/m%231/messages/events");
  CHECK(device_c2d_address(m) == "/devices/d1/modules/m%231/messages/devicebound");
  CHECK(twin_address(m) == "/devices/d1/modules/m%231/twin");
  CHECK(methods_address(d) == "/devices/d%201/methods/devicebound");
  CHECK(device_resource_uri("myhub.azure-devices.net", m) ==
        "myhub.azure-devices.net/devices/d1/modules/m%231");
  CHECK(kind_name(address_kind::eventhub_consumer) == "eventhub_consumer");
  CHECK(kind_name(address_kind::telemetry) == "telemetry");
}

TEST_CASE("SASL PLAIN user names (doc §2.3)") {
  CHECK(sasl_policy_user("iothubowner", "myhub") == "iothubowner@sas.root.myhub");
  CHECK(sasl_device_user({"d1", ""}, "myhub") == "d1@sas.myhub");
  CHECK(sasl_device_user({"d1", "m1"}, "myhub") == "d1/modules/m1@sas.myhub");
  auto u = parse_sasl_user("iothubowner@sas.root.myhub");
  CHECK(u->policy == "iothubowner");
  CHECK(u->hub == "myhub");
  CHECK(u->identity.device_id.empty());
  u = parse_sasl_user("d%2A1/modules/m1@sas.myhub");
  CHECK(u->identity == device_identity{"d*1", "m1"});
  CHECK(u->policy.empty());
  CHECK(*parse_sasl_user(sasl_device_user({"d*1", "m#1"}, "h")) ==
        sasl_user{"h", "", device_identity{"d*1", "m#1"}});
  std::string why;
  CHECK(parse_sasl_user("d1", &why).error() == errc::invalid_value);
  CHECK(why.find("no '@'") != std::string::npos);
  CHECK(parse_sasl_user("d1@myhub").error() == errc::invalid_value);
  CHECK(parse_sasl_user("@sas.root.h").error() == errc::invalid_value);
  CHECK(parse_sasl_user("d1@sas.").error() == errc::invalid_value);
  CHECK(parse_sasl_user("d1/modules/@sas.h").error() == errc::invalid_value);
  CHECK(parse_sasl_user("d+1@sas.h").error() == errc::invalid_value);
  CHECK(parse_sasl_user("d%zz@sas.h").error() == errc::invalid_value);
}
