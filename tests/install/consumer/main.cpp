// A program built against the installed amqp (tests/install/run.sh), as a user would: it
// encodes a message and decodes it (amqp::amqp), sends it through an in-memory amqp::broker
// from a client engine and receives it back, and calls the blocking client of
// amqp::transport, so that the transport and its private dependencies (OpenSSL, Threads)
// are linked. Prints "consumer: ok" and exits 0, or says what failed and exits 1.
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <amqp/broker.hpp>
#include <amqp/connection.hpp>
#include <amqp/event.hpp>
#include <amqp/message.hpp>
#include <amqp/transport/blocking.hpp>
#include <amqp/transport/url.hpp>

namespace {

int fail(const char* what) {
  std::fprintf(stderr, "consumer: %s\n", what);
  return 1;
}

std::span<const std::byte> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string text_of(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// What the client saw, copied out of the events.
struct client_log {
  std::uint32_t sender_credit = 0;
  bool accepted = false;
  std::string received;
  std::optional<amqp::delivery_id> to_settle;
};

// Moves bytes between the client engine and the broker until neither has output, and pulls
// the client's events. False if it does not settle or a side fails.
bool pump(amqp::connection& client, amqp::broker::broker& b, amqp::broker::connection_handle h,
          amqp::link_id sender, client_log& log) {
  const amqp::time_point now{};
  for (int round = 0; round < 1000; ++round) {
    bool moved = false;
    if (auto out = client.pending_output(); !out.empty()) {
      if (!b.receive(h, out, now)) {
        return false;
      }
      client.consume_output(out.size());
      b.process(h, now);
      moved = true;
    }
    amqp::connection* server = b.engine(h);
    if (auto out = server->pending_output(); !out.empty()) {
      if (!client.receive(out, now)) {
        return false;
      }
      server->consume_output(out.size());
      b.on_output_written(h);
      moved = true;
    }
    while (auto e = client.next_event()) {
      moved = true;
      if (const auto* f = std::get_if<amqp::link_flow>(&*e); f && f->link == sender) {
        log.sender_credit = f->credit;
      } else if (const auto* u = std::get_if<amqp::delivery_updated>(&*e)) {
        log.accepted = u->state && std::holds_alternative<amqp::accepted>(*u->state);
      } else if (const auto* d = std::get_if<amqp::delivery_received>(&*e)) {
        auto m = amqp::decode_message(d->payload);
        log.received = m ? text_of(m->data()) : "<undecodable>";
        log.to_settle = d->delivery;
      }
    }
    if (!moved) {
      return true;
    }
  }
  return false;
}

} // namespace

int main() {
  // amqp::amqp: encode a message with one data section, decode it.
  const std::string body = "hello from an installed amqp";
  const amqp::value sections[1] = {amqp::value(bytes_of(body))};
  amqp::message_parts parts;
  parts.body = amqp::body_kind::data;
  parts.body_sections = sections;
  std::vector<std::byte> encoded;
  if (!amqp::encode_append(parts, encoded)) {
    return fail("encode failed");
  }
  auto decoded = amqp::decode_message(encoded);
  if (!decoded || text_of(decoded->data()) != body) {
    return fail("decode did not give the body back");
  }

  // amqp::broker: a client engine sends the message to queue q and receives it back.
  amqp::broker::broker b{amqp::broker::broker_options{}};
  const amqp::broker::connection_handle h = b.add_connection(amqp::time_point{});
  amqp::connection_options co;
  co.role = amqp::connection_role::client;
  co.container_id = "install-consumer";
  amqp::connection client(co);
  if (!client.open()) {
    return fail("open failed");
  }
  auto session = client.begin();
  if (!session) {
    return fail("begin failed");
  }
  amqp::link_options so;
  so.name = "sender";
  so.role = amqp::role::sender;
  so.source = amqp::source{};
  so.target = amqp::target{};
  so.target->address = "q";
  auto sender = client.attach(*session, so);
  amqp::link_options ro;
  ro.name = "receiver";
  ro.role = amqp::role::receiver;
  ro.source = amqp::source{};
  ro.source->address = "q";
  ro.target = amqp::target{};
  auto receiver = client.attach(*session, ro);
  if (!sender || !receiver || !client.flow(*receiver, 1)) {
    return fail("attach failed");
  }
  client_log log;
  if (!pump(client, b, h, *sender, log) || log.sender_credit == 0) {
    return fail("the broker granted no credit");
  }
  amqp::transfer_options t;
  t.payload = encoded;
  if (!client.send(*sender, t) || !pump(client, b, h, *sender, log)) {
    return fail("send failed");
  }
  if (!log.accepted) {
    return fail("the broker did not accept the message");
  }
  if (log.received != body || !log.to_settle) {
    return fail("the message did not come back from the broker");
  }
  if (!client.settle(*log.to_settle, amqp::accepted{}) || !client.close() ||
      !pump(client, b, h, *sender, log)) {
    return fail("settle or close failed");
  }

  // amqp::transport: URLs, and the blocking client (its I/O thread, TLS code and all),
  // refused before any socket is opened.
  auto u = amqp::transport::parse_url("amqps://user:secret@example.org/q");
  if (!u || u->port != 5671 || u->to_string() != "amqps://user:***@example.org/q") {
    return fail("parse_url");
  }
  if (amqp::transport::blocking_client::connect("http://127.0.0.1:1")) {
    return fail("the blocking client accepted an http:// URL");
  }

  std::printf("consumer: ok (%zu-byte message through the broker)\n", encoded.size());
  return 0;
}
