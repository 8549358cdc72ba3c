// The client's state: one connection at a time (a new one after each reconnect), one
// session, and the links the application opened, which outlive connections.
//
// Shared by client_connection.cpp (connect attempts, backoff, reconnect, close, the engine's
// event loop), client_links.cpp (attach, credit, sends and outcomes, receives and
// settlement, the link events) and client_handles.cpp (the public handles).
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "amqp/connection.hpp"
#include "amqp/error.hpp"
#include "amqp/request_response.hpp"
#include "amqp/transport/client.hpp"
#include "amqp/transport/url.hpp"
#include "driver.hpp"

namespace amqp::transport::detail {

inline std::error_code code(errc e) {
  return make_error_code(e);
}

struct pending_send {
  std::vector<std::byte> bytes;
  std::function<void(std::error_code, delivery_outcome)> done;
  std::uint32_t delivery = 0;       // delivery-id on the current connection, once sent
  std::uint32_t message_format = 0; // the transfer's message-format (§2.7.5)
};

// One request of a requester: waiting to be sent (for credit, or for a connection), then
// for its response.
struct pending_request {
  std::vector<std::byte> bytes; // the request as given: a valid message (checked on entry)
  std::function<void(std::error_code, received_message)> done;
  std::optional<std::uint64_t> id;            // its message-id, once sent
  std::optional<asio::steady_timer> deadline; // its timeout, if any
};

// A requester: the core's amqp::request_response (message-ids, reply-to, correlation) on
// the current connection, and the requests the application is waiting for. It outlives
// connections: after a reconnect a new helper attaches, requests not yet sent go on it, and
// those sent on the lost connection fail (their responses cannot come back).
struct requester_impl {
  std::weak_ptr<client_impl> client;
  std::string address;
  std::string name;     // link names: name + "-sender", name + "-receiver"
  std::string reply_to; // the receiving link's target and every request's reply-to
  requester_options opts;

  std::optional<amqp::request_response> helper; // on the connection `generation`
  std::uint64_t generation = 0;
  bool refused = false;       // the peer's attach of a link had no terminus: a detach follows
  bool attached_once = false; // the current helper's links were both attached
  bool closing = false;
  bool closed = false;
  // The peer detached a link of an attached helper: the other is being detached, then the
  // pair attaches again after the backoff (client_options::relink).
  bool relinking = false;
  bool reattach_pending = false;    // the helper attaching is a relink: on_reattached follows
  int detached = 0;                 // closing or relinking: links whose detach arrived
  std::uint32_t relink_attempt = 0; // relinks in a row (the backoff's step)
  std::optional<asio::steady_timer> relink_timer;
  std::chrono::steady_clock::time_point attached_at{}; // when the helper became attached
  std::error_code error;
  std::function<void(std::error_code)> attach_done;
  std::function<void(std::error_code)> close_done;

  std::deque<std::shared_ptr<pending_request>> queue; // not sent yet, in order
  std::vector<std::shared_ptr<pending_request>> sent; // waiting for the response
};

struct link_impl {
  std::weak_ptr<client_impl> client;
  bool is_sender = true;
  std::string address;
  std::string name;
  sender_options sopts;
  receiver_options ropts;

  std::optional<link_id> id;    // on the current connection
  std::uint64_t generation = 0; // the connection `id` belongs to
  bool attached = false;        // the peer's attach arrived on the current connection
  // This link's current attach among every attach of the client: a received message is
  // settled on the attach it came on only (after a re-attach the peer redelivers it).
  std::uint64_t serial = 0;
  std::uint32_t relink_attempt = 0;                    // re-attaches in a row (the backoff's step)
  std::optional<asio::steady_timer> relink_timer;      // the re-attach's backoff
  std::chrono::steady_clock::time_point attached_at{}; // when the peer's attach arrived
  bool refused = false; // the peer's attach had no terminus: a detach follows
  bool closing = false;
  bool closed = false;
  bool top_up_due = false; // receiver: top up credit once the current event batch is done
  // Receiver: rcv-settle-mode second asked for and echoed in the sender's attach.
  bool settle_second = false;
  std::error_code error;
  std::optional<link_error> remote_error; // the peer's detach error, if it sent one
  std::function<void(std::error_code)> attach_done;
  std::function<void(std::error_code)> close_done;

  // Sender: waiting for credit, then sent and waiting for the outcome, in send order.
  std::deque<pending_send> queue;
  std::deque<pending_send> unsettled;
  // Receiver: messages received and not yet asked for, and the requests waiting.
  std::deque<received_message> ready;
  std::deque<std::function<void(std::error_code, received_message)>> waiting;
};

class client_impl final : public engine_driver::owner,
                          public std::enable_shared_from_this<client_impl> {
public:
  client_impl(asio::io_context& io, url u, client_options o);
  ~client_impl();

  void connect(std::function<void(std::error_code)> done);
  void open_link(const std::shared_ptr<link_impl>& l);
  void close_link(const std::shared_ptr<link_impl>& l);
  void close(std::function<void(std::error_code)> done);
  void pump(link_impl& l);
  result<void> settle(link_impl& l, const received_message& m, const delivery_state& state);
  void receive(const std::shared_ptr<link_impl>& l,
               std::function<void(std::error_code, received_message)> done);
  void top_up(link_impl& l);
  void set_credit(link_impl& l, std::uint32_t credit);
  // Requesters (client_requests.cpp).
  void open_requester(const std::shared_ptr<requester_impl>& q);
  void close_requester(const std::shared_ptr<requester_impl>& q);
  // Queues a request: `bytes` must decode (checked by the caller); timeout 0: none.
  void request(const std::shared_ptr<requester_impl>& q, std::vector<std::byte> bytes,
               std::chrono::milliseconds timeout,
               std::function<void(std::error_code, received_message)> done);
  void kick() {
    if (driver_) {
      driver_->kick();
    }
  }
  [[nodiscard]] std::uint32_t credit(const link_impl& l) const noexcept;

  std::string last_error;
  std::uint64_t reconnects = 0;
  std::uint64_t relinks = 0;       // links re-attached after the peer detached them with an error
  std::uint64_t writes_before = 0; // writes of earlier connections
  [[nodiscard]] std::uint64_t writes() const noexcept {
    return writes_before + (driver_ ? driver_->writes() : 0);
  }
  std::uint64_t generation = 0;

  // engine_driver::owner
  void on_engine_activity() override;
  void on_output_written() override;
  void on_stream_closed(std::error_code ec) override;

private:
  enum class phase { idle, connecting, open, waiting_reconnect, closing, closed };

  void own_options();
  // Sets last_error; within a connect attempt, the reason it fails.
  void note_error(std::string text);
  // "host:port" of the URL, for messages.
  [[nodiscard]] std::string endpoint() const;
  void start_attempt();
  void on_connected(std::error_code ec, std::shared_ptr<byte_stream> stream);
  void attempt_failed(std::error_code ec);
  void connection_lost(std::error_code ec);
  void fail_all(std::error_code ec);
  void handle(const event& e);
  void attach(link_impl& l);
  link_impl* find(link_id id);
  void on_session_ready();
  // The session is up and before_links (if any) has run: the links attach.
  void on_links_ready();
  void finish_connect(std::error_code ec);
  void finish_close(std::error_code ec);
  void link_failed(link_impl& l, std::error_code ec);
  // The delay before retry number `attempt` (1, 2, ...) of client_options::reconnect:
  // exponential from initial_delay, capped at max_delay, reduced by up to jitter.
  [[nodiscard]] std::chrono::milliseconds backoff(std::uint32_t attempt);
  // The peer's detach may be answered with a re-attach (client_options::relink, client.hpp
  // "Recovery"): it carries an error whose condition is not one of those never retried.
  [[nodiscard]] bool may_relink(const link_detached& ld) const;
  // Attaches `l` again after the backoff, if it is still wanted then.
  void schedule_relink(const std::shared_ptr<link_impl>& l);
  void schedule_requester_relink(const std::shared_ptr<requester_impl>& q);
  // The peer ended the session of an open connection: reconnect (client.hpp "Recovery").
  void session_lost(const session_ended& se);
  // The engine's link events (client_links.cpp).
  void on_link_attached(const link_attached& la);
  void on_link_flow(const link_flow& lf);
  void on_delivery_received(const delivery_received& dr);
  void on_delivery_updated(const delivery_updated& du);
  void on_link_detached(const link_detached& ld);
  // Requesters (client_requests.cpp).
  void attach_requester(requester_impl& q);
  void pump_requests(requester_impl& q);
  void offer_to_requesters(const event& e);
  void on_requester_event(const std::shared_ptr<requester_impl>& q, const event& e);
  void requester_failed(const std::shared_ptr<requester_impl>& q, std::error_code ec);
  // Fails the requests sent on the connection that is gone; the others wait for the next.
  void requests_lost(std::error_code ec);
  void set_last_error(std::string_view what, const std::optional<amqp::error>& e);

  asio::io_context& io_;
  url url_;
  client_options opts_;
  // Copies of everything opts_.amqp views (the caller's strings and values may go as soon as
  // async_connect returns; every reconnect builds its engine from opts_.amqp again, whose
  // views point here once own_options() ran).
  std::string container_id_;
  std::string hostname_;
  std::string sasl_mechanism_, sasl_username_, sasl_password_, sasl_authzid_, sasl_hostname_;
  std::string sasl_server_mechanisms_;
  std::vector<std::byte> sasl_initial_response_;
  owned_value offered_capabilities_, desired_capabilities_, open_properties_;
  std::error_code setup_error_; // options that cannot be kept: connect() fails with it
  std::shared_ptr<asio::ssl::context> tls_context_; // amqps, wss: loaded once
  // Shared with the driver when this client goes away: reads and writes still in flight
  // use the engine's buffers (engine_driver::keep_alive).
  std::shared_ptr<amqp::connection> engine_;
  std::shared_ptr<engine_driver> driver_;
  std::optional<session_id> session_;
  bool session_ready_ = false;
  // client_options::before_links has run on this connection (or is unset): links attach.
  bool links_ready_ = false;
  std::error_code before_links_error_; // why before_links failed this attempt
  std::vector<std::shared_ptr<link_impl>> links_;
  std::vector<std::shared_ptr<requester_impl>> requesters_;
  phase phase_ = phase::idle;
  std::function<void(std::error_code)> connect_done_;
  std::function<void(std::error_code)> close_done_;
  asio::steady_timer timer_; // connect/close timeouts and reconnect delays
  asio::ip::tcp::resolver resolver_;
  std::uint32_t attempt_ = 0;
  std::chrono::steady_clock::time_point lost_at_{}; // when the open connection was lost
  std::uint32_t name_counter_ = 0;
  std::minstd_rand rng_;
  bool ever_open_ = false;
  bool ws_done_ = false;            // the WebSocket handshake of the current attempt is done
  bool in_events_ = false;          // on_engine_activity() is pulling events
  bool attempt_noted_ = false;      // this attempt's failure has its own last_error text
  bool timed_out_ = false;          // this attempt ran out of connect_timeout
  bool sasl_refused_ = false;       // this attempt's SASL login was refused (sasl-outcome)
  std::uint64_t attempt_id_ = 0;    // invalidates callbacks of abandoned attempts
  std::uint64_t attach_serial_ = 0; // the last link_impl::serial given

  friend struct link_impl;
  friend class amqp::transport::sender;
  friend class amqp::transport::receiver;
  friend class amqp::transport::client;

public:
  std::string next_link_name(bool sender);
};

} // namespace amqp::transport::detail
