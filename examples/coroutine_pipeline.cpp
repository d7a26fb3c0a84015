// coroutine_pipeline: six stages as coroutines on two threads. A coroutine producer publishes
// with co_await publisher.reserve(n) (it suspends while the ring is full); stages wait with co_await
// (spin, yield, then suspend) instead of blocking a thread each, so six stages share two
// thread_schedulers. Three handler shapes: a sync handler in a coroutine loop, an async batch
// handler (its stage's sequence advances when its task completes), and a pull loop.
#include <rondo/rondo.hpp>

#include <fmt/format.h>

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <thread>

struct reading {
  std::int64_t raw = 0;
  std::int64_t scaled = 0;
  std::int64_t checked = 0;
};


// A fire-and-forget coroutine (rondo::detached): it reports completion through `done`.
rondo::detached produce(rondo::thread_scheduler& on, rondo::coro_publisher<reading> publisher,
                        std::int64_t n,
                        std::atomic<bool>& done) {
  co_await on.schedule();  // run on that thread
  for (std::int64_t i = 0; i < n; i += 8) {
    auto c = co_await publisher.reserve(8);  // suspends while the ring is full
    for (auto [seq, r] : c) r.raw = seq;
    c.publish();
  }
  done.store(true, std::memory_order_release);  // pairs with the acquire load in main()
}

int main() {
  constexpr std::int64_t n = 1 << 20;
  rondo::thread_scheduler a;  // two threads for six stages and the producer
  rondo::thread_scheduler b;
  std::int64_t sum_scaled = 0;  // written by the stages' coroutines; read after drain()
  std::int64_t audited = 0;
  std::int64_t batches = 0;

  auto d = rondo::disruptor<reading>::builder()
               .capacity(1024)
               .wait(rondo::spin_then_suspend{})
               .metrics()
               .stage("scale", [](reading& r, std::int64_t, bool) { r.scaled = r.raw * 3; })
               .on(a)
               .stage("check", [](reading& r, std::int64_t, bool) { r.checked = r.scaled - r.raw; },
                      rondo::after("scale"))
               .on(b)
               // An async batch handler: may co_await I/O; "total" sees a batch only after this
               // task completed.
               .stage("batcher",
                      [&batches](rondo::batch<reading> rs) -> rondo::task<> {
                        batches += rs.empty() ? 0 : 1;
                        co_return;
                      },
                      rondo::after("check"))
               .on(a)
               .stage("total", [&](reading& r, std::int64_t, bool) { sum_scaled += r.scaled; },
                      rondo::after("batcher"))
               .on(b)
               // A pull loop owns its loop.
               .stage("audit",
                      [&audited](rondo::consumer<reading>& in) -> rondo::task<> {
                        while (auto batch = co_await in.next()) {
                          for (reading& r : *batch) audited += r.checked == 2 * r.raw ? 1 : 0;
                        }
                      },
                      rondo::after("check"))
               .on(a)
               .stage("tail", [](reading&, std::int64_t, bool) {}, rondo::after("total", "audit"))
               .on(b)
               .build();
  d.start();
  std::atomic<bool> done{false};
  produce(a, d.publisher(), n, done);
  while (!done.load(std::memory_order_acquire)) std::this_thread::yield();
  d.drain();

  fmt::print("six coroutine stages on two threads handled {} events\n", n);
  for (const auto& r : d.metrics()) {
    // {:g}: six significant digits, plenty for a mean.
    fmt::print("  {}: mean batch {:g}, suspensions {}\n", r.name, r.metrics.mean_batch(),
               r.metrics.suspensions);
  }
  const bool ok = sum_scaled == 3 * (n * (n - 1) / 2) && audited == n && batches > 0;
  if (!ok) {
    fmt::print(stderr, "wrong result: sum {}, audited {}\n", sum_scaled, audited);
    return 1;
  }
}
