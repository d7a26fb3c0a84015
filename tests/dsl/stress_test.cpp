// Stress: random topologies, ring sizes, batch limits, producer counts and wait strategies, with
// self-checking events; every stage must see every event exactly once, in order, after its
// dependencies. Sized for 2 cores (threads outnumber cores in most configurations) and for
// ThreadSanitizer (which scales the event counts down).
// (Above ~400 lines on purpose: one TEST_CASE per behaviour of one component, each standing
// alone; split, the component's specification would be scattered over files.)

#include <rondo/disruptor.hpp>

#include "support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>


using rondo_test::event;
using rondo_test::stage_record;

namespace {

constexpr std::int64_t scale = RONDO_TSAN ? 4 : 1;

struct topology {
  std::vector<std::vector<int>> deps;  // deps[i] are stages < i
  std::int64_t capacity = 2;
  std::int64_t max_batch = 0;
  std::int64_t linger_below = 0;
  int producers = 1;
  bool multi = false;
  rondo::wait_config wait;
  std::int64_t events_per_producer = 0;
  std::int64_t reserve_max = 1;

  std::string describe() const {
    std::string s = std::to_string(deps.size()) + " stages [";
    for (std::size_t i = 0; i < deps.size(); ++i) {
      s += "s" + std::to_string(i) + "<-(";
      for (int d : deps[i]) s += "s" + std::to_string(d) + " ";
      s += ") ";
    }
    return s + "] capacity " + std::to_string(capacity) + " max_batch " +
           std::to_string(max_batch) + " linger<" + std::to_string(linger_below) + " producers " + std::to_string(producers) +
           (multi ? " multi" : " single") + " wait #" + std::to_string(wait.index()) +
           " events/producer " + std::to_string(events_per_producer) + " reserve<=" +
           std::to_string(reserve_max);
  }
};

topology random_topology(std::mt19937_64& rng) {
  auto pick = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  topology t;
  const int stages = static_cast<int>(pick(1, 6));
  t.deps.resize(static_cast<std::size_t>(stages));
  for (int i = 1; i < stages; ++i) {
    for (int d = 0; d < i; ++d) {
      if (pick(0, 2) == 0) t.deps[static_cast<std::size_t>(i)].push_back(d);
    }
  }
  t.capacity = std::int64_t{1} << pick(1, 12);  // 2 .. 4096
  t.max_batch = pick(0, 1) == 0 ? 0 : pick(1, t.capacity);
  t.linger_below = pick(0, 3) == 0 ? pick(1, 64) : 0;
  const int producer_choices[] = {1, 2, 4};
  t.producers = producer_choices[pick(0, 2)];
  t.multi = t.producers > 1 || pick(0, 1) == 0;
  t.reserve_max = std::min<std::int64_t>(t.capacity, pick(1, 8));
  switch (pick(0, 3)) {
    case 0: t.wait = rondo::busy_spin{}; break;
    case 1: t.wait = rondo::yielding{.spins = 50}; break;
    case 2: t.wait = rondo::sleeping{.spins = 50, .yields = 20,
                                     .sleep = std::chrono::microseconds{20}}; break;
    default: t.wait = rondo::blocking{.spins = 50}; break;
  }
  const int threads = stages + t.producers;
  if (std::holds_alternative<rondo::busy_spin>(t.wait) && threads > 2) {
    // Busy spinning with more threads than cores progresses one scheduler slice at a time:
    // keep the ring large enough to batch, and the run short.
    t.capacity = std::max<std::int64_t>(t.capacity, 256);
    t.events_per_producer = 3000 / t.producers;
  } else if (std::holds_alternative<rondo::sleeping>(t.wait)) {
    t.events_per_producer = 8000 / t.producers;
  } else {
    t.events_per_producer = 30000 / t.producers;
  }
  t.events_per_producer /= scale;
  return t;
}

void run_topology(const topology& t) {
  INFO(t.describe());
  const std::size_t n = t.deps.size();
  std::vector<std::unique_ptr<stage_record>> recs;
  for (std::size_t i = 0; i < n; ++i) recs.push_back(std::make_unique<stage_record>(t.producers));
  auto b = rondo::disruptor<event>::builder();
  b.capacity(t.capacity)
      .producers(t.multi ? rondo::producer_type::multi : rondo::producer_type::single)
      .wait(t.wait);
  for (std::size_t i = 0; i < n; ++i) {
    rondo::after_t deps;
    for (int d : t.deps[i]) {
      deps.names.push_back("s" + std::to_string(d));
      recs[i]->deps.push_back(recs[static_cast<std::size_t>(d)].get());
    }
    stage_record* r = recs[i].get();
    b.stage("s" + std::to_string(i), [r](event& e, std::int64_t s, bool) { r->on_event(e, s); },
            deps,
            rondo::stage_options{.max_batch = t.max_batch, .linger_below = t.linger_below,
                                 .linger_pauses = t.linger_below > 0 ? 16U : 0U});
  }
  auto d = b.build();
  d.start();
  std::vector<std::thread> producers;
  for (int p = 0; p < t.producers; ++p) {
    producers.emplace_back([&, p] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(p) * 7919 + 1);
      std::int64_t counter = 0;
      while (counter < t.events_per_producer) {
        const std::int64_t want = std::uniform_int_distribution<std::int64_t>(1, t.reserve_max)(rng);
        const std::int64_t k = std::min(want, t.events_per_producer - counter);
        auto c = d.publisher().reserve(k);
        for (auto [seq, ev] : c) ev.fill(p, counter++);
        c.publish();
      }
    });
  }
  for (auto& th : producers) th.join();
  d.drain();
  const std::int64_t total = t.events_per_producer * t.producers;
  for (std::size_t i = 0; i < n; ++i) {
    INFO("stage s" << i << ": " << recs[i]->first_error);
    CHECK(recs[i]->errors == 0);
    CHECK(recs[i]->handled == total);
  }
}

}  // namespace

TEST_CASE("random topologies: exactly once, in order, after dependencies", "[disruptor][stress]") {
  std::mt19937_64 rng(20261127);
  const int configs = RONDO_TSAN ? 24 : 48;
  for (int i = 0; i < configs; ++i) run_topology(random_topology(rng));
}

TEST_CASE("every wait strategy on a ring of 2 with 4 producers", "[disruptor][stress]") {
  for (rondo::wait_config w : {rondo::wait_config{rondo::yielding{}},
                               rondo::wait_config{rondo::sleeping{.sleep = std::chrono::microseconds{10}}},
                               rondo::wait_config{rondo::blocking{}}}) {
    topology t;
    t.deps = {{}, {0}, {0}, {1, 2}};  // a diamond
    t.capacity = 2;
    t.producers = 4;
    t.multi = true;
    t.wait = w;
    t.reserve_max = 2;
    t.events_per_producer = 2000 / scale;
    run_topology(t);
  }
}

// Shutdown races: drain or close while producers are publishing or blocked on a full ring.
// drain: every publish that returned is handled by every stage. close: the report is exact.
TEST_CASE("drain and close racing with blocked producers", "[disruptor][stress]") {
  std::mt19937_64 rng(77);
  const int rounds = RONDO_TSAN ? 20 : 60;
  for (int round = 0; round < rounds; ++round) {
    const bool use_drain = round % 2 == 0;
    const bool multi = round % 4 < 2;
    const int nprod = multi ? 3 : 1;
    rondo::wait_config w = round % 3 == 0 ? rondo::wait_config{rondo::blocking{}}
                                          : rondo::wait_config{rondo::yielding{}};
    INFO("round " << round << (use_drain ? " drain" : " close") << (multi ? " multi" : " single"));
    std::atomic<std::int64_t> handled_a{0}, handled_b{0};
    auto d = rondo::disruptor<event>::builder()
                 .capacity(4)
                 .producers(multi ? rondo::producer_type::multi : rondo::producer_type::single)
                 .wait(w)
                 .stage("a",
                        [&](event&, std::int64_t, bool) {
                          // Relaxed: read after the stage threads are joined.
                          handled_a.fetch_add(1, std::memory_order_relaxed);
                        })
                 .stage("b",
                        [&](event&, std::int64_t, bool) {
                          // Relaxed: as above.
                          handled_b.fetch_add(1, std::memory_order_relaxed);
                        },
                        rondo::after("a"))
                 .build();
    d.start();
    std::atomic<std::int64_t> published{0};
    std::vector<std::thread> producers;
    for (int p = 0; p < nprod; ++p) {
      producers.emplace_back([&] {
        try {
          for (std::int64_t k = 1;; k = k % 4 + 1) {
            auto c = d.publisher().reserve(k);
            c.publish();
            // Relaxed: read after join.
            published.fetch_add(k, std::memory_order_relaxed);
          }
        } catch (const rondo::closed&) {
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::microseconds(
        std::uniform_int_distribution<int>(0, 2000)(rng)));
    if (use_drain) {
      d.drain();
      for (auto& th : producers) th.join();
      const auto n = published.load(std::memory_order_relaxed);
      CHECK(handled_a.load(std::memory_order_relaxed) == n);
      CHECK(handled_b.load(std::memory_order_relaxed) == n);
    } else {
      const auto rep = d.close();
      for (auto& th : producers) th.join();
      const auto n = published.load(std::memory_order_relaxed);
      CHECK(rep.published == n);
      CHECK(handled_b.load(std::memory_order_relaxed) == n - rep.unprocessed);
      CHECK(handled_a.load(std::memory_order_relaxed) >= handled_b.load(std::memory_order_relaxed));
    }
  }
}

// Litmus: the claim/close handshake (asymmetric fences). A producer publishes as fast as it can
// while another thread closes and settles. Forbidden outcome: a publish that succeeded beyond the
// final sequence settle() returned (it would be published but never handled). Required: zero.
TEST_CASE("litmus: no publish lands after close settles", "[sequencer][litmus]") {
  const int rounds = RONDO_TSAN ? 300 : 2000;
  long forbidden = 0;
  for (int r = 0; r < rounds; ++r) {
    rondo::wait_strategy w{rondo::yielding{}};
    std::unique_ptr<rondo::single_producer_sequencer> single;
    std::unique_ptr<rondo::multi_producer_sequencer> multi;
    if (r % 2 == 0) single = std::make_unique<rondo::single_producer_sequencer>(1024, w);
    else multi = std::make_unique<rondo::multi_producer_sequencer>(1024, w);
    rondo::sequence consumer;  // a consumer that is always caught up
    if (single) single->add_gating_sequence(consumer); else multi->add_gating_sequence(consumer);
    std::atomic<std::int64_t> last_ok{-1};
    std::atomic<bool> started{false};
    std::thread producer([&] {
      try {
        for (;;) {
          const auto hi = single ? single->reserve(1) : multi->reserve(1);
          if (single) single->publish(hi, hi); else multi->publish(hi, hi);
          // Relaxed: read after join.
          last_ok.store(hi, std::memory_order_relaxed);
          consumer.set(hi);
          // Pairs with the acquire load in the closer's wait.
          started.store(true, std::memory_order_release);
        }
      } catch (const rondo::closed&) {
      }
    });
    // Pairs with the release store in the producer.
    while (!started.load(std::memory_order_acquire)) std::this_thread::yield();
    if (r % 3 == 0) std::this_thread::yield();
    std::int64_t final_seq = 0;
    if (single) {
      single->close();
      final_seq = single->settle();
    } else {
      multi->close();
      final_seq = multi->settle();
    }
    producer.join();
    if (last_ok.load(std::memory_order_relaxed) > final_seq) ++forbidden;
  }
  CHECK(forbidden == 0);
}

// ---------------------------------------------------------------------------------------------
// Many producers (issue 12) under the builder's default wait strategy (spin, yield, then sleep):
// more producer threads than cores, rings from 2 slots up, and claims dropped in the middle of
// their fill (they become tombstones that no stage may see).

namespace {

// Per-producer order, payloads, exactly-once and increasing sequences, for a stage that may skip
// sequences (tombstones). Written by the stage's thread; read after drain.
struct many_producer_record {
  explicit many_producer_record(int producers) : next(static_cast<std::size_t>(producers), 0) {}
  std::vector<std::int64_t> next;
  std::int64_t last_seq = -1;
  std::int64_t handled = 0;
  std::int64_t errors = 0;
  std::string first_error;

  void fail(std::string why) {
    if (errors++ == 0) first_error = std::move(why);
  }
  void on_event(const event& e, std::int64_t seq) {
    if (seq <= last_seq) fail("sequence " + std::to_string(seq) + " after " + std::to_string(last_seq));
    last_seq = seq;
    if (e.producer < 0 || e.producer >= static_cast<std::int64_t>(next.size()) ||
        e.check != rondo_test::check_of(e.producer, e.counter)) {
      fail("corrupt or abandoned payload at sequence " + std::to_string(seq));
      return;
    }
    auto& nc = next[static_cast<std::size_t>(e.producer)];
    if (e.counter != nc) {
      fail("producer " + std::to_string(e.producer) + " counter " + std::to_string(e.counter) +
           " where " + std::to_string(nc) + " was expected");
    }
    nc = e.counter + 1;
    ++handled;
  }
};

struct fill_failed {};

}  // namespace

TEST_CASE("many producers, default wait: exactly once, per-producer order, dropped claims skipped",
          "[disruptor][stress]") {
  for (const int nprod : {2, 3, 4}) {
    for (const std::int64_t cap : {2, 16, 1024}) {
      INFO(nprod << " producers, capacity " << cap);
      const std::int64_t per_producer = 24000 / scale / nprod;
      many_producer_record ra(nprod), rb(nprod);
      auto d = rondo::disruptor<event>::builder()
                   .capacity(cap)
                   .producers(rondo::producer_type::multi)
                   .stage("a", [&](event& e, std::int64_t s, bool) { ra.on_event(e, s); })
                   .stage("b", [&](event& e, std::int64_t s, bool) { rb.on_event(e, s); },
                          rondo::after("a"))
                   .build();
      d.start();
      std::vector<std::thread> producers;
      for (int p = 0; p < nprod; ++p) {
        producers.emplace_back([&, p] {
          std::mt19937_64 rng(static_cast<std::uint64_t>(p) * 104729 + 7);
          std::int64_t counter = 0;
          for (std::int64_t claims = 0; counter < per_producer; ++claims) {
            const std::int64_t k = std::min<std::int64_t>(
                {std::uniform_int_distribution<std::int64_t>(1, 4)(rng), cap,
                 per_producer - counter});
            if (claims % 5 == 4) {
              // Dropped mid-fill: the claim's destructor gives it back as tombstones.
              try {
                auto c = d.publisher().reserve(k);
                c[0].fill(p, counter);  // a valid-looking event that must never be seen
                throw fill_failed{};
              } catch (const fill_failed&) {
              }
              continue;
            }
            auto c = d.publisher().reserve(k);
            for (auto [seq, ev] : c) ev.fill(p, counter++);
            c.publish();
          }
        });
      }
      for (auto& th : producers) th.join();
      d.drain();
      for (const many_producer_record* r : {&ra, &rb}) {
        INFO(r->first_error);
        CHECK(r->errors == 0);
        CHECK(r->handled == per_producer * nprod);
        for (const std::int64_t n : r->next) CHECK(n == per_producer);
      }
    }
  }
}

TEST_CASE("many producers, default wait: close wakes producers blocked on a full ring",
          "[disruptor][stress]") {
  const int rounds = RONDO_TSAN ? 8 : 24;
  for (int round = 0; round < rounds; ++round) {
    const int nprod = 2 + round % 3;
    INFO("round " << round << ", " << nprod << " producers");
    std::atomic<bool> gate{false};
    std::atomic<std::int64_t> handled{0};
    auto d = rondo::disruptor<event>::builder()
                 .capacity(4)
                 .producers(rondo::producer_type::multi)
                 .stage("slow",
                        [&](event&, std::int64_t, bool) {
                          // Acquire: pairs with the release store that opens the gate.
                          while (!gate.load(std::memory_order_acquire)) std::this_thread::yield();
                          // Relaxed: read after the stage thread is joined.
                          handled.fetch_add(1, std::memory_order_relaxed);
                        })
                 .build();
    d.start();
    std::atomic<std::int64_t> published{0};
    std::atomic<int> refused{0};
    std::vector<std::thread> producers;
    for (int p = 0; p < nprod; ++p) {
      producers.emplace_back([&] {
        try {
          for (;;) {
            auto c = d.publisher().reserve(1);
            c.publish();
            // Relaxed: read after join.
            published.fetch_add(1, std::memory_order_relaxed);
          }
        } catch (const rondo::closed&) {
          // Relaxed: read after join.
          refused.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    // The ring fills (4 slots, the stage holds the first) and every producer blocks in reserve.
    while (d.publisher().remaining_capacity() > 0) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(round % 4));
    // The stage finishes its batch once the gate opens; close() must not hang on it.
    std::thread opener([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      // Release: pairs with the stage's acquire load.
      gate.store(true, std::memory_order_release);
    });
    const auto rep = d.close();
    opener.join();
    for (auto& th : producers) th.join();
    const auto n = published.load(std::memory_order_relaxed);
    CHECK(refused.load(std::memory_order_relaxed) == nprod);
    CHECK(rep.published == n);
    CHECK(handled.load(std::memory_order_relaxed) == n - rep.unprocessed);
  }
}

TEST_CASE("many coroutine producers on a full ring, default wait: exactly once, per-producer order",
          "[disruptor][stress]") {
  for (const std::int64_t cap : {2, 64}) {
    constexpr int nprod = 4;
    INFO("capacity " << cap);
    const std::int64_t per_producer = 8000 / scale;
    many_producer_record r(nprod);
    // Two producer executors, two coroutine producers on each: a full ring parks a producer
    // while the other one on its executor runs.
    rondo::thread_scheduler exec[2];
    auto d = rondo::disruptor<event>::builder()
                 .capacity(cap)
                 .producers(rondo::producer_type::multi)
                 .stage("s", [&](event& e, std::int64_t s, bool) { r.on_event(e, s); })
                 .build();
    d.start();
    std::atomic<int> done{0};
    for (int p = 0; p < nprod; ++p) {
      [](rondo::thread_scheduler& s, rondo::publisher<event>& pub, int id, std::int64_t count,
         std::int64_t capacity, std::atomic<int>& finished) -> rondo_test::detached {
        co_await s.schedule();
        std::int64_t counter = 0;
        for (std::int64_t claims = 0; counter < count; ++claims) {
          const std::int64_t k = std::min<std::int64_t>({1 + claims % 3, capacity, count - counter});
          auto c = co_await pub.coro().reserve(k);
          if (claims % 7 == 6) continue;  // dropped: given back as tombstones
          for (auto [seq, ev] : c) ev.fill(id, counter++);
          c.publish();
        }
        // Release: pairs with the acquire load below.
        finished.fetch_add(1, std::memory_order_release);
      }(exec[p % 2], d.publisher(), p, per_producer, cap, done);
    }
    // Acquire: pairs with the producers' release increments.
    while (done.load(std::memory_order_acquire) < nprod) std::this_thread::yield();
    d.drain();
    INFO(r.first_error);
    CHECK(r.errors == 0);
    CHECK(r.handled == per_producer * nprod);
  }
}
