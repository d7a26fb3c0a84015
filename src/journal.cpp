// journal: buffered (writev + fdatasync) and O_DIRECT (staged blocks + fdatasync) appends
// through an io_context (see include/rondo/io/journal.hpp).

#include <rondo/io/journal.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rondo {

namespace {
constexpr std::uint64_t block = 4096;

std::uint64_t round_down(std::uint64_t v) noexcept { return v & ~(block - 1); }
std::uint64_t round_up(std::uint64_t v) noexcept { return (v + block - 1) & ~(block - 1); }
}  // namespace

void journal::free_aligned::operator()(std::byte* p) const noexcept { std::free(p); }

journal::journal(io_context& io, std::string path, journal_options opts)
    : io_(&io), path_(std::move(path)), opts_(opts) {
  if (opts_.direct) {
    if (opts_.preallocate == 0 || opts_.preallocate % block != 0) {
      throw std::invalid_argument(
          fmt::format("journal_options::preallocate {} must be a positive multiple of 4096",
                      opts_.preallocate));
    }
    if (opts_.staging < 2 * block || opts_.staging % block != 0) {
      throw std::invalid_argument(fmt::format(
          "journal_options::staging {} must be a multiple of 4096, at least 8192", opts_.staging));
    }
  }
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC;
  if (opts_.truncate) flags |= O_TRUNC;
  if (opts_.direct) flags |= O_DIRECT;
  fd_ = ::open(path_.c_str(), flags, 0644);
  if (fd_ < 0) {
    const int e = errno;
    throw std::system_error(e, std::system_category(),
                            fmt::format("rondo::journal: open({}){}", path_,
                                        opts_.direct && e == EINVAL
                                            ? " (the file system refuses O_DIRECT: use buffered "
                                              "mode)"
                                            : ""));
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int e = errno;
    ::close(fd_);
    throw std::system_error(e, std::system_category(),
                            fmt::format("rondo::journal: fstat({})", path_));
  }
  size_ = static_cast<std::uint64_t>(st.st_size);
  if (!opts_.direct) return;
  void* mem = std::aligned_alloc(block, opts_.staging);
  if (mem == nullptr) {
    ::close(fd_);
    throw std::bad_alloc();
  }
  staging_.reset(static_cast<std::byte*>(mem));
  std::memset(mem, 0, opts_.staging);
  allocated_ = size_;
  try {
    reserve_space(size_ + 1);
    // An existing partial last block is read back into the staging buffer so the next
    // append rewrites it whole.
    stage_base_ = round_down(size_);
    if (size_ > stage_base_) {
      const int rfd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
      const auto want = static_cast<std::size_t>(size_ - stage_base_);
      const ssize_t got =
          rfd < 0 ? -1 : ::pread(rfd, staging_.get(), want, static_cast<off_t>(stage_base_));
      const int e = got < 0 ? errno : EIO;  // a short read sets no errno
      if (rfd >= 0) ::close(rfd);
      if (got != static_cast<ssize_t>(want)) {
        throw std::system_error(e, std::system_category(),
                                fmt::format("rondo::journal: reading the last block of {}",
                                            path_));
      }
    }
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

journal::~journal() {
  if (opts_.direct) (void)!::ftruncate(fd_, static_cast<off_t>(size_));  // drop the zero tail
  ::close(fd_);
}

void journal::fail(const char* op, int res) const {
  throw std::system_error(-res, std::system_category(),
                          fmt::format("{}({})", op, path_));
}

void journal::reserve_space(std::uint64_t end) {
  while (allocated_ < end) {
    const std::uint64_t from = round_down(allocated_);
    // KEEP_SIZE: the file's size stays at what was written (rounded up to a block), so after
    // a crash a reopen appends after the records, not after megabytes of zeros.
    const int r = ::fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(from),
                              static_cast<off_t>(opts_.preallocate));
    if (r != 0) {
      const int e = errno;
      throw std::system_error(e, std::system_category(),
                              fmt::format("rondo::journal: fallocate({}, offset {}, length {})",
                                          path_, from, opts_.preallocate));
    }
    allocated_ = from + opts_.preallocate;
  }
}

task<> journal::append_durable(std::span<const ::iovec> records) {
  if (!failure_.empty()) {
    throw std::runtime_error(fmt::format(
        "rondo::journal({}): an earlier append failed ({}); the journal takes no more appends",
        path_, failure_));
  }
  try {
    if (opts_.direct) {
      co_await append_direct(records);
    } else {
      co_await append_buffered(records);
    }
    const io_result r = co_await io_->fdatasync(fd_);
    if (!r.ok()) fail("fdatasync", r.res);
  } catch (const std::exception& e) {
    // Buffered: size() never moved, so a retry (error_policy::rewind) rewrites the same
    // range. Direct: staged bytes already count; rather than risk a record twice, the
    // journal refuses further appends.
    if (opts_.direct) failure_ = e.what();
    throw;
  }
  if (!opts_.direct) size_ += pending_;
  pending_ = 0;
  ++syncs_;
}

task<> journal::append_buffered(std::span<const ::iovec> records) {
  std::uint64_t total = 0;
  for (const ::iovec& v : records) total += v.iov_len;
  std::uint64_t done = 0;
  while (done < total) {
    if (done == 0) {
      const io_result r = co_await io_->writev(fd_, records, size_);
      if (!r.ok()) fail("writev", r.res);
      done = static_cast<std::uint64_t>(r.res);
      if (r.res == 0) fail("writev", -EIO);
      continue;
    }
    // A short write (rare on files): the rest, one iovec at a time.
    std::uint64_t skip = done;
    for (const ::iovec& v : records) {
      if (skip >= v.iov_len) {
        skip -= v.iov_len;
        continue;
      }
      const auto* p = static_cast<const std::byte*>(v.iov_base) + skip;
      const std::size_t len = v.iov_len - static_cast<std::size_t>(skip);
      const io_result r = co_await io_->write(fd_, {p, len}, size_ + done);
      if (!r.ok()) fail("write", r.res);
      if (r.res == 0) fail("write", -EIO);
      done += static_cast<std::uint64_t>(r.res);
      break;
    }
  }
  pending_ = total;  // counted in size() once the fdatasync succeeded
}

task<> journal::append_direct(std::span<const ::iovec> records) {
  for (const ::iovec& v : records) {
    const auto* src = static_cast<const std::byte*>(v.iov_base);
    std::size_t left = v.iov_len;
    while (left > 0) {
      const std::size_t used = static_cast<std::size_t>(size_ - stage_base_);
      const std::size_t n = std::min(left, opts_.staging - used);
      std::memcpy(staging_.get() + used, src, n);
      size_ += n;
      src += n;
      left -= n;
      if (size_ - stage_base_ == opts_.staging) co_await write_staged();  // full: write, slide
    }
  }
  if (size_ > stage_base_) co_await write_staged();
}

// Writes the staged blocks [stage_base_, round_up(size_)) with O_DIRECT, then slides the last
// partial block (if any) to the front of the staging buffer.
task<> journal::write_staged() {
  const std::uint64_t end = round_up(size_);
  reserve_space(end);
  std::uint64_t off = stage_base_;
  while (off < end) {
    const auto* p = staging_.get() + (off - stage_base_);
    const auto len = static_cast<std::size_t>(end - off);
    const io_result r = co_await io_->write(fd_, {p, len}, off);
    if (!r.ok()) fail("write", r.res);
    if (r.res == 0 || r.res % static_cast<int>(block) != 0) fail("write", -EIO);
    off += static_cast<std::uint64_t>(r.res);
  }
  // Bytes past the tail stay zero (the padding of the last block): only what was used is
  // cleared after the slide.
  const std::uint64_t new_base = round_down(size_);
  if (new_base != stage_base_) {
    const auto used = static_cast<std::size_t>(size_ - stage_base_);
    const auto tail = static_cast<std::size_t>(size_ - new_base);
    std::memmove(staging_.get(), staging_.get() + (new_base - stage_base_), tail);
    std::memset(staging_.get() + tail, 0, used - tail);
    stage_base_ = new_base;
  }
}

}  // namespace rondo
