// journal: an async file stage. Trades are journalled (one writev + fdatasync per batch through
// rondo::journal on an io_context) before a "settle" stage sees them: a stage's sequence
// advances only when its handler's task completes, so "settle" never handles a trade that is
// not on disk. After the drain the file is read back: every trade once, in order.
//
//   producer ──▶ journal (async: append_durable) ──▶ settle (counts, checks it is durable)
//
// Usage: rondo_example_journal [--direct]   (--direct: O_DIRECT into a pre-allocated file)
#include <rondo/rondo.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

struct trade {
  std::uint64_t id = 0;
  std::uint64_t price = 0;
  std::uint64_t qty = 0;
};

// The batch as at most two iovecs (two when it wraps the ring's end): what writev wants.
std::vector<::iovec> as_iovecs(const rondo::batch<trade>& b) {
  std::vector<::iovec> out;
  const auto [first, second] = b.spans();
  for (auto span : {first, second}) {
    if (!span.empty()) out.push_back(::iovec{span.data(), span.size_bytes()});
  }
  return out;
}

int main(int argc, char** argv) {
  const bool direct = argc > 1 && std::strcmp(argv[1], "--direct") == 0;
  constexpr std::uint64_t n = 100'000;
  const std::string path = "rondo-example-journal.log";
  rondo::runtime rt(1);
  rondo::journal_options jo;
  jo.direct = direct;
  auto j = std::make_unique<rondo::journal>(rt.context(0), path, jo);  // appends run there

  std::uint64_t settled = 0;
  std::uint64_t not_durable = 0;
  auto d = rondo::disruptor<trade>::builder()
               .capacity(4096)
               .metrics()
               .executor(rt)
               .stage("journal",
                      [&j](rondo::batch<trade> b) -> rondo::task<> {
                        co_await j->append_durable(as_iovecs(b));  // writev + fdatasync
                      })
               .stage("settle",
                      [&](trade& t, std::int64_t, bool) {
                        ++settled;
                        // The journal's size counts this trade already.
                        if ((t.id + 1) * sizeof(trade) > j->size()) ++not_durable;
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
  j.reset();  // closes the file (a direct journal is truncated to its logical size)

  std::ifstream in(path, std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  ::unlink(path.c_str());
  bool ok = bytes.size() == n * sizeof(trade) && settled == n && not_durable == 0;
  for (std::uint64_t i = 0; ok && i < n; ++i) {
    trade t;
    std::memcpy(&t, bytes.data() + i * sizeof(trade), sizeof t);
    ok = t.id == i;
  }
  fmt::print("{} journal: {} trades in {} fdatasyncs (mean batch {:.1f}), settled {}, "
             "file verified: {}\n",
             direct ? "O_DIRECT" : "buffered", n, syncs, m[0].metrics.mean_batch(), settled,
             ok ? "every trade once, in order" : "NO");
  return ok ? 0 : 1;
}
