// rondo/asio.hpp: the driver (an asio::io_context runs a rondo::io_context) and the completion-
// token operations. Deterministic where it can be: the Asio context is stepped with poll() /
// run_one_for() on the test thread, which owns both contexts, so "nothing ran" is an exact
// count, not a timing. A wake-up that is lost shows as run_one_for() returning 0 after 5 s.
// (Above ~400 lines on purpose: one TEST_CASE per behaviour of one component, each standing
// alone; split, the component's specification would be scattered over files.)
#include <rondo/asio.hpp>
#include <rondo/rondo.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>

namespace {

namespace asio = boost::asio;
using rondo::asio_bridge::async_drain;
using rondo::asio_bridge::async_reserve;
using rondo::asio_bridge::async_wait_for_position;
using rondo::asio_bridge::driver;

constexpr auto patience = std::chrono::seconds(5);  // a lost wake-up, not a slow machine

struct event {
  std::int64_t value = 0;
};

// Steps `ax` until `done()` or a step finds nothing for `patience` (returns done()).
template <class Done>
bool run_until(asio::io_context& ax, Done done) {
  while (!done()) {
    if (ax.run_one_for(patience) == 0) return done();
  }
  return true;
}

// The message of an exception_ptr ("" when empty).
std::string what(const std::exception_ptr& e) {
  if (!e) return "";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  }
}

template <class E>
bool is(const std::exception_ptr& e) {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

TEST_CASE("driver: idle means one pending wait and no polls; another thread's post wakes it",
          "[asio][driver][deterministic]") {
  asio::io_context ax(1);
  rondo::io_context io;
  driver drv(ax, io);
  CHECK(ax.poll() == 1);  // the first step: poll, then wait on the handle
  CHECK(drv.polls() == 1);
  CHECK(drv.waits() == 1);
  // Idle: nothing for Asio to run, however often it looks (a busy loop would run a step here).
  for (int i = 0; i < 100; ++i) CHECK(ax.poll() == 0);
  CHECK(drv.polls() == 1);

  struct flagged_node : rondo::schedule_node {
    bool ran = false;
  } node;
  node.callback = [](rondo::schedule_node& n) noexcept { static_cast<flagged_node&>(n).ran = true; };
  std::thread poster([&] { io.post(node); });
  poster.join();
  // The post rang the eventfd: the readiness handler polls and runs the node.
  REQUIRE(ax.run_one_for(patience) == 1);
  CHECK(drv.polls() == 2);
  CHECK(drv.waits() == 2);  // and waits again
  CHECK(node.ran);
  CHECK(ax.poll() == 0);
}

TEST_CASE("driver: a post or spawn from an Asio handler on the owner thread wakes it",
          "[asio][driver][deterministic]") {
  asio::io_context ax(1);
  rondo::io_context io;
  driver drv(ax, io);
  REQUIRE(ax.poll() == 1);  // armed: the rondo context announced that it waits
  int ran = 0;
  auto job = [&]() -> rondo::task<> {
    ++ran;
    co_return;
  };
  // An Asio handler (the same thread) spawns on the rondo context while the driver waits: the
  // node lands in the owner's local queue, and io_context::post rings the handle for it.
  asio::post(ax, [&] { io.spawn(job()); });
  REQUIRE(run_until(ax, [&] { return ran == 1; }));
  CHECK(drv.polls() == 2);
  CHECK(ax.poll() == 0);
}

TEST_CASE("driver: an I/O completion wakes it; io.stop() lets go and ax.run() returns",
          "[asio][driver][deterministic]") {
  asio::io_context ax(1);
  rondo::io_context io;
  driver drv(ax, io);
  bool slept = false;
  io.spawn([](rondo::io_context& ctx, bool& done) -> rondo::task<> {
    (void)co_await ctx.sleep_for(std::chrono::milliseconds(2));
    done = true;
    ctx.stop();
  }(io, slept));
  // run() returns only when the driver let go: the sleep's completion woke it, the task
  // stopped the context. A handful of polls, not thousands: no busy loop during the 2 ms.
  ax.run();
  CHECK(slept);
  CHECK_FALSE(drv.attached());
  CHECK(drv.polls() <= 8);
  // Let go means detached: a new driver may take the restarted context over.
  io.restart();
  ax.restart();
  driver again(ax, io);
  bool ran = false;
  io.spawn([](rondo::io_context& ctx, bool& r) -> rondo::task<> {
    r = true;
    ctx.stop();
    co_return;
  }(io, ran));
  ax.run();
  CHECK(ran);
}

TEST_CASE("driver: a spawned task's failure leaves through ax.run(), and the driver goes on",
          "[asio][driver][deterministic]") {
  asio::io_context ax(1);
  rondo::io_context io;
  driver drv(ax, io);
  io.spawn([]() -> rondo::task<> {
    throw std::runtime_error("task failed on purpose");
    co_return;
  }());
  CHECK_THROWS_WITH(ax.run(), "task failed on purpose");
  bool after = false;
  io.spawn([](bool& a, rondo::io_context& ctx) -> rondo::task<> {
    a = true;
    ctx.stop();
    co_return;
  }(after, io));
  ax.run();  // no restart() needed (Asio's rule), and the driver was re-armed
  CHECK(after);
}

TEST_CASE("driver: bad use is refused with a clear message", "[asio][driver]") {
  asio::io_context ax(1);
  rondo::io_context io;
  driver drv(ax, io);
  rondo::io_context io2;
  CHECK_THROWS_WITH(driver(ax, io2), Catch::Contains("already drives"));
  std::string from_thread;
  std::thread t([&] {
    asio::io_context ax3(1);
    try {
      driver d(ax3, io);
    } catch (const std::logic_error& e) {
      from_thread = e.what();
    }
  });
  t.join();
  CHECK_THAT(from_thread, Catch::Contains("does not own"));
}

TEST_CASE("async_reserve: free slots complete at once, a full ring waits for the stage, bad n",
          "[asio][async_reserve]") {
  asio::io_context ax(1);
  rondo::io_context io;
  driver drv(ax, io);
  std::int64_t sum = 0;
  auto d = rondo::disruptor<event>::builder()
               .capacity(4)
               .wait(rondo::spin_then_suspend{})
               .stage("sum", [&](event& e, std::int64_t, bool) { sum += e.value; })
               .on(io)
               .build();
  d.start();
  rondo::coro_publisher<event> pub = d.coro_publisher();

  std::exception_ptr failure;
  bool done = false;
  std::vector<std::int64_t> firsts;
  std::string bad_zero;
  std::string bad_big;
  asio::co_spawn(
      ax,
      [&]() -> asio::awaitable<void> {
        // 10 claims of 1 through a ring of 4: the fifth on waits until the stage (which runs
        // on the rondo context, from the same Asio loop) frees a slot.
        for (int i = 1; i <= 10; ++i) {
          rondo::claim<event> c = co_await async_reserve(pub, 1, asio::use_awaitable);
          firsts.push_back(c.first());
          c[0].value = i;
          c.publish();
        }
        try {
          (void)co_await async_reserve(pub, 0, asio::use_awaitable);
        } catch (const std::invalid_argument& e) {
          bad_zero = e.what();
        }
        try {
          (void)co_await async_reserve(pub, 5, asio::use_awaitable);
        } catch (const std::invalid_argument& e) {
          bad_big = e.what();
        }
        co_await async_drain(d, asio::use_awaitable);
      },
      [&](std::exception_ptr e) {
        failure = e;
        done = true;
      });
  REQUIRE(run_until(ax, [&] { return done; }));
  INFO(what(failure));
  REQUIRE_FALSE(failure);
  CHECK(firsts == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(sum == 55);
  CHECK_THAT(bad_zero, Catch::Contains("0"));
  CHECK_THAT(bad_big, Catch::Contains("5"));
  // Drained: a reservation now is rondo::closed, through the handler.
  std::exception_ptr after;
  bool got = false;
  async_reserve(pub, 1, [&](std::exception_ptr e, rondo::claim<event> c) {
    after = e;
    got = !c.is_open();
  });
  REQUIRE(run_until(ax, [&] { return got; }));
  CHECK(is<rondo::closed>(after));
}

TEST_CASE("async_reserve: a wait on a full ring is cancelled through its stop token; a handler "
          "is never run inside the initiating call",
          "[asio][async_reserve]") {
  asio::io_context ax(1);
  rondo::io_context io;
  driver drv(ax, io);
  std::atomic<bool> gate{false};
  // A thread stage held at its first event: the ring stays full until the gate opens.
  auto d = rondo::disruptor<event>::builder()
               .capacity(2)
               .wait(rondo::spin_then_suspend{})
               .stage("held",
                      [&](event&, std::int64_t, bool) {
                        // Acquire: pairs with the release store below.
                        while (!gate.load(std::memory_order_acquire)) std::this_thread::yield();
                      })
               .build();
  d.start();
  rondo::coro_publisher<event> pub = d.coro_publisher();
  for (int i = 0; i < 2; ++i) {
    auto c = pub.try_reserve(1);
    REQUIRE(c);
    c->publish();
  }
  std::stop_source stop;
  std::exception_ptr failure;
  bool completed = false;
  bool open = true;
  async_reserve(pub, 1, stop.get_token(), [&](std::exception_ptr e, rondo::claim<event> c) {
    failure = e;
    open = c.is_open();
    completed = true;
  });
  CHECK_FALSE(completed);  // never inside the initiating call
  (void)ax.poll();         // the wait starts on the rondo context and parks
  CHECK_FALSE(completed);
  stop.request_stop();
  REQUIRE(run_until(ax, [&] { return completed; }));
  CHECK_FALSE(open);
  CHECK(is<boost::system::system_error>(failure));
  CHECK_THAT(what(failure), Catch::Contains("cancelled"));
  // Release: pairs with the acquire load in the stage.
  gate.store(true, std::memory_order_release);
  bool drained = false;
  async_drain(d, [&](std::exception_ptr e) {
    failure = e;
    drained = true;
  });
  REQUIRE(run_until(ax, [&] { return drained; }));
  CHECK_FALSE(failure);
}

TEST_CASE("async_wait_for_position: completes once the stage passed the sequence; errors",
          "[asio][async_wait_for_position]") {
  asio::io_context ax(1);
  rondo::io_context io;
  driver drv(ax, io);
  auto d = rondo::disruptor<event>::builder()
               .capacity(8)
               .wait(rondo::spin_then_suspend{})
               .stage("first", [](event& e, std::int64_t, bool) { e.value += 1; })
               .on(io)
               .stage("last", [](event& e, std::int64_t, bool) { e.value *= 10; },
                      rondo::after("first"))
               .on(io)
               .build();
  d.start();
  rondo::coro_publisher<event> pub = d.coro_publisher();

  std::exception_ptr failure;
  bool done = false;
  std::vector<std::int64_t> seen;
  std::string unknown;
  std::string negative;
  std::string past_end;
  asio::co_spawn(
      ax,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 20; ++i) {
          rondo::claim<event> c = co_await async_reserve(pub, 1, asio::use_awaitable);
          const std::int64_t seq = c.first();
          c[0].value = i;
          c.publish();
          const std::int64_t at =
              co_await async_wait_for_position(d, "last", seq, asio::use_awaitable);
          if (at < seq) throw std::logic_error("position behind the sequence");
          seen.push_back(d.ring()[seq].value);  // the last stage's result
        }
        try {
          (void)co_await async_wait_for_position(d, "nope", 0, asio::use_awaitable);
        } catch (const std::invalid_argument& e) {
          unknown = e.what();
        }
        try {
          (void)co_await async_wait_for_position(d, "last", -2, asio::use_awaitable);
        } catch (const std::invalid_argument& e) {
          negative = e.what();
        }
        co_await async_drain(d, asio::use_awaitable);
        try {
          // Never published: the drained stage will not get there.
          (void)co_await async_wait_for_position(d, "last", 100, asio::use_awaitable);
        } catch (const rondo::closed& e) {
          past_end = e.what();
        }
      },
      [&](std::exception_ptr e) {
        failure = e;
        done = true;
      });
  REQUIRE(run_until(ax, [&] { return done; }));
  INFO(what(failure));
  REQUIRE_FALSE(failure);
  REQUIRE(seen.size() == 20);
  for (std::size_t i = 0; i < seen.size(); ++i) {
    CHECK(seen[i] == (static_cast<std::int64_t>(i) + 1) * 10);
  }
  CHECK_THAT(unknown, Catch::Contains("nope"));
  CHECK_THAT(negative, Catch::Contains("-2"));
  CHECK_THAT(past_end, Catch::Contains("before sequence 100"));
}

TEST_CASE("async operations without a driver fail with a clear message",
          "[asio][async_reserve]") {
  asio::io_context ax(1);  // no driver anywhere on this thread
  std::atomic<bool> gate{false};
  auto d = rondo::disruptor<event>::builder()
               .capacity(2)
               .stage("held",
                      [&](event&, std::int64_t, bool) {
                        // Acquire: pairs with the release store below.
                        while (!gate.load(std::memory_order_acquire)) std::this_thread::yield();
                      })
               .build();
  d.start();
  rondo::coro_publisher<event> pub = d.coro_publisher();
  // A free slot needs no driver: two of them, which fill the ring.
  int granted = 0;
  for (int i = 0; i < 2; ++i) {
    async_reserve(pub, 1, asio::bind_executor(ax, [&](std::exception_ptr e, rondo::claim<event> c) {
      if (!e && c.is_open()) {
        ++granted;
        c.publish();
      }
    }));
    ax.restart();
    CHECK(ax.run() == 1);
  }
  CHECK(granted == 2);
  std::exception_ptr failure;
  async_reserve(pub, 1,
                asio::bind_executor(ax, [&](std::exception_ptr e, rondo::claim<event>) { failure = e; }));
  ax.restart();
  CHECK(ax.run() == 1);
  CHECK(is<std::logic_error>(failure));
  CHECK_THAT(what(failure), Catch::Contains("no driver"));
  // Release: pairs with the acquire load in the stage.
  gate.store(true, std::memory_order_release);
  d.drain();
}

TEST_CASE("async_drain with operations in flight: a waiting reservation is refused, every "
          "published event is waited out",
          "[asio][async_drain]") {
  asio::io_context ax(1);
  rondo::io_context io;
  driver drv(ax, io);
  std::atomic<bool> gate{false};
  auto d = rondo::disruptor<event>::builder()
               .capacity(4)
               .producers(rondo::producer_type::multi)
               .wait(rondo::spin_then_suspend{})
               .stage("held",
                      [&](event&, std::int64_t, bool) {
                        // Acquire: pairs with the release store below.
                        while (!gate.load(std::memory_order_acquire)) std::this_thread::yield();
                      })
               .build();
  d.start();
  rondo::coro_publisher<event> pub = d.coro_publisher();
  // Four published events (the ring is full), each with a session-like wait on its position.
  int positions_ok = 0;
  int positions_done = 0;
  for (int i = 0; i < 4; ++i) {
    auto c = pub.try_reserve(1);
    REQUIRE(c);
    const std::int64_t seq = c->first();
    c->publish();
    async_wait_for_position(d, "held", seq, [&, seq](std::exception_ptr e, std::int64_t at) {
      if (!e && at >= seq) ++positions_ok;
      ++positions_done;
    });
  }
  // A fifth reservation waits for room that the drain will never grant.
  std::exception_ptr reserve_failure;
  bool reserve_done = false;
  async_reserve(pub, 1, [&](std::exception_ptr e, rondo::claim<event>) {
    reserve_failure = e;
    reserve_done = true;
  });
  std::exception_ptr drain_failure;
  bool drained = false;
  async_drain(d, [&](std::exception_ptr e) {
    drain_failure = e;
    drained = true;
  });
  // The drain closes the producers at its first try: the waiting reservation ends.
  REQUIRE(run_until(ax, [&] { return reserve_done; }));
  CHECK(is<rondo::closed>(reserve_failure));
  CHECK_FALSE(drained);  // the stage is still held: the drain cannot finish
  CHECK(positions_done == 0);
  // Release: pairs with the acquire load in the stage.
  gate.store(true, std::memory_order_release);
  REQUIRE(run_until(ax, [&] { return drained && positions_done == 4; }));
  INFO(what(drain_failure));
  CHECK_FALSE(drain_failure);
  CHECK(positions_ok == 4);
}
