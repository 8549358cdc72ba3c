// Reading amqp-cli's input: a whole file, or standard input.
#pragma once

#include <optional>
#include <string>

namespace amqp::cli {

// Reads all of the file at `path`, or of standard input when `path` is empty or "-". The
// bytes are returned unchanged (binary). On failure returns nullopt and describes the
// problem in `error`.
[[nodiscard]] std::optional<std::string> read_input(const std::string& path, std::string& error);

} // namespace amqp::cli
