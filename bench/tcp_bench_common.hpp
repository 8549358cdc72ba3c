// Pieces shared by the benchmarks that run over sockets (bench_tcp, bench_broker): child
// processes (tests/support/child_process.hpp: the benchmark re-executes itself, or starts a
// broker); the send-syscall counters (tcp_bench_syscalls.cpp); reading the reference message; a
// role's failure; `key=value` result lines passed from a child to the orchestrator; the options and
// the rounds of the orchestrator.
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_rounds.hpp"
#include "support/child_process.hpp"

namespace amqp::bench {

// Child processes, the clock and failures: tests/support/child_process.hpp.
using test::arm_watchdog;
using test::child;
using test::die;
using test::fail_prefix;
using test::install_signal_handlers;
using test::kill_children;
using test::live_children;
using test::now_s;
using test::read_some;
using test::role_fail;
using test::self_path;
using test::spawn;
using test::stop_child;
using test::wait_exit;
using test::wait_for_line;

// Counted by the send/sendto/sendmsg/write/writev definitions of tcp_bench_syscalls.cpp,
// which take the place of the C library's in the benchmark's process (the program's own
// definitions interpose on the shared libraries' calls too: Qpid Proton's send() and
// write()). Only calls on descriptors above 2 count (not stdin/stdout/stderr).
struct syscall_counters {
  std::atomic<std::uint64_t> send{0};         // send, sendto, sendmsg
  std::atomic<std::uint64_t> send_partial{0}; // ... that took only part of the bytes offered
  std::atomic<std::uint64_t> send_failed{0};  // ... that failed (EAGAIN included)
  std::atomic<std::uint64_t> send_bytes{0};   // bytes they took
  std::atomic<std::uint64_t> send_max{0};     // the most bytes one call took
  std::atomic<std::uint64_t> write{0};        // write, writev (eventfd wake-ups, pipes)
};
syscall_counters& syscalls() noexcept;

inline std::optional<std::vector<char>> read_whole_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    return std::nullopt;
  }
  return std::vector<char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// --- Results from a child -------------------------------------------------------------------

// A child reports on stdout one line `result key=value key=value ...`.
using result_map = std::map<std::string, std::string, std::less<>>;

inline result_map parse_result(std::string_view out) {
  result_map m;
  std::size_t at = 0;
  while (at < out.size()) {
    const std::size_t eol = std::min(out.find('\n', at), out.size());
    const std::string_view line = out.substr(at, eol - at);
    at = eol + 1;
    if (line.rfind("result ", 0) != 0) {
      continue;
    }
    std::size_t p = 7;
    while (p < line.size()) {
      const std::size_t end = std::min(line.find(' ', p), line.size());
      const std::string_view kv = line.substr(p, end - p);
      const std::size_t eq = kv.find('=');
      if (eq != std::string_view::npos) {
        m[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
      }
      p = end + 1;
    }
  }
  return m;
}

inline double result_number(const result_map& m, std::string_view key) {
  const auto it = m.find(key);
  return it == m.end() ? -1.0 : std::strtod(it->second.c_str(), nullptr);
}

// --- The orchestrator ---------------------------------------------------------------------------

// The options of bench_tcp and bench_broker that both have: the orchestrator's, and a role's.
struct round_options {
  std::string_view proton_name; // Proton's, in the figures and for --impl (proton-c, ...)
  int rounds = 5;
  bool quick = false;
  std::uint64_t messages = 0;        // 0: 100,000 (10,000 with --quick)
  std::vector<std::string> variants; // presettled, unsettled (none: both)
  std::optional<impl> only;
  double timeout_s = 120;
  std::string data_dir = AMQP_BENCH_DATA_DIR;
  // A role (child process).
  std::string role;
  bool presettled = false;
  std::uint16_t port = 0;

  explicit round_options(std::string_view proton) : proton_name(proton) {}

  // The implementation's name in the figures.
  [[nodiscard]] std::string_view name(impl i) const noexcept {
    return i == impl::ours ? "ours" : proton_name;
  }
};

// What a sending role needs besides its options: the reference message (the bytes of --data
// DIR/reference_message.bin) into `message`, and --port. False, after saying why on stderr,
// when the file cannot be read or is empty, or --port is missing.
inline bool read_sender_inputs(const round_options& o, std::vector<char>& message) {
  const std::string path = o.data_dir + "/reference_message.bin";
  auto m = read_whole_file(path);
  if (!m || m->empty()) {
    std::fprintf(stderr, "%s: cannot read %s\n", fail_prefix, path.c_str());
    return false;
  }
  message = std::move(*m);
  if (o.port == 0) {
    std::fprintf(stderr, "%s: --role %s needs --port\n", fail_prefix, o.role.c_str());
    return false;
  }
  return true;
}

// "usage: <program> [--quick] [--rounds N] [--messages N] [--variant presettled|unsettled]...
// <more>" on stderr; exits with status 2.
[[noreturn]] inline void round_usage(const char* more) {
  std::fprintf(stderr,
               "usage: %s [--quick] [--rounds N] [--messages N]"
               " [--variant presettled|unsettled]... %s\n",
               fail_prefix, more);
  std::exit(2);
}

// The command line of bench_tcp or bench_broker, into `Options` (a round_options): --quick,
// --rounds N, --messages N, --variant presettled|unsettled (".200" may follow), --impl
// ours|proton|<proton_name>, --timeout S, --data DIR, --port P; any other argument goes to
// `more(o, a, next)` (false: an argument it does not know). usage() for what neither knows.
template <class Options, class More>
Options parse_round_options(int argc, char** argv, void (*usage)(), More more) {
  Options o;
  for_each_arg(argc, argv, usage, [&](std::string_view a, auto& next) {
    if (a == "--quick") {
      o.quick = true;
      o.rounds = 1;
    } else if (a == "--rounds") {
      o.rounds = std::max(1, std::atoi(next()));
    } else if (a == "--messages") {
      o.messages = std::strtoull(next(), nullptr, 10);
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
      o.only = parse_impl(next(), o.proton_name);
      if (!o.only) {
        usage();
      }
    } else if (a == "--timeout") {
      o.timeout_s = std::max(1.0, std::atof(next()));
    } else if (a == "--data") {
      o.data_dir = next();
    } else if (a == "--port") {
      o.port = static_cast<std::uint16_t>(std::atoi(next()));
    } else {
      return more(o, a, next);
    }
    return true;
  });
  return o;
}

// One variant (presettled.200, unsettled.200): what each implementation measured, round by
// round (`Series`), and the per-round ratios.
template <class Series> struct variant_run {
  std::string name;
  bool presettled = false;
  Series ours;
  Series proton;
  std::vector<double> ratios;       // the headline figure, ours / Proton
  std::vector<double> other_ratios; // a second figure (bench_tcp: the senders' rates, ours /
                                    // Proton; bench_broker: the brokers' CPU, Proton's / ours)

  Series& of(impl i) noexcept { return i == impl::ours ? ours : proton; }
  [[nodiscard]] const Series& of(impl i) const noexcept { return i == impl::ours ? ours : proton; }
};

// The orchestrator's runs (it installs the signal handlers first). N is --messages, or 100,000
// (10,000 with --quick); the variants are those --variant names (by default both, presettled
// first). A warm-up run (N/10) of each implementation and variant comes first (not with
// --quick), then --rounds rounds of one run of each, which implementation goes first
// alternating from round to round. A run is `run(i, v, n, what)` (`what` names it in
// messages), which returns what it measured (`result`), then `record(v, i, result, N)`; after a
// round in which both implementations ran, `compare(v, ours, proton)`. Returns the variants.
template <class Series, class Run, class Record, class Compare>
std::vector<variant_run<Series>> run_rounds(const round_options& o, Run run, Record record,
                                            Compare compare) {
  install_signal_handlers();
  const std::uint64_t n = o.messages != 0 ? o.messages : o.quick ? 10'000 : 100'000;
  if (n < 2) {
    die("--messages: at least 2");
  }
  std::vector<variant_run<Series>> variants;
  for (const char* name : {"presettled", "unsettled"}) {
    if (o.variants.empty() ||
        std::find(o.variants.begin(), o.variants.end(), name) != o.variants.end()) {
      variant_run<Series> v;
      v.name = std::string(name) + ".200";
      v.presettled = std::string_view(name) == "presettled";
      variants.push_back(std::move(v));
    }
  }
  const std::vector<impl> impls = impls_to_run(o.only);

  // Warm-up (and a first self-check): one short run of each.
  if (!o.quick) {
    for (const variant_run<Series>& v : variants) {
      for (impl i : impls) {
        (void)run(i, v, std::max<std::uint64_t>(n / 10, 2),
                  std::string(o.name(i)) + " " + v.name + " warm-up");
      }
    }
  }

  using result = std::invoke_result_t<Run&, impl, const variant_run<Series>&, std::uint64_t,
                                      const std::string&>;
  for (int round = 0; round < o.rounds; ++round) {
    for (variant_run<Series>& v : variants) {
      std::optional<result> ours;
      std::optional<result> proton;
      for (impl i : round_order(impls, round)) {
        const result r =
            run(i, std::as_const(v), n,
                std::string(o.name(i)) + " " + v.name + " round " + std::to_string(round + 1));
        record(v, i, r, n);
        (i == impl::ours ? ours : proton) = r;
      }
      if (ours && proton) {
        compare(v, *ours, *proton);
      }
    }
  }
  return variants;
}

} // namespace amqp::bench
