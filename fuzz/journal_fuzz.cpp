// libFuzzer target: the journal's reader and recovery on arbitrary bytes.
//
// The input is a journal directory image: split at every "RONDOJNL" (a segment file header's
// magic) into segment files, each named by the base sequence its header claims (or a made-up
// one when the header is damaged). Then, on a scratch directory:
//   - verify_journal and journal_reader may throw journal_corruption_error, nothing else;
//   - when recover_journal succeeds, the journal is clean afterwards: verify reports nothing to
//     drop, the reader yields exactly next - first consecutive records and never throws, and a
//     second recovery changes nothing;
//   - what the reader returned before recovery (if it did not throw) is what it returns after.
// A broken invariant aborts (libFuzzer reports it as a crash). tests/ runs every file of
// fuzz/corpus/journal/ through this function in the ordinary test build, so each crash found
// and saved there becomes a regression test.

#include <rondo/io/journal_reader.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

namespace {

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "journal fuzz: invariant broken: %s\n", what);
  std::abort();
}

// A scratch directory per process, on tmpfs when there is one; removed at exit. (Never
// destroyed: the exit handler outlives every static destructor.)
const std::string& scratch_dir() {
  static const std::string* dir = [] {
    const char* base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    auto* d =
        new std::string(std::string(base) + "/rondo-journal-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(*d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return d;
  }();
  return *dir;
}

struct rec {
  std::int64_t seq;
  std::string payload;
  bool operator==(const rec&) const = default;
};

// Every record, or false if the reader threw journal_corruption_error.
bool read_all(const std::string& dir, std::vector<rec>& out) {
  out.clear();
  try {
    rondo::journal_reader r(dir);
    while (auto v = r.next()) {
      out.push_back({v->sequence, std::string(reinterpret_cast<const char*>(v->payload.data()),
                                              v->payload.size())});
    }
    return true;
  } catch (const rondo::journal_corruption_error&) {
    return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::string_view magic(rondo::journal_format::magic, 8);

  // In memory: walking the records of the whole input as one segment must stay in bounds.
  {
    const auto img = std::as_bytes(std::span(data, size));
    std::int64_t base = 0;
    (void)rondo::detail::check_file_header(img, base);
    std::size_t off = rondo::journal_format::file_header_size;
    std::int64_t expect = base;
    for (;;) {
      const auto d = rondo::detail::decode_record(img, off, expect);
      if (!d.ok) break;
      if (d.frame < rondo::journal_format::record_header_size || off + d.frame > size) {
        broken("decode_record accepted a frame outside the image");
      }
      off += d.frame;
      ++expect;
    }
    (void)rondo::detail::classify_tail(img, off, expect);
  }

  // On disk: the input as segment files.
  const std::string& dir = scratch_dir();
  for (const auto& e : std::filesystem::directory_iterator(dir)) std::filesystem::remove(e.path());
  std::set<std::int64_t> used;
  std::size_t start = 0;
  std::int64_t made_up = 1'000'000;
  while (start < size) {
    std::size_t end = in.find(magic, start + 1);
    if (end == std::string_view::npos) end = size;
    const std::string_view piece = in.substr(start, end - start);
    std::int64_t base = -1;
    const auto bytes = std::as_bytes(std::span(piece.data(), piece.size()));
    if (rondo::detail::check_file_header(bytes, base) != nullptr || base > 999'999) {
      base = made_up++;
    }
    if (used.insert(base).second) {
      std::ofstream(dir + "/" + rondo::journal_format::segment_name(base), std::ios::binary)
          .write(piece.data(), static_cast<std::streamsize>(piece.size()));
    }
    start = end;
  }

  try {
    (void)rondo::verify_journal(dir);
  } catch (const rondo::journal_corruption_error&) {
  }
  std::vector<rec> before;
  const bool before_ok = read_all(dir, before);

  rondo::recovery_report rep;
  try {
    rep = rondo::recover_journal(dir);
  } catch (const rondo::journal_corruption_error&) {
    return 0;  // refused: nothing may have changed, and nothing to check further
  }
  const auto again = rondo::verify_journal(dir);
  if (!again.clean()) broken("verify after recovery is not clean");
  // (With every segment dropped the directory is empty, and its numbering is the opener's.)
  if (again.segments > 0 &&
      (again.next_sequence != rep.next_sequence || again.first_sequence != rep.first_sequence)) {
    broken("verify after recovery disagrees with the recovery");
  }
  std::vector<rec> after;
  if (!read_all(dir, after)) broken("the reader threw after a successful recovery");
  if (static_cast<std::int64_t>(after.size()) != rep.next_sequence - rep.first_sequence) {
    broken("the reader's record count differs from the recovery's");
  }
  for (std::size_t i = 0; i < after.size(); ++i) {
    if (after[i].seq != rep.first_sequence + static_cast<std::int64_t>(i)) {
      broken("sequences are not consecutive");
    }
  }
  if (before_ok && before != after) broken("recovery changed what the reader returned");
  const auto second = rondo::recover_journal(dir);
  if (!second.clean() || (second.segments > 0 && second.next_sequence != rep.next_sequence)) {
    broken("a second recovery changed something");
  }
  return 0;
}
