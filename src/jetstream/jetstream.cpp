// rondo::jetstream: the NATS engines (libnats), the sink stage's round loop and its completion
// bridge. libnats appears only in this file.
#include <rondo/io/io_context.hpp>
#include <rondo/jetstream.hpp>

#include <fmt/format.h>

#include <nats/nats.h>

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <mutex>
#include <thread>

namespace rondo::jetstream {

namespace {

using clock = std::chrono::steady_clock;

std::string nats_text(natsStatus s, jsErrCode code = static_cast<jsErrCode>(0)) {
  const char* last = nats_GetLastError(nullptr);
  std::string t = fmt::format("nats: {}", natsStatus_GetText(s));
  if (code != 0) t += fmt::format(", JetStream error {}", static_cast<int>(code));
  if (last != nullptr && *last != '\0') t += fmt::format(" ({})", last);
  return t;
}

std::int64_t to_ms(std::chrono::milliseconds d) { return static_cast<std::int64_t>(d.count()); }
std::int64_t to_ns(std::chrono::nanoseconds d) { return static_cast<std::int64_t>(d.count()); }

std::vector<std::string> split_servers(const std::string& servers) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at <= servers.size()) {
    const std::size_t comma = servers.find(',', at);
    const std::size_t end = comma == std::string::npos ? servers.size() : comma;
    if (end > at) out.emplace_back(servers.substr(at, end - at));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return out;
}

// "prefix:123" -> 123 when the prefix matches; 0 otherwise.
std::uint64_t input_of_msg_id(std::string_view id, std::string_view prefix) {
  if (id.size() <= prefix.size() + 1 || id.substr(0, prefix.size()) != prefix ||
      id[prefix.size()] != ':') {
    return 0;
  }
  std::uint64_t v = 0;
  const char* first = id.data() + prefix.size() + 1;
  const char* last = id.data() + id.size();
  auto [p, ec] = std::from_chars(first, last, v);
  if (ec != std::errc{} || p != last) return 0;
  return v;
}

// The stream and consumer sequences of a JetStream message, from its reply subject (what
// natsMsg_GetMetaData parses, without its allocations): "$JS.ACK.<stream>.<consumer>.
// <delivered>.<stream seq>.<consumer seq>.<time>.<pending>" (9 tokens), or the newer form with
// "<domain>.<account hash>" after "$JS.ACK" and a token at the end (12 or more).
bool ack_sequences(const char* reply, std::uint64_t& sseq, std::uint64_t& cseq) {
  if (reply == nullptr) return false;
  const std::string_view r(reply);
  if (r.substr(0, 8) != "$JS.ACK.") return false;
  std::string_view tok[16];
  std::size_t n = 0;
  std::size_t at = 0;
  while (n < 16) {
    const std::size_t dot = r.find('.', at);
    tok[n++] = r.substr(at, dot == std::string_view::npos ? std::string_view::npos : dot - at);
    if (dot == std::string_view::npos) break;
    at = dot + 1;
  }
  std::size_t first = 0;  // the index of <delivered>
  if (n == 9) first = 4;
  else if (n >= 12) first = 6;
  else return false;
  auto num = [](std::string_view t, std::uint64_t& v) {
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    return ec == std::errc{} && p == t.data() + t.size();
  };
  return num(tok[first + 1], sseq) && num(tok[first + 2], cseq);
}

// Exponential-free, bounded pause of a thread that is not an executor's.
void pause_for(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// connection

namespace detail {
struct connection_state {
  connection_options opts;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  ~connection_state() {
    if (js != nullptr) jsCtx_Destroy(js);
    if (nc != nullptr) {
      natsConnection_Close(nc);
      natsConnection_Destroy(nc);
    }
  }
};
}  // namespace detail

connection::connection(connection_options options)
    : s_(std::make_unique<detail::connection_state>()) {
  s_->opts = std::move(options);
  const auto urls = split_servers(s_->opts.servers);
  if (urls.empty()) {
    throw std::invalid_argument(
        fmt::format("jetstream::connection: no server in '{}'", s_->opts.servers));
  }
  std::vector<const char*> ptrs;
  for (const auto& u : urls) ptrs.push_back(u.c_str());
  natsOptions* o = nullptr;
  natsStatus st = natsOptions_Create(&o);
  if (st == NATS_OK) st = natsOptions_SetServers(o, ptrs.data(), static_cast<int>(ptrs.size()));
  if (st == NATS_OK) st = natsOptions_SetName(o, s_->opts.name.c_str());
  if (st == NATS_OK) st = natsOptions_SetTimeout(o, to_ms(s_->opts.timeout));
  if (st == NATS_OK) st = natsOptions_SetMaxReconnect(o, -1);
  if (st == NATS_OK) st = natsOptions_SetReconnectWait(o, to_ms(s_->opts.reconnect_wait));
  if (st == NATS_OK) st = natsOptions_SetReconnectJitter(o, 0, 0);
  // A client that reconnects buffers what it publishes meanwhile (libnats' default 8 MB).
  if (st == NATS_OK) st = natsOptions_SetPingInterval(o, 1000);
  if (st == NATS_OK) st = natsConnection_Connect(&s_->nc, o);
  natsOptions_Destroy(o);
  if (st != NATS_OK) {
    throw error(fmt::format("jetstream: connect to {}: {}", s_->opts.servers, nats_text(st)));
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = to_ms(s_->opts.timeout);
  st = natsConnection_JetStream(&s_->js, s_->nc, &jo);
  if (st != NATS_OK) throw error(fmt::format("jetstream: JetStream context: {}", nats_text(st)));
}

connection::~connection() = default;

const connection_options& connection::options() const noexcept { return s_->opts; }
void* connection::native_connection() const noexcept { return s_->nc; }
void* connection::native_jetstream() const noexcept { return s_->js; }

void connection::ensure_stream(const stream_config& config, std::chrono::milliseconds wait) {
  if (config.name.empty()) throw std::invalid_argument("ensure_stream: empty stream name");
  if (config.subjects.empty()) {
    throw std::invalid_argument(fmt::format("ensure_stream('{}'): no subjects", config.name));
  }
  if (config.replicas < 1 || config.replicas > 5) {
    throw std::invalid_argument(
        fmt::format("ensure_stream('{}'): replicas {} (1..5)", config.name, config.replicas));
  }
  std::vector<const char*> subjects;
  for (const auto& s : config.subjects) subjects.push_back(s.c_str());
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  sc.Name = config.name.c_str();
  sc.Subjects = subjects.data();
  sc.SubjectsLen = static_cast<int>(subjects.size());
  sc.Replicas = config.replicas;
  sc.Duplicates = to_ns(config.duplicate_window);
  sc.Storage = config.file_storage ? js_FileStorage : js_MemoryStorage;
  const auto deadline = clock::now() + wait;
  std::string last;
  for (;;) {
    jsStreamInfo* si = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus st = js_AddStream(&si, s_->js, &sc, nullptr, &code);
    if (st != NATS_OK && code == JSStreamNameExistErr) {
      code = static_cast<jsErrCode>(0);
      st = js_UpdateStream(&si, s_->js, &sc, nullptr, &code);
    }
    if (si != nullptr) jsStreamInfo_Destroy(si);
    if (st == NATS_OK) return;
    last = nats_text(st, code);
    if (clock::now() >= deadline) break;
    pause_for(std::chrono::milliseconds(200));  // the cluster may still elect its leaders
  }
  throw error(fmt::format("jetstream: add stream '{}' (R{}): {}", config.name, config.replicas,
                          last));
}

std::uint64_t connection::last_sequence(const std::string& stream) {
  jsStreamInfo* si = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus st = js_GetStreamInfo(&si, s_->js, stream.c_str(), nullptr, &code);
  if (st != NATS_OK) {
    throw error(fmt::format("jetstream: stream info '{}': {}", stream, nats_text(st, code)));
  }
  const std::uint64_t last = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  return last;
}

// ---------------------------------------------------------------------------------------------
// pull_source

struct pull_source::state {
  connection* conn;
  pull_source_options opts;
  natsSubscription* sub = nullptr;
  // Subscriptions replaced after a gap: unsubscribed, destroyed when the engine goes (long
  // after libnats' reader could still be delivering to them: see ~pull_source).
  std::vector<natsSubscription*> retired;
  std::uint64_t started_at = 1;
  // The first stream sequence the current consumer delivers (its start at the last
  // re-positioning). Messages below it in the ring came from the consumer it replaced: commit()
  // does not acknowledge them (see there). Written by the pump's thread, read by the ack stage.
  std::atomic<std::uint64_t> current_from{1};
  std::uint64_t last_stream = 0;    // the last stream sequence handed out
  std::uint64_t last_consumer = 0;  // the consumer sequence of the last delivery seen
  // Our own pull requests (see fetch()): the subject that asks the durable for messages, and the
  // one request that may be open (messages still to come to `sub`, until its deadline).
  std::string next_subject;
  bool request_open = false;
  std::size_t request_left = 0;
  clock::time_point request_until{};
  clock::time_point failing_since{};
  clock::time_point stalled_since{};  // fetches empty while the consumer has messages pending
  // Counters: relaxed, read by stats() on any thread; nothing is ordered by them.
  std::atomic<std::uint64_t> fetched{0}, redelivered{0}, resets{0}, fetch_errors{0}, commits{0},
      commit_errors{0};

  jsCtx* js() const { return static_cast<jsCtx*>(conn->native_jetstream()); }

  // Deletes and re-creates the durable so it delivers from `start`, and subscribes to it.
  void position(std::uint64_t start) {
    // Before the old consumer goes: from here on the ack stage leaves its messages alone.
    // Release: pairs with the acquire load in commit(); no data rides on it, it only keeps the
    // store ahead of the delete and create requests that follow on this thread.
    current_from.store(start, std::memory_order_release);
    if (sub != nullptr) {
      natsSubscription_Unsubscribe(sub);
      retired.push_back(sub);
      sub = nullptr;
    }
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus st = js_DeleteConsumer(js(), opts.stream.c_str(), opts.durable.c_str(), nullptr,
                                      &code);
    if (st != NATS_OK && code != JSConsumerNotFoundErr && st != NATS_NOT_FOUND) {
      throw error(fmt::format("jetstream: delete consumer '{}' of '{}': {}", opts.durable,
                              opts.stream, nats_text(st, code)));
    }
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = opts.durable.c_str();
    cc.AckPolicy = js_AckAll;
    cc.AckWait = to_ns(opts.ack_wait);
    cc.MaxAckPending = opts.max_ack_pending;
    if (!opts.filter_subject.empty()) cc.FilterSubject = opts.filter_subject.c_str();
    if (start > 1) {
      cc.DeliverPolicy = js_DeliverByStartSequence;
      cc.OptStartSeq = start;
    } else {
      cc.DeliverPolicy = js_DeliverAll;
    }
    jsConsumerInfo* ci = nullptr;
    code = static_cast<jsErrCode>(0);
    st = js_AddConsumer(&ci, js(), opts.stream.c_str(), &cc, nullptr, &code);
    if (ci != nullptr) jsConsumerInfo_Destroy(ci);
    if (st != NATS_OK) {
      throw error(fmt::format("jetstream: add consumer '{}' of '{}' at sequence {}: {}",
                              opts.durable, opts.stream, start, nats_text(st, code)));
    }
    // A plain subscription on an inbox of its own, not js_PullSubscribe: fetch() sends the pull
    // requests itself (natsSubscription_Fetch of libnats 3.4 overruns its array, see fetch()).
    natsInbox* inbox = nullptr;
    st = natsInbox_Create(&inbox);
    if (st == NATS_OK) {
      st = natsConnection_SubscribeSync(&sub, static_cast<natsConnection*>(conn->native_connection()),
                                        inbox);
    }
    natsInbox_Destroy(inbox);
    if (st == NATS_OK) st = natsSubscription_SetPendingLimits(sub, -1, -1);
    if (st != NATS_OK) {
      if (sub != nullptr) natsSubscription_Destroy(sub);
      sub = nullptr;
      throw error(fmt::format("jetstream: subscribe for '{}' of '{}': {}", opts.durable,
                              opts.stream, nats_text(st)));
    }
    next_subject = fmt::format("$JS.API.CONSUMER.MSG.NEXT.{}.{}", opts.stream, opts.durable);
    request_open = false;
    started_at = start;
    last_stream = start - 1;
    last_consumer = 0;
  }

  void reset() {
    resets.fetch_add(1, std::memory_order_relaxed);  // a counter
    position(last_stream + 1);
  }

  // A failure of the broker: fine for a while, an error past give_up_after.
  void failing(const std::string& what) {
    fetch_errors.fetch_add(1, std::memory_order_relaxed);  // a counter
    const auto now = clock::now();
    if (failing_since == clock::time_point{}) failing_since = now;
    if (now - failing_since > opts.give_up_after) {
      throw error(fmt::format("jetstream: consumer '{}' of stream '{}' unreachable for {} ms: {}",
                              opts.durable, opts.stream,
                              std::chrono::duration_cast<std::chrono::milliseconds>(
                                  now - failing_since).count(),
                              what));
    }
    pause_for(std::chrono::milliseconds(50));
  }
};

pull_source::pull_source(connection& conn, pull_source_options options)
    : s_(std::make_unique<state>()) {
  if (options.stream.empty() || options.durable.empty()) {
    throw std::invalid_argument(fmt::format(
        "pull_source: stream '{}' and durable '{}' must not be empty", options.stream,
        options.durable));
  }
  s_->conn = &conn;
  s_->opts = std::move(options);
  // Resume at the durable's ack floor + 1 (everything not acknowledged comes again, in order).
  const auto deadline = clock::now() + s_->opts.give_up_after;
  for (;;) {
    std::string why;
    try {
      jsConsumerInfo* ci = nullptr;
      jsErrCode code = static_cast<jsErrCode>(0);
      const natsStatus st = js_GetConsumerInfo(&ci, s_->js(), s_->opts.stream.c_str(),
                                               s_->opts.durable.c_str(), nullptr, &code);
      if (st == NATS_OK) {
        const std::uint64_t start = ci->AckFloor.Stream + 1;
        jsConsumerInfo_Destroy(ci);
        s_->position(start);
        return;
      }
      if (code == JSConsumerNotFoundErr || st == NATS_NOT_FOUND) {
        s_->position(s_->opts.start_after + 1);
        return;
      }
      why = fmt::format("jetstream: consumer info '{}' of '{}': {}", s_->opts.durable,
                        s_->opts.stream, nats_text(st, code));
    } catch (const error& e) {
      why = e.what();
    }
    if (clock::now() >= deadline) throw error(why);
    pause_for(std::chrono::milliseconds(100));
  }
}

pull_source::~pull_source() {
  if (s_->sub != nullptr) {
    // libnats 3.4's reader thread looks a subscription up, lets go of the connection's lock and
    // only then locks the subscription (nats.c issue 637, fixed upstream after 3.4 by PR 638):
    // destroying it while a delivery for it is in that window (the 408 that ends the last pull
    // request comes ~100 ms after the last fetch) is a use after free on the reader thread. So
    // unsubscribe first (no later delivery finds it), then one round trip: the reader handles
    // the PONG after every message it read before it, so none of them is still on its way to
    // this subscription. Bounded: with the cluster unreachable the flush times out (no delivery
    // is read then).
    natsSubscription_Unsubscribe(s_->sub);
    auto* nc = static_cast<natsConnection*>(s_->conn->native_connection());
    (void)natsConnection_FlushTimeout(nc, 500);
    natsSubscription_Destroy(s_->sub);
  }
  // Unsubscribed when they were replaced (long before): nothing delivers to them any more.
  for (natsSubscription* r : s_->retired) natsSubscription_Destroy(r);
}

std::uint64_t pull_source::started_at() const noexcept { return s_->started_at; }

std::size_t pull_source::fetch(std::span<inbound> out, std::chrono::milliseconds wait) {
  state& s = *s_;
  if (out.empty()) return 0;
  if (s.sub == nullptr) {
    // A re-positioning failed half way (the cluster was down): try it again.
    try {
      s.reset();
    } catch (const error& e) {
      s.failing(e.what());
      return 0;
    }
  }
  // Our own pull requests on a plain subscription, not natsSubscription_Fetch. libnats 3.4.1's
  // _fetch (Debian's package) first takes what is already queued on the subscription (c0
  // messages: what an earlier request delivered after its fetch had returned), then asks for
  // batch - c0 more and stops only when its count *equals* batch - c0. With 2 * c0 >= batch that
  // never happens, and it appends every message that arrives (another live request's) past its
  // batch-sized array until the fetch times out; the list it returns says so (Count > batch).
  // That was the SIGSEGV (a GP fault in natsMsg_GetReply on a pointer read past the array) and
  // the "double free or corruption" in natsMsgList_Destroy of a later repro (Count 573 for a
  // batch of 512, and this fetch wrote as many entries into `out`). Upstream now compares with
  // the original batch. Here at most one request is open at a time; its messages are read one
  // by one, never more than `out` holds, and what does not fit stays queued for the next call.
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus st = NATS_OK;
  auto* nc = static_cast<natsConnection*>(s.conn->native_connection());
  const auto began = clock::now();
  if (s.request_open && began >= s.request_until) s.request_open = false;  // it has expired
  if (!s.request_open) {
    // It expires a little before this call stops waiting: over by the next call.
    const std::int64_t expires = std::max<std::int64_t>(to_ns(wait) - 10'000'000, 1'000'000);
    char req[96];
    const auto w = fmt::format_to_n(req, sizeof req, "{{\"batch\":{},\"expires\":{}}}",
                                    out.size(), expires);
    st = natsConnection_PublishRequest(nc, s.next_subject.c_str(),
                                       natsSubscription_GetSubject(s.sub), req,
                                       static_cast<int>(w.size));
    if (st == NATS_OK) {
      s.request_open = true;
      s.request_left = out.size();
      s.request_until = began + wait;
    }
  }
  const auto deadline = began + wait;
  std::size_t n = 0;
  std::size_t seen = 0;  // messages that came (handed out or dropped)
  bool gap = false;
  while (st == NATS_OK && n < out.size() && !gap) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    natsMsg* m = nullptr;
    // Wait for the first message only; after it, take what is already queued and return, so an
    // event is in the ring as soon as it came, not when `out` is full or `wait` is over (waiting
    // for more made the end-to-end p50 at 2 000 events/s ~60 ms instead of ~4). The open
    // request keeps delivering; the next call reads on.
    const std::int64_t timeout_ms = seen > 0 ? 0 : std::max<std::int64_t>(left.count(), 1);
    st = natsSubscription_NextMsg(&m, s.sub, timeout_ms);
    if (st != NATS_OK) break;  // NATS_TIMEOUT: nothing more within `wait`, or nothing queued
    const char* status = nullptr;
    if (natsMsg_GetDataLength(m) == 0 && natsMsgHeader_Get(m, "Status", &status) == NATS_OK &&
        status != nullptr) {
      // 100: a heartbeat. 404 / 408 / 409 (no messages, the request expired, max waiting, the
      // consumer deleted or its leader changed): the request is over. 503: no responders.
      const std::string_view what(status);
      const bool heartbeat = what.substr(0, 3) == "100";
      const bool no_responders = what.substr(0, 3) == "503";
      natsMsg_Destroy(m);
      if (heartbeat) continue;
      s.request_open = false;
      if (no_responders) st = NATS_NO_RESPONDERS;
      break;
    }
    ++seen;
    if (s.request_left > 0 && --s.request_left == 0) s.request_open = false;
    std::uint64_t sseq = 0;
    std::uint64_t cseq = 0;
    if (!ack_sequences(natsMsg_GetReply(m), sseq, cseq)) {
      natsMsg_Destroy(m);
      continue;
    }
    if (cseq != s.last_consumer + 1) {
      gap = true;  // deliveries lost (a node, a leader change): start again after the last
      natsMsg_Destroy(m);
      break;
    }
    s.last_consumer = cseq;
    if (sseq <= s.last_stream) {
      s.redelivered.fetch_add(1, std::memory_order_relaxed);  // a counter
      natsMsg_Destroy(m);
      continue;
    }
    s.last_stream = sseq;
    inbound& in = out[n++];
    in.sequence = sseq;
    in.subject = natsMsg_GetSubject(m);
    in.data = std::string_view(natsMsg_GetData(m),
                               static_cast<std::size_t>(natsMsg_GetDataLength(m)));
    in.handle = m;  // now the ring's
  }
  if (st == NATS_TIMEOUT) st = NATS_OK;
  if (n > 0) {
    s.failing_since = {};
    s.stalled_since = {};
    s.fetched.fetch_add(n, std::memory_order_relaxed);  // a counter
  }
  if (gap) {
    try {
      s.reset();
    } catch (const error& e) {
      s.failing(e.what());
    }
    return n;
  }
  // Messages came (all of them dropped: re-deliveries): the consumer delivers, nothing to check.
  if (n > 0 || seen > 0) return n;
  if (st == NATS_TIMEOUT || st == NATS_OK) {
    // Nothing came: were deliveries lost on the way (the consumer handed out more than
    // arrived)? Then re-position, else wait for the next message.
    jsConsumerInfo* ci = nullptr;
    code = static_cast<jsErrCode>(0);
    const natsStatus is = js_GetConsumerInfo(&ci, s.js(), s.opts.stream.c_str(),
                                             s.opts.durable.c_str(), nullptr, &code);
    if (is != NATS_OK) {
      s.failing(nats_text(is, code));
      return 0;
    }
    const std::uint64_t delivered = ci->Delivered.Consumer;
    const std::uint64_t pending = ci->NumPending;
    jsConsumerInfo_Destroy(ci);
    s.failing_since = {};
    // Messages wait but none comes: a consumer that lost its pull requests with a node, or
    // whose new leader does not serve them. Re-create it after a second of that.
    bool stalled = false;
    if (pending > 0) {
      const auto now = clock::now();
      if (s.stalled_since == clock::time_point{}) s.stalled_since = now;
      stalled = now - s.stalled_since > std::chrono::seconds(1);
    } else {
      s.stalled_since = {};
    }
    if (delivered > s.last_consumer || stalled) {
      s.stalled_since = {};
      try {
        s.reset();
      } catch (const error& e) {
        s.failing(e.what());
      }
    }
    return 0;
  }
  s.failing(nats_text(st, code));
  return 0;
}

void pull_source::commit(const inbound& last) noexcept {
  if (last.handle == nullptr) return;
  // A message of a consumer that a re-positioning replaced: its ack subject names the same
  // durable, so the server would hand it to the new consumer, and an AckAll there with the old
  // (larger) delivery sequence raises the new consumer's ack floor past every delivery sequence
  // it has, after which it ignores all of its own acks (nats-server 2.9: floor and pending stop
  // moving; at max_ack_pending it stops delivering, the pump sees a stall and re-positions
  // again). Leave it unacknowledged: the new consumer started after it, and its result is
  // stored (the ack stage runs after the sink); the new consumer's own acks move the floor.
  // Acquire: pairs with the release store in position().
  if (last.sequence < s_->current_from.load(std::memory_order_acquire)) return;
  // AckAll through the message's reply subject (what natsMsg_Ack does for a JetStream
  // subscription; ours is a plain one).
  const char* reply = natsMsg_GetReply(static_cast<const natsMsg*>(last.handle));
  const natsStatus st =
      reply == nullptr ? NATS_ERR
                       : natsConnection_PublishString(
                             static_cast<natsConnection*>(s_->conn->native_connection()), reply,
                             "+ACK");
  // Counters only.
  if (st == NATS_OK) s_->commits.fetch_add(1, std::memory_order_relaxed);
  else s_->commit_errors.fetch_add(1, std::memory_order_relaxed);
}

void pull_source::release(inbound& m) noexcept {
  if (m.handle != nullptr) natsMsg_Destroy(static_cast<natsMsg*>(m.handle));
  m = inbound{};
}

source_stats pull_source::stats() const noexcept {
  const state& s = *s_;
  constexpr auto r = std::memory_order_relaxed;  // counters
  return {s.fetched.load(r),  s.redelivered.load(r), s.resets.load(r),
          s.fetch_errors.load(r), s.commits.load(r),   s.commit_errors.load(r)};
}

// ---------------------------------------------------------------------------------------------
// publish_sink

namespace {
// One publish() round, as libnats' ack threads see it.
struct sink_round {
  const publish_record* records = nullptr;
  std::size_t count = 0;
  std::uint64_t known_stored = 0;  // records at or below this input sequence are stored already
  publish_completion* done = nullptr;
};
}  // namespace

struct publish_sink::state {
  connection* conn;
  publish_sink_options opts;
  jsCtx* js = nullptr;
  sink_round round;
  // The round the ack callbacks read: stored (release) before the round's first publish,
  // loaded (acquire) by each callback. libnats' own locks order them too; this does not rely on
  // that.
  std::atomic<const sink_round*> current{nullptr};
  std::uint64_t known_input = 0;  // last input sequence the output holds (the prefix)
  std::uint64_t out_last = 0;     // the output stream's last sequence after the known prefix
  std::mutex error_mu;            // guards last_err (failures only, never the publish path)
  std::string last_err;
  // Counters: relaxed; stats() reads them on any thread.
  std::atomic<std::uint64_t> published{0}, stored{0}, duplicates{0}, failed{0}, recoveries{0};

  void set_error(std::string e) {
    std::lock_guard lk(error_mu);
    last_err = std::move(e);
  }

  static void on_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
    auto* self = static_cast<state*>(closure);
    // Acquire: pairs with the release store in publish(), so the round's fields are visible.
    const sink_round* r = self->current.load(std::memory_order_acquire);
    // Which record: only a round that re-publishes stored results (re-delivered input) needs
    // to know (the headers are parsed on first access: not on every ack).
    std::uint64_t input = 0;
    if (r != nullptr && r->count > 0 && r->records[0].input_sequence <= r->known_stored) {
      const char* id = nullptr;
      if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id != nullptr) {
        input = input_of_msg_id(id, self->opts.msg_id_prefix);
      }
    }
    bool ok = false;
    if (pa != nullptr) {
      if (pa->Duplicate) {
        self->duplicates.fetch_add(1, std::memory_order_relaxed);  // a counter
        ok = pa->Sequence > 0;  // a duplicate still in flight at the leader is not stored yet
      } else {
        self->stored.fetch_add(1, std::memory_order_relaxed);  // a counter
        ok = true;
      }
    } else {
      self->failed.fetch_add(1, std::memory_order_relaxed);  // a counter
      if (pae != nullptr) {
        self->set_error(fmt::format("publish of input {}: {}{}{}", input,
                                    natsStatus_GetText(pae->Err),
                                    pae->ErrText != nullptr ? ": " : "",
                                    pae->ErrText != nullptr ? pae->ErrText : ""));
      }
    }
    // Re-delivered input whose result the output had before the round: stored, whatever the
    // answer (a duplicate, or the refused impossible expectation past the window).
    if (r != nullptr && input != 0 && input <= r->known_stored) ok = true;
    std::size_t index = 0;
    if (r != nullptr) {
      const publish_record* end = r->records + r->count;
      const publish_record* at = std::lower_bound(
          r->records, end, input,
          [](const publish_record& rec, std::uint64_t v) { return rec.input_sequence < v; });
      index = static_cast<std::size_t>(at - r->records);
    }
    natsMsg_Destroy(msg);
    if (r != nullptr) r->done->record_done(index, ok);
  }
};

publish_sink::publish_sink(connection& conn, publish_sink_options options)
    : s_(std::make_unique<state>()) {
  if (options.stream.empty() || options.subject.empty() || options.msg_id_prefix.empty()) {
    throw std::invalid_argument(fmt::format(
        "publish_sink: stream '{}', subject '{}' and msg_id_prefix '{}' must not be empty",
        options.stream, options.subject, options.msg_id_prefix));
  }
  if (options.max_pending < 1) {
    throw std::invalid_argument(
        fmt::format("publish_sink: max_pending {} (at least 1)", options.max_pending));
  }
  s_->conn = &conn;
  s_->opts = std::move(options);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = to_ms(conn.options().timeout);
  jo.PublishAsync.MaxPending = s_->opts.max_pending;
  jo.PublishAsync.AckHandler = &state::on_ack;
  jo.PublishAsync.AckHandlerClosure = s_.get();
  const natsStatus st = natsConnection_JetStream(
      &s_->js, static_cast<natsConnection*>(conn.native_connection()), &jo);
  if (st != NATS_OK) throw error(fmt::format("jetstream: sink context: {}", nats_text(st)));
  // Where the output is: its last record's input sequence.
  const auto deadline = clock::now() + std::chrono::milliseconds(30000);
  for (;;) {
    try {
      recover();
      s_->recoveries.store(0, std::memory_order_relaxed);  // a counter: this one is the start
      return;
    } catch (const error&) {
      if (clock::now() >= deadline) throw;
      pause_for(std::chrono::milliseconds(200));
    }
  }
}

publish_sink::~publish_sink() {
  if (s_->js != nullptr) {
    // Outstanding publishes report to a round that is gone: wait for them briefly first.
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 2000;
    (void)js_PublishAsyncComplete(s_->js, &po);
    jsCtx_Destroy(s_->js);
  }
}

void publish_sink::recover() {
  state& s = *s_;
  s.recoveries.fetch_add(1, std::memory_order_relaxed);  // a counter
  const std::uint64_t last = s.conn->last_sequence(s.opts.stream);
  if (last == 0) {
    s.known_input = 0;
    s.out_last = 0;
    return;
  }
  natsMsg* m = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus st = js_GetMsg(&m, s.js, s.opts.stream.c_str(), last, nullptr, &code);
  if (st != NATS_OK) {
    throw error(fmt::format("jetstream: get message {} of '{}': {}", last, s.opts.stream,
                            nats_text(st, code)));
  }
  const char* id = nullptr;
  std::uint64_t input = 0;
  if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) == NATS_OK && id != nullptr) {
    input = input_of_msg_id(id, s.opts.msg_id_prefix);
  }
  const std::string id_text = id != nullptr ? id : "";
  natsMsg_Destroy(m);
  if (input == 0) {
    throw error(fmt::format(
        "jetstream: the last message ({}) of output stream '{}' has Msg-Id '{}', not "
        "'{}:<input sequence>': the stream has another writer",
        last, s.opts.stream, id_text, s.opts.msg_id_prefix));
  }
  s.known_input = input;
  s.out_last = last;
}

void publish_sink::publish(std::span<const publish_record> records, publish_completion& done) {
  state& s = *s_;
  s.round = sink_round{records.data(), records.size(), s.known_input, &done};
  // Release: pairs with the acquire load in on_ack (the round's fields before any ack).
  s.current.store(&s.round, std::memory_order_release);
  const std::uint64_t base = s.out_last;
  std::uint64_t chained = 0;
  char id[128];
  for (std::size_t i = 0; i < records.size(); ++i) {
    const publish_record& rec = records[i];
    const auto written = fmt::format_to_n(id, sizeof id - 1, "{}:{}", s.opts.msg_id_prefix,
                                          rec.input_sequence);
    *written.out = '\0';
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = id;
    // No per-message MaxWait: libnats arms a timer per message for it; the sink stage's
    // round_timeout and abandon() bound the wait instead.
    if (rec.input_sequence <= s.round.known_stored) {
      // Stored before: the Msg-Id makes it a duplicate; should the window have passed, an
      // expectation that cannot hold refuses it.
      po.ExpectLastSeq = std::uint64_t{1} << 62;
    } else {
      if (s.opts.order_guard) po.ExpectLastSeq = base + chained;  // 0 (empty output): none
      ++chained;
    }
    natsMsg* m = nullptr;
    natsStatus st = natsMsg_Create(&m, s.opts.subject.c_str(), nullptr, rec.payload.data(),
                                   static_cast<int>(rec.payload.size()));
    if (st == NATS_OK) st = js_PublishMsgAsync(s.js, &m, &po);
    if (st != NATS_OK) {
      if (m != nullptr) natsMsg_Destroy(m);
      s.set_error(fmt::format("publish of input {}: {}", rec.input_sequence, nats_text(st)));
      // This record and the rest of the round are reported failed here; the broker reports
      // those already handed to libnats.
      for (std::size_t j = i; j < records.size(); ++j) {
        s.failed.fetch_add(1, std::memory_order_relaxed);  // a counter
        done.record_done(j, false);
      }
      break;
    }
    s.published.fetch_add(1, std::memory_order_relaxed);  // a counter
  }
  // Optimistic: the round stores everything. A failed round is followed by recover().
  s.out_last = base + chained;
  if (!records.empty()) s.known_input = std::max(s.known_input, records.back().input_sequence);
}

void publish_sink::abandon() {
  state& s = *s_;
  natsMsgList pending{nullptr, 0};
  if (js_PublishAsyncGetPendingList(&pending, s.js) != NATS_OK) return;  // none pending
  // Acquire: pairs with the release store in publish() (we are its thread anyway).
  const sink_round* r = s.current.load(std::memory_order_acquire);
  for (int i = 0; i < pending.Count; ++i) {
    natsMsg* m = pending.Msgs[i];
    if (m == nullptr || r == nullptr) continue;
    const char* id = nullptr;
    std::uint64_t input = 0;
    if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) == NATS_OK && id != nullptr) {
      input = input_of_msg_id(id, s.opts.msg_id_prefix);
    }
    const publish_record* end = r->records + r->count;
    const publish_record* at = std::lower_bound(
        r->records, end, input,
        [](const publish_record& rec, std::uint64_t v) { return rec.input_sequence < v; });
    s.failed.fetch_add(1, std::memory_order_relaxed);  // a counter
    r->done->record_done(static_cast<std::size_t>(at - r->records), false);
  }
  s.set_error(fmt::format("{} publishes not answered within the round's timeout (cluster "
                          "unreachable?)", pending.Count));
  natsMsgList_Destroy(&pending);
}

std::uint64_t publish_sink::last_stored_input() const noexcept { return s_->known_input; }

std::string publish_sink::last_error() const {
  std::lock_guard lk(s_->error_mu);
  return s_->last_err;
}

sink_stats publish_sink::stats() const noexcept {
  const state& s = *s_;
  constexpr auto r = std::memory_order_relaxed;  // counters
  return {s.published.load(r), s.stored.load(r), s.duplicates.load(r), s.failed.load(r),
          s.recoveries.load(r)};
}

// ---------------------------------------------------------------------------------------------
// The sink stage's round loop and its completion bridge.

namespace detail {

void round_completion::arm(std::size_t n) {
  // Relaxed: the round has not started; publish() (same thread) happens after. No reporter of
  // the previous round touches this object any more (complete() saw its last store).
  failed_.store(false, std::memory_order_relaxed);
  complete_.store(false, std::memory_order_relaxed);
  remaining_.store(n, std::memory_order_relaxed);
  stop_ = std::stop_source{};  // the previous round's token is spent
  if (n == 0) {
    stop_.request_stop();
    complete_.store(true, std::memory_order_relaxed);  // same thread as complete()'s reader
  }
}

void round_completion::record_done(std::size_t, bool stored) noexcept {
  // Relaxed: published by the acq_rel decrement below (a release sequence on remaining_).
  if (!stored) failed_.store(true, std::memory_order_relaxed);
  // acq_rel: releases this report's writes; the last one acquires everyone's.
  if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    stop_.request_stop();  // cancels the stage's timer: it resumes on its io_context
    // Release: pairs with complete()'s acquire. The last touch of this object by a reporter:
    // the stage may re-arm it (a new stop_source) as soon as it sees this.
    complete_.store(true, std::memory_order_release);
  }
}

bool round_completion::complete() const noexcept {
  // Acquire: pairs with the last report's release store (failed_ and every report before it).
  return complete_.load(std::memory_order_acquire);
}

bool round_completion::failed() const noexcept {
  // Relaxed: read after complete() returned true (its acquire orders it).
  return failed_.load(std::memory_order_relaxed);
}

bool round_completion::stopping() const noexcept { return stop_.stop_requested(); }

task<> sink_core::publish(std::span<const publish_record> records, std::stop_token stop) {
  const auto start = clock::now();
  const std::uint64_t stored_before = engine->last_stored_input();
  std::size_t from = 0;
  int attempts = 0;
  while (from < records.size()) {
    const auto todo = records.subspan(from);
    done.arm(todo.size());
    engine->publish(todo, done);
    io_context& io = current_io_context();
    bool abandoned = false;
    while (!done.complete()) {
      if (done.stopping()) {
        // The last report has cancelled the timer and is about to mark the round complete.
        std::this_thread::yield();
        continue;
      }
      // Ends when the last report cancels it, or at the timeout.
      const io_result r = co_await io.sleep_for(round_timeout).cancel_on(done.token());
      if (done.complete() || r.cancelled()) continue;
      if (!abandoned) {
        engine->abandon();  // the broker did not answer in time: report the rest as failed
        abandoned = true;
      } else if (clock::now() - start > give_up_after) {
        throw error(fmt::format("jetstream sink: a publish round of {} results did not end",
                                todo.size()));
      }
    }
    if (!done.failed()) co_return;
    ++attempts;
    // Recover: ask the output what it holds, then publish what it lacks (in order).
    std::string why;
    for (;;) {
      if (clock::now() - start > give_up_after || stop.stop_requested()) {
        throw error(fmt::format(
            "jetstream sink: {} results from input sequence {} not stored after {} attempts in "
            "{} ms (the output held input up to {} before this batch): {}",
            records.size() - from, records[from].input_sequence, attempts,
            std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start).count(),
            stored_before, why.empty() ? engine->last_error() : why));
      }
      (void)co_await current_io_context().sleep_for(retry_backoff);
      try {
        engine->recover();
        break;
      } catch (const error& e) {
        why = e.what();
      }
    }
    const std::uint64_t have = engine->last_stored_input();
    const auto it = std::upper_bound(
        records.begin(), records.end(), have,
        [](std::uint64_t v, const publish_record& r) { return v < r.input_sequence; });
    from = static_cast<std::size_t>(it - records.begin());
  }
}

}  // namespace detail

}  // namespace rondo::jetstream
