#pragma once
// The pre-allocated ring of events. Slots are constructed once, at construction, and reused for
// ever: producers overwrite an event in place, handlers read (and may update) it in place. The
// ring knows nothing about sequences beyond mapping one to its slot; who may touch which slot is
// decided by the sequencer and the barriers.

#include <rondo/core/slot_stamp.hpp>
#include <rondo/detail/config.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace rondo {

namespace detail {

/// Throws std::invalid_argument unless capacity is a power of two in [1, 2^40].
inline void validate_capacity(std::int64_t capacity) {
  if (capacity < 1) {
    throw std::invalid_argument(fmt::format(
        "ring capacity {} is not positive; it must be a power of two >= 1", capacity));
  }
  if (!std::has_single_bit(static_cast<std::uint64_t>(capacity))) {
    throw std::invalid_argument(fmt::format("ring capacity {} is not a power of two", capacity));
  }
  if (capacity > (std::int64_t{1} << 40)) {
    throw std::invalid_argument(
        fmt::format("ring capacity {} exceeds the maximum of 2^40 slots", capacity));
  }
}

}  // namespace detail

/// A fixed ring of `capacity` events of type T (capacity a power of two >= 1).
///
/// Thread-safety: the ring itself does no synchronisation. Access a slot only when the sequencer
/// (as a producer) or a barrier (as a handler) says you own it.
template <class T>
class ring_buffer {
 public:
  /// Default-constructs every event. Throws std::invalid_argument for a bad capacity.
  explicit ring_buffer(std::int64_t capacity)
    requires std::default_initializable<T>
      : ring_buffer(capacity, [](std::int64_t) { return T{}; }) {}

  /// Constructs slot i from factory(i). Throws std::invalid_argument for a bad capacity, and
  /// whatever the factory throws (already-built slots are destroyed).
  template <class Factory>
    requires std::invocable<Factory&, std::int64_t>
  ring_buffer(std::int64_t capacity, Factory factory) : mask_(capacity - 1) {
    detail::validate_capacity(capacity);
    const std::size_t total = static_cast<std::size_t>(capacity) + 2 * pad_slots;
    raw_ = static_cast<T*>(::operator new(total * sizeof(T), std::align_val_t{alignment}));
    slots_ = raw_ + pad_slots;
    std::int64_t built = 0;
    try {
      for (; built < capacity; ++built) {
        ::new (static_cast<void*>(slots_ + built)) T(factory(built));
      }
    } catch (...) {
      destroy(built);
      throw;
    }
  }

  ring_buffer(const ring_buffer&) = delete;
  ring_buffer& operator=(const ring_buffer&) = delete;
  ~ring_buffer() { destroy(mask_ + 1); }

  /// The slot that holds sequence `seq` (any seq >= 0).
  [[nodiscard]] T& operator[](std::int64_t seq) noexcept { return slots_[seq & mask_]; }
  [[nodiscard]] const T& operator[](std::int64_t seq) const noexcept {
    return slots_[seq & mask_];
  }

  [[nodiscard]] std::int64_t capacity() const noexcept { return mask_ + 1; }

  /// Opts the ring into slot stamps (core/slot_stamp.hpp): `member` is the events' slot_stamp.
  /// Set it before any producer or stage is built on the ring (they read it once, when made).
  /// The DSL's builder().stamps() does this. Not thread-safe.
  void use_stamps(stamp_member_t<T> member) noexcept { stamp_ = member; }
  [[nodiscard]] bool stamped() const noexcept { return stamp_ != nullptr; }
  /// The stamps as a sequence_barrier reads them (empty when the ring has no stamps).
  [[nodiscard]] slot_stamps stamps() const noexcept {
    if constexpr (std::is_class_v<T>) {
      if (stamp_ != nullptr) {
        return {reinterpret_cast<const std::byte*>(&(slots_[0].*stamp_)), sizeof(T), mask_};
      }
    }
    return {};
  }
  /// Marks sequences [lo, hi] published in their slots (the producer, after writing them and
  /// before the cursor store). Only on a stamped ring.
  void write_stamps(std::int64_t lo, std::int64_t hi) noexcept {
    if constexpr (std::is_class_v<T>) {
      for (std::int64_t s = lo; s <= hi; ++s) (slots_[s & mask_].*stamp_).mark(s);
    }
  }

  /// A run of sequences as contiguous memory: at most two spans, the second non-empty only when
  /// the run wraps the end of the ring. Lets a producer or handler touch a batch without a mask
  /// per slot (and lets the compiler vectorise the loop).
  struct segments {
    std::span<T> first;
    std::span<T> second;
  };

  /// The slots of sequences [seq, seq + n), n in [0, capacity]. Unchecked.
  [[nodiscard]] segments contiguous(std::int64_t seq, std::int64_t n) noexcept {
    const std::int64_t start = seq & mask_;
    const std::int64_t head = std::min(n, mask_ + 1 - start);
    return {std::span<T>(slots_ + start, static_cast<std::size_t>(head)),
            std::span<T>(slots_, static_cast<std::size_t>(n - head))};
  }

 private:
  // Unused slots on both sides keep the first and last events off cache lines shared with
  // whatever the allocator put next to the ring.
  static constexpr std::size_t pad_slots = (detail::cache_line_size + sizeof(T) - 1) / sizeof(T);
  // Slots start at a multiple of both a cache line and T's own alignment.
  static constexpr std::size_t alignment = std::max(alignof(T), detail::cache_line_size);

  void destroy(std::int64_t built) noexcept {
    for (std::int64_t i = 0; i < built; ++i) slots_[i].~T();
    ::operator delete(raw_, std::align_val_t{alignment});
  }

  std::int64_t mask_;
  T* raw_ = nullptr;
  T* slots_ = nullptr;
  stamp_member_t<T> stamp_ = nullptr;
};

}  // namespace rondo
