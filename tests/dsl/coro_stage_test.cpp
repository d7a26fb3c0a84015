// Coroutine stages in the disruptor: sync handlers in a coroutine loop, async batch handlers,
// pull loops; mixed with thread stages; error policies including rewind; the exactly-once /
// in-order / after-dependencies checker over random topologies.
// (Above ~400 lines on purpose: one TEST_CASE per behaviour of one component, each standing
// alone; split, the component's specification would be scattered over files.)

#include "support.hpp"

#include <rondo/rondo.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using rondo_test::detached;
using rondo_test::event;
using rondo_test::stage_record;

namespace {

constexpr std::int64_t scale = RONDO_TSAN ? 4 : 1;

void publish_values(rondo::publisher<std::int64_t>& pub, std::int64_t from, std::int64_t to) {
  for (std::int64_t v = from; v < to; ++v) {
    auto c = pub.reserve(1);
    c[0] = v;
    c.publish();
  }
}

// Drains a disruptor whose coroutine stages run on `s`, driving `s` from this thread.
void drain_driving(rondo::disruptor<std::int64_t>& d, rondo::manual_scheduler& s) {
  (void)d.drain_for(0ns);  // stops producers, sets the limit, returns at once
  while (!d.drain_for(0ns)) {
    if (s.run_one() == 0) std::this_thread::yield();
  }
}

}  // namespace

TEST_CASE("coroutine stage: a sync handler runs in a coroutine loop on its scheduler",
          "[coro_stage][deterministic]") {
  rondo::manual_scheduler s;
  std::vector<std::int64_t> seen;
  auto d = rondo::disruptor<std::int64_t>::builder()
               .capacity(8)
               .wait(rondo_test::suspend_policy(0, 0))
               .metrics()
               .stage("a", [&](std::int64_t& v, std::int64_t, bool) { seen.push_back(v); })
               .on(s)
               .build();
  d.start();
  CHECK(seen.empty());  // nothing runs until the scheduler runs it
  CHECK(s.run_all() == 1);  // starts, finds nothing, parks
  publish_values(d.publisher(), 10, 13);
  CHECK(s.run_all() == 1);  // the publish posted the stage: one resumption handles all three
  CHECK(seen == std::vector<std::int64_t>{10, 11, 12});
  const auto m = d.metrics("a").metrics;
  CHECK(m.events == 3);
  CHECK(m.suspensions == 2);  // parked at start, and again after the batch
  CHECK(m.resumes == 1);
  CHECK(m.batches == 1);
  drain_driving(d, s);
  CHECK(seen.size() == 3);
}

TEST_CASE("coroutine stage: an async handler's batch is passed only once its task completes",
          "[coro_stage][deterministic]") {
  rondo::manual_scheduler s;
  rondo::manual_scheduler io;  // stands for I/O completing later
  std::vector<std::int64_t> journal;
  std::vector<std::int64_t> after_journal;
  auto d = rondo::disruptor<std::int64_t>::builder()
               .capacity(8)
               .wait(rondo_test::suspend_policy(0, 0))
               .stage("journal",
                      [&](rondo::batch<std::int64_t> b) -> rondo::task<> {
                        co_await io.schedule();  // "the write": completes when io runs
                        for (std::int64_t v : b) journal.push_back(v);
                        co_await s.schedule();
                      })
               .on(s)
               .stage("reply",
                      [&](std::int64_t& v, std::int64_t, bool) { after_journal.push_back(v); },
                      rondo::after("journal"))
               .on(s)
               .build();
  d.start();
  s.run_all();
  publish_values(d.publisher(), 1, 4);
  s.run_all();
  CHECK(journal.empty());        // the journal task is suspended on io
  CHECK(after_journal.empty());  // so reply must not see the batch yet
  CHECK(d.metrics("journal").position == -1);
  CHECK(io.run_all() == 1);
  CHECK(journal == std::vector<std::int64_t>{1, 2, 3});
  CHECK(after_journal.empty());
  s.run_all();
  CHECK(after_journal == std::vector<std::int64_t>{1, 2, 3});
  drain_driving(d, s);
}

TEST_CASE("coroutine stage: a pull loop releases each batch when it asks for the next",
          "[coro_stage][deterministic]") {
  rondo::manual_scheduler s;
  std::vector<std::vector<std::int64_t>> batches;
  std::vector<std::int64_t> positions;  // the stage's position when each batch arrived
  rondo::disruptor<std::int64_t>* self = nullptr;
  auto d = rondo::disruptor<std::int64_t>::builder()
               .capacity(8)
               .wait(rondo_test::suspend_policy(0, 0))
               .stage("audit",
                      [&](rondo::consumer<std::int64_t>& in) -> rondo::task<> {
                        while (auto b = co_await in.next()) {
                          batches.emplace_back(b->begin(), b->end());
                          positions.push_back(self->metrics("audit").position);
                        }
                      },
                      rondo::stage_options{.max_batch = 2})
               .on(s)
               .build();
  self = &d;
  d.start();
  s.run_all();
  publish_values(d.publisher(), 0, 5);
  s.run_all();
  REQUIRE(batches.size() == 3);  // max_batch 2: {0,1} {2,3} {4}
  CHECK(batches[0] == std::vector<std::int64_t>{0, 1});
  CHECK(batches[2] == std::vector<std::int64_t>{4});
  // Each batch is held until next() is called again: released one batch later.
  CHECK(positions == std::vector<std::int64_t>{-1, 1, 3});
  CHECK(d.metrics("audit").position == 4);  // the loop asked for more: {4} released
  drain_driving(d, s);
}

TEST_CASE("coroutine stage: error policies", "[coro_stage][deterministic]") {
  rondo::thread_scheduler s;
  SECTION("halt: an async handler failure stops the disruptor, named by stage and batch") {
    auto d = rondo::disruptor<std::int64_t>::builder()
                 .capacity(8)
                 .wait(rondo::spin_then_suspend{})
                 .stage("journal",
                        [](rondo::batch<std::int64_t> b) -> rondo::task<> {
                          for (std::int64_t v : b) {
                            if (v == 3) throw std::runtime_error("disk on fire");
                          }
                          co_return;
                        },
                        rondo::stage_options{.max_batch = 1})
                 .on(s)
                 .build();
    d.start();
    try {
      publish_values(d.publisher(), 0, 8);
    } catch (const rondo::closed&) {
      // the halt may close the ring under the producer: expected
    }
    try {
      d.drain();
      FAIL("drain did not rethrow the handler failure");
    } catch (const rondo::stage_error& e) {
      CHECK(e.stage() == "journal");
      CHECK(e.sequence() == 3);
      CHECK(std::string(e.what()).find("disk on fire") != std::string::npos);
    }
    CHECK(d.metrics("journal").position == 2);
  }
  SECTION("rewind: a batch that fails twice is retried from its start") {
    std::atomic<int> calls{0};
    std::vector<std::int64_t> done;
    auto d = rondo::disruptor<std::int64_t>::builder()
                 .capacity(8)
                 .wait(rondo::spin_then_suspend{})
                 .metrics()
                 .stage("journal",
                        [&](rondo::batch<std::int64_t> b) -> rondo::task<> {
                          // Relaxed: one coroutine calls this at a time; read after drain.
                          if (calls.fetch_add(1, std::memory_order_relaxed) < 2) {
                            throw std::runtime_error("transient");
                          }
                          for (std::int64_t v : b) done.push_back(v);
                          co_return;
                        },
                        rondo::stage_options{.errors = rondo::error_policy::rewind(3)})
                 .on(s)
                 .build();
    d.start();
    {
      auto c = d.publisher().reserve(4);  // one batch of four
      for (auto [seq, v] : c) v = seq;
      c.publish();
    }
    d.drain();
    CHECK(done == std::vector<std::int64_t>{0, 1, 2, 3});
    CHECK(calls.load(std::memory_order_relaxed) == 3);  // after drain joined the stage
    CHECK(d.metrics("journal").metrics.rewinds == 2);
  }
  SECTION("rewind: a sync handler batch is replayed; the limit then halts") {
    std::vector<std::int64_t> seen;
    auto d = rondo::disruptor<std::int64_t>::builder()
                 .capacity(8)
                 .wait(rondo::spin_then_suspend{})
                 .stage("a",
                        [&](std::int64_t& v, std::int64_t, bool) {
                          seen.push_back(v);
                          if (v == 2) throw std::runtime_error("always");
                        },
                        rondo::stage_options{.errors = rondo::error_policy::rewind(2)})
                 .on(s)
                 .build();
    d.start();
    {
      auto c = d.publisher().reserve(3);
      for (auto [seq, v] : c) v = seq;
      c.publish();
    }
    CHECK_THROWS_AS(d.drain(), rondo::stage_error);
    // Three passes over the batch (the first and two retries), each stopping at 2.
    CHECK(seen == std::vector<std::int64_t>{0, 1, 2, 0, 1, 2, 0, 1, 2});
    CHECK(d.metrics("a").position == 1);
  }
  SECTION("skip: the failed batch counts as handled") {
    std::vector<std::int64_t> done;
    auto d = rondo::disruptor<std::int64_t>::builder()
                 .capacity(8)
                 .wait(rondo::spin_then_suspend{})
                 .metrics()
                 .stage("journal",
                        [&](rondo::batch<std::int64_t> b) -> rondo::task<> {
                          if (b[0] == 1) throw std::runtime_error("bad");
                          for (std::int64_t v : b) done.push_back(v);
                          co_return;
                        },
                        rondo::stage_options{.max_batch = 1,
                                             .errors = rondo::error_policy::skip()})
                 .on(s)
                 .build();
    d.start();
    publish_values(d.publisher(), 0, 3);
    d.drain();
    CHECK(done == std::vector<std::int64_t>{0, 2});
    CHECK(d.metrics("journal").metrics.errors_skipped == 1);
  }
  SECTION("a pull loop that returns before its input ends halts with a clear error") {
    auto d = rondo::disruptor<std::int64_t>::builder()
                 .capacity(8)
                 .wait(rondo::spin_then_suspend{})
                 .stage("audit",
                        [](rondo::consumer<std::int64_t>& in) -> rondo::task<> {
                          (void)co_await in.next();
                        })
                 .on(s)
                 .build();
    d.start();
    try {
      publish_values(d.publisher(), 0, 2);
    } catch (const rondo::closed&) {
      // the halt may close the ring under the producer
    }
    try {
      d.drain();
      FAIL("no error");
    } catch (const rondo::stage_error& e) {
      CHECK(std::string(e.what()).find("returned before its input ended") != std::string::npos);
    }
  }
}

TEST_CASE("coroutine stage: builder errors", "[coro_stage][deterministic]") {
  rondo::manual_scheduler s;
  auto async_h = [](rondo::batch<std::int64_t>) -> rondo::task<> { co_return; };
  CHECK_THROWS_WITH(rondo::disruptor<std::int64_t>::builder().stage("j", async_h).build(),
                    Catch::Contains("'j' has a coroutine handler but no scheduler"));
  CHECK_THROWS_AS(rondo::disruptor<std::int64_t>::builder().on(s), std::logic_error);
  CHECK_THROWS_AS(rondo::disruptor<std::int64_t>::builder().poller("p").on(s), std::logic_error);
  CHECK_THROWS_AS(rondo::disruptor<std::int64_t>::builder()
                      .stage("p",
                             [](rondo::consumer<std::int64_t>&) -> rondo::task<> { co_return; },
                             rondo::stage_options{.errors = rondo::error_policy::skip()})
                      .on(s)
                      .build(),
                  std::invalid_argument);
  CHECK_THROWS_AS(rondo::error_policy::rewind(0), std::invalid_argument);
}

TEST_CASE("coroutine stage: lifecycle calls from a stage's own scheduler are refused",
          "[coro_stage][deterministic]") {
  rondo::manual_scheduler s;
  bool refused = false;
  rondo::disruptor<std::int64_t>* self = nullptr;
  auto d = rondo::disruptor<std::int64_t>::builder()
               .capacity(8)
               .wait(rondo_test::suspend_policy(0, 0))
               .stage("a",
                      [&](std::int64_t&, std::int64_t, bool) {
                        try {
                          self->drain();
                        } catch (const std::logic_error&) {
                          refused = true;
                        }
                      })
               .on(s)
               .build();
  self = &d;
  d.start();
  publish_values(d.publisher(), 0, 1);
  s.run_all();
  CHECK(refused);
  drain_driving(d, s);
}

// ---------------------------------------------------------------------------------------------
// Random topologies with every kind of stage.

namespace {

enum class stage_mode { thread_sync, coro_sync, coro_async, coro_async_hop, coro_pull };

struct coro_topology {
  std::vector<std::vector<int>> deps;
  std::vector<stage_mode> modes;
  std::vector<int> placement;  // which of the two schedulers
  std::int64_t capacity = 2;
  std::int64_t max_batch = 0;
  int producers = 1;
  bool multi = false;
  bool coroutine_producers = false;
  std::uint32_t spins = 0;
  std::uint32_t yields = 0;
  std::int64_t events_per_producer = 0;

  std::string describe() const {
    std::string s = std::to_string(deps.size()) + " stages [";
    for (std::size_t i = 0; i < deps.size(); ++i) {
      s += "s" + std::to_string(i) + "(mode " + std::to_string(static_cast<int>(modes[i])) +
           " on " + std::to_string(placement[i]) + ")<-(";
      for (int d : deps[i]) s += "s" + std::to_string(d) + " ";
      s += ") ";
    }
    return s + "] capacity " + std::to_string(capacity) + " max_batch " +
           std::to_string(max_batch) + " producers " + std::to_string(producers) +
           (multi ? " multi" : " single") + (coroutine_producers ? " coroutine" : " thread") +
           " spins " + std::to_string(spins) + " yields " + std::to_string(yields);
  }
};

coro_topology random_coro_topology(std::mt19937_64& rng) {
  auto pick = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  coro_topology t;
  const int stages = static_cast<int>(pick(1, 6));
  t.deps.resize(static_cast<std::size_t>(stages));
  for (int i = 0; i < stages; ++i) {
    for (int d = 0; d < i; ++d) {
      if (pick(0, 2) == 0) t.deps[static_cast<std::size_t>(i)].push_back(d);
    }
    // Mostly coroutine stages; a thread stage now and then (mixed topologies).
    t.modes.push_back(static_cast<stage_mode>(pick(0, 9) == 0 ? 0 : pick(1, 4)));
    t.placement.push_back(static_cast<int>(pick(0, 1)));
  }
  t.capacity = std::int64_t{1} << pick(1, 10);
  t.max_batch = pick(0, 1) == 0 ? 0 : pick(1, t.capacity);
  t.producers = static_cast<int>(pick(1, 3));
  t.multi = t.producers > 1 || pick(0, 1) == 0;
  t.coroutine_producers = pick(0, 1) == 0;
  t.spins = static_cast<std::uint32_t>(pick(0, 1) == 0 ? 0 : pick(1, 200));
  t.yields = static_cast<std::uint32_t>(pick(0, 2));
  t.events_per_producer = 20000 / t.producers / scale;
  return t;
}

// Async handlers that sometimes suspend mid-batch: they hop to a helper thread and back.
struct hop_state {
  rondo::thread_scheduler* helper;
  rondo::scheduler_ref home;
};

void run_coro_topology(const coro_topology& t) {
  INFO(t.describe());
  const std::size_t n = t.deps.size();
  std::vector<std::unique_ptr<stage_record>> recs;
  for (std::size_t i = 0; i < n; ++i) recs.push_back(std::make_unique<stage_record>(t.producers));
  rondo::thread_scheduler helper;
  rondo::thread_scheduler exec[2];
  rondo::thread_scheduler producer_exec;
  rondo::spin_then_suspend policy;
  policy.spins = t.spins;
  policy.yields = t.yields;
  auto b = rondo::disruptor<event>::builder();
  b.capacity(t.capacity)
      .producers(t.multi ? rondo::producer_type::multi : rondo::producer_type::single)
      .wait(policy);
  for (std::size_t i = 0; i < n; ++i) {
    rondo::after_t deps;
    for (int d : t.deps[i]) {
      deps.names.push_back("s" + std::to_string(d));
      recs[i]->deps.push_back(recs[static_cast<std::size_t>(d)].get());
    }
    stage_record* r = recs[i].get();
    const std::string name = "s" + std::to_string(i);
    const rondo::stage_options opts{.max_batch = t.max_batch};
    rondo::thread_scheduler& home = exec[t.placement[i]];
    switch (t.modes[i]) {
      case stage_mode::thread_sync:
      case stage_mode::coro_sync:
        b.stage(name, [r](event& e, std::int64_t s, bool) { r->on_event(e, s); }, deps, opts);
        if (t.modes[i] == stage_mode::coro_sync) b.on(home);
        break;
      case stage_mode::coro_async:
        b.stage(name,
                [r](rondo::batch<event> bt) -> rondo::task<> {
                  for (auto [s, e] : bt.entries()) r->on_event(e, s);
                  co_return;
                },
                deps, opts)
            .on(home);
        break;
      case stage_mode::coro_async_hop:
        b.stage(name,
                [r, h = hop_state{&helper, home}](rondo::batch<event> bt) -> rondo::task<> {
                  std::size_t k = 0;
                  for (auto [s, e] : bt.entries()) {
                    if (k++ == bt.size() / 2) co_await h.helper->schedule();  // mid-batch
                    r->on_event(e, s);
                  }
                },
                deps, opts)
            .on(home);
        break;
      case stage_mode::coro_pull:
        b.stage(name,
                [r](rondo::consumer<event>& in) -> rondo::task<> {
                  while (auto bt = co_await in.next()) {
                    for (auto [s, e] : bt->entries()) r->on_event(e, s);
                  }
                },
                deps, opts)
            .on(home);
        break;
    }
  }
  auto d = b.build();
  d.start();
  std::atomic<int> producers_done{0};
  std::vector<std::thread> producer_threads;
  for (int p = 0; p < t.producers; ++p) {
    if (t.coroutine_producers) {
      [](rondo::thread_scheduler& s, rondo::publisher<event>& pub, int id, std::int64_t count,
         std::atomic<int>& done) -> detached {
        co_await s.schedule();
        std::int64_t counter = 0;
        while (counter < count) {
          const std::int64_t k = std::min<std::int64_t>(1 + counter % 3, count - counter);
          const std::int64_t want = std::min<std::int64_t>(k, pub.capacity());
          auto c = co_await pub.coro().reserve(want);
          for (auto [seq, ev] : c) ev.fill(id, counter++);
          c.publish();
        }
        // Release: pairs with the acquire load below.
        done.fetch_add(1, std::memory_order_release);
      }(producer_exec, d.publisher(), p, t.events_per_producer, producers_done);
    } else {
      producer_threads.emplace_back([&, p] {
        std::int64_t counter = 0;
        while (counter < t.events_per_producer) {
          const std::int64_t k =
              std::min<std::int64_t>({1 + counter % 4, t.events_per_producer - counter, t.capacity});
          auto c = d.publisher().reserve(k);
          for (auto [seq, ev] : c) ev.fill(p, counter++);
          c.publish();
        }
        // Release: pairs with the acquire load below.
        producers_done.fetch_add(1, std::memory_order_release);
      });
    }
  }
  for (auto& th : producer_threads) th.join();
  // Acquire: pairs with the producers' release increments.
  while (producers_done.load(std::memory_order_acquire) < t.producers) std::this_thread::yield();
  d.drain();
  const std::int64_t total = t.events_per_producer * t.producers;
  for (std::size_t i = 0; i < n; ++i) {
    INFO("stage s" << i << ": " << recs[i]->first_error);
    CHECK(recs[i]->errors == 0);
    CHECK(recs[i]->handled == total);
  }
}

}  // namespace

TEST_CASE("random topologies of coroutine and thread stages: exactly once, in order, after "
          "dependencies",
          "[coro_stage][stress]") {
  std::mt19937_64 rng(20261128);
  const int configs = RONDO_TSAN ? 16 : 40;
  for (int i = 0; i < configs; ++i) run_coro_topology(random_coro_topology(rng));
}
