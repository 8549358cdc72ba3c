// iothub-cli send (device telemetry) and c2d receive (a device's cloud-to-device messages),
// on blocking_device_client.
#include <chrono>
#include <iostream>

#include <nlohmann/json.hpp>

#include "amqp/iothub/device_client.hpp"
#include "commands.hpp"
#include "message_out.hpp"

namespace amqp::iothub::cli {

namespace {

// Connects as the device of the options' connection string.
result<blocking_device_client> connect_device(const common_options& c, bool receive_c2d,
                                              int& status) {
  auto e = endpoint_of(c);
  if (e.kind != connection_string_kind::device && e.kind != connection_string_kind::module) {
    status = fail("a device or module connection string is needed");
    return make_error_code(amqp::errc::invalid_argument);
  }
  device_client_options o;
  o.receive_c2d = receive_c2d;
  std::string why;
  auto d = blocking_device_client::connect(std::move(e), o, &why);
  if (!d) {
    status = fail("cannot connect: " + why);
  }
  return d;
}

} // namespace

void add_send(CLI::App& app, int& status) {
  struct args {
    common_options common;
    message_args message;
    std::size_t count = 1;
    bool batch = false;
  };
  auto a = std::make_shared<args>();
  auto* cmd = app.add_subcommand(
      "send", "send device telemetry (as the device of a device or module connection string)");
  add_common(*cmd, a->common);
  cmd->add_option("body", a->message.body, "the message body (UTF-8 text)")->required();
  cmd->add_option("--count", a->count, "messages to send")->capture_default_str();
  cmd->add_flag("--batch", a->batch,
                "send them as batches (format 0x80013700), packed up to the hub's size limit");
  cmd->add_option("-p,--property", a->message.properties, "application property KEY=VALUE");
  cmd->add_option("--message-id", a->message.message_id, "message-id (the same on every one)");
  cmd->add_option("--correlation-id", a->message.correlation_id, "correlation-id");
  cmd->add_option("--content-type", a->message.content_type, "content type, e.g. application/json");
  cmd->add_option("--content-encoding", a->message.content_encoding,
                  "content encoding, e.g. utf-8");
  cmd->callback([a, &status] {
    const amqp::message m = build_message(a->message);
    auto d = connect_device(a->common, false, status);
    if (!d) {
      return;
    }
    std::size_t accepted = 0;
    std::size_t rejected = 0;
    auto count = [&](const event_outcome& o) {
      if (o.state == state_kind::accepted) {
        ++accepted;
      } else {
        ++rejected;
        std::cerr << "iothub-cli: " << amqp::name(o.state) << ": " << o.condition << " "
                  << o.description << '\n';
      }
    };
    if (a->batch) {
      const std::vector<amqp::message> all(a->count, m);
      auto r = d->send_batch(all);
      if (!r) {
        status = fail("send failed: " + d->last_error());
        return;
      }
      for (const auto& o : r->outcomes) {
        count(o);
      }
      std::cout << "sent " << a->count << " in " << r->transfers.size() << " transfers, ";
    } else {
      for (std::size_t i = 0; i < a->count; ++i) {
        auto r = d->send_event(m);
        if (!r) {
          status = fail("send failed: " + d->last_error());
          return;
        }
        count(*r);
      }
      std::cout << "sent " << a->count << ", ";
    }
    std::cout << "accepted " << accepted << ", rejected " << rejected << '\n';
    (void)d->close();
    status = rejected == 0 ? 0 : 1;
  });
}

void add_c2d_receive(CLI::App& c2d, int& status) {
  struct args {
    common_options common;
    std::size_t count = 1;
    double timeout_s = 30;
    std::string outcome = "complete";
  };
  auto a = std::make_shared<args>();
  auto* cmd = c2d.add_subcommand(
      "receive", "receive cloud-to-device messages as a device and settle them; one JSON "
                 "object per message");
  add_common(*cmd, a->common);
  cmd->add_option("--count", a->count, "messages to receive (0: until --timeout)")
      ->capture_default_str();
  cmd->add_option("--timeout", a->timeout_s, "seconds to wait for each")->capture_default_str();
  cmd->add_option("--outcome", a->outcome, "what to do with each")
      ->check(CLI::IsMember({"complete", "reject", "abandon"}))
      ->capture_default_str();
  cmd->callback([a, &status] {
    auto d = connect_device(a->common, true, status);
    if (!d) {
      return;
    }
    const auto wait = std::chrono::milliseconds(static_cast<std::int64_t>(a->timeout_s * 1000));
    for (std::size_t n = 0; a->count == 0 || n < a->count; ++n) {
      auto m = d->receive(wait);
      if (!m) {
        if (a->count == 0 && m.error() == make_error_code(amqp::errc::timeout)) {
          break;
        }
        status = fail("receive failed: " + (m.error() == make_error_code(amqp::errc::timeout)
                                                ? std::string("no message in time")
                                                : d->last_error()));
        return;
      }
      auto decoded = m->message();
      nlohmann::json j = nlohmann::json::object();
      if (decoded) {
        add_message_json(*decoded, j);
      }
      const auto r = a->outcome == "complete" ? d->complete(*m)
                     : a->outcome == "reject" ? d->reject(*m)
                                              : d->abandon(*m);
      j["outcome"] = r ? a->outcome : "failed: " + r.error().message();
      std::cout << j.dump() << std::endl;
    }
    (void)d->close();
  });
}

} // namespace amqp::iothub::cli
