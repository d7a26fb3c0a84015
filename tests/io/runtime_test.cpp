// runtime: N contexts on N threads, spawn/block_on, stop; the builder's placement of stages on
// the contexts; a cross-thread stress (stages on two contexts, producers on other threads,
// exactly once / in order / after dependencies); and shutdown with I/O in flight (drain waits
// for it, close cancels it and reports it).
// (Above ~400 lines on purpose: one TEST_CASE per behaviour of one component, each standing
// alone; split, the component's specification would be scattered over files.)

#include "support.hpp"

#include <rondo/io/runtime.hpp>
#include <rondo/rondo.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace std::chrono_literals;
using rondo_test::event;
using rondo_test::stage_record;

TEST_CASE("runtime: block_on runs on the chosen context and returns or rethrows",
          "[io][runtime][deterministic]") {
  rondo::runtime rt(2);
  REQUIRE(rt.size() == 2);
  const auto where = [&]() -> rondo::task<std::thread::id> {
    (void)co_await rondo::current_io_context().sleep_for(100us);
    co_return std::this_thread::get_id();
  };
  CHECK(rt.block_on(where(), 0) == rt.context(0).owner());
  CHECK(rt.block_on(where(), 1) == rt.context(1).owner());
  CHECK(rt.context(0).owner() != rt.context(1).owner());
  const auto fails = []() -> rondo::task<int> {
    throw std::runtime_error("boom");
    co_return 1;
  };
  CHECK_THROWS_WITH(rt.block_on(fails(), 1), "boom");
  // From one of the runtime's own threads it would wait on itself.
  const auto nested = [&]() -> rondo::task<std::string> {
    try {
      rt.block_on(where(), 0);
    } catch (const std::logic_error& e) {
      co_return e.what();
    }
    co_return "";
  };
  CHECK_THAT(rt.block_on(nested(), 1), Catch::Contains("runtime's own threads"));
  CHECK_THROWS_WITH(rt.context(2), Catch::Contains("context(2)") && Catch::Contains("2 contexts"));
  CHECK(rt.stop() == 0);
  CHECK(rt.stop() == 0);  // idempotent
  CHECK_THROWS_AS(rt.spawn(where(), 0), std::logic_error);
  CHECK_THROWS_AS(rt.block_on(where(), 0), std::logic_error);
  CHECK(rt.context(0).stopped());  // stopped, but alive until the runtime goes
}

TEST_CASE("runtime: bad options are rejected, pinning works or names the cpu",
          "[io][runtime][deterministic]") {
  const auto pinned_to = [](int cpu) {
    rondo::runtime_options o;
    o.threads = 1;
    o.pin = true;
    o.cpus = {cpu};
    return o;
  };
  CHECK_THROWS_AS(rondo::runtime(0), std::invalid_argument);
  CHECK_THROWS_WITH(rondo::runtime(pinned_to(-3)), Catch::Contains("cpu -3"));
  CHECK_THROWS_WITH(rondo::runtime(pinned_to(1000)), Catch::Contains("cpu 1000"));
  rondo::runtime pinned(pinned_to(0));
  const auto cpu = []() -> rondo::task<int> { co_return ::sched_getcpu(); };
  CHECK(pinned.block_on(cpu()) == 0);
}

TEST_CASE("runtime: spawned tasks run, failures come back from stop(), the stop token ends "
          "long waits",
          "[io][runtime][deterministic]") {
  std::atomic<int> done{0};
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  {
    rondo::runtime rt(2);
    for (int i = 0; i < 100; ++i) {
      rt.spawn([](std::atomic<int>& d, int k) -> rondo::task<> {
        (void)co_await rondo::current_io_context().sleep_for(std::chrono::microseconds(k));
        // Release: pairs with the acquire load below.
        d.fetch_add(1, std::memory_order_release);
      }(done, i));
    }
    // A reader that would wait for ever, but listens to the runtime's stop token.
    rondo::io_result waited;
    rt.spawn([](int fd, rondo::io_result& out, std::stop_token st) -> rondo::task<> {
      std::byte b[1];
      out = co_await rondo::current_io_context().recv(fd, b).cancel_on(std::move(st));
    }(pair[0], waited, rt.stop_token()), 1);
    rt.spawn([]() -> rondo::task<> {
      (void)co_await rondo::current_io_context().sleep_for(1ms);
      throw std::runtime_error("spawned failure");
    }());
    // Acquire: pairs with the release increments of the tasks.
    while (done.load(std::memory_order_acquire) < 100) std::this_thread::sleep_for(1ms);
    CHECK_THROWS_WITH(rt.stop(), "spawned failure");
    CHECK(waited.cancelled());
    CHECK(rt.stop() == 0);
  }
  ::close(pair[0]);
  ::close(pair[1]);
}

namespace {
// Hops a coroutine between the two contexts `rounds` times; counts hops that resumed on the
// wrong thread.
rondo::task<int> hop_between(rondo::io_context& a, rondo::io_context& b, int rounds) {
  int wrong = 0;
  for (int i = 0; i < rounds; ++i) {
    rondo::io_context& to = (i % 2 == 0) ? b : a;
    co_await to.schedule();
    if (std::this_thread::get_id() != to.owner()) ++wrong;
    // Now and then the other context has time to fall asleep in its ring (idle_spin 0).
    if (i % 16 == 0) (void)co_await to.sleep_for(50us);
  }
  co_return wrong;
}

std::uint64_t rung(rondo::runtime& rt, bool msg_ring) {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < rt.size(); ++i) {
    const auto d = rt.context(i).doorbells();
    n += msg_ring ? d.msg_ring : d.eventfd;
  }
  return n;
}
}  // namespace

TEST_CASE("doorbells between contexts: MSG_RING when both take it, the eventfd otherwise; a "
          "sleeping context is always woken",
          "[io][runtime][stress]") {
  constexpr int rounds = RONDO_TSAN ? 400 : 4000;
  for (const bool on : {true, false}) {
    rondo::io_options io;
    io.idle_spin = 0us;  // every idle context sleeps in its ring at once
    io.msg_ring_doorbell = on;
    rondo::runtime rt(2, io);
    CHECK(rt.block_on(hop_between(rt.context(0), rt.context(1), rounds), 0) == 0);
    INFO("msg_ring_doorbell " << on << ": " << rung(rt, true) << " by MSG_RING, "
                              << rung(rt, false) << " by eventfd");
    if (on && rt.context(0).msg_ring_doorbell() && rt.context(1).msg_ring_doorbell()) {
      CHECK(rung(rt, true) > 0);
    } else {
      CHECK(rung(rt, true) == 0);
      CHECK(rung(rt, false) > 0);
    }
    CHECK(rt.stop() == 0);
  }
}

TEST_CASE("runtime: tasks spawned on a context directly; a failure does not stop the context and "
          "comes back from stop()",
          "[io][runtime][deterministic]") {
  rondo::runtime rt(2);
  std::atomic<int> sessions{0};
  auto session = [&](int id) -> rondo::task<> {
    (void)co_await rondo::current_io_context().sleep_for(200us);
    if (id == 3) throw std::runtime_error("session 3 failed");
    // Relaxed: read after stop() joined the threads.
    sessions.fetch_add(1, std::memory_order_relaxed);
  };
  // An accept loop's shape: the loop spawns its sessions on its own context.
  auto acceptor = [&]() -> rondo::task<> {
    for (int id = 0; id < 8; ++id) rondo::current_io_context().spawn(session(id));
    co_return;
  };
  rt.block_on(acceptor(), 1);
  // The context keeps running after session 3 failed: this runs on it after every session
  // (the failed one included) ended, or gives up after 10 s.
  auto later = [&]() -> rondo::task<std::size_t> {
    rondo::io_context& io = rondo::current_io_context();
    for (int i = 0; i < 10'000 && io.spawned() != 0; ++i) (void)co_await io.sleep_for(1ms);
    co_return io.spawned();
  };
  CHECK(rt.block_on(later(), 1) == 0);
  CHECK_THROWS_WITH(rt.stop(), "session 3 failed");
  // Relaxed: the threads are joined.
  CHECK(sessions.load(std::memory_order_relaxed) == 7);
  CHECK_THROWS_AS(rt.context(1).spawn(session(9)), std::logic_error);  // stopped for good
  CHECK(rt.context(1).spawned() == 0);
}

TEST_CASE("runtime: stop() waits for tasks spawned on a context directly",
          "[io][runtime][deterministic]") {
  rondo::runtime rt(1);
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  std::byte buf[8];
  std::atomic<bool> finished{false};
  bool cancelled = false;  // read after stop() joined the threads
  auto session = [&]() -> rondo::task<> {
    // Nobody ever sends: only stop() ends this recv.
    const rondo::io_result r =
        co_await rondo::current_io_context().recv(fds[0], buf).cancel_on(rt.stop_token());
    cancelled = r.cancelled();
    (void)co_await rondo::current_io_context().sleep_for(10ms);  // stop() must wait for this
    // Release: pairs with the acquire load after stop().
    finished.store(true, std::memory_order_release);
  };
  auto start = [&]() -> rondo::task<> {
    rondo::current_io_context().spawn(session());
    co_return;
  };
  rt.block_on(start(), 0);
  CHECK(rt.context(0).spawned() == 1);
  CHECK(rt.stop() == 0);  // not abandoned: it finished within the grace period
  // Acquire: pairs with the release store in the session.
  CHECK(finished.load(std::memory_order_acquire));
  CHECK(cancelled);
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_CASE("builder.executor(rt): placement (colocate by default, round-robin), .on(i), bad index",
          "[io][runtime][deterministic]") {
  rondo::runtime rt(2);
  const bool round_robin = GENERATE(false, true);
  INFO((round_robin ? "placement::round_robin" : "placement::colocate (the default)"));
  constexpr int stages = 6;
  std::mutex mu;
  std::vector<std::set<std::thread::id>> seen(stages);
  auto b = rondo::disruptor<event>::builder();
  b.capacity(64).executor(rt);
  if (round_robin) b.placement(rondo::placement::round_robin);
  for (int i = 0; i < stages; ++i) {
    rondo::after_t deps;
    if (i > 0) deps.names.push_back("s" + std::to_string(i - 1));
    rondo::stage_options opts;
    opts.heavy = i == 1 || i == 3;  // colocate: these two go to context 1, the rest to 0
    b.stage("s" + std::to_string(i),
            [&mu, &seen, i](event&, std::int64_t, bool) {
              const std::lock_guard lk(mu);
              seen[static_cast<std::size_t>(i)].insert(std::this_thread::get_id());
            },
            deps, opts);
    if (i == stages - 1) b.on(0);  // the last one chosen explicitly
  }
  auto d = b.build();
  d.start();
  for (int k = 0; k < 100; ++k) {
    auto c = d.publisher().reserve(1);
    c.publish();
  }
  d.drain();
  const std::vector<rondo::stage_report> reports = d.metrics();
  for (int i = 0; i < stages; ++i) {
    INFO("stage s" << i);
    REQUIRE(seen[static_cast<std::size_t>(i)].size() == 1);
    // round-robin: s0..s4 on 0 1 0 1 0; colocate: heavy s1 and s3 on 1, the others on 0;
    // s5 on context 0 by .on(0) either way.
    const bool on_one = i != stages - 1 && (round_robin ? i % 2 == 1 : (i == 1 || i == 3));
    const std::size_t want = on_one ? 1 : 0;
    CHECK(*seen[static_cast<std::size_t>(i)].begin() == rt.context(want).owner());
    CHECK(reports.at(static_cast<std::size_t>(i)).scheduler == rt.schedulers().at(want));
  }

  auto bad = rondo::disruptor<event>::builder();
  bad.executor(rt).stage("x", [](event&, std::int64_t, bool) {}).on(5);
  CHECK_THROWS_WITH(bad.build(), Catch::Contains("'x'") && Catch::Contains(".on(5)") &&
                                     Catch::Contains("2 schedulers"));
  auto no_pool = rondo::disruptor<event>::builder();
  no_pool.stage("y", [](event&, std::int64_t, bool) {}).on(1);
  CHECK_THROWS_WITH(no_pool.build(), Catch::Contains(".executor()"));
}

TEST_CASE("runtime stress: stages on two contexts, producers on other threads, exactly once, "
          "in order, after dependencies",
          "[io][runtime][stress]") {
  // s0 -> (s1 sync, s2 async with I/O) -> s3 pull: a diamond over the two contexts, fed by
  // two producer threads and a coroutine producer on a context.
  constexpr int producers = 3;
  const std::int64_t per_producer = RONDO_TSAN ? 30'000 : 700'000;
  std::vector<std::unique_ptr<stage_record>> recs;
  for (int i = 0; i < 4; ++i) recs.push_back(std::make_unique<stage_record>(producers));
  recs[1]->deps = {recs[0].get()};
  recs[2]->deps = {recs[0].get()};
  recs[3]->deps = {recs[1].get(), recs[2].get()};
  rondo::runtime rt(2, rondo::io_options{.entries = 64, .idle_spin = 20us, .max_in_flight = 0, .msg_ring_doorbell = true, .idle_spin_with_file_io = false});
  rondo::spin_then_suspend policy;
  policy.spins = 50;
  auto b = rondo::disruptor<event>::builder();
  b.capacity(1024).producers(rondo::producer_type::multi).wait(policy).executor(rt);
  stage_record* r0 = recs[0].get();
  stage_record* r1 = recs[1].get();
  stage_record* r2 = recs[2].get();
  stage_record* r3 = recs[3].get();
  b.stage("s0", [r0](event& e, std::int64_t s, bool) { r0->on_event(e, s); });
  b.stage("s1", [r1](event& e, std::int64_t s, bool) { r1->on_event(e, s); }, rondo::after("s0"));
  b.stage("s2",
          [r2](rondo::batch<event> bt) -> rondo::task<> {
            for (auto [s, e] : bt.entries()) r2->on_event(e, s);
            // Every 64th batch goes through the kernel: the stage suspends on I/O mid-stream.
            if ((bt.first() & 63) == 0) (void)co_await rondo::current_io_context().nop();
          },
          rondo::after("s0"));
  b.stage("s3",
          [r3](rondo::consumer<event>& in) -> rondo::task<> {
            while (auto bt = co_await in.next()) {
              for (auto [s, e] : bt->entries()) r3->on_event(e, s);
            }
          },
          rondo::after("s1", "s2"));
  auto d = b.build();
  d.start();
  std::vector<std::thread> threads;
  for (int p = 0; p < 2; ++p) {
    threads.emplace_back([&, p] {
      std::int64_t counter = 0;
      while (counter < per_producer) {
        const std::int64_t k = std::min<std::int64_t>(1 + counter % 8, per_producer - counter);
        auto c = d.publisher().reserve(k);
        for (auto [seq, ev] : c) ev.fill(p, counter++);
        c.publish();
      }
    });
  }
  rt.block_on([](rondo::publisher<event>& pub, std::int64_t count) -> rondo::task<> {
    std::int64_t counter = 0;
    while (counter < count) {
      const std::int64_t k = std::min<std::int64_t>(1 + counter % 5, count - counter);
      auto c = co_await pub.coro().reserve(k);
      for (auto [seq, ev] : c) ev.fill(2, counter++);
      c.publish();
    }
  }(d.publisher(), per_producer), 0);
  for (auto& t : threads) t.join();
  d.drain();
  for (int i = 0; i < 4; ++i) {
    INFO("stage s" << i << ": " << recs[static_cast<std::size_t>(i)]->first_error);
    CHECK(recs[static_cast<std::size_t>(i)]->errors == 0);
    CHECK(recs[static_cast<std::size_t>(i)]->handled == per_producer * producers);
  }
}

TEST_CASE("shutdown with I/O in flight: drain waits for it, close cancels it and reports it",
          "[io][runtime][deterministic]") {
  rondo::runtime rt(1);
  SECTION("drain waits for the stage's I/O") {
    std::atomic<int> completed{0};
    auto d = rondo::disruptor<event>::builder()
                 .capacity(16)
                 .executor(rt)
                 .stage("slow_io",
                        [&completed](rondo::batch<event> bt) -> rondo::task<> {
                          rondo::io_result r = co_await rondo::current_io_context()
                                                   .sleep_for(20ms)
                                                   .cancel_on(bt.stop_token());
                          (void)r.value();
                          // Relaxed: read after drain(), which joins the stage.
                          completed.fetch_add(static_cast<int>(bt.size()), std::memory_order_relaxed);
                        })
                 .build();
    d.start();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 3; ++i) d.publisher().reserve(1).publish();
    d.drain();
    CHECK(std::chrono::steady_clock::now() - t0 >= 20ms);
    CHECK(completed.load(std::memory_order_relaxed) == 3);
  }
  SECTION("close cancels a recv that would never complete, and reports it") {
    int pair[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    std::atomic<bool> in_io{false};
    auto d = rondo::disruptor<event>::builder()
                 .capacity(16)
                 .executor(rt)
                 .stage("reader",
                        [&in_io, fd = pair[0]](rondo::batch<event> bt) -> rondo::task<> {
                          std::byte buf[8];
                          // Release: pairs with the acquire load below.
                          in_io.store(true, std::memory_order_release);
                          rondo::io_result r = co_await rondo::current_io_context()
                                                   .recv(fd, buf)
                                                   .cancel_on(bt.stop_token());
                          (void)r.value();  // throws on ECANCELED: the batch is not done
                        })
                 .build();
    d.start();
    d.publisher().reserve(1).publish();
    // Acquire: pairs with the release store in the handler. (If close() came first, the
    // token would already be stopped and the recv would not even start: same outcome.)
    while (!in_io.load(std::memory_order_acquire)) std::this_thread::yield();
    const rondo::close_report rep = d.close();
    CHECK(rep.published == 1);
    CHECK(rep.unprocessed == 1);
    CHECK(rep.failed_stages == 1);
    CHECK_THROWS_WITH(d.join(), Catch::Contains("reader") && Catch::Contains("recv"));
    ::close(pair[0]);
    ::close(pair[1]);
  }
}

TEST_CASE("an idle runtime with parked coroutine stages sleeps: no busy polling, no membarrier "
          "storm",
          "[io][runtime][idle]") {
  // Six coroutine stages on two contexts, no events. After the idle spin (50 us) the contexts
  // announce the parked waits and sleep in the kernel. The bound is loose on purpose (a loaded
  // CI machine, sanitizers): a context that kept polling would use a whole core (100 %).
  rondo::runtime rt(2);
  auto b = rondo::disruptor<event>::builder();
  b.capacity(64).wait(rondo::spin_then_suspend{}).executor(rt);
  rondo::stage_options heavy;
  heavy.heavy = true;
  for (int i = 0; i < 6; ++i) {
    rondo::after_t deps;
    if (i > 0) deps.names.push_back("s" + std::to_string(i - 1));
    b.stage("s" + std::to_string(i), [](event&, std::int64_t, bool) {}, deps,
            i % 2 == 1 ? heavy : rondo::stage_options{});
  }
  auto d = b.build();
  d.start();
  const auto cpu_seconds = [] {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  };
  // Every stage has parked and both contexts have gone to sleep at least once.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while ((rt.context(0).parking()->sleep_fences() == 0 ||
          rt.context(1).parking()->sleep_fences() == 0) &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  REQUIRE(rt.context(0).parking()->sleep_fences() > 0);
  REQUIRE(rt.context(1).parking()->sleep_fences() > 0);
  const std::uint64_t fences_before =
      rt.context(0).parking()->sleep_fences() + rt.context(1).parking()->sleep_fences();
  const double c0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const double used = cpu_seconds() - c0;
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::uint64_t fences_after =
      rt.context(0).parking()->sleep_fences() + rt.context(1).parking()->sleep_fences();
  INFO("CPU " << used << " s over " << wall << " s; membarriers " << fences_after - fences_before);
  CHECK(used < 0.25 * wall);
  // Asleep the whole window: no new sleeps, so no new membarriers (a few spurious wake-ups allowed).
  CHECK(fences_after - fences_before <= 10);
  d.drain();
}
