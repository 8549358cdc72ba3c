// Hexadecimal text for amqp-cli: lowercase output, strict and lenient input.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace amqp::cli {

// Appends the lowercase hex digits of `bytes` to `out`.
void append_hex(std::span<const std::byte> bytes, std::string& out);

// The lowercase hex digits of `bytes`.
[[nodiscard]] std::string to_hex(std::span<const std::byte> bytes);

// Parses lowercase hex digits only (an even number of them, nothing else), as the typed JSON
// form writes them. nullopt on any other character or an odd count.
[[nodiscard]] std::optional<std::vector<std::byte>> parse_lower_hex(std::string_view text);

// Parses hex text of either case in which whitespace is ignored (`decode --hex` input).
// On failure returns nullopt and describes the problem in `error`.
[[nodiscard]] std::optional<std::vector<std::byte>> parse_hex_text(std::string_view text,
                                                                   std::string& error);

} // namespace amqp::cli
