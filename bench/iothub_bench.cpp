// bench_iothub: the IoT Hub clients against iothub-emulator on 127.0.0.1.
//
// send_one: iothub_send_one (lite_device over tls_channel) connects one device with TLS and
// CBS and sends one 1 KB telemetry message; it counts its heap (ours apart from OpenSSL's)
// and the bytes on the wire; its .text is read from the ELF file. Microsoft's published
// figures for the C SDK's uAMQP transport doing the same are printed beside them
// (uamqp-c.*, "published": they are not measured here).
//   ours.iothub.send_one.allocs, .peak_heap, .tls_allocs, .tls_peak_heap, .wire_bytes,
//   .amqp_bytes, .text
// With --rounds R the program runs R times and the medians are printed.
//
// Usage: bench_iothub [--quick] [--rounds R] [--emulator PATH] [--send-one PATH]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_rounds.hpp"
#include "elf_size.hpp"
#include "support/child_process.hpp"

namespace amqp::bench {
namespace {

using test::child;
using test::die;
using test::spawn;
using test::stop_child;
using test::wait_exit;
using test::wait_for_line;

struct options {
  int rounds = 5;
  std::string emulator = AMQP_BENCH_EMULATOR;
  std::string send_one = AMQP_BENCH_SEND_ONE;
};

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: bench_iothub [--quick] [--rounds R] [--emulator PATH] "
                       "[--send-one PATH]\n");
  std::exit(2);
}

struct emulator {
  child proc;
  std::uint16_t port = 0;
  std::string ca;
  std::string hub_host;
  std::string device_key;
};

emulator start_emulator(const options& o) {
  emulator e;
  e.proc = spawn({o.emulator, "--state", ":memory:", "--amqps", "127.0.0.1:0", "--wss", "none",
                  "--device", "bench-device"},
                 "iothub-emulator");
  const std::string prefix = "listening amqps://127.0.0.1:";
  const auto listening = wait_for_line(e.proc, prefix, 60);
  const auto hub = wait_for_line(e.proc, "hub ", 60);
  if (!listening || !hub) {
    die("iothub-emulator did not start (" + o.emulator + ")");
  }
  e.port = static_cast<std::uint16_t>(std::atoi(listening->c_str() + prefix.size()));
  const std::string marker = "connection strings in ";
  std::ifstream f(hub->substr(hub->find(marker) + marker.size()));
  const auto j = nlohmann::json::parse(f, nullptr, false);
  if (j.is_discarded()) {
    die("cannot read connection-strings.json");
  }
  e.ca = j.at("ca").get<std::string>();
  e.hub_host = j.at("hostname").get<std::string>();
  const std::string cs = j.at("devices").at("bench-device").get<std::string>();
  const std::string key = "SharedAccessKey=";
  const auto k = cs.find(key) + key.size();
  e.device_key = cs.substr(k, cs.find(';', k) - k);
  return e;
}

// One run of iothub_send_one: its `name value` lines.
std::map<std::string, double> send_one(const options& o, const emulator& e) {
  child c = spawn({o.send_one, "127.0.0.1", std::to_string(e.port), e.ca, e.hub_host,
                   "bench-device", e.device_key},
                  "iothub_send_one");
  const auto status = wait_exit(c, 60);
  if (!status || *status != 0) {
    die("iothub_send_one failed: " + c.output);
  }
  std::map<std::string, double> out;
  std::size_t at = 0;
  while (at < c.output.size()) {
    const auto eol = c.output.find('\n', at);
    const std::string line = c.output.substr(at, eol - at);
    at = eol == std::string::npos ? c.output.size() : eol + 1;
    const auto space = line.find(' ');
    if (space != std::string::npos && line.compare(0, space, "outcome") != 0) {
      out[line.substr(0, space)] = std::strtod(line.c_str() + space + 1, nullptr);
    }
  }
  return out;
}

int run(const options& o) {
  test::install_signal_handlers();
  emulator e = start_emulator(o);
  std::map<std::string, std::vector<double>> figures;
  for (int r = 0; r < o.rounds; ++r) {
    for (const auto& [k, v] : send_one(o, e)) {
      figures[k].push_back(v);
    }
  }
  stop_child(e.proc, SIGTERM, 30);
  const auto text = read_elf(o.send_one, [](const std::string& why) { die(why); }).text;
  auto print = [&](const char* name, const char* key, const char* unit) {
    std::printf("ours.iothub.send_one.%s %.0f %s\n", name, median(figures.at(key)), unit);
  };
  std::printf("send_one: %d runs (medians)\n", o.rounds);
  print("allocs", "allocs", "allocs");
  print("peak_heap", "peak_heap", "bytes");
  print("tls_allocs", "tls_allocs", "allocs");
  print("tls_peak_heap", "tls_peak_heap", "bytes");
  print("wire_bytes", "wire_bytes", "bytes");
  print("amqp_bytes", "amqp_bytes", "bytes");
  std::printf("ours.iothub.send_one.text %llu bytes\n", static_cast<unsigned long long>(text));
  // The C SDK's published figures for the same (azure-iot-sdk-c, uAMQP transport): quoted,
  // not measured here.
  std::printf("uamqp-c.iothub.send_one.allocs 1676 allocs (published)\n");
  std::printf("uamqp-c.iothub.send_one.peak_heap 27000 bytes (published)\n");
  std::printf("uamqp-c.iothub.send_one.wire_bytes 1720 bytes (published)\n");
  std::printf("uamqp-c.iothub.send_one.text 397000 bytes (published)\n");
  return 0;
}

} // namespace
} // namespace amqp::bench

int main(int argc, char** argv) {
  using namespace amqp::bench;
  amqp::test::fail_prefix = "bench_iothub";
  options o;
  for_each_arg(argc, argv, usage, [&](std::string_view a, auto& next) {
    if (a == "--quick") {
      o.rounds = 1;
    } else if (a == "--rounds") {
      o.rounds = std::max(1, std::atoi(next()));
    } else if (a == "--emulator") {
      o.emulator = next();
    } else if (a == "--send-one") {
      o.send_one = next();
    } else {
      return false;
    }
    return true;
  });
  return run(o);
}
