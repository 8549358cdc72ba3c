// Frame trace (amqp/trace.hpp): the lines for real byte streams recorded from an engine pair
// (SASL PLAIN, sessions, links, messages), the same whatever the chunking; secrets never in
// them; bounded memory on large frames; one line and silence after garbage.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/connection.hpp"
#include "amqp/message.hpp"
#include "amqp/trace.hpp"
#include "support/engine_pair.hpp"
#include "support/hex.hpp"

using namespace amqp;
using namespace amqp::test;

namespace {

using lines = std::vector<std::string>;

// The byte stream one side wrote, rebuilt from the pair's recording.
std::vector<std::byte> stream_of(const wire_parser& w) {
  CHECK(w.pending() == 0);
  std::vector<std::byte> s;
  for (const auto& item : w.items) {
    s.insert(s.end(), item.bytes.begin(), item.bytes.end());
  }
  return s;
}

std::vector<std::byte> bytes_of(std::string_view s) {
  const auto b = as_bytes(s);
  return {b.begin(), b.end()};
}

void append(std::vector<std::byte>& to, std::span<const std::byte> b) {
  to.insert(to.end(), b.begin(), b.end());
}

std::string dump(const lines& ls) {
  std::string s;
  for (const auto& l : ls) {
    s += l;
    s += '\n';
  }
  return s;
}

lines trace(std::span<const std::byte> bytes, const trace_options& o = {},
            std::string_view prefix = "") {
  lines out;
  frame_tracer t(
      prefix, [&](std::string_view l) { out.emplace_back(l); }, o);
  t.feed(bytes);
  return out;
}

// The lines for `bytes` fed in chunks of at most `chunk` bytes.
lines trace_chunked(std::span<const std::byte> bytes, std::size_t chunk,
                    const trace_options& o = {}) {
  lines out;
  frame_tracer t(
      "", [&](std::string_view l) { out.emplace_back(l); }, o);
  for (std::size_t at = 0; at < bytes.size(); at += chunk) {
    t.feed(bytes.subspan(at, std::min(chunk, bytes.size() - at)));
  }
  return out;
}

// Checks that `bytes` give `expected` whole, split in two at every offset, byte by byte and in
// chunks of a few sizes.
void check_every_split(std::span<const std::byte> bytes, const lines& expected,
                       const trace_options& o = {}) {
  INFO("got:\n" << dump(trace(bytes, o)));
  CHECK(trace(bytes, o) == expected);
  for (std::size_t at = 0; at <= bytes.size(); ++at) {
    lines out;
    frame_tracer t(
        "", [&](std::string_view l) { out.emplace_back(l); }, o);
    t.feed(bytes.first(at));
    t.feed(bytes.subspan(at));
    if (out != expected) {
      FAIL_CHECK("split at " << at);
      break;
    }
  }
  for (const std::size_t chunk :
       {std::size_t{1}, std::size_t{3}, std::size_t{7}, std::size_t{64}}) {
    CHECK(trace_chunked(bytes, chunk, o) == expected);
  }
}

bool mentions(const lines& ls, std::string_view secret) {
  for (const auto& l : ls) {
    if (l.find(secret) != std::string::npos) {
      return true;
    }
  }
  return false;
}

connection_options sasl_plain_client() {
  connection_options co;
  co.sasl.enabled = true;
  co.sasl.username = "user";
  co.sasl.password = "s3cret-PLAIN-pw";
  co.sasl.hostname = "vhost.example";
  return co;
}

connection_options sasl_server(std::string_view mechanisms) {
  connection_options so;
  so.sasl.enabled = true;
  so.sasl.server_mechanisms = mechanisms;
  return so;
}

// A pair whose server accepts every SASL init and settles every delivery (accepted), with a
// sender link "sender-1" to target `address` attached from the client.
struct traced_pair {
  traced_pair(connection_options co, connection_options so, std::string_view address = "q")
      : p(co, so) {
    p.record_wire = true;
    p.auto_credit = 10;
    p.on_event = [&](side s, connection& c, const event& e) {
      if (s == side::server) {
        if (std::holds_alternative<sasl_init_received>(e)) {
          CHECK(c.sasl_complete(sasl_code::ok));
          return true;
        }
        if (const auto* d = std::get_if<delivery_received>(&e)) {
          CHECK(c.settle(d->delivery, accepted{}));
          return true;
        }
      }
      return false;
    };
    ssn = p.open_session();
    link_options lo;
    lo.name = "sender-1";
    lo.role = role::sender;
    lo.target = target{.address = address};
    auto l = p.client.attach(ssn, lo);
    REQUIRE(l);
    link = *l;
    REQUIRE(p.pump());
  }

  void send(const message_parts& m) {
    std::vector<std::byte> payload;
    REQUIRE(encode_append(m, payload));
    REQUIRE(p.client.send(link, {.payload = payload}));
    REQUIRE(p.pump());
  }

  void finish() {
    REQUIRE(p.client.detach(link));
    REQUIRE(p.pump());
    REQUIRE(p.client.end(ssn));
    REQUIRE(p.pump());
    REQUIRE(p.client.close());
    REQUIRE(p.pump());
  }

  engine_pair p;
  session_id ssn{};
  link_id link{};
};

} // namespace

TEST_SUITE_BEGIN("trace");

TEST_CASE("trace: a SASL PLAIN connection, both directions, line for line at every split") {
  traced_pair t(sasl_plain_client(), sasl_server("PLAIN"));
  std::array<value, 2> app = {value{"k"}, value{"v"}};
  std::array<value, 1> body = {value{as_bytes("hello")}};
  message_parts m;
  properties props;
  props.message_id = value{std::uint64_t{7}};
  props.to = "q";
  m.properties = props;
  m.application_properties = value::map(app);
  m.body = body_kind::data;
  m.body_sections = body;
  t.send(m);
  t.finish();
  const auto client = stream_of(t.p.client_wire);
  const auto server = stream_of(t.p.server_wire);

  // The client's stream has no sasl-outcome: its AMQP header is told from a SASL frame by
  // its first bytes.
  const lines client_lines = {
      "SASL 3 1.0.0",
      "[sasl] sasl-init(mechanism=:PLAIN, initial-response=PLAIN(authzid=\"\", authcid=\"user\", "
      "passwd=***), hostname=\"vhost.example\")",
      "AMQP 0 1.0.0",
      "[ch 0] open(container-id=\"client\", max-frame-size=262144, channel-max=255, "
      "idle-time-out=30000)",
      "[ch 0] begin(next-outgoing-id=0, incoming-window=2048, outgoing-window=2147483647, "
      "handle-max=1023)",
      "[ch 0] attach(name=\"sender-1\", handle=0, role=sender, target=target(address=\"q\"), "
      "initial-delivery-count=0)",
      "[ch 0] transfer(handle=0, delivery-id=0, delivery-tag=b\"\\x00\", message-format=0) payload "
      "34 bytes: "
      "properties(message-id=7, to=\"q\"), application-properties{\"k\"=\"v\"}, data(5 bytes: "
      "b\"hello\")",
      "[ch 0] detach(handle=0, closed=true)",
      "[ch 0] end()",
      "[ch 0] close()",
  };
  // The server's: the AMQP header follows the sasl-outcome.
  const lines server_lines = {
      "SASL 3 1.0.0",
      "[sasl] sasl-mechanisms(sasl-server-mechanisms=[:PLAIN])",
      "[sasl] sasl-outcome(code=ok)",
      "AMQP 0 1.0.0",
      "[ch 0] open(container-id=\"server\", max-frame-size=262144, channel-max=255, "
      "idle-time-out=30000)",
      "[ch 0] begin(remote-channel=0, next-outgoing-id=0, incoming-window=2048, "
      "outgoing-window=2147483647, handle-max=1023)",
      "[ch 0] attach(name=\"sender-1\", handle=0, role=receiver, target=target(address=\"q\"), "
      "max-message-size=16777216)",
      "[ch 0] flow(next-incoming-id=0, incoming-window=2048, next-outgoing-id=0, "
      "outgoing-window=2147483647, handle=0, delivery-count=0, link-credit=10)",
      "[ch 0] disposition(role=receiver, first=0, settled=true, state=accepted())",
      "[ch 0] detach(handle=0, closed=true)",
      "[ch 0] end()",
      "[ch 0] close()",
  };
  check_every_split(client, client_lines);
  check_every_split(server, server_lines);
  CHECK_FALSE(mentions(trace(client), "s3cret"));

  SUBCASE("the prefix starts every line") {
    const auto out = trace(server, {}, "[1] <- ");
    REQUIRE(out.size() == server_lines.size());
    for (std::size_t k = 0; k < out.size(); ++k) {
      CHECK(out[k] == "[1] <- " + server_lines[k]);
    }
  }
}

TEST_CASE("trace: pipelined SASL PLAIN (header, init, header, open in one write)") {
  connection_options co = sasl_plain_client();
  co.sasl.mechanism = "PLAIN";
  co.sasl.pipeline = true;
  traced_pair t(co, sasl_server("PLAIN"));
  const auto client = stream_of(t.p.client_wire);
  const auto out = trace(client);
  REQUIRE(out.size() >= 4);
  CHECK(out[0] == "SASL 3 1.0.0");
  CHECK(out[1].starts_with("[sasl] sasl-init(mechanism=:PLAIN, initial-response=PLAIN("));
  CHECK(out[2] == "AMQP 0 1.0.0");
  CHECK(out[3].starts_with("[ch 0] open("));
  CHECK_FALSE(mentions(out, "s3cret"));
  check_every_split(client, out);
}

TEST_CASE("trace: other SASL mechanisms show the sizes of responses, challenges and data") {
  connection_options co;
  co.sasl.enabled = true;
  co.sasl.mechanism = "X-TEST";
  const auto first = as_bytes("INITIAL-SECRET");
  co.sasl.initial_response = first;
  engine_pair p(co, sasl_server("PLAIN X-TEST"));
  p.record_wire = true;
  p.on_event = [&](side s, connection& c, const event& e) {
    if (s == side::server) {
      if (std::holds_alternative<sasl_init_received>(e)) {
        CHECK(c.sasl_challenge(as_bytes("CHALLENGE-SECRET")));
        return true;
      }
      if (std::holds_alternative<sasl_response_received>(e)) {
        CHECK(c.sasl_complete(sasl_code::ok, as_bytes("FINAL-SECRET")));
        return true;
      }
    } else if (std::holds_alternative<sasl_challenge_received>(e)) {
      CHECK(c.sasl_respond(as_bytes("RESPONSE-SECRET")));
      return true;
    }
    return false;
  };
  REQUIRE(p.client.open());
  REQUIRE(p.pump());
  const auto client = stream_of(p.client_wire);
  const auto server = stream_of(p.server_wire);
  const lines client_lines = {
      "SASL 3 1.0.0",
      "[sasl] sasl-init(mechanism=:X-TEST, initial-response=<14 bytes>)",
      "[sasl] sasl-response(response=<15 bytes>)",
      "AMQP 0 1.0.0",
      "[ch 0] open(container-id=\"client\", max-frame-size=262144, channel-max=255, "
      "idle-time-out=30000)",
  };
  const lines server_lines = {
      "SASL 3 1.0.0",
      "[sasl] sasl-mechanisms(sasl-server-mechanisms=[:PLAIN, :X-TEST])",
      "[sasl] sasl-challenge(challenge=<16 bytes>)",
      "[sasl] sasl-outcome(code=ok, additional-data=<12 bytes>)",
      "AMQP 0 1.0.0",
      "[ch 0] open(container-id=\"server\", max-frame-size=262144, channel-max=255, "
      "idle-time-out=30000)",
  };
  check_every_split(client, client_lines);
  check_every_split(server, server_lines);
}

TEST_CASE("trace: SASL PLAIN responses that are not authzid NUL authcid NUL passwd") {
  sasl_init init;
  init.mechanism = symbol_view{"PLAIN"};
  SUBCASE("one NUL: size only") {
    const auto r = as_bytes(std::string_view("user\0pw-SECRET", 14));
    init.initial_response = r;
    CHECK(describe(sasl_frame{init}) == "sasl-init(mechanism=:PLAIN, initial-response=<14 bytes>)");
  }
  SUBCASE("authzid, and bytes that are not text") {
    const auto r = as_bytes(std::string_view("admin\0us\xC3\xA9r\0pw-SECRET", 20));
    init.initial_response = r;
    CHECK(describe(sasl_frame{init}) ==
          "sasl-init(mechanism=:PLAIN, initial-response=PLAIN(authzid=\"admin\", "
          "authcid=\"us\\xc3\\xa9r\", passwd=***))");
  }
  SUBCASE("mechanism in lower case") {
    init.mechanism = symbol_view{"plain"};
    const auto r = as_bytes(std::string_view("\0u\0pw-SECRET", 12));
    init.initial_response = r;
    CHECK(describe(sasl_frame{init}) ==
          "sasl-init(mechanism=:plain, initial-response=PLAIN(authzid=\"\", authcid=\"u\", "
          "passwd=***))");
  }
}

TEST_CASE("trace: secrets in fields, properties and bodies are redacted") {
  connection_options co;
  std::array<value, 2> open_props = {value{symbol_view{"token"}},
                                     value{"SharedAccessSignature sr=x&sig=OPENPROPSIG&se=1"}};
  co.properties = value::map(open_props);
  co.hostname = "hub.example?sig=HOSTSIG";
  traced_pair t(co, {}, "amqps://user:URLPASSWORD@host/q?sig=ADDRSIG&se=1");

  std::array<value, 6> app = {
      value{"auth"}, value{"SharedAccessSignature sr=a%2Fb&sig=APPSIG%3D&se=1&skn=k"},
      value{"conn"}, value{"HostName=h;SharedAccessKeyName=owner;SharedAccessKey=KEYSECRET"},
      value{"bin"},  value{as_bytes("sig=BINSIG")}};
  std::array<value, 2> annotations = {value{symbol_view{"x-opt-sig"}},
                                      value{symbol_view{"x-sig=SYMSIG"}}};
  std::array<value, 1> body = {value{"SharedAccessSignature sig=BODYSIG&se=2"}};
  message_parts m1;
  properties p1;
  p1.to = "q?sig=TOSIG";
  m1.properties = p1;
  m1.message_annotations = value::map(annotations);
  m1.application_properties = value::map(app);
  m1.body = body_kind::amqp_value;
  m1.body_sections = body;
  t.send(m1);

  std::array<value, 1> data = {value{as_bytes("token=x&sig=DATASIG&se=3")}};
  message_parts m2;
  m2.body = body_kind::data;
  m2.body_sections = data;
  t.send(m2);

  // CBS put-token: the token is hidden whatever its form (here a JWT, no sig=).
  std::array<value, 6> cbs = {value{"operation"}, value{"put-token"}, value{"type"},
                              value{"jwt"},       value{"name"},      value{"aud"}};
  std::array<value, 1> jwt = {value{"eyJhbGciOiJIUzI1NiJ9.JWTSECRET.x"}};
  message_parts m3;
  properties p3;
  p3.to = "$cbs";
  m3.properties = p3;
  m3.application_properties = value::map(cbs);
  m3.body = body_kind::amqp_value;
  m3.body_sections = jwt;
  t.send(m3);

  REQUIRE(t.p.client.detach(
      t.link, true,
      amqp::error{symbol_view{"amqp:unauthorized-access"}, "bad token sig=DETACHSIG", {}}));
  REQUIRE(t.p.pump());
  const auto client = stream_of(t.p.client_wire);
  const auto server = stream_of(t.p.server_wire);
  const lines client_lines = {
      "AMQP 0 1.0.0",
      "[ch 0] open(container-id=\"client\", hostname=\"hub.example?sig=***\", "
      "max-frame-size=262144, channel-max=255, idle-time-out=30000, "
      "properties={:token=\"SharedAccessSignature sr=x&sig=***&se=1\"})",
      "[ch 0] begin(next-outgoing-id=0, incoming-window=2048, outgoing-window=2147483647, "
      "handle-max=1023)",
      "[ch 0] attach(name=\"sender-1\", handle=0, role=sender, "
      "target=target(address=\"amqps://user:***@host/q?sig=***&se=1\"), "
      "initial-delivery-count=0)",
      "[ch 0] transfer(handle=0, delivery-id=0, delivery-tag=b\"\\x00\", message-format=0) payload "
      "251 bytes: "
      "message-annotations{:x-opt-sig=:\"x-sig=***\"}, properties(to=\"q?sig=***\"), "
      "application-properties{\"auth\"=\"SharedAccessSignature sr=a%2Fb&sig=***&se=1&skn=k\", "
      "\"conn\"=\"HostName=h;SharedAccessKeyName=owner;SharedAccessKey=***\", "
      "\"bin\"=b\"sig=***\"}, amqp-value(\"SharedAccessSignature sig=***&se=2\")",
      "[ch 0] transfer(handle=0, delivery-id=1, delivery-tag=b\"\\x01\", message-format=0) payload "
      "29 bytes: "
      "data(24 bytes: b\"token=x&sig=***&se=3\")",
      "[ch 0] transfer(handle=0, delivery-id=2, delivery-tag=b\"\\x02\", message-format=0) payload "
      "101 bytes: "
      "properties(to=\"$cbs\"), application-properties{\"operation\"=\"put-token\", "
      "\"type\"=\"jwt\", \"name\"=\"aud\"}, body(put-token, 37 bytes not shown)",
      "[ch 0] detach(handle=0, closed=true, error=error(condition=:amqp:unauthorized-access, "
      "description=\"bad token sig=***\"))",
  };
  check_every_split(client, client_lines);
  const auto server_lines = trace(server);
  INFO(dump(server_lines));
  REQUIRE(server_lines.size() == 9);
  CHECK(server_lines[3] == "[ch 0] attach(name=\"sender-1\", handle=0, role=receiver, "
                           "target=target(address=\"amqps://user:***@host/q?sig=***&se=1\"), "
                           "max-message-size=16777216)");
  for (const std::string_view secret :
       {"OPENPROPSIG", "HOSTSIG", "URLPASSWORD", "ADDRSIG", "APPSIG", "KEYSECRET", "BINSIG",
        "SYMSIG", "BODYSIG", "TOSIG", "DATASIG", "JWTSECRET", "DETACHSIG"}) {
    CAPTURE(secret);
    CHECK_FALSE(mentions(trace(client), secret));
    CHECK_FALSE(mentions(server_lines, secret));
  }
}

TEST_CASE("trace: a message over several frames shows its parts by size only") {
  connection_options so;
  so.limits.max_frame_size = 512; // the client's transfers are split at 512 bytes
  traced_pair t({}, so);
  // A put-token whose application-properties and body span frames: no frame is a message.
  const std::string token = "SharedAccessSignature sr=x&se=1&sig=" + std::string(1500, 'S');
  std::array<value, 2> cbs = {value{"operation"}, value{"put-token"}};
  std::array<value, 1> body = {value{std::string_view(token)}};
  message_parts m;
  m.application_properties = value::map(cbs);
  m.body = body_kind::amqp_value;
  m.body_sections = body;
  t.send(m);
  // Then a one-frame message on the same link is whole again.
  std::array<value, 1> small = {value{"after"}};
  message_parts m2;
  m2.body = body_kind::amqp_value;
  m2.body_sections = small;
  t.send(m2);
  const auto client = stream_of(t.p.client_wire);
  const auto out = trace(client);
  CHECK_FALSE(mentions(out, "SSSS"));
  std::vector<std::string> transfers;
  for (const auto& l : out) {
    if (l.starts_with("[ch 0] transfer(")) {
      transfers.push_back(l);
    }
  }
  REQUIRE(transfers.size() == 5);
  CHECK(transfers[0] ==
        "[ch 0] transfer(handle=0, delivery-id=0, delivery-tag=b\"\\x00\", message-format=0, "
        "more=true) payload 490 bytes (part of a message)");
  CHECK(transfers[1] == "[ch 0] transfer(handle=0, more=true) payload 492 bytes (part of a "
                        "message)");
  CHECK(transfers[2] == "[ch 0] transfer(handle=0, more=true) payload 492 bytes (part of a "
                        "message)");
  // The last frame of the delivery (more = false) is a part too.
  CHECK(transfers[3] == "[ch 0] transfer(handle=0) payload 98 bytes (part of a message)");
  CHECK(transfers[4] ==
        "[ch 0] transfer(handle=0, delivery-id=1, delivery-tag=b\"\\x01\", message-format=0) "
        "payload 10 bytes: amqp-value(\"after\")");
  check_every_split(client, out);
}

TEST_CASE("trace: an aborted delivery, or a detach, ends a multi-frame delivery") {
  std::array<value, 1> body = {value{"m"}};
  message_parts m;
  m.body = body_kind::amqp_value;
  m.body_sections = body;
  std::vector<std::byte> msg;
  REQUIRE(encode_append(m, msg));
  const auto first_part = std::span<const std::byte>(msg).first(3);
  std::vector<std::byte> s;
  append(s, detail::protocol_header_bytes(detail::protocol_id::amqp));
  amqp::transfer t;
  t.handle = 1;
  t.delivery_id = 0;
  t.more = true;
  REQUIRE(detail::append_frame(2, performative{t}, first_part, s));
  amqp::transfer abort_t;
  abort_t.handle = 1;
  abort_t.aborted = true;
  REQUIRE(detail::append_frame(2, performative{abort_t}, {}, s));
  amqp::transfer whole;
  whole.handle = 1;
  whole.delivery_id = 1;
  REQUIRE(detail::append_frame(2, performative{whole}, msg, s));
  REQUIRE(detail::append_frame(2, performative{t}, first_part, s));
  amqp::detach d;
  d.handle = 1;
  REQUIRE(detail::append_frame(2, performative{d}, {}, s));
  REQUIRE(detail::append_frame(2, performative{whole}, msg, s));
  REQUIRE(detail::append_frame(2, performative{t}, first_part, s));
  REQUIRE(detail::append_frame(2, performative{amqp::end{}}, {}, s));
  REQUIRE(detail::append_frame(2, performative{whole}, msg, s));
  const std::string part = "[ch 2] transfer(handle=1, delivery-id=0, more=true) payload 3 bytes "
                           "(part of a message)";
  const std::string after = "[ch 2] transfer(handle=1, delivery-id=1) payload 6 bytes: "
                            "amqp-value(\"m\")";
  check_every_split(s, {"AMQP 0 1.0.0", part,
                        "[ch 2] transfer(handle=1, aborted=true) payload 0 bytes (aborted)", after,
                        part, "[ch 2] detach(handle=1)", after, part, "[ch 2] end()", after});
}

TEST_CASE("trace: a frame above the trace limit is described from its first bytes") {
  traced_pair t({}, {});
  const std::vector<std::byte> big(100 * 1024, std::byte{'x'});
  std::array<value, 1> body = {value{binary_view(big)}};
  message_parts m;
  m.body = body_kind::data;
  m.body_sections = body;
  t.send(m);
  const auto client = stream_of(t.p.client_wire);
  trace_options o;
  o.max_frame_bytes = 4096;
  lines out;
  frame_tracer tr(
      "", [&](std::string_view l) { out.emplace_back(l); }, o);
  std::size_t most = 0;
  for (std::size_t at = 0; at < client.size(); at += 100) {
    tr.feed(std::span<const std::byte>(client).subspan(
        at, std::min<std::size_t>(100, client.size() - at)));
    most = std::max(most, tr.buffered());
  }
  CHECK(most <= 4096);
  CHECK(tr.buffered() == 0);
  CHECK_FALSE(tr.stopped());
  REQUIRE(out.size() == 5);
  CHECK(
      out[4] ==
      "[ch 0] transfer(handle=0, delivery-id=0, delivery-tag=b\"\\x00\", message-format=0) payload "
      "102408 bytes (part of a message)");
  CHECK(trace(client, o) == out);
  // With the default limit (64 KiB) too; the frame is skipped and the stream goes on.
  t.finish();
  const auto all = trace(stream_of(t.p.client_wire));
  REQUIRE(all.size() == 8);
  CHECK(all[4].ends_with("payload 102408 bytes (part of a message)"));
  CHECK(all[5] == "[ch 0] detach(handle=0, closed=true)");
}

TEST_CASE("trace: a performative beyond the trace limit is not shown, the stream goes on") {
  std::vector<std::byte> s;
  const auto h = detail::protocol_header_bytes(detail::protocol_id::amqp);
  append(s, h);
  const std::string big(3000, 'p');
  std::array<value, 2> props = {value{symbol_view{"big"}}, value{std::string_view(big)}};
  amqp::open o;
  o.container_id = "c";
  o.properties = value::map(props);
  REQUIRE(detail::append_frame(0, performative{o}, {}, s));
  append(s, detail::heartbeat_frame);
  trace_options small;
  small.max_frame_bytes = 1024;
  const lines expected = {"AMQP 0 1.0.0",
                          "[ch 0] frame of 3050 bytes above the trace limit: not shown",
                          "[ch 0] empty frame"};
  check_every_split(s, expected, small);
  // Under the limit, the string is cut at max_string.
  const auto whole = trace(s);
  REQUIRE(whole.size() == 3);
  CHECK(whole[1] == "[ch 0] open(container-id=\"c\", properties={:big=\"" + std::string(256, 'p') +
                        "\"...(3000 bytes)})");
}

TEST_CASE("trace: heartbeats, TLS headers, extended headers") {
  std::vector<std::byte> s;
  SUBCASE("heartbeat") {
    append(s, detail::protocol_header_bytes(detail::protocol_id::amqp));
    append(s, detail::heartbeat_frame);
    check_every_split(s, {"AMQP 0 1.0.0", "[ch 0] empty frame"});
  }
  SUBCASE("TLS header, then TLS records") {
    append(s, detail::protocol_header_bytes(detail::protocol_id::tls));
    append(s, from_hex("16 03 01 02 00 01 00 01 fc 03 03"));
    check_every_split(s, {"TLS 2 1.0.0", "TLS records follow; not traced further"});
  }
  SUBCASE("TLS header, then the decrypted stream") {
    append(s, detail::protocol_header_bytes(detail::protocol_id::tls));
    append(s, detail::protocol_header_bytes(detail::protocol_id::amqp));
    append(s, detail::heartbeat_frame);
    check_every_split(s, {"TLS 2 1.0.0", "AMQP 0 1.0.0", "[ch 0] empty frame"});
  }
  SUBCASE("a frame with an extended header, on channel 7") {
    append(s, detail::protocol_header_bytes(detail::protocol_id::amqp));
    // SIZE 16, DOFF 3 (4 extended header bytes), AMQP, channel 7; body: end (list0).
    append(s, from_hex("00000010 03 00 0007 deadbeef 00 53 17 45"));
    check_every_split(s, {"AMQP 0 1.0.0", "[ch 7] end()"});
  }
}

TEST_CASE("trace: garbage gives one line, then nothing") {
  std::vector<std::byte> s;
  lines expected;
  trace_options o;
  SUBCASE("another protocol: known at the first byte") {
    s = bytes_of("GET / HTTP/1.1\r\n");
    expected = {"undecodable: not an AMQP protocol header; not traced further"};
    CHECK(trace(bytes_of("G")) == expected);
  }
  SUBCASE("an unsupported AMQP header") {
    s = from_hex("414d5150 01 01 00 00  00000008 02 00 0000");
    expected = {"unsupported protocol header AMQP 1 1.0.0; not traced further"};
  }
  SUBCASE("a frame SIZE below 8") {
    s = from_hex("414d5150 00 01 00 00  00000004 02 00 0000 ffff");
    expected = {"AMQP 0 1.0.0",
                "undecodable frame header (size 4, doff 2, type 0): malformed frame; not traced "
                "further"};
  }
  SUBCASE("an undefined frame type") {
    s = from_hex("414d5150 00 01 00 00  0000000c 02 07 0000 00530000");
    expected = {"AMQP 0 1.0.0", "undecodable frame header (size 12, doff 2, type 7): unexpected "
                                "frame type; not traced further"};
  }
  SUBCASE("a body that is not a performative") {
    s = from_hex("414d5150 00 01 00 00  0000000c 02 00 0000 a1024142  00000008 02 00 0000");
    expected = {"AMQP 0 1.0.0",
                "undecodable frame (12 bytes): AMQP value of the wrong type; not traced further"};
  }
  SUBCASE("a truncated value in a frame above the limit is 'not shown', then garbage") {
    // Not a performative in the first bytes of a large frame: the value decoded is a string.
    s = from_hex("414d5150 00 01 00 00  00001000 02 00 0000 a1024142");
    s.resize(8 + 0x1000, std::byte{0});
    o.max_frame_bytes = 1024;
    expected = {"AMQP 0 1.0.0",
                "undecodable frame (4096 bytes): AMQP value of the wrong type; not traced further"};
  }
  check_every_split(s, expected, o);
  // Nothing more once stopped.
  lines out;
  frame_tracer t(
      "", [&](std::string_view l) { out.emplace_back(l); }, o);
  t.feed(s);
  CHECK(t.stopped());
  const auto before = out.size();
  t.feed(detail::protocol_header_bytes(detail::protocol_id::amqp));
  t.feed(detail::heartbeat_frame);
  CHECK(out.size() == before);
}

TEST_CASE("trace: frames are read by the engine's frame reader, with its checks") {
  // A SASL frame after the AMQP header is not a frame of that stream (AMQP 1.0 §5.3.1).
  std::vector<std::byte> s;
  append(s, detail::protocol_header_bytes(detail::protocol_id::amqp));
  append(s, from_hex("0000001002010000005344c003015000")); // sasl-outcome(ok)
  check_every_split(s, {"AMQP 0 1.0.0", "undecodable frame header (size 16, doff 2, type 1): "
                                        "unexpected frame type; not traced further"});
  // And the reverse.
  std::vector<std::byte> r;
  append(r, detail::protocol_header_bytes(detail::protocol_id::sasl));
  append(r, detail::heartbeat_frame);
  check_every_split(r, {"SASL 3 1.0.0", "undecodable frame header (size 8, doff 2, type 0): "
                                        "unexpected frame type; not traced further"});
  // A SASL frame with an empty body: the header is fine, the frame is not (§5.3.1).
  std::vector<std::byte> e;
  append(e, detail::protocol_header_bytes(detail::protocol_id::sasl));
  append(e, from_hex("0000000802010000"));
  check_every_split(
      e, {"SASL 3 1.0.0", "undecodable frame (8 bytes): malformed frame; not traced further"});
}

TEST_CASE("trace: the tracer's memory comes from trace_options::memory, and is given back") {
  // Counts what goes through the resource.
  struct counting final : std::pmr::memory_resource {
    std::size_t live = 0;
    std::size_t allocations = 0;
    void* do_allocate(std::size_t n, std::size_t a) override {
      ++allocations;
      live += n;
      return std::pmr::new_delete_resource()->allocate(n, a);
    }
    void do_deallocate(void* p, std::size_t n, std::size_t a) override {
      live -= n;
      std::pmr::new_delete_resource()->deallocate(p, n, a);
    }
    bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
      return this == &o;
    }
  } mem;
  traced_pair t({}, {});
  const std::vector<std::byte> big(10 * 1024, std::byte{'x'});
  std::array<value, 1> body = {value{binary_view(big)}};
  message_parts m;
  m.body = body_kind::data;
  m.body_sections = body;
  t.send(m);
  const auto client = stream_of(t.p.client_wire);
  {
    trace_options o;
    o.memory = &mem;
    lines out;
    frame_tracer tr(
        "[1] -> ", [&](std::string_view l) { out.emplace_back(l); }, o);
    for (std::size_t at = 0; at < client.size(); at += 97) {
      tr.feed(std::span<const std::byte>(client).subspan(
          at, std::min<std::size_t>(97, client.size() - at)));
    }
    CHECK(out == trace(client, {}, "[1] -> "));
    CHECK(mem.allocations > 0); // the reader, its buffer, the line
    // Stopped by garbage: the frame buffer is given back.
    tr.feed(from_hex("00000004 02 00 0000"));
    CHECK(tr.stopped());
    CHECK(tr.buffered() == 0);
  }
  CHECK(mem.live == 0);
}

TEST_CASE("trace: a recorded stream with any byte changed never crashes the tracer") {
  traced_pair t(sasl_plain_client(), sasl_server("PLAIN"));
  std::array<value, 1> body = {value{"payload"}};
  message_parts m;
  m.body = body_kind::amqp_value;
  m.body_sections = body;
  t.send(m);
  t.finish();
  const auto clean = stream_of(t.p.client_wire);
  std::size_t stopped = 0;
  for (std::size_t at = 0; at < clean.size(); ++at) {
    for (const std::uint8_t x :
         {std::uint8_t{0x00}, std::uint8_t{0xff}, std::uint8_t{0x41}, std::uint8_t{0x80}}) {
      auto s = clean;
      s[at] = static_cast<std::byte>(x);
      trace_options o;
      o.max_frame_bytes = 1024; // large SIZEs from changed headers are skipped, not buffered
      lines out;
      frame_tracer tr(
          "", [&](std::string_view l) { out.emplace_back(l); }, o);
      tr.feed(std::span<const std::byte>(s).first(at));
      tr.feed(std::span<const std::byte>(s).subspan(at));
      CHECK(tr.buffered() <= 1024);
      CHECK_FALSE(mentions(out, "s3cret"));
      // At most one line says the stream is not traced further, and it is the last.
      for (std::size_t k = 0; k + 1 < out.size(); ++k) {
        CHECK(out[k].find("not traced further") == std::string::npos);
      }
      stopped += tr.stopped() ? 1U : 0U;
    }
  }
  CHECK(stopped > 0);
  // Random bytes after a header, deterministic (LCG).
  std::uint32_t x = 1;
  for (int round = 0; round < 200; ++round) {
    std::vector<std::byte> s;
    append(s, detail::protocol_header_bytes(round % 2 == 0 ? detail::protocol_id::amqp
                                                           : detail::protocol_id::sasl));
    for (int k = 0; k < 64; ++k) {
      x = x * 1664525U + 1013904223U;
      s.push_back(static_cast<std::byte>(x >> 24));
    }
    const auto out = trace_chunked(s, 5);
    CHECK(out == trace(s));
  }
}

TEST_CASE("trace: describe values") {
  CHECK(describe(value{}) == "null");
  CHECK(describe(value{true}) == "true");
  CHECK(describe(value{std::uint8_t{200}}) == "200");
  CHECK(describe(value{std::uint64_t{18446744073709551615ULL}}) == "18446744073709551615");
  CHECK(describe(value{std::int8_t{-5}}) == "-5");
  CHECK(describe(value{std::int64_t{-9223372036854775807LL - 1}}) == "-9223372036854775808");
  CHECK(describe(value{1.5}) == "1.5");
  CHECK(describe(value{0.25F}) == "0.25");
  CHECK(describe(value{char32_t{'a'}}) == "'a'");
  CHECK(describe(value{char32_t{0x1F600}}) == "U+1f600");
  CHECK(describe(value{char32_t{0x7}}) == "U+0007");
  CHECK(describe(value{timestamp{1700000000123}}) == "2023-11-14T22:13:20.123Z");
  CHECK(describe(value{timestamp{-1}}) == "1969-12-31T23:59:59.999Z");
  CHECK(describe(value{timestamp{-9223372036854775807LL}}) == "timestamp(-9223372036854775807)");
  uuid u;
  for (std::size_t k = 0; k < 16; ++k) {
    u.bytes[k] = static_cast<std::byte>(k * 17);
  }
  CHECK(describe(value{u}) == "00112233-4455-6677-8899-aabbccddeeff");
  CHECK(describe(value{decimal32{{std::byte{0x22}, std::byte{0x50}, std::byte{0},
                                  std::byte{1}}}}) == "decimal32(0x22500001)");
  CHECK(describe(value{"a\"b\\c\nd\x01\x7f"}) == "\"a\\\"b\\\\c\\nd\\x01\\x7f\"");
  // UTF-8 passes through, except characters some readers take for line ends.
  CHECK(describe(value{"\xC3\xA9t\xC3\xA9 \xE2\x80\xA8 \xC2\x85"}) ==
        "\"\xC3\xA9t\xC3\xA9 \\u2028 \\u0085\"");
  CHECK(describe(value{symbol_view{"amqp:accepted:list"}}) == ":amqp:accepted:list");
  CHECK(describe(value{symbol_view{"two words"}}) == ":\"two words\"");
  CHECK(describe(value{as_bytes(std::string_view("\x00\xff"
                                                 "ab",
                                                 4))}) == "b\"\\x00\\xffab\"");
  std::array<value, 3> items = {value{std::int32_t{1}}, value{"x"}, value{}};
  CHECK(describe(value::list(items)) == "[1, \"x\", null]");
  std::array<value, 4> kv = {value{symbol_view{"a"}}, value{std::int32_t{1}}, value{"b"},
                             value{false}};
  CHECK(describe(value::map(kv)) == "{:a=1, \"b\"=false}");
  std::array<value, 2> syms = {value{symbol_view{"x"}}, value{symbol_view{"y"}}};
  CHECK(describe(value::array(type::symbol, syms)) == "@symbol[:x, :y]");
  std::array<value, 2> d1 = {value{std::uint64_t{0x24}}, value::list({})};
  CHECK(describe(value::described(d1)) == "accepted()"); // a spec composite, by name
  std::array<value, 2> d3 = {value{std::uint64_t{0x1234}}, value::list({})};
  CHECK(describe(value::described(d3)) == "@0x1234 []");
  // A SASL frame body inside a value is still redacted.
  const auto plain = as_bytes(std::string_view("\0u\0pw-SECRET", 12));
  std::array<value, 2> init_fields = {value{symbol_view{"PLAIN"}}, value{plain}};
  std::array<value, 2> d4 = {value{std::uint64_t{0x41}}, value::list(init_fields)};
  CHECK(describe(value::described(d4)) ==
        "sasl-init(mechanism=:PLAIN, initial-response=PLAIN(authzid=\"\", authcid=\"u\", "
        "passwd=***))");
  std::array<value, 2> d5 = {value{symbol_view{"amqp:sasl-response:list"}}, value{plain}};
  CHECK(describe(value::described(d5)) == "sasl(malformed, not shown)");
  std::array<value, 2> d2 = {value{symbol_view{"apache.org:selector-filter:string"}},
                             value{"a = 1"}};
  CHECK(describe(value::described(d2)) == "@:apache.org:selector-filter:string \"a = 1\"");

  SUBCASE("limits") {
    trace_options o;
    o.max_string = 4;
    o.max_binary = 2;
    o.max_items = 2;
    CHECK(describe(value{"abcdefgh"}, o) == "\"abcd\"...(8 bytes)");
    // Cut at a UTF-8 boundary.
    CHECK(describe(value{"abc\xC3\xA9"}, o) == "\"abc\"...(5 bytes)");
    CHECK(describe(value{as_bytes("xyz")}, o) == "b\"xy\"...(3 bytes)");
    CHECK(describe(value::list(items), o) == "[1, \"x\", ...]");
    std::array<value, 6> kv3 = {value{"a"}, value{"1"}, value{"b"},
                                value{"2"}, value{"c"}, value{"3"}};
    CHECK(describe(value::map(kv3), o) == "{\"a\"=\"1\", \"b\"=\"2\", ...}");
    o.max_line = 10;
    o.max_items = 64;
    CHECK(describe(value::list(items), o) == "[1, \"x\", n...");
    // A secret cut by max_string is redacted first.
    o.max_line = 1000;
    o.max_string = 30;
    CHECK(describe(value{"SharedAccessSignature sig=0123456789abcdefghij&se=1"}, o) ==
          "\"SharedAccessSignature sig=***&\"...(51 bytes)");
  }
}

TEST_CASE("trace: describe performatives, SASL frames and messages") {
  amqp::attach a;
  a.name = "link";
  a.handle = 3;
  a.role = role::receiver;
  a.snd_settle_mode = sender_settle_mode::settled;
  a.rcv_settle_mode = receiver_settle_mode::second;
  source src;
  src.address = "q";
  src.durable = terminus_durability::unsettled_state;
  src.default_outcome = outcome{released{}};
  a.source = src;
  a.target = attach_target{coordinator{}};
  CHECK(describe(performative{a}) ==
        "attach(name=\"link\", handle=3, role=receiver, snd-settle-mode=settled, "
        "rcv-settle-mode=second, source=source(address=\"q\", durable=unsettled-state, "
        "default-outcome=released()), target=coordinator())");
  amqp::disposition d;
  d.role = role::sender;
  d.first = 1;
  d.last = 4;
  d.settled = true;
  amqp::rejected rj;
  rj.error = amqp::error{symbol_view{"amqp:decode-error"}, "bad", {}};
  d.state = delivery_state{rj};
  CHECK(describe(performative{d}) ==
        "disposition(role=sender, first=1, last=4, settled=true, "
        "state=rejected(error=error(condition=:amqp:decode-error, description=\"bad\")))");
  amqp::transfer t;
  t.handle = 0;
  t.more = true;
  CHECK(describe(performative{t}, as_bytes("part")) ==
        "transfer(handle=0, more=true) payload 4 bytes (part of a message)");
  t.more = false;
  CHECK(describe(performative{t}, as_bytes("part")) ==
        "transfer(handle=0) payload 4 bytes (not a valid message: malformed AMQP encoding)");
  amqp::flow f;
  CHECK(describe(performative{f}, as_bytes("xy")) ==
        "flow(incoming-window=0, next-outgoing-id=0, outgoing-window=0) + 2 bytes after the "
        "performative");
  sasl_outcome so;
  so.code = static_cast<sasl_code>(9);
  CHECK(describe(sasl_frame{so}) == "sasl-outcome(code=9)");

  std::array<value, 2> ann = {value{symbol_view{"x-opt-partition"}}, value{std::int32_t{2}}};
  std::array<value, 2> seq = {value{std::int32_t{1}}, value{std::int32_t{2}}};
  std::array<value, 1> body = {value::list(seq)};
  message_parts m;
  header hd;
  hd.durable = true;
  m.header = hd;
  m.message_annotations = value::map(ann);
  m.body = body_kind::amqp_sequence;
  m.body_sections = body;
  std::vector<std::byte> enc;
  REQUIRE(encode_append(m, enc));
  CHECK(describe_message(enc) ==
        "header(durable=true), message-annotations{:x-opt-partition=2}, amqp-sequence([1, 2])");
  CHECK(describe_message(as_bytes("zz")).starts_with("not a valid message: "));
}

TEST_CASE("trace: redact_secrets") {
  CHECK(redact_secrets("nothing to hide") == "nothing to hide");
  CHECK(redact_secrets("SharedAccessSignature sr=hub%2Fdevices%2Fd1&sig=AbC%2Bd%3D&se=16&skn=o") ==
        "SharedAccessSignature sr=hub%2Fdevices%2Fd1&sig=***&se=16&skn=o");
  CHECK(redact_secrets("SharedAccessSignature sig=abc") == "SharedAccessSignature sig=***");
  CHECK(redact_secrets("https://h/p?se=1&SIG=abc#f") == "https://h/p?se=1&SIG=***#f");
  CHECK(redact_secrets("a?x=sig%3Dabc%26se%3D1") == "a?x=sig%3D***%26se%3D1");
  CHECK(redact_secrets("HostName=h;SharedAccessKeyName=owner;SharedAccessKey=k3y=;x=1") ==
        "HostName=h;SharedAccessKeyName=owner;SharedAccessKey=***;x=1");
  CHECK(redact_secrets("user=u password=pw, next") == "user=u password=***, next");
  CHECK(redact_secrets("amqps://u:p%40ss@host:5671/q") == "amqps://u:***@host:5671/q");
  CHECK(redact_secrets("amqps://u@host/q") == "amqps://u@host/q");
  CHECK(redact_secrets("wss://host/path@x") == "wss://host/path@x");
  // Characters RFC 3986 wants escaped in a password, written as they are.
  CHECK(redact_secrets("amqps://u:pa/ss?w#rd@host/q x") == "amqps://u:***@host/q x");
  CHECK(redact_secrets("amqps://u:p@ss@host") == "amqps://u:***@host");
  CHECK(redact_secrets("sig=") == "sig=");
  CHECK(redact_secrets("\"sig=abc\"") == "\"sig=***\"");
}

TEST_CASE("trace: AMQP_TRACE values and prefixes") {
  CHECK(trace_frames_requested("frames"));
  CHECK(trace_frames_requested("FRAMES"));
  CHECK(trace_frames_requested("raw,frames"));
  CHECK(trace_frames_requested("raw; frames"));
  CHECK_FALSE(trace_frames_requested(""));
  CHECK_FALSE(trace_frames_requested("frame"));
  CHECK_FALSE(trace_frames_requested("framesx"));
  CHECK_FALSE(trace_frames_requested("0"));
  CHECK(trace_prefix(3, trace_direction::out) == "[3] -> ");
  CHECK(trace_prefix(12, trace_direction::in) == "[12] <- ");
}

TEST_SUITE_END();
