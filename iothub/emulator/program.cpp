// The program's pure parts (program.hpp).
#include "emulator/program.hpp"

#include <charconv>

#include <nlohmann/json.hpp>

#include "amqp/error.hpp"

namespace amqp::iothub::emulator {

result<listen_address> parse_listen_address(std::string_view text) {
  listen_address a;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return errc::invalid_argument;
    }
    a.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      return errc::invalid_argument;
    }
    a.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (a.host.empty() || port.empty() || ec != std::errc{} || end != port.data() + port.size() ||
      value > 65535) {
    return errc::invalid_argument;
  }
  a.port = static_cast<std::uint16_t>(value);
  return a;
}

std::string listen_url(std::string_view scheme, const listen_address& a, std::string_view path) {
  std::string url(scheme);
  url += "://";
  if (a.host.find(':') != std::string::npos) {
    url += "[" + a.host + "]";
  } else {
    url += a.host;
  }
  url += ":" + std::to_string(a.port);
  url += path;
  return url;
}

std::vector<std::string> parse_devices_file(std::string_view text) {
  std::vector<std::string> ids;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      line.remove_prefix(1);
    }
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) {
      line.remove_suffix(1);
    }
    if (!line.empty() && !line.starts_with('#')) {
      ids.emplace_back(line);
    }
  }
  return ids;
}

result<module_name> parse_module_name(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == text.size() ||
      text.find('/', slash + 1) != std::string_view::npos) {
    return errc::invalid_argument;
  }
  return module_name{std::string(text.substr(0, slash)), std::string(text.substr(slash + 1))};
}

std::string hub_host_name(std::string_view hub_name) {
  return std::string(hub_name) + ".azure-devices.net";
}

std::string host_port(std::string_view host, std::uint16_t port) {
  std::string s(host);
  if (port != 5671) {
    s += ":" + std::to_string(port);
  }
  return s;
}

std::string device_connection_string(const connection_strings_input& in, std::string_view device_id,
                                     std::string_view key) {
  return "HostName=" + hub_host_name(in.hub_name) + ";DeviceId=" + std::string(device_id) +
         ";SharedAccessKey=" + std::string(key) +
         ";GatewayHostName=" + host_port(in.host, in.amqps_port);
}

std::string module_connection_string(const connection_strings_input& in, std::string_view device_id,
                                     std::string_view module_id, std::string_view key) {
  return "HostName=" + hub_host_name(in.hub_name) + ";DeviceId=" + std::string(device_id) +
         ";ModuleId=" + std::string(module_id) + ";SharedAccessKey=" + std::string(key) +
         ";GatewayHostName=" + host_port(in.host, in.amqps_port);
}

std::string x509_device_connection_string(const connection_strings_input& in,
                                          std::string_view device_id) {
  return "HostName=" + hub_host_name(in.hub_name) + ";DeviceId=" + std::string(device_id) +
         ";x509=true;GatewayHostName=" + host_port(in.host, in.amqps_port);
}

std::string service_connection_string(const connection_strings_input& in) {
  return "HostName=" + host_port(in.host, in.amqps_port) +
         ";SharedAccessKeyName=" + in.service_policy + ";SharedAccessKey=" + in.service_key;
}

std::string event_hubs_connection_string(const connection_strings_input& in) {
  return "Endpoint=sb://" + host_port(in.host, in.amqps_port) +
         "/;SharedAccessKeyName=" + in.service_policy + ";SharedAccessKey=" + in.service_key +
         ";EntityPath=" + in.hub_name;
}

std::string connection_strings_json(const connection_strings_input& in) {
  nlohmann::ordered_json j;
  j["hostname"] = hub_host_name(in.hub_name);
  j["service"] = service_connection_string(in);
  j["eventhub"] = event_hubs_connection_string(in);
  auto devices = nlohmann::ordered_json::object();
  for (const auto& [id, key] : in.device_keys) {
    devices[id] = device_connection_string(in, id, key);
  }
  j["devices"] = devices;
  auto modules = nlohmann::ordered_json::object();
  for (const auto& [id, key] : in.module_keys) {
    modules[id.first + "/" + id.second] = module_connection_string(in, id.first, id.second, key);
  }
  j["modules"] = modules;
  auto x509 = nlohmann::ordered_json::object();
  for (const auto& id : in.x509_devices) {
    x509[id] = x509_device_connection_string(in, id);
  }
  j["x509_devices"] = x509;
  j["ca"] = in.ca_path;
  return j.dump(2) + "\n";
}

} // namespace amqp::iothub::emulator
