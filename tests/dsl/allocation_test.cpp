// Steady-state processing allocates nothing: a counting global operator new, switched on only
// around the measured section.
#include "support.hpp"

#include <rondo/rondo.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <exception>
#include <stop_token>
#include <thread>
#include <cstdlib>
#include <new>

// The replacement new/delete pair malloc/free on purpose.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  // Relaxed: a counter read after the threads that bump it are joined or quiescent.
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc{};
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {
struct event {
  std::int64_t value = 0;
};

long count_allocations_during(auto&& fn) {
  allocations.store(0, std::memory_order_relaxed);
  counting.store(true, std::memory_order_relaxed);
  fn();
  counting.store(false, std::memory_order_relaxed);
  return allocations.load(std::memory_order_relaxed);
}
}  // namespace

TEST_CASE("steady-state publish and processing allocate nothing", "[allocation]") {
  for (auto producers : {rondo::producer_type::single, rondo::producer_type::multi}) {
    std::atomic<std::int64_t> sum{0};
    auto d = rondo::disruptor<event>::builder()
                 .capacity(256)
                 .producers(producers)
                 .wait(rondo::yielding{})
                 .metrics()
                 .stage("a", [](event& e, std::int64_t, bool) { e.value *= 2; })
                 .stage("b",
                        [&sum](event& e, std::int64_t, bool) {
                          // Relaxed: read after drain joined this thread.
                          sum.store(sum.load(std::memory_order_relaxed) + e.value,
                                    std::memory_order_relaxed);
                        },
                        rondo::after("a"))
                 .build();
    d.start();
    auto& pub = d.publisher();
    // Warm up: first touches, lazily created thread state.
    for (int i = 0; i < 1000; ++i) pub.publish_event([i](event& e, std::int64_t) { e.value = i; });
    constexpr int n = 100000;
    const long allocs = count_allocations_during([&] {
      for (int i = 0; i < n; ++i) {
        auto c = pub.reserve(1);
        c[0].value = 1;
        c.publish();
      }
      auto c = pub.reserve(4);
      for (auto [seq, ev] : c) ev.value = 1;
      c.publish();
      if (auto t = pub.try_reserve(2)) {
        (*t)[0].value = 1;
        (*t)[1].value = 1;
        t->publish();
      }
    });
    d.drain();
    CHECK(allocs == 0);
    CHECK(sum.load(std::memory_order_relaxed) > 2 * n);
  }
}

namespace {
// A fire-and-forget coroutine (its frame is allocated once, before counting starts).
using rondo_test::detached;

// Produces `rounds` waves of `per_wave` events with co_await coro_publisher.reserve (half of them with a
// stop token and deadline, which arm and disarm the timer and stop callback when they park);
// after each wave it waits for the main thread's go-ahead.
detached produce_waves(rondo::thread_scheduler& s, rondo::publisher<event>& pub, int rounds,
                       int per_wave, std::atomic<int>& wave_done, std::atomic<int>& go) {
  co_await s.schedule();
  std::stop_source stop;
  for (int w = 0; w < rounds; ++w) {
    // Acquire: pairs with the release store of `go` on the main thread.
    while (go.load(std::memory_order_acquire) < w) co_await s.schedule();
    for (int i = 0; i < per_wave; ++i) {
      if (i % 2 == 0) {
        auto c = co_await pub.coro().reserve(1);
        c[0].value = 1;
        c.publish();
      } else {
        auto c = co_await pub.coro().reserve_until(
            1, std::chrono::steady_clock::now() + std::chrono::seconds(30), stop.get_token());
        (*c)[0].value = 1;
        c->publish();
      }
    }
    // Release: pairs with the acquire load on the main thread.
    wave_done.store(w + 1, std::memory_order_release);
  }
}
}  // namespace

TEST_CASE("coroutine stages and coroutine producers allocate nothing in steady state",
          "[allocation]") {
  rondo::thread_scheduler exec;
  rondo::thread_scheduler prod;
  std::atomic<std::int64_t> sum{0};
  rondo::spin_then_suspend policy;  // park quickly: the waits' slow paths are what is measured
  policy.spins = 0;
  policy.yields = 1;
  auto d = rondo::disruptor<event>::builder()
               .capacity(64)
               .wait(policy)
               .metrics()
               .stage("a", [](event& e, std::int64_t, bool) { e.value *= 2; })
               .on(exec)
               .stage("b",
                      [&exec](rondo::batch<event> b) -> rondo::task<> {
                        for (event& e : b) e.value += 1;
                        co_await exec.schedule();  // suspends mid-batch
                      },
                      rondo::after("a"))
               .on(exec)
               .stage("c",
                      [&sum](rondo::consumer<event>& in) -> rondo::task<> {
                        while (auto b = co_await in.next()) {
                          for (event& e : *b) {
                            // Relaxed: read after drain.
                            sum.store(sum.load(std::memory_order_relaxed) + e.value,
                                      std::memory_order_relaxed);
                          }
                        }
                      },
                      rondo::after("b"))
               .on(exec)
               .build();
  d.start();
  constexpr int per_wave = 20000;
  std::atomic<int> wave_done{0};
  std::atomic<int> go{0};
  produce_waves(prod, d.publisher(), 2, per_wave, wave_done, go);
  auto wait_handled = [&](std::int64_t n) {
    // Acquire: pairs with the producer's release store.
    while (wave_done.load(std::memory_order_acquire) < n / per_wave) std::this_thread::yield();
    while (d.metrics("c").position < n - 2) std::this_thread::yield();
  };
  wait_handled(per_wave);  // warm-up wave: frames, pools, lazy gates
  // The deadline waits' timer thread starts on the first deadline wait that parks, which the
  // warm-up wave may not have had: start it now (a one-time cost, not a per-wait one).
  (void)rondo::detail::timer_service::instance();
  const long allocs = count_allocations_during([&] {
    // Release: pairs with the producer's acquire load.
    go.store(1, std::memory_order_release);
    // Acquire: pairs with the producer's release store.
    while (wave_done.load(std::memory_order_acquire) < 2) std::this_thread::yield();
  });
  d.drain();
  CHECK(allocs == 0);
  CHECK(sum.load(std::memory_order_relaxed) == 2 * per_wave * 3);
  const auto m = d.metrics("b").metrics;
  CHECK(m.suspensions > 0);  // the slow paths really ran
}
