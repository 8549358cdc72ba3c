// Tests of batches and D2C stamping (iothub/src/messages.cpp; doc §3.3, §3.4).
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/iothub/messages.hpp"

using namespace amqp::iothub;
using amqp::owned_value;

namespace {

std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

amqp::message telemetry(std::size_t n, std::size_t body_size = 10) {
  amqp::message m(as_bytes(std::string(body_size, static_cast<char>('a' + n % 26))));
  m.properties.message_id = "msg-" + std::to_string(n);
  m.properties.content_type = "application/json";
  m.application_properties.set("n", owned_value(static_cast<std::int32_t>(n)));
  return m;
}

std::vector<std::byte> encoded(const amqp::message& m) {
  auto e = m.encode();
  REQUIRE_MESSAGE(e.has_value(), m.check());
  return *e;
}

void append(std::vector<std::byte>& out, const std::vector<std::byte>& b) {
  out.insert(out.end(), b.begin(), b.end());
}

} // namespace

TEST_CASE("build_batch: one data section per message, exact encoded size") {
  std::vector<amqp::message> msgs;
  for (std::size_t k = 0; k < 5; ++k) {
    msgs.push_back(telemetry(k, k == 4 ? 300 : 10)); // the last one needs a vbin32
  }
  amqp::message env;
  env.application_properties.set("AzIoTHub_FaultOperationType", owned_value("KillTcp"));
  auto n = build_batch(msgs, 1024 * 1024, env);
  REQUIRE(n.has_value());
  CHECK(*n == 5);
  REQUIRE(env.body_kind() == amqp::body_kind::data);
  REQUIRE(env.body_sections().size() == 5);
  CHECK(env.application_properties.contains("AzIoTHub_FaultOperationType"));
  std::size_t want = *amqp::message{}.encoded_size() + 0;
  {
    amqp::message only_props;
    only_props.application_properties = env.application_properties;
    want = *only_props.encoded_size();
  }
  for (const auto& m : msgs) {
    want += data_section_size(encoded(m).size());
  }
  CHECK(*env.encoded_size() == want);

  // Back: the same messages.
  auto back = split_batch(encoded(env));
  REQUIRE(back.has_value());
  CHECK(*back == msgs);
}

TEST_CASE("build_batch: packs up to the size exactly, and up to max_messages") {
  std::vector<amqp::message> msgs(10, telemetry(1));
  const std::size_t one = data_section_size(encoded(msgs[0]).size());
  amqp::message env;
  SUBCASE("size: exactly three fit") {
    CHECK(*build_batch(msgs, 3 * one, env) == 3);
    CHECK(*env.encoded_size() == 3 * one);
    CHECK(*build_batch(msgs, 3 * one - 1, env) == 2);
    CHECK(*build_batch(msgs, 4 * one - 1, env) == 3);
  }
  SUBCASE("count") {
    CHECK(*build_batch(msgs, 1 << 20, env, 4) == 4);
    CHECK(env.body_sections().size() == 4);
  }
  SUBCASE("the body of a reused envelope is replaced") {
    CHECK(*build_batch(msgs, 1 << 20, env, 4) == 4);
    CHECK(*build_batch(msgs, 1 << 20, env, 2) == 2);
    CHECK(env.body_sections().size() == 2);
  }
  SUBCASE("errors") {
    std::string why;
    CHECK(build_batch(msgs, one - 1, env, 500, &why).error() == errc::limit_exceeded);
    CHECK(why.find("the first message needs") == 0);
    CHECK(build_batch({}, 1 << 20, env).error() == errc::limit_exceeded);
    CHECK(build_batch(msgs, 1 << 20, env, 0).error() == errc::limit_exceeded);
    std::vector<amqp::message> bad(1);
    bad[0].properties.content_type = "caf\xc3\xa9"; // a symbol must be ASCII
    CHECK(build_batch(bad, 1 << 20, env, 500, &why).error() == errc::invalid_value);
    CHECK(why.find("message 0 does not encode: properties.content-type") == 0);
  }
}

TEST_CASE("split_batch: inner sections in the C SDK's order (properties, "
          "application-properties, message-annotations, data)") {
  amqp::message props;
  props.properties.message_id = "id-1";
  props.properties.content_type = "application/json";
  amqp::message app;
  app.application_properties.set("temperature", owned_value("21"));
  amqp::message ann;
  ann.message_annotations.set("iothub-interface-id",
                              owned_value("urn:azureiot:Security:SecurityAgent:1"));
  const amqp::message body(as_bytes("{\"t\":21}"));
  std::vector<std::byte> inner;
  append(inner, encoded(props));
  append(inner, encoded(app));
  append(inner, encoded(ann));
  append(inner, encoded(body));
  // The core decoder refuses this order; the batch reader does not.
  CHECK(amqp::message::decode(inner).error() == amqp::errc::invalid_message);

  amqp::message env;
  env.add_data(inner);
  env.add_data(encoded(telemetry(7)));
  auto back = split_batch(encoded(env));
  REQUIRE(back.has_value());
  REQUIRE(back->size() == 2);
  const amqp::message& m = (*back)[0];
  CHECK(m.properties.message_id == owned_value("id-1"));
  CHECK(m.properties.content_type == "application/json");
  CHECK(m.application_properties.get("temperature")->as_string() == "21");
  CHECK(m.message_annotations.get("iothub-interface-id")->as_string() ==
        "urn:azureiot:Security:SecurityAgent:1");
  CHECK(m.body_text() == "{\"t\":21}");
  CHECK((*back)[1] == telemetry(7));
}

TEST_CASE("split_batch: limits") {
  SUBCASE("500 messages, not 501") {
    amqp::message env;
    const auto one = encoded(telemetry(0, 1));
    for (int k = 0; k < 500; ++k) {
      env.add_data(one);
    }
    CHECK(split_batch(encoded(env))->size() == 500);
    env.add_data(one);
    std::string why;
    CHECK(split_batch(encoded(env), {}, &why).error() == errc::limit_exceeded);
    CHECK(why == "a batch of 501 messages, above the limit of 500");
  }
  SUBCASE("256 KB") {
    amqp::message env;
    env.add_data(encoded(telemetry(0, 1)));
    const std::size_t base = *env.encoded_size();
    // Pad an application property so the envelope is exactly 262144 bytes.
    env.application_properties.set("pad", owned_value(std::string(1000, 'x')));
    const std::size_t with_pad = *env.encoded_size();
    env.application_properties.set(
        "pad", owned_value(std::string(1000 + max_d2c_message_size - with_pad, 'x')));
    REQUIRE(*env.encoded_size() == max_d2c_message_size);
    CHECK(base < max_d2c_message_size);
    CHECK(split_batch(encoded(env)).has_value());
    env.application_properties.set(
        "pad", owned_value(std::string(1001 + max_d2c_message_size - with_pad, 'x')));
    std::string why;
    CHECK(split_batch(encoded(env), {}, &why).error() == errc::limit_exceeded);
    CHECK(why ==
          "Message size is 262145 bytes which is greater than the max size 262144 bytes allowed.");
  }
  SUBCASE("custom limits") {
    amqp::message env;
    env.add_data(encoded(telemetry(0)));
    env.add_data(encoded(telemetry(1)));
    CHECK(split_batch(encoded(env), batch_limits{1, 1 << 20}).error() == errc::limit_exceeded);
    CHECK(split_batch(encoded(env), batch_limits{2, 10}).error() == errc::limit_exceeded);
  }
}

TEST_CASE("split_batch and decode_any_order: malformed input says what is wrong") {
  std::string why;
  SUBCASE("envelope") {
    const std::vector<std::byte> junk = {std::byte{0x00}, std::byte{0x53}};
    CHECK(split_batch(junk, {}, &why).error() == errc::invalid_value);
    CHECK(why.find("a malformed batch envelope") == 0);
    CHECK(split_batch(encoded(amqp::message("text")), {}, &why).error() == errc::invalid_value);
    CHECK(why == "a batch envelope's body must be data sections");
  }
  SUBCASE("inner messages") {
    amqp::message env;
    env.add_data(encoded(telemetry(0)));
    env.add_data(as_bytes("\x40")); // null, not a section
    CHECK(split_batch(encoded(env), {}, &why).error() == errc::invalid_value);
    CHECK(why == "batch message 1: the value at byte 0 is not a message section");
  }
  SUBCASE("each rule of the tolerant reader") {
    const auto props = encoded([] {
      amqp::message m;
      m.properties.message_id = "x";
      return m;
    }());
    const auto data = encoded(amqp::message(as_bytes("d")));
    const auto value = encoded(amqp::message("v"));
    std::vector<std::byte> b;
    append(b, data);
    append(b, props);
    append(b, props);
    CHECK(decode_any_order(b, &why).error() == errc::invalid_value);
    CHECK(why == "the section properties appears twice");
    b.clear();
    append(b, data);
    append(b, value);
    CHECK(decode_any_order(b, &why).error() == errc::invalid_value);
    CHECK(why.find("the body mixes section kinds") == 0);
    b.clear();
    append(b, value);
    append(b, value);
    CHECK(decode_any_order(b, &why).error() == errc::invalid_value);
    b.clear();
    append(b, data);
    append(b, data);
    append(b, props);
    auto m = decode_any_order(b);
    REQUIRE(m.has_value());
    CHECK(m->body_sections().size() == 2);
    b.push_back(std::byte{0xa1}); // a truncated string
    CHECK(decode_any_order(b, &why).error() == errc::invalid_value);
    CHECK(why.find("a malformed section at byte") == 0);
    // A section whose content the core refuses (properties.to a ulong).
    const std::vector<std::byte> bad_props = {std::byte{0x00}, std::byte{0x53}, std::byte{0x73},
                                              std::byte{0xc0}, std::byte{0x04}, std::byte{0x03},
                                              std::byte{0x40}, std::byte{0x40}, std::byte{0x44}};
    CHECK(decode_any_order(bad_props, &why).error() == errc::invalid_value);
    CHECK(why.find("a malformed section: ") == 0);
  }
}

TEST_CASE("stamp_d2c: the hub's annotations overwrite what a device sent") {
  amqp::message m = telemetry(1);
  // A device trying to spoof its identity, a module id and a model.
  m.message_annotations.set("iothub-connection-device-id", owned_value("someone-else"));
  m.message_annotations.set("iothub-connection-module-id", owned_value("fake"));
  m.message_annotations.set("dt-dataschema", owned_value("dtmi:fake;1"));
  m.message_annotations.set("x-opt-sequence-number", owned_value(std::int64_t{99}));
  m.message_annotations.set("dt-subject", owned_value("component1"));
  d2c_stamp s;
  s.identity = {"d1", ""};
  const std::string method = auth_method_json("device", "sas");
  s.auth_generation_id = "637983364741039849";
  s.auth_method = method;
  s.enqueued_time = amqp::timestamp{1700000000123};
  s.sequence_number = 42;
  s.offset = "4096";
  stamp_d2c(m, s);
  const auto& a = m.message_annotations;
  CHECK(a.get("iothub-connection-device-id")->as_string() == "d1");
  CHECK_FALSE(a.contains("iothub-connection-module-id"));
  CHECK_FALSE(a.contains("dt-dataschema"));
  CHECK(a.get("iothub-connection-auth-generation-id")->as_string() == "637983364741039849");
  CHECK(a.get("iothub-connection-auth-method")->as_string() ==
        R"({"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null})");
  CHECK(a.get("iothub-enqueuedtime")->as_timestamp().ms == 1700000000123);
  CHECK(a.get("iothub-message-source")->as_string() == "Telemetry");
  CHECK(a.get("x-opt-sequence-number")->as_long() == 42);
  CHECK(a.get("x-opt-offset")->as_string() == "4096");
  CHECK(a.get("x-opt-enqueued-time")->as_timestamp().ms == 1700000000123);
  CHECK(a.get("dt-subject")->as_string() == "component1"); // passes through
  // Keys are symbols (AMQP 1.0 §3.2.10).
  for (const auto& e : a) {
    CHECK(e.key.kind() == amqp::type::symbol);
  }
  // A module, with a model id.
  s.identity = {"d1", "m1"};
  s.model_id = "dtmi:com:example:Thermostat;1";
  stamp_d2c(m, s);
  CHECK(a.get("iothub-connection-module-id")->as_string() == "m1");
  CHECK(a.get("dt-dataschema")->as_string() == "dtmi:com:example:Thermostat;1");
  CHECK(m.encode().has_value());
}

TEST_CASE("stamp_d2c of a decoded message: the owned form's annotations, the other sections "
          "byte for byte") {
  d2c_stamp device;
  device.identity = {"d1", ""};
  const std::string method = auth_method_json("device", "sas");
  device.auth_generation_id = "637983364741039849";
  device.auth_method = method;
  device.enqueued_time = amqp::timestamp{1700000000123};
  device.sequence_number = 42;
  device.offset = "4096";
  d2c_stamp module = device;
  module.identity = {"d1", "m1"};
  module.model_id = "dtmi:com:example:Thermostat;1";

  // No annotations; a device's own ones; spoofed keys among others; a ulong key.
  std::vector<amqp::message> cases;
  cases.push_back(telemetry(1));
  amqp::message own = telemetry(2);
  own.message_annotations.set("dt-subject", owned_value("component1"));
  own.message_annotations.set("x-opt-partition-key", owned_value("pk"));
  cases.push_back(own);
  amqp::message spoofed = telemetry(3);
  spoofed.message_annotations.set("x-custom", owned_value(true));
  spoofed.message_annotations.set("iothub-connection-device-id", owned_value("someone-else"));
  spoofed.message_annotations.set("iothub-connection-module-id", owned_value("fake"));
  spoofed.message_annotations.set("dt-dataschema", owned_value("dtmi:fake;1"));
  spoofed.message_annotations.set("x-opt-offset", owned_value("1"));
  spoofed.message_annotations.set(std::uint64_t{7}, owned_value("reserved"));
  cases.push_back(spoofed);
  amqp::message header_and_footer = telemetry(4, 300);
  header_and_footer.header = amqp::header{.durable = true, .ttl = 5000};
  header_and_footer.footer.set("f", owned_value("x"));
  cases.push_back(header_and_footer);

  for (const d2c_stamp* s : {&device, &module}) {
    for (const amqp::message& original : cases) {
      const std::vector<std::byte> bytes = encoded(original);
      auto view = amqp::decode_message(bytes);
      REQUIRE(view.has_value());
      std::vector<std::byte> fast;
      REQUIRE(stamp_d2c(*view, *s, fast).has_value());

      amqp::message owned = original;
      stamp_d2c(owned, *s);
      auto fast_message = amqp::message::decode(fast);
      REQUIRE(fast_message.has_value());
      // The same annotations, keys of the same types, in the same order.
      CHECK(fast_message->message_annotations == owned.message_annotations);
      CHECK(*fast_message == owned);
      // Every other section as it came.
      auto stamped = amqp::decode_message(fast);
      REQUIRE(stamped.has_value());
      for (const amqp::section sec :
           {amqp::section::header, amqp::section::delivery_annotations, amqp::section::properties,
            amqp::section::application_properties, amqp::section::data, amqp::section::footer}) {
        const auto a = view->raw(sec);
        const auto b = stamped->raw(sec);
        CHECK(std::vector<std::byte>(a.begin(), a.end()) ==
              std::vector<std::byte>(b.begin(), b.end()));
      }
    }
  }
}

TEST_CASE("auth_method_json: escapes what it is given") {
  CHECK(auth_method_json("module", "x509") ==
        R"({"scope":"module","type":"x509","issuer":"iothub","acceptingIpFilterRule":null})");
  CHECK(auth_method_json("a\"b\\", "\n") ==
        R"({"scope":"a\"b\\","type":"\u000a","issuer":"iothub","acceptingIpFilterRule":null})");
}

TEST_CASE("names: the strings of the protocol reference") {
  CHECK(batch_message_format == 2147563264U);
  CHECK(annotation::connection_auth_generation_id == "iothub-connection-auth-generation-id");
  CHECK(app_property::method_name == "IoThub-methodname");
  CHECK(app_property::method_status == "IoThub-status");
  CHECK(fault::operation_type == "AzIoTHub_FaultOperationType");
  CHECK(max_d2c_message_size == 262144);
  CHECK(data_section_size(255) == 260);
  CHECK(data_section_size(256) == 264);
}

TEST_CASE("issue-fuzz-iothub_messages-1: an inner message that cannot be encoded again is "
          "refused") {
  // Found by fuzz_iothub_messages (fuzz/regressions/iothub_messages/): application-properties
  // with a binary key (AMQP 1.0 §3.2.5 allows only strings). The core's decoder accepts it
  // but its encoder refuses it, so the emulator could not forward such a message.
  const std::vector<std::byte> bad = {
      std::byte{0x00}, std::byte{0x53}, std::byte{0x75}, std::byte{0xa0},
      std::byte{0x01}, std::byte{'x'},  std::byte{0x00}, std::byte{0x53},
      std::byte{0x74}, std::byte{0xc1}, std::byte{0x05}, std::byte{0x02},
      std::byte{0xa0}, std::byte{0x01}, std::byte{'k'},  std::byte{0x40}};
  std::string why;
  auto r = decode_any_order(bad, &why);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == errc::invalid_value);
  CHECK(why == "a section that cannot be encoded again: application-properties[] key: "
               "application-property keys must be strings (AMQP 1.0 §3.2.5)");
  amqp::message env;
  env.add_data(bad);
  CHECK_FALSE(split_batch(*env.encode()).has_value());
}

TEST_CASE("issue-fuzz-iothub_messages-2: what decode_any_order returns, encoded, reads back") {
  // Found by fuzz_iothub_messages (fuzz/regressions/iothub_messages/): a message of one empty
  // properties section decodes to an empty message, which encodes to no bytes at all; those
  // must read back as the empty message, as amqp::message::decode reads them.
  const std::vector<std::byte> empty_props = {std::byte{0x00}, std::byte{0x53}, std::byte{0x73},
                                              std::byte{0xc0}, std::byte{0x01}, std::byte{0x00}};
  auto m = decode_any_order(empty_props);
  REQUIRE(m.has_value());
  CHECK(*m == amqp::message{});
  const auto bytes = encoded(*m);
  CHECK(bytes.empty());
  auto back = decode_any_order(bytes);
  REQUIRE(back.has_value());
  CHECK(*back == *m);
}
