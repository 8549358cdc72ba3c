// The hub's state, shared by the files that implement it (hub.cpp: connections, events, link
// dispatch, timers; auth.cpp: SASL, identities, tokens, permissions; cbs.cpp: the $cbs node;
// telemetry.cpp, event_hubs.cpp, c2d.cpp, feedback.cpp, faults.cpp: the features). Internal:
// not part of the emulator's API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "amqp/connection.hpp"
#include "amqp/event.hpp"
#include "amqp/iothub/address.hpp"
#include "amqp/iothub/feedback.hpp"
#include "amqp/iothub/messages.hpp"
#include "amqp/message.hpp"
#include "emulator/hub.hpp"
#include "emulator/timers.hpp"

namespace amqp::iothub::emulator {

// What a link of a client is, from the hub's side.
enum class link_kind : std::uint8_t {
  cbs_requests,         // the client's sender to $cbs: put-token requests (the hub receives)
  cbs_responses,        // the client's receiver from $cbs: the answers (the hub sends)
  telemetry,            // a device's D2C sender (the hub receives)
  device_c2d,           // a device's C2D receiver (the hub sends)
  service_c2d,          // the service's C2D sender (the hub receives)
  feedback,             // the service's feedback receiver (the hub sends)
  file_notifications,   // the service's file-upload notification receiver (nothing is sent)
  partition_reader,     // an Event Hubs partition receiver (the hub sends)
  management_requests,  // the client's sender to $management (the hub receives)
  management_responses, // the client's receiver from $management (the hub sends)
};

// The name of a link kind, for logs and tests.
[[nodiscard]] std::string_view kind_name(link_kind k) noexcept;

// Who an identity is (§2).
enum class principal_kind : std::uint8_t { device, module, policy, x509 };

// One identity of a connection (§2): authorized by a token (put-token or SASL PLAIN) or by
// the TLS client certificate.
struct identity {
  std::uint64_t serial = 0; // unique for the hub's life: timers name it
  std::string audience;     // the key: decoded, lower-cased
  principal_kind kind = principal_kind::device;
  device_identity device; // device, module, x509
  std::string policy;     // policy: its name as registered
  std::uint32_t permissions = 0;
  // The segments of the token's resource path, decoded and lower-cased: the identity covers
  // the addresses whose path starts with them (§2.1 segment-wise prefix; hosts aside).
  std::vector<std::string> resource;
  std::optional<std::int64_t> expiry; // ms since the epoch; none: X.509
  bool plain = false;                 // SASL PLAIN: the connection closes at expiry (§2.5)
  std::set<std::uint32_t> links;      // the links it authorized, still attached
};

// A response (CBS, $management) waiting for credit on the client's receiving link.
struct queued_message {
  std::vector<std::byte> payload;
};

// A link of a client, attached through the hub.
struct link_state {
  link_id id{};
  session_id session{};
  link_kind kind = link_kind::cbs_requests;
  std::uint64_t key = 0;      // unique for the hub's life (link ids are reused)
  std::uint64_t identity = 0; // serial of the identity that authorized it; 0: none needed
  device_identity device;     // telemetry, device_c2d
  // cbs_responses, management_responses: the client's target address, which its requests
  // name as reply-to.
  std::string reply_address;
  // Hub-sending links: answers waiting for the client's credit (bounded by the requests'
  // credit window). A vector, not a deque: an empty one holds no memory (libstdc++'s deque
  // allocates 576 bytes when constructed, on every link of every idle connection).
  std::vector<queued_message> queued;
  // telemetry: the link's com.microsoft:model-id (IoT Plug and Play), stamped as
  // dt-dataschema (doc §3.4); empty: none.
  std::string model_id;
  // The client's link name (an Event Hubs client names its answer link in reply-to).
  std::string name;

  // ---- partition_reader (event_hubs.cpp)
  std::string consumer_group; // lower-cased: the key of the reader group
  std::uint32_t partition = 0;
  std::int64_t next = 0;             // the sequence number it gets next
  std::optional<std::int64_t> epoch; // com.microsoft:epoch (§6.3)
  std::string receiver_name;         // com.microsoft:receiver-name, or "nil"
  bool runtime_metric = false;       // com.microsoft:enable-receiver-runtime-metric
  bool drain = false;                // the client asked to drain

  // ---- device_c2d, feedback: unsettled deliveries, by delivery-number, to the serial of the
  // lock they were sent under (a later lock makes the old delivery's disposition stale).
  std::unordered_map<std::uint32_t, std::uint64_t> locks;
  std::string queue;      // device_c2d: the key of its device's queue
  bool presettle = false; // device_c2d, feedback: snd-settle-mode settled (at most once)
};

// A C2D message held by the hub (c2d.cpp).
struct c2d_entry {
  c2d_record rec;
  std::uint64_t id = 0;   // unique for the hub's life: its TTL timer names it
  std::uint64_t lock = 0; // the serial of the lock it is under; 0: available
  amqp::uuid lock_token{};
  connection_handle lock_conn = 0;
  std::uint32_t lock_link = 0;
};

// A device's (or module's) C2D queue.
struct c2d_queue {
  device_identity target;
  std::map<std::int64_t, c2d_entry> messages; // by sequence number
  std::int64_t next_sequence = 1;
  std::vector<std::pair<connection_handle, std::uint32_t>> receivers;
  std::size_t next_receiver = 0; // round-robin position
};

// A fault asked for by a D2C message (§9.4), waiting for its delay (faults.cpp).
struct pending_fault {
  std::string type;   // AzIoTHub_FaultOperationType
  std::string reason; // AzIoTHub_FaultOperationCloseReason
  std::int64_t duration_s = 0;
  connection_handle connection = 0;
  std::uint32_t link = 0; // the telemetry link the message came on
  std::uint64_t link_key = 0;
  session_id session{};
  device_identity device;
};

// A feedback batch held by the hub (feedback.cpp).
struct feedback_entry {
  feedback_batch batch;
  std::uint64_t lock = 0;
  connection_handle lock_conn = 0;
  std::uint32_t lock_link = 0;
};

// An outcome for a delivery the hub received, sent once the store committed.
struct pending_outcome {
  delivery_id delivery{};
  bool accept = true;
  std::string condition; // rejected: the condition, description and info
  std::string description;
  owned_value info;
};

struct conn_state {
  connection_handle handle = 0;
  amqp::connection engine;
  peer_info peer;
  std::string container_id;
  auth_mode auth = auth_mode::none;
  std::map<std::string, identity, std::less<>> identities; // by audience
  std::unordered_map<std::uint32_t, std::unique_ptr<link_state>> links;
  std::vector<pending_outcome> outcomes; // of the current process() call
  bool dirty = false;
  bool aborted = false;
  bool closed = false;

  conn_state(const connection_options& o) : engine(o) {}
};

// Why a token or a put-token was refused: the CBS status and description (§2.4).
struct refusal {
  std::int32_t status = 401;
  std::string description;
};

struct hub::impl {
  hub_options opts;
  store& db;
  registry& reg;
  random_source& random;
  connection_options conn_opts;
  std::string external_mechanisms; // opts.sasl_mechanisms; EXTERNAL only offered with a cert
  std::string plain_mechanisms;    // without EXTERNAL

  std::unordered_map<connection_handle, std::unique_ptr<conn_state>> conns;
  connection_handle next_handle = 1;
  std::uint64_t next_key = 1;
  std::uint64_t next_serial = 1;
  std::vector<connection_handle> dirty;
  std::vector<connection_handle> aborted;
  conn_state* current = nullptr; // the connection being processed (not reported dirty)
  // The head of each partition (next sequence number and offset, last enqueued time), as
  // committed plus what the open transaction appended.
  std::vector<partition_head> heads;
  // The heads when the open transaction began: restored if it does not commit.
  std::vector<partition_head> heads_at_begin;
  bool tx_failed = false;              // a write of the open transaction failed: it is rolled back
  std::vector<std::byte> stamp_buffer; // telemetry.cpp append: a message's stamped bytes
  // The partition readers of each (consumer group lower-cased, partition): (connection, link).
  std::map<std::pair<std::string, std::uint32_t>,
           std::vector<std::pair<connection_handle, std::uint32_t>>>
      readers;
  std::int64_t created_at = 0; // the hub's creation (meta created_at), ms

  // ---- C2D (c2d.cpp)
  std::map<std::string, c2d_queue> c2d;                                              // by queue key
  std::unordered_map<std::uint64_t, std::pair<std::string, std::int64_t>> c2d_ids;   // TTL timers
  std::unordered_map<std::uint64_t, std::pair<std::string, std::int64_t>> c2d_locks; // by serial
  std::vector<std::pair<std::string, std::int64_t>> c2d_added; // by the open transaction
  std::vector<std::string> c2d_touched; // queues to pump once the transaction commits
  std::uint64_t next_c2d_id = 1;
  std::uint64_t next_lock = 1;

  // ---- feedback (feedback.cpp)
  std::vector<stored_feedback> feedback_pending;
  bool feedback_window_armed = false;
  std::map<std::int64_t, feedback_entry> feedback;                // batches, by id
  std::unordered_map<std::uint64_t, std::int64_t> feedback_locks; // lock serial -> batch
  std::vector<std::pair<connection_handle, std::uint32_t>> feedback_receivers;
  std::size_t next_feedback_receiver = 0;

  // ---- faults (faults.cpp)
  std::unordered_map<std::uint64_t, pending_fault> faults; // by id (the timer's)
  std::uint64_t next_fault = 1;
  std::map<std::string, time_point> throttled_until; // InvokeThrottling, by device id
  std::map<std::string, time_point> quota_until;     // InvokeMaxMessageQuota, by device id
  std::vector<std::uint32_t> appended;               // partitions the open transaction appended to
  time_point now{};                                  // of the current call
  timer_heap timers;

  impl(hub_options o, store& s, registry& r, random_source& rnd);

  // ---- time
  // The wall clock: ms since the Unix epoch.
  [[nodiscard]] std::int64_t wall_ms() const noexcept;
  [[nodiscard]] time_point at_wall_ms(std::int64_t ms) const noexcept;

  [[nodiscard]] conn_state* find(connection_handle c) noexcept;
  void touch(conn_state& c);
  // Before the hub acts on a connection it is not processing (a timer, another connection's
  // input): gives its engine the time (the close timeouts of a detach or end run from the
  // engine's clock) and has its events pulled at the end of the call.
  void sync(conn_state& c);
  std::vector<connection_handle> to_process; // connections sync() touched
  void process_synced();

  // ---- hub.cpp: events and dispatch
  void process(conn_state& c);
  void on_attach(conn_state& c, const link_attached& e);
  void refuse(conn_state& c, const link_attached& e, std::string_view condition,
              std::string_view description);
  link_state& add_link(conn_state& c, const link_attached& e, link_kind k);
  // Answers the client's attach: the hub's end takes the opposite role, the client's
  // termini, and (receiving) the hub's max-message-size. False (and the link detached) if
  // the engine refused.
  bool answer(conn_state& c, const link_attached& e, receiver_settle_mode rcv);
  void on_delivery(conn_state& c, link_state& l, const delivery_received& d);
  void on_flow(conn_state& c, link_state& l, const link_flow& f);
  void remove_link(conn_state& c, std::uint32_t id);
  void remove_links(conn_state& c, const std::optional<session_id>& s);
  // Detaches a link of the hub's own will (expiry, faults) and forgets it.
  void detach(conn_state& c, std::uint32_t id, std::string_view condition,
              std::string_view description);
  // Sends (or queues until credit) a message on a hub-sending link.
  void send_or_queue(conn_state& c, link_state& l, std::vector<std::byte> payload);
  void flush_queued(conn_state& c, link_state& l);
  // Commits the store's transaction and sends the outcomes of c's deliveries.
  void finish_outcomes(conn_state& c);
  // Commits (or, after a failed write, rolls back) the open transaction, if any; false if
  // what it wrote was not kept (`failure` says why). Then deliver_committed() can run.
  bool commit_writes(std::string& failure);
  // Delivers what the last commit made available: events to partition readers, C2D messages,
  // feedback batches.
  void deliver_committed();
  std::vector<std::uint32_t> partitions_to_pump;
  void on_timer(const timer& t);

  // ---- auth.cpp
  void on_sasl_init(conn_state& c, const sasl_init_received& e);
  void on_connection_opened(conn_state& c);
  // Verifies a token for `audience` (empty: the token's own resource) and makes the identity
  // it proves, or says why not (§2.4 statuses and texts).
  [[nodiscard]] std::variant<identity, refusal> verify_token(std::string_view token,
                                                             std::string_view audience);
  // Adds or renews an identity of `c` (§2.5: a renewed token replaces the expiry, links
  // stay). Refused with 403 at max_identities.
  [[nodiscard]] std::optional<refusal> put_identity(conn_state& c, identity id);
  // The identity of `c` allowed to attach a link to `a` (as the client wrote it: `text`),
  // or why not: the condition and description of the refusal.
  struct denial {
    std::string_view condition;
    std::string description;
  };
  [[nodiscard]] std::variant<identity*, denial> authorize(conn_state& c, const address& a,
                                                          std::string_view text);
  void schedule_expiry(conn_state& c, const identity& id);
  void on_token_expiry(connection_handle h, std::uint64_t serial);
  void unbind(conn_state& c, link_state& l);

  // ---- telemetry.cpp
  // Opens the store's transaction if none is open. False (and tx_failed) if it cannot.
  bool ensure_transaction();
  void on_telemetry(conn_state& c, link_state& l, const delivery_received& d);
  // Appends one stamped event for `l`'s device to its partition (inside the transaction):
  // a message of a batch, or a single message as decoded (stamped without a copy).
  bool append(const link_state& l, const identity* id, amqp::message& m);
  bool append(const link_state& l, const identity* id, const message_view& m);
  // The stamp of the next event of `l`'s device (its partition's next position) and the
  // event to store; append_event() stores it with its bytes and moves the head on.
  d2c_stamp next_stamp(const link_state& l, const identity* id, stored_event& e);
  bool append_event(stored_event& e);
  void top_up_telemetry(conn_state& c);
  void trim_partitions();
  // A tracking id as the hub writes them: {32 hex}-G:0-TimeStamp:MM/dd/yyyy HH:mm:ss.
  [[nodiscard]] std::string tracking_id();
  // Defers an outcome (settled after the commit, hub.cpp finish_outcomes).
  void reject_later(conn_state& c, const delivery_received& d, std::string_view condition,
                    std::string description, owned_value info = {});

  // ---- event_hubs.cpp
  // A receiver of /messages/events/...: answered, then redirected (§6.1).
  void redirect(conn_state& c, const link_attached& e, const address& a);
  // A receiver of a partition (§6.2, §6.3): checks, start position, epochs; answers it.
  void attach_reader(conn_state& c, const link_attached& e, const address& a);
  // Sends what `l` may have (credit) of its partition, committed events only.
  void pump_reader(conn_state& c, link_state& l);
  void pump_partition(std::uint32_t p);
  void remove_reader(const conn_state& c, const link_state& l);
  // The next sequence number of partition `p` as committed.
  [[nodiscard]] std::int64_t committed_next(std::uint32_t p) const noexcept;
  void on_management_request(conn_state& c, link_state& l, const delivery_received& d);

  // ---- c2d.cpp
  // Rebuilds the queues from the store (at create).
  [[nodiscard]] result<void> load_c2d();
  void on_c2d_send(conn_state& c, link_state& l, const delivery_received& d);
  void attach_c2d_receiver(conn_state& c, const link_attached& e, const address& a);
  void pump_c2d(const std::string& key);
  void on_c2d_disposition(conn_state& c, link_state& l, const delivery_updated& u);
  // A device link going away: its locks are released at once (the emulator's choice).
  void release_c2d(conn_state& c, link_state& l);
  void on_c2d_lock_expiry(std::uint64_t serial);
  void on_c2d_expiry(std::uint64_t id);
  // Removes a message: completed (accepted) or dead-lettered, with its feedback if asked.
  void finish_c2d(const std::string& key, std::int64_t sequence, feedback_status status);
  // The transaction did not commit: messages it added are forgotten.
  void forget_c2d_added();

  // ---- feedback.cpp
  [[nodiscard]] result<void> load_feedback();
  // A C2D message's fate, for its feedback (§5.1): recorded if its iothub-ack asks for it.
  void add_feedback(const c2d_record& m, feedback_status status);
  void make_feedback_batch();
  void pump_feedback();
  void on_feedback_disposition(conn_state& c, link_state& l, const delivery_updated& u);
  void release_feedback(conn_state& c, link_state& l);
  void on_feedback_lock_expiry(std::uint64_t serial);
  void on_feedback_window();
  void on_feedback_expiry(std::int64_t id);
  // A GUID as .NET writes it: the delivery tag is Guid.ToByteArray() (its first three fields
  // little-endian), the text Guid.ToString() (CS-DEV: LockToken = new Guid(DeliveryTag)).
  [[nodiscard]] static std::string dotnet_guid_text(const amqp::uuid& g);
  // Commits what timers wrote (outside any process() call).
  void commit_timer_writes();

  // ---- faults.cpp
  // A D2C transfer carrying AzIoTHub_FaultOperationType (on a batch: the envelope's) asks for
  // a fault once it is accepted (§9.4): scheduled after its delay. `decoded`: the payload
  // decoded already (a single message), or null.
  void maybe_fault(conn_state& c, const link_state& l, std::span<const std::byte> payload,
                   const message_view* decoded = nullptr);
  void on_fault(std::uint64_t id);
  // InvokeThrottling / InvokeMaxMessageQuota in force for `device`: the rejection to give.
  [[nodiscard]] std::optional<std::pair<std::string_view, std::string>>
  fault_refusal(const device_identity& device) const;

  // ---- cbs.cpp
  void on_cbs_request(conn_state& c, link_state& l, const delivery_received& d);
  // The link an answer to a request received on `from` goes on (§2.4).
  [[nodiscard]] link_state* reply_link(conn_state& c, const link_state& from, link_kind kind,
                                       const std::optional<std::string>& reply_to);
  // Tops the request links (CBS, $management) of `c` up to cbs_credit, unless answers wait.
  void top_up_requests(conn_state& c);
};

} // namespace amqp::iothub::emulator
