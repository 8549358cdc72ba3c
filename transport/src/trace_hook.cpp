#include "trace_hook.hpp"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "amqp/trace.hpp"
#include "amqp/transport/options.hpp"

namespace amqp::transport {

bool trace_from_environment() noexcept {
  const char* v = std::getenv("AMQP_TRACE");
  return v != nullptr && trace_frames_requested(v);
}

namespace detail {

engine_driver::trace_hook make_trace_hook(std::string_view who, std::uint64_t connection_number) {
  const auto sink = [](std::string_view line) {
    std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
  };
  const std::string tag(who);
  auto in = std::make_shared<frame_tracer>(
      tag + " " + trace_prefix(connection_number, trace_direction::in), sink);
  auto out = std::make_shared<frame_tracer>(
      tag + " " + trace_prefix(connection_number, trace_direction::out), sink);
  return [in, out](bool outgoing, std::span<const std::byte> bytes) {
    (outgoing ? out : in)->feed(bytes);
  };
}

} // namespace detail
} // namespace amqp::transport
