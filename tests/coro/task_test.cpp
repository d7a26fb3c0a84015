#include <rondo/coro/sync_wait.hpp>
#include <rondo/coro/task.hpp>
#include <rondo/coro/when_all.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <coroutine>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

rondo::task<int> forty_two() { co_return 42; }
rondo::task<> nothing() { co_return; }
rondo::task<int> failing() {
  throw std::runtime_error("task failed");
  co_return 0;
}
rondo::task<std::string> nested(int depth) {
  if (depth == 0) co_return std::string("leaf");
  std::string inner = co_await nested(depth - 1);
  co_return inner + "+";
}

// Resumes its awaiter on another thread: the shape of a wait that completes elsewhere.
struct resume_on_new_thread {
  std::thread* thread;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    // Once the new thread runs, this frame (and this awaiter in it) may complete and be freed
    // before we return: copy what we need first, touch nothing of ours after.
    std::thread* out = thread;
    *out = std::thread([h] { h.resume(); });
  }
  void await_resume() const noexcept {}
};

rondo::task<int> hop(std::thread* t, int v) {
  co_await resume_on_new_thread{t};
  co_return v;
}

}  // namespace

TEST_CASE("task yields values, runs lazily, propagates exceptions", "[task][deterministic]") {
  CHECK(rondo::sync_wait(forty_two()) == 42);
  rondo::sync_wait(nothing());
  CHECK_THROWS_WITH(rondo::sync_wait(failing()), "task failed");
  CHECK(rondo::sync_wait(nested(5)) == "leaf+++++");

  bool ran = false;
  {
    auto lazy = [&]() -> rondo::task<> {
      ran = true;
      co_return;
    }();
    CHECK_FALSE(ran);  // not started until awaited; destroyed unstarted
  }
  CHECK_FALSE(ran);

  auto t = forty_two();
  auto moved = std::move(t);
  CHECK_FALSE(t.valid());
  CHECK(moved.valid());
  auto awaits_empty = [](rondo::task<int> empty) -> rondo::task<int> {
    co_return co_await std::move(empty);
  };
  CHECK_THROWS_AS(rondo::sync_wait(awaits_empty(std::move(t))), std::logic_error);
}

// A loop awaiting millions of tasks that complete synchronously must run in constant stack,
// also at -O0 and under AddressSanitizer (the asan preset builds this at -O0): plain symmetric
// transfer is not a tail call there with g++ 12 and this test would overflow the stack.
TEST_CASE("awaiting synchronously completing tasks in a loop uses constant stack",
          "[task][deterministic]") {
  auto loop = []() -> rondo::task<long> {
    long sum = 0;
    for (int i = 0; i < 2'000'000; ++i) sum += co_await forty_two();
    co_return sum;
  };
  CHECK(rondo::sync_wait(loop()) == 84'000'000L);
}

TEST_CASE("a task that completes on another thread resumes its awaiter there",
          "[task][stress]") {
  for (int round = 0; round < 2000; ++round) {
    std::thread t;
    CHECK(rondo::sync_wait(hop(&t, round)) == round);
    t.join();
  }
}

TEST_CASE("when_all gathers mixed results and waits for every child", "[task][deterministic]") {
  std::thread t1, t2;
  auto [a, b, c, d] = rondo::sync_wait(rondo::when_all(forty_two(), nothing(), hop(&t1, 7),
                                                       hop(&t2, 9)));
  t1.join();
  t2.join();
  CHECK(a == 42);
  CHECK(b == std::monostate{});
  CHECK(c == 7);
  CHECK(d == 9);

  std::atomic<int> finished{0};
  auto count = [&](rondo::task<int> inner) -> rondo::task<int> {
    const int v = co_await std::move(inner);
    // Relaxed: read after sync_wait returned (the latch orders it).
    finished.fetch_add(1, std::memory_order_relaxed);
    co_return v;
  };
  std::thread t3;
  CHECK_THROWS_WITH(
      rondo::sync_wait(rondo::when_all(count(failing()), count(hop(&t3, 1)), count(forty_two()))),
      "task failed");
  t3.join();
  CHECK(finished.load(std::memory_order_relaxed) == 2);  // the others ran to completion
}

TEST_CASE("when_all with children completing on other threads", "[task][stress]") {
  for (int round = 0; round < 500; ++round) {
    std::vector<std::thread> ts(3);
    auto [x, y, z] =
        rondo::sync_wait(rondo::when_all(hop(&ts[0], 1), hop(&ts[1], 2), hop(&ts[2], 3)));
    for (auto& t : ts) t.join();
    CHECK(x + y + z == 6);
  }
}
