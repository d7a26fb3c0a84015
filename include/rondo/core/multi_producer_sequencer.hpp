#pragma once
// The multi-producer sequencer: any number of threads claim with a CAS on the cursor and publish
// slot by slot.
//
// Theory of operation
//   cursor_:        the highest claimed sequence; producers advance it with CAS (never past
//                   min(gating) + capacity, so a failed try_reserve claims nothing).
//   gating_cache_:  the slowest gating sequence seen by any producer (a hint; stale is safe).
//   slots_:         the per-slot publication record (publication_flags.hpp): a producer
//                   publishes seq s with a release store of its flag; a barrier scans forward
//                   from its next sequence while the flags match (acquire).
//
//   claim:  CAS cursor c -> c + n  ──▶ fill slots ──▶ flag[s] = round(s)<<1   (publish)
//                                               └──▶ flag[s] = round(s)<<1|1 (abandon)
//
// A claim dropped without publish() is published as tombstones: the ring does not stall and
// handlers skip those sequences without seeing the slot (whose contents are unfinished).
// Handlers check flags for tombstones only while tombstone_count() is ahead of the tombstones
// they have passed, so the common case pays nothing per event.

#include <rondo/core/sequencer.hpp>


namespace rondo {

/// Sequencer for any number of producing threads. Thread-safe.
class multi_producer_sequencer final : public sequencer {
 public:
  /// Throws std::invalid_argument unless capacity is a power of two >= 1.
  multi_producer_sequencer(std::int64_t capacity, wait_strategy& waits)
      : sequencer((detail::validate_capacity(capacity), capacity), waits, producer_type::multi,
                  nullptr, &slots_),
        slots_(capacity) {}

  /// Claims n slots if free now; returns the highest claimed sequence or nullopt.
  /// Throws std::invalid_argument for n outside [1, capacity], rondo::closed after close().
  [[nodiscard]] std::optional<std::int64_t> try_reserve(std::int64_t n) {
    check_n(n, capacity_);
    return try_reserve_checked(n);
  }

  /// Claims n slots, waiting with the wait strategy while the ring is full.
  [[nodiscard]] std::int64_t reserve(std::int64_t n) {
    return *reserve_until(n, wait_strategy::clock::time_point::max());
  }

  /// As reserve(), giving up at `deadline` (nullopt). Out of line: a publisher's call sites are
  /// generic over the kind, and this loop inlined beside the single producer's fast path made
  /// g++ spill that path's registers (reserve + publish 1.75 -> 2.6 ns).
  [[nodiscard]] [[gnu::noinline]] std::optional<std::int64_t> reserve_until(
      std::int64_t n, wait_strategy::clock::time_point deadline) {
    check_n(n, capacity_);
    for (;;) {
      if (auto hi = try_reserve_checked(n)) return hi;
      const auto st = waits_->wait_until(
          [&] {
            const std::int64_t c = cursor_.get();
            return c + n - capacity_ <= minimum_gating_sequence(c);
          },
          [&] {
            // Advisory: the authoritative check is in try_reserve().
            return closed_.load(std::memory_order_relaxed);
          },
          deadline, wait_moment::ring_full);
      if (st == wait_status::stopped) throw_closed();
      if (st == wait_status::timed_out) return std::nullopt;
    }
  }

  /// Publishes the claimed range [lo, hi].
  void publish(std::int64_t lo, std::int64_t hi) noexcept {
    slots_.mark(lo, hi, 0U);
    waits_->signal_publish(hi);
  }

  /// Publishes the claimed range [lo, hi] as tombstones: handlers skip it.
  void abandon(std::int64_t lo, std::int64_t hi) noexcept {
    slots_.add_tombstones(hi - lo + 1);
    slots_.mark(lo, hi, 1U);
    waits_->signal_publish(hi);
  }

 private:
  std::optional<std::int64_t> try_reserve_checked(std::int64_t n) {
    std::int64_t hi = 0;
    const claim_status st = try_reserve(n, hi);
    if (st == claim_status::closed) throw_closed();
    if (st == claim_status::full) return std::nullopt;
    return hi;
  }

 public:
  /// try_reserve(n)'s non-throwing form, for callers that validated n (1 <= n <= capacity):
  /// the coroutine reserve. Reports closed instead of throwing; on granted, `hi` is the claim's
  /// last sequence.
  [[nodiscard]] claim_status try_reserve(std::int64_t n, std::int64_t& hi) noexcept {
    // Advisory early exit; the authoritative check follows the claim.
    if (closed_.load(std::memory_order_relaxed)) return claim_status::closed;
    std::int64_t current = cursor_.get();
    do {
      hi = current + n;
      const std::int64_t wrap = hi - capacity_;
      // Acquire: pairs with the release store of gating_cache_ by whichever producer read the
      // gating sequences, so our slot writes are ordered after the consumers' reads it saw.
      const std::int64_t cached = gating_cache_.get();
      if (wrap > cached || cached > current) {
        const std::int64_t g = minimum_gating_sequence(current);
        // Pairs with the acquire load of gating_cache_ above in other producers.
        gating_cache_.set(g);
        if (wrap > g) return claim_status::full;
      }
    } while (!cursor_.compare_exchange(current, hi));
    // Light side of the claim/close handshake; the heavy side is in sequencer::close().
    detail::asymmetric_fence::light();
    if (closed_.load(std::memory_order_relaxed)) {
      abandon(current + 1, hi);
      return claim_status::closed;
    }
    return claim_status::granted;
  }

  /// For a waiter parked on capacity (any thread, reads only): the gating sequence that must be
  /// reached before n more slots can be claimed (as of now; other producers may move it).
  [[nodiscard]] std::int64_t capacity_target(std::int64_t n) const noexcept {
    return cursor_.get() + n - capacity_;
  }
  /// Whether n slots could be claimed now, or the sequencer is closed (any thread, reads only).
  [[nodiscard]] bool capacity_or_closed(std::int64_t n) const noexcept {
    const std::int64_t c = cursor_.get();
    // Relaxed: advisory; the claim re-checks.
    return c + n - capacity_ <= minimum_gating_sequence(c) ||
           closed_.load(std::memory_order_relaxed);
  }

  /// Throws std::invalid_argument for n outside [1, capacity].
  void check_reserve(std::int64_t n) const { check_n(n, capacity_); }

 private:
  publication_flags slots_;
  sequence gating_cache_;
};

}  // namespace rondo
