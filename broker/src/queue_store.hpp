// The broker's queue store: queues by name, the messages each holds in arrival order, the
// limits on queues and bytes (per queue and broker-wide), and the order messages come back
// in when they are returned. Messages are owned by exactly one place at a time: a queue
// here, or the consumer link that holds them unsettled (dispatch.hpp); the store counts
// the bytes of both. Knows nothing of connections; the consumer and producer lists a queue
// keeps are dispatch's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/broker.hpp"
#include "amqp/result.hpp"

namespace amqp::broker {

struct link_entry;

// A message held by the broker: its encoded sections, copied from the producer's transfer.
struct stored_message {
  std::vector<std::byte> payload;
  std::uint32_t message_format = 0;
  std::uint64_t seq = 0;                    // arrival order: a queue is sorted by it
  std::vector<std::uint64_t> undeliverable; // keys of consumers that refused it here
};

// Consumers remembered per message as having answered undeliverable-here.
inline constexpr std::size_t max_undeliverable = 16;

struct queue {
  std::string name;
  std::deque<stored_message> messages; // sorted by seq
  std::size_t bytes = 0;               // of `messages`
  std::size_t in_flight = 0;           // delivered, unsettled (held by consumer links)
  std::size_t in_flight_bytes = 0;
  std::vector<link_entry*> consumers;
  std::size_t next = 0; // round-robin position in consumers
  std::size_t draining = 0;
  std::vector<link_entry*> producers;
  bool producers_starved = false; // some producer got less than a full credit window
  bool dynamic = false;
  bool declared = false;
  queue_stats counters{};
};

class queue_store {
public:
  // The limits are broker_options' (auto_create_queues, max_queues, max_queue_messages,
  // max_queue_bytes, max_total_bytes); `o` must outlive the store.
  explicit queue_store(const broker_options& o) noexcept : opts_(o) {}

  // ---- queues

  // The queue an address names (an absolute URL names the node of its path), found or
  // created. Errors: errc::invalid_state (unknown, and auto-creation is off),
  // errc::resource_limit (max_queues).
  [[nodiscard]] result<queue*> find_or_create(std::string_view address);
  // The queue named `name`, or null.
  [[nodiscard]] queue* find(std::string_view name) noexcept;
  [[nodiscard]] const queue* find(std::string_view name) const noexcept;
  // A new dynamic queue with a unique name, or null (max_queues).
  [[nodiscard]] queue* create_dynamic();
  // Creates `name` if needed and keeps it while empty and unused. Errors:
  // errc::invalid_argument (empty name), errc::resource_limit (max_queues).
  [[nodiscard]] result<void> declare(std::string_view name);
  // Deletes `q` with its messages, queued and in flight. Its links must be gone.
  void erase(queue& q);
  // Deletes an auto-created queue that holds nothing and has no link.
  void maybe_gc(queue& q);
  [[nodiscard]] std::size_t size() const noexcept { return queues_.size(); }
  // The names of all queues, sorted.
  [[nodiscard]] std::vector<std::string> names() const;
  // The state and counters of `q`.
  [[nodiscard]] static queue_stats stats(const queue& q);

  // ---- limits

  // `q` holds (queued plus in flight) max_queue_messages or max_queue_bytes.
  [[nodiscard]] bool full(const queue& q) const noexcept;
  // The messages `q` may still take before it is full by count.
  [[nodiscard]] std::size_t room(const queue& q) const noexcept;
  // The broker holds max_total_bytes (every queue, queued and in flight).
  [[nodiscard]] bool memory_full() const noexcept { return total_bytes_ >= opts_.max_total_bytes; }
  // A message of `n` bytes fits in max_total_bytes.
  [[nodiscard]] bool fits(std::size_t n) const noexcept {
    return total_bytes_ + n <= opts_.max_total_bytes;
  }
  [[nodiscard]] std::size_t total_bytes() const noexcept { return total_bytes_; }

  // ---- messages

  // Appends a new message (it gets the next arrival number).
  void enqueue(queue& q, stored_message m);
  // Puts a message back at its place by arrival order: before every message that arrived
  // after it, so returned messages come first and keep their order.
  void requeue(queue& q, stored_message m);
  // The position of the first message the consumer with `consumer_key` may take (not one
  // it answered undeliverable-here for), looking at most 64 messages deep; or npos.
  [[nodiscard]] static std::size_t pick(const queue& q, std::uint64_t consumer_key) noexcept;
  // Removes the message at `pos` for a consumer: `in_flight`, it is still held (unsettled,
  // until settle()); otherwise it leaves the broker.
  [[nodiscard]] stored_message take(queue& q, std::size_t pos, bool in_flight);
  // A message in flight from `q` is settled: it no longer counts (requeue() to keep it).
  void settle(queue& q, const stored_message& m) noexcept;

private:
  const broker_options& opts_;
  std::map<std::string, queue, std::less<>> queues_;
  std::uint64_t next_seq_ = 1;
  std::uint64_t next_dynamic_ = 1;
  std::size_t total_bytes_ = 0; // every queued and in-flight message
};

} // namespace amqp::broker
