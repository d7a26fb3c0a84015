// journal: an async file stage. Trades are journalled (one record per trade, framed with its
// sequence and a CRC32C, one write + fdatasync per batch through rondo::journal on an io_context)
// before a "settle" stage sees them: a stage's sequence advances only when its handler's task
// completes, so "settle" never handles a trade that is not on disk. After the drain the journal
// is read back with rondo::journal_reader: every trade once, in order, intact.
//
//   producer ──▶ journal (async: append_durable) ──▶ settle (counts, checks it is durable)
//
// Usage: rondo_example_journal [--direct]   (--direct: O_DIRECT into pre-allocated segments)
// Exit codes: 0 verified, 1 wrong or failed (the message says why), 77 io_uring unavailable.
#include <rondo/rondo.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

struct trade {
  std::uint64_t id = 0;
  std::uint64_t price = 0;
  std::uint64_t qty = 0;
};

namespace {

int run(bool direct) {
  constexpr std::uint64_t n = 100'000;
  const std::string dir = "rondo-example-journal";
  rondo::runtime rt(1);
  rondo::journal_options jo;
  jo.direct = direct;
  jo.mode = rondo::open_mode::truncate;  // a demo: start empty (the default recovers instead)
  jo.segment_bytes = 1 << 20;            // several segments, to show the roll
  auto j = std::make_unique<rondo::journal>(rt.context(0), dir, jo);  // appends run there

  std::uint64_t settled = 0;
  std::uint64_t not_durable = 0;
  std::vector<::iovec>
      iov;  // one record per trade; reused, the journal stage runs one batch at a time
  auto d = rondo::disruptor<trade>::builder()
               .capacity(4096)
               .metrics()
               .executor(rt)
               .stage("journal",
                      [&j, &iov](rondo::batch<trade> b) -> rondo::task<> {
                        iov.clear();
                        for (trade& t : b) iov.push_back({&t, sizeof t});
                        co_await j->append_durable(iov);  // write + fdatasync
                      })
               .stage(
                   "settle",
                   [&](trade& t, std::int64_t, bool) {
                     ++settled;
                     // Record t.id has sequence t.id: the journal holds it already.
                     if (static_cast<std::int64_t>(t.id) >= j->next_sequence()) ++not_durable;
                   },
                   rondo::after("journal"))
               .build();
  d.start();
  for (std::uint64_t i = 0; i < n; i += 16) {
    auto c = d.publisher().reserve(16);
    for (auto [seq, t] : c) {
      const auto s = static_cast<std::uint64_t>(seq);
      t = {s, 100 + s % 7, 1 + s % 5};
    }
    c.publish();
  }
  d.drain();
  const auto m = d.metrics();
  const std::uint64_t syncs = j->syncs();
  const std::uint64_t rolls = j->rolls();
  j.reset();  // closes the segment (a direct one is truncated to its logical size)

  // Read it back as a restarting service would: verified records from a sequence.
  std::uint64_t read = 0;
  bool ok = settled == n && not_durable == 0;
  rondo::journal_reader reader(dir);
  while (auto rec = reader.next()) {
    trade t;
    if (rec->payload.size() != sizeof t) {
      ok = false;
      break;
    }
    std::memcpy(&t, rec->payload.data(), sizeof t);
    ok = ok && rec->sequence == static_cast<std::int64_t>(read) && t.id == read &&
         t.price == 100 + read % 7;
    ++read;
  }
  ok = ok && read == n;
  fmt::print(
      "{} journal: {} trades in {} fdatasyncs (mean batch {:.1f}), {} segment rolls, "
      "settled {}, read back: {}\n",
      direct ? "O_DIRECT" : "buffered", n, syncs, m[0].metrics.mean_batch(), rolls, settled,
      ok ? "every trade once, in order, CRC-verified" : "NO");
  fmt::print("{}\n", rondo::verify_journal(dir));
  std::filesystem::remove_all(dir);
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const bool direct = argc > 1 && std::strcmp(argv[1], "--direct") == 0;
  try {
    rondo::io_context probe;
  } catch (const std::system_error& e) {
    fmt::print(stderr, "rondo_example_journal: io_uring is unavailable here ({}): skipped\n",
               e.what());
    return 77;
  }
  try {
    return run(direct);
  } catch (const std::exception& e) {
    fmt::print(stderr, "rondo_example_journal: {}\n", e.what());
    return 1;
  }
}
