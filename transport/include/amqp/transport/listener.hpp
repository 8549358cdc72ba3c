// The server role: a listener accepts connections (TCP, TLS, WebSocket) and gives each a
// server-role engine owned by a server_handler (a broker, the hub emulator, a test), which
// pulls the engine's events. All connections of a listener run on its io_context's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/connection.hpp"
#include "amqp/result.hpp"
#include "amqp/transport/options.hpp"

namespace asio {
class io_context;
}

namespace amqp::transport {

// What a listener knows of an accepted connection.
struct accepted_peer {
  std::string address; // "127.0.0.1:40312"
  // TLS with a client certificate verified against the listener's CAs
  // (tls_options::require_client_certificate): its subject, RFC 2253 ("CN=device-1,O=x"),
  // the identity for SASL EXTERNAL. Empty otherwise.
  std::string certificate_subject;
  // The stream is TLS (amqps://, wss://).
  bool tls = false;
  // TLS: the host name the client sent as SNI (RFC 6066 §3), empty if none.
  std::string server_name;
  // WebSocket: the request path of the opening handshake ("/$iothub/websocket"), empty for
  // plain and TLS streams.
  std::string websocket_path;
  // The local port the connection came in on (which endpoint of the listener).
  std::uint16_t local_port = 0;
};

// What a listener drives. Single-threaded: called on the io_context's thread only.
class server_handler {
public:
  using handle = std::uint64_t;
  virtual ~server_handler() = default;
  // A connection was accepted (after its TLS and WebSocket handshakes): create its engine
  // (server role) and return its handle.
  virtual handle on_accept(time_point now, const accepted_peer& peer) = 0;
  // The engine of `h` (the listener feeds it bytes and time, and writes its output).
  virtual amqp::connection* engine(handle h) = 0;
  // Input was processed or a deadline ran on `h`: pull its events and act.
  virtual void process(handle h, time_point now) = 0;
  // Connections that have new output because of what process() did on another connection
  // (routing): the listener writes them.
  virtual std::vector<handle> take_dirty() = 0;
  // A batch of `h`'s output was written.
  virtual void on_output_written(handle /*h*/) {}
  // The socket of `h` is closed: forget the connection.
  virtual void on_closed(handle h) = 0;
  // The handler's own timers (beyond each engine's, which the listener runs itself): when
  // on_deadline() must be called next, or nothing. The listener keeps one timer armed on it,
  // asking again after every call into the handler.
  [[nodiscard]] virtual std::optional<time_point> next_deadline() { return std::nullopt; }
  // The time from next_deadline() has come: run the handler's timers. Connections that got
  // output are then taken from take_dirty(), and those to drop from take_aborted().
  virtual void on_deadline(time_point /*now*/) {}
  // Connections whose sockets the listener must close at once, with no close frame and no
  // further output (e.g. a fault that kills TCP); on_closed() follows for each. Asked after
  // every call into the handler.
  [[nodiscard]] virtual std::vector<handle> take_aborted() { return {}; }
};

struct listener_options {
  // TLS (amqps://, wss://): cert_file and key_file are required.
  tls_options tls{};
  // WebSocket (ws://, wss://): the accepted request paths (empty: any).
  std::vector<std::string> websocket_paths{};
  // Trace every frame (also AMQP_TRACE=frames).
  bool trace = false;
  // Connections open at once; more are accepted and closed at once.
  std::size_t max_connections = 1000;
};

class listener {
public:
  listener() = default;
  ~listener(); // NOLINT(bugprone-exception-escape): see listener.cpp
  listener(listener&&) noexcept;
  listener& operator=(listener&&) noexcept; // NOLINT(bugprone-exception-escape)

  // Listens on `url` (amqp://host:port, amqps://, ws://host:port/path, wss://; port 0 picks
  // a free port) and starts accepting. `handler` must outlive the listener.
  // Errors: errc::invalid_argument (URL, TLS files; the reason in `why`), the socket's error.
  [[nodiscard]] static result<listener> listen(asio::io_context& io, std::string_view url,
                                               listener_options options, server_handler& handler,
                                               std::string* why = nullptr);
  // Listens on one more endpoint `url` (any scheme) for the same handler, with the same
  // options; returns the port bound. Every endpoint's connections share the listener's
  // connection table, so output routed by the handler reaches connections of any endpoint.
  // Errors: as listen(); errc::invalid_state after close().
  [[nodiscard]] result<std::uint16_t> add(std::string_view url, std::string* why = nullptr);
  // The port listened on (the first endpoint's).
  [[nodiscard]] std::uint16_t port() const noexcept;
  // The handler's next_deadline() changed outside a call from the listener (e.g. the handler
  // got its state after listen()): asks it again and re-arms the timer.
  void refresh_deadline();
  // Stops accepting and closes every connection at once.
  void close();
  // Connections open now.
  [[nodiscard]] std::size_t connections() const noexcept;

private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

} // namespace amqp::transport
