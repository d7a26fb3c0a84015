#pragma once
// The waiter registry: where suspended coroutines (a stage waiting for a sequence, a producer
// waiting for capacity) wait to be handed back to their scheduler. One per disruptor.
//
// Theory of operation
//   A waiter is an intrusive wait_node living in the awaiting operation (in the coroutine frame),
//   so parking never allocates. Each node carries a target sequence: the wait cannot end before
//   some sequence the waiter depends on reaches it (a stage waiting for `next` needs the cursor or
//   an upstream stage to reach `next`; a producer waiting for capacity needs the slowest terminal
//   stage to reach `hi - capacity`). `min_target_` is the lowest target of any linked node
//   (INT64_MAX: none).
//
//   waiter (park)                            notifier (a publish or a stage advance to v)
//   -------------                            ------------------------------------------
//   lock; link node; min_target_ = min(..)   store the sequence (release)
//   unlock                                   F2 (lazy_dekker::notifier_fence)
//   F1 (lazy_dekker::waiter_fence)           if v < min_target_: return   (the fast path)
//   re-check the condition                   lock; for each node: if ready(node): unlink
//   if it holds: remove(node); if that       unlock; wake(node) for each unlinked node
//   succeeds, go on without suspending
//
//   F1/F2 make sure that either the notifier sees min_target_ <= v, or the waiter's re-check sees
//   the new sequence (docs/wakeup-protocol.md has the full argument, including waits on several
//   upstream sequences at once). "v >= target" is a necessary condition for a waiter to become
//   ready through this advance, so notifiers below every target skip the lock. Until a waiter
//   ever parks, F2 is a compiler barrier (lazy_dekker), so a disruptor without coroutine waits
//   pays one load and one branch per publish.
//
//   Ownership of a node: whoever unlinks it (under the lock) owns the wake-up. remove() tells the
//   waiter whether it still owned it. wake() runs outside the lock; it must not touch the node
//   after handing the coroutine over.
//
// ready() runs under the lock on the notifier's thread; it must only read atomics.

#include <rondo/detail/config.hpp>
#include <rondo/detail/lazy_dekker.hpp>

#include <atomic>
#include <cstdint>
#include <limits>
#include <thread>

namespace rondo::detail {

struct wait_node {
  wait_node* prev = nullptr;  // guarded by the registry lock
  wait_node* next = nullptr;  // guarded by the registry lock; after unlinking, the wake list
  bool linked = false;        // guarded by the registry lock
  std::int64_t target = 0;    // set before add(); the lowest sequence that can end the wait
  /// Under the registry lock, on a notifier's thread: has the wait ended (condition or stop)?
  bool (*ready)(wait_node&) noexcept = nullptr;
  /// After unlinking, outside the lock: hand the waiter back (post its coroutine).
  void (*wake)(wait_node&) noexcept = nullptr;
};

/// Thread-safety: every member may be called from any thread.
class waiter_registry {
 public:
  waiter_registry() = default;
  waiter_registry(const waiter_registry&) = delete;
  waiter_registry& operator=(const waiter_registry&) = delete;

  /// Waiter: links `n` (its target, ready and wake set), then runs F1. Re-check the condition
  /// after this returns; if it holds, call remove(). `membarrier_each_time`: F1 is a membarrier
  /// and the gate stays idle (see lazy_dekker::waiter_fence).
  void add(wait_node& n, bool membarrier_each_time = false) noexcept {
    lock();
    n.linked = true;
    n.prev = tail_;
    n.next = nullptr;
    if (tail_ != nullptr) tail_->next = &n; else head_ = &n;
    tail_ = &n;
    count_.store(count_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    // Relaxed: a statistic; single writer under the lock.
    parks_.store(parks_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    // Relaxed: read by notifiers after their F2; the waiter's F1 below orders this store.
    if (n.target < min_target_.load(std::memory_order_relaxed)) {
      min_target_.store(n.target, std::memory_order_relaxed);
    }
    unlock();
    gate_.waiter_fence(membarrier_each_time);  // F1: pairs with F2 in notify()
  }

  /// Waiter: withdraws `n`. True if it was still linked (no wake() will come); false if a
  /// notifier already unlinked it and owns its wake-up.
  [[nodiscard]] bool remove(wait_node& n) noexcept {
    lock();
    const bool was_linked = n.linked;
    if (was_linked) {
      unlink(n);
      recompute_min();
    }
    unlock();
    return was_linked;
  }

  /// Notifier: call after storing a sequence that advanced to `v` (release). Wakes the waiters
  /// whose wait has ended. No lock, no RMW unless a waiter with target <= v is parked.
  void notify(std::int64_t v) noexcept {
    const bool fenced = gate_.notifier_fence();  // F2 (a compiler barrier while the gate is idle)
    // Relaxed: ordered after the caller's store by F2, or by the waiters' membarrier while the
    // gate is idle (see the file comment).
    if (v < min_target_.load(std::memory_order_relaxed)) [[likely]] return;
    // A full fence before reading other sequences under the lock, also when F2 was only a
    // compiler barrier (docs/wakeup-protocol.md: waits on several upstream sequences).
    if (!fenced) seq_cst_fence();
    wake_matching(false);
  }

  /// Wakes every parked waiter (shutdown: they re-check their stop condition). Callers store
  /// their stop flag before calling; a waiter that links later sees it (the lock orders both).
  void wake_all() noexcept { wake_matching(true); }

  /// Parked waiters now (a snapshot).
  [[nodiscard]] std::size_t size() const noexcept {
    // Relaxed: statistics and tests only.
    return count_.load(std::memory_order_relaxed);
  }

  /// How many times a waiter ever parked here (a statistic).
  [[nodiscard]] std::uint64_t parks() const noexcept {
    // Relaxed: statistics and tests only.
    return parks_.load(std::memory_order_relaxed);
  }

  [[nodiscard]] bool gate_active() const noexcept { return gate_.is_active(); }

 private:
  void wake_matching(bool all) noexcept {
    wait_node* woken = nullptr;
    wait_node** tail = &woken;
    lock();
    for (wait_node* n = head_; n != nullptr;) {
      wait_node* next = n->next;
      if (all || n->ready(*n)) {
        unlink(*n);
        n->next = nullptr;
        *tail = n;
        tail = &n->next;
      }
      n = next;
    }
    recompute_min();
    unlock();
    while (woken != nullptr) {
      wait_node* n = woken;
      woken = n->next;  // read before wake(): the node may be gone right after
      n->wake(*n);
    }
  }

  void unlink(wait_node& n) noexcept {
    if (n.prev != nullptr) n.prev->next = n.next; else head_ = n.next;
    if (n.next != nullptr) n.next->prev = n.prev; else tail_ = n.prev;
    n.prev = nullptr;
    n.linked = false;
    count_.store(count_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  }

  void recompute_min() noexcept {
    std::int64_t m = std::numeric_limits<std::int64_t>::max();
    for (wait_node* n = head_; n != nullptr; n = n->next) m = n->target < m ? n->target : m;
    // Relaxed: under the lock; notifiers read it after F2 (a stale low value only costs them a
    // look under the lock; a stale high one is covered by the waiter's re-check).
    min_target_.store(m, std::memory_order_relaxed);
  }

  void lock() noexcept {
    for (std::uint32_t i = 0;; ++i) {
      // Acquire: pairs with the release store in unlock().
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      // Relaxed: spin on a read until the lock looks free, then retry the exchange.
      while (locked_.load(std::memory_order_relaxed)) {
        // The holder may have been preempted (more threads than cores): stop burning its core.
        if (++i > 64) std::this_thread::yield(); else cpu_relax();
      }
    }
  }
  void unlock() noexcept {
    // Release: pairs with the acquire exchange in lock().
    locked_.store(false, std::memory_order_release);
  }

  // Read by every notifier: the gate and the lowest target. Written when waiters come and go.
  alignas(cache_line_size) std::atomic<std::int64_t> min_target_{
      std::numeric_limits<std::int64_t>::max()};
  lazy_dekker gate_;
  // Written by waiters and by notifiers that wake.
  alignas(cache_line_size) std::atomic<bool> locked_{false};
  std::atomic<std::size_t> count_{0};
  std::atomic<std::uint64_t> parks_{0};
  wait_node* head_ = nullptr;  // guarded by locked_
  wait_node* tail_ = nullptr;  // guarded by locked_
};

}  // namespace rondo::detail
