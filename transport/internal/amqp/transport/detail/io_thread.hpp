// The I/O thread behind a blocking facade (transport's blocking_client and the IoT Hub
// clients' blocking_* classes): an io_context run by its own thread, the asynchronous client
// that lives on it, and calls posted to it and waited for with a promise. Internal: built
// into the libraries, never installed (it includes Asio).
//
// A call must never wait for an I/O thread that is gone. The mutex orders posting against
// stopping: a call posts only while the thread runs, and stop() turns that off before it stops
// the thread, then runs here whatever was posted before and not run yet. Those handlers find
// the client closed (or empty) and complete at once, so every waiter is answered.
#pragma once

#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

namespace amqp::transport::detail {

// `Client` is default-constructible (empty), movable, and has `std::string last_error()`.
template <typename Client> class io_thread {
public:
  asio::io_context io;
  Client c; // touched on the I/O thread only, until stop()

  io_thread() : thread_([this] { io.run(); }) {}
  // A failure to lock or join here leaves nothing to recover: std::terminate (a destructor is
  // noexcept) is the right end.
  ~io_thread() { stop(); } // NOLINT(bugprone-exception-escape)
  io_thread(const io_thread&) = delete;
  io_thread& operator=(const io_thread&) = delete;
  io_thread(io_thread&&) = delete;
  io_thread& operator=(io_thread&&) = delete;

  // Posts `f` to the I/O thread; false (and `f` dropped) once stop() has begun.
  template <typename F> bool post(F&& f) {
    const std::lock_guard lock(mu_);
    if (!running_) {
      return false;
    }
    asio::post(io, std::forward<F>(f));
    return true;
  }

  // Runs `f(promise)` on the I/O thread and returns what it sets; nullopt once stopped, and
  // when called from the I/O thread itself (waiting there would never end).
  template <typename T, typename F> std::optional<T> call(F&& f) {
    if (thread_.get_id() == std::this_thread::get_id()) {
      return std::nullopt;
    }
    std::promise<T> p;
    auto fut = p.get_future();
    if (!post([&p, &f] { f(p); })) {
      return std::nullopt;
    }
    return fut.get();
  }

  // Stops the I/O thread (idempotent). Calls made after this begins fail at once; those
  // posted before are completed here, after the client is emptied (its destructor runs on
  // this thread, the only one touching it now).
  void stop() {
    {
      const std::lock_guard lock(mu_);
      if (!running_) {
        return;
      }
      running_ = false;
    }
    work_.reset();
    io.stop();
    if (!thread_.joinable()) {
      return;
    }
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach(); // cannot happen through the public APIs; never join oneself
      return;
    }
    thread_.join();
    c = Client{};
    io.restart();
    io.poll();
  }

  // The client's last error, kept readable after the I/O thread is gone.
  std::string last_error() {
    {
      const std::lock_guard lock(mu_);
      if (!running_) {
        return final_error_;
      }
    }
    auto e =
        call<std::string>([this](std::promise<std::string>& p) { p.set_value(c.last_error()); });
    if (e) {
      return *e;
    }
    const std::lock_guard lock(mu_);
    return final_error_;
  }
  // On the I/O thread, before stop(): what last_error() returns afterwards.
  void keep_last_error() {
    const std::lock_guard lock(mu_);
    final_error_ = c.last_error();
  }

  // True for the first caller only: that one closes the client and stops the thread.
  bool begin_close() {
    const std::lock_guard lock(mu_);
    if (!running_ || closing_) {
      return false;
    }
    closing_ = true;
    return true;
  }
  // True once begin_close() has been called (or the thread stopped).
  bool closing() {
    const std::lock_guard lock(mu_);
    return closing_ || !running_;
  }

private:
  std::mutex mu_;
  bool running_ = true;     // guarded by mu_
  bool closing_ = false;    // guarded by mu_
  std::string final_error_; // guarded by mu_
  asio::executor_work_guard<asio::io_context::executor_type> work_{io.get_executor()};
  std::thread thread_; // last: started once everything above is built
};

} // namespace amqp::transport::detail
