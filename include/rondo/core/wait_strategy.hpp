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
// spin_then_suspend is the coroutine policy (coro/): a waiting coroutine spins, then yields to its
// scheduler, then parks on its executor, which re-polls it (coro/park_lot.hpp) and announces it
// in the waiter registry (detail/waiter_registry.hpp) only before it sleeps in the kernel. A
// thread stage or producer under spin_then_suspend spins, yields the thread, then sleeps on the
// eventcount like `blocking`. It is the builder's default: a producer on a full ring, or a stage
// behind a producer that was preempted between its claim and its publish, spins briefly, gives
// its core away, and then sleeps, so an oversubscribed machine does not collapse (docs/tuning.md
// has the measurements against busy_spin).
//
// Every publish and stage advance calls signal(v): a compiler barrier and two loads, whoever is
// parked; a fence, RMW or syscall only when a thread or executor sleeps on this disruptor in
// the kernel (docs/wakeup-protocol.md).
//
// Unlike the LMAX BlockingWaitStrategy, a blocked handler also sleeps while an upstream stage is
// behind (every stage advance signals), and producers waiting for capacity block the same way
// instead of parking for a fixed time.

#include <rondo/detail/config.hpp>
#include <rondo/detail/eventcount.hpp>
#include <rondo/detail/waiter_registry.hpp>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
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
/// Spin, then sleep on a futex until signalled. A sleep costs a membarrier besides the futex;
/// publishers pay a syscall only while somebody sleeps.
struct blocking {
  std::uint32_t spins = 100;
  std::chrono::nanoseconds timeout{0};
};

/// How long a coroutine (or thread) keeps trying before it gives its executor away: `spins`
/// checks with a `pause` between them (~20 ns each here), then `yields` trips through its
/// scheduler (letting other coroutines on the same executor run; for a thread,
/// std::this_thread::yield()), then it suspends until woken.
struct wait_phase {
  std::uint32_t spins = 100;
  std::uint32_t yields = 1;
};

/// The three moments a wait can happen in; each can be tuned on its own.
enum class wait_moment : std::uint8_t {
  upstream_behind,  ///< a stage: the events are published but an upstream stage has not passed
                    ///< them yet (work is imminent: spinning pays)
  ring_idle,        ///< a stage: nothing new is published (the producers are quiet)
  ring_full         ///< a producer: the ring is full (the slowest terminal stage is behind)
};

/// Spin, then yield, then suspend (coroutines) or sleep (threads). `spins` and `yields` apply to
/// every moment unless that moment has its own wait_phase. `timeout` (0: none) is the thread
/// stages' timeout as in the other strategies; coroutine waits take deadlines per call.
///
///   .wait(rondo::spin_then_suspend{.spins = 2000})
///   .wait(rondo::spin_then_suspend{.ring_idle = rondo::wait_phase{.spins = 0, .yields = 0}})
struct spin_then_suspend {
  std::uint32_t spins = 100;
  std::uint32_t yields = 1;
  std::optional<wait_phase> upstream_behind;
  std::optional<wait_phase> ring_idle;
  std::optional<wait_phase> ring_full;
  std::chrono::nanoseconds timeout{0};

  /// The phase used at moment `m`.
  [[nodiscard]] wait_phase phase(wait_moment m) const noexcept {
    const std::optional<wait_phase>& o = m == wait_moment::upstream_behind ? upstream_behind
                                         : m == wait_moment::ring_idle     ? ring_idle
                                                                           : ring_full;
    return o ? *o : wait_phase{spins, yields};
  }
};

/// One of the strategies, as a value (what the builder takes).
using wait_config = std::variant<busy_spin, yielding, sleeping, blocking, spin_then_suspend>;

namespace detail {

/// now + timeout, saturating at time_point::max() (no overflow for nanoseconds::max()).
/// Throws std::invalid_argument naming `what` for a negative timeout.
inline std::chrono::steady_clock::time_point deadline_after(std::chrono::nanoseconds timeout,
                                                          const char* what) {
  if (timeout.count() < 0) {
    throw std::invalid_argument(
        fmt::format("{}: timeout {} ns is negative", what, timeout.count()));
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
  timed_out,  ///< the strategy's timeout (or the caller's deadline) passed first
  cancelled   ///< the caller's std::stop_token was triggered first (coroutine waits)
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
    if (timeout().count() < 0) {
      throw std::invalid_argument(fmt::format(
          "wait strategy timeout {} ns is negative (0 means no timeout)", timeout().count()));
    }
    if (const auto* s = std::get_if<sleeping>(&cfg_); s != nullptr && s->sleep.count() < 0) {
      throw std::invalid_argument(
          fmt::format("sleeping wait strategy: sleep {} ns is negative", s->sleep.count()));
    }
  }
  wait_strategy(const wait_strategy&) = delete;
  wait_strategy& operator=(const wait_strategy&) = delete;

  [[nodiscard]] const wait_config& config() const noexcept { return cfg_; }
  /// Whether thread waits may sleep on a futex (blocking, spin_then_suspend).
  [[nodiscard]] bool is_blocking() const noexcept {
    return std::holds_alternative<blocking>(cfg_) ||
           std::holds_alternative<spin_then_suspend>(cfg_);
  }

  /// What coroutine waits do: the configured spin_then_suspend, or its defaults when the
  /// disruptor was configured with a thread strategy.
  [[nodiscard]] spin_then_suspend suspend_policy() const noexcept {
    if (const auto* p = std::get_if<spin_then_suspend>(&cfg_)) return *p;
    return spin_then_suspend{};
  }

  /// Where sleeping executors announce the coroutine waits they hold, and where waits on
  /// schedulers without a park lot link themselves (see detail/waiter_registry.hpp).
  [[nodiscard]] detail::waiter_registry& waiters() noexcept { return waiters_; }

  /// The configured timeout (0: none).
  [[nodiscard]] std::chrono::nanoseconds timeout() const noexcept {
    return std::visit([](const auto& c) { return c.timeout; }, cfg_);
  }

  /// Waits until ready() or stop() returns true, or the strategy's timeout passes.
  /// ready() is checked before stop(), so a condition that holds is reported as ready.
  /// `moment` picks spin_then_suspend's phase (the other strategies ignore it): producers
  /// waiting for capacity pass ring_full.
  template <class Ready, class Stop>
  wait_status wait(Ready&& ready, Stop&& stop, wait_moment moment = wait_moment::ring_idle) {
    const auto t = timeout();
    const auto deadline =
        t.count() > 0 ? detail::deadline_after(t, "wait strategy") : clock::time_point::max();
    return wait_until(ready, stop, deadline, moment);
  }

  /// As wait(), with an explicit deadline (time_point::max(): none); the strategy's own timeout
  /// is ignored.
  template <class Ready, class Stop>
  wait_status wait_until(Ready&& ready, Stop&& stop, clock::time_point deadline,
                         wait_moment moment = wait_moment::ring_idle) {
    return std::visit(
        [&](const auto& c) -> wait_status {
          using C = std::decay_t<decltype(c)>;
          std::uint64_t i = 0;
          for (;; ++i) {
            if (ready()) return wait_status::ready;
            if (stop()) return wait_status::stopped;
            if (i == 0 && detail::on_executor_thread()) [[unlikely]] throw_blocking_on_executor();
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
            } else if constexpr (std::is_same_v<C, blocking>) {
              if (i >= c.spins) return block(ready, stop, deadline);
              detail::cpu_relax();
            } else {
              // spin_then_suspend, as a thread: the moment's phase, then block.
              const wait_phase p = c.phase(moment);
              if (i < p.spins) {
                detail::cpu_relax();
              } else if (i < std::uint64_t{p.spins} + p.yields) {
                std::this_thread::yield();
              } else {
                return block(ready, stop, deadline);
              }
            }
          }
        },
        cfg_);
  }

  /// Called after every advance of a stage's sequence (a stage or poller passing `v`), after
  /// the advancing store. Wakes threads asleep on this strategy and executors asleep on a
  /// coroutine wait that has ended. Unless somebody sleeps in the kernel: a compiler barrier,
  /// two loads and two branches (no fence, no RMW, no syscall), however many coroutines are
  /// parked.
  [[gnu::always_inline]] void signal(std::int64_t v) noexcept {
    events_.notify();  // light() (a compiler barrier), then one load of the armed bit
    waiters_.notify(v, detail::stage_advance);  // one load of the lowest announced target
  }

  /// As signal(), for a publish that moved the cursor to `v` (the sequencers call it).
  [[gnu::always_inline]] void signal_publish(std::int64_t v) noexcept {
    events_.notify();
    waiters_.notify(v, detail::cursor_advance);
  }

  /// As signal(v) (or, with kind cursor_advance, signal_publish(v)), for the caller that just
  /// stored `v` into `stored`: the compiler barrier then orders only that store and the two
  /// loads (see asymmetric_fence::light(stored, loaded...)), so a coroutine's frame stays in
  /// registers.
  template <class Stored>
  [[gnu::always_inline]] void signal_after(
      std::int64_t v, Stored& stored,
      detail::advance_kind kind = detail::stage_advance) noexcept {
    detail::asymmetric_fence::light(stored, events_.word(), waiters_.min_target(kind));
    events_.notify_fenced();
    waiters_.notify(v, kind);
  }
  template <class Stored>
  [[gnu::always_inline]] void signal_publish_after(std::int64_t v, Stored& stored) noexcept {
    signal_after(v, stored, detail::cursor_advance);
  }

  /// Wakes every blocked thread and parked coroutine unconditionally (shutdown paths, after
  /// the stop flag is stored).
  void wake_all() noexcept {
    events_.notify_all();
    waiters_.wake_all();
  }

 private:
  [[noreturn]] [[gnu::cold]] [[gnu::noinline]] static void throw_blocking_on_executor() {
    throw std::logic_error(
        "rondo: a thread-blocking wait (publisher::reserve/reserve_for/reserve_until, "
        "sequence_barrier::wait_blocking/wait_blocking_until, event_poller waits) must wait, but this thread "
        "runs coroutines for an executor and blocking it would stall all of them; from a "
        "coroutine, await the coroutine form instead: co_await coro_publisher.reserve(n), "
        "co_await barrier.wait(next)");
  }

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

  wait_config cfg_;
  detail::eventcount events_;
  detail::waiter_registry waiters_;
};

}  // namespace rondo
