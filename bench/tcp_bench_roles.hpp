// The roles of bench_tcp and bench_broker, each run in a process of its own.
// bench_tcp (workload 3): the receiver listens on 127.0.0.1 (port 0), prints `port P` and
// waits for one connection; the sender connects to it and sends the reference message N
// times. Ours in tcp_bench.cpp, Qpid Proton C++ in proton_tcp.cpp. Both print one
// `result key=value ...` line at the end (see tcp_bench.cpp for the keys) and exit 0, or
// print what went wrong on stderr and exit 1. bench_broker's client is at the end.
#pragma once

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "tcp_bench_common.hpp"

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

// What a bench_tcp receiver counts, and its result line.
struct receiver_tally {
  std::uint64_t received = 0;
  std::uint64_t bad = 0;            // without the reference creation-time
  std::uint64_t bad_settlement = 0; // settled otherwise than the variant asks (or aborted)
  double first = 0;                 // now_s() at the first message
  double last = 0;                  // ... and at the last (the N-th)

  void print_result() const {
    std::printf("result received=%" PRIu64 " bad=%" PRIu64 " bad_settlement=%" PRIu64
                " first=%.9f last=%.9f\n",
                received, bad, bad_settlement, first, last);
    std::fflush(stdout);
  }
};

// What a bench_tcp sender counts, and its result line (with the process's send system calls).
struct sender_tally {
  std::uint64_t sent = 0;
  std::uint64_t outcomes = 0; // deliveries settled (presettled: sent)
  std::uint64_t accepted = 0;
  double first = 0; // now_s() at the first send
  double last = 0;  // ... and at the last outcome

  // `batches`: our sender's write batches (-1: Proton's, not known).
  void print_result(std::int64_t batches) const {
    const auto& sc = syscalls();
    std::printf("result sent=%" PRIu64 " outcomes=%" PRIu64 " accepted=%" PRIu64
                " first=%.9f last=%.9f batches=%" PRId64 " send_syscalls=%" PRIu64
                " send_partial=%" PRIu64 " send_failed=%" PRIu64 " send_bytes=%" PRIu64
                " send_max=%" PRIu64 " write_syscalls=%" PRIu64 "\n",
                sent, outcomes, accepted, first, last, batches, sc.send.load(),
                sc.send_partial.load(), sc.send_failed.load(), sc.send_bytes.load(),
                sc.send_max.load(), sc.write.load());
    std::fflush(stdout);
  }
};

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
