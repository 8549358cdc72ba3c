// The hub's timers: one min-heap of (time, kind, id) with lazy invalidation. A timer is never
// removed from the heap: its owner keeps the time it wants and ignores an entry that no longer
// matches when it comes due (a token renewed, a lock settled). No scan of everything, ever.
#pragma once

#include <cstdint>
#include <optional>
#include <queue>
#include <vector>

#include "amqp/types.hpp"

namespace amqp::iothub::emulator {

// What a timer is for; the owner interprets `a` and `b`.
enum class timer_kind : std::uint8_t {
  token_expiry,    // a = connection, b = identity serial
  retention,       // a, b unused: trim the partitions
  c2d_lock,        // C2D lock expiry (c2d.cpp)
  c2d_expiry,      // C2D message TTL (c2d.cpp)
  feedback_window, // feedback batching window (feedback.cpp)
  feedback_lock,   // feedback batch lock (feedback.cpp)
  feedback_expiry, // feedback batch TTL (feedback.cpp)
  fault,           // a fault's delay or duration (faults.cpp)
};

struct timer {
  time_point at{};
  timer_kind kind = timer_kind::token_expiry;
  std::uint64_t a = 0;
  std::uint64_t b = 0;
};

class timer_heap {
public:
  // Adds a timer (duplicates are allowed: owners ignore stale ones).
  void schedule(time_point at, timer_kind kind, std::uint64_t a = 0, std::uint64_t b = 0);
  // The earliest time in the heap, stale entries included (a stale one only costs an early
  // wake-up).
  [[nodiscard]] std::optional<time_point> next() const noexcept;
  // Removes and returns the earliest timer due at `now`, or nothing.
  [[nodiscard]] std::optional<timer> pop_due(time_point now);
  [[nodiscard]] std::size_t size() const noexcept { return heap_.size(); }

private:
  struct later {
    bool operator()(const timer& x, const timer& y) const noexcept { return x.at > y.at; }
  };
  std::priority_queue<timer, std::vector<timer>, later> heap_;
};

} // namespace amqp::iothub::emulator
