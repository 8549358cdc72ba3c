#include "driver.hpp"

#include <algorithm>
#include <chrono>

#include <asio/error.hpp>

namespace amqp::transport::detail {
namespace {

// Bytes offered to each read. A read that fills its buffer doubles the next one, up to a
// socket buffer's worth of small frames under load. A busy connection (the last read got more
// than a quarter of its buffer) reads again at once, keeping the size: the read finds the
// bytes already waiting without a round through the reactor, or waits for them holding the
// buffer. A read that got at most a quarter (a burst ended) sends the size back to the
// smallest, a frame or a few of a quiet connection, and the driver then waits for the socket
// to become readable holding no buffer (byte_stream::async_wait_readable); at that size the
// engine's input buffer is given back before each wait, so that thousands of idle
// connections hold none.
constexpr std::size_t min_read = std::size_t{4} * 1024;
constexpr std::size_t max_read = std::size_t{64} * 1024;
// Write batches above this leave the engine's output buffers that large: they are given back
// once no such batch has gone out for a while (output_quiet_, checked when input or a
// deadline wakes the connection: a sender under load would otherwise reallocate them at
// every batch).
constexpr std::size_t big_batch = std::size_t{4} * 1024;

time_point now() {
  return std::chrono::steady_clock::now();
}

} // namespace

engine_driver::engine_driver(std::shared_ptr<byte_stream> stream, amqp::connection& engine,
                             owner& o, trace_hook trace,
                             std::chrono::steady_clock::duration output_quiet)
    : stream_(std::move(stream)), engine_(engine), owner_(&o), trace_(std::move(trace)),
      timer_(stream_->executor()), output_quiet_(output_quiet) {}

void engine_driver::start() {
  started_ = true;
  kick();
}

void engine_driver::kick() {
  if (closed_ || !started_) {
    return;
  }
  flush();
  if (closed_) {
    return;
  }
  arm_timer();
  if (!reading_ && engine_.wants_read()) {
    start_read();
  }
  if (engine_.finished() && !writing_ && engine_.pending_output().empty()) {
    finish(end_error_);
  }
}

void engine_driver::start_read() {
  if (read_next_) {
    read_now();
    return;
  }
  if (read_size_ == min_read) {
    engine_.release_input_buffer();
    // Small output buffers go too (a frame or two of a quiet connection: cheap to allocate
    // again); large ones wait for release_quiet_output, or a sender of large batches reading
    // small dispositions would allocate them again for each batch.
    if (!writing_ && !output_grown_) {
      engine_.release_output_buffers();
    }
  }
  reading_ = true;
  waiting_ = true;
  stream_->async_wait_readable(
      [self = shared_from_this()](std::error_code ec) { self->on_readable(ec); });
}

void engine_driver::on_readable(std::error_code ec) {
  reading_ = false;
  waiting_ = false;
  if (read_stopped(ec)) {
    return;
  }
  if (output_grown_) {
    release_quiet_output(now());
  }
  // The engine may have stopped wanting input meanwhile (a SASL decision pending): kick()
  // starts the read again once it does.
  if (engine_.wants_read()) {
    read_now();
  }
}

void engine_driver::read_now() {
  const auto buffer = engine_.read_buffer(read_size_);
  if (buffer.empty()) {
    return;
  }
  reading_ = true;
  read_span_ = buffer;
  stream_->async_read_some(buffer, [self = shared_from_this()](std::error_code ec, std::size_t n) {
    self->on_read(ec, n);
  });
}

bool engine_driver::read_stopped(std::error_code ec) {
  if (closed_) {
    report_closed_when_idle();
    return true;
  }
  if (ec) {
    stream_ended(ec);
    return true;
  }
  return false;
}

void engine_driver::on_read(std::error_code ec, std::size_t n) {
  reading_ = false;
  if (read_stopped(ec)) {
    return;
  }
  if (trace_) {
    trace_(false, read_span_.first(n)); // before the engine consumes them
  }
  // Before the owner reacts: a read it starts (kick) has the new size.
  adapt_read_size(read_span_.size(), n);
  read_span_ = {};
  // Errors stick in the engine and surface as connection_closed events; the engine has
  // queued its close frame, which flush() writes.
  (void)engine_.read_done(n, now());
  notify_activity();
  kick();
}

void engine_driver::adapt_read_size(std::size_t offered, std::size_t n) {
  read_next_ = n > offered / 4;
  if (n == offered) {
    read_size_ = std::min(offered * 2, max_read);
  } else if (!read_next_) {
    read_size_ = min_read;
  }
}

void engine_driver::release_quiet_output(time_point t) {
  if (output_grown_ && t - big_batch_at_ >= output_quiet_) {
    engine_.release_output_buffers();
    output_grown_ = false;
  }
}

void engine_driver::flush() {
  if (writing_ || closed_) {
    return;
  }
  // The batch is written from the engine's own buffer (no copy); the engine appends to a
  // second one meanwhile, and gets the first back in on_write().
  const auto batch = engine_.take_output();
  if (batch.empty()) {
    return;
  }
  if (trace_) {
    trace_(true, batch);
  }
  writing_ = true;
  ++writes_;
  if (batch.size() > big_batch) {
    output_grown_ = true;
    big_batch_at_ = now();
  }
  const std::span<const std::byte> one[1] = {batch};
  stream_->async_write(
      one, [self = shared_from_this()](std::error_code e, std::size_t) { self->on_write(e); });
}

void engine_driver::on_write(std::error_code ec) {
  writing_ = false;
  if (closed_) {
    report_closed_when_idle();
    return;
  }
  engine_.output_written();
  if (ec) {
    stream_ended(ec);
    return;
  }
  if (owner_ != nullptr) {
    owner_->on_output_written();
  }
  kick();
  // A server answers while it waits for input: its answer is written once it waits already.
  // Small output buffers go then, as in start_read.
  if (!closed_ && waiting_ && !writing_ && !output_grown_ && read_size_ == min_read) {
    engine_.release_output_buffers();
  }
}

void engine_driver::arm_timer() {
  const auto d = engine_.next_deadline();
  if (!d) {
    if (timer_at_ != time_point::max()) {
      timer_at_ = time_point::max();
      timer_.cancel();
    }
    return;
  }
  const time_point at = *d == time_point::min() ? now() : *d;
  if (at == timer_at_) {
    return;
  }
  timer_at_ = at;
  timer_.expires_at(at);
  timer_.async_wait([self = shared_from_this(), at](std::error_code ec) {
    if (ec || self->closed_ || self->timer_at_ != at) {
      return;
    }
    self->on_timer();
  });
}

void engine_driver::on_timer() {
  timer_at_ = time_point::max();
  const time_point t = now();
  release_quiet_output(t);
  engine_.on_deadline(t);
  notify_activity();
  kick();
}

void engine_driver::stream_ended(std::error_code ec) {
  if (ec == asio::error::operation_aborted) {
    return;
  }
  end_error_ = ec;
  engine_.on_transport_closed();
  notify_activity();
  finish(ec);
}

void engine_driver::abort() {
  finish(asio::error::operation_aborted);
}

void engine_driver::finish(std::error_code ec) {
  if (closed_) {
    return;
  }
  closed_ = true;
  close_error_ = ec;
  timer_.cancel();
  stream_->close();
  report_closed_when_idle();
}

void engine_driver::report_closed_when_idle() {
  // A read in flight still fills the engine's input buffer when it completes (a TLS or
  // WebSocket stream decodes into it then, even after the close), and a write in flight
  // reads the engine's output batch: the owner, who destroys the engine once told, hears of
  // the close only when neither is left. Closing the stream makes both complete soon.
  if (reading_ || writing_ || owner_ == nullptr) {
    return;
  }
  auto* o = owner_;
  owner_ = nullptr;
  o->on_stream_closed(close_error_);
}

} // namespace amqp::transport::detail
