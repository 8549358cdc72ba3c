// Conversion of AMQP decimal32/64/128 (IEEE 754-2008 decimal, binary integer decimal
// encoding, AMQP 1.0 §1.6.12-14) to and from decimal strings.
#pragma once

#include <string>
#include <string_view>

#include "amqp/result.hpp"
#include "amqp/value.hpp"

namespace amqp {

// The value as a string in IEEE 754-2008 / General Decimal Arithmetic "to-scientific-string"
// form: "123.45", "-0.000012", "1.2E+10", "Infinity", "-Infinity", "NaN", "sNaN" (with
// the payload digits if any, "NaN12"). Every coefficient digit and the exponent are kept,
// so "1.50" and "1.5" differ. Non-canonical coefficients (above the precision) read as 0.
[[nodiscard]] std::string to_string(const decimal32& d);
[[nodiscard]] std::string to_string(const decimal64& d);
[[nodiscard]] std::string to_string(const decimal128& d);

// Parses a decimal string (`[+|-]digits[.digits][(E|e)[+|-]digits]`, `Infinity`, `Inf`,
// `NaN`, `sNaN`, case-insensitive) exactly. Errors: errc::invalid_argument when the text is
// not a number or the value cannot be represented without rounding (more significant
// digits than the precision: 7, 16 or 34; exponent out of range).
[[nodiscard]] result<decimal32> parse_decimal32(std::string_view s) noexcept;
[[nodiscard]] result<decimal64> parse_decimal64(std::string_view s) noexcept;
[[nodiscard]] result<decimal128> parse_decimal128(std::string_view s) noexcept;

} // namespace amqp
