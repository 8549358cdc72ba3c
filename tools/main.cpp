// amqp-cli: a command-line companion to the AMQP 1.0 stack. Each subcommand lives in its own
// file (<name>_cmd.cpp) and is registered here.
#include <exception>
#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.hpp"

namespace amqp::cli {

const char* const typed_json_help =
    "Typed JSON: every value is {\"type\": T, \"value\": V} with T an AMQP type name.\n"
    "  null                          no \"value\" key\n"
    "  boolean                       true / false\n"
    "  ubyte ushort uint byte short int   JSON number\n"
    "  ulong long timestamp          decimal string (timestamp: ms since the epoch)\n"
    "  char                          code point, as a number\n"
    "  float double                  shortest round-trip number, or \"NaN\", \"Infinity\",\n"
    "                                \"-Infinity\"\n"
    "  decimal32 decimal64 decimal128  lowercase hex of the big-endian bytes\n"
    "  uuid                          \"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx\" (lowercase)\n"
    "  binary                        lowercase hex\n"
    "  string symbol                 JSON string (symbol: ASCII only)\n"
    "  list                          {\"type\":\"list\",\"value\":[V,...]}\n"
    "  map                           {\"type\":\"map\",\"value\":[[K,V],...]} in wire order\n"
    "  array                         {\"type\":\"array\",\"element\":T,\"value\":[V,...]}\n"
    "  described                     {\"type\":\"described\",\"descriptor\":D,\"value\":V}\n";

} // namespace amqp::cli

namespace {

int run(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  CLI::App app{"amqp-cli: AMQP 1.0 values and messages as typed JSON; a client and a broker.",
               "amqp-cli"};
  app.require_subcommand(1);
  app.footer(amqp::cli::typed_json_help);
  int status = 0;
  amqp::cli::add_decode_command(app, status);
  amqp::cli::add_encode_command(app, status);
  amqp::cli::add_send_command(app, status);
  amqp::cli::add_receive_command(app, status);
  amqp::cli::add_broker_command(app, status);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "amqp-cli: " << e.what() << '\n';
    return 1;
  }
  std::cout.flush();
  if (!std::cout) {
    std::cerr << "amqp-cli: cannot write standard output\n";
    return 1;
  }
  return status;
}

} // namespace

int main(int argc, char** argv) {
  // What escapes run(): setting up the commands or printing a parse error failed.
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "amqp-cli: " << e.what() << '\n';
  } catch (...) {
    std::cerr << "amqp-cli: unknown error\n";
  }
  return 1;
}
