// Replays the literate wire vectors of tests/vectors/*.md (see tests/vectors/README.md):
// each whole, and split in two chunks at every offset.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/codec.hpp"
#include "hex.hpp"
#include "json_form.hpp"
#include "support/literate_vectors.hpp"

namespace {

// Decodes the input as it arrives in chunks: a value is decoded as soon as its bytes are
// all there; a failure at the end of all input is the error.
std::vector<std::string> replay(std::span<const std::byte> bytes, std::size_t split) {
  std::vector<std::string> log;
  std::size_t pos = 0;
  for (std::size_t avail : {split, bytes.size()}) {
    while (pos < avail) {
      std::size_t n = 0;
      auto v = amqp::decode_value(bytes.subspan(pos, avail - pos), n);
      if (!v) {
        if (avail == bytes.size()) {
          log.push_back("error: " + v.error().message());
          return log;
        }
        break; // wait for the rest
      }
      log.push_back(amqp::cli::to_typed_json(*v));
      pos += n;
    }
  }
  return log;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) {
    s += l + "\n";
  }
  return s;
}

} // namespace

TEST_CASE("vectors: every wire vector, whole and split at every offset") {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(AMQP_VECTORS_DIR)) {
    if (e.path().extension() == ".md" && e.path().filename() != "README.md") {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 3);
  std::size_t cases = 0;
  for (const auto& f : files) {
    for (const auto& v : amqp::test::read_literate_vectors(f)) {
      ++cases;
      INFO(v.file << ": " << v.name);
      std::string hex_error;
      auto bytes = amqp::cli::parse_hex_text(v.hex, hex_error);
      REQUIRE_MESSAGE(bytes.has_value(), hex_error);
      REQUIRE_FALSE(v.log.empty());
      const std::string expected = joined(v.log);
      for (std::size_t split = 0; split <= bytes->size(); ++split) {
        INFO("split at " << split);
        REQUIRE(joined(replay(*bytes, split)) == expected);
      }
      // The built form of every logged value encodes to a value that decodes equal to it.
      for (const auto& line : v.log) {
        if (line.rfind("error:", 0) == 0) {
          continue;
        }
        amqp::cli::value_arena arena;
        std::string err;
        auto built = amqp::cli::parse_typed_json(line, arena, err);
        REQUIRE_MESSAGE(built.has_value(), err);
        std::vector<std::byte> enc;
        REQUIRE(amqp::encode_append(*built, enc).has_value());
        auto back = amqp::decode_whole(enc);
        REQUIRE(back.has_value());
        CHECK(amqp::cli::to_typed_json(*back) == line);
      }
    }
  }
  CHECK(cases >= 20);
}
