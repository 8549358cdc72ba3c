// The hub's connections: what it announces (§1.4), SASL in every mode (§1.3, §2.3), link
// dispatch by address kind and its refusals, the timers, the injected randomness.
#include "hub_harness.hpp"

using namespace hubtest;

namespace {

// The hub's frames of kind P that `c` received.
template <class P> std::vector<P> frames(const client& c) {
  std::vector<P> out;
  for (const auto& item : c.wire.items) {
    if (auto p = item.as<P>()) {
      out.push_back(*p);
    }
  }
  return out;
}

bool is_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char ch) { return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'); });
}

} // namespace

TEST_CASE("hub: open, begin and attach answers carry the hub's values (§1.4)") {
  world w;
  client& c = w.open("ANONYMOUS");
  auto opens = frames<amqp::open>(c);
  REQUIRE(opens.size() == 1);
  const std::string id(opens[0].container_id);
  CHECK(id.rfind("DeviceGateway_", 0) == 0);
  CHECK(id.size() == 14 + 32);
  CHECK(is_hex(id.substr(14)));
  CHECK(opens[0].max_frame_size == 65536);
  CHECK(opens[0].channel_max == 8191);
  REQUIRE(opens[0].idle_time_out);
  CHECK(*opens[0].idle_time_out == 240000);
  CHECK(w.h().info(c.handle)->container_id == id);

  auto begins = frames<amqp::begin>(c);
  REQUIRE(begins.size() == 1);
  CHECK(begins[0].incoming_window == 5000);
  // The hub announces 262143 (hub_options::handle_max); the engine caps handle-max at 65535
  // (its handles index a table), which every client takes as it is.
  CHECK(begins[0].handle_max == 65535);

  // $cbs: the hub's receiving end announces 1 MiB and gives 100 credits.
  auto cbs = w.open_cbs(c);
  auto attaches = frames<amqp::attach>(c);
  REQUIRE(attaches.size() == 2);
  REQUIRE(attaches[0].max_message_size);
  CHECK(*attaches[0].max_message_size == 1048576);
  CHECK(attaches[0].role == role::receiver);
  CHECK(c.last("link_flow", cbs.requests).credit == 100);
}

TEST_CASE("hub: SASL mechanisms are offered in the hub's order (§1.3)") {
  world w;
  client& c = w.open("ANONYMOUS");
  std::vector<std::string> offered;
  for (const auto& item : c.wire.items) {
    if (auto m = item.sasl_as<amqp::sasl_mechanisms>()) {
      m->sasl_server_mechanisms.for_each([&](std::string_view s) { offered.emplace_back(s); });
    }
  }
  CHECK(offered == std::vector<std::string>{"EXTERNAL", "MSSBCBS", "ANONYMOUS", "PLAIN"});
}

TEST_CASE("hub: ANONYMOUS, MSSBCBS and no SASL open connections that CBS will authorize") {
  world w;
  SUBCASE("ANONYMOUS") {
    client& c = w.open("ANONYMOUS");
    CHECK(w.h().info(c.handle)->auth == auth_mode::anonymous);
    CHECK(c.last("sasl_done").sasl_code == 0);
  }
  SUBCASE("MSSBCBS, as uAMQP's sasl_mssbcbs.c sends it") {
    client& c = w.open("MSSBCBS");
    CHECK(w.h().info(c.handle)->auth == auth_mode::mssbcbs);
    CHECK(c.last("sasl_done").sasl_code == 0);
  }
  SUBCASE("the AMQP header straight away") {
    client& c = w.open("");
    CHECK(w.h().info(c.handle)->auth == auth_mode::no_sasl);
    CHECK(w.attached(c, w.attach_sender(c, "$cbs")));
  }
  // Nothing is authorized before a put-token.
  client& c = *w.clients.back();
  CHECK(w.h().info(c.handle)->identities.empty());
  auto l = w.attach_sender(c, "/devices/d1/messages/events");
  CHECK_FALSE(w.attached(c, l));
  CHECK(c.last("link_detached", l).condition == "amqp:unauthorized-access");
}

TEST_CASE("hub: SASL PLAIN with a device, module or policy SAS token (§2.3)") {
  world w;
  SUBCASE("device") {
    client& c = w.open("PLAIN", "d1@sas.emulator", w.device_token("d1"));
    auto i = w.h().info(c.handle);
    CHECK(i->auth == auth_mode::plain);
    REQUIRE(i->identities.size() == 1);
    CHECK(i->identities[0].principal == "device d1");
    CHECK(i->identities[0].audience == "localhost/devices/d1");
    CHECK(*i->identities[0].expiry == (w.wall_s() + 3600) * 1000);
    CHECK(w.attached(c, w.attach_sender(c, "amqps://localhost:5671/devices/d1/messages/events")));
  }
  SUBCASE("module, ids URL-encoded in the user name") {
    const std::string token =
        w.token("localhost/devices/d1/modules/m1", w.reg->module("d1", "m1")->primary_key);
    client& c = w.open("PLAIN", "d1%2Fmodules%2Fm1@sas.emulator", token);
    // A user name with the module written out also works.
    client& c2 = w.open("PLAIN", "d1/modules/m1@sas.emulator", token);
    CHECK(w.h().info(c2.handle)->identities[0].principal == "module d1/m1");
    (void)c;
  }
  SUBCASE("policy, the hub named by the first label of a host name") {
    client& c = w.open("PLAIN", "service@sas.root.localhost", w.policy_token("service"));
    auto i = w.h().info(c.handle);
    REQUIRE(i->identities.size() == 1);
    CHECK(i->identities[0].principal == "policy service");
    CHECK(i->identities[0].permissions == permission::service_connect);
  }
  SUBCASE("a device through the device policy (DeviceConnect)") {
    const std::string token =
        w.token("localhost/devices/d1", w.reg->policy("device")->primary_key, 3600s, "device");
    client& c = w.open("PLAIN", "d1@sas.emulator", token);
    CHECK(w.attached(c, w.attach_sender(c, "/devices/d1/messages/events")));
    // Its token covers d1 only.
    auto l = w.attach_sender(c, "/devices/d2/messages/events");
    CHECK(c.last("link_detached", l).condition == "amqp:unauthorized-access");
  }
}

TEST_CASE("hub: SASL PLAIN refusals end the SASL exchange with auth") {
  world w;
  std::string user = "d1@sas.emulator";
  std::string password = w.device_token("d1");
  SUBCASE("a signature by another key") {
    password = w.token("localhost/devices/d1", key_c);
  }
  SUBCASE("an expired token") {
    password = w.token("localhost/devices/d1", key_a, -10s);
  }
  SUBCASE("another hub's name") {
    user = "d1@sas.otherhub";
  }
  SUBCASE("a token for another device") {
    password = w.device_token("d2");
  }
  SUBCASE("a user name of no known form") {
    user = "d1";
  }
  SUBCASE("a password that is no token") {
    password = "secret";
  }
  SUBCASE("an unknown device") {
    user = "nobody@sas.emulator";
    password = w.token("localhost/devices/nobody", key_a);
  }
  SUBCASE("a disabled device") {
    user = "off@sas.emulator";
    password = w.token("localhost/devices/off", key_a);
  }
  SUBCASE("a policy without the policy's key") {
    user = "service@sas.root.emulator";
    password = w.token("localhost", key_a, 3600s, "service");
  }
  SUBCASE("a policy user with a device token") {
    user = "service@sas.root.emulator";
  }
  client& c = w.open("PLAIN", user, password);
  CHECK(c.last("sasl_done").sasl_code == 1);
  CHECK(c.last("connection_closed").code == amqp::errc::unauthorized);
  CHECK(w.h().info(c.handle)->identities.empty());
}

TEST_CASE("hub: SASL EXTERNAL and no SASL with an X.509 client certificate (§1.3, §2.6)") {
  world w;
  peer_info cam;
  cam.tls = true;
  cam.certificate_subject = "CN=cam,O=Contoso";
  SUBCASE("EXTERNAL") {
    client& c = w.open("EXTERNAL", {}, {}, cam);
    CHECK(c.last("sasl_done").sasl_code == 0);
    auto i = w.h().info(c.handle);
    CHECK(i->auth == auth_mode::external);
    REQUIRE(i->identities.size() == 1);
    CHECK(i->identities[0].principal == "x509 cam");
    CHECK_FALSE(i->identities[0].expiry);
    CHECK(w.attached(c, w.attach_sender(c, "/devices/cam/messages/events")));
    auto other = w.attach_sender(c, "/devices/d1/messages/events");
    CHECK(c.last("link_detached", other).condition == "amqp:unauthorized-access");
  }
  SUBCASE("no SASL (the C SDK's X.509 transport)") {
    client& c = w.open("", {}, {}, cam);
    CHECK(w.h().info(c.handle)->auth == auth_mode::no_sasl);
    CHECK(w.attached(c, w.attach_sender(c, "/devices/cam/messages/events")));
  }
  SUBCASE("EXTERNAL without a certificate") {
    client& c = w.open("EXTERNAL");
    CHECK(c.last("sasl_done").sasl_code == 1);
  }
  SUBCASE("EXTERNAL with the certificate of a device registered with keys") {
    peer_info d1 = cam;
    d1.certificate_subject = "CN=d1";
    client& c = w.open("EXTERNAL", {}, {}, d1);
    CHECK(c.last("sasl_done").sasl_code == 1);
  }
}

TEST_CASE("hub: a PLAIN connection closes when its token expires (§2.5)") {
  hub_options o;
  o.trim_interval = 1h;
  world w(o);
  w.advance(0ms); // the first retention pass; the next is in an hour
  client& c = w.open("PLAIN", "d1@sas.emulator", w.device_token("d1", 60s));
  auto l = w.attach_sender(c, "/devices/d1/messages/events");
  REQUIRE(w.attached(c, l));
  REQUIRE(w.h().next_deadline());
  CHECK(*w.h().next_deadline() == time_point{} + 60s);
  w.advance(59s);
  CHECK(c.of("connection_closed").empty());
  w.advance(1s);
  auto closed = c.last("connection_closed");
  CHECK(closed.condition == "amqp:unauthorized-access");
  CHECK(closed.description == "Token Invalid.");
  CHECK(closed.remote);
}

TEST_CASE("hub: links are dispatched by address kind; the others are refused with the hub's "
          "conditions") {
  world w;
  client& c = w.open("PLAIN", "iothubowner@sas.root.emulator", w.policy_token("iothubowner"));
  struct refused {
    std::string address;
    bool client_sends;
    std::string condition;
    std::string description;
  };
  const std::vector<refused> cases = {
      {"/nowhere", true, "amqp:not-found",
       "The link address '/nowhere' did not match any of the expected formats."},
      {"/devices/d1/messages/events", false, "amqp:not-found",
       "The link address '/devices/d1/messages/events' did not match any of the expected "
       "formats."},
      {"/messages/devicebound", false, "amqp:not-found",
       "The link address '/messages/devicebound' did not match any of the expected formats."},
      {"/devices/d1/twin", true, "amqp:not-implemented",
       "Device twins and direct methods are not supported by the emulator."},
      {"/devices/d1/methods/devicebound", false, "amqp:not-implemented",
       "Device twins and direct methods are not supported by the emulator."},
      {"emulator", true, "amqp:not-implemented",
       "Sending to the Event Hubs-compatible endpoint is not supported."},
      {"/devices/ghost/messages/events", true, "amqp:not-found",
       "Device ghost at IotHub emulator not registered."},
      {"/devices/off/messages/events", true, "amqp:not-found",
       "Device off at IotHub emulator not registered."},
      {"/devices/d1/modules/nope/messages/events", true, "amqp:not-found",
       "Device d1/nope at IotHub emulator not registered."},
  };
  for (const auto& r : cases) {
    CAPTURE(r.address);
    const link_id l =
        r.client_sends ? w.attach_sender(c, r.address) : w.attach_receiver(c, r.address, 0);
    const rec a = c.last("link_attached", l);
    // §2.6.3: the hub's terminus is null: its target for a client's sender, its source for a
    // client's receiver.
    CHECK(a.has_target != r.client_sends);
    CHECK(a.has_source == r.client_sends);
    const rec d = c.last("link_detached", l);
    CHECK(d.remote);
    CHECK(d.condition == r.condition);
    CHECK(d.description == r.description);
  }
  // A link with no address at all.
  link_options o;
  o.name = "no-address";
  o.role = role::sender;
  o.target = target{};
  auto l = c.engine.attach(c.session, o);
  REQUIRE(l);
  REQUIRE(w.pump());
  CHECK(c.last("link_detached", *l).condition == "amqp:not-found");
  // The connection is still up, and the links the hub serves attach.
  for (const std::string_view served :
       {"/devices/d1/messages/events", "/devices/d1/modules/m1/messages/events",
        "/messages/devicebound", "$cbs", "$management"}) {
    CAPTURE(served);
    CHECK(w.attached(c, w.attach_sender(c, served)));
  }
  for (const std::string_view served :
       {"/devices/d1/messages/devicebound", "/messages/serviceBound/feedback",
        "/messages/serviceBound/filenotifications", "$cbs", "$management"}) {
    CAPTURE(served);
    CHECK(w.attached(c, w.attach_receiver(c, served, 0)));
  }
  CHECK(c.of("connection_closed").empty());
}

TEST_CASE("hub: the container-id comes from the injected random source") {
  auto ids = [](std::uint64_t seed) {
    world w;
    w.random = seeded_random(seed);
    std::vector<std::string> out;
    for (int i = 0; i < 2; ++i) {
      client& c = w.open("ANONYMOUS");
      out.push_back(w.h().info(c.handle)->container_id);
    }
    return out;
  };
  const auto a = ids(7);
  CHECK(a == ids(7));
  CHECK(a[0] != a[1]);
  CHECK(a != ids(8));
}

TEST_CASE("hub: a removed connection is forgotten; unknown handles are ignored") {
  world w;
  client& c = w.open("PLAIN", "d1@sas.emulator", w.device_token("d1"));
  CHECK(w.h().connections() == 1);
  w.disconnect(c);
  CHECK(w.h().connections() == 0);
  CHECK_FALSE(w.h().info(c.handle));
  CHECK(w.h().engine(c.handle) == nullptr);
  CHECK(w.h().receive(c.handle, {}, w.now).error() == amqp::errc::invalid_state);
  w.h().process(c.handle, w.now);
  w.h().remove_connection(c.handle);
  // Its identity's timer comes due with nothing to do.
  w.advance(3601s);
  CHECK(w.h().connections() == 0);
}

TEST_CASE("hub: the handshake must finish within 10 s") {
  world w;
  client& c = w.connect();
  c.connected = false; // the client never writes: not even its protocol header arrives
  auto* e = w.h().engine(c.handle);
  // The transport starts the engine's clocks at accept (its first on_deadline()).
  REQUIRE(e->next_deadline());
  e->on_deadline(w.now);
  REQUIRE(e->next_deadline());
  CHECK(*e->next_deadline() == time_point{} + 10s);
  e->on_deadline(time_point{} + 10s);
  w.h().process(c.handle, time_point{} + 10s);
  CHECK(e->error() == amqp::errc::timeout);
}

TEST_CASE("hub: at most max_links_per_connection links per connection") {
  hub_options o;
  o.max_links_per_connection = 3;
  world w(o);
  client& c = w.open("PLAIN", "iothubowner@sas.root.emulator", w.policy_token("iothubowner"));
  for (int i = 0; i < 3; ++i) {
    REQUIRE(w.attached(c, w.attach_sender(c, "/devices/d1/messages/events")));
  }
  auto l = w.attach_sender(c, "/devices/d1/messages/events");
  auto d = c.last("link_detached", l);
  CHECK(d.condition == "amqp:resource-limit-exceeded");
  CHECK(d.description == "The connection has 3 links attached, the most a connection may have.");
  // A link that goes makes room.
  REQUIRE(c.engine.detach(link_id{0}));
  REQUIRE(w.pump());
  CHECK(w.attached(c, w.attach_sender(c, "/devices/d1/messages/events")));
}

TEST_CASE("hub: an attach the engine cannot answer (its session already ended) is forgotten") {
  // The client's attach and its end arrive in one read: when the hub pulls link_attached, the
  // session is gone and the engine refuses the answer. (The hub dereferenced a link it had
  // never added for the authorized kinds: a crash.)
  world w;
  client& c = w.open("PLAIN", "iothubowner@sas.root.emulator", w.policy_token("iothubowner"));
  auto s2 = c.engine.begin();
  REQUIRE(s2);
  REQUIRE(w.pump());
  for (const std::string_view address :
       {"/devices/d1/messages/devicebound", "/messages/serviceBound/feedback",
        "emulator/ConsumerGroups/$Default/Partitions/0", "/messages/events"}) {
    CAPTURE(address);
    auto s = c.engine.begin();
    REQUIRE(s);
    REQUIRE(w.pump());
    link_options o;
    o.name = "doomed";
    o.role = role::receiver;
    o.source = source{};
    o.source->address = address;
    o.target = target{};
    REQUIRE(c.engine.attach(*s, o));
    REQUIRE(c.engine.end(*s));
    REQUIRE(w.pump());
    CHECK(w.h().info(c.handle)->links == 0);
  }
  CHECK(c.of("connection_closed").empty());
  CHECK(w.attached(c, w.attach_sender(c, "/devices/d1/messages/events")));
}
