// TEMPORARY: descriptions the emulator sends that the profile layer's errors.hpp does not
// have yet (asked of the lead in the hub branch's report). Each moves to
// amqp/iothub/errors.hpp once it is there; the ones marked "emulator's own" are ours, no
// trace of the real hub's text was found.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "amqp/iothub/address.hpp"

namespace amqp::iothub::emulator::texts {

// CBS 404 for an unknown device (TRACE azure-iot-sdk-c#1413: "Device TestDevice5 at IotHub
// MarkRadHub2 not registered."; iotedge#5639 for a module: "Device MyDeviceName/$edgeAgent at
// IotHub MyIoTHubName not registered.").
inline std::string not_registered(const device_identity& id, std::string_view hub) {
  std::string out = "Device " + id.device_id;
  if (id.is_module()) {
    out += "/" + id.module_id;
  }
  return out + " at IotHub " + std::string(hub) + " not registered.";
}

// Emulator's own: a token that does not parse (the parser's reason follows).
inline constexpr std::string_view malformed_token = "The specified SAS token is malformed: ";
// Emulator's own: a token without skn whose resource names no device.
inline constexpr std::string_view no_key_for_resource =
    "The specified SAS token names no device and no shared access policy (skn).";
// Emulator's own: skn names no policy of the hub.
inline std::string unknown_policy(std::string_view name) {
  return "The shared access policy '" + std::string(name) + "' does not exist.";
}
// Emulator's own: the 403 past the identities a connection may hold (§1.6).
inline std::string too_many_identities(std::size_t max) {
  return "The connection already holds " + std::to_string(max) +
         " tokens, the most a connection may hold.";
}
// Emulator's own: an attach no identity of the connection allows.
inline constexpr std::string_view unauthorized_link =
    "Unauthorized: no token of this connection grants this link.";

} // namespace amqp::iothub::emulator::texts
