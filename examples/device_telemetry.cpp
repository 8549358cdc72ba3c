// A device sends telemetry with properties and waits for the hub's outcome of each message.
//
//   device_telemetry CONNECTION_STRING [CA_FILE]
//
// CONNECTION_STRING: a device connection string (HostName=...;DeviceId=...;SharedAccessKey=...).
// CA_FILE: a CA to trust instead of the system's (a local iothub-emulator's ca.pem).
#include <cstdio>
#include <span>
#include <string>

#include "amqp/iothub/device_client.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: device_telemetry CONNECTION_STRING [CA_FILE]\n");
    return 2;
  }
  std::string why;
  auto endpoint = amqp::iothub::endpoint_from(argv[1], amqp::iothub::hub_protocol::amqps, &why);
  if (!endpoint) {
    std::fprintf(stderr, "bad connection string: %s\n", why.c_str());
    return 1;
  }
  if (argc > 2) {
    endpoint->options.tls.ca_file = argv[2];
  }
  auto device = amqp::iothub::blocking_device_client::connect(*endpoint, {}, &why);
  if (!device) {
    std::fprintf(stderr, "cannot connect: %s\n", why.c_str());
    return 1;
  }
  for (int i = 0; i < 3; ++i) {
    // JSON as bytes (a data section), as the SDKs send telemetry.
    const std::string json = R"({"temperature": 21.5, "humidity": 44})";
    amqp::message m(std::as_bytes(std::span(json)));
    m.properties.message_id = amqp::owned_value("reading-" + std::to_string(i));
    m.properties.content_type = "application/json";
    m.properties.content_encoding = "utf-8";
    m.application_properties.set("sensorType", amqp::owned_value("thermostat"));
    auto outcome = device->send_event(m);
    if (!outcome) {
      std::fprintf(stderr, "send failed: %s\n", device->last_error().c_str());
      return 1;
    }
    std::printf("reading-%d: %s\n", i, std::string(amqp::name(outcome->state)).c_str());
  }
  return device->close() ? 0 : 1;
}
