// journal_odirect_bench.cpp: io_bench's O_DIRECT journal row, aligned writes in flight on an
// io_context into a pre-allocated file, then one fdatasync per round. Registered in io_bench.cpp.
//
// 3. Journal throughput (the buffered rows: journal_io_bench.cpp)
//
//    journal_rondo_odirect  O_DIRECT into a file reserved with fallocate and written once (so
//                       its extents are allocated and initialised, as a pre-allocated journal
//                       segment is): per round 16 coroutines each co_await a 4 KiB aligned
//                       write (16 in flight), then one fdatasync; writes/s and fdatasync/s.

#include "io_bench_rows.hpp"
#include "journal_io.hpp"

#include <rondo/coro/task.hpp>
#include <rondo/io/io_context.hpp>
#include <rondo/io/runtime.hpp>

#include <benchmark/benchmark.h>

#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <span>
#include <string>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

namespace rondo_io_bench {
namespace {

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

}  // namespace

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

}  // namespace rondo_io_bench
