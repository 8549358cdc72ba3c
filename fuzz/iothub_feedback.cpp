// Fuzz target iothub_feedback: feedback JSON (doc §5.1) from the hub.
//
// Input: the body of a feedback message. parse_feedback; when it succeeds,
// encode_feedback -> parse gives equal records, and a feedback message built from them
// (encoded and decoded as on the wire) parses back to them too. Every error is one of the
// documented codes, with a non-empty reason.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "amqp/iothub/feedback.hpp"
#include "support/check.hpp"

using namespace amqp::iothub;
using amqp::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  std::string why;
  auto recs = parse_feedback(json, &why);
  if (!recs) {
    const errc e = static_cast<errc>(recs.error().value());
    require(recs.error().category() == iothub_category());
    require(e == errc::invalid_value || e == errc::missing_field || e == errc::limit_exceeded);
    require(!why.empty());
    return 0;
  }
  const std::string out = encode_feedback(*recs);
  auto again = parse_feedback(out);
  if (!again) {
    // Records read from a body within the limit can only grow past it when re-encoded
    // (escapes written differently, all six members always written).
    require(again.error() == errc::limit_exceeded);
    return 0;
  }
  require(*again == *recs);
  require(encode_feedback(*again) == out);
  const auto m = build_feedback_message(*recs, "hub", amqp::timestamp{0});
  auto wire = m.encode();
  require(wire.has_value());
  auto decoded = amqp::message::decode(*wire);
  require(decoded.has_value());
  auto from_message = parse_feedback_message(*decoded);
  require(from_message.has_value() && *from_message == *recs);
  return 0;
}
