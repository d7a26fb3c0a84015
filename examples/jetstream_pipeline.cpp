// One shard of a JetStream pipeline: input stream IN (subjects in.<shard>) -> a durable pull
// consumer -> rondo ring: compute -> sink (publishes to OUT_<shard>, Msg-Id "IN/<shard>:<seq>")
// -> ack. Run one process per shard (docs/jetstream.md, "Sharding"); kill it at any moment and
// start it again: the output holds every result once, in input order.
//
//   rondo_jetstream_pipeline --servers URLS --shard 0 [--idle-exit-ms 3000] [--ring 4096]
//                            [--give-up-ms 15000] [--input IN] [--replicas 3]
//
// Exits 0 after the input has been idle for --idle-exit-ms with every fetched event stored and
// acknowledged (0: run until SIGTERM/SIGINT); 1 with the error and the close report when the
// cluster stays unreachable past --give-up-ms; 2 for bad arguments.
#include <rondo/io/runtime.hpp>
#include <rondo/jetstream.hpp>
#include <rondo/rondo.hpp>

#include "jetstream_result.hpp"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

namespace js = rondo::jetstream;

namespace {

std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) { g_stop.store(true, std::memory_order_relaxed); }  // a flag

struct work {};  // the compute step needs no state of its own: its result is the event's `out`
using ev = js::event<work>;

struct args {
  std::string servers = "nats://127.0.0.1:4222";
  int shard = 0;
  std::string input = "IN";
  int replicas = 3;
  std::int64_t ring = 4096;
  long idle_exit_ms = 3000;
  long give_up_ms = 15000;
  bool progress = false;
};

long parse_long(const char* flag, const char* v) {
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (end == v || *end != '\0') {
    std::fprintf(stderr, "%s: not a number: '%s'\n", flag, v);
    std::exit(2);
  }
  return x;
}

args parse(int argc, char** argv) {
  args a;
  for (int i = 1; i < argc; ++i) {
    const std::string_view f = argv[i];
    if (i + 1 >= argc && f != "--progress") {
      std::fprintf(stderr, "%s needs a value\n", argv[i]);
      std::exit(2);
    }
    if (f == "--progress") {
      a.progress = true;
      continue;
    }
    const char* v = argv[++i];
    if (f == "--servers") a.servers = v;
    else if (f == "--shard") a.shard = static_cast<int>(parse_long(argv[i - 1], v));
    else if (f == "--input") a.input = v;
    else if (f == "--replicas") a.replicas = static_cast<int>(parse_long(argv[i - 1], v));
    else if (f == "--ring") a.ring = parse_long(argv[i - 1], v);
    else if (f == "--idle-exit-ms") a.idle_exit_ms = parse_long(argv[i - 1], v);
    else if (f == "--give-up-ms") a.give_up_ms = parse_long(argv[i - 1], v);
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i - 1]);
      std::exit(2);
    }
  }
  if (a.shard < 0) {
    std::fprintf(stderr, "--shard %d: must be >= 0\n", a.shard);
    std::exit(2);
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const args a = parse(argc, argv);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  const std::string shard = std::to_string(a.shard);
  try {
    js::connection conn({.servers = a.servers, .name = "rondo-shard-" + shard});
    conn.ensure_stream({.name = a.input, .subjects = {"in.*"}, .replicas = a.replicas});
    conn.ensure_stream({.name = "OUT_" + shard, .subjects = {"out." + shard},
                        .replicas = a.replicas});
    js::publish_sink out(conn, {.stream = "OUT_" + shard,
                                .subject = "out." + shard,
                                .msg_id_prefix = a.input + "/" + shard});
    js::pull_source source(conn, {.stream = a.input,
                                  .durable = "rondo-shard-" + shard,
                                  .filter_subject = "in." + shard,
                                  .give_up_after = std::chrono::milliseconds(a.give_up_ms),
                                  .start_after = out.last_stored_input()});
    js::sink<work> sink(out, {.give_up_after = std::chrono::milliseconds(a.give_up_ms)});
    std::printf("shard %d: resuming input at stream sequence %llu; output holds input up to %llu\n",
                a.shard, static_cast<unsigned long long>(source.started_at()),
                static_cast<unsigned long long>(out.last_stored_input()));
    std::fflush(stdout);

    rondo::runtime rt(1);
    auto d = rondo::disruptor<ev>::builder()
                 .capacity(a.ring)
                 .wait(rondo::spin_then_suspend{})
                 .executor(rt)
                 .stage("compute",
                        [](ev& e, std::int64_t, bool) {
                          rondo_jetstream_demo::write_result(e.out, e.in.sequence, e.in.data);
                        })
                 .stage("sink", sink.handler(), rondo::after("compute"))
                 .stage("ack", js::ack_handler<work>(source), rondo::after("sink"))
                 .build();
    d.start();
    js::source_pump<work> pump(source, {.max_fetch = 512});
    const auto t0 = std::chrono::steady_clock::now();
    pump.start(d.publisher());

    auto& pub = d.publisher();
    auto next_progress = t0;
    // Idle: no message for idle_exit_ms, and no failed fetch or consumer reset either (an
    // outage of the cluster is not the end of the input).
    std::uint64_t trouble_seen = 0;
    auto trouble_at = t0;
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (a.progress && std::chrono::steady_clock::now() >= next_progress) {
        next_progress += std::chrono::milliseconds(500);
        const auto ss = source.stats();
        const auto ks = out.stats();
        std::printf("  [%.1f s] fetched %llu, stored %llu, dup %llu, failed %llu, recoveries %llu, "
                    "resets %llu, fetch errors %llu, in ring %lld\n",
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                    static_cast<unsigned long long>(ss.fetched),
                    static_cast<unsigned long long>(ks.stored),
                    static_cast<unsigned long long>(ks.duplicates),
                    static_cast<unsigned long long>(ks.failed),
                    static_cast<unsigned long long>(ks.recoveries),
                    static_cast<unsigned long long>(ss.resets),
                    static_cast<unsigned long long>(ss.fetch_errors),
                    static_cast<long long>(a.ring - pub.remaining_capacity()));
        std::fflush(stdout);
      }
      if (pump.finished() || g_stop.load(std::memory_order_relaxed)) break;  // a flag
      if (a.idle_exit_ms > 0) {
        const auto now = std::chrono::steady_clock::now();
        const auto now_ns = now.time_since_epoch().count();
        const auto st = source.stats();
        const auto k = out.stats();
        if (st.fetch_errors + st.resets + k.failed != trouble_seen) {
          trouble_seen = st.fetch_errors + st.resets + k.failed;
          trouble_at = now;
        }
        const auto last = std::max(pump.last_message_ns(), trouble_at.time_since_epoch().count());
        const auto idle_since = last;
        if (now_ns - idle_since > a.idle_exit_ms * 1000000LL &&
            pub.remaining_capacity() == a.ring) {
          break;
        }
      }
    }
    // The pump ends on its own only when a fetch failed for good or the disruptor halted.
    const bool failed = pump.finished();
    pump.stop();
    const auto s = source.stats();
    if (failed) {
      // Failed (the pump's fetch, or a halted stage) or halted: close and report.
      const auto rep = d.close();
      std::string why;
      try {
        if (pump.failure()) std::rethrow_exception(pump.failure());
        d.join();
      } catch (const std::exception& e) {
        why = e.what();
      }
      if (!why.empty() || rep.failed_stages > 0) {
        std::printf("shard %d: FAILED: %s\n", a.shard, why.c_str());
        std::printf("close report: published %lld, unprocessed %lld (never acknowledged), "
                    "failed stages %d\n",
                    static_cast<long long>(rep.published), static_cast<long long>(rep.unprocessed),
                    rep.failed_stages);
        return 1;
      }
    } else {
      d.drain();
      d.join();
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto k = out.stats();
    std::printf(
        "shard %d: %llu events in %.2f s (incl. %.1f s idle wait); stored %llu, duplicates "
        "dropped by Msg-Id %llu, publish failures %llu, recoveries %llu; redelivered input "
        "dropped %llu, consumer resets %llu, fetch errors %llu, acks %llu\n",
        a.shard, static_cast<unsigned long long>(s.fetched), secs,
        static_cast<double>(a.idle_exit_ms) / 1000.0, static_cast<unsigned long long>(k.stored),
        static_cast<unsigned long long>(k.duplicates), static_cast<unsigned long long>(k.failed),
        static_cast<unsigned long long>(k.recoveries),
        static_cast<unsigned long long>(s.redelivered), static_cast<unsigned long long>(s.resets),
        static_cast<unsigned long long>(s.fetch_errors), static_cast<unsigned long long>(s.commits));
    return 0;
  } catch (const std::exception& e) {
    std::printf("shard %d: FAILED: %s\n", a.shard, e.what());
    return 1;
  }
}
