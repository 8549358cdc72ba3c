// Replays the literate frame vectors of tests/vectors/frames/*.md (see the README there):
// each whole, split in two chunks at every offset, and one byte at a time, through
// protocol_header_reader and frame_reader as the engine will drive them.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "frame/frame.hpp"
#include "frame/protocol_header.hpp"
#include "support/hex.hpp"
#include "support/literate_vectors.hpp"

using namespace amqp;
using namespace amqp::detail;

namespace {

using frame_vector = amqp::test::literate_vector;

enum class start { header, amqp, sasl };

struct replay_config {
  start begin = start::header;
  frame_limits limits{};
};

replay_config parse_config(const std::string& text) {
  replay_config c;
  std::istringstream words(text);
  std::string w;
  while (words >> w) {
    const auto eq = w.find('=');
    REQUIRE_MESSAGE(eq != std::string::npos, "bad config word " << w);
    const std::string key = w.substr(0, eq);
    const std::string val = w.substr(eq + 1);
    if (key == "start") {
      REQUIRE((val == "header" || val == "amqp" || val == "sasl"));
      c.begin = val == "header" ? start::header : val == "amqp" ? start::amqp : start::sasl;
    } else if (key == "max-frame-size") {
      c.limits.max_frame_size = static_cast<std::uint32_t>(std::stoul(val));
    } else if (key == "sasl-max-frame-size") {
      c.limits.sasl_max_frame_size = static_cast<std::uint32_t>(std::stoul(val));
    } else if (key == "max-depth") {
      c.limits.decode.max_depth = static_cast<std::uint32_t>(std::stoul(val));
    } else {
      FAIL("unknown config key " << key);
    }
  }
  return c;
}

std::string header_line(const protocol_header_info& h) {
  switch (h.kind) {
  case protocol_header_kind::amqp:
    return "header amqp";
  case protocol_header_kind::sasl:
    return "header sasl";
  case protocol_header_kind::tls:
    return "header tls";
  case protocol_header_kind::not_amqp:
    return "header not-amqp";
  case protocol_header_kind::unsupported:
    break;
  }
  return "header unsupported id=" + std::to_string(h.id) + " version=" + std::to_string(h.major) +
         "." + std::to_string(h.minor) + "." + std::to_string(h.revision);
}

std::string frame_line(const frame_view& f) {
  if (const auto* s = std::get_if<sasl_frame>(&f.body)) {
    return "SASL " + std::string(name(*s));
  }
  std::string line = "AMQP ch=" + std::to_string(f.channel) + " ";
  if (std::holds_alternative<heartbeat>(f.body)) {
    return line + "heartbeat";
  }
  return line + std::string(name(std::get<performative>(f.body))) +
         " payload=" + std::to_string(f.payload.size());
}

// Drives the readers the way the engine will: a protocol header first, then frames of the
// type it names; during SASL, a byte 'A' at a frame boundary starts the next header.
class replayer {
public:
  explicit replayer(const replay_config& c)
      : follow_headers_(c.begin == start::header), in_header_(follow_headers_),
        frames_(c.limits, c.begin == start::sasl ? frame_type::sasl : frame_type::amqp) {}

  void feed(std::span<const std::byte> chunk) {
    while (!done_ && !chunk.empty()) {
      if (in_header_) {
        chunk = chunk.subspan(headers_.feed(chunk));
        if (auto h = headers_.header()) {
          log_.push_back(header_line(*h));
          headers_.reset();
          in_header_ = false;
          if (h->kind == protocol_header_kind::amqp) {
            frames_.set_expected_type(frame_type::amqp);
          } else if (h->kind == protocol_header_kind::sasl) {
            frames_.set_expected_type(frame_type::sasl);
          } else {
            done_ = true;
          }
        }
        continue;
      }
      if (follow_headers_ && frames_.expected_type() == frame_type::sasl &&
          frames_.at_frame_boundary() && chunk[0] == std::byte{'A'}) {
        in_header_ = true;
        continue;
      }
      auto r = frames_.feed(chunk);
      if (!r) {
        log_.push_back("error: " + r.error().message());
        done_ = true;
        // The error sticks, and nothing more is consumed.
        auto again = frames_.feed(chunk);
        REQUIRE_FALSE(again.has_value());
        CHECK(again.error() == r.error());
        break;
      }
      REQUIRE(r->consumed > 0);
      REQUIRE(r->consumed <= chunk.size());
      if (r->frame) {
        // A frame's bytes are exactly what was consumed to complete it, or end there.
        CHECK(r->frame->bytes.size() >= r->consumed);
        log_.push_back(frame_line(*r->frame));
      }
      chunk = chunk.subspan(r->consumed);
    }
  }

  std::vector<std::string> finish() {
    if (!done_ && !in_header_ && !frames_.at_frame_boundary()) {
      log_.push_back("incomplete " + std::to_string(frames_.buffered()));
    }
    return log_;
  }

private:
  bool follow_headers_;
  bool in_header_;
  bool done_ = false;
  protocol_header_reader headers_;
  frame_reader frames_;
  std::vector<std::string> log_;
};

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) {
    s += l + "\n";
  }
  return s;
}

std::string replay_split(const replay_config& c, std::span<const std::byte> bytes,
                         std::size_t split) {
  replayer r(c);
  r.feed(bytes.first(split));
  r.feed(bytes.subspan(split));
  return joined(r.finish());
}

std::string replay_bytewise(const replay_config& c, std::span<const std::byte> bytes) {
  replayer r(c);
  for (std::size_t k = 0; k < bytes.size(); ++k) {
    r.feed(bytes.subspan(k, 1));
  }
  return joined(r.finish());
}

} // namespace

TEST_CASE("frame vectors: every vector whole, split at every offset, and byte by byte") {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(AMQP_TEST_DATA_DIR "/vectors/frames")) {
    if (e.path().extension() == ".md" && e.path().filename() != "README.md") {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 4);
  std::size_t cases = 0;
  for (const auto& f : files) {
    for (const auto& v : amqp::test::read_literate_vectors(f)) {
      ++cases;
      INFO(v.file << ": " << v.name);
      const auto bytes = amqp::test::from_hex(v.hex);
      REQUIRE_FALSE(bytes.empty());
      REQUIRE_FALSE(v.log.empty());
      const replay_config c = parse_config(v.config);
      const std::string expected = joined(v.log);
      for (std::size_t split = 0; split <= bytes.size(); ++split) {
        INFO("split at " << split);
        REQUIRE(replay_split(c, bytes, split) == expected);
      }
      CHECK(replay_bytewise(c, bytes) == expected);
    }
  }
  CHECK(cases >= 45);
}
