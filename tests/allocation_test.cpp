// Steady-state processing allocates nothing: a counting global operator new, switched on only
// around the measured section.
#include <rondo/rondo.hpp>

#include <catch2/catch.hpp>

#include <atomic>
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
