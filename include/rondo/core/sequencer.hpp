#pragma once
// What the single- and multi-producer sequencers share: capacity, the cursor, the gating
// sequences (the terminal stages a producer must not lap), the wait strategy and the closed flag.
//
// Theory of operation
//
//   producer(s) --reserve n--> [claim] --fill slots--> publish(lo, hi) --> cursor / flags
//        ^                                                                      |
//        |  wrap point = hi - capacity must be <= min(gating)                    v
//        +---------------- gating sequences (terminal stages) <----- barriers read cursor
//
// Single producer: `cursor_` is the highest *published* sequence. Multi producer: `cursor_` is
// the highest *claimed* sequence and a per-slot flag array says which claimed slots are published
// (see multi_producer_sequencer.hpp); highest_published() hides the difference from barriers.
//
// Closing (drain/close/halt): close() sets `closed_`, then runs a heavy asymmetric fence; a
// producer records its claim, runs the light fence, then reads `closed_`. So either the producer
// sees the flag (and gives its claim back, throwing rondo::closed) or close() sees the claim and
// settle() waits for it to be published or abandoned. No event can be published after the
// final cursor that settle() returns.

#include <rondo/core/errors.hpp>
#include <rondo/core/ring_buffer.hpp>
#include <rondo/core/sequence.hpp>
#include <rondo/core/wait_strategy.hpp>
#include <rondo/detail/asymmetric_fence.hpp>
#include <rondo/detail/config.hpp>

#include <fmt/format.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace rondo {

enum class producer_type : std::uint8_t { single, multi };

/// Outcome of a non-throwing claim attempt (what coroutine reserves are built on).
enum class claim_status : std::uint8_t {
  granted,  ///< the slots are claimed
  full,     ///< not enough free slots now
  closed    ///< the sequencer is closed; nothing was claimed
};

class sequence_barrier;

/// Base of both sequencers. Not used polymorphically (no virtual calls on any hot path): the
/// multi-producer state a barrier needs (the availability flags) is reached through plain fields.
class sequencer {
 public:
  sequencer(const sequencer&) = delete;
  sequencer& operator=(const sequencer&) = delete;

  [[nodiscard]] std::int64_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] producer_type type() const noexcept {
    return flags_ ? producer_type::multi : producer_type::single;
  }

  /// Single producer: the highest published sequence. Multi producer: the highest claimed one.
  [[nodiscard]] const sequence& cursor() const noexcept { return cursor_; }

  /// Adds a sequence the producers must not lap (a terminal stage). Call before any producer or
  /// handler runs; not thread-safe.
  void add_gating_sequence(const sequence& s) { gating_.push_back(&s); }

  [[nodiscard]] std::int64_t minimum_gating_sequence(std::int64_t fallback) const noexcept {
    return min_sequence(gating_, fallback);
  }

  /// The highest sequence h in [lo - 1, hi] such that every sequence in [lo, h] is published
  /// (tombstones count as published). For a single producer: hi.
  [[nodiscard]] std::int64_t highest_published(std::int64_t lo, std::int64_t hi) const noexcept {
    if (flags_ == nullptr) return hi;
    for (std::int64_t s = lo; s <= hi; ++s) {
      // Pairs with the release store in multi_producer_sequencer::publish(): seeing the flag
      // makes the slot's contents visible.
      if ((flags_[s & mask_].load(std::memory_order_acquire) >> 1) != round_of(s)) return s - 1;
    }
    return hi;
  }

  /// Multi producer: how many slots were ever published as tombstones (claims dropped without
  /// publish()). Handlers check per-slot flags only while this is ahead of what they passed.
  [[nodiscard]] std::int64_t tombstone_count() const noexcept {
    // Pairs with the relaxed increment in abandon(); ordered for the reader by the acquire load
    // of the slot flag (or of an upstream sequence) that made the slot visible.
    return tombstones_.load(std::memory_order_acquire);
  }

  /// Multi producer: whether published sequence `seq` is a tombstone. Only meaningful while the
  /// caller holds `seq` (between seeing it published and passing it).
  [[nodiscard]] bool is_tombstone(std::int64_t seq) const noexcept {
    // Pairs with the release store in publish_range(); the caller already acquired this flag.
    return flags_ != nullptr && (flags_[seq & mask_].load(std::memory_order_acquire) & 1U) != 0;
  }

  /// Multi producer: how many sequences in [lo, hi] are tombstones. Only meaningful while no
  /// stage has passed lo and no producer can claim (after settle()): for shutdown reports.
  [[nodiscard]] std::int64_t count_tombstones(std::int64_t lo, std::int64_t hi) const noexcept {
    std::int64_t n = 0;
    if (flags_ == nullptr) return 0;
    for (std::int64_t s = lo; s <= hi; ++s) n += is_tombstone(s) ? 1 : 0;
    return n;
  }

  /// Free slots now (a snapshot: capacity minus claimed-but-unconsumed).
  [[nodiscard]] std::int64_t remaining_capacity() const noexcept {
    const std::int64_t produced = claimed();
    const std::int64_t consumed = minimum_gating_sequence(produced);
    return capacity_ - (produced - consumed);
  }

  [[nodiscard]] wait_strategy& waits() const noexcept { return *waits_; }

  /// Stops granting claims; wakes producers waiting for capacity (they throw rondo::closed).
  /// Idempotent, thread-safe.
  void close() noexcept {
    // Relaxed store, then the heavy fence pairs with the light fence in the producers' claim
    // path (see the file comment).
    closed_.store(true, std::memory_order_relaxed);
    detail::asymmetric_fence::heavy();
    waits_->wake_all();
  }

  /// Throws rondo::closed with the message every refused reservation carries.
  [[noreturn]] [[gnu::cold]] [[gnu::noinline]] static void throw_closed_error() {
    throw closed("rondo: the disruptor is closed; no more reservations are granted");
  }

  [[nodiscard]] bool is_closed() const noexcept {
    // Advisory read; the ordering that matters is in claim paths and close().
    return closed_.load(std::memory_order_relaxed);
  }

  /// After close(): waits (yielding) until every granted claim is published or abandoned, then
  /// returns the highest published sequence; nothing will ever be published after it.
  std::int64_t settle() const { return *settle_until(wait_strategy::clock::time_point::max()); }

  /// As settle(), giving up at `deadline` (nullopt: a granted claim is still open).
  std::optional<std::int64_t> settle_until(wait_strategy::clock::time_point deadline) const {
    for (;;) {
      // Acquire: pairs with the producers' claim stores / CAS.
      const std::int64_t c = claimed();
      const std::int64_t from = minimum_gating_sequence(c) + 1;
      if (flags_ == nullptr) {
        // Pairs with the release store in single_producer_sequencer::publish().
        const std::int64_t p = cursor_.get();
        if (p >= c) return p;
      } else if (highest_published(from, c) == c) {
        return c;
      }
      if (wait_strategy::clock::now() >= deadline) return std::nullopt;
      std::this_thread::yield();
    }
  }

 protected:
  [[noreturn]] static void throw_closed() { throw_closed_error(); }

  sequencer(std::int64_t capacity, wait_strategy& waits, std::atomic<std::uint32_t>* flags)
      : capacity_(capacity),
        mask_(capacity - 1),
        shift_(static_cast<int>(std::countr_zero(static_cast<std::uint64_t>(capacity)))),
        waits_(&waits),
        flags_(flags) {
    detail::asymmetric_fence::init();
  }
  ~sequencer() = default;

  // The round encoding used by the multi-producer flags: 31 bits of seq / capacity, so the
  // value for one lap differs from the previous lap's (see multi_producer_sequencer.hpp).
  [[nodiscard]] std::uint32_t round_of(std::int64_t seq) const noexcept {
    return static_cast<std::uint32_t>(static_cast<std::uint64_t>(seq) >> shift_) & 0x7fffffffU;
  }

  // The highest claimed sequence (single: the producer's claim mark; multi: the cursor).
  [[nodiscard]] std::int64_t claimed() const noexcept {
    // Pairs with the release store of claimed_ (single) / the CAS on cursor_ (multi).
    return flags_ == nullptr ? claimed_.load(std::memory_order_acquire) : cursor_.get();
  }


  static void check_n(std::int64_t n, std::int64_t capacity) {
    if (n < 1 || n > capacity) [[unlikely]] throw_bad_n(n, capacity);
  }

  [[noreturn]] [[gnu::cold]] [[gnu::noinline]] static void throw_bad_n(std::int64_t n,
                                                                      std::int64_t capacity) {
    throw std::invalid_argument(
        fmt::format("reserve({}): n must be in [1, {}] (the ring capacity)", n, capacity));
  }

  // Read-mostly configuration, shared by everybody.
  std::int64_t capacity_;
  std::int64_t mask_;
  int shift_;
  wait_strategy* waits_;
  std::atomic<std::uint32_t>* flags_;  // multi producer only
  std::vector<const sequence*> gating_;

  // Written only by close(); read by producers in every claim.
  alignas(detail::cache_line_size) std::atomic<bool> closed_{false};
  // Single producer only, the producer's own line: the highest claimed sequence (its only
  // store per claim besides the slot and the cursor; read by settle() at shutdown) and the
  // slowest gating sequence it saw last (producer-private). Multi producer: unused.
  alignas(detail::cache_line_size) std::atomic<std::int64_t> claimed_{initial_sequence};
  std::int64_t cached_gating_ = initial_sequence;
  // Multi producer only: tombstones ever published.
  alignas(detail::cache_line_size) std::atomic<std::int64_t> tombstones_{0};
  sequence cursor_;
};

}  // namespace rondo
