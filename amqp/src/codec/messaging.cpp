// Delivery states, outcomes, termini and lifetime policies (AMQP 1.0 §3.4, §3.5), error
// (§2.8.14) and the transactional delivery states (§4.5.5, §4.5.6): the public codec API over
// the tables of composite_tables.hpp.
#include "amqp/messaging.hpp"

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
  return detail::decode_member(described, out);
}

result<void> decode(const value& described, outcome& out) noexcept {
  return detail::decode_member(described, out);
}

} // namespace amqp
