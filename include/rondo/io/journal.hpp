#pragma once
// journal: an append-only, crash-safe record log made durable through an io_context, for
// journal stages. A directory of segment files of framed records (length, sequence, CRC32C;
// the format is in rondo/io/journal_reader.hpp and docs/journal.md).
//
//   rondo::journal j(io, "orders.journal");      // opens = recovers (or creates) the directory
//   fmt::print("{}\n", j.recovery());            // what it found: records, torn tail dropped
//   ...
//   rondo::task<> journal_stage(rondo::batch<order> b) {
//     co_await j.append_durable(as_iovecs(b));   // one record per iovec; written + fdatasync'ed
//   }
//
// Opening never throws records away unless asked: open_mode::recover (default) verifies the
// segments, drops only a torn tail of the last one (an interrupted write: no valid record after
// it) and appends after it; a corrupt record followed by valid ones throws
// journal_corruption_error naming the segment, offset and sequence. open_mode::truncate starts
// empty; open_mode::repair cuts at the first corrupt record.
//
// Records are framed into a staging buffer (one copy, CRC32C computed on the way) and written
// with one write per staging buffer, then one fdatasync per append:
//
//   buffered  plain writes at the segment's tail, then fdatasync.
//   direct    O_DIRECT writes of the dirty 4 KiB blocks into a segment fallocate'd in steps of
//             `preallocate` (FALLOC_FL_KEEP_SIZE); the last partial block stays staged and is
//             written again, extended, by the next append (DESIGN.md 6a: on ext4 buffered io_uring
//             writes are punted to kernel workers). Zero padding after the last record is
//             ignored by readers and truncated by recovery.
//
// A segment is rolled (a new file, named by its first sequence) before an append when it holds
// segment_bytes or more, so a segment exceeds segment_bytes by at most one append. Rolling,
// opening and recovery use plain blocking system calls (rare; they run on the caller's thread).
//
// Errors: a failed write or fdatasync throws std::system_error naming the operation, the
// segment's path and the errno ("rondo::journal: write(/j/00000000000000000000.rj, offset
// 8192): No space left on device"); short writes are retried. After a failure the journal
// refuses every later append (std::runtime_error quoting the first failure): reopen it, which
// recovers. Records of a failed append may or may not be in the journal after recovery; every
// record of an append that completed is.
//
// Thread-safety: construct anywhere; appends run on the io_context's thread, one at a time (the
// journal stage is one coroutine; a second concurrent append throws std::logic_error). The
// accessors are for that thread, or after the stage finished. One journal per directory (an
// flock on the directory; a second one throws std::system_error).

#include <rondo/coro/task.hpp>
#include <rondo/io/io_context.hpp>
#include <rondo/io/journal_reader.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include <sys/uio.h>

namespace rondo {

struct journal_options {
  /// How existing content is treated (see open_mode). Only open_mode::truncate starts empty.
  open_mode mode = open_mode::recover;
  bool direct = false;  ///< O_DIRECT mode (see the file comment)
  /// A new segment is started before an append once the current one holds this many bytes
  /// (>= 4096).
  std::uint64_t segment_bytes = std::uint64_t{64} << 20;
  /// The sequence of the first record of a journal created empty (>= 0).
  std::int64_t first_sequence = 0;
  /// Recovery verifies every record of every segment (else: segment headers, and every record
  /// of the last segment).
  bool verify_all_segments = true;
  /// direct: bytes fallocate'd at a time (a multiple of 4096, > 0).
  std::uint64_t preallocate = std::uint64_t{64} << 20;
  /// The staging buffer (a multiple of 4096, >= 8192): framed records are copied here and
  /// written a buffer at a time; an append larger than this takes several writes (one sync).
  std::size_t staging = std::size_t{1} << 20;
};

class journal {
 public:
  /// Opens (recovers, or creates) the journal directory `dir` (any thread; appends then run on
  /// `io`'s thread). Throws journal_corruption_error (see open_mode), std::system_error naming
  /// the path (mkdir, open, flock, fallocate, O_DIRECT refused by the file system) and
  /// std::invalid_argument for bad options.
  journal(io_context& io, std::string dir, journal_options opts = {});
  /// Truncates a direct journal's last segment to its logical size, closes the files.
  ~journal();
  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  /// Appends one record per iovec, with sequences next_sequence(), next_sequence() + 1, ...,
  /// and makes them durable: completes after the write(s) and the fdatasync. An empty span
  /// does nothing. Throws std::invalid_argument for a record over journal_format::max_payload
  /// (nothing written), std::system_error for I/O errors (see the file comment),
  /// std::runtime_error once an earlier append failed.
  task<> append_durable(std::span<const ::iovec> records);

  /// The sequence the next record appended will get.
  [[nodiscard]] std::int64_t next_sequence() const noexcept { return next_seq_; }
  /// The last durable record's sequence (next_sequence() - 1; below first_sequence() if empty).
  [[nodiscard]] std::int64_t last_sequence() const noexcept { return next_seq_ - 1; }
  /// What opening the journal found and did.
  [[nodiscard]] const recovery_report& recovery() const noexcept { return report_; }
  /// Bytes durable in the segments (file headers and frames), all segments together.
  [[nodiscard]] std::uint64_t size() const noexcept { return size_; }
  /// fdatasync calls completed.
  [[nodiscard]] std::uint64_t syncs() const noexcept { return syncs_; }
  /// Segment files rolled by this journal object (not counting the one it opened).
  [[nodiscard]] std::uint64_t rolls() const noexcept { return rolls_; }
  /// The journal directory.
  [[nodiscard]] const std::string& path() const noexcept { return dir_; }
  /// The segment being appended to.
  [[nodiscard]] const std::string& segment_path() const noexcept { return seg_path_; }
  [[nodiscard]] bool direct() const noexcept { return opts_.direct; }
  /// The first failure's message, or empty while the journal takes appends.
  [[nodiscard]] const std::string& failure() const noexcept { return failure_; }

 private:
  task<> flush();
  task<> write_buffered();
  task<> write_direct();
  void open_segment(std::int64_t base, bool create);
  void close_segment() noexcept;
  void reserve_space(std::uint64_t end);
  std::size_t stage(const std::byte* p, std::size_t n) noexcept;
  [[noreturn]] void fail(const char* op, int err, std::uint64_t offset) const;

  io_context* io_;
  std::string dir_;
  journal_options opts_;
  recovery_report report_;
  int dirfd_ = -1;
  int fd_ = -1;  // the current segment
  std::string seg_path_;
  std::int64_t next_seq_ = 0;
  std::uint64_t seg_durable_ = 0;  // bytes of the current segment made durable
  std::uint64_t tail_ = 0;         // its logical end, including what is staged
  std::uint64_t stage_base_ = 0;   // file offset of staging_[0] (block aligned when direct)
  std::uint64_t allocated_ = 0;    // direct: bytes fallocate'd in the current segment
  std::uint64_t size_ = 0;
  std::uint64_t syncs_ = 0;
  std::uint64_t rolls_ = 0;
  bool appending_ = false;
  std::string failure_;
  struct free_aligned {
    void operator()(std::byte* p) const noexcept;
  };
  std::unique_ptr<std::byte, free_aligned> staging_;
};

}  // namespace rondo
