// Connection strings (NODE connection_string.ts; DOC-SAS; EH-JS sample).
#include "amqp/iothub/connection_string.hpp"

#include <array>

#include "amqp/iothub/address.hpp"
#include "amqp/iothub/sas.hpp"
#include "detail.hpp"

namespace amqp::iothub {

using detail::fail;

namespace {

enum class key : std::uint8_t {
  host_name,
  gateway_host_name,
  device_id,
  module_id,
  shared_access_key_name,
  shared_access_key,
  shared_access_signature,
  endpoint,
  entity_path,
  x509,
  use_development_emulator,
};

struct key_info {
  key k;
  std::string_view name;
};

// The canonical spellings, in the order to_string writes them.
constexpr std::array<key_info, 11> keys = {{
    {key::host_name, "HostName"},
    {key::gateway_host_name, "GatewayHostName"},
    {key::device_id, "DeviceId"},
    {key::module_id, "ModuleId"},
    {key::shared_access_key_name, "SharedAccessKeyName"},
    {key::shared_access_key, "SharedAccessKey"},
    {key::shared_access_signature, "SharedAccessSignature"},
    {key::endpoint, "Endpoint"},
    {key::entity_path, "EntityPath"},
    {key::x509, "x509"},
    {key::use_development_emulator, "UseDevelopmentEmulator"},
}};

// The string member of `cs` for `k` (nullptr for the booleans); const or not as `cs`.
template <class CS> auto string_field(CS& cs, key k) noexcept -> decltype(&cs.host_name) {
  switch (k) {
  case key::host_name:
    return &cs.host_name;
  case key::gateway_host_name:
    return &cs.gateway_host_name;
  case key::device_id:
    return &cs.device_id;
  case key::module_id:
    return &cs.module_id;
  case key::shared_access_key_name:
    return &cs.shared_access_key_name;
  case key::shared_access_key:
    return &cs.shared_access_key;
  case key::shared_access_signature:
    return &cs.shared_access_signature;
  case key::endpoint:
    return &cs.endpoint;
  case key::entity_path:
    return &cs.entity_path;
  case key::x509:
  case key::use_development_emulator:
    return nullptr;
  }
  return nullptr;
}

result<void> check_key(const connection_string& cs, std::string* why) {
  if (!cs.shared_access_key.empty()) {
    auto k = base64_decode(cs.shared_access_key);
    if (!k || k->empty()) {
      return fail(why, errc::invalid_value, "SharedAccessKey is not base64");
    }
  }
  if (!cs.shared_access_signature.empty()) {
    std::string token_why;
    if (auto t = parse_sas_token(cs.shared_access_signature, &token_why); !t) {
      return fail(why, errc::invalid_value,
                  "SharedAccessSignature is not a SAS token: " + token_why);
    }
  }
  if (!cs.shared_access_key.empty() && !cs.shared_access_signature.empty()) {
    return fail(why, errc::conflict, "both SharedAccessKey and SharedAccessSignature");
  }
  return {};
}

result<void> check_host(std::string_view name, std::string_view host, std::string* why) {
  std::string host_why;
  if (auto hp = split_host_port(host, &host_why); !hp) {
    return fail(why, errc::invalid_value, std::string(name) + " is not host[:port]: " + host_why);
  }
  return {};
}

} // namespace

result<connection_string> parse_connection_string(std::string_view text, std::string* why) {
  if (text.size() > max_connection_string_length) {
    return fail(why, errc::limit_exceeded,
                "the connection string is longer than " +
                    std::to_string(max_connection_string_length) + " characters");
  }
  connection_string cs;
  std::array<bool, keys.size()> seen{};
  while (!text.empty()) {
    const auto semi = text.find(';');
    const std::string_view field = text.substr(0, semi);
    text = semi == std::string_view::npos ? std::string_view{} : text.substr(semi + 1);
    if (field.empty()) {
      continue;
    }
    const auto eq = field.find('=');
    if (eq == std::string_view::npos) {
      return fail(why, errc::invalid_value,
                  "connection string field " + detail::quote(field) + " has no '='");
    }
    const std::string_view name = field.substr(0, eq);
    const std::string_view val = field.substr(eq + 1);
    if (name.empty()) {
      return fail(why, errc::invalid_value, "a connection string field has an empty key");
    }
    if (val.empty()) {
      return fail(why, errc::invalid_value, std::string(name) + " is empty");
    }
    std::size_t idx = keys.size();
    for (std::size_t k = 0; k < keys.size(); ++k) {
      if (detail::iequals(name, keys[k].name)) {
        idx = k;
      }
    }
    if (idx == keys.size()) {
      for (const auto& [n, v] : cs.other) {
        if (detail::iequals(n, name)) {
          return fail(why, errc::conflict, std::string(name) + " appears twice");
        }
      }
      cs.other.emplace_back(name, val);
      continue;
    }
    const key_info& ki = keys[idx];
    if (seen[idx]) {
      return fail(why, errc::conflict, std::string(ki.name) + " appears twice");
    }
    seen[idx] = true;
    if (std::string* f = string_field(cs, ki.k)) {
      f->assign(val);
      continue;
    }
    bool b = false;
    if (detail::iequals(val, "true")) {
      b = true;
    } else if (!detail::iequals(val, "false")) {
      return fail(why, errc::invalid_value,
                  std::string(ki.name) + " must be true or false, not " + detail::quote(val));
    }
    (ki.k == key::x509 ? cs.x509 : cs.use_development_emulator) = b;
  }
  return cs;
}

result<connection_string_kind> validate(const connection_string& cs, std::string* why) {
  if (!cs.gateway_host_name.empty()) {
    if (auto r = check_host("GatewayHostName", cs.gateway_host_name, why); !r) {
      return r.error();
    }
  }
  if (auto r = check_key(cs, why); !r) {
    return r.error();
  }
  const bool has_secret = !cs.shared_access_key.empty() || !cs.shared_access_signature.empty();
  if (!cs.endpoint.empty()) {
    // Event Hubs form: Endpoint=sb://{ns}/;SharedAccessKeyName=..;SharedAccessKey=..
    if (!cs.host_name.empty()) {
      return fail(why, errc::conflict, "both Endpoint and HostName");
    }
    if (!cs.device_id.empty() || !cs.module_id.empty() || cs.x509) {
      return fail(why, errc::conflict,
                  "an Event Hubs connection string has no DeviceId, "
                  "ModuleId or x509");
    }
    std::string_view ep = cs.endpoint;
    if (!detail::istarts_with(ep, "sb://")) {
      return fail(why, errc::invalid_value, "Endpoint must start with sb://");
    }
    ep.remove_prefix(5);
    if (ep.ends_with('/')) {
      ep.remove_suffix(1);
    }
    if (auto r = check_host("Endpoint", ep, why); !r) {
      return r.error();
    }
    if (cs.shared_access_signature.empty()) {
      if (cs.shared_access_key_name.empty()) {
        return fail(why, errc::missing_field, "SharedAccessKeyName is missing");
      }
      if (cs.shared_access_key.empty()) {
        return fail(why, errc::missing_field, "SharedAccessKey is missing");
      }
    }
    return connection_string_kind::event_hubs;
  }
  if (cs.host_name.empty()) {
    return fail(why, errc::missing_field, "HostName is missing");
  }
  if (auto r = check_host("HostName", cs.host_name, why); !r) {
    return r.error();
  }
  if (!cs.entity_path.empty()) {
    return fail(why, errc::conflict, "EntityPath without Endpoint");
  }
  if (cs.device_id.empty()) {
    if (!cs.module_id.empty()) {
      return fail(why, errc::missing_field, "ModuleId without DeviceId");
    }
    if (cs.x509) {
      return fail(why, errc::conflict, "x509 without DeviceId");
    }
    if (cs.shared_access_key_name.empty()) {
      return fail(why, errc::missing_field,
                  "DeviceId is missing (or SharedAccessKeyName, for a service policy)");
    }
    if (!has_secret) {
      return fail(why, errc::missing_field, "SharedAccessKey is missing");
    }
    return connection_string_kind::service;
  }
  if (auto r = check_device_id(cs.device_id, why); !r) {
    return r.error();
  }
  if (!cs.module_id.empty()) {
    if (auto r = check_module_id(cs.module_id, why); !r) {
      return r.error();
    }
  }
  if (cs.x509 && has_secret) {
    return fail(why, errc::conflict,
                cs.shared_access_key.empty() ? "both x509 and SharedAccessSignature"
                                             : "both x509 and SharedAccessKey");
  }
  if (!cs.x509 && !has_secret) {
    return fail(why, errc::missing_field,
                "SharedAccessKey is missing (or SharedAccessSignature, or x509=true)");
  }
  return cs.module_id.empty() ? connection_string_kind::device : connection_string_kind::module;
}

result<connection_string> parse_and_validate(std::string_view text, std::string* why) {
  auto cs = parse_connection_string(text, why);
  if (!cs) {
    return cs;
  }
  if (auto k = validate(*cs, why); !k) {
    return k.error();
  }
  return cs;
}

std::string to_string(const connection_string& cs) {
  std::string out;
  const auto add = [&](std::string_view name, std::string_view val) {
    if (!out.empty()) {
      out += ';';
    }
    out += name;
    out += '=';
    out += val;
  };
  for (const key_info& ki : keys) {
    if (const std::string* f = string_field(cs, ki.k)) {
      if (!f->empty()) {
        add(ki.name, *f);
      }
    } else if (ki.k == key::x509 ? cs.x509 : cs.use_development_emulator) {
      add(ki.name, "true");
    }
  }
  for (const auto& [n, v] : cs.other) {
    add(n, v);
  }
  return out;
}

std::string_view hub_name(std::string_view host_name) noexcept {
  const auto end = host_name.find_first_of(".:");
  return host_name.substr(0, end);
}

result<host_port> split_host_port(std::string_view text, std::string* why) {
  host_port hp;
  std::string_view port_text;
  bool has_port = false;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      return fail(why, errc::invalid_value, "unclosed '[' in host " + detail::quote(text));
    }
    hp.host = text.substr(1, close - 1);
    const std::string_view after = text.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        return fail(why, errc::invalid_value, "text after ']' in host " + detail::quote(text));
      }
      port_text = after.substr(1);
      has_port = true;
    }
    for (char c : hp.host) {
      if (!detail::is_alnum(c) && c != ':' && c != '.') {
        return fail(why, errc::invalid_value,
                    "a character not allowed in an IPv6 address: " + detail::quote(text));
      }
    }
  } else {
    const auto colon = text.find(':');
    hp.host = text.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = text.substr(colon + 1);
      has_port = true;
    }
    for (char c : hp.host) {
      if (!detail::is_alnum(c) && c != '-' && c != '.' && c != '_') {
        return fail(why, errc::invalid_value,
                    "a character not allowed in a host name: " + detail::quote(text));
      }
    }
  }
  if (hp.host.empty()) {
    return fail(why, errc::invalid_value, "the host name is empty");
  }
  if (has_port) {
    std::uint64_t p = 0;
    if (!detail::parse_u64(port_text, p) || p == 0 || p > 65535) {
      return fail(why, errc::invalid_value,
                  "the port is not a number from 1 to 65535: " + detail::quote(port_text));
    }
    hp.port = static_cast<std::uint16_t>(p);
  }
  return hp;
}

} // namespace amqp::iothub
