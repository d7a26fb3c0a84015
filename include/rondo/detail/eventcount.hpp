#pragma once
// An eventcount on one 32-bit futex word: how a thread sleeps until "something changed" without
// making every notifier pay a syscall or a fence. Used by the thread wait strategies that sleep
// and by thread_scheduler.
//
// Bit 0 is "armed" (someone may be asleep since the last bump), bits 1..31 an epoch.
//
//   waiter                                      notifier
//   ------                                      --------
//   key = prepare_wait()  (word |= armed, then  make the condition true (store, push, ...)
//                          the heavy fence)     notify(): compiler barrier; w = word (relaxed)
//   if condition holds: return                    if w is armed: CAS word -> (epoch + 1,
//   wait(key)             (futex_wait)                           unarmed); futex_wake_all
//   loop
//
// The waiter's heavy fence is a membarrier (detail/asymmetric_fence.hpp): it runs a barrier on
// every CPU that runs one of our threads. A notifier whose load missed the armed bit did so
// before that barrier reached its CPU, so its store is visible to the waiter's re-check; one
// whose load sees the bit bumps the epoch and wakes, so futex_wait either returns at once (the
// word is no longer key) or is woken. So no wake-up is lost, and a notifier that finds the word
// unarmed pays a compiler barrier and a load: no fence, no RMW, no syscall. The membarrier is
// paid once per sleep, next to a futex sleep that costs more. Only the first notifier after an
// arm makes the syscall; those that follow while the woken thread is being scheduled find it
// unarmed (a plain count of waiters would make every one of them call futex_wake).
// Without membarrier, both fences are real seq_cst fences (asymmetric_fence decides, once).

#include <rondo/detail/asymmetric_fence.hpp>
#include <rondo/detail/config.hpp>
#include <rondo/detail/futex.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace rondo::detail {

class eventcount {
 public:
  /// Waiter: arm the word and run the heavy fence; re-check the condition afterwards, then
  /// wait(key) if it still fails.
  [[nodiscard]] std::uint32_t prepare_wait() noexcept {
    const std::uint32_t key = arm();
    asymmetric_fence::heavy();  // pairs with light() in notify()
    return key;
  }

  /// Waiter: arm only; the caller runs asymmetric_fence::heavy() before its re-check (for a
  /// waiter that orders several handshakes with one fence).
  [[nodiscard]] std::uint32_t arm() noexcept {
    // Relaxed: the heavy fence that follows in the caller orders it against the notifiers'
    // loads (file comment); the CAS in notify() reads it as a plain value.
    return word_.fetch_or(armed, std::memory_order_relaxed) | armed;
  }

  /// Waiter: sleep until notified (or `timeout`, negative: none). May return spuriously.
  void wait(std::uint32_t key,
            std::chrono::nanoseconds timeout = std::chrono::nanoseconds{-1}) noexcept {
    futex_wait(word_, key, timeout);
  }

  /// Notifier, after making the condition true: wakes sleepers only if one armed the word.
  [[gnu::always_inline]] void notify() noexcept {
    asymmetric_fence::light();  // pairs with the waiter's heavy fence
    // Relaxed: ordered by the waiter's membarrier; see the file comment.
    const std::uint32_t w = word_.load(std::memory_order_relaxed);
    if ((w & armed) != 0) [[unlikely]] wake_armed(w);
  }

  /// As notify(), for a caller that already ran asymmetric_fence::light() over its store and
  /// word().
  [[gnu::always_inline]] void notify_fenced() noexcept {
    // Relaxed: ordered by the waiter's membarrier; see the file comment.
    const std::uint32_t w = word_.load(std::memory_order_relaxed);
    if ((w & armed) != 0) [[unlikely]] wake_armed(w);
  }
  /// The word notify() loads (for asymmetric_fence::light(stored, loaded)).
  [[nodiscard]] const std::atomic<std::uint32_t>& word() const noexcept { return word_; }

  /// Wakes every sleeper unconditionally (shutdown paths).
  void notify_all() noexcept {
    // A new epoch (the armed bit may stay: the value changed either way). Pairs with the RMW in
    // arm(): a waiter whose key predates this fails futex_wait's comparison or is woken.
    word_.fetch_add(2, std::memory_order_release);
    futex_wake_all(word_);
  }

 private:
  [[gnu::noinline]] void wake_armed(std::uint32_t w) noexcept {
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

  static constexpr std::uint32_t armed = 1;
  // Armed by waiters, read by every notifier, bumped by the first notifier after an arm.
  alignas(cache_line_size) std::atomic<std::uint32_t> word_{0};
};

}  // namespace rondo::detail
