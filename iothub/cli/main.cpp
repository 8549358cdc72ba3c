// iothub-cli: Azure IoT Hub over AMQP from the command line, on amqp::iothub_client: SAS
// tokens, device telemetry, the built-in endpoint's events, cloud-to-device messages and
// their feedback. Works against the cloud hub and against iothub-emulator alike.
#include <cstdlib>
#include <exception>
#include <iostream>

#include "commands.hpp"

namespace amqp::iothub::cli {

void add_common(CLI::App& cmd, common_options& o) {
  cmd.add_option("-c,--connection-string", o.connection_string,
                 "device, module, service or Event Hubs connection string (default: "
                 "$IOTHUB_CONNECTION_STRING)");
  cmd.add_option("--ca", o.ca_file, "PEM CA file to trust (a local hub's ca.pem)");
  cmd.add_flag("--websockets", o.websockets, "AMQP over WebSockets (port 443) instead of AMQPS");
  cmd.add_flag("--trace", o.trace, "print every frame, keys and signatures redacted");
}

hub_endpoint endpoint_of(const common_options& o) {
  std::string text = o.connection_string;
  if (text.empty()) {
    if (const char* env = std::getenv("IOTHUB_CONNECTION_STRING"); env != nullptr) {
      text = env;
    }
  }
  if (text.empty()) {
    throw CLI::ValidationError("--connection-string",
                               "no connection string (give -c or set IOTHUB_CONNECTION_STRING)");
  }
  std::string why;
  auto e =
      endpoint_from(text, o.websockets ? hub_protocol::amqp_websockets : hub_protocol::amqps, &why);
  if (!e) {
    throw CLI::ValidationError("--connection-string", why);
  }
  e->options.tls.ca_file = o.ca_file;
  e->options.trace = o.trace;
  return *e;
}

int fail(const std::string& what) {
  std::cerr << "iothub-cli: " << what << '\n';
  return 1;
}

} // namespace amqp::iothub::cli

namespace {

int run_cli(int argc, char** argv) {
  using namespace amqp::iothub::cli;
  CLI::App app{"Azure IoT Hub over AMQP 1.0: tokens, telemetry, events, cloud-to-device "
               "messages and feedback (the cloud hub or iothub-emulator)"};
  app.require_subcommand(1);
  int status = 0;
  add_token(app, status);
  CLI11_PARSE(app, argc, argv);
  return status;
}

} // namespace

int main(int argc, char** argv) {
  try {
    return run_cli(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "iothub-cli: " << e.what() << '\n';
  } catch (...) {
    std::cerr << "iothub-cli: unknown error\n";
  }
  return 1;
}
