// Reads literate test vector files (tests/vectors/README.md): each `## ` section is one
// vector, with fenced blocks named `config` (words), `hex` (bytes) and `log` (one expected
// line each).
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace amqp::test {

struct literate_vector {
  std::string file;
  std::string name;
  std::string config; // the config block's lines joined by spaces
  std::string hex;
  std::vector<std::string> log; // non-empty lines of the log block
};

inline std::vector<literate_vector> read_literate_vectors(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<literate_vector> out;
  std::string line;
  std::string block; // the info string of the fenced block we are in, or empty outside
  bool fenced = false;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) {
      out.push_back({path.filename().string(), line.substr(3), {}, {}, {}});
    } else if (line.rfind("```", 0) == 0) {
      fenced = !fenced;
      block = fenced ? line.substr(3) : "";
    } else if (out.empty()) {
      continue;
    } else if (block == "config") {
      out.back().config += line + " ";
    } else if (block == "hex") {
      out.back().hex += line;
    } else if (block == "log" && !line.empty()) {
      out.back().log.push_back(line);
    }
  }
  return out;
}

} // namespace amqp::test
