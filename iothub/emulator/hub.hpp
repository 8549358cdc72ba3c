// amqp::iothub::emulator::hub: a local Azure IoT Hub in the server role, sans-IO (the design:
// docs/iothub-emulator.md; the protocol: ../shared/docs/iothub-amqp.md, cited as §n).
//
// The hub owns one server engine (amqp::connection) per accepted byte stream and never
// touches a socket, a clock, a thread or an RNG: a transport drives it from one thread, every
// call takes the time, and randomness comes from the injected random_source. Like
// amqp::broker:
//
//   c = add_connection(now, peer)                    // a socket was accepted
//   receive(c, bytes, now) (or engine(c)->read_buffer/read_done)
//   process(c, now)                                  // pull and act on c's events
//   write(engine(c)->pending_output()); engine(c)->consume_output(n); on_output_written(c)
//   for (d : take_dirty()) write d's output too      // e.g. events pushed to readers
//   for (d : take_aborted()) drop d's socket, no close frame, remove_connection(d)
//   at engine(c)->next_deadline(): engine(c)->on_deadline(now); process(c, now)
//   at next_deadline(): on_deadline(now)             // the hub's own timers
//   socket gone: engine(c)->on_transport_closed(); process(c, now); remove_connection(c)
//
// Durability: what a process() call writes (D2C events, C2D messages) is committed to the
// store in one transaction at the end of that call, before any outcome that acknowledges it
// is handed to the engine; nothing acknowledged is lost if the process is killed.
//
// Time: `now` is the engine's monotonic time_point. The hub's wall clock (token expiry,
// enqueued times) is now + hub_options::unix_offset, milliseconds since the Unix epoch; the
// program sets the offset at start (system_clock - steady_clock) and may correct it with
// set_unix_offset() (NTP steps).
//
// Not thread-safe: one thread calls everything. The store, registry and random source
// outlive the hub.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/connection.hpp"
#include "amqp/result.hpp"
#include "amqp/types.hpp"
#include "emulator/random.hpp"
#include "emulator/registry.hpp"
#include "emulator/store.hpp"

namespace amqp::iothub::emulator {

// Options of a hub. Every value the hub announces or enforces is here, with the real hub's
// value as the default (§1.4, §12).
struct hub_options {
  // Host names the hub answers to (the certificate's names; the first is the one it gives
  // out in redirects). The hub name and the first DNS label of each are accepted in SASL
  // PLAIN user names and token audiences (§1.1: clients derive the hub name from HostName).
  std::vector<std::string> host_names{"localhost"};
  // Ports of the listeners, for the Event Hubs redirect (§6.1): a connection that came over
  // TLS is sent to amqps_port, a plain one (tests) to amqp_port.
  std::uint16_t amqps_port = 5671;
  std::uint16_t amqp_port = 5672;
  // Redirect receivers of /messages/events/... to the Event Hubs form (§6.1). Off: they are
  // refused with amqp:not-implemented, and only the Event Hubs form serves reads.
  bool redirect = true;

  // ---- the engine of every connection (§1.4)
  std::uint32_t max_frame_size = 65536;
  std::uint16_t channel_max = 8191;
  // Our open announces half of this (the engine's rule, amqp::engine_timeouts): 480000 ms
  // announces the hub's 240000.
  milliseconds idle_time_out{480'000};
  // Protocol headers, SASL and open must be done within this.
  milliseconds handshake{10'000};
  // SASL mechanisms offered (§1.3), in the hub's order.
  std::string sasl_mechanisms = "EXTERNAL MSSBCBS ANONYMOUS PLAIN";
  // Begin answers (§1.4).
  std::uint32_t incoming_window = 5000;
  std::uint32_t handle_max = 262143;
  // Attach answers of links the hub receives on: max-message-size (§1.4, §3.5); a bigger
  // message makes the engine detach the link with amqp:link:message-size-exceeded.
  std::uint64_t max_message_size = 1'048'576;
  // Credit of the client's $cbs (and $management) sender (§1.4).
  std::uint32_t cbs_credit = 100;
  // Links a connection may have attached through the hub at once; the next attach is refused
  // with amqp:resource-limit-exceeded (the engine's channel-max and handle-max still apply).
  std::size_t max_links_per_connection = 4096;

  // ---- identities (§1.6, §2.5)
  // Identities (put-token audiences) per connection; the next put-token is refused (403).
  std::size_t max_identities = 999;
  // Time a token may be used past its expiry before its links are detached (§2.5).
  milliseconds token_grace{0};

  // ---- telemetry and the Event Hubs-compatible endpoint (§3, §6)
  // Partitions of the event hub; a device's messages go to partition_of(device id).
  std::uint32_t partitions = 4;
  // Credit window of a device's telemetry link, topped up (at half) as messages are
  // committed.
  std::uint32_t d2c_credit = 1000;
  // §3.5: a D2C transfer (a message or a whole batch) above this is rejected with
  // amqp:link:message-size-exceeded.
  std::size_t max_d2c_message_size = 262'144;
  // §3.3: the most messages in a batch (0x80013700); more are rejected.
  std::size_t max_batch_messages = 500;
  // §6.5: events are kept this long (1 day by default, 7 days at most on the real hub) ...
  milliseconds retention{24 * 3600 * 1000};
  // ... and each partition at most this many bytes (oldest events dropped first).
  std::int64_t retention_bytes = 1LL << 30;
  // How often retention is applied.
  milliseconds trim_interval{60'000};
  // §6.3: non-epoch receivers per consumer group and partition; the next is refused with
  // amqp:resource-limit-exceeded.
  std::size_t max_receivers_per_partition = 5;

  // ---- cloud-to-device (§4) and feedback (§5.1)
  // Messages a device's queue holds (queued and locked); the next is rejected (403004).
  std::size_t c2d_max_queue = 50;
  // A C2D message above this is rejected with amqp:link:message-size-exceeded (64 KB).
  std::size_t c2d_max_message_size = 65'536;
  // Time to live without absolute-expiry-time, and the most one may ask for (DOC-C2D).
  milliseconds c2d_default_ttl{3600 * 1000};
  milliseconds c2d_max_ttl{48 * 3600 * 1000};
  // How long a delivered message stays locked to its delivery (DOC-C2D: 1 minute).
  milliseconds c2d_lock{60'000};
  // Abandons after which a message is dead-lettered (DOC-C2D maxDeliveryCount).
  std::uint32_t c2d_max_delivery_count = 10;
  // A feedback batch goes out at this many records, or this long after the first waits.
  std::size_t feedback_batch_size = 64;
  milliseconds feedback_window{15'000};
  // The feedback queue's lock and max delivery count (DOC-C2D feedback settings).
  milliseconds feedback_lock{60'000};
  std::uint32_t feedback_max_delivery_count = 10;
  // Feedback batches no receiver completed are dropped after this (DOC-C2D feedback TTL, 1 h
  // by default): the hub holds no unread feedback forever.
  milliseconds feedback_ttl{3600 * 1000};

  // Wall clock = now.time_since_epoch() + unix_offset (ms since the Unix epoch).
  milliseconds unix_offset{0};
};

// What the transport knows of an accepted connection.
struct peer_info {
  std::string address;             // "127.0.0.1:40312", for logs
  bool tls = false;                // came over TLS (amqps, wss)
  std::string certificate_subject; // a verified client certificate's subject (RFC 2253)
  std::string server_name;         // the TLS SNI name, if any
  std::string websocket_path;      // the WebSocket request path, if any
};

// The partition a device's messages go to (§6.5: partitions by a hash of the device id): the
// 32-bit FNV-1a hash of the device id's bytes, modulo `partitions`. Stable across versions and
// restarts (it is part of the stored state's meaning). Modules go with their device.
[[nodiscard]] std::uint32_t partition_of(std::string_view device_id,
                                         std::uint32_t partitions) noexcept;

// A connection of the hub (an accepted byte stream). Never reused.
using connection_handle = std::uint64_t;

// How a connection authenticated (§1.3).
enum class auth_mode : std::uint8_t {
  none,      // SASL not finished yet
  no_sasl,   // the AMQP header straight away: CBS follows (or X.509)
  anonymous, // SASL ANONYMOUS: CBS follows
  mssbcbs,   // SASL MSSBCBS: CBS follows
  plain,     // SASL PLAIN with a SAS token: one identity, the connection ends with it
  external,  // SASL EXTERNAL: the TLS client certificate
};

// One identity of a connection, as tests and logs see it.
struct identity_info {
  std::string audience;  // as keyed: decoded, lower-cased
  std::string principal; // "device d1", "module d1/m1", "policy service", "x509 d1"
  std::uint32_t permissions = 0;
  std::optional<std::int64_t> expiry; // ms since the epoch; none for X.509
  std::size_t links = 0;              // links it authorized, still attached
};

// What the hub knows of a connection.
struct connection_info {
  peer_info peer{};
  std::string container_id; // ours: DeviceGateway_<32 hex>
  auth_mode auth = auth_mode::none;
  std::vector<identity_info> identities;
  std::size_t links = 0;
  bool closed = false; // the AMQP connection ended
};

class hub {
public:
  // A hub over `s` and `reg` (which must outlive it): rebuilds the partition heads from the
  // store. Errors: those of the store; amqp::errc::invalid_argument (no partition, more than
  // 1024, or no host name).
  [[nodiscard]] static result<std::unique_ptr<hub>> create(hub_options o, store& s, registry& reg,
                                                           random_source& random);
  ~hub();
  hub(const hub&) = delete;
  hub& operator=(const hub&) = delete;

  // ---- connections (as amqp::broker) -----------------------------------------------------

  // A new accepted byte stream: creates its server engine.
  connection_handle add_connection(time_point now, const peer_info& peer);
  // The engine of `c`, or null for an unknown (removed) handle. Valid until
  // remove_connection(c).
  [[nodiscard]] amqp::connection* engine(connection_handle c) noexcept;
  // Feeds bytes read from c's socket; then call process(c, now). Errors:
  // amqp::errc::invalid_state (unknown handle), those of connection::receive.
  [[nodiscard]] result<void> receive(connection_handle c, std::span<const std::byte> in,
                                     time_point now);
  // Pulls every event of c's engine and acts on it, commits what it wrote, then sends the
  // outcomes that acknowledge it. Call after input, after the engine's on_deadline() and
  // after on_transport_closed(). Nothing for an unknown handle.
  void process(connection_handle c, time_point now);
  // A batch of c's output was written: sends that waited for room are retried.
  void on_output_written(connection_handle c);
  // Connections other than the one being processed that got new output since the last
  // call. Each listed once; removed ones are not.
  [[nodiscard]] std::vector<connection_handle> take_dirty();
  // Connections whose socket must be dropped now, with no close frame (fault KillTcp): the
  // transport closes each and calls remove_connection().
  [[nodiscard]] std::vector<connection_handle> take_aborted();
  // The byte stream of `c` is gone and its engine is destroyed: its identities, links,
  // locks and readers go. Unknown handles are ignored.
  void remove_connection(connection_handle c);

  // ---- the hub's timers (token expiry, retention, locks, faults) -------------------------

  // When on_deadline() must be called next, or nothing.
  [[nodiscard]] std::optional<time_point> next_deadline() const noexcept;
  // Runs the hub timers due at `now`; the connections it touched are in take_dirty() and
  // take_aborted().
  void on_deadline(time_point now);
  // Sets the wall clock offset (hub_options::unix_offset).
  void set_unix_offset(milliseconds offset) noexcept;

  // ---- introspection ---------------------------------------------------------------------

  // What the hub knows of `c`, or nothing for an unknown handle.
  [[nodiscard]] std::optional<connection_info> info(connection_handle c) const;
  [[nodiscard]] std::size_t connections() const noexcept;
  [[nodiscard]] const hub_options& options() const noexcept;

  struct impl;

private:
  explicit hub(std::unique_ptr<impl> p) noexcept;
  std::unique_ptr<impl> impl_;
};

} // namespace amqp::iothub::emulator
