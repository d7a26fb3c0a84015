#pragma once
// The waiter registry: how a notifier (a publish, a stage passing a batch) finds the executors
// that sleep in the kernel waiting for it. One per disruptor (in its wait_strategy).
//
// Theory of operation (docs/wakeup-protocol.md has the whole protocol and its proof)
//   Parking is not sleeping. A coroutine whose wait is not satisfied parks in its executor's
//   park_lot (coro/park_lot.hpp); the executor re-polls it with plain loads while it is awake.
//   Nothing is linked here then, and a notifier pays a compiler barrier and one load.
//   Only an executor about to sleep in the kernel links an *announcement* here for each of its
//   parked waits, runs the asymmetric fence (membarrier) and re-polls; after the sleep it
//   withdraws them. Schedulers without a park lot link their waits here directly ("direct"
//   nodes) and pay the membarrier per park.
//
//   sleeping executor                          notifier (a publish or a stage advance to v)
//   -----------------                          ------------------------------------------
//   lock; link node; min_target_ = min(..)     store the sequence (release)
//   unlock   (for each parked wait)            compiler barrier (asymmetric_fence::light)
//   membarrier (asymmetric_fence::heavy)       if v < min_target_: return     (the fast path)
//   re-poll every parked wait                  lock; for each node: if ready(node): unlink;
//   if one is ready: withdraw, don't sleep       announcement: pin its sleeper
//   sleep; withdraw (wait until unpinned)      unlock; wake the pinned sleepers, unpin them;
//                                                call wake(node) for direct nodes
//
//   A notifier that read min_target_ before the announcement reached it did so before the
//   membarrier ran a barrier on its CPU, so its store is visible to the executor's re-poll; one
//   that sees the announcement looks under the lock. "v >= target" is necessary for a wait to
//   end through this advance, so notifiers below every target skip the lock. A wait also says
//   which kind of advance can end it (`sources`): a stage right behind the producers waits for
//   the cursor, one behind other stages for their positions, a producer for the terminal
//   stages. Each kind has its own lowest target, so a publish does not look under the lock for
//   an executor that sleeps on a stage that is behind.
//
//   Ownership: whoever unlinks a node (under the lock) owns the wake-up. remove() tells the
//   owner whether it still owned it. A direct node's wake() runs outside the lock and must not
//   touch the node after handing its coroutine over. An announcement belongs to an executor that
//   may be destroyed once it stops sleeping, so a notifier pins the executor's `sleeper` under
//   the lock and the executor waits for the pins to drop before it goes on (wait_unpinned()).
//
// ready() runs under the lock on the notifier's thread; it must only read atomics.

#include <rondo/detail/asymmetric_fence.hpp>
#include <rondo/detail/config.hpp>

#include <atomic>
#include <cstdint>
#include <limits>
#include <thread>

namespace rondo::detail {

/// An executor that may sleep in the kernel with announcements linked in registries.
struct sleeper {
  /// Any thread: ends the owner's kernel sleep if it is in one (its doorbell). Never blocks.
  void (*wake)(sleeper&) noexcept = nullptr;
  /// Notifiers between unlinking one of our announcements and returning from wake(). Written
  /// under a registry lock (+1) and after wake() (-1); the owner waits for 0 (wait_unpinned).
  std::atomic<std::uint32_t> pins{0};

  /// Owner, after withdrawing its announcements: returns once no notifier can touch us.
  void wait_unpinned() const noexcept {
    // Acquire: pairs with the release decrement in waiter_registry::wake_matching().
    for (std::uint32_t i = 0; pins.load(std::memory_order_acquire) != 0; ++i) {
      if (i > 64) std::this_thread::yield(); else cpu_relax();
    }
  }
};

/// Which kind of advance a notifier made (bits of wait_node::sources).
enum advance_kind : std::uint8_t {
  cursor_advance = 1,  ///< a publish: the producers' cursor moved
  stage_advance = 2    ///< a stage (or poller) passed events
};

struct wait_node {
  wait_node* prev = nullptr;  // guarded by the registry lock
  wait_node* next = nullptr;  // guarded by the registry lock; after unlinking, the wake list
  bool linked = false;        // guarded by the registry lock
  std::int64_t target = 0;    // set before add(); the lowest sequence that can end the wait
  std::uint8_t sources = cursor_advance | stage_advance;  // set before add(): what can end it
  /// Under the registry lock, on a notifier's thread: has the wait ended (condition or stop)?
  bool (*ready)(wait_node&) noexcept = nullptr;
  /// Announcements: the executor to wake (pinned under the lock). Null: a direct node.
  sleeper* owner = nullptr;
  /// Direct nodes, after unlinking, outside the lock: hand the waiter back (post it).
  void (*wake)(wait_node&) noexcept = nullptr;
};

/// Thread-safety: every member may be called from any thread.
class waiter_registry {
 public:
  waiter_registry() = default;
  waiter_registry(const waiter_registry&) = delete;
  waiter_registry& operator=(const waiter_registry&) = delete;

  /// Links `n` (target, ready and owner or wake set). The caller then runs the asymmetric fence
  /// (asymmetric_fence::heavy) and re-checks its condition; if it holds, call remove().
  void add(wait_node& n) noexcept {
    lock();
    n.linked = true;
    n.prev = tail_;
    n.next = nullptr;
    if (tail_ != nullptr) tail_->next = &n; else head_ = &n;
    tail_ = &n;
    // Relaxed: statistics; single writer under the lock.
    count_.store(count_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    links_.store(links_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    // Relaxed: notifiers read it with a plain load; the linker's membarrier orders this store
    // against their sequence stores (file comment).
    for (int k = 0; k < 2; ++k) {
      if ((n.sources & (1U << k)) != 0 && n.target < min_target_[k].load(std::memory_order_relaxed)) {
        min_target_[k].store(n.target, std::memory_order_relaxed);
      }
    }
    unlock();
  }

  /// Withdraws `n`. True if it was still linked (no wake-up will come from it); false if a
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

  /// Notifier: call after storing a sequence that advanced to `v` (release) and a compiler
  /// barrier (asymmetric_fence::light). `kind`: what advanced. No lock, no RMW, no fence unless
  /// something sleeps on a wait that this kind of advance to v may end.
  [[gnu::always_inline]] void notify(std::int64_t v, advance_kind kind) noexcept {
    // Relaxed: the sleepers' membarrier orders it against our store (file comment).
    if (v < min_target_[kind >> 1].load(std::memory_order_relaxed)) [[likely]] return;
    wake_matching(false);
  }

  /// The lowest announced target notify(v, kind) loads (for asymmetric_fence::light(stored,
  /// loaded)).
  [[nodiscard]] const std::atomic<std::int64_t>& min_target(advance_kind kind) const noexcept {
    return min_target_[kind >> 1];
  }

  /// Wakes everything linked (shutdown: waiters re-check their stop condition). Callers store
  /// their stop flag before calling; a waiter that links later sees it in its re-check (the lock
  /// orders both).
  void wake_all() noexcept { wake_matching(true); }

  /// Nodes linked now (a snapshot): executors asleep on a wait, and direct waiters.
  [[nodiscard]] std::size_t size() const noexcept {
    // Relaxed: statistics and tests only.
    return count_.load(std::memory_order_relaxed);
  }

  /// How many times a node was ever linked here (a statistic).
  [[nodiscard]] std::uint64_t links() const noexcept {
    // Relaxed: statistics and tests only.
    return links_.load(std::memory_order_relaxed);
  }

 private:
  [[gnu::noinline]] void wake_matching(bool all) noexcept {
    // Distinct sleepers pinned by this call. More than fit here (more executors than this asleep
    // on one disruptor): the rest are woken under the lock, which is correct, only slower.
    constexpr std::size_t max_pinned = 16;
    sleeper* pinned[max_pinned];
    std::size_t n_pinned = 0;
    wait_node* direct = nullptr;
    wait_node** tail = &direct;
    lock();
    for (wait_node* n = head_; n != nullptr;) {
      wait_node* next = n->next;
      if (all || n->ready(*n)) {
        unlink(*n);
        if (n->owner != nullptr) {
          pin(n->owner, pinned, n_pinned, max_pinned);
        } else {
          n->next = nullptr;
          *tail = n;
          tail = &n->next;
        }
      }
      n = next;
    }
    recompute_min();
    unlock();
    while (direct != nullptr) {
      wait_node* n = direct;
      direct = n->next;  // read before wake(): the node may be gone right after
      n->wake(*n);
    }
    for (std::size_t i = 0; i < n_pinned; ++i) {
      sleeper* s = pinned[i];
      s->wake(*s);
      // Release: our last touch of the sleeper; pairs with the acquire load in
      // sleeper::wait_unpinned().
      s->pins.fetch_sub(1, std::memory_order_release);
    }
  }

  // Under the lock: remember `s` to wake after unlocking (once per call).
  static void pin(sleeper* s, sleeper** pinned, std::size_t& n, std::size_t max) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
      if (pinned[i] == s) return;
    }
    if (n == max) {
      s->wake(*s);  // under the lock: the sleeper cannot withdraw and go away meanwhile
      return;
    }
    // Relaxed: the owner reads it after taking this registry's lock (to withdraw), which orders
    // it after our unlock.
    s->pins.fetch_add(1, std::memory_order_relaxed);
    pinned[n++] = s;
  }

  void unlink(wait_node& n) noexcept {
    if (n.prev != nullptr) n.prev->next = n.next; else head_ = n.next;
    if (n.next != nullptr) n.next->prev = n.prev; else tail_ = n.prev;
    n.prev = nullptr;
    n.linked = false;
    // Relaxed: a statistic; single writer under the lock.
    count_.store(count_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  }

  void recompute_min() noexcept {
    std::int64_t m[2] = {std::numeric_limits<std::int64_t>::max(),
                         std::numeric_limits<std::int64_t>::max()};
    for (wait_node* n = head_; n != nullptr; n = n->next) {
      for (int k = 0; k < 2; ++k) {
        if ((n->sources & (1U << k)) != 0 && n->target < m[k]) m[k] = n->target;
      }
    }
    // Relaxed: under the lock; notifiers read them with a plain load (a stale low value only
    // costs them a look under the lock; a stale high one is covered by the sleeper's re-poll).
    min_target_[0].store(m[0], std::memory_order_relaxed);
    min_target_[1].store(m[1], std::memory_order_relaxed);
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

  // Read by every notifier: the lowest target of the linked waits that a cursor advance
  // ([0]) or a stage advance ([1]) may end. Written only when executors sleep or wake up.
  alignas(cache_line_size) std::atomic<std::int64_t> min_target_[2] = {
      std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::max()};
  // Written by sleepers and by notifiers that wake.
  alignas(cache_line_size) std::atomic<bool> locked_{false};
  std::atomic<std::size_t> count_{0};
  std::atomic<std::uint64_t> links_{0};
  wait_node* head_ = nullptr;  // guarded by locked_
  wait_node* tail_ = nullptr;  // guarded by locked_
};

}  // namespace rondo::detail
