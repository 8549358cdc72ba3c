// lite_device (lite_device.hpp): the engine driven over a byte_channel, one blocking step at
// a time: write what the engine has, read with the step's deadline, hand the events on.
#include "amqp/iothub/lite_device.hpp"

#include <algorithm>
#include <utility>

#include "amqp/error.hpp"
#include "amqp/iothub/cbs.hpp"
#include "amqp/iothub/errors.hpp"
#include "amqp/iothub/sas.hpp"

namespace amqp::iothub {

namespace {

using clock = std::chrono::steady_clock;

std::error_code code(amqp::errc e) {
  return amqp::make_error_code(e);
}

void say(std::string* why, std::string_view text) {
  if (why != nullptr) {
    *why = std::string(text);
  }
}

// The condition and description of an error, "condition: description".
void describe(std::pmr::string& out, const std::optional<amqp::error>& e) {
  out.clear();
  if (e) {
    out.append(e->condition.str);
    if (e->description) {
      out.append(": ");
      out.append(*e->description);
    }
  }
}

} // namespace

lite_device::lite_device(byte_channel& channel, const lite_device_options& o, connection engine)
    : channel_(&channel), memory_(o.memory), timeout_(o.timeout), lifetime_(o.token_lifetime),
      audience_(o.memory), key_(o.key, o.memory), engine_(std::move(engine)), cbs_(o.memory),
      put_description_(o.memory), outcome_text_(o.memory), failure_text_(o.memory),
      encoded_(o.memory), x509_(o.x509) {
  // The resource URI of the identity: {host}/devices/{d}[/modules/{m}], ids URL-encoded.
  audience_ = device_resource_uri(o.hub_host, o.identity);
}

result<lite_device> lite_device::connect(byte_channel& channel, const lite_device_options& o,
                                         std::uint64_t now, std::string* why) {
  connection_options co;
  co.role = connection_role::client;
  co.container_id =
      o.container_id.empty() ? std::string_view(o.identity.device_id) : o.container_id;
  co.hostname = o.hub_host;
  co.sasl.enabled = true;
  // doc §1.3: ANONYMOUS, CBS follows; X.509: EXTERNAL, the certificate is the identity.
  co.sasl.mechanism = o.x509 ? "EXTERNAL" : "ANONYMOUS";
  co.sasl.external = o.x509;
  co.limits.max_frame_size = std::max<std::uint32_t>(o.max_frame_size, 512);
  co.memory = o.memory;
  auto engine = connection::create(co);
  if (!engine) {
    say(why, "cannot make the AMQP connection: " + engine.error().message());
    return engine.error();
  }
  lite_device d(channel, o, std::move(*engine));
  if (auto r = d.engine_.open(); !r) {
    return r.error();
  }
  auto s = d.engine_.begin();
  if (!s) {
    return s.error();
  }
  d.session_ = *s;
  if (!o.x509) {
    if (auto r = d.open_cbs(now, why); !r) {
      return r.error();
    }
  }
  // The telemetry sender (doc §3.1): settled by the hub with its outcome.
  std::pmr::string address(o.memory);
  address = telemetry_address(o.identity);
  link_options lo;
  lo.name = "telemetry";
  lo.role = role::sender;
  lo.snd_settle_mode = sender_settle_mode::unsettled;
  lo.source = source{};
  lo.source->address = lo.name;
  lo.target = target{};
  lo.target->address = std::string_view(address);
  auto l = d.engine_.attach(d.session_, lo);
  if (!l) {
    return l.error();
  }
  d.telemetry_ = *l;
  if (auto r = d.pump([&] { return d.telemetry_attached_ && d.engine_.credit(*l) > 0; }, why); !r) {
    return r.error();
  }
  return d;
}

result<void> lite_device::open_cbs(std::uint64_t now, std::string* why) {
  request_response_options ro;
  ro.address = "$cbs";
  ro.reply_to = node_cbs_reply_to;
  ro.link_name = "cbs";
  ro.max_pending = 1;
  ro.credit = 1;
  ro.memory = memory_;
  if (auto r = cbs_.open(engine_, session_, ro); !r) {
    return r.error();
  }
  if (auto r = pump([&] { return cbs_.ready(engine_); }, why); !r) {
    return r.error();
  }
  return put_token(now, why);
}

result<void> lite_device::put_token(std::uint64_t now, std::string* why) {
  const std::uint64_t expiry = now + static_cast<std::uint64_t>(lifetime_.count());
  auto token = make_sas_token(audience_, key_, expiry, {}, why);
  if (!token) {
    return token.error();
  }
  // doc §2.4: application-properties operation, type, name; body amqp-value string.
  const value props[6] = {value(cbs_key::operation), value(put_token_operation),
                          value(cbs_key::type),      value(servicebus_sas_token_type),
                          value(cbs_key::name),      value(std::string_view(audience_))};
  const value body[1] = {value(std::string_view(*token))};
  message_parts m;
  m.properties = properties{};
  m.properties->to = "$cbs";
  m.application_properties = value::map(props);
  m.body = body_kind::amqp_value;
  m.body_sections = body;
  put_status_.reset();
  auto id = cbs_.request(engine_, m);
  if (!id) {
    return id.error();
  }
  put_id_ = *id;
  if (auto r = pump([&] { return put_status_.has_value(); }, why); !r) {
    return r.error();
  }
  put_id_.reset();
  if (!is_success_status(*put_status_)) {
    say(why, "the hub refused the token for " + std::string(audience_) + ": status " +
                 std::to_string(*put_status_) + " " + std::string(put_description_));
    return *put_status_ == cbs_status::unauthorized || *put_status_ == cbs_status::forbidden
               ? code(amqp::errc::unauthorized)
               : code(amqp::errc::remote_error);
  }
  expiry_ = expiry;
  return {};
}

result<void> lite_device::renew_token(std::uint64_t now, std::string* why) {
  if (failure_) {
    say(why, failure_text_);
    return failure_;
  }
  if (x509_) {
    return {}; // no token: the certificate is the identity
  }
  return put_token(now, why);
}

result<state_kind> lite_device::send_event(const message_parts& message, std::string* why) {
  auto size = encoded_size(message);
  if (!size) {
    return size.error();
  }
  encoded_.resize(*size);
  if (auto r = encode(message, encoded_); !r) {
    return r.error();
  }
  auto r = send_event(encoded_, why);
  encoded_ = std::pmr::vector<std::byte>(memory_); // the engine has its copy
  return r;
}

result<state_kind> lite_device::send_event(std::span<const std::byte> message, std::string* why) {
  if (failure_ || !telemetry_) {
    say(why, failure_text_);
    return failure_ ? failure_ : code(amqp::errc::invalid_state);
  }
  // Credit: the hub grants it on attach and tops it up; wait for some if it is all used.
  if (auto r = pump([&] { return engine_.credit(*telemetry_) > 0; }, why); !r) {
    return r.error();
  }
  transfer_options t;
  t.payload = message;
  auto d = engine_.send(*telemetry_, t);
  if (!d) {
    return d.error();
  }
  sending_ = *d;
  outcome_.reset();
  if (auto r = pump([&] { return outcome_.has_value(); }, why); !r) {
    sending_.reset();
    return r.error();
  }
  sending_.reset();
  if (*outcome_ != state_kind::accepted) {
    say(why, outcome_text_);
  }
  return *outcome_;
}

result<void> lite_device::close() {
  if (failure_) {
    return failure_;
  }
  if (auto r = engine_.close(); !r) {
    return r.error();
  }
  return pump([&] { return engine_.finished(); }, nullptr);
}

template <typename Done> result<void> lite_device::pump(Done done, std::string* why) {
  const auto deadline = clock::now() + timeout_;
  for (;;) {
    // Everything the engine wrote goes out first.
    for (auto out = engine_.take_output(); !out.empty(); out = engine_.take_output()) {
      if (auto r = channel_->write_all(out); !r) {
        engine_.output_written();
        engine_.on_transport_closed();
        say(why, "the connection to the hub failed: " + r.error().message());
        return r.error();
      }
      engine_.output_written();
    }
    // Nothing is kept between steps: a quiet device holds no output buffer.
    engine_.release_output_buffers();
    if (done()) {
      return {};
    }
    if (failure_) {
      say(why, failure_text_);
      return failure_;
    }
    auto now = clock::now();
    if (now >= deadline) {
      say(why, "no answer from the hub in time");
      return code(amqp::errc::timeout);
    }
    if (const auto next = engine_.next_deadline(); next && *next <= now) {
      engine_.on_deadline(now);
    } else {
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
      if (next) {
        wait = std::min(wait, std::chrono::duration_cast<std::chrono::milliseconds>(*next - now));
      }
      auto buf = engine_.read_buffer(512);
      auto n = channel_->read_some(buf, std::max(wait, std::chrono::milliseconds(1)));
      if (!n) {
        engine_.on_transport_closed();
      } else if (*n > 0) {
        if (auto r = engine_.read_done(*n, clock::now()); !r && !failure_) {
          failure_ = r.error();
          failure_text_ = "the hub's bytes do not decode: " + r.error().message();
        }
      }
    }
    while (auto e = engine_.next_event()) {
      if (auto r = handle(*e); !r && !failure_) {
        failure_ = r.error();
      }
    }
  }
}

result<void> lite_device::handle(const event& e) {
  if (x509_) {
    // No $cbs links.
  } else if (auto r = cbs_.on_event(engine_, e)) {
    if (put_id_ && r->request == *put_id_) {
      const auto status = r->message.application_property(cbs_key::status_code);
      put_status_ = status ? status->as_int() : -1;
      put_description_.clear();
      if (auto d = r->message.application_property(cbs_key::status_description)) {
        if (auto s = d->get_string()) {
          put_description_ = *s;
        }
      }
    }
    return {};
  }
  if (!x509_ && cbs_.failed() && !failure_) {
    failure_ = code(amqp::errc::remote_error);
    failure_text_ = "the hub closed the $cbs links";
  }
  if (const auto* la = std::get_if<link_attached>(&e)) {
    if (telemetry_ && la->link == *telemetry_ && la->remote.target) {
      telemetry_attached_ = true;
    }
  } else if (const auto* ld = std::get_if<link_detached>(&e)) {
    if (telemetry_ && ld->link == *telemetry_) {
      describe(failure_text_, ld->error);
      failure_text_.insert(0, "the hub detached the telemetry link: ");
      failure_ = code(amqp::errc::remote_error);
    }
  } else if (const auto* du = std::get_if<delivery_updated>(&e)) {
    if (sending_ && du->delivery == *sending_ && (du->settled || du->state)) {
      outcome_ = kind_of(du->state);
      outcome_text_.clear();
      if (du->state) {
        if (const auto* rej = std::get_if<rejected>(&*du->state)) {
          describe(outcome_text_, rej->error);
        }
      }
    }
  } else if (const auto* cc = std::get_if<connection_closed>(&e)) {
    if (failure_) {
      return {}; // what failed first says why (a refused SASL login closes the connection)
    }
    if (cc->code || cc->error) {
      describe(failure_text_, cc->error);
      failure_text_.insert(0, "the connection closed: ");
      failure_ = cc->code ? cc->code : code(amqp::errc::remote_error);
    } else {
      failure_ = code(amqp::errc::invalid_state); // closed cleanly: nothing more to do
      failure_text_ = "the connection is closed";
    }
  } else if (const auto* sd = std::get_if<sasl_done>(&e)) {
    if (sd->code != sasl_code::ok) {
      failure_ = code(amqp::errc::unauthorized);
      failure_text_ = "the hub refused the SASL login";
    }
  }
  return {};
}

} // namespace amqp::iothub
