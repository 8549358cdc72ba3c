// iothub-cli's commands: each adds its subcommand to the app and runs it when chosen.
// The options every command that connects shares are in common_options.
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "amqp/iothub/hub_connection.hpp"

namespace amqp::iothub::cli {

// How a command connects: the connection string (or $IOTHUB_CONNECTION_STRING), the CA to
// trust (a local hub's), WebSockets, the frame trace.
struct common_options {
  std::string connection_string;
  std::string ca_file;
  bool websockets = false;
  bool trace = false;
};

// Adds --connection-string/-c, --ca, --websockets, --trace to `cmd`.
void add_common(CLI::App& cmd, common_options& o);

// The endpoint of the options' connection string ($IOTHUB_CONNECTION_STRING when not given),
// with their CA, protocol and trace. Errors: a CLI::ValidationError naming the problem.
[[nodiscard]] hub_endpoint endpoint_of(const common_options& o);

// Prints "iothub-cli: <what>" on stderr; returns the exit status 1.
int fail(const std::string& what);

void add_token(CLI::App& app, int& status);

} // namespace amqp::iothub::cli
