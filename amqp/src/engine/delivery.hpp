// The delivery state of the engine (AMQP 1.0 §2.6.12-§2.6.14, §2.7.5, §2.7.6): a session's
// unsettled deliveries, the transfers it holds for the peer's incoming window, and the
// delivery-id sequence; a link's unsettled count, delivery-tag counter and the incoming
// delivery being reassembled; and the disposition being coalesced. Each is part of the
// endpoint that owns it (session_state, link_state, connection_impl) and is reset with it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory_resource>

#include "amqp/messaging.hpp"
#include "amqp/performatives.hpp"
#include "amqp/result.hpp"
#include "engine/byte_buffer.hpp"
#include "engine/common.hpp"

namespace amqp::detail {

// An unsettled delivery in a session's table, sent or received.
struct delivery_slot {
  std::uint32_t id = 0;
  std::uint32_t link = no_index; // no_index: settled (a tombstone until compacted)
};

// Unsettled deliveries of one direction of a session, keyed by delivery-id. Delivery-ids
// are assigned in sequence (AMQP 1.0 §2.6.12), so the table is a vector in serial order
// (RFC 1982) from the oldest unsettled: appending is O(1), a lookup is a binary search, and
// a disposition range [first, last] costs O(log n + the deliveries it names), whatever
// first and last are. Settled entries are tombstones, dropped from the front at once and
// compacted away when they outnumber the live ones.
class delivery_table {
public:
  explicit delivery_table(std::pmr::memory_resource* m) : v_(m) {}
  // The number of unsettled deliveries.
  [[nodiscard]] std::uint32_t span() const noexcept { return live_; }
  // The slot of unsettled delivery `id`, or null.
  [[nodiscard]] delivery_slot* find(std::uint32_t id) noexcept;
  // Appends unsettled delivery `id`, which must come after every id in the table.
  // Errors: errc::invalid_field (out of sequence).
  [[nodiscard]] result<delivery_slot*> push(std::uint32_t id, std::uint32_t link);
  // Marks `s` settled (a tombstone until trim()).
  void erase(delivery_slot* s) noexcept;
  // Drops tombstones from the front, and compacts when they outnumber live entries.
  void trim() noexcept;
  // Calls f(id, slot&) for every unsettled delivery with an id in [first, last].
  template <class F> void for_range(std::uint32_t first, std::uint32_t last, F&& f) {
    std::size_t i = lower_bound(first);
    for (; i < v_.size(); ++i) {
      delivery_slot& s = v_[i];
      if (serial_lt(last, s.id)) {
        break;
      }
      if (s.link != no_index) {
        f(s.id, s);
      }
    }
  }
  // Settles every delivery of link `l` (the link is gone).
  void erase_link(std::uint32_t l) noexcept;

private:
  // The index of the first entry whose id is not before `id`.
  [[nodiscard]] std::size_t lower_bound(std::uint32_t id) const noexcept;
  pvec<delivery_slot> v_;
  std::size_t head_ = 0; // entries before head_ are dropped
  std::uint32_t live_ = 0;
};

// A transfer whose frames wait for the session's remote incoming window (§2.5.6).
struct held_transfer {
  std::uint32_t link = no_index;
  std::uint32_t delivery_id = 0;
  std::array<std::byte, 32> tag{};
  std::uint8_t tag_size = 0;
  std::uint32_t message_format = 0;
  bool settled = false;
  bool first_sent = false; // the first frame (with delivery-id and tag) went out
  bool aborted = false;
  std::size_t offset = 0;
  byte_buffer payload;
};

// The deliveries of a session (§2.6.12): the delivery-id sequence of each direction, the
// unsettled deliveries sent and received, and the transfers held for the peer's window.
struct session_deliveries {
  std::uint32_t next_delivery_id = 0;    // ours
  std::uint32_t next_in_delivery_id = 0; // expected from the peer
  bool in_delivery_seen = false;
  delivery_table outgoing;
  delivery_table incoming;
  pvec<held_transfer> held;

  explicit session_deliveries(std::pmr::memory_resource* m) : outgoing(m), incoming(m), held(m) {}
};

// The delivery of a link being received, from its first transfer frame to its last
// (§2.6.14, §2.7.5). Its buffer is kept from one delivery to the next (no allocation in
// steady state) and views of the last message completed stay valid until the next
// receive() (connection_impl retires it when it would be overwritten sooner).
struct incoming_delivery {
  bool in_progress = false; // the first frame arrived, the last not yet
  bool settled = false;
  std::uint32_t id = 0;
  std::uint32_t format = 0;
  std::array<std::byte, 32> tag{};
  std::uint8_t tag_size = 0;
  std::uint64_t epoch = 0; // receive() call in which `buf` last completed a message
  byte_buffer buf;

  explicit incoming_delivery(std::pmr::memory_resource* m) : buf(m) {}
};

// The deliveries of a link.
struct link_deliveries {
  std::uint32_t unsettled = 0;
  std::uint64_t tag_counter = 0; // delivery-tags made by the engine
  bool held = false;             // a delivery of this link waits in the session's held queue
  incoming_delivery in;

  explicit link_deliveries(std::pmr::memory_resource* m) : in(m) {}
};

// A disposition being coalesced (§2.7.6 ranges): consecutive delivery-ids given the same
// state, one without fields (none, accepted or released).
struct pending_disposition {
  bool active = false;
  std::uint16_t session = 0;
  amqp::role role = amqp::role::receiver;
  std::uint32_t first = 0;
  std::uint32_t last = 0;
  bool settled = false;
  state_kind state = state_kind::none;
};

} // namespace amqp::detail
