// Fuzz target decode_frame: the frame layer on untrusted bytes (AMQP 1.0 §2.2 protocol
// headers, §2.3 frames, §5.3.1 SASL frames), driven as the engine drives it.
//
// Input: 8 parameter bytes, then the byte stream.
//   byte 0     flags: bit 0 = the stream begins with a protocol header, and SASL frames are
//              followed by the next header at a byte 'A' (as tests/vectors/frames/ replays
//              them); otherwise bit 1 = SASL frames, else AMQP frames, with no header.
//              Bits 2-7 = n: the n-th allocation of the reassembly buffer fails (0: none).
//   bytes 1-2  max-frame-size, u16 BE (0xffff = 2^32 - 1, no limit)
//   bytes 3-4  SASL max frame size, u16 BE (0xffff = 2^32 - 1)
//   byte 5, 6  two chunk sizes used alternately to cut the stream (0 = all the rest)
//   byte 7     max_depth of the value decoder, % 65
// tests/tools/capture_proton_frames.py writes seeds in this format.
//
// The stream is replayed twice, whole and cut into chunks; both replays must log the same
// frames and the same error (unless the chunked one fails an allocation, then its log is a
// prefix). Every frame is checked against the limits, decoded again on its own, and
// re-encoded through the frame encoder, which must give a frame that decodes the same. The
// transfer fit computation is checked on every transfer.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory_resource>
#include <new>
#include <string>
#include <vector>

#include "amqp/error.hpp"
#include "frame/frame.hpp"
#include "frame/protocol_header.hpp"
#include "support/check.hpp"
#include "support/data_provider.hpp"

using namespace amqp;
using namespace amqp::detail;
using amqp::fuzz::require;
using amqp::fuzz::same_bytes;

namespace {

struct params {
  bool follow_headers = false;
  frame_type start = frame_type::amqp;
  unsigned fail_allocation = 0;
  frame_limits limits{};
  std::size_t chunk_a = 0;
  std::size_t chunk_b = 0;
};

std::uint32_t limit_of(std::uint16_t v) {
  return v == 0xffff ? std::numeric_limits<std::uint32_t>::max() : v;
}

// Fails the n-th allocation (counting from 1), if n > 0.
class failing_resource final : public std::pmr::memory_resource {
public:
  explicit failing_resource(unsigned n) : fail_at_(n) {}
  bool failed = false;

private:
  void* do_allocate(std::size_t bytes, std::size_t align) override {
    if (++count_ == fail_at_) {
      failed = true;
#if defined(__cpp_exceptions)
      throw std::bad_alloc();
#endif
    }
    return std::pmr::new_delete_resource()->allocate(bytes, align);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
    std::pmr::new_delete_resource()->deallocate(p, bytes, align);
  }
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
    return this == &o;
  }
  unsigned fail_at_;
  unsigned count_ = 0;
};

bool expected_error(std::error_code ec) {
  return ec == errc::framing_error || ec == errc::frame_too_large ||
         ec == errc::unexpected_frame_type || ec == errc::decode_error ||
         ec == errc::depth_exceeded || ec == errc::resource_limit || ec == errc::type_mismatch ||
         ec == errc::missing_field || ec == errc::unexpected_descriptor;
}

void append_bytes(std::string& s, std::span<const std::byte> b) {
  for (auto x : b) {
    s += static_cast<char>(x);
  }
}

// The frame body's kind: 0 heartbeat, 1xx performative xx, 2xx SASL body xx.
std::size_t body_kind(const frame_body& b) {
  if (const auto* p = std::get_if<performative>(&b)) {
    return 100 + p->index();
  }
  if (const auto* s = std::get_if<sasl_frame>(&b)) {
    return 200 + s->index();
  }
  return 0;
}

// Checks one frame while its views are alive, and returns its log record.
std::string check_frame(const frame_view& f, const frame_limits& limits) {
  // The frame respects the limit in force, and its parts are in their places.
  const std::uint32_t limit =
      f.type == frame_type::sasl ? limits.sasl_max_frame_size : limits.max_frame_size;
  require(f.bytes.size() >= frame_header_size && f.bytes.size() <= limit);
  const frame_header h = parse_frame_header(f.bytes.first<frame_header_size>());
  require(h.size == f.bytes.size() && h.type == static_cast<std::uint8_t>(f.type));
  require(f.channel == (f.type == frame_type::sasl ? 0 : h.channel));
  require(f.payload.size() <= f.bytes.size() - frame_header_size);
  require(f.payload.data() + f.payload.size() == f.bytes.data() + f.bytes.size() ||
          f.payload.empty());
  const std::size_t kind = body_kind(f.body);
  require(f.payload.empty() || kind >= 100);
  require((kind >= 200) == (f.type == frame_type::sasl));

  // The same bytes decode alone to the same kind of frame.
  auto again = decode_frame(f.bytes, limits.decode);
  require(again.has_value() && body_kind(again->body) == kind &&
          same_bytes(again->payload, f.payload) && again->channel == f.channel);

  // Re-encoded by the frame encoder (DOFF 2, smallest encodings), it decodes the same.
  std::vector<std::byte> enc;
  if (const auto* p = std::get_if<performative>(&f.body)) {
    auto size = encoded_frame_size(*p, f.payload.size());
    require(size.has_value());
    require(append_frame(f.channel, *p, f.payload, enc).has_value() && enc.size() == *size);
    std::vector<std::byte> exact(*size);
    require(encode_frame(f.channel, *p, f.payload, exact).has_value() && same_bytes(exact, enc));
    if (*size > 0) {
      auto small = encode_frame(f.channel, *p, f.payload, std::span(exact).first(*size - 1));
      require(!small && small.error() == errc::buffer_too_small);
    }

    // The fit computation: a plan for this transfer's payload stays within the limit.
    if (const auto* t = std::get_if<transfer>(p)) {
      const std::uint32_t max = std::max<std::uint32_t>(limits.max_frame_size, 512);
      auto plan = plan_transfer_frame(*t, f.payload.size(), max);
      if (plan) {
        require(plan->payload_size <= f.payload.size());
        require(plan->more == (plan->payload_size < f.payload.size()));
        transfer planned = *t;
        planned.more = plan->more;
        auto n = encoded_frame_size(performative{planned}, plan->payload_size);
        require(n.has_value() && *n <= max);
        auto cap = transfer_payload_capacity(planned, max);
        require(cap.has_value() && plan->payload_size <= *cap);
      } else {
        require(plan.error() == errc::frame_too_large);
      }
    }
  } else if (const auto* s = std::get_if<sasl_frame>(&f.body)) {
    auto size = encoded_frame_size(*s);
    require(size.has_value());
    require(append_frame(*s, enc).has_value() && enc.size() == *size);
  } else {
    enc.resize(frame_header_size);
    write_frame_header(frame_header{8, 2, 0, f.channel},
                       std::span<std::byte, frame_header_size>(enc.data(), frame_header_size));
  }
  auto back = decode_frame(enc, {});
  require(back.has_value() && body_kind(back->body) == kind && back->channel == f.channel &&
          same_bytes(back->payload, f.payload));

  std::string rec = f.type == frame_type::sasl ? "S" : "A";
  rec += std::to_string(f.channel) + "/" + std::to_string(kind) + "/";
  append_bytes(rec, f.bytes);
  return rec;
}

// Replays `in` cut into chunks of the given sizes (0: the rest), as the engine would drive
// the readers; returns the log.
std::vector<std::string> replay(const params& p, std::span<const std::byte> in, std::size_t chunk_a,
                                std::size_t chunk_b, unsigned fail_at, bool& allocation_failed) {
  failing_resource memory(fail_at);
  std::vector<std::string> log;
  protocol_header_reader headers;
  frame_reader frames(p.limits, p.start, &memory);
  bool in_header = p.follow_headers;
  bool done = false;
  bool use_a = true;
  while (!done && !in.empty()) {
    const std::size_t want = use_a ? chunk_a : chunk_b;
    use_a = !use_a;
    std::span<const std::byte> chunk = in.first(want == 0 ? in.size() : std::min(want, in.size()));
    in = in.subspan(chunk.size());
    while (!done && !chunk.empty()) {
      if (in_header) {
        const std::size_t n = headers.feed(chunk);
        require(n <= chunk.size());
        const bool took_all = n == chunk.size();
        chunk = chunk.subspan(n);
        if (auto h = headers.header()) {
          log.push_back("H" + std::to_string(static_cast<int>(h->kind)));
          headers.reset();
          in_header = false;
          if (h->kind == protocol_header_kind::amqp) {
            frames.set_expected_type(frame_type::amqp);
          } else if (h->kind == protocol_header_kind::sasl) {
            frames.set_expected_type(frame_type::sasl);
          } else {
            done = true;
          }
        } else {
          require(took_all); // an unfinished header takes every byte offered
        }
        continue;
      }
      if (p.follow_headers && frames.expected_type() == frame_type::sasl &&
          frames.at_frame_boundary() && chunk[0] == std::byte{'A'}) {
        in_header = true;
        continue;
      }
      auto r = frames.feed(chunk);
      if (!r) {
        const auto ec = r.error();
        if (ec == errc::out_of_memory) {
          require(memory.failed);
          allocation_failed = true;
        } else {
          require(expected_error(ec));
        }
        // Sticky: the same error again, whatever the input.
        auto again = frames.feed(chunk);
        require(!again && again.error() == ec && frames.error() == ec);
        log.push_back("E" + std::to_string(ec.value()));
        done = true;
        break;
      }
      require(r->consumed > 0 && r->consumed <= chunk.size());
      if (r->frame) {
        log.push_back(check_frame(*r->frame, p.limits));
        require(frames.at_frame_boundary());
      } else {
        // Without a frame, the whole chunk was taken into an incomplete frame.
        require(r->consumed == chunk.size() && !frames.at_frame_boundary());
        require(frames.buffered() <=
                std::max<std::size_t>(frame_header_size, frames.buffer_capacity()));
      }
      chunk = chunk.subspan(r->consumed);
    }
  }
  if (!done && !in_header && !frames.at_frame_boundary()) {
    log.push_back("I" + std::to_string(frames.buffered()));
  }
  return log;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::data_provider dp(data, size);
  params p;
  const std::uint8_t flags = dp.u8();
  p.follow_headers = (flags & 1U) != 0;
  p.start = (flags & 2U) != 0 && !p.follow_headers ? frame_type::sasl : frame_type::amqp;
  p.fail_allocation = flags >> 2U;
  p.limits.max_frame_size = limit_of(dp.u16());
  p.limits.sasl_max_frame_size = limit_of(dp.u16());
  p.chunk_a = dp.u8();
  p.chunk_b = dp.u8();
  p.limits.decode.max_depth = dp.u8() % 65U;
  const std::span<const std::byte> in = dp.rest();

  bool whole_failed = false;
  const auto whole = replay(p, in, 0, 0, 0, whole_failed);
  require(!whole_failed);
  bool chunked_failed = false;
  const auto chunked = replay(p, in, p.chunk_a, p.chunk_b, p.fail_allocation, chunked_failed);
  if (chunked_failed) {
    // Up to the failed allocation, the same frames.
    require(chunked.size() <= whole.size() + 1);
    for (std::size_t k = 0; k + 1 < chunked.size(); ++k) {
      require(chunked[k] == whole[k]);
    }
  } else {
    require(chunked == whole);
  }
  return 0;
}
