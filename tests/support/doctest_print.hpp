// doctest printers for the containers engine tests compare (event logs, frame names), so
// that a failed CHECK shows both sides instead of {?}.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace doctest {

template <> struct StringMaker<std::vector<std::string>> {
  static String convert(const std::vector<std::string>& v) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
      s += i == 0 ? "\"" : ", \"";
      s += v[i];
      s += "\"";
    }
    s += "]";
    return String(s.c_str());
  }
};

template <> struct StringMaker<std::vector<std::uint16_t>> {
  static String convert(const std::vector<std::uint16_t>& v) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
      s += (i == 0 ? "" : ", ") + std::to_string(v[i]);
    }
    s += "]";
    return String(s.c_str());
  }
};

template <> struct StringMaker<std::vector<std::uint32_t>> {
  static String convert(const std::vector<std::uint32_t>& v) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
      s += (i == 0 ? "" : ", ") + std::to_string(v[i]);
    }
    s += "]";
    return String(s.c_str());
  }
};

} // namespace doctest

namespace amqp::test {

// "a, b, c": for INFO() messages.
inline std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) {
    s += s.empty() ? x : ", " + x;
  }
  return s;
}

} // namespace amqp::test
