// bench_codec: workload 1 of ../shared/bench/README.md (the codec), ours against Qpid Proton C
// in the same process, interleaved round by round.
//
// Operations, each per message, for bodies of 200, 65536 and 1048576 bytes:
//   encode         a message built once, encoded into a reused buffer;
//   build_encode   a fresh message with every field of the reference message, encoded into a
//                  reused buffer, destroyed;
//   decode         Proton's encoding of the reference message decoded into a message object
//                  (ours: amqp::message_view; Proton: one pn_message_t reused, as a receiver
//                  does);
//   decode_access  decode, then read every field as an application would.
// Both decoders read the same bytes: reference_message.bin (Proton's 512-byte encoding) for
// 200, and Proton's encoding of the same fields with the large body for the others.
//
// Output: `NAME VALUE UNIT` lines. Rates are medians over the rounds; each round times both
// implementations back to back (which one goes first alternates), and the `ratio.` lines are
// the median of the per-round ratios ours/Proton (each round's ratio is printed too).
// Allocations per message are counted by the malloc family defined below, over a loop run
// after the warm-up.
//
// Usage: bench_codec [--quick] [--rounds N] [--time-ms MS] [--size BYTES] [--data DIR]
//                    [--cpu-time] [--callgrind N]
// --cpu-time times with the thread's CPU clock instead of steady_clock: on a machine loaded
// by other processes the wall clock also counts the time spent waiting for a core.
//
// Instruction counts (deterministic where the wall clock is too noisy): every measured
// operation is one [[gnu::noipa]] function, <impl>_<op>_once (ours_decode_access_once,
// proton_decode_access_once, ours_build_encode_once, ...). `--callgrind N` times nothing: it
// calls each of the eight functions exactly N times for one size (200 unless --size), so
//   valgrind --tool=callgrind --callgrind-out-file=cg.out bench_codec --callgrind 20000
//   callgrind_annotate --inclusive=yes cg.out | grep _once
// gives each function's inclusive instruction count; divide by N. To collect one function
// only (total Ir of the run / N):
//   valgrind --tool=callgrind --toggle-collect='*ours_decode_access_once*'
//       bench_codec --callgrind 20000                           (one command line)
// Add --dump-instr=yes and use callgrind_annotate --auto=yes for per-line hot spots.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <proton/codec.h>
#include <proton/message.h>

#include "amqp/message.hpp"
#include "bench_support.hpp"
#include "support/reference_message.hpp"

namespace {

using amqp::binary_view;
using amqp::bench::as_bytes;
using amqp::bench::escape;
using amqp::bench::fail;
using amqp::bench::for_each_arg;
using amqp::bench::heap_allocations;
using amqp::bench::key_device_id;
using amqp::bench::key_enqueued_time;
using amqp::bench::key_offset;
using amqp::bench::key_sequence_number;
using amqp::bench::median;
using amqp::bench::now_seconds;
using amqp::bench::pn_message_ptr;
using amqp::bench::pn_view;
using amqp::bench::print_count;
using amqp::bench::print_ratios;
using amqp::bench::proton_build;
using amqp::bench::read_file;

// --- What an application reads --------------------------------------------------------------

// FNV-1a over what decode_access reads: both implementations feed it the same sequence, so
// equal digests show that both read the same fields with the same values.
struct digest {
  std::uint64_t h = 14695981039346656037ULL;
  void add(std::uint64_t v) noexcept { h = (h ^ v) * 1099511628211ULL; }
  // A string or binary: its size, first and last byte (0 when absent).
  void text(std::optional<std::string_view> s) noexcept {
    if (!s) {
      add(0);
      return;
    }
    add(s->size());
    if (!s->empty()) {
      add(static_cast<unsigned char>(s->front()));
      add(static_cast<unsigned char>(s->back()));
    }
  }
};

// The application property keys: C strings for Proton's pn_data_lookup, views for ours.
constexpr std::array<const char*, 3> app_property_keys = {"sensorType", "building", "alert"};
constexpr std::array<std::string_view, 3> app_property_key_views = {"sensorType", "building",
                                                                    "alert"};
constexpr std::string_view content_type = "application/json";
constexpr std::string_view content_encoding = "utf-8";

// --- Ours -------------------------------------------------------------------------------------

AMQP_BENCH_OP std::size_t ours_encode_once(const amqp::message_parts& m, std::span<std::byte> out) {
  auto n = amqp::encode(m, out);
  return n ? *n : 0;
}

AMQP_BENCH_OP std::size_t ours_build_encode_once(binary_view body, std::span<std::byte> out) {
  const amqp::test::reference_message r(body);
  auto n = amqp::encode(r.msg, out);
  return n ? *n : 0;
}

AMQP_BENCH_OP std::size_t ours_decode_once(std::span<const std::byte> in) {
  auto m = amqp::decode_message(in);
  escape(m);
  return m ? 1 : 0;
}

std::optional<std::string_view> string_of(const std::optional<amqp::value>& v) noexcept {
  return v ? v->get_string() : std::nullopt;
}

AMQP_BENCH_OP std::uint64_t ours_decode_access_once(std::span<const std::byte> in) {
  auto m = amqp::decode_message(in);
  if (!m || !m->properties) {
    return 0;
  }
  digest d;
  const amqp::properties& p = *m->properties;
  d.text(p.message_id.get_string());
  d.add(p.content_type && p.content_type->str == content_type ? 1 : 0);
  d.add(p.content_encoding && p.content_encoding->str == content_encoding ? 1 : 0);
  d.add(p.creation_time ? static_cast<std::uint64_t>(p.creation_time->ms) : 0);
  // Annotations and application properties through the index the decoder built
  // (message_view::find), which gives what value::find on the map would.
  for (std::string_view key : app_property_key_views) {
    d.text(string_of(m->application_property(key)));
  }
  auto seq = m->message_annotation(key_sequence_number);
  d.add(seq && seq->is(amqp::type::long_) ? static_cast<std::uint64_t>(seq->as_long()) : 0);
  d.text(string_of(m->message_annotation(key_offset)));
  auto enq = m->message_annotation(key_enqueued_time);
  d.add(enq && enq->is(amqp::type::timestamp) ? static_cast<std::uint64_t>(enq->as_timestamp().ms)
                                              : 0);
  d.text(string_of(m->message_annotation(key_device_id)));
  const binary_view body = m->data();
  d.text(std::string_view(reinterpret_cast<const char*>(body.data()), body.size()));
  return d.h;
}

// --- Proton C ---------------------------------------------------------------------------------

AMQP_BENCH_OP std::size_t proton_encode_once(pn_message_t* m, std::span<char> out) {
  std::size_t n = out.size();
  return pn_message_encode(m, out.data(), &n) == 0 ? n : 0;
}

AMQP_BENCH_OP std::size_t proton_build_encode_once(binary_view body, std::span<char> out) {
  pn_message_t* m = proton_build(body);
  std::size_t n = out.size();
  const int rc = pn_message_encode(m, out.data(), &n);
  pn_message_free(m);
  return rc == 0 ? n : 0;
}

AMQP_BENCH_OP std::size_t proton_decode_once(pn_message_t* m, std::span<const std::byte> in) {
  return pn_message_decode(m, reinterpret_cast<const char*>(in.data()), in.size()) == 0 ? 1 : 0;
}

// Positions `d` on the value of `key` in the map it holds (Proton's way to look a key up).
bool proton_find(pn_data_t* d, const char* key) {
  pn_data_rewind(d);
  if (!pn_data_next(d) || pn_data_type(d) != PN_MAP) {
    return false;
  }
  pn_data_enter(d);
  return pn_data_lookup(d, key);
}

std::optional<std::string_view> proton_string_at(pn_data_t* d) {
  if (pn_data_type(d) != PN_STRING) {
    return std::nullopt;
  }
  const pn_bytes_t b = pn_data_get_string(d);
  return std::string_view(b.start, b.size);
}

AMQP_BENCH_OP std::uint64_t proton_decode_access_once(pn_message_t* m,
                                                      std::span<const std::byte> in) {
  if (pn_message_decode(m, reinterpret_cast<const char*>(in.data()), in.size()) != 0) {
    return 0;
  }
  digest d;
  const pn_msgid_t id = pn_message_get_id(m);
  d.text(id.type == PN_STRING
             ? std::optional(std::string_view(id.u.as_bytes.start, id.u.as_bytes.size))
             : std::nullopt);
  const char* ct = pn_message_get_content_type(m);
  d.add(ct != nullptr && std::strcmp(ct, content_type.data()) == 0 ? 1 : 0);
  const char* ce = pn_message_get_content_encoding(m);
  d.add(ce != nullptr && std::strcmp(ce, content_encoding.data()) == 0 ? 1 : 0);
  d.add(static_cast<std::uint64_t>(pn_message_get_creation_time(m)));
  pn_data_t* ap = pn_message_properties(m);
  for (const char* key : app_property_keys) {
    d.text(proton_find(ap, key) ? proton_string_at(ap) : std::nullopt);
  }
  pn_data_t* ma = pn_message_annotations(m);
  d.add(proton_find(ma, key_sequence_number.data()) && pn_data_type(ma) == PN_LONG
            ? static_cast<std::uint64_t>(pn_data_get_long(ma))
            : 0);
  d.text(proton_find(ma, key_offset.data()) ? proton_string_at(ma) : std::nullopt);
  d.add(proton_find(ma, key_enqueued_time.data()) && pn_data_type(ma) == PN_TIMESTAMP
            ? static_cast<std::uint64_t>(pn_data_get_timestamp(ma))
            : 0);
  d.text(proton_find(ma, key_device_id.data()) ? proton_string_at(ma) : std::nullopt);
  pn_data_t* body = pn_message_body(m);
  pn_data_rewind(body);
  if (pn_data_next(body) && pn_data_type(body) == PN_BINARY) {
    const pn_bytes_t b = pn_data_get_binary(body);
    d.text(std::string_view(b.start, b.size));
  } else {
    d.text(std::nullopt);
  }
  return d.h;
}

// --- Per-size state ---------------------------------------------------------------------------

// Everything one body size needs, set up before timing.
struct size_case {
  std::size_t size = 0;         // body bytes: 200, 65536, 1048576
  std::vector<std::byte> body;  // empty for 200 (the JSON body)
  std::vector<std::byte> input; // Proton's encoding: what both decoders read
  std::unique_ptr<amqp::test::reference_message> ours_msg; // built once, for encode
  std::vector<std::byte> ours_out;                         // reused output buffer
  std::size_t ours_wire = 0;                               // our encoded size
  pn_message_ptr proton_msg;                               // built once, for encode
  pn_message_ptr proton_rx;                                // reused by decode and decode_access
  std::vector<char> proton_out;                            // reused output buffer
  std::size_t proton_wire = 0;                             // Proton's encoded size
};

// Proton's encoding of the reference message with `body`, through a scratch message.
std::vector<std::byte> proton_encoding(binary_view body) {
  const pn_message_ptr m(proton_build(body));
  std::vector<char> buf(body.size() + 4096);
  std::size_t n = buf.size();
  if (pn_message_encode(m.get(), buf.data(), &n) != 0) {
    fail("pn_message_encode failed");
  }
  std::vector<std::byte> out(n);
  std::memcpy(out.data(), buf.data(), n);
  return out;
}

std::unique_ptr<size_case> make_case(std::size_t size, const std::string& data_dir) {
  auto c = std::make_unique<size_case>();
  c->size = size;
  if (size != amqp::test::reference_body.size()) {
    c->body = amqp::test::large_body(size);
  }
  const binary_view body = c->body;
  c->input = proton_encoding(body);
  if (size == amqp::test::reference_body.size()) {
    const std::string path = data_dir + "/reference_message.bin";
    if (auto file = read_file(path)) {
      if (*file != c->input) {
        std::fprintf(stderr, "bench_codec: note: Proton's encoding differs from %s\n",
                     path.c_str());
      }
      c->input = std::move(*file);
    } else {
      std::fprintf(stderr, "bench_codec: note: %s not found, using Proton's encoding\n",
                   path.c_str());
    }
  } else {
    const std::size_t expected = size == 65536 ? 65851 : size == 1048576 ? 1048891 : 0;
    if (expected != 0 && c->input.size() != expected) {
      std::fprintf(stderr,
                   "bench_codec: note: Proton encodes the %zu-byte body in %zu bytes"
                   " (README: %zu)\n",
                   size, c->input.size(), expected);
    }
  }
  c->ours_msg = std::make_unique<amqp::test::reference_message>(body);
  auto n = amqp::encoded_size(c->ours_msg->msg);
  if (!n) {
    fail("encoded_size failed");
  }
  c->ours_wire = *n;
  c->ours_out.resize(*n);
  c->proton_msg.reset(proton_build(body));
  c->proton_rx.reset(pn_message());
  c->proton_out.resize(c->input.size() + 4096);
  c->proton_wire = c->input.size();
  return c;
}

// Both sides decode both encodings to the same fields; the encoders produce what was built.
void self_check(size_case& c) {
  const std::uint64_t ours = ours_decode_access_once(c.input);
  const std::uint64_t proton = proton_decode_access_once(c.proton_rx.get(), c.input);
  if (ours == 0 || ours != proton) {
    fail("decode_access: ours and Proton read different fields");
  }
  const std::size_t n = ours_build_encode_once(c.body, c.ours_out);
  if (n != c.ours_wire || ours_encode_once(c.ours_msg->msg, c.ours_out) != n) {
    fail("ours: encode failed");
  }
  const std::span<const std::byte> own(c.ours_out.data(), n);
  if (ours_decode_access_once(own) != ours ||
      proton_decode_access_once(c.proton_rx.get(), own) != ours) {
    fail("our encoding does not decode to the reference fields");
  }
  if (proton_encode_once(c.proton_msg.get(), c.proton_out) != c.proton_wire ||
      proton_build_encode_once(c.body, c.proton_out) != c.proton_wire) {
    fail("Proton: encode failed");
  }
}

// --- Timing -----------------------------------------------------------------------------------

// Seconds taken by `iters` calls of f; the results are summed and escaped.
template <class F> double timed(std::uint64_t iters, F&& f) {
  std::uint64_t sink = 0;
  const double t0 = now_seconds();
  for (std::uint64_t i = 0; i < iters; ++i) {
    sink += static_cast<std::uint64_t>(f());
  }
  const double t1 = now_seconds();
  escape(sink);
  return t1 - t0;
}

using run_fn = double (*)(size_case&, std::uint64_t);

struct impl_run {
  run_fn run = nullptr;
  std::uint64_t iters = 0;
  std::vector<double> rates; // msg/s, one per round
  double allocs = 0;         // per message
};

struct op_case {
  const char* op;
  size_case* c;
  impl_run ours;
  impl_run proton;
  std::vector<double> ratios; // ours / Proton, one per round
};

struct op_def {
  const char* op;
  run_fn ours;
  run_fn proton;
};

constexpr std::array<op_def, 4> op_defs = {{
    {"encode",
     [](size_case& c, std::uint64_t n) {
       return timed(n, [&] { return ours_encode_once(c.ours_msg->msg, c.ours_out); });
     },
     [](size_case& c, std::uint64_t n) {
       return timed(n, [&] { return proton_encode_once(c.proton_msg.get(), c.proton_out); });
     }},
    {"build_encode",
     [](size_case& c, std::uint64_t n) {
       return timed(n, [&] { return ours_build_encode_once(c.body, c.ours_out); });
     },
     [](size_case& c, std::uint64_t n) {
       return timed(n, [&] { return proton_build_encode_once(c.body, c.proton_out); });
     }},
    {"decode",
     [](size_case& c, std::uint64_t n) {
       return timed(n, [&] { return ours_decode_once(c.input); });
     },
     [](size_case& c, std::uint64_t n) {
       return timed(n, [&] { return proton_decode_once(c.proton_rx.get(), c.input); });
     }},
    {"decode_access",
     [](size_case& c, std::uint64_t n) {
       return timed(n, [&] { return ours_decode_access_once(c.input); });
     },
     [](size_case& c, std::uint64_t n) {
       return timed(n, [&] { return proton_decode_access_once(c.proton_rx.get(), c.input); });
     }},
}};

// Warms up and returns the iteration count that takes about `target` seconds.
std::uint64_t calibrate(run_fn run, size_case& c, double target) {
  std::uint64_t n = 1;
  for (;;) {
    const double s = run(c, n);
    if (s >= 0.01 || n >= (1ULL << 32)) {
      const double want = static_cast<double>(n) * target / std::max(s, 1e-9);
      return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(want));
    }
    n *= 2;
  }
}

// Heap allocations per message over `n` calls, after one warm call.
double allocs_per_msg(run_fn run, size_case& c, std::uint64_t n) {
  (void)run(c, 1);
  const std::uint64_t before = heap_allocations;
  (void)run(c, n);
  return static_cast<double>(heap_allocations - before) / static_cast<double>(n);
}

void print_impl(const std::string& impl, const op_case& oc, std::size_t bytes_per_msg) {
  const std::string base = impl + ".codec." + oc.op + "." + std::to_string(oc.c->size);
  const impl_run& r = impl == "ours" ? oc.ours : oc.proton;
  const double rate = median(r.rates);
  std::printf("%s %.0f msg/s\n", base.c_str(), rate);
  std::printf("%s.bytes_per_s %.0f B/s\n", base.c_str(), rate * static_cast<double>(bytes_per_msg));
  print_count(base + ".allocs", r.allocs, "per_msg");
}

bool pointer_inside(const void* p, std::span<const std::byte> buf) noexcept {
  const auto* b = reinterpret_cast<const std::byte*>(p);
  return std::less_equal<>{}(buf.data(), b) && std::less<>{}(b, buf.data() + buf.size());
}

// Whether each decoder's body view points into the input (no copy of the body).
void print_body_copied(size_case& c) {
  const std::string size = std::to_string(c.size);
  auto m = amqp::decode_message(c.input);
  const bool ours_copied = !m || !pointer_inside(m->data().data(), c.input);
  std::printf("ours.codec.decode.%s.body_copied %d bool\n", size.c_str(), ours_copied ? 1 : 0);
  pn_message_t* rx = c.proton_rx.get();
  (void)pn_message_decode(rx, reinterpret_cast<const char*>(c.input.data()), c.input.size());
  pn_data_t* body = pn_message_body(rx);
  pn_data_rewind(body);
  bool proton_copied = true;
  if (pn_data_next(body) && pn_data_type(body) == PN_BINARY) {
    proton_copied = !pointer_inside(pn_data_get_binary(body).start, c.input);
  }
  std::printf("proton-c.codec.decode.%s.body_copied %d bool\n", size.c_str(),
              proton_copied ? 1 : 0);
}

// --callgrind N: each per-op function exactly N times, no clock.
void run_for_callgrind(size_case& c, std::uint64_t n) {
  std::uint64_t sink = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    sink += ours_encode_once(c.ours_msg->msg, c.ours_out);
  }
  for (std::uint64_t i = 0; i < n; ++i) {
    sink += proton_encode_once(c.proton_msg.get(), c.proton_out);
  }
  for (std::uint64_t i = 0; i < n; ++i) {
    sink += ours_build_encode_once(c.body, c.ours_out);
  }
  for (std::uint64_t i = 0; i < n; ++i) {
    sink += proton_build_encode_once(c.body, c.proton_out);
  }
  for (std::uint64_t i = 0; i < n; ++i) {
    sink += ours_decode_once(c.input);
  }
  for (std::uint64_t i = 0; i < n; ++i) {
    sink += proton_decode_once(c.proton_rx.get(), c.input);
  }
  for (std::uint64_t i = 0; i < n; ++i) {
    sink += ours_decode_access_once(c.input);
  }
  for (std::uint64_t i = 0; i < n; ++i) {
    sink += proton_decode_access_once(c.proton_rx.get(), c.input);
  }
  escape(sink);
  std::fprintf(stderr,
               "bench_codec: called each <impl>_<op>_once %llu times (body %zu bytes);"
               " divide inclusive Ir by %llu\n",
               static_cast<unsigned long long>(n), c.size, static_cast<unsigned long long>(n));
}

struct options {
  int rounds = 7;
  double target_s = 0.2; // per implementation, op and round (200-byte body)
  std::vector<std::size_t> sizes = {200, 65536, 1048576};
  std::string data_dir = AMQP_BENCH_DATA_DIR;
  std::uint64_t callgrind = 0;
};

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: bench_codec [--quick] [--rounds N] [--time-ms MS] [--size BYTES]"
                       " [--data DIR] [--cpu-time] [--callgrind N]\n");
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  bool size_given = false;
  for_each_arg(argc, argv, usage, [&](std::string_view a, auto& next) {
    if (a == "--quick") {
      o.rounds = 3;
      o.target_s = 0.02;
    } else if (a == "--rounds") {
      o.rounds = std::max(1, std::atoi(next()));
    } else if (a == "--time-ms") {
      o.target_s = std::max(1.0, std::atof(next())) / 1000.0;
    } else if (a == "--size") {
      const auto s = static_cast<std::size_t>(std::strtoull(next(), nullptr, 10));
      if (!size_given) {
        o.sizes.clear();
        size_given = true;
      }
      o.sizes.push_back(s);
    } else if (a == "--cpu-time") {
      amqp::bench::use_cpu_clock = true;
    } else if (a == "--data") {
      o.data_dir = next();
    } else if (a == "--callgrind") {
      o.callgrind = std::strtoull(next(), nullptr, 10);
    } else {
      return false;
    }
    return true;
  });
  if (o.callgrind != 0 && !size_given) {
    o.sizes = {200};
  }
  return o;
}

} // namespace

int main(int argc, char** argv) {
  amqp::bench::program_name = "bench_codec";
  const options opt = parse(argc, argv);

  std::vector<std::unique_ptr<size_case>> cases;
  for (std::size_t s : opt.sizes) {
    if (s == 0) {
      usage();
    }
    cases.push_back(make_case(s, opt.data_dir));
  }

  if (opt.callgrind != 0) {
    for (auto& c : cases) {
      run_for_callgrind(*c, opt.callgrind);
    }
    return 0;
  }

  amqp::bench::check_allocation_counting();
  for (auto& c : cases) {
    self_check(*c);
  }

  // Calibration (also the warm-up) and allocation counts, outside the timed rounds. Large
  // bodies get proportionally less time: what matters there is bytes/s, and the whole run
  // stays under a minute.
  std::vector<op_case> ops;
  for (auto& c : cases) {
    const double target = c->size <= 200 ? opt.target_s : opt.target_s / 2;
    for (const op_def& d : op_defs) {
      op_case oc{d.op, c.get(), {}, {}, {}};
      oc.ours.run = d.ours;
      oc.proton.run = d.proton;
      for (impl_run* r : {&oc.ours, &oc.proton}) {
        r->iters = calibrate(r->run, *c, target);
        r->allocs = allocs_per_msg(r->run, *c, std::clamp<std::uint64_t>(r->iters / 4, 1, 10000));
      }
      ops.push_back(std::move(oc));
    }
  }

  for (int round = 0; round < opt.rounds; ++round) {
    for (op_case& oc : ops) {
      // Alternate who goes first, so that neither always runs on a cache the other warmed.
      std::array<impl_run*, 2> order = {&oc.ours, &oc.proton};
      if (round % 2 != 0) {
        std::swap(order[0], order[1]);
      }
      for (impl_run* r : order) {
        const double s = r->run(*oc.c, r->iters);
        r->rates.push_back(static_cast<double>(r->iters) / s);
      }
      oc.ratios.push_back(oc.ours.rates.back() / oc.proton.rates.back());
    }
  }

  for (auto& c : cases) {
    const std::string size = std::to_string(c->size);
    std::printf("ours.codec.encode.%s.wire_bytes %zu bytes\n", size.c_str(), c->ours_wire);
    std::printf("proton-c.codec.encode.%s.wire_bytes %zu bytes\n", size.c_str(), c->proton_wire);
    print_body_copied(*c);
    for (const op_case& oc : ops) {
      if (oc.c != c.get()) {
        continue;
      }
      const bool enc = std::string_view(oc.op).find("encode") != std::string_view::npos;
      print_impl("ours", oc, enc ? c->ours_wire : c->input.size());
      print_impl("proton-c", oc, enc ? c->proton_wire : c->input.size());
      print_ratios(std::string("ratio.codec.") + oc.op + "." + size, oc.ratios);
    }
  }
  return 0;
}
