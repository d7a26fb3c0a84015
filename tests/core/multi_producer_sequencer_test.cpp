#include <rondo/core/multi_producer_sequencer.hpp>
#include <rondo/core/sequence_barrier.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <thread>
#include <vector>

TEST_CASE("multi producer: publication is tracked slot by slot",
          "[multi_producer_sequencer][deterministic]") {
  rondo::wait_strategy w;
  rondo::multi_producer_sequencer s(8, w);
  const auto a = s.reserve(2);  // [0, 1]
  const auto b = s.reserve(3);  // [2, 4]
  CHECK(a == 1);
  CHECK(b == 4);
  CHECK(s.cursor().get() == 4);  // the claim mark
  CHECK(s.highest_published(0, 4) == -1);
  s.publish(2, 4);  // out of order: nothing is contiguous from 0 yet
  CHECK(s.highest_published(0, 4) == -1);
  s.publish(0, 1);
  CHECK(s.highest_published(0, 4) == 4);
  CHECK(s.highest_published(3, 4) == 4);
}

TEST_CASE("multi producer: flags tell one lap from the next",
          "[multi_producer_sequencer][deterministic]") {
  rondo::wait_strategy w;
  rondo::multi_producer_sequencer s(2, w);
  rondo::sequence consumer;
  s.add_gating_sequence(consumer);
  for (std::int64_t lap = 0; lap < 5; ++lap) {
    const auto hi = s.reserve(2);
    CHECK(s.highest_published(2 * lap, hi) == 2 * lap - 1);  // last lap's flags do not count
    s.publish(2 * lap, hi);
    CHECK(s.highest_published(2 * lap, hi) == hi);
    CHECK_FALSE(s.try_reserve(1));
    consumer.set(hi);
  }
}

TEST_CASE("multi producer: abandoned claims become tombstones",
          "[multi_producer_sequencer][deterministic]") {
  rondo::wait_strategy w;
  rondo::multi_producer_sequencer s(8, w);
  CHECK(s.tombstone_count() == 0);
  (void)s.reserve(2);
  s.abandon(0, 1);
  CHECK(s.tombstone_count() == 2);
  CHECK(s.highest_published(0, 1) == 1);
  CHECK(s.is_tombstone(0));
  CHECK(s.is_tombstone(1));
  s.publish(2, s.reserve(1));
  CHECK_FALSE(s.is_tombstone(2));
}

TEST_CASE("multi producer: bad n, close, try_reserve when full",
          "[multi_producer_sequencer][deterministic]") {
  rondo::wait_strategy w;
  rondo::multi_producer_sequencer s(4, w);
  rondo::sequence consumer;
  s.add_gating_sequence(consumer);
  CHECK_THROWS_WITH(s.reserve(5), "reserve(5): n must be in [1, 4] (the ring capacity)");
  CHECK_THROWS_AS(s.try_reserve(0), std::invalid_argument);
  s.publish(0, s.reserve(4));
  CHECK_FALSE(s.try_reserve(1));
  CHECK(s.remaining_capacity() == 0);
  s.close();
  CHECK_THROWS_AS(s.reserve(1), rondo::closed);
  CHECK(s.settle() == 3);
}

// Litmus: a reader that sees a slot published must see its contents. Two producers publish one
// slot each per round; the reader scans with highest_published and checks every visible slot.
// Forbidden outcome: a visible slot whose payload is stale. Required count: zero.
TEST_CASE("litmus: a published flag carries the slot's contents", "[multi_producer_sequencer][litmus]") {
  constexpr int rounds = 10000;
  rondo::wait_strategy w;
  rondo::multi_producer_sequencer s(4, w);
  rondo::sequence consumer;
  s.add_gating_sequence(consumer);
  std::array<std::int64_t, 4> slots{};
  std::atomic<int> go{0};
  std::atomic<int> done{0};
  long forbidden = 0;
  auto producer = [&](std::int64_t tag) {
    for (int r = 0; r < rounds; ++r) {
      // Pairs with the release store of the reader starting round r.
      while (go.load(std::memory_order_acquire) <= r) std::this_thread::yield();
      const auto hi = s.reserve(1);
      slots[static_cast<std::size_t>(hi & 3)] = hi * 10 + tag;
      s.publish(hi, hi);
      // Pairs with the acquire load of the reader waiting for the round to end.
      done.fetch_add(1, std::memory_order_release);
    }
  };
  std::thread p1(producer, 1), p2(producer, 2);
  std::int64_t next = 0;
  for (int r = 0; r < rounds; ++r) {
    // Pairs with the producers' acquire load.
    go.store(r + 1, std::memory_order_release);
    const std::int64_t end = next + 2;
    while (next < end) {
      std::this_thread::yield();
      const auto hi = s.highest_published(next, s.cursor().get());
      for (std::int64_t q = next; q <= hi; ++q) {
        const auto v = slots[static_cast<std::size_t>(q & 3)];
        if (v / 10 != q) ++forbidden;
      }
      next = hi + 1;
    }
    consumer.set(next - 1);
    // Pairs with the producers' release increments: both finished the round.
    while (done.load(std::memory_order_acquire) < 2 * (r + 1)) std::this_thread::yield();
  }
  p1.join();
  p2.join();
  CHECK(forbidden == 0);
}
