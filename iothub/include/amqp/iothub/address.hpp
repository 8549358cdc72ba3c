// Link addresses of Azure IoT Hub and of its Event Hubs-compatible endpoint (doc §1.5, §3.1,
// §4.1, §4.3, §5, §6.1, §6.4, §7.1, §8.1), and device identities.
//
// Parsing follows the hub (doc §1.5, EMU): an optional `amqps://host[:port]` (or any
// `scheme://host[:port]`, e.g. `sb://`) prefix is stripped and kept, segments are
// URL-decoded, the fixed words of a path are matched without regard to case
// (`deviceBound`, `devicebound`), and ids are kept as sent (they are case-sensitive).
// Building writes the canonical spelling with ids URL-encoded (url_encode, RFC 3986).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "amqp/iothub/errors.hpp"
#include "amqp/result.hpp"

namespace amqp::iothub {

// ---- device identities ---------------------------------------------------------------------

// The longest device or module id (DOC identity registry: "up to 128 characters long").
inline constexpr std::size_t max_id_length = 128;

// Checks a device id: 1 to 128 characters, ASCII letters and digits plus
// `- . % _ * ? ! ( ) , : = @ $ '` (DOC identity registry, current text: "The special
// characters: + # are not supported"). Errors: errc::invalid_value, errc::limit_exceeded
// (longer than max_id_length).
[[nodiscard]] result<void> check_device_id(std::string_view id, std::string* why = nullptr);

// Checks a module id: as a device id, plus `+` and `#` (DOC identity registry, module
// identity table). Errors: as check_device_id.
[[nodiscard]] result<void> check_module_id(std::string_view id, std::string* why = nullptr);

// A device, or a module of a device.
struct device_identity {
  std::string device_id;
  std::string module_id; // empty: the device itself
  [[nodiscard]] bool is_module() const noexcept { return !module_id.empty(); }
  friend bool operator==(const device_identity&, const device_identity&) = default;
};

// ---- fixed addresses -----------------------------------------------------------------------

namespace path {
inline constexpr std::string_view cbs = "$cbs";                                 // doc §2.4
inline constexpr std::string_view management = "$management";                   // doc §6.4
inline constexpr std::string_view service_c2d = "/messages/devicebound";        // doc §4.1
inline constexpr std::string_view feedback = "/messages/serviceBound/feedback"; // doc §5.1
inline constexpr std::string_view file_notifications =
    "/messages/serviceBound/filenotifications";                        // doc §5.2
inline constexpr std::string_view events = "/messages/events";         // doc §6.1 (redirected)
inline constexpr std::string_view default_consumer_group = "$Default"; // DOC-AMQP
} // namespace path

// ---- parsed addresses ----------------------------------------------------------------------

enum class address_kind : std::uint8_t {
  telemetry,           // /devices/{d}[/modules/{m}]/messages/events (device sends D2C)
  device_c2d,          // /devices/{d}[/modules/{m}]/messages/devicebound (device receives)
  twin,                // /devices/{d}[/modules/{m}]/twin
  methods,             // /devices/{d}[/modules/{m}]/methods/devicebound
  service_c2d,         // /messages/devicebound (service sends C2D)
  feedback,            // /messages/serviceBound/feedback
  file_notifications,  // /messages/serviceBound/filenotifications
  builtin_events,      // /messages/events[/...], e.g. .../ConsumerGroups/{cg}/Partitions/{p}
  cbs,                 // $cbs
  management,          // $management
  eventhub,            // {hub}
  eventhub_partition,  // {hub}/Partitions/{p} (a sender to one partition)
  eventhub_consumer,   // {hub}/ConsumerGroups/{cg}/Partitions/{p}
  eventhub_management, // {hub}/$management
};

// The name of a kind ("telemetry", "device_c2d", ...).
[[nodiscard]] std::string_view kind_name(address_kind k) noexcept;

// A parsed address. Fields that do not apply to the kind are empty.
struct address {
  address_kind kind = address_kind::cbs;
  // The prefix, if the address had one: scheme ("amqps"), host, and port.
  std::string scheme;
  std::string host;
  std::optional<std::uint16_t> port;
  device_identity identity;   // telemetry, device_c2d, twin, methods
  std::string event_hub;      // eventhub*
  std::string consumer_group; // eventhub_consumer; builtin_events with ConsumerGroups
  std::string partition;      // eventhub_partition, eventhub_consumer; builtin_events too
  // builtin_events: the decoded segments after /messages/events, joined by '/' (empty for
  // /messages/events itself; "$management"; "ConsumerGroups/$Default/Partitions/0").
  std::string events_path;

  friend bool operator==(const address&, const address&) = default;
};

// The longest address parse_address accepts.
inline constexpr std::size_t max_address_length = 2048;

// Parses a link address. The IoT Hub paths are tried first, then `$cbs` and `$management`,
// then the Event Hubs forms (so an event hub named "devices" or "messages" cannot be
// addressed without its prefix). Errors (reason in `why`): errc::limit_exceeded (longer
// than max_address_length), errc::invalid_value (an empty address, a malformed prefix or
// escape, an empty segment, an id not allowed by check_device_id / check_module_id, a path
// of none of the forms above).
[[nodiscard]] result<address> parse_address(std::string_view text, std::string* why = nullptr);

// The address as text: `scheme://host[:port]` when `host` is set (scheme "amqps" if empty),
// then the canonical path with ids, hub, consumer group and partition URL-encoded.
// parse_address gives back an equal address.
[[nodiscard]] std::string to_string(const address& a);

// ---- builders (bare paths, ids URL-encoded) ------------------------------------------------

// /devices/{d}[/modules/{m}]/messages/events
[[nodiscard]] std::string telemetry_address(const device_identity& id);
// /devices/{d}[/modules/{m}]/messages/devicebound; also the `to` of a C2D message.
[[nodiscard]] std::string device_c2d_address(const device_identity& id);
// /devices/{d}[/modules/{m}]/twin
[[nodiscard]] std::string twin_address(const device_identity& id);
// /devices/{d}[/modules/{m}]/methods/devicebound
[[nodiscard]] std::string methods_address(const device_identity& id);
// /messages/events/ConsumerGroups/{cg}/Partitions/{p} (on the IoT Hub host; redirected)
[[nodiscard]] std::string builtin_events_address(std::string_view consumer_group,
                                                 std::string_view partition);
// {hub}/ConsumerGroups/{cg}/Partitions/{p}
[[nodiscard]] std::string eventhub_consumer_address(std::string_view event_hub,
                                                    std::string_view consumer_group,
                                                    std::string_view partition);
// {hub}/Partitions/{p}
[[nodiscard]] std::string eventhub_partition_address(std::string_view event_hub,
                                                     std::string_view partition);
// {hub}/$management
[[nodiscard]] std::string eventhub_management_address(std::string_view event_hub);

// The resource URI (SAS audience, CBS `name`) of an identity: `{host}/devices/{d}` or
// `{host}/devices/{d}/modules/{m}` (doc §2.1 table), ids URL-encoded as .NET does
// (CS-DEV DeviceIdentity.CreateAudience).
[[nodiscard]] std::string device_resource_uri(std::string_view host, const device_identity& id);

// SASL PLAIN user names (doc §2.3): `{policy}@sas.root.{hub}` and `{device}@sas.{hub}` /
// `{device}/modules/{module}@sas.{hub}`.
[[nodiscard]] std::string sasl_policy_user(std::string_view policy, std::string_view hub);
[[nodiscard]] std::string sasl_device_user(const device_identity& id, std::string_view hub);

// A parsed SASL PLAIN user name: a policy (policy set, identity empty) or a device/module.
struct sasl_user {
  std::string hub;
  std::string policy;
  device_identity identity;
  friend bool operator==(const sasl_user&, const sasl_user&) = default;
};

// Parses the forms of sasl_policy_user and sasl_device_user, ids URL-decoded (EDGE
// SaslIdentityHelper.cs). Errors: errc::invalid_value (no `@sas.`, an empty part, a bad
// escape or id).
[[nodiscard]] result<sasl_user> parse_sasl_user(std::string_view user, std::string* why = nullptr);

} // namespace amqp::iothub
