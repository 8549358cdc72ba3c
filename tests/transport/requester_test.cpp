// The requester (request/response over a link pair) against a node written directly on a
// server-role engine behind the listener: it answers each request with correlation-id =
// message-id on the link whose source is the node, as CBS and $management do.

#include <doctest/doctest.h>

#include "amqp/error.hpp"
#include "amqp/transport/blocking.hpp"
#include "amqp/transport/client.hpp"
#include "transport/support.hpp"

using namespace amqp;
using namespace amqp::transport;
using namespace std::chrono_literals;

namespace {

// A server whose only node "$echo" answers every request with its body, upper-cased, and
// status-code 200 in the application properties; requests with body "fail" get no answer.
class echo_node final : public test::raw_node {
protected:
  void on_attached(connection& c, const link_attached& la) override {
    if (la.remote.role == role::receiver) {
      reply_link_ = la.link; // our sender: source "$echo", target the reply address
    } else {
      (void)c.flow(la.link, 100);
    }
  }

  void on_event(connection& c, const event& e) override {
    if (const auto* d = std::get_if<delivery_received>(&e)) {
      auto v = decode_message(d->payload);
      REQUIRE(v);
      (void)c.settle(d->delivery, accepted{});
      const auto body = v->data();
      std::string text(reinterpret_cast<const char*>(body.data()), body.size());
      if (text == "fail") {
        return;
      }
      for (auto& ch : text) {
        ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      }
      CHECK(v->properties->reply_to == std::optional<std::string_view>("my-reply"));
      message_parts m;
      m.properties = properties{};
      m.properties->correlation_id = v->properties->message_id;
      const value kv[2] = {value("status-code"), value(std::int32_t{200})};
      m.application_properties = value::map(kv);
      const value sections[1] = {
          value(binary_view(reinterpret_cast<const std::byte*>(text.data()), text.size()))};
      m.body = body_kind::data;
      m.body_sections = sections;
      std::vector<std::byte> out;
      REQUIRE(encode_append(m, out));
      transfer_options t;
      t.payload = out;
      t.settled = true;
      REQUIRE(c.send(reply_link_, t));
    }
  }

private:
  link_id reply_link_{};
};

std::vector<std::byte> text_message(std::string_view text) {
  message_parts m;
  const value sections[1] = {
      value(binary_view(reinterpret_cast<const std::byte*>(text.data()), text.size()))};
  m.body = body_kind::data;
  m.body_sections = sections;
  std::vector<std::byte> out;
  (void)encode_append(m, out);
  return out;
}

} // namespace

TEST_CASE("transport: requester matches responses by correlation-id") {
  echo_node node;
  asio::io_context io;
  std::string why;
  auto l = listener::listen(io, "amqp://127.0.0.1:0", {}, node, &why);
  REQUIRE_MESSAGE(l, why);
  client c;
  requester q;
  std::vector<std::string> answers;
  std::size_t failures = 0;
  client::async_connect(
      io, "amqp://127.0.0.1:" + std::to_string(l->port()), {}, [&](std::error_code ec, client cl) {
        REQUIRE_FALSE(ec);
        c = cl;
        requester_options ro;
        ro.reply_to = "my-reply";
        c.async_open_requester("$echo", ro, [&](std::error_code e, requester rq) {
          REQUIRE_FALSE(e);
          q = rq;
          for (const char* text : {"one", "two", "three"}) {
            q.async_request(text_message(text), [&](std::error_code re, received_message m) {
              REQUIRE_FALSE(re);
              auto v = m.decode();
              REQUIRE(v);
              CHECK(v->application_properties.find("status-code")->as_int() == 200);
              const auto d = v->data();
              answers.emplace_back(reinterpret_cast<const char*>(d.data()), d.size());
            });
          }
          // Unanswered: fails when the requester is closed.
          q.async_request(text_message("fail"),
                          [&](std::error_code re, received_message) { failures += re ? 1U : 0U; });
        });
      });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (answers.size() < 3 && std::chrono::steady_clock::now() < deadline) {
    io.run_for(20ms);
  }
  CHECK(answers == std::vector<std::string>{"ONE", "TWO", "THREE"});
  bool closed = false;
  q.async_close([&](std::error_code) { c.async_close([&](std::error_code) { closed = true; }); });
  while (!closed && std::chrono::steady_clock::now() < deadline) {
    io.run_for(20ms);
  }
  CHECK(closed);
  CHECK(failures == 1);
  // Garbage is refused before anything is sent.
  std::error_code bad;
  q.async_request(std::vector<std::byte>{std::byte{1}},
                  [&](std::error_code e, received_message) { bad = e; });
  CHECK(bad);
}

TEST_CASE("transport: blocking requester, with a timeout for an unanswered request") {
  echo_node node;
  {
    const test::serving served(node);
    auto c = blocking_client::connect(served.url());
    REQUIRE(c);
    requester_options ro;
    ro.reply_to = "my-reply";
    auto q = c->open_requester("$echo", ro);
    REQUIRE(q);
    auto r = q->request(text_message("ping"), 5s);
    REQUIRE_MESSAGE(r, r.error().message());
    auto v = r->decode();
    REQUIRE(v);
    const auto d = v->data();
    CHECK(std::string(reinterpret_cast<const char*>(d.data()), d.size()) == "PING");
    auto none = q->request(text_message("fail"), 200ms);
    CHECK(none.error() == make_error_code(errc::timeout));
    CHECK(q->close());
    CHECK(c->close());
  }
}
