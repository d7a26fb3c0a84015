#include "support.hpp"

#include <rondo/coro/scheduler.hpp>
#include <rondo/coro/sync_wait.hpp>
#include <rondo/coro/task.hpp>
#include <rondo/coro/when_all.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace {

using rondo_test::detached;

detached record_after_schedule(rondo::manual_scheduler& s, std::vector<int>& out, int id,
                               int hops) {
  for (int i = 0; i < hops; ++i) {
    co_await s.schedule();
    out.push_back(id);
  }
}

}  // namespace

TEST_CASE("manual scheduler runs posted coroutines in FIFO order, one step at a time",
          "[scheduler][deterministic]") {
  rondo::manual_scheduler s;
  std::vector<int> out;
  CHECK(s.idle());
  CHECK_FALSE(s.run_one());
  record_after_schedule(s, out, 1, 2);
  record_after_schedule(s, out, 2, 1);
  record_after_schedule(s, out, 3, 2);
  CHECK(out.empty());  // all three suspended in schedule(), nothing ran yet
  CHECK_FALSE(s.idle());
  CHECK(s.run_one());
  CHECK(out == std::vector<int>{1});  // 1 ran and posted itself again, behind 2 and 3
  CHECK(s.run_all() == 4);
  CHECK(out == std::vector<int>{1, 2, 3, 1, 3});
  CHECK(s.idle());
}

TEST_CASE("manual scheduler accepts posts from other threads", "[scheduler][stress]") {
  rondo::manual_scheduler s;
  constexpr int per_thread = 20000;
  std::atomic<int> started{0};
  std::vector<int> out;  // touched only by coroutines resumed on this (owner) thread
  auto worker = [&](int id) {
    for (int i = 0; i < per_thread; ++i) {
      // Each coroutine suspends at once and is resumed by the owner's run loop.
      record_after_schedule(s, out, id, 1);
    }
    // Release: pairs with the owner's acquire load.
    started.fetch_add(1, std::memory_order_release);
  };
  std::thread a(worker, 1), b(worker, 2);
  std::size_t ran = 0;
  // Acquire: pairs with the workers' release increments; then drain what is left.
  while (started.load(std::memory_order_acquire) < 2) ran += s.run_all();
  a.join();
  b.join();
  ran += s.run_all();
  CHECK(ran == 2 * per_thread);
  CHECK(out.size() == 2 * per_thread);
}

TEST_CASE("thread scheduler moves a coroutine onto its thread", "[scheduler][stress]") {
  rondo::thread_scheduler ts;
  const auto target = ts.thread_id();
  auto on_ts = [&](int v) -> rondo::task<int> {
    co_await ts.schedule();
    if (std::this_thread::get_id() != target) throw std::logic_error("wrong thread");
    co_return v * 2;
  };
  long sum = 0;
  for (int i = 0; i < 2000; ++i) sum += rondo::sync_wait(on_ts(i));
  CHECK(sum == 2L * (1999L * 2000L / 2));
  // Several coroutines hopping concurrently, from two posting threads.
  std::atomic<long> total{0};
  auto poster = [&] {
    for (int i = 0; i < 1000; ++i) {
      auto [a, b] = rondo::sync_wait(rondo::when_all(on_ts(1), on_ts(2)));
      // Relaxed: read after join.
      total.fetch_add(a + b, std::memory_order_relaxed);
    }
  };
  std::thread p1(poster), p2(poster);
  p1.join();
  p2.join();
  CHECK(total.load(std::memory_order_relaxed) == 2 * 1000 * 6);
}

TEST_CASE("thread scheduler stop runs what was posted and refuses its own thread",
          "[scheduler][deterministic]") {
  std::string refused;
  {
    rondo::thread_scheduler ts;
    auto try_stop_inside = [&]() -> rondo::task<> {
      co_await ts.schedule();
      try {
        ts.stop();
      } catch (const std::logic_error& e) {
        refused = e.what();  // read after the scheduler is joined
      }
    };
    rondo::sync_wait(try_stop_inside());
    ts.stop();
    ts.stop();  // idempotent
  }
  CHECK(refused == "thread_scheduler::stop() called from its own thread");
}
