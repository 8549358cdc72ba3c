// Selector filters (doc §6.2), the redirect info map (doc §6.1) and $management READ
// (doc §6.4).
#include "amqp/iothub/eventhubs.hpp"

#include <array>
#include <charconv>
#include <limits>

#include "amqp/codec.hpp"
#include "amqp/iothub/cbs.hpp"
#include "detail.hpp"

namespace amqp::iothub {

using detail::fail;

namespace {

constexpr std::string_view annotation_prefix = "amqp.annotation.";

constexpr std::array<std::string_view, 3> field_names = {"x-opt-offset", "x-opt-sequence-number",
                                                         "x-opt-enqueued-time"};

bool is_space(char c) noexcept {
  return c == ' ' || c == '\t';
}

void skip_spaces(std::string_view& s) noexcept {
  while (!s.empty() && is_space(s.front())) {
    s.remove_prefix(1);
  }
}

bool parse_i64(std::string_view s, std::int64_t& out) noexcept {
  if (s.empty() || s.front() == '+') {
    return false;
  }
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc{} && r.ptr == s.data() + s.size();
}

// A required text entry of a map with string or symbol keys.
result<std::string> map_text(const value& map, std::string_view key, std::string_view what,
                             std::string* why) {
  const auto v = map.find(key);
  if (!v || v->is_null()) {
    return fail(why, errc::missing_field, std::string(what) + " has no '" + std::string(key) + "'");
  }
  const auto t = detail::text_of(*v);
  if (!t) {
    return fail(why, errc::invalid_value,
                std::string(what) + " '" + std::string(key) + "' is a " +
                    std::string(type_name(v->kind())) + ", not a string");
  }
  return std::string(*t);
}

result<std::int64_t> map_integer(const value& map, std::string_view key, std::string_view what,
                                 std::string* why) {
  const auto v = map.find(key);
  if (!v || v->is_null()) {
    return fail(why, errc::missing_field, std::string(what) + " has no '" + std::string(key) + "'");
  }
  const auto n = detail::integer_of(*v);
  if (!n) {
    return fail(why, errc::invalid_value,
                std::string(what) + " '" + std::string(key) + "' is a " +
                    std::string(type_name(v->kind())) + ", not an integer that fits a long");
  }
  return *n;
}

result<amqp::timestamp> map_timestamp(const value& map, std::string_view key, std::string_view what,
                                      std::string* why) {
  const auto v = map.find(key);
  if (!v || v->is_null()) {
    return fail(why, errc::missing_field, std::string(what) + " has no '" + std::string(key) + "'");
  }
  if (!v->is(type::timestamp)) {
    return fail(why, errc::invalid_value,
                std::string(what) + " '" + std::string(key) + "' is a " +
                    std::string(type_name(v->kind())) + ", not a timestamp");
  }
  return v->as_timestamp();
}

// A map value with string keys from interleaved keys and values, deep-copied.
amqp::owned_value owned_map(std::span<const value> kv) {
  auto r = amqp::owned_value::copy_of(value::map(kv));
  // Every key and value here is built by this file from valid UTF-8 and ASCII.
  return r ? std::move(*r) : amqp::owned_value{};
}

amqp::message management_response(const amqp::owned_value& correlation_id, const value& body) {
  amqp::message m;
  (void)m.set_body_value(body);
  m.properties.correlation_id = correlation_id;
  m.application_properties.set(cbs_key::status_code, owned_value(cbs_status::ok));
  m.application_properties.set(cbs_key::status_description, owned_value(cbs_ok_description));
  return m;
}

} // namespace

selector start_of_stream() {
  return selector{position_field::offset, position_operator::greater, "-1"};
}

selector end_of_stream() {
  return selector{position_field::offset, position_operator::greater, "@latest"};
}

std::string to_string(const selector& s) {
  std::string out(annotation_prefix);
  out += field_names[static_cast<std::size_t>(s.field)];
  out += s.op == position_operator::greater            ? " > '"
         : s.op == position_operator::greater_or_equal ? " >= '"
                                                       : " = '";
  for (char c : s.value) {
    out += c;
    if (c == '\'') {
      out += '\'';
    }
  }
  out += '\'';
  return out;
}

result<selector> parse_selector(std::string_view text, std::string* why) {
  if (text.size() > max_selector_length) {
    return fail(why, errc::limit_exceeded,
                "the selector is longer than " + std::to_string(max_selector_length) +
                    " characters");
  }
  std::string_view s = text;
  skip_spaces(s);
  if (!detail::istarts_with(s, annotation_prefix)) {
    return fail(why, errc::not_supported,
                "the selector " + detail::quote(text) +
                    " is not amqp.annotation.<name> <op> <value>");
  }
  s.remove_prefix(annotation_prefix.size());
  std::size_t name_end = 0;
  while (name_end < s.size() && !is_space(s[name_end]) && s[name_end] != '>' &&
         s[name_end] != '=' && s[name_end] != '<' && s[name_end] != '!') {
    ++name_end;
  }
  const std::string_view name = s.substr(0, name_end);
  s.remove_prefix(name_end);
  selector out;
  bool known = false;
  for (std::size_t k = 0; k < field_names.size(); ++k) {
    if (detail::iequals(name, field_names[k])) {
      out.field = static_cast<position_field>(k);
      known = true;
    }
  }
  if (!known) {
    return fail(why, errc::not_supported,
                "the selector names " + detail::quote(name) +
                    "; only x-opt-offset, x-opt-sequence-number and x-opt-enqueued-time");
  }
  skip_spaces(s);
  if (s.starts_with(">=")) {
    out.op = position_operator::greater_or_equal;
    s.remove_prefix(2);
  } else if (s.starts_with('>')) {
    out.op = position_operator::greater;
    s.remove_prefix(1);
  } else if (s.starts_with('=')) {
    out.op = position_operator::equal;
    s.remove_prefix(1);
  } else {
    return fail(why, errc::not_supported,
                "the selector's operator is not >, >= or =: " + detail::quote(text));
  }
  skip_spaces(s);
  if (s.starts_with('\'')) {
    s.remove_prefix(1);
    bool closed = false;
    while (!s.empty()) {
      const char c = s.front();
      s.remove_prefix(1);
      if (c == '\'') {
        if (s.starts_with('\'')) {
          out.value += '\'';
          s.remove_prefix(1);
          continue;
        }
        closed = true;
        break;
      }
      out.value += c;
    }
    if (!closed) {
      return fail(why, errc::invalid_value,
                  "unterminated quote in the selector " + detail::quote(text));
    }
  } else {
    std::size_t n = s.starts_with('-') ? 1 : 0;
    const std::size_t digits_from = n;
    while (n < s.size() && detail::is_digit(s[n])) {
      ++n;
    }
    if (n == digits_from) {
      return fail(why, errc::invalid_value,
                  "the selector's value is neither quoted nor a number: " + detail::quote(text));
    }
    out.value.assign(s.substr(0, n));
    s.remove_prefix(n);
  }
  skip_spaces(s);
  if (!s.empty()) {
    return fail(why, errc::invalid_value, "text after the selector's value: " + detail::quote(s));
  }
  if (out.value.empty()) {
    return fail(why, errc::invalid_value, "the selector's value is empty");
  }
  std::int64_t n = 0;
  switch (out.field) {
  case position_field::offset:
    for (char c : out.value) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        return fail(why, errc::invalid_value, "a control character in the selector's offset");
      }
    }
    if (!is_valid_utf8(out.value)) {
      return fail(why, errc::invalid_value, "the selector's offset is not UTF-8");
    }
    break;
  case position_field::sequence_number:
    if (!parse_i64(out.value, n)) {
      return fail(why, errc::invalid_value,
                  "the sequence number " + detail::quote(out.value) + " is not an integer");
    }
    break;
  case position_field::enqueued_time:
    if (!parse_i64(out.value, n) || n < 0) {
      return fail(why, errc::invalid_value,
                  "the enqueued time " + detail::quote(out.value) +
                      " is not a number of milliseconds since the epoch");
    }
    break;
  }
  return out;
}

result<amqp::owned_value> selector_filter(const selector& s, descriptor_form form) {
  const std::string text = to_string(s);
  if (!is_valid_utf8(text)) {
    return make_error_code(errc::invalid_value);
  }
  const std::array<value, 2> pair = {form == descriptor_form::numeric
                                         ? value(selector_filter_code)
                                         : value(symbol_view{selector_filter_name}),
                                     value(std::string_view(text))};
  return amqp::owned_value::copy_of(value::described(pair));
}

result<amqp::owned_value> selector_filter_set(const selector& s, descriptor_form form) {
  auto f = selector_filter(s, form);
  if (!f) {
    return f.error();
  }
  const std::array<value, 2> kv = {value(symbol_view{selector_filter_name}), f->get()};
  return amqp::owned_value::copy_of(value::map(kv));
}

result<selector> parse_selector_filter(const value& v, std::string* why) {
  if (!v.is(type::described)) {
    return fail(why, errc::not_supported,
                "the filter is a " + std::string(type_name(v.kind())) + ", not a described value");
  }
  const value d = v.descriptor();
  const bool numeric = d.is(type::ulong) && d.as_ulong() == selector_filter_code;
  const bool symbolic = d.get_symbol() && d.as_symbol() == selector_filter_name;
  if (!numeric && !symbolic) {
    return fail(why, errc::not_supported,
                "the filter's descriptor is not apache.org:selector-filter:string");
  }
  const auto text = v.described_value().get_string();
  if (!text) {
    return fail(why, errc::invalid_value, "the selector filter's value is not a string");
  }
  return parse_selector(*text, why);
}

result<std::optional<selector>> parse_filter_set(const value& filter_set, std::string* why) {
  if (filter_set.is_null()) {
    return std::optional<selector>{};
  }
  if (!filter_set.is(type::map)) {
    return fail(why, errc::invalid_value, "the filter-set is not a map");
  }
  std::optional<selector> found;
  bool is_key = true;
  for (const value& item : filter_set.items()) {
    if (is_key) {
      is_key = false;
      continue;
    }
    is_key = true;
    auto s = parse_selector_filter(item, why);
    if (!s) {
      return s.error();
    }
    if (found) {
      return fail(why, errc::invalid_value, "the filter-set holds two selector filters");
    }
    found = std::move(*s);
  }
  return found;
}

amqp::owned_value build_redirect_info(const redirect_info& r) {
  std::vector<value> kv = {
      value(symbol_view{"hostname"}),     value(std::string_view(r.hostname)),
      value(symbol_view{"network-host"}), value(std::string_view(r.network_host)),
      value(symbol_view{"port"}),         value(static_cast<std::int32_t>(r.port)),
      value(symbol_view{"address"}),      value(std::string_view(r.address))};
  if (r.tracking_id) {
    kv.emplace_back(symbol_view{error_info::tracking_id});
    kv.emplace_back(std::string_view(*r.tracking_id));
  }
  return owned_map(kv);
}

result<redirect_info> parse_redirect_info(const value& info, std::string* why) {
  if (!info.is(type::map)) {
    return fail(why, errc::invalid_value, "the redirect info is not a map");
  }
  constexpr std::string_view what = "the redirect info";
  redirect_info r;
  auto host = map_text(info, "hostname", what, why);
  if (!host) {
    return host.error();
  }
  r.hostname = std::move(*host);
  if (const auto nh = info.find("network-host"); nh && !nh->is_null()) {
    auto t = map_text(info, "network-host", what, why);
    if (!t) {
      return t.error();
    }
    r.network_host = std::move(*t);
  }
  auto port = map_integer(info, "port", what, why);
  if (!port) {
    return port.error();
  }
  if (*port < 1 || *port > 65535) {
    return fail(why, errc::invalid_value,
                "the redirect port " + std::to_string(*port) + " is not from 1 to 65535");
  }
  r.port = static_cast<std::uint16_t>(*port);
  auto addr = map_text(info, "address", what, why);
  if (!addr) {
    return addr.error();
  }
  r.address = std::move(*addr);
  if (const auto t = info.find(error_info::tracking_id); t && !t->is_null()) {
    auto s = map_text(info, error_info::tracking_id, what, why);
    if (!s) {
      return s.error();
    }
    r.tracking_id = std::move(*s);
  }
  return r;
}

amqp::message build_management_request(const management_request& r) {
  amqp::message m;
  (void)m.set_body_value(value{});
  m.properties.message_id = r.message_id;
  m.properties.reply_to = r.reply_to;
  auto& ap = m.application_properties;
  ap.set(management_key::operation, owned_value(read_operation));
  ap.set(management_key::type, owned_value(r.partition ? partition_type : eventhub_type));
  ap.set(management_key::name, owned_value(r.event_hub));
  if (r.partition) {
    ap.set(management_key::partition, owned_value(*r.partition));
  }
  if (r.security_token) {
    ap.set(management_key::security_token, owned_value(*r.security_token));
  }
  return m;
}

result<management_request> parse_management_request(const amqp::message& m, std::string* why) {
  management_request r;
  if (m.properties.message_id.is_null()) {
    return fail(why, errc::missing_field, "the $management request has no message-id");
  }
  r.message_id = m.properties.message_id;
  r.reply_to = m.properties.reply_to;
  const auto text = [&](std::string_view key) -> result<std::string> {
    const auto v = m.application_properties.get(key);
    if (!v || v->is_null()) {
      return fail(why, errc::missing_field,
                  "the $management request has no '" + std::string(key) + "'");
    }
    const auto t = detail::text_of(*v);
    if (!t) {
      return fail(why, errc::invalid_value,
                  "the $management '" + std::string(key) + "' is a " +
                      std::string(type_name(v->kind())) + ", not a string");
    }
    return std::string(*t);
  };
  auto op = text(management_key::operation);
  if (!op) {
    return op.error();
  }
  if (!detail::iequals(*op, read_operation)) {
    return fail(why, errc::not_supported,
                "the $management operation " + detail::quote(*op) + " is not READ");
  }
  auto type = text(management_key::type);
  if (!type) {
    return type.error();
  }
  const bool partition = detail::iequals(*type, partition_type);
  if (!partition && !detail::iequals(*type, eventhub_type)) {
    return fail(why, errc::not_supported,
                "the $management type " + detail::quote(*type) +
                    " is not com.microsoft:eventhub or com.microsoft:partition");
  }
  auto name = text(management_key::name);
  if (!name) {
    return name.error();
  }
  if (name->empty()) {
    return fail(why, errc::invalid_value, "the $management name is empty");
  }
  r.event_hub = std::move(*name);
  if (partition) {
    auto p = text(management_key::partition);
    if (!p) {
      return p.error();
    }
    r.partition = std::move(*p);
  }
  if (const auto t = m.application_properties.get(management_key::security_token);
      t && !t->is_null()) {
    auto s = text(management_key::security_token);
    if (!s) {
      return s.error();
    }
    r.security_token = std::move(*s);
  }
  return r;
}

amqp::message build_eventhub_response(const amqp::owned_value& correlation_id,
                                      const eventhub_info& info) {
  std::vector<value> ids;
  ids.reserve(info.partition_ids.size());
  for (const std::string& p : info.partition_ids) {
    ids.emplace_back(std::string_view(p));
  }
  const std::array<value, 10> kv = {value("name"),
                                    value(std::string_view(info.name)),
                                    value("type"),
                                    value(eventhub_type),
                                    value("created_at"),
                                    value(info.created_at),
                                    value("partition_count"),
                                    value(static_cast<std::int32_t>(info.partition_ids.size())),
                                    value("partition_ids"),
                                    value::array(type::string, ids)};
  return management_response(correlation_id, owned_map(kv).get());
}

amqp::message build_partition_response(const amqp::owned_value& correlation_id,
                                       const partition_info& info) {
  const std::array<value, 16> kv = {value("name"),
                                    value(std::string_view(info.name)),
                                    value("type"),
                                    value(partition_type),
                                    value("partition"),
                                    value(std::string_view(info.partition)),
                                    value("begin_sequence_number"),
                                    value(info.begin_sequence_number),
                                    value("last_enqueued_sequence_number"),
                                    value(info.last_enqueued_sequence_number),
                                    value("last_enqueued_offset"),
                                    value(std::string_view(info.last_enqueued_offset)),
                                    value("last_enqueued_time_utc"),
                                    value(info.last_enqueued_time_utc),
                                    value("is_partition_empty"),
                                    value(info.is_partition_empty)};
  return management_response(correlation_id, owned_map(kv).get());
}

result<eventhub_info> parse_eventhub_info(const value& body, std::string* why) {
  if (!body.is(type::map)) {
    return fail(why, errc::invalid_value, "the eventhub response body is not a map");
  }
  constexpr std::string_view what = "the eventhub response";
  eventhub_info info;
  auto name = map_text(body, "name", what, why);
  if (!name) {
    return name.error();
  }
  info.name = std::move(*name);
  auto created = map_timestamp(body, "created_at", what, why);
  if (!created) {
    return created.error();
  }
  info.created_at = *created;
  const auto ids = body.find("partition_ids");
  if (!ids || ids->is_null()) {
    return fail(why, errc::missing_field, "the eventhub response has no 'partition_ids'");
  }
  if (!ids->is(type::array) && !ids->is(type::list)) {
    return fail(why, errc::invalid_value,
                "the eventhub response 'partition_ids' is a " +
                    std::string(type_name(ids->kind())) + ", not an array");
  }
  if (ids->count() > max_partition_ids) {
    return fail(why, errc::limit_exceeded,
                "more than " + std::to_string(max_partition_ids) + " partition ids");
  }
  for (const value& id : ids->items()) {
    const auto t = detail::text_of(id);
    if (!t) {
      return fail(why, errc::invalid_value,
                  "a partition id is a " + std::string(type_name(id.kind())) + ", not a string");
    }
    info.partition_ids.emplace_back(*t);
  }
  return info;
}

result<partition_info> parse_partition_info(const value& body, std::string* why) {
  if (!body.is(type::map)) {
    return fail(why, errc::invalid_value, "the partition response body is not a map");
  }
  constexpr std::string_view what = "the partition response";
  partition_info info;
  auto name = map_text(body, "name", what, why);
  if (!name) {
    return name.error();
  }
  info.name = std::move(*name);
  auto partition = map_text(body, "partition", what, why);
  if (!partition) {
    return partition.error();
  }
  info.partition = std::move(*partition);
  auto begin = map_integer(body, "begin_sequence_number", what, why);
  if (!begin) {
    return begin.error();
  }
  info.begin_sequence_number = *begin;
  auto last = map_integer(body, "last_enqueued_sequence_number", what, why);
  if (!last) {
    return last.error();
  }
  info.last_enqueued_sequence_number = *last;
  auto offset = map_text(body, "last_enqueued_offset", what, why);
  if (!offset) {
    return offset.error();
  }
  info.last_enqueued_offset = std::move(*offset);
  auto time = map_timestamp(body, "last_enqueued_time_utc", what, why);
  if (!time) {
    return time.error();
  }
  info.last_enqueued_time_utc = *time;
  if (const auto e = body.find("is_partition_empty"); e && !e->is_null()) {
    if (!e->is(type::boolean)) {
      return fail(why, errc::invalid_value,
                  "the partition response 'is_partition_empty' is a " +
                      std::string(type_name(e->kind())) + ", not a boolean");
    }
    info.is_partition_empty = e->as_bool();
  } else {
    info.is_partition_empty = false;
  }
  return info;
}

} // namespace amqp::iothub
