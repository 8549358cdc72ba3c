// A device receives cloud-to-device messages and completes them (the hub then drops them and,
// when the sender asked, sends it positive feedback).
//
//   device_c2d_receive CONNECTION_STRING [CA_FILE [COUNT]]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "amqp/iothub/device_client.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: device_c2d_receive CONNECTION_STRING [CA_FILE [COUNT]]\n");
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
  const int count = argc > 3 ? std::atoi(argv[3]) : 1;
  auto device = amqp::iothub::blocking_device_client::connect(*endpoint, {}, &why);
  if (!device) {
    std::fprintf(stderr, "cannot connect: %s\n", why.c_str());
    return 1;
  }
  for (int i = 0; i < count; ++i) {
    auto m = device->receive(std::chrono::seconds(30));
    if (!m) {
      std::fprintf(stderr, "no message: %s\n", m.error().message().c_str());
      return 1;
    }
    std::printf("received: %s\n", m->body_text().value_or("(not text)").c_str());
    if (!device->complete(*m)) {
      std::fprintf(stderr, "complete failed: %s\n", device->last_error().c_str());
      return 1;
    }
  }
  return device->close() ? 0 : 1;
}
