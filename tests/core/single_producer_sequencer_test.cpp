#include <rondo/core/sequence_barrier.hpp>
#include <rondo/core/single_producer_sequencer.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <limits>
#include <stdexcept>
#include <thread>

using namespace std::chrono_literals;

TEST_CASE("single producer: claims are consecutive and gated by the slowest consumer",
          "[single_producer_sequencer][deterministic]") {
  rondo::wait_strategy w{rondo::busy_spin{}};
  rondo::single_producer_sequencer s(4, w);
  rondo::sequence consumer;
  s.add_gating_sequence(consumer);

  auto hi = s.try_reserve(3);
  REQUIRE(hi);
  CHECK(*hi == 2);
  s.publish(0, 2);
  CHECK(s.cursor().get() == 2);
  CHECK(s.remaining_capacity() == 1);

  hi = s.try_reserve(1);
  REQUIRE(hi);
  CHECK(*hi == 3);
  s.publish(3, 3);
  CHECK_FALSE(s.try_reserve(1));  // full: the consumer is at -1
  consumer.set(1);
  CHECK(s.remaining_capacity() == 2);
  CHECK_FALSE(s.try_reserve(3));
  hi = s.try_reserve(2);
  REQUIRE(hi);
  CHECK(*hi == 5);
  s.publish(4, 5);
}

TEST_CASE("single producer: bad n is a clear error", "[single_producer_sequencer][deterministic]") {
  rondo::wait_strategy w;
  rondo::single_producer_sequencer s(8, w);
  CHECK_THROWS_WITH(s.try_reserve(0), "reserve(0): n must be in [1, 8] (the ring capacity)");
  CHECK_THROWS_AS(s.reserve(9), std::invalid_argument);
  CHECK_THROWS_AS(s.reserve(-1), std::invalid_argument);
  CHECK_THROWS_WITH(rondo::single_producer_sequencer(6, w), "ring capacity 6 is not a power of two");
}

TEST_CASE("single producer: a second open claim is refused, abandon rolls back",
          "[single_producer_sequencer][deterministic]") {
  rondo::wait_strategy w;
  rondo::single_producer_sequencer s(8, w);
  const auto hi = s.reserve(2);
  CHECK(hi == 1);
  CHECK_THROWS_WITH(s.reserve(1), Catch::Contains("[0, 1] is still open"));
  s.abandon(0, 1);
  CHECK(s.cursor().get() == -1);
  CHECK(s.reserve(1) == 0);  // the abandoned sequences are reused
  s.publish(0, 0);
  CHECK(s.cursor().get() == 0);
}

TEST_CASE("single producer: close wakes a producer waiting for capacity",
          "[single_producer_sequencer][deterministic]") {
  for (rondo::wait_config cfg : {rondo::wait_config{rondo::yielding{}},
                                 rondo::wait_config{rondo::blocking{}},
                                 rondo::wait_config{rondo::sleeping{}}}) {
    rondo::wait_strategy w{cfg};
    rondo::single_producer_sequencer s(2, w);
    rondo::sequence consumer;
    s.add_gating_sequence(consumer);
    s.publish(0, s.reserve(2));
    std::atomic<int> outcome{0};
    std::thread producer([&] {
      try {
        (void)s.reserve(1);
        outcome.store(1, std::memory_order_relaxed);  // read after join
      } catch (const rondo::closed&) {
        outcome.store(2, std::memory_order_relaxed);  // read after join
      }
    });
    s.close();
    producer.join();
    CHECK(outcome.load(std::memory_order_relaxed) == 2);
    CHECK_THROWS_AS(s.try_reserve(1), rondo::closed);
    CHECK(s.settle() == 1);
  }
}

TEST_CASE("single producer: reserve_until gives up at the deadline",
          "[single_producer_sequencer][deterministic]") {
  rondo::wait_strategy w{rondo::blocking{}};
  rondo::single_producer_sequencer s(2, w);
  rondo::sequence consumer;
  s.add_gating_sequence(consumer);
  s.publish(0, s.reserve(2));
  CHECK_FALSE(s.reserve_until(1, rondo::wait_strategy::clock::now() + 2ms));
  consumer.set(0);
  w.signal(std::numeric_limits<std::int64_t>::max());
  const auto hi = s.reserve_until(1, rondo::wait_strategy::clock::now() + 2ms);
  REQUIRE(hi);
  CHECK(*hi == 2);
}
