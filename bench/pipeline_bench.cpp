// pipeline: one producer and three stages in a chain, one thread each: four threads on this
// machine's two cores, so the run is oversubscribed and the wait strategy decides the result.
// (One file above ~400 lines on purpose: every competitor of a same-run ratio lives in the binary
// that measures it, so that they share the harness, the pinning and the run order.)
//
//   producer ──▶ [ ring ] ──▶ s1: a = value + 1 ──▶ s2: b = a + 1 ──▶ s3: check b == seq + 2, sum
//   (benchmark thread)         (each stage reads the slot after the previous stage passed it)
//
//   queue chain:  producer ──q1──▶ s1 (+1) ──q2──▶ s2 (+1) ──q3──▶ s3 (check, sum)
//
// Competitors, all in this binary:
//   rondo/<wait>   rondo::disruptor<event> with stages s1 -> s2 -> s3 (rondo::after), 16,384
//                  slots, with each thread wait strategy: busy_spin, yielding, sleeping,
//                  blocking (default parameters); the producer reserves `batch` slots at a time
//   rondo_coroutine the same stages as coroutines on 1 or 2 thread_schedulers (spin_then_suspend
//                  defaults): stages outnumber executors, and executors do not outnumber cores
//   boost_spsc     three boost::lockfree::spsc_queue links (16,384 slots each); each stage pops
//                  up to 256, adds 1, pushes them on, and yields at once when its input is empty
//                  or its output full
//   mutex_cv       the same chain of mutex + condition_variable queues (16,384 slots)
//
// Nothing is pinned: the four threads share the two CPUs as the kernel schedules them (the point
// of this topology, DESIGN.md 6: rondo's coroutine stages must win outright where stages
// outnumber cores; these thread stages are the baseline for that).
//
// Timing: manual, from the first reserve/push to the last stage's acceptance of the final
// event; building, thread start-up and drain() are outside it. Verification: s3 checks each
// event's b against seq + 2 (queue chain: against its own counter) and the sum of the values
// against n(n-1)/2. "mean_batch_s3" is the last stage's mean batch (events per take).

#include "bench_support.hpp"

#include <rondo/core/wait_strategy.hpp>
#include <rondo/coro/scheduler.hpp>
#include <rondo/disruptor.hpp>
#include <rondo/io/runtime.hpp>

#include <benchmark/benchmark.h>
#include <boost/lockfree/spsc_queue.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>

namespace {

using rondo_bench::flag;

constexpr std::int64_t capacity = 1 << 14;
constexpr std::size_t take_max = rondo_bench::chain_take_max;

struct event {
  std::int64_t value = 0;  // written by the producer: the sequence
  std::int64_t a = 0;      // written by s1
  std::int64_t b = 0;      // written by s2
};

// ---------------------------------------------------------------------------------------------
// rondo

struct add_one_to_a : rondo_bench::counted_stage {
  void operator()(event& e, std::int64_t, bool) { e.a = e.value + 1; }
};

struct add_one_to_b : rondo_bench::counted_stage {
  void operator()(event& e, std::int64_t, bool) { e.b = e.a + 1; }
};

// s3's invariant: b == seq + 2.
struct b_invariant {
  std::uint64_t operator()(const event& e, std::int64_t seq) const noexcept {
    return static_cast<std::uint64_t>(e.b ^ (seq + 2));
  }
};

using check_b = rondo_bench::checking_sink<event, b_invariant>;

void pipeline_rondo(benchmark::State& state, rondo::wait_config wait) {
  const std::int64_t batch = state.range(0);
  const std::int64_t n = state.range(1);
  bool ok = true;
  std::int64_t allocs = 0;
  std::vector<rondo::stage_metrics_snapshot> per_stage(3);
  for (auto _ : state) {
    rondo_bench::sink_output out;
    auto d = rondo::disruptor<event>::builder()
                 .capacity(capacity)
                 .wait(wait)
                 .metrics()
                 .stage("s1", add_one_to_a{{&out}})
                 .stage("s2", add_one_to_b{{&out}}, rondo::after("s1"))
                 .stage("s3", check_b{&out, n - 1}, rondo::after("s2"))
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
    const auto reports = d.metrics();
    for (std::size_t i = 0; i < 3; ++i) {
      per_stage[i].events += reports.at(i).metrics.events;
      per_stage[i].batches += reports.at(i).metrics.batches;
    }
    ok = ok && out.check.ok(n) && out.mismatch == 0 && reports.at(2).metrics.events == n;
  }
  if (!rondo_bench::verify(state, ok, "last stage saw wrong, missing or reordered events")) return;
  rondo_bench::report_events(state, n, allocs);
  for (std::size_t i = 0; i < 3; ++i) {
    state.counters["mean_batch_s" + std::to_string(i + 1)] =
        benchmark::Counter(per_stage[i].mean_batch());
  }
}

// Coroutine stages: s1, s2, s3 as coroutines on `executors` thread_schedulers (round-robin),
// spin_then_suspend with its defaults (100 spins, 1 yield, then park). With one executor the
// three stages take turns on one thread (the producer has the other core); with two, three
// threads share the two cores.
void pipeline_rondo_coroutine(benchmark::State& state) {
  const std::int64_t batch = state.range(0);
  const std::int64_t n = state.range(1);
  const auto executors = static_cast<std::size_t>(state.range(2));
  bool ok = true;
  std::int64_t allocs = 0;
  std::vector<rondo::stage_metrics_snapshot> per_stage(3);
  for (auto _ : state) {
    rondo_bench::sink_output out;
    std::vector<std::unique_ptr<rondo::thread_scheduler>> exec;
    for (std::size_t i = 0; i < executors; ++i) {
      exec.push_back(std::make_unique<rondo::thread_scheduler>());
    }
    auto d = rondo::disruptor<event>::builder()
                 .capacity(capacity)
                 .wait(rondo::spin_then_suspend{})
                 .metrics()
                 .stage("s1", add_one_to_a{{&out}})
                 .on(*exec[0 % executors])
                 .stage("s2", add_one_to_b{{&out}}, rondo::after("s1"))
                 .on(*exec[1 % executors])
                 .stage("s3", check_b{&out, n - 1}, rondo::after("s2"))
                 .on(*exec[2 % executors])
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
    const auto reports = d.metrics();
    for (std::size_t i = 0; i < 3; ++i) {
      per_stage[i].events += reports.at(i).metrics.events;
      per_stage[i].batches += reports.at(i).metrics.batches;
      per_stage[i].suspensions += reports.at(i).metrics.suspensions;
    }
    ok = ok && out.check.ok(n) && out.mismatch == 0 && reports.at(2).metrics.events == n;
  }
  if (!rondo_bench::verify(state, ok, "last stage saw wrong, missing or reordered events")) return;
  rondo_bench::report_events(state, n, allocs);
  for (std::size_t i = 0; i < 3; ++i) {
    state.counters["mean_batch_s" + std::to_string(i + 1)] =
        benchmark::Counter(per_stage[i].mean_batch());
  }
  state.counters["suspensions/event"] = benchmark::Counter(
      static_cast<double>(per_stage[0].suspensions + per_stage[1].suspensions +
                          per_stage[2].suspensions) /
      static_cast<double>(state.iterations() * n));
}

// The io_uring executor: `stages` coroutine stages on a rondo::runtime of two io_contexts (two
// threads; placement: the builder's default, contiguous halves, one context, or round-robin): s1 (a = value + 1), s2 (b = a + 1),
// then stages - 3 pass-through stages that read b, then s_last checks b. The producer is a
// coroutine on context 0 (`co_await coro_publisher.reserve(batch)`), so two threads carry everything —
// as many threads as cores — or the benchmark thread (three threads on two cores).
struct touch_b : rondo_bench::counted_stage {
  std::int64_t sum = 0;
  void operator()(event& e, std::int64_t, bool) { sum += e.b; }
};

// A plain function: a loop in the coroutine body would keep its iterators in the frame.
template <class Claim>
void fill_values(Claim& c) {
  for (auto [seq, ev] : c) ev.value = seq;
}

rondo::task<> publish_sequences_async(rondo::publisher<event>& pub, std::int64_t n,
                                      std::int64_t batch) {
  for (std::int64_t s = 0; s < n; s += batch) {
    auto c = co_await pub.coro().reserve(batch);
    fill_values(c);
    c.publish();
  }
}

void pipeline_rondo_runtime(benchmark::State& state) {
  const std::int64_t batch = state.range(0);
  const std::int64_t n = state.range(1);
  const auto stages = static_cast<int>(state.range(2));
  const bool coroutine_producer = state.range(3) != 0;
  // 0: the builder's default (placement::colocate: these light stages all on context 0);
  // 1: contiguous halves; 2: every stage on context 0 by hand; 3: placement::round_robin.
  const std::int64_t placement = state.range(4);
  const std::int64_t ring = state.range(5);
  bool ok = true;
  std::int64_t allocs = 0;
  std::int64_t suspensions = 0;
  std::int64_t last_batches = 0;
  // halves: stages 1..k/2 on context 0 (with the producer), the rest on context 1, so the
  // events cross cores once instead of at every stage. one context: nothing crosses cores, and
  // context 1 stays free (for I/O in a real program).
  const auto place = [&](auto& b, int i) {
    if (placement == 1) b.on(static_cast<std::size_t>((i - 1) * 2 / stages));
    if (placement == 2) b.on(0);
  };
  for (auto _ : state) {
    rondo_bench::sink_output out;
    rondo::runtime rt(2);
    auto b = rondo::disruptor<event>::builder();
    b.capacity(ring).wait(rondo::spin_then_suspend{}).metrics().executor(rt);
    if (placement == 3) b.placement(rondo::placement::round_robin);
    b.stage("s1", add_one_to_a{{&out}});
    place(b, 1);
    b.stage("s2", add_one_to_b{{&out}}, rondo::after("s1"));
    place(b, 2);
    std::string prev = "s2";
    for (int i = 3; i < stages; ++i) {
      std::string name = "s";
      name += std::to_string(i);
      b.stage(name, touch_b{{&out}}, rondo::after(prev));
      place(b, i);
      prev = name;
    }
    std::string last = "s";
    last += std::to_string(stages);
    b.stage(last, check_b{&out, n - 1}, rondo::after(prev));
    place(b, stages);
    auto d = b.build();
    d.start();
    out.started.await(stages);
    const rondo_bench::timed_run r = rondo_bench::time_region([&] {
      if (coroutine_producer) {
        rt.block_on(publish_sequences_async(d.publisher(), n, batch), 0);
      } else {
        rondo_bench::publish_sequences(d.publisher(), n, batch);
      }
      out.done.await();
    });
    allocs += r.allocs;
    state.SetIterationTime(r.seconds);
    d.drain();
    const auto reports = d.metrics();
    for (const auto& rep : reports) suspensions += rep.metrics.suspensions;
    last_batches += reports.back().metrics.batches;
    ok = ok && out.check.ok(n) && out.mismatch == 0 && reports.back().metrics.events == n;
  }
  if (!rondo_bench::verify(state, ok, "last stage saw wrong, missing or reordered events")) return;
  rondo_bench::report_events(state, n, allocs);
  state.counters["mean_batch_last"] = benchmark::Counter(
      static_cast<double>(state.iterations() * n) / static_cast<double>(last_batches));
  state.counters["suspensions/event"] = benchmark::Counter(
      static_cast<double>(suspensions) / static_cast<double>(state.iterations() * n));
}

// Stage scaling (bench/plot draws it): a chain of k = 1..8 stages that read every event (the
// last checks value == sequence), producer batch 32, on 2 cores: thread stages (one thread
// each, `yielding`, the best thread strategy when threads outnumber cores here) against
// coroutine stages on a two-context runtime with the producer as a coroutine on context 0.
struct touch_value : rondo_bench::counted_stage {
  std::int64_t sum = 0;
  void operator()(event& e, std::int64_t, bool) { sum += e.value; }
};
struct no_invariant {
  std::uint64_t operator()(const event&, std::int64_t) const noexcept { return 0; }
};

// Idle: a runtime of two contexts with 6 coroutine stages parked and no events. After the idle
// spin the contexts announce the waits and sleep in the kernel: the process should use next to
// no CPU. Reports the CPU time of the whole process over `window` as a percentage of one core.
double process_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

void idle_parked_stages(benchmark::State& state) {
  const auto window = std::chrono::milliseconds(state.range(0));
  double cpu_percent = 0;
  std::uint64_t fences = 0;
  for (auto _ : state) {
    rondo_bench::sink_output out;
    rondo::runtime rt(2);
    auto b = rondo::disruptor<event>::builder();
    b.capacity(capacity).wait(rondo::spin_then_suspend{}).executor(rt);
    b.stage("s1", add_one_to_a{{&out}});
    b.stage("s2", add_one_to_b{{&out}}, rondo::after("s1"));
    rondo::stage_options heavy;
    heavy.heavy = true;  // spread: both contexts hold parked stages
    b.stage("s3", touch_b{{&out}}, rondo::after("s2"), heavy);
    b.stage("s4", touch_b{{&out}}, rondo::after("s3"));
    b.stage("s5", touch_b{{&out}}, rondo::after("s4"), heavy);
    b.stage("s6", check_b{&out, -1}, rondo::after("s5"));
    auto d = b.build();
    d.start();
    out.started.await(6);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // past the idle spin
    std::uint64_t f0 = 0;
    for (std::size_t i = 0; i < 2; ++i) f0 += rt.context(i).parking()->sleep_fences();
    const double c0 = process_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(window);
    const double c1 = process_cpu_seconds();
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (std::size_t i = 0; i < 2; ++i) fences += rt.context(i).parking()->sleep_fences();
    fences -= f0;
    cpu_percent += 100.0 * (c1 - c0) / wall;
    state.SetIterationTime(wall);
    d.drain();
  }
  state.counters["cpu_percent_of_one_core"] =
      cpu_percent / static_cast<double>(state.iterations());
  state.counters["membarriers"] = static_cast<double>(fences);
}

void stage_scaling(benchmark::State& state) {
  const bool coroutines = state.range(0) != 0;
  const auto stages = static_cast<int>(state.range(1));
  constexpr std::int64_t batch = 32;
  const std::int64_t n = rondo_bench::n_events;
  bool ok = true;
  for (auto _ : state) {
    rondo_bench::sink_output out;
    std::optional<rondo::runtime> rt;
    auto b = rondo::disruptor<event>::builder();
    b.capacity(capacity);
    if (coroutines) {
      rt.emplace(2);
      b.wait(rondo::spin_then_suspend{}).executor(*rt);
    } else {
      b.wait(rondo::yielding{});
    }
    std::string prev;
    for (int i = 1; i < stages; ++i) {
      std::string name = "s";
      name += std::to_string(i);
      if (prev.empty()) {
        b.stage(name, touch_value{{&out}});
      } else {
        b.stage(name, touch_value{{&out}}, rondo::after(prev));
      }
      prev = name;
    }
    using check_value = rondo_bench::checking_sink<event, no_invariant>;
    if (prev.empty()) {
      b.stage("last", check_value{&out, n - 1});
    } else {
      b.stage("last", check_value{&out, n - 1}, rondo::after(prev));
    }
    auto d = b.build();
    d.start();
    out.started.await(stages);
    const rondo_bench::timed_run r = rondo_bench::time_region([&] {
      if (coroutines) {
        rt->block_on(publish_sequences_async(d.publisher(), n, batch), 0);
      } else {
        rondo_bench::publish_sequences(d.publisher(), n, batch);
      }
      out.done.await();
    });
    state.SetIterationTime(r.seconds);
    d.drain();
    ok = ok && out.check.ok(n) && out.mismatch == 0;
  }
  if (!rondo_bench::verify(state, ok, "last stage saw wrong, missing or reordered events")) return;
  rondo_bench::report_events(state, n, 0);
}

// ---------------------------------------------------------------------------------------------
// Queue chains. A link moves int64 values between two stage threads.

using boost_queue = boost::lockfree::spsc_queue<std::int64_t, boost::lockfree::capacity<capacity>>;

// boost::lockfree::spsc_queue; yields at once when empty or full.
using boost_link = rondo_bench::yielding_link<boost_queue>;

// mutex + condition_variable queue; blocks when empty or full.
struct mutex_link {
  rondo_bench::mutex_queue<std::int64_t> q{static_cast<std::size_t>(capacity)};

  std::size_t take(std::int64_t* out, std::size_t max) { return q.pop(out, max); }
  void give(const std::int64_t* in, std::size_t n) { q.push(in, n); }
};

template <class Link>
void pipeline_queues(benchmark::State& state) {
  const std::int64_t batch = state.range(0);
  const std::int64_t n = state.range(1);
  bool ok = true;
  std::int64_t allocs = 0;
  std::int64_t takes = 0;
  for (auto _ : state) {
    std::array<Link, 3> links;
    rondo_bench::countdown started;
    flag done;
    rondo_bench::in_order_check result;  // s3's own check, copied out when it is done
    std::int64_t sink_takes = 0;
    // s1 and s2: take, add one, pass on.
    std::thread s1 = rondo_bench::start_thread(-1, [&] {
      started.arrive();
      rondo_bench::relay<1>(links[0], links[1], n);
    });
    std::thread s2 = rondo_bench::start_thread(-1, [&] {
      started.arrive();
      rondo_bench::relay<1>(links[1], links[2], n);
    });
    std::thread s3 = rondo_bench::start_thread(-1, [&] {
      started.arrive();
      std::array<std::int64_t, take_max> buf{};
      rondo_bench::in_order_check check;  // on s3's stack: no line shared with other threads
      std::int64_t takes_here = 0;
      while (check.next < n) {
        const std::size_t k = links[2].take(buf.data(), buf.size());
        if (k > 0) ++takes_here;
        for (std::size_t i = 0; i < k; ++i) check.add(buf[i] - 2);
      }
      result = check;
      sink_takes = takes_here;
      done.raise();
    });
    started.await(3);
    const rondo_bench::timed_run r = rondo_bench::time_region([&] {
      rondo_bench::produce_batches<take_max>(
          n, batch, [&](const std::int64_t* p, std::size_t k) { links[0].give(p, k); });
      done.await();
    });
    allocs += r.allocs;
    state.SetIterationTime(r.seconds);
    s1.join();
    s2.join();
    s3.join();
    takes += sink_takes;
    ok = ok && result.ok(n);
  }
  if (!rondo_bench::verify(state, ok, "last stage saw wrong, missing or reordered values")) return;
  rondo_bench::report_events(state, n, allocs);
  rondo_bench::report_mean_batch(state, "mean_batch_s3", state.iterations() * n, takes);
}

void pipeline_boost_spsc(benchmark::State& state) {
  pipeline_queues<boost_link>(state);
}
void pipeline_mutex_cv(benchmark::State& state) {
  pipeline_queues<mutex_link>(state);
}

using rondo_bench::fast_args;
using rondo_bench::slow_args;
void slowest_args(benchmark::internal::Benchmark* b) {
  rondo_bench::batch_events_args(b, rondo_bench::n_slow / 2, 2);
}

}  // namespace

BENCHMARK_CAPTURE(pipeline_rondo, busy_spin, rondo::wait_config{rondo::busy_spin{}})
    ->Apply(slow_args);
BENCHMARK_CAPTURE(pipeline_rondo, yielding, rondo::wait_config{rondo::yielding{}})
    ->Apply(fast_args);
BENCHMARK_CAPTURE(pipeline_rondo, sleeping, rondo::wait_config{rondo::sleeping{}})
    ->Apply(fast_args);
BENCHMARK_CAPTURE(pipeline_rondo, blocking, rondo::wait_config{rondo::blocking{}})
    ->Apply(slowest_args);
BENCHMARK(pipeline_rondo_coroutine)
    ->ArgNames({"batch", "events", "executors"})
    ->Args({1, rondo_bench::n_events, 1})
    ->Args({32, rondo_bench::n_events, 1})
    ->Args({1, rondo_bench::n_events, 2})
    ->Args({32, rondo_bench::n_events, 2})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);
BENCHMARK(pipeline_rondo_runtime)
    ->ArgNames({"batch", "events", "stages", "coro_producer", "placement", "ring"})
    ->Args({1, rondo_bench::n_events, 3, 1, 0, capacity})
    ->Args({32, rondo_bench::n_events, 3, 1, 0, capacity})
    ->Args({32, rondo_bench::n_events, 3, 1, 1, capacity})
    ->Args({32, rondo_bench::n_events, 3, 1, 2, capacity})
    ->Args({256, rondo_bench::n_events, 3, 1, 2, capacity})
    ->Args({32, rondo_bench::n_events, 3, 1, 1, 4096})
    ->Args({256, rondo_bench::n_events, 3, 1, 1, 4096})
    ->Args({32, rondo_bench::n_events, 3, 0, 0, capacity})
    ->Args({32, rondo_bench::n_events, 6, 1, 0, capacity})
    ->Args({32, rondo_bench::n_events, 6, 1, 1, capacity})
    ->Args({32, rondo_bench::n_events, 6, 1, 1, 4096})
    ->Args({32, rondo_bench::n_events, 6, 1, 2, capacity})
    ->Args({32, rondo_bench::n_events, 3, 1, 3, capacity})
    ->Args({32, rondo_bench::n_events, 6, 1, 3, capacity})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);
BENCHMARK(idle_parked_stages)
    ->ArgNames({"window_ms"})
    ->Arg(5000)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK(stage_scaling)
    ->ArgNames({"coroutines", "stages"})
    ->ArgsProduct({{0, 1}, {1, 2, 3, 4, 6, 8}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(2);
BENCHMARK(pipeline_boost_spsc)->Apply(fast_args);
BENCHMARK(pipeline_mutex_cv)->Apply(slow_args);
