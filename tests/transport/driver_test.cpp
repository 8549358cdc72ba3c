// The engine driver against a scripted byte stream: when it reports the close to its owner
// (who may then destroy the engine), no read into the engine's buffer or write from it is
// still in flight.
#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <doctest/doctest.h>

#include "driver.hpp"

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
  void async_write(td::const_buffers, td::io_handler h) override { write = std::move(h); }
  void close() noexcept override { closed = true; }
  asio::any_io_executor executor() override { return io_.get_executor(); }
  [[nodiscard]] std::string peer() const override { return "scripted"; }

  std::span<std::byte> read_buffer{};
  td::io_handler read;
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
  REQUIRE(stream->read);  // and a read into the engine's buffer

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
