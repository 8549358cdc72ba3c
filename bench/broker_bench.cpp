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
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tcp_bench_common.hpp"
#include "tcp_bench_roles.hpp"

namespace amqp::bench {
namespace {

enum class impl : std::uint8_t { ours, proton };

constexpr std::string_view impl_name(impl i) noexcept {
  return i == impl::ours ? "ours" : "proton-c";
}

struct options {
  int rounds = 5;
  bool quick = false;
  std::uint64_t messages = 0; // 0: 100,000 (10,000 with --quick)
  std::vector<std::string> variants;
  std::optional<impl> only;
  std::uint32_t backlog = 5000;
  bool sasl = true;
  double timeout_s = 120;
  std::string data_dir = AMQP_BENCH_DATA_DIR;
  std::string amqp_cli = AMQP_BENCH_CLI;
  std::string proton_c_broker = AMQP_BENCH_PROTON_C_BROKER;
  // The client role (child process).
  std::string role;
  bool presettled = false;
  std::uint16_t port = 0;
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

struct variant_run {
  std::string name;
  bool presettled = false;
  series ours;
  series proton;
  std::vector<double> ratios;
  std::vector<double> cpu_ratios; // Proton's broker CPU per message over ours
};

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

void print_series(const variant_run& v, impl i) {
  const series& s = i == impl::ours ? v.ours : v.proton;
  if (s.rates.empty()) {
    return;
  }
  const std::string base = std::string(impl_name(i)) + ".broker." + v.name;
  std::printf("%s %.0f msg/s\n", base.c_str(), median_of(s.rates));
  if (!s.broker_cpu_us.empty()) {
    std::printf("%s.broker_cpu %.2f us/msg\n", base.c_str(), median_of(s.broker_cpu_us));
  }
  std::printf("%s.client_cpu %.2f us/msg\n", base.c_str(), median_of(s.client_cpu_us));
}

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: bench_broker [--quick] [--rounds N] [--messages N]"
                       " [--variant presettled|unsettled]... [--impl ours|proton-c] [--backlog N]"
                       " [--no-sasl] [--timeout S] [--data DIR] [--amqp-cli PATH]"
                       " [--proton-c-broker PATH]\n");
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  const std::span<char*> args(argv, static_cast<std::size_t>(argc));
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string_view a = args[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= args.size()) {
        usage();
      }
      return args[++i];
    };
    if (a == "--quick") {
      o.quick = true;
      o.rounds = 1;
    } else if (a == "--rounds") {
      o.rounds = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--messages") {
      o.messages = std::strtoull(next().c_str(), nullptr, 10);
    } else if (a == "--variant") {
      std::string v = next();
      if (v.ends_with(".200")) {
        v.resize(v.size() - 4);
      }
      if (v != "presettled" && v != "unsettled") {
        usage();
      }
      o.variants.push_back(v);
      o.presettled = v == "presettled";
    } else if (a == "--impl") {
      const std::string v = next();
      if (v == "ours") {
        o.only = impl::ours;
      } else if (v == "proton" || v == "proton-c") {
        o.only = impl::proton;
      } else {
        usage();
      }
    } else if (a == "--backlog") {
      o.backlog = static_cast<std::uint32_t>(std::max(1L, std::atol(next().c_str())));
    } else if (a == "--no-sasl") {
      o.sasl = false;
    } else if (a == "--timeout") {
      o.timeout_s = std::max(1.0, std::atof(next().c_str()));
    } else if (a == "--data") {
      o.data_dir = next();
    } else if (a == "--amqp-cli") {
      o.amqp_cli = next();
    } else if (a == "--proton-c-broker") {
      o.proton_c_broker = next();
    } else if (a == "--role") {
      o.role = next();
      if (o.role != "client") {
        usage();
      }
    } else if (a == "--port") {
      o.port = static_cast<std::uint16_t>(std::atoi(next().c_str()));
    } else {
      usage();
    }
  }
  return o;
}

int run_client(const options& o) {
  broker_client_args a;
  a.presettled = o.presettled;
  a.messages = o.messages != 0 ? o.messages : 100'000;
  a.port = o.port;
  a.backlog = o.backlog;
  a.sasl = o.sasl;
  a.timeout_s = o.timeout_s;
  const std::string path = o.data_dir + "/reference_message.bin";
  auto m = read_whole_file(path);
  if (!m || m->empty()) {
    std::fprintf(stderr, "bench_broker: cannot read %s\n", path.c_str());
    return 1;
  }
  a.message = std::move(*m);
  if (o.port == 0) {
    std::fprintf(stderr, "bench_broker: --role client needs --port\n");
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
  install_signal_handlers();
  const std::uint64_t n = opt.messages != 0 ? opt.messages : opt.quick ? 10'000 : 100'000;
  if (n < 2) {
    die("--messages: at least 2");
  }
  std::vector<impl> impls = {impl::ours, impl::proton};
  if (opt.only) {
    impls = {*opt.only};
  }
  std::vector<variant_run> runs;
  for (const char* v : {"presettled", "unsettled"}) {
    if (opt.variants.empty() ||
        std::find(opt.variants.begin(), opt.variants.end(), v) != opt.variants.end()) {
      variant_run r;
      r.name = std::string(v) + ".200";
      r.presettled = std::string_view(v) == "presettled";
      runs.push_back(std::move(r));
    }
  }

  if (!opt.quick) {
    for (const variant_run& v : runs) {
      for (impl i : impls) {
        (void)run_once(opt, i, v.presettled, std::max<std::uint64_t>(n / 10, 2),
                       std::string(impl_name(i)) + " " + v.name + " warm-up");
      }
    }
  }

  const auto nd = static_cast<double>(n);
  for (int round = 0; round < opt.rounds; ++round) {
    for (variant_run& v : runs) {
      std::vector<impl> order = impls;
      if (round % 2 != 0) {
        std::reverse(order.begin(), order.end());
      }
      std::optional<run_result> ours;
      std::optional<run_result> proton;
      for (impl i : order) {
        const run_result r = run_once(opt, i, v.presettled, n,
                                      std::string(impl_name(i)) + " " + v.name + " round " +
                                          std::to_string(round + 1));
        series& s = i == impl::ours ? v.ours : v.proton;
        s.rates.push_back(r.rate);
        if (r.broker_cpu >= 0) {
          s.broker_cpu_us.push_back(r.broker_cpu * 1e6 / nd);
        }
        s.client_cpu_us.push_back(r.client_cpu * 1e6 / nd);
        (i == impl::ours ? ours : proton) = r;
      }
      if (ours && proton) {
        v.ratios.push_back(ours->rate / proton->rate);
        if (ours->broker_cpu > 0 && proton->broker_cpu > 0) {
          v.cpu_ratios.push_back(proton->broker_cpu / ours->broker_cpu);
        }
      }
    }
  }

  for (const variant_run& v : runs) {
    print_series(v, impl::ours);
    print_series(v, impl::proton);
    if (!v.ratios.empty()) {
      const std::string name = "ratio.broker." + v.name;
      std::printf("%s %.2f x\n", name.c_str(), median_of(v.ratios));
      for (std::size_t k = 0; k < v.ratios.size(); ++k) {
        std::printf("%s.round%zu %.2f x\n", name.c_str(), k + 1, v.ratios[k]);
      }
    }
    if (!v.cpu_ratios.empty()) {
      std::printf("ratio.broker.%s.broker_cpu %.2f x\n", v.name.c_str(), median_of(v.cpu_ratios));
    }
  }
  return 0;
}
