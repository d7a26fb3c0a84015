// io_bench: the io_uring executor against the kernel and against plain liburing, on the three
// things a rondo server does with it: wake a context up, echo on sockets, journal to a file.
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
//
// 2. TCP echo on loopback: 16 connections, 64-byte messages, one server thread (CPU b) and one
//    client thread (CPU a, the benchmark thread). The client drives all 16 sockets through an
//    io_uring of its own, closed loop: each connection has one message outstanding; a reply is
//    checked byte for byte and the next message goes out. It never sleeps (it polls its ring
//    with io_uring_submit_and_get_events), so its own kernel wake-ups do not set the pace.
//    Both sides share 2 CPUs with the kernel's loopback TCP path, which does most of the work.
//    0.2 s warm-up, 1 s measured.
//
//      client ring ── send 64 B ──▶ server: recv ─▶ send ── 64 B ──▶ client: check, send next
//
//    echo_raw_liburing  the server written straight against liburing: one ring (same setup
//                       flags as rondo's), per-connection recv then send, a submit_and_wait(1)
//                       loop reaping completions in batches
//    echo_rondo         one io_context; one coroutine per connection: co_await recv, co_await
//                       send, until recv returns 0. /polling: default idle_spin (50 us), the
//                       context polls its queues and ring before it sleeps; /sleeping:
//                       idle_spin = 0, it sleeps almost at once, as the raw loop does
//    echo_rondo_foreign_epoll  the same coroutines on an io_context that a plain epoll loop
//                       drives, as a server with its own event loop embeds rondo: poll(), then
//                       prepare_wait(), epoll_wait on wait_handle() (100 ms timeout, counted:
//                       a wake-up lost would show there), finish_wait(). vs_run_polling and
//                       vs_run_sleeping: its rate over echo_rondo/polling's and /sleeping's
//                       from this run (they run first). epoll_waits: epoll_wait calls in the
//                       whole run (warm-up and drain included), epoll_timeouts: of them, ended
//                       by the timeout.
//    echo_rondo_asio    the same coroutines on an io_context that a boost::asio::io_context
//                       drives (rondo::asio_bridge::driver, rondo/asio.hpp): Asio's run() waits
//                       on wait_handle() through a posix::stream_descriptor, the driver polls
//                       on readiness. vs_foreign_epoll: its rate over echo_rondo_foreign_epoll's
//                       from this run (the native embedding; the issue's target is >= 1/1.1 =
//                       0.909, i.e. a cost <= 1.1x), vs_run_sleeping as above. driver_polls,
//                       driver_waits: the driver's poll() calls and handle waits in the run.
//                       (Built when Boost's CMake package is found: RONDO_BENCH_ASIO.)
//    msgs_per_s, and rondo/raw on the rondo rows (same-run ratio; the raw row runs first).
//    Shutdown: the client closes its sockets, every server recv returns 0, the connection
//    ends; the last one stops the context (or ends the raw loop) and the thread is joined.
//
// 3. Journal throughput to a file on a real disk (/tmp unless it is tmpfs, else the directory
//    of this binary; the label names it). 1.5 s of publishing, then a drain.
//
//    journal_rondo      64-byte events published in claims of 64 by the benchmark thread
//                       (CPU a) into a disruptor of 4,096 slots; an async batch stage on an
//                       io_context (CPU b) does one writev of the batch's spans() (one or two
//                       iovecs) and one fdatasync per batch: group commit, batches as large as
//                       the producer made them while the previous fdatasync ran.
//                       min_batch / max_batch: the smallest and largest; io_share: the part
//                       of the wall time the stage spent inside writev + fdatasync (the rest
//                       is the hand-off between batches: producer wake-up, stage wake-up).
//    journal_raw_uring  one thread, one ring: writev of a batch then fdatasync, each awaited, in
//                       a loop. /replay: the batch sizes journal_rondo made, in the same order
//                       (the like-for-like row); /steady: all of journal_rondo's mean size (what
//                       the same bytes cost when the batches are even).
//                       rondo/raw (events/s) is reported on these rows, since they run after.
//    journal_rondo_polling  journal_rondo with io_options::idle_spin_with_file_io on: the
//                       context polls for idle_spin while its writev / fdatasync run in
//                       io_uring's workers (by default it sleeps at once then). rondo/raw
//                       against the replay row, vs_default against journal_rondo.
//    journal_rondo_odirect  O_DIRECT into a file reserved with fallocate and written once (so
//                       its extents are allocated and initialised, as a pre-allocated journal
//                       segment is): per round 16 coroutines each co_await a 4 KiB aligned
//                       write (16 in flight), then one fdatasync; writes/s and fdatasync/s.
//    The buffered journals wrap at 64 MiB (an overwrite from offset 0), so the run does not
//    write gigabytes; both buffered rows do the same. Every event is checked on its way out.

#include "bench_support.hpp"

#include <rondo/coro/task.hpp>
#include <rondo/disruptor.hpp>
#include <rondo/io/io_context.hpp>
#include <rondo/io/runtime.hpp>

#if RONDO_BENCH_ASIO
#include <rondo/asio.hpp>

#include <boost/asio/io_context.hpp>
#endif

#include <benchmark/benchmark.h>
#include <liburing.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

namespace {

using namespace std::chrono_literals;
using rondo_bench::clock;

// ---------------------------------------------------------------------------------------------
// Same-run baselines. Benchmarks run one after another on the main thread, in registration
// order: a baseline row stores its result here and a later row reports its ratio to it.

double futex_p50_ns = 0;
double futex_p99_ns = 0;
double raw_echo_msgs_per_s = 0;
double rondo_echo_polling_msgs_per_s = 0;   // echo_rondo/polling
double rondo_echo_sleeping_msgs_per_s = 0;  // echo_rondo/sleeping
double rondo_journal_events_per_s = 0;
std::vector<std::int64_t> rondo_journal_batches;  // journal_rondo's batch sizes, in order
double raw_replay_events_per_s = 0;  // journal_raw_uring/replay, for journal_rondo_polling

// ---------------------------------------------------------------------------------------------
// Shared helpers.

using rondo::detached;  // fire-and-forget: the O_DIRECT writes start at once

std::string errno_text(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

// Sets up a ring with the flags rondo's io_context asks for, in the same order of preference
// (SINGLE_ISSUER | DEFER_TASKRUN, else COOP_TASKRUN), so raw and rondo rings behave alike.
// Returns 0 or -errno. The ring belongs to the calling thread.
int init_ring(io_uring& ring, unsigned entries) {
  const std::array<unsigned, 4> candidates = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, IORING_SETUP_COOP_TASKRUN, 0U};
  int err = -EINVAL;
  for (unsigned f : candidates) {
    io_uring_params p{};
    p.flags = f;
    err = io_uring_queue_init_params(entries, &ring, &p);
    if (err != -EINVAL) return err;
  }
  return err;
}

// A free SQE, submitting what is queued when the SQ is full.
io_uring_sqe* next_sqe(io_uring& ring) {
  io_uring_sqe* s = io_uring_get_sqe(&ring);
  while (s == nullptr) {
    (void)io_uring_submit(&ring);
    s = io_uring_get_sqe(&ring);
  }
  return s;
}

// Submits and waits for the single operation in flight; returns its result.
int submit_one(io_uring& ring) {
  for (;;) {
    const int r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR) return r;
    io_uring_cqe* cqe = nullptr;
    if (io_uring_peek_cqe(&ring, &cqe) == 0 && cqe != nullptr) {
      const int res = cqe->res;
      io_uring_cqe_seen(&ring, cqe);
      return res;
    }
  }
}

[[nodiscard]] inline std::uint64_t ticks() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  return __rdtsc();
#else
  return static_cast<std::uint64_t>(clock::now().time_since_epoch().count());
#endif
}

// ---------------------------------------------------------------------------------------------
// 1. Wake-up round trips.

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

// ---------------------------------------------------------------------------------------------
// 2. TCP echo on loopback.

constexpr int echo_connections = 16;
constexpr std::size_t message_size = 64;
constexpr auto echo_warmup = 200ms;
constexpr auto echo_measured = 1000ms;
constexpr auto echo_stall = std::chrono::seconds(5);  // no completion this long: failed

using message = std::array<std::byte, message_size>;

void set_nodelay(int fd) noexcept {
  const int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// A listening socket on 127.0.0.1 and an ephemeral port.
struct listener {
  int fd = -1;
  std::uint16_t port = 0;
  std::string error;

  listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      error = errno_text("socket", errno);
      return;
    }
    const int one = 1;
    (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      error = errno_text("bind/listen", errno);
      return;
    }
    port = ntohs(a.sin_port);
  }
  ~listener() {
    if (fd >= 0) ::close(fd);
  }
  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;
};

// What a server thread reports after it was joined.
struct echo_server_report {
  std::string error;
  std::int64_t epoll_waits = -1;  // the foreign-epoll server only
  std::int64_t epoll_timeouts = 0;
  std::int64_t driver_polls = -1;  // the Asio-driven server only
  std::int64_t driver_waits = 0;
};

// ---- The client: 16 sockets on one ring of its own, one message outstanding per socket.

struct echo_peer {
  int fd = -1;
  std::uint64_t counter = 0;
  std::size_t got = 0;  // reply bytes received so far
  message out{};
  message in{};
};

struct echo_client_report {
  std::int64_t messages = 0;  // replies completed inside the measured window
  double seconds = 0;
  std::string error;
};

constexpr std::uint64_t tag_send = 0;
constexpr unsigned cqe_batch = 64;  // completions reaped per peek
constexpr std::uint64_t tag_recv = 1;

class echo_client {
 public:
  explicit echo_client(std::uint16_t port) : port_(port) {}

  echo_client_report run() {
    echo_client_report rep;
    rep.error = connect_all();
    if (rep.error.empty()) {
      const int err = init_ring(ring_, 64);
      if (err != 0) {
        rep.error = errno_text("client io_uring_queue_init", -err);
      } else {
        rep = drive();
        io_uring_queue_exit(&ring_);
      }
    }
    // Closing is the shutdown signal: every server connection reads 0 and ends.
    for (echo_peer& p : peers_) {
      if (p.fd >= 0) ::close(p.fd);
      p.fd = -1;
    }
    return rep;
  }

 private:
  std::string connect_all() {
    for (echo_peer& p : peers_) {
      p.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (p.fd < 0) return errno_text("client socket", errno);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(port_);
      if (::connect(p.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        return errno_text("client connect", errno);
      }
      set_nodelay(p.fd);
    }
    return {};
  }

  // Sends the next message of peer i and arms the recv of its reply.
  void start(std::size_t i) {
    echo_peer& p = peers_[i];
    ++p.counter;
    for (std::size_t k = 0; k < message_size; ++k) {
      p.out[k] = static_cast<std::byte>((p.counter + k * 7 + i) & 0xff);
    }
    std::memcpy(p.out.data(), &p.counter, sizeof p.counter);
    p.got = 0;
    io_uring_sqe* s = next_sqe(ring_);
    io_uring_prep_send(s, p.fd, p.out.data(), message_size, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, i * 2 + tag_send);
    arm_recv(i);
    ++outstanding_;
  }
  void arm_recv(std::size_t i) {
    echo_peer& p = peers_[i];
    io_uring_sqe* s = next_sqe(ring_);
    io_uring_prep_recv(s, p.fd, p.in.data() + p.got, message_size - p.got, 0);
    io_uring_sqe_set_data64(s, i * 2 + tag_recv);
  }

  // Handles one completion; returns an error text, empty when fine.
  std::string complete(std::uint64_t data, int res, bool keep_going) {
    const std::size_t i = data / 2;
    echo_peer& p = peers_[i];
    if ((data & 1) == tag_send) {
      if (res != static_cast<int>(message_size)) {
        return res < 0 ? errno_text("client send", -res) : std::string("client send: short send");
      }
      return {};
    }
    if (res <= 0) {
      return res < 0 ? errno_text("client recv", -res) : std::string("server closed a connection");
    }
    p.got += static_cast<std::size_t>(res);
    if (p.got < message_size) {
      arm_recv(i);
      return {};
    }
    if (p.in != p.out) return "an echo differs from the message sent";
    --outstanding_;
    ++completed_;
    if (keep_going) start(i);
    return {};
  }

  echo_client_report drive() {
    echo_client_report rep;
    for (std::size_t i = 0; i < peers_.size(); ++i) start(i);
    enum class phase { warmup, measured, draining } ph = phase::warmup;
    const auto begin = clock::now();
    clock::time_point t0 = begin;
    std::int64_t completed0 = 0;
    clock::time_point last_progress = begin;
    std::array<io_uring_cqe*, cqe_batch> cqes{};
    for (;;) {
      const auto now = clock::now();
      if (ph == phase::warmup && now - begin >= echo_warmup) {
        ph = phase::measured;
        t0 = now;
        completed0 = completed_;
      } else if (ph == phase::measured && now - t0 >= echo_measured) {
        ph = phase::draining;
        rep.seconds = rondo_bench::seconds_between(t0, now);
        rep.messages = completed_ - completed0;
      }
      if (ph == phase::draining && outstanding_ == 0) return rep;
      // Submits and runs the ring's task work (DEFER_TASKRUN: completions appear only then),
      // never sleeping: the client spins, so the server's speed is what is measured.
      const int r = io_uring_submit_and_get_events(&ring_);
      if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
        rep.error = errno_text("client io_uring_submit_and_get_events", -r);
        return rep;
      }
      const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes.data(), cqe_batch);
      if (n == 0) {
        if (now - last_progress > echo_stall) {
          rep.error = "client: no completion for 5 s (the server stalled)";
          return rep;
        }
        rondo_bench::spin_pause();
        continue;
      }
      last_progress = now;
      for (unsigned k = 0; k < n; ++k) {
        const std::string e = complete(io_uring_cqe_get_data64(cqes[k]), cqes[k]->res,
                                       ph != phase::draining);
        if (!e.empty()) {
          rep.error = e;
          return rep;
        }
      }
      io_uring_cq_advance(&ring_, n);
    }
  }

  std::uint16_t port_;
  io_uring ring_{};
  std::array<echo_peer, echo_connections> peers_{};
  int outstanding_ = 0;  // messages whose reply is not complete
  std::int64_t completed_ = 0;
};

// ---- The rondo server: one io_context, one coroutine per connection.

// The last connection to end stops the context.
struct rondo_echo_state {
  rondo::io_context* io = nullptr;
  int live = 0;
  echo_server_report* report = nullptr;

  void connection_ended() {
    if (--live == 0) io->stop();
  }
};

detached rondo_echo_connection(rondo_echo_state& st, int fd) {
  rondo::io_context& io = *st.io;
  message buf{};
  bool open = true;
  while (open) {
    const rondo::io_result r = co_await io.recv(fd, buf);
    if (r.res <= 0) {
      if (r.res < 0 && r.res != -ECONNRESET) st.report->error = r.error().message();
      break;
    }
    const auto n = static_cast<std::size_t>(r.res);
    std::size_t sent = 0;
    while (sent < n) {
      const rondo::io_result s =
          co_await io.send(fd, std::span<const std::byte>(buf).subspan(sent, n - sent));
      if (s.res <= 0) {
        open = false;
        break;
      }
      sent += static_cast<std::size_t>(s.res);
    }
  }
  ::close(fd);
  st.connection_ended();
}

detached rondo_echo_accept(rondo_echo_state& st, int listen_fd) {
  for (int i = 0; i < echo_connections; ++i) {
    const rondo::io_result r = co_await st.io->accept(listen_fd);
    if (!r.ok()) {
      st.report->error = "rondo accept: " + r.error().message();
      for (int k = i; k < echo_connections; ++k) st.connection_ended();
      co_return;
    }
    set_nodelay(r.res);
    rondo_echo_connection(st, r.res);
  }
}

void rondo_echo_server(int listen_fd, echo_server_report& rep, std::chrono::microseconds idle_spin) {
  try {
    rondo::io_options opts;
    opts.idle_spin = idle_spin;
    rondo::io_context io(opts);
    rondo_echo_state st;
    st.io = &io;
    st.live = echo_connections;
    st.report = &rep;
    rondo_echo_accept(st, listen_fd);
    io.run();
  } catch (const std::exception& e) {
    rep.error = e.what();
  }
}

// The same server on an io_context driven by a foreign epoll loop (docs/embedding.md, way 3).
// wait_handle() comes first: on a DEFER_TASKRUN ring it replaces the ring, which it can do only
// before any I/O. The last connection's stop() ends the loop.
void rondo_echo_server_epoll(int listen_fd, echo_server_report& rep) {
  try {
    rondo::io_context io;
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
      rep.error = errno_text("epoll_create1", errno);
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, io.wait_handle(), &ev) != 0) {
      rep.error = errno_text("epoll_ctl", errno);
      ::close(ep);
      return;
    }
    rondo_echo_state st;
    st.io = &io;
    st.live = echo_connections;
    st.report = &rep;
    rondo_echo_accept(st, listen_fd);
    rep.epoll_waits = 0;
    std::array<epoll_event, 8> out{};
    while (!io.stopped()) {
      (void)io.poll();
      if (io.stopped() || !io.prepare_wait()) continue;
      const int n = ::epoll_wait(ep, out.data(), static_cast<int>(out.size()), 100);
      const int err = errno;
      io.finish_wait();
      ++rep.epoll_waits;
      if (n == 0) ++rep.epoll_timeouts;
      if (n < 0 && err != EINTR) {  // EINTR: a completion's task work interrupted the wait
        rep.error = errno_text("epoll_wait", err);
        break;
      }
    }
    ::close(ep);
  } catch (const std::exception& e) {
    rep.error = e.what();
  }
}

#if RONDO_BENCH_ASIO
// The same server on an io_context that an asio::io_context drives (rondo/asio.hpp): the
// driver comes first (it calls wait_handle(), before any I/O); the last connection's stop()
// makes it let go, and Asio's run() returns with nothing else to do.
void rondo_echo_server_asio(int listen_fd, echo_server_report& rep) {
  try {
    boost::asio::io_context ax(1);
    rondo::io_context io;
    rondo::asio_bridge::driver drv(ax, io);
    rondo_echo_state st;
    st.io = &io;
    st.live = echo_connections;
    st.report = &rep;
    rondo_echo_accept(st, listen_fd);
    ax.run();
    rep.driver_polls = static_cast<std::int64_t>(drv.polls());
    rep.driver_waits = static_cast<std::int64_t>(drv.waits());
  } catch (const std::exception& e) {
    rep.error = e.what();
  }
}
#endif

// ---- The raw liburing server: the same loop, by hand.

struct raw_conn {
  int fd = -1;
  std::size_t len = 0;   // bytes received, to echo
  std::size_t sent = 0;  // of them, sent so far
  message buf{};
};

void raw_arm_recv(io_uring& ring, raw_conn& c, std::uint64_t i) {
  io_uring_sqe* s = next_sqe(ring);
  io_uring_prep_recv(s, c.fd, c.buf.data(), message_size, 0);
  io_uring_sqe_set_data64(s, i * 2 + tag_recv);
}
void raw_arm_send(io_uring& ring, raw_conn& c, std::uint64_t i) {
  io_uring_sqe* s = next_sqe(ring);
  io_uring_prep_send(s, c.fd, c.buf.data() + c.sent, c.len - c.sent, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, i * 2 + tag_send);
}

void raw_echo_server(int listen_fd, echo_server_report& rep) {
  std::array<raw_conn, echo_connections> conns{};
  int live = 0;
  for (raw_conn& c : conns) {
    c.fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c.fd < 0) {
      rep.error = errno_text("raw accept", errno);
      break;
    }
    set_nodelay(c.fd);
    ++live;
  }
  io_uring ring{};
  const int err = rep.error.empty() ? init_ring(ring, 256) : 0;
  if (err != 0) rep.error = errno_text("raw io_uring_queue_init", -err);
  if (!rep.error.empty()) {
    for (raw_conn& c : conns) {
      if (c.fd >= 0) ::close(c.fd);
    }
    return;
  }
  for (std::size_t i = 0; i < conns.size(); ++i) raw_arm_recv(ring, conns[i], i);
  std::array<io_uring_cqe*, cqe_batch> cqes{};
  while (live > 0) {
    const int r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR) {
      rep.error = errno_text("raw io_uring_submit_and_wait", -r);
      break;
    }
    const unsigned n = io_uring_peek_batch_cqe(&ring, cqes.data(), cqe_batch);
    for (unsigned k = 0; k < n; ++k) {
      const std::uint64_t data = io_uring_cqe_get_data64(cqes[k]);
      const int res = cqes[k]->res;
      const std::size_t i = data / 2;
      raw_conn& c = conns[i];
      if ((data & 1) == tag_recv) {
        if (res <= 0) {  // 0: the client closed; < 0: reset
          if (res < 0 && res != -ECONNRESET) rep.error = errno_text("raw recv", -res);
          ::close(c.fd);
          c.fd = -1;
          --live;
          continue;
        }
        c.len = static_cast<std::size_t>(res);
        c.sent = 0;
        raw_arm_send(ring, c, i);
      } else {
        if (res <= 0) {
          ::close(c.fd);
          c.fd = -1;
          --live;
          continue;
        }
        c.sent += static_cast<std::size_t>(res);
        if (c.sent < c.len) {
          raw_arm_send(ring, c, i);
        } else {
          raw_arm_recv(ring, c, i);
        }
      }
    }
    io_uring_cq_advance(&ring, n);
  }
  for (raw_conn& c : conns) {
    if (c.fd >= 0) ::close(c.fd);
  }
  io_uring_queue_exit(&ring);
}

// One echo run per iteration: server(listen_fd, report) on CPU b, the client here on CPU a.
// Returns messages per second (0 on failure, reported through SkipWithError).
template <class Server>
double echo_bench(benchmark::State& state, Server server) {
  const std::pair<int, int> cpus = rondo_bench::pair_cpus();
  const rondo_bench::scoped_pin pin(cpus.first);
  double rate = 0;
  for (auto _ : state) {
    listener l;
    if (!l.error.empty()) {
      state.SkipWithError(l.error.c_str());
      return 0;
    }
    echo_server_report srep;
    const int lfd = l.fd;
    std::thread t = rondo_bench::start_thread(cpus.second, [server, lfd, &srep] { server(lfd, srep); });
    echo_client client(l.port);
    const echo_client_report crep = client.run();
    // Wakes an accept still waiting (a client that failed before connecting all 16): it fails
    // with EINVAL and the server winds down. Harmless once all were accepted.
    (void)::shutdown(l.fd, SHUT_RDWR);
    t.join();
    if (!crep.error.empty() || !srep.error.empty()) {
      const std::string e = crep.error.empty() ? "server: " + srep.error : crep.error;
      state.SkipWithError(e.c_str());
      return 0;
    }
    state.SetIterationTime(crep.seconds);
    rate = static_cast<double>(crep.messages) / crep.seconds;
    state.counters["msgs_per_s"] = rate;
    if (srep.epoll_waits >= 0) {
      state.counters["epoll_waits"] = static_cast<double>(srep.epoll_waits);
      state.counters["epoll_timeouts"] = static_cast<double>(srep.epoll_timeouts);
    }
    if (srep.driver_polls >= 0) {
      state.counters["driver_polls"] = static_cast<double>(srep.driver_polls);
      state.counters["driver_waits"] = static_cast<double>(srep.driver_waits);
    }
    state.SetItemsProcessed(crep.messages);
  }
  return rate;
}

void echo_raw_liburing(benchmark::State& state) {
  raw_echo_msgs_per_s = echo_bench(state, raw_echo_server);
}

void echo_rondo(benchmark::State& state, std::chrono::microseconds idle_spin) {
  const double rate = echo_bench(state, [idle_spin](int lfd, echo_server_report& rep) {
    rondo_echo_server(lfd, rep, idle_spin);
  });
  if (rate > 0 && raw_echo_msgs_per_s > 0) {
    state.counters["rondo/raw"] = rate / raw_echo_msgs_per_s;
  }
  (idle_spin.count() > 0 ? rondo_echo_polling_msgs_per_s : rondo_echo_sleeping_msgs_per_s) = rate;
}

double rondo_echo_foreign_epoll_msgs_per_s = 0;  // echo_rondo_foreign_epoll

void echo_rondo_foreign_epoll(benchmark::State& state) {
  const double rate = echo_bench(state, rondo_echo_server_epoll);
  rondo_echo_foreign_epoll_msgs_per_s = rate;
  if (rate > 0 && raw_echo_msgs_per_s > 0) {
    state.counters["rondo/raw"] = rate / raw_echo_msgs_per_s;
  }
  if (rate > 0 && rondo_echo_polling_msgs_per_s > 0) {
    state.counters["vs_run_polling"] = rate / rondo_echo_polling_msgs_per_s;
  }
  if (rate > 0 && rondo_echo_sleeping_msgs_per_s > 0) {
    state.counters["vs_run_sleeping"] = rate / rondo_echo_sleeping_msgs_per_s;
  }
}

#if RONDO_BENCH_ASIO
void echo_rondo_asio(benchmark::State& state) {
  const double rate = echo_bench(state, rondo_echo_server_asio);
  if (rate > 0 && raw_echo_msgs_per_s > 0) {
    state.counters["rondo/raw"] = rate / raw_echo_msgs_per_s;
  }
  if (rate > 0 && rondo_echo_foreign_epoll_msgs_per_s > 0) {
    state.counters["vs_foreign_epoll"] = rate / rondo_echo_foreign_epoll_msgs_per_s;
  }
  if (rate > 0 && rondo_echo_sleeping_msgs_per_s > 0) {
    state.counters["vs_run_sleeping"] = rate / rondo_echo_sleeping_msgs_per_s;
  }
}
#endif

// ---------------------------------------------------------------------------------------------
// 3. Journal throughput.

struct journal_event {
  std::int64_t seq = 0;
  std::array<std::byte, 56> payload{};
};
static_assert(sizeof(journal_event) == 64);

constexpr std::int64_t journal_capacity = 4096;
constexpr std::int64_t publish_claim = 64;
constexpr auto journal_run = 1500ms;
constexpr std::uint64_t journal_wrap = std::uint64_t{64} << 20;
constexpr std::size_t direct_block = 4096;
constexpr std::size_t direct_in_flight = 16;
constexpr std::uint64_t direct_file_bytes = std::uint64_t{16} << 20;

// Where the journal goes: /tmp if it is a real file system, else next to this binary.
std::string journal_dir() {
  struct statfs fs{};
  if (::statfs("/tmp", &fs) == 0 && fs.f_type != TMPFS_MAGIC) return "/tmp";
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

// A temporary file, removed at the end.
struct temp_file {
  std::string path;
  int fd = -1;
  std::string error;

  explicit temp_file(const std::string& dir) {
    std::string name = dir + "/rondo-io-bench-XXXXXX";
    fd = ::mkostemp(name.data(), O_CLOEXEC);
    if (fd < 0) {
      error = errno_text(("mkstemp in " + dir).c_str(), errno);
      return;
    }
    path = name;
  }
  ~temp_file() {
    if (fd < 0) return;
    ::close(fd);
    ::unlink(path.c_str());
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
};

// The rows' results, written by the thread doing the I/O and read after it is joined (drain,
// block_on).
struct journal_stats {
  std::int64_t events = 0;
  std::int64_t writes = 0;
  std::int64_t syncs = 0;
  std::uint64_t bytes = 0;
  std::int64_t min_batch = 0;  // events per write: smallest and largest (journal_rondo)
  std::int64_t max_batch = 0;
  double io_seconds = 0;  // journal_rondo: time inside the stage's writev + fdatasync
  double seconds = 0;
  std::string error;

  void report(benchmark::State& state, const std::string& dir) const {
    state.SetIterationTime(seconds);
    state.SetLabel(dir);
    if (events > 0) {
      state.counters["events_per_s"] = static_cast<double>(events) / seconds;
      state.counters["mean_batch"] = static_cast<double>(events) / static_cast<double>(syncs);
      if (max_batch > 0) {
        state.counters["min_batch"] = static_cast<double>(min_batch);
        state.counters["max_batch"] = static_cast<double>(max_batch);
        state.counters["io_share"] = io_seconds / seconds;
      }
      state.SetItemsProcessed(events);
    } else {
      state.counters["writes_per_s"] = static_cast<double>(writes) / seconds;
      state.SetItemsProcessed(writes);
    }
    state.counters["fdatasync_per_s"] = static_cast<double>(syncs) / seconds;
    state.counters["MiB_per_s"] = static_cast<double>(bytes) / seconds / (1024.0 * 1024.0);
  }
};

// The rondo journal: a producer thread, a disruptor, an async writev + fdatasync stage.
// poll_file_io: io_options::idle_spin_with_file_io (the context polls while its I/O runs).
void run_journal_rondo(benchmark::State& state, bool poll_file_io) {
  const std::string dir = journal_dir();
  const std::pair<int, int> cpus = rondo_bench::pair_cpus();
  const rondo_bench::scoped_pin pin(cpus.first);
  for (auto _ : state) {
    temp_file f(dir);
    if (!f.error.empty()) {
      state.SkipWithError(f.error.c_str());
      return;
    }
    journal_stats st;
    rondo_bench::sequence_check check;
    std::uint64_t offset = 0;
    std::vector<std::int64_t> sizes;  // every batch's size, for journal_raw_uring to replay
    sizes.reserve(std::size_t{1} << 16);
    try {
      rondo::runtime_options opts;
      opts.threads = 1;
      opts.pin = cpus.second >= 0;
      if (opts.pin) opts.cpus = {cpus.second};
      opts.io.idle_spin_with_file_io = poll_file_io;
      rondo::runtime rt(opts);
      const int fd = f.fd;
      auto d = rondo::disruptor<journal_event>::builder()
                   .capacity(journal_capacity)
                   .wait(rondo::spin_then_suspend{})
                   .executor(rt)
                   .stage("journal",
                          [&st, &check, &offset, &sizes, fd](rondo::batch<journal_event> b) -> rondo::task<> {
                            if (b.empty()) co_return;
                            const auto parts = b.spans();
                            std::array<::iovec, 2> iov{};
                            iov[0].iov_base = parts.first.data();
                            iov[0].iov_len = parts.first.size_bytes();
                            iov[1].iov_base = parts.second.data();
                            iov[1].iov_len = parts.second.size_bytes();
                            const std::size_t n_iov = parts.second.empty() ? 1 : 2;
                            const std::size_t bytes = b.size() * sizeof(journal_event);
                            if (offset + bytes > journal_wrap) offset = 0;
                            rondo::io_context& io = rondo::current_io_context();
                            const auto io0 = clock::now();
                            const rondo::io_result w = co_await io.writev(
                                fd, std::span<const ::iovec>(iov.data(), n_iov), offset);
                            const rondo::io_result s = co_await io.fdatasync(fd);
                            st.io_seconds += rondo_bench::seconds_between(io0, clock::now());
                            if (w.res != static_cast<int>(bytes)) {
                              st.error = w.ok() ? "short writev" : w.error().message();
                            }
                            if (!s.ok()) st.error = "fdatasync: " + s.error().message();
                            for (auto [seq, ev] : b.entries()) check.add(ev.seq, seq);
                            offset += bytes;
                            st.bytes += bytes;
                            const auto n = static_cast<std::int64_t>(b.size());
                            st.min_batch = st.min_batch == 0 ? n : std::min(st.min_batch, n);
                            st.max_batch = std::max(st.max_batch, n);
                            st.events += n;
                            sizes.push_back(n);
                            ++st.writes;
                            ++st.syncs;
                          })
                   .build();
      d.start();
      auto& pub = d.publisher();
      const auto t0 = clock::now();
      const auto deadline = t0 + journal_run;
      while (clock::now() < deadline) {
        auto c = pub.reserve(publish_claim);
        for (auto [seq, ev] : c) ev.seq = seq;
        c.publish();
      }
      d.drain();
      st.seconds = rondo_bench::seconds_between(t0, clock::now());
    } catch (const std::exception& e) {
      st.error = e.what();
    }
    if (st.error.empty() && !check.ok(st.events)) st.error = "the journal saw wrong events";
    if (!st.error.empty()) {
      state.SkipWithError(st.error.c_str());
      return;
    }
    st.report(state, dir);
    const double events_per_s = static_cast<double>(st.events) / st.seconds;
    if (!poll_file_io) {
      rondo_journal_events_per_s = events_per_s;
      rondo_journal_batches = std::move(sizes);
    } else {
      if (raw_replay_events_per_s > 0) {
        state.counters["rondo/raw"] = events_per_s / raw_replay_events_per_s;
      }
      if (rondo_journal_events_per_s > 0) {
        state.counters["vs_default"] = events_per_s / rondo_journal_events_per_s;
      }
    }
  }
}

void journal_rondo(benchmark::State& state) { run_journal_rondo(state, false); }
void journal_rondo_polling(benchmark::State& state) { run_journal_rondo(state, true); }

// The same file traffic by hand: writev(batch) then fdatasync, each awaited, in a loop.
// replay: journal_rondo's batch sizes, in order (from the start again if this row gets
// further); steady: every batch of journal_rondo's mean size. 2,048 each when that row did not
// run.
void journal_raw_uring(benchmark::State& state, bool replay) {
  const std::string dir = journal_dir();
  const std::pair<int, int> cpus = rondo_bench::pair_cpus();
  const rondo_bench::scoped_pin pin(cpus.second);  // where rondo's context ran
  std::vector<std::int64_t> batches{2048};
  if (!rondo_journal_batches.empty()) {
    std::int64_t total = 0;
    for (const std::int64_t b : rondo_journal_batches) total += b;
    if (replay) {
      batches = rondo_journal_batches;
    } else {
      batches = {total / static_cast<std::int64_t>(rondo_journal_batches.size())};
    }
  }
  const std::int64_t largest = *std::max_element(batches.begin(), batches.end());
  for (auto _ : state) {
    temp_file f(dir);
    if (!f.error.empty()) {
      state.SkipWithError(f.error.c_str());
      return;
    }
    io_uring ring{};
    const int err = init_ring(ring, 8);
    if (err != 0) {
      state.SkipWithError(errno_text("io_uring_queue_init", -err).c_str());
      return;
    }
    std::vector<journal_event> buf(static_cast<std::size_t>(largest));
    journal_stats st;
    std::uint64_t offset = 0;
    std::int64_t next = 0;
    std::size_t k = 0;
    const auto t0 = clock::now();
    const auto deadline = t0 + journal_run;
    while (clock::now() < deadline) {
      const std::int64_t batch = batches[k];
      k = k + 1 == batches.size() ? 0 : k + 1;
      const std::size_t bytes = static_cast<std::size_t>(batch) * sizeof(journal_event);
      for (std::int64_t i = 0; i < batch; ++i) buf[static_cast<std::size_t>(i)].seq = next++;
      if (offset + bytes > journal_wrap) offset = 0;
      ::iovec iov{};
      iov.iov_base = buf.data();
      iov.iov_len = bytes;
      io_uring_prep_writev(next_sqe(ring), f.fd, &iov, 1, offset);
      const int w = submit_one(ring);
      io_uring_prep_fsync(next_sqe(ring), f.fd, IORING_FSYNC_DATASYNC);
      const int s = submit_one(ring);
      if (w != static_cast<int>(bytes) || s < 0) {
        st.error = w < 0 ? errno_text("writev", -w) : s < 0 ? errno_text("fdatasync", -s) : "short writev";
        break;
      }
      offset += bytes;
      st.bytes += bytes;
      st.events += batch;
      ++st.writes;
      ++st.syncs;
    }
    st.seconds = rondo_bench::seconds_between(t0, clock::now());
    io_uring_queue_exit(&ring);
    if (!st.error.empty()) {
      state.SkipWithError(st.error.c_str());
      return;
    }
    st.report(state, dir);
    const double events_per_s = static_cast<double>(st.events) / st.seconds;
    if (replay) raw_replay_events_per_s = events_per_s;
    if (rondo_journal_events_per_s > 0) {
      state.counters["rondo/raw"] = rondo_journal_events_per_s / events_per_s;
    }
  }
}

// ---- O_DIRECT: 16 aligned 4 KiB writes in flight, then one fdatasync, per round.

// Counts the writes of a round down; the round's driver awaits it. One thread (the context's).
struct write_group {
  std::size_t pending = 0;
  std::coroutine_handle<> waiter;
  std::string error;

  [[nodiscard]] bool await_ready() const noexcept { return pending == 0; }
  void await_suspend(std::coroutine_handle<> h) noexcept { waiter = h; }
  void await_resume() const noexcept {}

  void arrive() {
    if (--pending == 0 && waiter) std::exchange(waiter, {}).resume();
  }
};

detached direct_write(rondo::io_context& io, int fd, std::span<const std::byte> block,
                      std::uint64_t offset, write_group& g) {
  const rondo::io_result r = co_await io.write(fd, block, offset);
  if (r.res != static_cast<int>(block.size())) {
    g.error = r.ok() ? "short O_DIRECT write" : "O_DIRECT write: " + r.error().message();
  }
  g.arrive();  // may resume the driver, which may end the group: our last touch
}

rondo::task<> direct_rounds(int fd, std::byte* blocks, journal_stats& st) {
  rondo::io_context& io = rondo::current_io_context();
  const std::uint64_t file_blocks = direct_file_bytes / direct_block;
  std::uint64_t next_block = 0;
  const auto t0 = clock::now();
  const auto deadline = t0 + journal_run;
  while (clock::now() < deadline) {
    write_group g;
    g.pending = direct_in_flight;
    for (std::size_t k = 0; k < direct_in_flight; ++k) {
      const std::span<const std::byte> block(blocks + k * direct_block, direct_block);
      direct_write(io, fd, block, next_block * direct_block, g);
      next_block = (next_block + 1) % file_blocks;
    }
    co_await g;
    if (!g.error.empty()) {
      st.error = g.error;
      break;
    }
    const rondo::io_result s = co_await io.fdatasync(fd);
    if (!s.ok()) {
      st.error = "fdatasync: " + s.error().message();
      break;
    }
    st.writes += static_cast<std::int64_t>(direct_in_flight);
    st.bytes += direct_in_flight * direct_block;
    ++st.syncs;
  }
  st.seconds = rondo_bench::seconds_between(t0, clock::now());
}

// Aligned memory for O_DIRECT, freed at the end.
struct aligned_buffer {
  std::byte* p;
  explicit aligned_buffer(std::size_t n)
      : p(static_cast<std::byte*>(std::aligned_alloc(direct_block, n))) {}
  ~aligned_buffer() { std::free(p); }
  aligned_buffer(const aligned_buffer&) = delete;
  aligned_buffer& operator=(const aligned_buffer&) = delete;
};

// Reserves the file with fallocate and writes it once with zeros, so the timed writes land on
// allocated, initialised extents (no unwritten-extent conversion for fdatasync to journal).
std::string prepare_direct_file(int fd) {
  if (::fallocate(fd, 0, 0, static_cast<off_t>(direct_file_bytes)) != 0) {
    return errno_text("fallocate", errno);
  }
  constexpr std::size_t chunk = std::size_t{1} << 20;
  aligned_buffer zeros(chunk);
  if (zeros.p == nullptr) return "aligned_alloc failed";
  std::memset(zeros.p, 0, chunk);
  for (std::uint64_t off = 0; off < direct_file_bytes; off += chunk) {
    if (::pwrite(fd, zeros.p, chunk, static_cast<off_t>(off)) != static_cast<ssize_t>(chunk)) {
      return errno_text("pwrite (zero fill)", errno);
    }
  }
  if (::fdatasync(fd) != 0) return errno_text("fdatasync", errno);
  return {};
}

void journal_rondo_odirect(benchmark::State& state) {
  const std::string dir = journal_dir();
  const std::pair<int, int> cpus = rondo_bench::pair_cpus();
  for (auto _ : state) {
    temp_file f(dir);
    if (!f.error.empty()) {
      state.SkipWithError(f.error.c_str());
      return;
    }
    const int fd = ::open(f.path.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0) {
      state.SkipWithError(errno_text("open O_DIRECT", errno).c_str());
      return;
    }
    journal_stats st;
    st.error = prepare_direct_file(fd);
    aligned_buffer blocks(direct_in_flight * direct_block);
    if (st.error.empty() && blocks.p == nullptr) st.error = "aligned_alloc failed";
    if (st.error.empty()) {
      for (std::size_t i = 0; i < direct_in_flight * direct_block; ++i) {
        blocks.p[i] = static_cast<std::byte>(i * 31 + 7);
      }
      try {
        rondo::runtime_options opts;
        opts.threads = 1;
        opts.pin = cpus.second >= 0;
        if (opts.pin) opts.cpus = {cpus.second};
        rondo::runtime rt(opts);
        rt.block_on(direct_rounds(fd, blocks.p, st), 0);
      } catch (const std::exception& e) {
        st.error = e.what();
      }
    }
    ::close(fd);
    if (!st.error.empty()) {
      state.SkipWithError(st.error.c_str());
      return;
    }
    st.report(state, dir + " O_DIRECT");
  }
}

void once(benchmark::internal::Benchmark* b) {
  b->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);
}

}  // namespace

// Registration order is run order, and the same-run ratios depend on it: wakeup_futex before
// wakeup_rondo/sleeping, echo_raw_liburing before echo_rondo before echo_rondo_foreign_epoll,
// journal_rondo before journal_raw_uring (which replays rondo's batch sizes and reports
// rondo/raw).
BENCHMARK(wakeup_busy_spin)->Apply(once);
BENCHMARK(wakeup_futex)->Apply(once);
BENCHMARK_CAPTURE(wakeup_rondo, sleeping, std::chrono::microseconds(0), true)->Apply(once);
BENCHMARK_CAPTURE(wakeup_rondo, sleeping_eventfd, std::chrono::microseconds(0), false)
    ->Apply(once);
BENCHMARK_CAPTURE(wakeup_rondo, polling, std::chrono::microseconds(50), true)->Apply(once);
BENCHMARK(echo_raw_liburing)->Apply(once);
BENCHMARK_CAPTURE(echo_rondo, polling, std::chrono::microseconds(50))->Apply(once);
BENCHMARK_CAPTURE(echo_rondo, sleeping, std::chrono::microseconds(0))->Apply(once);
BENCHMARK(echo_rondo_foreign_epoll)->Apply(once);
#if RONDO_BENCH_ASIO
BENCHMARK(echo_rondo_asio)->Apply(once);  // after echo_rondo_foreign_epoll: vs_foreign_epoll
#endif
BENCHMARK(journal_rondo)->Apply(once);
BENCHMARK_CAPTURE(journal_raw_uring, replay, true)->Apply(once);
BENCHMARK_CAPTURE(journal_raw_uring, steady, false)->Apply(once);
BENCHMARK(journal_rondo_polling)->Apply(once);
BENCHMARK(journal_rondo_odirect)->Apply(once);
