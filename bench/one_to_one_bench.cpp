// one_to_one: one producer thread, one consumer thread, 8-byte events, busy spin.
// (One file above ~400 lines on purpose: every competitor of a same-run ratio lives in the binary
// that measures it, so that they share the harness, the pinning and the run order.)
//
//   producer (benchmark thread, CPU a)                    consumer (CPU b)
//   reserve(b) ─▶ slot = seq ─▶ publish ──▶ [ ring / queue, 65,536 slots ] ──▶ check + sum
//
// Competitors, all in this binary, all with 65,536 slots and busy-spinning on both sides:
//   rondo_dsl        rondo::disruptor<int64_t> with one stage (thread stage runner, metrics on);
//                    the producer uses publisher::reserve(b) / claim::publish(); linger:64 runs
//                    the stage with stage_options{.linger_below = 64, .linger_pauses = 64}
//   rondo_dsl_stamped rondo_dsl with slot stamps (builder::stamps), 16-byte events {v, stamp}
//   rondo_coro_sync  rondo_dsl's stage as a coroutine on a thread_scheduler (spin_then_suspend,
//                    16,384 spins); rondo_coro_async: the same with an async batch handler
//   rondo_core       ring_buffer + single_producer_sequencer + sequence_barrier +
//                    batch_processor on a thread of our own; the producer calls the sequencer
//   boost_spsc       boost::lockfree::spsc_queue (compile-time capacity); push one or push a
//                    range of b; the consumer drains with consume_all()
//   moodycamel_rwq   moodycamel::ReaderWriterQueue, try_enqueue / try_dequeue (no bulk API:
//                    batch 1 only)
//   moodycamel_cq    moodycamel::ConcurrentQueue with producer and consumer tokens,
//                    try_enqueue(_bulk) / try_dequeue_bulk(64)
//   mutex_cv         a bounded queue under one mutex with two condition variables; pushes b
//                    per lock, pops up to 256 per lock
//   harness_baseline no second thread: the same fill-and-check loop over a plain array, i.e.
//                    the most this harness could measure
//
// Batch b: the producer reserves/pushes b events at a time (1 or 32). The consumer always takes
// whatever is available; "mean_batch" is events per successful take (for rondo, the stage's
// stage_metrics_snapshot::mean_batch()).
//
// Pinning: the producer (the benchmark thread) is pinned to the first allowed CPU and the
// consumer to the second for the whole benchmark (pthread_setaffinity_np; the rondo stage pins
// itself in its handler's on_start() hook). On this 2-core machine that keeps both spinners on
// their own core and the event stream crossing exactly one pair of caches.
//
// Timing: manual, from the first reserve to the consumer's acceptance of the last event (the
// consumer raises a flag); thread start-up, building the disruptor and drain() are outside it.
// Verification: payload = sequence. rondo stages check each event against its sequence (they
// are told it) and their stage metrics count the events; queue consumers check that values
// arrive as 0, 1, 2, ...; all sum the payloads and compare with n(n-1)/2. Any mismatch fails
// the benchmark (SkipWithError).
// Targets (DESIGN.md 6): rondo >= 300 M events/s at batch 1, >= 1,800 M/s at batch 32.

#include "bench_support.hpp"

#include <rondo/core/batch_processor.hpp>
#include <rondo/core/ring_buffer.hpp>
#include <rondo/core/sequence_barrier.hpp>
#include <rondo/core/single_producer_sequencer.hpp>
#include <rondo/core/wait_strategy.hpp>
#include <rondo/coro/scheduler.hpp>
#include <rondo/coro/sync_wait.hpp>
#include <rondo/coro/task.hpp>
#include <rondo/disruptor.hpp>

#include <benchmark/benchmark.h>
#include <concurrentqueue/concurrentqueue.h>
#include <readerwriterqueue/readerwriterqueue.h>
#include <boost/lockfree/spsc_queue.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace {

using rondo_bench::flag;
using rondo_bench::in_order_check;

constexpr std::int64_t capacity = 1 << 16;
constexpr std::size_t max_batch = 32;

// What one iteration measured.
struct iteration_result {
  double seconds = 0;
  std::int64_t allocs = 0;
  std::int64_t consumer_batches = 0;
  bool ok = false;
};

[[nodiscard]] iteration_result measured(const rondo_bench::timed_run& t) noexcept {
  iteration_result r;
  r.seconds = t.seconds;
  r.allocs = t.allocs;
  return r;
}

// Accumulates iterations and writes the counters at the end.
struct totals {
  std::int64_t allocs = 0;
  std::int64_t batches = 0;
  std::int64_t stage_events = 0;  // rondo: events in the stage's metrics
  bool ok = true;

  void add(benchmark::State& state, const iteration_result& r) {
    state.SetIterationTime(r.seconds);
    allocs += r.allocs;
    batches += r.consumer_batches;
    ok = ok && r.ok;
  }
  // A rondo iteration: `events` and `stage_batches` come from the stage's metrics.
  void add_stage(benchmark::State& state, iteration_result r, bool check_ok, std::int64_t events,
                 std::int64_t stage_batches, std::int64_t n) {
    stage_events += events;
    r.consumer_batches = stage_batches;
    r.ok = check_ok && events == n;
    add(state, r);
  }
  void report(benchmark::State& state, std::int64_t n, bool with_batches = true) const {
    if (!rondo_bench::verify(state, ok, "consumer saw wrong, missing or reordered events")) return;
    rondo_bench::report_events(state, n, allocs);
    if (with_batches && batches > 0) {
      rondo_bench::report_mean_batch(state, "mean_batch", state.iterations() * n, batches);
    }
  }
  // rondo: mean_batch from the stage's metrics.
  void report_stage(benchmark::State& state, std::int64_t n) const {
    report(state, n, false);
    rondo_bench::report_mean_batch(state, "mean_batch", stage_events, batches);
  }
};

// Runs one iteration of a queue competitor: consume(ready, check) on a thread pinned to `cpu`,
// which raises `ready` once set up, feeds every value to `check` and returns its number of
// successful takes; then produce() here, timed until the consumer returns. ok: exactly 0..n-1
// arrived in order.
template <class Produce, class Consume>
iteration_result run_pair(int cpu, std::int64_t n, Produce&& produce, Consume&& consume) {
  flag ready;
  flag done;
  std::int64_t takes = 0;
  in_order_check result;  // the consumer's own check, copied out when it is done
  std::thread t = rondo_bench::start_thread(cpu, [&] {
    in_order_check check;  // on the consumer's stack: no line shared with the producer
    takes = consume(ready, check);
    result = check;
    done.raise();
  });
  ready.await();
  iteration_result r = measured(rondo_bench::time_region([&] {
    produce();
    done.await();
  }));
  t.join();
  r.consumer_batches = takes;
  r.ok = result.ok(n);
  return r;
}

// ---------------------------------------------------------------------------------------------
// rondo: the consumer stage, shared by the DSL and core variants.

struct stage_output {
  flag ready;
  flag done;
  rondo_bench::sequence_check check;  // written by the stage before done.raise()
};

struct summing_stage {
  stage_output* out;
  int cpu;
  std::int64_t last;  // the final sequence of the run
  rondo_bench::sequence_check check{};

  void on_start() {
    (void)rondo_bench::pin_current_thread(cpu);
    out->ready.raise();
  }
  void operator()(std::int64_t& ev, std::int64_t seq, bool) {
    check.add(ev, seq);  // the producer wrote ev = seq
    if (seq == last) {
      out->check = check;
      out->done.raise();
    }
  }
};

// The producer side over a claim's contiguous spans (claim::spans()): boost's bulk push shape.
template <class Pub>
void produce_spans(Pub& pub, std::int64_t n, std::int64_t batch) {
  for (std::int64_t s = 0; s < n; s += batch) {
    auto c = pub.reserve(batch);
    std::int64_t v = c.first();
    const auto segs = c.spans();
    for (const std::span<std::int64_t> seg : {segs.first, segs.second}) {
      for (std::int64_t& slot : seg) slot = v++;
    }
    c.publish();
  }
}

// The producer side, for any reserve(n) -> claim API.
template <class Pub>
void produce_claims(Pub& pub, std::int64_t n, std::int64_t batch) {
  for (std::int64_t s = 0; s < n; s += batch) {
    auto c = pub.reserve(batch);
    const std::int64_t lo = c.first();
    for (std::size_t i = 0; i < static_cast<std::size_t>(batch); ++i) {
      c[i] = lo + static_cast<std::int64_t>(i);
    }
    c.publish();
  }
}

void one_to_one_rondo_dsl(benchmark::State& state) {
  const std::int64_t batch = state.range(0);
  const std::int64_t n = state.range(1);
  // stage_options::linger_below / linger_pauses (0: off, the default; latency first).
  const std::int64_t linger = state.range(2);
  const auto [cpu_a, cpu_b] = rondo_bench::pair_cpus();
  rondo_bench::scoped_pin pin(cpu_a);
  totals sum;
  for (auto _ : state) {
    stage_output out;
    auto d = rondo::disruptor<std::int64_t>::builder()
                 .capacity(capacity)
                 .wait(rondo::busy_spin{})
                 .metrics()
                 .stage("sum", summing_stage{&out, cpu_b, n - 1},
                        rondo::stage_options{.linger_below = linger,
                                             .linger_pauses = static_cast<std::uint32_t>(linger)})
                 .build();
    d.start();
    out.ready.await();
    const iteration_result r = measured(rondo_bench::time_region([&] {
      produce_claims(d.publisher(), n, batch);
      out.done.await();
    }));
    d.drain();
    const rondo::stage_metrics_snapshot m = d.metrics().at(0).metrics;
    sum.add_stage(state, r, out.check.ok(n), m.events, m.batches, n);
  }
  sum.report_stage(state, n);
}

// rondo_dsl with slot stamps (builder::stamps): 16-byte events {value, stamp}; the stage waits on
// the event's line instead of the cursor and publish writes each slot's stamp. What latency
// (bench/ping_pong_bench.cpp) costs in throughput.
struct stamped_value {
  std::int64_t v = 0;
  rondo::slot_stamp stamp;
};

struct stamped_summing_stage {
  summing_stage inner;
  void on_start() { inner.on_start(); }
  void operator()(stamped_value& ev, std::int64_t seq, bool end) { inner(ev.v, seq, end); }
};

void one_to_one_rondo_dsl_stamped(benchmark::State& state) {
  const std::int64_t batch = state.range(0);
  const std::int64_t n = state.range(1);
  const auto [cpu_a, cpu_b] = rondo_bench::pair_cpus();
  rondo_bench::scoped_pin pin(cpu_a);
  totals sum;
  for (auto _ : state) {
    stage_output out;
    auto d = rondo::disruptor<stamped_value>::builder()
                 .capacity(capacity)
                 .wait(rondo::busy_spin{})
                 .metrics()
                 .stamps(&stamped_value::stamp)
                 .stage("sum", stamped_summing_stage{{&out, cpu_b, n - 1}})
                 .build();
    d.start();
    out.ready.await();
    const iteration_result r = measured(rondo_bench::time_region([&] {
      auto& pub = d.publisher();
      for (std::int64_t s = 0; s < n; s += batch) {
        auto c = pub.reserve(batch);
        const std::int64_t lo = c.first();
        for (std::size_t i = 0; i < static_cast<std::size_t>(batch); ++i) {
          c[i].v = lo + static_cast<std::int64_t>(i);
        }
        c.publish();
      }
      out.done.await();
    }));
    d.drain();
    const rondo::stage_metrics_snapshot m = d.metrics().at(0).metrics;
    sum.add_stage(state, r, out.check.ok(n), m.events, m.batches, n);
  }
  sum.report_stage(state, n);
}

// The stage as a coroutine on a thread_scheduler (pinned to CPU b by on_start): sync handler
// (`coro_sync`) or async batch handler (`coro_async`, task<>(batch) per batch). Wait policy
// spin_then_suspend with 1 << 14 spins: with one stage per core, spinning is the right call.
struct summing_batch_stage {
  summing_stage* inner;
  void on_start() { inner->on_start(); }
  rondo::task<> operator()(rondo::batch<std::int64_t> b) {
    for (auto [seq, ev] : b.entries()) (*inner)(ev, seq, false);
    co_return;
  }
};


// The async batch handler over the batch's contiguous spans (batch<T>::spans()): one check per
// event in a loop over plain memory, the consumer shape of boost's consume_all.
// Checks a batch's spans outside the coroutine body: g++ 12 keeps every local of a coroutine
// body in its frame, and a loop over frame variables does not vectorise (measured: 0.54-0.62
// G/s in the body vs clang's 1.7 G/s). A local copy of the check: the handler's own fields could
// alias the events (both int64_t), which keeps any compiler from vectorising.
inline void check_spans(rondo_bench::sequence_check& into,
                        const rondo::ring_buffer<std::int64_t>::segments& segs, std::int64_t seq) {
  rondo_bench::sequence_check check = into;
  for (const std::span<std::int64_t> seg : {segs.first, segs.second}) {
    for (const std::int64_t v : seg) check.add(v, seq++);
  }
  into = check;
}

struct summing_span_stage {
  summing_stage* inner;
  void on_start() { inner->on_start(); }
  rondo::task<> operator()(rondo::batch<std::int64_t> b) {
    check_spans(inner->check, b.spans(), b.first());
    if (b.last() == inner->last) {
      inner->out->check = inner->check;
      inner->out->done.raise();
    }
    co_return;
  }
};

template <int Shape>  // 0: sync handler, 1: async per event, 2: async over spans
void one_to_one_rondo_coroutine(benchmark::State& state) {
  constexpr bool Async = Shape != 0;
  const std::int64_t batch = state.range(0);
  const std::int64_t n = state.range(1);
  const auto [cpu_a, cpu_b] = rondo_bench::pair_cpus();
  rondo_bench::scoped_pin pin(cpu_a);
  totals sum;
  rondo::spin_then_suspend policy;
  policy.spins = 1U << 14;
  std::uint64_t fences = 0;
  std::uint64_t parks = 0;
  double seconds = 0;
  for (auto _ : state) {
    stage_output out;
    rondo::thread_scheduler exec;
    summing_stage inner{&out, cpu_b, n - 1};  // the async handler's state (it is copied per batch)
    auto b = rondo::disruptor<std::int64_t>::builder();
    b.capacity(capacity).wait(policy).metrics();
    if constexpr (Shape == 2) {
      b.stage("sum", summing_span_stage{&inner}).on(exec);
    } else if constexpr (Async) {
      b.stage("sum", summing_batch_stage{&inner}).on(exec);
    } else {
      // The same handler, by value, as the thread stage row (one_to_one_rondo_dsl): a handler
      // reached through a pointer pays a store per event that the by-value one keeps in the
      // runner (measured: 0.90x of the thread stage at batch 32 through a pointer).
      b.stage("sum", summing_stage{&out, cpu_b, n - 1}).on(exec);
    }
    auto d = b.build();
    d.start();
    out.ready.await();
    // As in a real pipeline, the stage goes idle before the first event: it spins, then parks
    // on its executor, which polls it and then sleeps (announcing it) until the first publish.
    rondo::park_lot& lot = *exec.parking();
    while (lot.parks() == 0) std::this_thread::yield();
    const std::uint64_t fences0 = lot.sleep_fences();
    const std::uint64_t parks0 = lot.parks();
    const iteration_result r = measured(rondo_bench::time_region([&] {
      if constexpr (Shape == 2) {
        produce_spans(d.publisher(), n, batch);
      } else {
        produce_claims(d.publisher(), n, batch);
      }
      out.done.await();
    }));
    fences += lot.sleep_fences() - fences0;
    parks += lot.parks() - parks0;
    seconds += r.seconds;
    d.drain();
    const rondo::stage_metrics_snapshot m = d.metrics().at(0).metrics;
    sum.add_stage(state, r, out.check.ok(n), m.events, m.batches, n);
  }
  sum.report_stage(state, n);
  // Parks are free; a membarrier is paid only when the executor goes to sleep in the kernel.
  state.counters["parks_per_s"] = seconds > 0 ? static_cast<double>(parks) / seconds : 0;
  state.counters["membarriers_per_s"] = seconds > 0 ? static_cast<double>(fences) / seconds : 0;
}

void one_to_one_rondo_core(benchmark::State& state) {
  const std::int64_t batch = state.range(0);
  const std::int64_t n = state.range(1);
  const auto [cpu_a, cpu_b] = rondo_bench::pair_cpus();
  rondo_bench::scoped_pin pin(cpu_a);
  totals sum;
  for (auto _ : state) {
    stage_output out;
    rondo::wait_strategy waits{rondo::busy_spin{}};
    rondo::ring_buffer<std::int64_t> ring(capacity);
    rondo::single_producer_sequencer seqr(capacity, waits);
    rondo::sequence_barrier barrier(seqr);
    rondo::batch_processor<std::int64_t, summing_stage> proc(
        ring, barrier, summing_stage{&out, cpu_b, n - 1}, {}, "sum", true);
    seqr.add_gating_sequence(proc.position());
    std::thread t([&] { proc.run(); });  // pins itself in on_start()
    out.ready.await();

    const iteration_result r = measured(rondo_bench::time_region([&] {
      for (std::int64_t s = 0; s < n; s += batch) {
        const std::int64_t hi = seqr.reserve(batch);
        const std::int64_t lo = hi - batch + 1;
        for (std::int64_t q = lo; q <= hi; ++q) ring[q] = q;
        seqr.publish(lo, hi);
      }
      out.done.await();
    }));
    proc.halt();
    t.join();
    const rondo::stage_metrics_snapshot m = proc.metrics();
    sum.add_stage(state, r, out.check.ok(n), m.events, m.batches, n);
  }
  sum.report_stage(state, n);
}

// ---------------------------------------------------------------------------------------------
// Queues.

using boost_queue = boost::lockfree::spsc_queue<std::int64_t, boost::lockfree::capacity<capacity>>;

void one_to_one_boost_spsc(benchmark::State& state) {
  const std::int64_t batch = state.range(0);
  const std::int64_t n = state.range(1);
  const auto [cpu_a, cpu_b] = rondo_bench::pair_cpus();
  rondo_bench::scoped_pin pin(cpu_a);
  totals sum;
  for (auto _ : state) {
    auto q = std::make_unique<boost_queue>();
    sum.add(state, run_pair(
                       cpu_b, n,
                       [&] {
                         std::array<std::int64_t, max_batch> buf{};
                         for (std::int64_t s = 0; s < n; s += batch) {
                           if (batch == 1) {
                             while (!q->push(s)) rondo_bench::spin_pause();
                             continue;
                           }
                           for (std::size_t i = 0; i < static_cast<std::size_t>(batch); ++i) {
                             buf[i] = s + static_cast<std::int64_t>(i);
                           }
                           const std::int64_t* p = buf.data();
                           auto left = static_cast<std::size_t>(batch);
                           while (left > 0) {
                             const std::size_t k = q->push(p, left);
                             p += k;
                             left -= k;
                             if (left > 0) rondo_bench::spin_pause();
                           }
                         }
                       },
                       [&](flag& ready, in_order_check& check) {
                         ready.raise();
                         std::int64_t takes = 0;
                         while (check.next < n) {
                           if (q->consume_all([&](std::int64_t v) { check.add(v); }) > 0) {
                             ++takes;
                           } else {
                             rondo_bench::spin_pause();
                           }
                         }
                         return takes;
                       }));
  }
  sum.report(state, n);
}

void one_to_one_moodycamel_rwq(benchmark::State& state) {
  const std::int64_t n = state.range(1);
  const auto [cpu_a, cpu_b] = rondo_bench::pair_cpus();
  rondo_bench::scoped_pin pin(cpu_a);
  totals sum;
  for (auto _ : state) {
    moodycamel::ReaderWriterQueue<std::int64_t> q(static_cast<std::size_t>(capacity));
    sum.add(state, run_pair(
                       cpu_b, n,
                       [&] {
                         for (std::int64_t s = 0; s < n; ++s) {
                           while (!q.try_enqueue(s)) rondo_bench::spin_pause();
                         }
                       },
                       [&](flag& ready, in_order_check& check) {
                         ready.raise();
                         std::int64_t v = 0;
                         while (check.next < n) {
                           if (q.try_dequeue(v)) {
                             check.add(v);
                           } else {
                             rondo_bench::spin_pause();
                           }
                         }
                         return check.next;
                       }));
  }
  sum.report(state, n, false);
}

// g++ 12 reports a false -Wstringop-overflow inside moodycamel's enqueue_bulk once it is inlined
// here (an atomic load through a block pointer it cannot prove non-null).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
void one_to_one_moodycamel_cq(benchmark::State& state) {
  const std::int64_t batch = state.range(0);
  const std::int64_t n = state.range(1);
  const auto [cpu_a, cpu_b] = rondo_bench::pair_cpus();
  rondo_bench::scoped_pin pin(cpu_a);
  totals sum;
  for (auto _ : state) {
    moodycamel::ConcurrentQueue<std::int64_t> q(static_cast<std::size_t>(capacity));
    moodycamel::ProducerToken ptok(q);
    sum.add(state,
            run_pair(
                cpu_b, n,
                [&] {
                  std::array<std::int64_t, max_batch> buf{};
                  for (std::int64_t s = 0; s < n; s += batch) {
                    if (batch == 1) {
                      while (!q.try_enqueue(ptok, s)) rondo_bench::spin_pause();
                      continue;
                    }
                    for (std::size_t i = 0; i < static_cast<std::size_t>(batch); ++i) {
                      buf[i] = s + static_cast<std::int64_t>(i);
                    }
                    while (!q.try_enqueue_bulk(ptok, buf.data(), static_cast<std::size_t>(batch))) {
                      rondo_bench::spin_pause();
                    }
                  }
                },
                [&](flag& ready, in_order_check& check) {
                  moodycamel::ConsumerToken ctok(q);
                  std::array<std::int64_t, 64> buf{};
                  ready.raise();
                  std::int64_t takes = 0;
                  while (check.next < n) {
                    const std::size_t k = q.try_dequeue_bulk(ctok, buf.data(), buf.size());
                    if (k == 0) {
                      rondo_bench::spin_pause();
                      continue;
                    }
                    ++takes;
                    for (std::size_t i = 0; i < k; ++i) check.add(buf[i]);
                  }
                  return takes;
                }));
  }
  sum.report(state, n);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

void one_to_one_mutex_cv(benchmark::State& state) {
  const std::int64_t batch = state.range(0);
  const std::int64_t n = state.range(1);
  const auto [cpu_a, cpu_b] = rondo_bench::pair_cpus();
  rondo_bench::scoped_pin pin(cpu_a);
  totals sum;
  for (auto _ : state) {
    rondo_bench::mutex_queue<std::int64_t> q(static_cast<std::size_t>(capacity));
    sum.add(state, run_pair(
                       cpu_b, n,
                       [&] {
                         rondo_bench::produce_batches<max_batch>(
                             n, batch,
                             [&](const std::int64_t* items, std::size_t k) { q.push(items, k); });
                       },
                       [&](flag& ready, in_order_check& check) {
                         std::array<std::int64_t, 256> buf{};
                         ready.raise();
                         std::int64_t takes = 0;
                         while (check.next < n) {
                           const std::size_t k = q.pop(buf.data(), buf.size());
                           ++takes;
                           for (std::size_t i = 0; i < k; ++i) check.add(buf[i]);
                         }
                         return takes;
                       }));
  }
  sum.report(state, n);
}

// ---------------------------------------------------------------------------------------------
// The harness alone: fill b slots, read them back and check, on one thread.

void one_to_one_harness_baseline(benchmark::State& state) {
  const std::int64_t batch = state.range(0);
  const std::int64_t n = state.range(1);
  std::vector<std::int64_t> ring(static_cast<std::size_t>(capacity));
  const std::int64_t mask = capacity - 1;
  bool ok = true;
  for (auto _ : state) {
    in_order_check check;
    for (std::int64_t s = 0; s < n; s += batch) {
      for (std::int64_t q = s; q < s + batch; ++q) ring[static_cast<std::size_t>(q & mask)] = q;
      benchmark::ClobberMemory();
      for (std::int64_t q = s; q < s + batch; ++q) {
        check.add(ring[static_cast<std::size_t>(q & mask)]);
      }
    }
    ok = ok && check.ok(n);
  }
  if (!rondo_bench::verify(state, ok, "harness check failed")) return;
  rondo_bench::report_events(state, n, 0);
}

// Events per iteration: enough for tens of milliseconds at the target rates.
constexpr std::int64_t n_small = std::int64_t{1} << 22;
constexpr std::int64_t n_batch1 = std::int64_t{1} << 24;
constexpr std::int64_t n_batch32 = std::int64_t{1} << 26;

void two_thread_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "events"})->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
}

}  // namespace

BENCHMARK(one_to_one_harness_baseline)
    ->ArgNames({"batch", "events"})
    ->Args({1, n_batch1})
    ->Args({32, n_batch32})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(one_to_one_rondo_dsl)
    ->ArgNames({"batch", "events", "linger"})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->Args({1, n_batch1, 0})
    ->Args({32, n_batch32, 0})
    ->Args({1, n_batch1, 64})
    ->Args({32, n_batch32, 64});
BENCHMARK_TEMPLATE(one_to_one_rondo_coroutine, 0)
    ->Name("one_to_one_rondo_coro_sync")
    ->Apply(two_thread_args)
    ->Args({1, n_batch1})
    ->Args({32, n_batch32});
BENCHMARK(one_to_one_rondo_dsl_stamped)
    ->Apply(two_thread_args)
    ->Args({1, n_batch1})
    ->Args({32, n_batch32});
BENCHMARK_TEMPLATE(one_to_one_rondo_coroutine, 1)
    ->Name("one_to_one_rondo_coro_async")
    ->Apply(two_thread_args)
    ->Args({1, n_batch1})
    ->Args({32, n_batch32});
BENCHMARK_TEMPLATE(one_to_one_rondo_coroutine, 2)
    ->Name("one_to_one_rondo_coro_spans")
    ->Apply(two_thread_args)
    ->Args({1, n_batch1})
    ->Args({32, n_batch32});
BENCHMARK(one_to_one_rondo_core)
    ->Apply(two_thread_args)
    ->Args({1, n_batch1})
    ->Args({32, n_batch32});
BENCHMARK(one_to_one_boost_spsc)
    ->Apply(two_thread_args)
    ->Args({1, n_batch1})
    ->Args({32, n_batch32});
BENCHMARK(one_to_one_moodycamel_rwq)->Apply(two_thread_args)->Args({1, n_batch1});
BENCHMARK(one_to_one_moodycamel_cq)
    ->Apply(two_thread_args)
    ->Args({1, n_batch1})
    ->Args({32, n_batch32});
BENCHMARK(one_to_one_mutex_cv)->Apply(two_thread_args)->Args({1, n_small})->Args({32, n_small});
