#pragma once
// The journal benchmark's shared parts (journal_io_bench.cpp, journal_odirect_bench.cpp): the
// event, the sizes and timings, where the file goes, the temporary file and the rows' results.
#include "io_bench_support.hpp"

#include <benchmark/benchmark.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

namespace rondo_io_bench {

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
inline std::string journal_dir() {
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


}  // namespace rondo_io_bench
