// The $cbs node (§2.4): put-token answers in every variant, the hub's refusals, many
// identities per connection and their limit (§1.6), expiry and renewal (§2.5), and the
// permissions every attach needs (§2.2).
#include "hub_harness.hpp"

using namespace hubtest;

namespace {

// The names of the hub's frames `c` received from item `from` on, heartbeats left out.
std::vector<std::string> hub_frames(const client& c, std::size_t from) {
  std::vector<std::string> out;
  for (std::size_t i = from; i < c.wire.items.size(); ++i) {
    if (!c.wire.items[i].is_heartbeat()) {
      out.push_back(c.wire.items[i].name());
    }
  }
  return out;
}

} // namespace

TEST_CASE("cbs: a put-token is accepted (settled), then answered 200 OK with the request's "
          "message-id as correlation-id, type kept (§2.4)") {
  world w;
  client& c = w.open("ANONYMOUS");
  auto cbs = w.open_cbs(c);
  SUBCASE("ulong message-id (uAMQP)") {
    const std::size_t before = c.wire.items.size();
    auto r = w.put_token(c, cbs, "localhost/devices/d1", w.device_token("d1"), std::uint64_t{0});
    CHECK(r.status_code == 200);
    CHECK(r.status_description == "OK");
    CHECK(r.correlation_id.get().kind() == amqp::type::ulong);
    CHECK(r.correlation_id.get().as_ulong() == 0);
    // TRACE c#2233: the hub's disposition of the request comes before the answer.
    const auto names = hub_frames(c, before);
    REQUIRE(names.size() >= 2);
    CHECK(names[0] == "disposition");
    CHECK(names[1] == "transfer");
    auto d = c.wire.items[before].as<amqp::disposition>();
    REQUIRE(d);
    CHECK(d->settled);
    CHECK(amqp::kind_of(d->state) == amqp::state_kind::accepted);
  }
  SUBCASE("string message-id and reply-to (Node)") {
    auto r = w.put_token(c, cbs, "localhost/devices/d1", w.device_token("d1"),
                         owned_value("3f1c2a4e-0000-4000-8000-000000000001"));
    CHECK(r.status_code == 200);
    CHECK(r.correlation_id.get().kind() == amqp::type::string);
    CHECK(r.correlation_id.get().as_string() == "3f1c2a4e-0000-4000-8000-000000000001");
  }
  SUBCASE("uuid message-id, the .NET token type") {
    amqp::uuid u{};
    u.bytes[15] = std::byte{7};
    auto r = w.put_token(c, cbs, "localhost/devices/d1", w.device_token("d1"), owned_value(u),
                         std::string("cbs"), cbs_token_type::iothub_sas);
    CHECK(r.status_code == 200);
    CHECK(r.correlation_id.get().as_uuid() == u);
  }
  auto i = w.h().info(c.handle);
  REQUIRE(i->identities.size() == 1);
  CHECK(i->identities[0].principal == "device d1");
  CHECK(w.attached(c, w.attach_sender(c, "/devices/d1/messages/events")));
}

TEST_CASE("cbs: the token type is matched without regard to case (EDGE)") {
  world w;
  client& c = w.open("MSSBCBS");
  auto cbs = w.open_cbs(c);
  auto m = build_put_token(put_token_request{std::uint64_t{5}, std::string("cbs"), std::nullopt,
                                             cbs_token_type::servicebus_sas, "localhost/devices/d1",
                                             w.device_token("d1"), std::nullopt});
  m.application_properties.set("type", "SERVICEBUS.windows.NET:SasToken");
  w.send(c, cbs.requests, m);
  CHECK(world::response_of(c.last("delivery_received", cbs.responses)).status_code == 200);
}

TEST_CASE("cbs: the answer goes to the $cbs receiver named by reply-to, else the one of the "
          "request's session") {
  world w;
  client& c = w.open("ANONYMOUS");
  auto s2 = c.engine.begin();
  REQUIRE(s2);
  REQUIRE(w.pump());
  // Session 1: requests, and answers to "a"; session 2: answers to "b", and requests.
  auto req1 = w.attach_sender(c, "$cbs");
  auto to_a = w.attach_receiver(c, "$cbs", 10, "a");
  auto to_b = w.attach_receiver(c, "$cbs", 10, "b", *s2);
  auto req2 =
      w.attach_sender(c, "$cbs", sender_settle_mode::unsettled, receiver_settle_mode::first, *s2);
  auto token = w.device_token("d1");
  auto count = [&](link_id l) { return c.of("delivery_received", l).size(); };
  SUBCASE("reply-to names a receiver of the other session") {
    w.put_token(c, {req1, to_b}, "localhost/devices/d1", token, std::uint64_t{1}, "b");
    CHECK(count(to_a) == 0);
  }
  SUBCASE("no reply-to (uAMQP): the receiver of the request's session") {
    w.put_token(c, {req2, to_b}, "localhost/devices/d1", token, std::uint64_t{1}, std::nullopt);
    w.put_token(c, {req1, to_a}, "localhost/devices/d1", token, std::uint64_t{2}, std::nullopt);
    CHECK(count(to_b) == 1);
  }
  SUBCASE("a reply-to no receiver has: the request's session") {
    w.put_token(c, {req2, to_b}, "localhost/devices/d1", token, std::uint64_t{1}, "zzz");
    CHECK(count(to_a) == 0);
  }
}

TEST_CASE("cbs: refused put-tokens are answered with the hub's status and text (§2.4)") {
  world w;
  client& c = w.open("ANONYMOUS");
  auto cbs = w.open_cbs(c);
  std::string audience = "localhost/devices/d1";
  std::string token;
  std::int32_t status = 0;
  std::string description;
  SUBCASE("a signature that matches neither key") {
    token = w.token("localhost/devices/d1", key_c);
    status = 401;
    description = "The specified SAS token has an invalid signature. It does not match either "
                  "the primary or secondary key.";
  }
  SUBCASE("the secondary key works") {
    token = w.token("localhost/devices/d1", key_b);
    status = 200;
    description = "OK";
  }
  SUBCASE("an expired token") {
    token = w.token("localhost/devices/d1", key_a, -1s);
    status = 401;
    description = "The specified SAS token is expired";
  }
  SUBCASE("an unknown device") {
    audience = "localhost/devices/ghost";
    token = w.token(audience, key_a);
    status = 404;
    description = "Device ghost at IotHub emulator not registered.";
  }
  SUBCASE("an unknown module") {
    audience = "localhost/devices/d1/modules/nope";
    token = w.token(audience, key_a);
    status = 404;
    description = "Device d1/nope at IotHub emulator not registered.";
  }
  SUBCASE("a token for another audience") {
    audience = "localhost/devices/d2";
    token = w.device_token("d1");
    status = 401;
    description = "InvalidAudience: Invalid authorization token audience.";
  }
  SUBCASE("another hub's host name") {
    audience = "otherhub.azure-devices.net/devices/d1";
    token = w.token(audience, key_a);
    status = 401;
    description = "InvalidAudience: Invalid authorization token audience.";
  }
  SUBCASE("the hub's name as the first label of the host") {
    audience = "emulator.azure-devices.net/devices/d1";
    token = w.token(audience, key_a);
    status = 200;
    description = "OK";
  }
  SUBCASE("an unknown policy") {
    audience = "localhost";
    token = w.token("localhost", key_a, 3600s, "nobody");
    status = 401;
    description = "The shared access policy 'nobody' does not exist.";
  }
  SUBCASE("a token that is not a SAS token") {
    token = "Bearer abc";
    status = 401;
    description = "The specified SAS token is malformed: ";
  }
  SUBCASE("a device key token whose resource names no device") {
    audience = "localhost";
    token = w.token("localhost", key_a);
    status = 401;
    description = "The specified SAS token names no device and no shared access policy (skn).";
  }
  auto r = w.put_token(c, cbs, audience, token, std::uint64_t{9});
  CHECK(r.status_code == status);
  CHECK(r.status_description.rfind(description, 0) == 0);
  CHECK(r.correlation_id.get().as_ulong() == 9);
  CHECK(w.h().info(c.handle)->identities.size() == (status == 200 ? 1U : 0U));
}

TEST_CASE("cbs: malformed requests: 400 with a message-id, rejected without one") {
  world w;
  client& c = w.open("ANONYMOUS");
  auto cbs = w.open_cbs(c);
  SUBCASE("no name") {
    amqp::message m("SharedAccessSignature sr=x&sig=y&se=1");
    m.properties.message_id = std::uint64_t{4};
    m.properties.reply_to = "cbs";
    m.application_properties.set("operation", "put-token");
    m.application_properties.set("type", "servicebus.windows.net:sastoken");
    w.send(c, cbs.requests, m);
    auto r = world::response_of(c.last("delivery_received", cbs.responses));
    CHECK(r.status_code == 400);
    CHECK(r.status_description.rfind("Bad put-token request: ", 0) == 0);
    CHECK(r.correlation_id.get().as_ulong() == 4);
    CHECK(c.last("delivery_updated", cbs.requests).state == "accepted");
  }
  SUBCASE("no message-id") {
    amqp::message m(w.device_token("d1"));
    m.application_properties.set("operation", "put-token");
    w.send(c, cbs.requests, m);
    CHECK(c.of("delivery_received", cbs.responses).empty());
    auto u = c.last("delivery_updated", cbs.requests);
    CHECK(u.state == "rejected amqp:decode-error");
    CHECK(u.description == "The request has no message-id.");
  }
  SUBCASE("not a message") {
    const std::byte junk[] = {std::byte{0x00}, std::byte{0x53}};
    w.send_bytes(c, cbs.requests, junk);
    CHECK(c.of("delivery_received", cbs.responses).empty());
    CHECK(c.last("delivery_updated", cbs.requests).state == "rejected amqp:decode-error");
  }
  // The connection and its $cbs links carry on.
  CHECK(w.put_token(c, cbs, "localhost/devices/d1", w.device_token("d1")).status_code == 200);
}

TEST_CASE("cbs: many devices on one connection, each link authorized by its own token (§1.6)") {
  world w;
  client& c = w.open("ANONYMOUS");
  auto cbs = w.open_cbs(c);
  CHECK(w.put_token(c, cbs, "localhost/devices/d1", w.device_token("d1")).status_code == 200);
  CHECK(w.put_token(c, cbs, "localhost/devices/d2", w.device_token("d2")).status_code == 200);
  const std::string mtoken =
      w.token("localhost/devices/d1/modules/m1", w.reg->module("d1", "m1")->primary_key);
  CHECK(w.put_token(c, cbs, "localhost/devices/d1/modules/m1", mtoken).status_code == 200);
  CHECK(w.h().info(c.handle)->identities.size() == 3);
  CHECK(w.attached(c, w.attach_sender(c, "/devices/d1/messages/events")));
  CHECK(w.attached(c, w.attach_sender(c, "/devices/d2/messages/events")));
  CHECK(w.attached(c, w.attach_receiver(c, "/devices/d2/messages/devicebound", 0)));
  CHECK(w.attached(c, w.attach_sender(c, "/devices/d1/modules/m1/messages/events")));
  // A device token does not cover its modules, nor a module token its device.
  const std::size_t identities = w.h().info(c.handle)->identities.size();
  client& c2 = w.open("ANONYMOUS");
  auto cbs2 = w.open_cbs(c2);
  CHECK(w.put_token(c2, cbs2, "localhost/devices/d1", w.device_token("d1")).status_code == 200);
  auto l = w.attach_sender(c2, "/devices/d1/modules/m1/messages/events");
  CHECK(c2.last("link_detached", l).condition == "amqp:unauthorized-access");
  CHECK(identities == 3);
}

TEST_CASE("cbs: at most max_identities tokens per connection; the next is refused with 403") {
  hub_options o;
  std::size_t limit = 999; // the hub's (.NET pools 995 per connection for this reason)
  SUBCASE("a small limit") {
    limit = 3;
  }
  o.max_identities = limit;
  world w(o);
  client& c = w.open("ANONYMOUS");
  auto cbs = w.open_cbs(c);
  const std::string token = w.policy_token("service");
  for (std::size_t i = 0; i < limit; ++i) {
    const auto r = w.put_token(c, cbs, "localhost/a" + std::to_string(i), token, std::uint64_t{i});
    REQUIRE(r.status_code == 200);
  }
  auto r = w.put_token(c, cbs, "localhost/one-more", token, std::uint64_t{limit});
  CHECK(r.status_code == 403);
  CHECK(r.status_description == "The connection already holds " + std::to_string(limit) +
                                    " tokens, the most a connection may hold.");
  // Renewing one held is not a new one.
  CHECK(w.put_token(c, cbs, "localhost/a0", token).status_code == 200);
  CHECK(w.h().info(c.handle)->identities.size() == limit);
  // Another connection has its own count.
  client& c2 = w.open("ANONYMOUS");
  auto cbs2 = w.open_cbs(c2);
  CHECK(w.put_token(c2, cbs2, "localhost/one-more", token).status_code == 200);
}

TEST_CASE("cbs: an audience is keyed decoded and lower-cased: a renewal finds it however it is "
          "written") {
  world w;
  client& c = w.open("ANONYMOUS");
  auto cbs = w.open_cbs(c);
  const std::string token = w.device_token("d1");
  CHECK(w.put_token(c, cbs, "localhost/devices/d1", token).status_code == 200);
  CHECK(w.put_token(c, cbs, "LOCALHOST%2Fdevices%2Fd1", token).status_code == 200);
  auto i = w.h().info(c.handle);
  REQUIRE(i->identities.size() == 1);
  CHECK(i->identities[0].audience == "localhost/devices/d1");
}

TEST_CASE("cbs: when a token expires its links are detached (Token Invalid.); the connection "
          "and the other identities stay (§2.5)") {
  hub_options o;
  milliseconds grace{0};
  SUBCASE("no grace") {}
  SUBCASE("10 s of grace") {
    grace = 10s;
  }
  o.token_grace = grace;
  world w(o);
  client& c = w.open("ANONYMOUS");
  auto cbs = w.open_cbs(c);
  CHECK(w.put_token(c, cbs, "localhost/devices/d1", w.device_token("d1", 60s)).status_code == 200);
  CHECK(w.put_token(c, cbs, "localhost/devices/d2", w.device_token("d2", 3600s)).status_code ==
        200);
  auto d1_out = w.attach_sender(c, "/devices/d1/messages/events");
  auto d1_in = w.attach_receiver(c, "/devices/d1/messages/devicebound", 0);
  auto d2_out = w.attach_sender(c, "/devices/d2/messages/events");
  CHECK(w.h().info(c.handle)->identities.size() == 2);

  w.advance(60s + grace - 1ms);
  CHECK(c.of("link_detached", d1_out).empty());
  w.advance(1ms);
  for (link_id l : {d1_out, d1_in}) {
    auto d = c.last("link_detached", l);
    CHECK(d.remote);
    CHECK(d.condition == "amqp:unauthorized-access");
    CHECK(d.description == "Token Invalid.");
  }
  CHECK(w.attached(c, d2_out));
  CHECK(w.attached(c, cbs.requests));
  CHECK(c.of("connection_closed").empty());
  auto i = w.h().info(c.handle);
  REQUIRE(i->identities.size() == 1);
  CHECK(i->identities[0].principal == "device d2");
  // Without a token d1 cannot attach; with a new one it can.
  auto again = w.attach_sender(c, "/devices/d1/messages/events");
  CHECK(c.last("link_detached", again).condition == "amqp:unauthorized-access");
  CHECK(w.put_token(c, cbs, "localhost/devices/d1", w.device_token("d1")).status_code == 200);
  CHECK(w.attached(c, w.attach_sender(c, "/devices/d1/messages/events")));
}

TEST_CASE("cbs: a renewed token replaces the expiry; the links stay attached (§2.5)") {
  world w;
  client& c = w.open("ANONYMOUS");
  auto cbs = w.open_cbs(c);
  CHECK(w.put_token(c, cbs, "localhost/devices/d1", w.device_token("d1", 60s)).status_code == 200);
  auto l = w.attach_sender(c, "/devices/d1/messages/events");
  w.advance(48s); // the C SDK renews at 80% of the lifetime
  CHECK(w.put_token(c, cbs, "localhost/devices/d1", w.device_token("d1", 60s)).status_code == 200);
  w.advance(30s); // past the first token's expiry (60 s)
  CHECK(w.attached(c, l));
  auto i = w.h().info(c.handle);
  REQUIRE(i->identities.size() == 1);
  CHECK(*i->identities[0].expiry == epoch_ms + 108'000);
  w.advance(30s - 1ms);
  CHECK(w.attached(c, l));
  w.advance(1ms);
  auto d = c.last("link_detached", l);
  CHECK(d.condition == "amqp:unauthorized-access");
  CHECK(w.now == time_point{} + 108s);
}

TEST_CASE("cbs: permissions on every attach (§2.2)") {
  world w;
  client& c = w.open("ANONYMOUS");
  auto cbs = w.open_cbs(c);
  struct attempt {
    std::string address;
    bool client_sends;
  };
  const std::vector<attempt> service_links = {
      {"/messages/devicebound", true},
      {"/messages/serviceBound/feedback", false},
      {"/messages/serviceBound/filenotifications", false},
      {"$management", false},
      {"emulator/$management", true},
  };
  auto try_attach = [&](const attempt& a) {
    return a.client_sends ? w.attach_sender(c, a.address) : w.attach_receiver(c, a.address, 0);
  };
  SUBCASE("a device token grants the device's links only") {
    CHECK(w.put_token(c, cbs, "localhost/devices/d1", w.device_token("d1")).status_code == 200);
    for (const auto& a : service_links) {
      CAPTURE(a.address);
      auto l = try_attach(a);
      CHECK(c.last("link_detached", l).condition == "amqp:unauthorized-access");
      CHECK(c.last("link_detached", l).description ==
            "Unauthorized: no token of this connection grants this link.");
    }
  }
  SUBCASE("a registryRead policy token grants no link") {
    CHECK(w.put_token(c, cbs, "localhost", w.policy_token("registryRead")).status_code == 200);
    for (const auto& a : service_links) {
      CAPTURE(a.address);
      CHECK_FALSE(w.attached(c, try_attach(a)));
    }
    CHECK_FALSE(w.attached(c, w.attach_sender(c, "/devices/d1/messages/events")));
  }
  SUBCASE("a service policy token grants the service links, not the devices'") {
    CHECK(w.put_token(c, cbs, "localhost", w.policy_token("service")).status_code == 200);
    for (const auto& a : service_links) {
      CAPTURE(a.address);
      CHECK(w.attached(c, try_attach(a)));
    }
    CHECK_FALSE(w.attached(c, w.attach_sender(c, "/devices/d1/messages/events")));
  }
  SUBCASE("a service token narrowed to /messages/events grants reading events only") {
    CHECK(w.put_token(c, cbs, "localhost/messages/events",
                      w.policy_token("service", 3600s, "localhost/messages/events"))
              .status_code == 200);
    CHECK_FALSE(w.attached(c, w.attach_sender(c, "/messages/devicebound")));
  }
  SUBCASE("an Event Hubs audience (sb://host/{eventhub}) grants $management") {
    const std::string sr = "sb://localhost/emulator";
    CHECK(w.put_token(c, cbs, sr, w.eh_policy_token("service", 3600s, sr)).status_code == 200);
    CHECK(w.attached(c, w.attach_receiver(c, "$management", 0)));
    CHECK_FALSE(w.attached(c, w.attach_sender(c, "/messages/devicebound")));
  }
  SUBCASE("the Event Hubs SDK's token for sb://host:port/{eventhub}/$management grants "
          "$management (seen with @azure/event-hubs 6.0.4: it was refused)") {
    const std::string sr = "sb://localhost:5671/emulator/$management";
    CHECK(w.put_token(c, cbs, sr, w.eh_policy_token("service", 3600s, sr)).status_code == 200);
    CHECK(w.attached(c, w.attach_sender(c, "$management")));
    CHECK(w.attached(c, w.attach_receiver(c, "$management", 0)));
    CHECK_FALSE(
        w.attached(c, w.attach_receiver(c, "emulator/ConsumerGroups/$Default/Partitions/0", 0)));
  }
  SUBCASE("iothubowner grants everything") {
    CHECK(w.put_token(c, cbs, "localhost", w.policy_token("iothubowner")).status_code == 200);
    for (const auto& a : service_links) {
      CAPTURE(a.address);
      CHECK(w.attached(c, try_attach(a)));
    }
    CHECK(w.attached(c, w.attach_sender(c, "/devices/d2/messages/events")));
  }
}

TEST_CASE("cbs: answers wait for the client's credit; requests stop while they wait") {
  hub_options o;
  o.cbs_credit = 4;
  world w(o);
  client& c = w.open("ANONYMOUS");
  auto requests = w.attach_sender(c, "$cbs");
  auto responses = w.attach_receiver(c, "$cbs", 0, "cbs"); // no credit yet
  const std::string token = w.device_token("d1");
  CHECK(c.engine.credit(requests) == 4);
  // The client sends while it has credit. The hub tops the credit up (at half) only while
  // fewer than cbs_credit answers wait: 4 + 2 requests, then nothing more.
  std::uint64_t sent = 0;
  while (c.engine.credit(requests) > 0 && sent < 100) {
    put_token_request r{sent,
                        std::string("cbs"),
                        std::nullopt,
                        cbs_token_type::servicebus_sas,
                        "localhost/devices/d1",
                        token,
                        std::nullopt};
    w.send(c, requests, build_put_token(r));
    ++sent;
  }
  CHECK(sent == 6);
  CHECK(c.of("delivery_received", responses).empty());
  REQUIRE(c.engine.flow(responses, 10));
  REQUIRE(w.pump());
  auto answers = c.of("delivery_received", responses);
  REQUIRE(answers.size() == 6);
  for (std::uint64_t i = 0; i < 6; ++i) {
    CHECK(world::response_of(answers[i]).correlation_id.get().as_ulong() == i);
  }
  CHECK(c.engine.credit(requests) == 4);
}

TEST_CASE("cbs: Event Hubs resources are signed with the key as text, IoT Hub ones with the "
          "decoded key (@azure/event-hubs and uAMQP's SASTokenAuth sign so)") {
  world w;
  client& c = w.open("ANONYMOUS");
  auto cbs = w.open_cbs(c);
  const std::string eh = "sb://localhost:5671/emulator/ConsumerGroups/$Default/Partitions/0";
  CHECK(w.put_token(c, cbs, eh, w.policy_token("service", 3600s, eh)).status_code == 401);
  CHECK(w.put_token(c, cbs, eh, w.eh_policy_token("service", 3600s, eh)).status_code == 200);
  const std::string iot = "localhost/messages/events";
  CHECK(w.put_token(c, cbs, iot, w.eh_policy_token("service", 3600s, iot)).status_code == 401);
  CHECK(w.put_token(c, cbs, iot, w.policy_token("service", 3600s, iot)).status_code == 200);
}
