// iothub-cli token: a SAS token for the identity of a connection string, or for another
// resource URI signed with its key (doc §2.1).
#include <chrono>
#include <iostream>

#include "amqp/iothub/sas.hpp"
#include "commands.hpp"

namespace amqp::iothub::cli {

void add_token(CLI::App& app, int& status) {
  struct args {
    common_options common;
    std::uint64_t ttl = 3600;
    std::string audience;
  };
  auto a = std::make_shared<args>();
  auto* cmd = app.add_subcommand(
      "token", "print a SAS token for the connection string's identity (device, module, hub "
               "policy, Event Hubs policy), valid --ttl seconds from now");
  add_common(*cmd, a->common);
  cmd->add_option("--ttl", a->ttl, "seconds the token is valid")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{10} * 365 * 24 * 3600))
      ->capture_default_str();
  cmd->add_option("--audience", a->audience,
                  "resource URI to sign for instead of the identity's (e.g. a device's, with a "
                  "policy key)");
  cmd->callback([a, &status] {
    const auto e = endpoint_of(a->common);
    if (!e.identity) {
      status = fail("an X.509 connection string has no key to sign with");
      return;
    }
    const auto& cs = e.parsed;
    if (cs.shared_access_key.empty()) {
      status = fail("the connection string has a SharedAccessSignature, not a key");
      return;
    }
    const auto now =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    const std::string audience = a->audience.empty() ? e.identity->audience() : a->audience;
    const auto form = e.kind == connection_string_kind::event_hubs ? sas_key_form::text
                                                                   : sas_key_form::base64_decoded;
    std::string why;
    auto t = make_sas_token(audience, cs.shared_access_key, now + a->ttl, cs.shared_access_key_name,
                            &why, form);
    if (!t) {
      status = fail("cannot make the token: " + why);
      return;
    }
    std::cout << *t << '\n';
  });
}

} // namespace amqp::iothub::cli
