#pragma once
// Shared harness for rondo's benchmarks: CPU pinning, a counting allocator, a start/finish
// handshake, self-checking consumers, and the mutex + condition_variable queue that every
// topology uses as its lock-based competitor.
//
//   benchmark thread (producer, CPU a)            consumer thread (CPU b)
//   ----------------------------------            -----------------------
//   start consumer ───────────────────────────▶  pin, ready = true
//   wait ready; t0 = now                          consume until the n-th event
//   produce n events ─────── queue / ring ─────▶  check payload, sum
//   wait done; t1 = now  ◀──────────────────────  store result, done = true
//   SetIterationTime(t1 - t0)
//
// Only the produce-to-last-consume interval is timed: thread start-up, ring allocation and
// shutdown (drain, join) stay outside it. Payloads are derived from the sequence, so the
// consumer can check order and completeness with a closed-form total.
// (Above ~400 lines on purpose: the one harness every benchmark binary shares.)

#include <rondo/detail/config.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace rondo_bench {

/// Two hot fields written by different threads are kept this far apart (adjacent-line
/// prefetch pulls pairs of 64-byte lines on x86).
inline constexpr std::size_t line = 128;

using clock = std::chrono::steady_clock;

[[nodiscard]] inline double seconds_between(clock::time_point a, clock::time_point b) noexcept {
  return std::chrono::duration<double>(b - a).count();
}

/// A pause instruction for spin loops.
inline void spin_pause() noexcept { rondo::detail::cpu_relax(); }

/// Spins a little, then yields between checks: what queue competitors do when their queue is
/// empty or full, so they behave on oversubscribed cores (more threads than CPUs).
class backoff {
 public:
  explicit backoff(std::uint32_t spins = 64) noexcept : spins_(spins) {}
  void pause() noexcept {
    if (round_ < spins_) {
      ++round_;
      spin_pause();
    } else {
      std::this_thread::yield();
    }
  }
  void reset() noexcept { round_ = 0; }

 private:
  std::uint32_t spins_;
  std::uint32_t round_ = 0;
};

// ---------------------------------------------------------------------------------------------
// CPU pinning (defined in support.cpp).

/// The CPUs this process may run on, in increasing order.
[[nodiscard]] std::vector<int> allowed_cpus();

/// Pins the calling thread to `cpu`; false (and no change) when cpu < 0 or the call fails.
bool pin_current_thread(int cpu) noexcept;

/// The two CPUs a producer/consumer pair is pinned to: the first two allowed CPUs, or
/// {-1, -1} (no pinning) when fewer than two are allowed.
[[nodiscard]] std::pair<int, int> pair_cpus();

/// Pins the calling thread for its lifetime and restores the previous mask afterwards.
class scoped_pin {
 public:
  explicit scoped_pin(int cpu) noexcept;
  ~scoped_pin();
  scoped_pin(const scoped_pin&) = delete;
  scoped_pin& operator=(const scoped_pin&) = delete;
  [[nodiscard]] bool pinned() const noexcept { return pinned_; }

 private:
  bool pinned_ = false;
  alignas(8) unsigned char saved_[128] = {};  // a cpu_set_t, kept opaque here
};

// ---------------------------------------------------------------------------------------------
// Allocation counting: support.cpp replaces the global operator new of every bench binary.

/// Global operator new calls so far, by every thread.
[[nodiscard]] std::int64_t allocations() noexcept;

// ---------------------------------------------------------------------------------------------
// Handshake flags.

/// A one-shot flag on a line of its own: set once by one thread, awaited by another.
struct alignas(line) flag {
  std::atomic<bool> value{false};

  void raise() noexcept {
    // Pairs with the acquire load in is_raised()/await(): what the raiser wrote before
    // (results, a pinned thread's readiness) is visible to the waiter.
    value.store(true, std::memory_order_release);
  }
  [[nodiscard]] bool is_raised() const noexcept {
    // Pairs with the release store in raise().
    return value.load(std::memory_order_acquire);
  }
  /// Spins, then yields: cheap on a spare core, polite on an oversubscribed one.
  void await() const noexcept {
    backoff b{1024};
    while (!is_raised()) b.pause();
  }
};

/// Counts threads that have arrived (stages that started, producers that are ready).
struct alignas(line) countdown {
  std::atomic<int> arrived{0};

  void arrive() noexcept {
    // Release RMW: pairs with the acquire load in await(); several threads arrive at once.
    arrived.fetch_add(1, std::memory_order_release);
  }
  void await(int n) const noexcept {
    backoff b{1024};
    // Acquire: pairs with the release increments in arrive().
    while (arrived.load(std::memory_order_acquire) < n) b.pause();
  }
};

/// Starts `fn` on a new thread pinned to `cpu` (-1: not pinned).
template <class Fn>
[[nodiscard]] std::thread start_thread(int cpu, Fn fn) {
  return std::thread([cpu, f = std::move(fn)]() mutable {
    (void)pin_current_thread(cpu);
    f();
  });
}

// ---------------------------------------------------------------------------------------------
// Timing.

/// What one timed region took.
struct timed_run {
  double seconds = 0;
  std::int64_t allocs = 0;  // global allocations inside the region, by every thread
};

/// Runs `region` (the produce-to-last-consume interval) between two clock reads and two reads of
/// the allocation counter.
template <class Region>
[[nodiscard]] timed_run time_region(Region&& region) {
  const std::int64_t a0 = allocations();
  const auto t0 = clock::now();
  region();
  const auto t1 = clock::now();
  timed_run r;
  r.allocs = allocations() - a0;
  r.seconds = seconds_between(t0, t1);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Self-checking consumers.

/// Sum of 0 + 1 + ... + (n - 1).
[[nodiscard]] constexpr std::int64_t triangle(std::int64_t n) noexcept {
  return n * (n - 1) / 2;
}

/// Checks that values arrive as 0, 1, 2, ... and sums them. One add, one xor and one or per
/// event: cheap enough not to hide the transport's cost.
struct in_order_check {
  std::int64_t next = 0;
  std::int64_t sum = 0;
  std::uint64_t mismatch = 0;

  void add(std::int64_t v) noexcept {
    mismatch |= static_cast<std::uint64_t>(v ^ next);
    ++next;
    sum += v;
  }
  /// True when exactly 0..n-1 arrived in order.
  [[nodiscard]] bool ok(std::int64_t n) const noexcept {
    return mismatch == 0 && next == n && sum == triangle(n);
  }
};

/// For consumers that know each event's sequence (rondo handlers): checks payload == sequence
/// and sums. One xor, one or and one add per event, with no counter of its own.
struct sequence_check {
  std::int64_t sum = 0;
  std::uint64_t mismatch = 0;

  void add(std::int64_t v, std::int64_t seq) noexcept {
    mismatch |= static_cast<std::uint64_t>(v ^ seq);
    sum += v;
  }
  /// True when the n events 0..n-1 carried their own sequence (the caller checks the count).
  [[nodiscard]] bool ok(std::int64_t n) const noexcept {
    return mismatch == 0 && sum == triangle(n);
  }
};

/// Sets an error on the benchmark unless `good`; returns good.
inline bool verify(benchmark::State& state, bool good, const char* what) {
  if (!good) state.SkipWithError(what);
  return good;
}

/// items_per_second from manual timing, plus the allocation rate.
inline void report_events(benchmark::State& state, std::int64_t events_per_iteration,
                          std::int64_t allocs_in_timed_regions) {
  const std::int64_t total = state.iterations() * events_per_iteration;
  state.SetItemsProcessed(total);
  state.counters["allocs/event"] = benchmark::Counter(static_cast<double>(allocs_in_timed_regions) /
                                                      static_cast<double>(total > 0 ? total : 1));
}

/// Sets counter `name` to events per take (takes: a consumer's successful takes).
inline void report_mean_batch(benchmark::State& state, const char* name, std::int64_t events,
                              std::int64_t takes) {
  state.counters[name] =
      benchmark::Counter(static_cast<double>(events) / static_cast<double>(takes > 0 ? takes : 1));
}

// ---------------------------------------------------------------------------------------------
// Arguments of the thread-topology benchmarks (pipeline, diamond, many_to_one).

inline constexpr std::int64_t n_events = std::int64_t{1} << 22;
inline constexpr std::int64_t n_slow = std::int64_t{1} << 20;

/// batch 1 and 32 with n events per iteration, manual time in milliseconds.
inline void batch_events_args(benchmark::internal::Benchmark* b, std::int64_t n, int iterations) {
  b->ArgNames({"batch", "events"})
      ->Args({1, n})
      ->Args({32, n})
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond)
      ->Iterations(iterations);
}
inline void fast_args(benchmark::internal::Benchmark* b) {
  batch_events_args(b, n_events, 3);
}
inline void slow_args(benchmark::internal::Benchmark* b) {
  batch_events_args(b, n_slow, 2);
}

// ---------------------------------------------------------------------------------------------
// rondo stages of the thread topologies: every stage counts itself in `started`; the last one
// checks each event and hands its results over.

/// What the last stage hands to the benchmark thread, written before done.raise().
struct sink_output {
  countdown started;
  flag done;
  sequence_check check;
  std::uint64_t mismatch = 0;  // the topology's own per-event invariant
};

/// Base of a stage that counts itself in out->started; the derived stage adds operator().
struct counted_stage {
  sink_output* out;
  void on_start() { out->started.arrive(); }
};

/// The last stage: checks value == sequence and Invariant{}(event, seq) == 0 for every event,
/// then hands the results to `out` at sequence `last`.
template <class Event, class Invariant>
struct checking_sink {
  sink_output* out;
  std::int64_t last;
  sequence_check check{};
  std::uint64_t mismatch = 0;

  void on_start() { out->started.arrive(); }
  void operator()(Event& e, std::int64_t seq, bool) {
    check.add(e.value, seq);
    mismatch |= Invariant{}(e, seq);
    if (seq == last) {
      out->check = check;
      out->mismatch = mismatch;
      out->done.raise();
    }
  }
};

/// Publishes n events in claims of `batch`, each event's value being its sequence.
template <class Pub>
void publish_sequences(Pub& pub, std::int64_t n, std::int64_t batch) {
  for (std::int64_t s = 0; s < n; s += batch) {
    auto c = pub.reserve(batch);
    for (auto [seq, ev] : c) ev.value = seq;
    c.publish();
  }
}

// ---------------------------------------------------------------------------------------------
// Queue chains of the thread topologies.

/// Values a chain stage takes at a time.
inline constexpr std::size_t chain_take_max = 256;

/// A link between two stage threads over a bulk SPSC queue with pop(out, max) / push(in, n)
/// (boost::lockfree::spsc_queue); yields at once when empty or full.
template <class Queue>
struct yielding_link {
  std::unique_ptr<Queue> q = std::make_unique<Queue>();

  /// Pops up to max; yields at once when empty.
  std::size_t take(std::int64_t* out, std::size_t max) {
    const std::size_t k = q->pop(out, max);
    if (k == 0) std::this_thread::yield();
    return k;
  }
  /// Pops exactly n (n <= capacity), yielding while fewer are there.
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

/// A middle stage: takes, adds Add, passes on; returns after n values.
template <std::int64_t Add, class Link>
void relay(Link& in, Link& out, std::int64_t n) {
  std::array<std::int64_t, chain_take_max> buf{};
  std::int64_t seen = 0;
  while (seen < n) {
    const std::size_t k = in.take(buf.data(), buf.size());
    for (std::size_t i = 0; i < k; ++i) buf[i] += Add;
    out.give(buf.data(), k);
    seen += static_cast<std::int64_t>(k);
  }
}

/// The producer of a queue benchmark: values 0..n-1, written `batch` (<= Max) at a time into a
/// buffer that give(data, count) hands on.
template <std::size_t Max, class Give>
void produce_batches(std::int64_t n, std::int64_t batch, Give&& give) {
  std::array<std::int64_t, Max> buf{};
  for (std::int64_t s = 0; s < n; s += batch) {
    for (std::int64_t i = 0; i < batch; ++i) buf[static_cast<std::size_t>(i)] = s + i;
    give(buf.data(), static_cast<std::size_t>(batch));
  }
}

// ---------------------------------------------------------------------------------------------
// The lock-based competitor.

/// A bounded FIFO guarded by one mutex, with condition variables for "not empty" and "not full".
/// Producers push ranges, consumers pop up to a maximum: the batching a careful lock-based
/// queue does. Any number of producers and consumers. Aligned so that two queues side by side
/// (a chain of them) share no cache line.
template <class T>
class alignas(line) mutex_queue {
 public:
  /// capacity: a power of two (slots are found with a mask).
  explicit mutex_queue(std::size_t capacity)
      : buf_(std::bit_ceil(capacity)), mask_(buf_.size() - 1) {}

  /// Pushes all n items, waiting while the queue is full.
  void push(const T* items, std::size_t n) {
    while (n > 0) {
      bool wake_consumer = false;
      std::size_t pushed = 0;
      {
        std::unique_lock lk(mu_);
        while (size_ == buf_.size()) {
          ++producers_waiting_;
          not_full_.wait(lk);
          --producers_waiting_;
        }
        pushed = std::min(n, buf_.size() - size_);
        for (std::size_t i = 0; i < pushed; ++i) {
          buf_[(head_ + size_ + i) & mask_] = items[i];
        }
        size_ += pushed;
        wake_consumer = consumers_waiting_ > 0;
      }
      // Notified after unlocking, so the woken thread does not block on the mutex at once.
      if (wake_consumer) not_empty_.notify_all();
      items += pushed;
      n -= pushed;
    }
  }
  void push(T v) { push(&v, 1); }

  /// Pops between 1 and max items into out, waiting while the queue is empty.
  std::size_t pop(T* out, std::size_t max) {
    std::size_t popped = 0;
    bool wake_producer = false;
    {
      std::unique_lock lk(mu_);
      while (size_ == 0) {
        ++consumers_waiting_;
        not_empty_.wait(lk);
        --consumers_waiting_;
      }
      popped = std::min(max, size_);
      for (std::size_t i = 0; i < popped; ++i) out[i] = buf_[(head_ + i) & mask_];
      head_ = (head_ + popped) & mask_;
      size_ -= popped;
      wake_producer = producers_waiting_ > 0;
    }
    if (wake_producer) not_full_.notify_all();
    return popped;
  }

 private:
  std::mutex mu_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::vector<T> buf_;
  std::size_t mask_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
  int producers_waiting_ = 0;
  int consumers_waiting_ = 0;
};

}  // namespace rondo_bench
