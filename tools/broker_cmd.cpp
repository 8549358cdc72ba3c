// `amqp-cli broker`: the in-memory broker (amqp/broker.hpp) behind one or more listeners
// (amqp/transport/listener.hpp), on one thread.
#include <chrono>
#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include "amqp/broker.hpp"
#include "amqp/transport/listener.hpp"
#include "broker_handler.hpp"
#include "commands.hpp"

namespace amqp::cli {
namespace {

struct broker_args {
  std::vector<std::string> listen;
  std::string cert;
  bool require_client_cert = false;
  std::string key;
  std::string ca;
  std::vector<std::string> users;
  bool anonymous = false;
  bool no_anonymous = false;
  std::uint32_t idle_timeout_ms = 0;
  double handshake_timeout_s = 10;
  bool trace = false;
  std::string container_id = "amqp-cli-broker";
  std::vector<std::string> ws_paths;
  std::uint32_t max_frame_size = 65536;
  bool outcome_prefixes = false;
};

// --outcome-prefixes: a message for a queue named "$reject/...", "$release/..." or
// "$modify/..." is answered with that outcome and dropped, so that a client's handling of
// each outcome can be tested.
broker::admission outcome_by_prefix(const broker::incoming_message& m) {
  if (m.queue.starts_with("$reject/")) {
    return broker::admission::reject("amqp:precondition-failed", "rejected by address");
  }
  if (m.queue.starts_with("$release/")) {
    return broker::admission::release();
  }
  if (m.queue.starts_with("$modify/")) {
    return broker::admission::modify(true, true);
  }
  return broker::admission::accept();
}

void run_broker(const broker_args& a, int& status) {
  broker::broker_options bo;
  bo.connection.container_id = a.container_id;
  if (a.idle_timeout_ms > 0) {
    bo.connection.timeouts.idle_time_out = std::chrono::milliseconds(a.idle_timeout_ms);
  }
  bo.connection.limits.max_frame_size = a.max_frame_size;
  bo.connection.timeouts.handshake = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(a.handshake_timeout_s));
  // Anonymous access: --anonymous or --no-anonymous when given, else on exactly when no
  // --user account is configured (the library's default).
  if (a.anonymous) {
    bo.allow_anonymous = true;
  } else if (a.no_anonymous) {
    bo.allow_anonymous = false;
  }
  if (a.outcome_prefixes) {
    bo.admit = outcome_by_prefix;
  }
  for (const auto& u : a.users) {
    const auto colon = u.find(':');
    if (colon == std::string::npos) {
      std::cerr << "amqp-cli: --user takes USER:PASSWORD\n";
      status = 2;
      return;
    }
    bo.users.emplace_back(u.substr(0, colon), u.substr(colon + 1));
  }
  broker::broker b(bo);
  broker_handler handler(b);
  asio::io_context io;
  std::vector<transport::listener> listeners;
  for (const auto& url : a.listen) {
    transport::listener_options lo;
    lo.tls.cert_file = a.cert;
    lo.tls.key_file = a.key;
    lo.tls.ca_file = a.ca;
    lo.tls.require_client_certificate = a.require_client_cert;
    lo.trace = a.trace;
    lo.websocket_paths = a.ws_paths;
    std::string why;
    auto l = transport::listener::listen(io, url, lo, handler, &why);
    if (!l) {
      std::cerr << "amqp-cli: cannot listen on " << url << ": " << why << '\n';
      status = 1;
      return;
    }
    // The URL with the port actually bound (for port 0).
    std::string shown = url;
    const auto scheme_end = shown.find("://");
    const auto host_start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
    const auto port_colon = shown.find(':', host_start);
    if (port_colon != std::string::npos) {
      const auto port_end = shown.find('/', port_colon);
      shown.replace(port_colon + 1,
                    (port_end == std::string::npos ? shown.size() : port_end) - port_colon - 1,
                    std::to_string(l->port()));
    }
    std::cout << "listening " << shown << std::endl;
    listeners.push_back(std::move(*l));
  }
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code, int) {
    for (auto& l : listeners) {
      l.close();
    }
    io.stop();
  });
  io.run();
  const auto s = b.stats();
  std::cout << "broker stopped: received " << s.received << " messages, " << s.queues << " queues"
            << std::endl;
}

} // namespace

void add_broker_command(CLI::App& app, int& status) {
  auto a = std::make_shared<broker_args>();
  auto* c = app.add_subcommand("broker", "run a small in-memory AMQP 1.0 broker");
  c->add_option("--listen", a->listen,
                "amqp://127.0.0.1:PORT, amqps://..., ws://127.0.0.1:PORT/path, wss://... "
                "(port 0: any free port; repeatable)")
      ->required();
  c->add_option("--cert", a->cert, "PEM server certificate (amqps, wss)");
  c->add_option("--key", a->key, "PEM private key of --cert");
  c->add_option("--ca", a->ca,
                "PEM CA file for client certificates: TLS clients are asked for one, which "
                "must be signed by it (SASL EXTERNAL then authenticates them as its subject)");
  c->add_flag("--require-client-cert", a->require_client_cert,
              "refuse TLS clients without a certificate signed by --ca");
  c->add_option("--user", a->users, "SASL PLAIN account USER:PASSWORD (repeatable)");
  c->add_flag("--outcome-prefixes", a->outcome_prefixes,
              "messages to $reject/..., $release/... or $modify/... are answered with that "
              "outcome and dropped (to test clients)");
  auto* anon = c->add_flag("--anonymous", a->anonymous,
                           "accept SASL ANONYMOUS and clients without SASL even with --user "
                           "accounts (default: only when there is no --user)");
  c->add_flag("--no-anonymous", a->no_anonymous,
              "refuse SASL ANONYMOUS and clients without SASL even without --user accounts "
              "(then only PLAIN with --user, or EXTERNAL with --ca, can succeed)")
      ->excludes(anon);
  c->add_option("--idle-timeout", a->idle_timeout_ms, "our idle-time-out in milliseconds");
  c->add_option("--handshake-timeout", a->handshake_timeout_s,
                "SECONDS a client has to finish its protocol headers, SASL and open before it "
                "is disconnected (0: no limit)")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  // 64 KiB, as IoT Hub and Service Bus announce: Python uAMQP splits a large message only
  // for a peer whose max-frame-size is at most that.
  c->add_option("--max-frame-size", a->max_frame_size, "largest frame we accept")
      ->check(CLI::Range(512U, 16U * 1024 * 1024))
      ->capture_default_str();
  c->add_option("--ws-path", a->ws_paths, "accepted WebSocket request paths (default: any)");
  c->add_option("--container-id", a->container_id, "our container-id")->capture_default_str();
  c->add_flag("--trace", a->trace, "print every frame, decoded (secrets redacted)");
  c->footer("Authentication: SASL PLAIN is checked against the --user accounts. SASL "
            "ANONYMOUS and\nclients that skip SASL are accepted when no --user is given, "
            "refused when one is;\n--anonymous or --no-anonymous overrides that. Without "
            "--user, PLAIN accepts any\nwell-formed credentials while anonymous access is on. "
            "With --ca, TLS clients with a\ncertificate may use SASL EXTERNAL.");
  c->callback([a, &status] { run_broker(*a, status); });
}

} // namespace amqp::cli
