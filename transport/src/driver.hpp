// engine_driver: puts one sans-IO engine on one byte stream. Reads go straight into the
// engine's input buffer (read_buffer/read_done, no copy): small while the connection is quiet,
// growing under load, and the engine's buffers are given back when a burst ends
// (connection::release_buffers), so that idle connections hold little. Pending output is
// written one batch at a time (everything the engine has queued since the last write, in one
// gather write); the engine's next deadline is a timer, so heartbeats and timeouts run whether
// or not the application calls in. Everything happens on the stream's executor: the driver,
// its engine and its owner are single-threaded objects.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include <asio/steady_timer.hpp>

#include "amqp/connection.hpp"
#include "stream.hpp"

namespace amqp::transport::detail {

class engine_driver : public std::enable_shared_from_this<engine_driver> {
public:
  // The user of the engine: pulls its events and reacts.
  class owner {
  public:
    // Input was processed, a deadline ran or the stream ended: pull the engine's events.
    virtual void on_engine_activity() = 0;
    // A batch of output was written (output that did not fit may now be produced).
    virtual void on_output_written() {}
    // The stream is closed and no read or write into the engine's buffers is in flight any
    // more: the driver does nothing more, and the owner may destroy the engine.
    virtual void on_stream_closed(std::error_code ec) = 0;

  protected:
    ~owner() = default;
  };
  // Called with every chunk read (outgoing false) or written (true), e.g. a frame trace.
  using trace_hook = std::function<void(bool outgoing, std::span<const std::byte>)>;

  // After a write batch above 4 KiB the engine's output buffers are that large: they are
  // given back once no such batch has gone out for `output_quiet`.
  engine_driver(std::shared_ptr<byte_stream> stream, amqp::connection& engine, owner& o,
                trace_hook trace = {},
                std::chrono::steady_clock::duration output_quiet = std::chrono::seconds(1));

  // Starts reading, writes what the engine has queued, arms the deadline timer.
  void start();
  // After commands on the engine: writes its output, re-arms the timer, resumes reading.
  void kick();
  // Closes the stream now (pending operations are cancelled); on_stream_closed follows once
  // they have completed.
  void abort();
  // The owner is going away: no more calls into it (reads then go to the engine).
  void detach_owner() noexcept { owner_ = nullptr; }
  // Keeps `x` (e.g. the engine of an owner that is going away) alive as long as the driver,
  // i.e. until the operations in flight, which may still use the engine's buffers, are done.
  void keep_alive(std::shared_ptr<void> x) { kept_ = std::move(x); }
  [[nodiscard]] bool closed() const noexcept { return closed_; }
  [[nodiscard]] std::string peer() const { return stream_->peer(); }
  // System-level write batches so far (for benchmarks: at most one per batch of frames).
  [[nodiscard]] std::uint64_t writes() const noexcept { return writes_; }

private:
  void start_read();
  void on_readable(std::error_code ec);
  void read_now();
  void on_read(std::error_code ec, std::size_t n);
  // The size of the next read after one that got `n` bytes of `offered`.
  void adapt_read_size(std::size_t offered, std::size_t n);
  // Gives the engine's output buffers back if no large batch went out for a while.
  void release_quiet_output(time_point t);
  void flush();
  void on_write(std::error_code ec);
  void arm_timer();
  void on_timer();
  void stream_ended(std::error_code ec);
  // After a read or a wait for input: true if the driver was closed meanwhile or the stream
  // ended (`ec`), each reported; false if input is to be handled.
  bool read_stopped(std::error_code ec);
  void finish(std::error_code ec);
  void report_closed_when_idle();
  void notify_activity() {
    if (owner_ != nullptr) {
      owner_->on_engine_activity();
    }
  }

  std::shared_ptr<byte_stream> stream_;
  std::shared_ptr<void> kept_;
  amqp::connection& engine_;
  owner* owner_;
  trace_hook trace_;
  asio::steady_timer timer_;
  time_point timer_at_ = time_point::max();
  std::span<std::byte> read_span_{}; // the engine buffer the read in flight fills
  std::size_t read_size_ = 4096;     // bytes the next read asks for (driver.cpp: min_read)
  bool read_next_ = false;    // busy: the last read got over a quarter of its buffer: read at once
  bool output_grown_ = false; // a large batch went out: the output buffers are large
  time_point big_batch_at_{}; // when the last one did
  std::chrono::steady_clock::duration output_quiet_;
  bool reading_ = false; // a wait for input or a read is in flight
  bool waiting_ = false; // ... the wait
  bool writing_ = false;
  bool closed_ = false;
  bool started_ = false;
  std::error_code end_error_;
  std::error_code close_error_; // reported to the owner once no operation is in flight
  std::uint64_t writes_ = 0;
};

} // namespace amqp::transport::detail
