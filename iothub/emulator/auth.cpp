// SASL decisions, identities, token verification and the permissions of every attach (§1.3,
// §2). Tokens are parsed and checked by the profile layer (amqp/iothub/sas.hpp); this file
// decides which key a token must match and what it then allows.
#include <algorithm>
#include <utility>
#include <variant>

#include "amqp/iothub/errors.hpp"
#include "amqp/iothub/sas.hpp"
#include "emulator/hub_state.hpp"
#include "emulator/hub_texts.hpp"

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

bool iequal(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

// A resource URI or a link address split into host and path segments: an optional
// `scheme://`, then (resources always, addresses only with a scheme) the host with an optional
// port, then the path; empty segments are dropped. A resource URI is URL-decoded whole first
// (SDKs encode it whole, '/' included: `localhost%2Fdevices%2Fd1`), an address segment by
// segment (its '/' are never encoded). Nothing if it does not decode.
struct split_uri {
  std::string host; // without the port
  std::vector<std::string> segments;
};

std::optional<split_uri> split(std::string_view text, bool is_resource) {
  std::string decoded;
  if (is_resource) {
    auto d = url_decode(text);
    if (!d) {
      return std::nullopt;
    }
    decoded = std::move(*d);
    text = decoded;
  }
  bool has_host = is_resource;
  split_uri out;
  const auto scheme = text.find("://");
  if (scheme != std::string_view::npos) {
    text.remove_prefix(scheme + 3);
    has_host = true;
  }
  if (has_host) {
    const auto slash = text.find('/');
    std::string_view host = text.substr(0, slash);
    text = slash == std::string_view::npos ? std::string_view{} : text.substr(slash);
    if (const auto colon = host.find(':'); colon != std::string_view::npos) {
      host = host.substr(0, colon);
    }
    out.host = host;
  }
  while (!text.empty()) {
    const auto slash = text.find('/');
    const std::string_view seg = text.substr(0, slash);
    text = slash == std::string_view::npos ? std::string_view{} : text.substr(slash + 1);
    if (seg.empty()) {
      continue;
    }
    if (is_resource) {
      out.segments.emplace_back(seg);
      continue;
    }
    auto d = url_decode(seg);
    if (!d) {
      return std::nullopt;
    }
    out.segments.push_back(std::move(*d));
  }
  return out;
}

// §2.1 (DOC-SAS): a resource covers the addresses whose path it is a segment-wise prefix of,
// compared without regard to case. Hosts are left aside: the hub answers to several names.
bool covers(const std::vector<std::string>& resource, const std::vector<std::string>& path) {
  if (resource.size() > path.size()) {
    return false;
  }
  for (std::size_t i = 0; i < resource.size(); ++i) {
    if (!iequal(resource[i], path[i])) {
      return false;
    }
  }
  return true;
}

// The first DNS label of a host name ("emulator" of "emulator.azure-devices.net").
std::string_view first_label(std::string_view host) noexcept {
  return host.substr(0, host.find('.'));
}

// The value of the CN attribute of an RFC 2253 subject ("CN=device-1,O=x"), escapes removed.
std::string common_name(std::string_view subject) {
  std::size_t i = 0;
  while (i < subject.size()) {
    // One attribute: type=value, up to an unescaped ',' (or '+').
    std::string type;
    while (i < subject.size() && subject[i] != '=') {
      type += subject[i++];
    }
    ++i;
    std::string value;
    while (i < subject.size() && subject[i] != ',' && subject[i] != '+') {
      if (subject[i] == '\\' && i + 1 < subject.size()) {
        ++i;
      }
      value += subject[i++];
    }
    ++i;
    while (!type.empty() && type.front() == ' ') {
      type.erase(type.begin());
    }
    if (iequal(type, "CN")) {
      return value;
    }
  }
  return {};
}

bool is_x509(const device_record& d) noexcept {
  return d.auth_type != "sas";
}

} // namespace

// ---- SASL (§1.3, §2.3) ---------------------------------------------------------------------

void hub::impl::on_sasl_init(conn_state& c, const sasl_init_received& e) {
  const std::string_view mechanism = e.mechanism.str;
  bool ok = false;
  if (mechanism == "PLAIN") {
    // §2.3: {policy}@sas.root.{hub}, {device}@sas.{hub}, {device}/modules/{module}@sas.{hub};
    // the password is a SAS token, verified as a put-token would be.
    auto user = parse_sasl_user(e.username);
    bool hub_ok = false;
    if (user) {
      hub_ok = iequal(user->hub, reg.hub_name());
      for (const auto& h : opts.host_names) {
        hub_ok = hub_ok || iequal(user->hub, first_label(h));
      }
    }
    if (user && hub_ok) {
      auto verdict = verify_token(e.password, {});
      if (auto* id = std::get_if<identity>(&verdict)) {
        // The token's principal must be the user named: the policy, or the device (directly,
        // or through a policy with DeviceConnect whose resource covers it).
        bool matches = false;
        if (!user->policy.empty()) {
          matches = id->kind == principal_kind::policy && iequal(id->policy, user->policy);
        } else if (id->kind == principal_kind::policy) {
          std::vector<std::string> path{"devices", user->identity.device_id};
          if (user->identity.is_module()) {
            path.emplace_back("modules");
            path.push_back(user->identity.module_id);
          }
          matches =
              (id->permissions & permission::device_connect) != 0 && covers(id->resource, path);
        } else {
          matches = id->device == user->identity;
        }
        if (matches) {
          id->plain = true;
          ok = !put_identity(c, std::move(*id)).has_value();
        }
      }
    }
    if (ok) {
      c.auth = auth_mode::plain;
    }
  } else if (mechanism == "ANONYMOUS") {
    ok = true;
    c.auth = auth_mode::anonymous;
  } else if (mechanism == "MSSBCBS") {
    // uAMQP's sasl_mssbcbs.c: an empty initial response; CBS follows (§1.3).
    ok = true;
    c.auth = auth_mode::mssbcbs;
  } else if (mechanism == "EXTERNAL") {
    // §1.3: the identity of the TLS client certificate: its CN names a device registered
    // for X.509 (RFC 4422 appendix A: an authorization identity, if any, must be that one).
    const std::string cn = common_name(c.peer.certificate_subject);
    const std::string_view authz(reinterpret_cast<const char*>(e.initial_response.data()),
                                 e.initial_response.size());
    const device_record* d = cn.empty() ? nullptr : reg.device(cn);
    ok = d != nullptr && d->enabled && is_x509(*d) && (authz.empty() || authz == cn);
    if (ok) {
      c.auth = auth_mode::external;
    }
  }
  // AMQP 1.0 §5.3.3.6: auth (1) for bad credentials; the engine then closes.
  (void)c.engine.sasl_complete(ok ? sasl_code::ok : sasl_code::auth);
}

void hub::impl::on_connection_opened(conn_state& c) {
  if (c.engine.sasl_skipped()) {
    c.auth = auth_mode::no_sasl;
  }
  // §2.6: a device with a TLS client certificate needs no token; the certificate's CN names
  // a device registered for X.509 (with EXTERNAL, or with no SASL as the C and .NET SDKs).
  if (!c.peer.certificate_subject.empty() && c.auth != auth_mode::plain) {
    const std::string cn = common_name(c.peer.certificate_subject);
    const device_record* d = cn.empty() ? nullptr : reg.device(cn);
    if (d != nullptr && d->enabled && is_x509(*d)) {
      identity id;
      id.kind = principal_kind::x509;
      id.device.device_id = d->id;
      id.audience = "x509:" + lowered(d->id);
      id.permissions = permission::device_connect;
      (void)put_identity(c, std::move(id));
    }
  }
  // AMQP 1.0 §2.4.1: the server answers the client's open with its own.
  if (c.engine.state().local == endpoint_status::uninit) {
    (void)c.engine.open();
  }
}

// ---- tokens (§2.1, §2.4) -------------------------------------------------------------------

std::variant<identity, refusal> hub::impl::verify_token(std::string_view token,
                                                        std::string_view audience) {
  std::string why;
  auto t = parse_sas_token(token, &why);
  if (!t) {
    return refusal{cbs_status::unauthorized, std::string(texts::malformed_token) + why};
  }
  auto resource = split(t->resource, true);
  if (!resource) {
    return refusal{cbs_status::unauthorized,
                   std::string(texts::malformed_token) + "the resource URI does not URL-decode"};
  }
  // The audience names this hub: the hub name or a host name, by its first label (§1.1:
  // clients derive the hub name from HostName).
  auto ours = [&](std::string_view host) {
    const std::string_view label = first_label(host);
    if (iequal(label, reg.hub_name())) {
      return true;
    }
    return std::any_of(opts.host_names.begin(), opts.host_names.end(),
                       [&](const std::string& h) { return iequal(label, first_label(h)); });
  };
  if (!ours(resource->host)) {
    return refusal{cbs_status::unauthorized, std::string(description::invalid_audience)};
  }
  std::string key;
  identity id;
  if (!audience.empty()) {
    // §2.4: the token must be for the audience put: its resource a segment-wise prefix of it.
    auto a = split(audience, true);
    if (!a || !ours(a->host) || !covers(resource->segments, a->segments)) {
      return refusal{cbs_status::unauthorized, std::string(description::invalid_audience)};
    }
    auto decoded = url_decode(audience);
    id.audience = lowered(decoded ? *decoded : audience);
  } else {
    auto decoded = url_decode(t->resource);
    id.audience = lowered(decoded ? *decoded : t->resource);
  }
  for (const auto& s : resource->segments) {
    id.resource.push_back(lowered(s));
  }
  std::string_view primary;
  std::string_view secondary;
  if (t->key_name) {
    // A policy key (DOC-SAS: skn names the policy).
    const policy_record* p = reg.policy(*t->key_name);
    if (p == nullptr) {
      return refusal{cbs_status::unauthorized, texts::unknown_policy(*t->key_name)};
    }
    id.kind = principal_kind::policy;
    id.policy = p->name;
    id.permissions = p->permissions;
    primary = p->primary_key;
    secondary = p->secondary_key;
  } else {
    // A device or module key: the resource names the device (§2.1 table).
    const auto& seg = resource->segments;
    const bool device_path = (seg.size() == 2 || (seg.size() == 4 && iequal(seg[2], "modules"))) &&
                             iequal(seg[0], "devices");
    if (!device_path) {
      return refusal{cbs_status::unauthorized, std::string(texts::no_key_for_resource)};
    }
    id.device.device_id = seg[1];
    const device_record* d = reg.device(seg[1]);
    if (seg.size() == 4) {
      id.device.module_id = seg[3];
      const module_record* m = d == nullptr ? nullptr : reg.module(seg[1], seg[3]);
      if (m == nullptr || !d->enabled) {
        return refusal{cbs_status::not_found, texts::not_registered(id.device, reg.hub_name())};
      }
      id.kind = principal_kind::module;
      primary = m->primary_key;
      secondary = m->secondary_key;
    } else {
      if (d == nullptr || !d->enabled) {
        return refusal{cbs_status::not_found, texts::not_registered(id.device, reg.hub_name())};
      }
      id.kind = principal_kind::device;
      primary = d->primary_key;
      secondary = d->secondary_key;
    }
    id.permissions = permission::device_connect;
  }
  // The Event Hubs-compatible namespace's resources ({eventhub}/...) are signed as Event Hubs
  // does, with the key's text; the IoT Hub's with the decoded key (sas_key_form).
  const bool event_hubs_resource =
      t->key_name && !resource->segments.empty() && iequal(resource->segments[0], reg.hub_name());
  const auto form = event_hubs_resource ? sas_key_form::text : sas_key_form::base64_decoded;
  if (primary.empty() || !verify_sas_signature(*t, primary, secondary, nullptr, form)) {
    return refusal{cbs_status::unauthorized, std::string(description::invalid_signature)};
  }
  const std::int64_t wall = wall_ms();
  if (!check_sas_expiry(*t, static_cast<std::uint64_t>(std::max<std::int64_t>(wall, 0) / 1000))) {
    return refusal{cbs_status::unauthorized, std::string(description::token_expired)};
  }
  id.expiry = static_cast<std::int64_t>(t->expiry) * 1000;
  return id;
}

std::optional<refusal> hub::impl::put_identity(conn_state& c, identity id) {
  auto it = c.identities.find(id.audience);
  if (it != c.identities.end()) {
    // §2.5: a renewal replaces the expiry (and the principal, if it changed: the links it
    // authorized stay bound to the audience).
    id.serial = it->second.serial;
    id.links = std::move(it->second.links);
    id.plain = id.plain || it->second.plain;
    it->second = std::move(id);
    schedule_expiry(c, it->second);
    return std::nullopt;
  }
  // §1.6: at most 999 tokens per connection; the next is refused (403).
  if (c.identities.size() >= opts.max_identities) {
    return refusal{cbs_status::forbidden, texts::too_many_identities(opts.max_identities)};
  }
  id.serial = next_serial++;
  auto [pos, inserted] = c.identities.emplace(id.audience, std::move(id));
  schedule_expiry(c, pos->second);
  return std::nullopt;
}

void hub::impl::schedule_expiry(conn_state& c, const identity& id) {
  if (!id.expiry) {
    return;
  }
  timers.schedule(at_wall_ms(*id.expiry) + opts.token_grace, timer_kind::token_expiry, c.handle,
                  id.serial);
}

// §2.5: an identity whose token ran out unrenewed loses its links (amqp:unauthorized-access,
// "Token Invalid."); the connection stays. With SASL PLAIN the connection closes.
void hub::impl::on_token_expiry(connection_handle h, std::uint64_t serial) {
  conn_state* c = find(h);
  if (c == nullptr || c->closed) {
    return;
  }
  auto it = std::find_if(c->identities.begin(), c->identities.end(),
                         [&](const auto& kv) { return kv.second.serial == serial; });
  if (it == c->identities.end() || !it->second.expiry) {
    return;
  }
  const time_point due = at_wall_ms(*it->second.expiry) + opts.token_grace;
  if (due > now) {
    return; // renewed since this timer was set
  }
  if (it->second.plain) {
    sync(*c);
    (void)c->engine.close(amqp::error{symbol_view{amqp::symbol::unauthorized_access},
                                      description::token_invalid, value{}});
    c->identities.erase(it);
    touch(*c);
    return;
  }
  const std::vector<std::uint32_t> links(it->second.links.begin(), it->second.links.end());
  c->identities.erase(it);
  for (std::uint32_t l : links) {
    detach(*c, l, amqp::symbol::unauthorized_access, description::token_invalid);
  }
}

void hub::impl::unbind(conn_state& c, link_state& l) {
  if (l.identity == 0) {
    return;
  }
  for (auto& [audience, id] : c.identities) {
    if (id.serial == l.identity) {
      id.links.erase(l.id.value);
      break;
    }
  }
  l.identity = 0;
}

// ---- permissions (§2.2) --------------------------------------------------------------------

std::variant<identity*, hub::impl::denial> hub::impl::authorize(conn_state& c, const address& a,
                                                                std::string_view text) {
  auto path = split(text, false);
  std::vector<std::string> segments = path ? path->segments : std::vector<std::string>{};
  switch (a.kind) {
  case address_kind::telemetry:
  case address_kind::device_c2d:
  case address_kind::twin:
  case address_kind::methods: {
    // A device's own links: the device (its module for module addresses), its certificate,
    // or a policy with DeviceConnect covering the address.
    const device_record* d = reg.device(a.identity.device_id);
    const bool known = d != nullptr && d->enabled &&
                       (!a.identity.is_module() ||
                        reg.module(a.identity.device_id, a.identity.module_id) != nullptr);
    if (!known) {
      return denial{amqp::symbol::not_found, texts::not_registered(a.identity, reg.hub_name())};
    }
    for (auto& [audience, id] : c.identities) {
      const bool self = (id.kind == principal_kind::device || id.kind == principal_kind::module) &&
                        id.device == a.identity && covers(id.resource, segments);
      const bool cert = id.kind == principal_kind::x509 && !a.identity.is_module() &&
                        id.device.device_id == a.identity.device_id;
      const bool gateway = id.kind == principal_kind::policy &&
                           (id.permissions & permission::device_connect) != 0 &&
                           covers(id.resource, segments);
      if (self || cert || gateway) {
        return &id;
      }
    }
    return denial{amqp::symbol::unauthorized_access, std::string(texts::unauthorized_link)};
  }
  case address_kind::management:
  case address_kind::eventhub_management:
    // The management node answers for the event hub: a token for it (sb://host/{hub}), for
    // the node itself (sb://host/{hub}/$management: the Event Hubs SDK puts one per entity)
    // or for the whole hub.
    segments = {reg.hub_name(), "$management"};
    break;
  default:
    break;
  }
  // Service links (§2.2, DOC-BUILTIN): a policy with ServiceConnect covering the address.
  for (auto& [audience, id] : c.identities) {
    if (id.kind == principal_kind::policy && (id.permissions & permission::service_connect) != 0 &&
        covers(id.resource, segments)) {
      return &id;
    }
  }
  return denial{amqp::symbol::unauthorized_access, std::string(texts::unauthorized_link)};
}

} // namespace amqp::iothub::emulator
