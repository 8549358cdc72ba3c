// The broker's queues and their messages (queue_store.hpp).
#include "queue_store.hpp"

#include <algorithm>

namespace amqp::broker {

namespace {

// Messages a consumer looks past, from the front of its queue, for one it may take (the
// others answered undeliverable-here for it).
constexpr std::size_t pick_scan = 64;

// The node an address names. An absolute URL ("amqps://host:port/q", as Python uAMQP and
// Azure clients send) names the node of its path ("q"), as Azure's brokers read it.
std::string_view node_name(std::string_view address) noexcept {
  for (const std::string_view scheme : {"amqp://", "amqps://"}) {
    if (address.substr(0, scheme.size()) == scheme) {
      const auto slash = address.find('/', scheme.size());
      return slash == std::string_view::npos ? std::string_view{} : address.substr(slash + 1);
    }
  }
  return address;
}

} // namespace

result<queue*> queue_store::find_or_create(std::string_view address) {
  address = node_name(address);
  auto it = queues_.find(address);
  if (it != queues_.end()) {
    return &it->second;
  }
  if (!opts_.auto_create_queues) {
    return errc::invalid_state;
  }
  if (queues_.size() >= opts_.max_queues) {
    return errc::resource_limit;
  }
  auto [pos, inserted] = queues_.try_emplace(std::string(address));
  pos->second.name = pos->first;
  return &pos->second;
}

queue* queue_store::find(std::string_view name) noexcept {
  auto it = queues_.find(name);
  return it == queues_.end() ? nullptr : &it->second;
}

const queue* queue_store::find(std::string_view name) const noexcept {
  auto it = queues_.find(name);
  return it == queues_.end() ? nullptr : &it->second;
}

queue* queue_store::create_dynamic() {
  if (queues_.size() >= opts_.max_queues) {
    return nullptr;
  }
  std::string name;
  do {
    name = "dynamic." + std::to_string(next_dynamic_++);
  } while (queues_.contains(name));
  auto [pos, inserted] = queues_.try_emplace(name);
  pos->second.name = pos->first;
  pos->second.dynamic = true;
  return &pos->second;
}

result<void> queue_store::declare(std::string_view name) {
  if (name.empty()) {
    return errc::invalid_argument;
  }
  auto it = queues_.find(name);
  if (it == queues_.end()) {
    if (queues_.size() >= opts_.max_queues) {
      return errc::resource_limit;
    }
    it = queues_.try_emplace(std::string(name)).first;
    it->second.name = it->first;
  }
  it->second.declared = true;
  return {};
}

void queue_store::erase(queue& q) {
  total_bytes_ -= q.bytes + q.in_flight_bytes;
  queues_.erase(queues_.find(q.name));
}

// Auto-created queues go when nothing uses them: no message, no link.
void queue_store::maybe_gc(queue& q) {
  if (q.dynamic || q.declared || !q.messages.empty() || q.in_flight != 0 || !q.consumers.empty() ||
      !q.producers.empty()) {
    return;
  }
  queues_.erase(queues_.find(q.name));
}

std::vector<std::string> queue_store::names() const {
  std::vector<std::string> out;
  out.reserve(queues_.size());
  for (const auto& [name, q] : queues_) {
    out.push_back(name);
  }
  return out;
}

queue_stats queue_store::stats(const queue& q) {
  queue_stats s = q.counters;
  s.depth = q.messages.size();
  s.bytes = q.bytes;
  s.in_flight = q.in_flight;
  s.in_flight_bytes = q.in_flight_bytes;
  s.consumers = q.consumers.size();
  s.producers = q.producers.size();
  s.dynamic = q.dynamic;
  s.declared = q.declared;
  return s;
}

bool queue_store::full(const queue& q) const noexcept {
  return q.messages.size() + q.in_flight >= opts_.max_queue_messages ||
         q.bytes + q.in_flight_bytes >= opts_.max_queue_bytes;
}

std::size_t queue_store::room(const queue& q) const noexcept {
  const std::size_t held = q.messages.size() + q.in_flight;
  return held >= opts_.max_queue_messages ? 0 : opts_.max_queue_messages - held;
}

void queue_store::enqueue(queue& q, stored_message m) {
  m.seq = next_seq_++;
  q.bytes += m.payload.size();
  total_bytes_ += m.payload.size();
  ++q.counters.enqueued;
  q.messages.push_back(std::move(m));
}

void queue_store::requeue(queue& q, stored_message m) {
  auto pos =
      std::lower_bound(q.messages.begin(), q.messages.end(), m.seq,
                       [](const stored_message& x, std::uint64_t seq) { return x.seq < seq; });
  q.bytes += m.payload.size();
  total_bytes_ += m.payload.size();
  q.messages.insert(pos, std::move(m));
}

std::size_t queue_store::pick(const queue& q, std::uint64_t consumer_key) noexcept {
  const std::size_t n = std::min(q.messages.size(), pick_scan);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& u = q.messages[i].undeliverable;
    if (u.empty() || std::find(u.begin(), u.end(), consumer_key) == u.end()) {
      return i;
    }
  }
  return std::string::npos;
}

stored_message queue_store::take(queue& q, std::size_t pos, bool in_flight) {
  stored_message m = std::move(q.messages[pos]);
  q.messages.erase(q.messages.begin() + static_cast<std::ptrdiff_t>(pos));
  q.bytes -= m.payload.size();
  if (in_flight) {
    ++q.in_flight;
    q.in_flight_bytes += m.payload.size();
  } else {
    total_bytes_ -= m.payload.size();
  }
  return m;
}

void queue_store::settle(queue& q, const stored_message& m) noexcept {
  --q.in_flight;
  q.in_flight_bytes -= m.payload.size();
  total_bytes_ -= m.payload.size();
}

} // namespace amqp::broker
