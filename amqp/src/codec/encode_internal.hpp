// Internal encoding entry points shared by the value, composite and message encoders.
#pragma once

#include <cstddef>

#include "amqp/result.hpp"
#include "amqp/value.hpp"
#include "codec/writer.hpp"

namespace amqp::detail {

// The full encoded size of `v` (constructor included). Errors as amqp::encoded_size.
[[nodiscard]] result<std::size_t> full_size(const value& v) noexcept;
// Writes `v`; full_size(v) must have succeeded and `w` must have room for it.
void write_full(const value& v, writer& w) noexcept;

} // namespace amqp::detail
