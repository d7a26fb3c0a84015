#pragma once
// Thread wait strategies: what a handler thread does while the events it needs are not yet
// available, and what a producer does while the ring is full.
//
// Theory of operation (blocking strategy, the only one that sleeps in the kernel)
//
//   waiter (handler or producer)               signaller (publisher, stage advancing)
//   ----------------------------               -------------------------------------
//   e = epoch_ (acquire)                       store sequence (release)
//   waiters_ += 1           (seq_cst RMW)      fence (seq_cst)            <- F2
//   fence (seq_cst)                  <- F1     if waiters_ (relaxed) != 0:
//   if ready(): waiters_ -= 1; return              epoch_ += 1 (release)
//   futex_wait(epoch_, e)                          futex_wake_all(epoch_)
//   waiters_ -= 1; loop
//
// F1 and F2 are ordered one way or the other. If F1 comes first, the signaller's load sees the
// increment and bumps the epoch, so futex_wait either returns at once (epoch changed) or is
// woken. If F2 comes first, the waiter's ready() sees the new sequence. So no wake-up is lost.
// A signaller that finds no waiter pays one fence and one load: no syscall, no RMW. The
// non-blocking strategies never sleep in the kernel, so their signal() is a no-op.
//
// Unlike the LMAX BlockingWaitStrategy, a blocked handler also sleeps while an upstream stage is
// behind (every stage advance signals), and producers waiting for capacity block the same way
// instead of parking for a fixed time.

#include <rondo/detail/config.hpp>
#include <rondo/detail/futex.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <variant>

namespace rondo {

/// Spin on the condition, never yield. Lowest latency; burns a core per waiting thread.
struct busy_spin {
  std::chrono::nanoseconds timeout{0};  ///< 0: wait for ever. Else a wait gives up after this.
};
/// Spin `spins` times, then std::this_thread::yield() between checks.
struct yielding {
  std::uint32_t spins = 100;
  std::chrono::nanoseconds timeout{0};
};
/// Spin, then yield, then sleep `sleep` between checks (latency up to `sleep`, near-idle CPU).
struct sleeping {
  std::uint32_t spins = 100;
  std::uint32_t yields = 100;
  std::chrono::nanoseconds sleep{std::chrono::microseconds{50}};
  std::chrono::nanoseconds timeout{0};
};
/// Spin, then sleep on a futex until signalled. Publishers pay a fence per publish.
struct blocking {
  std::uint32_t spins = 100;
  std::chrono::nanoseconds timeout{0};
};

/// One of the four strategies, as a value (what the builder takes).
using wait_config = std::variant<busy_spin, yielding, sleeping, blocking>;

/// Outcome of a wait.
enum class wait_status : std::uint8_t {
  ready,     ///< the condition holds
  stopped,   ///< the stop predicate holds (shutdown, alert)
  timed_out  ///< the strategy's timeout (or the caller's deadline) passed first
};

/// The runtime wait strategy shared by every stage and producer of one disruptor. Non-copyable:
/// the blocking strategy's futex words live here.
///
/// Thread-safety: wait() and signal() may be called from any number of threads concurrently.
class wait_strategy {
 public:
  using clock = std::chrono::steady_clock;

  explicit wait_strategy(wait_config cfg = busy_spin{}) noexcept : cfg_(cfg) {
    blocking_ = std::holds_alternative<blocking>(cfg_);
  }
  wait_strategy(const wait_strategy&) = delete;
  wait_strategy& operator=(const wait_strategy&) = delete;

  [[nodiscard]] const wait_config& config() const noexcept { return cfg_; }
  [[nodiscard]] bool is_blocking() const noexcept { return blocking_; }

  /// The configured timeout (0: none).
  [[nodiscard]] std::chrono::nanoseconds timeout() const noexcept {
    return std::visit([](const auto& c) { return c.timeout; }, cfg_);
  }

  /// Waits until ready() or stop() returns true, or the strategy's timeout passes.
  /// ready() is checked before stop(), so a condition that holds is reported as ready.
  template <class Ready, class Stop>
  wait_status wait(Ready&& ready, Stop&& stop) {
    const auto t = timeout();
    const auto deadline = t.count() > 0 ? clock::now() + t : clock::time_point::max();
    return wait_until(ready, stop, deadline);
  }

  /// As wait(), with an explicit deadline (time_point::max(): none); the strategy's own timeout
  /// is ignored.
  template <class Ready, class Stop>
  wait_status wait_until(Ready&& ready, Stop&& stop, clock::time_point deadline) {
    return std::visit(
        [&](const auto& c) -> wait_status {
          using C = std::decay_t<decltype(c)>;
          std::uint64_t i = 0;
          for (;; ++i) {
            if (ready()) return wait_status::ready;
            if (stop()) return wait_status::stopped;
            // Reading the clock costs ~20 ns; do it every 256 rounds of spinning.
            if ((i & 255) == 255 && deadline != clock::time_point::max() &&
                clock::now() >= deadline) {
              return wait_status::timed_out;
            }
            if constexpr (std::is_same_v<C, busy_spin>) {
              detail::cpu_relax();
            } else if constexpr (std::is_same_v<C, yielding>) {
              if (i < c.spins) detail::cpu_relax(); else std::this_thread::yield();
            } else if constexpr (std::is_same_v<C, sleeping>) {
              if (i < c.spins) {
                detail::cpu_relax();
              } else if (i < std::uint64_t{c.spins} + c.yields) {
                std::this_thread::yield();
              } else {
                if (deadline != clock::time_point::max() && clock::now() >= deadline) {
                  return wait_status::timed_out;
                }
                std::this_thread::sleep_for(c.sleep);
              }
            } else {
              if (i >= c.spins) return block(ready, stop, deadline);
              detail::cpu_relax();
            }
          }
        },
        cfg_);
  }

  /// Called after every sequence advance that a waiter might wait for. Free (one predictable
  /// branch) unless the strategy is blocking.
  void signal() noexcept {
    if (blocking_) signal_blocked();
  }

  /// Wakes every blocked waiter unconditionally (shutdown paths).
  void wake_all() noexcept {
    // Pairs with the acquire load of epoch_ in block(): a waiter that read the old epoch either
    // sees the change in futex_wait's comparison or is woken by the syscall below.
    epoch_.fetch_add(1, std::memory_order_release);
    detail::futex_wake_all(epoch_);
  }

 private:
  template <class Ready, class Stop>
  wait_status block(Ready& ready, Stop& stop, clock::time_point deadline) {
    for (;;) {
      // Pairs with the release increment in signal_blocked()/wake_all().
      const std::uint32_t e = epoch_.load(std::memory_order_acquire);
      // Announce ourselves before the final check; the RMW plus fence F1 pair with fence F2 in
      // signal_blocked() (see the file comment).
      waiters_.fetch_add(1, std::memory_order_seq_cst);
      detail::seq_cst_fence();
      wait_status st;
      if (ready()) {
        st = wait_status::ready;
      } else if (stop()) {
        st = wait_status::stopped;
      } else {
        std::chrono::nanoseconds left{-1};
        if (deadline != clock::time_point::max()) {
          left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - clock::now());
          if (left.count() <= 0) {
            // Relaxed: the count is only a hint to signallers, ordered by the fences above.
            waiters_.fetch_sub(1, std::memory_order_relaxed);
            return ready() ? wait_status::ready : wait_status::timed_out;
          }
        }
        detail::futex_wait(epoch_, e, left);
        // Relaxed: as above.
        waiters_.fetch_sub(1, std::memory_order_relaxed);
        continue;
      }
      // Relaxed: as above.
      waiters_.fetch_sub(1, std::memory_order_relaxed);
      return st;
    }
  }

  void signal_blocked() noexcept {
    // F2: orders the caller's preceding sequence store before the load of waiters_; pairs with
    // F1 in block().
    detail::seq_cst_fence();
    if (waiters_.load(std::memory_order_relaxed) != 0) wake_all();
  }

  wait_config cfg_;
  bool blocking_ = false;
  // Written by waiters (register/unregister), read by every signaller.
  alignas(detail::cache_line_size) std::atomic<std::uint32_t> waiters_{0};
  // The futex word: bumped by signallers that saw a waiter; waiters sleep on it.
  alignas(detail::cache_line_size) std::atomic<std::uint32_t> epoch_{0};
};

}  // namespace rondo
