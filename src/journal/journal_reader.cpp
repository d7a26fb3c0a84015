// The journal's format (frames, file headers), its verification, recovery and the reader
// (see include/rondo/io/journal_reader.hpp and docs/journal.md).

#include <rondo/io/journal_reader.hpp>

#include <rondo/detail/crc32c.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <system_error>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rondo {

// The format is defined little-endian and written with memcpy of native integers.
static_assert(std::endian::native == std::endian::little,
              "rondo's journal format is little-endian");

namespace journal_format {
std::string segment_name(std::int64_t base_sequence) {
  return fmt::format("{:020}.rj", base_sequence);
}
}  // namespace journal_format

namespace {

using journal_format::file_header_size;
using journal_format::record_header_size;

template <class T>
T load_at(const std::byte* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

[[noreturn]] void throw_errno(int e, const std::string& what) {
  throw std::system_error(e, std::system_category(), what);
}

struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

// The first `limit` bytes of a file (all of it by default).
std::vector<std::byte> read_file(const std::string& path,
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

std::uint32_t record_crc(std::int64_t seq, std::uint32_t len, const std::byte* payload) noexcept {
  std::byte head[12];
  std::memcpy(head, &seq, 8);
  std::memcpy(head + 8, &len, 4);
  return detail::crc32c_extend(detail::crc32c(head, sizeof head), payload, len);
}

std::uint32_t header_crc(const std::byte* h) noexcept {
  return detail::crc32c(h, 28);
}

}  // namespace

namespace detail {

record_decode decode_record(std::span<const std::byte> image, std::size_t offset,
                            std::int64_t expect) noexcept {
  record_decode d;
  if (offset > image.size() || image.size() - offset < record_header_size) {
    d.why = "truncated record header";
    return d;
  }
  const std::byte* p = image.data() + offset;
  d.length = load_at<std::uint32_t>(p);
  const auto crc = load_at<std::uint32_t>(p + 4);
  d.sequence = load_at<std::int64_t>(p + 8);
  if (d.length > journal_format::max_payload) {
    d.why = "length over the limit";
    return d;
  }
  const std::size_t frame = journal_format::frame_size(d.length);
  if (image.size() - offset < frame) {
    d.why = "truncated record";
    return d;
  }
  if (record_crc(d.sequence, d.length, p + record_header_size) != crc) {
    d.why = "CRC32C mismatch";
    return d;
  }
  if (d.sequence != expect) {
    d.why = "unexpected sequence";
    return d;
  }
  for (std::size_t i = record_header_size + d.length; i < frame; ++i) {
    if (p[i] != std::byte{0}) {
      d.why = "non-zero padding";
      return d;
    }
  }
  d.ok = true;
  d.frame = frame;
  return d;
}

tail_kind classify_tail(std::span<const std::byte> image, std::size_t offset,
                        std::int64_t expect) noexcept {
  if (offset >= image.size()) return tail_kind::none;
  const bool zeros = std::all_of(image.begin() + static_cast<std::ptrdiff_t>(offset), image.end(),
                                 [](std::byte b) { return b == std::byte{0}; });
  if (zeros) return tail_kind::zeros;
  // A torn write leaves no whole record after the damage; a flipped bit does. Frames are
  // 8-aligned, and every frame takes >= 16 bytes, so a record at q holds a sequence in
  // [expect, expect + (q - offset) / 16]: cheap to test before the CRC.
  for (std::size_t q = offset; q + record_header_size <= image.size();
       q += journal_format::alignment) {
    const auto seq = load_at<std::int64_t>(image.data() + q + 8);
    const auto span = static_cast<std::int64_t>((q - offset) / record_header_size);
    if (seq < expect || seq - expect > span) continue;
    if (decode_record(image, q, seq).ok) return tail_kind::corrupt;
  }
  return tail_kind::torn;
}

const char* check_file_header(std::span<const std::byte> image, std::int64_t& base) noexcept {
  if (image.size() < file_header_size) return "truncated file header";
  const std::byte* h = image.data();
  if (std::memcmp(h, journal_format::magic, 8) != 0)
    return "bad magic (not a rondo journal segment)";
  if (load_at<std::uint32_t>(h + 28) != header_crc(h)) return "file header CRC32C mismatch";
  if (load_at<std::uint32_t>(h + 8) != journal_format::version) return "unsupported format version";
  if (load_at<std::uint32_t>(h + 12) != file_header_size) return "unsupported header size";
  base = load_at<std::int64_t>(h + 16);
  if (base < 0) return "negative base sequence";
  return nullptr;
}

void write_file_header(std::byte* out, std::int64_t base) noexcept {
  std::memset(out, 0, file_header_size);
  std::memcpy(out, journal_format::magic, 8);
  const std::uint32_t v = journal_format::version;
  const auto size = static_cast<std::uint32_t>(file_header_size);
  std::memcpy(out + 8, &v, 4);
  std::memcpy(out + 12, &size, 4);
  std::memcpy(out + 16, &base, 8);
  // bytes 24..27: flags, 0 in v1
  const std::uint32_t crc = header_crc(out);
  std::memcpy(out + 28, &crc, 4);
}

void write_record_header(std::byte* out, std::int64_t sequence, const void* payload,
                         std::uint32_t length) noexcept {
  const std::uint32_t crc = record_crc(sequence, length, static_cast<const std::byte*>(payload));
  std::memcpy(out, &length, 4);
  std::memcpy(out + 4, &crc, 4);
  std::memcpy(out + 8, &sequence, 8);
}

std::vector<std::pair<std::int64_t, std::string>> list_segments(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) throw_errno(errno, fmt::format("rondo::journal: opendir({})", dir));
  std::vector<std::pair<std::int64_t, std::string>> out;
  std::string bad;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (name.size() < 3 || name.substr(name.size() - 3) != ".rj") continue;
    std::int64_t base = -1;
    const auto digits = name.substr(0, name.size() - 3);
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), base);
    if (digits.size() != 20 || ec != std::errc{} || ptr != digits.data() + digits.size() ||
        base < 0) {
      bad = name;
      break;
    }
    out.emplace_back(base, std::string(name));
  }
  ::closedir(d);
  if (!bad.empty()) {
    throw journal_corruption_error(dir + "/" + bad, 0, 0,
                                   fmt::format("rondo::journal: {}/{}: not a segment name (20 "
                                               "digits of the base sequence, then .rj)",
                                               dir, bad));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace detail

namespace {

std::string describe(std::uint64_t offset, std::int64_t seq, const char* why) {
  return fmt::format("offset {}, sequence {}: {}", offset, seq, why);
}

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

// ---------------------------------------------------------------------------------------------

journal_reader::journal_reader(std::string dir, std::int64_t from)
    : dir_(std::move(dir)), from_(from), segments_(detail::list_segments(dir_)) {
  for (std::size_t i = 0; i < segments_.size(); ++i) {
    if (segments_[i].first <= from_) index_ = i;
  }
  done_ = segments_.empty();
  // Before the first load (and if that segment turns out headerless), the sequence expected
  // next is the one its name gives.
  if (!done_) expect_ = segments_[index_].first;
}

bool journal_reader::load(std::size_t index) {
  const std::string path = dir_ + "/" + segments_[index].second;
  image_ = read_file(path);
  const bool first = !loaded_;
  std::int64_t base = -1;
  const char* bad = detail::check_file_header(image_, base);
  if (bad == nullptr && base != segments_[index].first) {
    bad = "the header's base sequence differs from the file name";
  }
  const std::int64_t want = first ? segments_[index].first : expect_;
  if (bad != nullptr) {
    const bool last = index + 1 == segments_.size();
    if (last && detail::classify_tail(image_, 0, want) != detail::tail_kind::corrupt) {
      torn_ = image_.size();  // a crash while rolling: recovery removes this segment
      return false;
    }
    throw journal_corruption_error(path, 0, want, fmt::format("rondo::journal: {}: {}", path, bad));
  }
  if (!first && base != expect_) {
    throw journal_corruption_error(
        path, 0, expect_,
        fmt::format("rondo::journal: {} starts at sequence {} but the previous segment ends "
                    "before {}",
                    path, base, expect_));
  }
  expect_ = base;
  offset_ = file_header_size;
  loaded_ = true;
  return true;
}

std::optional<record_view> journal_reader::next() {
  while (!done_) {
    if (offset_ == 0) {  // segment index_ not loaded yet
      if (!load(index_)) {
        done_ = true;
        break;
      }
    }
    const detail::record_decode d = detail::decode_record(image_, offset_, expect_);
    if (d.ok) {
      const record_view v{d.sequence, std::span<const std::byte>(image_).subspan(
                                          offset_ + record_header_size, d.length)};
      offset_ += d.frame;
      ++expect_;
      if (v.sequence < from_) continue;
      return v;
    }
    const bool last = index_ + 1 == segments_.size();
    const detail::tail_kind k = detail::classify_tail(image_, offset_, expect_);
    if (k == detail::tail_kind::corrupt || (k == detail::tail_kind::torn && !last)) {
      const std::string path = dir_ + "/" + segments_[index_].second;
      throw journal_corruption_error(
          path, offset_, expect_,
          fmt::format("rondo::journal: {}: corrupt record at {}, {}", path,
                      describe(offset_, expect_, d.why),
                      k == detail::tail_kind::corrupt ? "and valid records follow it"
                                                      : "in a segment that is not the last"));
    }
    if (last) {
      if (k == detail::tail_kind::torn) torn_ = image_.size() - offset_;
      done_ = true;
      break;
    }
    ++index_;
    offset_ = 0;
  }
  return std::nullopt;
}

}  // namespace rondo
