// Request/response over a link pair, against an in-memory server that answers like a CBS or
// management node: correlation-id = the request's message-id.
#include <map>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/request_response.hpp"
#include "support/engine_pair.hpp"

using namespace amqp;
using amqp::test::engine_pair;
using amqp::test::side;

namespace {

// The server's node: answers every request on the link whose source is the node, with the
// request's message-id as correlation-id and application property "status-code" 200 (or
// 404 for a request whose "operation" is not "put-token").
struct node {
  std::optional<link_id> reply_link;
  std::vector<std::byte> out;
  int answered = 0;
  bool silent = false;
  bool refuse_replies = false;                  // refuse the requester's receiving link (§2.6.3)
  std::vector<std::vector<std::byte>> requests; // every request, as received

  bool handle(connection& c, const event& e) {
    if (const auto* a = std::get_if<link_attached>(&e)) {
      link_options o;
      o.role = a->remote.role == role::sender ? role::receiver : role::sender;
      o.source = a->remote.source;
      if (refuse_replies && o.role == role::sender) {
        o.source.reset(); // no terminus: a refusal, and the detach follows
        (void)c.attach(a->link, o);
        (void)c.detach(a->link, true,
                       amqp::error{symbol_view{symbol::not_found}, "no such node", value{}});
        return true;
      }
      if (const auto* t = a->remote.target ? std::get_if<target>(&*a->remote.target) : nullptr) {
        o.target = *t;
      }
      (void)c.attach(a->link, o);
      if (o.role == role::receiver) {
        (void)c.flow(a->link, 100);
      } else {
        reply_link = a->link;
      }
      return true;
    }
    const auto* d = std::get_if<delivery_received>(&e);
    if (d == nullptr) {
      return false;
    }
    if (!d->settled) {
      (void)c.settle(d->delivery, accepted{});
    }
    (void)c.flow(d->delivery.link, 100); // keep the requester's credit up
    requests.emplace_back(d->payload.begin(), d->payload.end());
    auto req = decode_message(d->payload);
    REQUIRE(req);
    REQUIRE(req->properties);
    CHECK(req->properties->reply_to == std::optional<std::string_view>("$cbs-reply"));
    if (silent) {
      return true;
    }
    const auto op = req->application_properties.find("operation");
    const bool ok = op && op->get_string() == std::optional<std::string_view>("put-token");
    value app[] = {value("status-code"), value(std::int32_t{ok ? 200 : 404})};
    message_parts resp;
    resp.properties = properties{};
    resp.properties->correlation_id = req->properties->message_id;
    resp.application_properties = value::map(app);
    out.resize(*encoded_size(resp));
    REQUIRE(encode(resp, out));
    REQUIRE(reply_link);
    REQUIRE(c.send(*reply_link, {.payload = out}));
    ++answered;
    return true;
  }
};

message_parts put_token(std::string_view op) {
  static value app[2];
  app[0] = value("operation");
  app[1] = value(op);
  message_parts m;
  m.application_properties = value::map(app);
  return m;
}

} // namespace

TEST_CASE("request_response: requests are answered by correlation-id, in any number") {
  engine_pair p;
  node n;
  request_response rr;
  std::vector<std::pair<std::uint64_t, std::int64_t>> responses;
  p.on_event = [&](side s, connection& c, const event& e) {
    if (s == side::server) {
      return n.handle(c, e);
    }
    if (auto r = rr.on_event(c, e)) {
      auto code = r->message.application_properties.find("status-code");
      responses.emplace_back(r->request, code ? code->get_signed().value_or(-1) : -1);
    }
    return false;
  };
  auto ssn = p.open_session();
  REQUIRE(rr.open(p.client, ssn, {.address = "$cbs"}));
  CHECK_FALSE(rr.ready(p.client));
  CHECK(rr.request(p.client, put_token("put-token")).error() == errc::invalid_state);
  p.pump();
  REQUIRE(rr.ready(p.client));
  auto a = rr.request(p.client, put_token("put-token"));
  auto b = rr.request(p.client, put_token("delete-token"));
  REQUIRE(a);
  REQUIRE(b);
  CHECK(*a != *b);
  CHECK(rr.pending() == 2);
  p.pump();
  CHECK(rr.pending() == 0);
  REQUIRE(responses.size() == 2);
  CHECK(responses[0] == std::pair<std::uint64_t, std::int64_t>{*a, 200});
  CHECK(responses[1] == std::pair<std::uint64_t, std::int64_t>{*b, 404});
  // Many more than the receiver's credit (16): credit is topped up as responses arrive.
  for (int i = 0; i < 200; ++i) {
    REQUIRE(rr.request(p.client, put_token("put-token")));
    p.pump();
  }
  CHECK(responses.size() == 202);
  CHECK(n.answered == 202);
  REQUIRE(rr.close(p.client));
  p.pump();
  CHECK(rr.failed() == std::error_code{});
}

TEST_CASE("request_response: max_pending bounds outstanding requests; cancel frees one") {
  engine_pair p;
  node n;
  n.silent = true;
  request_response rr;
  p.on_event = [&](side s, connection& c, const event& e) {
    if (s == side::server) {
      return n.handle(c, e);
    }
    (void)rr.on_event(c, e);
    return false;
  };
  auto ssn = p.open_session();
  REQUIRE(rr.open(p.client, ssn, {.address = "$cbs", .max_pending = 3}));
  p.pump();
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 3; ++i) {
    auto r = rr.request(p.client, put_token("put-token"));
    REQUIRE(r);
    ids.push_back(*r);
  }
  CHECK(rr.request(p.client, put_token("put-token")).error() == errc::would_block);
  rr.cancel(ids[0]);
  CHECK(rr.request(p.client, put_token("put-token")));
  p.pump();
  CHECK(rr.pending() == 3);
}

TEST_CASE("request_response: a detached link fails the helper and drops pending requests") {
  engine_pair p;
  node n;
  n.silent = true;
  request_response rr;
  p.on_event = [&](side s, connection& c, const event& e) {
    if (s == side::server) {
      return n.handle(c, e);
    }
    (void)rr.on_event(c, e);
    return false;
  };
  auto ssn = p.open_session();
  REQUIRE(rr.open(p.client, ssn, {.address = "$cbs"}));
  p.pump();
  REQUIRE(rr.request(p.client, put_token("put-token")));
  p.pump();
  REQUIRE(n.reply_link);
  REQUIRE(p.server.detach(*n.reply_link, true,
                          amqp::error{symbol_view{symbol::unauthorized_access}, "no", value{}}));
  p.pump();
  CHECK(rr.failed() == make_error_code(errc::remote_error));
  CHECK(rr.pending() == 0);
  CHECK(rr.request(p.client, put_token("put-token")).error() == errc::remote_error);
}

TEST_CASE("request_response: a decoded message as a request: only its properties change") {
  engine_pair p;
  node n;
  request_response rr;
  std::vector<std::uint64_t> answered;
  p.on_event = [&](side s, connection& c, const event& e) {
    if (s == side::server) {
      return n.handle(c, e);
    }
    if (auto r = rr.on_event(c, e)) {
      answered.push_back(r->request);
    }
    return false;
  };
  auto ssn = p.open_session();
  REQUIRE(rr.open(p.client, ssn, {.address = "$cbs"}));
  p.pump();
  REQUIRE(rr.attached());

  // Every section, and properties with a message-id and reply-to of the caller's own.
  const value app[2] = {value("operation"), value("put-token")};
  const value ann[2] = {value(symbol_view{"x-opt-a"}), value(std::int32_t{1})};
  const value foot[2] = {value(symbol_view{"x-opt-f"}), value("f")};
  const std::byte payload[3] = {std::byte{1}, std::byte{2}, std::byte{3}};
  const value body[1] = {value(binary_view(payload))};
  message_parts m;
  m.header = header{};
  m.header->durable = true;
  m.message_annotations = value::map(ann);
  m.properties = properties{};
  m.properties->message_id = value("theirs");
  m.properties->reply_to = std::string_view("elsewhere");
  m.properties->subject = std::string_view("kept");
  m.application_properties = value::map(app);
  m.body = body_kind::data;
  m.body_sections = body;
  m.footer = value::map(foot);
  std::vector<std::byte> encoded;
  REQUIRE(encode_append(m, encoded));
  auto view = decode_message(encoded);
  REQUIRE(view);

  auto id = rr.request(p.client, *view);
  REQUIRE(id);
  p.pump();
  CHECK(answered == std::vector<std::uint64_t>{*id});
  REQUIRE(n.requests.size() == 1);
  auto sent = decode_message(n.requests[0]);
  REQUIRE(sent);
  REQUIRE(sent->properties);
  CHECK(sent->properties->message_id.get_unsigned() == std::optional<std::uint64_t>(*id));
  CHECK(sent->properties->reply_to == std::optional<std::string_view>("$cbs-reply"));
  CHECK(sent->properties->subject == std::optional<std::string_view>("kept"));
  for (section s : {section::header, section::message_annotations, section::application_properties,
                    section::data, section::footer}) {
    const auto a = sent->raw(s);
    const auto b = view->raw(s);
    CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));
  }

  // An amqp-value body and no other section.
  message_parts bare;
  const value text[1] = {value("just a body")};
  bare.body = body_kind::amqp_value;
  bare.body_sections = text;
  std::vector<std::byte> bare_bytes;
  REQUIRE(encode_append(bare, bare_bytes));
  auto bare_view = decode_message(bare_bytes);
  REQUIRE(bare_view);
  REQUIRE(rr.request(p.client, *bare_view));
  p.pump();
  REQUIRE(n.requests.size() == 2);
  auto second = decode_message(n.requests[1]);
  REQUIRE(second);
  CHECK(second->body_value().get_string() == std::optional<std::string_view>("just a body"));
  CHECK_FALSE(second->header);
}

TEST_CASE("request_response: a refused link is never attached; its detach fails the helper") {
  engine_pair p;
  node n;
  n.refuse_replies = true;
  request_response rr;
  bool saw_detach = false;
  p.on_event = [&](side s, connection& c, const event& e) {
    if (s == side::server) {
      return n.handle(c, e);
    }
    (void)rr.on_event(c, e);
    if (const auto* a = std::get_if<link_attached>(&e); a != nullptr && a->link == rr.receiver()) {
      CHECK_FALSE(rr.attached());           // refused: the attach carries no source
      CHECK(c.credit(*rr.receiver()) == 0); // and no credit is granted on it
    }
    saw_detach = saw_detach || std::holds_alternative<link_detached>(e);
    return false;
  };
  auto ssn = p.open_session();
  REQUIRE(rr.open(p.client, ssn, {.address = "$missing"}));
  p.pump();
  CHECK(saw_detach);
  CHECK_FALSE(rr.attached());
  CHECK(rr.failed() == make_error_code(errc::remote_error));
  CHECK(rr.request(p.client, put_token("put-token")).error() == errc::remote_error);
}
