#pragma once
// journal: an append-only file made durable through an io_context, for journal stages.
//
//   rondo::journal j(io, "orders.log");                  // buffered: writev + fdatasync
//   rondo::journal j(io, "orders.log", {.direct = true});  // O_DIRECT into a pre-allocated file
//   ...
//   rondo::task<> journal_stage(rondo::batch<order> b) {
//     auto [first, second] = b.spans();                   // the batch, as at most two runs
//     co_await j.append_durable(as_iovecs(first, second));  // written and fdatasync'ed
//   }
//
// Two modes, because on ext4 (DESIGN.md 6a) buffered io_uring writes are punted to kernel
// workers, 3-30x slower than a plain pwrite, while O_DIRECT writes into blocks allocated up front
// go straight to the device and fdatasync then has little metadata to flush:
//
//   buffered  one writev of the caller's iovecs at the tail, then fdatasync. No copy.
//   direct    the records are copied into a 4 KiB-aligned staging buffer; the dirty blocks
//             (from the block holding the old tail to the block holding the new one) are written
//             with O_DIRECT, then fdatasync. The last partial block stays staged and is written
//             again, extended, by the next append. The file is fallocate'd in steps of
//             `preallocate` bytes (FALLOC_FL_KEEP_SIZE) and truncated to its logical size when
//             the journal closes; until then, and after a crash, up to 4095 zero bytes follow
//             the last record (frame your records).
//
// Thread-safety: appends run on the io_context's thread, one at a time (the journal stage is
// one coroutine); size() and syncs() are for that thread or after the stage finished. Errors throw std::system_error naming the operation and
// the path.

#include <rondo/coro/task.hpp>
#include <rondo/io/io_context.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include <sys/uio.h>

namespace rondo {

struct journal_options {
  bool direct = false;  ///< O_DIRECT mode (see the file comment)
  /// direct: bytes fallocate'd at a time (a multiple of 4096, > 0).
  std::uint64_t preallocate = std::uint64_t{64} << 20;
  /// direct: staging buffer (a multiple of 4096, >= 8192): an append larger than this is
  /// written in several steps.
  std::size_t staging = std::size_t{1} << 20;
  bool truncate = true;  ///< start empty (else append after the existing content)
};

class journal {
 public:
  /// Opens (creates) `path` (any thread; appends then run on `io`'s thread). Throws
  /// std::system_error naming the path (open, fallocate, O_DIRECT refused by the file system)
  /// and std::invalid_argument for bad options.
  journal(io_context& io, std::string path, journal_options opts = {});
  /// Truncates a direct journal to its logical size, closes the file.
  ~journal();
  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  /// Appends the records and makes them durable: completes after the write(s) and the
  /// fdatasync. Throws std::system_error ("writev(orders.log): No space left on device"); after
  /// a failure the journal's content beyond size() is unspecified. A buffered journal can be
  /// retried (size() moves only after the fdatasync, so a retry rewrites the same range); a
  /// direct journal refuses later appends (std::runtime_error naming the first failure).
  task<> append_durable(std::span<const ::iovec> records);

  /// Bytes appended (the logical size).
  [[nodiscard]] std::uint64_t size() const noexcept { return size_; }
  /// fdatasync calls completed.
  [[nodiscard]] std::uint64_t syncs() const noexcept { return syncs_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] bool direct() const noexcept { return opts_.direct; }

 private:
  task<> append_buffered(std::span<const ::iovec> records);
  task<> append_direct(std::span<const ::iovec> records);
  task<> write_staged();
  [[noreturn]] void fail(const char* op, int res) const;
  void reserve_space(std::uint64_t end);

  io_context* io_;
  std::string path_;
  journal_options opts_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::uint64_t pending_ = 0;     // buffered: bytes written, not yet synced
  std::uint64_t syncs_ = 0;
  std::string failure_;           // direct: why an append failed (then no more appends)
  std::uint64_t allocated_ = 0;   // direct: bytes fallocate'd
  std::uint64_t stage_base_ = 0;  // direct: file offset of staging_[0] (block aligned)
  struct free_aligned {
    void operator()(std::byte* p) const noexcept;
  };
  std::unique_ptr<std::byte, free_aligned> staging_;
};

}  // namespace rondo
