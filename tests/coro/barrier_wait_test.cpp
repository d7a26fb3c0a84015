// Coroutine waits (sequence_barrier::wait, coro_publisher::reserve) on the manual scheduler:
// every suspension and resumption is a step the test takes. Waits park in the scheduler's park
// lot; run_one() polls them when nothing is posted.

#include "support.hpp"

#include <rondo/coro/barrier_wait.hpp>
#include <rondo/coro/scheduler.hpp>
#include <rondo/coro/sync_wait.hpp>
#include <rondo/coro/task.hpp>
#include <rondo/rondo.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <optional>
#include <stop_token>
#include <thread>

using namespace std::chrono_literals;
using rondo_test::detached;

namespace {

// Parks at once: no spinning, no yields.
rondo::spin_then_suspend park_at_once() {
  return rondo_test::suspend_policy(0, 0);
}

struct outcome {
  bool done = false;
  rondo::barrier_wait_result r{-2, rondo::wait_status::ready};
};

detached wait_on(rondo::manual_scheduler& s, rondo::sequence_barrier& b, std::int64_t next,
                 outcome& out) {
  co_await s.schedule();
  out.r = co_await b.wait(next);
  out.done = true;
}

detached wait_on(rondo::manual_scheduler& s, rondo::sequence_barrier& b, std::int64_t next,
                 std::stop_token st, outcome& out) {
  co_await s.schedule();
  out.r = co_await b.wait(next, std::move(st));
  out.done = true;
}

detached wait_until(rondo::manual_scheduler& s, rondo::sequence_barrier& b, std::int64_t next,
                    std::chrono::steady_clock::time_point deadline, outcome& out) {
  co_await s.schedule();
  out.r = co_await b.wait(next, deadline);
  out.done = true;
}

void publish(rondo::single_producer_sequencer& sp, std::int64_t n) {
  const std::int64_t hi = sp.reserve(n);
  sp.publish(hi - n + 1, hi);
}

}  // namespace

TEST_CASE("barrier wait: ready sequences complete without suspending",
          "[barrier_wait][deterministic]") {
  rondo::wait_strategy w{park_at_once()};
  rondo::single_producer_sequencer sp(8, w);
  rondo::sequence_barrier b(sp);
  publish(sp, 3);
  outcome o;
  rondo::manual_scheduler s;
  wait_on(s, b, 1, o);
  CHECK(s.run_one());  // the schedule() hop; the wait itself does not suspend
  REQUIRE(o.done);
  CHECK(o.r.status == rondo::wait_status::ready);
  CHECK(o.r.available == 2);  // everything available, not just `next`
  CHECK(s.idle());
  CHECK(s.parking()->size() == 0);
}

TEST_CASE("barrier wait: a publish wakes exactly the waiters whose target it reaches",
          "[barrier_wait][deterministic]") {
  rondo::wait_strategy w{park_at_once()};
  rondo::single_producer_sequencer sp(16, w);
  rondo::sequence_barrier b0(sp);
  rondo::sequence_barrier b1(sp);
  rondo::sequence_barrier b2(sp);
  rondo::manual_scheduler s;
  outcome o0;
  outcome o1;
  outcome o2;
  wait_on(s, b0, 0, o0);
  wait_on(s, b1, 2, o1);
  wait_on(s, b2, 5, o2);
  CHECK(s.run_all() == 3);
  CHECK_FALSE(o0.done);
  CHECK(s.parking()->size() == 3);

  publish(sp, 1);  // sequence 0: ends b0's wait only
  CHECK_FALSE(o0.done);  // the publish touches nothing: the scheduler's poll finds it
  CHECK(s.parking()->size() == 3);
  CHECK(s.run_all() == 1);
  CHECK(s.parking()->size() == 2);
  CHECK(o0.done);
  CHECK(o0.r.available == 0);
  CHECK_FALSE(o1.done);

  publish(sp, 3);  // up to 3: wakes b1 (target 2), not b2 (target 5)
  CHECK(s.run_all() == 1);
  CHECK(o1.done);
  CHECK(o1.r.status == rondo::wait_status::ready);
  CHECK(o1.r.available == 3);
  CHECK_FALSE(o2.done);
  CHECK(s.parking()->size() == 1);

  publish(sp, 2);  // up to 5
  CHECK(s.run_all() == 1);
  CHECK(o2.done);
  CHECK(o2.r.available == 5);
  CHECK(s.parking()->size() == 0);
}

TEST_CASE("barrier wait: a stage advance wakes a waiter on that stage",
          "[barrier_wait][deterministic]") {
  rondo::wait_strategy w{park_at_once()};
  rondo::single_producer_sequencer sp(16, w);
  rondo::sequence upstream;
  rondo::sequence_barrier b(sp, {&upstream});
  rondo::manual_scheduler s;
  outcome o;
  publish(sp, 4);
  wait_on(s, b, 0, o);
  CHECK(s.run_all() == 1);
  CHECK_FALSE(o.done);  // published, but the upstream stage has not passed 0
  upstream.set(1);
  w.signal(1);
  CHECK(s.run_all() == 1);
  REQUIRE(o.done);
  CHECK(o.r.available == 1);
}

TEST_CASE("barrier wait: yields go through the scheduler before parking",
          "[barrier_wait][deterministic]") {
  rondo::wait_strategy w{rondo_test::suspend_policy(0, 3)};
  rondo::single_producer_sequencer sp(8, w);
  rondo::sequence_barrier b(sp);
  rondo::manual_scheduler s;
  outcome o;
  wait_on(s, b, 0, o);
  CHECK(s.run_one());  // schedule hop; the wait yields (posts itself)
  CHECK(s.parking()->size() == 0);
  CHECK(s.run_one());  // yield 2
  CHECK(s.run_one());  // yield 3
  CHECK(s.parking()->size() == 0);
  CHECK(s.run_one());  // out of yields: parks
  CHECK(s.parking()->size() == 1);
  CHECK(s.idle());
  publish(sp, 1);
  CHECK(s.run_all() == 1);
  CHECK(o.done);

  // A publish during the yields ends the wait at the next step, without parking.
  outcome o2;
  wait_on(s, b, 1, o2);
  CHECK(s.run_one());
  CHECK(s.run_one());
  publish(sp, 1);
  CHECK(s.run_one());
  CHECK(o2.done);
  CHECK(o2.r.available == 1);
  CHECK(s.parking()->size() == 0);
}

TEST_CASE("barrier wait: cancellation and deadlines end the wait as values",
          "[barrier_wait][deterministic]") {
  rondo::wait_strategy w{park_at_once()};
  rondo::single_producer_sequencer sp(8, w);
  rondo::sequence_barrier b(sp);
  rondo::manual_scheduler s;

  SECTION("stop requested while parked") {
    std::stop_source src;
    outcome o;
    wait_on(s, b, 0, src.get_token(), o);
    CHECK(s.run_all() == 1);
    CHECK(s.parking()->size() == 1);
    src.request_stop();  // flags the wait; the scheduler's poll ends it
    CHECK(s.run_all() == 1);
    CHECK(s.parking()->size() == 0);
    REQUIRE(o.done);
    CHECK(o.r.status == rondo::wait_status::cancelled);
  }
  SECTION("stop requested before the wait") {
    std::stop_source src;
    src.request_stop();
    outcome o;
    wait_on(s, b, 0, src.get_token(), o);
    CHECK(s.run_all() == 1);
    REQUIRE(o.done);
    CHECK(o.r.status == rondo::wait_status::cancelled);
  }
  SECTION("a publish wins over a later stop") {
    std::stop_source src;
    outcome o;
    wait_on(s, b, 0, src.get_token(), o);
    CHECK(s.run_all() == 1);
    publish(sp, 1);
    src.request_stop();  // too late: the waiter was already woken by the publish
    CHECK(s.run_all() == 1);
    REQUIRE(o.done);
    CHECK(o.r.status == rondo::wait_status::ready);
  }
  SECTION("a deadline that passes") {
    outcome o;
    wait_until(s, b, 0, std::chrono::steady_clock::now() + 5ms, o);
    CHECK(s.run_all() == 1);
    CHECK(s.parking()->size() == 1);
    // The timer thread flags the wait once the deadline passes; drive the scheduler until then.
    while (!o.done) {
      if (s.run_one() == 0) std::this_thread::yield();
    }
    CHECK(o.r.status == rondo::wait_status::timed_out);
    CHECK(s.parking()->size() == 0);
  }
  SECTION("a deadline already past does not park") {
    outcome o;
    wait_until(s, b, 0, std::chrono::steady_clock::now() - 1ms, o);
    CHECK(s.run_all() == 1);
    REQUIRE(o.done);
    CHECK(o.r.status == rondo::wait_status::timed_out);
    CHECK(s.parking()->size() == 0);
  }
}

TEST_CASE("barrier wait: alert and close wake every waiter with stopped",
          "[barrier_wait][deterministic]") {
  rondo::wait_strategy w{park_at_once()};
  rondo::single_producer_sequencer sp(8, w);
  rondo::sequence_barrier b0(sp);
  rondo::sequence_barrier b1(sp);
  rondo::manual_scheduler s;
  outcome o0;
  outcome o1;
  wait_on(s, b0, 0, o0);
  wait_on(s, b1, 0, o1);
  CHECK(s.run_all() == 2);
  b0.alert();  // ends b0's wait only: the poll hands back just the waits that ended
  CHECK(s.run_all() == 1);
  CHECK(o0.done);
  CHECK(o0.r.status == rondo::wait_status::stopped);
  CHECK_FALSE(o1.done);
  b1.set_limit(-1);  // drain with nothing published: next 0 is past the limit
  CHECK(s.run_all() == 1);
  CHECK(o1.done);
  CHECK(o1.r.status == rondo::wait_status::stopped);
}

TEST_CASE("barrier wait: suspending without any scheduler is a clear error",
          "[barrier_wait][deterministic]") {
  rondo::wait_strategy w{park_at_once()};
  rondo::single_producer_sequencer sp(8, w);
  rondo::sequence_barrier b(sp);
  bool threw = false;
  auto body = [&]() -> detached {
    try {
      (void)co_await b.wait(0);
    } catch (const std::logic_error& e) {
      threw = std::string(e.what()).find("no scheduler") != std::string::npos;
    }
  };
  body();  // runs on this plain thread: no current scheduler
  CHECK(threw);
}

TEST_CASE("barrier wait: sync_wait provides the scheduler", "[barrier_wait][stress]") {
  rondo::wait_strategy w{park_at_once()};
  rondo::single_producer_sequencer sp(8, w);
  rondo::sequence_barrier b(sp);
  std::thread producer([&] {
    std::this_thread::yield();
    publish(sp, 2);
  });
  auto waiter = [&]() -> rondo::task<std::int64_t> {
    auto r = co_await b.wait(1);
    co_return r.available;
  };
  CHECK(rondo::sync_wait(waiter()) == 1);
  producer.join();
}
