// The requester (request/response over a link pair) against a node written directly on a
// server-role engine behind the listener: it answers each request with correlation-id =
// message-id on the link whose source is the node, as CBS and $management do.

#include <algorithm>
#include <mutex>

#include <asio/co_spawn.hpp>
#include <asio/use_awaitable.hpp>
#include <doctest/doctest.h>

#include "amqp/error.hpp"
#include "amqp/transport/asio.hpp"
#include "amqp/transport/blocking.hpp"
#include "amqp/transport/client.hpp"
#include "transport/support.hpp"

using namespace amqp;
using namespace amqp::transport;
using namespace std::chrono_literals;

namespace {

// A server whose only node "$echo" answers every request with its body, upper-cased, and
// status-code 200 in the application properties; requests with body "fail" get no answer;
// "kill-link" gets none either, and its link is detached with amqp:link:detach-forced.
class echo_node final : public test::raw_node {
public:
  // What arrived, in order: "attach ADDRESS" (the target of the client's senders, the source
  // of its receivers) and "request BODY". Written on the server's thread.
  std::vector<std::string> log() {
    std::lock_guard lock(mutex_);
    return log_;
  }

protected:
  void on_attached(connection& c, const link_attached& la) override {
    {
      std::string address;
      if (la.remote.role == role::receiver && la.remote.source) {
        address = std::string(la.remote.source->address.value_or(""));
      } else if (la.remote.target) {
        if (const auto* t = std::get_if<target>(&*la.remote.target)) {
          address = std::string(t->address.value_or(""));
        }
      }
      std::lock_guard lock(mutex_);
      log_.push_back("attach " + address);
    }
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
      {
        std::lock_guard lock(mutex_);
        log_.push_back("request " + text);
      }
      if (text == "fail") {
        return;
      }
      if (text == "kill-link") {
        (void)c.detach(d->delivery.link, true,
                       amqp::error{symbol_view{"amqp:link:detach-forced"}, "scripted", value{}});
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
  std::mutex mutex_;
  std::vector<std::string> log_;
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

namespace {

// The echo node above, reached through a fault proxy, on a thread of its own.
struct echo_setup {
  echo_node node;
  test::serving served{node};
};

amqp::message text_request(std::string_view text) {
  const auto* p = reinterpret_cast<const std::byte*>(text.data());
  return amqp::message(std::span<const std::byte>(p, text.size()));
}

} // namespace

TEST_CASE("transport: requester with amqp::message; the response's body and properties") {
  echo_setup e;
  auto c = blocking_client::connect(e.served.url());
  REQUIRE(c);
  requester_options ro;
  ro.reply_to = "my-reply";
  auto q = c->open_requester("$echo", ro);
  REQUIRE(q);
  amqp::message req = text_request("hello");
  req.properties.subject = "kept"; // everything but message-id and reply-to goes as given
  auto r = q->request(req, 5s);
  REQUIRE_MESSAGE(r, r.error().message());
  CHECK(r->body_text() == "HELLO");
  CHECK(r->application_properties().get("status-code")->as_int() == 200);
  CHECK(r->properties().correlation_id.get().get_unsigned().has_value());
  CHECK(r->settled()); // accepted on arrival by the requester
  // An unencodable request fails at once and says why.
  amqp::message bad = text_request("x");
  bad.properties.content_encoding = "\xff";
  auto b = q->request(bad, 5s);
  REQUIRE_FALSE(b);
  CHECK(b.error() == make_error_code(errc::invalid_argument));
  CHECK(c->last_error().find("properties.content-encoding") != std::string::npos);
  CHECK(q->close());
  CHECK(c->close());
}

TEST_CASE("transport: requester timeouts forget the request; max_pending is a hard bound") {
  echo_setup e;
  asio::io_context io;
  client c;
  requester q;
  std::vector<std::error_code> results;
  client::async_connect(io, e.served.url(), {}, [&](std::error_code ec, client cl) {
    REQUIRE_FALSE(ec);
    c = cl;
    requester_options ro;
    ro.reply_to = "my-reply";
    ro.max_pending = 2;
    ro.timeout = 200ms;
    c.async_open_requester("$echo", ro, [&](std::error_code oe, requester rq) {
      REQUIRE_FALSE(oe);
      q = rq;
      auto record = [&](std::error_code re, received_message) { results.push_back(re); };
      q.async_request(text_request("fail"), record); // never answered
      q.async_request(text_request("fail"), record);
      q.async_request(text_request("one"), record); // over max_pending: at once
      CHECK(results == std::vector<std::error_code>{make_error_code(errc::resource_limit)});
    });
  });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (results.size() < 3 && std::chrono::steady_clock::now() < deadline) {
    io.run_for(20ms);
  }
  REQUIRE(results.size() == 3);
  CHECK(results[1] == make_error_code(errc::timeout));
  CHECK(results[2] == make_error_code(errc::timeout));
  // The timed-out requests no longer count: two more fit, and are answered.
  std::vector<std::string> answers;
  for (const char* text : {"a", "b"}) {
    q.async_request(text_request(text), [&](std::error_code re, received_message m) {
      REQUIRE_FALSE(re);
      answers.push_back(m.body_text().value_or("?"));
    });
  }
  while (answers.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    io.run_for(20ms);
  }
  CHECK(answers == std::vector<std::string>{"A", "B"});
  bool closed = false;
  c.async_close([&](std::error_code) { closed = true; });
  while (!closed && std::chrono::steady_clock::now() < deadline) {
    io.run_for(20ms);
  }
  CHECK(closed);
}

namespace {

// A node that refuses every link to "$missing" (§2.6.3) and echoes like echo_node otherwise.
class refusing_node final : public test::raw_node {
protected:
  void answer(const link_attached& la, link_options& o) override {
    const auto* t = la.remote.target ? std::get_if<target>(&*la.remote.target) : nullptr;
    const bool to_missing =
        (la.remote.source &&
         la.remote.source->address == std::optional<std::string_view>("$missing")) ||
        (t != nullptr && t->address == std::optional<std::string_view>("$missing"));
    if (to_missing) {
      refused_.push_back(la.link);
      if (la.remote.role == role::sender) {
        o.target.reset();
      } else {
        o.source.reset();
      }
    }
  }
  void on_attached(connection& c, const link_attached& la) override {
    if (std::find(refused_.begin(), refused_.end(), la.link) != refused_.end()) {
      (void)c.detach(la.link, true,
                     amqp::error{symbol_view{symbol::not_found}, "no node '$missing'", value{}});
    }
  }

private:
  std::vector<link_id> refused_;
};

} // namespace

TEST_CASE("transport: a requester the peer refuses: remote_error, with the condition") {
  refusing_node node;
  const test::serving served(node);
  auto c = blocking_client::connect(served.url());
  REQUIRE(c);
  auto q = c->open_requester("$missing");
  REQUIRE_FALSE(q);
  CHECK(q.error() == make_error_code(errc::remote_error));
  const auto text = c->last_error();
  CHECK(text.find("refused to attach") != std::string::npos);
  CHECK(text.find("'$missing' of a requester") != std::string::npos);
  CHECK(text.find("amqp:not-found: no node '$missing'") != std::string::npos);
  CHECK(c->close());
}

TEST_CASE("transport: requester across a reconnect: requests in flight fail, later ones work") {
  echo_setup e;
  test::fault_proxy proxy(e.served.port());
  asio::io_context io;
  client c;
  requester q;
  std::vector<std::string> answers;
  std::vector<std::error_code> failures;
  client_options o;
  o.reconnect.enabled = true;
  o.reconnect.initial_delay = 10ms;
  client::async_connect(
      io, "amqp://127.0.0.1:" + std::to_string(proxy.port()), o,
      [&](std::error_code ec, client cl) {
        REQUIRE_FALSE(ec);
        c = cl;
        requester_options ro;
        ro.reply_to = "my-reply";
        c.async_open_requester("$echo", ro, [&](std::error_code oe, requester rq) {
          REQUIRE_FALSE(oe);
          q = rq;
          q.async_request(text_request("fail"), // in flight when cut
                          [&](std::error_code re, received_message) { failures.push_back(re); });
        });
      });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!q && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
  REQUIRE(q);
  io.run_for(50ms); // the request goes out
  proxy.cut();
  while (failures.empty() && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
  REQUIRE(failures.size() == 1);
  CHECK(failures[0]);
  // Sent while the client reconnects: waits for the new links, then is answered.
  q.async_request(text_request("again"), [&](std::error_code re, received_message m) {
    CHECK_FALSE(re);
    answers.push_back(m.body_text().value_or("?"));
  });
  while (answers.empty() && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
  CHECK(answers == std::vector<std::string>{"AGAIN"});
  CHECK(c.reconnects() >= 1);
  bool closed = false;
  c.async_close([&](std::error_code) { closed = true; });
  while (!closed && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
}

TEST_CASE("transport: requester from coroutines: async_open_requester, async_request, "
          "async_close") {
  echo_setup e;
  asio::io_context io;
  std::string failure;
  std::vector<std::string> answers;
  bool done = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        const std::string url = e.served.url();
        const client_options co;
        requester_options ro;
        ro.reply_to = "my-reply";
        auto c = co_await async_connect(io, url, co, asio::use_awaitable);
        auto q = co_await async_open_requester(c, "$echo", ro, asio::use_awaitable);
        const amqp::message one = text_request("one");
        auto r1 = co_await async_request(q, one, asio::use_awaitable);
        answers.push_back(r1.body_text().value_or("?"));
        const auto two = text_message("two");
        auto r2 = co_await async_request(q, two, asio::use_awaitable);
        answers.push_back(r2.body_text().value_or("?"));
        co_await async_close(q, asio::use_awaitable);
        co_await async_close(c, asio::use_awaitable);
        done = true;
      },
      [&](std::exception_ptr ex) {
        if (ex) {
          try {
            std::rethrow_exception(ex);
          } catch (const std::exception& x) {
            failure = x.what();
          }
        }
      });
  io.run_for(10s);
  CHECK(failure.empty());
  CHECK(done);
  CHECK(answers == std::vector<std::string>{"ONE", "TWO"});
}

TEST_CASE("transport: before_links runs on every connection, before the links attach") {
  echo_setup e;
  test::fault_proxy proxy(e.served.port());
  asio::io_context io;
  client_options o;
  o.reconnect.enabled = true;
  o.reconnect.initial_delay = 10ms;
  requester login;
  int runs = 0;
  // A login over a requester, as IoT Hub's CBS put-token: the requester attaches first, the
  // data link only once the login's response is in.
  o.before_links = [&](client& c, std::function<void(std::error_code)> done) {
    ++runs;
    auto request = [done](requester q) {
      q.async_request(text_request("login"),
                      [done](std::error_code ec, received_message) { done(ec); });
    };
    if (login) {
      request(login);
      return;
    }
    requester_options ro;
    ro.reply_to = "my-reply";
    c.async_open_requester("$echo", ro, [&login, request](std::error_code ec, requester q) {
      REQUIRE_FALSE(ec);
      login = q;
      request(q);
    });
  };
  client c;
  sender s;
  client::async_connect(io, "amqp://127.0.0.1:" + std::to_string(proxy.port()), o,
                        [&](std::error_code ec, client cl) {
                          REQUIRE_FALSE(ec);
                          CHECK(runs == 1); // the connect completes after it
                          c = cl;
                          c.async_open_sender("data", {}, [&](std::error_code se, sender sn) {
                            REQUIRE_FALSE(se);
                            s = sn;
                          });
                        });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!s && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
  REQUIRE(s);
  const std::vector<std::string> one{"attach $echo", "attach $echo", "request login",
                                     "attach data"};
  CHECK(e.node.log() == one);
  // After a cut the login runs again before the sender attaches again.
  proxy.cut();
  auto two = one;
  two.insert(two.end(), one.begin(), one.end());
  while (e.node.log().size() < two.size() && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
  CHECK(e.node.log() == two);
  CHECK(runs == 2);
  CHECK(c.reconnects() >= 1);
  bool closed = false;
  c.async_close([&](std::error_code) { closed = true; });
  while (!closed && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
}

TEST_CASE("transport: a before_links failure fails the connect with its error; no link attaches") {
  echo_setup e;
  asio::io_context io;
  client_options o;
  o.reconnect.enabled = true; // not retried: the first connect reports its failure
  o.before_links = [](client&, std::function<void(std::error_code)> done) {
    done(make_error_code(errc::unauthorized));
  };
  std::optional<std::error_code> result;
  std::string why;
  client::async_connect(io, e.served.url(), o, [&](std::error_code ec, client cl) {
    result = ec;
    why = cl.last_error();
    CHECK_FALSE(cl);
  });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!result && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
  REQUIRE(result);
  CHECK(*result == make_error_code(errc::unauthorized));
  CHECK(why.find("before_links") != std::string::npos);
  CHECK(e.node.log().empty());
}

TEST_CASE("transport: the peer detaches a requester's link with an error: the pair attaches "
          "again, the request in flight fails with connection_lost, later ones are answered") {
  echo_setup e;
  asio::io_context io;
  client c;
  requester q;
  int reattached = 0;
  std::vector<std::string> answers;
  std::optional<std::error_code> killed;
  client_options o; // no reconnect: a re-attach needs none
  o.reconnect.initial_delay = 10ms;
  o.reconnect.max_delay = 50ms;
  client::async_connect(io, e.served.url(), o, [&](std::error_code ec, client cl) {
    REQUIRE_FALSE(ec);
    c = cl;
    requester_options ro;
    ro.reply_to = "my-reply";
    ro.on_reattached = [&] { ++reattached; };
    c.async_open_requester("$echo", ro, [&](std::error_code oe, requester rq) {
      REQUIRE_FALSE(oe);
      q = rq;
      q.async_request(text_request("one"), [&](std::error_code re, received_message m) {
        CHECK_FALSE(re);
        answers.push_back(m.body_text().value_or("?"));
        q.async_request(text_request("kill-link"), [&](std::error_code ke, received_message) {
          killed = ke;
          // Made while the links attach again: waits for them.
          q.async_request(text_request("two"), [&](std::error_code te, received_message m2) {
            CHECK_FALSE(te);
            answers.push_back(m2.body_text().value_or("?"));
          });
        });
      });
    });
  });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (answers.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
  CHECK(answers == std::vector<std::string>{"ONE", "TWO"});
  REQUIRE(killed);
  CHECK(*killed == make_error_code(errc::connection_lost));
  CHECK(reattached == 1);
  CHECK(c.relinks() == 1);
  CHECK(c.reconnects() == 0);
  const auto log = e.node.log();
  CHECK(std::count(log.begin(), log.end(), "attach $echo") == 4); // the pair, twice
  bool closed = false;
  c.async_close([&](std::error_code) { closed = true; });
  while (!closed && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
}
