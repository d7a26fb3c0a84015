#include <rondo/core/event_poller.hpp>
#include <rondo/core/multi_producer_sequencer.hpp>
#include <rondo/core/single_producer_sequencer.hpp>

#include <catch2/catch.hpp>

#include <vector>

TEST_CASE("poller reports idle, gating, processing and stopped", "[event_poller][deterministic]") {
  rondo::wait_strategy w;
  rondo::ring_buffer<int> ring(8);
  rondo::single_producer_sequencer s(8, w);
  rondo::sequence upstream;
  rondo::event_poller<int> p(ring, s, {&upstream});
  auto all = [](int&, std::int64_t, bool) { return true; };
  CHECK(p.poll(all) == rondo::poll_state::idle);
  const auto hi = s.reserve(3);
  for (std::int64_t q = 0; q <= hi; ++q) ring[q] = int(q) + 100;
  s.publish(0, hi);
  CHECK(p.poll(all) == rondo::poll_state::gating);  // the upstream stage has not passed them
  upstream.set(2);
  std::vector<int> got;
  CHECK(p.poll([&](int& v, std::int64_t, bool) {
    got.push_back(v);
    return true;
  }) == rondo::poll_state::processing);
  CHECK(got == std::vector<int>{100, 101, 102});
  CHECK(p.position().get() == 2);
  p.barrier().set_limit(2);
  CHECK(p.poll(all) == rondo::poll_state::stopped);
}

TEST_CASE("poller stops early when the handler says so and retries a failed event",
          "[event_poller][deterministic]") {
  rondo::wait_strategy w;
  rondo::ring_buffer<int> ring(8);
  rondo::multi_producer_sequencer s(8, w);
  rondo::event_poller<int> p(ring, s);
  s.publish(0, s.reserve(4));
  std::vector<std::int64_t> seen;
  CHECK(p.poll([&](int&, std::int64_t seq, bool) {
    seen.push_back(seq);
    return seq < 1;
  }) == rondo::poll_state::processing);
  CHECK(seen == std::vector<std::int64_t>{0, 1});
  CHECK(p.position().get() == 1);
  CHECK_THROWS_AS(p.poll([&](int&, std::int64_t seq, bool) -> bool {
                    if (seq == 3) throw std::runtime_error("x");
                    seen.push_back(seq);
                    return true;
                  }),
                  std::runtime_error);
  CHECK(p.position().get() == 2);
  (void)p.poll([&](int&, std::int64_t seq, bool) {
    seen.push_back(seq);
    return true;
  });
  CHECK(seen == std::vector<std::int64_t>{0, 1, 2, 3});
}

TEST_CASE("poller skips tombstones", "[event_poller][deterministic]") {
  rondo::wait_strategy w;
  rondo::ring_buffer<int> ring(8);
  rondo::multi_producer_sequencer s(8, w);
  rondo::event_poller<int> p(ring, s);
  s.abandon(0, s.reserve(2));
  s.publish(2, s.reserve(1));
  s.abandon(3, s.reserve(1));
  std::vector<std::int64_t> seen, ends;
  (void)p.poll([&](int&, std::int64_t seq, bool eob) {
    seen.push_back(seq);
    if (eob) ends.push_back(seq);
    return true;
  });
  CHECK(seen == std::vector<std::int64_t>{2});
  CHECK(ends == std::vector<std::int64_t>{2});  // the last real event ends the batch
  CHECK(p.position().get() == 3);
  CHECK(p.tombstones_passed() == 3);
  p.barrier().alert();
  CHECK(p.poll([](int&, std::int64_t, bool) { return true; }) == rondo::poll_state::stopped);
}
