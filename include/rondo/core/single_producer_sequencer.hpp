#pragma once
// The single-producer sequencer: one thread claims and publishes; no read-modify-write anywhere
// on its path.
//
// Theory of operation
//   producer line:  claimed_ (last claimed; relaxed/release stores by the producer, read by
//                   settle() at shutdown), cached_gating_ (producer-private)
//   cursor_ line:   written by the producer (release), read by barriers (acquire)
//
// reserve(n): hi = claimed + n; the slot hi - capacity must have been passed by every gating
// sequence. cached_gating_ remembers the slowest gating sequence seen last time, so the producer
// reads the consumers' lines only once per lap of the ring, not once per event (the reason the
// usual C++ disruptors run at tens of M/s here while SPSC queues run at hundreds).
// publish(lo, hi): one release store of the cursor, then the wait strategy's signal (a no-op
// unless it blocks).
//
// Per claim the fast path stores three words: the claim mark (a line only the producer writes),
// the slots and the cursor. Fewer stores matter: when a consumer is close behind, the cursor and
// slot lines need a round trip to the other core, in-order store retirement holds every later
// store behind them, and each extra store fills the store buffer sooner.
//
// Contract: at most one open claim at a time (checked: claimed_ != cursor_ means one is open; a
// second reserve throws std::logic_error). That is what makes abandon() exact: dropping a claim
// rolls the claim mark back and nothing stale is ever published.

#include <rondo/core/sequencer.hpp>

namespace rondo {

/// Sequencer for exactly one producing thread at a time. Not thread-safe on the producer side;
/// barriers and close() may run on other threads.
class single_producer_sequencer final : public sequencer {
 public:
  /// Throws std::invalid_argument unless capacity is a power of two >= 1.
  single_producer_sequencer(std::int64_t capacity, wait_strategy& waits)
      : sequencer((detail::validate_capacity(capacity), capacity), waits, producer_type::single,
                  &claimed_, nullptr) {}

  /// Claims n slots if they are free now; returns the highest claimed sequence (the claim is
  /// [hi - n + 1, hi]) or nullopt. Throws std::invalid_argument for n outside [1, capacity],
  /// rondo::closed after close(), std::logic_error while another claim is open.
  [[nodiscard]] std::optional<std::int64_t> try_reserve(std::int64_t n) {
    check_n(n, capacity_);
    check_no_open_claim();
    const std::int64_t next = last_claimed();
    const std::int64_t hi = next + n;
    if (!has_capacity_cached(hi)) {
      cached_gating_ = minimum_gating_sequence(next);
      if (hi - capacity_ > cached_gating_) {
        // A closed ring answers "closed", not "full": the producer must learn to stop.
        // Relaxed: advisory; claim() holds the authoritative check.
        if (closed_.load(std::memory_order_relaxed)) throw_closed();
        return std::nullopt;
      }
    }
    return claim(hi);
  }

  /// Claims n slots, waiting with the wait strategy while the ring is full. Throws as
  /// try_reserve, and rondo::closed if the sequencer is closed while waiting.
  [[nodiscard]] std::int64_t reserve(std::int64_t n) {
    const std::int64_t next = last_claimed();
    const std::int64_t hi = next + n;
    // The fast path, inlined: a valid n, no open claim (relaxed: the cursor's only writer is
    // this thread), and capacity known from the cached gating sequence.
    if (n >= 1 && n <= capacity_ && next == cursor_.get_relaxed() && has_capacity_cached(hi))
        [[likely]] {
      return claim(hi);
    }
    return *reserve_until(n, wait_strategy::clock::time_point::max());
  }

  /// As reserve(), giving up at `deadline` (nullopt).
  [[nodiscard]] [[gnu::noinline]] std::optional<std::int64_t> reserve_until(
      std::int64_t n, wait_strategy::clock::time_point deadline) {
    check_n(n, capacity_);
    check_no_open_claim();
    const std::int64_t next = last_claimed();
    const std::int64_t hi = next + n;
    if (!has_capacity_cached(hi)) {
      const auto st = waits_->wait_until(
          [&] {
            cached_gating_ = minimum_gating_sequence(next);
            return hi - capacity_ <= cached_gating_;
          },
          [&] {
            // Advisory: the authoritative check is in claim().
            return closed_.load(std::memory_order_relaxed);
          },
          deadline, wait_moment::ring_full);
      if (st == wait_status::stopped) throw_closed();
      if (st == wait_status::timed_out) return std::nullopt;
    }
    return claim(hi);
  }

  /// The coroutine reserve's fast path, the same test as reserve()'s inline one: true (and `hi`
  /// the claim's last sequence) if n is valid, no claim is open and the cached gating sequence
  /// shows room; false otherwise (then validate and try_reserve(n, hi)). Never waits or throws.
  [[nodiscard]] [[gnu::always_inline]] bool try_reserve_fast(std::int64_t n,
                                                          std::int64_t& hi) noexcept {
    const std::int64_t next = last_claimed();
    hi = next + n;
    if (n < 1 || n > capacity_ || next != cursor_.get_relaxed() || !has_capacity_cached(hi))
        [[unlikely]] {
      return false;
    }
    // Release: pairs with the acquire load in settle().
    claimed_.store(hi, std::memory_order_release);
    // Light side of the claim/close handshake; the heavy side is in sequencer::close().
    detail::asymmetric_fence::light(claimed_, closed_);
    if (closed_.load(std::memory_order_relaxed)) [[unlikely]] {
      abandon(next + 1, hi);
      return false;  // the slow path reports the close
    }
    return true;
  }

  /// try_reserve(n)'s non-throwing form, for callers that validated n (1 <= n <= capacity) and
  /// hold no open claim (the coroutine reserve). Reports closed instead of throwing; on granted,
  /// `hi` is the claim's last sequence.
  [[nodiscard]] [[gnu::always_inline]] claim_status try_reserve(std::int64_t n,
                                                             std::int64_t& hi) noexcept {
    const std::int64_t next = last_claimed();
    hi = next + n;
    if (!has_capacity_cached(hi)) [[unlikely]] {
      cached_gating_ = minimum_gating_sequence(next);
      if (hi - capacity_ > cached_gating_) {
        // Relaxed: advisory; the authoritative check follows the claim store below.
        return closed_.load(std::memory_order_relaxed) ? claim_status::closed : claim_status::full;
      }
    }
    // Release: pairs with the acquire load in settle().
    claimed_.store(hi, std::memory_order_release);
    // Light side of the claim/close handshake; the heavy side is in sequencer::close().
    detail::asymmetric_fence::light(claimed_, closed_);
    if (closed_.load(std::memory_order_relaxed)) [[unlikely]] {
      abandon(next + 1, hi);
      return claim_status::closed;
    }
    return claim_status::granted;
  }

  /// For a waiter parked on capacity (any thread, reads only): the gating sequence that must be
  /// reached before n more slots can be claimed.
  [[nodiscard]] std::int64_t capacity_target(std::int64_t n) const noexcept {
    return last_claimed() + n - capacity_;
  }
  /// Whether n slots could be claimed now, or the sequencer is closed (any thread, reads only).
  [[nodiscard]] bool capacity_or_closed(std::int64_t n) const noexcept {
    const std::int64_t next = last_claimed();
    // Relaxed: advisory; the claim re-checks.
    return next + n - capacity_ <= minimum_gating_sequence(next) ||
           closed_.load(std::memory_order_relaxed);
  }

  /// Throws std::invalid_argument for n outside [1, capacity], std::logic_error while a claim is
  /// open: what a coroutine reserve checks before it starts.
  void check_reserve(std::int64_t n) const {
    check_n(n, capacity_);
    check_no_open_claim();
  }

  /// Publishes [lo, hi]; hi must be the open claim's end.
  [[gnu::always_inline]] void publish(std::int64_t /*lo*/, std::int64_t hi) noexcept {
    // Pairs with the acquire load in sequence_barrier::available(): the slot writes before
    // this store are visible to a handler that sees the new cursor.
    cursor_.set(hi);
    waits_->signal_publish_after(hi, cursor_);
  }

  /// Gives the open claim [lo, hi] back without publishing it: the next reserve reuses the same
  /// sequences, and handlers never see the unfinished slots.
  void abandon(std::int64_t lo, std::int64_t /*hi*/) noexcept {
    // Release: pairs with the acquire load in settle(): a shutdown waiting
    // for this claim stops waiting.
    claimed_.store(lo - 1, std::memory_order_release);
  }

  /// The last sequence claimed (the open claim's end, or the cursor when none is open). For
  /// the producer's thread: the coroutine reserve reads its claim back from here instead of
  /// carrying it through the coroutine frame.
  [[nodiscard]] std::int64_t last_claimed() const noexcept {
    // Relaxed: only the producer writes claimed_; other threads read it only as a hint for a
    // waiter's target.
    return claimed_.load(std::memory_order_relaxed);
  }

 private:

  [[nodiscard]] bool has_capacity_cached(std::int64_t hi) const noexcept {
    return hi - capacity_ <= cached_gating_;
  }

  void check_no_open_claim() const {
    // Relaxed: the cursor's only writer is this thread.
    if (last_claimed() != cursor_.get_relaxed()) [[unlikely]] throw_open_claim();
  }

  [[noreturn]] [[gnu::cold]] [[gnu::noinline]] void throw_open_claim() const {
    // Relaxed: the cursor's only writer is this thread.
    const std::int64_t published = cursor_.get_relaxed();
    throw std::logic_error(fmt::format(
        "single producer: reserve() while the claim of sequences [{}, {}] is still open; "
        "publish or drop it first",
        published + 1, last_claimed()));
  }

  std::int64_t claim(std::int64_t hi) {
    // Release: pairs with the acquire load in settle().
    claimed_.store(hi, std::memory_order_release);
    // Light side of the claim/close handshake; the heavy side is in sequencer::close().
    detail::asymmetric_fence::light(claimed_, closed_);
    if (closed_.load(std::memory_order_relaxed)) [[unlikely]] {
      give_back_and_throw(hi);
    }
    return hi;
  }

  [[noreturn]] [[gnu::cold]] [[gnu::noinline]] void give_back_and_throw(std::int64_t hi) {
    // Relaxed: the cursor's only writer is this thread; the claim began right after it.
    abandon(cursor_.get_relaxed() + 1, hi);
    throw_closed();
  }

  // The producer's own line: the highest claimed sequence (its only store per claim besides
  // the slots and the cursor; read by settle() at shutdown, through the base's claim mark) and
  // the slowest gating sequence it saw last (producer-private). One line, so that a claim
  // touches one private line, not two.
  alignas(detail::cache_line_size) std::atomic<std::int64_t> claimed_{initial_sequence};
  std::int64_t cached_gating_ = initial_sequence;
};

}  // namespace rondo
