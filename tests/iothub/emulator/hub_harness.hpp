// The hub emulator driven by client engines in memory: N client-role amqp::connection objects,
// each wired to one hub connection, bytes moved by copy both ways as a transport would
// (receive + process, write + on_output_written), a virtual clock that also runs the hub's
// own timers, an in-memory store and a seeded random source. No sockets, no sleeps.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/connection.hpp"
#include "amqp/event.hpp"
#include "amqp/iothub/cbs.hpp"
#include "amqp/iothub/sas.hpp"
#include "amqp/message.hpp"
#include "emulator/hub.hpp"
#include "emulator/registry.hpp"
#include "emulator/store.hpp"
#include "support/wire.hpp"

namespace hubtest {

using namespace amqp;
using namespace amqp::iothub;
using namespace amqp::iothub::emulator;
using namespace std::chrono_literals;
using amqp::test::wire_parser;

// The wall clock at virtual time zero: 2026-01-01T00:00:00Z, in ms.
inline constexpr std::int64_t epoch_ms = 1'767'225'600'000;

inline std::string state_text(const std::optional<delivery_state>& s) {
  if (!s) {
    return "";
  }
  if (std::holds_alternative<accepted>(*s)) {
    return "accepted";
  }
  if (const auto* r = std::get_if<rejected>(&*s)) {
    return r->error ? "rejected " + std::string(r->error->condition.str) : "rejected";
  }
  if (std::holds_alternative<released>(*s)) {
    return "released";
  }
  if (std::holds_alternative<modified>(*s)) {
    return "modified";
  }
  return "other";
}

// One client event, copied (the event's views die with the next receive()).
struct rec {
  std::string kind;
  link_id link{};
  delivery_id delivery{};
  std::vector<std::byte> payload;
  std::uint32_t message_format = 0;
  std::vector<std::byte> tag;
  bool settled = false;
  std::string state;           // delivery_updated: state_text()
  std::string condition;       // detach/end/close and rejected outcomes: the error's condition
  std::string description;     // and its description
  std::vector<std::byte> info; // the error's info, encoded (empty: none)
  std::error_code code{};
  bool remote = false;
  std::uint32_t credit = 0;
  int sasl_code = -1;
  bool has_source = false, has_target = false; // link_attached: the hub's termini
  std::optional<std::uint64_t> max_message_size;
};

struct client {
  explicit client(const connection_options& o) : engine(o) {}
  connection engine;
  connection_handle handle = 0;
  session_id session{};
  bool connected = true;
  std::vector<rec> log;
  wire_parser wire;                               // everything the hub wrote to this client
  std::map<std::uint32_t, std::uint32_t> windows; // receiver link -> credit kept up to this
  bool auto_accept = true;                        // accept deliveries received unsettled
  int names = 0;
  std::error_code error{};

  // The records of `kind` (optionally on link `l`).
  [[nodiscard]] std::vector<rec> of(std::string_view kind,
                                    std::optional<link_id> l = std::nullopt) const {
    std::vector<rec> out;
    for (const rec& r : log) {
      if (r.kind == kind && (!l || r.link == *l)) {
        out.push_back(r);
      }
    }
    return out;
  }
  // The last record of `kind` on `l`, or a failed check.
  [[nodiscard]] rec last(std::string_view kind, std::optional<link_id> l = std::nullopt) const {
    auto v = of(kind, l);
    REQUIRE_FALSE(v.empty());
    return v.back();
  }
};

// Keys of the test registry (base64 of 32 bytes each; fixed so that tokens are reproducible).
inline constexpr std::string_view key_a = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=";
inline constexpr std::string_view key_b = "YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmI=";
inline constexpr std::string_view key_c = "Y2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2M=";

class world {
public:
  explicit world(hub_options o = {}, std::string hub_name = "emulator") {
    auto s = store::open(":memory:");
    REQUIRE(s);
    db = std::move(*s);
    auto r = registry::load(*db, std::move(hub_name));
    REQUIRE(r);
    reg = std::make_unique<registry>(std::move(*r));
    populate();
    o.unix_offset = milliseconds(epoch_ms);
    auto h = hub::create(std::move(o), *db, *reg, random);
    REQUIRE(h);
    hub_ = std::move(*h);
  }

  std::unique_ptr<store> db;
  std::unique_ptr<registry> reg;
  seeded_random random{42};
  std::unique_ptr<hub> hub_;
  time_point now{};
  std::vector<std::unique_ptr<client>> clients;
  std::vector<connection_handle> aborted; // take_aborted() results
  std::error_code hub_error{};            // the last error of a hub receive()

  hub& h() { return *hub_; }

  // The wall clock of the hub now (ms, s).
  [[nodiscard]] std::int64_t wall_ms() const {
    return epoch_ms + std::chrono::duration_cast<milliseconds>(now.time_since_epoch()).count();
  }
  [[nodiscard]] std::uint64_t wall_s() const {
    return static_cast<std::uint64_t>(wall_ms() / 1000);
  }

  // The registry every test starts with: devices d1 (key_a/key_b), d2 (key_c/key_a), a
  // module d1/m1 (key_b/key_c), a disabled device "off", an X.509 device "cam"; policies
  // iothubowner (all), service (ServiceConnect), device (DeviceConnect), registryRead.
  void populate() {
    REQUIRE(
        reg->put_device(*db, {"d1", std::string(key_a), std::string(key_b), true, "sas", "1001"}));
    REQUIRE(
        reg->put_device(*db, {"d2", std::string(key_c), std::string(key_a), true, "sas", "1002"}));
    REQUIRE(reg->put_device(*db,
                            {"off", std::string(key_a), std::string(key_b), false, "sas", "1003"}));
    REQUIRE(reg->put_device(*db, {"cam", "", "", true, "selfSigned", "1004"}));
    REQUIRE(reg->put_module(*db, {"d1", "m1", std::string(key_b), std::string(key_c), "2001"}));
    REQUIRE(reg->put_policy(
        *db, {"iothubowner", std::string(key_a), std::string(key_b), permission::all}));
    REQUIRE(reg->put_policy(
        *db, {"service", std::string(key_b), std::string(key_c), permission::service_connect}));
    REQUIRE(reg->put_policy(
        *db, {"device", std::string(key_c), std::string(key_a), permission::device_connect}));
    REQUIRE(reg->put_policy(
        *db, {"registryRead", std::string(key_a), std::string(key_c), permission::registry_read}));
  }

  // A token for `resource` signed with `key`, valid for `lifetime` from now.
  // Event Hubs resources are signed with the key as text (sas_key_form).
  [[nodiscard]] std::string token(std::string_view resource, std::string_view key,
                                  std::chrono::seconds lifetime = 3600s,
                                  std::string_view key_name = {},
                                  sas_key_form form = sas_key_form::base64_decoded) const {
    auto t = make_sas_token(resource, key, wall_s() + static_cast<std::uint64_t>(lifetime.count()),
                            key_name, nullptr, form);
    REQUIRE(t);
    return *t;
  }
  [[nodiscard]] std::string device_token(std::string_view id = "d1",
                                         std::chrono::seconds lifetime = 3600s) const {
    const device_record* d = reg->device(id);
    REQUIRE(d != nullptr);
    return token("localhost/devices/" + std::string(id), d->primary_key, lifetime);
  }
  [[nodiscard]] std::string policy_token(std::string_view name = "service",
                                         std::chrono::seconds lifetime = 3600s,
                                         std::string_view resource = "localhost",
                                         sas_key_form form = sas_key_form::base64_decoded) const {
    const policy_record* p = reg->policy(name);
    REQUIRE(p != nullptr);
    return token(resource, p->primary_key, lifetime, name, form);
  }
  // A policy token for an Event Hubs resource (sb://host/{eventhub}...): the key as text.
  [[nodiscard]] std::string eh_policy_token(std::string_view name, std::chrono::seconds lifetime,
                                            std::string_view resource) const {
    return policy_token(name, lifetime, resource, sas_key_form::text);
  }

  // ---- connections

  client& connect(connection_options o = {}, peer_info peer = {}) {
    o.role = connection_role::client;
    const std::string id = "client-" + std::to_string(clients.size() + 1);
    if (o.container_id.empty()) {
      o.container_id = id;
    }
    if (o.hostname.empty()) {
      o.hostname = "localhost";
    }
    clients.push_back(std::make_unique<client>(o));
    client& c = *clients.back();
    c.handle = hub_->add_connection(now, peer);
    return c;
  }

  // A client using SASL `mechanism` ("" for none; "PLAIN" with user/password), its
  // connection open and one session begun.
  client& open(std::string_view mechanism = "ANONYMOUS", std::string_view user = {},
               std::string_view password = {}, peer_info peer = {}) {
    connection_options o;
    if (!mechanism.empty()) {
      o.sasl.enabled = true;
      o.sasl.mechanism = mechanism;
      o.sasl.username = user;
      o.sasl.password = password;
      o.sasl.external = mechanism == "EXTERNAL";
      if (mechanism == "MSSBCBS") {
        o.sasl.initial_response = std::span<const std::byte>{};
      }
    }
    client& c = connect(o, std::move(peer));
    REQUIRE(c.engine.open());
    auto s = c.engine.begin();
    REQUIRE(s);
    c.session = *s;
    REQUIRE(pump());
    return c;
  }

  // Moves bytes and events until nothing moves. True when idle.
  bool pump(long max_rounds = 1'000'000) {
    for (long i = 0; i < max_rounds; ++i) {
      bool progress = false;
      for (auto& cp : clients) {
        client& c = *cp;
        if (!c.connected) {
          continue;
        }
        progress = drain(c) || progress;
        progress = to_hub(c) || progress;
        progress = to_client(c) || progress;
      }
      (void)hub_->take_dirty(); // every connection is looked at each round anyway
      for (connection_handle a : hub_->take_aborted()) {
        aborted.push_back(a);
        for (auto& cp : clients) {
          if (cp->handle == a && cp->connected) {
            drop(*cp);
          }
        }
        progress = true;
      }
      if (!progress) {
        return true;
      }
    }
    return false;
  }

  // The client's socket is dropped by the hub (KillTcp): no close frame.
  void drop(client& c) {
    c.connected = false;
    c.engine.on_transport_closed();
    drain(c);
    hub_->remove_connection(c.handle);
  }

  // The client's socket goes away (the transport sees EOF on both ends).
  void disconnect(client& c) {
    c.connected = false;
    c.engine.on_transport_closed();
    hub_->engine(c.handle)->on_transport_closed();
    hub_->process(c.handle, now);
    hub_->remove_connection(c.handle);
    pump();
  }

  // Advances the virtual clock, firing every engine's deadlines and the hub's on the way.
  void advance(milliseconds d) {
    const time_point until = now + d;
    for (;;) {
      time_point next = until;
      auto consider = [&](std::optional<time_point> t) {
        if (t && *t < next) {
          next = *t;
        }
      };
      consider(hub_->next_deadline());
      for (auto& cp : clients) {
        if (cp->connected) {
          consider(cp->engine.next_deadline());
          consider(hub_->engine(cp->handle)->next_deadline());
        }
      }
      now = std::max(now, next);
      if (auto t = hub_->next_deadline(); t && *t <= now) {
        hub_->on_deadline(now);
      }
      for (auto& cp : clients) {
        if (!cp->connected) {
          continue;
        }
        if (auto t = cp->engine.next_deadline(); t && *t <= now) {
          cp->engine.on_deadline(now);
        }
        connection* e = hub_->engine(cp->handle);
        if (auto t = e->next_deadline(); t && *t <= now) {
          e->on_deadline(now);
          hub_->process(cp->handle, now);
        }
      }
      pump();
      if (now >= until) {
        return;
      }
    }
  }

  // ---- links

  link_id attach_sender(client& c, std::string_view address,
                        sender_settle_mode snd = sender_settle_mode::unsettled,
                        receiver_settle_mode rcv = receiver_settle_mode::first,
                        std::optional<session_id> s = std::nullopt) {
    const std::string name = "sender-" + std::to_string(++c.names);
    link_options o;
    o.name = name;
    o.role = role::sender;
    o.snd_settle_mode = snd;
    o.rcv_settle_mode = rcv;
    o.source = source{};
    o.source->address = name;
    o.target = target{};
    o.target->address = address;
    auto l = c.engine.attach(s.value_or(c.session), o);
    REQUIRE(l);
    REQUIRE(pump());
    return *l;
  }

  link_id attach_receiver(client& c, std::string_view address, std::uint32_t credit = 100,
                          std::optional<std::string_view> target_address = std::nullopt,
                          std::optional<session_id> s = std::nullopt,
                          receiver_settle_mode rcv = receiver_settle_mode::first) {
    const std::string name = "receiver-" + std::to_string(++c.names);
    link_options o;
    o.name = name;
    o.role = role::receiver;
    o.snd_settle_mode = sender_settle_mode::unsettled;
    o.rcv_settle_mode = rcv;
    o.source = source{};
    o.source->address = address;
    o.target = target{};
    o.target->address = target_address.value_or(name);
    auto l = c.engine.attach(s.value_or(c.session), o);
    REQUIRE(l);
    if (credit > 0) {
      REQUIRE(c.engine.flow(*l, credit));
      c.windows[l->value] = credit;
    }
    REQUIRE(pump());
    return *l;
  }

  // True if the link is attached on both ends (the hub did not refuse it).
  bool attached(client& c, link_id l) {
    auto s = c.engine.state(l);
    return s && s->local == endpoint_status::active && s->remote == endpoint_status::active;
  }

  delivery_id send(client& c, link_id l, const amqp::message& m, bool settled = false,
                   std::uint32_t format = 0) {
    auto bytes = m.encode();
    REQUIRE(bytes);
    return send_bytes(c, l, *bytes, settled, format);
  }
  delivery_id send_bytes(client& c, link_id l, std::span<const std::byte> payload,
                         bool settled = false, std::uint32_t format = 0) {
    transfer_options t;
    t.payload = payload;
    t.settled = settled;
    t.message_format = format;
    auto d = c.engine.send(l, t);
    REQUIRE(d);
    REQUIRE(pump());
    return *d;
  }

  // ---- CBS

  // The $cbs pair of a client: requests (sender) and answers (receiver with target
  // `reply_to`).
  struct cbs_links {
    link_id requests{};
    link_id responses{};
  };
  cbs_links open_cbs(client& c, std::string_view reply_to = "cbs",
                     std::optional<session_id> s = std::nullopt) {
    cbs_links l;
    l.requests =
        attach_sender(c, "$cbs", sender_settle_mode::unsettled, receiver_settle_mode::first, s);
    l.responses = attach_receiver(c, "$cbs", 100, reply_to, s);
    return l;
  }

  // Sends a put-token and returns the answer received on `l.responses`.
  cbs_response put_token(client& c, const cbs_links& l, std::string_view audience,
                         std::string_view token, owned_value message_id = std::uint64_t{1},
                         std::optional<std::string> reply_to = std::string("cbs"),
                         cbs_token_type type = cbs_token_type::servicebus_sas) {
    put_token_request r;
    r.message_id = std::move(message_id);
    r.reply_to = std::move(reply_to);
    r.token_type = type;
    r.audience = audience;
    r.token = token;
    const std::size_t before = c.of("delivery_received", l.responses).size();
    send(c, l.requests, build_put_token(r));
    auto answers = c.of("delivery_received", l.responses);
    REQUIRE(answers.size() == before + 1);
    return response_of(answers.back());
  }

  static cbs_response response_of(const rec& r) {
    auto m = amqp::message::decode(r.payload);
    REQUIRE(m);
    auto resp = parse_cbs_response(*m);
    REQUIRE(resp);
    return *resp;
  }

  // ---- internals

  bool to_hub(client& c) {
    auto out = c.engine.pending_output();
    if (out.empty()) {
      return false;
    }
    connection* e = hub_->engine(c.handle);
    if (e->finished()) {
      c.engine.consume_output(out.size());
      return true;
    }
    if (!e->wants_read()) {
      return false;
    }
    auto r = hub_->receive(c.handle, out, now);
    if (!r) {
      hub_error = r.error();
    }
    c.engine.consume_output(out.size());
    hub_->process(c.handle, now);
    return true;
  }

  bool to_client(client& c) {
    connection* e = hub_->engine(c.handle);
    auto out = e->pending_output();
    if (out.empty()) {
      return false;
    }
    c.wire.feed(out);
    if (c.engine.finished()) {
      e->consume_output(out.size());
      hub_->on_output_written(c.handle);
      return true;
    }
    if (!c.engine.wants_read()) {
      return false;
    }
    auto r = c.engine.receive(out, now);
    if (!r) {
      c.error = r.error();
    }
    e->consume_output(out.size());
    hub_->on_output_written(c.handle);
    return true;
  }

  static void copy_error(rec& r, const std::optional<amqp::error>& e) {
    if (!e) {
      return;
    }
    r.condition = std::string(e->condition.str);
    r.description = std::string(e->description.value_or(std::string_view{}));
    if (!e->info.is_null()) {
      REQUIRE(encode_append(e->info, r.info));
    }
  }

  static bool drain(client& c) {
    bool any = false;
    while (auto e = c.engine.next_event()) {
      any = true;
      rec r;
      r.kind = std::string(name(*e));
      if (const auto* d = std::get_if<delivery_received>(&*e)) {
        r.link = d->delivery.link;
        r.delivery = d->delivery;
        r.settled = d->settled;
        r.payload.assign(d->payload.begin(), d->payload.end());
        r.message_format = d->message_format;
        r.tag.assign(d->tag.begin(), d->tag.end());
        if (c.auto_accept && !d->settled) {
          REQUIRE(c.engine.settle(d->delivery, accepted{}));
        }
        if (auto w = c.windows.find(d->delivery.link.value); w != c.windows.end()) {
          if (c.engine.credit(d->delivery.link) <= w->second / 2) {
            REQUIRE(c.engine.flow(d->delivery.link, w->second));
          }
        }
      } else if (const auto* u = std::get_if<delivery_updated>(&*e)) {
        r.link = u->delivery.link;
        r.delivery = u->delivery;
        r.settled = u->settled;
        r.state = state_text(u->state);
        if (u->state) {
          if (const auto* rj = std::get_if<rejected>(&*u->state)) {
            copy_error(r, rj->error);
          }
        }
      } else if (const auto* a = std::get_if<link_attached>(&*e)) {
        r.link = a->link;
        r.has_source = a->remote.source.has_value();
        r.has_target = a->remote.target.has_value();
        r.max_message_size = a->remote.max_message_size;
      } else if (const auto* ld = std::get_if<link_detached>(&*e)) {
        r.link = ld->link;
        r.remote = ld->remote;
        r.code = ld->code;
        copy_error(r, ld->error);
      } else if (const auto* f = std::get_if<link_flow>(&*e)) {
        r.link = f->link;
        r.credit = f->credit;
      } else if (const auto* se = std::get_if<session_ended>(&*e)) {
        r.code = se->code;
        copy_error(r, se->error);
      } else if (const auto* cc = std::get_if<connection_closed>(&*e)) {
        r.code = cc->code;
        r.remote = cc->remote;
        copy_error(r, cc->error);
      } else if (const auto* sd = std::get_if<sasl_done>(&*e)) {
        r.sasl_code = static_cast<int>(sd->code);
      }
      c.log.push_back(std::move(r));
    }
    return any;
  }
};

} // namespace hubtest
