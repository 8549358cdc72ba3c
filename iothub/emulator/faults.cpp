// Fault injection (§9.4): the AzIoTHub_Fault* application properties Microsoft's E2E tests put
// on a D2C message, so that SDK suites (and ours) can break a connection on purpose. The
// message is accepted as usual; after AzIoTHub_FaultOperationDelayInSecs the fault happens.
#include <algorithm>
#include <charconv>
#include <cstring>
#include <functional>
#include <optional>

#include "amqp/iothub/messages.hpp"
#include "emulator/hub_state.hpp"
#include "emulator/hub_texts.hpp"

namespace amqp::iothub::emulator {

namespace {

amqp::error make_error(std::string_view condition, std::string_view description) {
  return amqp::error{symbol_view{condition}, description, value{}};
}

// A property the E2E tests write as a string ("1") or an integer.
std::int64_t seconds_of(const std::optional<value>& v) {
  if (!v) {
    return 0;
  }
  if (auto s = v->get_string()) {
    std::int64_t n = 0;
    auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), n);
    return ec == std::errc{} && p == s->data() + s->size() ? std::clamp<std::int64_t>(n, 0, 86400)
                                                           : 0;
  }
  if (auto i = v->get_signed()) {
    return std::clamp<std::int64_t>(*i, 0, 86400);
  }
  if (auto u = v->get_unsigned()) {
    return static_cast<std::int64_t>(std::min<std::uint64_t>(*u, 86400));
  }
  return 0;
}

} // namespace

void hub::impl::maybe_fault(conn_state& c, const link_state& l, std::span<const std::byte> payload,
                            const message_view* decoded) {
  std::optional<message_view> own;
  if (decoded != nullptr) {
    // The decoder indexed the application properties' keys: most messages carry no fault.
    if (!decoded->application_property(fault::operation_type)) {
      return;
    }
  } else {
    // Most messages carry no fault: a byte search (Boyer-Moore-Horspool) spares them a
    // second decode.
    constexpr std::string_view marker = fault::operation_type;
    static const std::boyer_moore_horspool_searcher search(marker.begin(), marker.end());
    const auto* begin = reinterpret_cast<const char*>(payload.data());
    if (std::search(begin, begin + payload.size(), search) == begin + payload.size()) {
      return;
    }
    auto m = decode_message(payload);
    if (!m) {
      return;
    }
    own = *m;
    decoded = &*own;
  }
  if (!decoded->application_properties.is(type::map)) {
    return;
  }
  const auto& props = decoded->application_properties;
  auto type_value = props.find(fault::operation_type);
  const auto type = type_value ? type_value->get_string() : std::nullopt;
  if (!type) {
    return;
  }
  pending_fault f;
  f.type = *type;
  if (auto r = props.find(fault::close_reason)) {
    f.reason = r->get_string().value_or(std::string_view{});
  }
  f.duration_s = seconds_of(props.find(fault::duration_in_secs));
  f.connection = c.handle;
  f.link = l.id.value;
  f.link_key = l.key;
  f.session = l.session;
  f.device = l.device;
  const std::uint64_t id = next_fault++;
  faults.emplace(id, std::move(f));
  timers.schedule(now + std::chrono::seconds(seconds_of(props.find(fault::delay_in_secs))),
                  timer_kind::fault, id);
}

std::optional<std::pair<std::string_view, std::string>>
hub::impl::fault_refusal(const device_identity& device) const {
  if (auto it = throttled_until.find(device.device_id);
      it != throttled_until.end() && now < it->second) {
    return std::pair{condition::device_container_throttled, std::string(texts::throttled)};
  }
  if (auto it = quota_until.find(device.device_id); it != quota_until.end() && now < it->second) {
    return std::pair{std::string_view(amqp::symbol::resource_limit_exceeded),
                     std::string(texts::quota_exceeded)};
  }
  return std::nullopt;
}

void hub::impl::on_fault(std::uint64_t id) {
  auto it = faults.find(id);
  if (it == faults.end()) {
    return;
  }
  const pending_fault f = std::move(it->second);
  faults.erase(it);
  const std::string reason = f.reason.empty() ? std::string(texts::fault_default_reason) : f.reason;
  if (f.type == fault::shut_down_amqp) {
    for (auto& [h, c] : conns) {
      if (!c->closed && c->engine.state().local == endpoint_status::active) {
        sync(*c);
        (void)c->engine.close(make_error(amqp::symbol::connection_forced, reason));
      }
    }
    return;
  }
  conn_state* c = find(f.connection);
  if (c == nullptr || c->closed) {
    return;
  }
  auto link_of = [&](link_kind k) -> std::vector<std::uint32_t> {
    std::vector<std::uint32_t> ids;
    for (const auto& [lid, l] : c->links) {
      if (l->kind == k && (k != link_kind::device_c2d || l->device == f.device)) {
        ids.push_back(lid);
      }
    }
    return ids;
  };
  auto detach_all = [&](const std::vector<std::uint32_t>& ids, std::string_view condition) {
    for (std::uint32_t lid : ids) {
      detach(*c, lid, condition, reason);
    }
  };
  if (f.type == fault::kill_tcp) {
    // The socket goes without a close frame: the transport drops it (take_aborted()).
    if (!c->aborted) {
      c->aborted = true;
      aborted.push_back(c->handle);
    }
  } else if (f.type == fault::kill_amqp_connection) {
    sync(*c);
    (void)c->engine.close(make_error(amqp::symbol::connection_forced, reason));
  } else if (f.type == fault::kill_amqp_session) {
    sync(*c);
    (void)c->engine.end(f.session, make_error(amqp::symbol::internal_error, reason));
  } else if (f.type == fault::kill_amqp_cbs_link_req) {
    detach_all(link_of(link_kind::cbs_requests), amqp::symbol::detach_forced);
  } else if (f.type == fault::kill_amqp_cbs_link_resp) {
    detach_all(link_of(link_kind::cbs_responses), amqp::symbol::detach_forced);
  } else if (f.type == fault::kill_amqp_d2c_link) {
    auto l = c->links.find(f.link);
    if (l != c->links.end() && l->second->key == f.link_key) {
      detach(*c, f.link, amqp::symbol::detach_forced, reason);
    }
  } else if (f.type == fault::kill_amqp_c2d_link) {
    detach_all(link_of(link_kind::device_c2d), amqp::symbol::detach_forced);
  } else if (f.type == fault::invoke_throttling) {
    throttled_until[f.device.device_id] = now + std::chrono::seconds(f.duration_s);
  } else if (f.type == fault::invoke_max_message_quota) {
    quota_until[f.device.device_id] = now + std::chrono::seconds(f.duration_s);
  } else if (f.type == fault::invoke_auth_error) {
    std::vector<std::uint32_t> ids;
    for (const auto& [lid, l] : c->links) {
      if (l->device == f.device && !f.device.device_id.empty()) {
        ids.push_back(lid);
      }
    }
    detach_all(ids, amqp::symbol::unauthorized_access);
  }
  // Twin and method link faults, ShutDownMqtt: not served (no twin, methods or MQTT).
}

} // namespace amqp::iothub::emulator
