// The journal's format: segment names, record frames (decoding, CRC32C, the kind of tail after
// the last whole record) and file headers (see include/rondo/io/journal_reader.hpp and
// docs/journal.md).

#include "file_util.hpp"

#include <rondo/io/journal_reader.hpp>

#include <rondo/io/crc32c.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>

#include <dirent.h>

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

template <class T>
T load_at(const std::byte* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
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

}  // namespace rondo
