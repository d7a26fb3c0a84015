// journal: framed records staged and written through an io_context, buffered or O_DIRECT,
// segment files rolled by size; recovery on open (see include/rondo/io/journal.hpp).

#include <rondo/io/journal.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rondo {

namespace detail {
recovery_report recover_locked(const std::string& dir, open_mode mode, bool verify_all,
                               std::int64_t first_sequence, bool dry_run);
}  // namespace detail

namespace {
constexpr std::uint64_t block = 4096;
constexpr std::byte zero_pad[journal_format::alignment] = {};

std::uint64_t round_down(std::uint64_t v) noexcept {
  return v & ~(block - 1);
}
std::uint64_t round_up(std::uint64_t v) noexcept {
  return (v + block - 1) & ~(block - 1);
}

[[noreturn]] void throw_errno(int e, const std::string& what) {
  throw std::system_error(e, std::system_category(), what);
}
}  // namespace

void journal::free_aligned::operator()(std::byte* p) const noexcept {
  std::free(p);
}

journal::journal(io_context& io, std::string dir, journal_options opts)
    : io_(&io), dir_(std::move(dir)), opts_(opts) {
  if (opts_.segment_bytes < block) {
    throw std::invalid_argument(fmt::format(
        "journal_options::segment_bytes {} must be at least 4096", opts_.segment_bytes));
  }
  if (opts_.first_sequence < 0) {
    throw std::invalid_argument(
        fmt::format("journal_options::first_sequence {} must be >= 0", opts_.first_sequence));
  }
  if (opts_.staging < 2 * block || opts_.staging % block != 0) {
    throw std::invalid_argument(fmt::format(
        "journal_options::staging {} must be a multiple of 4096, at least 8192", opts_.staging));
  }
  if (opts_.direct && (opts_.preallocate == 0 || opts_.preallocate % block != 0)) {
    throw std::invalid_argument(fmt::format(
        "journal_options::preallocate {} must be a positive multiple of 4096", opts_.preallocate));
  }
  if (::mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST) {
    throw_errno(errno, fmt::format("rondo::journal: mkdir({})", dir_));
  }
  dirfd_ = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd_ < 0) throw_errno(errno, fmt::format("rondo::journal: open({})", dir_));
  try {
    // One writer per directory: two would interleave sequences in the same segment.
    if (::flock(dirfd_, LOCK_EX | LOCK_NB) != 0) {
      throw_errno(errno,
                  fmt::format("rondo::journal: flock({}) (is another journal open on it?)", dir_));
    }
    report_ = detail::recover_locked(dir_, opts_.mode, opts_.verify_all_segments,
                                     opts_.first_sequence, false);
    next_seq_ = report_.next_sequence;
    void* mem = std::aligned_alloc(block, opts_.staging);
    if (mem == nullptr) throw std::bad_alloc();
    staging_.reset(static_cast<std::byte*>(mem));
    std::memset(mem, 0, opts_.staging);
    const auto segs = detail::list_segments(dir_);
    for (const auto& s : segs) {
      struct stat st {};
      if (::stat((dir_ + "/" + s.second).c_str(), &st) == 0) {
        size_ += static_cast<std::uint64_t>(st.st_size);
      }
    }
    if (segs.empty()) {
      open_segment(next_seq_, true);
    } else {
      open_segment(segs.back().first, false);
    }
  } catch (...) {
    close_segment();
    ::close(dirfd_);
    throw;
  }
}

journal::~journal() {
  close_segment();
  ::close(dirfd_);
}

void journal::close_segment() noexcept {
  if (fd_ < 0) return;
  // Drop the zero padding after the last record (best effort: readers and recovery skip it).
  if (opts_.direct && failure_.empty()) (void)!::ftruncate(fd_, static_cast<off_t>(tail_));
  ::close(fd_);
  fd_ = -1;
}

void journal::open_segment(std::int64_t base, bool create) {
  seg_path_ = fmt::format("{}/{}", dir_, journal_format::segment_name(base));
  int flags = O_WRONLY | O_CLOEXEC;
  if (create) flags |= O_CREAT | O_EXCL;
  if (opts_.direct) flags |= O_DIRECT;
  fd_ = ::open(seg_path_.c_str(), flags, 0644);
  if (fd_ < 0) {
    const int e = errno;
    throw_errno(e, fmt::format("rondo::journal: open({}){}", seg_path_,
                               opts_.direct && e == EINVAL
                                   ? " (the file system refuses O_DIRECT: use buffered mode)"
                                   : ""));
  }
  allocated_ = 0;
  if (create) {
    // The new name must survive a crash before the first record in it is acknowledged.
    if (::fsync(dirfd_) != 0) throw_errno(errno, fmt::format("rondo::journal: fsync({})", dir_));
    std::memset(staging_.get(), 0, block);
    detail::write_file_header(staging_.get(), base);
    // The header is written now (so an idle journal's segment is well-formed) and made durable
    // by the first append's fdatasync; a crash before that leaves a segment that recovery
    // recognises as empty and removes.
    const std::size_t len = opts_.direct ? block : journal_format::file_header_size;
    if (opts_.direct) reserve_space(block);
    const ssize_t w = ::pwrite(fd_, staging_.get(), len, 0);
    if (w != static_cast<ssize_t>(len)) {
      throw_errno(w < 0 ? errno : EIO,
                  fmt::format("rondo::journal: write({}, offset 0)", seg_path_));
    }
    tail_ = journal_format::file_header_size;
    seg_durable_ = 0;  // counted in size() by the first append's sync
    stage_base_ = opts_.direct ? 0 : tail_;
    return;
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0)
    throw_errno(errno, fmt::format("rondo::journal: fstat({})", seg_path_));
  tail_ = seg_durable_ = static_cast<std::uint64_t>(st.st_size);
  if (!opts_.direct) {
    stage_base_ = tail_;
    return;
  }
  allocated_ = tail_;
  reserve_space(tail_ + 1);
  // The partial last block is read back so the next append rewrites it whole.
  stage_base_ = round_down(tail_);
  std::memset(staging_.get(), 0, block);
  if (tail_ > stage_base_) {
    const int rfd = ::open(seg_path_.c_str(), O_RDONLY | O_CLOEXEC);
    const auto want = static_cast<std::size_t>(tail_ - stage_base_);
    const ssize_t got =
        rfd < 0 ? -1 : ::pread(rfd, staging_.get(), want, static_cast<off_t>(stage_base_));
    const int e = got < 0 ? errno : EIO;  // a short read sets no errno
    if (rfd >= 0) ::close(rfd);
    if (got != static_cast<ssize_t>(want)) {
      throw_errno(e, fmt::format("rondo::journal: reading the last block of {}", seg_path_));
    }
  }
}

void journal::reserve_space(std::uint64_t end) {
  while (allocated_ < end) {
    const std::uint64_t from = round_down(allocated_);
    // KEEP_SIZE: the file's size stays at what was written (rounded up to a block), so after
    // a crash recovery reads records and a block of zeros, not megabytes of them.
    if (::fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(from),
                    static_cast<off_t>(opts_.preallocate)) != 0) {
      throw_errno(errno, fmt::format("rondo::journal: fallocate({}, offset {}, length {})",
                                     seg_path_, from, opts_.preallocate));
    }
    allocated_ = from + opts_.preallocate;
  }
}

void journal::fail(const char* op, int err, std::uint64_t offset) const {
  throw_errno(err, fmt::format("rondo::journal: {}({}, offset {})", op, seg_path_, offset));
}

std::size_t journal::stage(const std::byte* p, std::size_t n) noexcept {
  const auto used = static_cast<std::size_t>(tail_ - stage_base_);
  const std::size_t k = std::min(n, opts_.staging - used);
  std::memcpy(staging_.get() + used, p, k);
  tail_ += k;
  return k;
}

task<> journal::append_durable(std::span<const ::iovec> records) {
  if (!failure_.empty()) {
    throw std::runtime_error(fmt::format(
        "rondo::journal({}): an earlier append failed ({}); the journal takes no more appends "
        "(reopen it to recover)",
        dir_, failure_));
  }
  if (appending_) {
    throw std::logic_error(fmt::format(
        "rondo::journal({}): append_durable while another append is in progress", dir_));
  }
  for (const ::iovec& r : records) {
    if (r.iov_len > journal_format::max_payload) {
      throw std::invalid_argument(
          fmt::format("rondo::journal({}): a record of {} bytes is over "
                      "the limit of {} bytes",
                      dir_, r.iov_len, journal_format::max_payload));
    }
  }
  if (records.empty()) co_return;
  appending_ = true;
  std::int64_t seq = next_seq_;
  try {
    if (tail_ >= opts_.segment_bytes && tail_ > journal_format::file_header_size) {
      close_segment();
      open_segment(seq, true);
      ++rolls_;
    }
    const auto full = [this] { return tail_ - stage_base_ == opts_.staging; };
    for (const ::iovec& r : records) {
      const auto len = static_cast<std::uint32_t>(r.iov_len);
      std::byte head[journal_format::record_header_size];
      detail::write_record_header(head, seq, r.iov_base, len);
      const std::size_t pad = journal_format::frame_size(len) - sizeof head - len;
      const std::pair<const std::byte*, std::size_t> pieces[] = {
          {head, sizeof head}, {static_cast<const std::byte*>(r.iov_base), len}, {zero_pad, pad}};
      for (auto [p, n] : pieces) {
        while (n > 0) {
          const std::size_t k = stage(p, n);
          p += k;
          n -= k;
          if (full()) co_await flush();
        }
      }
      ++seq;
    }
    co_await flush();
    const io_result r = co_await io_->fdatasync(fd_);
    if (!r.ok()) throw_errno(-r.res, fmt::format("rondo::journal: fdatasync({})", seg_path_));
  } catch (const std::exception& e) {
    // The segment's content past the last sync is unknown now (a record may be half
    // written): rather than append after it, refuse; reopening recovers.
    appending_ = false;
    if (failure_.empty()) failure_ = e.what();
    throw;
  }
  appending_ = false;
  size_ += tail_ - seg_durable_;
  seg_durable_ = tail_;
  next_seq_ = seq;
  ++syncs_;
}

task<> journal::flush() {
  if (opts_.direct) {
    co_await write_direct();
  } else {
    co_await write_buffered();
  }
}

// Writes the staged bytes [stage_base_, tail_); a short write (a full disk, a file size limit)
// is continued from where it stopped, so the next attempt reports the errno.
task<> journal::write_buffered() {
  std::uint64_t off = stage_base_;
  while (off < tail_) {
    const auto* p = staging_.get() + (off - stage_base_);
    const auto len = static_cast<std::size_t>(tail_ - off);
    const io_result r = co_await io_->write(fd_, {p, len}, off);
    if (!r.ok()) fail("write", -r.res, off);
    if (r.res == 0) fail("write", EIO, off);
    off += static_cast<std::uint64_t>(r.res);
  }
  stage_base_ = tail_;
}

// Writes the staged blocks [stage_base_, round_up(tail_)) with O_DIRECT, then slides the last
// partial block (if any) to the front of the staging buffer.
task<> journal::write_direct() {
  const std::uint64_t end = round_up(tail_);
  reserve_space(end);
  std::uint64_t off = stage_base_;
  while (off < end) {
    const auto* p = staging_.get() + (off - stage_base_);
    const auto len = static_cast<std::size_t>(end - off);
    const io_result r = co_await io_->write(fd_, {p, len}, off);
    if (!r.ok()) fail("write", -r.res, off);
    // O_DIRECT moves whole blocks; a partial one is retried from its start.
    const std::uint64_t whole = round_down(static_cast<std::uint64_t>(r.res));
    if (whole == 0) fail("write", EIO, off);
    off += whole;
  }
  // Bytes past the tail stay zero (the padding of the last block): only what was used is
  // cleared after the slide.
  const std::uint64_t new_base = round_down(tail_);
  if (new_base != stage_base_) {
    const auto used = static_cast<std::size_t>(tail_ - stage_base_);
    const auto rest = static_cast<std::size_t>(tail_ - new_base);
    std::memmove(staging_.get(), staging_.get() + (new_base - stage_base_), rest);
    std::memset(staging_.get() + rest, 0, used - rest);
    stage_base_ = new_base;
  }
}

}  // namespace rondo
