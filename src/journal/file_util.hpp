#pragma once
// File helpers shared by the journal's format, recovery and reader sources (private to
// src/journal/): errors from errno, an fd closed on scope exit, reading a whole file.

#include <rondo/io/journal_reader.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rondo {

// Internal to the journal's sources (each of them gets its own copy, as when they were one
// file's).
namespace {

using journal_format::file_header_size;
using journal_format::record_header_size;

[[noreturn]] inline void throw_errno(int e, const std::string& what) {
  throw std::system_error(e, std::system_category(), what);
}

struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

// The first `limit` bytes of a file (all of it by default).
inline std::vector<std::byte> read_file(const std::string& path,
                                        std::size_t limit = static_cast<std::size_t>(-1)) {
  fd_guard f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) throw_errno(errno, fmt::format("rondo::journal: open({})", path));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) throw_errno(errno, fmt::format("rondo::journal: fstat({})", path));
  const auto want = std::min(static_cast<std::size_t>(st.st_size), limit);
  std::vector<std::byte> out(want);
  std::size_t got = 0;
  while (got < want) {
    const ssize_t r = ::pread(f.fd, out.data() + got, want - got, static_cast<off_t>(got));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, fmt::format("rondo::journal: read({}, offset {})", path, got));
    }
    if (r == 0) break;  // shrank under us: what is there is what there is
    got += static_cast<std::size_t>(r);
  }
  out.resize(got);
  return out;
}

inline std::string describe(std::uint64_t offset, std::int64_t seq, const char* why) {
  return fmt::format("offset {}, sequence {}: {}", offset, seq, why);
}

}  // namespace

}  // namespace rondo
