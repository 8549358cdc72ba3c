// The link endpoint (AMQP 1.0 §2.6): handles, attach and detach, settle modes and the link
// flow state (§2.6.7), and its deliveries.
#pragma once

#include <cstdint>
#include <memory_resource>
#include <optional>

#include "amqp/options.hpp"
#include "amqp/types.hpp"
#include "engine/common.hpp"
#include "engine/delivery.hpp"

namespace amqp::detail {

// A slot of the connection's link table (index = link_id). A slot is reset by assigning a
// freshly constructed link_state when its link is freed.
struct link_state {
  bool used = false;
  endpoint_state st{};
  std::uint16_t session = 0;
  std::uint32_t handle = no_index;        // ours
  std::uint32_t remote_handle = no_index; // the peer's
  amqp::role role = amqp::role::sender;
  bool remote_initiated = false;
  bool attach_sent = false;
  bool detach_closed = true; // the closed flag of our detach
  pstring name;
  sender_settle_mode snd_settle_mode = sender_settle_mode::mixed;
  receiver_settle_mode rcv_settle_mode = receiver_settle_mode::first;
  std::uint64_t max_message_size = 0;        // ours (receiver): 0 = none
  std::uint64_t remote_max_message_size = 0; // the peer's: 0 = none
  // Flow state (§2.6.7).
  std::uint32_t delivery_count = 0;
  std::uint32_t credit = 0;
  // Receiver: transfers the sender may still make against a larger credit this end granted
  // before lowering it (§2.6.7: they were in flight when our flow went out).
  std::uint32_t stale_credit = 0;
  std::uint32_t credit_overrun = 0; // receiver: link_options::credit_overrun
  std::uint32_t overrun_left = 0;   // of it, since our last flow
  std::uint32_t available = 0;
  bool drain = false;
  bool flow_unreported = false; // the peer's flow came before this end answered its attach
  link_deliveries deliveries;
  std::optional<time_point> detach_deadline{};

  explicit link_state(std::pmr::memory_resource* m) : name(m), deliveries(m) {}
};

} // namespace amqp::detail
