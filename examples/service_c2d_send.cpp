// The service sends a cloud-to-device message to a device, asking for full feedback, and
// prints the hub's outcome and the message-id the feedback will name.
//
//   service_c2d_send SERVICE_CONNECTION_STRING DEVICE_ID TEXT [CA_FILE]
#include <cstdio>
#include <string>

#include "amqp/iothub/service_client.hpp"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: service_c2d_send SERVICE_CONNECTION_STRING DEVICE_ID TEXT [CA_FILE]\n");
    return 2;
  }
  std::string why;
  auto endpoint = amqp::iothub::endpoint_from(argv[1], amqp::iothub::hub_protocol::amqps, &why);
  if (!endpoint) {
    std::fprintf(stderr, "bad connection string: %s\n", why.c_str());
    return 1;
  }
  if (argc > 4) {
    endpoint->options.tls.ca_file = argv[4];
  }
  auto service = amqp::iothub::blocking_service_client::connect(*endpoint, {}, &why);
  if (!service) {
    std::fprintf(stderr, "cannot connect: %s\n", why.c_str());
    return 1;
  }
  amqp::iothub::c2d_send_options o;
  o.ack = amqp::iothub::c2d_ack::full;
  auto outcome = service->send(argv[2], amqp::message(std::string_view(argv[3])), o);
  if (!outcome) {
    std::fprintf(stderr, "send failed: %s\n", service->last_error().c_str());
    return 1;
  }
  std::printf("%s %s\n", outcome->message_id.c_str(),
              std::string(amqp::name(outcome->state)).c_str());
  return service->close() && outcome->accepted() ? 0 : 1;
}
