// The Qpid Proton C++ anchor of bench_tcp (workload 3): the receiver and the sender written
// the way a Proton C++ application writes them, proton::container and
// proton::messaging_handler, one container thread each (container::run()).
//
//   receiver  container::listen("127.0.0.1:0"), no SASL; opens each incoming receiving link
//             with credit_window(credit) (Proton C++ then tops the credit up to the window
//             after every message) and auto-accept; on_message reads the creation-time of the
//             message Proton C++ has decoded. Stops its listener when the connection closes.
//   sender    container::open_sender("amqp://127.0.0.1:PORT/bench"), no SASL, delivery mode
//             AT_MOST_ONCE (presettled) or AT_LEAST_ONCE (unsettled); on_sendable sends while
//             the link has credit and fewer than `window` deliveries wait for their outcome;
//             on_tracker_accept counts outcomes (auto-settle). The message is
//             reference_message.bin decoded once into a proton::message: Proton C++ sends
//             message objects, so it encodes it again for every send (512 bytes too, the
//             message annotations in key order).
// Timing and result keys as in tcp_bench.cpp.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include <proton/connection.hpp>
#include <proton/connection_options.hpp>
#include <proton/container.hpp>
#include <proton/delivery.hpp>
#include <proton/delivery_mode.hpp>
#include <proton/error_condition.hpp>
#include <proton/listen_handler.hpp>
#include <proton/listener.hpp>
#include <proton/message.hpp>
#include <proton/messaging_handler.hpp>
#include <proton/receiver.hpp>
#include <proton/receiver_options.hpp>
#include <proton/sender.hpp>
#include <proton/sender_options.hpp>
#include <proton/timestamp.hpp>
#include <proton/tracker.hpp>
#include <proton/transport.hpp>
#include <proton/work_queue.hpp>

#include "tcp_bench_common.hpp"
#include "tcp_bench_roles.hpp"

namespace amqp::bench {
namespace {

std::string describe(const proton::error_condition& e) {
  return e ? e.name() + ": " + e.description() : std::string("no error condition");
}

// --- Receiver ---------------------------------------------------------------------------------

class receiver_handler final : public proton::messaging_handler {
public:
  explicit receiver_handler(const tcp_role_args& a) : a_(a) {}

  void on_receiver_open(proton::receiver& r) override {
    r.open(proton::receiver_options().credit_window(static_cast<int>(a_.credit)).auto_accept(true));
  }
  void on_message(proton::delivery& d, proton::message& m) override {
    const std::uint64_t i = t_.received++;
    if (i == 0) {
      t_.first = now_s();
    }
    if (m.creation_time().milliseconds() != reference_creation_time) {
      ++t_.bad;
    }
    if (d.settled() != a_.presettled) {
      ++t_.bad_settlement;
    }
    if (t_.received == a_.messages) {
      t_.last = now_s();
    }
  }
  void on_transport_close(proton::transport& t) override {
    if (listener_ != nullptr) {
      listener_->stop();
    }
    t.connection().container().stop();
  }
  void on_transport_error(proton::transport& t) override {
    role_fail("proton-cpp receiver", "transport error: " + describe(t.error()));
  }
  void on_error(const proton::error_condition& e) override {
    role_fail("proton-cpp receiver", "error: " + describe(e));
  }

  void set_listener(proton::listener* l) { listener_ = l; }
  void print_result() const { t_.print_result(); }

private:
  const tcp_role_args& a_;
  proton::listener* listener_ = nullptr;
  receiver_tally t_;
};

class port_printer final : public proton::listen_handler {
public:
  explicit port_printer(proton::messaging_handler& h) : h_(h) {}
  void on_open(proton::listener& l) override {
    std::printf("port %d\n", l.port());
    std::fflush(stdout);
  }
  proton::connection_options on_accept(proton::listener&) override {
    return proton::connection_options().handler(h_).sasl_enabled(false);
  }
  void on_error(proton::listener&, const std::string& what) override {
    role_fail("proton-cpp receiver", "listen: " + what);
  }

private:
  proton::messaging_handler& h_;
};

// --- Sender -----------------------------------------------------------------------------------

class sender_handler final : public proton::messaging_handler {
public:
  sender_handler(const tcp_role_args& a, proton::message m) : a_(a), msg_(std::move(m)) {}

  void on_container_start(proton::container& c) override {
    const std::string url = "amqp://127.0.0.1:" + std::to_string(a_.port) + "/bench";
    c.open_sender(url,
                  proton::sender_options().delivery_mode(
                      a_.presettled ? proton::delivery_mode::AT_MOST_ONCE
                                    : proton::delivery_mode::AT_LEAST_ONCE),
                  proton::connection_options().sasl_enabled(false));
  }
  void on_sendable(proton::sender& s) override { send_more(s); }
  void on_tracker_accept(proton::tracker& t) override {
    ++t_.outcomes;
    ++t_.accepted;
    if (t_.outcomes == a_.messages) {
      t_.last = now_s();
      t.connection().close();
      return;
    }
    proton::sender s = t.sender();
    send_more(s);
  }
  void on_tracker_reject(proton::tracker&) override {
    role_fail("proton-cpp sender", "message rejected");
  }
  void on_tracker_release(proton::tracker&) override {
    role_fail("proton-cpp sender", "message released");
  }
  void on_transport_error(proton::transport& t) override {
    role_fail("proton-cpp sender", "transport error: " + describe(t.error()));
  }
  void on_error(const proton::error_condition& e) override {
    role_fail("proton-cpp sender", "error: " + describe(e));
  }
  void on_transport_close(proton::transport& t) override { t.connection().container().stop(); }

  void print_result() const { t_.print_result(-1); }

private:
  void send_more(proton::sender& s) {
    while (t_.sent < a_.messages && s.credit() > 0 &&
           (a_.presettled || t_.sent - t_.outcomes < a_.window)) {
      if (t_.sent == 0) {
        t_.first = now_s();
      }
      s.send(msg_);
      ++t_.sent;
    }
    if (a_.presettled && t_.sent == a_.messages && t_.outcomes < a_.messages) {
      // Presettled: each send is its own outcome; everything is written before the close.
      t_.outcomes = t_.sent;
      t_.last = now_s();
      s.connection().close();
    }
  }

  const tcp_role_args& a_;
  proton::message msg_;
  sender_tally t_;
};

} // namespace

int proton_tcp_receiver(const tcp_role_args& a) {
  // Not container::schedule(): a scheduled task keeps container::run() from returning.
  arm_watchdog(a.timeout_s, "bench_tcp: proton-cpp receiver: timed out\n");
  try {
    receiver_handler h(a);
    port_printer ph(h);
    proton::container c(h, "bench-receiver");
    proton::listener l = c.listen("127.0.0.1:0", ph);
    h.set_listener(&l);
    c.run();
    h.print_result();
    return 0;
  } catch (const std::exception& e) {
    role_fail("proton-cpp receiver", e.what());
  }
}

int proton_tcp_sender(const tcp_role_args& a) {
  arm_watchdog(a.timeout_s, "bench_tcp: proton-cpp sender: timed out\n");
  try {
    proton::message m;
    m.decode(a.message);
    // Proton C++ keeps message-annotations in a std::map: it encodes them in key order, so
    // its bytes differ from the file's; the size and the fields are the same.
    std::vector<char> again;
    m.encode(again);
    if (again.size() != a.message.size()) {
      std::fprintf(stderr,
                   "bench_tcp: note: Proton C++ encodes the reference message in %zu bytes "
                   "(the file has %zu)\n",
                   again.size(), a.message.size());
    }
    sender_handler h(a, m);
    proton::container c(h, "bench-sender");
    c.run();
    h.print_result();
    return 0;
  } catch (const std::exception& e) {
    role_fail("proton-cpp sender", e.what());
  }
}

} // namespace amqp::bench
