// Pieces shared by the benchmarks (bench_codec, bench_engine): heap allocation counting, the
// clock, optimizer barriers, reading the reference data, the reference message built with
// Proton C and output formatting (with bench_rounds.hpp: medians, rounds, the command line).
//
// This header defines the C allocation functions (malloc, calloc, realloc, free): include it
// in exactly one translation unit of each benchmark executable.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <memory>
#include <memory_resource>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <proton/codec.h>
#include <proton/message.h>

#include "amqp/value.hpp"
#include "bench_rounds.hpp"
#include "support/reference_message.hpp"

// Heap allocation counting. Proton (C) allocates with malloc, libstdc++'s operator new calls
// malloc, and its aligned operator new calls aligned_alloc (std::pmr::new_delete_resource(),
// our engine's default memory resource, allocates through it whatever the alignment), so
// counting the malloc family and the aligned allocation functions counts each allocation
// exactly once. glibc allows the program to define these and forwards to its own allocator
// through the __libc_* entry points.
extern "C" {
void* __libc_malloc(std::size_t n) noexcept;
void* __libc_calloc(std::size_t n, std::size_t size) noexcept;
void* __libc_realloc(void* p, std::size_t n) noexcept;
void* __libc_memalign(std::size_t alignment, std::size_t n) noexcept;
void __libc_free(void* p) noexcept;
}

namespace amqp::bench {
// Single-threaded benchmarks: a plain counter.
inline std::uint64_t heap_allocations = 0;
} // namespace amqp::bench

extern "C" void* malloc(std::size_t n) noexcept {
  ++amqp::bench::heap_allocations;
  return __libc_malloc(n);
}
extern "C" void* calloc(std::size_t n, std::size_t size) noexcept {
  ++amqp::bench::heap_allocations;
  return __libc_calloc(n, size);
}
// A realloc counts as an allocation (it may move the block).
extern "C" void* realloc(void* p, std::size_t n) noexcept {
  ++amqp::bench::heap_allocations;
  return __libc_realloc(p, n);
}
extern "C" void free(void* p) noexcept {
  __libc_free(p);
}
extern "C" void* aligned_alloc(std::size_t alignment, std::size_t n) noexcept {
  ++amqp::bench::heap_allocations;
  return __libc_memalign(alignment, n);
}
extern "C" void* memalign(std::size_t alignment, std::size_t n) noexcept {
  ++amqp::bench::heap_allocations;
  return __libc_memalign(alignment, n);
}
extern "C" int posix_memalign(void** out, std::size_t alignment, std::size_t n) noexcept {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) {
    return EINVAL;
  }
  ++amqp::bench::heap_allocations;
  void* p = __libc_memalign(alignment, n);
  if (p == nullptr) {
    return ENOMEM;
  }
  *out = p;
  return 0;
}

// Each measured operation is a real call whose result is used: no inlining, no
// interprocedural shortcuts (GCC's noipa; clang has only noinline).
#if defined(__clang__)
#define AMQP_BENCH_OP [[gnu::noinline]]
#else
#define AMQP_BENCH_OP [[gnu::noipa]]
#endif

namespace amqp::bench {

// The name error messages start with ("bench_codec", ...); set by main.
inline const char* program_name = "bench";

// Prints "<program>: <what>" and exits with status 1.
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "%s: %s\n", program_name, what);
  std::exit(1);
}

// --cpu-time: CLOCK_THREAD_CPUTIME_ID instead of steady_clock.
inline bool use_cpu_clock = false;

inline double now_seconds() noexcept {
  if (use_cpu_clock) {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Makes `v` look used (and its memory read) to the optimizer.
template <class T> void escape(const T& v) noexcept {
  __asm__ __volatile__("" : : "g"(&v) : "memory");
}

inline std::span<const std::byte> as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

inline std::optional<std::vector<std::byte>> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    return std::nullopt;
  }
  std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::byte> b(c.size());
  std::memcpy(b.data(), c.data(), c.size());
  return b;
}

// The malloc family above sees operator new (ours) as well as Proton's mallocs.
inline void check_allocation_counting() {
  const std::uint64_t before = heap_allocations;
  {
    std::vector<int> v(16);
    escape(v.data());
  }
  pn_data_t* d = pn_data(16);
  pn_data_free(d);
  if (heap_allocations - before < 2) {
    fail("heap allocations are not counted (malloc not interposed)");
  }
  // What our engine allocates with: it must be counted too.
  const std::uint64_t pmr_before = heap_allocations;
  std::pmr::memory_resource* r = std::pmr::new_delete_resource();
  void* p = r->allocate(64, alignof(std::max_align_t));
  escape(p);
  r->deallocate(p, 64, alignof(std::max_align_t));
  if (heap_allocations == pmr_before) {
    fail("std::pmr::new_delete_resource() allocations are not counted");
  }
}

// `NAME VALUE UNIT`, the value printed as an integer when it is one.
inline void print_count(const std::string& name, double v, const char* unit) {
  if (v == static_cast<double>(static_cast<std::uint64_t>(v))) {
    std::printf("%s %llu %s\n", name.c_str(),
                static_cast<unsigned long long>(static_cast<std::uint64_t>(v)), unit);
  } else {
    std::printf("%s %.3f %s\n", name.c_str(), v, unit);
  }
}

// --- The reference message with Proton C ------------------------------------------------------

inline constexpr std::string_view key_sequence_number = "x-opt-sequence-number";
inline constexpr std::string_view key_offset = "x-opt-offset";
inline constexpr std::string_view key_enqueued_time = "x-opt-enqueued-time";
inline constexpr std::string_view key_device_id = "iothub-connection-device-id";

inline pn_bytes_t pn_view(std::string_view s) noexcept {
  return pn_bytes_t{s.size(), s.data()};
}

// pn_message() with every field of the reference message; the caller frees it.
inline pn_message_t* proton_build(binary_view body) {
  pn_message_t* m = pn_message();
  // Inferred: a binary body is sent as a data section (not amqp-value).
  pn_message_set_inferred(m, true);
  pn_msgid_t id{};
  id.type = PN_STRING;
  id.u.as_bytes = pn_view("9c2d0f8e-3b5a-4e6f-8a1b-2c3d4e5f6a7b");
  pn_message_set_id(m, id);
  pn_message_set_content_type(m, "application/json");
  pn_message_set_content_encoding(m, "utf-8");
  pn_message_set_creation_time(m, 1700000000000);
  pn_data_t* ma = pn_message_annotations(m);
  pn_data_put_map(ma);
  pn_data_enter(ma);
  pn_data_put_symbol(ma, pn_view(key_sequence_number));
  pn_data_put_long(ma, 123456);
  pn_data_put_symbol(ma, pn_view(key_offset));
  pn_data_put_string(ma, pn_view("4294967296"));
  pn_data_put_symbol(ma, pn_view(key_enqueued_time));
  pn_data_put_timestamp(ma, 1700000000123);
  pn_data_put_symbol(ma, pn_view(key_device_id));
  pn_data_put_string(ma, pn_view("sensor-device-0042"));
  pn_data_exit(ma);
  pn_data_t* ap = pn_message_properties(m);
  pn_data_put_map(ap);
  pn_data_enter(ap);
  pn_data_put_string(ap, pn_view("sensorType"));
  pn_data_put_string(ap, pn_view("thermostat"));
  pn_data_put_string(ap, pn_view("building"));
  pn_data_put_string(ap, pn_view("B12-north"));
  pn_data_put_string(ap, pn_view("alert"));
  pn_data_put_string(ap, pn_view("none"));
  pn_data_exit(ap);
  if (body.empty()) {
    body = as_bytes(amqp::test::reference_body);
  }
  pn_data_put_binary(pn_message_body(m),
                     pn_bytes_t{body.size(), reinterpret_cast<const char*>(body.data())});
  return m;
}

struct pn_message_deleter {
  void operator()(pn_message_t* m) const noexcept { pn_message_free(m); }
};
using pn_message_ptr = std::unique_ptr<pn_message_t, pn_message_deleter>;

} // namespace amqp::bench
