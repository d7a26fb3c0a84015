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
// the highest *claimed* sequence and a per-slot record says which claimed slots are published
// (publication_flags.hpp); highest_published() hides the difference from barriers. Each kind
// keeps its own state in its own class; this base holds only what both share.
//
// Closing (drain/close/halt): close() sets `closed_`, then runs a heavy asymmetric fence; a
// producer records its claim, runs the light fence, then reads `closed_`. So either the producer
// sees the flag (and gives its claim back, throwing rondo::closed) or close() sees the claim and
// settle() waits for it to be published or abandoned. No event can be published after the
// final cursor that settle() returns.

#include <rondo/core/errors.hpp>
#include <rondo/core/publication_flags.hpp>
#include <rondo/core/ring_buffer.hpp>
#include <rondo/core/sequence.hpp>
#include <rondo/core/wait_strategy.hpp>
#include <rondo/detail/asymmetric_fence.hpp>
#include <rondo/detail/config.hpp>

#include <fmt/format.h>

#include <atomic>
#include <algorithm>
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

/// What both sequencers share. Not used polymorphically (no virtual calls): what differs by
/// kind is reached through two pointers set once by the concrete sequencer — where the highest
/// claimed sequence lives (the single producer's claim mark, or the multi-producer cursor) and
/// the per-slot publication record (null when claims are published in order).
class sequencer {
 public:
  sequencer(const sequencer&) = delete;
  sequencer& operator=(const sequencer&) = delete;

  [[nodiscard]] std::int64_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] producer_type type() const noexcept { return kind_; }

  /// Single producer: the highest published sequence. Multi producer: the highest claimed one.
  [[nodiscard]] const sequence& cursor() const noexcept { return cursor_; }

  /// Adds a sequence the producers must not lap (a terminal stage). Call before any producer or
  /// handler runs; not thread-safe.
  void add_gating_sequence(const sequence& s) { gating_.push_back(&s); }

  [[nodiscard]] std::int64_t minimum_gating_sequence(std::int64_t fallback) const noexcept {
    return min_sequence(gating_, fallback);
  }

  /// The per-slot publication record when claims can be published out of order (multi
  /// producer); null when the cursor alone says what is published (single producer).
  [[nodiscard]] const publication_flags* published_out_of_order() const noexcept {
    return slots_;
  }

  /// The highest sequence h in [lo - 1, hi] such that every sequence in [lo, h] is published
  /// (tombstones count as published). hi is a cursor value the caller read; in order: hi.
  [[nodiscard]] std::int64_t highest_published(std::int64_t lo, std::int64_t hi) const noexcept {
    return slots_ == nullptr ? hi : slots_->highest_published(lo, hi);
  }

  /// How many slots were ever published as tombstones (claims dropped without publish(); only
  /// out-of-order publication has them: a single producer's dropped claim is rolled back).
  /// Handlers check per-slot flags only while this is ahead of what they passed.
  [[nodiscard]] std::int64_t tombstone_count() const noexcept {
    return slots_ == nullptr ? 0 : slots_->tombstone_count();
  }

  /// Whether published sequence `seq` is a tombstone. Only meaningful while the caller holds
  /// `seq` (between seeing it published and passing it).
  [[nodiscard]] bool is_tombstone(std::int64_t seq) const noexcept {
    return slots_ != nullptr && slots_->is_tombstone(seq);
  }

  /// How many sequences in [lo, hi] are tombstones. Only meaningful while no stage has passed
  /// lo and no producer can claim (after settle()): for shutdown reports.
  [[nodiscard]] std::int64_t count_tombstones(std::int64_t lo, std::int64_t hi) const noexcept {
    std::int64_t n = 0;
    if (slots_ == nullptr) return 0;
    for (std::int64_t s = lo; s <= hi; ++s) n += slots_->is_tombstone(s) ? 1 : 0;
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
      const std::int64_t c = claimed();
      const std::int64_t from = minimum_gating_sequence(c) + 1;
      // In order, the cursor trails the claim mark until the open claim is published; out of
      // order the cursor is the claim mark and the flags tell. Both: everything up to c is
      // published when the scan from `from` reaches c. (Acquire: pairs with the producer's
      // release publish of the cursor.)
      if (highest_published(from, std::min(c, cursor_.get())) == c) return c;
      if (wait_strategy::clock::now() >= deadline) return std::nullopt;
      std::this_thread::yield();
    }
  }

 protected:
  [[noreturn]] static void throw_closed() { throw_closed_error(); }

  /// claim_mark: where the highest claimed sequence lives (null: the cursor); slots: the
  /// out-of-order publication record (null: in order). Both must outlive the sequencer's use.
  sequencer(std::int64_t capacity, wait_strategy& waits, producer_type kind,
            const std::atomic<std::int64_t>* claim_mark, const publication_flags* slots)
      : capacity_(capacity),
        mask_(capacity - 1),
        waits_(&waits),
        kind_(kind),
        claim_mark_(claim_mark),
        slots_(slots) {
    detail::asymmetric_fence::init();
  }
  ~sequencer() = default;

  // The highest claimed sequence (single: the producer's claim mark; multi: the cursor). Off
  // the hot paths (settle(), remaining_capacity()).
  [[nodiscard]] std::int64_t claimed() const noexcept {
    // Acquire: pairs with the release store of the claim mark (single) / the CAS on the
    // cursor (multi, in sequence::get).
    return claim_mark_ != nullptr ? claim_mark_->load(std::memory_order_acquire) : cursor_.get();
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
  wait_strategy* waits_;
  producer_type kind_;
  const std::atomic<std::int64_t>* claim_mark_;  // null: the cursor is the claim mark
  const publication_flags* slots_;
  std::vector<const sequence*> gating_;

  // Written only by close(); read by producers in every claim.
  alignas(detail::cache_line_size) std::atomic<bool> closed_{false};
  sequence cursor_;
};

}  // namespace rondo
