// amqp::symbols: a multiple="true" symbol field (AMQP 1.0 §1.4: one symbol or an array).
#pragma once

#include <string_view>

#include "amqp/value.hpp"

namespace amqp {

// A field that holds zero or more symbols: on the wire null, one symbol, or an array of
// symbols. Non-owning, like `value`.
class symbols {
public:
  symbols() = default;
  // From a symbol, an array of symbols, or null. Other values make an invalid field, refused
  // when encoded and never produced by the decoder.
  explicit symbols(const value& v) noexcept : v_(v) {}

  // The field as an AMQP value (null, symbol or array).
  [[nodiscard]] const value& as_value() const noexcept { return v_; }
  [[nodiscard]] bool empty() const noexcept { return size() == 0; }
  [[nodiscard]] std::uint32_t size() const noexcept {
    return v_.is(type::symbol) ? 1 : v_.is(type::array) ? v_.count() : 0;
  }
  // True if `s` is one of the symbols.
  [[nodiscard]] bool contains(std::string_view s) const noexcept {
    bool found = false;
    for_each([&](std::string_view x) { found = found || x == s; });
    return found;
  }
  // Calls f(std::string_view) for every symbol, in order.
  template <class F> void for_each(F&& f) const {
    if (v_.is(type::symbol)) {
      f(v_.as_symbol());
    } else if (v_.is(type::array)) {
      for (const value& e : v_.items()) {
        f(e.as_symbol());
      }
    }
  }

private:
  value v_;
};

} // namespace amqp
