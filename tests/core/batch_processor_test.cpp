#include <rondo/core/batch_processor.hpp>
#include <rondo/core/multi_producer_sequencer.hpp>
#include <rondo/core/single_producer_sequencer.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>

namespace {
struct recording_handler {
  std::vector<std::int64_t>* seen;
  std::vector<std::int64_t>* batch_sizes;
  std::vector<std::int64_t>* ends;
  int* starts;
  int* shutdowns;
  void operator()(std::int64_t& v, std::int64_t seq, bool end_of_batch) {
    CHECK(v == seq * 3);
    seen->push_back(seq);
    if (end_of_batch) ends->push_back(seq);
  }
  void on_start() { ++*starts; }
  void on_shutdown() { ++*shutdowns; }
  void on_batch_start(std::int64_t n) { batch_sizes->push_back(n); }
};
}  // namespace

TEST_CASE("processor hands every event once, in order, in bounded batches, with hooks",
          "[batch_processor][deterministic]") {
  rondo::wait_strategy w{rondo::yielding{}};
  rondo::ring_buffer<std::int64_t> ring(16);
  rondo::single_producer_sequencer s(16, w);
  rondo::sequence_barrier b(s);
  std::vector<std::int64_t> seen, sizes, ends;
  int starts = 0, shutdowns = 0;
  rondo::batch_processor proc(ring, b, recording_handler{&seen, &sizes, &ends, &starts, &shutdowns},
                              rondo::stage_options{.max_batch = 4}, "rec", true);
  s.add_gating_sequence(proc.position());
  // Publish 10 before the processor runs: it must cut them into batches of <= 4.
  const auto hi = s.reserve(10);
  for (std::int64_t q = 0; q <= hi; ++q) ring[q] = q * 3;
  s.publish(0, hi);
  b.set_limit(9);
  proc.run();
  CHECK(seen == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(sizes == std::vector<std::int64_t>{4, 4, 2});
  CHECK(ends == std::vector<std::int64_t>{3, 7, 9});
  CHECK(starts == 1);
  CHECK(shutdowns == 1);
  CHECK(proc.position().get() == 9);
  const auto m = proc.metrics();
  CHECK(m.events == 10);
  CHECK(m.batches == 3);
  CHECK(m.mean_batch() == Approx(10.0 / 3));
}

TEST_CASE("processor halts on a throwing handler and names stage and sequence",
          "[batch_processor][deterministic]") {
  rondo::wait_strategy w;
  rondo::ring_buffer<int> ring(8);
  rondo::single_producer_sequencer s(8, w);
  rondo::sequence_barrier b(s);
  rondo::batch_processor proc(ring, b, [](int&, std::int64_t seq, bool) {
    if (seq == 3) throw std::runtime_error("bad order");
  }, {}, "decode");
  s.publish(0, s.reserve(6));
  try {
    proc.run();
    FAIL("run() returned normally");
  } catch (const rondo::stage_error& e) {
    CHECK(e.stage() == "decode");
    CHECK(e.sequence() == 3);
    CHECK(std::string(e.what()) == "stage 'decode' failed at sequence 3: bad order");
  }
  CHECK(proc.position().get() == 2);  // everything before the failure is handled
  CHECK(b.alerted());
}

TEST_CASE("skip and callback policies go on", "[batch_processor][deterministic]") {
  rondo::wait_strategy w;
  rondo::ring_buffer<int> ring(8);
  rondo::single_producer_sequencer s(8, w);
  std::vector<std::int64_t> failed;
  for (auto policy : {rondo::error_policy::skip(),
                      rondo::error_policy::call([&](const rondo::stage_failure& f) {
                        CHECK(f.stage == "p");
                        failed.push_back(f.sequence);
                      })}) {
    rondo::sequence_barrier b(s);
    int handled = 0;
    rondo::batch_processor proc(ring, b, [&](int&, std::int64_t seq, bool) {
      if (seq % 2 == 1) throw std::runtime_error("odd");
      ++handled;
    }, rondo::stage_options{.errors = policy}, "p", true);
    if (s.cursor().get() < 0) s.publish(0, s.reserve(6));
    b.set_limit(5);
    proc.run();
    CHECK(handled == 3);
    CHECK(proc.position().get() == 5);
    CHECK(proc.metrics().errors_skipped == 3);
  }
  CHECK(failed == std::vector<std::int64_t>{1, 3, 5});
}

TEST_CASE("a throwing error callback halts", "[batch_processor][deterministic]") {
  rondo::wait_strategy w;
  rondo::ring_buffer<int> ring(8);
  rondo::single_producer_sequencer s(8, w);
  rondo::sequence_barrier b(s);
  rondo::batch_processor proc(
      ring, b, [](int&, std::int64_t, bool) { throw std::runtime_error("first"); },
      rondo::stage_options{.errors = rondo::error_policy::call(
                               [](const rondo::stage_failure&) { throw std::logic_error("second"); })},
      "q");
  s.publish(0, s.reserve(1));
  CHECK_THROWS_WITH(proc.run(), "stage 'q' failed at sequence 0: second");
}

TEST_CASE("processor skips tombstones and reports end_of_batch on the last real event",
          "[batch_processor][deterministic]") {
  rondo::wait_strategy w;
  rondo::ring_buffer<int> ring(8);
  rondo::multi_producer_sequencer s(8, w);
  rondo::sequence_barrier b(s);
  std::vector<std::int64_t> seen, ends;
  rondo::batch_processor proc(ring, b, [&](int&, std::int64_t seq, bool eob) {
    seen.push_back(seq);
    if (eob) ends.push_back(seq);
  }, {}, "t", true);
  const auto a = s.reserve(2);  // [0, 1]
  const auto c = s.reserve(2);  // [2, 3]
  const auto d = s.reserve(1);  // [4]
  s.publish(0, a);
  s.abandon(2, c);
  s.abandon(4, d);
  b.set_limit(4);
  proc.run();
  CHECK(seen == std::vector<std::int64_t>{0, 1});
  CHECK(ends == std::vector<std::int64_t>{1});
  CHECK(proc.position().get() == 4);
  CHECK(proc.metrics().tombstones == 3);
}

TEST_CASE("negative max_batch is rejected", "[batch_processor][deterministic]") {
  rondo::wait_strategy w;
  rondo::ring_buffer<int> ring(8);
  rondo::single_producer_sequencer s(8, w);
  rondo::sequence_barrier b(s);
  auto h = [](int&, std::int64_t, bool) {};
  using proc_t = rondo::batch_processor<int, decltype(h)>;
  CHECK_THROWS_WITH(proc_t(ring, b, h, rondo::stage_options{.max_batch = -3}, "m"),
                    "stage 'm': max_batch -3 is negative");
  CHECK_THROWS_WITH(proc_t(ring, b, h, rondo::stage_options{.linger_below = -1}, "m"),
                    "stage 'm': linger_below -1 is negative");
}

// Regression (found in review): at a drain, a producer whose claim landed after the close
// settled publishes tombstones beyond the drain limit. Those count as available, so a stage at
// limit + 1 used to loop on empty batches for ever instead of stopping.
TEST_CASE("processor stops at the drain limit even when tombstones lie beyond it",
          "[batch_processor][deterministic]") {
  rondo::wait_strategy w{rondo::yielding{}};
  rondo::ring_buffer<std::int64_t> ring(8);
  rondo::multi_producer_sequencer mp(8, w);
  rondo::sequence_barrier barrier(mp);
  std::int64_t handled = 0;
  rondo::batch_processor<std::int64_t, std::function<void(std::int64_t&, std::int64_t, bool)>>
      proc(ring, barrier, [&](std::int64_t&, std::int64_t, bool) { ++handled; });
  mp.add_gating_sequence(proc.position());
  const std::int64_t hi = mp.reserve(5);
  mp.publish(hi - 4, hi);                     // 0..4 published
  barrier.set_limit(4);                       // the drain's final sequence
  const std::int64_t late = mp.reserve(2);    // a claim that landed after the close settled
  mp.abandon(late - 1, late);                 // tombstones 5, 6: beyond the limit
  std::atomic<bool> returned{false};
  std::thread t([&] {
    proc.run();
    // Release: pairs with the acquire load below.
    returned.store(true, std::memory_order_release);
  });
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  // Acquire: pairs with the release store above.
  while (!returned.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::yield();
  }
  const bool stopped_by_itself = returned.load(std::memory_order_acquire);
  barrier.alert();  // frees a stuck stage so the test ends either way
  t.join();
  CHECK(stopped_by_itself);
  CHECK(handled == 5);
  CHECK(proc.position().get() == 4);
}
