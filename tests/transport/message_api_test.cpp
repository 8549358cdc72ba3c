// Messages as users meet them: amqp::message sent as it is, received messages read as text,
// bytes and sections, against the in-memory broker on loopback.
#include <algorithm>
#include <mutex>

#include <asio/io_context.hpp>
#include <doctest/doctest.h>

#include "amqp/error.hpp"
#include "amqp/transport/blocking.hpp"
#include "transport/support.hpp"

using namespace amqp;
using namespace amqp::transport;
using namespace std::chrono_literals;

namespace {

std::string broker_url(test::broker_server& b) {
  const auto port = b.listen("amqp://127.0.0.1:0");
  b.start();
  return "amqp://127.0.0.1:" + std::to_string(port);
}

// A node that accepts every message sent to it and records each transfer's message-format.
class format_sink final : public test::raw_node {
public:
  std::vector<std::uint32_t> formats() {
    const std::lock_guard lock(mu_);
    return formats_;
  }

protected:
  void on_attached(connection& c, const link_attached& la) override {
    if (la.remote.role == role::sender) {
      (void)c.flow(la.link, 100);
    }
  }
  void on_event(connection& c, const event& e) override {
    if (const auto* d = std::get_if<delivery_received>(&e)) {
      {
        const std::lock_guard lock(mu_);
        formats_.push_back(d->message_format);
      }
      (void)c.settle(d->delivery, accepted{});
    }
  }

private:
  std::mutex mu_;
  std::vector<std::uint32_t> formats_;
};

} // namespace

// A sender's transfer carries the message-format given (AMQP 1.0 §2.7.5), e.g. IoT Hub's batch
// format 0x80013700; the other sends keep 0.
TEST_CASE("message api: async_send with a message-format puts it on the transfer") {
  format_sink node;
  const test::serving served(node);
  asio::io_context io;
  client c;
  sender s;
  std::vector<state_kind> outcomes;
  client::async_connect(io, served.url(), {}, [&](std::error_code ec, client cl) {
    REQUIRE_FALSE(ec);
    c = cl;
    c.async_open_sender("sink", {}, [&](std::error_code oe, sender sn) {
      REQUIRE_FALSE(oe);
      s = sn;
      const auto bytes = amqp::message("m").encode().value();
      auto record = [&](std::error_code se, delivery_outcome o) {
        CHECK_FALSE(se);
        outcomes.push_back(o.state);
      };
      s.async_send(bytes, 0x80013700, record);
      s.async_send(bytes, record);
      s.async_send(amqp::message("m"), record);
      s.async_send(bytes, 7, record);
    });
  });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (outcomes.size() < 4 && std::chrono::steady_clock::now() < deadline) {
    io.run_for(20ms);
  }
  CHECK(outcomes == std::vector<state_kind>(4, state_kind::accepted));
  CHECK(node.formats() == std::vector<std::uint32_t>{0x80013700, 0, 0, 7});
}

// The path of Qpid Proton C++'s `proton::message m("hello")`: one message to a queue and
// back, in as few lines as the API allows while every step's error can still be seen.
TEST_CASE("message api: hello through the broker in a few lines") {
  test::broker_server b;
  const auto url = broker_url(b);

  std::string why;
  auto c = blocking_client::connect(url, {}, &why);
  REQUIRE_MESSAGE(c, why);
  auto sent = c->open_sender("q")->send(amqp::message("hello"));
  REQUIRE(sent);
  CHECK(sent->state == state_kind::accepted);
  auto r = c->open_receiver("q");
  auto m = r->receive(5s);
  REQUIRE(m);
  CHECK(m->body_text() == "hello");
  CHECK(r->accept(*m));

  CHECK(b.depth("q") == 0);
  CHECK(c->close());
}

TEST_CASE("message api: every section of a sent amqp::message comes back") {
  test::broker_server b;
  const auto url = broker_url(b);
  auto c = blocking_client::connect(url);
  REQUIRE(c);
  auto s = c->open_sender("sections");
  REQUIRE(s);

  amqp::message out("payload");
  out.header = amqp::header{};
  out.header->durable = true;
  out.header->priority = 7;
  out.message_annotations.set("x-opt-partition-key", "pk-1");
  out.properties.message_id = "order-42";
  out.properties.subject = "orders";
  out.properties.content_type = "text/plain";
  out.application_properties.set("priority", "high");
  out.application_properties.set("count", std::int32_t{3});
  out.footer.set("x-checksum", std::uint32_t{1234});
  auto sent = s->send(out);
  REQUIRE_MESSAGE(sent, sent.error().message());
  CHECK(sent->state == state_kind::accepted);

  const std::byte raw[3] = {std::byte{0}, std::byte{0xff}, std::byte{7}};
  REQUIRE(s->send(amqp::message(std::span<const std::byte>(raw))));

  auto r = c->open_receiver("sections");
  REQUIRE(r);
  auto m = r->receive(5s);
  REQUIRE(m);
  CHECK(m->body_text() == "payload");
  REQUIRE(m->header());
  CHECK(m->header()->durable);
  CHECK(m->header()->priority == 7);
  CHECK(m->message_annotations().get("x-opt-partition-key")->get_string() ==
        std::optional<std::string_view>("pk-1"));
  CHECK(m->properties().message_id == owned_value("order-42"));
  CHECK(m->properties().subject == std::optional<std::string>("orders"));
  CHECK(m->properties().content_type == std::optional<std::string>("text/plain"));
  CHECK(m->application_properties().get("priority")->get_string() ==
        std::optional<std::string_view>("high"));
  CHECK(m->application_properties().get("count")->as_int() == 3);
  CHECK(m->footer().get("x-checksum")->get_unsigned() == std::optional<std::uint64_t>(1234));
  // The owned decode: every section, as sent (the broker adds nothing here).
  auto whole = m->message();
  REQUIRE(whole);
  CHECK(whole->properties == out.properties);
  CHECK(whole->application_properties == out.application_properties);
  CHECK(whole->body_text() == "payload");
  CHECK(r->accept(*m));

  auto bin = r->receive(5s);
  REQUIRE(bin);
  CHECK(bin->body_bytes() == std::vector<std::byte>(std::begin(raw), std::end(raw)));
  CHECK_FALSE(bin->body_text()); // 0xff is not UTF-8
  CHECK(r->accept(*bin));
  CHECK(c->close());
}

namespace {

// Sends one transfer whose payload is not a message to every link that gives it credit.
class garbage_node final : public test::raw_node {
protected:
  void on_event(connection& c, const event& e) override {
    if (const auto* lf = std::get_if<link_flow>(&e); lf != nullptr && lf->credit > 0 && !sent_) {
      sent_ = true;
      const std::byte payload[3] = {std::byte{0x00}, std::byte{0x53}, std::byte{0x99}};
      transfer_options t;
      t.payload = payload;
      t.settled = true;
      REQUIRE(c.send(lf->link, t));
    }
  }

private:
  bool sent_ = false;
};

} // namespace

TEST_CASE("message api: a received message that does not decode says why and has no sections") {
  garbage_node node;
  const test::serving served(node);
  auto c = blocking_client::connect(served.url());
  REQUIRE(c);
  auto r = c->open_receiver("garbage");
  REQUIRE(r);
  auto m = r->receive(5s);
  REQUIRE(m);
  CHECK(m->bytes().size() == 3);
  auto whole = m->message();
  REQUIRE_FALSE(whole);
  CHECK(whole.error() == make_error_code(errc::decode_error));
  CHECK_FALSE(m->body_text());
  CHECK_FALSE(m->body_bytes());
  CHECK_FALSE(m->header());
  CHECK(m->properties().empty());
  CHECK(m->application_properties().empty());
  CHECK(c->close());
}

TEST_CASE("message api: copies of a received message share what was decoded") {
  test::broker_server b;
  const auto url = broker_url(b);
  auto c = blocking_client::connect(url);
  REQUIRE(c);
  auto s = c->open_sender("copies");
  REQUIRE(s);
  amqp::message out("shared");
  out.properties.subject = "s";
  REQUIRE(s->send(out));
  auto r = c->open_receiver("copies");
  REQUIRE(r);
  auto m = r->receive(5s);
  REQUIRE(m);
  const received_message before = *m; // copied before anything was decoded
  const auto& props = m->properties();
  const received_message after = *m; // copied after
  CHECK(&after.properties() == &props);
  CHECK(&before.properties() != &props);
  CHECK(before.properties() == props);
  CHECK(r->accept(*m));
  CHECK(c->close());
}

// Regression: a blocking_receiver used as a temporary stayed attached with its credit, so the
// broker kept sending it messages nobody could receive; the next receiver got none of them.
TEST_CASE("message api: a temporary receiver leaves nothing attached behind") {
  test::broker_server b;
  const auto url = broker_url(b);
  auto c = blocking_client::connect(url);
  REQUIRE(c);
  auto s = c->open_sender("temp");
  REQUIRE(s);
  REQUIRE(s->send(amqp::message("first")));
  REQUIRE(s->send(amqp::message("second")));

  auto m = c->open_receiver("temp")->receive(5s); // the receiver is gone after this line
  REQUIRE(m);
  CHECK(m->body_text() == "first");

  // Not settled by anyone: both messages go to the next receiver.
  auto r = c->open_receiver("temp");
  REQUIRE(r);
  std::vector<std::string> texts;
  for (int i = 0; i < 2; ++i) {
    auto n = r->receive(5s);
    REQUIRE_MESSAGE(n, n.error().message());
    texts.push_back(n->body_text().value_or("?"));
    CHECK(r->accept(*n));
  }
  std::sort(texts.begin(), texts.end());
  CHECK(texts == std::vector<std::string>{"first", "second"});
  CHECK(c->close());
}
