// io_bench: the io_uring executor against the kernel and against plain liburing, on the three
// things a rondo server does with it: wake a context up, echo on sockets, journal to a file.
//
//   1. wake-up round trips   wakeup_bench.cpp
//   2. TCP echo on loopback  echo_bench.cpp; its client echo_client.cpp, its raw liburing
//                            server echo_raw_server.cpp, their shared parts echo.hpp
//   3. journal throughput    journal_io_bench.cpp (buffered rows), journal_odirect_bench.cpp
//                            (O_DIRECT), their shared parts journal_io.hpp
//   shared helpers           io_bench_support.hpp / .cpp; the rows are declared in
//                            io_bench_rows.hpp
//
// Each file's opening comment says what its rows measure. This file registers the rows, in
// one place, because their order matters (see below); main() is bench/support.cpp's.
#include "io_bench_rows.hpp"

#include <benchmark/benchmark.h>

#include <chrono>

namespace {

void once(benchmark::internal::Benchmark* b) {
  b->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);
}

}  // namespace

using rondo_io_bench::echo_raw_liburing;
using rondo_io_bench::echo_rondo;
using rondo_io_bench::echo_rondo_foreign_epoll;
#if RONDO_BENCH_ASIO
using rondo_io_bench::echo_rondo_asio;
#endif
using rondo_io_bench::journal_raw_uring;
using rondo_io_bench::journal_rondo;
using rondo_io_bench::journal_rondo_odirect;
using rondo_io_bench::journal_rondo_polling;
using rondo_io_bench::wakeup_busy_spin;
using rondo_io_bench::wakeup_futex;
using rondo_io_bench::wakeup_rondo;

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
