// bench_tcp: workload 3 of ../shared/bench/README.md (loopback TCP, peer to peer), ours
// against Qpid Proton C++, interleaved round by round.
//
// Two processes on 127.0.0.1, no broker, no SASL. A receiver process listens (port 0) and
// prints its port; a sender process connects and sends N = 100,000 reference messages (the
// 512 bytes of reference_message.bin). One connection, one session, one link; the receiver
// grants credit 1000 at attach and tops it up to 1000 when it falls below 500 (Proton C++:
// credit_window(1000), topped up after every message), decodes every message and reads its
// creation-time. Variants:
//   presettled.200  the sender sends presettled (snd-settle-mode settled)
//   unsettled.200   the receiver accepts and settles each delivery, the sender settles on the
//                   outcome
// The two implementations of each role:
//   ours        receiver: amqp::transport::listener and a server_handler driving a
//               server-role amqp::connection (answers open/begin/attach, flow, decode_message,
//               settle with accepted); sender: the asynchronous amqp::transport::client
//               (client_options::no_sasl), a sender link, async_send() pipelined with at most
//               --window (default 2000) messages in flight, the 512 bytes sent as they are.
//   proton-cpp  proton::container and proton::messaging_handler (proton_tcp.cpp).
// The orchestrator (this program without --role) re-executes itself: the receiver first (it
// reads the `port P` line), then the sender; it waits for both with timeouts and kills them by
// PID on any error (and they die with it: PR_SET_PDEATHSIG).
//
// Figures, each the median over the rounds:
//   <impl>.tcp.<variant>.200          the receiver's rate from its first message to its last
//                                     (N / that time), msg/s
//   <impl>.tcp.unsettled.200.sender   the sender's rate from its first send to its last outcome
//   <impl>.tcp.<variant>.200.send_syscalls_per_msg
//                                     the sender process's send system calls (send, sendto,
//                                     sendmsg on sockets, counted by tcp_bench_syscalls.cpp over
//                                     the whole run, handshake and close included) per message
//   ours.tcp.<variant>.200.writes_per_msg
//                                     our sender's write batches (client::writes()) per message
//   ours.tcp.<variant>.200.send_syscalls_per_batch
//                                     send system calls per write batch, and a check line
//                                     `check.tcp.<variant>.200.send_syscalls_per_batch<=1` (the
//                                     largest value of any round)
//   ours.tcp.<variant>.200.send_syscalls_per_batch.short
//                                     those the kernel took only part of, or refused (EAGAIN)
//   ours.tcp.<variant>.200.batch_bytes
//                                     bytes sent per write batch
//   <impl>.tcp.<variant>.200.bytes_per_send_syscall[.max]
//                                     bytes per send system call (mean, and the most any one
//                                     call took)
//   <impl>.tcp.<variant>.200.receiver_cpu, .sender_cpu
//                                     CPU time (user + system, from wait4) of each process over
//                                     its whole life (start-up and handshake included), us/msg
//   ratio.tcp.<variant>.200[.sender]  the median of the per-round ratios ours/Proton (each
//                                     round's ratio printed too). Which implementation goes
//                                     first alternates from round to round.
// A warm-up run (N/10) of each implementation and variant comes first (not with --quick).
// Self-check: the receiver must read exactly N messages, each with the reference
// creation-time and the settlement the variant asks for; the unsettled sender must get N
// accepted outcomes; anything else fails the benchmark (exit status 1).
//
// Usage: bench_tcp [--quick] [--rounds N] [--messages N] [--variant presettled|unsettled]...
//                  [--impl ours|proton] [--window N] [--timeout S] [--data DIR]
// --quick: N = 10,000, one round, no warm-up (a smoke run).
// One role by hand (e.g. under perf): `bench_tcp --role receiver --impl ours --variant
// unsettled` prints `port P`; then `bench_tcp --role sender --impl ours --variant unsettled
// --port P`. Each prints one `result key=value...` line.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "amqp/connection.hpp"
#include "amqp/event.hpp"
#include "amqp/message.hpp"
#include "amqp/transport/client.hpp"
#include "amqp/transport/listener.hpp"
#include "bench_describe.hpp"
#include "tcp_bench_common.hpp"
#include "tcp_bench_roles.hpp"

namespace amqp::bench {
namespace {

// --- Our receiver -----------------------------------------------------------------------------

class ours_receiver final : public transport::server_handler {
public:
  ours_receiver(const tcp_role_args& a, asio::io_context& io) : a_(a), io_(io) {}

  handle on_accept(time_point, const transport::accepted_peer&) override {
    if (engine_) {
      return 2; // one connection only: engine(2) is null, the listener closes it
    }
    amqp::connection_options o;
    o.role = amqp::connection_role::server;
    o.container_id = "bench-receiver";
    engine_.emplace(o);
    return 1;
  }
  amqp::connection* engine(handle h) override { return h == 1 && engine_ ? &*engine_ : nullptr; }
  void process(handle h, time_point) override {
    if (h != 1 || !engine_) {
      return;
    }
    amqp::connection& c = *engine_;
    while (auto e = c.next_event()) {
      if (const auto* d = std::get_if<amqp::delivery_received>(&*e)) {
        on_delivery(c, *d);
      } else if (std::holds_alternative<amqp::connection_opened>(*e)) {
        check(c.open(), "open()");
      } else if (const auto* s = std::get_if<amqp::session_begun>(&*e)) {
        if (s->remote_initiated) {
          check(c.begin(s->session), "begin()");
        }
      } else if (const auto* l = std::get_if<amqp::link_attached>(&*e)) {
        on_attach(c, *l);
      } else if (const auto* cc = std::get_if<amqp::connection_closed>(&*e)) {
        if ((cc->code || !cc->remote) && t_.received < a_.messages) {
          role_fail("ours receiver", "connection closed after " + std::to_string(t_.received) +
                                         " messages: " + describe(cc->code) + ", " +
                                         describe(cc->error));
        }
      } else if (const auto* ld = std::get_if<amqp::link_detached>(&*e)) {
        if (t_.received < a_.messages) {
          role_fail("ours receiver",
                    "link detached: " + describe(ld->code) + ", " + describe(ld->error));
        }
      } else if (const auto* se = std::get_if<amqp::session_ended>(&*e)) {
        if (t_.received < a_.messages) {
          role_fail("ours receiver",
                    "session ended: " + describe(se->code) + ", " + describe(se->error));
        }
      }
    }
  }
  std::vector<handle> take_dirty() override { return {}; }
  void on_closed(handle h) override {
    if (h == 1) {
      asio::post(io_, [this] { io_.stop(); });
    }
  }

  void print_result() const { t_.print_result(); }
  [[nodiscard]] std::uint64_t received() const noexcept { return t_.received; }

private:
  template <class T> void check(const amqp::result<T>& r, const char* what) {
    if (!r) {
      role_fail("ours receiver", std::string(what) + " failed after " +
                                     std::to_string(t_.received) +
                                     " messages: " + describe(r.error()));
    }
  }

  void on_attach(amqp::connection& c, const amqp::link_attached& a) {
    if (!a.remote_initiated || a.remote.role != amqp::role::sender) {
      role_fail("ours receiver", "unexpected link_attached");
    }
    amqp::link_options o;
    o.name = a.remote.name;
    o.role = amqp::role::receiver;
    o.snd_settle_mode = a.remote.snd_settle_mode;
    o.rcv_settle_mode = amqp::receiver_settle_mode::first;
    o.source = a.remote.source;
    if (a.remote.target) {
      if (const auto* t = std::get_if<amqp::target>(&*a.remote.target)) {
        o.target = *t;
      }
    }
    check(c.attach(a.link, o), "attach()");
    check(c.flow(a.link, a_.credit), "flow()");
  }

  void on_delivery(amqp::connection& c, const amqp::delivery_received& d) {
    const std::uint64_t i = t_.received++;
    if (i == 0) {
      t_.first = now_s();
    }
    const auto m = amqp::decode_message(d.payload);
    if (!m || !m->properties || !m->properties->creation_time ||
        m->properties->creation_time->ms != reference_creation_time) {
      ++t_.bad;
    }
    if (d.settled != a_.presettled || d.aborted) {
      ++t_.bad_settlement;
    }
    if (!d.settled) {
      check(c.settle(d.delivery, amqp::accepted{}), "settle()");
    }
    // No top-up once the peer has closed (its close may arrive with the last transfers).
    if (c.credit(d.delivery.link) < a_.credit / 2 &&
        c.state().remote == amqp::endpoint_status::active) {
      check(c.flow(d.delivery.link, a_.credit), "flow()");
    }
    if (t_.received == a_.messages) {
      t_.last = now_s();
    }
  }

  const tcp_role_args& a_;
  asio::io_context& io_;
  std::optional<amqp::connection> engine_;
  receiver_tally t_;
};

int ours_tcp_receiver(const tcp_role_args& a) {
  // A hard bound even if the event loop is stuck (the timer below reports progress).
  arm_watchdog(a.timeout_s + 5, "bench_tcp: ours receiver: timed out (stuck)\n");
  asio::io_context io;
  ours_receiver h(a, io);
  std::string why;
  auto l = transport::listener::listen(io, "amqp://127.0.0.1:0", {}, h, &why);
  if (!l) {
    role_fail("ours receiver", "listen: " + why);
  }
  std::printf("port %u\n", static_cast<unsigned>(l->port()));
  std::fflush(stdout);
  asio::steady_timer deadline(io);
  deadline.expires_after(std::chrono::milliseconds(static_cast<std::int64_t>(a.timeout_s * 1000)));
  deadline.async_wait([&](std::error_code ec) {
    if (!ec) {
      role_fail("ours receiver", "timed out after reading " + std::to_string(h.received()) +
                                     " of " + std::to_string(a.messages) + " messages");
    }
  });
  io.run();
  deadline.cancel();
  l->close();
  h.print_result();
  return 0;
}

// --- Our sender -------------------------------------------------------------------------------

class ours_sender {
public:
  ours_sender(const tcp_role_args& a, asio::io_context& io)
      : a_(a), io_(io),
        msg_(reinterpret_cast<const std::byte*>(a.message.data()), a.message.size()) {}

  void start() {
    transport::client_options o;
    o.no_sasl = true;
    o.amqp.container_id = "bench-sender";
    o.connect_timeout = std::chrono::milliseconds(10'000);
    const std::string url = "amqp://127.0.0.1:" + std::to_string(a_.port);
    transport::client::async_connect(io_, url, o, [this](std::error_code ec, transport::client c) {
      if (ec) {
        role_fail("ours sender", "connect: " + describe(ec));
      }
      client_ = std::move(c);
      transport::sender_options so;
      so.name = "bench";
      so.presettled = a_.presettled;
      so.max_in_flight = std::max<std::size_t>(a_.window, 1) + 1;
      client_.async_open_sender("bench", so, [this](std::error_code e, transport::sender s) {
        if (e) {
          role_fail("ours sender", "open_sender: " + describe(e) + " " + client_.last_error());
        }
        sender_ = std::move(s);
        send_more();
      });
    });
  }

  void print_result() const { t_.print_result(static_cast<std::int64_t>(client_.writes())); }
  [[nodiscard]] std::string progress() const {
    return std::to_string(t_.sent) + " sent, " + std::to_string(t_.outcomes) + " outcomes";
  }

private:
  // Sends while fewer than `window` messages are in flight. Presettled sends report their
  // outcome from inside async_send(): the loop is not re-entered then, it goes on.
  void send_more() {
    if (in_send_more_) {
      return;
    }
    in_send_more_ = true;
    while (t_.sent < a_.messages && sender_.in_flight() < a_.window) {
      if (t_.sent == 0) {
        t_.first = now_s();
      }
      ++t_.sent;
      sender_.async_send(
          msg_, [this](std::error_code ec, transport::delivery_outcome o) { on_outcome(ec, o); });
    }
    in_send_more_ = false;
  }

  void on_outcome(std::error_code ec, const transport::delivery_outcome& o) {
    if (ec) {
      role_fail("ours sender", "send failed: " + describe(ec) + " " + client_.last_error());
    }
    ++t_.outcomes;
    const auto expected = a_.presettled ? state_kind::none : state_kind::accepted;
    if (o.state != expected) {
      role_fail("ours sender", "unexpected outcome " + std::string(name(o.state)));
    }
    if (o.state == state_kind::accepted) {
      ++t_.accepted;
    }
    if (t_.outcomes == a_.messages) {
      t_.last = now_s();
      client_.async_close([this](std::error_code) { io_.stop(); });
      return;
    }
    send_more();
  }

  const tcp_role_args& a_;
  asio::io_context& io_;
  std::span<const std::byte> msg_;
  transport::client client_;
  transport::sender sender_;
  sender_tally t_;
  bool in_send_more_ = false;
};

int ours_tcp_sender(const tcp_role_args& a) {
  arm_watchdog(a.timeout_s + 5, "bench_tcp: ours sender: timed out (stuck)\n");
  asio::io_context io;
  ours_sender s(a, io);
  asio::steady_timer deadline(io);
  deadline.expires_after(std::chrono::milliseconds(static_cast<std::int64_t>(a.timeout_s * 1000)));
  deadline.async_wait([&](std::error_code ec) {
    if (!ec) {
      role_fail("ours sender", "timed out with " + s.progress());
    }
  });
  s.start();
  io.run();
  deadline.cancel();
  s.print_result();
  return 0;
}

// --- The orchestrator -------------------------------------------------------------------------

// --impl of a role.
constexpr std::string_view impl_arg(impl i) noexcept {
  return i == impl::ours ? "ours" : "proton";
}

struct options : round_options {
  options() : round_options("proton-cpp") {}
  std::uint32_t window = 2000;
};

// What one run (one receiver, one sender) measured.
struct run_result {
  double receiver_rate = 0; // msg/s, first to last message at the receiver
  double sender_rate = 0;   // msg/s, first send to last outcome
  double batches = -1;      // our write batches (-1: Proton)
  double send_syscalls = 0; // the sender process's
  double send_partial = 0;  // ... that took part of what was offered
  double send_failed = 0;   // ... that failed (EAGAIN)
  double send_bytes = 0;
  double send_max = 0;       // the most bytes one send took
  double write_syscalls = 0; // the sender process's write/writev
  double receiver_cpu = 0;   // seconds of CPU (user + system) of each process, whole run
  double sender_cpu = 0;
};

struct series {
  std::vector<double> receiver_rates;
  std::vector<double> sender_rates;
  std::vector<double> writes_per_msg;
  std::vector<double> syscalls_per_msg;
  std::vector<double> syscalls_per_batch;
  std::vector<double> short_per_batch; // sends the kernel took part of, or refused (EAGAIN)
  std::vector<double> batch_bytes;
  std::vector<double> bytes_per_send;
  std::vector<double> send_max;
  std::vector<double> receiver_cpu_us; // per message
  std::vector<double> sender_cpu_us;
};

// other_ratios: the senders' rates, ours / Proton.
using tcp_variant = variant_run<series>;

run_result run_once(const options& o, impl i, bool presettled, std::uint64_t n,
                    const std::string& what) {
  const std::string self = self_path();
  const std::string variant = presettled ? "presettled" : "unsettled";
  const std::string timeout = std::to_string(static_cast<long>(o.timeout_s));
  child r = spawn({self, "--role", "receiver", "--impl", std::string(impl_arg(i)), "--variant",
                   variant, "--messages", std::to_string(n), "--timeout", timeout},
                  "receiver");
  const auto line = wait_for_line(r, "port ", 20);
  if (!line) {
    die(what + ": the receiver did not print its port");
  }
  const std::string port = line->substr(5);
  child s = spawn({self, "--role", "sender", "--impl", std::string(impl_arg(i)), "--variant",
                   variant, "--messages", std::to_string(n), "--port", port, "--window",
                   std::to_string(o.window), "--timeout", timeout, "--data", o.data_dir},
                  "sender");
  const auto sender_status = wait_exit(s, o.timeout_s + 10);
  if (!sender_status || *sender_status != 0) {
    die(what + ": the sender " +
        (sender_status ? "exited with status " + std::to_string(*sender_status)
                       : std::string("did not finish in time")));
  }
  const auto receiver_status = wait_exit(r, 20);
  if (!receiver_status || *receiver_status != 0) {
    die(what + ": the receiver " +
        (receiver_status ? "exited with status " + std::to_string(*receiver_status)
                         : std::string("did not finish in time")));
  }
  const result_map rr = parse_result(r.output);
  const result_map sr = parse_result(s.output);
  const auto nd = static_cast<double>(n);
  if (result_number(rr, "received") != nd || result_number(rr, "bad") != 0 ||
      result_number(rr, "bad_settlement") != 0) {
    die(what + ": the receiver reported: " + r.output);
  }
  if (result_number(sr, "sent") != nd || result_number(sr, "outcomes") != nd ||
      (!presettled && result_number(sr, "accepted") != nd)) {
    die(what + ": the sender reported: " + s.output);
  }
  run_result res;
  const double rt = result_number(rr, "last") - result_number(rr, "first");
  const double st = result_number(sr, "last") - result_number(sr, "first");
  if (rt <= 0 || st <= 0) {
    die(what + ": no time measured: " + r.output + s.output);
  }
  res.receiver_rate = nd / rt;
  res.sender_rate = nd / st;
  res.batches = result_number(sr, "batches");
  res.send_syscalls = result_number(sr, "send_syscalls");
  res.send_partial = result_number(sr, "send_partial");
  res.send_failed = result_number(sr, "send_failed");
  res.send_bytes = result_number(sr, "send_bytes");
  res.send_max = result_number(sr, "send_max");
  res.write_syscalls = result_number(sr, "write_syscalls");
  res.receiver_cpu = r.cpu_s;
  res.sender_cpu = s.cpu_s;
  return res;
}

void add(series& s, const run_result& r, std::uint64_t n) {
  const auto nd = static_cast<double>(n);
  s.receiver_rates.push_back(r.receiver_rate);
  s.sender_rates.push_back(r.sender_rate);
  s.syscalls_per_msg.push_back(r.send_syscalls / nd);
  s.receiver_cpu_us.push_back(r.receiver_cpu * 1e6 / nd);
  s.sender_cpu_us.push_back(r.sender_cpu * 1e6 / nd);
  if (r.batches > 0) {
    s.writes_per_msg.push_back(r.batches / nd);
    s.syscalls_per_batch.push_back(r.send_syscalls / r.batches);
    s.short_per_batch.push_back((r.send_partial + r.send_failed) / r.batches);
    s.batch_bytes.push_back(r.send_bytes / r.batches);
  }
  if (r.send_syscalls > 0) {
    s.bytes_per_send.push_back(r.send_bytes / r.send_syscalls);
    s.send_max.push_back(r.send_max);
  }
}

void print_series(const options& o, const tcp_variant& v, impl i) {
  const series& s = v.of(i);
  if (s.receiver_rates.empty()) {
    return;
  }
  const std::string base = std::string(o.name(i)) + ".tcp." + v.name;
  std::printf("%s %.0f msg/s\n", base.c_str(), median(s.receiver_rates));
  if (!v.presettled) {
    std::printf("%s.sender %.0f msg/s\n", base.c_str(), median(s.sender_rates));
  }
  if (!s.writes_per_msg.empty()) {
    std::printf("%s.writes_per_msg %.4f per_msg\n", base.c_str(), median(s.writes_per_msg));
  }
  std::printf("%s.send_syscalls_per_msg %.4f per_msg\n", base.c_str(), median(s.syscalls_per_msg));
  if (!s.syscalls_per_batch.empty()) {
    std::printf("%s.send_syscalls_per_batch %.3f per_batch\n", base.c_str(),
                median(s.syscalls_per_batch));
    std::printf("%s.send_syscalls_per_batch.short %.3f per_batch\n", base.c_str(),
                median(s.short_per_batch));
    std::printf("%s.batch_bytes %.0f bytes\n", base.c_str(), median(s.batch_bytes));
  }
  if (!s.bytes_per_send.empty()) {
    std::printf("%s.bytes_per_send_syscall %.0f bytes\n", base.c_str(), median(s.bytes_per_send));
    std::printf("%s.bytes_per_send_syscall.max %.0f bytes\n", base.c_str(),
                *std::max_element(s.send_max.begin(), s.send_max.end()));
  }
  std::printf("%s.receiver_cpu %.2f us/msg\n", base.c_str(), median(s.receiver_cpu_us));
  std::printf("%s.sender_cpu %.2f us/msg\n", base.c_str(), median(s.sender_cpu_us));
}

[[noreturn]] void usage() {
  round_usage("[--impl ours|proton] [--window N] [--timeout S] [--data DIR]\n"
              "       bench_tcp --role receiver|sender --impl ours|proton"
              " --variant presettled|unsettled [--messages N] [--port P] [--window N]"
              " [--timeout S] [--data DIR]");
}

options parse(int argc, char** argv) {
  return parse_round_options<options>(
      argc, argv, usage, [](options& o, std::string_view a, auto& next) {
        if (a == "--window") {
          o.window = static_cast<std::uint32_t>(std::max(1L, std::atol(next())));
        } else if (a == "--role") {
          o.role = next();
          if (o.role != "receiver" && o.role != "sender") {
            usage();
          }
        } else {
          return false;
        }
        return true;
      });
}

int run_role(const options& o) {
  tcp_role_args a;
  a.presettled = o.presettled;
  a.messages = o.messages != 0 ? o.messages : 100'000;
  a.port = o.port;
  a.window = o.window;
  a.timeout_s = o.timeout_s;
  const impl i = o.only.value_or(impl::ours);
  if (o.role == "receiver") {
    return i == impl::ours ? ours_tcp_receiver(a) : proton_tcp_receiver(a);
  }
  if (!read_sender_inputs(o, a.message)) {
    return 1;
  }
  return i == impl::ours ? ours_tcp_sender(a) : proton_tcp_sender(a);
}

} // namespace
} // namespace amqp::bench

int main(int argc, char** argv) {
  using namespace amqp::bench;
  fail_prefix = "bench_tcp";
  const options opt = parse(argc, argv);
  if (!opt.role.empty()) {
    return run_role(opt);
  }
  const auto runs = run_rounds<series>(
      opt,
      [&](impl i, const tcp_variant& v, std::uint64_t n, const std::string& what) {
        return run_once(opt, i, v.presettled, n, what);
      },
      [](tcp_variant& v, impl i, const run_result& r, std::uint64_t n) { add(v.of(i), r, n); },
      [](tcp_variant& v, const run_result& ours, const run_result& proton) {
        v.ratios.push_back(ours.receiver_rate / proton.receiver_rate);
        v.other_ratios.push_back(ours.sender_rate / proton.sender_rate);
      });

  for (const tcp_variant& v : runs) {
    print_series(opt, v, impl::ours);
    print_series(opt, v, impl::proton);
    print_ratios("ratio.tcp." + v.name, v.ratios);
    if (!v.presettled) {
      print_ratios("ratio.tcp." + v.name + ".sender", v.other_ratios);
    }
    if (!v.ours.syscalls_per_batch.empty()) {
      const auto& all = v.ours.syscalls_per_batch;
      const double worst = *std::max_element(all.begin(), all.end());
      const double most = v.ours.send_max.empty()
                              ? 0
                              : *std::max_element(v.ours.send_max.begin(), v.ours.send_max.end());
      std::printf("check.tcp.%s.send_syscalls_per_batch<=1 %s (largest %.3f in %zu rounds;"
                  " at most %.0f bytes per send)\n",
                  v.name.c_str(), worst <= 1.0 ? "pass" : "FAIL", worst, all.size(), most);
    }
  }
  return 0;
}
