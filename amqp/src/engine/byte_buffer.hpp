// byte_buffer: a growable byte array from a memory resource, appended with memcpy and grown
// without zero-filling (std::pmr::vector<std::byte> value-initialises and, for some
// iterator types, copies byte by byte). Used for the engine's input, output and
// reassembly buffers.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory_resource>
#include <span>
#include <utility>

namespace amqp::detail {

class byte_buffer {
public:
  byte_buffer() noexcept = default; // no storage until given a resource by assignment
  explicit byte_buffer(std::pmr::memory_resource* m) noexcept : mem_(m) {}
  ~byte_buffer() { release(); }
  byte_buffer(const byte_buffer&) = delete;
  byte_buffer& operator=(const byte_buffer&) = delete;
  byte_buffer(byte_buffer&& o) noexcept
      : mem_(o.mem_), data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)),
        cap_(std::exchange(o.cap_, 0)) {}
  byte_buffer& operator=(byte_buffer&& o) noexcept {
    if (this != &o) {
      release();
      mem_ = o.mem_;
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      cap_ = std::exchange(o.cap_, 0);
    }
    return *this;
  }

  void swap(byte_buffer& o) noexcept {
    std::swap(mem_, o.mem_);
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(cap_, o.cap_);
  }

  [[nodiscard]] std::byte* data() noexcept { return data_; }
  [[nodiscard]] const std::byte* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return cap_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::span<const std::byte> view() const noexcept { return {data_, size_}; }
  [[nodiscard]] std::span<std::byte> span() noexcept { return {data_, size_}; }

  void clear() noexcept { size_ = 0; }
  // Drops bytes from the end: size becomes `n` (n <= size()).
  void truncate(std::size_t n) noexcept { size_ = n; }
  // Extends the size by `n` uninitialised bytes and returns where they start. May throw
  // std::bad_alloc (from the memory resource).
  std::byte* grow(std::size_t n) {
    if (n > cap_ - size_) {
      reserve_more(n);
    }
    std::byte* p = data_ + size_;
    size_ += n;
    return p;
  }
  // Spare capacity of at least `n` bytes after the end, to be filled and then committed.
  std::span<std::byte> spare(std::size_t n) {
    if (n > cap_ - size_) {
      reserve_more(n);
    }
    return {data_ + size_, cap_ - size_};
  }
  // Adds `n` bytes written into spare() to the end (n <= the spare capacity).
  void commit(std::size_t n) noexcept { size_ += n; }
  void append(std::span<const std::byte> s) {
    if (!s.empty()) {
      std::memcpy(grow(s.size()), s.data(), s.size());
    }
  }
  // Removes the first `n` bytes (n <= size()).
  void erase_front(std::size_t n) noexcept {
    if (n == 0) {
      return;
    }
    if (n < size_) {
      std::memmove(data_, data_ + n, size_ - n);
    }
    size_ -= n;
  }
  // Moves the bytes from `from` on into new storage of at least `cap` bytes (the first
  // `from` bytes are dropped, not copied). May throw std::bad_alloc.
  void reallocate_from(std::size_t from, std::size_t cap) {
    const std::size_t keep = size_ - from;
    cap = std::max(cap, keep);
    auto* p = static_cast<std::byte*>(mem_->allocate(cap, 1));
    if (keep != 0) {
      std::memcpy(p, data_ + from, keep);
    }
    release();
    data_ = p;
    size_ = keep;
    cap_ = cap;
  }
  // Frees the storage.
  void release() noexcept {
    if (data_ != nullptr) {
      mem_->deallocate(data_, cap_, 1);
      data_ = nullptr;
    }
    size_ = 0;
    cap_ = 0;
  }

private:
  void reserve_more(std::size_t n) {
    std::size_t cap = cap_ < 256 ? 256 : cap_ * 2;
    if (cap - size_ < n) {
      cap = size_ + n;
    }
    auto* p = static_cast<std::byte*>(mem_->allocate(cap, 1));
    if (size_ != 0) {
      std::memcpy(p, data_, size_);
    }
    if (data_ != nullptr) {
      mem_->deallocate(data_, cap_, 1);
    }
    data_ = p;
    cap_ = cap;
  }

  std::pmr::memory_resource* mem_ = std::pmr::null_memory_resource();
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t cap_ = 0;
};

} // namespace amqp::detail
