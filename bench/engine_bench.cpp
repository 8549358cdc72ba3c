// bench_engine: workload 2 of ../shared/bench/README.md (two engines back to back, in
// memory), ours against Qpid Proton C in the same process, interleaved round by round.
//
// A client engine (sender) and a server engine (receiver) in one thread; the bytes each one
// writes are memcpy'd into the other's input, in both directions; no sockets, SASL or TLS.
// One connection, one session, one link. The receiver grants `credit` at attach and tops it
// up to `credit` whenever it falls below half of it. Variants:
//   presettled.raw.200    snd-settle-mode settled; the sender sends the 512 pre-encoded bytes
//                         of reference_message.bin, the receiver reads the payload bytes
//   unsettled.raw.200     the same with snd-settle-mode unsettled: the receiver accepts and
//                         settles each delivery, the sender settles on the remote outcome
//   presettled.full.200   the sender builds and encodes the reference message for every
//   unsettled.full.200    transfer; the receiver decodes it and reads its creation-time and body
//   unsettled.raw.65536   the reference message with a 65536-byte body (Proton's 65851-byte
//                         encoding), raw, N = 20,000, credit 100; reported in MB/s (of message
//                         bytes, 10^6 B)
// and, only when named with --variant:
//   presettled.full_prebuilt.200, unsettled.full_prebuilt.200
//                         full, but the sender encodes one message built beforehand (the
//                         codec workload's `encode` instead of `build_encode`)
// N = 200,000 messages unless said otherwise. Each run sets up a fresh pair (open, begin,
// attach, credit granted: not timed), then times from the first transfer until the last
// message has been read (presettled) or the last delivery is settled at the sender
// (unsettled). Allocations are counted over the same run from the moment 10% of the
// messages have been read (steady state, buffers grown) to the end of the timed region.
//
// The two sides, driven the same way:
//   Proton C  two pn_connection_driver_t, the server with pn_transport_set_server; bytes go
//             from pn_connection_driver_write_buffer() into
//             pn_connection_driver_read_buffer(); the receiver reads with pn_link_recv() (and
//             pn_message_decode() for full); delivery tags are 8-byte counters (as Proton
//             C++ makes them).
//   ours      two amqp::connection (client and server role); bytes go from pending_output()
//             into read_buffer(), then read_done() (--receive: into a staging buffer, like a
//             socket read, then receive()); the receiver reads the payload view of
//             delivery_received (and decode_message() for full); delivery tags are the
//             engine's. Virtual time: time_point{} throughout.
// Both move at most `wire_chunk` bytes per copy (Proton also at most its read buffer) and
// pull every event after each copy.
//
// Self-check: every run must read N messages (each of the right size, the first and last
// compared byte for byte; full: creation-time and body of each), with the settlement the
// variant asks for, and (unsettled) settle N deliveries at the sender on an accepted
// outcome; any other outcome or event (close, detach, error) fails the benchmark with exit
// status 1 and a description of what each engine reported.
//
// Output: `NAME VALUE UNIT` lines, NAME = <impl>.engine.<variant>[.<metric>]: the rate
// (msg/s, MB/s for 65536 with .msg_per_s beside it), .ns (ns/msg), .allocs (per message),
// .wire_bytes and .wire_bytes_back (client->server and server->client bytes per message in
// the timed region). Rates and ns are medians over the rounds; ratio.engine.<variant> is the
// median of the per-round ratios ours/Proton (msg/s), each round's ratio printed too. Which
// implementation goes first alternates from round to round.
//
// Usage: bench_engine [--quick] [--rounds N] [--variant NAME]... [--messages N] [--data DIR]
//                     [--chunk BYTES] [--receive] [--cpu-time] [--impl ours|proton]
//                     [--callgrind VARIANT]
// --quick: N/10 messages, 3 rounds (a smoke run of about two seconds).
// --chunk: the most bytes moved by one copy (default 65536; Proton's read buffer takes at most
// 8 KiB at a time for 200-byte messages, and grows to hold a whole frame for 64 KiB ones).
// --cpu-time: the thread's CPU clock instead of steady_clock.
//
// Instruction counts: each side's timed loop is one [[gnu::noipa]] function,
// ours_transfer_loop and proton_transfer_loop. `--callgrind VARIANT` times nothing: it sets
// up one pair per implementation (--impl: only one) and runs its loop once, so
//   valgrind --tool=callgrind --toggle-collect='*ours_transfer_loop*'
//       bench_engine --callgrind unsettled.raw.200 --impl ours          (one command line)
// counts the loop alone: divide the total Ir by N (printed; --messages changes it).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/connection_driver.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/message.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <proton/transport.h>

#include "amqp/connection.hpp"
#include "amqp/message.hpp"
#include "bench_describe.hpp"
#include "bench_support.hpp"
#include "support/reference_message.hpp"

namespace {

using amqp::binary_view;
using amqp::bench::describe;
using amqp::bench::fail;
using amqp::bench::for_each_arg;
using amqp::bench::heap_allocations;
using amqp::bench::impl;
using amqp::bench::impls_to_run;
using amqp::bench::median;
using amqp::bench::now_seconds;
using amqp::bench::parse_impl;
using amqp::bench::pn_message_ptr;
using amqp::bench::print_count;
using amqp::bench::print_ratios;
using amqp::bench::proton_build;
using amqp::bench::read_file;
using amqp::bench::round_order;

// The most bytes moved by one memcpy from one engine to the other (a socket read's worth);
// --chunk changes it.
std::size_t wire_chunk = 64 * 1024;
// --receive: ours is fed through receive() from a staging buffer instead of read_buffer().
bool use_receive = false;
// The reference message's creation-time.
constexpr std::int64_t creation_time = 1700000000000;

// --- Variants and their inputs ----------------------------------------------------------------

struct variant_def {
  std::string_view name;
  bool presettled;
  bool full;              // encode on send, decode on receipt
  bool prebuilt;          // full: encode a message built once (else build one per transfer)
  std::size_t body_size;  // 200 (the JSON body) or the large body's size
  std::uint64_t messages; // N
  std::uint32_t credit;   // granted at attach, topped up to this below half of it
  bool by_default;        // run without --variant
};

constexpr std::array<variant_def, 7> variant_defs = {{
    {"presettled.raw.200", true, false, false, 200, 200000, 1000, true},
    {"unsettled.raw.200", false, false, false, 200, 200000, 1000, true},
    {"presettled.full.200", true, true, false, 200, 200000, 1000, true},
    {"unsettled.full.200", false, true, false, 200, 200000, 1000, true},
    {"unsettled.raw.65536", false, false, false, 65536, 20000, 100, true},
    {"presettled.full_prebuilt.200", true, true, true, 200, 200000, 1000, false},
    {"unsettled.full_prebuilt.200", false, true, true, 200, 200000, 1000, false},
}};

// Everything a variant needs, prepared before any run.
struct workload {
  const variant_def* def = nullptr;
  std::uint64_t messages = 0;  // N (--quick, --messages change it)
  std::uint64_t warm_up = 0;   // messages read before allocations are counted
  std::vector<std::byte> body; // the body bytes (the JSON body for 200)
  std::vector<std::byte> raw;  // Proton's encoding: what raw sends
  std::size_t ours_encoded = 0;
  [[nodiscard]] bool large() const noexcept { return def->body_size != 200; }
};

// Proton's encoding of the reference message with `body` (empty: the JSON body).
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

workload make_workload(const variant_def& d, const std::string& data_dir, bool quick,
                       std::uint64_t messages) {
  workload w;
  w.def = &d;
  w.messages = messages != 0 ? messages : quick ? d.messages / 10 : d.messages;
  w.warm_up = w.messages / 10;
  if (d.body_size == amqp::test::reference_body.size()) {
    const auto b = amqp::bench::as_bytes(amqp::test::reference_body);
    w.body.assign(b.begin(), b.end());
    w.raw = proton_encoding({});
    const std::string path = data_dir + "/reference_message.bin";
    if (auto file = read_file(path)) {
      if (*file != w.raw) {
        std::fprintf(stderr, "bench_engine: note: Proton's encoding differs from %s\n",
                     path.c_str());
      }
      w.raw = std::move(*file);
    } else {
      std::fprintf(stderr, "bench_engine: note: %s not found, using Proton's encoding\n",
                   path.c_str());
    }
  } else {
    w.body = amqp::test::large_body(d.body_size);
    w.raw = proton_encoding(w.body);
  }
  const amqp::test::reference_message r(w.body);
  auto n = amqp::encoded_size(r.msg);
  if (!n) {
    fail("encoded_size failed");
  }
  w.ours_encoded = *n;
  return w;
}

// --- What a run measures and checks -----------------------------------------------------------

struct run_stats {
  double seconds = 0;
  std::uint64_t sent = 0;       // transfers started by the sender
  std::uint64_t received = 0;   // messages read by the receiver
  std::uint64_t accepted = 0;   // deliveries the receiver accepted and settled
  std::uint64_t settled = 0;    // deliveries settled at the sender on the remote outcome
  std::uint64_t bytes_out = 0;  // client -> server, timed region
  std::uint64_t bytes_back = 0; // server -> client, timed region
  std::uint64_t alloc_mark = 0; // heap_allocations at the start, then when warm_up messages
                                // had been read
  std::uint64_t allocs = 0;     // heap allocations from then to the end of the timed region
  std::string error;            // the first self-check failure
};

// Records the first failure of a run (the loop then stops).
void flag(run_stats& st, std::string what) {
  if (st.error.empty()) {
    st.error = std::move(what);
  }
}

std::string at_message(const char* what, std::uint64_t i) {
  return std::string(what) + " (message " + std::to_string(i) + ")";
}

// The receiver's checks of message `i`: its raw payload...
void check_raw(const workload& w, run_stats& st, std::uint64_t i, binary_view payload) {
  if (payload.size() != w.raw.size()) {
    flag(st, at_message("payload of the wrong size", i));
  } else if ((i == 0 || i + 1 == w.messages) &&
             std::memcmp(payload.data(), w.raw.data(), w.raw.size()) != 0) {
    flag(st, at_message("payload bytes differ from the message sent", i));
  }
}

// ... or the fields read after decoding it.
void check_full(const workload& w, run_stats& st, std::uint64_t i, std::int64_t created,
                binary_view body) {
  if (created != creation_time) {
    flag(st, at_message("wrong creation-time", i));
  } else if (body.size() != w.body.size()) {
    flag(st, at_message("body of the wrong size", i));
  } else if ((i == 0 || i + 1 == w.messages) &&
             std::memcmp(body.data(), w.body.data(), body.size()) != 0) {
    flag(st, at_message("body bytes differ from the message sent", i));
  }
}

// After message `i` was read: the allocation count starts once the warm-up is over.
void mark_warm(const workload& w, run_stats& st) {
  if (st.received == w.warm_up && w.warm_up != 0) {
    st.alloc_mark = heap_allocations;
  }
}

// Whether the timed loop is finished.
bool done(const workload& w, const run_stats& st) noexcept {
  return w.def->presettled ? st.received >= w.messages : st.settled >= w.messages;
}

// The run's final checks (counts, settlement); empty when all is well.
void check_totals(const workload& w, run_stats& st) {
  if (!st.error.empty()) {
    return;
  }
  const std::uint64_t n = w.messages;
  if (st.sent != n || st.received != n) {
    flag(st, "sent " + std::to_string(st.sent) + " and read " + std::to_string(st.received) +
                 " messages, expected " + std::to_string(n));
  } else if (!w.def->presettled && (st.accepted != n || st.settled != n)) {
    flag(st, "receiver accepted " + std::to_string(st.accepted) + ", sender settled " +
                 std::to_string(st.settled) + " deliveries, expected " + std::to_string(n));
  } else if (w.def->presettled && (st.accepted != 0 || st.settled != 0)) {
    flag(st, "presettled deliveries were accepted or settled again");
  }
}

// --- Proton C ---------------------------------------------------------------------------------

struct proton_pair {
  const workload* w = nullptr;
  pn_connection_driver_t client{};
  pn_connection_driver_t server{};
  pn_link_t* sender = nullptr;
  pn_link_t* receiver = nullptr;
  std::vector<char> rx;  // the receiver's buffer for pn_link_recv
  std::vector<char> tx;  // full: the sender's encoding buffer
  pn_message_ptr tx_msg; // full_prebuilt: the message encoded for every transfer
  pn_message_ptr rx_msg{pn_message()};
  run_stats st;
  std::uint64_t tag = 0;

  explicit proton_pair(const workload& wl) : w(&wl) {
    rx.resize(std::max(wl.raw.size(), wl.ours_encoded) + 4096);
    tx.resize(rx.size());
    if (wl.def->prebuilt) {
      tx_msg.reset(proton_build(wl.body));
    }
    if (pn_connection_driver_init(&client, nullptr, nullptr) != 0 ||
        pn_connection_driver_init(&server, nullptr, nullptr) != 0) {
      fail("Proton: pn_connection_driver_init failed");
    }
    pn_transport_set_server(server.transport);
  }
  ~proton_pair() {
    pn_connection_driver_destroy(&client);
    pn_connection_driver_destroy(&server);
  }
  proton_pair(const proton_pair&) = delete;
  proton_pair& operator=(const proton_pair&) = delete;
};

std::string proton_condition(const char* who, pn_condition_t* c) {
  std::string s = who;
  if (c != nullptr && pn_condition_is_set(c)) {
    s += ": ";
    s += pn_condition_get_name(c) != nullptr ? pn_condition_get_name(c) : "?";
    s += " ";
    s += pn_condition_get_description(c) != nullptr ? pn_condition_get_description(c) : "";
  }
  return s;
}

// Moves one chunk of `from`'s output into `to`'s input; returns the bytes moved.
std::size_t proton_move(pn_connection_driver_t& from, pn_connection_driver_t& to) {
  const pn_bytes_t out = pn_connection_driver_write_buffer(&from);
  if (out.size == 0) {
    return 0;
  }
  const pn_rwbytes_t in = pn_connection_driver_read_buffer(&to);
  const std::size_t n = std::min({out.size, in.size, wire_chunk});
  if (n == 0) {
    return 0;
  }
  std::memcpy(in.start, out.start, n);
  pn_connection_driver_write_done(&from, n);
  pn_connection_driver_read_done(&to, n);
  return n;
}

// The receiver: a complete delivery arrived.
void proton_receive(proton_pair& p, pn_delivery_t* d) {
  if (!pn_delivery_readable(d) || pn_delivery_partial(d)) {
    return;
  }
  const workload& w = *p.w;
  run_stats& st = p.st;
  pn_link_t* l = pn_delivery_link(d);
  const std::size_t pending = pn_delivery_pending(d);
  if (pending > p.rx.size()) {
    p.rx.resize(pending);
  }
  const ssize_t got = pn_link_recv(l, p.rx.data(), pending);
  pn_link_advance(l);
  const std::uint64_t i = st.received++;
  if (got < 0 || static_cast<std::size_t>(got) != pending) {
    flag(st, at_message("pn_link_recv failed", i));
  } else if (w.def->full) {
    pn_message_t* m = p.rx_msg.get();
    if (pn_message_decode(m, p.rx.data(), pending) != 0) {
      flag(st, at_message("pn_message_decode failed", i));
    } else {
      pn_data_t* body = pn_message_body(m);
      pn_data_rewind(body);
      binary_view b;
      if (pn_data_next(body) && pn_data_type(body) == PN_BINARY) {
        const pn_bytes_t bytes = pn_data_get_binary(body);
        b = {reinterpret_cast<const std::byte*>(bytes.start), bytes.size};
      }
      check_full(w, st, i, pn_message_get_creation_time(m), b);
    }
  } else {
    check_raw(w, st, i, {reinterpret_cast<const std::byte*>(p.rx.data()), pending});
  }
  if (pn_delivery_settled(d) != w.def->presettled) {
    flag(st, at_message(w.def->presettled ? "delivery not presettled" : "delivery presettled", i));
  }
  if (!pn_delivery_settled(d)) {
    pn_delivery_update(d, PN_ACCEPTED);
    ++st.accepted;
  }
  pn_delivery_settle(d);
  const int credit = pn_link_credit(l);
  if (credit < static_cast<int>(w.def->credit / 2)) {
    pn_link_flow(l, static_cast<int>(w.def->credit) - credit);
  }
  mark_warm(w, st);
}

void proton_server_events(proton_pair& p) {
  while (pn_event_t* e = pn_connection_driver_next_event(&p.server)) {
    switch (pn_event_type(e)) {
    case PN_DELIVERY:
      proton_receive(p, pn_event_delivery(e));
      break;
    case PN_CONNECTION_REMOTE_OPEN:
      pn_connection_open(pn_event_connection(e));
      break;
    case PN_SESSION_REMOTE_OPEN:
      pn_session_open(pn_event_session(e));
      break;
    case PN_LINK_REMOTE_OPEN: {
      pn_link_t* l = pn_event_link(e);
      if (pn_link_is_receiver(l)) {
        pn_terminus_copy(pn_link_source(l), pn_link_remote_source(l));
        pn_terminus_copy(pn_link_target(l), pn_link_remote_target(l));
        pn_link_set_snd_settle_mode(l, pn_link_remote_snd_settle_mode(l));
        pn_link_open(l);
        pn_link_flow(l, static_cast<int>(p.w->def->credit));
        p.receiver = l;
      } else {
        flag(p.st, "Proton server: unexpected sending link");
      }
      break;
    }
    case PN_TRANSPORT_ERROR:
      flag(p.st, proton_condition("Proton server transport error",
                                  pn_transport_condition(pn_event_transport(e))));
      break;
    case PN_CONNECTION_REMOTE_CLOSE:
    case PN_SESSION_REMOTE_CLOSE:
    case PN_LINK_REMOTE_CLOSE:
    case PN_LINK_REMOTE_DETACH:
      flag(p.st, std::string("Proton server: unexpected ") + pn_event_type_name(pn_event_type(e)));
      break;
    default:
      break;
    }
  }
}

void proton_client_events(proton_pair& p) {
  while (pn_event_t* e = pn_connection_driver_next_event(&p.client)) {
    switch (pn_event_type(e)) {
    case PN_DELIVERY: {
      // The sender: the receiver's disposition arrived.
      pn_delivery_t* d = pn_event_delivery(e);
      if (pn_delivery_updated(d)) {
        if (pn_delivery_remote_state(d) != PN_ACCEPTED) {
          flag(p.st, "Proton client: delivery outcome other than accepted");
        }
        pn_delivery_settle(d);
        ++p.st.settled;
      }
      break;
    }
    case PN_TRANSPORT_ERROR:
      flag(p.st, proton_condition("Proton client transport error",
                                  pn_transport_condition(pn_event_transport(e))));
      break;
    case PN_CONNECTION_REMOTE_CLOSE:
    case PN_SESSION_REMOTE_CLOSE:
    case PN_LINK_REMOTE_CLOSE:
    case PN_LINK_REMOTE_DETACH:
      flag(p.st, std::string("Proton client: unexpected ") + pn_event_type_name(pn_event_type(e)));
      break;
    default:
      break;
    }
  }
}

// The sender: sends while it has credit.
void proton_send(proton_pair& p) {
  const workload& w = *p.w;
  pn_link_t* s = p.sender;
  while (p.st.sent < w.messages && pn_link_credit(s) > 0) {
    ++p.tag;
    pn_delivery_t* d = pn_delivery(s, pn_dtag(reinterpret_cast<const char*>(&p.tag), sizeof p.tag));
    if (w.def->full) {
      pn_message_t* m = w.def->prebuilt ? p.tx_msg.get() : proton_build(w.body);
      std::size_t n = p.tx.size();
      const int rc = pn_message_encode(m, p.tx.data(), &n);
      if (!w.def->prebuilt) {
        pn_message_free(m);
      }
      if (rc != 0) {
        flag(p.st, "pn_message_encode failed");
        return;
      }
      (void)pn_link_send(s, p.tx.data(), n);
    } else {
      (void)pn_link_send(s, reinterpret_cast<const char*>(w.raw.data()), w.raw.size());
    }
    pn_link_advance(s);
    if (w.def->presettled) {
      pn_delivery_settle(d);
    }
    ++p.st.sent;
  }
}

// One exchange in both directions: what the client wrote goes to the server, the server's
// events are handled, and back. Returns the bytes moved.
std::size_t proton_exchange(proton_pair& p, bool count) {
  std::size_t moved = 0;
  for (std::size_t n; (n = proton_move(p.client, p.server)) != 0;) {
    moved += n;
    if (count) {
      p.st.bytes_out += n;
    }
    proton_server_events(p);
  }
  proton_server_events(p);
  for (std::size_t n; (n = proton_move(p.server, p.client)) != 0;) {
    moved += n;
    if (count) {
      p.st.bytes_back += n;
    }
    proton_client_events(p);
  }
  proton_client_events(p);
  return moved;
}

// Open, begin, attach, until the sender holds the receiver's credit (not timed).
void proton_setup(proton_pair& p) {
  const workload& w = *p.w;
  pn_connection_set_container(p.client.connection, "bench-client");
  pn_connection_set_container(p.server.connection, "bench-server");
  pn_connection_open(p.client.connection);
  pn_session_t* s = pn_session(p.client.connection);
  pn_session_open(s);
  p.sender = pn_sender(s, "bench");
  pn_terminus_set_address(pn_link_target(p.sender), "bench");
  pn_link_set_snd_settle_mode(p.sender, w.def->presettled ? PN_SND_SETTLED : PN_SND_UNSETTLED);
  pn_link_set_rcv_settle_mode(p.sender, PN_RCV_FIRST);
  pn_link_open(p.sender);
  for (int i = 0; i < 100 && pn_link_credit(p.sender) < static_cast<int>(w.def->credit); ++i) {
    proton_client_events(p);
    proton_server_events(p);
    (void)proton_exchange(p, false);
  }
  if (!p.st.error.empty() || pn_link_credit(p.sender) != static_cast<int>(w.def->credit)) {
    fail(("Proton: link not attached with credit: " + p.st.error).c_str());
  }
}

// The timed region: from the first transfer to the last message read (presettled) or the
// last delivery settled at the sender (unsettled).
AMQP_BENCH_OP void proton_transfer_loop(proton_pair& p) {
  const workload& w = *p.w;
  while (p.st.error.empty() && !done(w, p.st)) {
    const std::uint64_t sent = p.st.sent;
    proton_send(p);
    if (proton_exchange(p, true) == 0 && p.st.sent == sent && !done(w, p.st)) {
      flag(p.st, "Proton: no progress (nothing to send, nothing written)");
    }
  }
}

// --- Ours -------------------------------------------------------------------------------------

// What one engine reported, for the failure report.
struct event_log {
  std::array<std::uint64_t, std::variant_size_v<amqp::event>> counts{};
  std::array<std::string_view, std::variant_size_v<amqp::event>> names{};
  std::array<std::size_t, 16> last{}; // indexes of the last events, a ring
  std::uint64_t total = 0;
  void add(const amqp::event& e) noexcept {
    if (counts[e.index()]++ == 0) {
      names[e.index()] = amqp::name(e);
    }
    last[total % last.size()] = e.index();
    ++total;
  }
};

amqp::connection_options ours_options(amqp::connection_role role) {
  amqp::connection_options o;
  o.role = role;
  o.container_id = role == amqp::connection_role::client ? "bench-client" : "bench-server";
  return o;
}

struct ours_pair {
  const workload* w = nullptr;
  amqp::connection client;
  amqp::connection server;
  amqp::link_id sender{};
  std::optional<amqp::link_id> receiver;
  std::uint32_t receiver_credit = 0; // the credit the receiver last granted, minus what it read
  std::vector<std::byte> wire;       // --receive: the staging buffer receive() reads
  std::vector<std::byte> tx;         // full: the sender's encoding buffer
  // full_prebuilt: the message encoded for every transfer
  std::unique_ptr<amqp::test::reference_message> tx_msg;
  run_stats st;
  event_log client_log;
  event_log server_log;
  std::string notes; // closes, detaches and errors, as reported

  explicit ours_pair(const workload& wl)
      : w(&wl), client(ours_options(amqp::connection_role::client)),
        server(ours_options(amqp::connection_role::server)), wire(use_receive ? wire_chunk : 0),
        tx(std::max(wl.raw.size(), wl.ours_encoded) + 4096) {
    if (wl.def->prebuilt) {
      tx_msg = std::make_unique<amqp::test::reference_message>(wl.body);
    }
  }
};

// Checks a command's result; a failure is the run's failure.
template <class T> bool ours_ok(ours_pair& p, const amqp::result<T>& r, const char* what) {
  if (!r) {
    flag(p.st, std::string(what) + " failed: " + describe(r.error()));
    return false;
  }
  return true;
}

// Endpoint closes and errors end the run; they are kept for the report.
bool ours_ending(ours_pair& p, const char* who, const amqp::event& e) {
  std::string s;
  if (const auto* c = std::get_if<amqp::connection_closed>(&e)) {
    s = "connection_closed code=" + describe(c->code) + " error=" + describe(c->error) +
        (c->remote ? " (remote)" : " (local)");
  } else if (const auto* se = std::get_if<amqp::session_ended>(&e)) {
    s = "session_ended code=" + describe(se->code) + " error=" + describe(se->error) +
        (se->remote ? " (remote)" : " (local)");
  } else if (const auto* d = std::get_if<amqp::link_detached>(&e)) {
    s = "link_detached code=" + describe(d->code) + " error=" + describe(d->error) +
        (d->remote ? " (remote)" : " (local)");
  } else {
    return false;
  }
  s = std::string(who) + ": " + s;
  p.notes += "  " + s + "\n";
  flag(p.st, s);
  return true;
}

// Moves one chunk of `from`'s output into `to`; returns the bytes moved. By default the
// copy goes straight into `to`'s read_buffer() (as Proton's driver is fed); --receive copies
// into a staging buffer and passes that to receive().
std::size_t ours_move(ours_pair& p, amqp::connection& from, amqp::connection& to,
                      const char* to_name) {
  const std::span<const std::byte> out = from.pending_output();
  const std::size_t n = std::min(out.size(), wire_chunk);
  if (n == 0) {
    return 0;
  }
  amqp::result<void> r;
  const char* call = "receive()";
  if (use_receive) {
    std::memcpy(p.wire.data(), out.data(), n);
    from.consume_output(n);
    r = to.receive({p.wire.data(), n}, amqp::time_point{});
  } else {
    call = "read_done()";
    const std::span<std::byte> in = to.read_buffer(n);
    if (in.size() != n) {
      flag(p.st, std::string(to_name) + ".read_buffer(" + std::to_string(n) + ") gave " +
                     std::to_string(in.size()) + " bytes");
      return 0;
    }
    std::memcpy(in.data(), out.data(), n);
    from.consume_output(n);
    r = to.read_done(n, amqp::time_point{});
  }
  if (!r) {
    flag(p.st, std::string(to_name) + "." + call + " of " + std::to_string(n) +
                   " bytes failed: " + describe(r.error()));
  }
  return n;
}

// The receiver: a complete message arrived.
void ours_receive(ours_pair& p, const amqp::delivery_received& d) {
  const workload& w = *p.w;
  run_stats& st = p.st;
  const std::uint64_t i = st.received++;
  if (d.aborted) {
    flag(st, at_message("delivery aborted", i));
  } else if (w.def->full) {
    auto m = amqp::decode_message(d.payload);
    if (!m) {
      flag(st, at_message("decode_message failed", i));
    } else {
      const auto& props = m->properties;
      check_full(w, st, i, props && props->creation_time ? props->creation_time->ms : 0, m->data());
    }
  } else {
    check_raw(w, st, i, d.payload);
  }
  if (d.settled != w.def->presettled) {
    flag(st, at_message(w.def->presettled ? "delivery not presettled" : "delivery presettled", i));
  }
  if (!d.settled) {
    if (ours_ok(p, p.server.settle(d.delivery, amqp::accepted{}), "server settle()")) {
      ++st.accepted;
    }
  }
  if (p.receiver_credit > 0) {
    --p.receiver_credit;
  }
  if (p.receiver_credit < w.def->credit / 2) {
    (void)ours_ok(p, p.server.flow(d.delivery.link, w.def->credit), "server flow()");
    p.receiver_credit = w.def->credit;
  }
  mark_warm(w, st);
}

void ours_server_events(ours_pair& p) {
  while (auto e = p.server.next_event()) {
    p.server_log.add(*e);
    if (const auto* d = std::get_if<amqp::delivery_received>(&*e)) {
      ours_receive(p, *d);
    } else if (std::holds_alternative<amqp::connection_opened>(*e)) {
      (void)ours_ok(p, p.server.open(), "server open()");
    } else if (const auto* s = std::get_if<amqp::session_begun>(&*e)) {
      if (s->remote_initiated) {
        (void)ours_ok(p, p.server.begin(s->session), "server begin()");
      }
    } else if (const auto* a = std::get_if<amqp::link_attached>(&*e)) {
      if (!a->remote_initiated || a->remote.role != amqp::role::sender) {
        flag(p.st, "server: unexpected link_attached");
        continue;
      }
      amqp::link_options o;
      o.name = a->remote.name;
      o.role = amqp::role::receiver;
      o.snd_settle_mode = a->remote.snd_settle_mode;
      o.rcv_settle_mode = amqp::receiver_settle_mode::first;
      o.source = a->remote.source;
      if (a->remote.target) {
        if (const auto* t = std::get_if<amqp::target>(&*a->remote.target)) {
          o.target = *t;
        }
      }
      if (ours_ok(p, p.server.attach(a->link, o), "server attach()") &&
          ours_ok(p, p.server.flow(a->link, p.w->def->credit), "server flow()")) {
        p.receiver = a->link;
        p.receiver_credit = p.w->def->credit;
      }
    } else {
      (void)ours_ending(p, "server", *e);
    }
  }
}

void ours_client_events(ours_pair& p) {
  while (auto e = p.client.next_event()) {
    p.client_log.add(*e);
    if (const auto* u = std::get_if<amqp::delivery_updated>(&*e)) {
      // The sender: the receiver's disposition arrived.
      if (!u->state || !std::holds_alternative<amqp::accepted>(*u->state)) {
        flag(p.st, "client: delivery_updated without the accepted outcome");
      }
      if (!u->settled) {
        (void)ours_ok(p, p.client.settle(u->delivery), "client settle()");
      }
      ++p.st.settled;
    } else {
      (void)ours_ending(p, "client", *e);
    }
  }
}

// The sender: sends while it has credit (and the engine takes more output).
void ours_send(ours_pair& p) {
  const workload& w = *p.w;
  amqp::transfer_options t;
  t.settled = w.def->presettled;
  t.payload = w.raw;
  while (p.st.sent < w.messages && p.client.credit(p.sender) > 0) {
    if (w.def->prebuilt) {
      const auto n = amqp::encode(p.tx_msg->msg, p.tx);
      if (!n) {
        flag(p.st, "encode failed: " + describe(n.error()));
        return;
      }
      t.payload = {p.tx.data(), *n};
    } else if (w.def->full) {
      const amqp::test::reference_message m(w.body);
      const auto n = amqp::encode(m.msg, p.tx);
      if (!n) {
        flag(p.st, "encode failed: " + describe(n.error()));
        return;
      }
      t.payload = {p.tx.data(), *n};
    }
    const auto r = p.client.send(p.sender, t);
    if (!r) {
      if (r.error() != amqp::errc::would_block) {
        flag(p.st, "client send() failed: " + describe(r.error()));
      }
      return;
    }
    ++p.st.sent;
  }
}

std::size_t ours_exchange(ours_pair& p, bool count) {
  std::size_t moved = 0;
  for (std::size_t n; (n = ours_move(p, p.client, p.server, "server")) != 0;) {
    moved += n;
    if (count) {
      p.st.bytes_out += n;
    }
    ours_server_events(p);
  }
  ours_server_events(p);
  for (std::size_t n; (n = ours_move(p, p.server, p.client, "client")) != 0;) {
    moved += n;
    if (count) {
      p.st.bytes_back += n;
    }
    ours_client_events(p);
  }
  ours_client_events(p);
  return moved;
}

void ours_setup(ours_pair& p) {
  const workload& w = *p.w;
  if (ours_ok(p, p.client.open(), "client open()")) {
    const auto s = p.client.begin();
    if (ours_ok(p, s, "client begin()")) {
      amqp::link_options o;
      o.name = "bench";
      o.role = amqp::role::sender;
      o.snd_settle_mode = w.def->presettled ? amqp::sender_settle_mode::settled
                                            : amqp::sender_settle_mode::unsettled;
      o.rcv_settle_mode = amqp::receiver_settle_mode::first;
      amqp::target t;
      t.address = "bench";
      o.target = t;
      const auto l = p.client.attach(*s, o);
      if (ours_ok(p, l, "client attach()")) {
        p.sender = *l;
      }
    }
  }
  for (int i = 0; i < 100 && p.st.error.empty() && p.client.credit(p.sender) < w.def->credit; ++i) {
    ours_client_events(p);
    ours_server_events(p);
    (void)ours_exchange(p, false);
  }
  if (p.st.error.empty() && p.client.credit(p.sender) != w.def->credit) {
    flag(p.st, "setup: the sender has credit " + std::to_string(p.client.credit(p.sender)) +
                   " after the handshake, expected " + std::to_string(w.def->credit));
  }
}

AMQP_BENCH_OP void ours_transfer_loop(ours_pair& p) {
  const workload& w = *p.w;
  while (p.st.error.empty() && !done(w, p.st)) {
    const std::uint64_t sent = p.st.sent;
    ours_send(p);
    if (ours_exchange(p, true) == 0 && p.st.sent == sent && !done(w, p.st)) {
      flag(p.st, "ours: no progress (nothing sent, nothing written)");
    }
  }
}

std::string log_text(const event_log& log) {
  std::string s;
  for (std::size_t k = 0; k < log.counts.size(); ++k) {
    if (log.counts[k] != 0) {
      s += " " + std::string(log.names[k]) + "=" + std::to_string(log.counts[k]);
    }
  }
  s += "\n    last:";
  const std::uint64_t n = std::min<std::uint64_t>(log.total, log.last.size());
  for (std::uint64_t k = log.total - n; k < log.total; ++k) {
    s += " " + std::string(log.names[log.last[k % log.last.size()]]);
  }
  return s;
}

// What each engine reported, after a failed run.
void ours_report(ours_pair& p) {
  const auto state = [](amqp::endpoint_state s) {
    constexpr std::array<const char*, 3> names = {"uninit", "active", "closed"};
    return std::string("local ") + names[static_cast<std::size_t>(s.local)] + ", remote " +
           names[static_cast<std::size_t>(s.remote)];
  };
  std::fprintf(
      stderr,
      "  sent %llu, read %llu, accepted %llu, settled at sender %llu;"
      " bytes client->server %llu, back %llu (timed region)\n",
      static_cast<unsigned long long>(p.st.sent), static_cast<unsigned long long>(p.st.received),
      static_cast<unsigned long long>(p.st.accepted), static_cast<unsigned long long>(p.st.settled),
      static_cast<unsigned long long>(p.st.bytes_out),
      static_cast<unsigned long long>(p.st.bytes_back));
  std::fprintf(stderr, "  client: connection %s, error %s, credit %u, pending output %zu\n",
               state(p.client.state()).c_str(), describe(p.client.error()).c_str(),
               p.client.credit(p.sender), p.client.pending_output().size());
  std::fprintf(stderr, "  server: connection %s, error %s, pending output %zu\n",
               state(p.server.state()).c_str(), describe(p.server.error()).c_str(),
               p.server.pending_output().size());
  std::fprintf(stderr, "  client events:%s\n", log_text(p.client_log).c_str());
  std::fprintf(stderr, "  server events:%s\n", log_text(p.server_log).c_str());
  if (!p.notes.empty()) {
    std::fprintf(stderr, "%s", p.notes.c_str());
  }
}

// --- Runs -------------------------------------------------------------------------------------

constexpr std::string_view impl_name(impl i) noexcept {
  return i == impl::ours ? "ours" : "proton-c";
}

[[noreturn]] void run_failed(const workload& w, impl i, const std::string& error) {
  std::fprintf(stderr, "bench_engine: %s %s: %s\n", std::string(impl_name(i)).c_str(),
               std::string(w.def->name).c_str(), error.c_str());
  std::exit(1);
}

// One run: a fresh pair, set up, the timed loop, the checks.
run_stats run_once(const workload& w, impl i) {
  if (i == impl::proton) {
    proton_pair p(w);
    proton_setup(p);
    p.st.alloc_mark = heap_allocations;
    const double t0 = now_seconds();
    proton_transfer_loop(p);
    const double t1 = now_seconds();
    p.st.allocs = heap_allocations - p.st.alloc_mark;
    p.st.seconds = t1 - t0;
    check_totals(w, p.st);
    if (!p.st.error.empty()) {
      std::fprintf(stderr,
                   "  sent %llu, read %llu, accepted %llu, settled at sender %llu,"
                   " sender credit %d, queued %d\n",
                   static_cast<unsigned long long>(p.st.sent),
                   static_cast<unsigned long long>(p.st.received),
                   static_cast<unsigned long long>(p.st.accepted),
                   static_cast<unsigned long long>(p.st.settled), pn_link_credit(p.sender),
                   pn_link_queued(p.sender));
      run_failed(w, i, p.st.error);
    }
    return p.st;
  }
  ours_pair p(w);
  ours_setup(p);
  if (p.st.error.empty()) {
    p.st.alloc_mark = heap_allocations;
    const double t0 = now_seconds();
    ours_transfer_loop(p);
    const double t1 = now_seconds();
    p.st.allocs = heap_allocations - p.st.alloc_mark;
    p.st.seconds = t1 - t0;
    check_totals(w, p.st);
  }
  if (!p.st.error.empty()) {
    ours_report(p);
    run_failed(w, i, p.st.error);
  }
  return p.st;
}

struct impl_results {
  std::vector<double> rates; // msg/s per round
  std::vector<double> ns;    // ns/msg per round
  std::vector<double> allocs;
  std::vector<double> wire_out;
  std::vector<double> wire_back;

  void add(const workload& w, const run_stats& st) {
    const auto n = static_cast<double>(w.messages);
    rates.push_back(n / st.seconds);
    ns.push_back(st.seconds * 1e9 / n);
    allocs.push_back(static_cast<double>(st.allocs) / static_cast<double>(w.messages - w.warm_up));
    wire_out.push_back(static_cast<double>(st.bytes_out) / n);
    wire_back.push_back(static_cast<double>(st.bytes_back) / n);
  }
};

struct variant_run {
  workload w;
  impl_results ours;
  impl_results proton;
  std::vector<double> ratios; // ours / Proton, msg/s, per round
};

void print_impl(const variant_run& v, impl i) {
  const impl_results& r = i == impl::ours ? v.ours : v.proton;
  const std::string base = std::string(impl_name(i)) + ".engine." + std::string(v.w.def->name);
  const double rate = median(r.rates);
  if (v.w.large()) {
    std::printf("%s %.1f MB/s\n", base.c_str(), rate * static_cast<double>(v.w.raw.size()) / 1e6);
    std::printf("%s.msg_per_s %.0f msg/s\n", base.c_str(), rate);
  } else {
    std::printf("%s %.0f msg/s\n", base.c_str(), rate);
  }
  std::printf("%s.ns %.0f ns/msg\n", base.c_str(), median(r.ns));
  print_count(base + ".allocs", median(r.allocs), "per_msg");
  std::printf("%s.wire_bytes %.1f per_msg\n", base.c_str(), median(r.wire_out));
  std::printf("%s.wire_bytes_back %.1f per_msg\n", base.c_str(), median(r.wire_back));
}

struct options {
  int rounds = 7;
  bool quick = false;
  std::vector<std::string> variants; // empty: all
  std::uint64_t messages = 0;        // 0: the variant's N
  std::string data_dir = AMQP_BENCH_DATA_DIR;
  std::optional<impl> only;
  std::string callgrind; // the variant to run once per implementation, untimed
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: bench_engine [--quick] [--rounds N] [--variant NAME]... [--messages N]"
               " [--data DIR] [--chunk BYTES] [--receive] [--cpu-time] [--impl ours|proton]"
               " [--callgrind VARIANT]\n"
               "variants:");
  for (const variant_def& d : variant_defs) {
    std::fprintf(stderr, " %s", std::string(d.name).c_str());
  }
  std::fprintf(stderr, "\n");
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for_each_arg(argc, argv, usage, [&](std::string_view a, auto& next) {
    if (a == "--quick") {
      o.quick = true;
      o.rounds = 3;
    } else if (a == "--rounds") {
      o.rounds = std::max(1, std::atoi(next()));
    } else if (a == "--variant") {
      o.variants.emplace_back(next());
    } else if (a == "--messages") {
      o.messages = std::strtoull(next(), nullptr, 10);
    } else if (a == "--receive") {
      use_receive = true;
    } else if (a == "--chunk") {
      wire_chunk = std::max<std::size_t>(1, std::strtoull(next(), nullptr, 10));
    } else if (a == "--data") {
      o.data_dir = next();
    } else if (a == "--cpu-time") {
      amqp::bench::use_cpu_clock = true;
    } else if (a == "--impl") {
      o.only = parse_impl(next(), "proton-c");
      if (!o.only) {
        usage();
      }
    } else if (a == "--callgrind") {
      o.callgrind = next();
    } else {
      return false;
    }
    return true;
  });
  if (!o.callgrind.empty()) {
    o.variants = {o.callgrind};
  }
  for (const std::string& v : o.variants) {
    if (std::none_of(variant_defs.begin(), variant_defs.end(),
                     [&](const variant_def& d) { return d.name == v; })) {
      usage();
    }
  }
  return o;
}

// --callgrind: each implementation's loop once, untimed.
void run_for_callgrind(const workload& w, const std::vector<impl>& impls) {
  for (impl i : impls) {
    if (i == impl::proton) {
      proton_pair p(w);
      proton_setup(p);
      proton_transfer_loop(p);
      check_totals(w, p.st);
      if (!p.st.error.empty()) {
        run_failed(w, i, p.st.error);
      }
    } else {
      ours_pair p(w);
      ours_setup(p);
      if (p.st.error.empty()) {
        ours_transfer_loop(p);
        check_totals(w, p.st);
      }
      if (!p.st.error.empty()) {
        ours_report(p);
        run_failed(w, i, p.st.error);
      }
    }
    std::fprintf(stderr,
                 "bench_engine: ran %s_transfer_loop once, %s, %llu messages;"
                 " divide its inclusive Ir by %llu\n",
                 i == impl::ours ? "ours" : "proton", std::string(w.def->name).c_str(),
                 static_cast<unsigned long long>(w.messages),
                 static_cast<unsigned long long>(w.messages));
  }
}

} // namespace

int main(int argc, char** argv) {
  amqp::bench::program_name = "bench_engine";
  const options opt = parse(argc, argv);

  const std::vector<impl> impls = impls_to_run(opt.only);

  std::vector<variant_run> runs;
  for (const variant_def& d : variant_defs) {
    if ((opt.variants.empty() && d.by_default) ||
        std::find(opt.variants.begin(), opt.variants.end(), d.name) != opt.variants.end()) {
      runs.push_back({make_workload(d, opt.data_dir, opt.quick, opt.messages), {}, {}, {}});
    }
  }
  for (const variant_run& v : runs) {
    if (v.w.messages < 2) {
      fail("--messages: at least 2");
    }
  }

  if (!opt.callgrind.empty()) {
    run_for_callgrind(runs.front().w, impls);
    return 0;
  }

  amqp::bench::check_allocation_counting();

  // Warm-up (and a first self-check): one short run of each.
  for (const variant_run& v : runs) {
    workload w = v.w;
    w.messages = std::max<std::uint64_t>(w.messages / 10, 2);
    w.warm_up = w.messages / 10;
    for (impl i : impls) {
      (void)run_once(w, i);
    }
  }

  for (int round = 0; round < opt.rounds; ++round) {
    for (variant_run& v : runs) {
      for (impl i : round_order(impls, round)) {
        const run_stats st = run_once(v.w, i);
        (i == impl::ours ? v.ours : v.proton).add(v.w, st);
      }
      if (!v.ours.rates.empty() && !v.proton.rates.empty()) {
        v.ratios.push_back(v.ours.rates.back() / v.proton.rates.back());
      }
    }
  }

  for (const variant_run& v : runs) {
    for (impl i : impls) {
      if (i == impl::ours) {
        print_impl(v, i);
      }
    }
    for (impl i : impls) {
      if (i == impl::proton) {
        print_impl(v, i);
      }
    }
    print_ratios("ratio.engine." + std::string(v.w.def->name), v.ratios);
  }
  return 0;
}
