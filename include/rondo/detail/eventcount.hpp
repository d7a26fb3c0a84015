#pragma once
// An eventcount on one 32-bit futex word: how a thread sleeps until "something changed" without
// making every notifier pay a syscall. Used by the thread wait strategies that sleep and by
// thread_scheduler.
//
// Bit 0 is "armed" (someone may be asleep since the last bump), bits 1..31 an epoch.
//
//   waiter                                      notifier
//   ------                                      --------
//   key = prepare_wait()  (word |= armed,       make the condition true (store, push, ...)
//                          then F1)             notify(): F2; w = word (relaxed)
//   if condition holds: return                    if w is armed: CAS word -> (epoch + 1,
//   wait(key)             (futex_wait)                           unarmed); futex_wake_all
//   loop
//
// F1 and F2 are the two sides of detail::lazy_dekker: until the first waiter ever arms, F2 is a
// compiler barrier and notify() returns after one load; the first arm pays a membarrier, and from
// then on F1 and F2 are seq_cst fences. F1 and F2 are ordered one way or the other. If F1 comes
// first, the notifier's load sees the armed bit, bumps the epoch and wakes, so futex_wait either
// returns at once (the word is no longer key) or is woken. If F2 comes first, the waiter's
// re-check sees the condition. So no wake-up is lost. A notifier that finds the word unarmed pays
// a fence and a load: no syscall, no RMW. Only the first notifier after an arm makes the
// syscall; those that follow while the woken thread is being scheduled find it unarmed (a plain
// count of waiters would make every one of them call futex_wake).

#include <rondo/detail/config.hpp>
#include <rondo/detail/futex.hpp>
#include <rondo/detail/lazy_dekker.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace rondo::detail {

class eventcount {
 public:
  /// Waiter: arm the word; re-check the condition afterwards, then wait(key) if it still fails.
  [[nodiscard]] std::uint32_t prepare_wait() noexcept {
    // Pairs with the load and CAS in notify(); with F1 below and F2 there it forms the handshake
    // of the file comment.
    const std::uint32_t key = word_.fetch_or(armed, std::memory_order_seq_cst) | armed;
    gate_.waiter_fence();  // F1
    return key;
  }

  /// Waiter: sleep until notified (or `timeout`, negative: none). May return spuriously.
  void wait(std::uint32_t key,
            std::chrono::nanoseconds timeout = std::chrono::nanoseconds{-1}) noexcept {
    futex_wait(word_, key, timeout);
  }

  /// Notifier, after making the condition true: wakes sleepers only if one armed the word.
  void notify() noexcept {
    if (!gate_.notifier_fence()) return;  // F2; nobody has ever armed the word
    // Relaxed: ordered by F2; see the file comment.
    std::uint32_t w = word_.load(std::memory_order_relaxed);
    while ((w & armed) != 0) {
      // Release: a woken waiter's re-check happens after our store. On failure w is reloaded
      // (relaxed, as above): another notifier may have bumped it already.
      if (word_.compare_exchange_weak(w, (w + 2) & ~armed, std::memory_order_release,
                                      std::memory_order_relaxed)) {
        futex_wake_all(word_);
        return;
      }
    }
  }

  /// Wakes every sleeper unconditionally (shutdown paths).
  void notify_all() noexcept {
    // A new epoch (the armed bit may stay: the value changed either way). Pairs with the RMW in
    // prepare_wait(): a waiter whose key predates this fails futex_wait's comparison or is woken.
    word_.fetch_add(2, std::memory_order_release);
    futex_wake_all(word_);
  }

 private:
  static constexpr std::uint32_t armed = 1;
  // Armed by waiters, read by every notifier, bumped by the first notifier after an arm.
  alignas(cache_line_size) std::atomic<std::uint32_t> word_{0};
  lazy_dekker gate_;
};

}  // namespace rondo::detail
