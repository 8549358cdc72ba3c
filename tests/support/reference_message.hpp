// The reference IoT telemetry message of ../shared/bench/README.md, built with the public
// API. Shared by the tests and the benchmarks.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/message.hpp"

namespace amqp::test {

inline constexpr std::string_view reference_body =
    R"({"deviceId":"sensor-device-0042","timestamp":"2023-11-14T22:13:20.000Z","temperature":21.53,"humidity":44.20,"pressure":1013.25,"battery":87.5,"rssi":-67,"status":"ok","firmware":"1.4.2","seq":123456})";

// The body of the large variants: byte i is 'A' + i % 26.
inline std::vector<std::byte> large_body(std::size_t n) {
  std::vector<std::byte> b(n);
  for (std::size_t i = 0; i < n; ++i) {
    b[i] = static_cast<std::byte>('A' + i % 26);
  }
  return b;
}

// Storage for the values a built reference message points at. Building one allocates
// nothing: every section refers to this object's arrays.
struct reference_message {
  std::array<value, 8> annotations;
  std::array<value, 6> app_properties;
  std::array<value, 1> body;
  message_parts msg;

  // Builds the message; `body_bytes` must outlive it (empty: the 200-byte JSON body).
  explicit reference_message(binary_view body_bytes = {}) noexcept {
    annotations = {value{symbol_view{"x-opt-sequence-number"}},
                   value{std::int64_t{123456}},
                   value{symbol_view{"x-opt-offset"}},
                   value{"4294967296"},
                   value{symbol_view{"x-opt-enqueued-time"}},
                   value{timestamp{1700000000123}},
                   value{symbol_view{"iothub-connection-device-id"}},
                   value{"sensor-device-0042"}};
    app_properties = {value{"sensorType"}, value{"thermostat"}, value{"building"},
                      value{"B12-north"},  value{"alert"},      value{"none"}};
    if (body_bytes.empty()) {
      body_bytes = {reinterpret_cast<const std::byte*>(reference_body.data()),
                    reference_body.size()};
    }
    body = {value{body_bytes}};
    msg.header = header{};
    msg.message_annotations = value::map(annotations);
    properties p;
    p.message_id = value{"9c2d0f8e-3b5a-4e6f-8a1b-2c3d4e5f6a7b"};
    p.content_type = symbol_view{"application/json"};
    p.content_encoding = symbol_view{"utf-8"};
    p.creation_time = timestamp{1700000000000};
    msg.properties = p;
    msg.application_properties = value::map(app_properties);
    msg.body = body_kind::data;
    msg.body_sections = body;
  }
  reference_message(const reference_message&) = delete;
  reference_message& operator=(const reference_message&) = delete;
};

} // namespace amqp::test
