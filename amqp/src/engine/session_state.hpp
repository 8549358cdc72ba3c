// The session endpoint (AMQP 1.0 §2.5): channels, begin and end, the session flow state
// (§2.5.6), the handle tables of its links (§2.7.2), and its deliveries.
#pragma once

#include <cstdint>
#include <memory_resource>
#include <optional>

#include "amqp/types.hpp"
#include "engine/common.hpp"
#include "engine/delivery.hpp"

namespace amqp::detail {

// A slot of the connection's session table (index = our channel = session_id). A slot is
// reset by assigning a freshly constructed session_state when its session is freed.
struct session_state {
  bool used = false;
  endpoint_state st{};
  bool remote_initiated = false;
  bool begin_sent = false;
  std::uint16_t remote_channel = 0;
  bool has_remote_channel = false;
  // Flow state (§2.5.6).
  std::uint32_t next_outgoing_id = 0;
  std::uint32_t next_incoming_id = 0;
  std::uint32_t incoming_window_max = 0;
  std::uint32_t incoming_window = 0; // frames the peer may still send
  std::uint32_t remote_incoming_window = 0;
  bool window_used = false; // transfers arrived in this receive(): check the window after
  // Handles (§2.7.2).
  std::uint32_t handle_max = 0;
  std::uint32_t remote_handle_max = 0xFFFF'FFFF;
  pvec<std::uint32_t> local_handles;  // our handle -> link index
  pvec<std::uint32_t> remote_handles; // the peer's handle -> link index
  session_deliveries deliveries;
  std::optional<time_point> end_deadline{};

  explicit session_state(std::pmr::memory_resource* m)
      : local_handles(m), remote_handles(m), deliveries(m) {}
};

} // namespace amqp::detail
