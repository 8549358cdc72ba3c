// iothub_send_one: one device that connects over TLS, logs in with CBS, sends one 1 KB
// telemetry message, waits for its outcome and closes: the program of Microsoft's published
// uAMQP figures, on lite_device and tls_channel (amqp::iothub_lite). bench_iothub runs it
// against iothub-emulator and reads its stripped .text size.
//
// It counts its own heap: every operator new/delete (our code and libstdc++), and OpenSSL's
// allocations apart (CRYPTO_set_mem_functions), so that TLS is reported separately.
//
// Usage: iothub_send_one HOST PORT CA_FILE HUB_HOST DEVICE_ID KEY
// Prints `allocs N`, `peak_heap N`, `tls_allocs N`, `tls_peak_heap N`, `wire_bytes N` (TCP
// payload, TLS records included), `amqp_bytes N` (before TLS), `send_bytes_out N` and
// `send_bytes_in N` (TCP payload written and read by the send alone, from the message handed
// over to its outcome), `outcome NAME`; exit status 0 when the message was accepted.
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <span>
#include <string>

#include <malloc.h>
#include <openssl/crypto.h>

#include "amqp/iothub/lite_device.hpp"
#include "amqp/iothub/tls_channel.hpp"

namespace {

// One heap's figures.
struct heap_figures {
  std::size_t allocs = 0;
  std::size_t live = 0;
  std::size_t peak = 0;
  void on_alloc(void* p) noexcept {
    ++allocs;
    live += malloc_usable_size(p);
    peak = live > peak ? live : peak;
  }
  void on_free(void* p) noexcept { live -= malloc_usable_size(p); }
};

heap_figures ours;
heap_figures tls;

void* ssl_malloc(std::size_t n, const char*, int) {
  void* p = std::malloc(n);
  if (p != nullptr) {
    tls.on_alloc(p);
  }
  return p;
}
void* ssl_realloc(void* p, std::size_t n, const char*, int) {
  if (p != nullptr) {
    tls.on_free(p);
  }
  void* q = std::realloc(p, n);
  if (q != nullptr) {
    tls.on_alloc(q);
  } else if (p != nullptr && n != 0) {
    tls.on_alloc(p); // realloc failed: p is still ours
  }
  return q;
}
void ssl_free(void* p, const char*, int) {
  if (p != nullptr) {
    tls.on_free(p);
  }
  std::free(p);
}

} // namespace

void* operator new(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) {
    throw std::bad_alloc();
  }
  ours.on_alloc(p);
  return p;
}
void* operator new[](std::size_t n) {
  return operator new(n);
}
void* operator new(std::size_t n, std::align_val_t a) {
  const auto align = static_cast<std::size_t>(a);
  void* p = std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p == nullptr) {
    throw std::bad_alloc();
  }
  ours.on_alloc(p);
  return p;
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return operator new(n, a);
}
void operator delete(void* p, std::align_val_t) noexcept {
  if (p != nullptr) {
    ours.on_free(p);
    std::free(p);
  }
}
void operator delete[](void* p, std::align_val_t a) noexcept {
  operator delete(p, a);
}
void operator delete(void* p, std::size_t, std::align_val_t a) noexcept {
  operator delete(p, a);
}
void operator delete[](void* p, std::size_t, std::align_val_t a) noexcept {
  operator delete(p, a);
}
void operator delete(void* p) noexcept {
  if (p != nullptr) {
    ours.on_free(p);
    std::free(p);
  }
}
void operator delete[](void* p) noexcept {
  operator delete(p);
}
void operator delete(void* p, std::size_t) noexcept {
  operator delete(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  operator delete(p);
}

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: iothub_send_one HOST PORT CA_FILE HUB_HOST DEVICE_ID KEY\n");
    return 2;
  }
  // Before OpenSSL allocates anything.
  CRYPTO_set_mem_functions(ssl_malloc, ssl_realloc, ssl_free);
  const std::span<char*> args(argv, static_cast<std::size_t>(argc));
  amqp::iothub::tls_channel_options co;
  co.host = args[1];
  co.port = static_cast<std::uint16_t>(std::atoi(args[2]));
  co.ca_file = args[3];
  std::string why;
  auto channel = amqp::iothub::tls_channel::connect(co, &why);
  if (!channel) {
    std::fprintf(stderr, "iothub_send_one: %s\n", why.c_str());
    return 1;
  }
  amqp::iothub::lite_device_options o;
  o.hub_host = args[4];
  o.identity.device_id = args[5];
  o.key = args[6];
  const auto now =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  auto device = amqp::iothub::lite_device::connect(**channel, o, now, &why);
  if (!device) {
    std::fprintf(stderr, "iothub_send_one: %s\n", why.c_str());
    return 1;
  }
  // 1 KB of telemetry as one data section, encoded into the program's own buffer (as a
  // small device keeps its messages), then sent from there.
  static std::byte body[1024];
  for (std::size_t i = 0; i < sizeof body; ++i) {
    body[i] = static_cast<std::byte>('A' + i % 26);
  }
  const amqp::value sections[1] = {amqp::value(amqp::binary_view(body, sizeof body))};
  amqp::message_parts m;
  m.body = amqp::body_kind::data;
  m.body_sections = sections;
  static std::byte encoded[sizeof body + 64];
  const auto size = amqp::encode(m, encoded);
  if (!size) {
    std::fprintf(stderr, "iothub_send_one: cannot encode the message\n");
    return 1;
  }
  // The bytes of the send alone, connected and logged in (the window of the C SDK's published
  // "Sent Bytes" / "Recv Bytes": connection set-up and close excluded).
  const auto read_before = (*channel)->bytes_read();
  const auto written_before = (*channel)->bytes_written();
  auto outcome = device->send_event(std::span<const std::byte>(encoded, *size), &why);
  const auto send_out = (*channel)->bytes_written() - written_before;
  const auto send_in = (*channel)->bytes_read() - read_before;
  if (!outcome) {
    std::fprintf(stderr, "iothub_send_one: %s\n", why.c_str());
    return 1;
  }
  (void)device->close();
  std::printf(
      "allocs %zu\npeak_heap %zu\ntls_allocs %zu\ntls_peak_heap %zu\nwire_bytes %llu\n"
      "amqp_bytes %llu\nsend_bytes_out %llu\nsend_bytes_in %llu\noutcome %s\n",
      ours.allocs, ours.peak, tls.allocs, tls.peak,
      static_cast<unsigned long long>((*channel)->bytes_read() + (*channel)->bytes_written()),
      static_cast<unsigned long long>((*channel)->plain_bytes()),
      static_cast<unsigned long long>(send_out), static_cast<unsigned long long>(send_in),
      std::string(amqp::name(*outcome)).c_str());
  return *outcome == amqp::state_kind::accepted ? 0 : 1;
}
