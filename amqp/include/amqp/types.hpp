// Identifiers and small value types shared by the engine's commands and events.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>

namespace amqp {

// The engine's notion of time. The engine never reads a clock: the caller passes the
// current time to receive() and on_deadline() (any monotonic clock works; tests use a
// virtual one starting at time_point{}).
using time_point = std::chrono::steady_clock::time_point;
using milliseconds = std::chrono::milliseconds;

// A session of a connection. Its value is the local channel number (AMQP 1.0 §2.1.3); it is
// reused after the session has ended on both sides.
struct session_id {
  std::uint16_t value = 0;
  friend auto operator<=>(session_id, session_id) = default;
};

// A link of a connection. Its value indexes the engine's link table; it is reused after the
// link has been detached on both sides.
struct link_id {
  std::uint32_t value = 0;
  friend auto operator<=>(link_id, link_id) = default;
};

// A delivery: its link and its delivery-id (AMQP 1.0 §2.8.11 delivery-number, unique within
// the link's session while the delivery is unsettled).
struct delivery_id {
  amqp::link_id link{};
  std::uint32_t number = 0;
  friend auto operator<=>(delivery_id, delivery_id) = default;
};

// One side of an endpoint's state (Qpid Proton's grid): not yet opened, open, or closed.
enum class endpoint_status : std::uint8_t { uninit, active, closed };

// The state of a connection, session or link: what this end has done (local) and what the
// peer has done (remote).
struct endpoint_state {
  endpoint_status local = endpoint_status::uninit;
  endpoint_status remote = endpoint_status::uninit;
  friend bool operator==(endpoint_state, endpoint_state) = default;
};

} // namespace amqp
