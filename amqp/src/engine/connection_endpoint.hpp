// The connection endpoint (AMQP 1.0 §2.4, §2.7.1, §2.7.9): open and close in both
// directions, the close timeout, and what the peer's open announced (max-frame-size,
// channel-max, idle-time-out).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <optional>

#include "amqp/performatives.hpp"
#include "amqp/types.hpp"
#include "engine/common.hpp"
#include "frame/frame.hpp"

namespace amqp::detail {

// The connection endpoint of an engine (one per connection_impl, never reset).
struct connection_endpoint {
  endpoint_state st{};
  bool open_sent = false;
  bool open_received = false;
  bool close_sent = false;
  std::optional<time_point> close_deadline{}; // the peer must answer our close by then
  // The peer's open, kept for the engine's lifetime (connection::remote_open()): its bytes,
  // and the open decoded from them.
  pvec<std::byte> remote_open_bytes;
  amqp::open remote_open{};
  std::uint32_t remote_max_frame_size = min_max_frame_size; // §2.4.1: until its open
  std::uint16_t remote_channel_max = 0xFFFF;
  milliseconds remote_idle{0}; // its idle-time-out: 0 = none

  explicit connection_endpoint(std::pmr::memory_resource* m) : remote_open_bytes(m) {}
};

} // namespace amqp::detail
