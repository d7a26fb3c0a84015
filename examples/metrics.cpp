// metrics: what a running disruptor can tell you, and stopping it with close().
//  - builder().metrics() turns on per-stage counters; d.metrics() reads them from any thread:
//    events, batches (and so the mean batch size), and how often the stage waited.
//  - "parse" throws on malformed events; stage_options{.errors = error_policy::skip()} counts
//    them (errors_skipped) and goes on instead of halting the disruptor.
//  - close() stops the stages without waiting for the laggards and returns a close_report: here
//    the "audit" poller handles only part of the stream, so some events stay unprocessed.
#include <rondo/rondo.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

struct record {
  std::int64_t raw = 0;
  std::int64_t parsed = -1;  // -1: parse failed
};

int main() {
  constexpr std::int64_t n = 1000, audit_only = 600;
  std::int64_t total = 0, good = 0;

  // capacity > n: the producer never has to wait for the audit poller, which lags on purpose.
  auto d = rondo::disruptor<record>::builder()
               .capacity(1024)
               .wait(rondo::blocking{})
               .metrics()
               .stage(
                   "parse",
                   [](record& r, std::int64_t, bool) {
                     r.parsed = -1;
                     if (r.raw % 100 == 99) throw std::runtime_error("malformed record");
                     r.parsed = r.raw * 2;
                   },
                   rondo::stage_options{.errors = rondo::error_policy::skip()})
               .stage(
                   "total",
                   [&](const record& r, std::int64_t, bool) {
                     if (r.parsed < 0) return;
                     total += r.parsed;
                     ++good;
                   },
                   rondo::after("parse"))
               .poller("audit", rondo::after("parse"))
               .build();
  d.start();

  for (std::int64_t i = 0; i < n; ++i) {
    d.publisher().publish_event([](record& r, std::int64_t seq) { r.raw = seq; });
  }
  // Audit only the first events: a poll stops as soon as its handler returns false.
  std::int64_t audited = 0;
  while (audited < audit_only) {
    d.poller("audit").poll([&](record&, std::int64_t, bool) { return ++audited < audit_only; });
  }
  auto report_of = [&d](std::string_view name) {
    for (auto& s : d.metrics()) {
      if (s.name == name) return s;
    }
    throw std::invalid_argument(fmt::format("no stage {}", name));
  };
  // Wait until the thread stages caught up, so the report below is exact.
  while (report_of("total").position < n - 1) {
    std::this_thread::sleep_for(std::chrono::microseconds{50});
  }

  // A table of its own rather than fmt::print("{:t}", d.metrics()): the poller's row says why
  // it has no counters.
  fmt::print("{:<7}{:>9}{:>8}{:>9}{:>11}{:>7}{:>8}\n", "stage", "position", "events", "batches",
             "mean batch", "waits", "skipped");
  for (const auto& s : d.metrics()) {
    if (s.name == "audit") {  // a poller stage keeps no counters
      fmt::print("{:<7}{:>9}  (poller: no counters)\n", s.name, s.position);
      continue;
    }
    const auto& m = s.metrics;
    fmt::print("{:<7}{:>9}{:>8}{:>9}{:>11.1f}{:>7}{:>8}\n", s.name, s.position, m.events,
               m.batches, m.mean_batch(), m.waits, m.errors_skipped);
  }

  const rondo::close_report report = d.close();
  fmt::print("close(): {} published, {} not processed by every stage\n", report.published,
             report.unprocessed);

  const rondo::stage_metrics_snapshot parse = report_of("parse").metrics;
  const std::int64_t errors = n / 100, expected_total = n * (n - 1) - 2 * (99 + 999) * errors / 2;
  if (parse.events != n || parse.errors_skipped != errors || good != n - errors ||
      total != expected_total || report.published != n || report.unprocessed != n - audit_only) {
    fmt::print(stderr, "wrong result: expected {} skipped errors, total {}, {} unprocessed\n",
               errors, expected_total, n - audit_only);
    return 1;
  }
}
