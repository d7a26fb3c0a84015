#pragma once
// journal_reader: the records of a rondo journal directory, verified, from a sequence; the
// recovery that opening a journal runs; replay into a disruptor. No io_context needed: these
// are plain blocking reads, meant for start-up, tools and tests (docs/journal.md).
//
//   rondo::journal_reader r("orders.journal", 1000);     // records with sequence >= 1000
//   while (auto rec = r.next()) use(rec->sequence, rec->payload);
//
//   d.start();                                           // stages must run to take the events
//   rondo::replay(r, d.publisher(), [](const rondo::record_view& rec, order& o) {
//     std::memcpy(&o, rec.payload.data(), sizeof o);
//   });
//
// On-disk format v1 (little-endian; docs/journal.md has the full layout and the reasons):
//
//   directory/00000000000000000000.rj   segment files named by the sequence of their first
//   directory/00000000000000004096.rj   record (20 digits), rolled by size
//
//   segment   file header (32 bytes)  magic "RONDOJNL", version u32 = 1, header size u32 = 32,
//                                     base sequence i64, flags u32 = 0, CRC32C of bytes 0..27
//             record*                 length u32 (payload bytes), CRC32C u32 (over the sequence,
//                                     the length and the payload), sequence i64 (consecutive),
//                                     payload, zero padding to a multiple of 8
//
// Thread-safety: a journal_reader is used by one thread at a time. Readers may run while a
// journal appends to the same directory (they see a prefix of it); recover_journal() must not.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace rondo {

/// Constants of the on-disk format (docs/journal.md).
namespace journal_format {
inline constexpr char magic[8] = {'R', 'O', 'N', 'D', 'O', 'J', 'N', 'L'};
inline constexpr std::uint32_t version = 1;
inline constexpr std::size_t file_header_size = 32;
inline constexpr std::size_t record_header_size = 16;
inline constexpr std::size_t alignment = 8;
/// The largest payload one record may carry.
inline constexpr std::size_t max_payload = (std::size_t{1} << 30);
/// Bytes a record of `payload` bytes takes in a segment: header, payload, padding.
[[nodiscard]] constexpr std::size_t frame_size(std::size_t payload) noexcept {
  return record_header_size + ((payload + alignment - 1) & ~(alignment - 1));
}
/// "00000000000000004096.rj"
[[nodiscard]] std::string segment_name(std::int64_t base_sequence);
}  // namespace journal_format

/// How a journal directory is opened (journal_options::mode, recover_journal()).
enum class open_mode : std::uint8_t {
  /// Verify what is there, drop a torn tail of the last segment, append after it; create the
  /// directory and the first segment when there is none. A corrupt record followed by valid
  /// ones is an error (journal_corruption_error), never truncated silently.
  recover,
  /// Delete every segment and start empty: the only way to throw records away on purpose.
  truncate,
  /// recover, but a corrupt record anywhere ends the journal: it and everything after it
  /// (later records, later segments) are dropped and reported. For an operator who has looked.
  repair,
};

/// What opening (or verifying) a journal found and did.
struct recovery_report {
  std::string dir;
  std::uint64_t segments = 0;          ///< segment files after recovery
  std::uint64_t records = 0;           ///< records verified (all segments unless skipped)
  std::int64_t first_sequence = 0;     ///< of the first record (== next_sequence when empty)
  std::int64_t next_sequence = 0;      ///< the sequence the next append gets
  std::uint64_t bytes_dropped = 0;     ///< torn / corrupt bytes removed (zero padding is not)
  std::uint64_t segments_dropped = 0;  ///< segment files removed
  std::string why;                     ///< what was dropped and where; empty when clean
  bool dry_run = false;                ///< verify_journal(): nothing was changed

  [[nodiscard]] bool clean() const noexcept { return bytes_dropped == 0 && segments_dropped == 0; }
  [[nodiscard]] std::int64_t last_sequence() const noexcept { return next_sequence - 1; }
  [[nodiscard]] bool empty() const noexcept { return next_sequence == first_sequence; }
};

/// A journal whose content cannot be trusted at some place that is not a torn tail: a corrupt
/// record followed by valid ones, a damaged segment header, a gap between segments. Names the
/// segment file, the byte offset in it and the sequence expected there.
class journal_corruption_error : public std::runtime_error {
 public:
  journal_corruption_error(std::string segment, std::uint64_t offset, std::int64_t sequence,
                           const std::string& what)
      : std::runtime_error(what),
        segment_(std::move(segment)),
        offset_(offset),
        sequence_(sequence) {}
  [[nodiscard]] const std::string& segment() const noexcept { return segment_; }
  [[nodiscard]] std::uint64_t offset() const noexcept { return offset_; }
  [[nodiscard]] std::int64_t sequence() const noexcept { return sequence_; }

 private:
  std::string segment_;
  std::uint64_t offset_;
  std::int64_t sequence_;
};

/// Verifies every record of every segment and says what opening the journal would do, without
/// changing anything (report.dry_run). Throws journal_corruption_error as opening would (the
/// torn tail of the last segment is reported, not thrown), std::system_error naming the path
/// for I/O errors. A directory that does not exist is an error; an empty one is a clean, empty
/// journal.
[[nodiscard]] recovery_report verify_journal(const std::string& dir);

/// What the journal's constructor runs before its first append (no io_context needed): creates
/// `dir` if missing (its parent must exist), verifies it (every segment when
/// `verify_all_segments`, else the segment headers and the last segment), truncates a torn
/// tail, and for open_mode::repair / truncate drops what the mode says. Takes the directory's
/// lock (flock) while it runs: std::system_error if a journal holds it.
recovery_report recover_journal(const std::string& dir, open_mode mode = open_mode::recover,
                                bool verify_all_segments = true, std::int64_t first_sequence = 0);

/// One record: its sequence and its payload (valid until the reader's next call of next()).
struct record_view {
  std::int64_t sequence = 0;
  std::span<const std::byte> payload;
};

/// Iterates a journal's records, in sequence order across segments, verifying each (length,
/// sequence, CRC32C). The torn tail of the last segment ends the iteration, as recovery would
/// drop it; any other damage throws journal_corruption_error when reached, after the records
/// before it were returned. Each segment is read whole into memory when reached (memory: one
/// segment). Segments created after the constructor listed the directory are not seen.
class journal_reader {
 public:
  /// The records with sequence >= `from` (all of them by default). Throws std::system_error
  /// naming the directory when it cannot be listed.
  explicit journal_reader(std::string dir,
                          std::int64_t from = std::numeric_limits<std::int64_t>::min());

  /// The next record, or nullopt at the end. Throws journal_corruption_error, std::system_error
  /// (a read failed, naming the file).
  std::optional<record_view> next();

  /// The sequence the next record read would have (after the end: the journal's next_sequence
  /// as far as this reader saw).
  [[nodiscard]] std::int64_t position() const noexcept { return expect_; }
  /// Bytes of a torn tail that ended the iteration (0 if it ended cleanly or has not ended).
  [[nodiscard]] std::uint64_t torn_bytes() const noexcept { return torn_; }
  [[nodiscard]] const std::string& dir() const noexcept { return dir_; }

 private:
  bool load(std::size_t index);

  std::string dir_;
  std::int64_t from_;
  std::vector<std::pair<std::int64_t, std::string>> segments_;  // (base, file name), sorted
  std::size_t index_ = 0;                                       // the segment in image_
  std::vector<std::byte> image_;
  std::size_t offset_ = 0;   // of the next record in image_
  std::int64_t expect_ = 0;  // sequence of the next record
  bool loaded_ = false;
  bool done_ = false;
  std::uint64_t torn_ = 0;
};

/// Publishes every record `reader` still has into a disruptor through `pub` (a publisher<T>:
/// one reserve(1) + publish per record), `fill(const record_view&, T& event)` turning each record
/// into an event; returns how many were published. Run it on a thread that may block: reserve
/// waits while the ring is full, so the disruptor must be started. An exception from `fill`
/// gives its claim back and propagates (records before it were published).
template <class Publisher, class Fill>
std::uint64_t replay(journal_reader& reader, Publisher& pub, Fill&& fill) {
  std::uint64_t n = 0;
  while (auto rec = reader.next()) {
    auto c = pub.reserve(1);
    for (auto [seq, ev] : c) {
      (void)seq;
      fill(*rec, ev);
    }
    c.publish();
    ++n;
  }
  return n;
}

/// replay() of the records of `dir` with sequence >= `from`.
template <class Publisher, class Fill>
std::uint64_t replay(const std::string& dir, std::int64_t from, Publisher& pub, Fill&& fill) {
  journal_reader reader(dir, from);
  return replay(reader, pub, std::forward<Fill>(fill));
}

namespace detail {

/// What decoding one record at an offset of a segment image found.
struct record_decode {
  bool ok = false;
  std::uint32_t length = 0;
  std::int64_t sequence = 0;
  std::size_t frame = 0;  // bytes the frame takes (ok only)
  const char* why = "";   // why not ok
};
/// Decodes and verifies the record at `offset` of `image`, which must have sequence `expect`.
[[nodiscard]] record_decode decode_record(std::span<const std::byte> image, std::size_t offset,
                                          std::int64_t expect) noexcept;

/// What follows the last valid record of a segment image.
enum class tail_kind : std::uint8_t {
  none,     // nothing
  zeros,    // only zero bytes (O_DIRECT padding of the last block)
  torn,     // bytes holding no valid record: an interrupted write
  corrupt,  // a valid record with sequence >= expect follows the damage
};
[[nodiscard]] tail_kind classify_tail(std::span<const std::byte> image, std::size_t offset,
                                      std::int64_t expect) noexcept;

/// Checks a segment's file header: empty string if valid, else why not; sets `base`.
[[nodiscard]] const char* check_file_header(std::span<const std::byte> image,
                                            std::int64_t& base) noexcept;
/// Writes a file header for `base` into `out` (journal_format::file_header_size bytes).
void write_file_header(std::byte* out, std::int64_t base) noexcept;
/// Writes a record header for (sequence, payload) into `out` (record_header_size bytes).
void write_record_header(std::byte* out, std::int64_t sequence, const void* payload,
                         std::uint32_t length) noexcept;

/// The segment files of `dir` as (base, name), sorted by base. Names that do not parse are
/// ignored, unless they end in ".rj" (then journal_corruption_error).
std::vector<std::pair<std::int64_t, std::string>> list_segments(const std::string& dir);

}  // namespace detail
}  // namespace rondo
