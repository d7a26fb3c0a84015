// reserve + publish: the producer's fast path with nobody contending for it.
//
//   benchmark thread(s)                              stand-in consumer (no thread)
//   ───────────────────                              ─────────────────────────────
//   reserve(n) ─▶ write n slots ─▶ publish ─┐        `consumed` sequence, advanced by
//        ▲                                   │        the producer itself once per
//        └──── gating: hi - capacity <= consumed ◀──  1,024 slots (one benchmark iteration)
//
// One benchmark iteration is 1,024 slots (1,024 reserve(1) calls or 64 reserve(16) calls), so
// the framework's per-iteration overhead is amortised and "time/slot" (seconds per slot, shown
// with an SI prefix: 1.5n = 1.5 ns) reads directly against DESIGN.md section 6: at most 2 ns per
// reserve(1) + publish, at most 0.2 ns per slot when reserving 16 at a time.
//
// The single-producer ring is 4,096 8-byte slots (32 KiB, L1-resident) and the stand-in consumer is
// at most one iteration behind, so the single producer reads the gating sequence about once per
// 3,072 slots (its cached copy covers the rest): what the measurement shows is the claim and
// publish themselves.
//
// Variants:
//   harness_masked   no sequencer: the same slot writes through a mask per slot (what
//                    ring_buffer::operator[] does) and one release store of a cursor per batch
//   harness_span     the same, but each batch written as one contiguous span (the compiler
//                    vectorises it); the floor for a claim that exposed its slots as a span
//   core_single      single_producer_sequencer::reserve / publish, slots written through the ring
//   publisher_claim  the same through rondo::publisher<T> and rondo::claim<T>
//   coroutine        co_await coro_publisher::reserve + publish inside a coroutine (sync_wait);
//                    _parked_elsewhere: while a coroutine stage of the same ring is parked on
//                    another thread (waiting for an upstream stage that does not move) and its
//                    executor has gone to sleep with it announced: the publish must still pay
//                    only a compiler barrier and two loads (docs/wakeup-protocol.md)
//   core_multi       multi_producer_sequencer::try_reserve / publish from 1 and 2 threads
//                    (UseRealTime: items/s is the total over both threads)
//
// The multi-producer stand-in consumer may only pass published slots, and with two producers a
// slot below the cursor may still be open. Two ways to move it, both sound:
//  - cheap, at each iteration start: each producer announces a floor before it claims (the
//    cursor it read: all its later claims lie above it; +inf between iterations, when no claim
//    is open), and everything at or below min(cursor, floors) is published;
//  - when try_reserve finds the ring full (the other producer's floor is stale, for instance
//    because it was descheduled): scan the published flags like a consumer barrier does
//    (sequencer::highest_published), charging that scan to the producer.
// The consumer moves with a CAS max. With try_reserve no producer ever waits for a floor that
// only it could raise. The multi-producer ring has 65,536 slots so that the floors alone keep
// it from filling ("ring_full/slot": failed try_reserve calls per slot, 0 with one thread; with
// two it counts the spins while the other producer is descheduled mid-iteration).
// (One file above ~400 lines on purpose: every competitor of a same-run ratio lives in the binary
// that measures it, so that they share the harness, the pinning and the run order.)

#include "bench_support.hpp"

#include <rondo/core/multi_producer_sequencer.hpp>
#include <rondo/core/ring_buffer.hpp>
#include <rondo/core/sequence.hpp>
#include <rondo/core/single_producer_sequencer.hpp>
#include <rondo/core/wait_strategy.hpp>
#include <rondo/coro/barrier_wait.hpp>
#include <rondo/coro/detached.hpp>
#include <rondo/coro/scheduler.hpp>
#include <rondo/coro/sync_wait.hpp>
#include <rondo/coro/task.hpp>
#include <rondo/dsl/publisher.hpp>

#include <benchmark/benchmark.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

namespace {

constexpr std::int64_t ring_capacity = 4096;
constexpr std::int64_t multi_ring_capacity = 1 << 16;
constexpr std::int64_t slots_per_iteration = 1024;

void report_slots(benchmark::State& state) {
  const std::int64_t slots = state.iterations() * slots_per_iteration;
  state.SetItemsProcessed(slots);
  state.counters["time/slot"] = benchmark::Counter(
      static_cast<double>(slots), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// ---------------------------------------------------------------------------------------------
// Harness baselines: a plain array and a plain atomic cursor.

struct alignas(rondo_bench::line) plain_cursor {
  std::atomic<std::int64_t> value{-1};
};

template <std::int64_t Batch, bool Span>
void reserve_publish_harness(benchmark::State& state) {
  static_assert(slots_per_iteration % Batch == 0);
  std::vector<std::int64_t> ring(static_cast<std::size_t>(ring_capacity));
  plain_cursor cursor;
  std::int64_t next = 0;
  for (auto _ : state) {
    for (std::int64_t i = 0; i < slots_per_iteration; i += Batch) {
      const std::int64_t lo = next;
      if constexpr (Span) {
        // Batches never straddle the ring's end here (capacity % Batch == 0).
        std::int64_t* slots = ring.data() + (lo & (ring_capacity - 1));
        for (std::int64_t k = 0; k < Batch; ++k) slots[k] = lo + k;
      } else {
        for (std::int64_t s = lo; s < lo + Batch; ++s) {
          ring[static_cast<std::size_t>(s & (ring_capacity - 1))] = s;
        }
      }
      next = lo + Batch;
      // Release: what a publish must at least do; nobody reads it here.
      cursor.value.store(next - 1, std::memory_order_release);
    }
    benchmark::ClobberMemory();
  }
  report_slots(state);
}

// ---------------------------------------------------------------------------------------------
// Single producer, core API.

// The single-producer ring with its stand-in consumer.
struct single_fixture {
  single_fixture() { seqr.add_gating_sequence(consumed); }

  // After the run: every slot claimed, the last one written, the cursor on it.
  [[nodiscard]] bool verify(benchmark::State& state, std::int64_t hi) {
    return rondo_bench::verify(state,
                               hi == state.iterations() * slots_per_iteration - 1 &&
                                   ring[hi] == hi && seqr.cursor().get() == hi,
                               "cursor or last slot is wrong");
  }

  rondo::wait_strategy waits{rondo::busy_spin{}};
  rondo::ring_buffer<std::int64_t> ring{ring_capacity};
  rondo::single_producer_sequencer seqr{ring_capacity, waits};
  rondo::sequence consumed;
};

template <std::int64_t Batch>
void reserve_publish_core_single(benchmark::State& state) {
  static_assert(slots_per_iteration % Batch == 0);
  single_fixture fx;
  auto& ring = fx.ring;
  auto& seqr = fx.seqr;
  std::int64_t hi = rondo::initial_sequence;
  for (auto _ : state) {
    for (std::int64_t i = 0; i < slots_per_iteration; i += Batch) {
      hi = seqr.reserve(Batch);
      const std::int64_t lo = hi - Batch + 1;
      for (std::int64_t s = lo; s <= hi; ++s) ring[s] = s;
      seqr.publish(lo, hi);
    }
    benchmark::ClobberMemory();
    // Release: the stand-in consumer "has finished" with everything published; pairs with the
    // acquire load in the sequencer's gating check.
    fx.consumed.set(hi);
  }
  if (!fx.verify(state, hi)) return;
  report_slots(state);
}

// ---------------------------------------------------------------------------------------------
// Single producer through the DSL's publisher and claim.

template <std::int64_t Batch>
void reserve_publish_publisher_claim(benchmark::State& state) {
  static_assert(slots_per_iteration % Batch == 0);
  single_fixture fx;
  rondo::publisher<std::int64_t> pub(fx.ring, fx.seqr);

  std::int64_t hi = rondo::initial_sequence;
  for (auto _ : state) {
    for (std::int64_t i = 0; i < slots_per_iteration; i += Batch) {
      auto c = pub.reserve(Batch);
      const std::int64_t lo = c.first();
      for (std::size_t k = 0; k < static_cast<std::size_t>(Batch); ++k) {
        c[k] = lo + static_cast<std::int64_t>(k);
      }
      hi = c.last();
      c.publish();
    }
    benchmark::ClobberMemory();
    // Release: pairs with the acquire load in the sequencer's gating check.
    fx.consumed.set(hi);
  }
  if (!fx.verify(state, hi)) return;
  report_slots(state);
}

// ---------------------------------------------------------------------------------------------
// Single producer from a coroutine: co_await coro_publisher::reserve + publish.
//
// `Gate` false: nobody ever parked on this disruptor (publishes pay a compiler barrier and two
// loads). true: a waiter parked once before the run (the lazy Dekker gate is active), so every
// publish pays a seq_cst fence and a load of the registry's lowest target: the price of having
// coroutine waiters at all.

// Fills a claim outside the coroutine body: g++ keeps every local of a coroutine body in its
// frame, and a loop counter in memory reloaded after each slot store (which may alias it) costs
// more than the reserve itself. A plain function's locals stay in registers.
template <std::int64_t Batch>
[[gnu::always_inline]] inline std::int64_t fill_and_publish(rondo::claim<std::int64_t>& c) {
  const std::int64_t lo = c.first();
  for (std::int64_t k = 0; k < Batch; ++k) c[static_cast<std::size_t>(k)] = lo + k;
  const std::int64_t hi = c.last();
  c.publish();
  return hi;
}

template <std::int64_t Batch>
rondo::task<std::int64_t> coroutine_producer_loop(benchmark::State& state, single_fixture& fx,
                                                  rondo::publisher<std::int64_t>& pub) {
  std::int64_t hi = rondo::initial_sequence;
  rondo::coro_publisher<std::int64_t> producer = pub.coro();  // what a producer coroutine holds
  for (auto _ : state) {
    for (std::int64_t i = 0; i < slots_per_iteration; i += Batch) {
      auto c = co_await producer.reserve(Batch);
      hi = fill_and_publish<Batch>(c);
    }
    benchmark::ClobberMemory();
    // Release: pairs with the acquire load in the sequencer's gating check.
    fx.consumed.set(hi);
  }
  co_return hi;
}

// The same loop as a plain function that, like the coroutine, reaches the publisher and the
// fixture through references it cannot see the construction of: the thread baseline with the
// coroutine's knowledge. (publisher_claim above lets the compiler see both on its stack, so it
// drops the single/multi dispatch and keeps the ring's mask and base in registers.)
template <std::int64_t Batch>
[[gnu::noinline]] std::int64_t thread_producer_loop(benchmark::State& state, single_fixture& fx,
                                                    rondo::publisher<std::int64_t>& pub) {
  std::int64_t hi = rondo::initial_sequence;
  for (auto _ : state) {
    for (std::int64_t i = 0; i < slots_per_iteration; i += Batch) {
      auto c = pub.reserve(Batch);
      hi = fill_and_publish<Batch>(c);
    }
    benchmark::ClobberMemory();
    // Release: pairs with the acquire load in the sequencer's gating check.
    fx.consumed.set(hi);
  }
  return hi;
}

template <std::int64_t Batch>
void reserve_publish_thread_by_reference(benchmark::State& state) {
  single_fixture fx;
  rondo::publisher<std::int64_t> pub(fx.ring, fx.seqr);
  const std::int64_t hi = thread_producer_loop<Batch>(state, fx, pub);
  if (!fx.verify(state, hi)) return;
  report_slots(state);
}

template <std::int64_t Batch, bool ParkedElsewhere>
void reserve_publish_coroutine(benchmark::State& state) {
  static_assert(slots_per_iteration % Batch == 0);
  single_fixture fx;
  rondo::publisher<std::int64_t> pub(fx.ring, fx.seqr);
  // A stage after an upstream stage that never moves: it parks on `helper`, which polls it for
  // its idle spin and then sleeps with the wait announced in this ring's registry.
  rondo::sequence never;
  rondo::sequence_barrier behind(fx.seqr, {&never});
  rondo::thread_scheduler helper;
  std::atomic<bool> stage_done{false};
  auto parked_stage = [&]() -> rondo::detached {
    co_await helper.schedule();
    (void)co_await behind.wait(0);  // ends with stopped when the barrier is alerted below
    // Release: pairs with the acquire load below.
    stage_done.store(true, std::memory_order_release);
  };
  if constexpr (ParkedElsewhere) {
    parked_stage();
    // Wait until the helper has gone to sleep with the wait announced.
    while (helper.parking()->sleep_fences() == 0) std::this_thread::yield();
  }
  const std::uint64_t fences0 = helper.parking()->sleep_fences();
  const std::int64_t first = fx.seqr.cursor().get() + 1;
  const std::int64_t hi = rondo::sync_wait(coroutine_producer_loop<Batch>(state, fx, pub));
  state.counters["announced"] = static_cast<double>(fx.seqr.waits().waiters().size());
  state.counters["helper_membarriers"] =
      static_cast<double>(helper.parking()->sleep_fences() - fences0);
  if constexpr (ParkedElsewhere) {
    behind.alert();
    // Acquire: pairs with the release store in parked_stage.
    while (!stage_done.load(std::memory_order_acquire)) std::this_thread::yield();
  }
  const bool ok = hi - first + 1 == state.iterations() * slots_per_iteration && fx.ring[hi] == hi;
  if (!rondo_bench::verify(state, ok, "cursor or last slot is wrong")) return;
  report_slots(state);
}

// ---------------------------------------------------------------------------------------------
// Multi producer, 1 or 2 threads.

constexpr int max_threads = 2;
constexpr std::int64_t no_open_claim = std::numeric_limits<std::int64_t>::max();

struct multi_fixture {
  multi_fixture() {
    seqr.add_gating_sequence(consumed);
    for (auto& f : floors) f.set_relaxed(no_open_claim);
  }

  // Announces that every claim this thread makes from now on lies above the cursor read here.
  // Must be called while the thread has no open claim.
  void announce_floor(int tid) noexcept {
    // Release store after an acquire load of the cursor: a thread that later sees a cursor value
    // produced by our claim (acquire in advance_consumed) also sees this floor.
    floors[static_cast<std::size_t>(tid)].set(seqr.cursor().get());
  }
  void retire_floor(int tid) noexcept {
    // Release: pairs with the acquire loads in advance_consumed(); no claim is open now.
    floors[static_cast<std::size_t>(tid)].set(no_open_claim);
  }

  // Moves the stand-in consumer up to the floors (see the file comment).
  void advance_consumed() noexcept {
    // Cursor first (acquire, pairs with the producers' CAS), floors second (acquire, pair with
    // announce_floor): a claim above the floor we read is not yet counted as consumed.
    std::int64_t g = seqr.cursor().get();
    for (const auto& f : floors) g = std::min(g, f.get());
    move_consumed_to(g);
  }

  // Moves the stand-in consumer over every published slot, as a consumer barrier would.
  void scan_consumed() noexcept {
    const std::int64_t from = consumed.get() + 1;
    // highest_published's acquire flag loads pair with the release flag stores of publish().
    move_consumed_to(seqr.highest_published(from, seqr.cursor().get()));
  }

  void move_consumed_to(std::int64_t g) noexcept {
    std::int64_t cur = consumed.get();
    // acq_rel CAS (sequence::compare_exchange): pairs with the other producer's CAS here and
    // with the acquire load in the sequencer's gating check.
    while (g > cur && !consumed.compare_exchange(cur, g)) {
    }
  }

  rondo::wait_strategy waits{rondo::busy_spin{}};
  rondo::ring_buffer<std::int64_t> ring{multi_ring_capacity};
  rondo::multi_producer_sequencer seqr{multi_ring_capacity, waits};
  rondo::sequence consumed;
  std::array<rondo::sequence, max_threads> floors;
};

std::unique_ptr<multi_fixture> shared_multi;  // built by thread 0 before the start barrier

template <std::int64_t Batch>
void reserve_publish_core_multi(benchmark::State& state) {
  static_assert(slots_per_iteration % Batch == 0);
  // Google Benchmark holds every thread at the loop's start until all arrive, and at its end
  // until all finish: thread 0 builds and destroys the shared fixture outside that window.
  if (state.thread_index() == 0) shared_multi = std::make_unique<multi_fixture>();
  const int tid = state.thread_index();
  std::int64_t full = 0;
  for (auto _ : state) {
    multi_fixture& fx = *shared_multi;
    fx.announce_floor(tid);
    fx.advance_consumed();
    for (std::int64_t i = 0; i < slots_per_iteration; i += Batch) {
      std::optional<std::int64_t> hi = fx.seqr.try_reserve(Batch);
      while (!hi) {
        ++full;
        fx.scan_consumed();
        hi = fx.seqr.try_reserve(Batch);
      }
      const std::int64_t lo = *hi - Batch + 1;
      for (std::int64_t s = lo; s <= *hi; ++s) fx.ring[s] = s;
      fx.seqr.publish(lo, *hi);
    }
    benchmark::ClobberMemory();
    fx.retire_floor(tid);
  }
  state.counters["ring_full/slot"] = benchmark::Counter(
      static_cast<double>(full) / static_cast<double>(state.iterations() * slots_per_iteration),
      benchmark::Counter::kAvgThreads);
  report_slots(state);
  if (state.thread_index() == 0) {
    const std::int64_t claimed = shared_multi->seqr.cursor().get() + 1;
    const std::int64_t expected = state.iterations() * slots_per_iteration * state.threads();
    const std::int64_t published =
        shared_multi->seqr.highest_published(shared_multi->consumed.get() + 1, claimed - 1) + 1;
    (void)rondo_bench::verify(state, claimed == expected && published == claimed,
                              "claimed or published count is wrong");
    shared_multi.reset();
  }
}

}  // namespace

BENCHMARK_TEMPLATE(reserve_publish_harness, 1, false)->Name("reserve_publish_harness_masked<1>");
BENCHMARK_TEMPLATE(reserve_publish_harness, 16, false)->Name("reserve_publish_harness_masked<16>");
BENCHMARK_TEMPLATE(reserve_publish_harness, 16, true)->Name("reserve_publish_harness_span<16>");
BENCHMARK_TEMPLATE(reserve_publish_core_single, 1);
BENCHMARK_TEMPLATE(reserve_publish_core_single, 16);
BENCHMARK_TEMPLATE(reserve_publish_publisher_claim, 1);
BENCHMARK_TEMPLATE(reserve_publish_publisher_claim, 16);
BENCHMARK_TEMPLATE(reserve_publish_thread_by_reference, 1);
BENCHMARK_TEMPLATE(reserve_publish_thread_by_reference, 16);
BENCHMARK_TEMPLATE(reserve_publish_coroutine, 1, false)->Name("reserve_publish_coroutine<1>");
BENCHMARK_TEMPLATE(reserve_publish_coroutine, 16, false)->Name("reserve_publish_coroutine<16>");
BENCHMARK_TEMPLATE(reserve_publish_coroutine, 1, true)
    ->Name("reserve_publish_coroutine_parked_elsewhere<1>");
BENCHMARK_TEMPLATE(reserve_publish_coroutine, 16, true)
    ->Name("reserve_publish_coroutine_parked_elsewhere<16>");
BENCHMARK_TEMPLATE(reserve_publish_core_multi, 1)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK_TEMPLATE(reserve_publish_core_multi, 16)->Threads(1)->Threads(2)->UseRealTime();
