// iothub-cli monitor: the built-in endpoint's events, like `az iot hub monitor-events`, on
// blocking_telemetry_reader: every partition (or one), from a start position, one JSON
// object per event with its properties, application properties and annotations.
#include <chrono>
#include <iostream>

#include <nlohmann/json.hpp>

#include "amqp/iothub/feedback.hpp"
#include "amqp/iothub/telemetry_reader.hpp"
#include "commands.hpp"
#include "message_out.hpp"

namespace amqp::iothub::cli {

namespace {

// --start: earliest, latest, offset:X, seq:N (after N), time:ISO-8601 UTC.
event_position start_of(const std::string& s) {
  if (s == "earliest") {
    return event_position::earliest();
  }
  if (s == "latest") {
    return event_position::latest();
  }
  if (s.rfind("offset:", 0) == 0) {
    return event_position::from_offset(s.substr(7));
  }
  if (s.rfind("seq:", 0) == 0) {
    return event_position::from_sequence_number(std::stoll(s.substr(4)));
  }
  if (s.rfind("time:", 0) == 0) {
    std::string why;
    auto t = parse_utc_time(s.substr(5), &why);
    if (!t) {
      throw CLI::ValidationError("--start", why);
    }
    return event_position::from_enqueued_time(*t);
  }
  throw CLI::ValidationError("--start",
                             "'" + s + "': earliest, latest, offset:X, seq:N or time:ISO");
}

} // namespace

void add_monitor(CLI::App& app, int& status) {
  struct args {
    common_options common;
    std::string start = "latest";
    std::string device;
    std::string partition;
    std::string consumer_group = "$Default";
    std::size_t count = 0;
    double timeout_s = 0;
  };
  auto a = std::make_shared<args>();
  auto* cmd = app.add_subcommand(
      "monitor", "read device telemetry from the built-in endpoint (a service connection string, "
                 "through the redirect, or the Event Hubs-compatible one); one JSON object per "
                 "event");
  add_common(*cmd, a->common);
  cmd->add_option("--start", a->start, "earliest, latest, offset:X, seq:N, time:ISO-8601")
      ->capture_default_str();
  cmd->add_option("--device", a->device, "only this device's events");
  cmd->add_option("--partition", a->partition, "only this partition (default: every one)");
  cmd->add_option("--consumer-group", a->consumer_group, "consumer group")->capture_default_str();
  cmd->add_option("--count", a->count, "stop after this many events (0: no limit)")
      ->capture_default_str();
  cmd->add_option("--timeout", a->timeout_s,
                  "stop after this many seconds without an event "
                  "(0: never)")
      ->capture_default_str();
  cmd->callback([a, &status] {
    const event_position start = start_of(a->start);
    telemetry_reader_options o;
    o.protocol = a->common.websockets ? hub_protocol::amqp_websockets : hub_protocol::amqps;
    o.tls.ca_file = a->common.ca_file;
    o.consumer_group = a->consumer_group;
    o.trace = a->common.trace;
    std::string why;
    auto r = blocking_telemetry_reader::connect(connection_string_text(a->common), o, &why);
    if (!r) {
      status = fail("cannot connect: " + why);
      return;
    }
    const auto opened =
        a->partition.empty() ? r->open_all(start) : r->open_partition(a->partition, start);
    if (!opened) {
      status = fail("cannot read: " + r->last_error());
      return;
    }
    const auto wait =
        a->timeout_s > 0 ? std::chrono::milliseconds(static_cast<std::int64_t>(a->timeout_s * 1000))
                         : std::chrono::milliseconds(std::chrono::hours(24 * 365));
    std::size_t shown = 0;
    while (a->count == 0 || shown < a->count) {
      auto e = r->receive(wait);
      if (!e) {
        if (e.error() != make_error_code(amqp::errc::timeout)) {
          status = fail("reading stopped: " + r->last_error());
        }
        break;
      }
      if (!a->device.empty() && e->device_id != a->device) {
        continue;
      }
      ++shown;
      nlohmann::json j{{"partition", e->partition},
                       {"sequenceNumber", e->sequence_number},
                       {"offset", e->offset},
                       {"enqueuedTime", format_utc_time(e->enqueued_time)}};
      if (e->device_id) {
        j["deviceId"] = *e->device_id;
      }
      if (e->module_id) {
        j["moduleId"] = *e->module_id;
      }
      add_message_json(e->message, j);
      nlohmann::json ann = nlohmann::json::object();
      for (const auto& entry : e->message.message_annotations) {
        const auto& k = entry.key.get();
        ann[std::string(k.is(type::symbol) ? k.as_symbol() : k.as_string())] =
            plain_json(entry.value.get());
      }
      if (!ann.empty()) {
        j["annotations"] = std::move(ann);
      }
      std::cout << j.dump() << std::endl;
    }
    (void)r->close();
  });
}

} // namespace amqp::iothub::cli
