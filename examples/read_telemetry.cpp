// Reads device telemetry from the built-in endpoint with the service connection string: the
// hub redirects the reader to its Event Hubs-compatible endpoint (followed here), and a filter
// starts every partition at the events enqueued in the last hour.
//
//   read_telemetry SERVICE_CONNECTION_STRING [CA_FILE [COUNT]]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "amqp/iothub/telemetry_reader.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: read_telemetry SERVICE_CONNECTION_STRING [CA_FILE [COUNT]]\n");
    return 2;
  }
  amqp::iothub::telemetry_reader_options o;
  if (argc > 2) {
    o.tls.ca_file = argv[2];
  }
  const std::size_t count = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 1;
  std::string why;
  auto reader = amqp::iothub::blocking_telemetry_reader::connect(argv[1], o, &why);
  if (!reader) {
    std::fprintf(stderr, "cannot connect: %s\n", why.c_str());
    return 1;
  }
  const auto hour_ago = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::system_clock::now().time_since_epoch() - std::chrono::hours(1));
  if (!reader->open_all(
          amqp::iothub::event_position::from_enqueued_time(amqp::timestamp{hour_ago.count()}))) {
    std::fprintf(stderr, "cannot read: %s\n", reader->last_error().c_str());
    return 1;
  }
  for (std::size_t i = 0; i < count; ++i) {
    auto e = reader->receive(std::chrono::seconds(30));
    if (!e) {
      std::fprintf(stderr, "no event: %s\n", reader->last_error().c_str());
      return 1;
    }
    std::printf("partition %s seq %lld from %s: %s\n", e->partition.c_str(),
                static_cast<long long>(e->sequence_number), e->device_id.value_or("?").c_str(),
                e->message.body_text().value_or("(not text)").c_str());
  }
  return reader->close() ? 0 : 1;
}
