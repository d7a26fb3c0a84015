#pragma once
// Thread wait strategies: what a handler thread does while the events it needs are not yet
// available, and what a producer does while the ring is full.
//
// Theory of operation (blocking strategy, the only one that sleeps in the kernel)
//
// The blocking strategy is an eventcount (detail/eventcount.hpp): a waiter arms the futex word,
// re-checks its condition, and sleeps; a signaller stores its sequence and then notifies, which
// costs one fence and one load unless a waiter armed the word since the last wake-up. The
// handshake and the argument against lost wake-ups are in that file. The non-blocking
// strategies never sleep in the kernel, so their signal() is a no-op.
//
// Unlike the LMAX BlockingWaitStrategy, a blocked handler also sleeps while an upstream stage is
// behind (every stage advance signals), and producers waiting for capacity block the same way
// instead of parking for a fixed time.

#include <rondo/detail/config.hpp>
#include <rondo/detail/eventcount.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
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

namespace detail {

/// now + timeout, saturating at time_point::max() (no overflow for nanoseconds::max()).
/// Throws std::invalid_argument naming `what` for a negative timeout.
inline std::chrono::steady_clock::time_point deadline_after(std::chrono::nanoseconds timeout,
                                                          const char* what) {
  if (timeout.count() < 0) {
    throw std::invalid_argument(std::string(what) + ": timeout " +
                                std::to_string(timeout.count()) + " ns is negative");
  }
  const auto now = std::chrono::steady_clock::now();
  if (timeout > std::chrono::steady_clock::time_point::max() - now) {
    return std::chrono::steady_clock::time_point::max();
  }
  return now + timeout;
}

}  // namespace detail

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

  /// Throws std::invalid_argument for a negative timeout or sleep.
  explicit wait_strategy(wait_config cfg = busy_spin{}) : cfg_(cfg) {
    blocking_ = std::holds_alternative<blocking>(cfg_);
    if (timeout().count() < 0) {
      throw std::invalid_argument("wait strategy timeout " + std::to_string(timeout().count()) +
                                  " ns is negative (0 means no timeout)");
    }
    if (const auto* s = std::get_if<sleeping>(&cfg_); s != nullptr && s->sleep.count() < 0) {
      throw std::invalid_argument("sleeping wait strategy: sleep " +
                                  std::to_string(s->sleep.count()) + " ns is negative");
    }
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
    const auto deadline =
        t.count() > 0 ? detail::deadline_after(t, "wait strategy") : clock::time_point::max();
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
  void wake_all() noexcept { events_.notify_all(); }

 private:
  template <class Ready, class Stop>
  wait_status block(Ready& ready, Stop& stop, clock::time_point deadline) {
    for (;;) {
      const std::uint32_t key = events_.prepare_wait();
      if (ready()) return wait_status::ready;
      if (stop()) return wait_status::stopped;
      std::chrono::nanoseconds left{-1};
      if (deadline != clock::time_point::max()) {
        left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - clock::now());
        if (left.count() <= 0) return wait_status::timed_out;
      }
      events_.wait(key, left);
    }
  }

  void signal_blocked() noexcept { events_.notify(); }

  wait_config cfg_;
  bool blocking_ = false;
  detail::eventcount events_;
};

}  // namespace rondo
