#pragma once
// A sequence is one int64 counter on a cache line of its own: the cursor of a sequencer, or the
// "I have finished everything up to here" mark of a stage. Everything in rondo is driven by them.
//
// Sequences start at -1 (initial_sequence: "nothing yet") and only grow. The owner writes with a
// release store after it has finished with the slots up to the new value; readers load with
// acquire, so reading a sequence value s makes every slot write up to s visible.

#include <rondo/detail/config.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>

namespace rondo {

/// The value of a sequence before anything was published or processed.
inline constexpr std::int64_t initial_sequence = -1;

/// A cache-line padded atomic int64. Thread-safe; one writer at a time is the intended use
/// (a stage, a single producer), except for the multi-producer claim cursor, which uses CAS.
class alignas(detail::cache_line_size) sequence {
 public:
  explicit sequence(std::int64_t initial = initial_sequence) noexcept : value_(initial) {}
  sequence(const sequence&) = delete;
  sequence& operator=(const sequence&) = delete;

  /// Acquire load: the slots up to the returned value, written before the matching set(),
  /// are visible to the caller.
  [[nodiscard]] std::int64_t get() const noexcept {
    // Pairs with the release store in set() / compare_exchange().
    return value_.load(std::memory_order_acquire);
  }

  /// Relaxed load, for the owner re-reading its own value or for statistics.
  [[nodiscard]] std::int64_t get_relaxed() const noexcept {
    // Owner-only or advisory read: no data is consumed on the strength of it.
    return value_.load(std::memory_order_relaxed);
  }

  /// Release store: publishes every write made before it to whoever get()s this value.
  void set(std::int64_t v) noexcept {
    // Pairs with the acquire load in get().
    value_.store(v, std::memory_order_release);
  }

  /// Relaxed store, for initialisation before any reader exists.
  void set_relaxed(std::int64_t v) noexcept {
    // Only used before the sequence is shared (start-up, reset in tests).
    value_.store(v, std::memory_order_relaxed);
  }

  /// Strong CAS, acq_rel on success so a claim both sees the previous claimer's state and
  /// publishes its own.
  bool compare_exchange(std::int64_t& expected, std::int64_t desired) noexcept {
    // Pairs with other claimers' CAS and with get() in the drain path.
    return value_.compare_exchange_strong(expected, desired, std::memory_order_acq_rel,
                                          std::memory_order_acquire);
  }

 private:
  std::atomic<std::int64_t> value_;
};

static_assert(sizeof(sequence) == detail::cache_line_size);
static_assert(std::atomic<std::int64_t>::is_always_lock_free);

/// True when sequence a comes strictly after b. Sequences never wrap in practice
/// (2^63 events at 10^9/s is 292 years), so this is a plain comparison with a name.
[[nodiscard]] constexpr bool is_after(std::int64_t a, std::int64_t b) noexcept { return a > b; }

/// The smallest value among the given sequences (acquire loads), or `minimum` if there are none
/// or all are larger.
[[nodiscard]] inline std::int64_t min_sequence(std::span<const sequence* const> seqs,
                                               std::int64_t minimum =
                                                   std::numeric_limits<std::int64_t>::max()) noexcept {
  for (const sequence* s : seqs) {
    const std::int64_t v = s->get();
    if (v < minimum) minimum = v;
  }
  return minimum;
}

}  // namespace rondo
