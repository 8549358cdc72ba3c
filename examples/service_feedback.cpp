// The service receives the feedback of its cloud-to-device messages: which were completed,
// rejected, expired, or delivered too many times.
//
//   service_feedback SERVICE_CONNECTION_STRING [CA_FILE [COUNT]]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "amqp/iothub/feedback.hpp"
#include "amqp/iothub/service_client.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: service_feedback SERVICE_CONNECTION_STRING [CA_FILE [COUNT]]\n");
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
  const std::size_t count = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 1;
  auto service = amqp::iothub::blocking_service_client::connect(*endpoint, {}, &why);
  if (!service) {
    std::fprintf(stderr, "cannot connect: %s\n", why.c_str());
    return 1;
  }
  std::size_t seen = 0;
  while (seen < count) {
    auto records = service->receive_feedback(std::chrono::seconds(60));
    if (!records) {
      std::fprintf(stderr, "no feedback: %s\n", records.error().message().c_str());
      return 1;
    }
    for (const auto& r : *records) {
      ++seen;
      std::printf("%s %s %s\n", r.original_message_id.c_str(), r.device_id.c_str(),
                  std::string(amqp::iothub::to_string(r.status_code)).c_str());
    }
  }
  return service->close() ? 0 : 1;
}
