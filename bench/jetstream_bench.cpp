// rondo::jetstream against a plain libnats consumer/publisher, same cluster, same run, same
// durability: R3 file streams, each result published with a Msg-Id and acknowledged by the
// output stream before its input is acknowledged (AckAll on the last of each batch).
//
//   bash scripts/nats-cluster.sh start /tmp/c
//   rondo_jetstream_bench --servers "$(bash scripts/nats-cluster.sh urls /tmp/c)" [--count N]
//                         [--rate R] [--seconds S]
//
// Two phases per client, the raw client first, then rondo, then both again (alternating):
//   throughput: N messages published beforehand, then drained: events/s;
//   latency: a producer thread publishes R messages/s for S seconds with its send time in the
//            payload; latency = send -> the result stored (raw: after its batch's acks;
//            rondo: in the ack stage, which runs after the sink's acks): p50 / p99.
// The raw client is one loop: fetch up to 512 -> compute -> publish each result async ->
// wait for the batch's acks -> ack the last input. rondo is source_pump -> compute -> sink ->
// ack on a one-context runtime (the fetch of the next batch overlaps the publish of this one).
#include <rondo/io/runtime.hpp>
#include <rondo/jetstream.hpp>
#include <rondo/rondo.hpp>

#include "jetstream_result.hpp"

#include <fmt/format.h>

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace js = rondo::jetstream;
using clk = std::chrono::steady_clock;

namespace {

std::int64_t now_ns() { return clk::now().time_since_epoch().count(); }

std::int64_t sent_at(std::string_view payload) {
  std::int64_t t = 0;
  std::from_chars(payload.data(), payload.data() + payload.size(), t);
  return t;
}

struct result {
  double events_per_s = 0;
  double p50_us = 0, p99_us = 0;
};

// Publishes `count` messages on `subject`, at `rate` per second (0: as fast as acks allow), each
// with its send time first in the payload.
void produce(jsCtx* j, const std::string& subject, long count, long rate) {
  const auto t0 = clk::now();
  for (long i = 0; i < count; ++i) {
    if (rate > 0) {
      const auto due = t0 + std::chrono::nanoseconds(i * 1000000000LL / rate);
      std::this_thread::sleep_until(due);
    }
    const std::string data = fmt::format("{} order {}: 100 @ {}", now_ns(), i, 1000 + i % 97);
    while (js_PublishAsync(j, subject.c_str(), data.data(), static_cast<int>(data.size()),
                           nullptr) != NATS_OK) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 60000;
  js_PublishAsyncComplete(j, &po);
}

std::pair<double, double> percentiles(std::vector<std::int64_t>& v) {
  if (v.empty()) return {0, 0};
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    return static_cast<double>(v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))]) / 1000.0;
  };
  return {at(0.50), at(0.99)};
}

// ---- the raw libnats client
std::atomic<long> g_raw_acked{0};
void raw_ack(jsCtx*, natsMsg* m, jsPubAck*, jsPubAckErr* pae, void*) {
  if (pae != nullptr) std::fprintf(stderr, "raw: publish failed: %s\n", natsStatus_GetText(pae->Err));
  natsMsg_Destroy(m);
  g_raw_acked.fetch_add(1, std::memory_order_relaxed);  // a counter
}

result run_raw(js::connection& conn, const std::string& tag, long count, long rate, bool timed) {
  const std::string in_subject = "bin." + tag, out_stream = "BOUT_" + tag;
  conn.ensure_stream({.name = out_stream, .subjects = {"bout." + tag}});
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = 65536;
  jo.PublishAsync.AckHandler = &raw_ack;
  jsCtx* j = nullptr;
  natsConnection_JetStream(&j, static_cast<natsConnection*>(conn.native_connection()), &jo);
  jsCtx* pj = nullptr;
  natsConnection_JetStream(&pj, static_cast<natsConnection*>(conn.native_connection()), nullptr);
  if (!timed) produce(pj, in_subject, count, 0);

  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.ManualAck = true;
  so.Config.AckPolicy = js_AckAll;
  so.Config.MaxAckPending = 65536;
  natsSubscription* sub = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const std::string durable = "braw-" + tag;
  if (js_PullSubscribe(&sub, j, in_subject.c_str(), durable.c_str(), nullptr, &so, &code) !=
      NATS_OK) {
    throw js::error("raw: pull subscribe failed");
  }
  std::thread producer;
  if (timed) producer = std::thread([&] { produce(pj, in_subject, count, rate); });
  std::vector<std::int64_t> lat;
  lat.reserve(static_cast<std::size_t>(count));
  long done = 0;
  std::string out;
  char id[64];
  const auto t0 = clk::now();
  while (done < count) {
    natsMsgList list{nullptr, 0};
    natsSubscription_Fetch(&list, sub, 512, 100, &code);
    if (list.Count == 0) continue;
    std::vector<std::int64_t> sent;
    for (int i = 0; i < list.Count; ++i) {
      natsMsg* m = list.Msgs[i];
      const std::string_view data(natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m)));
      const std::uint64_t seq = natsMsg_GetSequence(m);
      rondo_jetstream_demo::write_result(out, seq, data);
      *fmt::format_to_n(id, sizeof id - 1, "raw/{}:{}", tag, seq).out = '\0';
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MsgId = id;
      const std::string subj = "bout." + tag;
      js_PublishAsync(j, subj.c_str(), out.data(), static_cast<int>(out.size()), &po);
      sent.push_back(sent_at(data));
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 30000;
    js_PublishAsyncComplete(j, &po);  // the batch's results are stored
    const std::int64_t t = now_ns();
    for (std::int64_t s : sent) lat.push_back(t - s);
    natsMsg_Ack(list.Msgs[list.Count - 1], nullptr);
    done += list.Count;
    natsMsgList_Destroy(&list);
  }
  const double secs = std::chrono::duration<double>(clk::now() - t0).count();
  if (producer.joinable()) producer.join();
  natsSubscription_Destroy(sub);
  jsCtx_Destroy(j);
  jsCtx_Destroy(pj);
  auto [p50, p99] = percentiles(lat);
  return {static_cast<double>(count) / secs, p50, p99};
}

// ---- rondo
// The executor's idle poll (io_options::idle_spin): on a machine whose cores the cluster needs,
// polling takes CPU from the servers.
std::chrono::microseconds g_idle_spin{0};
bool g_order_guard = true;  // --order-guard 0: the A/B row of its cost
bool g_source_connection = false;  // --source-connection 1: source and sink on two connections

struct work {
  std::int64_t sent = 0;
};
using ev = js::event<work>;

result run_rondo(js::connection& conn, const std::string& tag, long count, long rate, bool timed) {
  const std::string in_subject = "bin." + tag, out_stream = "BOUT_" + tag;
  conn.ensure_stream({.name = out_stream, .subjects = {"bout." + tag}});
  jsCtx* pj = nullptr;
  natsConnection_JetStream(&pj, static_cast<natsConnection*>(conn.native_connection()), nullptr);
  if (!timed) produce(pj, in_subject, count, 0);

  js::publish_sink out(conn, {.stream = out_stream, .subject = "bout." + tag,
                              .msg_id_prefix = "rondo/" + tag,
                              .order_guard = g_order_guard});
  // The source on a connection of its own (--source-connection 1): its fetches and the sink's
  // publishes then do not share libnats' connection lock, reader and flusher.
  std::unique_ptr<js::connection> own;
  if (g_source_connection) {
    own = std::make_unique<js::connection>(js::connection_options{
        .servers = conn.options().servers, .name = "rondo-bench-source"});
  }
  js::pull_source source(own ? *own : conn, {.stream = "BIN", .durable = "brondo-" + tag,
                                             .filter_subject = in_subject});
  js::sink<work> sink(out);
  std::vector<std::int64_t> lat;
  lat.reserve(static_cast<std::size_t>(count));
  std::atomic<long> acked{0};
  rondo::runtime rt(1, rondo::io_options{.idle_spin = g_idle_spin});
  auto d = rondo::disruptor<ev>::builder()
               .capacity(4096)
               .wait(rondo::spin_then_suspend{})
               .executor(rt)
               .stage("compute",
                      [](ev& e, std::int64_t, bool) {
                        e.state.sent = sent_at(e.in.data);
                        rondo_jetstream_demo::write_result(e.out, e.in.sequence, e.in.data);
                      })
               .stage("sink", sink.handler(), rondo::after("compute"))
               .stage("ack",
                      [&, ack = js::ack_handler<work>(source)](ev& e, std::int64_t s, bool eob) mutable {
                        lat.push_back(now_ns() - e.state.sent);
                        ack(e, s, eob);
                        // Release: pairs with the main thread's acquire load (lat is complete).
                        if (eob) acked.store(static_cast<long>(lat.size()), std::memory_order_release);
                      },
                      rondo::after("sink"))
               .build();
  d.start();
  js::source_pump<work> pump(source, {.max_fetch = 512});
  const auto t0 = clk::now();
  pump.start(d.publisher());
  std::thread producer;
  if (timed) producer = std::thread([&] { produce(pj, in_subject, count, rate); });
  while (acked.load(std::memory_order_acquire) < count) {  // pairs with the ack stage's release
    if (pump.finished()) throw js::error("rondo: the pipeline stopped");
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  const double secs = std::chrono::duration<double>(clk::now() - t0).count();
  const auto ss = source.stats();
  const auto ks = out.stats();
  std::fprintf(stderr, "  [rondo %s: %.2f s, fetched %llu, resets %llu, redelivered %llu, fetch errors %llu, acks %llu, published %llu, failed %llu]\n",
               tag.c_str(), secs, static_cast<unsigned long long>(ss.fetched),
               static_cast<unsigned long long>(ss.resets),
               static_cast<unsigned long long>(ss.redelivered),
               static_cast<unsigned long long>(ss.fetch_errors),
               static_cast<unsigned long long>(ss.commits),
               static_cast<unsigned long long>(ks.published),
               static_cast<unsigned long long>(ks.failed));
  pump.stop();
  d.drain();
  d.join();
  if (producer.joinable()) producer.join();
  jsCtx_Destroy(pj);
  auto [p50, p99] = percentiles(lat);
  return {static_cast<double>(count) / secs, p50, p99};
}

}  // namespace

int main(int argc, char** argv) {
  std::string servers = "nats://127.0.0.1:4222";
  long count = 200000, rate = 5000, seconds = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view f = argv[i];
    if (f == "--servers") servers = argv[i + 1];
    else if (f == "--count") count = std::atol(argv[i + 1]);
    else if (f == "--rate") rate = std::atol(argv[i + 1]);
    else if (f == "--seconds") seconds = std::atol(argv[i + 1]);
    else if (f == "--order-guard") g_order_guard = std::atol(argv[i + 1]) != 0;
    else if (f == "--source-connection") g_source_connection = std::atol(argv[i + 1]) != 0;
    else if (f == "--idle-spin-us") g_idle_spin = std::chrono::microseconds(std::atol(argv[i + 1]));
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (count <= 0 || rate <= 0 || seconds <= 0) {
    std::fprintf(stderr, "--count %ld, --rate %ld, --seconds %ld: all must be > 0\n", count, rate,
                 seconds);
    return 2;
  }
  try {
    js::connection conn({.servers = servers, .name = "rondo-jetstream-bench",
                         .timeout = std::chrono::milliseconds(5000)});
    conn.ensure_stream({.name = "BIN", .subjects = {"bin.*"}});
    std::printf("R3 file streams, 3 nodes on this machine; %ld events per throughput run, "
                "%ld/s for %ld s per latency run\n", count, rate, seconds);
    std::printf("%-6s %-5s %14s %12s %12s\n", "client", "round", "events/s", "p50 us", "p99 us");
    int round = 0;
    for (int rep = 0; rep < 2; ++rep) {
      for (const bool use_rondo : {false, true}) {
        const std::string tag = fmt::format("{}{}", use_rondo ? "r" : "w", round++);
        std::fprintf(stderr, "  [%s: throughput run]\n", tag.c_str());
        const result t = use_rondo ? run_rondo(conn, tag, count, 0, false)
                                   : run_raw(conn, tag, count, 0, false);
        const std::string ltag = tag + "l";
        std::fprintf(stderr, "  [%s: latency run]\n", tag.c_str());
        const result l = use_rondo ? run_rondo(conn, ltag, rate * seconds, rate, true)
                                   : run_raw(conn, ltag, rate * seconds, rate, true);
        std::printf("%-6s %-5d %14.0f %12.0f %12.0f\n", use_rondo ? "rondo" : "raw", rep,
                    t.events_per_s, l.p50_us, l.p99_us);
        std::fflush(stdout);
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench: %s\n", e.what());
    return 1;
  }
}
