// Memory figures of a process, for the benchmarks that count bytes per connection
// (bench_idle_tls, bench_emulator): the resident set (VmRSS of /proc/PID/status, any
// process) and the heap in use (glibc's mallinfo2, this process only), and raising the
// open-files limit for thousands of sockets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include <malloc.h>
#include <sys/resource.h>
#include <sys/types.h>

namespace amqp::bench {

// VmRSS of process `pid` (0: this one) in bytes, or 0 if it cannot be read.
inline std::uint64_t rss_bytes(pid_t pid = 0) {
  const std::string path =
      pid == 0 ? std::string("/proc/self/status") : "/proc/" + std::to_string(pid) + "/status";
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) {
    return 0;
  }
  char line[256];
  std::uint64_t kib = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, "VmRSS:", 6) == 0) {
      kib = std::strtoull(line + 6, nullptr, 10);
      break;
    }
  }
  std::fclose(f);
  return kib * 1024;
}

// Bytes this process has allocated with malloc and not freed (small blocks in every arena
// and blocks mmapped on their own).
inline std::uint64_t heap_in_use() {
  const struct mallinfo2 mi = ::mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// Raises the soft open-files limit to at least `wanted` (at most the hard limit). Returns
// the limit in force.
inline std::uint64_t raise_open_files(std::uint64_t wanted) {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) {
    return 0;
  }
  if (r.rlim_cur < wanted) {
    r.rlim_cur = r.rlim_max == RLIM_INFINITY ? wanted : std::min<rlim_t>(wanted, r.rlim_max);
    (void)::setrlimit(RLIMIT_NOFILE, &r);
    (void)::getrlimit(RLIMIT_NOFILE, &r);
  }
  return r.rlim_cur;
}

} // namespace amqp::bench
