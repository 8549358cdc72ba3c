// Transaction coordination (AMQP 1.0 §4.5): the public codec API over the tables of
// composite_tables.hpp.
#include "amqp/transactions.hpp"

#include "codec/composite_tables.hpp"

namespace amqp {

AMQP_DEFINE_COMPOSITE_API(coordinator)
AMQP_DEFINE_COMPOSITE_API(declare)
AMQP_DEFINE_COMPOSITE_API(discharge)

} // namespace amqp
