// order_flow: the current flagship demo (until the io_uring order-entry server lands). Two
// producer threads publish orders into one ring; five stages form a diamond-shaped DAG:
//
//   producers ─▶ decode ─┬─▶ risk ──▶ match ─┬─▶ reply
//                        └─▶ journal ────────┘
//
// match keeps a tiny price-time book per side and fills crossing orders; journal folds every
// order into a running checksum and "flushes" at end_of_batch; reply measures the latency from
// publish to reply. The demo runs for a few seconds, then drains and prints throughput, a latency
// histogram and per-stage metrics, and checks that every order went through every stage once.
//
//   usage: rondo_example_order_flow [--seconds S] [--wait yield|block|sleep|spin] [--capacity N]
//                                   [--rate ORDERS_PER_SECOND]   (0: as fast as possible)
#include <rondo/rondo.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

struct order {
  std::int64_t id = 0;
  std::int64_t raw = 0;  // "wire" encoding: side | price | qty packed, decoded by the decode stage
  std::int64_t side = 0, price = 0, qty = 0;
  std::int64_t filled = 0;
  bool risk_ok = false;
  std::int64_t published_ns = 0;
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch())
      .count();
}

// Resting quantity at each price level, one array per side: a toy book that is enough to make
// the match stage do real work per order.
struct book {
  static constexpr std::int64_t levels = 64;
  std::int64_t bids[levels] = {}, asks[levels] = {};
  std::int64_t fills = 0;

  std::int64_t match(order& o) {
    std::int64_t left = o.qty;
    std::int64_t* other = o.side == 0 ? asks : bids;
    std::int64_t* mine = o.side == 0 ? bids : asks;
    // A buy crosses asks at or below its price, a sell crosses bids at or above.
    for (std::int64_t p = 0; p < levels && left > 0; ++p) {
      const std::int64_t level = o.side == 0 ? p : levels - 1 - p;
      if ((o.side == 0 && level > o.price) || (o.side == 1 && level < o.price)) break;
      const std::int64_t take = std::min(left, other[level]);
      other[level] -= take;
      left -= take;
    }
    mine[o.price] += left;
    fills += o.qty - left;
    return o.qty - left;
  }
};

struct histogram {
  // Buckets by powers of two of nanoseconds: [2^k, 2^(k+1)).
  std::int64_t buckets[40] = {};
  std::int64_t count = 0, max = 0;
  void add(std::int64_t ns) {
    const int b = ns <= 1 ? 0 : 63 - __builtin_clzll(static_cast<unsigned long long>(ns));
    ++buckets[std::min(b, 39)];
    ++count;
    max = std::max(max, ns);
  }
  std::int64_t percentile(double q) const {
    const auto target = static_cast<std::int64_t>(q * static_cast<double>(count));
    std::int64_t seen = 0;
    for (int b = 0; b < 40; ++b) {
      seen += buckets[b];
      if (seen > target) return std::int64_t{2} << b;  // upper edge of the bucket
    }
    return max;
  }
};

rondo::wait_config parse_wait(const std::string& w) {
  if (w == "block") return rondo::blocking{};
  if (w == "sleep") return rondo::sleeping{};
  if (w == "spin") return rondo::busy_spin{};
  if (w == "yield") return rondo::yielding{};
  throw std::invalid_argument(fmt::format("--wait {}: expected yield, block, sleep or spin", w));
}

}  // namespace

int main(int argc, char** argv) try {
  double seconds = 3;
  std::string wait = "yield";
  std::int64_t capacity = 1 << 14;
  double rate = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      fmt::print("usage: rondo_example_order_flow [--seconds S] [--wait yield|block|sleep|spin] "
                 "[--capacity N] [--rate ORDERS_PER_SECOND (0: unlimited)]\n");
      return 0;
    }
    if (i + 1 >= argc) throw std::invalid_argument(fmt::format("{}: missing value", a));
    const std::string v = argv[++i];
    if (a == "--seconds") seconds = std::stod(v);
    else if (a == "--wait") wait = v;
    else if (a == "--capacity") capacity = std::stoll(v);
    else if (a == "--rate") rate = std::stod(v);
    else throw std::invalid_argument(fmt::format("unknown option {} (try --help)", a));
  }

  book bk;
  histogram latency;
  std::int64_t journal_sum = 0, journal_flushes = 0, replies = 0, rejected = 0;
  std::int64_t reply_fills = 0;

  auto d = rondo::disruptor<order>::builder()
               .capacity(capacity)
               .producers(rondo::producer_type::multi)
               .wait(parse_wait(wait))
               .metrics()
               .stage("decode",
                      [](order& o, std::int64_t, bool) {
                        o.side = o.raw & 1;
                        o.price = (o.raw >> 1) & 63;
                        o.qty = 1 + ((o.raw >> 7) & 15);
                      })
               .stage("risk",
                      [](order& o, std::int64_t, bool) { o.risk_ok = o.qty * o.price < 900; },
                      rondo::after("decode"))
               .stage("journal",
                      [&](order& o, std::int64_t seq, bool end_of_batch) {
                        journal_sum += o.id ^ seq;
                        if (end_of_batch) ++journal_flushes;
                      },
                      rondo::after("decode"))
               .stage("match",
                      [&](order& o, std::int64_t, bool) {
                        o.filled = o.risk_ok ? bk.match(o) : 0;
                      },
                      rondo::after("risk"))
               .stage("reply",
                      [&](order& o, std::int64_t, bool) {
                        if (!o.risk_ok) ++rejected;
                        reply_fills += o.filled;
                        ++replies;
                        latency.add(now_ns() - o.published_ns);
                      },
                      rondo::after("journal", "match"))
               .build();
  d.start();

  std::atomic<bool> stop{false};
  std::vector<std::int64_t> sent(2, 0);
  std::vector<std::thread> producers;
  const auto start = clock_type::now();
  for (int p = 0; p < 2; ++p) {
    producers.emplace_back([&, p] {
      std::uint64_t x = 0x9E3779B97F4A7C15ULL * static_cast<std::uint64_t>(p + 1);
      // With a rate, each producer sends one order every `gap` (open loop), else 8 at a time.
      const std::int64_t per_claim = rate > 0 ? 1 : 8;
      const auto gap = std::chrono::nanoseconds(rate > 0 ? static_cast<std::int64_t>(2e9 / rate) : 0);
      auto due = clock_type::now();
      // Relaxed: a stop request; nothing is read on the strength of it.
      while (!stop.load(std::memory_order_relaxed)) {
        if (rate > 0) {
          due += gap;
          while (clock_type::now() < due) std::this_thread::yield();
        }
        auto c = d.publisher().reserve(per_claim);
        for (auto [seq, o] : c) {
          x ^= x << 13, x ^= x >> 7, x ^= x << 17;
          o.id = seq;
          o.raw = static_cast<std::int64_t>(x & 0x7ff);
          o.published_ns = now_ns();
        }
        c.publish();
        sent[static_cast<std::size_t>(p)] += per_claim;
      }
    });
  }
  for (int tick = 1; clock_type::now() - start < std::chrono::duration<double>(seconds); ++tick) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    fmt::print("  {:.1f}s: {} orders replied\n", 0.5 * tick, d.metrics("reply").position + 1);
  }
  // Relaxed: see the producers' loop.
  stop.store(true, std::memory_order_relaxed);
  for (auto& t : producers) t.join();
  d.drain();
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();

  const std::int64_t total = sent[0] + sent[1];
  fmt::print("\norders: {} in {:.2f} s = {:.1f} M orders/s (wait: {}, ring {}, 2 producers, "
             "5 stages, {} cores)\n",
             total, elapsed, static_cast<double>(total) / elapsed / 1e6, wait, capacity,
             std::thread::hardware_concurrency());
  fmt::print("filled qty {}, rejected {}, journal flushes {}\n", reply_fills, rejected,
             journal_flushes);
  fmt::print("publish -> reply latency: p50 {} ns, p90 {} ns, p99 {} ns, p99.9 {} ns, max {} ns "
             "(bucket upper edges)\n",
             latency.percentile(0.5), latency.percentile(0.9), latency.percentile(0.99),
             latency.percentile(0.999), latency.max);
  // rondo/format.hpp's metrics table: a header row, one row per stage.
  fmt::print("\n{:t}\n", d.metrics());
  bool ok = replies == total && bk.fills == reply_fills;
  for (const auto& r : d.metrics()) ok = ok && r.metrics.events == total && r.position == total - 1;
  if (!ok) {
    fmt::print(stderr, "FAILED: {} orders sent, {} replied\n", total, replies);
    return 1;
  }
  fmt::print("\nevery order went through every stage exactly once\n");
} catch (const std::exception& e) {
  fmt::print(stderr, "order_flow: {}\n", e.what());
  return 2;
}
