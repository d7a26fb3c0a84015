// journal_reader: a journal's records in order from a sequence on, verified as they are read
// (see include/rondo/io/journal_reader.hpp and docs/journal.md).

#include "file_util.hpp"

#include <rondo/io/journal_reader.hpp>

#include <fmt/format.h>

#include <utility>

namespace rondo {

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
