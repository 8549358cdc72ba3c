// The hub emulator's durable state: one SQLite database (sqlite_store.cpp).
//
//   store::open("DIR/hub.db")   a file: WAL journal, synchronous=NORMAL. A commit survives
//                               the process being killed (SIGKILL), not a power loss (the
//                               WAL is not synced at every commit; SQLite's documented trade).
//   store::open(":memory:")     nothing on disk (tests, fuzzing, --state :memory:). The
//                               events are then not in SQLite but in a deque a partition
//                               (an insert cost a third of the hub's CPU a message); the
//                               other tables are in an in-memory SQLite database, and a
//                               rollback undoes the events' appends and trims with it.
//
// Tables (schema version 1, created on first open):
//   meta(key, value)                  hub name, created_at, options, schema version
//   devices, modules, policies        the registry (registry.hpp keeps the copy in memory)
//   consumer_groups(name)             Event Hubs-compatible consumer groups ($Default implied)
//   partitions(partition, next_sequence, next_offset, last_enqueued_time, last_offset)
//                                     the head of each partition, kept even when every event
//                                     is trimmed, so sequence numbers never go back
//   events(partition, sequence, offset, enqueued_time, device, bytes)
//                                     D2C events as readers get them (annotations stamped)
//   c2d, feedback_records, feedback_batches
//                                     C2D queues and feedback (their operations come with them)
//
// Writes are grouped by the hub: begin() before the first write of a process() call,
// commit() at its end, before any outcome that acknowledges what was written goes out.
// Writes outside begin()/commit() are committed one by one (SQLite autocommit).
//
// Single-threaded, like the hub. Times are milliseconds since the Unix epoch. Errors are
// std::error_codes of sqlite_category() (the SQLite result code, e.g. SQLITE_FULL), or
// amqp::errc::invalid_state for calls out of order (commit() with no transaction open).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "amqp/result.hpp"

namespace amqp::iothub::emulator {

// The error category of SQLite result codes (its name is "sqlite"; messages from
// sqlite3_errstr).
[[nodiscard]] const std::error_category& sqlite_category() noexcept;

// A device of the registry.
struct device_record {
  std::string id;            // as registered (case-sensitive, DOC-SAS)
  std::string primary_key;   // base64 shared access keys; empty for X.509 devices
  std::string secondary_key; //
  bool enabled = true;       // a disabled device is refused like an unknown one
  // "sas" (symmetric keys), "selfSigned" or "certificateAuthority" (X.509: the TLS client
  // certificate's CN must be the device id), as the registry's authentication.type.
  std::string auth_type = "sas";
  std::string generation_id; // iothub-connection-auth-generation-id of its messages
  friend bool operator==(const device_record&, const device_record&) = default;
};

// A module of a device.
struct module_record {
  std::string device_id;
  std::string id;
  std::string primary_key;
  std::string secondary_key;
  std::string generation_id;
  friend bool operator==(const module_record&, const module_record&) = default;
};

// A shared access policy of the hub (iothubowner, service, device, ...).
struct policy_record {
  std::string name;
  std::string primary_key;
  std::string secondary_key;
  std::uint32_t permissions = 0; // registry.hpp permission bits
  friend bool operator==(const policy_record&, const policy_record&) = default;
};

// The head of one partition: what the next event gets, and when the last one came.
struct partition_head {
  std::uint32_t partition = 0;
  std::int64_t next_sequence = 0;      // x-opt-sequence-number of the next event (from 0)
  std::int64_t next_offset = 0;        // byte offset of the next event in the partition
  std::int64_t last_enqueued_time = 0; // ms; 0 before the first event
  std::int64_t last_offset = -1;       // offset of the last event; -1 before the first
  friend bool operator==(const partition_head&, const partition_head&) = default;
};

// One event of a partition, as stored.
struct stored_event {
  std::uint32_t partition = 0;
  std::int64_t sequence = 0;
  std::int64_t offset = 0;
  std::int64_t enqueued_time = 0; // ms
  std::string device;
  std::vector<std::byte> bytes; // the encoded message, annotations stamped
  friend bool operator==(const stored_event&, const stored_event&) = default;
};

// What a partition retains.
struct partition_range {
  bool empty = true;
  std::int64_t first_sequence = 0; // of the oldest retained event (valid when !empty)
  std::int64_t first_offset = 0;
  std::int64_t bytes = 0; // the retained events' bytes together
  std::int64_t count = 0;
};

// Where a read starts in a partition (the selector filters of doc §6.2 turned into one
// comparison): the first event with sequence/offset/enqueued-time above (or at, when
// `inclusive`) `value`.
struct event_position {
  enum class field : std::uint8_t { sequence, offset, enqueued_time };
  field by = field::sequence;
  std::int64_t value = 0;
  bool inclusive = true;
};

// A cloud-to-device message in its device's queue (§4.2). Locks are not stored: a restart
// releases them, as a connection that goes away does.
struct c2d_record {
  std::string device;
  std::string module; // empty: the device itself
  std::int64_t sequence = 0;
  std::vector<std::byte> message; // as the service sent it
  std::string message_id;         // for feedback (originalMessageId)
  std::string ack;                // iothub-ack: none, positive, negative, full
  std::int64_t expiry = 0;        // ms
  std::int64_t enqueued_time = 0; // ms
  std::uint32_t delivery_count = 0;
  // When the lock of its delivery ends (ms); 0: not locked. Kept so that a message locked
  // when the process was killed stays locked until then (DOC-C2D: redelivered when the lock
  // ends, its delivery count unchanged).
  std::int64_t lock_expiry = 0;
  friend bool operator==(const c2d_record&, const c2d_record&) = default;
};

// A feedback record waiting to be batched (§5.1).
struct stored_feedback {
  std::int64_t id = 0; // assigned by add_feedback
  std::string original_message_id;
  std::string device_id;
  std::string device_generation_id;
  std::string status_code;
  std::string description;
  std::int64_t enqueued_time = 0; // ms
  friend bool operator==(const stored_feedback&, const stored_feedback&) = default;
};

// A batch of feedback records as the message the service receives.
struct feedback_batch {
  std::int64_t id = 0;
  std::vector<std::byte> message; // the encoded feedback message
  std::int64_t enqueued_time = 0; // ms
  std::uint32_t delivery_count = 0;
  friend bool operator==(const feedback_batch&, const feedback_batch&) = default;
};

class store {
public:
  // Opens (or creates) the database at `path`, ":memory:" for one held in memory only, and
  // creates the schema if the database is new. Errors: sqlite_category() codes (the file
  // cannot be opened, is not a database, or is locked by another process: SQLITE_BUSY),
  // amqp::errc::invalid_state (a database of another schema version).
  [[nodiscard]] static result<std::unique_ptr<store>> open(const std::string& path);
  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  // ---- transactions ----------------------------------------------------------------------

  // Opens a transaction. Errors: amqp::errc::invalid_state (one is open), SQLite codes.
  [[nodiscard]] result<void> begin();
  // Commits the open transaction: once this returns, the writes survive a crash of the
  // process. Errors: amqp::errc::invalid_state (none open), SQLite codes (the transaction
  // is then rolled back).
  [[nodiscard]] result<void> commit();
  // Rolls the open transaction back (nothing if none is open).
  void rollback() noexcept;
  [[nodiscard]] bool in_transaction() const noexcept;

  // ---- meta ------------------------------------------------------------------------------

  // The value stored under `key`, or nothing. Errors: SQLite codes.
  [[nodiscard]] result<std::optional<std::string>> get_meta(std::string_view key);
  // Stores `value` under `key`. Errors: SQLite codes.
  [[nodiscard]] result<void> set_meta(std::string_view key, std::string_view value);

  // ---- registry --------------------------------------------------------------------------

  // Inserts or replaces the device with d.id. Errors: SQLite codes.
  [[nodiscard]] result<void> put_device(const device_record& d);
  // Deletes the device and its modules; false if there was none. Errors: SQLite codes.
  [[nodiscard]] result<bool> delete_device(std::string_view id);
  // Every device, ordered by id. Errors: SQLite codes.
  [[nodiscard]] result<std::vector<device_record>> devices();
  [[nodiscard]] result<void> put_module(const module_record& m);
  [[nodiscard]] result<bool> delete_module(std::string_view device_id, std::string_view id);
  // Every module, ordered by device id then id. Errors: SQLite codes.
  [[nodiscard]] result<std::vector<module_record>> modules();
  [[nodiscard]] result<void> put_policy(const policy_record& p);
  [[nodiscard]] result<bool> delete_policy(std::string_view name);
  // Every policy, ordered by name. Errors: SQLite codes.
  [[nodiscard]] result<std::vector<policy_record>> policies();
  [[nodiscard]] result<void> put_consumer_group(std::string_view name);
  [[nodiscard]] result<bool> delete_consumer_group(std::string_view name);
  // Every consumer group created (not $Default, which always exists), ordered by name.
  [[nodiscard]] result<std::vector<std::string>> consumer_groups();

  // ---- partitions and events -------------------------------------------------------------

  // The stored head of every partition that ever had an event, ordered by partition.
  // Errors: SQLite codes.
  [[nodiscard]] result<std::vector<partition_head>> partition_heads();
  // Appends an event (its sequence and offset chosen by the caller, from the head) and
  // moves the partition's head past it: next_sequence = e.sequence + 1, next_offset =
  // e.offset + size of e.bytes, last_enqueued_time = e.enqueued_time, last_offset = e.offset.
  // In a transaction the head's row is written once a partition, by commit() (or by
  // partition_heads(), which reads it); outside one, at once.
  // Errors: SQLite codes (SQLITE_CONSTRAINT: that sequence number is taken).
  [[nodiscard]] result<void> append_event(const stored_event& e);
  // Up to `max_count` events of `partition` from `from` on, in sequence order.
  // Errors: SQLite codes.
  [[nodiscard]] result<std::vector<stored_event>>
  read_events(std::uint32_t partition, const event_position& from, std::size_t max_count);
  // What `partition` retains. Errors: SQLite codes.
  [[nodiscard]] result<partition_range> range(std::uint32_t partition);
  // Deletes the events of `partition` enqueued before `before` (ms), then the oldest ones
  // until the partition retains at most `max_bytes`. Returns the number of events deleted.
  // Errors: SQLite codes.
  [[nodiscard]] result<std::size_t> trim(std::uint32_t partition, std::int64_t before,
                                         std::int64_t max_bytes);

  // ---- cloud-to-device (§4) ------------------------------------------------------------

  // Inserts or replaces the message (device, module, sequence). Errors: SQLite codes.
  [[nodiscard]] result<void> put_c2d(const c2d_record& m);
  // Sets the message's lock expiry (ms; 0: not locked); false if there is no such message.
  // Errors: SQLite codes.
  [[nodiscard]] result<bool> set_c2d_lock(std::string_view device, std::string_view module,
                                          std::int64_t sequence, std::int64_t lock_expiry);
  // Deletes the message; false if there was none. Errors: SQLite codes.
  [[nodiscard]] result<bool> delete_c2d(std::string_view device, std::string_view module,
                                        std::int64_t sequence);
  // Every message of every queue, ordered by device, module, sequence. Errors: SQLite codes.
  [[nodiscard]] result<std::vector<c2d_record>> c2d_messages();

  // ---- feedback (§5.1) -------------------------------------------------------------------

  // Adds a record waiting for its batch; returns its id. Errors: SQLite codes.
  [[nodiscard]] result<std::int64_t> add_feedback(const stored_feedback& r);
  // The records waiting, in the order added. Errors: SQLite codes.
  [[nodiscard]] result<std::vector<stored_feedback>> pending_feedback();
  // Makes a batch of the records `ids` (deleted) with `message`; returns the batch's id.
  // Errors: SQLite codes.
  [[nodiscard]] result<std::int64_t> make_feedback_batch(std::span<const std::int64_t> ids,
                                                         std::span<const std::byte> message,
                                                         std::int64_t enqueued_time);
  // Sets a batch's delivery count. Errors: SQLite codes.
  [[nodiscard]] result<void> set_feedback_delivery_count(std::int64_t id, std::uint32_t count);
  // Deletes a batch (completed or dead-lettered); false if there was none. Errors: SQLite
  // codes.
  [[nodiscard]] result<bool> delete_feedback_batch(std::int64_t id);
  // Every batch, ordered by id. Errors: SQLite codes.
  [[nodiscard]] result<std::vector<feedback_batch>> feedback_batches();

  // ---- introspection ---------------------------------------------------------------------

  // The SQLite handle (sqlite3*), for tests and for the tables whose operations live with
  // their feature (C2D, feedback). Valid as long as the store.
  [[nodiscard]] void* native_handle() const noexcept;

private:
  struct impl;
  explicit store(std::unique_ptr<impl> p) noexcept;
  std::unique_ptr<impl> impl_;
};

} // namespace amqp::iothub::emulator
