#include "driver.hpp"

#include <chrono>

#include <asio/error.hpp>

namespace amqp::transport::detail {
namespace {

// Bytes offered to each read: large enough for a socket buffer's worth of small frames.
constexpr std::size_t read_chunk = std::size_t{64} * 1024;

time_point now() {
  return std::chrono::steady_clock::now();
}

} // namespace

engine_driver::engine_driver(std::shared_ptr<byte_stream> stream, amqp::connection& engine,
                             owner& o, trace_hook trace)
    : stream_(std::move(stream)), engine_(engine), owner_(&o), trace_(std::move(trace)),
      timer_(stream_->executor()) {}

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
  const auto buffer = engine_.read_buffer(read_chunk);
  if (buffer.empty()) {
    return;
  }
  reading_ = true;
  read_span_ = buffer;
  stream_->async_read_some(buffer, [self = shared_from_this()](std::error_code ec, std::size_t n) {
    self->on_read(ec, n);
  });
}

void engine_driver::on_read(std::error_code ec, std::size_t n) {
  reading_ = false;
  if (closed_) {
    report_closed_when_idle();
    return;
  }
  if (ec) {
    stream_ended(ec);
    return;
  }
  if (trace_) {
    trace_(false, read_span_.first(n)); // before the engine consumes them
  }
  // Errors stick in the engine and surface as connection_closed events; the engine has
  // queued its close frame, which flush() writes.
  (void)engine_.read_done(n, now());
  notify_activity();
  kick();
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
  engine_.on_deadline(now());
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
