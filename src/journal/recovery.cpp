// Recovery of a journal directory on open (torn tails cut, damage reported or repaired) and its
// entry points verify_journal() and recover_journal() (see include/rondo/io/journal_reader.hpp).

#include "file_util.hpp"

#include <rondo/io/journal_reader.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <stdexcept>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rondo {

namespace {

void truncate_file(const std::string& path, std::uint64_t size) {
  fd_guard f{::open(path.c_str(), O_WRONLY | O_CLOEXEC)};
  if (f.fd < 0) throw_errno(errno, fmt::format("rondo::journal: open({})", path));
  if (::ftruncate(f.fd, static_cast<off_t>(size)) != 0) {
    throw_errno(errno, fmt::format("rondo::journal: ftruncate({}, {})", path, size));
  }
  if (::fsync(f.fd) != 0) throw_errno(errno, fmt::format("rondo::journal: fsync({})", path));
}

void sync_dir(const std::string& dir) {
  fd_guard f{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (f.fd < 0) throw_errno(errno, fmt::format("rondo::journal: open({})", dir));
  if (::fsync(f.fd) != 0) throw_errno(errno, fmt::format("rondo::journal: fsync({})", dir));
}

void remove_file(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    throw_errno(errno, fmt::format("rondo::journal: unlink({})", path));
  }
}

}  // namespace

namespace detail {

// Recovery without the directory lock (the journal's constructor holds it already).
recovery_report recover_locked(const std::string& dir, open_mode mode, bool verify_all,
                               std::int64_t first_sequence, bool dry_run) {
  recovery_report rep;
  rep.dir = dir;
  rep.dry_run = dry_run;
  const auto segs = list_segments(dir);
  rep.first_sequence = rep.next_sequence = first_sequence;
  if (mode == open_mode::truncate) {
    for (const auto& s : segs) {
      if (!dry_run) remove_file(dir + "/" + s.second);
    }
    if (!segs.empty()) {
      rep.segments_dropped = segs.size();
      rep.why = fmt::format("open_mode::truncate: {} segment(s) removed", segs.size());
      if (!dry_run) sync_dir(dir);
    }
    return rep;
  }
  if (segs.empty()) return rep;

  rep.first_sequence = segs.front().first;
  std::int64_t expect = segs.front().first;
  bool expect_known = true;  // false after a segment whose records were not read
  bool dir_changed = false;
  // Drops segment i's bytes from `offset` on, and every later segment.
  auto cut = [&](std::size_t i, std::uint64_t offset, std::uint64_t size, bool whole,
                 std::string why) {
    const std::string path = dir + "/" + segs[i].second;
    rep.bytes_dropped += size - offset;
    if (whole) {
      ++rep.segments_dropped;
      if (!dry_run) remove_file(path);
      dir_changed = true;
    } else {
      ++rep.segments;
      if (!dry_run) truncate_file(path, offset);
    }
    for (std::size_t k = i + 1; k < segs.size(); ++k) {
      const std::string p = dir + "/" + segs[k].second;
      struct stat st {};
      if (::stat(p.c_str(), &st) == 0) rep.bytes_dropped += static_cast<std::uint64_t>(st.st_size);
      ++rep.segments_dropped;
      if (!dry_run) remove_file(p);
      dir_changed = true;
    }
    rep.why = std::move(why);
  };

  for (std::size_t i = 0; i < segs.size(); ++i) {
    const bool last = i + 1 == segs.size();
    const std::string path = dir + "/" + segs[i].second;
    const bool full = verify_all || last;
    const auto image = read_file(path, full ? static_cast<std::size_t>(-1) : file_header_size);
    const std::span<const std::byte> img(image);
    std::int64_t base = -1;
    const char* bad = check_file_header(img, base);
    if (bad == nullptr && base != segs[i].first)
      bad = "the header's base sequence differs from the file name";
    if (bad != nullptr) {
      // A crash while rolling leaves the new (last) segment without its header, and with no
      // record after it; anything else is damage.
      const std::int64_t at = expect_known ? expect : segs[i].first;
      const tail_kind k = classify_tail(img, 0, at);
      if (mode == open_mode::repair || (last && k != tail_kind::corrupt)) {
        if (!expect_known) expect = segs[i].first;
        const bool nonzero = k == tail_kind::torn || k == tail_kind::corrupt;
        cut(i, 0, nonzero ? image.size() : 0, true,
            fmt::format("{}: {} ({})", path, bad,
                        nonzero ? "segment removed" : "empty segment removed"));
        break;
      }
      throw journal_corruption_error(path, 0, at,
                                     fmt::format("rondo::journal: {}: {}{}", path, bad,
                                                 last ? ", and valid records follow it" : ""));
    }
    if (expect_known && base != expect) {
      const std::string why = fmt::format(
          "rondo::journal: {} starts at sequence {} but the previous segment ends before {}", path,
          base, expect);
      if (mode != open_mode::repair) throw journal_corruption_error(path, 0, expect, why);
      cut(i, 0, image.size(), true, why);
      break;
    }
    expect = base;
    if (!full) {
      ++rep.segments;
      expect_known = false;
      continue;
    }
    expect_known = true;
    std::size_t off = file_header_size;
    record_decode d;
    for (;;) {
      d = decode_record(img, off, expect);
      if (!d.ok) break;
      off += d.frame;
      ++expect;
      ++rep.records;
    }
    const tail_kind k = classify_tail(img, off, expect);
    if (k == tail_kind::none || (k == tail_kind::zeros && !last)) {
      ++rep.segments;
      continue;
    }
    if (k == tail_kind::zeros) {  // the O_DIRECT padding of the last block: not data
      ++rep.segments;
      if (!dry_run) truncate_file(path, off);
      continue;
    }
    if ((k == tail_kind::torn && last) || mode == open_mode::repair) {
      cut(i, off, image.size(), false,
          fmt::format("{} in {} at {}", k == tail_kind::torn ? "torn tail" : "corrupt record", path,
                      describe(off, expect, d.why)));
      break;
    }
    throw journal_corruption_error(
        path, off, expect,
        fmt::format(
            "rondo::journal: {}: corrupt record at {}, {}; not truncated (open_mode::repair "
            "drops it and everything after it)",
            path, describe(off, expect, d.why),
            k == tail_kind::corrupt ? "and valid records follow it"
                                    : "in a segment that is not the last"));
  }
  rep.next_sequence = expect;
  if (rep.segments == 0) rep.first_sequence = expect;
  if (dir_changed && !dry_run) sync_dir(dir);
  return rep;
}

}  // namespace detail

recovery_report verify_journal(const std::string& dir) {
  return detail::recover_locked(dir, open_mode::recover, true, 0, true);
}

recovery_report recover_journal(const std::string& dir, open_mode mode, bool verify_all_segments,
                                std::int64_t first_sequence) {
  if (first_sequence < 0) {
    throw std::invalid_argument(
        fmt::format("rondo::journal: first_sequence {} must be >= 0", first_sequence));
  }
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    throw_errno(errno, fmt::format("rondo::journal: mkdir({})", dir));
  }
  fd_guard f{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (f.fd < 0) throw_errno(errno, fmt::format("rondo::journal: open({})", dir));
  if (::flock(f.fd, LOCK_EX | LOCK_NB) != 0) {
    throw_errno(errno, fmt::format("rondo::journal: flock({}) (is a journal open on it?)", dir));
  }
  return detail::recover_locked(dir, mode, verify_all_segments, first_sequence, false);
}

}  // namespace rondo
