#include "emulator/timers.hpp"

namespace amqp::iothub::emulator {

void timer_heap::schedule(time_point at, timer_kind kind, std::uint64_t a, std::uint64_t b) {
  heap_.push(timer{at, kind, a, b});
}

std::optional<time_point> timer_heap::next() const noexcept {
  if (heap_.empty()) {
    return std::nullopt;
  }
  return heap_.top().at;
}

std::optional<timer> timer_heap::pop_due(time_point now) {
  if (heap_.empty() || heap_.top().at > now) {
    return std::nullopt;
  }
  timer t = heap_.top();
  heap_.pop();
  return t;
}

} // namespace amqp::iothub::emulator
