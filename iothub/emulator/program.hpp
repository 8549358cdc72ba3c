// The parts of the iothub-emulator program that are not I/O: listen addresses, the devices
// file, and the connection strings clients are given (connection-strings.json).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "amqp/result.hpp"

namespace amqp::iothub::emulator {

// A listen address: "127.0.0.1:5671", "[::1]:5671", "0.0.0.0:0" (port 0: any free port).
struct listen_address {
  std::string host; // without brackets
  std::uint16_t port = 0;
};

// Parses HOST:PORT (IPv6 in brackets). Errors: amqp::errc::invalid_argument (no port, a
// port above 65535, an empty host).
[[nodiscard]] result<listen_address> parse_listen_address(std::string_view text);

// The URL of a listener: scheme://host:port[path], IPv6 hosts in brackets.
[[nodiscard]] std::string listen_url(std::string_view scheme, const listen_address& a,
                                     std::string_view path = {});

// The device ids of a devices file: one per line; blank lines and lines starting with '#'
// are skipped, spaces around an id are dropped.
[[nodiscard]] std::vector<std::string> parse_devices_file(std::string_view text);

// A module as --module names it: "DEVICE/MODULE".
struct module_name {
  std::string device_id;
  std::string module_id;
};

// Splits "DEVICE/MODULE" at its one '/'. Errors: amqp::errc::invalid_argument (no '/', more
// than one, or an empty part; the ids' own rules are the registry's).
[[nodiscard]] result<module_name> parse_module_name(std::string_view text);

// What connection-strings.json holds.
struct connection_strings_input {
  std::string hub_name;            // "sdkhub"
  std::string host;                // what clients dial: "localhost"
  std::uint16_t amqps_port = 5671; // the AMQPS listener's port
  std::string service_policy;      // "service"
  std::string service_key;         // its primary key
  // Device id -> primary key.
  std::map<std::string, std::string> device_keys;
  // (device id, module id) -> the module's primary key.
  std::map<std::pair<std::string, std::string>, std::string> module_keys;
  // The devices registered for X.509 (a CA-signed certificate whose CN is the id).
  std::vector<std::string> x509_devices;
  std::string ca_path; // the CA clients must trust
};

// The hub's host name as clients write it in HostName: "{hub}.azure-devices.net". Clients
// take the hub name from its first label and name it in SAS audiences (doc §1.1); the hub
// accepts any host whose first label is the hub name. It need not resolve: device strings
// dial GatewayHostName.
[[nodiscard]] std::string hub_host_name(std::string_view hub_name);

// host, with ":port" unless the port is the default 5671 (the SDKs' default for AMQPS).
[[nodiscard]] std::string host_port(std::string_view host, std::uint16_t port);

// A device's connection string: HostName={hub host};DeviceId=..;SharedAccessKey=..;
// GatewayHostName={host[:port]}. The device SDKs sign for HostName and dial GatewayHostName;
// with AMQPS on 5671 GatewayHostName has no port, which the WebSocket transport needs (it
// appends :443 itself).
[[nodiscard]] std::string device_connection_string(const connection_strings_input& in,
                                                   std::string_view device_id,
                                                   std::string_view key);

// A module's connection string: HostName={hub host};DeviceId=..;ModuleId=..;
// SharedAccessKey=..;GatewayHostName={host[:port]} (signed for
// {HostName}/devices/{d}/modules/{m}).
[[nodiscard]] std::string module_connection_string(const connection_strings_input& in,
                                                   std::string_view device_id,
                                                   std::string_view module_id,
                                                   std::string_view key);

// An X.509 device's connection string, in the SDKs' form: HostName={hub host};DeviceId=..;
// x509=true;GatewayHostName={host[:port]}. The certificate and its key are given to the
// client apart (the SDKs' X509 options; our hub_connection_options::tls).
[[nodiscard]] std::string x509_device_connection_string(const connection_strings_input& in,
                                                        std::string_view device_id);

// The service connection string: HostName={host[:port]};SharedAccessKeyName=..;
// SharedAccessKey=.. (the service SDK dials HostName, port included).
[[nodiscard]] std::string service_connection_string(const connection_strings_input& in);

// The Event Hubs-compatible connection string of the built-in endpoint:
// Endpoint=sb://{host[:port]}/;SharedAccessKeyName=..;SharedAccessKey=..;EntityPath={hub}.
[[nodiscard]] std::string event_hubs_connection_string(const connection_strings_input& in);

// connection-strings.json: {"hostname": .., "service": .., "eventhub": .., "devices":
// {id: ..}, "modules": {"device/module": ..}, "x509_devices": {id: ..}, "ca": ..}, indented,
// with a final newline.
[[nodiscard]] std::string connection_strings_json(const connection_strings_input& in);

} // namespace amqp::iothub::emulator
