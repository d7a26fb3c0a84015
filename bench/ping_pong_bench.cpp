// ping_pong: round-trip latency between two threads, one event in flight at a time.
//
//   pinger (benchmark thread, CPU a)                       ponger (CPU b)
//   t0 = ticks; send i ────── ping ring / queue ──────▶   receive i
//   receive i ◀────────────── pong ring / queue ───────   send i back
//   t1 = ticks; sample = t1 - t0
//
// Competitors, all in this binary, all busy-spinning on both sides:
//   harness_atomics  the floor: two std::atomic<int64_t> on separate lines (store, spin on the
//                    other); one cache line bounced each way per round trip
//   rondo_dsl        two rondo::disruptor<int64_t> (busy_spin, 1,024 slots): "ping" has a thread
//                    stage "echo" whose handler publishes into "pong" (publisher::publish_event);
//                    "pong" has a poller stage that the pinger polls
//   rondo_dsl_stamped rondo_dsl with slot stamps (builder::stamps): both sides wait on the
//                    event's own cache line, not the cursor (16-byte events {value, stamp});
//                    rondo_coroutine_stamped: the same for the coroutine rows
//   rondo_core       the same from core parts: two ring_buffer + single_producer_sequencer pairs,
//                    an event_poller on each side, the ponger on a thread of our own
//   boost_spsc       two boost::lockfree::spsc_queue (1,024 slots)
//   rondo_coroutine  rondo_dsl with the echo stage as a coroutine on a thread_scheduler: /spin
//                    spins (spin_then_suspend), /park parks every round (see below)
//
// Pinning: pinger and ponger on the first two allowed CPUs (pthread_setaffinity_np). Samples:
// rdtsc on x86 (steady_clock elsewhere), converted to ns with a calibration against
// steady_clock over the whole measured run; 20,000 warm-up round trips, then 500,000 recorded
// into a pre-allocated array and sorted. Counters: p50_ns, p99_ns, p999_ns, mean_ns; items/s is
// round trips per second (the percentiles are those of the last iteration; one is run).
// Verification: every reply must carry the value just sent.
// The coroutine rows also report one_way_p50_ns / one_way_p99_ns: from the tick before the
// publish to the tick at which the woken stage's handler runs (the wake-up alone).
// Targets (DESIGN.md 6): p50 <= 350 ns, p99 <= 600 ns.
// (One file above ~400 lines on purpose: every competitor of a same-run ratio lives in the binary
// that measures it, so that they share the harness, the pinning and the run order.)

#include "bench_support.hpp"

#include <rondo/core/event_poller.hpp>
#include <rondo/core/ring_buffer.hpp>
#include <rondo/core/single_producer_sequencer.hpp>
#include <rondo/core/wait_strategy.hpp>
#include <rondo/coro/scheduler.hpp>
#include <rondo/disruptor.hpp>

#include <benchmark/benchmark.h>
#include <boost/lockfree/spsc_queue.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

namespace {

using rondo_bench::flag;

constexpr std::int64_t capacity = 1024;
constexpr std::int64_t warmup_rounds = 20'000;
constexpr std::int64_t measured_rounds = 500'000;
constexpr std::int64_t total_rounds = warmup_rounds + measured_rounds;

[[nodiscard]] inline std::uint64_t ticks() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  return __rdtsc();
#else
  return static_cast<std::uint64_t>(rondo_bench::clock::now().time_since_epoch().count());
#endif
}

// Collects one run's samples and turns them into counters.
class latency_recorder {
 public:
  explicit latency_recorder(std::int64_t warmup = warmup_rounds,
                            std::int64_t measured = measured_rounds)
      : warmup_(warmup), measured_(measured), samples_(static_cast<std::size_t>(measured)) {}

  [[nodiscard]] std::int64_t total() const noexcept { return warmup_ + measured_; }

  // Called with the round number before the round; starts the calibration window at the first
  // measured round.
  void begin_round(std::int64_t i) noexcept {
    if (i == warmup_) {
      wall0_ = rondo_bench::clock::now();
      tick0_ = ticks();
    }
  }
  void record(std::int64_t i, std::uint64_t dt) noexcept {
    if (i >= warmup_) samples_[static_cast<std::size_t>(i - warmup_)] = dt;
  }
  // Ends the calibration window.
  void finish() noexcept {
    const std::uint64_t tick1 = ticks();
    const auto wall1 = rondo_bench::clock::now();
    secs_ = rondo_bench::seconds_between(wall0_, wall1);
    ns_per_tick_ = secs_ * 1e9 / static_cast<double>(tick1 - tick0_);
    std::sort(samples_.begin(), samples_.end());
  }
  // Nanoseconds per tick (after finish()).
  [[nodiscard]] double ns_per_tick() const noexcept { return ns_per_tick_; }
  // The measured wall time in seconds (after finish()).
  [[nodiscard]] double seconds() const noexcept { return secs_; }
  void report(benchmark::State& state) const {
    auto at = [&](double q) {
      const auto k = static_cast<std::size_t>(q * static_cast<double>(samples_.size() - 1));
      return benchmark::Counter(static_cast<double>(samples_[k]) * ns_per_tick_);
    };
    state.counters["p50_ns"] = at(0.50);
    state.counters["p99_ns"] = at(0.99);
    state.counters["p999_ns"] = at(0.999);
    state.counters["mean_ns"] =
        benchmark::Counter(secs_ * 1e9 / static_cast<double>(measured_));
  }

 private:
  std::int64_t warmup_;
  std::int64_t measured_;
  std::vector<std::uint64_t> samples_;
  rondo_bench::clock::time_point wall0_{};
  std::uint64_t tick0_ = 0;
  double ns_per_tick_ = 1.0;
  double secs_ = 0;
};

// Drives total_rounds round trips: send(i) then wait until receive() returns a value, which must
// be i. Returns false on a wrong reply.
template <class Send, class Receive>
bool ping_rounds(latency_recorder& rec, Send&& send, Receive&& receive) {
  for (std::int64_t i = 0; i < rec.total(); ++i) {
    rec.begin_round(i);
    const std::uint64_t t0 = ticks();
    send(i);
    std::int64_t got = -1;
    while (!receive(got)) rondo_bench::spin_pause();
    const std::uint64_t t1 = ticks();
    rec.record(i, t1 - t0);
    if (got != i) return false;
  }
  return true;
}

// The ponger's loop: total_rounds times, waits until receive(v) returns a value and send(v)s it
// back.
template <class Receive, class Send>
void echo_rounds(Receive&& receive, Send&& send) {
  std::int64_t v = 0;
  for (std::int64_t i = 0; i < total_rounds; ++i) {
    while (!receive(v)) rondo_bench::spin_pause();
    send(v);
  }
}

// The benchmark loop, pinned to the first CPU: round(rec, cpu_b) starts the ponger on cpu_b, runs
// ping_rounds, calls rec.finish(), stops the ponger and returns ping_rounds' verdict.
template <class Round>
void latency_bench(benchmark::State& state, Round&& round,
                   std::int64_t warmup = warmup_rounds, std::int64_t measured = measured_rounds) {
  const auto [cpu_a, cpu_b] = rondo_bench::pair_cpus();
  rondo_bench::scoped_pin pin(cpu_a);
  for (auto _ : state) {
    latency_recorder rec(warmup, measured);
    const bool ok = round(rec, cpu_b);
    state.SetIterationTime(rec.seconds());
    if (!rondo_bench::verify(state, ok, "wrong reply")) return;
    rec.report(state);
  }
  state.SetItemsProcessed(state.iterations() * measured);
}

// ---------------------------------------------------------------------------------------------
// The floor: two atomics.

struct alignas(rondo_bench::line) padded_atomic {
  std::atomic<std::int64_t> v{-1};
};

void ping_pong_harness_atomics(benchmark::State& state) {
  latency_bench(state, [](latency_recorder& rec, int cpu_b) {
    padded_atomic ping;
    padded_atomic pong;
    std::thread ponger = rondo_bench::start_thread(cpu_b, [&] {
      for (std::int64_t i = 0; i < total_rounds; ++i) {
        // Acquire: pairs with the pinger's release store of i.
        while (ping.v.load(std::memory_order_acquire) != i) rondo_bench::spin_pause();
        // Release: pairs with the pinger's acquire load of the reply.
        pong.v.store(i, std::memory_order_release);
      }
    });
    std::int64_t last_reply = -1;
    const bool ok = ping_rounds(
        rec,
        // Release: pairs with the ponger's acquire load.
        [&](std::int64_t i) { ping.v.store(i, std::memory_order_release); },
        [&](std::int64_t& got) {
          // Acquire: pairs with the ponger's release store. A reply is a changed value.
          const std::int64_t v = pong.v.load(std::memory_order_acquire);
          if (v == last_reply) return false;
          got = last_reply = v;
          return true;
        });
    rec.finish();
    ponger.join();
    return ok;
  });
}

// ---------------------------------------------------------------------------------------------
// rondo through the DSL.

// rondo's rows with slot stamps (builder::stamps, core/slot_stamp.hpp): the stages right behind
// each producer wait on the event's own line instead of the cursor, so each hop moves one line.
struct stamped_value {
  std::int64_t v = 0;
  rondo::slot_stamp stamp;
};

[[nodiscard]] inline std::int64_t& value_of(std::int64_t& ev) noexcept { return ev; }
[[nodiscard]] inline std::int64_t& value_of(stamped_value& ev) noexcept { return ev.v; }

// A builder for the rows' rings: `Event` stamped_value turns the stamps on.
template <class Event>
[[nodiscard]] typename rondo::disruptor<Event>::builder ring_builder() {
  typename rondo::disruptor<Event>::builder b;
  b.capacity(capacity);
  if constexpr (std::is_same_v<Event, stamped_value>) b.stamps(&stamped_value::stamp);
  return b;
}

template <class Event>
struct basic_echo_stage {
  rondo::publisher<Event>* reply;
  int cpu;
  flag* ready;
  // When set: the tick at which the stage saw round i (one-way latency, coroutine rows).
  std::vector<std::uint64_t>* arrived = nullptr;

  void on_start() {
    (void)rondo_bench::pin_current_thread(cpu);
    ready->raise();
  }
  void operator()(Event& ev, std::int64_t, bool) {
    const std::int64_t v = value_of(ev);
    if (arrived != nullptr) (*arrived)[static_cast<std::size_t>(v)] = ticks();
    reply->publish_event([&](Event& out, std::int64_t) { value_of(out) = v; });
  }
};

template <class Event>
void ping_pong_rondo_dsl(benchmark::State& state) {
  latency_bench(state, [](latency_recorder& rec, int cpu_b) {
    flag ready;
    auto pong = ring_builder<Event>().wait(rondo::busy_spin{}).poller("reply").build();
    auto ping = ring_builder<Event>()
                    .wait(rondo::busy_spin{})
                    .stage("echo", basic_echo_stage<Event>{&pong.publisher(), cpu_b, &ready})
                    .build();
    pong.start();
    ping.start();
    ready.await();
    rondo::event_poller<Event>& replies = pong.poller("reply");
    auto& pub = ping.publisher();
    const bool ok = ping_rounds(
        rec,
        [&](std::int64_t i) { pub.publish_event([&](Event& ev, std::int64_t) { value_of(ev) = i; }); },
        [&](std::int64_t& got) {
          bool any = false;
          (void)replies.poll([&](Event& ev, std::int64_t, bool) {
            got = value_of(ev);
            any = true;
            return true;
          });
          return any;
        });
    rec.finish();
    ping.drain();
    pong.drain();
    return ok;
  });
}

// ---------------------------------------------------------------------------------------------
// rondo with the echo stage as a coroutine on a thread_scheduler (pinned to CPU b by on_start).
//   spin:          spin_then_suspend{.spins = 1 << 20}: the stage spins like a thread stage would
//   park_polling:  spin_then_suspend{.spins = 0, .yields = 0}: every round the stage parks on its
//                  executor, which polls it during its idle spin (50 us): publish -> the
//                  executor's poll sees it -> resume -> reply, no kernel, no fence
//   park_sleeping: the same with the executor's idle spin 0: every round it announces the wait,
//                  runs its membarrier and sleeps on its futex, so a round trip is publish ->
//                  registry -> futex wake -> resume -> reply (fewer rounds: ~50 us each)

template <class Event>
void coroutine_rounds(benchmark::State& state, std::uint32_t spins,
                      std::chrono::nanoseconds idle_spin) {
  const bool sleeps = spins == 0 && idle_spin.count() == 0;
  const std::int64_t warmup = sleeps ? 1'000 : warmup_rounds;
  const std::int64_t measured = sleeps ? 20'000 : measured_rounds;
  // One way: the tick before the publish (pinger) and the tick at which the stage's handler
  // runs (echo), on two CPUs; the TSC is invariant and synchronised across them on this host
  // (the spin row's one-way p50 is half its round trip, which checks it).
  std::vector<std::uint64_t> sent(static_cast<std::size_t>(warmup + measured));
  std::vector<std::uint64_t> arrived(sent.size());
  double one_way_p50_ns = 0;
  double one_way_p99_ns = 0;
  latency_bench(
      state,
      [&, spins, idle_spin](latency_recorder& rec, int cpu_b) {
        flag ready;
        rondo::thread_scheduler exec{idle_spin};
        rondo::spin_then_suspend policy;
        policy.spins = spins;
        policy.yields = 0;
        auto pong = ring_builder<Event>().wait(rondo::busy_spin{}).poller("reply").build();
        auto ping =
            ring_builder<Event>()
                .wait(policy)
                .metrics()
                .stage("echo", basic_echo_stage<Event>{&pong.publisher(), cpu_b, &ready, &arrived})
                .on(exec)
                .build();
        pong.start();
        ping.start();
        ready.await();
        rondo::event_poller<Event>& replies = pong.poller("reply");
        auto& pub = ping.publisher();
        const bool ok = ping_rounds(
            rec,
            [&](std::int64_t i) {
              sent[static_cast<std::size_t>(i)] = ticks();
              pub.publish_event([&](Event& ev, std::int64_t) { value_of(ev) = i; });
            },
            [&](std::int64_t& got) {
              bool any = false;
              (void)replies.poll([&](Event& ev, std::int64_t, bool) {
                got = value_of(ev);
                any = true;
                return true;
              });
              return any;
            });
        rec.finish();
        ping.drain();
        pong.drain();
        std::vector<std::int64_t> one_way;
        one_way.reserve(static_cast<std::size_t>(measured));
        for (auto i = static_cast<std::size_t>(warmup); i < sent.size(); ++i) {
          one_way.push_back(static_cast<std::int64_t>(arrived[i] - sent[i]));
        }
        std::sort(one_way.begin(), one_way.end());
        auto at = [&](double q) {
          const auto k = static_cast<std::size_t>(q * static_cast<double>(one_way.size() - 1));
          return static_cast<double>(one_way[k]) * rec.ns_per_tick();
        };
        one_way_p50_ns = at(0.50);
        one_way_p99_ns = at(0.99);
        return ok;
      },
      warmup, measured);
  state.counters["one_way_p50_ns"] = one_way_p50_ns;
  state.counters["one_way_p99_ns"] = one_way_p99_ns;
}

void ping_pong_rondo_coroutine(benchmark::State& state, std::uint32_t spins,
                               std::chrono::nanoseconds idle_spin) {
  coroutine_rounds<std::int64_t>(state, spins, idle_spin);
}
void ping_pong_rondo_coroutine_stamped(benchmark::State& state, std::uint32_t spins,
                                       std::chrono::nanoseconds idle_spin) {
  coroutine_rounds<stamped_value>(state, spins, idle_spin);
}

// ---------------------------------------------------------------------------------------------
// rondo from core parts: ring + sequencer + poller on each side.

struct core_channel {
  rondo::wait_strategy waits{rondo::busy_spin{}};
  rondo::ring_buffer<std::int64_t> ring{capacity};
  rondo::single_producer_sequencer seqr{capacity, waits};
  rondo::event_poller<std::int64_t> poller{ring, seqr};

  core_channel() { seqr.add_gating_sequence(poller.position()); }

  void send(std::int64_t v) {
    const std::int64_t s = seqr.reserve(1);
    ring[s] = v;
    seqr.publish(s, s);
  }
  // Takes one value if one is there.
  bool receive(std::int64_t& out) {
    bool any = false;
    (void)poller.poll([&](std::int64_t& ev, std::int64_t, bool) {
      out = ev;
      any = true;
      return false;  // one event per poll
    });
    return any;
  }
};

void ping_pong_rondo_core(benchmark::State& state) {
  latency_bench(state, [](latency_recorder& rec, int cpu_b) {
    auto ping = std::make_unique<core_channel>();
    auto pong = std::make_unique<core_channel>();
    std::thread ponger = rondo_bench::start_thread(cpu_b, [&] {
      echo_rounds([&](std::int64_t& v) { return ping->receive(v); },
                  [&](std::int64_t v) { pong->send(v); });
    });
    const bool ok = ping_rounds(
        rec, [&](std::int64_t i) { ping->send(i); },
        [&](std::int64_t& got) { return pong->receive(got); });
    rec.finish();
    ponger.join();
    return ok;
  });
}

// ---------------------------------------------------------------------------------------------
// boost::lockfree::spsc_queue pair.

using boost_queue = boost::lockfree::spsc_queue<std::int64_t, boost::lockfree::capacity<capacity>>;

void ping_pong_boost_spsc(benchmark::State& state) {
  latency_bench(state, [](latency_recorder& rec, int cpu_b) {
    auto ping = std::make_unique<boost_queue>();
    auto pong = std::make_unique<boost_queue>();
    std::thread ponger = rondo_bench::start_thread(cpu_b, [&] {
      echo_rounds([&](std::int64_t& v) { return ping->pop(v); },
                  [&](std::int64_t v) {
                    while (!pong->push(v)) rondo_bench::spin_pause();
                  });
    });
    const bool ok = ping_rounds(
        rec,
        [&](std::int64_t i) {
          while (!ping->push(i)) rondo_bench::spin_pause();
        },
        [&](std::int64_t& got) { return pong->pop(got); });
    rec.finish();
    ponger.join();
    return ok;
  });
}

void latency_args(benchmark::internal::Benchmark* b) {
  b->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);
}

}  // namespace

BENCHMARK(ping_pong_harness_atomics)->Apply(latency_args);
BENCHMARK_TEMPLATE(ping_pong_rondo_dsl, std::int64_t)->Name("ping_pong_rondo_dsl")->Apply(latency_args);
BENCHMARK_TEMPLATE(ping_pong_rondo_dsl, stamped_value)
    ->Name("ping_pong_rondo_dsl_stamped")
    ->Apply(latency_args);
BENCHMARK(ping_pong_rondo_core)->Apply(latency_args);
BENCHMARK_CAPTURE(ping_pong_rondo_coroutine, spin, 1U << 20, std::chrono::microseconds(50))
    ->Apply(latency_args);
BENCHMARK_CAPTURE(ping_pong_rondo_coroutine, park_polling, 0U, std::chrono::microseconds(50))
    ->Apply(latency_args);
BENCHMARK_CAPTURE(ping_pong_rondo_coroutine, park_sleeping, 0U, std::chrono::microseconds(0))
    ->Apply(latency_args);
BENCHMARK_CAPTURE(ping_pong_rondo_coroutine_stamped, spin, 1U << 20,
                  std::chrono::microseconds(50))
    ->Apply(latency_args);
BENCHMARK_CAPTURE(ping_pong_rondo_coroutine_stamped, park_polling, 0U,
                  std::chrono::microseconds(50))
    ->Apply(latency_args);
BENCHMARK(ping_pong_boost_spsc)->Apply(latency_args);
