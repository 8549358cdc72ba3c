// Device-to-cloud telemetry (§3): stamping, partitions, batches, size rules, outcomes after the
// commit, durability across a reopen, credit, retention.
#include <filesystem>

#include <sqlite3.h>
#include <unistd.h>

#include "amqp/iothub/messages.hpp"
#include "hub_harness.hpp"

using namespace hubtest;

namespace {

std::vector<std::byte> bytes_of(std::string_view s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

// A telemetry message as the SDKs send one (§3.2).
amqp::message telemetry(std::string_view body, std::string_view id = "m-1") {
  amqp::message m(std::span<const std::byte>(bytes_of(body)));
  m.properties.message_id = id;
  m.properties.correlation_id = "corr";
  m.properties.content_type = "application/json";
  m.properties.content_encoding = "utf-8";
  m.application_properties.set("temperature", "21.5");
  m.application_properties.set("iothub-creation-time-utc", "2026-01-01T00:00:00Z");
  return m;
}

std::vector<stored_event> events(world& w, std::uint32_t partition) {
  auto e = w.db->read_events(partition, event_position{}, 10'000);
  REQUIRE(e);
  return std::move(*e);
}

amqp::message decoded(const stored_event& e) {
  auto m = amqp::message::decode(e.bytes);
  REQUIRE(m);
  return std::move(*m);
}

// A client with a device identity (CBS) and its telemetry link.
struct device_client {
  client* c = nullptr;
  link_id link{};
};

device_client device(world& w, std::string_view id = "d1") {
  client& c = w.open("ANONYMOUS");
  auto cbs = w.open_cbs(c);
  REQUIRE(w.put_token(c, cbs, "localhost/devices/" + std::string(id), w.device_token(id, 72h))
              .status_code == 200);
  return {&c, w.attach_sender(c, "/devices/" + std::string(id) + "/messages/events")};
}

// The encoding of one section of `m` alone (to build inner messages in any order).
std::vector<std::byte> section_bytes(const amqp::message& m) {
  auto b = m.encode();
  REQUIRE(b);
  return std::move(*b);
}

} // namespace

TEST_CASE("telemetry: a message is stamped with the hub's annotations, overwriting the "
          "device's, and accepted (§3.4)") {
  world w;
  auto d = device(w, "d1");
  amqp::message m = telemetry("{\"t\":21.5}");
  m.message_annotations.set("iothub-connection-device-id", "spoofed");
  m.message_annotations.set("x-opt-sequence-number", std::int64_t{99});
  m.message_annotations.set("custom", "kept");
  w.advance(1500ms);
  auto delivery = w.send(*d.c, d.link, m);
  auto u = d.c->last("delivery_updated", d.link);
  CHECK(u.delivery == delivery);
  CHECK(u.state == "accepted");
  CHECK(u.settled);

  const std::uint32_t p = partition_of("d1", 4);
  auto stored = events(w, p);
  REQUIRE(stored.size() == 1);
  CHECK(stored[0].sequence == 0);
  CHECK(stored[0].offset == 0);
  CHECK(stored[0].enqueued_time == epoch_ms + 1500);
  CHECK(stored[0].device == "d1");
  const amqp::message e = decoded(stored[0]);
  const auto& a = e.message_annotations;
  CHECK(a.get("iothub-connection-device-id")->as_string() == "d1");
  CHECK_FALSE(a.contains("iothub-connection-module-id"));
  CHECK(a.get("iothub-connection-auth-generation-id")->as_string() == "1001");
  CHECK(a.get("iothub-connection-auth-method")->as_string() ==
        R"({"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null})");
  CHECK(a.get("iothub-enqueuedtime")->as_timestamp().ms == epoch_ms + 1500);
  CHECK(a.get("iothub-message-source")->as_string() == "Telemetry");
  CHECK(a.get("x-opt-sequence-number")->kind() == amqp::type::long_);
  CHECK(a.get("x-opt-sequence-number")->as_long() == 0);
  CHECK(a.get("x-opt-offset")->as_string() == "0");
  CHECK(a.get("x-opt-enqueued-time")->as_timestamp().ms == epoch_ms + 1500);
  CHECK(a.get("custom")->as_string() == "kept");
  CHECK_FALSE(a.contains("dt-dataschema"));
  // The other sections are the device's.
  CHECK(e.properties == m.properties);
  CHECK(e.application_properties == m.application_properties);
  CHECK(e.body_text() == "{\"t\":21.5}");
  // The other partitions got nothing.
  for (std::uint32_t q = 0; q < 4; ++q) {
    if (q != p) {
      CHECK(events(w, q).empty());
    }
  }
}

TEST_CASE("telemetry: the sections the hub does not stamp are kept byte for byte") {
  world w;
  auto d = device(w, "d1");
  const amqp::message m = telemetry("payload");
  auto sent = m.encode();
  REQUIRE(sent);
  w.send_bytes(*d.c, d.link, *sent);
  auto stored = events(w, partition_of("d1", 4));
  REQUIRE(stored.size() == 1);
  auto before = amqp::decode_message(*sent);
  auto after = amqp::decode_message(stored[0].bytes);
  REQUIRE(before);
  REQUIRE(after);
  for (auto s :
       {amqp::section::properties, amqp::section::application_properties, amqp::section::data}) {
    const auto x = before->raw(s);
    const auto y = after->raw(s);
    CHECK(std::vector<std::byte>(x.begin(), x.end()) == std::vector<std::byte>(y.begin(), y.end()));
  }
}

TEST_CASE("telemetry: partitions by device id, sequence numbers from 0, byte offsets, enqueued "
          "times that never go back (§6.5, §6.6)") {
  CHECK(partition_of("d1", 4) == partition_of("d1", 4));
  CHECK(partition_of("anything", 1) == 0);
  // FNV-1a 32 of "d1" is 0x881d13e6 (computed with Python): a documented, stable choice.
  CHECK(partition_of("d1", 0xFFFFFFFFU) == 0x881d13e6U);

  hub_options o;
  o.partitions = 2;
  world w(o);
  auto d1 = device(w, "d1");
  auto d2 = device(w, "d2");
  for (int i = 0; i < 3; ++i) {
    w.send(*d1.c, d1.link, telemetry("a" + std::to_string(i)));
    w.send(*d2.c, d2.link, telemetry("b" + std::to_string(i)));
    w.advance(10ms);
  }
  std::map<std::uint32_t, std::vector<stored_event>> by_partition;
  for (std::uint32_t p = 0; p < 2; ++p) {
    by_partition[p] = events(w, p);
  }
  for (const std::string_view id : {"d1", "d2"}) {
    CAPTURE(id);
    std::vector<stored_event> mine;
    for (const auto& e : by_partition[partition_of(id, 2)]) {
      if (e.device == id) {
        mine.push_back(e);
      }
    }
    CHECK(mine.size() == 3);
  }
  for (const auto& [p, v] : by_partition) {
    std::int64_t offset = 0;
    std::int64_t time = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
      CHECK(v[i].sequence == static_cast<std::int64_t>(i));
      CHECK(v[i].offset == offset);
      CHECK(v[i].enqueued_time >= time);
      const amqp::message m = decoded(v[i]);
      CHECK(m.message_annotations.get("x-opt-offset")->as_string() == std::to_string(offset));
      CHECK(m.message_annotations.get("x-opt-sequence-number")->as_long() ==
            static_cast<std::int64_t>(i));
      offset += static_cast<std::int64_t>(v[i].bytes.size());
      time = v[i].enqueued_time;
    }
  }
}

TEST_CASE("telemetry: modules, X.509 devices, gateways and model ids in the stamps") {
  world w;
  SUBCASE("a module") {
    client& c = w.open("ANONYMOUS");
    auto cbs = w.open_cbs(c);
    const std::string token =
        w.token("localhost/devices/d1/modules/m1", w.reg->module("d1", "m1")->primary_key);
    REQUIRE(w.put_token(c, cbs, "localhost/devices/d1/modules/m1", token).status_code == 200);
    auto l = w.attach_sender(c, "/devices/d1/modules/m1/messages/events");
    w.send(c, l, telemetry("x"));
    auto e = decoded(events(w, partition_of("d1", 4)).at(0));
    CHECK(e.message_annotations.get("iothub-connection-device-id")->as_string() == "d1");
    CHECK(e.message_annotations.get("iothub-connection-module-id")->as_string() == "m1");
    CHECK(e.message_annotations.get("iothub-connection-auth-generation-id")->as_string() == "2001");
    CHECK(e.message_annotations.get("iothub-connection-auth-method")
              ->as_string()
              .find(R"("scope":"module","type":"sas")") != std::string_view::npos);
  }
  SUBCASE("an X.509 device") {
    peer_info cam;
    cam.tls = true;
    cam.certificate_subject = "CN=cam";
    client& c = w.open("", {}, {}, cam);
    auto l = w.attach_sender(c, "/devices/cam/messages/events");
    w.send(c, l, telemetry("x"));
    auto e = decoded(events(w, partition_of("cam", 4)).at(0));
    CHECK(e.message_annotations.get("iothub-connection-auth-method")
              ->as_string()
              .find(R"("scope":"device","type":"x509")") != std::string_view::npos);
  }
  SUBCASE("a gateway with a policy's DeviceConnect") {
    client& c = w.open("PLAIN", "device@sas.root.emulator", w.policy_token("device"));
    auto l = w.attach_sender(c, "/devices/d2/messages/events");
    w.send(c, l, telemetry("x"));
    auto e = decoded(events(w, partition_of("d2", 4)).at(0));
    CHECK(e.message_annotations.get("iothub-connection-device-id")->as_string() == "d2");
    CHECK(e.message_annotations.get("iothub-connection-auth-method")
              ->as_string()
              .find(R"("scope":"hub","type":"sas")") != std::string_view::npos);
  }
  SUBCASE("a link with com.microsoft:model-id (IoT Plug and Play)") {
    client& c = w.open("PLAIN", "d1@sas.emulator", w.device_token("d1"));
    link_options o;
    o.name = "pnp";
    o.role = role::sender;
    o.target = target{};
    o.target->address = "/devices/d1/messages/events";
    const value kv[2] = {value(symbol_view{"com.microsoft:model-id"}),
                         value("dtmi:com:example:Thermostat;1")};
    o.properties = value::map(kv);
    auto l = c.engine.attach(c.session, o);
    REQUIRE(l);
    REQUIRE(w.pump());
    w.send(c, *l, telemetry("x"));
    auto e = decoded(events(w, partition_of("d1", 4)).at(0));
    CHECK(e.message_annotations.get("dt-dataschema")->as_string() ==
          "dtmi:com:example:Thermostat;1");
  }
}

TEST_CASE("telemetry: a batch (0x80013700) becomes one event per message, inner sections in any "
          "order (§3.3)") {
  world w;
  auto d = device(w, "d1");
  std::vector<amqp::message> inner = {telemetry("one", "i-1"), telemetry("two", "i-2")};
  amqp::message envelope;
  auto n = build_batch(inner, 256 * 1024, envelope);
  REQUIRE(n);
  REQUIRE(*n == 2);
  // A third inner message as the C SDK writes it: properties, application-properties,
  // message-annotations, data (not the spec's order).
  amqp::message props;
  props.properties.message_id = "i-3";
  amqp::message app;
  app.application_properties.set("k", "v");
  amqp::message ann;
  ann.message_annotations.set("iothub-interface-id", "urn:x");
  amqp::message body(std::span<const std::byte>(bytes_of("three")));
  std::vector<std::byte> c_sdk;
  for (const auto* part : {&props, &app, &ann, &body}) {
    auto b = section_bytes(*part);
    c_sdk.insert(c_sdk.end(), b.begin(), b.end());
  }
  envelope.add_data(c_sdk);
  auto delivery = w.send(*d.c, d.link, envelope, false, batch_message_format);
  auto u = d.c->last("delivery_updated", d.link);
  CHECK(u.delivery == delivery);
  CHECK(u.state == "accepted");
  auto stored = events(w, partition_of("d1", 4));
  REQUIRE(stored.size() == 3);
  const std::vector<std::string> ids = {"i-1", "i-2", "i-3"};
  for (std::size_t i = 0; i < 3; ++i) {
    const amqp::message e = decoded(stored[i]);
    CHECK(e.properties.message_id.get().as_string() == ids[i]);
    CHECK(e.message_annotations.get("x-opt-sequence-number")->as_long() ==
          static_cast<std::int64_t>(i));
    CHECK(e.message_annotations.get("iothub-connection-device-id")->as_string() == "d1");
  }
  const amqp::message third = decoded(stored[2]);
  CHECK(third.application_properties.get("k")->as_string() == "v");
  CHECK(third.message_annotations.get("iothub-interface-id")->as_string() == "urn:x");
  CHECK(third.body_text() == "three");
}

TEST_CASE("telemetry: a batch holds at most 500 messages") {
  world w;
  auto d = device(w, "d1");
  std::size_t count = 500;
  std::string expected = "accepted";
  SUBCASE("500") {}
  SUBCASE("501") {
    count = 501;
    expected = "rejected com.microsoft:argument-out-of-range";
  }
  std::vector<amqp::message> inner(count, amqp::message(std::span<const std::byte>(bytes_of("x"))));
  amqp::message envelope;
  auto n = build_batch(inner, 256 * 1024, envelope, 1000);
  REQUIRE(n);
  REQUIRE(*n == count);
  w.send(*d.c, d.link, envelope, false, batch_message_format);
  auto u = d.c->last("delivery_updated", d.link);
  CHECK(u.state == expected);
  CHECK(events(w, partition_of("d1", 4)).size() == (count == 500 ? 500U : 0U));
}

TEST_CASE("telemetry: above 262144 bytes a message is rejected with the hub's condition, text "
          "and info; at 262144 it is accepted (§3.5)") {
  world w;
  auto d = device(w, "d1");
  // A data section whose encoding makes the whole message exactly `total` bytes.
  auto message_of_size = [](std::size_t total) {
    amqp::message m(std::span<const std::byte>(std::vector<std::byte>(total - 8)));
    auto b = m.encode();
    REQUIRE(b);
    REQUIRE(b->size() == total);
    return std::move(*b);
  };
  w.advance(3723s); // 01/01/2026 01:02:03
  w.send_bytes(*d.c, d.link, message_of_size(262145));
  auto u = d.c->last("delivery_updated", d.link);
  CHECK(u.state == "rejected amqp:link:message-size-exceeded");
  CHECK(u.settled);
  CHECK(u.description ==
        "Message size is 262145 bytes which is greater than the max size 262144 bytes allowed.");
  auto info = amqp::decode_whole(u.info);
  REQUIRE(info);
  CHECK(info->find("com.microsoft:is-filtered")->as_bool());
  const std::string tid(info->find("com.microsoft:tracking-id")->as_string());
  CHECK(tid.size() == 32 + 15 + 19);
  CHECK(tid.substr(32) == "-G:0-TimeStamp:01/01/2026 01:02:03");
  CHECK(events(w, partition_of("d1", 4)).empty());

  w.send_bytes(*d.c, d.link, message_of_size(262144));
  CHECK(d.c->last("delivery_updated", d.link).state == "accepted");
  CHECK(events(w, partition_of("d1", 4)).size() == 1);
  CHECK(w.attached(*d.c, d.link));
}

TEST_CASE("telemetry: above the link's 1 MiB max-message-size the link is detached (§3.5)") {
  world w;
  client& c = w.open("PLAIN", "d1@sas.emulator", w.device_token("d1"));
  auto l = w.attach_sender(c, "/devices/d1/messages/events");
  CHECK(c.last("link_attached", l).max_message_size == std::uint64_t{1'048'576});
  // The client's engine would refuse to send such a message (it read the hub's limit): the
  // transfer frames of a client that does not check (azure-iot-sdk-csharp#2055) are written
  // straight to the hub, on the link's handle (0, the session's first link).
  const std::vector<std::byte> chunk(60'000);
  const std::byte tag[1] = {std::byte{1}};
  for (int i = 0; i < 18; ++i) { // 18 x 60000 = 1080000 bytes > 1048576
    amqp::transfer t;
    t.handle = 0;
    if (i == 0) {
      t.delivery_id = 0;
      t.delivery_tag = amqp::binary_view(tag);
      t.message_format = 0;
    }
    t.more = i < 17;
    const auto frame = amqp::test::frame_bytes(t, 0, chunk);
    REQUIRE(w.h().receive(c.handle, frame, w.now));
    w.h().process(c.handle, w.now);
  }
  REQUIRE(w.pump());
  auto d = c.last("link_detached", l);
  CHECK(d.remote);
  CHECK(d.condition == "amqp:link:message-size-exceeded");
  CHECK(events(w, partition_of("d1", 4)).empty());
  CHECK(c.of("connection_closed").empty());
}

TEST_CASE("telemetry: malformed messages, unknown formats and presettled messages") {
  world w;
  auto d = device(w, "d1");
  SUBCASE("not an AMQP message") {
    const std::byte junk[] = {std::byte{0x00}, std::byte{0x53}, std::byte{0x75}};
    w.send_bytes(*d.c, d.link, junk);
    CHECK(d.c->last("delivery_updated", d.link).state == "rejected amqp:decode-error");
  }
  SUBCASE("a batch that is not one") {
    auto b = telemetry("x").encode();
    w.send_bytes(*d.c, d.link, *b, false, batch_message_format);
    CHECK(d.c->last("delivery_updated", d.link).state == "rejected amqp:decode-error");
  }
  SUBCASE("another message format") {
    auto b = telemetry("x").encode();
    w.send_bytes(*d.c, d.link, *b, false, 7);
    auto u = d.c->last("delivery_updated", d.link);
    CHECK(u.state == "rejected amqp:not-implemented");
    CHECK(u.description == "Message format 7 is not supported.");
  }
  SUBCASE("presettled: stored, nothing goes back") {
    auto l = w.attach_sender(*d.c, "/devices/d1/messages/events", sender_settle_mode::settled);
    w.send(*d.c, l, telemetry("x"), true);
    CHECK(d.c->of("delivery_updated", l).empty());
    CHECK(events(w, partition_of("d1", 4)).size() == 1);
    return;
  }
  CHECK(events(w, partition_of("d1", 4)).empty());
  CHECK(w.attached(*d.c, d.link));
}

TEST_CASE("telemetry: the credit window is topped up as messages are committed") {
  hub_options o;
  o.d2c_credit = 4;
  world w(o);
  auto d = device(w, "d1");
  CHECK(d.c->engine.credit(d.link) == 4);
  for (int i = 0; i < 20; ++i) {
    REQUIRE(d.c->engine.credit(d.link) > 0);
    w.send(*d.c, d.link, telemetry("x"));
  }
  CHECK(d.c->of("delivery_updated", d.link).size() == 20);
  CHECK(d.c->engine.credit(d.link) >= 2);
}

TEST_CASE("telemetry: one commit per process(); if it fails nothing is acknowledged, nothing kept "
          "and the sequence numbers are reused") {
  world w;
  auto d = device(w, "d1");
  auto* db = static_cast<sqlite3*>(w.db->native_handle());
  // Two messages in one input: one transaction, one commit.
  int commits = 0;
  sqlite3_commit_hook(
      db,
      [](void* n) {
        ++*static_cast<int*>(n);
        return 0;
      },
      &commits);
  auto b1 = telemetry("1").encode();
  auto b2 = telemetry("2").encode();
  transfer_options t;
  t.payload = *b1;
  REQUIRE(d.c->engine.send(d.link, t));
  t.payload = *b2;
  REQUIRE(d.c->engine.send(d.link, t));
  REQUIRE(w.pump());
  CHECK(commits == 1);
  CHECK(d.c->of("delivery_updated", d.link).size() == 2);

  // A commit that fails (the hook turns it into a rollback): both rejected, nothing stored.
  sqlite3_commit_hook(
      db, [](void*) { return 1; }, nullptr);
  t.payload = *b1;
  REQUIRE(d.c->engine.send(d.link, t));
  t.payload = *b2;
  REQUIRE(d.c->engine.send(d.link, t));
  REQUIRE(w.pump());
  auto updates = d.c->of("delivery_updated", d.link);
  REQUIRE(updates.size() == 4);
  CHECK(updates[2].state == "rejected amqp:internal-error");
  CHECK(updates[3].state == "rejected amqp:internal-error");
  CHECK(events(w, partition_of("d1", 4)).size() == 2);

  // The next message gets the sequence number after the last one kept.
  sqlite3_commit_hook(db, nullptr, nullptr);
  w.send(*d.c, d.link, telemetry("3"));
  auto stored = events(w, partition_of("d1", 4));
  REQUIRE(stored.size() == 3);
  CHECK(stored[2].sequence == 2);
  CHECK(stored[2].offset == stored[1].offset + static_cast<std::int64_t>(stored[1].bytes.size()));
}

TEST_CASE("telemetry: every acknowledged message is in the file when the store is reopened, and "
          "the partitions go on from there") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("iothub-durability-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "hub.db").string();
  std::vector<std::vector<std::byte>> acknowledged;
  {
    auto s = store::open(path);
    REQUIRE(s);
    auto r = registry::load(**s, "emulator");
    REQUIRE(r);
    REQUIRE(r->put_device(**s, {"d1", std::string(key_a), std::string(key_b), true, "sas", "1"}));
    seeded_random random(3);
    hub_options o;
    o.unix_offset = milliseconds(epoch_ms);
    auto h = hub::create(o, **s, *r, random);
    REQUIRE(h);
    // A raw client, without the harness (whose world owns its own store).
    connection_options co;
    co.role = connection_role::client;
    co.container_id = "c";
    co.sasl.enabled = true;
    co.sasl.mechanism = "PLAIN";
    co.sasl.username = "d1@sas.emulator";
    const std::string token =
        *make_sas_token("localhost/devices/d1", key_a, epoch_ms / 1000 + 3600);
    co.sasl.password = token;
    connection client(co);
    const connection_handle hc = (*h)->add_connection(time_point{}, {});
    auto pump = [&] {
      for (int i = 0; i < 1000; ++i) {
        bool moved = false;
        while (client.next_event()) {
          moved = true;
        }
        if (auto out = client.pending_output(); !out.empty()) {
          REQUIRE((*h)->receive(hc, out, time_point{}));
          client.consume_output(out.size());
          (*h)->process(hc, time_point{});
          moved = true;
        }
        if (auto out = (*h)->engine(hc)->pending_output(); !out.empty()) {
          REQUIRE(client.receive(out, time_point{}));
          (*h)->engine(hc)->consume_output(out.size());
          moved = true;
        }
        if (!moved) {
          return;
        }
      }
    };
    REQUIRE(client.open());
    auto session = client.begin();
    REQUIRE(session);
    link_options lo;
    lo.name = "d2c";
    lo.role = role::sender;
    lo.target = target{};
    lo.target->address = "/devices/d1/messages/events";
    auto link = client.attach(*session, lo);
    REQUIRE(link);
    pump();
    for (int i = 0; i < 25; ++i) {
      auto b = telemetry("m" + std::to_string(i)).encode();
      transfer_options t;
      t.payload = *b;
      REQUIRE(client.send(*link, t));
      if (i % 5 == 4) {
        pump();
      }
    }
    pump();
    // What the client saw accepted is what must survive.
    REQUIRE(client.unsettled(*link) == 0);
    // The process dies here: nothing is closed properly (the store's destructor runs, but
    // every acknowledged write was committed before its outcome was sent).
  }
  {
    auto s = store::open(path);
    REQUIRE(s);
    auto stored = (*s)->read_events(partition_of("d1", 4), event_position{}, 100);
    REQUIRE(stored);
    REQUIRE(stored->size() == 25);
    for (std::size_t i = 0; i < 25; ++i) {
      CHECK(decoded((*stored)[i]).body_text() == "m" + std::to_string(i));
    }
    auto r = registry::load(**s, "emulator");
    REQUIRE(r);
    seeded_random random(4);
    auto h = hub::create(hub_options{}, **s, *r, random);
    REQUIRE(h);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("telemetry: retention drops events older than a day, and the oldest over the size "
          "bound; sequence numbers go on") {
  hub_options o;
  o.trim_interval = 1h;
  SUBCASE("by age") {}
  SUBCASE("by size") {
    o.retention_bytes = 1;
  }
  world w(o);
  auto d = device(w, "d1");
  w.send(*d.c, d.link, telemetry("old"));
  const bool by_size = o.retention_bytes == 1;
  w.advance(by_size ? 1h : 25h);
  CHECK(events(w, partition_of("d1", 4)).empty());
  w.send(*d.c, d.link, telemetry("new"));
  auto stored = events(w, partition_of("d1", 4));
  REQUIRE(stored.size() == 1);
  CHECK(stored[0].sequence == 1);
}
