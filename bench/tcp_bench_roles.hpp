// The roles of bench_tcp and bench_broker, each run in a process of its own.
// bench_tcp (workload 3): the receiver listens on 127.0.0.1 (port 0), prints `port P` and
// waits for one connection; the sender connects to it and sends the reference message N
// times. Ours in tcp_bench.cpp, Qpid Proton C++ in proton_tcp.cpp. Both print one
// `result key=value ...` line at the end (see tcp_bench.cpp for the keys) and exit 0, or
// print what went wrong on stderr and exit 1. bench_broker's client is at the end.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace amqp::bench {

struct tcp_role_args {
  bool presettled = false;
  std::uint64_t messages = 100'000;
  std::uint16_t port = 0;      // sender: the receiver's port
  std::uint32_t credit = 1000; // receiver: granted at attach, topped up to it below half
  std::uint32_t window = 2000; // sender: messages in flight at most (sent, no outcome yet)
  double timeout_s = 120;      // the process gives up (exit 1) after this long
  std::vector<char> message;   // sender: the encoded reference message
};

// The reference message's creation-time, checked by every receiver.
inline constexpr std::int64_t reference_creation_time = 1700000000000;

int proton_tcp_receiver(const tcp_role_args& a);
int proton_tcp_sender(const tcp_role_args& a);

// bench_broker's client (proton_broker_client.cpp): one Qpid Proton C++ connection to a
// broker on 127.0.0.1:port with a sending and a receiving link on the same address; sends the
// reference message N times and receives it N times, concurrently.
struct broker_client_args {
  bool presettled = false;
  std::uint64_t messages = 100'000;
  std::uint16_t port = 0;
  std::string address = "bench";
  std::uint32_t credit = 1000;  // the receiver's credit window
  std::uint32_t backlog = 5000; // sent and not yet received at most (keeps the queue short)
  bool sasl = true;             // SASL ANONYMOUS (false: no SASL layer)
  double timeout_s = 120;
  std::vector<char> message; // the encoded reference message
};

int proton_broker_client(const broker_client_args& a);

} // namespace amqp::bench
