// rondo-journal: look at a rondo journal directory from the shell.
//
//   rondo-journal verify DIR                 every record of every segment; exit 0 when clean,
//                                            1 when recovery would drop something or cannot
//   rondo-journal dump DIR [--from SEQ] [--hex]   one line per record: sequence, length, payload
//   rondo-journal tail DIR [-n N]            the last N records (10), as dump prints them
//
// Exit codes: 0 done, 1 the journal is damaged or unreadable (the message says where), 2 bad
// arguments (usage on stderr). It only reads: recovery happens when a journal opens.

#include <rondo/io/format.hpp>
#include <rondo/io/journal_reader.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::string_view usage_text =
    "usage: rondo-journal verify DIR\n"
    "       rondo-journal dump DIR [--from SEQ] [--hex]\n"
    "       rondo-journal tail DIR [-n N]\n";

int usage(std::string_view why) {
  fmt::print(stderr, "rondo-journal: {}\n{}", why, usage_text);
  return 2;
}

bool parse_int(std::string_view s, std::int64_t& out) {
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size();
}

void print_record(const rondo::record_view& r, bool hex) {
  std::string text;
  text.reserve(r.payload.size() * (hex ? 2 : 1));
  for (std::byte b : r.payload) {
    const auto c = static_cast<unsigned char>(b);
    if (hex) {
      fmt::format_to(std::back_inserter(text), "{:02x}", c);
    } else if (c >= 0x20 && c < 0x7f && c != '\\') {
      text.push_back(static_cast<char>(c));
    } else {
      fmt::format_to(std::back_inserter(text), "\\x{:02x}", c);
    }
  }
  fmt::print("{} {} {}\n", r.sequence, r.payload.size(), text);
}

int dump(const std::string& dir, std::int64_t from, bool hex) {
  rondo::journal_reader r(dir, from);
  while (auto rec = r.next()) print_record(*rec, hex);
  if (r.torn_bytes() > 0) {
    std::fflush(stdout);  // the records first, then the note, when both go to one pipe
    fmt::print(stderr,
               "rondo-journal: torn tail of {} bytes after sequence {} (opening the "
               "journal drops it)\n",
               r.torn_bytes(), r.position() - 1);
  }
  return 0;
}

int tail(const std::string& dir, std::int64_t n, bool hex) {
  const auto segs = rondo::detail::list_segments(dir);
  if (segs.empty()) return 0;
  // Sequences are consecutive: the end found in the last segment says where the last n start.
  rondo::journal_reader last(dir, segs.back().first);
  while (last.next()) {
  }
  const std::int64_t from = std::max(segs.front().first, last.position() - n);
  return dump(dir, from, hex);
}

int run(int argc, char** argv) {
  if (argc < 3) return usage("missing command or directory");
  const std::string_view cmd = argv[1];
  const std::string dir = argv[2];
  std::int64_t from = std::numeric_limits<std::int64_t>::min();
  std::int64_t n = 10;
  bool hex = false;
  for (int i = 3; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--hex" && cmd != "verify") {
      hex = true;
    } else if (a == "--from" && cmd == "dump" && i + 1 < argc) {
      if (!parse_int(argv[++i], from)) return usage(fmt::format("bad sequence '{}'", argv[i]));
    } else if (a == "-n" && cmd == "tail" && i + 1 < argc) {
      if (!parse_int(argv[++i], n) || n < 0) return usage(fmt::format("bad count '{}'", argv[i]));
    } else {
      return usage(fmt::format("unexpected argument '{}'", a));
    }
  }
  if (cmd == "verify") {
    const rondo::recovery_report rep = rondo::verify_journal(dir);
    fmt::print("{}\n", rep);
    return rep.clean() ? 0 : 1;
  }
  if (cmd == "dump") return dump(dir, from, hex);
  if (cmd == "tail") return tail(dir, n, hex);
  return usage(fmt::format("unknown command '{}'", cmd));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "rondo-journal: {}\n", e.what());
    return 1;
  }
}
