// many_to_one: two producer threads, one consumer stage.
//
//   producer 0 (benchmark thread) ──┐
//                                   ├──▶ [ ring, multi_producer_sequencer ] ──▶ consumer: check
//   producer 1 (spawned thread)   ──┘       claim = CAS on the cursor           per-producer order
//
// Competitors, all in this binary:
//   rondo/<wait>   rondo::disruptor<int64_t>, producer_type::multi, one stage, 65,536 slots,
//                  busy_spin or yielding; each producer reserves `batch` slots at a time through
//                  the shared publisher
//   moodycamel_cq  moodycamel::ConcurrentQueue (65,536 slots pre-allocated), one producer token
//                  per producer, enqueue(_bulk); the consumer takes up to 64 with
//                  try_dequeue_bulk, spinning then yielding when empty. The queue is unbounded:
//                  enqueue allocates a block when a producer's own blocks are all in use (the
//                  allocation-free try_enqueue_bulk can fail for ever once a producer's block
//                  index is full, so it cannot be used here); allocs/event shows the cost.
//   mutex_cv       one mutex + condition_variable queue (65,536 slots) shared by both producers
//
// Three threads on two cores: nothing is pinned. Each producer publishes n/2 events whose
// payload is (producer << 40) | i, i = 0, 1, 2, ...; the consumer checks that each producer's
// values arrive in order (the FIFO guarantee both rondo and moodycamel give per producer) and
// sums i against 2 * (n/2)(n/2 - 1)/2. Timing: manual, from the release of both producers to
// the consumer's acceptance of the n-th event.

#include "bench_support.hpp"

#include <rondo/core/wait_strategy.hpp>
#include <rondo/disruptor.hpp>

#include <benchmark/benchmark.h>
#include <concurrentqueue/concurrentqueue.h>

#include <array>
#include <cstdint>
#include <thread>

namespace {

using rondo_bench::flag;

constexpr std::int64_t capacity = 1 << 16;
constexpr std::size_t max_batch = 32;
constexpr int producer_shift = 40;
constexpr std::int64_t index_mask = (std::int64_t{1} << producer_shift) - 1;

[[nodiscard]] constexpr std::int64_t payload(std::int64_t producer, std::int64_t i) noexcept {
  return (producer << producer_shift) | i;
}

// Per-producer order check for two producers.
struct two_producer_check {
  std::array<std::int64_t, 2> next{};
  std::int64_t sum = 0;
  std::uint64_t mismatch = 0;
  std::int64_t count = 0;

  void add(std::int64_t v) noexcept {
    const std::int64_t p = v >> producer_shift;
    const std::int64_t i = v & index_mask;
    mismatch |= static_cast<std::uint64_t>(p >> 1);  // only producers 0 and 1 exist
    auto& expected = next[static_cast<std::size_t>(p & 1)];
    mismatch |= static_cast<std::uint64_t>(i ^ expected);
    ++expected;
    sum += i;
    ++count;
  }
  [[nodiscard]] bool ok(std::int64_t n) const noexcept {
    const std::int64_t half = n / 2;
    return mismatch == 0 && count == n && next[0] == half && next[1] == half &&
           sum == 2 * rondo_bench::triangle(half);
  }
};

// Runs producer(0) here and producer(1) on a new thread, both released together once the
// consumer is ready; times the release to `done`.
using rondo_bench::timed_run;

template <class Producer>
timed_run run_two_producers(const rondo_bench::countdown& consumer_ready, const flag& done,
                            Producer&& produce) {
  rondo_bench::countdown armed;
  flag go;
  std::thread second = rondo_bench::start_thread(-1, [&] {
    armed.arrive();
    go.await();
    produce(1);
  });
  armed.await(1);
  consumer_ready.await(1);
  const timed_run r = rondo_bench::time_region([&] {
    go.raise();
    produce(0);
    done.await();
  });
  second.join();
  return r;
}

// Sums the iterations of a queue competitor and writes the counters at the end.
struct queue_totals {
  std::int64_t allocs = 0;
  std::int64_t takes = 0;
  bool ok = true;

  // One iteration: its timed run, the consumer's takes and check.
  void add(benchmark::State& state, const timed_run& r, std::int64_t consumer_takes,
           const two_producer_check& result, std::int64_t n) {
    allocs += r.allocs;
    state.SetIterationTime(r.seconds);
    takes += consumer_takes;
    ok = ok && result.ok(n);
  }
  void report(benchmark::State& state, std::int64_t n) const {
    if (!rondo_bench::verify(state, ok, "consumer saw wrong, missing or reordered values")) return;
    rondo_bench::report_events(state, n, allocs);
    rondo_bench::report_mean_batch(state, "mean_batch", state.iterations() * n, takes);
  }
};

// A queue producer: publishes payload(p, 0..n/2-1), `batch` (<= max_batch) at a time, through
// give(data, count).
template <class Give>
void produce_payloads(std::int64_t p, std::int64_t n, std::int64_t batch, Give&& give) {
  std::array<std::int64_t, max_batch> buf{};
  for (std::int64_t i = 0; i < n / 2; i += batch) {
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
  two_producer_check check;  // written by the stage before done.raise()
};

struct checking_stage {
  sink_output* out;
  std::int64_t last;
  two_producer_check check{};

  void on_start() { out->started.arrive(); }
  void operator()(std::int64_t& ev, std::int64_t seq, bool) {
    check.add(ev);
    if (seq == last) {
      out->check = check;
      out->done.raise();
    }
  }
};

void many_to_one_rondo(benchmark::State& state, rondo::wait_config wait) {
  const std::int64_t batch = state.range(0);
  const std::int64_t n = state.range(1);
  bool ok = true;
  std::int64_t allocs = 0;
  rondo::stage_metrics_snapshot totals;
  for (auto _ : state) {
    sink_output out;
    auto d = rondo::disruptor<std::int64_t>::builder()
                 .capacity(capacity)
                 .producers(rondo::producer_type::multi)
                 .wait(wait)
                 .metrics()
                 .stage("sink", checking_stage{&out, n - 1})
                 .build();
    d.start();
    auto& pub = d.publisher();
    const timed_run r = run_two_producers(out.started, out.done, [&](std::int64_t p) {
      for (std::int64_t i = 0; i < n / 2; i += batch) {
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
    const rondo::stage_metrics_snapshot m = d.metrics().at(0).metrics;
    totals.events += m.events;
    totals.batches += m.batches;
    ok = ok && out.check.ok(n) && m.events == n;
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
  const std::int64_t batch = state.range(0);
  const std::int64_t n = state.range(1);
  queue_totals sum;
  for (auto _ : state) {
    moodycamel::ConcurrentQueue<std::int64_t> q(static_cast<std::size_t>(capacity));
    moodycamel::ProducerToken tok0(q);
    moodycamel::ProducerToken tok1(q);
    rondo_bench::countdown ready;
    flag done;
    two_producer_check result;  // the consumer's own check, copied out when it is done
    std::int64_t takes = 0;
    std::thread consumer = rondo_bench::start_thread(-1, [&] {
      moodycamel::ConsumerToken ctok(q);
      std::array<std::int64_t, 64> buf{};
      two_producer_check check;  // on the consumer's stack: no line shared with the producers
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
    const timed_run r = run_two_producers(ready, done, [&](std::int64_t p) {
      moodycamel::ProducerToken& tok = p == 0 ? tok0 : tok1;
      if (batch == 1) {
        for (std::int64_t i = 0; i < n / 2; ++i) q.enqueue(tok, payload(p, i));
        return;
      }
      produce_payloads(p, n, batch, [&](const std::int64_t* items, std::size_t k) {
        q.enqueue_bulk(tok, items, k);
      });
    });
    consumer.join();
    sum.add(state, r, takes, result, n);
  }
  sum.report(state, n);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

void many_to_one_mutex_cv(benchmark::State& state) {
  const std::int64_t batch = state.range(0);
  const std::int64_t n = state.range(1);
  queue_totals sum;
  for (auto _ : state) {
    rondo_bench::mutex_queue<std::int64_t> q(static_cast<std::size_t>(capacity));
    rondo_bench::countdown ready;
    flag done;
    two_producer_check result;  // the consumer's own check, copied out when it is done
    std::int64_t takes = 0;
    std::thread consumer = rondo_bench::start_thread(-1, [&] {
      std::array<std::int64_t, 256> buf{};
      two_producer_check check;  // on the consumer's stack: no line shared with the producers
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
    const timed_run r = run_two_producers(ready, done, [&](std::int64_t p) {
      produce_payloads(p, n, batch,
                       [&](const std::int64_t* items, std::size_t k) { q.push(items, k); });
    });
    consumer.join();
    sum.add(state, r, takes, result, n);
  }
  sum.report(state, n);
}

using rondo_bench::fast_args;
using rondo_bench::slow_args;

}  // namespace

BENCHMARK_CAPTURE(many_to_one_rondo, busy_spin, rondo::wait_config{rondo::busy_spin{}})
    ->Apply(fast_args);
BENCHMARK_CAPTURE(many_to_one_rondo, yielding, rondo::wait_config{rondo::yielding{}})
    ->Apply(fast_args);
BENCHMARK(many_to_one_moodycamel_cq)->Apply(fast_args);
BENCHMARK(many_to_one_mutex_cv)->Apply(slow_args);
