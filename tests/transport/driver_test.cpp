// The engine driver against a scripted byte stream: when it reports the close to its owner
// (who may then destroy the engine), no read into the engine's buffer or write from it is
// still in flight; a quiet connection waits for input holding no buffer, and reads grow
// under load.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <doctest/doctest.h>

#include "driver.hpp"
#include "support/failing_resource.hpp"

using namespace amqp;
namespace td = amqp::transport::detail;

namespace {

// Operations complete only when the test says so. close() leaves them pending, as a TLS
// stream does with a read whose bytes already arrived: its completion still decodes into
// the buffer it was given.
class scripted_stream final : public td::byte_stream {
public:
  explicit scripted_stream(asio::io_context& io) : io_(io) {}
  void async_read_some(std::span<std::byte> buffer, td::io_handler h) override {
    read_buffer = buffer;
    read = std::move(h);
  }
  void async_wait_readable(std::function<void(std::error_code)> h) override { wait = std::move(h); }
  void async_write(td::const_buffers, td::io_handler h) override { write = std::move(h); }
  void close() noexcept override { closed = true; }
  asio::any_io_executor executor() override { return io_.get_executor(); }
  [[nodiscard]] std::string peer() const override { return "scripted"; }

  std::span<std::byte> read_buffer{};
  td::io_handler read;
  std::function<void(std::error_code)> wait;
  td::io_handler write;
  bool closed = false;

private:
  asio::io_context& io_;
};

struct recording_owner final : td::engine_driver::owner {
  amqp::connection* engine = nullptr;
  int closes = 0;
  void on_engine_activity() override {
    while (engine->next_event()) {
    }
  }
  void on_stream_closed(std::error_code) override { ++closes; }
};

} // namespace

TEST_CASE("transport: the driver reports a close only once no read or write is in flight") {
  asio::io_context io;
  auto stream = std::make_shared<scripted_stream>(io);
  connection_options o;
  o.role = connection_role::client;
  amqp::connection engine(o);
  REQUIRE(engine.open());
  recording_owner owner;
  owner.engine = &engine;
  auto driver = std::make_shared<td::engine_driver>(stream, engine, owner);
  driver->start();
  REQUIRE(stream->write); // the protocol header and open
  REQUIRE(stream->wait);  // and a wait for input
  CHECK_FALSE(stream->read);
  auto readable = std::move(stream->wait);
  readable({});
  REQUIRE(stream->read); // then a read into the engine's buffer

  SUBCASE("the write fails while the read is in flight") {
    auto write = std::move(stream->write);
    write(asio::error::connection_reset, 0);
    CHECK(stream->closed);
    CHECK(owner.closes == 0); // the engine must live on: the read still fills its buffer
    // The late completion writes into the engine's buffer, then the close is reported.
    stream->read_buffer[0] = std::byte{'A'};
    auto read = std::move(stream->read);
    read({}, 1);
    CHECK(owner.closes == 1);
  }
  SUBCASE("aborted with both in flight: reported after the last one completes") {
    driver->abort();
    CHECK(stream->closed);
    CHECK(owner.closes == 0);
    auto read = std::move(stream->read);
    read(asio::error::operation_aborted, 0);
    CHECK(owner.closes == 0); // the write still reads the engine's output
    auto write = std::move(stream->write);
    write(asio::error::operation_aborted, 0);
    CHECK(owner.closes == 1);
  }
}

namespace {

// What a server sends a client that opened: its protocol header and open (its container-id
// long enough for a multiple of 8 bytes), then empty frames (heartbeats, AMQP 1.0 §2.4.5) up
// to `size` bytes.
std::vector<std::byte> server_bytes(amqp::connection& client, std::size_t size) {
  const auto out = client.pending_output();
  std::vector<std::byte> bytes;
  for (std::string id = "server"; bytes.empty() || bytes.size() % 8 != 0; id += "x") {
    connection_options so;
    so.role = connection_role::server;
    so.container_id = id;
    amqp::connection server(so);
    REQUIRE(server.open());
    REQUIRE(server.receive(out, {}));
    const auto answer = server.pending_output();
    bytes.assign(answer.begin(), answer.end());
  }
  constexpr std::byte empty_frame[] = {std::byte{0}, std::byte{0}, std::byte{0}, std::byte{8},
                                       std::byte{2}, std::byte{0}, std::byte{0}, std::byte{0}};
  while (bytes.size() + 8 <= size) {
    bytes.insert(bytes.end(), std::begin(empty_frame), std::end(empty_frame));
  }
  REQUIRE(bytes.size() == size);
  return bytes;
}

void deliver(scripted_stream& s, std::span<const std::byte> bytes) {
  REQUIRE(s.read);
  REQUIRE(bytes.size() <= s.read_buffer.size());
  std::memcpy(s.read_buffer.data(), bytes.data(), bytes.size());
  auto read = std::move(s.read);
  s.read = nullptr;
  read({}, bytes.size());
}

} // namespace

TEST_CASE("transport: the driver waits for input holding no buffer, and reads grow under load") {
  asio::io_context io;
  auto stream = std::make_shared<scripted_stream>(io);
  amqp::test::failing_resource memory;
  connection_options o;
  o.role = connection_role::client;
  o.memory = &memory;
  amqp::connection engine(o);
  REQUIRE(engine.open());
  // The server's bytes, made before the driver takes the client's output.
  const auto bytes = server_bytes(engine, 4096);
  recording_owner owner;
  owner.engine = &engine;
  auto driver = std::make_shared<td::engine_driver>(stream, engine, owner);
  driver->start();
  REQUIRE(stream->write); // the header and open, written at once
  auto written = std::move(stream->write);
  stream->write = nullptr;
  written({}, 0);
  const std::size_t idle = memory.outstanding_bytes();
  REQUIRE(stream->wait);
  CHECK_FALSE(stream->read);

  // Readable: a read of the smallest size (4 KiB).
  auto readable = std::move(stream->wait);
  stream->wait = nullptr;
  readable({});
  REQUIRE(stream->read);
  CHECK(stream->read_buffer.size() == 4096);
  CHECK(memory.outstanding_bytes() >= idle + 4096);

  // It fills the buffer: more is likely waiting, so the next read (twice the size) starts at
  // once, without a wait.
  deliver(*stream, bytes);
  CHECK(engine.state().remote == endpoint_status::active); // the server's open was read
  CHECK_FALSE(stream->wait);
  REQUIRE(stream->read);
  CHECK(stream->read_buffer.size() == 8192);

  // One heartbeat, at most a quarter of the buffer: the burst ended. The size goes back to
  // the smallest, and the driver waits with the engine's input buffer given back.
  const std::size_t reading = memory.outstanding_bytes();
  deliver(*stream, std::span<const std::byte>(bytes).last(8));
  CHECK_FALSE(stream->read);
  REQUIRE(stream->wait);
  CHECK(memory.outstanding_bytes() + 8192 <= reading);

  // Readable again: a 4 KiB buffer again.
  readable = std::move(stream->wait);
  stream->wait = nullptr;
  readable({});
  REQUIRE(stream->read);
  CHECK(stream->read_buffer.size() == 4096);

  // A read that got more than a quarter of its buffer (busy) keeps the size and reads again
  // at once, without a wait (the bytes are likely there already).
  std::vector<std::byte> beats;
  for (int i = 0; i < 200; ++i) {
    beats.insert(beats.end(), bytes.end() - 8, bytes.end());
  }
  deliver(*stream, beats);
  CHECK_FALSE(stream->wait);
  REQUIRE(stream->read);
  CHECK(stream->read_buffer.size() == 4096);
  // Then one heartbeat: quiet again, a wait.
  deliver(*stream, std::span<const std::byte>(bytes).last(8));
  CHECK_FALSE(stream->read);
  REQUIRE(stream->wait);
  readable = std::move(stream->wait);
  stream->wait = nullptr;
  readable({});
  REQUIRE(stream->read);
  CHECK(stream->read_buffer.size() == 4096);

  // Closed with a read in flight: reported once it completes.
  CHECK_FALSE(stream->write);
  driver->abort();
  CHECK(owner.closes == 0);
  auto read = std::move(stream->read);
  read(asio::error::operation_aborted, 0);
  CHECK(owner.closes == 1);
}

TEST_CASE("transport: a quiet connection waits with its small output buffers given back") {
  asio::io_context io;
  auto stream = std::make_shared<scripted_stream>(io);
  amqp::test::failing_resource memory;
  connection_options o;
  o.role = connection_role::client;
  o.memory = &memory;
  amqp::connection engine(o);
  REQUIRE(engine.open());
  const auto bytes = server_bytes(engine, 4096);
  recording_owner owner;
  owner.engine = &engine;
  auto driver = std::make_shared<td::engine_driver>(stream, engine, owner);
  driver->start();
  auto written = std::move(stream->write); // the header and open
  stream->write = nullptr;
  written({}, 0);
  auto readable = std::move(stream->wait);
  stream->wait = nullptr;
  readable({});
  // The server's open and heartbeats, a quarter of the buffer: quiet, the driver waits.
  deliver(*stream, std::span<const std::byte>(bytes).first(1024));
  REQUIRE(stream->wait);
  CHECK_FALSE(stream->write); // nothing to answer
  // The driver gave the output buffers back already: giving them back again frees nothing.
  std::size_t waiting = memory.outstanding_bytes();
  engine.release_output_buffers();
  CHECK(memory.outstanding_bytes() == waiting);
  // Output produced while it waits (as a server answers): once written, its buffers go too.
  REQUIRE(engine.begin());
  driver->kick();
  REQUIRE(stream->write);
  CHECK(stream->wait); // still waiting
  written = std::move(stream->write);
  stream->write = nullptr;
  written({}, 0);
  waiting = memory.outstanding_bytes();
  engine.release_output_buffers();
  CHECK(memory.outstanding_bytes() == waiting);
  CHECK(memory.mismatches() == 0);
  driver->abort();
  auto wait = std::move(stream->wait);
  wait(asio::error::operation_aborted);
  CHECK(owner.closes == 1);
}

TEST_CASE("transport: the driver reports a close after the wait for input in flight") {
  asio::io_context io;
  auto stream = std::make_shared<scripted_stream>(io);
  connection_options o;
  o.role = connection_role::client;
  amqp::connection engine(o);
  REQUIRE(engine.open());
  recording_owner owner;
  owner.engine = &engine;
  auto driver = std::make_shared<td::engine_driver>(stream, engine, owner);
  driver->start();
  REQUIRE(stream->wait);
  auto write = std::move(stream->write);
  write({}, 0);
  driver->abort();
  CHECK(stream->closed);
  CHECK(owner.closes == 0); // the wait is still in flight
  auto wait = std::move(stream->wait);
  wait(asio::error::operation_aborted);
  CHECK(owner.closes == 1);
  CHECK_FALSE(stream->read); // no read after the close
}

TEST_CASE("transport: the driver gives large output buffers back once output is quiet") {
  for (const bool quiet : {true, false}) {
    CAPTURE(quiet);
    asio::io_context io;
    auto stream = std::make_shared<scripted_stream>(io);
    amqp::test::failing_resource memory;
    connection_options o;
    o.role = connection_role::client;
    o.memory = &memory;
    amqp::connection engine(o);
    REQUIRE(engine.open());
    const auto bytes = server_bytes(engine, 4096);
    recording_owner owner;
    owner.engine = &engine;
    // Quiet at once, or not for an hour (the clock is the real one).
    auto driver = std::make_shared<td::engine_driver>(
        stream, engine, owner, td::engine_driver::trace_hook{},
        quiet ? std::chrono::steady_clock::duration::zero() : std::chrono::hours(1));
    driver->start();
    auto written = std::move(stream->write);
    stream->write = nullptr;
    written({}, 0);
    auto readable = std::move(stream->wait);
    stream->wait = nullptr;
    readable({});
    // The server's open and heartbeats, a quarter of the buffer: the driver waits again.
    deliver(*stream, std::span<const std::byte>(bytes).first(1024));
    REQUIRE(stream->wait);

    // 200 sessions (channel-max 255): a batch of about 7 KB, above 4 KiB.
    for (int i = 0; i < 200; ++i) {
      REQUIRE(engine.begin());
    }
    driver->kick();
    REQUIRE(stream->write);
    written = std::move(stream->write);
    stream->write = nullptr;
    written({}, 0);
    const std::size_t after_batch = memory.outstanding_bytes();

    // Input wakes the connection: with no large batch for output_quiet, the output buffers
    // (both, about 16 KB) go.
    readable = std::move(stream->wait);
    stream->wait = nullptr;
    readable({});
    REQUIRE(stream->read);
    const std::size_t read_buffer = stream->read_buffer.size();
    if (quiet) {
      CHECK(memory.outstanding_bytes() + 8192 <= after_batch + read_buffer);
    } else {
      CHECK(memory.outstanding_bytes() >= after_batch + read_buffer);
    }
    CHECK(memory.mismatches() == 0);
    driver->abort();
    auto read = std::move(stream->read);
    read(asio::error::operation_aborted, 0);
    CHECK(owner.closes == 1);
  }
}
