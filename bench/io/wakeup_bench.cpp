// wakeup_bench.cpp: io_bench's wake-up rows, a context (or a thread) woken by another and
// woken back, against futexes and spinning threads. Registered in io_bench.cpp.
//
// 1. Wake-up round trip (latency; p50 / p99 / p99.9 / mean in ns, rdtsc samples calibrated
//    against steady_clock, sorted after the run):
//
//      side A (CPU a)                               side B (CPU b)
//      t0 = ticks; wake B ─────────────────────▶   woken: wake A
//      woken ◀──────────────────────────────────   (back to waiting)
//      t1 = ticks; sample = t1 - t0
//
//    wakeup_busy_spin       two threads spinning on two std::atomic words: the floor
//    wakeup_futex           two threads, each asleep in FUTEX_WAIT on its own word; the waker
//                           stores then FUTEX_WAKEs: two kernel wake-ups per round trip, the
//                           baseline every sleeping executor pays. Each side waits 20 us before
//                           it posts so the other is asleep (the wait is not in the sample).
//    wakeup_rondo/sleeping  a coroutine hops between two io_contexts (rondo::runtime, 2 threads,
//                           idle_spin = 0) with co_await other.schedule(): every hop is a post()
//                           to a context asleep in io_uring_submit_and_wait, woken by its
//                           doorbell: an IORING_OP_MSG_RING from the poster's ring (the
//                           default between contexts). The coroutine waits 20 us on each side
//                           before it posts, so the other context has finished its idle loop
//                           and sleeps; that wait is not in the sample.
//    wakeup_rondo/sleeping_eventfd  the same with io_options::msg_ring_doorbell off: the
//                           doorbell is the woken context's eventfd (a read armed on its ring),
//                           the path plain threads always take. msg_ring_doorbells and
//                           eventfd_doorbells count which path the rows really took.
//    wakeup_rondo/polling   the same with the default idle_spin (50 us) and no wait: the contexts
//                           are still polling their queues when the post lands: no kernel
//                           involved
//    sleeps/round: voluntary context switches of both threads (getrusage) per measured round:
//    ~2 where both sides really slept, ~0 where they spun. (The Time column of the two rows with
//    waits includes them; the percentiles do not.)
//    rondo/futex_p50 (and _p99), on the sleeping row: its percentile over wakeup_futex's from
//    this same process run. wakeup_futex is registered first and benchmarks run in
//    registration order, so its numbers are there (the ratios are absent when a filter
//    skipped it).
// (Above ~400 lines: one benchmark, whose rows and their description belong together.)

#include "io_bench_rows.hpp"
#include "io_bench_support.hpp"

#include <rondo/coro/task.hpp>
#include <rondo/io/io_context.hpp>
#include <rondo/io/runtime.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <linux/futex.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

namespace rondo_io_bench {
namespace {

// Same-run baseline (benchmarks run one after another on the main thread, in registration
// order): wakeup_futex stores its percentiles here, wakeup_rondo/sleeping reports its ratios.
double futex_p50_ns = 0;
double futex_p99_ns = 0;

[[nodiscard]] inline std::uint64_t ticks() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  return __rdtsc();
#else
  return static_cast<std::uint64_t>(clock::now().time_since_epoch().count());
#endif
}

// How many round trips a row makes: kernel wake-ups take tens of microseconds each, so the
// sleeping rows make fewer.
struct latency_plan {
  std::int64_t warmup;
  std::int64_t measured;
};
constexpr latency_plan spin_plan{20'000, 500'000};
constexpr latency_plan polling_plan{20'000, 200'000};
constexpr latency_plan sleeping_plan{500, 10'000};

// In wakeup_futex and wakeup_rondo/sleeping each side waits this long before it posts, so the
// thread it wakes is really asleep: even with idle_spin = 0 a context polls 64 times and calls
// io_uring_get_events once before it sleeps (src/io/run_loop.cpp, wait_for_work), a few
// microseconds, longer than a polled hop; and a futex waiter woken before it got off its CPU
// costs no real wake-up. The waits are not in the samples (each side times its own with its
// own TSC). Both rows then count ~2 sleeps per round.
constexpr auto sleep_gap = std::chrono::microseconds(20);

// One run's samples: rounds [0, warmup) are not kept; the calibration window (ticks to ns)
// spans the measured rounds. Used by one thread at a time.
class round_trip_samples {
 public:
  explicit round_trip_samples(latency_plan p)
      : warmup_(p.warmup), measured_(p.measured), samples_(static_cast<std::size_t>(p.measured)) {}

  [[nodiscard]] std::int64_t total() const noexcept { return warmup_ + measured_; }

  // Before round i: the first measured round opens the calibration window.
  void begin_round(std::int64_t i) noexcept {
    if (i != warmup_) return;
    wall0_ = clock::now();
    tick0_ = ticks();
  }
  void record(std::int64_t i, std::uint64_t dt) noexcept {
    if (i >= warmup_) samples_[static_cast<std::size_t>(i - warmup_)] = dt;
  }
  // After the last round: closes the window and sorts the samples.
  void finish() {
    const std::uint64_t tick1 = ticks();
    const auto wall1 = clock::now();
    seconds_ = rondo_bench::seconds_between(wall0_, wall1);
    const std::uint64_t dt = tick1 > tick0_ ? tick1 - tick0_ : 1;
    ns_per_tick_ = seconds_ * 1e9 / static_cast<double>(dt);
    double sum = 0;
    for (const std::uint64_t v : samples_) sum += static_cast<double>(v);
    mean_ns_ = sum * ns_per_tick_ / static_cast<double>(measured_);
    std::sort(samples_.begin(), samples_.end());
  }
  // Voluntary context switches of both sides over the measured rounds: 2 per round when both
  // sides really went to sleep, 0 when they spun.
  void set_switches(long n) noexcept {
    sleeps_per_round_ = static_cast<double>(n) / static_cast<double>(measured_);
  }
  [[nodiscard]] std::int64_t warmup() const noexcept { return warmup_; }

  [[nodiscard]] double seconds() const noexcept { return seconds_; }
  [[nodiscard]] double quantile_ns(double q) const noexcept {
    const auto k = static_cast<std::size_t>(q * static_cast<double>(samples_.size() - 1));
    return static_cast<double>(samples_[k]) * ns_per_tick_;
  }
  void report(benchmark::State& state) const {
    state.counters["p50_ns"] = quantile_ns(0.50);
    state.counters["p99_ns"] = quantile_ns(0.99);
    state.counters["p999_ns"] = quantile_ns(0.999);
    state.counters["mean_ns"] = mean_ns_;
    state.counters["sleeps/round"] = sleeps_per_round_;
  }

 private:
  std::int64_t warmup_;
  std::int64_t measured_;
  std::vector<std::uint64_t> samples_;
  clock::time_point wall0_{};
  std::uint64_t tick0_ = 0;
  double ns_per_tick_ = 1.0;
  double seconds_ = 0;
  double mean_ns_ = 0;
  double sleeps_per_round_ = 0;
};

// The calling thread's voluntary context switches so far (each sleep in the kernel is one).
long voluntary_switches() noexcept {
  ::rusage ru{};
  (void)::getrusage(RUSAGE_THREAD, &ru);
  return ru.ru_nvcsw;
}

// Busy-waits for d (the thread stays on its CPU and the other side's context falls asleep).
void spin_for(std::chrono::nanoseconds d) noexcept {
  const auto until = clock::now() + d;
  while (clock::now() < until) rondo_bench::spin_pause();
}

// Runs round(samples) once per iteration; round returns an error text, empty when all went well.
template <class Round>
void wakeup_bench(benchmark::State& state, latency_plan plan, Round&& round) {
  for (auto _ : state) {
    round_trip_samples rec(plan);
    std::string error;
    try {
      error = round(rec);
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!error.empty()) {
      state.SkipWithError(error.c_str());
      return;
    }
    state.SetIterationTime(rec.seconds());
    rec.report(state);
  }
  state.SetItemsProcessed(state.iterations() * plan.measured);
}

// (a) Two threads spinning on two words.

struct alignas(rondo_bench::line) spin_word {
  std::atomic<std::int64_t> v{-1};
};

}  // namespace

void wakeup_busy_spin(benchmark::State& state) {
  wakeup_bench(state, spin_plan, [](round_trip_samples& rec) -> std::string {
    const std::pair<int, int> cpus = rondo_bench::pair_cpus();
    const rondo_bench::scoped_pin pin(cpus.first);
    spin_word ping;
    spin_word pong;
    const std::int64_t rounds = rec.total();
    const std::int64_t warmup = rec.warmup();
    long echo_switches = 0;  // read after the join
    std::thread echo = rondo_bench::start_thread(cpus.second, [&, rounds, warmup] {
      for (std::int64_t i = 0; i < rounds; ++i) {
        if (i == warmup) echo_switches = -voluntary_switches();
        // Acquire: pairs with the release store of i by side A.
        while (ping.v.load(std::memory_order_acquire) != i) rondo_bench::spin_pause();
        // Release: pairs with side A's acquire load of the reply.
        pong.v.store(i, std::memory_order_release);
      }
      echo_switches += voluntary_switches();
    });
    long switches = 0;
    for (std::int64_t i = 0; i < rounds; ++i) {
      if (i == warmup) switches = -voluntary_switches();
      rec.begin_round(i);
      const std::uint64_t t0 = ticks();
      // Release: pairs with side B's acquire load.
      ping.v.store(i, std::memory_order_release);
      // Acquire: pairs with side B's release store of the reply.
      while (pong.v.load(std::memory_order_acquire) != i) rondo_bench::spin_pause();
      rec.record(i, ticks() - t0);
    }
    switches += voluntary_switches();
    rec.finish();
    echo.join();
    rec.set_switches(switches + echo_switches);
    return {};
  });
}

namespace {

// (b) Two threads, each asleep on its own futex word. Round i stores i + 1 (0 is "nothing yet").

struct alignas(rondo_bench::line) futex_word {
  alignas(std::atomic_ref<std::uint32_t>::required_alignment) std::uint32_t v = 0;
};

// Sleeps while *w == seen (returns at once if it already changed, or spuriously).
void futex_wait(std::uint32_t* w, std::uint32_t seen) noexcept {
  (void)::syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, seen, nullptr, nullptr, 0);
}
void futex_wake(std::uint32_t* w) noexcept {
  (void)::syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

// Stores v into w and wakes its sleeper.
void futex_post(futex_word& w, std::uint32_t v) noexcept {
  // Release: pairs with the acquire load in futex_await() on the other side. The kernel's
  // futex hash-bucket lock orders this store before the wake against the waiter's check.
  std::atomic_ref<std::uint32_t>(w.v).store(v, std::memory_order_release);
  futex_wake(&w.v);
}

// Returns once w holds v, sleeping in the kernel in between.
void futex_await(futex_word& w, std::uint32_t v) noexcept {
  for (;;) {
    // Acquire: pairs with the release store in futex_post().
    const std::uint32_t seen = std::atomic_ref<std::uint32_t>(w.v).load(std::memory_order_acquire);
    if (seen == v) return;
    futex_wait(&w.v, seen);
  }
}

}  // namespace

void wakeup_futex(benchmark::State& state) {
  wakeup_bench(state, sleeping_plan, [](round_trip_samples& rec) -> std::string {
    const std::pair<int, int> cpus = rondo_bench::pair_cpus();
    const rondo_bench::scoped_pin pin(cpus.first);
    futex_word ping;
    futex_word pong;
    const std::int64_t rounds = rec.total();
    const std::int64_t warmup = rec.warmup();
    long echo_switches = 0;  // read after the join
    // Side B's wait before it replies, in ticks: written before futex_post(pong) (release) and
    // read after futex_await(pong) (acquire) by side A.
    std::uint64_t echo_gap = 0;
    std::thread echo = rondo_bench::start_thread(cpus.second, [&, rounds, warmup] {
      for (std::int64_t i = 0; i < rounds; ++i) {
        if (i == warmup) echo_switches = -voluntary_switches();
        const auto v = static_cast<std::uint32_t>(i + 1);
        futex_await(ping, v);
        const std::uint64_t g0 = ticks();
        spin_for(sleep_gap);  // side A falls asleep
        echo_gap = ticks() - g0;
        futex_post(pong, v);
      }
      echo_switches += voluntary_switches();
    });
    long switches = 0;
    for (std::int64_t i = 0; i < rounds; ++i) {
      const auto v = static_cast<std::uint32_t>(i + 1);
      if (i == warmup) switches = -voluntary_switches();
      spin_for(sleep_gap);  // side B falls asleep
      rec.begin_round(i);
      const std::uint64_t t0 = ticks();
      futex_post(ping, v);
      futex_await(pong, v);
      rec.record(i, ticks() - t0 - echo_gap);
    }
    switches += voluntary_switches();
    rec.finish();
    echo.join();
    rec.set_switches(switches + echo_switches);
    futex_p50_ns = rec.quantile_ns(0.50);
    futex_p99_ns = rec.quantile_ns(0.99);
    return {};
  });
}

namespace {

// (c), (d) A coroutine hopping between two io_contexts. It starts on `home`; each round is two
// hops (home -> away -> home), two posts from one context's thread to the other's. With a gap,
// the coroutine waits `gap` on each side before it posts (so the other context is asleep) and
// the wait on `away` is taken out of the sample; both waits are measured with the local TSC.
struct hop_outcome {
  bool ok = true;
  long switches = 0;  // voluntary context switches of both threads over the measured rounds
};

rondo::task<hop_outcome> hop_rounds(rondo::io_context& home, rondo::io_context& away,
                                    round_trip_samples& rec, std::chrono::nanoseconds gap) {
  hop_outcome out;
  out.ok = rondo::current_io_context_or_null() == &home;
  const bool pause = gap.count() > 0;
  for (std::int64_t i = 0; i < rec.total(); ++i) {
    if (pause) spin_for(gap);  // `away` falls asleep
    if (i == rec.warmup()) out.switches -= voluntary_switches();
    rec.begin_round(i);
    const std::uint64_t t0 = ticks();
    co_await away.schedule();
    const std::uint64_t g0 = ticks();
    out.ok = out.ok && rondo::current_io_context_or_null() == &away;
    if (i == rec.warmup()) out.switches -= voluntary_switches();
    if (pause) spin_for(gap);  // `home` falls asleep
    const std::uint64_t g1 = ticks();
    co_await home.schedule();
    rec.record(i, (ticks() - t0) - (g1 - g0));
    out.ok = out.ok && rondo::current_io_context_or_null() == &home;
  }
  out.switches += voluntary_switches();
  rec.finish();
  co_await away.schedule();  // (not measured) read the other side's count
  out.switches += voluntary_switches();
  co_await home.schedule();
  co_return out;
}

// Doorbells rung in the hop rounds of one benchmark (MSG_RING between the contexts, or eventfd).
rondo::io_context::doorbell_counts hop_doorbells;

std::string rondo_hop_round(round_trip_samples& rec, std::chrono::microseconds idle_spin,
                            std::chrono::nanoseconds gap, bool msg_ring) {
  const std::pair<int, int> cpus = rondo_bench::pair_cpus();
  rondo::runtime_options opts;
  opts.threads = 2;
  opts.pin = cpus.first >= 0;
  if (opts.pin) opts.cpus = {cpus.first, cpus.second};
  opts.io.idle_spin = idle_spin;
  opts.io.msg_ring_doorbell = msg_ring;
  rondo::runtime rt(opts);
  const hop_outcome out = rt.block_on(hop_rounds(rt.context(0), rt.context(1), rec, gap), 0);
  rec.set_switches(out.switches);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto d = rt.context(i).doorbells();
    hop_doorbells.msg_ring += d.msg_ring;
    hop_doorbells.eventfd += d.eventfd;
  }
  return out.ok ? std::string{} : std::string("a hop resumed on the wrong context");
}

}  // namespace

void wakeup_rondo(benchmark::State& state, std::chrono::microseconds idle_spin, bool msg_ring) {
  const bool sleeping = idle_spin.count() == 0;
  const std::chrono::nanoseconds gap = sleeping ? std::chrono::nanoseconds(sleep_gap) : 0ns;
  hop_doorbells = {};
  wakeup_bench(state, sleeping ? sleeping_plan : polling_plan,
               [idle_spin, gap, msg_ring](round_trip_samples& rec) {
                 return rondo_hop_round(rec, idle_spin, gap, msg_ring);
               });
  // How the sleeping contexts were woken: MSG_RING from the other context's ring, or eventfd.
  state.counters["msg_ring_doorbells"] = static_cast<double>(hop_doorbells.msg_ring);
  state.counters["eventfd_doorbells"] = static_cast<double>(hop_doorbells.eventfd);
  if (sleeping && futex_p50_ns > 0 && state.counters.count("p50_ns") != 0) {
    state.counters["rondo/futex_p50"] = state.counters["p50_ns"].value / futex_p50_ns;
    state.counters["rondo/futex_p99"] = state.counters["p99_ns"].value / futex_p99_ns;
  }
}

}  // namespace rondo_io_bench
