// Dispatch: the links clients attach through the broker and what flows on them. Consumers
// (a client's receiving link) are served from their queue round-robin within their credit,
// with drain; producers (a client's sending link) get credit while their queue has room;
// each message a producer sends is routed to a queue (link routing, the anonymous relay,
// admission) and answered with its outcome; each outcome a consumer gives settles, drops
// or returns its message. Works on the connections' engines and the queue store; knows
// nothing of SASL.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "amqp/broker.hpp"
#include "amqp/connection.hpp"
#include "amqp/event.hpp"
#include "queue_store.hpp"

namespace amqp::broker {

struct conn_state;

enum class link_kind : std::uint8_t { consumer, producer };

// A link attached through the broker.
struct link_entry {
  link_kind kind = link_kind::consumer;
  link_id id{};
  session_id session{};
  std::uint64_t key = 0; // unique for the broker's life (link ids are reused)
  conn_state* conn = nullptr;
  queue* q = nullptr;      // null: a producer that is an anonymous relay
  bool owns_q = false;     // q is the dynamic queue this link created
  bool presettle = false;  // consumer: snd-settle-mode settled, send presettled
  bool second = false;     // producer: rcv-settle-mode second, outcomes sent unsettled
  bool blocked = false;    // consumer: the engine refused a send (would_block, limits)
  bool drain = false;      // consumer: the client asked to drain
  bool top_up_due = false; // producer: listed in conn->top_ups
  // Consumer: messages sent unsettled, by delivery-number.
  std::unordered_map<std::uint32_t, stored_message> unsettled;
};

// A connection of the broker: its engine and the links attached through it.
struct conn_state {
  connection_handle handle = 0;
  amqp::connection engine;
  bool dirty = false; // listed by dispatcher::take_dirty
  bool any_blocked = false;
  std::vector<std::uint32_t> top_ups; // producer links whose credit is looked at after process
  connection_info info{};
  std::unordered_map<std::uint32_t, std::unique_ptr<link_entry>> links;

  explicit conn_state(const connection_options& o) : engine(o) {}
};

class dispatcher {
public:
  // `o` (its route, admit, producer_credit, serve_settle_second, max_links_per_connection)
  // and `store` must outlive the dispatcher.
  dispatcher(const broker_options& o, queue_store& store) noexcept : opts_(o), store_(store) {}

  // ---- the connection being processed

  // `c` is the connection whose events are being handled (null: none): new output on it
  // is not reported by take_dirty(), its caller writes it anyway.
  void set_current(conn_state* c) noexcept { current_ = c; }
  // The connections other than the current one that got new output since the last call,
  // each once, in order (some may have been removed since: the caller checks).
  [[nodiscard]] std::vector<connection_handle> take_dirty();

  // ---- events of a connection

  // A link the client attached (AMQP 1.0 §2.6.3): a consumer, a producer, or refused.
  void on_attach(conn_state& c, const link_attached& e);
  // Credit or drain from a consumer (§2.6.7).
  void on_flow(conn_state& c, const link_flow& f);
  // A message from a producer: routed, queued and answered.
  void on_delivery(conn_state& c, const delivery_received& d);
  // An outcome from a consumer (§3.4).
  void on_update(conn_state& c, const delivery_updated& u);
  // Forgets link `id` of `c` (detached): a consumer's unsettled messages go back to the
  // front of its queue in their order; a dynamic queue it created is deleted.
  void remove_link(conn_state& c, std::uint32_t id);
  // Forgets the links of session `s` of `c` (ended), or all of them (nullopt).
  void remove_links(conn_state& c, const std::optional<session_id>& s);
  // After c's input or written output: consumers blocked on it try again, and producers
  // whose credit was left for later get it.
  void retry_blocked(conn_state& c);
  void run_top_ups(conn_state& c);

  // Broker-wide counters: received, refused, aborted.
  [[nodiscard]] const broker_stats& counters() const noexcept { return counters_; }

private:
  void touch(conn_state& c);
  void on_flow(link_entry& l, const link_flow& f);
  void on_delivery(link_entry& l, const delivery_received& d);
  void on_update(link_entry& l, const delivery_updated& u);
  void attach_consumer(conn_state& c, const link_attached& e);
  void attach_producer(conn_state& c, const link_attached& e);
  void refuse(conn_state& c, const link_attached& e, std::string_view condition,
              std::string_view description);
  link_entry& add_link(conn_state& c, const link_attached& e, link_kind k, queue* q, bool owns);
  result<queue*> routed(conn_state& c, bool consume, std::string_view address,
                        amqp::error& refusal);
  bool resolve(conn_state& c, const link_attached& e, bool consume, bool dynamic,
               std::string_view address, queue*& q, bool& owns);
  void delete_queue(queue& q);
  void dispatch(queue& q);
  bool deliver(queue& q, link_entry& consumer, std::size_t pos);
  void answer_drains(queue& q);
  [[nodiscard]] std::uint32_t grant(const link_entry& l) const noexcept;
  void top_up(link_entry& l, bool now = false);
  void refill(queue& q);
  void refill_relays();

  const broker_options& opts_;
  queue_store& store_;
  std::vector<link_entry*> relays_; // producers that are anonymous relays
  bool relays_starved_ = false;
  std::uint64_t next_key_ = 1;
  broker_stats counters_{};
  std::vector<connection_handle> dirty_;
  conn_state* current_ = nullptr;   // the connection being processed (not reported dirty)
  route_decision refused_by_route_; // the last refusal of broker_options::route
};

} // namespace amqp::broker
