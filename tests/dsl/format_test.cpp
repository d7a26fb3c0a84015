// rondo/format.hpp: the exact text of every formatter, on values built by hand, and the error
// for a spec a formatter does not take.
#include <rondo/format.hpp>

#include <catch2/catch.hpp>

#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

rondo::stage_metrics_snapshot plain_counters() {
  rondo::stage_metrics_snapshot m;
  m.events = 1000;
  m.batches = 10;
  m.waits = 3;
  return m;
}

rondo::stage_metrics_snapshot every_counter() {
  return {7, 2, 1, 2, 1, 1, 4, 3, 3, 1200};
}

rondo::stage_metrics_snapshot coroutine_counters() {
  rondo::stage_metrics_snapshot m;
  m.events = 999;
  m.batches = 37;
  m.waits = 12;
  m.errors_skipped = 1;
  m.suspensions = 11;
  m.resumes = 11;
  m.suspended_ns = 2'500'000;
  return m;
}

std::vector<rondo::stage_report> two_reports() {
  std::vector<rondo::stage_report> v(2);
  v[0].name = "decode";
  v[0].position = 999;
  v[0].metrics = plain_counters();
  v[1].name = "journal";
  v[1].position = 998;
  v[1].metrics = coroutine_counters();
  return v;
}

}  // namespace

TEST_CASE("stage_metrics_snapshot: one line, rarer counters only when not zero",
          "[format][deterministic]") {
  CHECK(fmt::format("{}", rondo::stage_metrics_snapshot{}) ==
        "events 0, batches 0, mean batch 0.0, waits 0");
  CHECK(fmt::format("{}", plain_counters()) ==
        "events 1000, batches 10, mean batch 100.0, waits 3");
  CHECK(fmt::format("{}", every_counter()) ==
        "events 7, batches 2, mean batch 3.5, waits 1, skipped 2, tombstones 1, rewinds 1, "
        "spins succeeded 4, suspensions 3, resumes 3, suspended 1200 ns");
}

TEST_CASE("stage_metrics_snapshot {:t}: one line per counter", "[format][deterministic]") {
  CHECK(fmt::format("{:t}", every_counter()) ==
        "events                     7\n"
        "batches                    2\n"
        "mean batch               3.5\n"
        "waits                      1\n"
        "errors skipped             2\n"
        "tombstones                 1\n"
        "rewinds                    1\n"
        "spins succeeded            4\n"
        "suspensions                3\n"
        "resumes                    3\n"
        "suspended ns            1200");
}

TEST_CASE("stage_report: name, position, metrics; {:t} a table of one", "[format][deterministic]") {
  const auto v = two_reports();
  CHECK(fmt::format("{}", v[0]) ==
        "decode at 999: events 1000, batches 10, mean batch 100.0, waits 3");
  rondo::stage_report fresh;
  fresh.name = "audit";
  CHECK(fmt::format("{}", fresh) == "audit at -1: events 0, batches 0, mean batch 0.0, waits 0");
  CHECK(fmt::format("{:t}", v[0]) ==
        "stage   position     events   batches mean batch    waits  skipped suspensions  resumes "
        "suspended ms\n"
        "decode       999       1000        10      100.0        3        0           0        0 "
        "         0.0");
}

TEST_CASE("vector<stage_report> (disruptor::metrics()): lines, or the table with {:t}",
          "[format][deterministic]") {
  const auto v = two_reports();
  CHECK(fmt::format("{}", v) ==
        "decode at 999: events 1000, batches 10, mean batch 100.0, waits 3\n"
        "journal at 998: events 999, batches 37, mean batch 27.0, waits 12, skipped 1, "
        "suspensions 11, resumes 11, suspended 2500000 ns");
  CHECK(fmt::format("{:t}", v) ==
        "stage    position     events   batches mean batch    waits  skipped suspensions  resumes "
        "suspended ms\n"
        "decode        999       1000        10      100.0        3        0           0        0 "
        "         0.0\n"
        "journal       998        999        37       27.0       12        1          11       11 "
        "         2.5");
  // No stages: nothing, or the header alone (the name column as wide as "stage").
  CHECK(fmt::format("{}", std::vector<rondo::stage_report>{}).empty());
  CHECK(fmt::format("{:t}", std::vector<rondo::stage_report>{}) ==
        "stage  position     events   batches mean batch    waits  skipped suspensions  resumes "
        "suspended ms");
}

TEST_CASE("close_report and stage_error", "[format][deterministic]") {
  CHECK(fmt::format("{}", rondo::close_report{1000, 10, 1}) ==
        "published 1000, unprocessed 10, failed stages 1");
  const rondo::stage_error e("decode", 7, std::make_exception_ptr(std::runtime_error("boom")));
  CHECK(fmt::format("{}", e) == "stage 'decode' failed at sequence 7: boom");
  CHECK(fmt::format("{}", rondo::stage_error("match", 0, nullptr)) ==
        "stage 'match' failed at sequence 0: unknown exception");
}

TEST_CASE("enumerations print their names and take string specs", "[format][deterministic]") {
  CHECK(fmt::format("{} {} {} {}", rondo::wait_status::ready, rondo::wait_status::stopped,
                    rondo::wait_status::timed_out, rondo::wait_status::cancelled) ==
        "ready stopped timed_out cancelled");
  CHECK(fmt::format("{} {} {}", rondo::claim_status::granted, rondo::claim_status::full,
                    rondo::claim_status::closed) == "granted full closed");
  CHECK(fmt::format("{} {} {} {}", rondo::poll_state::processing, rondo::poll_state::gating,
                    rondo::poll_state::idle, rondo::poll_state::stopped) ==
        "processing gating idle stopped");
  CHECK(fmt::format("{} {}", rondo::producer_type::single, rondo::producer_type::multi) ==
        "single multi");
  CHECK(fmt::format("{} {}", rondo::placement::colocate, rondo::placement::round_robin) ==
        "colocate round_robin");
  CHECK(fmt::format("{} {} {}", rondo::wait_moment::upstream_behind, rondo::wait_moment::ring_idle,
                    rondo::wait_moment::ring_full) == "upstream_behind ring_idle ring_full");
  CHECK(fmt::format("[{:>9}|{:<6}]", rondo::wait_status::ready, rondo::claim_status::full) ==
        "[    ready|full  ]");
}

TEST_CASE("barrier_wait_result", "[format][deterministic]") {
  CHECK(fmt::format("{}", rondo::barrier_wait_result{41, rondo::wait_status::ready}) ==
        "available 41, ready");
  CHECK(fmt::format("{}", rondo::barrier_wait_result{-1, rondo::wait_status::timed_out}) ==
        "available -1, timed_out");
}

TEST_CASE("claim and batch print their sequence ranges", "[format][deterministic]") {
  auto d = rondo::disruptor<int>::builder()
               .capacity(8)
               .stage("s", [](int&, std::int64_t, bool) {})
               .build();
  {
    auto c = d.publisher().reserve(4);
    CHECK(fmt::format("{}", c) == "claim [0, 3], 4 slots");
    c.publish();
  }
  auto one = d.publisher().reserve(1);
  CHECK(fmt::format("{}", one) == "claim [4, 4], 1 slot");
  one.publish();

  rondo::ring_buffer<int> ring(8);
  CHECK(fmt::format("{}", rondo::batch<int>(ring, 5, 8)) == "batch [5, 8], 4 events");
  CHECK(fmt::format("{}", rondo::batch<int>(ring, 9, 9)) == "batch [9, 9], 1 event");
  CHECK(fmt::format("{}", rondo::batch<int>(ring, 5, 4)) == "batch [5, 4], 0 events");
}

TEST_CASE("park_lot prints its statistics", "[format][deterministic]") {
  rondo::park_lot lot([](void*) noexcept {}, nullptr);
  CHECK(fmt::format("{}", lot) == "parks 0, sleep fences 0");
}

TEST_CASE("a spec a formatter does not take throws fmt::format_error naming it",
          "[format][deterministic]") {
  const auto v = two_reports();
  CHECK_THROWS_AS(fmt::format(fmt::runtime("{:x}"), v), fmt::format_error);
  CHECK_THROWS_WITH(fmt::format(fmt::runtime("{:x}"), v),
                    "rondo: unknown format spec 'x' for std::vector<rondo::stage_report> (it "
                    "takes '{}' or '{:t}')");
  CHECK_THROWS_WITH(fmt::format(fmt::runtime("{:tt}"), v[0]),
                    "rondo: unknown format spec 'tt' for rondo::stage_report (it takes '{}' or "
                    "'{:t}')");
  CHECK_THROWS_WITH(fmt::format(fmt::runtime("{:>20}"), plain_counters()),
                    Catch::Contains("unknown format spec '>20' for rondo::stage_metrics_snapshot"));
  CHECK_THROWS_WITH(fmt::format(fmt::runtime("{:t}"), rondo::close_report{}),
                    "rondo: unknown format spec 't' for rondo::close_report (it takes '{}' only)");
  CHECK_THROWS_AS(fmt::format(fmt::runtime("{:t}"), rondo::barrier_wait_result{}),
                  fmt::format_error);
  CHECK_THROWS_AS(fmt::format(fmt::runtime("{:d}"), rondo::wait_status::ready),
                  fmt::format_error);
}
