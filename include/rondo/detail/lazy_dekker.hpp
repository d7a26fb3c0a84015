#pragma once
// A store-then-load handshake whose notifier side is free until the first waiter ever parks.
//
// A parking waiter stores "I wait" and then loads the condition; a notifier stores the condition
// and then loads "anyone waiting?". Both need store-then-load ordering (a seq_cst fence each), or
// a waiter can be left asleep. A fence costs 6-9 ns here, which would double the cost of a
// publish, and most disruptors never park anybody. So the gate starts `idle`:
//
//   notifier:  store condition; compiler barrier; if state == idle: done (nobody ever parked)
//                                                else: seq_cst fence; load "anyone waiting?"
//   waiter:    store "I wait"; if state != active: membarrier (heavy), state = active
//                                                else: seq_cst fence
//              re-check the condition
//
// The first waiter's membarrier runs a full barrier on every CPU running one of our threads, so
// a notifier that still read `idle` made its store visible to the waiter's re-check (the
// asymmetric Dekker argument of asymmetric_fence.hpp). From then on both sides fence. The state
// never goes back: one membarrier costs 1 us when the other cores are idle and ~50 us when they
// run our threads (measured on this VM), too much to pay per wait.
//
// A waiter that finds the state `arming` (another waiter is inside its membarrier) runs its own
// membarrier rather than rely on one that may not have reached every CPU yet.
// Without membarrier the gate is active from the start (real fences on both sides).

#include <rondo/detail/asymmetric_fence.hpp>
#include <rondo/detail/config.hpp>

#include <atomic>
#include <cstdint>

namespace rondo::detail {

class lazy_dekker {
 public:
  lazy_dekker() noexcept {
    // Before any thread can use the gate: relaxed.
    if (!asymmetric_fence::is_asymmetric()) state_.store(active, std::memory_order_relaxed);
  }

  /// Notifier, after storing its condition: true if a waiter may be parked (then load the
  /// waiter flag; it is ordered after the caller's store).
  [[nodiscard]] bool notifier_fence() noexcept {
    asymmetric_fence::light();
    // Relaxed: idle is only left through a membarrier that orders this load (file comment).
    if (state_.load(std::memory_order_relaxed) == idle) [[likely]] return false;
    seq_cst_fence();  // pairs with the waiter's fence (or membarrier) in waiter_fence()
    return true;
  }

  /// Waiter, after storing "I wait" and before re-checking the condition. `always_heavy`: run
  /// a membarrier now and leave the gate as it is (notifiers that never fence stay correct), for
  /// waiters that would rather pay per wait than make every notification fence.
  void waiter_fence(bool always_heavy = false) noexcept {
    // Relaxed: only `active` lets us skip the membarrier, and it is stored after one completed.
    std::uint8_t s = state_.load(std::memory_order_relaxed);
    if (always_heavy && s != active) {
      asymmetric_fence::heavy();  // pairs with light() in notifier_fence()
      return;
    }
    if (s == active) {
      seq_cst_fence();  // pairs with the notifier's fence in notifier_fence()
      return;
    }
    // Relaxed: the membarrier below is what orders; the state only steers the notifiers.
    if (s == idle) (void)state_.compare_exchange_strong(s, arming, std::memory_order_relaxed);
    asymmetric_fence::heavy();  // pairs with light() in notifier_fence(); ends with a fence
    // Relaxed: see above; idle -> arming -> active, never back.
    state_.store(active, std::memory_order_relaxed);
  }

  [[nodiscard]] bool is_active() const noexcept {
    // Relaxed: statistics and tests only.
    return state_.load(std::memory_order_relaxed) == active;
  }

 private:
  // idle: no waiter ever parked; arming: a first waiter is in its membarrier; active: both sides
  // fence. Moves only forward.
  static constexpr std::uint8_t idle = 0;
  static constexpr std::uint8_t arming = 1;
  static constexpr std::uint8_t active = 2;
  std::atomic<std::uint8_t> state_{idle};
};

}  // namespace rondo::detail
