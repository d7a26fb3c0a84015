// many_to_one: P producer threads (P = 2, 3, 4: the `producers` argument), one consumer stage.
//
//   producer 0 (benchmark thread) ──┐
//   producer 1 (spawned thread)   ──┼──▶ [ ring, multi_producer_sequencer ] ──▶ consumer: check
//   ...                             │                                           per-producer order
//   producer P-1 (spawned thread) ──┘
//
// Competitors, all in this binary:
//   rondo/<wait>   rondo::disruptor<int64_t>, producer_type::multi, one stage, 65,536 slots,
//                  busy_spin, yielding, spin_then_suspend{}, or `default` (the builder's default
//                  wait strategy: no .wait() call; spin_then_suspend{} since issue 12); each
//                  producer reserves `batch` slots at a time through the shared publisher
//   moodycamel_cq  moodycamel::ConcurrentQueue (65,536 slots pre-allocated), one producer token
//                  per producer, enqueue(_bulk); the consumer takes up to 64 with
//                  try_dequeue_bulk, spinning then yielding when empty. The queue is unbounded:
//                  enqueue allocates a block when a producer's own blocks are all in use (the
//                  allocation-free try_enqueue_bulk can fail for ever once a producer's block
//                  index is full, so it cannot be used here); allocs/event shows the cost.
//   mutex_cv       one mutex + condition_variable queue (65,536 slots) shared by the producers
//
// P + 1 threads on two cores: nothing is pinned, the producers share cores with each other and
// with the consumer. Each producer publishes m = n/P events (rounded down to a multiple of 32)
// whose payload is (producer << 40) | i, i = 0, 1, 2, ...; the consumer checks that each
// producer's values arrive in order (the FIFO guarantee both rondo and moodycamel give per
// producer) and sums i against P * m(m - 1)/2. Timing: manual, from the release of the producers
// to the consumer's acceptance of the last event. items_per_second counts P * m.

#include "bench_support.hpp"

#include <rondo/core/wait_strategy.hpp>
#include <rondo/disruptor.hpp>

#include <benchmark/benchmark.h>
#include <concurrentqueue/concurrentqueue.h>

#include <array>
#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

namespace {

using rondo_bench::flag;

constexpr std::int64_t capacity = 1 << 16;
constexpr std::size_t max_batch = 32;
constexpr int producer_shift = 40;
constexpr std::int64_t index_mask = (std::int64_t{1} << producer_shift) - 1;

[[nodiscard]] constexpr std::int64_t payload(std::int64_t producer, std::int64_t i) noexcept {
  return (producer << producer_shift) | i;
}

constexpr std::int64_t max_producers = 4;

// Events per producer: n / P, a multiple of max_batch so that every batch size divides it.
[[nodiscard]] constexpr std::int64_t per_producer(std::int64_t n, std::int64_t producers) noexcept {
  return n / producers / std::int64_t{max_batch} * std::int64_t{max_batch};
}

// Per-producer order check for up to max_producers producers.
struct producer_check {
  std::array<std::int64_t, max_producers> next{};
  std::int64_t sum = 0;
  std::uint64_t mismatch = 0;
  std::int64_t count = 0;

  void add(std::int64_t v) noexcept {
    const std::int64_t p = v >> producer_shift;
    const std::int64_t i = v & index_mask;
    mismatch |= static_cast<std::uint64_t>(p >> 2);  // only producers 0..3 exist
    auto& expected = next[static_cast<std::size_t>(p & 3)];
    mismatch |= static_cast<std::uint64_t>(i ^ expected);
    ++expected;
    sum += i;
    ++count;
  }
  // m events from each of `producers` producers.
  [[nodiscard]] bool ok(std::int64_t producers, std::int64_t m) const noexcept {
    bool good = mismatch == 0 && count == producers * m &&
                sum == producers * rondo_bench::triangle(m);
    for (std::int64_t p = 0; p < max_producers; ++p) {
      good = good && next[static_cast<std::size_t>(p)] == (p < producers ? m : 0);
    }
    return good;
  }
};

// Runs produce(0) here and produce(1..P-1) on new threads, all released together once the
// consumer is ready; times the release to `done`.
using rondo_bench::timed_run;

template <class Producer>
timed_run run_producers(std::int64_t producers, const rondo_bench::countdown& consumer_ready,
                        const flag& done, Producer&& produce) {
  rondo_bench::countdown armed;
  flag go;
  std::array<std::thread, max_producers> others;
  for (std::int64_t p = 1; p < producers; ++p) {
    others[static_cast<std::size_t>(p)] = rondo_bench::start_thread(-1, [&, p] {
      armed.arrive();
      go.await();
      produce(p);
    });
  }
  armed.await(static_cast<int>(producers - 1));
  consumer_ready.await(1);
  const timed_run r = rondo_bench::time_region([&] {
    go.raise();
    produce(0);
    done.await();
  });
  for (std::int64_t p = 1; p < producers; ++p) others[static_cast<std::size_t>(p)].join();
  return r;
}

// Sums the iterations of a queue competitor and writes the counters at the end.
struct queue_totals {
  std::int64_t allocs = 0;
  std::int64_t takes = 0;
  bool ok = true;

  // One iteration: its timed run, the consumer's takes and check.
  void add(benchmark::State& state, const timed_run& r, std::int64_t consumer_takes,
           const producer_check& result, std::int64_t producers, std::int64_t m) {
    allocs += r.allocs;
    state.SetIterationTime(r.seconds);
    takes += consumer_takes;
    ok = ok && result.ok(producers, m);
  }
  void report(benchmark::State& state, std::int64_t n) const {
    if (!rondo_bench::verify(state, ok, "consumer saw wrong, missing or reordered values")) return;
    rondo_bench::report_events(state, n, allocs);
    rondo_bench::report_mean_batch(state, "mean_batch", state.iterations() * n, takes);
  }
};

// A queue producer: publishes payload(p, 0..m-1), `batch` (<= max_batch) at a time, through
// give(data, count).
template <class Give>
void produce_payloads(std::int64_t p, std::int64_t m, std::int64_t batch, Give&& give) {
  std::array<std::int64_t, max_batch> buf{};
  for (std::int64_t i = 0; i < m; i += batch) {
    for (std::size_t k = 0; k < static_cast<std::size_t>(batch); ++k) {
      buf[k] = payload(p, i + static_cast<std::int64_t>(k));
    }
    give(buf.data(), static_cast<std::size_t>(batch));
  }
}

// ---------------------------------------------------------------------------------------------
// rondo

struct sink_output {
  rondo_bench::countdown started;
  flag done;
  producer_check check;  // written by the stage before done.raise()
};

struct checking_stage {
  sink_output* out;
  std::int64_t last;
  producer_check check{};

  void on_start() { out->started.arrive(); }
  void operator()(std::int64_t& ev, std::int64_t seq, bool) {
    check.add(ev);
    if (seq == last) {
      out->check = check;
      out->done.raise();
    }
  }
};

// wait: nullopt runs the builder's default wait strategy.
void many_to_one_rondo(benchmark::State& state, std::optional<rondo::wait_config> wait) {
  const std::int64_t producers = state.range(0);
  const std::int64_t batch = state.range(1);
  const std::int64_t m = per_producer(state.range(2), producers);
  const std::int64_t n = producers * m;
  bool ok = true;
  std::int64_t allocs = 0;
  rondo::stage_metrics_snapshot totals;
  for (auto _ : state) {
    sink_output out;
    auto b = rondo::disruptor<std::int64_t>::builder();
    b.capacity(capacity).producers(rondo::producer_type::multi).metrics();
    if (wait) b.wait(*wait);
    auto d = b.stage("sink", checking_stage{&out, n - 1}).build();
    d.start();
    auto& pub = d.publisher();
    const timed_run r = run_producers(producers, out.started, out.done, [&](std::int64_t p) {
      for (std::int64_t i = 0; i < m; i += batch) {
        auto c = pub.reserve(batch);
        for (std::size_t k = 0; k < static_cast<std::size_t>(batch); ++k) {
          c[k] = payload(p, i + static_cast<std::int64_t>(k));
        }
        c.publish();
      }
    });
    allocs += r.allocs;
    state.SetIterationTime(r.seconds);
    d.drain();
    const rondo::stage_metrics_snapshot metrics = d.metrics().at(0).metrics;
    totals.events += metrics.events;
    totals.batches += metrics.batches;
    ok = ok && out.check.ok(producers, m) && metrics.events == n;
  }
  if (!rondo_bench::verify(state, ok, "consumer saw wrong, missing or reordered events")) return;
  rondo_bench::report_events(state, n, allocs);
  state.counters["mean_batch"] = benchmark::Counter(totals.mean_batch());
}

// ---------------------------------------------------------------------------------------------
// Queues

// g++ 12 reports a false -Wstringop-overflow inside moodycamel's enqueue_bulk once it is inlined
// here (an atomic load through a block pointer it cannot prove non-null).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
void many_to_one_moodycamel_cq(benchmark::State& state) {
  const std::int64_t producers = state.range(0);
  const std::int64_t batch = state.range(1);
  const std::int64_t m = per_producer(state.range(2), producers);
  const std::int64_t n = producers * m;
  queue_totals sum;
  for (auto _ : state) {
    moodycamel::ConcurrentQueue<std::int64_t> q(static_cast<std::size_t>(capacity));
    std::vector<moodycamel::ProducerToken> tokens;
    tokens.reserve(static_cast<std::size_t>(producers));
    for (std::int64_t p = 0; p < producers; ++p) tokens.emplace_back(q);
    rondo_bench::countdown ready;
    flag done;
    producer_check result;  // the consumer's own check, copied out when it is done
    std::int64_t takes = 0;
    std::thread consumer = rondo_bench::start_thread(-1, [&] {
      moodycamel::ConsumerToken ctok(q);
      std::array<std::int64_t, 64> buf{};
      producer_check check;  // on the consumer's stack: no line shared with the producers
      std::int64_t takes_here = 0;
      ready.arrive();
      rondo_bench::backoff idle;
      while (check.count < n) {
        const std::size_t k = q.try_dequeue_bulk(ctok, buf.data(), buf.size());
        if (k == 0) {
          idle.pause();
          continue;
        }
        idle.reset();
        ++takes_here;
        for (std::size_t i = 0; i < k; ++i) check.add(buf[i]);
      }
      result = check;
      takes = takes_here;
      done.raise();
    });
    const timed_run r = run_producers(producers, ready, done, [&](std::int64_t p) {
      moodycamel::ProducerToken& tok = tokens[static_cast<std::size_t>(p)];
      if (batch == 1) {
        for (std::int64_t i = 0; i < m; ++i) q.enqueue(tok, payload(p, i));
        return;
      }
      produce_payloads(p, m, batch, [&](const std::int64_t* items, std::size_t k) {
        q.enqueue_bulk(tok, items, k);
      });
    });
    consumer.join();
    sum.add(state, r, takes, result, producers, m);
  }
  sum.report(state, n);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

void many_to_one_mutex_cv(benchmark::State& state) {
  const std::int64_t producers = state.range(0);
  const std::int64_t batch = state.range(1);
  const std::int64_t m = per_producer(state.range(2), producers);
  const std::int64_t n = producers * m;
  queue_totals sum;
  for (auto _ : state) {
    rondo_bench::mutex_queue<std::int64_t> q(static_cast<std::size_t>(capacity));
    rondo_bench::countdown ready;
    flag done;
    producer_check result;  // the consumer's own check, copied out when it is done
    std::int64_t takes = 0;
    std::thread consumer = rondo_bench::start_thread(-1, [&] {
      std::array<std::int64_t, 256> buf{};
      producer_check check;  // on the consumer's stack: no line shared with the producers
      std::int64_t takes_here = 0;
      ready.arrive();
      while (check.count < n) {
        const std::size_t k = q.pop(buf.data(), buf.size());
        ++takes_here;
        for (std::size_t i = 0; i < k; ++i) check.add(buf[i]);
      }
      result = check;
      takes = takes_here;
      done.raise();
    });
    const timed_run r = run_producers(producers, ready, done, [&](std::int64_t p) {
      produce_payloads(p, m, batch,
                       [&](const std::int64_t* items, std::size_t k) { q.push(items, k); });
    });
    consumer.join();
    sum.add(state, r, takes, result, producers, m);
  }
  sum.report(state, n);
}

// producers x batch x events: P = 2, 3, 4; batch 1 and 32; n events in all per iteration.
void producer_args(benchmark::internal::Benchmark* b, std::int64_t n, int iterations) {
  b->ArgNames({"producers", "batch", "events"});
  for (std::int64_t p = 2; p <= max_producers; ++p) {
    b->Args({p, 1, n})->Args({p, 32, n});
  }
  b->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(iterations);
}
void fast_args(benchmark::internal::Benchmark* b) {
  producer_args(b, rondo_bench::n_events, 3);
}
void slow_args(benchmark::internal::Benchmark* b) {
  producer_args(b, rondo_bench::n_slow, 2);
}

}  // namespace

BENCHMARK_CAPTURE(many_to_one_rondo, busy_spin,
                  std::optional<rondo::wait_config>{rondo::busy_spin{}})
    ->Apply(fast_args);
BENCHMARK_CAPTURE(many_to_one_rondo, yielding,
                  std::optional<rondo::wait_config>{rondo::yielding{}})
    ->Apply(fast_args);
BENCHMARK_CAPTURE(many_to_one_rondo, spin_then_suspend,
                  std::optional<rondo::wait_config>{rondo::spin_then_suspend{}})
    ->Apply(fast_args);
BENCHMARK_CAPTURE(many_to_one_rondo, default, std::optional<rondo::wait_config>{})
    ->Apply(fast_args);
BENCHMARK(many_to_one_moodycamel_cq)->Apply(fast_args);
BENCHMARK(many_to_one_mutex_cv)->Apply(slow_args);
