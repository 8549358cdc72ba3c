// Pieces shared by the benchmarks that run over sockets (bench_tcp, bench_broker): child
// processes (the benchmark re-executes itself, or starts a broker) with their stdout on a
// pipe, every wait bounded by a timeout and every child killed by its PID on any error; the
// send-syscall counters (tcp_bench_syscalls.cpp); reading the reference message; a role's
// failure; `key=value` result lines passed from a child to the orchestrator; the options and
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

namespace amqp::bench {

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

// The clock every process uses (CLOCK_MONOTONIC: the same in the orchestrator and children).
inline double now_s() noexcept {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

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

// --- Child processes --------------------------------------------------------------------------

// The children alive now, killed by PID on any failure (and by the signal handler).
inline std::vector<pid_t>& live_children() {
  static std::vector<pid_t> v;
  return v;
}

inline void forget_child(pid_t pid) {
  auto& v = live_children();
  v.erase(std::remove(v.begin(), v.end(), pid), v.end());
}

// SIGKILL to every live child (by PID), then reaps them.
inline void kill_children() noexcept {
  for (const pid_t pid : live_children()) {
    ::kill(pid, SIGKILL);
  }
  for (const pid_t pid : live_children()) {
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  live_children().clear();
}

inline const char* fail_prefix = "bench";

// Prints "<program>: <what>", kills every child, exits with status 1.
[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", fail_prefix, what.c_str());
  std::fflush(stdout);
  kill_children();
  std::exit(1);
}

// A role's failure, in its child process: prints "<program>: <who>: <what>" and ends the
// process at once (std::_Exit(1)).
[[noreturn]] inline void role_fail(const std::string& who, const std::string& what) {
  std::fprintf(stderr, "%s: %s: %s\n", fail_prefix, who.c_str(), what.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

extern "C" inline void on_fatal_signal(int sig) {
  // Async-signal-safe: kill(2) and _exit(2) only; the vector is not modified here.
  for (const pid_t pid : live_children()) {
    ::kill(pid, SIGKILL);
  }
  ::_exit(128 + sig);
}

// A child's bound on its own run: after `seconds`, SIGALRM prints `message` on stderr and
// ends the process with status 1 (whatever its event loop is doing).
inline const char* watchdog_message = "timed out\n";

extern "C" inline void on_watchdog(int) {
  const char* m = watchdog_message;
  ::write(STDERR_FILENO, m, std::strlen(m));
  ::_exit(1);
}

inline void arm_watchdog(double seconds, const char* message) {
  watchdog_message = message;
  struct sigaction sa {};
  sa.sa_handler = on_watchdog;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGALRM, &sa, nullptr);
  ::alarm(static_cast<unsigned>(std::max(1.0, seconds)));
}

// The orchestrator: Ctrl-C or a kill ends the children with it.
inline void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_fatal_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGHUP, &sa, nullptr);
}

struct child {
  pid_t pid = -1;
  int out = -1;       // read end of the child's stdout
  std::string output; // its stdout so far
  bool eof = false;
  std::string name;  // for messages
  double cpu_s = -1; // user + system CPU time of the child, once reaped (wait4)
};

// Starts `argv` (argv[0] is the path) with stdout on a pipe and stderr inherited. The child
// dies with its parent (PR_SET_PDEATHSIG). `dir`: its working directory (empty: ours).
inline child spawn(const std::vector<std::string>& argv, const std::string& name,
                   const std::string& dir = {}) {
  child c;
  c.name = name;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    die("pipe: " + std::string(std::strerror(errno)));
  }
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    die("fork: " + std::string(std::strerror(errno)));
  }
  if (pid == 0) {
    // Only async-signal-safe calls until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
      ::_exit(127);
    }
    ::dup2(fds[1], STDOUT_FILENO); // dup2 clears FD_CLOEXEC on the copy
    if (!dir.empty() && ::chdir(dir.c_str()) != 0) {
      ::_exit(127);
    }
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  c.pid = pid;
  c.out = fds[0];
  live_children().push_back(pid);
  return c;
}

// Reads what the child wrote, waiting at most until `deadline` (now_s() clock). Returns
// false on timeout.
inline bool read_some(child& c, double deadline) {
  if (c.eof) {
    return true;
  }
  const double left = deadline - now_s();
  if (left <= 0) {
    return false;
  }
  pollfd p{c.out, POLLIN, 0};
  const int r = ::poll(&p, 1, static_cast<int>(std::min(left * 1000, 1000.0)) + 1);
  if (r < 0 && errno != EINTR) {
    die("poll: " + std::string(std::strerror(errno)));
  }
  if (r <= 0) {
    return true; // nothing yet; the caller checks its deadline
  }
  char buf[4096];
  const ssize_t n = ::read(c.out, buf, sizeof buf);
  if (n <= 0) {
    c.eof = true;
    ::close(c.out);
    c.out = -1;
    return true;
  }
  c.output.append(buf, static_cast<std::size_t>(n));
  return true;
}

// The first line of the child's stdout that starts with `prefix`, waiting at most `timeout_s`
// seconds; nothing if it exits or times out first.
inline std::optional<std::string> wait_for_line(child& c, std::string_view prefix,
                                                double timeout_s) {
  const double deadline = now_s() + timeout_s;
  std::size_t scanned = 0;
  for (;;) {
    for (;;) {
      const std::size_t eol = c.output.find('\n', scanned);
      if (eol == std::string::npos) {
        break;
      }
      const std::string line = c.output.substr(scanned, eol - scanned);
      scanned = eol + 1;
      if (line.rfind(prefix, 0) == 0) {
        return line;
      }
    }
    if (c.eof || now_s() >= deadline) {
      return std::nullopt;
    }
    if (!read_some(c, deadline)) {
      return std::nullopt;
    }
  }
}

// Waits at most `timeout_s` for the child to close its stdout and exit; returns its exit
// status (128 + signal if killed by one), or nothing on timeout (the child is still alive).
inline std::optional<int> wait_exit(child& c, double timeout_s) {
  const double deadline = now_s() + timeout_s;
  while (!c.eof) {
    if (now_s() >= deadline || !read_some(c, deadline)) {
      return std::nullopt;
    }
  }
  for (;;) {
    int status = 0;
    rusage ru{};
    const pid_t r = ::wait4(c.pid, &status, WNOHANG, &ru);
    if (r == c.pid) {
      forget_child(c.pid);
      c.pid = -1;
      c.cpu_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
      if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
      }
      return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
    if (r < 0) {
      die("waitpid " + c.name + ": " + std::string(std::strerror(errno)));
    }
    if (now_s() >= deadline) {
      return std::nullopt;
    }
    ::usleep(2000);
  }
}

// Sends `sig` to the child, then waits at most `timeout_s` for it to exit; SIGKILL after.
// Returns its exit status, or nothing if it had to be killed.
inline std::optional<int> stop_child(child& c, int sig, double timeout_s) {
  if (c.pid <= 0) {
    return std::nullopt;
  }
  ::kill(c.pid, sig);
  std::optional<int> status = wait_exit(c, timeout_s);
  if (!status) {
    ::kill(c.pid, SIGKILL);
    int killed = 0;
    ::waitpid(c.pid, &killed, 0);
    forget_child(c.pid);
    c.pid = -1;
  }
  if (c.out >= 0) {
    ::close(c.out);
    c.out = -1;
  }
  return status;
}

// This executable's path, to re-execute it.
inline std::string self_path() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) {
    die("readlink /proc/self/exe failed");
  }
  return std::string(buf, static_cast<std::size_t>(n));
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
