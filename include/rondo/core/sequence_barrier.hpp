#pragma once
// A sequence barrier tells one handler which sequences it may read: those published by the
// producers (the cursor) and passed by every stage it depends on.
//
// Theory of operation
//   available(next) = deps empty ? highest_published(next, cursor) : min(dependency sequences)
//   (a dependency only passes published sequences, so its value is already published.)
//
//   handler: next ──wait(next)──▶ hi ≥ next ──handle [next, hi]──▶ own sequence = hi
//
// The barrier is read once per batch, not once per event: a handler that falls behind gets
// everything available in one batch and touches the shared cursor line once for it.
//
// Stopping: alert() makes waiters return wait_status::stopped at once (close, halt);
// set_limit(L) makes them return stopped once next > L (drain: everything up to L is handled).
// Both are stored relaxed and followed by wait_strategy::wake_all(), whose futex syscall orders
// them for blocked waiters; spinning waiters re-read them every round.

#include <rondo/core/sequence.hpp>
#include <rondo/core/sequencer.hpp>
#include <rondo/core/slot_stamp.hpp>
#include <rondo/core/wait_strategy.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <stop_token>
#include <utility>
#include <vector>

namespace rondo {

class sequence_barrier;

/// Result of a barrier wait: the highest available sequence (>= the requested one when status
/// is ready; possibly lower otherwise) and why the wait ended.
struct barrier_wait_result {
  std::int64_t available;
  wait_status status;
};

/// What sequence_barrier::wait() returns: a coroutine wait, described, not started. `co_await`
/// it: <rondo/coro/barrier_wait.hpp> turns it into the awaitable, a
/// sequence_barrier_wait_operation, created where it is awaited. The core layer names no
/// coroutine type; the request is what keeps `co_await barrier.wait(next)` a member call.
struct [[nodiscard]] barrier_wait_request {
  sequence_barrier* barrier;
  std::int64_t next;
  std::chrono::steady_clock::time_point deadline;  ///< time_point::max(): none
  std::stop_token stop;                            ///< empty: not cancellable
};

/// Thread-safety: one handler waits on a barrier; alert()/set_limit() may come from any thread.
class sequence_barrier {
 public:
  /// `deps`: the sequences of the stages this handler runs after (empty: right after the
  /// producers). The sequencer and the dependencies must outlive the barrier.
  explicit sequence_barrier(const sequencer& seqr, std::vector<const sequence*> deps = {})
      : seqr_(&seqr), deps_(std::move(deps)) {}

  /// The highest sequence available to a handler whose next sequence is `next` (next - 1 when
  /// nothing new). Never waits.
  [[nodiscard]] std::int64_t available(std::int64_t next) const noexcept {
    if (deps_.empty()) {
      if (stamps_) [[unlikely]] return stamped_available(next);
      // Acquire (in sequence::get): pairs with the producer's release publish.
      return seqr_->highest_published(next, seqr_->cursor().get());
    }
    // Acquire loads (in min_sequence): pair with each dependency's release store.
    return min_sequence(deps_);
  }

  /// Waits on the slots' stamps (core/slot_stamp.hpp) instead of the cursor: available() reads
  /// the slot of `next` first, which is the line the event arrives in, and the cursor only when
  /// the slot after it is published too (a batch is forming). For a barrier right behind a
  /// single producer whose publishes write the stamps (the DSL's publisher on a stamped ring, or
  /// ring_buffer::write_stamps before the sequencer's publish). Call before the handler runs.
  /// Throws std::invalid_argument for a barrier with dependencies or several producers.
  void use_stamps(slot_stamps stamps) {
    if (!deps_.empty()) {
      throw std::invalid_argument(fmt::format(
          "sequence_barrier::use_stamps(): the barrier waits on {} upstream stage(s); stamps "
          "are for a stage right behind the producer",
          deps_.size()));
    }
    if (seqr_->published_out_of_order() != nullptr) {
      throw std::invalid_argument(
          "sequence_barrier::use_stamps(): the sequencer has several producers; stamps need "
          "producer_type::single (claims given back as tombstones carry no stamp)");
    }
    stamps_ = stamps;
  }
  [[nodiscard]] bool stamped() const noexcept { return static_cast<bool>(stamps_); }

  /// Blocks the calling thread, with the sequencer's wait strategy, until `next` is available
  /// (returns the highest available, which may exceed next), the barrier is alerted or past its
  /// limit (stopped), or the strategy's timeout passes (timed_out). The thread form of wait():
  /// on an executor thread, a wait is a std::logic_error (await wait(next) there).
  [[nodiscard]] barrier_wait_result wait_blocking(std::int64_t next) {
    std::int64_t hi = next - 1;
    const auto st = seqr_->waits().wait([&] { return (hi = available(next)) >= next; },
                                        [&] { return should_stop(next); });
    return {hi, st};
  }

  /// As wait_blocking, giving up at `deadline`.
  [[nodiscard]] barrier_wait_result wait_blocking_until(std::int64_t next,
                                               wait_strategy::clock::time_point deadline) {
    std::int64_t hi = next - 1;
    const auto st = seqr_->waits().wait_until([&] { return (hi = available(next)) >= next; },
                                              [&] { return should_stop(next); }, deadline);
    return {hi, st};
  }

  /// Coroutine waits (awaitable with <rondo/coro/barrier_wait.hpp>, which rondo.hpp includes):
  /// `co_await barrier.wait(next)` yields a barrier_wait_result: status ready with the highest
  /// available sequence (>= next, possibly more), or stopped (alerted, past the drain limit,
  /// closed). It spins, yields, then suspends per the wait strategy's spin_then_suspend policy
  /// and resumes on the scheduler current when it suspends. With a stop token it
  /// may yield cancelled; with a deadline, timed_out. One waiter per barrier at a time, as for
  /// wait_blocking(). Never allocates.
  [[nodiscard]] barrier_wait_request wait(std::int64_t next) noexcept {
    return {this, next, std::chrono::steady_clock::time_point::max(), {}};
  }
  [[nodiscard]] barrier_wait_request wait(std::int64_t next, std::stop_token stop) noexcept {
    return {this, next, std::chrono::steady_clock::time_point::max(), std::move(stop)};
  }
  [[nodiscard]] barrier_wait_request wait(std::int64_t next,
                                          std::chrono::steady_clock::time_point deadline,
                                          std::stop_token stop = {}) noexcept {
    return {this, next, deadline, std::move(stop)};
  }

  /// Stops the waiter now (it returns wait_status::stopped). Thread-safe, idempotent.
  void alert() noexcept {
    // Relaxed: the wake_all() below (a release RMW plus a syscall) and the waiter's loop
    // re-reading the flag make it visible; no data is published through it.
    alerted_.store(true, std::memory_order_relaxed);
    seqr_->waits().wake_all();
  }
  void clear_alert() noexcept {
    // Relaxed: only called before the handler (re)starts, on the thread that starts it.
    alerted_.store(false, std::memory_order_relaxed);
  }
  [[nodiscard]] bool alerted() const noexcept {
    // Relaxed: see alert().
    return alerted_.load(std::memory_order_relaxed);
  }

  /// Makes waiters stop once their next sequence is past `last` (drain).
  void set_limit(std::int64_t last) noexcept {
    // Relaxed: see alert().
    limit_.store(last, std::memory_order_relaxed);
    seqr_->waits().wake_all();
  }
  [[nodiscard]] std::int64_t limit() const noexcept {
    // Relaxed: see alert().
    return limit_.load(std::memory_order_relaxed);
  }

  [[nodiscard]] bool should_stop(std::int64_t next) const noexcept {
    return alerted() || next > limit();
  }

  [[nodiscard]] const sequencer& source() const noexcept { return *seqr_; }
  [[nodiscard]] const std::vector<const sequence*>& dependencies() const noexcept {
    return deps_;
  }

 private:
  // Two modes. Single events (a request, a ping): wait on the stamp of `next`, in the line the
  // event arrives in. A batch forming (the slot after `next` stamped too: the producer streams):
  // follow the cursor, until `single_looks_to_stamps` looks in a row find one event each (the
  // producer went back to single events). Why not the stamp always: a waiter that keeps reading
  // the line a streaming producer is filling takes it away from the producer between its
  // stores, and every store of the producer into that line waits for it to come back (measured:
  // one-to-one at batch 1 fell from ~300 M to ~25 M events/s). The cursor is written once per
  // publish, after the slots, so following it costs the producer one contended store, not all.
  static constexpr std::uint32_t single_looks_to_stamps = 8;

  [[nodiscard]] std::int64_t stamped_available(std::int64_t next) const noexcept {
    // Relaxed (streaming_ and singles_): this barrier's waiter's own hints; nothing is published
    // through them.
    if (streaming_.load(std::memory_order_relaxed)) {
      // Acquire (in sequence::get): pairs with the producer's release publish.
      const std::int64_t hi = seqr_->cursor().get();
      if (hi > next) {
        singles_.store(0, std::memory_order_relaxed);
      } else if (hi == next) {
        const std::uint32_t n = singles_.load(std::memory_order_relaxed) + 1;
        singles_.store(n, std::memory_order_relaxed);
        if (n >= single_looks_to_stamps) streaming_.store(false, std::memory_order_relaxed);
      }
      return hi;
    }
    if (stamps_.at(next).published() != next) return next - 1;
    const std::int64_t after = next + 1;
    if (stamps_.at(after).published() != after) return next;
    singles_.store(0, std::memory_order_relaxed);
    streaming_.store(true, std::memory_order_relaxed);
    // The stamps are written before the cursor, which may lag what they showed: never report
    // less. Acquire (in sequence::get): pairs with the producer's release publish.
    return std::max(after, seqr_->cursor().get());
  }

  const sequencer* seqr_;
  std::vector<const sequence*> deps_;
  slot_stamps stamps_;  // set by use_stamps() before the handler runs; empty: the cursor
  // With stamps: true while the producer streams, and the single-event looks in a row since
  // (stamped_available); the waiter's own hints.
  mutable std::atomic<bool> streaming_{false};
  mutable std::atomic<std::uint32_t> singles_{0};
  // Written by shutdown paths, read by the waiter every round: its own line so producers'
  // and handlers' lines stay untouched.
  alignas(detail::cache_line_size) std::atomic<bool> alerted_{false};
  std::atomic<std::int64_t> limit_{std::numeric_limits<std::int64_t>::max()};
};

}  // namespace rondo
