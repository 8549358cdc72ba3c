#include "emulator/registry.hpp"

#include <algorithm>
#include <array>
#include <utility>

#include "amqp/iothub/address.hpp"
#include "amqp/iothub/errors.hpp"
#include "amqp/iothub/sas.hpp"

namespace amqp::iothub::emulator {

namespace {

char lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lowered(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), lower);
  return out;
}

// Event Hubs: consumer group names are at most 50 characters.
constexpr std::size_t max_consumer_group_length = 50;

// The generation id the hub gives a device or module: 18 decimal digits (doc §3.4, e.g.
// 637983364741039849), here from the random source.
std::string generation_id(random_source& r) {
  std::array<std::byte, 8> g{};
  r.fill(g);
  std::uint64_t v = 0;
  for (const std::byte b : g) {
    v = (v << 8U) | static_cast<std::uint64_t>(b);
  }
  return std::to_string(100'000'000'000'000'000ULL + v % 900'000'000'000'000'000ULL);
}

} // namespace

std::string permission_names(std::uint32_t permissions) {
  static constexpr std::array<std::pair<std::uint32_t, std::string_view>, 4> names = {{
      {permission::registry_read, "RegistryRead"},
      {permission::registry_write, "RegistryReadWrite"},
      {permission::service_connect, "ServiceConnect"},
      {permission::device_connect, "DeviceConnect"},
  }};
  std::string out;
  for (const auto& [bit, name] : names) {
    if ((permissions & bit) != 0) {
      if (!out.empty()) {
        out += ", ";
      }
      out += name;
    }
  }
  return out;
}

registry::registry(std::string hub_name) : hub_name_(std::move(hub_name)) {}

result<registry> registry::load(store& s, std::string hub_name) {
  registry reg(std::move(hub_name));
  if (auto r = s.set_meta("hub_name", reg.hub_name_); !r) {
    return r.error();
  }
  auto devices = s.devices();
  if (!devices) {
    return devices.error();
  }
  for (auto& d : *devices) {
    std::string id = d.id;
    reg.devices_.emplace(std::move(id), std::move(d));
  }
  auto modules = s.modules();
  if (!modules) {
    return modules.error();
  }
  for (auto& m : *modules) {
    auto key = std::make_pair(m.device_id, m.id);
    reg.modules_.emplace(std::move(key), std::move(m));
  }
  auto policies = s.policies();
  if (!policies) {
    return policies.error();
  }
  for (auto& p : *policies) {
    std::string key = lowered(p.name);
    reg.policies_.emplace(std::move(key), std::move(p));
  }
  auto groups = s.consumer_groups();
  if (!groups) {
    return groups.error();
  }
  for (auto& g : *groups) {
    std::string key = lowered(g);
    reg.consumer_groups_.emplace(std::move(key), std::move(g));
  }
  return reg;
}

const device_record* registry::device(std::string_view id) const noexcept {
  auto it = devices_.find(id);
  return it == devices_.end() ? nullptr : &it->second;
}

const module_record* registry::module(std::string_view device_id,
                                      std::string_view id) const noexcept {
  auto it = modules_.find(std::make_pair(std::string(device_id), std::string(id)));
  return it == modules_.end() ? nullptr : &it->second;
}

const policy_record* registry::policy(std::string_view name) const noexcept {
  auto it = policies_.find(lowered(name));
  return it == policies_.end() ? nullptr : &it->second;
}

bool registry::has_consumer_group(std::string_view name) const noexcept {
  const std::string key = lowered(name);
  return key == lowered(default_consumer_group) || consumer_groups_.contains(key);
}

std::vector<policy_record> registry::policies() const {
  std::vector<policy_record> out;
  out.reserve(policies_.size());
  for (const auto& [key, p] : policies_) {
    out.push_back(p);
  }
  return out;
}

std::vector<std::string> registry::consumer_groups() const {
  std::vector<std::string> out{std::string(default_consumer_group)};
  for (const auto& [key, name] : consumer_groups_) {
    out.push_back(name);
  }
  return out;
}

result<void> registry::put_device(store& s, device_record d) {
  if (!check_device_id(d.id)) {
    return amqp::errc::invalid_argument;
  }
  if (auto r = s.put_device(d); !r) {
    return r;
  }
  std::string id = d.id;
  devices_.insert_or_assign(std::move(id), std::move(d));
  return {};
}

result<bool> registry::delete_device(store& s, std::string_view id) {
  auto r = s.delete_device(id);
  if (!r) {
    return r;
  }
  auto it = devices_.find(id);
  if (it == devices_.end()) {
    return false;
  }
  devices_.erase(it);
  std::erase_if(modules_, [&](const auto& m) { return m.first.first == id; });
  return true;
}

result<void> registry::put_module(store& s, module_record m) {
  if (!check_module_id(m.id) || device(m.device_id) == nullptr) {
    return amqp::errc::invalid_argument;
  }
  if (auto r = s.put_module(m); !r) {
    return r;
  }
  auto key = std::make_pair(m.device_id, m.id);
  modules_.insert_or_assign(std::move(key), std::move(m));
  return {};
}

result<void> registry::put_policy(store& s, policy_record p) {
  if (p.name.empty()) {
    return amqp::errc::invalid_argument;
  }
  if (auto r = s.put_policy(p); !r) {
    return r;
  }
  std::string key = lowered(p.name);
  policies_.insert_or_assign(std::move(key), std::move(p));
  return {};
}

result<void> registry::put_consumer_group(store& s, std::string_view name) {
  if (name.empty() || name.size() > max_consumer_group_length) {
    return amqp::errc::invalid_argument;
  }
  if (has_consumer_group(name)) {
    return {};
  }
  if (auto r = s.put_consumer_group(name); !r) {
    return r;
  }
  consumer_groups_.emplace(lowered(name), std::string(name));
  return {};
}

std::string generate_key(random_source& r) {
  std::array<std::byte, 32> key{};
  r.fill(key);
  return base64_encode(key);
}

result<void> provision_default_policies(registry& reg, store& s, random_source& r) {
  static constexpr std::array<std::pair<std::string_view, std::uint32_t>, 5> defaults = {{
      {"iothubowner", permission::all},
      {"service", permission::service_connect},
      {"device", permission::device_connect},
      {"registryRead", permission::registry_read},
      {"registryReadWrite", permission::registry_read | permission::registry_write},
  }};
  for (const auto& [name, permissions] : defaults) {
    if (reg.policy(name) != nullptr) {
      continue;
    }
    policy_record p;
    p.name = name;
    p.primary_key = generate_key(r);
    p.secondary_key = generate_key(r);
    p.permissions = permissions;
    if (auto res = reg.put_policy(s, std::move(p)); !res) {
      return res;
    }
  }
  return {};
}

result<void> provision_device(registry& reg, store& s, random_source& r, std::string_view id) {
  if (reg.device(id) != nullptr) {
    return {};
  }
  device_record d;
  d.id = id;
  d.primary_key = generate_key(r);
  d.secondary_key = generate_key(r);
  d.generation_id = generation_id(r);
  return reg.put_device(s, std::move(d));
}

result<void> provision_module(registry& reg, store& s, random_source& r, std::string_view device_id,
                              std::string_view module_id) {
  if (!check_module_id(module_id)) {
    return amqp::errc::invalid_argument;
  }
  if (auto d = provision_device(reg, s, r, device_id); !d) {
    return d;
  }
  if (reg.module(device_id, module_id) != nullptr) {
    return {};
  }
  module_record m;
  m.device_id = device_id;
  m.id = module_id;
  m.primary_key = generate_key(r);
  m.secondary_key = generate_key(r);
  m.generation_id = generation_id(r);
  return reg.put_module(s, std::move(m));
}

result<void> provision_x509_device(registry& reg, store& s, random_source& r, std::string_view id) {
  if (const device_record* d = reg.device(id); d != nullptr) {
    if (d->auth_type == "sas") {
      return make_error_code(iothub::errc::conflict);
    }
    return {};
  }
  device_record d;
  d.id = id;
  d.auth_type = "certificateAuthority";
  d.generation_id = generation_id(r);
  return reg.put_device(s, std::move(d));
}

} // namespace amqp::iothub::emulator
