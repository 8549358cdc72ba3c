// The client from C++20 coroutines through Asio completion tokens (amqp/transport/asio.hpp).
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/use_awaitable.hpp>
#include <doctest/doctest.h>

#include "amqp/transport/asio.hpp"
#include "transport/support.hpp"

using namespace amqp;
using namespace amqp::transport;

TEST_CASE("transport: coroutines: connect, send (bytes and amqp::message), receive, close every "
          "handle with asio::use_awaitable") {
  test::broker_server b;
  const auto port = b.listen("amqp://127.0.0.1:0");
  b.start();
  asio::io_context io;
  std::vector<std::string> ids;
  std::string text;
  std::string failure;
  bool done = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        // Arguments as named variables: GCC 12 mishandles temporaries (a braced `{}`) in a
        // co_await expression (destroyed twice).
        const std::string url = "amqp://127.0.0.1:" + std::to_string(port);
        const client_options co;
        const sender_options so;
        const receiver_options ro;
        auto c = co_await async_connect(io, url, co, asio::use_awaitable);
        auto s = co_await async_open_sender(c, "co", so, asio::use_awaitable);
        for (int i = 0; i < 3; ++i) {
          const auto bytes = test::make_message(std::to_string(i));
          auto out = co_await async_send(s, bytes, asio::use_awaitable);
          if (out.state != state_kind::accepted) {
            failure = "not accepted";
          }
        }
        amqp::message hello("hello");
        hello.properties.message_id = "3";
        auto sent = co_await async_send(s, hello, asio::use_awaitable);
        if (sent.state != state_kind::accepted) {
          failure = "amqp::message not accepted";
        }
        co_await async_close(s, asio::use_awaitable);
        auto r = co_await async_open_receiver(c, "co", ro, asio::use_awaitable);
        for (int i = 0; i < 4; ++i) {
          auto m = co_await async_receive(r, asio::use_awaitable);
          ids.push_back(test::message_id(m.bytes()));
          if (i == 3) {
            text = m.body_text().value_or("?");
          }
          (void)r.accept(m);
        }
        co_await async_close(r, asio::use_awaitable);
        co_await async_close(c, asio::use_awaitable);
        done = true;
      },
      [&](std::exception_ptr e) {
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& x) {
            failure = x.what();
          }
        }
      });
  io.run_for(std::chrono::seconds(10));
  CHECK(failure.empty());
  CHECK(done);
  CHECK(ids == std::vector<std::string>{"0", "1", "2", "3"});
  CHECK(text == "hello");

  // An error surfaces as std::system_error from co_await.
  asio::io_context io2;
  std::error_code seen;
  asio::co_spawn(
      io2,
      [&]() -> asio::awaitable<void> {
        const client_options co;
        try {
          (void)co_await async_connect(io2, "bad://url", co, asio::use_awaitable);
        } catch (const std::system_error& e) {
          seen = e.code();
        }
      },
      asio::detached);
  io2.run_for(std::chrono::seconds(5));
  CHECK(seen == make_error_code(errc::invalid_argument));
}
