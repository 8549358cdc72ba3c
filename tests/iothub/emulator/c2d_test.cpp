// Cloud-to-device messages (§4) and feedback (§5.1): the service's sends and their refusals,
// the device queue (50, TTL), deliveries with GUID lock tokens and the hub's annotations, the
// device's outcomes and delivery counts, locks, dead-lettering, feedback batches and their
// locks, durability.
#include <filesystem>

#include <unistd.h>

#include "amqp/iothub/feedback.hpp"
#include "amqp/iothub/messages.hpp"
#include "hub_harness.hpp"

using namespace hubtest;

namespace {

std::vector<std::byte> bytes_of(std::string_view s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

// A C2D message as the service SDKs send one (§4.1).
amqp::message c2d(std::string_view id, std::string_view ack = "full",
                  std::string_view to = "/devices/d1/messages/devicebound") {
  amqp::message m(std::span<const std::byte>(bytes_of("body of " + std::string(id))));
  m.properties.message_id = id;
  m.properties.to = std::string(to);
  m.properties.correlation_id = "corr-" + std::string(id);
  m.properties.user_id = bytes_of("svc");
  m.properties.content_type = "text/plain";
  m.properties.content_encoding = "utf-8";
  m.application_properties.set("iothub-ack", std::string(ack));
  m.application_properties.set("k", "v");
  return m;
}

struct service_client {
  client* c = nullptr;
  link_id sender{};
  // Sends and returns the outcome the hub gave.
  rec send(world& w, const amqp::message& m) const {
    auto d = w.send(*c, sender, m);
    auto u = c->last("delivery_updated", sender);
    REQUIRE(u.delivery == d);
    return u;
  }
};

service_client service(world& w) {
  client& c = w.open("PLAIN", "service@sas.root.emulator", w.policy_token("service", 72h));
  return {&c, w.attach_sender(c, "/messages/devicebound")};
}

struct device_client {
  client* c = nullptr;
  link_id receiver{};
};

device_client device(world& w, std::uint32_t credit = 10, std::string_view id = "d1",
                     receiver_settle_mode rcv = receiver_settle_mode::first) {
  client& c = w.open("PLAIN", std::string(id) + "@sas.emulator", w.device_token(id, 72h));
  c.auto_accept = false;
  auto l = w.attach_receiver(c, "/devices/" + std::string(id) + "/messages/devicebound", credit,
                             std::nullopt, std::nullopt, rcv);
  return {&c, l};
}

// The deliveries `d` received from record `from` on.
std::vector<rec> deliveries(const device_client& d, std::size_t from = 0) {
  std::vector<rec> out;
  for (std::size_t i = from; i < d.c->log.size(); ++i) {
    if (d.c->log[i].kind == "delivery_received" && d.c->log[i].link == d.receiver) {
      out.push_back(d.c->log[i]);
    }
  }
  return out;
}

amqp::message decoded(const rec& r) {
  auto m = amqp::message::decode(r.payload);
  REQUIRE(m);
  return std::move(*m);
}

void settle(world& w, client& c, const rec& r, const delivery_state& s) {
  REQUIRE(c.engine.settle(r.delivery, s));
  REQUIRE(w.pump());
}

// The feedback records a feedback receiver got, all batches together.
std::vector<feedback_record> feedback_of(const client& c, link_id l) {
  std::vector<feedback_record> out;
  for (const rec& r : c.of("delivery_received", l)) {
    auto m = amqp::message::decode(r.payload);
    REQUIRE(m);
    auto records = parse_feedback_message(*m);
    REQUIRE(records);
    out.insert(out.end(), records->begin(), records->end());
  }
  return out;
}

} // namespace

TEST_CASE("c2d: a message is accepted once stored, then delivered with a GUID lock token and "
          "the hub's annotations (§4.1, §4.3)") {
  world w;
  auto svc = service(w);
  w.advance(2s);
  auto out = svc.send(w, c2d("m1"));
  CHECK(out.state == "accepted");
  CHECK(out.settled);
  auto stored = w.db->c2d_messages();
  REQUIRE(stored->size() == 1);
  CHECK((*stored)[0].device == "d1");
  CHECK((*stored)[0].ack == "full");
  CHECK((*stored)[0].expiry == epoch_ms + 2000 + 3'600'000); // the default TTL, 1 h

  auto dev = device(w);
  auto got = deliveries(dev);
  REQUIRE(got.size() == 1);
  const rec& r = got[0];
  CHECK_FALSE(r.settled);
  REQUIRE(r.tag.size() == 16);
  const amqp::message m = decoded(r);
  amqp::uuid tag{};
  std::copy(r.tag.begin(), r.tag.end(), tag.bytes.begin());
  // x-opt-lock-token is the tag read as .NET reads a Guid (first three fields little-endian).
  amqp::uuid be = tag;
  std::reverse(be.bytes.begin(), be.bytes.begin() + 4);
  std::reverse(be.bytes.begin() + 4, be.bytes.begin() + 6);
  std::reverse(be.bytes.begin() + 6, be.bytes.begin() + 8);
  CHECK(m.message_annotations.get("x-opt-lock-token")->as_string() == guid_text(be));
  CHECK(m.message_annotations.get("x-opt-sequence-number")->kind() == amqp::type::ulong);
  CHECK(m.message_annotations.get("x-opt-sequence-number")->as_ulong() == 1);
  CHECK(m.message_annotations.get("iothub-enqueuedtime")->as_timestamp().ms == epoch_ms + 2000);
  CHECK(m.message_annotations.get("iothub-deliverycount")->kind() == amqp::type::ubyte);
  CHECK(m.message_annotations.get("iothub-deliverycount")->as_ubyte() == 0);
  // The service's properties and application properties as it sent them.
  const amqp::message sent = c2d("m1");
  CHECK(m.properties == sent.properties);
  CHECK(m.application_properties == sent.application_properties);
  CHECK(m.body_text() == "body of m1");
}

TEST_CASE("c2d: the service's sends the hub refuses, with its conditions (§4.1)") {
  hub_options o;
  std::size_t queue = 50;
  SUBCASE("the hub's queue of 50") {}
  SUBCASE("a queue of 2") {
    queue = 2;
    o.c2d_max_queue = 2;
  }
  world w(o);
  auto svc = service(w);
  struct refused {
    amqp::message m;
    std::string state;
    std::string description;
  };
  amqp::message no_to = c2d("x");
  no_to.properties.to.reset();
  amqp::message big = c2d("big");
  big.set_body(std::span<const std::byte>(std::vector<std::byte>(65'537)));
  std::vector<refused> cases;
  cases.push_back({c2d("x", "full", "/devices/ghost/messages/devicebound"),
                   "rejected amqp:not-found", "Device ghost at IotHub emulator not registered."});
  cases.push_back({c2d("x", "full", "/devices/d1/messages/events"),
                   "rejected com.microsoft:argument-error",
                   "The 'to' property '/devices/d1/messages/events' is not a device's address "
                   "/devices/{id}/messages/devicebound."});
  cases.push_back({no_to, "rejected com.microsoft:argument-error", "The 'to' property ''"});
  cases.push_back({c2d("x", "sometimes"), "rejected com.microsoft:argument-error",
                   "The iothub-ack value 'sometimes' is not one of none, positive, negative, "
                   "full."});
  cases.push_back({big, "rejected amqp:link:message-size-exceeded", "Message size is "});
  for (const auto& r : cases) {
    CAPTURE(r.description);
    auto u = svc.send(w, r.m);
    CHECK(u.state == r.state);
    CHECK(u.description.rfind(r.description, 0) == 0);
  }
  CHECK(w.db->c2d_messages()->empty());
  // The case of the path's words does not matter; the device id's does.
  CHECK(svc.send(w, c2d("ok", "none", "amqps://localhost/devices/d1/messages/deviceBound")).state ==
        "accepted");
  for (std::size_t i = 1; i < queue; ++i) {
    REQUIRE(svc.send(w, c2d("q" + std::to_string(i))).state == "accepted");
  }
  auto full = svc.send(w, c2d("one-more"));
  CHECK(full.state == "rejected amqp:resource-limit-exceeded");
  CHECK(full.description == "Total number of messages on IotHub Device 'd1' exceeded the allocated "
                            "quota. Max allowed message count : '" +
                                std::to_string(queue) + "', Current message count : '" +
                                std::to_string(queue) + "'.");
  // Another device's queue is its own.
  CHECK(svc.send(w, c2d("x", "full", "/devices/d2/messages/devicebound")).state == "accepted");
}

TEST_CASE("c2d: complete, abandon and reject; the delivery count; dead-lettering; feedback as "
          "iothub-ack asks (§4.2, §5.1)") {
  world w;
  auto svc = service(w);
  client& fb = w.open("PLAIN", "service@sas.root.emulator", w.policy_token("service", 72h));
  auto feedback = w.attach_receiver(fb, "/messages/serviceBound/feedback", 10);
  auto dev = device(w);

  SUBCASE("complete: removed, feedback Success") {
    svc.send(w, c2d("m1", "positive"));
    settle(w, *dev.c, deliveries(dev).at(0), accepted{});
    CHECK(w.db->c2d_messages()->empty());
    w.advance(15s); // the feedback window
    auto records = feedback_of(fb, feedback);
    REQUIRE(records.size() == 1);
    CHECK(records[0].original_message_id == "m1");
    CHECK(records[0].device_id == "d1");
    CHECK(records[0].device_generation_id == "1001");
    CHECK(records[0].status_code == feedback_status::success);
    CHECK(records[0].description == "Success");
    CHECK(records[0].enqueued_time_utc.ms == epoch_ms);
    // The feedback message as the hub sends it.
    auto m = decoded(fb.last("delivery_received", feedback));
    CHECK(m.properties.content_type == "application/vnd.microsoft.iothub.feedback.json");
    CHECK(m.properties.user_id == bytes_of("emulator"));
    CHECK(m.message_annotations.get("iothub-enqueuedtime")->as_timestamp().ms == epoch_ms + 15'000);
    CHECK(fb.last("delivery_received", feedback).tag.size() == 16);
    // The service completed it (the harness accepts): the batch is gone.
    CHECK(w.db->feedback_batches()->empty());
  }
  SUBCASE("abandon: delivered again with a new lock and the count raised; at 10, dead-lettered "
          "(DeliveryCountExceeded)") {
    svc.send(w, c2d("m2", "negative"));
    std::vector<std::vector<std::byte>> tags;
    for (int i = 0; i < 10; ++i) {
      auto got = deliveries(dev);
      REQUIRE(got.size() == static_cast<std::size_t>(i + 1));
      const rec r = got.back();
      CHECK(decoded(r).message_annotations.get("iothub-deliverycount")->as_ubyte() == i);
      tags.push_back(r.tag);
      settle(w, *dev.c, r, released{});
    }
    CHECK(deliveries(dev).size() == 10);
    CHECK(tags[0] != tags[1]);
    CHECK(w.db->c2d_messages()->empty());
    w.advance(15s);
    auto records = feedback_of(fb, feedback);
    REQUIRE(records.size() == 1);
    CHECK(records[0].status_code == feedback_status::delivery_count_exceeded);
  }
  SUBCASE("abandon counts are kept in the store") {
    svc.send(w, c2d("m2b"));
    settle(w, *dev.c, deliveries(dev).at(0), released{});
    CHECK((*w.db->c2d_messages())[0].delivery_count == 1);
  }
  SUBCASE("reject: dead-lettered at once (Rejected); modified{undeliverable-here} too") {
    svc.send(w, c2d("m3", "full"));
    svc.send(w, c2d("m4", "full"));
    settle(w, *dev.c, deliveries(dev).at(0), rejected{});
    amqp::modified m;
    m.undeliverable_here = true;
    settle(w, *dev.c, deliveries(dev).at(1), m);
    CHECK(w.db->c2d_messages()->empty());
    w.advance(15s);
    auto records = feedback_of(fb, feedback);
    REQUIRE(records.size() == 2);
    CHECK(records[0].status_code == feedback_status::rejected);
    CHECK(records[1].status_code == feedback_status::rejected);
  }
  SUBCASE("modified{delivery-failed} is an abandon") {
    svc.send(w, c2d("m5"));
    amqp::modified m;
    m.delivery_failed = true;
    settle(w, *dev.c, deliveries(dev).at(0), m);
    auto again = deliveries(dev);
    REQUIRE(again.size() == 2);
    CHECK(decoded(again[1]).message_annotations.get("iothub-deliverycount")->as_ubyte() == 1);
  }
  SUBCASE("iothub-ack none, or positive on a reject: no feedback") {
    svc.send(w, c2d("m6", "none"));
    svc.send(w, c2d("m7", "positive"));
    settle(w, *dev.c, deliveries(dev).at(0), accepted{});
    settle(w, *dev.c, deliveries(dev).at(1), rejected{});
    w.advance(60s);
    CHECK(fb.of("delivery_received", feedback).empty());
  }
}

TEST_CASE("c2d: a lock that runs out makes the message available again, count unchanged; the "
          "old delivery's disposition is answered message-lock-lost (second) or ignored") {
  world w;
  auto svc = service(w);
  SUBCASE("rcv-settle-mode second") {
    auto dev = device(w, 10, "d1", receiver_settle_mode::second);
    svc.send(w, c2d("m1"));
    const rec first = deliveries(dev).at(0);
    w.advance(60s);
    auto got = deliveries(dev);
    REQUIRE(got.size() == 2);
    CHECK(got[1].tag != first.tag);
    CHECK(decoded(got[1]).message_annotations.get("iothub-deliverycount")->as_ubyte() == 0);
    // The first delivery's outcome comes too late.
    REQUIRE(dev.c->engine.update(first.delivery, accepted{}));
    REQUIRE(w.pump());
    auto u = dev.c->last("delivery_updated", dev.receiver);
    CHECK(u.state == "rejected com.microsoft:message-lock-lost");
    CHECK(u.settled);
    CHECK(u.description == "The lock supplied is invalid. Either the lock expired, or the "
                           "message has already been removed from the queue.");
    CHECK(w.db->c2d_messages()->size() == 1);
    // The current delivery completes it; under second the hub settles after the device.
    REQUIRE(dev.c->engine.update(got[1].delivery, accepted{}));
    REQUIRE(w.pump());
    CHECK(dev.c->last("delivery_updated", dev.receiver).state == "accepted");
    CHECK(w.db->c2d_messages()->empty());
  }
  SUBCASE("rcv-settle-mode first: ignored") {
    auto dev = device(w);
    svc.send(w, c2d("m1"));
    const rec first = deliveries(dev).at(0);
    w.advance(60s);
    settle(w, *dev.c, first, accepted{});
    CHECK(w.db->c2d_messages()->size() == 1);
  }
}

TEST_CASE("c2d: a device link or connection that goes away releases its locks at once") {
  world w;
  auto svc = service(w);
  auto a = device(w);
  svc.send(w, c2d("m1"));
  REQUIRE(deliveries(a).size() == 1);
  auto b = device(w);
  CHECK(deliveries(b).empty()); // locked to a
  SUBCASE("the link") {
    REQUIRE(a.c->engine.detach(a.receiver));
    REQUIRE(w.pump());
  }
  SUBCASE("the connection") {
    w.disconnect(*a.c);
  }
  auto got = deliveries(b);
  REQUIRE(got.size() == 1);
  CHECK(decoded(got[0]).message_annotations.get("iothub-deliverycount")->as_ubyte() == 0);
}

TEST_CASE("c2d: messages expire: absolute-expiry-time, the default TTL, the 2-day cap; "
          "dead-lettered with feedback Expired") {
  world w;
  auto svc = service(w);
  client& fb = w.open("PLAIN", "service@sas.root.emulator", w.policy_token("service", 72h));
  auto feedback = w.attach_receiver(fb, "/messages/serviceBound/feedback", 10);
  amqp::message soon = c2d("soon", "negative");
  soon.properties.absolute_expiry_time = amqp::timestamp{epoch_ms + 30'000};
  amqp::message far = c2d("far", "none");
  far.properties.absolute_expiry_time = amqp::timestamp{epoch_ms + 10LL * 24 * 3600 * 1000};
  svc.send(w, soon);
  svc.send(w, far);
  svc.send(w, c2d("default", "none"));
  auto stored = w.db->c2d_messages();
  REQUIRE(stored->size() == 3);
  CHECK((*stored)[1].expiry == epoch_ms + 48LL * 3600 * 1000);
  w.advance(30s);
  CHECK(w.db->c2d_messages()->size() == 2);
  w.advance(15s);
  auto records = feedback_of(fb, feedback);
  REQUIRE(records.size() == 1);
  CHECK(records[0].original_message_id == "soon");
  CHECK(records[0].status_code == feedback_status::expired);
  w.advance(1h);
  CHECK(w.db->c2d_messages()->size() == 1);
  // Expired messages are not delivered.
  auto dev = device(w);
  auto got = deliveries(dev);
  REQUIRE(got.size() == 1);
  CHECK(decoded(got[0]).properties.message_id.get().as_string() == "far");
}

TEST_CASE("c2d: modules have their own queues; presettled receivers complete on delivery") {
  world w;
  auto svc = service(w);
  SUBCASE("module") {
    client& c = w.open("ANONYMOUS");
    auto cbs = w.open_cbs(c);
    const std::string token =
        w.token("localhost/devices/d1/modules/m1", w.reg->module("d1", "m1")->primary_key);
    REQUIRE(w.put_token(c, cbs, "localhost/devices/d1/modules/m1", token).status_code == 200);
    auto l = w.attach_receiver(c, "/devices/d1/modules/m1/messages/devicebound", 10);
    svc.send(w, c2d("to-module", "none", "/devices/d1/modules/m1/messages/devicebound"));
    svc.send(w, c2d("to-device", "none"));
    auto got = c.of("delivery_received", l);
    REQUIRE(got.size() == 1);
    CHECK(decoded(got[0]).properties.message_id.get().as_string() == "to-module");
  }
  SUBCASE("presettled") {
    client& c = w.open("PLAIN", "d1@sas.emulator", w.device_token("d1", 72h));
    link_options o;
    o.name = "presettled";
    o.role = role::receiver;
    o.snd_settle_mode = sender_settle_mode::settled;
    o.source = source{};
    o.source->address = "/devices/d1/messages/devicebound";
    o.target = target{};
    auto l = c.engine.attach(c.session, o);
    REQUIRE(l);
    REQUIRE(c.engine.flow(*l, 5));
    REQUIRE(w.pump());
    svc.send(w, c2d("once"));
    auto got = c.of("delivery_received", *l);
    REQUIRE(got.size() == 1);
    CHECK(got[0].settled);
    CHECK(w.db->c2d_messages()->empty());
  }
}

TEST_CASE("feedback: a batch goes at 64 records; released batches come again, up to 10 times; "
          "the lock runs out after 60 s") {
  hub_options o;
  o.c2d_max_queue = 100;
  world w(o);
  auto svc = service(w);
  auto dev = device(w, 100);
  for (int i = 0; i < 65; ++i) {
    svc.send(w, c2d("m" + std::to_string(i), "positive"));
  }
  for (const rec& r : deliveries(dev)) {
    REQUIRE(dev.c->engine.settle(r.delivery, accepted{}));
  }
  REQUIRE(w.pump());
  client& fb = w.open("PLAIN", "service@sas.root.emulator", w.policy_token("service", 72h));
  fb.auto_accept = false;
  auto feedback = w.attach_receiver(fb, "/messages/serviceBound/feedback", 10);
  // 64 made a batch at once; the 65th waits for the window.
  auto got = fb.of("delivery_received", feedback);
  REQUIRE(got.size() == 1);
  auto first = parse_feedback_message(decoded(got[0]));
  REQUIRE(first);
  CHECK(first->size() == 64);
  w.advance(15s);
  got = fb.of("delivery_received", feedback);
  REQUIRE(got.size() == 2);
  CHECK(parse_feedback_message(decoded(got[1]))->size() == 1);

  SUBCASE("released up to the max delivery count") {
    rec r = got[0];
    for (int i = 0; i < 9; ++i) {
      settle(w, fb, r, released{});
      r = fb.last("delivery_received", feedback);
      CHECK(parse_feedback_message(decoded(r))->size() == 64);
    }
    settle(w, fb, r, released{}); // the 10th: dropped
    CHECK(w.db->feedback_batches()->size() == 1);
  }
  SUBCASE("the lock runs out") {
    w.advance(45s); // 60 s after the first delivery
    CHECK(fb.of("delivery_received", feedback).size() == 3);
    settle(w, fb, got[0], accepted{}); // stale: ignored
    CHECK(w.db->feedback_batches()->size() == 2);
  }
  SUBCASE("accepted: gone") {
    settle(w, fb, got[0], accepted{});
    settle(w, fb, got[1], accepted{});
    CHECK(w.db->feedback_batches()->empty());
  }
}

TEST_CASE("c2d: file-upload notification receivers attach and get nothing (file upload is "
          "HTTPS only)") {
  world w;
  client& c = w.open("PLAIN", "service@sas.root.emulator", w.policy_token("service", 72h));
  auto l = w.attach_receiver(c, "/messages/serviceBound/filenotifications", 10);
  CHECK(w.attached(c, l));
  auto svc = service(w);
  svc.send(w, c2d("m1"));
  w.advance(30s);
  CHECK(c.of("delivery_received", l).empty());
}

TEST_CASE("c2d: queued messages, locks, delivery counts and feedback survive a reopen of the "
          "store") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("iothub-c2d-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "hub.db").string();
  auto run = [&](auto&& body) {
    auto s = store::open(path);
    REQUIRE(s);
    auto r = registry::load(**s, "emulator");
    REQUIRE(r);
    REQUIRE(r->put_device(**s, {"d1", std::string(key_a), std::string(key_b), true, "sas", "1"}));
    REQUIRE(r->put_policy(
        **s, {"service", std::string(key_b), std::string(key_c), permission::service_connect}));
    seeded_random random(5);
    hub_options o;
    o.unix_offset = milliseconds(epoch_ms);
    auto h = hub::create(o, **s, *r, random);
    REQUIRE(h);
    body(**h);
  };
  // Drives the hub with raw client engines (the harness's world owns its own store).
  struct raw {
    hub& h;
    connection client;
    connection_handle handle;
    raw(hub& hh, connection_options o) : h(hh), client(o), handle(hh.add_connection({}, {})) {}
    void pump() {
      for (int i = 0; i < 1000; ++i) {
        bool moved = false;
        while (auto e = client.next_event()) {
          moved = true;
          if (const auto* d = std::get_if<delivery_received>(&*e)) {
            received.emplace_back(d->payload.begin(), d->payload.end());
            deliveries.push_back(d->delivery);
          }
        }
        if (auto out = client.pending_output(); !out.empty()) {
          REQUIRE(h.receive(handle, out, now));
          client.consume_output(out.size());
          h.process(handle, now);
          moved = true;
        }
        if (auto out = h.engine(handle)->pending_output(); !out.empty()) {
          REQUIRE(client.receive(out, now));
          h.engine(handle)->consume_output(out.size());
          moved = true;
        }
        if (!moved) {
          return;
        }
      }
    }
    std::vector<std::vector<std::byte>> received;
    std::vector<delivery_id> deliveries;
    time_point now{};
  };
  auto plain = [](std::string_view user, const std::string& password) {
    connection_options o;
    o.role = connection_role::client;
    o.container_id = "c";
    o.sasl.enabled = true;
    o.sasl.mechanism = "PLAIN";
    o.sasl.username = user;
    o.sasl.password = password;
    return o;
  };
  const std::string service_token =
      *make_sas_token("localhost", key_b, epoch_ms / 1000 + 3600, "service");
  const std::string device_token =
      *make_sas_token("localhost/devices/d1", key_a, epoch_ms / 1000 + 3600);
  auto attach = [](raw& r, role ro, std::string_view address) {
    REQUIRE(r.client.open());
    auto s = r.client.begin();
    REQUIRE(s);
    link_options lo;
    lo.name = "l";
    lo.role = ro;
    lo.source = source{};
    lo.target = target{};
    if (ro == role::sender) {
      lo.target->address = address;
    } else {
      lo.source->address = address;
    }
    auto l = r.client.attach(*s, lo);
    REQUIRE(l);
    if (ro == role::receiver) {
      REQUIRE(r.client.flow(*l, 10));
    }
    r.pump();
    return *l;
  };
  run([&](hub& h) {
    raw svc(h, plain("service@sas.root.emulator", service_token));
    auto l = attach(svc, role::sender, "/messages/devicebound");
    for (const char* id : {"a", "b"}) {
      auto b = c2d(id, "full").encode();
      transfer_options t;
      t.payload = *b;
      REQUIRE(svc.client.send(l, t));
      svc.pump();
    }
    REQUIRE(svc.client.unsettled(l) == 0); // both acknowledged
    raw dev(h, plain("d1@sas.emulator", device_token));
    attach(dev, role::receiver, "/devices/d1/messages/devicebound");
    REQUIRE(dev.received.size() == 2);
    REQUIRE(dev.client.settle(dev.deliveries[0], released{})); // "a": count 1
    REQUIRE(dev.client.settle(dev.deliveries[1], accepted{})); // "b": feedback Success waits
    dev.pump();
    // "a" went out again at once, and is locked (60 s) when the hub goes as a kill would:
    // without its connections being removed.
    REQUIRE(dev.received.size() == 3);
  });
  run([&](hub& h) {
    raw dev(h, plain("d1@sas.emulator", device_token));
    attach(dev, role::receiver, "/devices/d1/messages/devicebound");
    // Still locked by the delivery the killed hub made ...
    CHECK(dev.received.empty());
    dev.now = time_point{} + 59'999ms;
    h.on_deadline(dev.now);
    dev.pump();
    CHECK(dev.received.empty());
    // ... until its lock ends: redelivered with the delivery count it had.
    dev.now = time_point{} + 60s;
    h.on_deadline(dev.now);
    dev.pump();
    REQUIRE(dev.received.size() == 1);
    auto m = amqp::message::decode(dev.received[0]);
    REQUIRE(m);
    CHECK(m->properties.message_id.get().as_string() == "a");
    CHECK(m->message_annotations.get("iothub-deliverycount")->as_ubyte() == 1);
    // The feedback record of "b" was kept too: its batch went at that deadline.
    raw svc(h, plain("service@sas.root.emulator", service_token));
    svc.now = dev.now;
    attach(svc, role::receiver, "/messages/serviceBound/feedback");
    REQUIRE(svc.received.size() == 1);
    auto fm = amqp::message::decode(svc.received[0]);
    auto records = parse_feedback_message(*fm);
    REQUIRE(records);
    REQUIRE(records->size() == 1);
    CHECK((*records)[0].original_message_id == "b");
  });
  std::filesystem::remove_all(dir);
}

TEST_CASE("feedback: batches nobody completes are dropped after the feedback TTL (1 h)") {
  world w;
  auto svc = service(w);
  auto dev = device(w);
  svc.send(w, c2d("m1", "positive"));
  settle(w, *dev.c, deliveries(dev).at(0), accepted{});
  w.advance(15s);
  REQUIRE(w.db->feedback_batches()->size() == 1);
  w.advance(1h - 1ms);
  CHECK(w.db->feedback_batches()->size() == 1);
  w.advance(1ms);
  CHECK(w.db->feedback_batches()->empty());
  client& fb = w.open("PLAIN", "service@sas.root.emulator", w.policy_token("service", 72h));
  auto l = w.attach_receiver(fb, "/messages/serviceBound/feedback", 10);
  CHECK(fb.of("delivery_received", l).empty());
}
