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

const char* const message_json_help =
    "Messages as JSON (receive --json writes them, send --message reads them): one line per\n"
    "message, an object with a member per section present, each in the typed JSON form:\n"
    "  {\"header\": {\"durable\": V, \"priority\": V, ...},\n"
    "   \"delivery-annotations\": V, \"message-annotations\": V,\n"
    "   \"properties\": {\"message-id\": V, \"to\": V, ...}, \"application-properties\": V,\n"
    "   \"body\": {\"data\": [V, ...]} or {\"amqp-sequence\": [V, ...]} or "
    "{\"amqp-value\": V},\n"
    "   \"footer\": V}\n"
    "header and properties hold the fields on the wire by their spec names (durable,\n"
    "priority, ttl, first-acquirer, delivery-count; message-id, user-id, to, subject,\n"
    "reply-to, correlation-id, content-type, content-encoding, absolute-expiry-time,\n"
    "creation-time, group-id, group-sequence, reply-to-group-id), each a typed value of its\n"
    "spec type; the other sections are typed maps; data sections are typed binaries,\n"
    "amqp-sequence sections typed lists. Example:\n"
    "  {\"properties\":{\"to\":{\"type\":\"string\",\"value\":\"q\"}},"
    "\"body\":{\"data\":[{\"type\":\"binary\",\"value\":\"6869\"}]}}\n";

} // namespace amqp::cli

namespace {

int run(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  CLI::App app{"amqp-cli: AMQP 1.0 values and messages as typed JSON; a client and a broker.",
               "amqp-cli"};
  app.require_subcommand(1);
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
