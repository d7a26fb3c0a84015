// The JetStream tests' and demo's producer and verifier (libnats directly, no rondo stage).
//
//   rondo_jetstream_tool produce URLS S[,S...] COUNT  # COUNT messages per shard S into IN (in.S)
//   rondo_jetstream_tool verify URLS S[,S...]         # every shard: OUT_S == f(IN on in.S),
//                                                     # once each, in input order
//   rondo_jetstream_tool acked URLS SHARD             # consumer ack floor <= output's last input
//   rondo_jetstream_tool reset-check URLS N           # a re-positioned pull_source's ack floor
//                                                     # moves with its acks (stream RESET_N)
//
// produce publishes asynchronously with a Msg-Id per message ("p:<shard>:<i>") and re-publishes
// what failed, so a node killed meanwhile loses or duplicates nothing in the input. verify reads
// both streams with ordered consumers and prints, per shard, lost / duplicated / out-of-order /
// wrong results; it exits 1 unless all are 0.
#include <rondo/jetstream.hpp>

#include "jetstream_result.hpp"

#include <fmt/format.h>

#include <nats/nats.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace js = rondo::jetstream;

namespace {

long to_long(const char* v) {
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || x < 0) {
    std::fprintf(stderr, "not a count: '%s'\n", v);
    std::exit(2);
  }
  return x;
}

struct failed_publish {
  std::string subject, id, data;
};
std::mutex g_mu;
std::vector<failed_publish> g_failed;

void on_err(jsCtx*, jsPubAckErr* pae, void*) {
  const char* id = nullptr;
  natsMsgHeader_Get(pae->Msg, "Nats-Msg-Id", &id);
  std::lock_guard lk(g_mu);
  g_failed.push_back({natsMsg_GetSubject(pae->Msg), id != nullptr ? id : "",
                      std::string(natsMsg_GetData(pae->Msg),
                                  static_cast<std::size_t>(natsMsg_GetDataLength(pae->Msg)))});
}

std::vector<int> shard_list(const char* v) {
  std::vector<int> out;
  std::string_view s(v);
  while (!s.empty()) {
    const auto comma = s.find(',');
    const std::string one(s.substr(0, comma));
    out.push_back(static_cast<int>(to_long(one.c_str())));
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  if (out.empty()) {
    std::fprintf(stderr, "no shard in '%s'\n", v);
    std::exit(2);
  }
  return out;
}

int produce(js::connection& conn, const std::vector<int>& shards, long count) {
  conn.ensure_stream({.name = "IN", .subjects = {"in.*"}});
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = 8192;
  jo.PublishAsync.ErrHandler = &on_err;
  jsCtx* j = nullptr;
  if (natsConnection_JetStream(&j, static_cast<natsConnection*>(conn.native_connection()), &jo) !=
      NATS_OK) {
    std::fprintf(stderr, "produce: no JetStream context\n");
    return 1;
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < count; ++i) {
    for (int s : shards) {
      const std::string subject = fmt::format("in.{}", s);
      const std::string id = fmt::format("p:{}:{}", s, i);
      const std::string data = fmt::format("order {} of shard {}: 100 @ {}", i, s, 1000 + i % 97);
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MsgId = id.c_str();
      po.MaxWait = 5000;
      natsMsg* m = nullptr;
      natsMsg_Create(&m, subject.c_str(), nullptr, data.data(), static_cast<int>(data.size()));
      while (js_PublishMsgAsync(j, &m, &po) != NATS_OK) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // reconnecting: try again
      }
    }
  }
  // Wait for every ack, then re-publish (synchronously, same Msg-Id) what failed.
  for (;;) {
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 30000;
    js_PublishAsyncComplete(j, &po);
    std::vector<failed_publish> again;
    {
      std::lock_guard lk(g_mu);
      again.swap(g_failed);
    }
    if (again.empty()) break;
    for (const auto& f : again) {
      for (int tries = 0;; ++tries) {
        jsPubOptions so;
        jsPubOptions_Init(&so);
        so.MsgId = f.id.c_str();
        jsPubAck* pa = nullptr;
        jsErrCode code = static_cast<jsErrCode>(0);
        if (js_Publish(&pa, j, f.subject.c_str(), f.data.data(), static_cast<int>(f.data.size()),
                       &so, &code) == NATS_OK) {
          jsPubAck_Destroy(pa);
          break;
        }
        if (tries > 100) {
          std::fprintf(stderr, "produce: cannot publish %s\n", f.id.c_str());
          return 1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto total = static_cast<double>(count) * static_cast<double>(shards.size());
  std::printf("produced %ld messages per shard x %zu shards in %.2f s (%.0f msgs/s)\n", count,
              shards.size(), secs, total / secs);
  jsCtx_Destroy(j);
  return 0;
}

struct record {
  std::uint64_t seq;    // IN: stream sequence; OUT: the input sequence from the Msg-Id
  std::string payload;  // IN: the data; OUT: the result
};

// Reads every message of `stream` on `subject` (ordered consumer), up to the stream's last
// message on that subject.
std::vector<record> read_all(js::connection& conn, const std::string& stream,
                             const std::string& subject, bool output) {
  auto* j = static_cast<jsCtx*>(conn.native_jetstream());
  std::vector<record> out;
  natsMsg* last = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  // The cluster may just have been restarted: ask until it answers, "no message" included. A
  // node still catching up can say "not found" for a stream that is there (seen right after a
  // restart: a verify that read no result at all), so "nothing there" counts only once it has
  // been the answer for 3 s.
  int empty_answers = 0;
  for (int tries = 0;; ++tries) {
    code = static_cast<jsErrCode>(0);
    const natsStatus st = js_GetLastMsg(&last, j, stream.c_str(), subject.c_str(), nullptr, &code);
    if (st == NATS_OK) break;
    if (code == JSNoMessageFoundErr || code == JSStreamNotFoundErr) {
      if (++empty_answers == 30) return out;  // nothing there
    } else {
      empty_answers = 0;
    }
    if (tries == 300) {
      throw js::error(fmt::format("verify: last message of {} on {}: {} (error {})", stream,
                                  subject, natsStatus_GetText(st), static_cast<int>(code)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const std::uint64_t last_seq = natsMsg_GetSequence(last);
  natsMsg_Destroy(last);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Ordered = true;
  natsSubscription* sub = nullptr;
  // The same after a restart: creating the ordered consumer can fail while the stream's
  // leader is being elected (seen: "acked: verify: subscribe to out.16 of OUT_16").
  for (int tries = 0;; ++tries) {
    code = static_cast<jsErrCode>(0);
    const natsStatus st = js_SubscribeSync(&sub, j, subject.c_str(), nullptr, &so, &code);
    if (st == NATS_OK) break;
    sub = nullptr;
    if (tries == 300) {
      throw js::error(fmt::format("verify: subscribe to {} of {}: {} (error {})", subject, stream,
                                  natsStatus_GetText(st), static_cast<int>(code)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  natsSubscription_SetPendingLimits(sub, -1, -1);
  for (;;) {
    natsMsg* m = nullptr;
    const natsStatus st = natsSubscription_NextMsg(&m, sub, 10000);
    if (st != NATS_OK) {
      natsSubscription_Destroy(sub);
      throw js::error(fmt::format("verify: reading {} of {} stalled at {} messages: {}", subject,
                                  stream, out.size(), natsStatus_GetText(st)));
    }
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, m) != NATS_OK) {
      natsMsg_Destroy(m);
      continue;
    }
    const std::uint64_t sseq = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
    record r{sseq, std::string(natsMsg_GetData(m),
                               static_cast<std::size_t>(natsMsg_GetDataLength(m)))};
    if (output) {
      const char* id = nullptr;
      r.seq = 0;
      if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) == NATS_OK && id != nullptr) {
        const std::string_view v(id);
        const auto colon = v.rfind(':');
        if (colon != std::string_view::npos) {
          std::from_chars(v.data() + colon + 1, v.data() + v.size(), r.seq);
        }
      }
    }
    out.push_back(std::move(r));
    natsMsg_Destroy(m);
    if (sseq >= last_seq) break;
  }
  natsSubscription_Destroy(sub);
  return out;
}

int verify(js::connection& conn, const std::vector<int>& shards) {
  int bad = 0;
  for (int s : shards) {
    const auto in = read_all(conn, "IN", fmt::format("in.{}", s), false);
    const auto out = read_all(conn, fmt::format("OUT_{}", s), fmt::format("out.{}", s), true);
    // Walk both in order: each input must have its result, next in the output.
    std::size_t lost = 0, duplicated = 0, out_of_order = 0, wrong = 0;
    std::size_t o = 0;
    std::uint64_t prev = 0;
    for (const record& r : out) {
      if (r.seq <= prev) {
        if (r.seq == prev) ++duplicated; else ++out_of_order;
      }
      prev = std::max(prev, r.seq);
    }
    for (const record& i : in) {
      while (o < out.size() && out[o].seq < i.seq) ++o;  // counted above
      if (o >= out.size() || out[o].seq != i.seq) {
        if (lost < 5) std::printf("  shard %d: no result for input %llu\n", s,
                                  static_cast<unsigned long long>(i.seq));
        ++lost;
        continue;
      }
      std::string expect;
      rondo_jetstream_demo::write_result(expect, i.seq, i.payload);
      if (out[o].payload != expect) {
        if (wrong < 5) std::printf("  shard %d: input %llu: result '%s', expected '%s'\n", s,
                                   static_cast<unsigned long long>(i.seq), out[o].payload.c_str(),
                                   expect.c_str());
        ++wrong;
      }
      ++o;
    }
    const bool ok = lost == 0 && duplicated == 0 && out_of_order == 0 && wrong == 0 &&
                    out.size() == in.size();
    std::printf("shard %d: %zu inputs, %zu results: %zu lost, %zu duplicated, %zu out of order, "
                "%zu wrong -> %s\n",
                s, in.size(), out.size(), lost, duplicated, out_of_order, wrong,
                ok ? "exactly once, in order" : "WRONG");
    if (!ok) ++bad;
  }
  return bad == 0 ? 0 : 1;
}

// Nothing acknowledged that was not stored: the durable's ack floor is at most the output's
// last input sequence.
int acked(js::connection& conn, int shard) {
  auto* j = static_cast<jsCtx*>(conn.native_jetstream());
  jsConsumerInfo* ci = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const std::string durable = fmt::format("rondo-shard-{}", shard);
  // The cluster may just have been restarted: ask until it answers.
  for (int tries = 0;; ++tries) {
    if (js_GetConsumerInfo(&ci, j, "IN", durable.c_str(), nullptr, &code) == NATS_OK) break;
    if (tries == 300) {
      std::printf("shard %d: no answer about consumer %s\n", shard, durable.c_str());
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const std::uint64_t floor = ci->AckFloor.Stream;
  jsConsumerInfo_Destroy(ci);
  const auto out = read_all(conn, fmt::format("OUT_{}", shard), fmt::format("out.{}", shard), true);
  const std::uint64_t stored = out.empty() ? 0 : out.back().seq;
  std::printf("shard %d: acknowledged up to input %llu, output holds up to input %llu -> %s\n",
              shard, static_cast<unsigned long long>(floor),
              static_cast<unsigned long long>(stored),
              floor <= stored ? "nothing acked that was not stored" : "WRONG: acked unstored input");
  return floor <= stored ? 0 : 1;
}

// pull_source re-positions its durable after a gap. The messages of the replaced consumer still
// in the ring must not be acknowledged to the new one: their ack subject names the same durable,
// and an AckAll with the old delivery sequence raises the new consumer's ack floor past its own
// deliveries, so it ignores all of its own acks afterwards (the floor freezes, pending grows to
// max_ack_pending and deliveries stop). Scenario: 300 messages; the source fetches 100; the
// durable is replaced behind its back by one starting at 200, so the next fetch sees consumer
// sequence 1 after 100 (a gap) and re-positions after 100; then the ack stage's work is done
// by hand: commit the old incarnation's 100th message, fetch 50 more, commit the 150th. The
// durable's ack floor must reach 150.
int reset_check(js::connection& conn, int n) {
  auto* j = static_cast<jsCtx*>(conn.native_jetstream());
  const std::string stream = fmt::format("RESET_{}", n);
  const std::string subject = fmt::format("reset.{}", n);
  const std::string durable = "reset-check";
  jsErrCode code = static_cast<jsErrCode>(0);
  (void)js_DeleteStream(j, stream.c_str(), nullptr, &code);  // a fresh stream each run
  conn.ensure_stream({.name = stream, .subjects = {subject}, .replicas = 1,
                      .file_storage = false});
  for (int i = 0; i < 300; ++i) {
    const std::string data = fmt::format("reset check {}", i);
    for (int tries = 0;; ++tries) {
      code = static_cast<jsErrCode>(0);
      if (js_Publish(nullptr, j, subject.c_str(), data.data(), static_cast<int>(data.size()),
                     nullptr, &code) == NATS_OK) {
        break;
      }
      if (tries == 100) throw js::error(fmt::format("reset-check: publish {} failed", i));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  js::pull_source src(conn, {.stream = stream, .durable = durable, .filter_subject = subject});
  std::vector<js::inbound> held;
  std::vector<js::inbound> buf(100);
  // Fetches until `count` messages are held (or 20 s pass); returns whether it got there.
  auto fetch_to = [&](std::size_t count) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (held.size() < count && std::chrono::steady_clock::now() < until) {
      const std::size_t want = std::min(buf.size(), count - held.size());
      const std::size_t got =
          src.fetch(std::span<js::inbound>(buf.data(), want), std::chrono::milliseconds(200));
      held.insert(held.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(got));
    }
    return held.size() == count;
  };
  int rc = 0;
  if (!fetch_to(100)) {
    std::printf("reset-check: fetched %zu of the first 100\n", held.size());
    rc = 1;
  }
  if (rc == 0) {
    // Replace the durable behind the source's back: a new one delivering from 200.
    code = static_cast<jsErrCode>(0);
    (void)js_DeleteConsumer(j, stream.c_str(), durable.c_str(), nullptr, &code);
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = durable.c_str();
    cc.AckPolicy = js_AckAll;
    cc.FilterSubject = subject.c_str();
    cc.DeliverPolicy = js_DeliverByStartSequence;
    cc.OptStartSeq = held.back().sequence + 100;
    code = static_cast<jsErrCode>(0);
    if (js_AddConsumer(nullptr, j, stream.c_str(), &cc, nullptr, &code) != NATS_OK) {
      std::printf("reset-check: could not replace the durable (error %d)\n",
                  static_cast<int>(code));
      rc = 1;
    }
  }
  if (rc == 0) {
    // The gap: the source drops what the replacement delivers and re-positions after 100.
    const std::uint64_t resets_before = src.stats().resets;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (src.stats().resets == resets_before && std::chrono::steady_clock::now() < until) {
      const std::size_t got =
          src.fetch(std::span<js::inbound>(buf.data(), 1), std::chrono::milliseconds(200));
      held.insert(held.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(got));
    }
    if (src.stats().resets == resets_before || held.size() != 100) {
      std::printf("reset-check: no re-positioning after the gap (resets %llu, held %zu)\n",
                  static_cast<unsigned long long>(src.stats().resets), held.size());
      rc = 1;
    }
  }
  if (rc == 0) {
    src.commit(held.back());  // the replaced consumer's 100th message, as the ack stage would
    if (!fetch_to(150) || held[100].sequence != held[99].sequence + 1) {
      std::printf("reset-check: after the re-positioning fetched %zu of 150, first new %llu\n",
                  held.size(),
                  static_cast<unsigned long long>(held.size() > 100 ? held[100].sequence : 0));
      rc = 1;
    }
  }
  if (rc == 0) {
    src.commit(held.back());
    const std::uint64_t want = held.back().sequence;
    std::uint64_t floor = 0;
    for (int tries = 0; tries < 30 && floor != want; ++tries) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      jsConsumerInfo* ci = nullptr;
      code = static_cast<jsErrCode>(0);
      if (js_GetConsumerInfo(&ci, j, stream.c_str(), durable.c_str(), nullptr, &code) ==
          NATS_OK) {
        floor = ci->AckFloor.Stream;
        jsConsumerInfo_Destroy(ci);
      }
    }
    std::printf("reset-check: re-positioned after %llu; acked up to %llu; the durable's ack "
                "floor: %llu -> %s\n",
                static_cast<unsigned long long>(held[99].sequence),
                static_cast<unsigned long long>(want), static_cast<unsigned long long>(floor),
                floor == want ? "moves with the new consumer's acks"
                              : "WRONG: frozen by an ack of the replaced consumer");
    if (floor != want) rc = 1;
  }
  for (js::inbound& m : held) src.release(m);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s produce URLS SHARDS COUNT | verify URLS SHARDS | "
                         "acked URLS SHARD | reset-check URLS N\n", argv[0]);
    return 2;
  }
  const std::string_view cmd = argv[1];
  try {
    js::connection conn({.servers = argv[2], .name = "rondo-jetstream-tool",
                         .timeout = std::chrono::milliseconds(5000)});
    if (cmd == "produce" && argc == 5) {
      return produce(conn, shard_list(argv[3]), to_long(argv[4]));
    }
    if (cmd == "verify") return verify(conn, shard_list(argv[3]));
    if (cmd == "acked") return acked(conn, static_cast<int>(to_long(argv[3])));
    if (cmd == "reset-check") return reset_check(conn, static_cast<int>(to_long(argv[3])));
    std::fprintf(stderr, "unknown command or arguments\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[1], e.what());
    return 1;
  }
}
