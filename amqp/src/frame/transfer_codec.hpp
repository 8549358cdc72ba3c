// Fast paths for the one frame that carries every message: transfer (AMQP 1.0 §2.7.5).
// The generic table-driven codec handles every encoding; these handle the shapes that
// real peers send (list8, primitive fields, no delivery-state) directly, and say so when
// they do not, so the caller falls back to the generic decoder. Encoding writes exactly
// what the generic encoder writes (smallest encodings, defaults as null, trailing nulls
// trimmed), so the bytes on the wire do not depend on the path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "amqp/performatives.hpp"

namespace amqp::detail {

// Decodes the body of an AMQP frame (the bytes after the 8-byte header of a DOFF 2 frame)
// if it is a transfer in the common shape, into `t` and `payload` (views into `body`).
// Returns false when the body is anything else, or a transfer in a shape left to the
// generic decoder (list32, a delivery-state, more than 11 fields, a null handle, ...): the
// generic decoder then gives the same result or the right error.
[[nodiscard]] bool try_decode_transfer(std::span<const std::byte> body, transfer& t,
                                       std::span<const std::byte>& payload) noexcept;

// The fields of a transfer that the engine sends; everything else is at its default.
struct transfer_fields {
  std::uint32_t handle = 0;
  std::optional<std::uint32_t> delivery_id{};
  std::optional<std::span<const std::byte>> delivery_tag{}; // at most 32 bytes
  std::optional<std::uint32_t> message_format{};
  bool settled = false; // written only when true
  bool more = false;
  bool aborted = false;
};

// The size of the transfer performative for `f` (descriptor and list).
[[nodiscard]] std::size_t transfer_performative_size(const transfer_fields& f) noexcept;

// Writes the frame (8-byte header, performative, payload) on `channel` into `out`, which
// must hold exactly 8 + transfer_performative_size(f) + payload.size() bytes.
void write_transfer_frame(std::uint16_t channel, const transfer_fields& f,
                          std::span<const std::byte> payload, std::span<std::byte> out) noexcept;

} // namespace amqp::detail
