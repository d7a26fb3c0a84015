#include <rondo/disruptor.hpp>
#include <rondo/dsl/publisher.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("a claim is indexed, iterated and published", "[publisher][deterministic]") {
  rondo::wait_strategy w;
  rondo::ring_buffer<std::int64_t> ring(8);
  rondo::single_producer_sequencer s(8, w);
  rondo::publisher<std::int64_t> pub(ring, s);
  auto c = pub.reserve(3);
  CHECK(c.first() == 0);
  CHECK(c.last() == 2);
  CHECK(c.size() == 3);
  for (auto [seq, ev] : c) ev = seq * 7;
  c[1] += 1;
  CHECK(c.at_sequence(2) == 14);
  CHECK_THROWS_AS(c.at_sequence(3), std::out_of_range);
  CHECK(s.cursor().get() == -1);
  c.publish();
  CHECK(s.cursor().get() == 2);
  CHECK(ring[1] == 8);
  CHECK_THROWS_WITH(c.publish(), Catch::Contains("not open"));
}

TEST_CASE("dropping a claim gives it back (single producer)", "[publisher][deterministic]") {
  rondo::wait_strategy w;
  rondo::ring_buffer<int> ring(4);
  rondo::single_producer_sequencer s(4, w);
  rondo::sequence consumer;
  s.add_gating_sequence(consumer);
  rondo::publisher<int> pub(ring, s);
  CHECK_THROWS_AS(pub.publish_event([](int&, std::int64_t) { throw std::runtime_error("fill"); }),
                  std::runtime_error);
  CHECK(s.cursor().get() == -1);
  pub.publish_event([](int& v, std::int64_t seq) { v = int(seq) + 1; });
  CHECK(s.cursor().get() == 0);  // sequence 0 was reused
  CHECK(ring[0] == 1);
  {
    auto moved_from = pub.reserve(1);
    auto c = std::move(moved_from);
    CHECK_FALSE(moved_from.is_open());
    CHECK(c.is_open());
  }  // dropped
  CHECK_FALSE(pub.try_reserve(4));  // 1 slot used, capacity 4, consumer at -1
  CHECK(pub.try_reserve(3));
}

TEST_CASE("dropping a claim publishes tombstones (multi producer)", "[publisher][deterministic]") {
  rondo::wait_strategy w;
  rondo::ring_buffer<int> ring(4);
  rondo::multi_producer_sequencer s(4, w);
  rondo::publisher<int> pub(ring, s);
  { auto c = pub.reserve(2); }
  CHECK(s.highest_published(0, s.cursor().get()) == 1);
  CHECK(s.is_tombstone(0));
  CHECK(s.tombstone_count() == 2);
}

TEST_CASE("try_reserve and reserve_for respect capacity", "[publisher][deterministic]") {
  rondo::wait_strategy w{rondo::blocking{}};
  rondo::ring_buffer<int> ring(2);
  rondo::single_producer_sequencer s(2, w);
  rondo::sequence consumer;
  s.add_gating_sequence(consumer);
  rondo::publisher<int> pub(ring, s);
  CHECK(pub.capacity() == 2);
  auto c = pub.try_reserve(2);
  REQUIRE(c);
  c->publish();
  CHECK(pub.remaining_capacity() == 0);
  CHECK_FALSE(pub.try_reserve(1));
  CHECK_FALSE(pub.reserve_for(1, 1ms));
  CHECK_THROWS_AS(pub.reserve(3), std::invalid_argument);
  CHECK_THROWS_AS(pub.try_reserve(0), std::invalid_argument);
}

TEST_CASE("claim spans cover the claim, wrapping included", "[publisher][deterministic]") {
  rondo::wait_strategy w;
  rondo::ring_buffer<std::int64_t> ring(4);
  rondo::single_producer_sequencer s(4, w);
  rondo::sequence consumer;
  s.add_gating_sequence(consumer);
  rondo::publisher<std::int64_t> pub(ring, s);
  pub.reserve(3).publish();
  consumer.set(2);
  auto c = pub.reserve(3);  // sequences 3, 4, 5: slots 3 | 0, 1
  auto sp = c.spans();
  CHECK(sp.first.size() == 1);
  CHECK(sp.second.size() == 2);
  std::int64_t v = 100;
  for (auto seg : {sp.first, sp.second}) {
    for (auto& ev : seg) ev = v++;
  }
  c.publish();
  CHECK(ring[3] == 100);
  CHECK(ring[4] == 101);
  CHECK(ring[5] == 102);
}
