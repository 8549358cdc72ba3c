// AMQP 1.0 transactions (transactions.xml, §4): the coordinator target and the declare and
// discharge messages. The transactional delivery states `declared` and
// `transactional_state` are in messaging.hpp, with the other delivery states.
//
// Views as in messaging.hpp: nothing is owned.
#pragma once

#include <cstddef>
#include <optional>
#include <span>

#include "amqp/messaging.hpp"
#include "amqp/result.hpp"
#include "amqp/symbols.hpp"
#include "amqp/value.hpp"

namespace amqp {

// AMQP 1.0 §4.5.1 coordinator (0x30): the target of a link to a transaction coordinator.
struct coordinator {
  symbols capabilities{}; // txn-capability symbols ("amqp:local-transactions", ...)
};

// AMQP 1.0 §4.5.2 declare (0x31): the body of a message asking to declare a transaction.
struct declare {
  value global_id{}; // global-tx-id (no type is defined for it yet), or null
};

// AMQP 1.0 §4.5.3 discharge (0x32): the body of a message ending a transaction.
struct discharge {
  binary_view txn_id{};
  std::optional<bool> fail{};
};

// Decodes `described` into `out`, checking its descriptor (code or symbolic name); as the
// decode overloads of messaging.hpp. Errors: errc::unexpected_descriptor,
// errc::type_mismatch, errc::missing_field.
[[nodiscard]] result<void> decode(const value& described, coordinator& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, declare& out) noexcept;
[[nodiscard]] result<void> decode(const value& described, discharge& out) noexcept;

// The number of bytes `x` encodes to, as the encoded_size overloads of messaging.hpp.
// Errors: errc::invalid_argument (a `value` or `symbols` field with no encoding).
[[nodiscard]] result<std::size_t> encoded_size(const coordinator& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const declare& x) noexcept;
[[nodiscard]] result<std::size_t> encoded_size(const discharge& x) noexcept;

// Encodes `x` into the front of `out`; returns the bytes written. Errors: those of
// encoded_size, errc::buffer_too_small.
[[nodiscard]] result<std::size_t> encode(const coordinator& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const declare& x, std::span<std::byte> out) noexcept;
[[nodiscard]] result<std::size_t> encode(const discharge& x, std::span<std::byte> out) noexcept;

} // namespace amqp
