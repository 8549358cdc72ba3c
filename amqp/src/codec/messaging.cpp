// Delivery states, outcomes, termini and lifetime policies (AMQP 1.0 §3.4, §3.5), error
// (§2.8.14) and the transactional delivery states (§4.5.5, §4.5.6): the public codec API over
// the tables of composite_tables.hpp.
#include "amqp/messaging.hpp"

#include <variant>

#include "codec/composite_tables.hpp"

namespace amqp {

AMQP_DEFINE_COMPOSITE_API(error)
AMQP_DEFINE_COMPOSITE_API(received)
AMQP_DEFINE_COMPOSITE_API(accepted)
AMQP_DEFINE_COMPOSITE_API(rejected)
AMQP_DEFINE_COMPOSITE_API(released)
AMQP_DEFINE_COMPOSITE_API(modified)
AMQP_DEFINE_COMPOSITE_API(declared)
AMQP_DEFINE_COMPOSITE_API(transactional_state)
AMQP_DEFINE_COMPOSITE_API(source)
AMQP_DEFINE_COMPOSITE_API(target)
AMQP_DEFINE_COMPOSITE_API(delete_on_close)
AMQP_DEFINE_COMPOSITE_API(delete_on_no_links)
AMQP_DEFINE_COMPOSITE_API(delete_on_no_messages)
AMQP_DEFINE_COMPOSITE_API(delete_on_no_links_or_messages)

// AMQP 1.0 §3.4: unknown delivery states and outcomes are kept as values, not refused.
result<void> decode(const value& described, delivery_state& out) noexcept {
  return detail::decode_alternatives(described, out);
}

result<void> decode(const value& described, outcome& out) noexcept {
  return detail::decode_alternatives(described, out);
}

namespace {
struct kind_visitor {
  state_kind operator()(const received&) const noexcept { return state_kind::received; }
  state_kind operator()(const accepted&) const noexcept { return state_kind::accepted; }
  state_kind operator()(const rejected&) const noexcept { return state_kind::rejected; }
  state_kind operator()(const released&) const noexcept { return state_kind::released; }
  state_kind operator()(const modified&) const noexcept { return state_kind::modified; }
  state_kind operator()(const declared&) const noexcept { return state_kind::declared; }
  state_kind operator()(const transactional_state&) const noexcept {
    return state_kind::transactional;
  }
  state_kind operator()(const value&) const noexcept { return state_kind::other; }
};
} // namespace

state_kind kind_of(const delivery_state& s) noexcept {
  return std::visit(kind_visitor{}, s);
}

state_kind kind_of(const std::optional<delivery_state>& s) noexcept {
  return s ? kind_of(*s) : state_kind::none;
}

state_kind kind_of(const outcome& o) noexcept {
  return std::visit(kind_visitor{}, o);
}

std::string_view name(state_kind k) noexcept {
  switch (k) {
  case state_kind::none:
    return "none";
  case state_kind::received:
    return "received";
  case state_kind::accepted:
    return "accepted";
  case state_kind::rejected:
    return "rejected";
  case state_kind::released:
    return "released";
  case state_kind::modified:
    return "modified";
  case state_kind::declared:
    return "declared";
  case state_kind::transactional:
    return "transactional-state";
  case state_kind::other:
    return "other";
  }
  return "other";
}

} // namespace amqp
