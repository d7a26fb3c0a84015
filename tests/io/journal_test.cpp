// journal: framed records survive reopen, rolls, torn tails at every byte, flipped bits, a full
// disk, short writes and kill -9; the reader, replay and the rondo-journal tool agree with the
// writer.
// (Above ~400 lines on purpose: one TEST_CASE per behaviour of one component, each standing
// alone; split, the component's specification would be scattered over files.)

#include "support.hpp"

#include <rondo/io/crc32c.hpp>
#include <rondo/io/format.hpp>
#include <rondo/io/journal.hpp>
#include <rondo/io/journal_reader.hpp>
#include <rondo/rondo.hpp>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

using rondo_test::detached;

// A scratch directory, removed at the end of the test.
struct scratch {
  std::string root;
  scratch() {
    char name[] = "/tmp/rondo-journal-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    root = name;
  }
  ~scratch() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  [[nodiscard]] std::string dir(const char* leaf = "j") const { return root + "/" + leaf; }
};

void run(rondo::io_context& io, rondo::task<> t) {
  bool finished = false;
  std::exception_ptr error;
  auto body = [&](rondo::task<> inner) -> detached {
    try {
      co_await std::move(inner);
    } catch (...) {
      error = std::current_exception();
    }
    finished = true;
  };
  body(std::move(t));
  while (!finished) REQUIRE(io.run_one());
  if (error) std::rethrow_exception(error);
}

// The payload of record `seq`: its length (0..max) and bytes derived from seq, so a reader can
// check any record it finds without knowing what was written.
std::string payload_of(std::int64_t seq, std::size_t max = 300) {
  auto x = static_cast<std::uint64_t>(seq) * 0x9E3779B97F4A7C15ULL + 1;
  x ^= x >> 29;
  const std::size_t len = static_cast<std::size_t>(x % (max + 1));
  std::string s(len, '\0');
  for (std::size_t i = 0; i < len; ++i) s[i] = static_cast<char>((x >> (i % 7 * 8)) + i);
  return s;
}

// Appends records next_sequence() .. + n - 1 (payload_of) in one append_durable.
void append(rondo::io_context& io, rondo::journal& j, int n, std::size_t max = 300) {
  std::vector<std::string> recs;
  for (int i = 0; i < n; ++i) recs.push_back(payload_of(j.next_sequence() + i, max));
  std::vector<::iovec> iov;
  for (auto& r : recs) iov.push_back({r.data(), r.size()});
  run(io, j.append_durable(iov));
}

struct record {
  std::int64_t seq;
  std::string payload;
};

std::vector<record> read_all(const std::string& dir,
                             std::int64_t from = std::numeric_limits<std::int64_t>::min()) {
  std::vector<record> out;
  rondo::journal_reader r(dir, from);
  while (auto rec = r.next()) {
    out.push_back({rec->sequence, std::string(reinterpret_cast<const char*>(rec->payload.data()),
                                              rec->payload.size())});
  }
  return out;
}

// Every record is payload_of(its sequence), sequences consecutive from `first`.
bool records_ok(const std::vector<record>& v, std::int64_t first, std::size_t max = 300) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i].seq != first + static_cast<std::int64_t>(i)) return false;
    if (v[i].payload != payload_of(v[i].seq, max)) return false;
  }
  return true;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string seg(const std::string& dir, std::int64_t base) {
  return dir + "/" + rondo::journal_format::segment_name(base);
}

// Offsets of the records in a one-segment journal's file.
std::vector<std::size_t> record_offsets(const std::string& bytes) {
  std::vector<std::size_t> out;
  std::size_t off = rondo::journal_format::file_header_size;
  while (off + 16 <= bytes.size()) {
    std::uint32_t len;
    std::memcpy(&len, bytes.data() + off, 4);
    out.push_back(off);
    off += rondo::journal_format::frame_size(len);
  }
  return out;
}

bool direct_supported(const std::string& dir) {
  fs::create_directories(dir);
  const std::string p = dir + "/probe";
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
  if (fd >= 0) ::close(fd);
  ::unlink(p.c_str());
  return fd >= 0;
}

}  // namespace

TEST_CASE("crc32c: check values, hardware == table, extend", "[journal][crc32c][deterministic]") {
  const char* nine = "123456789";
  CHECK(rondo::detail::crc32c(nine, 9) == 0xE3069283U);
  CHECK(rondo::detail::crc32c_extend_portable(0, nine, 9) == 0xE3069283U);
  CHECK(rondo::detail::crc32c(nine, 0) == 0U);
  std::vector<unsigned char> zeros(32, 0);
  CHECK(rondo::detail::crc32c(zeros.data(), 32) == 0x8A9136AAU);  // RFC 3720 B.4
  std::mt19937 rng(7);
  std::vector<unsigned char> buf(1000);
  for (auto& b : buf) b = static_cast<unsigned char>(rng());
  for (std::size_t len : {0U, 1U, 7U, 8U, 9U, 63U, 64U, 999U, 1000U}) {
    for (std::size_t split : {0U, 1U, 5U, 8U}) {
      if (split > len) continue;
      const auto whole = rondo::detail::crc32c(buf.data(), len);
      CHECK(whole == rondo::detail::crc32c_extend_portable(0, buf.data(), len));
      CHECK(whole == rondo::detail::crc32c_extend(rondo::detail::crc32c(buf.data(), split),
                                                  buf.data() + split, len - split));
    }
  }
}

TEST_CASE("journal: round trip, reopen appends after, sequences and report",
          "[io][journal][deterministic]") {
  scratch s;
  const std::string dir = s.dir();
  rondo::io_context io;
  {
    rondo::journal j(io, dir);
    CHECK(j.recovery().clean());
    CHECK(j.recovery().empty());
    CHECK(j.next_sequence() == 0);
    for (int b = 0; b < 20; ++b) append(io, j, 1 + b % 5);
    CHECK(j.next_sequence() == 60);
    CHECK(j.syncs() == 20);
    run(io, j.append_durable({}));  // nothing: no sync, no sequence
    CHECK(j.syncs() == 20);
    CHECK(j.size() == fs::file_size(seg(dir, 0)));
  }
  auto all = read_all(dir);
  CHECK(all.size() == 60);
  CHECK(records_ok(all, 0));
  {
    rondo::journal j(io, dir);  // the default reopens: it never truncates
    const auto& r = j.recovery();
    CHECK(r.clean());
    CHECK(r.records == 60);
    CHECK(r.next_sequence == 60);
    CHECK(fmt::format("{}", r) ==
          fmt::format("journal {}: 1 segment, 60 records verified, sequences [0, 59], next 60, "
                      "clean",
                      dir));
    append(io, j, 3);
    CHECK(j.last_sequence() == 62);
  }
  all = read_all(dir);
  CHECK(all.size() == 63);
  CHECK(records_ok(all, 0));
  CHECK(read_all(dir, 61).size() == 2);
  CHECK(read_all(dir, 63).empty());
  CHECK(read_all(dir, -5).size() == 63);
  {
    rondo::journal_options o;
    o.mode = rondo::open_mode::truncate;  // the only way to start empty
    o.first_sequence = 1000;
    rondo::journal j(io, dir, o);
    CHECK(j.next_sequence() == 1000);
    CHECK(j.recovery().segments_dropped == 1);
    append(io, j, 2);
  }
  all = read_all(dir);
  REQUIRE(all.size() == 2);
  CHECK(records_ok(all, 1000));
  CHECK(fs::exists(seg(dir, 1000)));
  CHECK_FALSE(fs::exists(seg(dir, 0)));
}

TEST_CASE("journal: segments roll by size; readers cross them and start anywhere",
          "[io][journal][deterministic]") {
  scratch s;
  const std::string dir = s.dir();
  rondo::io_context io;
  rondo::journal_options o;
  o.segment_bytes = 4096;
  o.first_sequence = 7;
  {
    rondo::journal j(io, dir, o);
    for (int b = 0; b < 60; ++b) append(io, j, 1 + b % 4);
    CHECK(j.next_sequence() == 7 + 150);
    CHECK(j.rolls() >= 5);
  }
  // Every segment is named by its first record, and starts where the previous one ended.
  const auto segs = rondo::detail::list_segments(dir);
  REQUIRE(segs.size() >= 6);
  CHECK(segs.front().first == 7);
  for (std::size_t i = 0; i + 1 < segs.size(); ++i) {
    CHECK(fs::file_size(dir + "/" + segs[i].second) >= 4096);
    CHECK(read_all(dir, segs[i].first).front().seq == segs[i].first);
  }
  CHECK(records_ok(read_all(dir), 7));
  CHECK(read_all(dir).size() == 150);
  const std::int64_t mid = segs[3].first + 1;
  const auto from_mid = read_all(dir, mid);
  CHECK(from_mid.size() == static_cast<std::size_t>(157 - mid));
  CHECK(records_ok(from_mid, mid));
  {
    rondo::journal j(io, dir, o);
    CHECK(j.recovery().segments == segs.size());
    CHECK(j.recovery().records == 150);
    CHECK(j.recovery().first_sequence == 7);
    append(io, j, 2);
  }
  CHECK(records_ok(read_all(dir), 7));
  CHECK(read_all(dir).size() == 152);
  // Only the last segment fully: same result, fewer records read.
  o.verify_all_segments = false;
  {
    rondo::journal j(io, dir, o);
    CHECK(j.next_sequence() == 159);
    CHECK(j.recovery().records < 152);
  }
  // A missing middle segment is a gap, never silently skipped.
  fs::remove(dir + "/" + segs[2].second);
  CHECK_THROWS_AS(rondo::verify_journal(dir), rondo::journal_corruption_error);
  CHECK_THROWS_WITH(rondo::journal(io, dir),
                    Catch::Contains(segs[3].second) && Catch::Contains("previous segment ends"));
  rondo::journal_reader r(dir);
  std::int64_t n = 0;
  CHECK_THROWS_AS(
      [&] {
        while (r.next()) ++n;
      }(),
      rondo::journal_corruption_error);
  CHECK(n == segs[2].first - 7);  // everything before the gap was read
}

TEST_CASE("journal: a torn last record is dropped at every byte cut, and appends go on",
          "[io][journal][deterministic]") {
  scratch s;
  const std::string dir = s.dir();
  rondo::io_context io;
  {
    rondo::journal j(io, dir);
    append(io, j, 4);
    append(io, j, 1);  // record 4 is the one torn below
  }
  const std::string full = slurp(seg(dir, 0));
  const auto offs = record_offsets(full);
  REQUIRE(offs.size() == 5);
  const std::size_t last = offs[4];
  for (std::size_t cut = 0; cut < full.size(); ++cut) {
    INFO("cut at byte " << cut << " of " << full.size());
    const std::string d = s.dir(("cut" + std::to_string(cut)).c_str());
    fs::create_directory(d);
    spit(seg(d, 0), full.substr(0, cut));
    if (cut < last) {
      // Cuts before the last record: only a header cut is a "torn tail" without damage
      // following; a cut through record k keeps 0..k-1.
      if (cut < rondo::journal_format::file_header_size) {
        const auto rep = rondo::recover_journal(d);
        CHECK(rep.segments == 0);
        CHECK(rep.segments_dropped == 1);
        CHECK(rep.next_sequence == 0);
        CHECK(read_all(d).empty());
      }
      fs::remove_all(d);
      continue;
    }
    // The reader stops before the torn record without changing anything.
    {
      rondo::journal_reader r(d);
      int n = 0;
      while (r.next()) ++n;
      CHECK(n == 4);
      CHECK(r.torn_bytes() == cut - last);
    }
    const auto v = rondo::verify_journal(d);
    CHECK(v.bytes_dropped == cut - last);
    CHECK(fs::file_size(seg(d, 0)) == cut);  // verify changed nothing
    const auto rep = rondo::recover_journal(d);
    CHECK(rep.records == 4);
    CHECK(rep.next_sequence == 4);
    CHECK(rep.bytes_dropped == cut - last);
    CHECK(rep.clean() == (cut == last));
    if (cut > last)
      CHECK_THAT(rep.why,
                 Catch::Contains("torn tail") && Catch::Contains("offset " + std::to_string(last)));
    CHECK(fs::file_size(seg(d, 0)) == last);
    if (cut % 17 == 0) {  // and the journal appends after the valid prefix
      rondo::journal j(io, d);
      CHECK(j.next_sequence() == 4);
      append(io, j, 2);
      const auto all = read_all(d);
      CHECK(all.size() == 6);
      CHECK(records_ok(all, 0));
    }
    fs::remove_all(d);
  }
}

TEST_CASE("journal: flipped bits are detected; in the middle they are an error, not a cut",
          "[io][journal][deterministic]") {
  scratch s;
  const std::string dir = s.dir();
  rondo::io_context io;
  {
    rondo::journal j(io, dir);
    for (int i = 0; i < 6; ++i) append(io, j, 1);
  }
  const std::string full = slurp(seg(dir, 0));
  const auto offs = record_offsets(full);
  REQUIRE(offs.size() == 6);
  const std::size_t mid = offs[2];
  std::uint32_t mid_len = 0;
  std::memcpy(&mid_len, full.data() + mid, 4);
  REQUIRE(mid_len > 0);
  struct flip {
    const char* what;
    std::size_t at;
    int bit;
  };
  std::vector<flip> flips = {{"length, low bit", mid, 0},
                             {"length, high bit", mid + 3, 7},
                             {"crc", mid + 4, 3},
                             {"sequence", mid + 8, 0},
                             {"payload, first byte", mid + 16, 5},
                             {"payload, last byte", mid + 16 + mid_len - 1, 1}};
  if (rondo::journal_format::frame_size(mid_len) > 16 + mid_len) {
    flips.push_back({"padding", mid + 16 + mid_len, 0});
  }
  for (const flip& f : flips) {
    INFO(f.what);
    std::string bad = full;
    bad[f.at] = static_cast<char>(bad[f.at] ^ (1 << f.bit));
    const std::string d = s.dir("flipped");
    fs::create_directory(d);
    spit(seg(d, 0), bad);
    try {
      (void)rondo::recover_journal(d);
      FAIL("a corrupt record followed by valid ones was accepted");
    } catch (const rondo::journal_corruption_error& e) {
      CHECK(e.segment() == seg(d, 0));
      CHECK(e.offset() == mid);
      CHECK(e.sequence() == 2);
      CHECK_THAT(std::string(e.what()), Catch::Contains(seg(d, 0)) &&
                                            Catch::Contains("offset " + std::to_string(mid)) &&
                                            Catch::Contains("sequence 2"));
    }
    CHECK(slurp(seg(d, 0)) == bad);  // nothing truncated
    CHECK_THROWS_AS(rondo::verify_journal(d), rondo::journal_corruption_error);
    {
      rondo::journal_reader r(d);
      CHECK(r.next()->sequence == 0);
      CHECK(r.next()->sequence == 1);
      CHECK_THROWS_AS(r.next(), rondo::journal_corruption_error);
    }
    // repair: the operator asks for the cut; it is reported.
    rondo::journal_options o;
    o.mode = rondo::open_mode::repair;
    {
      rondo::journal j(io, d, o);
      CHECK(j.next_sequence() == 2);
      CHECK(j.recovery().bytes_dropped == full.size() - mid);
      CHECK_THAT(j.recovery().why, Catch::Contains("corrupt record"));
      append(io, j, 1);
    }
    CHECK(records_ok(read_all(d), 0));
    CHECK(read_all(d).size() == 3);
    fs::remove_all(d);
  }
  SECTION("a flipped bit in the file header") {
    std::string bad = full;
    bad[17] = static_cast<char>(bad[17] ^ 1);  // the base sequence
    spit(seg(dir, 0), bad);
    CHECK_THROWS_WITH(rondo::recover_journal(dir), Catch::Contains("file header CRC32C mismatch"));
  }
  SECTION("a flipped bit in the last record: dropped and reported, as a torn tail") {
    std::string bad = full;
    bad[offs[5] + 4] = static_cast<char>(bad[offs[5] + 4] ^ 1);
    spit(seg(dir, 0), bad);
    const auto rep = rondo::recover_journal(dir);
    CHECK(rep.next_sequence == 5);
    CHECK(rep.bytes_dropped == full.size() - offs[5]);
    CHECK_THAT(rep.why, Catch::Contains("CRC32C mismatch"));
    CHECK_THAT(fmt::format("{}", rep),
               Catch::EndsWith(fmt::format(
                   "1 segment, 5 records verified, sequences [0, 4], next 5, dropped {} bytes and "
                   "0 segments: torn tail in {} at offset {}, sequence 5: CRC32C mismatch",
                   full.size() - offs[5], seg(dir, 0), offs[5])));
  }
}

TEST_CASE("journal: damage in a segment that is not the last is an error",
          "[io][journal][deterministic]") {
  scratch s;
  const std::string dir = s.dir();
  rondo::io_context io;
  rondo::journal_options o;
  o.segment_bytes = 4096;
  {
    rondo::journal j(io, dir, o);
    for (int b = 0; b < 40; ++b) append(io, j, 2);
  }
  const auto segs = rondo::detail::list_segments(dir);
  REQUIRE(segs.size() >= 3);
  const std::string first = dir + "/" + segs[0].second;
  SECTION("torn end of the first segment") {
    fs::resize_file(first, fs::file_size(first) - 5);
    CHECK_THROWS_WITH(rondo::recover_journal(dir),
                      Catch::Contains(segs[0].second) && Catch::Contains("not the last"));
    o.mode = rondo::open_mode::repair;
    rondo::journal j(io, dir, o);
    CHECK(j.recovery().segments_dropped == segs.size() - 1);
    CHECK(j.next_sequence() == segs[1].first - 1);
  }
  SECTION("a damaged header of the last segment with records after it") {
    const std::string lastp = dir + "/" + segs.back().second;
    std::string b = slurp(lastp);
    b[0] = 'X';
    spit(lastp, b);
    CHECK_THROWS_WITH(rondo::recover_journal(dir), Catch::Contains("bad magic"));
  }
  SECTION("a crash while rolling: the new segment has no header yet") {
    const std::int64_t next = rondo::verify_journal(dir).next_sequence;
    spit(seg(dir, next), "");
    auto rep = rondo::verify_journal(dir);
    CHECK(rep.segments_dropped == 1);
    CHECK(rep.bytes_dropped == 0);
    rondo::journal j(io, dir, o);
    CHECK(j.next_sequence() == next);
    append(io, j, 1);
    CHECK(records_ok(read_all(dir), 0));
  }
}

TEST_CASE("journal, O_DIRECT: framed records, zero padding, reopen in either mode",
          "[io][journal][deterministic]") {
  scratch s;
  const std::string dir = s.dir();
  if (!direct_supported(s.root)) {
    WARN("O_DIRECT not supported on " << s.root << ": skipped");
    return;
  }
  rondo::io_context io;
  rondo::journal_options o;
  o.direct = true;
  o.preallocate = 64 * 1024;  // small, so appends cross the preallocated end
  o.staging = 16 * 1024;      // small, so big records span several staging rounds
  o.segment_bytes = 256 * 1024;
  {
    rondo::journal j(io, dir, o);
    for (int b = 0; b < 80; ++b) append(io, j, 1 + b % 5, b % 9 == 0 ? 40'000 : 3000);
    // While open, the last block holds zeros after the last record: readers skip them.
    const auto all = read_all(dir);
    CHECK(all.size() == static_cast<std::size_t>(j.next_sequence()));
  }
  const auto n = static_cast<std::size_t>(rondo::verify_journal(dir).next_sequence);
  CHECK(rondo::verify_journal(dir).clean());
  {
    rondo::journal j(io, dir, o);  // the partial last block is read back and extended
    append(io, j, 3, 3000);
    o.direct = false;
  }
  {
    rondo::journal j(io, dir, o);  // and buffered after direct
    append(io, j, 3, 3000);
  }
  const auto all = read_all(dir);
  CHECK(all.size() == n + 6);
  for (const auto& r : all) {
    // The sizes differ by batch: check content through either maximum.
    CHECK((r.payload == payload_of(r.seq, 3000) || r.payload == payload_of(r.seq, 40'000)));
  }
  // A crash leaves zero padding after the last record: not data, not "dropped".
  const auto segs = rondo::detail::list_segments(dir);
  const std::string lastp = dir + "/" + segs.back().second;
  const auto size = fs::file_size(lastp);
  fs::resize_file(lastp, (size + 4095) / 4096 * 4096 + 4096);
  const auto rep = rondo::recover_journal(dir);
  CHECK(rep.clean());
  CHECK(fs::file_size(lastp) == size);
}

TEST_CASE("journal: replay rebuilds state through a disruptor", "[io][journal][deterministic]") {
  scratch s;
  const std::string dir = s.dir();
  rondo::io_context io;
  {
    rondo::journal j(io, dir);
    for (int b = 0; b < 50; ++b) append(io, j, 4);
  }
  struct ev {
    std::int64_t seq = -1;
    std::uint32_t crc = 0;
  };
  std::vector<ev> seen;  // the stage's thread writes; read after drain()
  auto d = rondo::disruptor<ev>::builder()
               .capacity(16)  // smaller than the journal: replay waits for the stage
               .wait(rondo::yielding{})
               .stage("rebuild", [&seen](ev& e, std::int64_t, bool) { seen.push_back(e); })
               .build();
  d.start();
  const std::uint64_t n =
      rondo::replay(dir, 50, d.publisher(), [](const rondo::record_view& r, ev& e) {
        e.seq = r.sequence;
        e.crc = rondo::detail::crc32c(r.payload.data(), r.payload.size());
      });
  d.drain();
  CHECK(n == 150);
  REQUIRE(seen.size() == 150);
  bool ok = true;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    const auto p = payload_of(seen[i].seq);
    ok = ok && seen[i].seq == 50 + static_cast<std::int64_t>(i) &&
         seen[i].crc == rondo::detail::crc32c(p.data(), p.size());
  }
  CHECK(ok);
}

TEST_CASE("journal: errors name the path, the value and the errno",
          "[io][journal][deterministic]") {
  scratch s;
  rondo::io_context io;
  CHECK_THROWS_WITH(
      rondo::journal(io, "/nonexistent-dir/j"),
      Catch::Contains("mkdir(/nonexistent-dir/j)") && Catch::Contains("No such file or directory"));
  rondo::journal_options o;
  o.direct = true;
  o.preallocate = 1000;
  CHECK_THROWS_WITH(rondo::journal(io, s.dir(), o), Catch::Contains("preallocate 1000"));
  o.preallocate = 4096;
  o.staging = 4096;
  CHECK_THROWS_WITH(rondo::journal(io, s.dir(), o), Catch::Contains("staging 4096"));
  o = {};
  o.segment_bytes = 100;
  CHECK_THROWS_WITH(rondo::journal(io, s.dir(), o), Catch::Contains("segment_bytes 100"));
  o = {};
  o.first_sequence = -1;
  CHECK_THROWS_WITH(rondo::journal(io, s.dir(), o), Catch::Contains("first_sequence -1"));
  rondo::journal j(io, s.dir());
  CHECK_THROWS_WITH(rondo::journal(io, s.dir()), Catch::Contains("flock(" + s.dir()));
  // A record over the limit is refused before anything is written; the journal goes on.
  const std::vector<::iovec> huge{{nullptr, rondo::journal_format::max_payload + 1}};
  CHECK_THROWS_WITH(run(io, j.append_durable(huge)), Catch::Contains("over the limit"));
  CHECK(j.failure().empty());
  append(io, j, 1);
  // Two appends at once (one journal stage is one coroutine): the second is refused.
  std::string rec = "x";
  const std::vector<::iovec> one{{rec.data(), rec.size()}};
  int done = 0;
  std::string second_error;
  auto first = [&]() -> detached {
    co_await j.append_durable(one);
    ++done;
  };
  auto second = [&]() -> detached {
    try {
      co_await j.append_durable(one);
    } catch (const std::logic_error& e) {
      second_error = e.what();
    }
    ++done;
  };
  first();  // suspends in its write
  second();
  while (done < 2) REQUIRE(io.run_one());
  CHECK_THAT(second_error, Catch::Contains("another append is in progress"));
  CHECK(j.next_sequence() == 2);
  CHECK_THROWS_WITH(rondo::recover_journal(s.dir()), Catch::Contains("flock("));
  spit(s.dir() + "/junk.rj", "");
  CHECK_THROWS_WITH(rondo::verify_journal(s.dir()), Catch::Contains("not a segment name"));
}

TEST_CASE(
    "journal: a full disk (tmpfs) fails at once naming ENOSPC and the path; nothing acked "
    "is lost",
    "[io][journal][fault]") {
  scratch s;
  const std::string mnt = s.dir("mnt");
  fs::create_directory(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m") != 0) {
    WARN("skipped: mounting a 1 MiB tmpfs on " << mnt << " was refused (" << std::strerror(errno)
                                               << "; the test needs root)");
    return;
  }
  struct unmount {
    std::string p;
    ~unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } um{mnt};
  const std::string dir = mnt + "/j";
  rondo::io_context io;
  rondo::journal_options o;
  o.segment_bytes = 256 * 1024;  // rolls happen on the way to the full disk
  std::int64_t acked = -1;
  std::string error;
  {
    rondo::journal j(io, dir, o);
    try {
      for (int b = 0; b < 10'000; ++b) {
        append(io, j, 7, 2000);
        acked = j.last_sequence();
      }
    } catch (const std::system_error& e) {
      error = e.what();
      CHECK(e.code() == std::error_code(ENOSPC, std::system_category()));
    }
    REQUIRE_FALSE(error.empty());
    CHECK_THAT(error, Catch::Contains("No space left on device") && Catch::Contains(dir + "/"));
    CHECK(j.failure() == error);
    CHECK(j.last_sequence() == acked);
    // Every later append is refused with the first failure.
    CHECK_THROWS_WITH(append(io, j, 1), Catch::Contains("earlier append failed") &&
                                            Catch::Contains("No space left on device"));
  }
  REQUIRE(acked > 100);
  const auto rep = rondo::recover_journal(dir);
  CHECK(rep.next_sequence >= acked + 1);
  const auto all = read_all(dir);
  CHECK(static_cast<std::int64_t>(all.size()) == rep.next_sequence);
  CHECK(records_ok(all, 0, 2000));
}

TEST_CASE("journal: a short write is continued; the error that stops it is reported",
          "[io][journal][fault]") {
  // RLIMIT_FSIZE makes a write that crosses the limit return short, and the next one fail with
  // EFBIG: a journal that took the short count for the whole would acknowledge records that are
  // not in the file.
  scratch s;
  const std::string dir = s.dir();
  rondo::io_context io;
  std::int64_t acked = -1;
  {
    rondo::journal j(io, dir);
    append(io, j, 10);
    acked = j.last_sequence();
    const auto size = fs::file_size(j.segment_path());
    rlimit old{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit lim = old;
    lim.rlim_cur = size + 1000;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &lim) == 0);
    std::string error;
    try {
      append(io, j, 30);
    } catch (const std::system_error& e) {
      error = e.what();
      CHECK(e.code() == std::error_code(EFBIG, std::system_category()));
    }
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &old) == 0);
    std::signal(SIGXFSZ, old_handler);
    CHECK_THAT(error, Catch::Contains("write(" + j.segment_path() + ", offset " +
                                      std::to_string(size + 1000) + "): File too large"));
    CHECK(fs::file_size(j.segment_path()) == size + 1000);  // the short write landed
    CHECK(j.last_sequence() == acked);
  }
  const auto rep = rondo::recover_journal(dir);
  CHECK(rep.next_sequence >= acked + 1);
  CHECK(rep.bytes_dropped > 0);
  CHECK(records_ok(read_all(dir), 0));
}

TEST_CASE("journal: kill -9 at random moments loses and duplicates nothing acked",
          "[io][journal][fault]") {
  scratch s;
  const std::string dir = s.dir();
  const bool direct_ok = direct_supported(s.root);
  std::mt19937 rng(12345);
  std::int64_t max_acked = -1;
  for (int round = 0; round < 12; ++round) {
    INFO("round " << round);
    int pipefd[2];
    REQUIRE(::pipe2(pipefd, O_CLOEXEC) == 0);
    const bool direct = direct_ok && round % 2 == 1;
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(pipefd[0]);
      int code = 0;
      try {
        rondo::io_context io;
        rondo::journal_options o;
        o.segment_bytes = 16 * 1024;  // rolls are among the moments a kill lands on
        o.direct = direct;
        o.preallocate = 64 * 1024;
        o.staging = 8192;  // appends of several writes too
        rondo::journal j(io, dir, o);
        std::uint64_t r = 0x1234 + static_cast<std::uint64_t>(round);
        for (;;) {
          r = r * 6364136223846793005ULL + 1442695040888963407ULL;
          append(io, j, 1 + static_cast<int>((r >> 33) % 8));
          const std::int64_t last = j.last_sequence();
          if (::write(pipefd[1], &last, sizeof last) != sizeof last) {
            code = 4;
            break;
          }
        }
      } catch (...) {
        code = 3;
      }
      ::_exit(code);
    }
    ::close(pipefd[1]);
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(5 + static_cast<int>(rng() % 80));
    std::int64_t got = -1;
    auto take = [&](int timeout_ms) {
      pollfd p{pipefd[0], POLLIN, 0};
      if (::poll(&p, 1, timeout_ms) <= 0) return false;
      std::int64_t v;
      const ssize_t n = ::read(pipefd[0], &v, sizeof v);
      if (n != sizeof v) return false;
      got = v;
      return true;
    };
    while (std::chrono::steady_clock::now() < deadline) take(1);
    ::kill(pid, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    while (take(0)) {
    }
    ::close(pipefd[0]);
    CHECK(WIFSIGNALED(status));  // the child died of the kill, not of an error of its own
    if (got > max_acked) max_acked = got;
    const auto rep = rondo::recover_journal(dir);
    INFO(fmt::format("{}", rep));
    CHECK(rep.next_sequence >= max_acked + 1);  // every acked record survived
    const auto all = read_all(dir);
    CHECK(static_cast<std::int64_t>(all.size()) == rep.next_sequence);
    CHECK(records_ok(all, 0));  // once each, in order, intact
  }
  CHECK(max_acked > 0);
}
