// disruptor<T> end to end: the builder, lifecycle, drain/close/halt, errors and reports.
// (Above ~400 lines on purpose: one TEST_CASE per behaviour of one component, each standing
// alone; split, the component's specification would be scattered over files.)
#include <rondo/disruptor.hpp>

#include "support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using rondo_test::event;

namespace {
auto noop = [](event&, std::int64_t, bool) {};
}

TEST_CASE("build() rejects bad topologies with clear errors", "[disruptor][deterministic]") {
  using b = rondo::disruptor<event>::builder;
  CHECK_THROWS_WITH(b().capacity(100).stage("a", noop).build(),
                    "ring capacity 100 is not a power of two");
  CHECK_THROWS_WITH(b().build(), Catch::Contains("no stages"));
  CHECK_THROWS_WITH(b().stage("a", noop).stage("a", noop).build(), "duplicate stage name 'a'");
  CHECK_THROWS_WITH(b().stage("", noop).build(), Catch::Contains("empty name"));
  CHECK_THROWS_WITH(b().stage("a", noop, rondo::after("x")).build(),
                    "stage 'a' runs after unknown stage 'x'");
  CHECK_THROWS_WITH(b().stage("a", noop, rondo::after("a")).build(), "dependency cycle: a -> a");
  CHECK_THROWS_WITH(b().stage("a", noop, rondo::after("c"))
                        .stage("b", noop, rondo::after("a"))
                        .stage("c", noop, rondo::after("b"))
                        .build(),
                    "dependency cycle: a -> c -> b -> a");
  auto used = b();
  used.stage("a", noop);
  auto d = used.build();
  CHECK_THROWS_AS(used.build(), std::logic_error);
  CHECK_THROWS_AS(d.poller("a"), std::invalid_argument);
  CHECK_THROWS_AS(d.poller("nope"), std::invalid_argument);
}

TEST_CASE("the default wait strategy spins, yields, then sleeps (issue 12: not busy_spin)",
          "[disruptor][deterministic]") {
  auto d = rondo::disruptor<event>::builder().stage("a", noop).build();
  const rondo::wait_config& cfg = d.publisher().sequencer().waits().config();
  REQUIRE(std::holds_alternative<rondo::spin_then_suspend>(cfg));
  for (const auto m : {rondo::wait_moment::ring_full, rondo::wait_moment::ring_idle}) {
    const rondo::wait_phase p = std::get<rondo::spin_then_suspend>(cfg).phase(m);
    CHECK(p.spins > 0);
    CHECK(p.yields > 0);
  }
}

TEST_CASE("lifecycle misuse is a clear error", "[disruptor][deterministic]") {
  auto d = rondo::disruptor<event>::builder().stage("a", noop).build();
  CHECK_THROWS_WITH(d.drain(), Catch::Contains("never started"));
  d.start();
  CHECK_THROWS_WITH(d.start(), Catch::Contains("already started"));
  d.drain();
  CHECK_THROWS_WITH(d.drain(), Catch::Contains("already drained"));
  CHECK_THROWS_WITH(d.close(), Catch::Contains("already drained"));
  CHECK_THROWS_AS(d.publisher().reserve(1), rondo::closed);

  auto e = rondo::disruptor<event>::builder().stage("a", noop).build();
  e.start();
  (void)e.close();
  CHECK_THROWS_WITH(e.close(), Catch::Contains("already closed"));
  CHECK_THROWS_WITH(e.drain(), Catch::Contains("already closed"));
  CHECK_THROWS_AS(e.publisher().try_reserve(1), rondo::closed);
}

TEST_CASE("a diamond handles every event once, in order, after its dependencies",
          "[disruptor][deterministic]") {
  rondo_test::stage_record a(1), b(1), c(1);
  b.deps = {&a};
  c.deps = {&a, &b};
  auto d = rondo::disruptor<event>::builder()
               .capacity(64)
               .wait(rondo::yielding{})
               .stage("a", [&](event& e, std::int64_t s, bool) { a.on_event(e, s); })
               .stage("b", [&](event& e, std::int64_t s, bool) { b.on_event(e, s); },
                      rondo::after("a"))
               .stage("c", [&](event& e, std::int64_t s, bool) { c.on_event(e, s); },
                      rondo::after("a", "b"))
               .build();
  d.start();
  for (std::int64_t i = 0; i < 5000; ++i) {
    d.publisher().publish_event([i](event& e, std::int64_t) { e.fill(0, i); });
  }
  d.drain();
  for (auto* r : {&a, &b, &c}) {
    CHECK(r->handled == 5000);
    CHECK(r->errors == 0);
    CHECK(r->first_error.empty());
  }
}

TEST_CASE("drain handles everything published, then stops; reserve after is closed",
          "[disruptor][deterministic]") {
  for (rondo::wait_config cfg : {rondo::wait_config{rondo::yielding{}},
                                 rondo::wait_config{rondo::blocking{}},
                                 rondo::wait_config{rondo::sleeping{}}}) {
    std::atomic<std::int64_t> count{0};
    auto d = rondo::disruptor<event>::builder()
                 .capacity(16)
                 .wait(cfg)
                 .stage("slow",
                        [&](event&, std::int64_t, bool) {
                          // Relaxed: read after drain joined this thread.
                          count.fetch_add(1, std::memory_order_relaxed);
                        })
                 .build();
    // Published before start: drain must still handle them.
    for (int i = 0; i < 10; ++i) d.publisher().publish_event([](event&, std::int64_t) {});
    d.start();
    for (int i = 0; i < 500; ++i) d.publisher().publish_event([](event&, std::int64_t) {});
    CHECK(d.drain_for(30s));
    CHECK(count.load(std::memory_order_relaxed) == 510);
    CHECK_THROWS_AS(d.publisher().reserve(1), rondo::closed);
  }
}

TEST_CASE("drain_for times out while a poller does not poll, then completes",
          "[disruptor][deterministic]") {
  auto d = rondo::disruptor<event>::builder().capacity(8).poller("p").build();
  d.start();
  d.publisher().publish_event([](event& e, std::int64_t) { e.fill(0, 0); });
  CHECK_FALSE(d.drain_for(2ms));
  auto& p = d.poller("p");
  int got = 0;
  CHECK(p.poll([&](event&, std::int64_t, bool) { return ++got > 0; }) ==
        rondo::poll_state::processing);
  CHECK(p.poll([&](event&, std::int64_t, bool) { return true; }) == rondo::poll_state::stopped);
  CHECK(d.drain_for(5s));
  CHECK(got == 1);
}

TEST_CASE("close wakes a producer blocked on a full ring and reports unprocessed events",
          "[disruptor][deterministic]") {
  for (rondo::wait_config cfg : {rondo::wait_config{rondo::yielding{}},
                                 rondo::wait_config{rondo::blocking{}}}) {
    std::atomic<bool> release{false};
    auto d = rondo::disruptor<event>::builder()
                 .capacity(4)
                 .wait(cfg)
                 .stage("stuck",
                        [&](event&, std::int64_t, bool) {
                          // Pairs with the release store below: hold the stage until then.
                          while (!release.load(std::memory_order_acquire)) std::this_thread::yield();
                        })
                 .build();
    d.start();
    for (int i = 0; i < 4; ++i) d.publisher().publish_event([](event&, std::int64_t) {});
    std::atomic<int> producer_outcome{0};
    std::thread producer([&] {
      try {
        d.publisher().publish_event([](event&, std::int64_t) {});
        producer_outcome.store(1, std::memory_order_relaxed);  // read after join
      } catch (const rondo::closed&) {
        producer_outcome.store(2, std::memory_order_relaxed);  // read after join
      }
    });
    // The producer is (or will be) blocked: the ring holds 4 and the stage holds event 0.
    std::thread closer([&] {
      const auto rep = d.close();
      CHECK(rep.published == 4);
      // The stage finishes its in-flight batch after we let it go; what remains is reported.
      CHECK(rep.unprocessed >= 0);
      CHECK(rep.unprocessed <= 4);
    });
    // Let the stage go only once close() has begun, so it finishes with events left.
    while (!d.sequencer_of().is_closed()) std::this_thread::yield();
    // Pairs with the acquire load in the handler.
    release.store(true, std::memory_order_release);
    closer.join();
    producer.join();
    CHECK(producer_outcome.load(std::memory_order_relaxed) == 2);
  }
}

TEST_CASE("a throwing handler halts the disruptor; drain rethrows with stage and sequence",
          "[disruptor][deterministic]") {
  std::atomic<std::int64_t> downstream_max{-1};
  auto d = rondo::disruptor<event>::builder()
               .capacity(8)
               .wait(rondo::blocking{})
               .stage("decode",
                      [](event&, std::int64_t seq, bool) {
                        if (seq == 20) throw std::runtime_error("malformed");
                      })
               .stage("reply",
                      [&](event&, std::int64_t seq, bool) {
                        // Relaxed: read after join.
                        downstream_max.store(seq, std::memory_order_relaxed);
                      },
                      rondo::after("decode"))
               .build();
  d.start();
  int published = 0;
  try {
    for (; published < 1000; ++published) {
      d.publisher().publish_event([](event&, std::int64_t) {});
    }
  } catch (const rondo::closed&) {
  }
  CHECK(published < 1000);  // the halt closed the ring under the producer
  try {
    d.drain();
    FAIL("drain() did not rethrow");
  } catch (const rondo::stage_error& e) {
    CHECK(e.stage() == "decode");
    CHECK(e.sequence() == 20);
    CHECK(std::string(e.what()) == "stage 'decode' failed at sequence 20: malformed");
  }
  CHECK(downstream_max.load(std::memory_order_relaxed) == 19);  // never past the failure
  CHECK_THROWS_AS(d.join(), rondo::stage_error);
}

TEST_CASE("join rethrows a halt; skip policy keeps going; metrics count",
          "[disruptor][deterministic]") {
  auto d = rondo::disruptor<event>::builder()
               .capacity(8)
               .wait(rondo::yielding{})
               .metrics()
               .stage("lenient",
                      [](event&, std::int64_t seq, bool) {
                        if (seq % 10 == 0) throw std::runtime_error("skip me");
                      },
                      rondo::stage_options{.errors = rondo::error_policy::skip()})
               .stage("strict",
                      [](event&, std::int64_t seq, bool) {
                        if (seq == 55) throw std::runtime_error("stop");
                      },
                      rondo::after("lenient"))
               .build();
  d.start();
  try {
    for (int i = 0; i < 100; ++i) d.publisher().publish_event([](event&, std::int64_t) {});
  } catch (const rondo::closed&) {
  }
  CHECK_THROWS_WITH(d.join(), "stage 'strict' failed at sequence 55: stop");
  const auto m = d.metrics();
  REQUIRE(m.size() == 2);
  CHECK(m[0].name == "lenient");
  CHECK(m[0].metrics.errors_skipped >= 6);
  CHECK(m[0].metrics.events >= 56);
  CHECK(m[0].metrics.batches >= 1);
  CHECK(m[1].position == 54);
}

TEST_CASE("destroying a running disruptor does not hang", "[disruptor][deterministic]") {
  for (rondo::wait_config cfg : {rondo::wait_config{rondo::busy_spin{}},
                                 rondo::wait_config{rondo::blocking{}}}) {
    auto d = rondo::disruptor<event>::builder()
                 .wait(cfg)
                 .stage("a", noop)
                 .stage("b", noop, rondo::after("a"))
                 .build();
    d.start();
    d.publisher().publish_event([](event&, std::int64_t) {});
  }
  SUCCEED("destructors returned");
}

TEST_CASE("events without a default constructor need a factory", "[disruptor][deterministic]") {
  struct tagged {
    explicit tagged(std::int64_t t) : tag(t) {}
    std::int64_t tag;
  };
  auto b = rondo::disruptor<tagged>::builder();
  b.stage("a", [](tagged&, std::int64_t, bool) {});
  CHECK_THROWS_WITH(b.build(), Catch::Contains("event_factory"));
  auto d = rondo::disruptor<tagged>::builder()
               .event_factory([](std::int64_t i) { return tagged{i}; })
               .capacity(4)
               .stage("a", [](tagged&, std::int64_t, bool) {})
               .build();
  CHECK(d.ring()[3].tag == 3);
}

TEST_CASE("one thread can publish, poll and drain: drain_for(0) first", "[disruptor][deterministic]") {
  auto d = rondo::disruptor<event>::builder()
               .capacity(8)
               .metrics()
               .stage("a", noop)
               .poller("p", rondo::after("a"))
               .build();
  d.start();
  for (std::int64_t i = 0; i < 5; ++i) {
    d.publisher().publish_event([i](event& e, std::int64_t) { e.fill(0, i); });
  }
  CHECK_FALSE(d.drain_for(0ns));  // stops producers and sets the limit, returns at once
  CHECK_THROWS_AS(d.publisher().reserve(1), rondo::closed);
  rondo_test::stage_record rec(1);
  auto& p = d.poller("p");
  while (p.poll([&](event& e, std::int64_t s, bool) {
    rec.on_event(e, s);
    return true;
  }) != rondo::poll_state::stopped) {
  }
  d.drain();
  CHECK(rec.handled == 5);
  CHECK(rec.errors == 0);
  const auto m = d.metrics("p");
  CHECK(m.position == 4);
  CHECK(m.metrics.events == 5);
  CHECK(m.metrics.batches >= 1);
  CHECK(d.metrics("a").metrics.events == 5);
  CHECK_THROWS_AS(d.metrics("zz"), std::invalid_argument);
}

TEST_CASE("close before start reports what was published and does not hang",
          "[disruptor][deterministic]") {
  auto d = rondo::disruptor<event>::builder().capacity(8).stage("a", noop).build();
  for (int i = 0; i < 3; ++i) d.publisher().publish_event([](event&, std::int64_t) {});
  const auto rep = d.close();
  CHECK(rep.published == 3);
  CHECK(rep.unprocessed == 3);
  CHECK_THROWS_AS(d.start(), std::logic_error);
}

TEST_CASE("move-assigning over a running disruptor shuts the old one down",
          "[disruptor][deterministic]") {
  std::atomic<std::int64_t> handled{0};
  auto counting = [&](event&, std::int64_t, bool) {
    // Relaxed: read after drain.
    handled.fetch_add(1, std::memory_order_relaxed);
  };
  auto d = rondo::disruptor<event>::builder().wait(rondo::blocking{}).stage("a", noop).build();
  d.start();
  d = rondo::disruptor<event>::builder().wait(rondo::blocking{}).stage("b", counting).build();
  d.start();
  d.publisher().publish_event([](event&, std::int64_t) {});
  d.drain();
  CHECK(handled.load(std::memory_order_relaxed) == 1);
  auto moved = std::move(d);
  CHECK_THROWS_WITH(d.start(), Catch::Contains("moved from"));
  CHECK_THROWS_AS(d.publisher(), std::logic_error);
}

TEST_CASE("a throwing on_start halts the disruptor instead of terminating",
          "[disruptor][deterministic]") {
  struct bad_start {
    void operator()(event&, std::int64_t, bool) {}
    void on_start() { throw std::runtime_error("no config"); }
  };
  auto d = rondo::disruptor<event>::builder().stage("init", bad_start{}).build();
  d.start();
  CHECK_THROWS_WITH(d.join(), "stage 'init' failed at sequence 0: no config");
}

TEST_CASE("drain_for returns false while this thread holds an open claim",
          "[disruptor][deterministic]") {
  auto d = rondo::disruptor<event>::builder().capacity(8).stage("a", noop).build();
  d.start();
  auto c = d.publisher().reserve(1);
  CHECK_FALSE(d.drain_for(1ms));
  c[0].fill(0, 0);
  c.publish();
  CHECK(d.drain_for(10s));
  CHECK_THROWS_WITH(d.drain(), Catch::Contains("already drained"));
}

TEST_CASE("lifecycle calls from a stage thread are refused", "[disruptor][deterministic]") {
  rondo::disruptor<event>* self = nullptr;
  std::string message;
  auto d = rondo::disruptor<event>::builder()
               .capacity(8)
               .stage("selfish",
                      [&](event&, std::int64_t, bool) {
                        try {
                          (void)self->close();
                        } catch (const std::logic_error& e) {
                          message = e.what();  // read after drain joined this thread
                        }
                      })
               .build();
  self = &d;
  d.start();
  d.publisher().publish_event([](event&, std::int64_t) {});
  d.drain();
  CHECK(message == "disruptor::close() called from the thread of stage 'selfish': it would wait "
                   "for itself");
}

TEST_CASE("negative timeouts and empty callbacks are rejected", "[disruptor][deterministic]") {
  auto d = rondo::disruptor<event>::builder().stage("a", noop).build();
  CHECK_THROWS_WITH(d.drain_for(-5ns), "disruptor::drain_for: timeout -5 ns is negative");
  CHECK_THROWS_AS(d.publisher().reserve_for(1, -1ns), std::invalid_argument);
  CHECK_THROWS_AS(rondo::wait_strategy(rondo::blocking{.timeout = -1ms}), std::invalid_argument);
  CHECK_THROWS_WITH(rondo::error_policy::call({}), Catch::Contains("empty"));
  CHECK_THROWS_AS((void)rondo::disruptor<event>::builder()
                      .wait(rondo::sleeping{.sleep = -1us})
                      .stage("a", noop)
                      .build(),
                  std::invalid_argument);
  // A huge timeout saturates instead of overflowing.
  auto c = d.publisher().reserve_for(1, std::chrono::nanoseconds::max());
  CHECK(c.has_value());
}

namespace {
std::int64_t plain_function_events = 0;
void plain_function_handler(event&, std::int64_t, bool) { ++plain_function_events; }
}  // namespace

TEST_CASE("a plain function is a stage handler (compiles under -Wshadow -Werror)",
          "[disruptor][deterministic]") {
  plain_function_events = 0;
  auto d = rondo::disruptor<event>::builder()
               .capacity(8)
               .stage("f", plain_function_handler)
               .build();
  d.start();
  for (int i = 0; i < 5; ++i) d.publisher().reserve(1).publish();
  d.drain();
  CHECK(plain_function_events == 5);  // the drain joined the stage thread
}
