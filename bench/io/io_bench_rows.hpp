#pragma once
// io_bench's rows, one function per benchmark family: wakeup_bench.cpp, echo_bench.cpp,
// journal_io_bench.cpp and journal_odirect_bench.cpp define them; io_bench.cpp registers them.
#include <benchmark/benchmark.h>

#include <chrono>

namespace rondo_io_bench {

// 1. Wake-up round trips (wakeup_bench.cpp).
void wakeup_busy_spin(benchmark::State& state);
void wakeup_futex(benchmark::State& state);
void wakeup_rondo(benchmark::State& state, std::chrono::microseconds idle_spin, bool msg_ring);

// 2. TCP echo on loopback (echo_bench.cpp).
void echo_raw_liburing(benchmark::State& state);
void echo_rondo(benchmark::State& state, std::chrono::microseconds idle_spin);
void echo_rondo_foreign_epoll(benchmark::State& state);
#if RONDO_BENCH_ASIO
void echo_rondo_asio(benchmark::State& state);
#endif

// 3. Journal throughput (journal_io_bench.cpp; the O_DIRECT row in journal_odirect_bench.cpp).
void journal_rondo(benchmark::State& state);
void journal_raw_uring(benchmark::State& state, bool replay);
void journal_rondo_polling(benchmark::State& state);
void journal_rondo_odirect(benchmark::State& state);

}  // namespace rondo_io_bench
