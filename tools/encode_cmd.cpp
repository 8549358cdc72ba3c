// amqp-cli encode: typed JSON lines to AMQP encodings.
#include <cstddef>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "amqp/codec.hpp"
#include "commands.hpp"
#include "hex.hpp"
#include "json_form.hpp"

namespace amqp::cli {
namespace {

struct encode_options {
  std::string file;
  bool hex = false;
};

bool is_blank(const std::string& s) {
  return s.find_first_not_of(" \t\r\n\f\v") == std::string::npos;
}

int encode_lines(std::istream& in, bool hex) {
  value_arena arena;
  std::vector<std::byte> bytes;
  std::string line;
  std::string error;
  std::string out;
  for (std::size_t number = 1; std::getline(in, line); ++number) {
    if (is_blank(line)) {
      continue;
    }
    arena.clear();
    const auto v = parse_typed_json(line, arena, error);
    if (!v) {
      std::cout.flush();
      std::cerr << "amqp-cli encode: line " << number << ": " << error << '\n';
      return 1;
    }
    bytes.clear();
    if (const auto r = encode_append(*v, bytes); !r) {
      std::cout.flush();
      std::cerr << "amqp-cli encode: line " << number << ": cannot encode: " << r.error().message()
                << '\n';
      return 1;
    }
    if (hex) {
      out.clear();
      append_hex(bytes, out);
      out += '\n';
      std::cout << out;
    } else {
      std::cout.write(reinterpret_cast<const char*>(bytes.data()),
                      static_cast<std::streamsize>(bytes.size()));
    }
  }
  if (in.bad()) {
    std::cerr << "amqp-cli encode: cannot read the input\n";
    return 1;
  }
  return 0;
}

int run(const encode_options& opts) {
  if (opts.file.empty() || opts.file == "-") {
    return encode_lines(std::cin, opts.hex);
  }
  std::ifstream in(opts.file);
  if (!in) {
    std::cerr << "amqp-cli encode: cannot open " << opts.file << '\n';
    return 1;
  }
  return encode_lines(in, opts.hex);
}

} // namespace

void add_encode_command(CLI::App& app, int& status) {
  auto opts = std::make_shared<encode_options>();
  auto* cmd = app.add_subcommand("encode", "Typed JSON lines -> AMQP encodings (the smallest)");
  cmd->add_flag("--hex", opts->hex,
                "Write one lowercase hex line per document instead of raw bytes");
  cmd->add_option("FILE", opts->file, "Input file (default, or \"-\": standard input)");
  cmd->footer(std::string("The input has one typed JSON document per line; blank lines are "
                          "skipped. On bad JSON\nor a bad typed form the line number and the "
                          "problem go to standard error, and the\nexit status is 1.\n\n") +
              typed_json_help);
  cmd->callback([opts, &status] { status = run(*opts); });
}

} // namespace amqp::cli
