// bench_size: the footprint benchmark of ../shared/bench/README.md (`./dev bench size`), ours
// against Qpid Proton C 0.37 (Debian's packages).
//
// Code size, the .text section (what stripping leaves of the code; the section headers are
// read from the ELF files, so a stripped or unstripped file gives the same figure):
//   ours.size.core_text       the core library's objects (amqp::amqp: the sources listed in
//                             AMQP_SOURCES of amqp/CMakeLists.txt; not the frame tracer,
//                             amqp::trace) linked into one shared object,
//                             libamqp_core_size.so, with the flags of this build (the release
//                             preset: -O2, as Debian builds Proton). A shared object, like
//                             Proton's, so that inline and template functions instantiated in
//                             several objects count once (`size` over the archive would count
//                             them once per object).
//   proton-c.size.core_text   libqpid-proton-core.so.10 (Proton's engine and codec, no I/O).
//   ours.size.send_one_text   size_send_one: connect over TCP with the blocking client, send one
//                             message, wait for its outcome (amqp::transport and amqp::amqp
//                             linked in statically; libstdc++ and OpenSSL dynamically).
//                             .file: the size of the stripped executable.
//   proton-c.size.send_one_text  size_proton_send_one (the same with Proton's proactor) plus
//                             libqpid-proton.so, the core and proactor it runs, which is a
//                             shared library there (.program and .library: each part). .file:
//                             the stripped executable plus the library file.
// Memory held by one idle connection + session + link, one side (client: the sender, server:
// the receiver), once both ends are open, begun and attached and every byte and event has been
// taken:
//   ours.memory.idle_link.<side>         bytes allocated from the engine's memory resource (a
//                                        counting std::pmr resource) and not freed;
//   ours.memory.idle_link.<side>.malloc  the same heap seen by malloc (malloc_usable_size of
//                                        each block still held), as Proton's is measured;
//   proton-c.memory.idle_link.<side>     two pn_connection_driver_t back to back (one with
//                                        pn_transport_set_server), malloc_usable_size of each
//                                        block allocated while that side's driver ran and not
//                                        freed.
// A warm-up pair is set up and destroyed first, so that allocations made once per process
// are not counted. ratio.size.* and ratio.memory.* are Proton over ours (higher: ours is
// smaller).
//
// Usage: bench_size [--quick]   (--quick changes nothing: everything here takes milliseconds;
// it is accepted so that the smoke test runs it like the other benchmarks)
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory_resource>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <malloc.h>
#include <proton/connection.h>
#include <proton/connection_driver.h>
#include <proton/delivery.h>
#include <proton/link.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <proton/transport.h>

#include "amqp/connection.hpp"
#include "bench_rounds.hpp"
#include "elf_size.hpp"

// --- Heap accounting by side ------------------------------------------------------------------

// The malloc family, forwarding to glibc's allocator (which allows the program to define
// them) and recording, for the blocks allocated while a side's calls run, their usable size.
extern "C" {
void* __libc_malloc(std::size_t n) noexcept;
void* __libc_calloc(std::size_t n, std::size_t size) noexcept;
void* __libc_realloc(void* p, std::size_t n) noexcept;
void* __libc_memalign(std::size_t alignment, std::size_t n) noexcept;
void __libc_free(void* p) noexcept;
}

namespace heap {

// The side whose calls run now (0 client, 1 server), or -1.
int side = -1;
// Usable bytes held, per side.
std::array<std::int64_t, 2> held{};

// The blocks allocated while a side ran: open addressing on the pointer, tombstones on free
// (the table never holds more than a few thousand blocks here).
struct slot {
  void* p = nullptr; // nullptr: never used; tombstone: freed
  int side = 0;
  std::size_t n = 0;
};
void* const tombstone = &held;
std::array<slot, 1 << 16> table;

std::size_t hash(void* p) noexcept {
  return (reinterpret_cast<std::uintptr_t>(p) >> 4) * 0x9E3779B97F4A7C15ULL >> 48;
}

void on_alloc(void* p) noexcept {
  if (p == nullptr || side < 0) {
    return;
  }
  const std::size_t n = malloc_usable_size(p);
  for (std::size_t i = hash(p);; i = (i + 1) % table.size()) {
    if (table[i].p == nullptr || table[i].p == tombstone) {
      table[i] = {p, side, n};
      held[static_cast<std::size_t>(side)] += static_cast<std::int64_t>(n);
      return;
    }
  }
}

void on_free(void* p) noexcept {
  if (p == nullptr) {
    return;
  }
  for (std::size_t i = hash(p); table[i].p != nullptr; i = (i + 1) % table.size()) {
    if (table[i].p == p) {
      held[static_cast<std::size_t>(table[i].side)] -= static_cast<std::int64_t>(table[i].n);
      table[i].p = tombstone;
      return;
    }
  }
}

// Runs the calls of one side while alive.
class as_side {
public:
  explicit as_side(int s) noexcept : saved_(side) { side = s; }
  ~as_side() { side = saved_; }
  as_side(const as_side&) = delete;
  as_side& operator=(const as_side&) = delete;

private:
  int saved_;
};

} // namespace heap

extern "C" void* malloc(std::size_t n) noexcept {
  void* p = __libc_malloc(n);
  heap::on_alloc(p);
  return p;
}
extern "C" void* calloc(std::size_t n, std::size_t size) noexcept {
  void* p = __libc_calloc(n, size);
  heap::on_alloc(p);
  return p;
}
extern "C" void* realloc(void* p, std::size_t n) noexcept {
  heap::on_free(p);
  void* q = __libc_realloc(p, n);
  heap::on_alloc(q);
  return q;
}
extern "C" void free(void* p) noexcept {
  heap::on_free(p);
  __libc_free(p);
}
// libstdc++'s std::pmr::new_delete_resource() allocates with the aligned operator new, which
// calls aligned_alloc: without these, our engine's heap would not be seen at all.
extern "C" void* aligned_alloc(std::size_t alignment, std::size_t n) noexcept {
  void* p = __libc_memalign(alignment, n);
  heap::on_alloc(p);
  return p;
}
extern "C" void* memalign(std::size_t alignment, std::size_t n) noexcept {
  void* p = __libc_memalign(alignment, n);
  heap::on_alloc(p);
  return p;
}
extern "C" int posix_memalign(void** out, std::size_t alignment, std::size_t n) noexcept {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) {
    return EINVAL;
  }
  void* p = __libc_memalign(alignment, n);
  if (p == nullptr) {
    return ENOMEM;
  }
  heap::on_alloc(p);
  *out = p;
  return 0;
}

namespace {

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "bench_size: %s\n", what.c_str());
  std::exit(1);
}

// --- ELF sizes (elf_size.hpp) -------------------------------------------------------------------

using amqp::bench::elf_size;
elf_size read_elf(const std::string& path) {
  return amqp::bench::read_elf(path, fail);
}

void print_bytes(const std::string& name, std::uint64_t n) {
  std::printf("%s %llu bytes\n", name.c_str(), static_cast<unsigned long long>(n));
}
void print_ratio(const std::string& name, double proton, double ours) {
  std::printf("%s %.2f x\n", name.c_str(), ours > 0 ? proton / ours : 0.0);
}

// --- Ours: one idle connection + session + link per side -----------------------------------

// Counts the bytes allocated and not yet freed.
class counting_resource : public std::pmr::memory_resource {
public:
  [[nodiscard]] std::size_t outstanding() const noexcept { return bytes_; }

private:
  void* do_allocate(std::size_t n, std::size_t align) override {
    bytes_ += n;
    return std::pmr::new_delete_resource()->allocate(n, align);
  }
  void do_deallocate(void* p, std::size_t n, std::size_t align) override {
    bytes_ -= n;
    std::pmr::new_delete_resource()->deallocate(p, n, align);
  }
  [[nodiscard]] bool do_is_equal(const memory_resource& o) const noexcept override {
    return this == &o;
  }
  std::size_t bytes_ = 0;
};

struct idle_figures {
  std::array<std::int64_t, 2> resource{}; // ours: from the memory resource
  std::array<std::int64_t, 2> malloc{};   // seen by malloc
};

void check(bool ok, const char* what) {
  if (!ok) {
    fail(what);
  }
}

idle_figures ours_idle_link() {
  heap::held = {};
  counting_resource memory[2];
  auto options = [&](int s) {
    amqp::connection_options o;
    o.role = s == 0 ? amqp::connection_role::client : amqp::connection_role::server;
    o.container_id = s == 0 ? "size-client" : "size-server";
    o.memory = &memory[s];
    return o;
  };
  std::optional<amqp::connection> ends[2];
  {
    const heap::as_side a(0);
    ends[0].emplace(options(0));
  }
  {
    const heap::as_side a(1);
    ends[1].emplace(options(1));
  }
  amqp::connection& client = *ends[0];
  amqp::connection& server = *ends[1];
  {
    const heap::as_side a(0);
    check(client.open().has_value(), "ours: client open()");
    const auto s = client.begin();
    check(s.has_value(), "ours: client begin()");
    amqp::link_options o;
    o.name = "size";
    o.role = amqp::role::sender;
    amqp::target t;
    t.address = "size";
    o.target = t;
    check(client.attach(*s, o).has_value(), "ours: client attach()");
  }
  bool attached = false;
  for (int round = 0; round < 100; ++round) {
    bool progress = false;
    for (int s = 0; s < 2; ++s) {
      const heap::as_side a(s);
      amqp::connection& self = *ends[s];
      while (auto e = self.next_event()) {
        progress = true;
        if (s == 0) {
          continue;
        }
        if (std::holds_alternative<amqp::connection_opened>(*e)) {
          check(server.open().has_value(), "ours: server open()");
        } else if (const auto* b = std::get_if<amqp::session_begun>(&*e)) {
          check(!b->remote_initiated || server.begin(b->session).has_value(),
                "ours: server begin()");
        } else if (const auto* l = std::get_if<amqp::link_attached>(&*e)) {
          if (l->remote_initiated) {
            amqp::link_options o;
            o.name = l->remote.name;
            o.role = amqp::role::receiver;
            o.source = l->remote.source;
            if (l->remote.target) {
              if (const auto* t = std::get_if<amqp::target>(&*l->remote.target)) {
                o.target = *t;
              }
            }
            check(server.attach(l->link, o).has_value(), "ours: server attach()");
            attached = true;
          }
        }
      }
    }
    for (int s = 0; s < 2; ++s) {
      amqp::connection& from = *ends[s];
      amqp::connection& to = *ends[1 - s];
      const std::span<const std::byte> out = [&] {
        const heap::as_side a(s);
        return from.pending_output();
      }();
      if (out.empty()) {
        continue;
      }
      progress = true;
      const std::vector<std::byte> copy(out.begin(), out.end());
      {
        const heap::as_side a(s);
        from.consume_output(copy.size());
      }
      const heap::as_side a(1 - s);
      check(to.receive(copy, amqp::time_point{}).has_value(), "ours: receive()");
    }
    if (!progress) {
      break;
    }
  }
  check(attached, "ours: the link was not attached");
  idle_figures f;
  for (std::size_t s = 0; s < 2; ++s) {
    f.resource[s] = static_cast<std::int64_t>(memory[s].outstanding());
    f.malloc[s] = heap::held[s];
  }
  return f;
}

// --- Proton C: the same with two connection drivers -----------------------------------------

std::array<std::int64_t, 2> proton_idle_link() {
  heap::held = {};
  pn_connection_driver_t d[2]{};
  for (int s = 0; s < 2; ++s) {
    const heap::as_side a(s);
    check(pn_connection_driver_init(&d[s], nullptr, nullptr) == 0,
          "Proton: pn_connection_driver_init");
  }
  {
    const heap::as_side a(1);
    pn_transport_set_server(d[1].transport);
    pn_connection_set_container(d[1].connection, "size-server");
  }
  {
    const heap::as_side a(0);
    pn_connection_set_container(d[0].connection, "size-client");
    pn_connection_open(d[0].connection);
    pn_session_t* s = pn_session(d[0].connection);
    pn_session_open(s);
    pn_link_t* l = pn_sender(s, "size");
    pn_terminus_set_address(pn_link_target(l), "size");
    pn_link_open(l);
  }
  bool attached = false;
  for (int round = 0; round < 100; ++round) {
    bool progress = false;
    for (int s = 0; s < 2; ++s) {
      const heap::as_side a(s);
      while (pn_event_t* e = pn_connection_driver_next_event(&d[s])) {
        progress = true;
        if (s == 0) {
          continue;
        }
        switch (pn_event_type(e)) {
        case PN_CONNECTION_REMOTE_OPEN:
          pn_connection_open(pn_event_connection(e));
          break;
        case PN_SESSION_REMOTE_OPEN:
          pn_session_open(pn_event_session(e));
          break;
        case PN_LINK_REMOTE_OPEN: {
          pn_link_t* l = pn_event_link(e);
          pn_terminus_copy(pn_link_source(l), pn_link_remote_source(l));
          pn_terminus_copy(pn_link_target(l), pn_link_remote_target(l));
          pn_link_open(l);
          attached = true;
          break;
        }
        default:
          break;
        }
      }
    }
    for (int s = 0; s < 2; ++s) {
      pn_bytes_t out;
      {
        const heap::as_side a(s);
        out = pn_connection_driver_write_buffer(&d[s]);
      }
      if (out.size == 0) {
        continue;
      }
      progress = true;
      const std::vector<char> copy(out.start, out.start + out.size);
      {
        const heap::as_side a(s);
        pn_connection_driver_write_done(&d[s], copy.size());
      }
      const heap::as_side a(1 - s);
      for (std::size_t at = 0; at < copy.size();) {
        const pn_rwbytes_t in = pn_connection_driver_read_buffer(&d[1 - s]);
        check(in.size != 0, "Proton: no read buffer");
        const std::size_t n = std::min(in.size, copy.size() - at);
        std::memcpy(in.start, copy.data() + at, n);
        pn_connection_driver_read_done(&d[1 - s], n);
        at += n;
      }
    }
    if (!progress) {
      break;
    }
  }
  check(attached, "Proton: the link was not attached");
  const std::array<std::int64_t, 2> held = heap::held;
  for (int s = 0; s < 2; ++s) {
    const heap::as_side a(s);
    pn_connection_driver_destroy(&d[s]);
  }
  return held;
}

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: bench_size [--quick]\n");
  std::exit(2);
}

} // namespace

int main(int argc, char** argv) {
  amqp::bench::for_each_arg(argc, argv, usage,
                            [](std::string_view a, auto&) { return a == "--quick"; });

  const elf_size core = read_elf(AMQP_SIZE_CORE_SO);
  const elf_size proton_core = read_elf(AMQP_SIZE_PROTON_CORE_SO);
  print_bytes("ours.size.core_text", core.text);
  print_bytes("proton-c.size.core_text", proton_core.text);
  print_ratio("ratio.size.core_text", static_cast<double>(proton_core.text),
              static_cast<double>(core.text));

  const elf_size send_one = read_elf(AMQP_SIZE_SEND_ONE);
  const elf_size proton_program = read_elf(AMQP_SIZE_PROTON_SEND_ONE);
  const elf_size proton_library = read_elf(AMQP_SIZE_PROTON_SO);
  print_bytes("ours.size.send_one_text", send_one.text);
  print_bytes("ours.size.send_one_file", send_one.file);
  print_bytes("proton-c.size.send_one_text", proton_program.text + proton_library.text);
  print_bytes("proton-c.size.send_one_text.program", proton_program.text);
  print_bytes("proton-c.size.send_one_text.library", proton_library.text);
  print_bytes("proton-c.size.send_one_file", proton_program.file + proton_library.file);
  print_ratio("ratio.size.send_one_text",
              static_cast<double>(proton_program.text + proton_library.text),
              static_cast<double>(send_one.text));

  (void)ours_idle_link(); // warm-up: once-per-process allocations
  (void)proton_idle_link();
  const idle_figures ours = ours_idle_link();
  const std::array<std::int64_t, 2> proton = proton_idle_link();
  const char* sides[] = {"client", "server"};
  for (std::size_t s = 0; s < 2; ++s) {
    const std::string side = sides[s];
    print_bytes("ours.memory.idle_link." + side, static_cast<std::uint64_t>(ours.resource[s]));
    print_bytes("ours.memory.idle_link." + side + ".malloc",
                static_cast<std::uint64_t>(ours.malloc[s]));
    print_bytes("proton-c.memory.idle_link." + side, static_cast<std::uint64_t>(proton[s]));
    print_ratio("ratio.memory.idle_link." + side, static_cast<double>(proton[s]),
                static_cast<double>(ours.malloc[s]));
  }
  return 0;
}
