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
#include <thread>

namespace {

using rondo_bench::flag;

constexpr std::int64_t capacity = 1 << 14;
constexpr std::size_t take_max = rondo_bench::chain_take_max;

struct event {
  std::int64_t value = 0;  // written by the producer: the sequence
  std::int64_t a = 0;      // written by A
  std::int64_t b = 0;      // written by B
};

// ---------------------------------------------------------------------------------------------
// rondo

struct stage_a : rondo_bench::counted_stage {
  void operator()(event& e, std::int64_t, bool) { e.a = e.value + 1; }
};

struct stage_b : rondo_bench::counted_stage {
  void operator()(event& e, std::int64_t, bool) { e.b = e.value + 2; }
};

// C's invariant: a + b == 2 seq + 3.
struct ab_invariant {
  std::uint64_t operator()(const event& e, std::int64_t seq) const noexcept {
    return static_cast<std::uint64_t>((e.a + e.b) ^ (2 * seq + 3));
  }
};

using stage_c = rondo_bench::checking_sink<event, ab_invariant>;

void diamond_rondo(benchmark::State& state, rondo::wait_config wait) {
  const std::int64_t batch = state.range(0);
  const std::int64_t n = state.range(1);
  bool ok = true;
  std::int64_t allocs = 0;
  rondo::stage_metrics_snapshot c_metrics;
  for (auto _ : state) {
    rondo_bench::sink_output out;
    auto d = rondo::disruptor<event>::builder()
                 .capacity(capacity)
                 .wait(wait)
                 .metrics()
                 .stage("A", stage_a{{&out}})
                 .stage("B", stage_b{{&out}})
                 .stage("C", stage_c{&out, n - 1}, rondo::after("A", "B"))
                 .build();
    d.start();
    out.started.await(3);
    const rondo_bench::timed_run r = rondo_bench::time_region([&] {
      rondo_bench::publish_sequences(d.publisher(), n, batch);
      out.done.await();
    });
    allocs += r.allocs;
    state.SetIterationTime(r.seconds);
    d.drain();
    rondo::stage_metrics_snapshot m{};
    for (const auto& rep : d.metrics()) {
      if (rep.name == "C") m = rep.metrics;
    }
    c_metrics.events += m.events;
    c_metrics.batches += m.batches;
    ok = ok && out.check.ok(n) && out.mismatch == 0 && m.events == n;
  }
  if (!rondo_bench::verify(state, ok, "C saw wrong, missing or reordered events")) return;
  rondo_bench::report_events(state, n, allocs);
  state.counters["mean_batch_C"] = benchmark::Counter(c_metrics.mean_batch());
}

// ---------------------------------------------------------------------------------------------
// The queue equivalent.

using boost_queue = boost::lockfree::spsc_queue<std::int64_t, boost::lockfree::capacity<capacity>>;
using link = rondo_bench::yielding_link<boost_queue>;

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
      rondo_bench::relay<1>(to_a, a_to_c, n);
    });
    std::thread tb = rondo_bench::start_thread(-1, [&] {
      started.arrive();
      rondo_bench::relay<2>(to_b, b_to_c, n);
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
    const rondo_bench::timed_run r = rondo_bench::time_region([&] {
      rondo_bench::produce_batches<take_max>(n, batch, [&](const std::int64_t* p, std::size_t k) {
        to_a.give(p, k);
        to_b.give(p, k);
      });
      done.await();
    });
    allocs += r.allocs;
    state.SetIterationTime(r.seconds);
    ta.join();
    tb.join();
    tc.join();
    takes += c_takes;
    ok = ok && result.ok(n);
  }
  if (!rondo_bench::verify(state, ok, "C saw wrong, missing or reordered values")) return;
  rondo_bench::report_events(state, n, allocs);
  rondo_bench::report_mean_batch(state, "mean_batch_C", state.iterations() * n, takes);
}

using rondo_bench::fast_args;
using rondo_bench::slow_args;

}  // namespace

BENCHMARK_CAPTURE(diamond_rondo, busy_spin, rondo::wait_config{rondo::busy_spin{}})
    ->Apply(slow_args);
BENCHMARK_CAPTURE(diamond_rondo, yielding, rondo::wait_config{rondo::yielding{}})->Apply(fast_args);
BENCHMARK(diamond_boost_spsc)->Apply(fast_args);
