// Counts the send system calls of the benchmark's process: these definitions of send, sendto,
// sendmsg, write and writev take the place of the C library's (the executable's symbols come
// first in the dynamic linker's lookup, so Qpid Proton's calls from libqpid-proton land here
// as well as Asio's, compiled into the program). Each one makes the system call itself with
// syscall(2), so every call counted is exactly one system call.
//
// Link this file into an executable only (bench_tcp, bench_broker).
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tcp_bench_common.hpp"

namespace amqp::bench {

syscall_counters& syscalls() noexcept {
  static syscall_counters c;
  return c;
}

namespace {

void count(std::atomic<std::uint64_t>& n, int fd) noexcept {
  if (fd > 2) {
    n.fetch_add(1, std::memory_order_relaxed);
  }
}

ssize_t sys(long r) noexcept {
  return static_cast<ssize_t>(r);
}

// A send of `offered` bytes returned `r`.
ssize_t sent(int fd, long r, std::size_t offered) noexcept {
  if (fd > 2) {
    syscall_counters& c = syscalls();
    if (r < 0) {
      c.send_failed.fetch_add(1, std::memory_order_relaxed);
    } else {
      const auto n = static_cast<std::uint64_t>(r);
      c.send_bytes.fetch_add(n, std::memory_order_relaxed);
      std::uint64_t m = c.send_max.load(std::memory_order_relaxed);
      while (n > m && !c.send_max.compare_exchange_weak(m, n, std::memory_order_relaxed)) {
      }
      if (static_cast<std::size_t>(r) < offered) {
        c.send_partial.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  return static_cast<ssize_t>(r);
}

} // namespace
} // namespace amqp::bench

extern "C" {

ssize_t send(int fd, const void* buf, size_t n, int flags) {
  amqp::bench::count(amqp::bench::syscalls().send, fd);
  return amqp::bench::sent(fd,
                           ::syscall(SYS_sendto, static_cast<long>(fd), buf, n,
                                     static_cast<long>(flags), static_cast<void*>(nullptr), 0L),
                           n);
}

ssize_t sendto(int fd, const void* buf, size_t n, int flags, const struct sockaddr* addr,
               socklen_t addr_len) {
  amqp::bench::count(amqp::bench::syscalls().send, fd);
  return amqp::bench::sent(fd,
                           ::syscall(SYS_sendto, static_cast<long>(fd), buf, n,
                                     static_cast<long>(flags), addr, static_cast<long>(addr_len)),
                           n);
}

ssize_t sendmsg(int fd, const struct msghdr* msg, int flags) {
  amqp::bench::count(amqp::bench::syscalls().send, fd);
  std::size_t offered = 0;
  for (std::size_t i = 0; msg != nullptr && i < msg->msg_iovlen; ++i) {
    offered += msg->msg_iov[i].iov_len;
  }
  return amqp::bench::sent(
      fd, ::syscall(SYS_sendmsg, static_cast<long>(fd), msg, static_cast<long>(flags)), offered);
}

ssize_t write(int fd, const void* buf, size_t n) {
  amqp::bench::count(amqp::bench::syscalls().write, fd);
  return amqp::bench::sys(::syscall(SYS_write, static_cast<long>(fd), buf, n));
}

ssize_t writev(int fd, const struct iovec* iov, int count) {
  amqp::bench::count(amqp::bench::syscalls().write, fd);
  return amqp::bench::sys(
      ::syscall(SYS_writev, static_cast<long>(fd), iov, static_cast<long>(count)));
}

} // extern "C"
