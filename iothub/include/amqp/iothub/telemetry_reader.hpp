// The telemetry reader of IoT Hub's built-in endpoint, the Event Hubs-compatible one (doc §6):
// reads device-to-cloud events from one partition or all of them, from a start position, in a
// consumer group, with an optional epoch; `$management` READ of the event hub and of its
// partitions; a checkpoint per partition to resume from.
//
// Two ways in (doc §6.1):
// - the IoT Hub service connection string (a policy with ServiceConnect): the reader connects
//   to the hub, whose receivers on /messages/events/... are detached with amqp:link:redirect;
//   it follows the redirect itself, connecting to the Event Hubs host and port of the info
//   map with an Event Hubs token signed by the same policy key (sb://{host}/{event hub}), and
//   attaches at the info map's address. The caller sees events, never the redirect.
// - the Event Hubs-compatible connection string (Endpoint=sb://...;EntityPath=...): directly.
//
// Reconnects: the connections reconnect by themselves (hub_connection). Each partition
// receiver then re-attaches from the last event the reader took (x-opt-sequence-number >
// that one), and events taken twice across the cut are dropped: no event is delivered twice
// or lost.
//
// Thread-safety: as amqp::transport::client (one io_context; call from its thread). For use
// from other threads, blocking_telemetry_reader.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "amqp/iothub/eventhubs.hpp"
#include "amqp/iothub/hub_connection.hpp"
#include "amqp/message.hpp"
#include "amqp/result.hpp"
#include "amqp/transport/client.hpp"
#include "amqp/transport/options.hpp"

namespace asio {
class io_context;
}

namespace amqp::iothub {

namespace detail {
class telemetry_reader_impl;
struct blocking_reader_state;
} // namespace detail

// Where a partition receiver starts (doc §6.2): the selector filter of its attach.
struct event_position {
  selector filter = end_of_stream();

  // The first event retained (x-opt-offset > '-1').
  [[nodiscard]] static event_position earliest();
  // Only events enqueued after the attach (x-opt-offset > '@latest'): the default.
  [[nodiscard]] static event_position latest();
  // After (or, `inclusive`, at) the event with this offset (opaque text, doc §6.6).
  [[nodiscard]] static event_position from_offset(std::string offset, bool inclusive = false);
  // After (or at) the event with this sequence number.
  [[nodiscard]] static event_position from_sequence_number(std::int64_t sequence_number,
                                                           bool inclusive = false);
  // Events enqueued after (or at) this time.
  [[nodiscard]] static event_position from_enqueued_time(amqp::timestamp time,
                                                         bool inclusive = false);
  friend bool operator==(const event_position&, const event_position&) = default;
};

// One event read from a partition: the message as the hub stored it, and its annotations as
// typed fields (doc §3.4, §6.6).
struct telemetry_event {
  std::string partition;
  std::int64_t sequence_number = 0;         // x-opt-sequence-number
  std::string offset;                       // x-opt-offset
  amqp::timestamp enqueued_time{};          // x-opt-enqueued-time
  std::optional<std::string> partition_key; // x-opt-partition-key, when set
  std::optional<std::string> device_id;     // iothub-connection-device-id
  std::optional<std::string> module_id;     // iothub-connection-module-id
  // The message: body, properties, application properties, every annotation.
  amqp::message message;
};

// Where a partition was read up to: the last event the reader handed out.
struct checkpoint {
  std::string partition;
  std::int64_t sequence_number = -1;
  std::string offset;
  amqp::timestamp enqueued_time{};
  // The position just after this event (by sequence number): resume from here.
  [[nodiscard]] event_position next() const;
  friend bool operator==(const checkpoint&, const checkpoint&) = default;
};

struct telemetry_reader_options {
  // amqps, or amqp_websockets (port 443, /$servicebus/websocket after the redirect).
  hub_protocol protocol = hub_protocol::amqps;
  // The consumer group (doc §6.5).
  std::string consumer_group = "$Default";
  // The owner level of every partition receiver (com.microsoft:epoch, doc §6.3): a receiver
  // with a higher epoch takes the partition from this one (amqp:link:stolen).
  std::optional<std::int64_t> epoch;
  // Events granted to each partition receiver ahead of async_receive, and the most events of
  // one partition waiting in the reader.
  std::uint32_t prefetch = 300;
  // TLS (ca_file for a local hub), reconnect and connect timeouts: as hub_connection_options.
  transport::tls_options tls{};
  transport::reconnect_options reconnect = hub_connection_options{}.reconnect;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(60)};
  // Time one $management request has for its answer.
  std::chrono::milliseconds operation_timeout{std::chrono::seconds(30)};
  // Print every frame, secrets redacted.
  bool trace = false;
};

class telemetry_reader {
public:
  telemetry_reader() = default;
  // Connects from an IoT Hub service connection string (following the redirect of
  // /messages/events/$management to the Event Hubs endpoint) or an Event Hubs-compatible one,
  // and attaches the `$management` requester. The handler runs from the io_context. Errors:
  // errc::invalid_argument (another kind of connection string, a service string with a
  // SharedAccessSignature instead of a key - the Event Hubs token cannot be made -, a redirect
  // whose info map does not parse: last_error() says which), errc::unauthorized,
  // errc::remote_error (the hub refused the link and did not redirect it), the connection's.
  static void async_connect(asio::io_context& io, std::string_view connection_string,
                            telemetry_reader_options options,
                            std::function<void(std::error_code, telemetry_reader)> done);

  // The event hub's name, creation time and partition ids ($management READ). Errors:
  // errc::remote_error (a status other than 200: last_error() has it), errc::timeout,
  // amqp::iothub::errc (a response that does not parse), the requester's.
  void async_get_eventhub_info(std::function<void(std::error_code, eventhub_info)> done);
  // One partition's sequence numbers, last offset and last enqueued time. Errors: as above.
  void async_get_partition_info(std::string partition,
                                std::function<void(std::error_code, partition_info)> done);

  // Starts reading `partition` from `start`; the handler runs once the receiver is attached
  // (on the IoT Hub path, once the redirect is followed). Errors: errc::invalid_state (the
  // partition is open already, or the reader is closed), errc::remote_error (the hub refused:
  // a partition or consumer group that does not exist, a higher epoch holds the partition;
  // last_error() has the condition), the connection's.
  void async_open_partition(std::string partition, event_position start,
                            std::function<void(std::error_code)> done);
  // Starts reading every partition the event hub has (async_get_eventhub_info), each from
  // `start`. Errors: those of async_get_eventhub_info and async_open_partition.
  void async_open_all(event_position start, std::function<void(std::error_code)> done);

  // The next event from any open partition (in order within a partition). Errors:
  // errc::remote_error (a partition receiver was detached, e.g. amqp:link:stolen by a higher
  // epoch: partition_error() has the condition, last_error() the text; the other partitions
  // go on), errc::invalid_state (closed), the connection's (it gave up reconnecting).
  void async_receive(std::function<void(std::error_code, telemetry_event)> done);

  // The checkpoint of each partition that has handed out an event.
  [[nodiscard]] std::vector<checkpoint> checkpoints() const;
  [[nodiscard]] std::optional<checkpoint> checkpoint_of(std::string_view partition) const;
  // The error the hub detached a partition's receiver with, once it did.
  [[nodiscard]] std::optional<transport::link_error>
  partition_error(std::string_view partition) const;
  // The Event Hubs name (the EntityPath, or the first segment of the redirect's address).
  [[nodiscard]] std::string event_hub_name() const;
  // Redirects followed so far (IoT Hub path: the discovery and each partition's).
  [[nodiscard]] std::uint64_t redirects() const noexcept;
  // Reconnections of the Event Hubs connection so far.
  [[nodiscard]] std::uint64_t reconnects() const noexcept;
  // Closes the receivers and the connections. Waiting async_receive calls fail with
  // errc::invalid_state.
  void async_close(std::function<void(std::error_code)> done);
  // What went wrong last, readable.
  [[nodiscard]] std::string last_error() const;
  [[nodiscard]] explicit operator bool() const noexcept { return impl_ != nullptr; }

private:
  friend class blocking_telemetry_reader;
  std::shared_ptr<detail::telemetry_reader_impl> impl_;
  std::string failure_; // last_error() of a reader whose connect failed
};

// A blocking facade: its own io_context on a thread of its own (as transport/blocking.hpp).
// Every call may come from any thread; calls are serialized on the I/O thread. Once close()
// has begun, or on a default-constructed or moved-from object, calls return
// errc::invalid_state at once.
class blocking_telemetry_reader {
public:
  blocking_telemetry_reader() = default;
  ~blocking_telemetry_reader(); // closes
  blocking_telemetry_reader(blocking_telemetry_reader&&) noexcept = default;
  blocking_telemetry_reader& operator=(blocking_telemetry_reader&&) noexcept = default;

  // See telemetry_reader::async_connect; `why` gets last_error() on failure.
  [[nodiscard]] static result<blocking_telemetry_reader>
  connect(std::string_view connection_string, telemetry_reader_options options = {},
          std::string* why = nullptr);
  // The partition ids ($management READ of the event hub).
  [[nodiscard]] result<std::vector<std::string>> partitions();
  [[nodiscard]] result<eventhub_info> eventhub();
  [[nodiscard]] result<partition_info> partition(std::string partition);
  [[nodiscard]] result<void> open_partition(std::string partition, event_position start);
  [[nodiscard]] result<void> open_all(event_position start);
  // The next event, waiting at most `timeout`. Errors: errc::timeout, those of
  // telemetry_reader::async_receive. An event that arrives after the timeout is kept for
  // the next call.
  [[nodiscard]] result<telemetry_event> receive(std::chrono::milliseconds timeout);
  [[nodiscard]] std::vector<checkpoint> checkpoints();
  // See telemetry_reader::partition_error (nullopt also once closed).
  [[nodiscard]] std::optional<transport::link_error> partition_error(std::string partition);
  // See telemetry_reader::reconnects (0 once closed).
  [[nodiscard]] std::uint64_t reconnects();
  // Closes the reader and stops the I/O thread.
  [[nodiscard]] result<void> close();
  [[nodiscard]] std::string last_error() const;

private:
  std::shared_ptr<detail::blocking_reader_state> state_;
};

} // namespace amqp::iothub
