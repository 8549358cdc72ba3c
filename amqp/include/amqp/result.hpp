// result<T>: a value or a std::error_code, with the member names of std::expected.
#pragma once

#include <cstdlib>
#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

#include "amqp/error.hpp"

namespace amqp {

namespace detail {
[[noreturn]] inline void bad_result_access() noexcept {
  std::abort();
}
} // namespace detail

// Holds either a T or an error code. Accessing the value of an error result, or the error
// of a value result, is a programmer error and aborts. Like std::expected<T, error_code>.
template <class T> class [[nodiscard]] result {
public:
  using value_type = T;

  result() requires std::is_default_constructible_v<T> : has_(true) { new (&val_) T(); }
  result(const T& v) : has_(true) { new (&val_) T(v); }
  result(T&& v) noexcept(std::is_nothrow_move_constructible_v<T>) : has_(true) {
    new (&val_) T(std::move(v));
  }
  result(std::error_code ec) noexcept : has_(false) { new (&err_) std::error_code(ec); }
  result(errc e) noexcept : result(make_error_code(e)) {}

  result(const result& o) : has_(o.has_) {
    if (has_) {
      new (&val_) T(o.val_);
    } else {
      new (&err_) std::error_code(o.err_);
    }
  }
  result(result&& o) noexcept(std::is_nothrow_move_constructible_v<T>) : has_(o.has_) {
    if (has_) {
      new (&val_) T(std::move(o.val_));
    } else {
      new (&err_) std::error_code(o.err_);
    }
  }
  result& operator=(const result& o) {
    if (this != &o) {
      destroy();
      has_ = o.has_;
      if (has_) {
        new (&val_) T(o.val_);
      } else {
        new (&err_) std::error_code(o.err_);
      }
    }
    return *this;
  }
  result& operator=(result&& o) noexcept(std::is_nothrow_move_constructible_v<T>) {
    if (this != &o) {
      destroy();
      has_ = o.has_;
      if (has_) {
        new (&val_) T(std::move(o.val_));
      } else {
        new (&err_) std::error_code(o.err_);
      }
    }
    return *this;
  }
  // A T whose destructor throws ends the program here, as in std::optional (the blocking
  // facades' destructors close their connection and may, in theory, throw).
  ~result() { destroy(); } // NOLINT(bugprone-exception-escape)

  [[nodiscard]] bool has_value() const noexcept { return has_; }
  explicit operator bool() const noexcept { return has_; }

  [[nodiscard]] T& value() & {
    check();
    return val_;
  }
  [[nodiscard]] const T& value() const& {
    check();
    return val_;
  }
  [[nodiscard]] T&& value() && {
    check();
    return std::move(val_);
  }
  [[nodiscard]] std::error_code error() const noexcept {
    if (has_) {
      detail::bad_result_access();
    }
    return err_;
  }

  T& operator*() & noexcept { return val_; }
  const T& operator*() const& noexcept { return val_; }
  T&& operator*() && noexcept { return std::move(val_); }
  T* operator->() noexcept { return &val_; }
  const T* operator->() const noexcept { return &val_; }

private:
  void check() const noexcept {
    if (!has_) {
      detail::bad_result_access();
    }
  }
  void destroy() noexcept { // NOLINT(bugprone-exception-escape): see ~result
    if (has_) {
      val_.~T();
    } else {
      err_.~error_code();
    }
  }
  union {
    T val_;
    std::error_code err_;
  };
  bool has_;
};

// result<void>: success or an error code.
template <> class [[nodiscard]] result<void> {
public:
  using value_type = void;
  result() noexcept = default;
  result(std::error_code ec) noexcept : err_(ec) {}
  result(errc e) noexcept : err_(make_error_code(e)) {}

  [[nodiscard]] bool has_value() const noexcept { return !err_; }
  explicit operator bool() const noexcept { return !err_; }
  void value() const noexcept {
    if (err_) {
      detail::bad_result_access();
    }
  }
  [[nodiscard]] std::error_code error() const noexcept { return err_; }

private:
  std::error_code err_;
};

} // namespace amqp
