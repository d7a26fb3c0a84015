// The wake-up protocol under races: a publish (or a stage's release) racing with an executor that
// is going to sleep with a coroutine wait parked on it (the executor's announce / membarrier /
// re-check against the notifier's store / compiler barrier / load), and, for schedulers without
// a park lot, with a coroutine that links itself in the registry. Litmus: many two-thread
// rounds; the forbidden outcome is a waiter still parked after what it waits for was published. Each round waits for the waiter's acknowledgement for
// up to 10 s without progress (a lost wake-up never arrives; a slow one does, and on a loaded
// 2-core machine under a sanitizer a whole stress run can take many seconds) and counts misses.

#include "support.hpp"

#include <rondo/coro/barrier_wait.hpp>
#include <rondo/coro/scheduler.hpp>
#include <rondo/detail/config.hpp>
#include <rondo/rondo.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

using rondo_test::detached;

namespace {

constexpr int rounds = RONDO_TSAN ? 20'000 : 300'000;

// Waits until `v` reaches `want`. Gives up (returns false: a wake-up was lost) only when `v` has
// not moved for 10 s, so a slow but live run (sanitizers, a loaded machine) is not a failure.
bool await_value(const std::atomic<std::int64_t>& v, std::int64_t want) {
  constexpr auto stall_limit = std::chrono::seconds(10);
  auto give_up = std::chrono::steady_clock::now() + stall_limit;
  // Relaxed: only a progress marker; the acquire load below decides.
  std::int64_t seen = v.load(std::memory_order_relaxed);
  for (std::uint32_t i = 0;; ++i) {
    // Acquire: pairs with the waiter's release store of its acknowledgement.
    const std::int64_t now_value = v.load(std::memory_order_acquire);
    if (now_value >= want) return true;
    if ((i & 1023) == 1023) {
      const auto now = std::chrono::steady_clock::now();
      if (now_value != seen) {
        seen = now_value;
        give_up = now + stall_limit;
      } else if (now > give_up) {
        return false;
      }
    }
    if (i > 64) std::this_thread::yield(); else rondo::detail::cpu_relax();
  }
}

// A scheduler that only posts (no park lot): waits on it link themselves in the registry and pay
// a membarrier per park (the direct path of coro/wait_operation.hpp).
struct post_only {
  rondo::thread_scheduler* s;
  void post(rondo::schedule_node& n) noexcept { s->post(n); }
};

// How the litmus executor behaves: sleep at once (every round races with the sleep), poll a
// while first (the usual configuration), or waits linked directly.
enum class mode { sleep_at_once, poll_then_sleep, direct };

std::chrono::nanoseconds idle_spin_of(mode m) {
  return m == mode::poll_then_sleep ? std::chrono::microseconds{50} : std::chrono::nanoseconds{0};
}

detached stage_loop(rondo::thread_scheduler& s, rondo::sequence_barrier& b, int n,
                    std::atomic<std::int64_t>& ack, std::atomic<int>& parked_rounds,
                    mode m = mode::sleep_at_once) {
  co_await s.schedule();
  post_only direct{&s};
  const rondo::scheduler_ref resume_on =
      m == mode::direct ? rondo::scheduler_ref(direct) : rondo::scheduler_ref(s);
  for (std::int64_t next = 0; next < n;) {
    const auto r = co_await rondo::sequence_barrier_wait_operation(
        b, next, std::chrono::steady_clock::time_point::max(), {}, nullptr, resume_on);
    if (r.status != rondo::wait_status::ready) break;
    next = r.available + 1;
    // Release: pairs with the acquire load in await_value().
    ack.store(r.available, std::memory_order_release);
  }
  parked_rounds.fetch_add(1, std::memory_order_relaxed);
}

detached producer_loop(rondo::thread_scheduler& s, rondo::publisher<std::int64_t>& pub, int n,
                       std::atomic<std::int64_t>& published) {
  co_await s.schedule();
  try {
    for (int i = 0; i < n; ++i) {
      auto c = co_await pub.coro().reserve(1);
      c[0] = c.first();
      const std::int64_t seq = c.first();
      c.publish();
      // Release: pairs with the acquire load in await_value().
      published.store(seq, std::memory_order_release);
    }
  } catch (const rondo::closed&) {
    // The test closed the sequencer to free a stuck producer after reporting the failure.
  }
}

}  // namespace

TEST_CASE("litmus: a publish racing with a parking stage never leaves it parked",
          "[wakeup][litmus]") {
  const mode m = GENERATE(mode::sleep_at_once, mode::poll_then_sleep, mode::direct);
  INFO("mode " << static_cast<int>(m));
  rondo::wait_strategy w{rondo_test::suspend_policy(0, 0)};  // park at once: the widest race
  rondo::single_producer_sequencer sp(1024, w);
  rondo::sequence_barrier b(sp);
  std::atomic<std::int64_t> ack{-1};
  std::atomic<int> finished{0};
  std::int64_t lost = 0;
  std::uint64_t parks = 0;
  std::uint64_t sleep_fences = 0;
  {
    rondo::thread_scheduler s{idle_spin_of(m)};
    stage_loop(s, b, rounds, ack, finished, m);
    for (std::int64_t r = 0; r < rounds; ++r) {
      // Publish r once the stage has taken r - 1 (it is then parking, or about to, for r).
      if (!await_value(ack, r - 1)) {
        ++lost;
        break;
      }
      const std::int64_t hi = sp.reserve(1);
      sp.publish(hi, hi);
    }
    if (lost == 0 && !await_value(ack, rounds - 1)) ++lost;
    b.alert();  // frees a stuck waiter so the test ends either way
    parks = s.parking()->parks();
    sleep_fences = s.parking()->sleep_fences();
  }
  CHECK(lost == 0);
  CHECK(finished.load(std::memory_order_relaxed) == 1);  // the scheduler threads are joined
  CHECK(w.waiters().size() == 0);
  // The race was really run: the stage parked and its executor went to sleep with it (how
  // often depends on scheduling; nearly every round in a plain build here, far fewer under
  // TSan), or, direct, it linked itself in the registry.
  if (m == mode::direct) {
    CHECK(w.waiters().links() > 0);
    CHECK(parks == 0);
  } else {
    CHECK(parks > 0);
    if (m == mode::sleep_at_once) CHECK(sleep_fences > 0);
    // At most one membarrier per sleep, never one per park or per publish: there are fewer
    // sleeps than parks plus the final one.
    CHECK(sleep_fences <= parks + 1);
  }
}

TEST_CASE("litmus: a stage's release racing with a producer parked on a full ring",
          "[wakeup][litmus]") {
  rondo::wait_strategy w{rondo_test::suspend_policy(0, 0)};
  rondo::ring_buffer<std::int64_t> ring(1);  // every reserve after the first waits for the stage
  rondo::single_producer_sequencer sp(1, w);
  rondo::publisher<std::int64_t> pub(ring, sp);
  rondo::sequence consumer;
  sp.add_gating_sequence(consumer);
  std::atomic<std::int64_t> published{-1};
  std::int64_t lost = 0;
  std::int64_t bad = 0;
  std::uint64_t sleep_fences = 0;
  {
    rondo::thread_scheduler s{std::chrono::nanoseconds{0}};  // sleeps at once: the widest race
    producer_loop(s, pub, rounds, published);
    for (std::int64_t r = 0; r < rounds; ++r) {
      if (!await_value(published, r)) {
        ++lost;
        break;
      }
      if (ring[r] != r) ++bad;
      consumer.set(r);  // release the slot: the producer is parked (or parking) for r + 1
      w.signal(r);
    }
    sp.close();  // frees a stuck producer either way
    sleep_fences = s.parking()->sleep_fences();
  }
  CHECK(lost == 0);
  CHECK(bad == 0);
  CHECK(w.waiters().size() == 0);
  CHECK(sleep_fences > 0);  // the executor really went to sleep with the producer parked
}

TEST_CASE("stress: a coroutine stage and a coroutine producer on two threads, tiny ring",
          "[wakeup][stress]") {
  // Both directions at once: the producer parks on a full ring, the stage on an empty one.
  rondo::wait_strategy w{rondo_test::suspend_policy(4, 1)};
  rondo::ring_buffer<std::int64_t> ring(4);
  rondo::single_producer_sequencer sp(4, w);
  rondo::publisher<std::int64_t> pub(ring, sp);
  rondo::sequence_barrier b(sp);
  rondo::sequence stage;
  sp.add_gating_sequence(stage);
  std::atomic<std::int64_t> published{-1};
  std::atomic<std::int64_t> handled{-1};
  std::atomic<std::int64_t> errors{0};
  std::atomic<int> finished{0};
  auto consume = [&](rondo::thread_scheduler& s) -> detached {
    co_await s.schedule();
    for (std::int64_t next = 0; next < rounds;) {
      const auto r = co_await b.wait(next);
      if (r.status != rondo::wait_status::ready) break;
      for (std::int64_t q = next; q <= r.available; ++q) {
        if (ring[q] != q) errors.fetch_add(1, std::memory_order_relaxed);
      }
      next = r.available + 1;
      stage.set(r.available);
      w.signal(r.available);
      // Release: pairs with the acquire load in await_value().
      handled.store(r.available, std::memory_order_release);
    }
    finished.fetch_add(1, std::memory_order_relaxed);
  };
  {
    rondo::thread_scheduler producer_thread;
    rondo::thread_scheduler stage_thread;
    consume(stage_thread);
    producer_loop(producer_thread, pub, rounds, published);
    const bool all_handled = await_value(handled, rounds - 1);
    INFO("handled up to " << handled.load(std::memory_order_acquire) << ", published up to "
                          << published.load(std::memory_order_acquire) << ", parked waiters "
                          << w.waiters().size());
    CHECK(all_handled);
    b.alert();
    sp.close();
  }
  CHECK(errors.load(std::memory_order_relaxed) == 0);  // the scheduler threads are joined
  CHECK(finished.load(std::memory_order_relaxed) == 1);  // the scheduler threads are joined
}
