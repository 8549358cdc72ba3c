// describe(): an error code or an AMQP error condition as text, for the failure messages of
// the benchmarks that drive our engine (bench_engine, bench_tcp).
#pragma once

#include <optional>
#include <string>
#include <system_error>

#include "amqp/messaging.hpp"

namespace amqp::bench {

// "MESSAGE (VALUE)", or "none".
inline std::string describe(std::error_code ec) {
  return ec ? ec.message() + " (" + std::to_string(ec.value()) + ")" : std::string("none");
}

// `CONDITION "DESCRIPTION"`, or "no condition".
inline std::string describe(const std::optional<amqp::error>& e) {
  if (!e) {
    return "no condition";
  }
  std::string s(e->condition.str);
  if (e->description) {
    s += " \"" + std::string(*e->description) + "\"";
  }
  return s;
}

} // namespace amqp::bench
