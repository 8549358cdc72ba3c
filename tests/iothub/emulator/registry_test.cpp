// The registry: lookups, write-through to the store, reload, id rules, provisioning.
#include <doctest/doctest.h>

#include "amqp/iothub/errors.hpp"
#include "amqp/iothub/sas.hpp"
#include "emulator/registry.hpp"

using namespace amqp::iothub::emulator;

namespace {

std::unique_ptr<store> memory_store() {
  auto s = store::open(":memory:");
  REQUIRE(s);
  return std::move(*s);
}

} // namespace

TEST_CASE("registry: devices, modules, policies and consumer groups are written through and "
          "reloaded") {
  auto s = memory_store();
  auto r = registry::load(*s, "emulator");
  REQUIRE(r);
  CHECK(r->hub_name() == "emulator");
  CHECK(**s->get_meta("hub_name") == "emulator");
  REQUIRE(r->put_device(*s, {"Dev-1", "p", "q", true, "sas", "1"}));
  REQUIRE(r->put_module(*s, {"Dev-1", "m", "p", "q", "2"}));
  REQUIRE(r->put_policy(*s, {"service", "p", "q", permission::service_connect}));
  REQUIRE(r->put_consumer_group(*s, "cg1"));

  auto back = registry::load(*s, "other");
  REQUIRE(back);
  CHECK(back->hub_name() == "other");
  REQUIRE(back->device("Dev-1") != nullptr);
  CHECK(back->device("dev-1") == nullptr); // ids are case-sensitive
  REQUIRE(back->module("Dev-1", "m") != nullptr);
  CHECK(back->module("Dev-1", "n") == nullptr);
  REQUIRE(back->policy("SERVICE") != nullptr); // policy names are not
  CHECK(back->policy("SERVICE")->name == "service");
  CHECK(back->has_consumer_group("$default"));
  CHECK(back->has_consumer_group("CG1"));
  CHECK_FALSE(back->has_consumer_group("cg2"));
  CHECK(back->consumer_groups() == std::vector<std::string>{"$Default", "cg1"});

  auto gone = back->delete_device(*s, "Dev-1");
  REQUIRE(gone);
  CHECK(*gone);
  CHECK(back->device("Dev-1") == nullptr);
  CHECK(back->module("Dev-1", "m") == nullptr);
  CHECK(s->modules()->empty());
  CHECK_FALSE(*back->delete_device(*s, "Dev-1"));
}

TEST_CASE("registry: invalid ids, modules of unknown devices and bad names are refused") {
  auto s = memory_store();
  auto r = registry::load(*s, "emulator");
  REQUIRE(r);
  CHECK(r->put_device(*s, {"", "p", "q", true, "sas", "1"}).error() ==
        amqp::errc::invalid_argument);
  CHECK(r->put_device(*s, {"a/b", "p", "q", true, "sas", "1"}).error() ==
        amqp::errc::invalid_argument);
  CHECK(r->put_device(*s, {std::string(129, 'x'), "p", "q", true, "sas", "1"}).error() ==
        amqp::errc::invalid_argument);
  CHECK(r->put_device(*s, {std::string(128, 'x'), "p", "q", true, "sas", "1"}));
  CHECK(r->put_module(*s, {"nobody", "m", "p", "q", "1"}).error() == amqp::errc::invalid_argument);
  CHECK(r->put_policy(*s, {"", "p", "q", 0}).error() == amqp::errc::invalid_argument);
  CHECK(r->put_consumer_group(*s, "").error() == amqp::errc::invalid_argument);
  CHECK(r->put_consumer_group(*s, std::string(51, 'c')).error() == amqp::errc::invalid_argument);
  CHECK(r->put_consumer_group(*s, std::string(50, 'c')));
  CHECK(s->devices()->size() == 1);
}

TEST_CASE("registry: a new hub gets the portal's policies and devices with random keys") {
  auto s = memory_store();
  auto r = registry::load(*s, "emulator");
  REQUIRE(r);
  seeded_random random(1);
  REQUIRE(provision_default_policies(*r, *s, random));
  const auto policies = r->policies();
  REQUIRE(policies.size() == 5);
  CHECK(r->policy("iothubowner")->permissions == permission::all);
  CHECK(r->policy("service")->permissions == permission::service_connect);
  CHECK(r->policy("device")->permissions == permission::device_connect);
  CHECK(r->policy("registryRead")->permissions == permission::registry_read);
  CHECK(r->policy("registryReadWrite")->permissions ==
        (permission::registry_read | permission::registry_write));
  CHECK(permission_names(r->policy("registryReadWrite")->permissions) ==
        "RegistryRead, RegistryReadWrite");
  for (const auto& p : policies) {
    auto k = amqp::iothub::base64_decode(p.primary_key);
    REQUIRE(k);
    CHECK(k->size() == 32);
    CHECK(p.primary_key != p.secondary_key);
  }
  // Provisioning again keeps what exists.
  const std::string owner_key = r->policy("iothubowner")->primary_key;
  REQUIRE(provision_default_policies(*r, *s, random));
  CHECK(r->policy("iothubowner")->primary_key == owner_key);

  REQUIRE(provision_device(*r, *s, random, "sensor-1"));
  const device_record* d = r->device("sensor-1");
  REQUIRE(d != nullptr);
  CHECK(d->auth_type == "sas");
  CHECK(d->generation_id.size() == 18);
  CHECK(amqp::iothub::base64_decode(d->secondary_key)->size() == 32);
  const std::string key = d->primary_key;
  REQUIRE(provision_device(*r, *s, random, "sensor-1"));
  CHECK(r->device("sensor-1")->primary_key == key);
  CHECK(provision_device(*r, *s, random, "bad/id").error() == amqp::errc::invalid_argument);
}

TEST_CASE("registry: provisioning modules (their device too) and X.509 devices") {
  auto s = memory_store();
  auto r = registry::load(*s, "emulator");
  REQUIRE(r);
  seeded_random random(2);

  // A module of a device not registered yet: both, with keys of their own.
  REQUIRE(provision_module(*r, *s, random, "edge-1", "filter"));
  const device_record* d = r->device("edge-1");
  REQUIRE(d != nullptr);
  CHECK(d->auth_type == "sas");
  const module_record* m = r->module("edge-1", "filter");
  REQUIRE(m != nullptr);
  CHECK(amqp::iothub::base64_decode(m->primary_key)->size() == 32);
  CHECK(m->primary_key != d->primary_key);
  CHECK(m->generation_id.size() == 18);
  CHECK(r->modules().size() == 1);
  // Again: the module and its device keep their keys; a second module of the same device.
  const std::string module_key = m->primary_key;
  const std::string device_key = d->primary_key;
  REQUIRE(provision_module(*r, *s, random, "edge-1", "filter"));
  REQUIRE(provision_module(*r, *s, random, "edge-1", "$edgeHub"));
  CHECK(r->module("edge-1", "filter")->primary_key == module_key);
  CHECK(r->device("edge-1")->primary_key == device_key);
  CHECK(r->modules().size() == 2);
  CHECK(s->modules()->size() == 2);
  CHECK(provision_module(*r, *s, random, "edge-1", "bad/id").error() ==
        amqp::errc::invalid_argument);
  CHECK(provision_module(*r, *s, random, "bad/id", "m").error() == amqp::errc::invalid_argument);
  CHECK(r->modules().size() == 2);

  // An X.509 device: no keys, certificateAuthority; kept as it is when provisioned again.
  REQUIRE(provision_x509_device(*r, *s, random, "cert-1"));
  d = r->device("cert-1");
  REQUIRE(d != nullptr);
  CHECK(d->auth_type == "certificateAuthority");
  CHECK(d->primary_key.empty());
  CHECK(d->secondary_key.empty());
  CHECK(d->generation_id.size() == 18);
  const std::string generation = d->generation_id;
  REQUIRE(provision_x509_device(*r, *s, random, "cert-1"));
  CHECK(r->device("cert-1")->generation_id == generation);
  // A device registered with keys is not turned into an X.509 one.
  CHECK(provision_x509_device(*r, *s, random, "edge-1").error() == amqp::iothub::errc::conflict);
  CHECK(r->device("edge-1")->auth_type == "sas");
  CHECK(provision_x509_device(*r, *s, random, "bad/id").error() == amqp::errc::invalid_argument);

  auto back = registry::load(*s, "emulator");
  REQUIRE(back);
  REQUIRE(back->device("cert-1") != nullptr);
  CHECK(back->device("cert-1")->auth_type == "certificateAuthority");
  CHECK(back->modules().size() == 2);
}
