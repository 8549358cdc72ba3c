// The frame trace of a connection (client_options::trace, AMQP_TRACE=frames): both
// directions decoded frame by frame, secrets redacted, one line per frame on stderr.
#pragma once

#include <cstdint>
#include <string_view>

#include "driver.hpp"

namespace amqp::transport::detail {

[[nodiscard]] engine_driver::trace_hook make_trace_hook(std::string_view who,
                                                        std::uint64_t connection_number);

} // namespace amqp::transport::detail
