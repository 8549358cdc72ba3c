// A small device (no event loop, no Asio; every allocation from a fixed buffer) logs in with
// CBS over TLS and sends one telemetry message: lite_device over tls_channel.
//
//   lite_device_send HOST PORT HUB_HOST DEVICE_ID KEY [CA_FILE]
//
// HOST and PORT are dialed (a local emulator: localhost and its AMQPS port); HUB_HOST is the
// connection string's HostName.
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory_resource>
#include <string>

#include "amqp/iothub/lite_device.hpp"
#include "amqp/iothub/tls_channel.hpp"

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: lite_device_send HOST PORT HUB_HOST DEVICE_ID KEY [CA_FILE]\n");
    return 2;
  }
  amqp::iothub::tls_channel_options co;
  co.host = argv[1];
  co.port = static_cast<std::uint16_t>(std::atoi(argv[2]));
  co.ca_file = argc > 6 ? argv[6] : "";
  std::string why;
  auto channel = amqp::iothub::tls_channel::connect(co, &why);
  if (!channel) {
    std::fprintf(stderr, "cannot connect: %s\n", why.c_str());
    return 1;
  }
  // The engine and the client allocate from this buffer only.
  static std::array<std::byte, 32 * 1024> memory;
  std::pmr::monotonic_buffer_resource arena(memory.data(), memory.size(),
                                            std::pmr::null_memory_resource());
  amqp::iothub::lite_device_options o;
  o.hub_host = argv[3];
  o.identity.device_id = argv[4];
  o.key = argv[5];
  o.memory = &arena;
  o.max_frame_size = 4096;
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::system_clock::now().time_since_epoch());
  auto device = amqp::iothub::lite_device::connect(**channel, o,
                                                   static_cast<std::uint64_t>(now.count()), &why);
  if (!device) {
    std::fprintf(stderr, "cannot log in: %s\n", why.c_str());
    return 1;
  }
  const amqp::value body[1] = {amqp::value(std::string_view(R"({"temperature": 21.5})"))};
  amqp::message_parts m;
  m.body = amqp::body_kind::amqp_value;
  m.body_sections = body;
  auto outcome = device->send_event(m, &why);
  if (!outcome) {
    std::fprintf(stderr, "send failed: %s\n", why.c_str());
    return 1;
  }
  std::printf("%s\n", std::string(amqp::name(*outcome)).c_str());
  return device->close() && *outcome == amqp::state_kind::accepted ? 0 : 1;
}
