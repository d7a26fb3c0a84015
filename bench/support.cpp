// The compiled half of the bench harness: CPU pinning, the counting global allocator and the
// shared main(). Linked into every bench binary (an OBJECT library, so the operator new
// replacement is always pulled in).
//
//   bench binary = <topology>_bench.cpp + support.cpp
//                                          ├─ main(): Google Benchmark + context lines
//                                          ├─ operator new / delete: count, then malloc
//                                          └─ pin_current_thread / scoped_pin
//
// The allocation counter is one relaxed fetch_add per allocation: free when nothing allocates,
// which is what the steady state of every rondo topology must show (DESIGN.md 4.8).

#include "bench_support.hpp"

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <pthread.h>
#include <sched.h>

namespace rondo_bench {

namespace {

std::atomic<std::int64_t> allocation_count{0};

static_assert(sizeof(cpu_set_t) <= 128, "scoped_pin::saved_ is too small for cpu_set_t");

}  // namespace

std::int64_t allocations() noexcept {
  // Relaxed: a statistic, read after the threads that allocate have been joined or have
  // signalled completion through an acquire/release flag.
  return allocation_count.load(std::memory_order_relaxed);
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

bool pin_current_thread(int cpu) noexcept {
  if (cpu < 0 || cpu >= CPU_SETSIZE) return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

std::pair<int, int> pair_cpus() {
  const std::vector<int> cpus = allowed_cpus();
  if (cpus.size() < 2) return {-1, -1};
  return {cpus[0], cpus[1]};
}

scoped_pin::scoped_pin(int cpu) noexcept {
  cpu_set_t old;
  CPU_ZERO(&old);
  if (cpu < 0 || pthread_getaffinity_np(pthread_self(), sizeof old, &old) != 0) return;
  std::memcpy(saved_, &old, sizeof old);
  pinned_ = pin_current_thread(cpu);
}

scoped_pin::~scoped_pin() {
  if (!pinned_) return;
  cpu_set_t old;
  std::memcpy(&old, saved_, sizeof old);
  (void)pthread_setaffinity_np(pthread_self(), sizeof old, &old);
}

}  // namespace rondo_bench

// ---------------------------------------------------------------------------------------------
// Counting global allocator. The nothrow and array forms of libstdc++ forward to these.

namespace {

void* counted_alloc(std::size_t size) {
  // Relaxed: a statistic; pairs with nothing (see allocations()).
  rondo_bench::allocation_count.fetch_add(1, std::memory_order_relaxed);
  if (size == 0) size = 1;
  if (void* p = std::malloc(size)) return p;
  throw std::bad_alloc();
}

void* counted_aligned_alloc(std::size_t size, std::align_val_t al) {
  // Relaxed: as in counted_alloc().
  rondo_bench::allocation_count.fetch_add(1, std::memory_order_relaxed);
  const auto a = static_cast<std::size_t>(al);
  std::size_t rounded = (size + a - 1) / a * a;
  if (rounded == 0) rounded = a;
  if (void* p = std::aligned_alloc(a, rounded)) return p;
  throw std::bad_alloc();
}

}  // namespace

void* operator new(std::size_t size) {
  return counted_alloc(size);
}
void* operator new(std::size_t size, std::align_val_t al) {
  return counted_aligned_alloc(size, al);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}

// ---------------------------------------------------------------------------------------------

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const auto [a, b] = rondo_bench::pair_cpus();
  benchmark::AddCustomContext(
      "rondo_pinning", a < 0 ? std::string("off (fewer than 2 CPUs allowed)")
                             : "producer CPU " + std::to_string(a) + ", consumer CPU " +
                                   std::to_string(b) + " (where the benchmark says it pins)");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
