// Azure IoT Hub and Event Hubs connection strings: `Key=Value;Key=Value;...` (NODE
// common/core/src/connection_string.ts; DOC-SAS; EH-JS sample for the Event Hubs form).
//
//   HostName=myhub.azure-devices.net;DeviceId=d1;SharedAccessKey=base64==
//   HostName=myhub.azure-devices.net;DeviceId=d1;ModuleId=m1;SharedAccessKey=...
//   HostName=myhub.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=...
//   Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=service;SharedAccessKey=...;
//       EntityPath=myhub
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "amqp/iothub/errors.hpp"
#include "amqp/result.hpp"

namespace amqp::iothub {

// The longest connection string parse_connection_string accepts.
inline constexpr std::size_t max_connection_string_length = 4096;

// What a connection string connects as.
enum class connection_string_kind : std::uint8_t {
  device,     // DeviceId, no ModuleId
  module,     // DeviceId and ModuleId
  service,    // a hub policy: SharedAccessKeyName, no DeviceId
  event_hubs, // Endpoint=sb://... (the built-in endpoint's Event Hubs-compatible form)
};

// A parsed connection string. An empty string means the key was absent (parsing refuses
// empty values, so the two cannot be confused).
struct connection_string {
  std::string host_name;                 // HostName: host[:port]
  std::string gateway_host_name;         // GatewayHostName (IoT Edge)
  std::string device_id;                 // DeviceId
  std::string module_id;                 // ModuleId
  std::string shared_access_key_name;    // SharedAccessKeyName (policy name)
  std::string shared_access_key;         // SharedAccessKey (base64)
  std::string shared_access_signature;   // SharedAccessSignature (a whole SAS token)
  std::string endpoint;                  // Endpoint (Event Hubs form, sb://host/)
  std::string entity_path;               // EntityPath (Event Hubs form)
  bool x509 = false;                     // x509=true
  bool use_development_emulator = false; // UseDevelopmentEmulator=true
  // Keys this layer does not know, kept with their values in the order found, and written
  // back by to_string (other SDKs add their own keys; dropping them silently would change
  // what a user wrote).
  std::vector<std::pair<std::string, std::string>> other;

  friend bool operator==(const connection_string&, const connection_string&) = default;
};

// Parses `Key=Value;...`: keys matched without regard to case; a value is everything after
// the first `=` of its field (base64 keys end with `=`); empty fields (`;;`, a trailing
// `;`) are skipped; spaces are kept as written. `x509` and `UseDevelopmentEmulator` take
// `true` or `false` (any case). Parsing checks the syntax only; validate() checks the
// combination. Errors (reason in `why`): errc::limit_exceeded (longer than
// max_connection_string_length), errc::invalid_value (a field without `=`, an empty key or
// value, a boolean that is neither true nor false), errc::conflict (a key given twice).
[[nodiscard]] result<connection_string> parse_connection_string(std::string_view text,
                                                                std::string* why = nullptr);

// Checks that the fields make a usable connection string and says what it is:
// - Event Hubs: Endpoint is `sb://host[:port][/]`, with SharedAccessKeyName and
//   SharedAccessKey, or SharedAccessSignature; no HostName, DeviceId, ModuleId or x509;
// - device or module: HostName, DeviceId (ModuleId for a module), valid ids (device_id.hpp
//   rules in address.hpp), and exactly one of SharedAccessKey, SharedAccessSignature, x509;
// - service: HostName, SharedAccessKeyName, and SharedAccessKey or SharedAccessSignature.
// HostName and GatewayHostName must be host[:port]; SharedAccessKey must be base64;
// SharedAccessSignature must parse as a SAS token. Errors (reason in `why`):
// errc::missing_field ("HostName is missing"), errc::invalid_value ("SharedAccessKey is not
// base64"), errc::conflict ("both SharedAccessKey and SharedAccessSignature").
[[nodiscard]] result<connection_string_kind> validate(const connection_string& cs,
                                                      std::string* why = nullptr);

// parse_connection_string then validate. Errors: theirs.
[[nodiscard]] result<connection_string> parse_and_validate(std::string_view text,
                                                           std::string* why = nullptr);

// The connection string as text: the known keys in a fixed order with their canonical
// spelling (HostName, GatewayHostName, DeviceId, ModuleId, SharedAccessKeyName,
// SharedAccessKey, SharedAccessSignature, Endpoint, EntityPath, x509,
// UseDevelopmentEmulator), then `other` in order; absent keys and false booleans left out.
// parse_connection_string gives back an equal struct.
[[nodiscard]] std::string to_string(const connection_string& cs);

// The hub name: the first DNS label of a host name ("myhub" for
// "myhub.azure-devices.net:5671"), the port ignored. Empty for an empty host.
[[nodiscard]] std::string_view hub_name(std::string_view host_name) noexcept;

// A host name split from its port ("localhost:5671", "[::1]:5671", "myhub.azure-devices.net").
struct host_port {
  std::string_view host; // without brackets for IPv6
  std::optional<std::uint16_t> port;
};

// Splits host[:port]. Errors: errc::invalid_value (an empty host, a port that is not 1 to
// 65535, an unclosed IPv6 bracket, a character not allowed in a host name: anything but
// letters, digits, `-`, `.`, `_`, and `:` inside brackets).
[[nodiscard]] result<host_port> split_host_port(std::string_view text, std::string* why = nullptr);

} // namespace amqp::iothub
