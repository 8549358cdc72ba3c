// bench_broker: the broker workload of ../shared/bench/README.md. One client connection sends
// the reference message through a broker and receives it back, N = 100,000 times; the client
// is Qpid Proton C++ in both cases (proton_broker_client.cpp: a sending and a receiving link
// on the same address, on one connection, running concurrently, at most --backlog messages
// (default 5000) sent ahead of those received, so the queue stays short). The brokers:
//   ours      `amqp-cli broker --listen amqp://127.0.0.1:0` (the in-memory broker on the
//             transport's listener, one thread)
//   proton-c  Qpid Proton's C example broker (examples/c/broker.c, unmodified: a proactor with
//             4 threads, credit window 5 to each producer, every message delivered
//             presettled)
// A fresh broker process per run; the client is this program re-executed (--role client).
// Both brokers get SASL ANONYMOUS from the client (--no-sasl: no SASL layer).
//
// Variants:
//   presettled.200  both links AT_MOST_ONCE (the client sends presettled)
//   unsettled.200   both links AT_LEAST_ONCE: the broker accepts every message it takes (the
//                   client counts the outcomes) and the client accepts every message the
//                   broker delivers unsettled (ours does; Proton's example broker delivers
//                   presettled regardless, which is less work for it)
// Figures, medians over the rounds:
//   <impl>.broker.<variant>          end to end: N / (first send to the later of the last
//                                    message received and, unsettled, the last outcome), msg/s
//   <impl>.broker.<variant>.broker_cpu, .client_cpu
//                                    CPU time (user + system, wait4) of the broker and client
//                                    processes over their whole life, us/msg
//   ratio.broker.<variant>           the median of the per-round ratios ours/Proton (each
//                                    round's ratio printed too); which broker goes first
//                                    alternates from round to round
//   ratio.broker.<variant>.broker_cpu
//                                    the median per-round ratio of the brokers' CPU per
//                                    message, Proton's over ours (higher is better): the
//                                    broker's own cost, without the client's, which is the
//                                    same Proton C++ program in both cases and bounds the end
//                                    to end rate
// Self-check: N sent, N received (each with the reference creation-time), and, unsettled, N
// accepted outcomes; a broker that fails to start or a client that fails or times out ends
// the benchmark (exit status 1, every child killed by its PID).
//
// Usage: bench_broker [--quick] [--rounds N] [--messages N] [--variant presettled|unsettled]...
//                     [--impl ours|proton-c] [--backlog N] [--no-sasl] [--timeout S]
//                     [--data DIR] [--amqp-cli PATH] [--proton-c-broker PATH]
// --quick: N = 10,000, one round, no warm-up.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tcp_bench_common.hpp"
#include "tcp_bench_roles.hpp"

namespace amqp::bench {
namespace {

struct options : round_options {
  options() : round_options("proton-c") {}
  std::uint32_t backlog = 5000;
  bool sasl = true;
  std::string amqp_cli = AMQP_BENCH_CLI;
  std::string proton_c_broker = AMQP_BENCH_PROTON_C_BROKER;
};

struct run_result {
  double rate = 0; // msg/s end to end
  double broker_cpu = 0;
  double client_cpu = 0;
};

struct series {
  std::vector<double> rates;
  std::vector<double> broker_cpu_us;
  std::vector<double> client_cpu_us;
};

// other_ratios: the brokers' CPU per message, Proton's over ours.
using broker_variant = variant_run<series>;

// Starts the broker; returns it with the port it listens on.
std::pair<child, std::string> start_broker(const options& o, impl i, const std::string& what) {
  if (i == impl::ours) {
    child b = spawn({o.amqp_cli, "broker", "--listen", "amqp://127.0.0.1:0"}, "amqp-cli broker");
    const auto line = wait_for_line(b, "listening ", 20);
    if (!line) {
      die(what + ": amqp-cli broker did not print `listening amqp://...`: " + b.output);
    }
    return {std::move(b), line->substr(line->rfind(':') + 1)};
  }
  child b = spawn({o.proton_c_broker, "127.0.0.1", "0"}, "Proton C broker");
  const auto line = wait_for_line(b, "listening on ", 20);
  if (!line) {
    die(what + ": the Proton C broker did not print `listening on PORT`: " + b.output);
  }
  return {std::move(b), line->substr(13)};
}

run_result run_once(const options& o, impl i, bool presettled, std::uint64_t n,
                    const std::string& what) {
  auto [broker, port] = start_broker(o, i, what);
  std::vector<std::string> args = {self_path(),
                                   "--role",
                                   "client",
                                   "--variant",
                                   presettled ? "presettled" : "unsettled",
                                   "--messages",
                                   std::to_string(n),
                                   "--port",
                                   port,
                                   "--backlog",
                                   std::to_string(o.backlog),
                                   "--timeout",
                                   std::to_string(static_cast<long>(o.timeout_s)),
                                   "--data",
                                   o.data_dir};
  if (!o.sasl) {
    args.emplace_back("--no-sasl");
  }
  child c = spawn(args, "client");
  const auto status = wait_exit(c, o.timeout_s + 10);
  if (!status || *status != 0) {
    die(what + ": the client " +
        (status ? "exited with status " + std::to_string(*status)
                : std::string("did not finish in time")) +
        "; broker output so far: " + broker.output);
  }
  const auto broker_status = stop_child(broker, SIGTERM, 10);
  if (i == impl::ours && (!broker_status || *broker_status != 0)) {
    die(what + ": amqp-cli broker did not stop cleanly: " + broker.output);
  }
  const result_map r = parse_result(c.output);
  const auto nd = static_cast<double>(n);
  if (result_number(r, "sent") != nd || result_number(r, "received") != nd ||
      result_number(r, "bad") != 0 || (!presettled && result_number(r, "accepted") != nd)) {
    die(what + ": the client reported: " + c.output);
  }
  const double end = std::max(result_number(r, "last_received"), result_number(r, "last_accepted"));
  const double t = end - result_number(r, "first");
  if (t <= 0) {
    die(what + ": no time measured: " + c.output);
  }
  run_result res;
  res.rate = nd / t;
  res.broker_cpu = broker.cpu_s;
  res.client_cpu = c.cpu_s;
  return res;
}

void print_series(const options& o, const broker_variant& v, impl i) {
  const series& s = v.of(i);
  if (s.rates.empty()) {
    return;
  }
  const std::string base = std::string(o.name(i)) + ".broker." + v.name;
  std::printf("%s %.0f msg/s\n", base.c_str(), median(s.rates));
  if (!s.broker_cpu_us.empty()) {
    std::printf("%s.broker_cpu %.2f us/msg\n", base.c_str(), median(s.broker_cpu_us));
  }
  std::printf("%s.client_cpu %.2f us/msg\n", base.c_str(), median(s.client_cpu_us));
}

[[noreturn]] void usage() {
  round_usage("[--impl ours|proton-c] [--backlog N] [--no-sasl] [--timeout S] [--data DIR]"
              " [--amqp-cli PATH] [--proton-c-broker PATH]");
}

options parse(int argc, char** argv) {
  return parse_round_options<options>(
      argc, argv, usage, [](options& o, std::string_view a, auto& next) {
        if (a == "--role") {
          o.role = next();
          if (o.role != "client") {
            usage();
          }
        } else if (a == "--backlog") {
          o.backlog = static_cast<std::uint32_t>(std::max(1L, std::atol(next())));
        } else if (a == "--no-sasl") {
          o.sasl = false;
        } else if (a == "--amqp-cli") {
          o.amqp_cli = next();
        } else if (a == "--proton-c-broker") {
          o.proton_c_broker = next();
        } else {
          return false;
        }
        return true;
      });
}

int run_client(const options& o) {
  broker_client_args a;
  a.presettled = o.presettled;
  a.messages = o.messages != 0 ? o.messages : 100'000;
  a.port = o.port;
  a.backlog = o.backlog;
  a.sasl = o.sasl;
  a.timeout_s = o.timeout_s;
  if (!read_sender_inputs(o, a.message)) {
    return 1;
  }
  return proton_broker_client(a);
}

} // namespace
} // namespace amqp::bench

int main(int argc, char** argv) {
  using namespace amqp::bench;
  fail_prefix = "bench_broker";
  const options opt = parse(argc, argv);
  if (!opt.role.empty()) {
    return run_client(opt);
  }
  const auto runs = run_rounds<series>(
      opt,
      [&](impl i, const broker_variant& v, std::uint64_t n, const std::string& what) {
        return run_once(opt, i, v.presettled, n, what);
      },
      [](broker_variant& v, impl i, const run_result& r, std::uint64_t n) {
        const auto nd = static_cast<double>(n);
        series& s = v.of(i);
        s.rates.push_back(r.rate);
        if (r.broker_cpu >= 0) {
          s.broker_cpu_us.push_back(r.broker_cpu * 1e6 / nd);
        }
        s.client_cpu_us.push_back(r.client_cpu * 1e6 / nd);
      },
      [](broker_variant& v, const run_result& ours, const run_result& proton) {
        v.ratios.push_back(ours.rate / proton.rate);
        if (ours.broker_cpu > 0 && proton.broker_cpu > 0) {
          v.other_ratios.push_back(proton.broker_cpu / ours.broker_cpu);
        }
      });

  for (const broker_variant& v : runs) {
    print_series(opt, v, impl::ours);
    print_series(opt, v, impl::proton);
    print_ratios("ratio.broker." + v.name, v.ratios);
    if (!v.other_ratios.empty()) {
      std::printf("ratio.broker.%s.broker_cpu %.2f x\n", v.name.c_str(), median(v.other_ratios));
    }
  }
  return 0;
}
