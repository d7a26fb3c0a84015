// journal: buffered and O_DIRECT appends hold every record once, in order, across batches
// larger than the staging buffer, partial blocks and a reopen; errors name the path.

#include "support.hpp"

#include <rondo/io/journal.hpp>
#include <rondo/rondo.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

namespace {

using rondo_test::detached;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string temp_path() {
  char name[] = "/tmp/rondo-journal-XXXXXX";
  const int fd = ::mkstemp(name);
  REQUIRE(fd >= 0);
  ::close(fd);
  return name;
}

// Appends `batches` batches of random-sized records through `j`; returns what was appended.
std::string append_batches(rondo::io_context& io, rondo::journal& j, int batches,
                           std::uint32_t seed) {
  std::string expected;
  std::mt19937 rng(seed);
  bool finished = false;
  std::exception_ptr error;
  auto run = [&]() -> detached {
    try {
      for (int b = 0; b < batches; ++b) {
        // 1..5 records of 1..3000 bytes, sometimes one of 40 KiB (larger than the staging
        // buffer of the direct test).
        std::vector<std::string> recs;
        const int n = 1 + static_cast<int>(rng() % 5);
        for (int i = 0; i < n; ++i) {
          const std::size_t len = (rng() % 17 == 0) ? 40'000 : 1 + rng() % 3000;
          std::string r(len, '\0');
          for (auto& c : r) c = static_cast<char>('a' + rng() % 26);
          recs.push_back(std::move(r));
        }
        std::vector<::iovec> iov;
        for (auto& r : recs) {
          iov.push_back({r.data(), r.size()});
          expected += r;
        }
        co_await j.append_durable(iov);
      }
    } catch (...) {
      error = std::current_exception();
    }
    finished = true;
  };
  run();
  while (!finished) REQUIRE(io.run_one());
  if (error) std::rethrow_exception(error);
  return expected;
}

}  // namespace

TEST_CASE("journal, buffered: every record once, in order", "[io][journal][deterministic]") {
  rondo::io_context io;
  const std::string path = temp_path();
  std::string expected;
  {
    rondo::journal j(io, path);
    expected = append_batches(io, j, 60, 1);
    CHECK(j.size() == expected.size());
    CHECK(j.syncs() == 60);
  }
  CHECK(read_file(path) == expected);
  {
    rondo::journal_options o;
    o.truncate = false;
    rondo::journal j(io, path, o);
    expected += append_batches(io, j, 5, 2);
  }
  CHECK(read_file(path) == expected);
  ::unlink(path.c_str());
}

TEST_CASE("journal, O_DIRECT: staged blocks, partial tails, reopen", "[io][journal][deterministic]") {
  rondo::io_context io;
  const std::string path = temp_path();
  rondo::journal_options o;
  o.direct = true;
  o.preallocate = 64 * 1024;  // small, so appends cross the preallocated end
  o.staging = 16 * 1024;      // small, so records span several staging rounds
  std::string expected;
  try {
    rondo::journal j(io, path, o);
    expected = append_batches(io, j, 60, 3);
    CHECK(j.size() == expected.size());
    // Before close the file may be longer (zeros after the records).
    const std::string during = read_file(path);
    REQUIRE(during.size() >= expected.size());
    CHECK(during.compare(0, expected.size(), expected) == 0);
  } catch (const std::system_error& e) {
    ::unlink(path.c_str());
    WARN("O_DIRECT not supported here: " << e.what());
    return;
  }
  CHECK(read_file(path) == expected);  // closed: truncated to the logical size
  {
    o.truncate = false;  // the partial last block is read back and extended
    rondo::journal j(io, path, o);
    CHECK(j.size() == expected.size());
    expected += append_batches(io, j, 7, 4);
  }
  CHECK(read_file(path) == expected);
  ::unlink(path.c_str());
}

TEST_CASE("journal: errors name the path and the value", "[io][journal][deterministic]") {
  rondo::io_context io;
  CHECK_THROWS_WITH(rondo::journal(io, "/nonexistent-dir/j.log"),
                    Catch::Contains("/nonexistent-dir/j.log"));
  rondo::journal_options o;
  o.direct = true;
  o.preallocate = 1000;
  CHECK_THROWS_WITH(rondo::journal(io, "/tmp/never", o), Catch::Contains("preallocate 1000"));
  o.preallocate = 4096;
  o.staging = 4096;
  CHECK_THROWS_WITH(rondo::journal(io, "/tmp/never", o), Catch::Contains("staging 4096"));
  // ENOSPC surfaces as a system_error naming the operation and path.
  rondo::journal j(io, "/dev/full");
  std::string rec = "x";
  std::vector<::iovec> iov{{rec.data(), rec.size()}};
  bool threw = false;
  bool finished = false;
  auto run = [&]() -> detached {
    try {
      co_await j.append_durable(iov);
    } catch (const std::system_error& e) {
      threw = std::string(e.what()).find("writev(/dev/full)") != std::string::npos &&
              e.code() == std::error_code(ENOSPC, std::system_category());
    }
    finished = true;
  };
  run();
  while (!finished) REQUIRE(io.run_one());
  CHECK(threw);
}
