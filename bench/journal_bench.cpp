// journal_bench: the framed, crash-safe rondo::journal against today's unframed baseline, in one
// binary, on a real disk (/tmp unless it is tmpfs, else next to this binary).
//
//   benchmark thread = io_context owner
//   ┌─────────────────────────────────────────────────────────────────────────┐
//   │ loop: co_await append_durable(N records of 64 bytes) = write(s) + fdatasync │
//   └─────────────────────────────────────────────────────────────────────────┘
//
// Rows (items/s = records made durable per second; N = records per append, the batch a journal
// stage hands over):
//   journal_append/raw/buffered/N       the journal before framing (a copy of its code below):
//                                       one writev of the caller's iovecs at the tail, fdatasync
//   journal_append/framed/buffered/N    rondo::journal: frames (16-byte header, CRC32C, padding)
//                                       copied into the staging buffer, one write, fdatasync
//   journal_append/framed_writev/buffered/N  the same frames as three iovecs per record (header,
//                                       payload, padding), no copy: the alternative to staging
//   journal_append/raw/direct/N         the old O_DIRECT journal: staged 4 KiB blocks, fdatasync
//   journal_append/framed/direct/N      rondo::journal with direct = true
//
// The target (issue 13): framed >= 0.9x raw in the same run, buffered and direct.
// bench/journal_rows.sh runs the rows interleaved, repeated, and prints the median ratios.

#include "bench_support.hpp"

#include <rondo/io/crc32c.hpp>
#include <rondo/io/journal.hpp>
#include <rondo/rondo.hpp>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

namespace {

constexpr std::size_t record_bytes = 64;
constexpr std::uint64_t block = 4096;

std::string bench_dir() {
  struct statfs fs {};
  if (::statfs("/tmp", &fs) == 0 && fs.f_type != TMPFS_MAGIC) return "/tmp";
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

// ---------------------------------------------------------------------------------------------
// The baseline: rondo::journal as it was before framing (unframed bytes, one file, O_TRUNC),
// reduced to its append path. Buffered: one writev of the caller's iovecs, then fdatasync.
// Direct: the records copied into 4 KiB-aligned staging, dirty blocks written with O_DIRECT
// into a file fallocate'd in 64 MiB steps, the last partial block rewritten by the next append.
class raw_journal {
 public:
  raw_journal(rondo::io_context& io, const std::string& path, bool direct)
      : io_(&io), direct_(direct) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (direct ? O_DIRECT : 0),
                 0644);
    if (fd_ < 0) throw std::system_error(errno, std::system_category(), "open " + path);
    if (direct) {
      staging_ = static_cast<std::byte*>(std::aligned_alloc(block, staging_bytes));
      std::memset(staging_, 0, staging_bytes);
    }
  }
  ~raw_journal() {
    if (direct_) (void)!::ftruncate(fd_, static_cast<off_t>(size_));
    ::close(fd_);
    std::free(staging_);
  }
  raw_journal(const raw_journal&) = delete;
  raw_journal& operator=(const raw_journal&) = delete;

  rondo::task<> append_durable(std::span<const ::iovec> records) {
    if (direct_) {
      for (const ::iovec& v : records) {
        const auto* src = static_cast<const std::byte*>(v.iov_base);
        std::size_t left = v.iov_len;
        while (left > 0) {
          const auto used = static_cast<std::size_t>(size_ - stage_base_);
          const std::size_t n = std::min(left, staging_bytes - used);
          std::memcpy(staging_ + used, src, n);
          size_ += n;
          src += n;
          left -= n;
          if (size_ - stage_base_ == staging_bytes) co_await write_staged();
        }
      }
      if (size_ > stage_base_) co_await write_staged();
    } else {
      std::uint64_t total = 0;
      for (const ::iovec& v : records) total += v.iov_len;
      const rondo::io_result r = co_await io_->writev(fd_, records, size_);
      if (r.res != static_cast<int>(total)) throw std::runtime_error("raw writev: short or failed");
      size_ += total;
    }
    const rondo::io_result s = co_await io_->fdatasync(fd_);
    if (!s.ok()) throw std::runtime_error("raw fdatasync failed");
  }

 private:
  static constexpr std::size_t staging_bytes = std::size_t{1} << 20;
  static constexpr std::uint64_t preallocate = std::uint64_t{64} << 20;

  rondo::task<> write_staged() {
    const std::uint64_t end = (size_ + block - 1) & ~(block - 1);
    while (allocated_ < end) {
      if (::fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(allocated_),
                      static_cast<off_t>(preallocate)) != 0) {
        throw std::runtime_error("raw fallocate failed");
      }
      allocated_ += preallocate;
    }
    const auto len = static_cast<std::size_t>(end - stage_base_);
    const rondo::io_result r = co_await io_->write(fd_, {staging_, len}, stage_base_);
    if (r.res != static_cast<int>(len)) throw std::runtime_error("raw O_DIRECT write failed");
    const std::uint64_t new_base = size_ & ~(block - 1);
    if (new_base != stage_base_) {
      const auto used = static_cast<std::size_t>(size_ - stage_base_);
      const auto tail = static_cast<std::size_t>(size_ - new_base);
      std::memmove(staging_, staging_ + (new_base - stage_base_), tail);
      std::memset(staging_ + tail, 0, used - tail);
      stage_base_ = new_base;
    }
  }

  rondo::io_context* io_;
  bool direct_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::uint64_t stage_base_ = 0;
  std::uint64_t allocated_ = 0;
  std::byte* staging_ = nullptr;
};

// The framing alternative to staging: the same frames as rondo::journal writes, as iovecs
// (header, payload, padding per record: at most IOV_MAX / 3 records per writev).
class writev_framed_journal {
 public:
  writev_framed_journal(rondo::io_context& io, const std::string& path) : io_(&io) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::system_error(errno, std::system_category(), "open " + path);
    std::byte h[rondo::journal_format::file_header_size];
    rondo::detail::write_file_header(h, 0);
    if (::pwrite(fd_, h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) {
      throw std::runtime_error("header write failed");
    }
    size_ = sizeof h;
  }
  ~writev_framed_journal() { ::close(fd_); }
  writev_framed_journal(const writev_framed_journal&) = delete;
  writev_framed_journal& operator=(const writev_framed_journal&) = delete;

  rondo::task<> append_durable(std::span<const ::iovec> records) {
    static const std::byte zeros[8] = {};
    heads_.resize(records.size() * rondo::journal_format::record_header_size);
    iov_.clear();
    for (std::size_t i = 0; i < records.size(); ++i) {
      const auto len = static_cast<std::uint32_t>(records[i].iov_len);
      std::byte* h = heads_.data() + i * rondo::journal_format::record_header_size;
      rondo::detail::write_record_header(h, seq_++, records[i].iov_base, len);
      iov_.push_back({h, rondo::journal_format::record_header_size});
      iov_.push_back(records[i]);
      const std::size_t pad = rondo::journal_format::frame_size(len) - 16 - len;
      if (pad > 0) iov_.push_back({const_cast<std::byte*>(zeros), pad});
    }
    std::size_t done = 0;
    while (done < iov_.size()) {
      const std::size_t n = std::min<std::size_t>(iov_.size() - done, IOV_MAX);
      std::uint64_t bytes = 0;
      for (std::size_t i = done; i < done + n; ++i) bytes += iov_[i].iov_len;
      const rondo::io_result r =
          co_await io_->writev(fd_, std::span<const ::iovec>(iov_).subspan(done, n), size_);
      if (r.res != static_cast<int>(bytes)) throw std::runtime_error("writev short or failed");
      size_ += bytes;
      done += n;
    }
    const rondo::io_result s = co_await io_->fdatasync(fd_);
    if (!s.ok()) throw std::runtime_error("fdatasync failed");
  }

 private:
  rondo::io_context* io_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::int64_t seq_ = 0;
  std::vector<std::byte> heads_;
  std::vector<::iovec> iov_;
};

// ---------------------------------------------------------------------------------------------

template <class Journal>
void drive(benchmark::State& state, rondo::io_context& io, Journal& j) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<std::array<std::byte, record_bytes>> recs(n);
  std::vector<::iovec> iov(n);
  std::uint64_t counter = 0;
  bool finished = false;
  std::string error;
  auto loop = [&]() -> rondo::detached {
    try {
      for (auto _ : state) {
        for (std::size_t i = 0; i < n; ++i) {  // fresh content per append, as a stage would have
          ++counter;
          std::memcpy(recs[i].data(), &counter, sizeof counter);
          iov[i] = {recs[i].data(), record_bytes};
        }
        co_await j.append_durable(iov);
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
    finished = true;
  };
  loop();
  while (!finished) io.run_one();
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * record_bytes));
}

void journal_append_raw(benchmark::State& state, bool direct) {
  rondo::io_context io;
  const std::string path = fmt::format("{}/rondo-journal-bench-raw-{}", bench_dir(), ::getpid());
  try {
    raw_journal j(io, path, direct);
    drive(state, io, j);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
  ::unlink(path.c_str());
}

void journal_append_framed(benchmark::State& state, bool direct) {
  rondo::io_context io;
  const std::string dir = fmt::format("{}/rondo-journal-bench-{}", bench_dir(), ::getpid());
  try {
    rondo::journal_options o;
    o.mode = rondo::open_mode::truncate;
    o.direct = direct;
    rondo::journal j(io, dir, o);
    drive(state, io, j);
    // Verify what was written: every record, in order (outside the timed loop).
    if (state.iterations() > 0 && state.thread_index() == 0) {
      const auto rep = rondo::verify_journal(dir);
      if (!rep.clean() || rep.next_sequence != j.next_sequence()) {
        state.SkipWithError("the framed journal did not verify");
      }
    }
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

void journal_append_framed_writev(benchmark::State& state) {
  rondo::io_context io;
  const std::string path = fmt::format("{}/rondo-journal-bench-fw-{}", bench_dir(), ::getpid());
  try {
    writev_framed_journal j(io, path);
    drive(state, io, j);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
  ::unlink(path.c_str());
}

void args(benchmark::internal::Benchmark* b) {
  b->Arg(16)->Arg(64)->Arg(256)->UseRealTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK_CAPTURE(journal_append_raw, buffered, false)
    ->Name("journal_append/raw/buffered")
    ->Apply(args);
BENCHMARK_CAPTURE(journal_append_framed, buffered, false)
    ->Name("journal_append/framed/buffered")
    ->Apply(args);
BENCHMARK(journal_append_framed_writev)->Name("journal_append/framed_writev/buffered")->Apply(args);
BENCHMARK_CAPTURE(journal_append_raw, direct, true)->Name("journal_append/raw/direct")->Apply(args);
BENCHMARK_CAPTURE(journal_append_framed, direct, true)
    ->Name("journal_append/framed/direct")
    ->Apply(args);

}  // namespace
