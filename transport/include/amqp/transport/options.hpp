// Options of the transport: TLS, WebSocket, reconnect, frame trace. Standard library only:
// Asio and OpenSSL stay inside transport/src.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <system_error>

#include "amqp/options.hpp"

namespace amqp::transport {

class client;

// TLS through OpenSSL. Certificate and host-name verification are on by default; TLS 1.2 is
// the minimum version.
struct tls_options {
  // PEM file of trusted CAs; empty: the system's default trust store. On a listener, the CAs
  // of client certificates: clients are then asked for one (optional unless
  // require_client_certificate), and one they present must verify.
  std::string ca_file;
  // PEM client certificate chain and private key (TLS client authentication, e.g. for SASL
  // EXTERNAL); on a listener, the server's certificate and key (required there).
  std::string cert_file;
  std::string key_file;
  // Verify the peer's certificate chain and (client side) that it names the host. Turning
  // this off is for tests against self-signed peers only.
  bool verify = true;
  // The name sent as SNI and checked against the certificate; empty: the URL's host.
  std::string server_name;
  // Listener: refuse clients without a valid certificate (signed by a CA of ca_file).
  bool require_client_certificate = false;
};

// Reconnection of a client after the connection is lost (not after a close the application
// asked for). Delays grow exponentially from `initial_delay` to `max_delay`, each with up to
// `jitter` (0..1) of random reduction, so that many clients do not reconnect in step.
struct reconnect_options {
  bool enabled = false;
  std::chrono::milliseconds initial_delay{100};
  std::chrono::milliseconds max_delay{10'000};
  double jitter = 0.5;
  // Attempts after one loss before the client gives up (0: no limit).
  std::uint32_t max_attempts = 0;
  // Time after one loss past which no attempt starts: the client gives up, its operations
  // fail with the last attempt's error (0: no limit).
  std::chrono::milliseconds give_up_after{0};
};

// Everything a client needs beyond its URL.
struct client_options {
  // The engine: container-id, hostname (empty: the URL's host), limits, timeouts, SASL (the
  // URL's user and password select PLAIN unless sasl.mechanism is set). The client copies
  // everything these options view (strings, capabilities, properties, SASL data) when it is
  // created, and builds the engine of every reconnect from its copies: the caller's storage
  // may go as soon as async_connect returns. Only `memory` must outlive the client.
  connection_options amqp{};
  tls_options tls{};
  reconnect_options reconnect{};
  // Time allowed to resolve, connect, handshake TLS/WebSocket and open the AMQP connection.
  std::chrono::milliseconds connect_timeout{30'000};
  // Time allowed for the close handshake before the socket is closed anyway.
  std::chrono::milliseconds close_timeout{5'000};
  // Print every frame in and out, decoded, secrets redacted (also AMQP_TRACE=frames).
  bool trace = false;
  // Runs on every connection (the first and each reconnect) once its session is up and
  // before any sender or receiver attaches: a claims-based login (IoT Hub's and Event Hubs'
  // CBS put-token on `$cbs`) must come before the links it authorizes. Requesters attach
  // before it runs, so it can use one; senders and receivers (those open and those opened
  // meanwhile) attach once it calls `done` with no error. An error fails the attempt: the
  // connection is closed and, with reconnect on, tried again after the backoff (not after
  // errc::unauthorized); on the first connect, async_connect reports it. It runs within
  // connect_timeout, and async_connect completes after it. Unset: links attach at once.
  std::function<void(client&, std::function<void(std::error_code)> done)> before_links;
  // Re-attach a sender, receiver or requester that the peer detached with an error while
  // the connection stays up (token expiry, throttling, load balancing: IoT Hub and Event
  // Hubs do this), after a backoff with the delays of `reconnect`; and, with reconnect on,
  // reconnect when the peer ends the session. Conditions that must not be retried
  // (amqp:link:redirect, amqp:link:stolen, ...) and a refused re-attach still fail the link.
  // The policy in full: client.hpp, "Recovery". False: a detach or end by the peer fails the
  // links it takes, as without reconnect.
  bool relink = true;
  // Connect without a SASL layer (the AMQP header first). By default the client uses SASL:
  // PLAIN with the URL's user and password, else ANONYMOUS (or connection_options::sasl).
  bool no_sasl = false;
};

// True if the environment asks for a frame trace (AMQP_TRACE=frames).
[[nodiscard]] bool trace_from_environment() noexcept;

} // namespace amqp::transport
