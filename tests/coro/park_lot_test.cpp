// park_lot and the waiter registry step by step: waits park on their executor without touching
// the registry; an executor about to sleep announces them, and only then does a publish or a
// stage advance look under the lock; it wakes only the executors whose waits it ended, and only
// for the kind of advance a wait can be ended by. Plus the naming rule's guard: a thread-blocking
// wait on an executor thread is an error naming the awaitable.

#include "support.hpp"

#include <rondo/coro/barrier_wait.hpp>
#include <rondo/coro/park_lot.hpp>
#include <rondo/coro/scheduler.hpp>
#include <rondo/rondo.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>

using rondo_test::detached;

namespace {

// The "executor" of these tests: a manual scheduler whose park lot counts its wake-ups. It never
// sleeps for real; the test calls prepare_sleep()/finish_sleep() where an executor would enter
// and leave the kernel.
struct counting_executor {
  int wakes = 0;
  rondo::manual_scheduler s{[](void* self) noexcept { ++*static_cast<int*>(self); }, &wakes};
  rondo::park_lot& lot = *s.parking();
  // One round of an executor's loop: hand back the ready waits, run what is posted.
  std::size_t round() { return s.run_all(); }
};

struct outcome {
  bool done = false;
  rondo::barrier_wait_result r{-2, rondo::wait_status::ready};
};

detached wait_on(counting_executor& ex, rondo::sequence_barrier& b, std::int64_t next,
                 outcome& out) {
  co_await ex.s.schedule();
  out.r = co_await b.wait(next);
  out.done = true;
}

void publish(rondo::single_producer_sequencer& sp, std::int64_t n) {
  const std::int64_t hi = sp.reserve(n);
  sp.publish(hi - n + 1, hi);
}

// A ring of 16 whose waits park at once, and the executor they park on.
struct fixture {
  rondo::wait_strategy w{rondo_test::suspend_policy(0, 0)};
  rondo::single_producer_sequencer sp{16, w};
  counting_executor ex;
};

}  // namespace

TEST_CASE("park_lot: parking touches no registry; only a sleeping executor announces its waits",
          "[park_lot][deterministic]") {
  fixture f;
  auto& [w, sp, ex] = f;
  rondo::sequence_barrier b0(sp);
  rondo::sequence_barrier b1(sp);
  outcome o0;
  outcome o1;
  wait_on(ex, b0, 0, o0);
  wait_on(ex, b1, 3, o1);
  CHECK(ex.round() == 2);  // the schedule() hops; both waits park
  CHECK(ex.lot.size() == 2);
  CHECK(w.waiters().size() == 0);  // parked, not announced: a publish costs two loads
  CHECK(ex.lot.parks() == 2);
  CHECK(ex.lot.sleep_fences() == 0);

  // Awake: a publish touches nothing; the executor's next round finds the ended wait.
  publish(sp, 1);
  CHECK(ex.wakes == 0);
  CHECK_FALSE(o0.done);
  CHECK(ex.round() == 1);
  CHECK(o0.done);
  CHECK(o0.r.available == 0);
  CHECK(ex.lot.size() == 1);

  // About to sleep: the remaining wait is announced behind one fence.
  REQUIRE(ex.lot.prepare_sleep());
  CHECK(ex.lot.sleep_fences() == 1);
  CHECK(w.waiters().size() == 1);
  publish(sp, 1);  // up to 1, below b1's target 3: the notifier skips the lock
  CHECK(ex.wakes == 0);
  CHECK(w.waiters().size() == 1);
  publish(sp, 2);  // up to 3: ends b1's wait, so the notifier unlinks it and wakes us
  CHECK(ex.wakes == 1);
  CHECK(w.waiters().size() == 0);
  publish(sp, 1);  // nothing announced any more: no second wake-up
  CHECK(ex.wakes == 1);
  ex.lot.finish_sleep();
  CHECK(ex.round() == 1);
  CHECK(o1.done);
  CHECK(o1.r.available == 4);
  CHECK(ex.lot.empty());
}

TEST_CASE("park_lot: a wait that is ready by the re-check calls the sleep off",
          "[park_lot][deterministic]") {
  fixture f;
  auto& [w, sp, ex] = f;
  rondo::sequence_barrier b(sp);
  outcome o;
  wait_on(ex, b, 0, o);
  CHECK(ex.round() == 1);
  publish(sp, 1);  // lands before the executor's re-check
  CHECK_FALSE(ex.lot.prepare_sleep());
  CHECK(w.waiters().size() == 0);  // nothing stays announced
  CHECK(ex.round() == 1);
  CHECK(o.done);
}

TEST_CASE("park_lot: a publish does not wake an executor asleep on a stage that is behind",
          "[park_lot][deterministic]") {
  fixture f;
  auto& [w, sp, ex] = f;
  rondo::sequence upstream;
  rondo::sequence_barrier after_upstream(sp, {&upstream});
  outcome o;
  wait_on(ex, after_upstream, 0, o);
  CHECK(ex.round() == 1);
  REQUIRE(ex.lot.prepare_sleep());
  publish(sp, 8);  // the cursor passes the target, but only the upstream stage can end the wait
  CHECK(ex.wakes == 0);
  CHECK(w.waiters().size() == 1);
  upstream.set(2);
  w.signal(2);  // the stage advance does
  CHECK(ex.wakes == 1);
  ex.lot.finish_sleep();
  CHECK(ex.round() == 1);
  REQUIRE(o.done);
  CHECK(o.r.available == 2);
}

TEST_CASE("park_lot: close wakes a sleeping executor; its waits end stopped",
          "[park_lot][deterministic]") {
  fixture f;
  auto& [w, sp, ex] = f;
  rondo::sequence_barrier b(sp);
  outcome o;
  wait_on(ex, b, 5, o);
  CHECK(ex.round() == 1);
  REQUIRE(ex.lot.prepare_sleep());
  b.alert();
  CHECK(ex.wakes == 1);
  ex.lot.finish_sleep();
  CHECK(ex.round() == 1);
  REQUIRE(o.done);
  CHECK(o.r.status == rondo::wait_status::stopped);
}

TEST_CASE("park_lot: a stop request wakes the sleeping executor, whose poll ends the wait",
          "[park_lot][deterministic]") {
  fixture f;
  auto& [w, sp, ex] = f;
  rondo::sequence_barrier b(sp);
  std::stop_source src;
  bool done = false;
  rondo::wait_status status = rondo::wait_status::ready;
  auto body = [&]() -> detached {
    co_await ex.s.schedule();
    const auto r = co_await b.wait(0, src.get_token());
    status = r.status;
    done = true;
  };
  body();
  CHECK(ex.round() == 1);
  REQUIRE(ex.lot.prepare_sleep());
  src.request_stop();
  CHECK(ex.wakes == 1);
  ex.lot.finish_sleep();
  CHECK(ex.round() == 1);
  REQUIRE(done);
  CHECK(status == rondo::wait_status::cancelled);
}

TEST_CASE("a thread-blocking wait on an executor thread is an error naming the awaitable",
          "[park_lot][naming][deterministic]") {
  rondo::wait_strategy w{rondo::busy_spin{}};
  rondo::ring_buffer<std::int64_t> ring(2);
  rondo::single_producer_sequencer sp(2, w);
  rondo::publisher<std::int64_t> pub(ring, sp);
  rondo::sequence consumer;
  sp.add_gating_sequence(consumer);
  rondo::manual_scheduler s;
  std::string error;
  bool reserved_while_free = false;
  auto body = [&]() -> detached {
    co_await s.schedule();
    // Capacity is free: the thread call does not wait, so it is allowed.
    pub.reserve(2).publish();
    reserved_while_free = true;
    try {
      auto c = pub.reserve(1);  // the ring is full: this would block the executor's thread
      c.publish();
    } catch (const std::logic_error& e) {
      error = e.what();
    }
  };
  body();
  while (s.run_one()) {
  }
  CHECK(reserved_while_free);
  CHECK(error.find("co_await coro_publisher.reserve(n)") != std::string::npos);
  // Off the executor the same call waits as documented (here: it times out).
  CHECK_FALSE(pub.reserve_for(1, std::chrono::milliseconds{1}).has_value());
}
