// Fuzz target iothub_emulator: the IoT Hub emulator's hub (iothub/emulator) serving one
// connection whose client is the input, in memory (support/iothub_world.hpp: an in-memory
// store, a fixed registry, a seeded random source, a fixed clock).
//
// Input (all one byte each): flags | chunk | step | variant | the client's bytes after its
// protocol header.
//   flags bit 0: the client's header is SASL's (AMQP 3 1 0 0), else AMQP's (no SASL);
//   flags bit 1: the client came over TLS with a verified certificate "CN=cam" (an X.509
//                device of the registry);
//   flags bit 2: the socket is dropped at the end without the engine being told (as KillTcp);
//   chunk: 0 feeds all the bytes at once, else that many bytes per receive();
//   step: the virtual clock advances step seconds after each chunk (engine and hub timers run);
//   variant: iothub_world.hpp make_world() (redirect off, small limits).
// Seeds are recorded from client engines talking to this same hub
// (seeds/record_iothub_emulator_seeds.cpp).
//
// Checks (a failure traps): receive() fails only with a sticky error, never would_block (the
// driver processes after every receive); the hub never holds more identities on the
// connection than its limit; every connection is gone after remove_connection(); and the
// sanitizers of the fuzz build.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "support/check.hpp"
#include "support/iothub_world.hpp"

using namespace amqp::fuzz::iothub;
using amqp::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) {
    return 0;
  }
  const std::uint8_t flags = data[0];
  const std::size_t chunk = data[1];
  const auto step = std::chrono::seconds(data[2]);
  world w = make_world(data[3]);
  const std::size_t max_identities = w.h->options().max_identities;

  peer_info peer;
  peer.address = "127.0.0.1:1";
  if ((flags & 2U) != 0) {
    peer.tls = true;
    peer.certificate_subject = "CN=cam,O=fuzz";
  }
  amqp::time_point now{};
  const connection_handle c = w.h->add_connection(now, peer);
  w.h->engine(c)->on_deadline(now); // the transport starts the engine's clocks at accept

  std::vector<std::byte> input = {std::byte{'A'},
                                  std::byte{'M'},
                                  std::byte{'Q'},
                                  std::byte{'P'},
                                  std::byte{static_cast<unsigned char>((flags & 1U) != 0 ? 3 : 0)},
                                  std::byte{1},
                                  std::byte{0},
                                  std::byte{0}};
  const auto* rest = reinterpret_cast<const std::byte*>(data + 4);
  input.insert(input.end(), rest, rest + (size - 4));

  bool gone = false;
  auto drain = [&] {
    amqp::connection* e = w.h->engine(c);
    if (e == nullptr) {
      return;
    }
    for (int i = 0; i < 4; ++i) {
      const auto out = e->pending_output();
      if (out.empty()) {
        break;
      }
      e->consume_output(out.size());
      w.h->on_output_written(c);
    }
    (void)w.h->take_dirty();
    for (const connection_handle a : w.h->take_aborted()) {
      if (a == c) {
        w.h->remove_connection(c);
        gone = true;
      }
    }
  };

  std::size_t pos = 0;
  while (!gone && pos < input.size()) {
    amqp::connection* e = w.h->engine(c);
    if (e->finished() || !e->wants_read()) {
      break;
    }
    const std::size_t n = chunk == 0 ? input.size() - pos : std::min(chunk, input.size() - pos);
    auto r = w.h->receive(c, std::span<const std::byte>(input).subspan(pos, n), now);
    pos += n;
    if (!r) {
      require(r.error() != amqp::errc::would_block);
      // Fatal errors stick.
      auto again = w.h->receive(c, std::span<const std::byte>(input).subspan(pos, 0), now);
      require(!again.has_value() && again.error() == r.error());
    }
    w.h->process(c, now);
    drain();
    if (gone) {
      break;
    }
    if (auto i = w.h->info(c)) {
      require(i->identities.size() <= max_identities + 1); // + the X.509 identity
    }
    if (!r) {
      break;
    }
    if (step.count() > 0) {
      now += step;
      if (auto d = e->next_deadline(); d && *d <= now) {
        e->on_deadline(now);
        w.h->process(c, now);
      }
      if (auto d = w.h->next_deadline(); d && *d <= now) {
        w.h->on_deadline(now);
      }
      drain();
    }
  }
  if (!gone) {
    if ((flags & 4U) == 0) {
      w.h->engine(c)->on_transport_closed();
      w.h->process(c, now);
      drain();
    }
    if (!gone) {
      w.h->remove_connection(c);
    }
  }
  require(w.h->connections() == 0);
  require(!w.h->info(c).has_value());
  return 0;
}
