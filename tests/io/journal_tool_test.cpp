// rondo-journal (tools/rondo_journal.cpp): verify, dump and tail agree with the journal; bad
// arguments print the usage and exit 2; damage exits 1 naming the place.

#include <rondo/io/journal.hpp>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#ifdef RONDO_JOURNAL_TOOL

namespace {

struct outcome {
  int code = -1;
  std::string out;  // stdout and stderr
};

outcome tool(const std::string& args) {
  outcome o;
  const std::string cmd = fmt::format("'{}' {} 2>&1", RONDO_JOURNAL_TOOL, args);
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), buf.size(), p) != nullptr) o.out += buf.data();
  const int status = ::pclose(p);
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

// Appends one record per string, as one append.
void append(rondo::io_context& io, rondo::journal& j, std::vector<std::string> recs) {
  std::vector<::iovec> iov;
  for (auto& r : recs) iov.push_back({r.data(), r.size()});
  bool finished = false;
  std::exception_ptr error;
  auto body = [&]() -> rondo::detached {
    try {
      co_await j.append_durable(iov);
    } catch (...) {
      error = std::current_exception();
    }
    finished = true;
  };
  body();
  while (!finished) REQUIRE(io.run_one());
  if (error) std::rethrow_exception(error);
}

}  // namespace

TEST_CASE("rondo-journal: verify, dump, tail, usage", "[io][journal][tool]") {
  char name[] = "/tmp/rondo-journal-tool-XXXXXX";
  REQUIRE(::mkdtemp(name) != nullptr);
  const std::string root = name;
  const std::string dir = root + "/j";
  {
    rondo::io_context io;
    rondo::journal_options o;
    o.segment_bytes = 4096;
    rondo::journal j(io, dir, o);
    for (int b = 0; b < 30; ++b) {
      std::vector<std::string> recs;
      for (int i = 0; i < 4; ++i)
        recs.push_back(fmt::format("order {} {}", j.next_sequence() + i, std::string(60, 'q')));
      append(io, j, recs);
    }
    append(io, j, {std::string("a\nb\\c\x01", 6)});
  }
  auto v = tool("verify " + dir);
  CHECK(v.code == 0);
  CHECK_THAT(v.out, Catch::Contains("121 records verified") && Catch::Contains("clean"));

  auto d = tool("dump " + dir + " --from 117");
  CHECK(d.code == 0);
  CHECK(d.out == fmt::format("117 70 order 117 {0}\n118 70 order 118 {0}\n119 70 order 119 {0}\n"
                             "120 6 a\\x0ab\\x5cc\\x01\n",
                             std::string(60, 'q')));
  auto t = tool("tail " + dir + " -n 2 --hex");
  CHECK(t.code == 0);
  CHECK_THAT(t.out, Catch::StartsWith("119 70 6f72646572203131392071") &&
                        Catch::EndsWith("120 6 610a625c6301\n"));
  CHECK(tool("tail " + dir).out.find("111 70 order 111") == 0);

  for (const char* bad :
       {"", "verify", "frobnicate ", "dump /x --from abc", "tail /x -n", "verify /x --hex"}) {
    const std::string args = std::string(bad) + (std::string(bad) == "frobnicate " ? dir : "");
    auto u = tool(args);
    INFO(args);
    CHECK(u.code == 2);
    CHECK_THAT(u.out, Catch::Contains("usage: rondo-journal verify DIR"));
  }
  // tail after a crash while rolling (a last segment without its header): the records before it.
  {
    const std::string empty = dir + "/" + rondo::journal_format::segment_name(121);
    { std::ofstream f(empty); }
    REQUIRE(std::filesystem::exists(empty));
    CHECK(tool("tail " + dir + " -n 1").out == "120 6 a\\x0ab\\x5cc\\x01\n");
    std::filesystem::remove(empty);
  }
  // A torn tail: verify says what recovery would drop (exit 1), dump stops before it.
  const auto segs = rondo::detail::list_segments(dir);
  const std::string lastp = dir + "/" + segs.back().second;
  std::filesystem::resize_file(lastp, std::filesystem::file_size(lastp) - 3);
  v = tool("verify " + dir);
  CHECK(v.code == 1);
  CHECK_THAT(v.out, Catch::Contains("would drop") && Catch::Contains("torn tail"));
  d = tool("dump " + dir + " --from 119");
  CHECK(d.code == 0);
  CHECK_THAT(d.out, Catch::StartsWith("119 70") && Catch::Contains("torn tail of"));
  // A flipped bit in the middle: exit 1 naming the segment and offset.
  const std::string firstp = dir + "/" + segs.front().second;
  {
    std::fstream f(firstp, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(32 + 16 + 3);
    f.put('Z');
  }
  v = tool("verify " + dir);
  CHECK(v.code == 1);
  CHECK_THAT(v.out, Catch::Contains(firstp) && Catch::Contains("offset 32") &&
                        Catch::Contains("sequence 0"));
  CHECK(tool("dump " + dir).code == 1);
  CHECK(tool("verify " + root + "/missing").code == 1);
  std::filesystem::remove_all(root);
}

#endif
