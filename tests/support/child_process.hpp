// Child processes for benchmarks and tests that start real programs (a broker, the hub
// emulator, the benchmark itself in another role): stdout on a pipe, every wait bounded by a
// timeout, every child killed by its PID on any failure, and dead with its parent
// (PR_SET_PDEATHSIG).
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace amqp::test {

// The clock every process uses (CLOCK_MONOTONIC: the same in the orchestrator and children).
inline double now_s() noexcept {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
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

} // namespace amqp::test
