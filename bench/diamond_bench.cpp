// diamond: one producer, two stages in parallel on the same events, a third after both.
//
//                         ┌──▶ A: a = value + 1 ──┐
//   producer ──▶ [ ring ] ┤                       ├──▶ C: check a + b == 2 seq + 3, sum
//                         └──▶ B: b = value + 2 ──┘    (C: rondo::after("A", "B"))
//
//   queue equivalent:   producer ──qA──▶ A ──qAC──┐
//                               └──qB──▶ B ──qBC──┴──▶ C (takes k from qAC, then k from qBC)
//
// Competitors, all in this binary:
//   rondo/<wait>  rondo::disruptor<event> with stages A, B, C (C after A and B), 16,384 slots,
//                 busy_spin or yielding; the producer reserves `batch` slots at a time. A and B
//                 read the same slot in place: nothing is copied.
//   boost_spsc    four boost::lockfree::spsc_queue links (16,384 slots each); the producer pushes
//                 every value twice (to A's and B's queue); C pairs A's and B's results by
//                 position. Stages pop up to 256 at a time and yield at once when idle.
//
// Four threads on two cores: nothing is pinned (see pipeline_bench.cpp). Timing: manual, from
// the first reserve/push to C's acceptance of the final event. Verification: C checks
// a + b == 2 seq + 3 for every event (queues: against its own counter) and sums the values
// against n(n-1)/2. "mean_batch_C" is C's mean batch.

#include "bench_support.hpp"

#include <rondo/core/wait_strategy.hpp>
#include <rondo/disruptor.hpp>

#include <benchmark/benchmark.h>
#include <boost/lockfree/spsc_queue.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <thread>

namespace {

using rondo_bench::flag;

constexpr std::int64_t capacity = 1 << 14;
constexpr std::size_t take_max = 256;

struct event {
  std::int64_t value = 0;  // written by the producer: the sequence
  std::int64_t a = 0;      // written by A
  std::int64_t b = 0;      // written by B
};

// ---------------------------------------------------------------------------------------------
// rondo

struct sink_output {
  rondo_bench::countdown started;
  flag done;
  rondo_bench::sequence_check check;  // written by C before done.raise()
  std::uint64_t ab_mismatch = 0;
};

struct stage_a {
  sink_output* out;
  void on_start() { out->started.arrive(); }
  void operator()(event& e, std::int64_t, bool) { e.a = e.value + 1; }
};

struct stage_b {
  sink_output* out;
  void on_start() { out->started.arrive(); }
  void operator()(event& e, std::int64_t, bool) { e.b = e.value + 2; }
};

struct stage_c {
  sink_output* out;
  std::int64_t last;
  rondo_bench::sequence_check check{};
  std::uint64_t mismatch = 0;

  void on_start() { out->started.arrive(); }
  void operator()(event& e, std::int64_t seq, bool) {
    check.add(e.value, seq);
    mismatch |= static_cast<std::uint64_t>((e.a + e.b) ^ (2 * seq + 3));
    if (seq == last) {
      out->check = check;
      out->ab_mismatch = mismatch;
      out->done.raise();
    }
  }
};

void diamond_rondo(benchmark::State& state, rondo::wait_config wait) {
  const std::int64_t batch = state.range(0);
  const std::int64_t n = state.range(1);
  bool ok = true;
  std::int64_t allocs = 0;
  rondo::stage_metrics_snapshot c_metrics;
  for (auto _ : state) {
    sink_output out;
    auto d = rondo::disruptor<event>::builder()
                 .capacity(capacity)
                 .wait(wait)
                 .metrics()
                 .stage("A", stage_a{&out})
                 .stage("B", stage_b{&out})
                 .stage("C", stage_c{&out, n - 1}, rondo::after("A", "B"))
                 .build();
    d.start();
    out.started.await(3);
    const std::int64_t a0 = rondo_bench::allocations();
    const auto t0 = rondo_bench::clock::now();
    auto& pub = d.publisher();
    for (std::int64_t s = 0; s < n; s += batch) {
      auto c = pub.reserve(batch);
      for (auto [seq, ev] : c) ev.value = seq;
      c.publish();
    }
    out.done.await();
    const auto t1 = rondo_bench::clock::now();
    allocs += rondo_bench::allocations() - a0;
    state.SetIterationTime(rondo_bench::seconds_between(t0, t1));
    d.drain();
    rondo::stage_metrics_snapshot m{};
    for (const auto& r : d.metrics()) {
      if (r.name == "C") m = r.metrics;
    }
    c_metrics.events += m.events;
    c_metrics.batches += m.batches;
    ok = ok && out.check.ok(n) && out.ab_mismatch == 0 && m.events == n;
  }
  if (!rondo_bench::verify(state, ok, "C saw wrong, missing or reordered events")) return;
  rondo_bench::report_events(state, n, allocs);
  state.counters["mean_batch_C"] = benchmark::Counter(c_metrics.mean_batch());
}

// ---------------------------------------------------------------------------------------------
// The queue equivalent.

using boost_queue = boost::lockfree::spsc_queue<std::int64_t, boost::lockfree::capacity<capacity>>;

struct link {
  std::unique_ptr<boost_queue> q = std::make_unique<boost_queue>();

  // Pops up to max; yields at once when empty.
  std::size_t take(std::int64_t* out, std::size_t max) {
    const std::size_t k = q->pop(out, max);
    if (k == 0) std::this_thread::yield();
    return k;
  }
  // Pops exactly n (n <= capacity), yielding while fewer are there.
  void take_exactly(std::int64_t* out, std::size_t n) {
    while (n > 0) {
      const std::size_t k = take(out, n);
      out += k;
      n -= k;
    }
  }
  void give(const std::int64_t* in, std::size_t n) {
    while (n > 0) {
      const std::size_t k = q->push(in, n);
      in += k;
      n -= k;
      if (n > 0) std::this_thread::yield();
    }
  }
};

template <std::int64_t Add>
void transform(link& in, link& out, std::int64_t n) {
  std::array<std::int64_t, take_max> buf{};
  std::int64_t seen = 0;
  while (seen < n) {
    const std::size_t k = in.take(buf.data(), buf.size());
    for (std::size_t i = 0; i < k; ++i) buf[i] += Add;
    out.give(buf.data(), k);
    seen += static_cast<std::int64_t>(k);
  }
}

void diamond_boost_spsc(benchmark::State& state) {
  const std::int64_t batch = state.range(0);
  const std::int64_t n = state.range(1);
  bool ok = true;
  std::int64_t allocs = 0;
  std::int64_t takes = 0;
  for (auto _ : state) {
    link to_a, to_b, a_to_c, b_to_c;
    rondo_bench::countdown started;
    flag done;
    rondo_bench::in_order_check result;  // C's own check, copied out when it is done
    std::int64_t c_takes = 0;
    std::thread ta = rondo_bench::start_thread(-1, [&] {
      started.arrive();
      transform<1>(to_a, a_to_c, n);
    });
    std::thread tb = rondo_bench::start_thread(-1, [&] {
      started.arrive();
      transform<2>(to_b, b_to_c, n);
    });
    std::thread tc = rondo_bench::start_thread(-1, [&] {
      started.arrive();
      std::array<std::int64_t, take_max> from_a{};
      std::array<std::int64_t, take_max> from_b{};
      rondo_bench::in_order_check check;  // on C's stack: no line shared with other threads
      std::int64_t takes_here = 0;
      while (check.next < n) {
        const std::size_t k = a_to_c.take(from_a.data(), from_a.size());
        if (k == 0) continue;
        ++takes_here;
        b_to_c.take_exactly(from_b.data(), k);
        // a + b = 2 v + 3: recover v and check it against the expected order.
        for (std::size_t i = 0; i < k; ++i) check.add((from_a[i] + from_b[i] - 3) / 2);
      }
      result = check;
      c_takes = takes_here;
      done.raise();
    });
    started.await(3);
    const std::int64_t a0 = rondo_bench::allocations();
    const auto t0 = rondo_bench::clock::now();
    std::array<std::int64_t, take_max> buf{};
    for (std::int64_t s = 0; s < n; s += batch) {
      for (std::int64_t i = 0; i < batch; ++i) buf[static_cast<std::size_t>(i)] = s + i;
      to_a.give(buf.data(), static_cast<std::size_t>(batch));
      to_b.give(buf.data(), static_cast<std::size_t>(batch));
    }
    done.await();
    const auto t1 = rondo_bench::clock::now();
    allocs += rondo_bench::allocations() - a0;
    state.SetIterationTime(rondo_bench::seconds_between(t0, t1));
    ta.join();
    tb.join();
    tc.join();
    takes += c_takes;
    ok = ok && result.ok(n);
  }
  if (!rondo_bench::verify(state, ok, "C saw wrong, missing or reordered values")) return;
  rondo_bench::report_events(state, n, allocs);
  state.counters["mean_batch_C"] = benchmark::Counter(static_cast<double>(state.iterations() * n) /
                                                      static_cast<double>(takes > 0 ? takes : 1));
}

constexpr std::int64_t n_events = std::int64_t{1} << 22;
constexpr std::int64_t n_slow = std::int64_t{1} << 20;

void diamond_args(benchmark::internal::Benchmark* b, std::int64_t n, int iterations) {
  b->ArgNames({"batch", "events"})
      ->Args({1, n})
      ->Args({32, n})
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond)
      ->Iterations(iterations);
}
void fast_args(benchmark::internal::Benchmark* b) {
  diamond_args(b, n_events, 3);
}
void slow_args(benchmark::internal::Benchmark* b) {
  diamond_args(b, n_slow, 2);
}

}  // namespace

BENCHMARK_CAPTURE(diamond_rondo, busy_spin, rondo::wait_config{rondo::busy_spin{}})
    ->Apply(slow_args);
BENCHMARK_CAPTURE(diamond_rondo, yielding, rondo::wait_config{rondo::yielding{}})->Apply(fast_args);
BENCHMARK(diamond_boost_spsc)->Apply(fast_args);
