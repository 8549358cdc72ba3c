// The hub the iothub_emulator fuzz target serves its input with, shared with its seed
// recorder (fuzz/seeds/record_iothub_emulator_seeds.cpp) so that recorded client bytes replay
// against the same hub: an in-memory store, a fixed registry with fixed keys, a seeded random
// source, a fixed wall clock (2026-01-01T00:00:00Z at virtual time zero).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "emulator/hub.hpp"
#include "emulator/registry.hpp"
#include "emulator/store.hpp"
#include "support/check.hpp"

namespace amqp::fuzz::iothub {

using namespace amqp::iothub::emulator;

inline constexpr std::int64_t epoch_ms = 1'767'225'600'000;
// Keys (base64 of 32 bytes): tokens in seeds are signed with them.
inline constexpr const char* key_a = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=";
inline constexpr const char* key_b = "YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmI=";
// Tokens in seeds expire in 2100 (se=4102444800).
inline constexpr std::uint64_t token_expiry = 4'102'444'800;

struct world {
  std::unique_ptr<store> db;
  std::unique_ptr<registry> reg;
  seeded_random random{1};
  std::unique_ptr<hub> h;
};

// Options: bit 0 of `variant` turns the Event Hubs redirect off; bit 1 makes the limits small
// (2 identities, 2 receivers per partition, 1 KiB D2C messages, 3 messages per batch).
inline world make_world(std::uint8_t variant = 0) {
  world w;
  auto s = store::open(":memory:");
  require(s.has_value());
  w.db = std::move(*s);
  auto r = registry::load(*w.db, "emulator");
  require(r.has_value());
  w.reg = std::make_unique<registry>(std::move(*r));
  require(w.reg->put_device(*w.db, {"d1", key_a, key_b, true, "sas", "1001"}).has_value());
  require(w.reg->put_device(*w.db, {"d2", key_b, key_a, true, "sas", "1002"}).has_value());
  require(w.reg->put_device(*w.db, {"cam", "", "", true, "selfSigned", "1003"}).has_value());
  require(w.reg->put_module(*w.db, {"d1", "m1", key_b, key_a, "2001"}).has_value());
  require(w.reg->put_policy(*w.db, {"iothubowner", key_a, key_b, permission::all}).has_value());
  require(
      w.reg->put_policy(*w.db, {"service", key_b, key_a, permission::service_connect}).has_value());
  require(w.reg->put_consumer_group(*w.db, "cg1").has_value());
  hub_options o;
  o.unix_offset = milliseconds(epoch_ms);
  o.redirect = (variant & 1U) == 0;
  if ((variant & 2U) != 0) {
    o.max_identities = 2;
    o.max_receivers_per_partition = 2;
    o.max_d2c_message_size = 1024;
    o.max_batch_messages = 3;
  }
  auto h = hub::create(o, *w.db, *w.reg, w.random);
  require(h.has_value());
  w.h = std::move(*h);
  return w;
}

} // namespace amqp::fuzz::iothub
