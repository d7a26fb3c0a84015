#include <rondo/core/multi_producer_sequencer.hpp>
#include <rondo/core/sequence_barrier.hpp>
#include <rondo/core/single_producer_sequencer.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

using namespace std::chrono_literals;

TEST_CASE("barrier without dependencies follows the cursor", "[sequence_barrier][deterministic]") {
  rondo::wait_strategy w;
  rondo::single_producer_sequencer s(8, w);
  rondo::sequence_barrier b(s);
  CHECK(b.available(0) == -1);
  s.publish(0, s.reserve(3));
  CHECK(b.available(0) == 2);
  const auto r = b.wait_blocking(1);
  CHECK(r.status == rondo::wait_status::ready);
  CHECK(r.available == 2);  // may exceed the requested sequence
}

TEST_CASE("barrier with dependencies follows the slowest", "[sequence_barrier][deterministic]") {
  rondo::wait_strategy w;
  rondo::multi_producer_sequencer s(8, w);
  rondo::sequence a{5}, b{3};
  rondo::sequence_barrier bar(s, {&a, &b});
  CHECK(bar.available(0) == 3);
  b.set(7);
  CHECK(bar.available(0) == 5);
}

TEST_CASE("multi-producer barrier stops at the first unpublished slot",
          "[sequence_barrier][deterministic]") {
  rondo::wait_strategy w;
  rondo::multi_producer_sequencer s(8, w);
  rondo::sequence_barrier b(s);
  (void)s.reserve(2);
  s.publish(2, s.reserve(2));
  CHECK(b.available(0) == -1);
  s.publish(0, 1);
  CHECK(b.available(0) == 3);
}

TEST_CASE("alert and limit stop a waiter", "[sequence_barrier][deterministic]") {
  for (rondo::wait_config cfg : {rondo::wait_config{rondo::busy_spin{}},
                                 rondo::wait_config{rondo::blocking{.spins = 0}}}) {
    rondo::wait_strategy w{cfg};
    rondo::single_producer_sequencer s(8, w);
    rondo::sequence_barrier b(s);
    std::thread waiter([&] {
      const auto r = b.wait_blocking(0);
      CHECK(r.status == rondo::wait_status::stopped);
    });
    b.alert();
    waiter.join();
    CHECK(b.alerted());
    b.clear_alert();

    s.publish(0, s.reserve(2));
    b.set_limit(1);
    CHECK(b.wait_blocking(1).status == rondo::wait_status::ready);
    CHECK(b.wait_blocking(2).status == rondo::wait_status::stopped);
  }
}

TEST_CASE("barrier wait honours the strategy's timeout", "[sequence_barrier][deterministic]") {
  rondo::wait_strategy w{rondo::blocking{.spins = 0, .timeout = 1ms}};
  rondo::single_producer_sequencer s(8, w);
  rondo::sequence_barrier b(s);
  CHECK(b.wait_blocking(0).status == rondo::wait_status::timed_out);
  CHECK(b.wait_blocking_until(0, rondo::wait_strategy::clock::now() + 1ms).status ==
        rondo::wait_status::timed_out);
}
