// A memory resource for allocation-failure tests (nghttp2's failmalloc): counts allocations,
// refuses the one chosen by the test (std::bad_alloc, as std::pmr::memory_resource does),
// and tracks every block so that leaks and mismatched deallocations show.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <limits>
#include <memory_resource>
#include <new>
#include <unordered_map>

namespace amqp::test {

class failing_resource : public std::pmr::memory_resource {
public:
  static constexpr std::size_t never = std::numeric_limits<std::size_t>::max();

  explicit failing_resource(std::pmr::memory_resource* upstream = std::pmr::new_delete_resource())
      : upstream_(upstream) {}
  failing_resource(const failing_resource&) = delete;
  failing_resource& operator=(const failing_resource&) = delete;
  ~failing_resource() override {
    for (auto& [p, b] : blocks_) {
      upstream_->deallocate(p, b.size, b.align);
    }
  }

  // Refuses allocation number `i` (counted from 0 since construction); with `sticky`, every
  // allocation after it too.
  void fail_at(std::size_t i, bool sticky = false) {
    fail_at_ = i;
    sticky_ = sticky;
  }
  // The number of allocation requests so far (refused ones included).
  [[nodiscard]] std::size_t allocations() const { return count_; }
  // True once an allocation has been refused.
  [[nodiscard]] bool failed() const { return failed_; }
  [[nodiscard]] std::size_t outstanding_bytes() const { return bytes_; }
  [[nodiscard]] std::size_t outstanding_blocks() const { return blocks_.size(); }
  // Deallocations of an unknown pointer, or with another size or alignment.
  [[nodiscard]] std::size_t mismatches() const { return mismatches_; }
  [[nodiscard]] std::size_t peak_bytes() const { return peak_; }

private:
  struct block {
    std::size_t size;
    std::size_t align;
  };

  void* do_allocate(std::size_t n, std::size_t align) override {
    const std::size_t i = count_++;
    if (i == fail_at_ || (sticky_ && i > fail_at_ && fail_at_ != never)) {
      failed_ = true;
#if defined(__cpp_exceptions)
      throw std::bad_alloc();
#else
      std::abort(); // a memory_resource reports failure by throwing: tested with exceptions
#endif
    }
    void* p = upstream_->allocate(n, align);
    blocks_[p] = block{n, align};
    bytes_ += n;
    peak_ = bytes_ > peak_ ? bytes_ : peak_;
    return p;
  }

  void do_deallocate(void* p, std::size_t n, std::size_t align) override {
    auto it = blocks_.find(p);
    if (it == blocks_.end()) {
      ++mismatches_;
      return;
    }
    if (it->second.size != n || it->second.align != align) {
      ++mismatches_;
    }
    bytes_ -= it->second.size;
    upstream_->deallocate(p, it->second.size, it->second.align);
    blocks_.erase(it);
  }

  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
    return this == &o;
  }

  std::pmr::memory_resource* upstream_;
  std::unordered_map<void*, block> blocks_;
  std::size_t count_ = 0;
  std::size_t fail_at_ = never;
  bool sticky_ = false;
  bool failed_ = false;
  std::size_t bytes_ = 0;
  std::size_t peak_ = 0;
  std::size_t mismatches_ = 0;
};

} // namespace amqp::test
