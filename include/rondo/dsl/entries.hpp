#pragma once
// Iterating a run of ring slots: as events (`for (T& ev : batch)`) or as events with their
// sequences (`for (auto [seq, ev] : claim)`). Shared by claim<T> and batch<T>.

#include <rondo/core/ring_buffer.hpp>

#include <cstddef>
#include <cstdint>
#include <iterator>

namespace rondo {

/// One slot with its sequence, as `for (auto [seq, ev] : ...)` yields it.
template <class T>
struct sequenced {
  std::int64_t sequence;
  T& event;
};

namespace detail {

/// Walks sequences of a ring; yields T& (ByEntry false) or sequenced<T> (ByEntry true).
template <class T, bool ByEntry>
class slot_iterator {
 public:
  using iterator_category = std::forward_iterator_tag;
  using value_type = std::conditional_t<ByEntry, sequenced<T>, T>;
  using difference_type = std::ptrdiff_t;
  using reference = std::conditional_t<ByEntry, sequenced<T>, T&>;

  slot_iterator() = default;
  slot_iterator(ring_buffer<T>* r, std::int64_t s) noexcept : ring_(r), seq_(s) {}

  reference operator*() const noexcept {
    if constexpr (ByEntry) {
      return {seq_, (*ring_)[seq_]};
    } else {
      return (*ring_)[seq_];
    }
  }
  slot_iterator& operator++() noexcept {
    ++seq_;
    return *this;
  }
  slot_iterator operator++(int) noexcept {
    auto old = *this;
    ++seq_;
    return old;
  }
  bool operator==(const slot_iterator& o) const noexcept { return seq_ == o.seq_; }
  [[nodiscard]] std::int64_t sequence() const noexcept { return seq_; }

 private:
  ring_buffer<T>* ring_ = nullptr;
  std::int64_t seq_ = 0;
};

}  // namespace detail
}  // namespace rondo
