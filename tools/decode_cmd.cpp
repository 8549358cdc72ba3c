// amqp-cli decode: AMQP encodings to typed JSON, one document per line.
#include <cstddef>
#include <iostream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "amqp/codec.hpp"
#include "amqp/message.hpp"
#include "commands.hpp"
#include "hex.hpp"
#include "input.hpp"
#include "json_form.hpp"

namespace amqp::cli {
namespace {

struct decode_options {
  std::string file;
  bool hex = false;
  bool message = false;
};

void report(std::size_t offset, std::string_view what) {
  std::cout.flush();
  std::cerr << "amqp-cli decode: byte offset " << offset << ": " << what << '\n';
}

// Prints every top-level value; stops at the first malformed one.
int print_values(std::span<const std::byte> bytes) {
  std::string line;
  std::size_t offset = 0;
  while (offset < bytes.size()) {
    std::size_t consumed = 0;
    const auto v = decode_value(bytes.subspan(offset), consumed);
    if (!v) {
      report(offset, v.error().message());
      return 1;
    }
    line.clear();
    append_typed_json(*v, line);
    line += '\n';
    std::cout << line;
    offset += consumed;
  }
  return 0;
}

// Where a message that decode_message rejected goes wrong: the first value that does not
// decode, or else the first section whose addition makes the message invalid.
void report_message_error(std::span<const std::byte> bytes, std::error_code ec) {
  std::vector<std::size_t> ends;
  std::size_t offset = 0;
  while (offset < bytes.size()) {
    std::size_t consumed = 0;
    const auto v = decode_value(bytes.subspan(offset), consumed);
    if (!v) {
      report(offset, v.error().message());
      return;
    }
    offset += consumed;
    ends.push_back(offset);
  }
  std::size_t begin = 0;
  for (std::size_t k = 0; k < ends.size(); ++k) {
    if (const auto m = decode_message(bytes.first(ends[k])); !m && m.error() == ec) {
      report(begin, "section " + std::to_string(k) + ": " + ec.message());
      return;
    }
    begin = ends[k];
  }
  report(0, ec.message());
}

// Prints each section of one message as {"section": NAME, "value": V}.
int print_message(std::span<const std::byte> bytes) {
  if (const auto m = decode_message(bytes); !m) {
    report_message_error(bytes, m.error());
    return 1;
  }
  std::string line;
  std::size_t offset = 0;
  while (offset < bytes.size()) {
    std::size_t consumed = 0;
    const auto v = decode_value(bytes.subspan(offset), consumed);
    const auto s = v && v->is(type::described) ? section_of(v->descriptor()) : std::nullopt;
    if (!s) {
      // decode_message accepted what the value decoder or the section table here do not.
      report(offset, v ? "not a message section" : v.error().message());
      return 1;
    }
    line = R"({"section":")";
    line += section_name(*s);
    line += R"(","value":)";
    append_typed_json(v->described_value(), line);
    line += "}\n";
    std::cout << line;
    offset += consumed;
  }
  return 0;
}

int run(const decode_options& opts) {
  std::string error;
  const auto input = read_input(opts.file, error);
  if (!input) {
    std::cerr << "amqp-cli decode: " << error << '\n';
    return 1;
  }
  std::vector<std::byte> from_hex;
  std::span<const std::byte> bytes = std::as_bytes(std::span(*input));
  if (opts.hex) {
    auto parsed = parse_hex_text(*input, error);
    if (!parsed) {
      std::cerr << "amqp-cli decode: " << error << '\n';
      return 1;
    }
    from_hex = std::move(*parsed);
    bytes = from_hex;
  }
  return opts.message ? print_message(bytes) : print_values(bytes);
}

} // namespace

void add_decode_command(CLI::App& app, int& status) {
  auto opts = std::make_shared<decode_options>();
  auto* cmd = app.add_subcommand("decode", "AMQP encodings -> typed JSON, one document per line");
  cmd->add_flag("--hex", opts->hex, "Input is hex text (either case, whitespace ignored)");
  cmd->add_flag("--message", opts->message,
                "Input is one message: print one line per section, "
                "{\"section\": NAME, \"value\": V}, V being the section's inner value");
  cmd->add_option("FILE", opts->file, "Input file (default, or \"-\": standard input)");
  cmd->footer(
      std::string("The input is a sequence of zero or more encoded values (--message: the "
                  "sections of\none message). On malformed input the values before it are "
                  "printed, the byte offset\nand the error go to standard error, and the exit "
                  "status is 1.\n\n") +
      typed_json_help);
  cmd->callback([opts, &status] { status = run(*opts); });
}

} // namespace amqp::cli
