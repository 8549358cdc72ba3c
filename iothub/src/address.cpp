// Link addresses (doc §1.5 and the sections of each address) and device identities.
#include "amqp/iothub/address.hpp"

#include <vector>

#include "amqp/iothub/connection_string.hpp"
#include "amqp/iothub/sas.hpp"
#include "detail.hpp"

namespace amqp::iothub {

using detail::fail;
using detail::iequals;

namespace {

// DOC identity registry: "- . % _ * ? ! ( ) , : = @ $ '" for device ids; module ids add
// "+ #".
constexpr std::string_view device_id_specials = "-.%_*?!(),:=@$'";
constexpr std::string_view module_id_specials = "-.%_*?!(),:=@$'+#";

result<void> check_id(std::string_view id, std::string_view specials, std::string_view what,
                      std::string* why) {
  if (id.empty()) {
    return fail(why, errc::invalid_value, std::string(what) + " is empty");
  }
  if (id.size() > max_id_length) {
    return fail(why, errc::limit_exceeded, std::string(what) + " is longer than 128 characters");
  }
  for (char c : id) {
    if (!detail::is_alnum(c) && specials.find(c) == std::string_view::npos) {
      return fail(why, errc::invalid_value,
                  std::string(what) + " " + detail::quote(id) +
                      " has a character not allowed: " + detail::quote(std::string_view(&c, 1)));
    }
  }
  return {};
}

std::string identity_path(const device_identity& id) {
  std::string s = "/devices/" + url_encode(id.device_id);
  if (id.is_module()) {
    s += "/modules/" + url_encode(id.module_id);
  }
  return s;
}

bool is_scheme(std::string_view s) noexcept {
  if (s.empty() || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) {
    return false;
  }
  for (char c : s) {
    if (!detail::is_alnum(c) && c != '+' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

std::string join(const std::vector<std::string>& segs, std::size_t from, bool encode) {
  std::string out;
  for (std::size_t k = from; k < segs.size(); ++k) {
    if (k != from) {
      out += '/';
    }
    out += encode ? url_encode(segs[k]) : segs[k];
  }
  return out;
}

result<address> parse_path(std::vector<std::string>& s, address a, std::string* why) {
  const std::size_t n = s.size();
  const auto bad = [&](std::string_view text) -> result<address> {
    return fail(why, errc::invalid_value, text);
  };
  if (iequals(s[0], "devices")) {
    if (n < 3) {
      return bad("a /devices/{id} address needs a path after the device id");
    }
    if (auto r = check_device_id(s[1], why); !r) {
      return r.error();
    }
    a.identity.device_id = std::move(s[1]);
    std::size_t i = 2;
    if (iequals(s[2], "modules")) {
      if (n < 5) {
        return bad("a /devices/{id}/modules/{id} address needs a path after the module id");
      }
      if (auto r = check_module_id(s[3], why); !r) {
        return r.error();
      }
      a.identity.module_id = std::move(s[3]);
      i = 4;
    }
    const std::size_t left = n - i;
    if (left == 2 && iequals(s[i], "messages") && iequals(s[i + 1], "events")) {
      a.kind = address_kind::telemetry;
    } else if (left == 2 && iequals(s[i], "messages") && iequals(s[i + 1], "devicebound")) {
      a.kind = address_kind::device_c2d;
    } else if (left == 1 && iequals(s[i], "twin")) {
      a.kind = address_kind::twin;
    } else if (left == 2 && iequals(s[i], "methods") && iequals(s[i + 1], "devicebound")) {
      a.kind = address_kind::methods;
    } else {
      return bad("unknown device address " + detail::quote("/" + join(s, 0, false)));
    }
    return a;
  }
  if (iequals(s[0], "messages") && n >= 2) {
    if (n == 2 && iequals(s[1], "devicebound")) {
      a.kind = address_kind::service_c2d;
      return a;
    }
    if (n == 3 && iequals(s[1], "servicebound") && iequals(s[2], "feedback")) {
      a.kind = address_kind::feedback;
      return a;
    }
    if (n == 3 && iequals(s[1], "servicebound") && iequals(s[2], "filenotifications")) {
      a.kind = address_kind::file_notifications;
      return a;
    }
    if (iequals(s[1], "events")) {
      // doc §6.1: any path under /messages/events is redirected.
      a.kind = address_kind::builtin_events;
      a.events_path = join(s, 2, false);
      if (n == 6 && iequals(s[2], "ConsumerGroups") && iequals(s[4], "Partitions")) {
        a.consumer_group = s[3];
        a.partition = s[5];
      }
      return a;
    }
    return bad("unknown service address " + detail::quote("/" + join(s, 0, false)));
  }
  if (n == 1 && iequals(s[0], path::cbs)) {
    a.kind = address_kind::cbs;
    return a;
  }
  if (n == 1 && iequals(s[0], path::management)) {
    a.kind = address_kind::management;
    return a;
  }
  // Event Hubs forms.
  a.event_hub = std::move(s[0]);
  if (n == 1) {
    a.kind = address_kind::eventhub;
  } else if (n == 2 && iequals(s[1], path::management)) {
    a.kind = address_kind::eventhub_management;
  } else if (n == 3 && iequals(s[1], "Partitions")) {
    a.kind = address_kind::eventhub_partition;
    a.partition = std::move(s[2]);
  } else if (n == 5 && iequals(s[1], "ConsumerGroups") && iequals(s[3], "Partitions")) {
    a.kind = address_kind::eventhub_consumer;
    a.consumer_group = std::move(s[2]);
    a.partition = std::move(s[4]);
  } else {
    return bad("unknown address " + detail::quote(join(s, 0, false)));
  }
  return a;
}

} // namespace

result<void> check_device_id(std::string_view id, std::string* why) {
  return check_id(id, device_id_specials, "the device id", why);
}

result<void> check_module_id(std::string_view id, std::string* why) {
  return check_id(id, module_id_specials, "the module id", why);
}

std::string_view kind_name(address_kind k) noexcept {
  switch (k) {
  case address_kind::telemetry:
    return "telemetry";
  case address_kind::device_c2d:
    return "device_c2d";
  case address_kind::twin:
    return "twin";
  case address_kind::methods:
    return "methods";
  case address_kind::service_c2d:
    return "service_c2d";
  case address_kind::feedback:
    return "feedback";
  case address_kind::file_notifications:
    return "file_notifications";
  case address_kind::builtin_events:
    return "builtin_events";
  case address_kind::cbs:
    return "cbs";
  case address_kind::management:
    return "management";
  case address_kind::eventhub:
    return "eventhub";
  case address_kind::eventhub_partition:
    return "eventhub_partition";
  case address_kind::eventhub_consumer:
    return "eventhub_consumer";
  case address_kind::eventhub_management:
    return "eventhub_management";
  }
  return "unknown";
}

result<address> parse_address(std::string_view text, std::string* why) {
  if (text.size() > max_address_length) {
    return fail(why, errc::limit_exceeded,
                "the address is longer than " + std::to_string(max_address_length) + " characters");
  }
  if (text.empty()) {
    return fail(why, errc::invalid_value, "the address is empty");
  }
  address a;
  std::string_view path_text = text;
  if (const auto p = text.find("://"); p != std::string_view::npos) {
    const std::string_view scheme = text.substr(0, p);
    if (!is_scheme(scheme)) {
      return fail(why, errc::invalid_value, "malformed scheme " + detail::quote(scheme));
    }
    std::string_view rest = text.substr(p + 3);
    const auto slash = rest.find('/');
    auto hp = split_host_port(rest.substr(0, slash), why);
    if (!hp) {
      return hp.error();
    }
    a.scheme.assign(scheme);
    a.host.assign(hp->host);
    a.port = hp->port;
    if (slash == std::string_view::npos) {
      return fail(why, errc::invalid_value, "the address " + detail::quote(text) + " has no path");
    }
    path_text = rest.substr(slash);
  }
  if (path_text.starts_with('/')) {
    path_text.remove_prefix(1);
  }
  if (path_text.ends_with('/')) {
    path_text.remove_suffix(1);
  }
  std::vector<std::string> segs;
  while (true) {
    const auto slash = path_text.find('/');
    const std::string_view seg = path_text.substr(0, slash);
    if (seg.empty()) {
      return fail(why, errc::invalid_value,
                  "the address " + detail::quote(text) + " has an empty segment");
    }
    auto d = url_decode(seg, why);
    if (!d) {
      return d.error();
    }
    // A control character has no use in an address, and %00 does not decode: refusing them
    // raw too keeps every parsed address printable and re-parsable (found by fuzzing).
    for (char c : *d) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        return fail(why, errc::invalid_value,
                    "a segment of " + detail::quote(text) + " holds a control character");
      }
    }
    if (d->find('/') != std::string::npos) {
      return fail(why, errc::invalid_value,
                  "a segment of " + detail::quote(text) + " decodes to a '/'");
    }
    segs.push_back(std::move(*d));
    if (slash == std::string_view::npos) {
      break;
    }
    path_text.remove_prefix(slash + 1);
  }
  return parse_path(segs, std::move(a), why);
}

std::string to_string(const address& a) {
  std::string out;
  if (!a.host.empty()) {
    out += a.scheme.empty() ? "amqps" : a.scheme;
    out += "://";
    const bool v6 = a.host.find(':') != std::string::npos;
    out += v6 ? "[" + a.host + "]" : a.host;
    if (a.port) {
      out += ":" + std::to_string(*a.port);
    }
    out += '/';
  }
  const auto drop_slash = [&](const std::string& s) {
    // Paths that start with '/' when they stand alone; after a prefix the '/' is there.
    return !a.host.empty() && s.starts_with('/') ? s.substr(1) : s;
  };
  switch (a.kind) {
  case address_kind::telemetry:
    return out + drop_slash(telemetry_address(a.identity));
  case address_kind::device_c2d:
    return out + drop_slash(device_c2d_address(a.identity));
  case address_kind::twin:
    return out + drop_slash(twin_address(a.identity));
  case address_kind::methods:
    return out + drop_slash(methods_address(a.identity));
  case address_kind::service_c2d:
    return out + drop_slash(std::string(path::service_c2d));
  case address_kind::feedback:
    return out + drop_slash(std::string(path::feedback));
  case address_kind::file_notifications:
    return out + drop_slash(std::string(path::file_notifications));
  case address_kind::builtin_events: {
    std::string p(path::events);
    std::string_view rest = a.events_path;
    while (!rest.empty()) {
      const auto slash = rest.find('/');
      p += "/" + url_encode(rest.substr(0, slash));
      rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    }
    return out + drop_slash(p);
  }
  case address_kind::cbs:
    return out + std::string(path::cbs);
  case address_kind::management:
    return out + std::string(path::management);
  case address_kind::eventhub:
    return out + url_encode(a.event_hub);
  case address_kind::eventhub_partition:
    return out + eventhub_partition_address(a.event_hub, a.partition);
  case address_kind::eventhub_consumer:
    return out + eventhub_consumer_address(a.event_hub, a.consumer_group, a.partition);
  case address_kind::eventhub_management:
    return out + eventhub_management_address(a.event_hub);
  }
  return out;
}

std::string telemetry_address(const device_identity& id) {
  return identity_path(id) + "/messages/events";
}
std::string device_c2d_address(const device_identity& id) {
  return identity_path(id) + "/messages/devicebound";
}
std::string twin_address(const device_identity& id) {
  return identity_path(id) + "/twin";
}
std::string methods_address(const device_identity& id) {
  return identity_path(id) + "/methods/devicebound";
}
std::string builtin_events_address(std::string_view consumer_group, std::string_view partition) {
  return std::string(path::events) + "/ConsumerGroups/" + url_encode(consumer_group) +
         "/Partitions/" + url_encode(partition);
}
std::string eventhub_consumer_address(std::string_view event_hub, std::string_view consumer_group,
                                      std::string_view partition) {
  return url_encode(event_hub) + "/ConsumerGroups/" + url_encode(consumer_group) + "/Partitions/" +
         url_encode(partition);
}
std::string eventhub_partition_address(std::string_view event_hub, std::string_view partition) {
  return url_encode(event_hub) + "/Partitions/" + url_encode(partition);
}
std::string eventhub_management_address(std::string_view event_hub) {
  return url_encode(event_hub) + "/" + std::string(path::management);
}

std::string device_resource_uri(std::string_view host, const device_identity& id) {
  return std::string(host) + identity_path(id);
}

std::string sasl_policy_user(std::string_view policy, std::string_view hub) {
  return std::string(policy) + "@sas.root." + std::string(hub);
}

std::string sasl_device_user(const device_identity& id, std::string_view hub) {
  std::string s = url_encode(id.device_id);
  if (id.is_module()) {
    s += "/modules/" + url_encode(id.module_id);
  }
  return s + "@sas." + std::string(hub);
}

result<sasl_user> parse_sasl_user(std::string_view user, std::string* why) {
  const auto at = user.rfind('@');
  if (at == std::string_view::npos) {
    return fail(why, errc::invalid_value, "the SASL user " + detail::quote(user) + " has no '@'");
  }
  const std::string_view left = user.substr(0, at);
  std::string_view right = user.substr(at + 1);
  sasl_user u;
  if (detail::istarts_with(right, "sas.root.")) {
    right.remove_prefix(9);
    if (left.empty() || right.empty()) {
      return fail(why, errc::invalid_value,
                  "the SASL user " + detail::quote(user) + " needs {policy}@sas.root.{hub}");
    }
    u.policy.assign(left);
    u.hub.assign(right);
    return u;
  }
  if (!detail::istarts_with(right, "sas.")) {
    return fail(why, errc::invalid_value,
                "the SASL user " + detail::quote(user) + " is not {id}@sas.{hub}");
  }
  right.remove_prefix(4);
  if (right.empty()) {
    return fail(why, errc::invalid_value, "the SASL user " + detail::quote(user) + " has no hub");
  }
  u.hub.assign(right);
  std::string_view dev = left;
  std::string_view mod;
  if (const auto m = left.find("/modules/"); m != std::string_view::npos) {
    dev = left.substr(0, m);
    mod = left.substr(m + 9);
    if (mod.empty()) {
      return fail(why, errc::invalid_value,
                  "the SASL user " + detail::quote(user) + " has an empty module id");
    }
  }
  auto d = url_decode(dev, why);
  if (!d) {
    return d.error();
  }
  if (auto r = check_device_id(*d, why); !r) {
    return r.error();
  }
  u.identity.device_id = std::move(*d);
  if (!mod.empty()) {
    auto m = url_decode(mod, why);
    if (!m) {
      return m.error();
    }
    if (auto r = check_module_id(*m, why); !r) {
      return r.error();
    }
    u.identity.module_id = std::move(*m);
  }
  return u;
}

} // namespace amqp::iothub
