// metrics: what a running disruptor can tell you, and stopping it with close().
//  - builder().metrics() turns on per-stage counters; d.metrics() reads them from any thread:
//    events, batches (and so the mean batch size), and how often the stage waited.
//  - "parse" throws on malformed events; stage_options{.errors = error_policy::skip()} counts
//    them (errors_skipped) and goes on instead of halting the disruptor.
//  - close() stops the stages without waiting for the laggards and returns a close_report: here
//    the "audit" poller handles only part of the stream, so some events stay unprocessed.
#include <rondo/rondo.hpp>

#include <chrono>
#include <cstdint>
#include <iomanip>
#include <iostream>
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
    throw std::invalid_argument("no stage " + std::string(name));
  };
  // Wait until the thread stages caught up, so the report below is exact.
  while (report_of("total").position < n - 1) {
    std::this_thread::sleep_for(std::chrono::microseconds{50});
  }

  std::cout << std::left << std::setw(7) << "stage" << std::right << std::setw(9) << "position"
            << std::setw(8) << "events" << std::setw(9) << "batches" << std::setw(11)
            << "mean batch" << std::setw(7) << "waits" << std::setw(9) << "skipped\n";
  for (const auto& s : d.metrics()) {
    if (s.name == "audit") {  // a poller stage keeps no counters
      std::cout << std::left << std::setw(7) << s.name << std::right << std::setw(9) << s.position
                << "  (poller: no counters)\n";
      continue;
    }
    const auto& m = s.metrics;
    std::cout << std::left << std::setw(7) << s.name << std::right << std::setw(9) << s.position
              << std::setw(8) << m.events << std::setw(9) << m.batches << std::setw(11)
              << std::fixed << std::setprecision(1) << m.mean_batch() << std::setw(7) << m.waits
              << std::setw(8) << m.errors_skipped << '\n';
  }

  const rondo::close_report report = d.close();
  std::cout << "close(): " << report.published << " published, " << report.unprocessed
            << " not processed by every stage\n";

  const rondo::stage_metrics_snapshot parse = report_of("parse").metrics;
  const std::int64_t errors = n / 100, expected_total = n * (n - 1) - 2 * (99 + 999) * errors / 2;
  if (parse.events != n || parse.errors_skipped != errors || good != n - errors ||
      total != expected_total || report.published != n || report.unprocessed != n - audit_only) {
    std::cerr << "wrong result: expected " << errors << " skipped errors, total " << expected_total
              << ", " << n - audit_only << " unprocessed\n";
    return 1;
  }
}
