// bench_broker's client: Qpid Proton C++ (proton::container, one thread), one connection to
// the broker at 127.0.0.1:port, a receiving link from `address` (credit_window(credit),
// auto-accept) and a sending link to it, on one session.
//
// Once both links are open (the receiver first, so the queue has its consumer), the sender
// sends while it has credit, at most `backlog` messages ahead of the receiver (so the queue
// stays short), and (unsettled) counts on_tracker_accept. The message is
// reference_message.bin decoded once into a proton::message (Proton C++ encodes it again
// for each send: 512 bytes, message annotations in key order). on_message reads the
// creation-time of each message. Variants: presettled (both links AT_MOST_ONCE) and
// unsettled (AT_LEAST_ONCE: the broker accepts what it takes, and we accept what it delivers,
// if it sends it unsettled; Proton's example broker always delivers presettled).
//
// Result line: `result sent= received= accepted= bad= settled_received= first= last_received=
// last_accepted=`, times on the steady clock; then the connection is closed.
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <proton/connection.hpp>
#include <proton/connection_options.hpp>
#include <proton/container.hpp>
#include <proton/delivery.hpp>
#include <proton/delivery_mode.hpp>
#include <proton/error_condition.hpp>
#include <proton/message.hpp>
#include <proton/messaging_handler.hpp>
#include <proton/receiver.hpp>
#include <proton/receiver_options.hpp>
#include <proton/sender.hpp>
#include <proton/sender_options.hpp>
#include <proton/timestamp.hpp>
#include <proton/tracker.hpp>
#include <proton/transport.hpp>

#include "tcp_bench_common.hpp"
#include "tcp_bench_roles.hpp"

namespace amqp::bench {
namespace {

std::string describe(const proton::error_condition& e) {
  return e ? e.name() + ": " + e.description() : std::string("no error condition");
}

class client_handler final : public proton::messaging_handler {
public:
  client_handler(const broker_client_args& a, proton::message m) : a_(a), msg_(std::move(m)) {}

  void on_container_start(proton::container& c) override {
    const std::string url = "amqp://127.0.0.1:" + std::to_string(a_.port);
    proton::connection_options o;
    o.sasl_enabled(a_.sasl);
    if (a_.sasl) {
      o.sasl_allowed_mechs("ANONYMOUS");
    }
    c.connect(url, o);
  }
  void on_connection_open(proton::connection& c) override {
    const auto mode =
        a_.presettled ? proton::delivery_mode::AT_MOST_ONCE : proton::delivery_mode::AT_LEAST_ONCE;
    c.open_receiver(a_.address, proton::receiver_options()
                                    .delivery_mode(mode)
                                    .credit_window(static_cast<int>(a_.credit))
                                    .auto_accept(true));
    c.open_sender(a_.address, proton::sender_options().delivery_mode(mode));
  }
  void on_receiver_open(proton::receiver&) override {
    receiver_open_ = true;
    send_more();
  }
  void on_sender_open(proton::sender& s) override {
    sender_ = s;
    send_more();
  }
  void on_sendable(proton::sender& s) override {
    sender_ = s;
    send_more();
  }
  void on_message(proton::delivery& d, proton::message& m) override {
    ++received_;
    if (m.creation_time().milliseconds() != reference_creation_time) {
      ++bad_;
    }
    if (d.settled()) {
      ++settled_received_;
    }
    if (received_ == a_.messages) {
      last_received_ = now_s();
      maybe_finish(d.connection());
      return;
    }
    send_more();
  }
  void on_tracker_accept(proton::tracker& t) override {
    ++accepted_;
    if (accepted_ == a_.messages) {
      last_accepted_ = now_s();
      maybe_finish(t.connection());
    }
  }
  void on_tracker_reject(proton::tracker&) override {
    role_fail("client", "a message was rejected");
  }
  void on_tracker_release(proton::tracker&) override {
    role_fail("client", "a message was released");
  }
  void on_transport_error(proton::transport& t) override {
    role_fail("client", "transport error: " + describe(t.error()));
  }
  void on_error(const proton::error_condition& e) override {
    role_fail("client", "error: " + describe(e));
  }
  void on_transport_close(proton::transport& t) override {
    if (!finished_) {
      role_fail("client", "connection closed after " + std::to_string(received_) + " messages");
    }
    t.connection().container().stop();
  }

  void print_result() const {
    std::printf("result sent=%" PRIu64 " received=%" PRIu64 " accepted=%" PRIu64 " bad=%" PRIu64
                " settled_received=%" PRIu64 " first=%.9f last_received=%.9f"
                " last_accepted=%.9f\n",
                sent_, received_, accepted_, bad_, settled_received_, first_, last_received_,
                last_accepted_);
    std::fflush(stdout);
  }

private:
  void send_more() {
    if (!receiver_open_ || !sender_) {
      return;
    }
    proton::sender& s = *sender_;
    while (sent_ < a_.messages && s.credit() > 0 && sent_ - received_ < a_.backlog) {
      if (sent_ == 0) {
        first_ = now_s();
      }
      s.send(msg_);
      ++sent_;
    }
  }
  void maybe_finish(proton::connection c) {
    if (received_ == a_.messages && (a_.presettled || accepted_ == a_.messages)) {
      finished_ = true;
      c.close();
    }
  }

  const broker_client_args& a_;
  proton::message msg_;
  std::optional<proton::sender> sender_;
  bool receiver_open_ = false;
  bool finished_ = false;
  std::uint64_t sent_ = 0;
  std::uint64_t received_ = 0;
  std::uint64_t accepted_ = 0;
  std::uint64_t bad_ = 0;
  std::uint64_t settled_received_ = 0;
  double first_ = 0;
  double last_received_ = 0;
  double last_accepted_ = 0;
};

} // namespace

int proton_broker_client(const broker_client_args& a) {
  // Not container::schedule(): a scheduled task keeps container::run() from returning.
  arm_watchdog(a.timeout_s, "bench_broker: client: timed out\n");
  try {
    proton::message m;
    m.decode(a.message);
    client_handler h(a, m);
    proton::container c(h, "bench-broker-client");
    c.run();
    h.print_result();
    return 0;
  } catch (const std::exception& e) {
    role_fail("client", e.what());
  }
}

} // namespace amqp::bench
