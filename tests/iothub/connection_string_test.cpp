// Tests of connection strings (iothub/src/connection_string.cpp).
#include <array>
#include <string>

#include <doctest/doctest.h>

#include "amqp/iothub/connection_string.hpp"

using namespace amqp::iothub;

namespace {

constexpr std::string_view key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk=";
const std::string token = "SharedAccessSignature sr=h%2Fdevices%2Fd1"
                          "&sig=sqF%2B8Hk3WVvp%2BhgnyXZP2BlsrIbU3s8sZyxXsmWTdR8%3D&se=1700000000";

connection_string parse(std::string_view text) {
  std::string why;
  auto cs = parse_connection_string(text, &why);
  REQUIRE_MESSAGE(cs.has_value(), why);
  return *cs;
}

} // namespace

TEST_CASE("parse_connection_string: keys without regard to case, values with '='") {
  const auto cs =
      parse("hostname=myhub.azure-devices.net;DEVICEID=d1;SharedAccessKey=" + std::string(key));
  CHECK(cs.host_name == "myhub.azure-devices.net");
  CHECK(cs.device_id == "d1");
  CHECK(cs.shared_access_key == key);
  CHECK(*validate(cs) == connection_string_kind::device);
  CHECK(to_string(cs) ==
        "HostName=myhub.azure-devices.net;DeviceId=d1;SharedAccessKey=" + std::string(key));
}

TEST_CASE("parse_connection_string: every field, unknown keys kept, round trip") {
  const auto cs = parse(";HostName=h:5671;GatewayHostName=gw;DeviceId=d1;ModuleId=m1;;"
                        "SharedAccessKeyName=p;SharedAccessKey=k==;SharedAccessSignature=s;"
                        "Endpoint=sb://ns/;EntityPath=hub;x509=TRUE;UseDevelopmentEmulator=false;"
                        "Custom=a=b;Other=1;");
  CHECK(cs.host_name == "h:5671");
  CHECK(cs.gateway_host_name == "gw");
  CHECK(cs.module_id == "m1");
  CHECK(cs.shared_access_key_name == "p");
  CHECK(cs.shared_access_key == "k==");
  CHECK(cs.shared_access_signature == "s");
  CHECK(cs.endpoint == "sb://ns/");
  CHECK(cs.entity_path == "hub");
  CHECK(cs.x509);
  CHECK_FALSE(cs.use_development_emulator);
  REQUIRE(cs.other.size() == 2);
  CHECK(cs.other[0] == std::pair<std::string, std::string>{"Custom", "a=b"});
  CHECK(cs.other[1] == std::pair<std::string, std::string>{"Other", "1"});
  CHECK(parse(to_string(cs)) == cs);
  CHECK(parse("UseDevelopmentEmulator=true").use_development_emulator);
  CHECK(parse("").host_name.empty());
}

TEST_CASE("parse_connection_string: syntax errors say what is wrong") {
  struct bad {
    std::string text;
    errc code;
    std::string_view says;
  };
  const std::array<bad, 7> cases = {{
      {"HostName=h;DeviceId", errc::invalid_value, "field 'DeviceId' has no '='"},
      {"HostName=h;=v", errc::invalid_value, "empty key"},
      {"HostName=", errc::invalid_value, "HostName is empty"},
      {"HostName=a;hostname=b", errc::conflict, "HostName appears twice"},
      {"X=1;x=2", errc::conflict, "x appears twice"},
      {"x509=yes", errc::invalid_value, "x509 must be true or false, not 'yes'"},
      {"UseDevelopmentEmulator=1", errc::invalid_value, "UseDevelopmentEmulator must be true"},
  }};
  for (const bad& b : cases) {
    CAPTURE(b.text);
    std::string why;
    auto r = parse_connection_string(b.text, &why);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == b.code);
    CHECK_MESSAGE(why.find(b.says) != std::string::npos, why);
  }
}

TEST_CASE("parse_connection_string: the length limit") {
  std::string text = "HostName=" + std::string(max_connection_string_length - 9, 'h');
  CHECK(parse_connection_string(text).has_value());
  text += 'h';
  std::string why;
  CHECK(parse_connection_string(text, &why).error() == errc::limit_exceeded);
  CHECK(why == "the connection string is longer than 4096 characters");
}

TEST_CASE("validate: the kinds") {
  const std::string k(key);
  CHECK(*validate(parse("HostName=h;DeviceId=d;SharedAccessKey=" + k)) ==
        connection_string_kind::device);
  CHECK(*validate(parse("HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=" + k)) ==
        connection_string_kind::module);
  CHECK(*validate(parse("HostName=h;DeviceId=d;x509=true")) == connection_string_kind::device);
  CHECK(*validate(parse("HostName=h;DeviceId=d;SharedAccessSignature=" + token)) ==
        connection_string_kind::device);
  CHECK(*validate(parse("HostName=h;DeviceId=d;SharedAccessKeyName=p;SharedAccessKey=" + k)) ==
        connection_string_kind::device);
  CHECK(*validate(parse("HostName=localhost:5671;SharedAccessKeyName=service;SharedAccessKey=" + k +
                        ";UseDevelopmentEmulator=true")) == connection_string_kind::service);
  CHECK(*validate(parse("Endpoint=sb://iothub-ns-h-1.servicebus.windows.net/;"
                        "SharedAccessKeyName=service;SharedAccessKey=" +
                        k + ";EntityPath=myhub")) == connection_string_kind::event_hubs);
  CHECK(*validate(parse("Endpoint=sb://localhost:5671;SharedAccessSignature=" + token)) ==
        connection_string_kind::event_hubs);
  CHECK(parse_and_validate("HostName=h;DeviceId=d;x509=true").has_value());
}

TEST_CASE("validate: clear errors for every wrong combination") {
  const std::string k(key);
  struct bad {
    std::string text;
    errc code;
    std::string_view says;
  };
  const std::array<bad, 24> cases = {{
      {"DeviceId=d;SharedAccessKey=" + k, errc::missing_field, "HostName is missing"},
      {"HostName=h;DeviceId=d", errc::missing_field, "SharedAccessKey is missing"},
      {"HostName=h;SharedAccessKey=" + k, errc::missing_field, "DeviceId is missing"},
      {"HostName=h;SharedAccessKeyName=p", errc::missing_field, "SharedAccessKey is missing"},
      {"HostName=h;ModuleId=m;SharedAccessKey=" + k, errc::missing_field,
       "ModuleId without DeviceId"},
      {"HostName=h;DeviceId=d;SharedAccessKey=not*base64", errc::invalid_value,
       "SharedAccessKey is not base64"},
      {"HostName=h;DeviceId=d;SharedAccessKey=" + k + ";SharedAccessSignature=" + token,
       errc::conflict, "both SharedAccessKey and SharedAccessSignature"},
      {"HostName=h;DeviceId=d;SharedAccessSignature=sig", errc::invalid_value,
       "SharedAccessSignature is not a SAS token"},
      {"HostName=h;DeviceId=d;x509=true;SharedAccessKey=" + k, errc::conflict,
       "both x509 and SharedAccessKey"},
      {"HostName=h;DeviceId=d;x509=true;SharedAccessSignature=" + token, errc::conflict,
       "both x509 and SharedAccessSignature"},
      {"HostName=h;SharedAccessKeyName=p;x509=true;SharedAccessKey=" + k, errc::conflict,
       "x509 without DeviceId"},
      {"HostName=h;DeviceId=d+1;SharedAccessKey=" + k, errc::invalid_value,
       "character not allowed"},
      {"HostName=h;DeviceId=d;ModuleId=m/1;SharedAccessKey=" + k, errc::invalid_value,
       "character not allowed"},
      {"HostName=h;DeviceId=" + std::string(129, 'd') + ";SharedAccessKey=" + k,
       errc::limit_exceeded, "longer than 128"},
      {"HostName=h:99999;DeviceId=d;SharedAccessKey=" + k, errc::invalid_value,
       "HostName is not host[:port]"},
      {"HostName=h/x;DeviceId=d;SharedAccessKey=" + k, errc::invalid_value,
       "HostName is not host[:port]"},
      {"HostName=h;GatewayHostName=g:0;DeviceId=d;SharedAccessKey=" + k, errc::invalid_value,
       "GatewayHostName is not host[:port]"},
      {"HostName=h;EntityPath=e;SharedAccessKeyName=p;SharedAccessKey=" + k, errc::conflict,
       "EntityPath without Endpoint"},
      {"Endpoint=sb://ns/;HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + k, errc::conflict,
       "both Endpoint and HostName"},
      {"Endpoint=sb://ns/;DeviceId=d;SharedAccessKeyName=p;SharedAccessKey=" + k, errc::conflict,
       "no DeviceId"},
      {"Endpoint=amqps://ns/;SharedAccessKeyName=p;SharedAccessKey=" + k, errc::invalid_value,
       "Endpoint must start with sb://"},
      {"Endpoint=sb://n s/;SharedAccessKeyName=p;SharedAccessKey=" + k, errc::invalid_value,
       "Endpoint is not host[:port]"},
      {"Endpoint=sb://ns/;SharedAccessKey=" + k, errc::missing_field,
       "SharedAccessKeyName is missing"},
      {"Endpoint=sb://ns/;SharedAccessKeyName=p", errc::missing_field,
       "SharedAccessKey is missing"},
  }};
  for (const bad& b : cases) {
    CAPTURE(b.text);
    std::string why;
    auto cs = parse(b.text);
    auto r = validate(cs, &why);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == b.code);
    CHECK_MESSAGE(why.find(b.says) != std::string::npos, why);
    CHECK(parse_and_validate(b.text).error() == b.code);
  }
}

TEST_CASE("hub_name and split_host_port") {
  CHECK(hub_name("myhub.azure-devices.net") == "myhub");
  CHECK(hub_name("myhub.azure-devices.net:5671") == "myhub");
  CHECK(hub_name("localhost:5671") == "localhost");
  CHECK(hub_name("localhost") == "localhost");
  CHECK(hub_name("") == "");

  auto hp = split_host_port("localhost:5671");
  CHECK(hp->host == "localhost");
  CHECK(hp->port == 5671);
  hp = split_host_port("myhub.azure-devices.net");
  CHECK(hp->host == "myhub.azure-devices.net");
  CHECK_FALSE(hp->port.has_value());
  hp = split_host_port("[::1]:5671");
  CHECK(hp->host == "::1");
  CHECK(hp->port == 5671);
  CHECK(split_host_port("[fe80::1]")->host == "fe80::1");
  CHECK(split_host_port("h:65535")->port == 65535);

  std::string why;
  CHECK(split_host_port("", &why).error() == errc::invalid_value);
  CHECK(why == "the host name is empty");
  CHECK(split_host_port(":5671").error() == errc::invalid_value);
  CHECK(split_host_port("h:0", &why).error() == errc::invalid_value);
  CHECK(why.find("1 to 65535") != std::string::npos);
  CHECK(split_host_port("h:65536").error() == errc::invalid_value);
  CHECK(split_host_port("h:").error() == errc::invalid_value);
  CHECK(split_host_port("h:+1").error() == errc::invalid_value);
  CHECK(split_host_port("[::1", &why).error() == errc::invalid_value);
  CHECK(why.find("unclosed") != std::string::npos);
  CHECK(split_host_port("[::1]x").error() == errc::invalid_value);
  CHECK(split_host_port("[::g%]").error() == errc::invalid_value);
  CHECK(split_host_port("h h").error() == errc::invalid_value);
  CHECK(split_host_port("a:1:2").error() == errc::invalid_value);
}
