// The hub's identity registry: its name, devices, modules, shared access policies and
// consumer groups, held in memory and written through to the store (store.hpp).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/result.hpp"
#include "emulator/random.hpp"
#include "emulator/store.hpp"

namespace amqp::iothub::emulator {

// Permissions of a shared access policy (doc §2.2: RegistryRead, RegistryReadWrite,
// ServiceConnect, DeviceConnect). Bits of policy_record::permissions.
namespace permission {
inline constexpr std::uint32_t registry_read = 1U << 0;
inline constexpr std::uint32_t registry_write = 1U << 1;
inline constexpr std::uint32_t service_connect = 1U << 2;
inline constexpr std::uint32_t device_connect = 1U << 3;
inline constexpr std::uint32_t all =
    registry_read | registry_write | service_connect | device_connect;
} // namespace permission

// The permissions as the portal names them, comma-separated ("RegistryRead, ServiceConnect").
[[nodiscard]] std::string permission_names(std::uint32_t permissions);

// The consumer group every hub has (doc §6.5).
inline constexpr std::string_view default_consumer_group = "$Default";

class registry {
public:
  // An empty registry for the hub `hub_name`.
  explicit registry(std::string hub_name);

  // The registry held by `s`, for the hub `hub_name` (the name is recorded in the store's
  // meta table). Errors: those of the store.
  [[nodiscard]] static result<registry> load(store& s, std::string hub_name);

  // The hub name (the first DNS label of its host name, doc §1.1).
  [[nodiscard]] const std::string& hub_name() const noexcept { return hub_name_; }

  // The device with `id` (compared exactly: ids are case-sensitive, DOC-SAS), or null.
  // Valid until the registry changes.
  [[nodiscard]] const device_record* device(std::string_view id) const noexcept;
  // The module `id` of device `device_id`, or null.
  [[nodiscard]] const module_record* module(std::string_view device_id,
                                            std::string_view id) const noexcept;
  // The policy named `name`, compared without regard to case (Azure resource names), or null.
  [[nodiscard]] const policy_record* policy(std::string_view name) const noexcept;
  // True for $Default and the consumer groups created, compared without regard to case (as
  // Event Hubs compares them).
  [[nodiscard]] bool has_consumer_group(std::string_view name) const noexcept;
  [[nodiscard]] const std::map<std::string, device_record, std::less<>>& devices() const noexcept {
    return devices_;
  }
  // Every module, ordered by (device id, module id).
  [[nodiscard]] const std::map<std::pair<std::string, std::string>, module_record>&
  modules() const noexcept {
    return modules_;
  }
  [[nodiscard]] std::vector<policy_record> policies() const;
  [[nodiscard]] std::vector<std::string> consumer_groups() const;

  // Adds or replaces a device. Errors: amqp::errc::invalid_argument (not a valid id:
  // amqp::iothub::check_device_id), those of the store (the registry is then unchanged).
  [[nodiscard]] result<void> put_device(store& s, device_record d);
  // Removes a device and its modules; false if there was none. Errors: those of the store.
  [[nodiscard]] result<bool> delete_device(store& s, std::string_view id);
  // Adds or replaces a module of an existing device. Errors: amqp::errc::invalid_argument
  // (an invalid id: amqp::iothub::check_module_id; or no such device), those of the store.
  [[nodiscard]] result<void> put_module(store& s, module_record m);
  // Adds or replaces a policy. Errors: amqp::errc::invalid_argument (empty name), those of
  // the store.
  [[nodiscard]] result<void> put_policy(store& s, policy_record p);
  // Creates a consumer group (nothing if it exists). Errors: amqp::errc::invalid_argument
  // (empty, or longer than 50 characters, the Event Hubs limit), those of the store.
  [[nodiscard]] result<void> put_consumer_group(store& s, std::string_view name);

private:
  std::string hub_name_;
  std::map<std::string, device_record, std::less<>> devices_;
  std::map<std::pair<std::string, std::string>, module_record> modules_;
  std::map<std::string, policy_record, std::less<>> policies_;      // key: lower-cased name
  std::map<std::string, std::string, std::less<>> consumer_groups_; // lower-cased -> as created
};

// A new shared access key: 32 random bytes, base64 (as the portal makes them).
[[nodiscard]] std::string generate_key(random_source& r);

// The policies a new hub has (as the portal creates them): iothubowner (all permissions),
// service (ServiceConnect), device (DeviceConnect), registryRead (RegistryRead),
// registryReadWrite (RegistryRead, RegistryReadWrite), each with two random keys. Those that
// exist are kept. Errors: those of the store.
[[nodiscard]] result<void> provision_default_policies(registry& reg, store& s, random_source& r);

// Registers device `id` with two random keys if it is not registered. Errors:
// amqp::errc::invalid_argument (invalid id), those of the store.
[[nodiscard]] result<void> provision_device(registry& reg, store& s, random_source& r,
                                            std::string_view id);

// Registers module `module_id` of device `device_id` with two random keys if it is not
// registered, and the device as provision_device does if it is not either. A module that
// exists keeps its keys. Errors: amqp::errc::invalid_argument (an invalid device or module
// id), those of the store.
[[nodiscard]] result<void> provision_module(registry& reg, store& s, random_source& r,
                                            std::string_view device_id, std::string_view module_id);

// Registers device `id` for X.509 (auth type "certificateAuthority": a TLS client
// certificate whose CN is `id`, signed by a CA the hub trusts; no keys) if it is not
// registered. Errors: amqp::errc::invalid_argument (invalid id), iothub::errc::conflict (`id`
// is registered with symmetric keys), those of the store.
[[nodiscard]] result<void> provision_x509_device(registry& reg, store& s, random_source& r,
                                                 std::string_view id);

} // namespace amqp::iothub::emulator
