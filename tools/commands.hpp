// The subcommands of amqp-cli. Each add_*_command registers one subcommand on `app`; when
// that subcommand runs it stores its exit status in `status` (0 on success, 1 on failure,
// after describing the failure on standard error).
#pragma once

namespace CLI {
class App;
} // namespace CLI

namespace amqp::cli {

// `decode [--hex] [--message] [FILE]`: AMQP values (or one message) to typed JSON lines.
void add_decode_command(CLI::App& app, int& status);

// `encode [--hex] [FILE]`: typed JSON lines to AMQP encodings.
void add_encode_command(CLI::App& app, int& status);

// `send URL ADDRESS ...` and `receive URL ADDRESS ...`: a client of a broker (net_cmds.cpp).
void add_send_command(CLI::App& app, int& status);
void add_receive_command(CLI::App& app, int& status);

// `broker --listen URL ...`: the in-memory broker on listeners (broker_cmd.cpp).
void add_broker_command(CLI::App& app, int& status);

// Text describing the typed JSON form, for the --help of the commands that read or write it
// (decode, encode, send --message, receive --json).
extern const char* const typed_json_help;

// Text describing the JSON form of whole messages (message_json.hpp), for the --help of
// send (--message) and receive (--json).
extern const char* const message_json_help;

} // namespace amqp::cli
