// iothub-cli c2d send and feedback, on blocking_service_client.
#include <chrono>
#include <iostream>

#include <nlohmann/json.hpp>

#include "amqp/iothub/feedback.hpp"
#include "amqp/iothub/service_client.hpp"
#include "commands.hpp"
#include "message_out.hpp"

namespace amqp::iothub::cli {

namespace {

result<blocking_service_client> connect_service(const common_options& c, int& status) {
  auto e = endpoint_of(c);
  if (e.kind != connection_string_kind::service) {
    status = fail("a service connection string (a hub policy) is needed");
    return make_error_code(amqp::errc::invalid_argument);
  }
  std::string why;
  auto s = blocking_service_client::connect(std::move(e), {}, &why);
  if (!s) {
    status = fail("cannot connect: " + why);
  }
  return s;
}

} // namespace

void add_c2d_send(CLI::App& c2d, int& status) {
  struct args {
    common_options common;
    message_args message;
    std::string device;
    std::string module;
    std::string ack;
    double ttl_s = 0;
  };
  auto a = std::make_shared<args>();
  auto* cmd = c2d.add_subcommand("send", "send a cloud-to-device message to a device (as the "
                                         "service); prints the hub's outcome and the message-id");
  add_common(*cmd, a->common);
  cmd->add_option("--device", a->device, "the device")->required();
  cmd->add_option("--module", a->module, "a module of the device");
  cmd->add_option("body", a->message.body, "the message body (UTF-8 text)")->required();
  cmd->add_option("-p,--property", a->message.properties, "application property KEY=VALUE");
  cmd->add_option("--message-id", a->message.message_id, "message-id (default: a new GUID)");
  cmd->add_option("--correlation-id", a->message.correlation_id, "correlation-id");
  cmd->add_option("--ack", a->ack, "feedback asked for")
      ->check(CLI::IsMember({"none", "positive", "negative", "full"}));
  cmd->add_option("--ttl", a->ttl_s, "seconds before the message expires");
  cmd->callback([a, &status] {
    const amqp::message m = build_message(a->message);
    c2d_send_options o;
    o.module_id = a->module;
    if (!a->ack.empty()) {
      o.ack = a->ack == "none"       ? c2d_ack::none
              : a->ack == "positive" ? c2d_ack::positive
              : a->ack == "negative" ? c2d_ack::negative
                                     : c2d_ack::full;
    }
    if (a->ttl_s > 0) {
      o.time_to_live = std::chrono::milliseconds(static_cast<std::int64_t>(a->ttl_s * 1000));
    }
    auto s = connect_service(a->common, status);
    if (!s) {
      return;
    }
    auto r = s->send(a->device, m, o);
    if (!r) {
      status = fail("send failed: " + s->last_error());
      return;
    }
    nlohmann::json j{{"messageId", r->message_id}, {"outcome", std::string(amqp::name(r->state))}};
    if (!r->accepted()) {
      j["condition"] = r->condition;
      j["description"] = r->description;
      status = 1;
    }
    std::cout << j.dump() << std::endl;
    (void)s->close();
  });
}

void add_feedback(CLI::App& app, int& status) {
  struct args {
    common_options common;
    std::size_t count = 1;
    double timeout_s = 60;
  };
  auto a = std::make_shared<args>();
  auto* cmd = app.add_subcommand(
      "feedback", "receive the feedback of cloud-to-device messages (as the service); one JSON "
                  "object per record");
  add_common(*cmd, a->common);
  cmd->add_option("--count", a->count, "records to wait for (0: until --timeout)")
      ->capture_default_str();
  cmd->add_option("--timeout", a->timeout_s, "seconds to wait for the next batch")
      ->capture_default_str();
  cmd->callback([a, &status] {
    auto s = connect_service(a->common, status);
    if (!s) {
      return;
    }
    const auto wait = std::chrono::milliseconds(static_cast<std::int64_t>(a->timeout_s * 1000));
    std::size_t seen = 0;
    while (a->count == 0 || seen < a->count) {
      auto records = s->receive_feedback(wait);
      if (!records) {
        if (a->count == 0 && records.error() == make_error_code(amqp::errc::timeout)) {
          break;
        }
        status = fail("no feedback: " + (records.error() == make_error_code(amqp::errc::timeout)
                                             ? std::string("none in time")
                                             : s->last_error()));
        return;
      }
      for (const auto& r : *records) {
        ++seen;
        std::cout << nlohmann::json{{"originalMessageId", r.original_message_id},
                                    {"deviceId", r.device_id},
                                    {"statusCode", std::string(to_string(r.status_code))},
                                    {"description", r.description},
                                    {"enqueuedTimeUtc", format_utc_time(r.enqueued_time_utc)}}
                         .dump()
                  << std::endl;
      }
    }
    (void)s->close();
  });
}

} // namespace amqp::iothub::cli
