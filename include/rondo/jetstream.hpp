#pragma once
// rondo::jetstream: a disruptor fed by a NATS JetStream stream and publishing its results to
// another, effectively once (docs/jetstream.md).
//
//   input stream ──pull consumer──▶ source_pump (a thread: fetches only what the ring has room for)
//        ▲                               │ try_reserve(got), fill, publish
//        │                               ▼
//        │            ring: [ compute stage(s) ] ──▶ [ sink stage ] ──▶ [ ack stage ]
//        │                                              │  ▲                 │
//        │                                  async publish  │ acks (libnats    │
//        │                                  (Msg-Id from   │ threads; the last│
//        │                                   input seq)    │ of a round wakes │
//        │                                                 │ the stage's ctx) │
//        │                                              ▼  │                 │
//        │                                        output stream              │
//        └──────────────── ack (AckAll, last of each batch) ◀────────────────┘
//
// The sink stage's sequence passes an event only when the output stream has stored its result;
// the ack stage runs after the sink, so an input message is acknowledged only once its result is
// stored: a crash re-delivers (from the durable's ack floor) and never drops, and the output's
// de-duplication by Msg-Id (within the stream's duplicate window) drops the re-published results.
//
// The engine-specific parts are two small interfaces, source_engine and sink_engine; the NATS
// ones are pull_source and publish_sink. A Kafka source (a partition's fetch loop, commit of
// offsets) and sink (an idempotent producer) would implement the same two.
//
// Thread-safety, overall: a connection may be shared by any number of engines on any threads
// (libnats' connection is thread-safe). An engine is used by the rondo objects it is given to,
// as each method's comment says (fetch from the pump's thread; commit and release from the ack
// stage; publish and recover from the sink stage).

#include <rondo/coro/scheduler.hpp>
#include <rondo/coro/task.hpp>
#include <rondo/disruptor.hpp>
#include <rondo/dsl/batch.hpp>
#include <rondo/dsl/publisher.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace rondo::jetstream {

/// A failure of the broker or of its configuration, with the operation and the cause in the
/// message ("jetstream: add stream 'OUT_0': ... (nats: Timeout)").
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------------
// The engine-neutral part: what the stages need from a broker.

/// One input message as the source puts it into the ring. `subject` and `data` stay valid until
/// the message is released (the ack stage does that); `handle` is the engine's message.
struct inbound {
  std::uint64_t sequence = 0;  ///< the input stream's sequence (Kafka: the partition's offset)
  std::string_view subject;
  std::string_view data;
  void* handle = nullptr;
};

/// Where a source engine resumes and what it has seen (counters: any thread, relaxed).
struct source_stats {
  std::uint64_t fetched = 0;      ///< messages handed to the ring
  std::uint64_t redelivered = 0;  ///< messages dropped because the ring already had them
  std::uint64_t resets = 0;       ///< consumer re-creations after a gap in deliveries
  std::uint64_t fetch_errors = 0; ///< failed fetches (the broker unreachable, a leader change)
  std::uint64_t commits = 0;      ///< acknowledgements sent
  std::uint64_t commit_errors = 0;
};

/// The input side of a broker. One consumer of one stream (or partition).
class source_engine {
 public:
  source_engine() = default;
  source_engine(const source_engine&) = delete;
  source_engine& operator=(const source_engine&) = delete;
  virtual ~source_engine() = default;
  /// Waits up to `wait` for at most out.size() messages and writes them to `out`; returns how
  /// many. They come in stream order with strictly increasing sequences and no message skipped
  /// (an engine that notices a gap re-positions its consumer instead of skipping). Transient
  /// failures return 0; a broker unreachable for longer than the engine's give-up time throws
  /// jetstream::error. The pump's thread only.
  virtual std::size_t fetch(std::span<inbound> out, std::chrono::milliseconds wait) = 0;
  /// Every message up to and including `last` has passed the last stage: acknowledge them to
  /// the broker (NATS: AckAll on `last`; Kafka: commit its offset). Never throws: an
  /// acknowledgement that fails is counted, and the broker re-delivers. Ack stage only.
  virtual void commit(const inbound& last) noexcept = 0;
  /// Frees the message behind `m` (after commit, or when it is dropped); clears `m`. Any thread,
  /// once per message.
  virtual void release(inbound& m) noexcept = 0;
  [[nodiscard]] virtual source_stats stats() const noexcept = 0;
};

/// One result for the sink to publish: the input sequence it came from and its payload.
struct publish_record {
  std::uint64_t input_sequence = 0;
  std::string_view payload;
};

/// How a sink engine reports each record of a publish() round: record_done(i, stored) exactly
/// once per record, from any thread (libnats' callback threads), possibly before publish()
/// returns. `stored`: the output holds the record's result (a duplicate of an earlier one
/// counts). Must not block.
class publish_completion {
 public:
  virtual void record_done(std::size_t index, bool stored) noexcept = 0;

 protected:
  ~publish_completion() = default;
};

/// Counters of a sink engine (any thread, relaxed).
struct sink_stats {
  std::uint64_t published = 0;   ///< publish calls (retries included)
  std::uint64_t stored = 0;      ///< acked as newly stored
  std::uint64_t duplicates = 0;  ///< acked as duplicates (de-duplicated by Msg-Id)
  std::uint64_t failed = 0;      ///< errors and timeouts
  std::uint64_t recoveries = 0;  ///< recover() calls
};

/// The output side of a broker.
class sink_engine {
 public:
  sink_engine() = default;
  sink_engine(const sink_engine&) = delete;
  sink_engine& operator=(const sink_engine&) = delete;
  virtual ~sink_engine() = default;
  /// Starts publishing `records` (increasing input sequences) without waiting for the broker,
  /// and reports every record through `done`. The output stores them in order: a record is
  /// stored only if every record before it (in this and earlier rounds) is. The sink stage only;
  /// `records` stay valid until every record is reported.
  virtual void publish(std::span<const publish_record> records, publish_completion& done) = 0;
  /// After a round that reported a failure: asks the broker what the output holds (blocks the
  /// calling thread for up to the engine's request timeout; throws jetstream::error if the
  /// broker does not answer). The sink stage only.
  virtual void recover() = 0;
  /// Stops waiting for the broker: every record of the current round not reported yet is
  /// reported now as not stored (its ack, should it come, is ignored). For a round the broker
  /// does not answer (the cluster unreachable: libnats keeps such publishes buffered). Sink
  /// stage.
  virtual void abandon() = 0;
  /// The last input sequence whose result the output is known to hold (0: none). Sink stage.
  [[nodiscard]] virtual std::uint64_t last_stored_input() const noexcept = 0;
  /// The last error the engine saw, for messages ("" if none). Sink stage.
  [[nodiscard]] virtual std::string last_error() const = 0;
  [[nodiscard]] virtual sink_stats stats() const noexcept = 0;
};

// ---------------------------------------------------------------------------------------------
// NATS JetStream: the connection, streams, and the two engines.

/// How to reach the cluster.
struct connection_options {
  /// Comma-separated URLs of the cluster's nodes ("nats://127.0.0.1:4222,nats://..."). The
  /// client reconnects to any of them, for ever, every `reconnect_wait`.
  std::string servers = "nats://127.0.0.1:4222";
  /// The client's name in the server's monitoring.
  std::string name = "rondo";
  /// Connect and request (stream and consumer management) timeout.
  std::chrono::milliseconds timeout{2000};
  std::chrono::milliseconds reconnect_wait{100};
};

/// A stream to create or update.
struct stream_config {
  std::string name;
  std::vector<std::string> subjects;
  /// Replicas (3: survives the loss of one node of a 3-node cluster).
  int replicas = 3;
  /// How long the stream remembers a Msg-Id to drop a re-published message: the longest
  /// outage after which re-delivered input is still de-duplicated (docs/jetstream.md).
  std::chrono::seconds duplicate_window{120};
  bool file_storage = true;
};

class connection;
namespace detail {
struct connection_state;
}

/// A libnats connection and JetStream context. Thread-safety: any thread.
class connection {
 public:
  /// Connects to one of options.servers. Throws jetstream::error naming the servers when none
  /// answers within options.timeout; std::invalid_argument for empty servers.
  explicit connection(connection_options options);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Creates the stream, or updates it if it exists with another configuration. Retries while
  /// the cluster has no leader yet, for up to `wait`; then throws jetstream::error with the
  /// server's answer. std::invalid_argument for an empty name or subject list.
  void ensure_stream(const stream_config& config,
                     std::chrono::milliseconds wait = std::chrono::seconds(30));
  /// The stream's last sequence (0 if empty). Throws jetstream::error.
  [[nodiscard]] std::uint64_t last_sequence(const std::string& stream);

  [[nodiscard]] const connection_options& options() const noexcept;
  /// The libnats objects (natsConnection*, jsCtx*), for code that uses libnats directly.
  [[nodiscard]] void* native_connection() const noexcept;
  [[nodiscard]] void* native_jetstream() const noexcept;

 private:
  std::unique_ptr<detail::connection_state> s_;
};

/// A durable pull consumer, as a source.
struct pull_source_options {
  std::string stream;
  /// The durable consumer's name (one per shard: "rondo-shard-0").
  std::string durable;
  /// The subjects this shard owns ("in.0"); empty: the whole stream.
  std::string filter_subject;
  /// A delivered message not acknowledged within this is delivered again (the broker's view;
  /// rondo drops re-deliveries of messages still in its ring).
  std::chrono::milliseconds ack_wait{30000};
  /// Unacknowledged messages the broker may hand out; at least the ring's capacity.
  std::int64_t max_ack_pending = 65536;
  /// fetch() (and the constructor) throws once the broker has been unreachable this long.
  std::chrono::milliseconds give_up_after{10000};
  /// Where a durable that does not exist starts: after this stream sequence. Pass the sink's
  /// last_stored_input(): a process killed between deleting and re-creating the durable then
  /// does not replay the whole stream (what it would replay is in the output already).
  std::uint64_t start_after = 0;
};

/// A durable pull consumer (AckAll) on one stream's subjects.
///
/// On construction it re-positions the durable at its ack floor + 1 (deleting and re-creating it
/// with that start sequence), so that everything not acknowledged is delivered again at once and
/// in order, not after ack_wait. fetch() checks that consumer sequences are consecutive; a gap
/// (deliveries lost with a node, a leader change) re-creates the consumer after the last message
/// it handed out, and re-deliveries of messages it already handed out are dropped.
///
/// Errors: the constructor throws jetstream::error (stream missing, cluster unreachable).
/// Thread-safety: see source_engine.
class pull_source final : public source_engine {
 public:
  pull_source(connection& conn, pull_source_options options);
  ~pull_source() override;

  std::size_t fetch(std::span<inbound> out, std::chrono::milliseconds wait) override;
  void commit(const inbound& last) noexcept override;
  void release(inbound& m) noexcept override;
  [[nodiscard]] source_stats stats() const noexcept override;
  /// The stream sequence the consumer started at (its ack floor + 1 at construction).
  [[nodiscard]] std::uint64_t started_at() const noexcept;

  struct state;

 private:
  std::unique_ptr<state> s_;
};

/// Asynchronous publishing to an output stream.
struct publish_sink_options {
  /// The output stream; this sink must be its only writer (the order guard is the stream's
  /// last sequence). One per shard: "OUT_0".
  std::string stream;
  /// The subject results are published on ("out.0").
  std::string subject;
  /// Msg-Id = "<msg_id_prefix>:<input sequence>"; name the input stream and shard
  /// ("IN/0"), so ids are unique per input.
  std::string msg_id_prefix;
  /// Publishes in flight at once (libnats' MaxPending); at least the sink stage's max batch.
  int max_pending = 65536;
  /// The order guard (Nats-Expected-Last-Sequence on each new record). Off: results are still
  /// stored at least once and de-duplicated by Msg-Id, but a result lost in flight while later
  /// ones are stored ends up after them (re-published), so order holds only without failures.
  bool order_guard = true;
};

/// Publishes results with Nats-Msg-Id "<prefix>:<input sequence>" and an order guard: each new
/// record carries Nats-Expected-Last-Sequence (the output's last sequence before it), so a
/// record whose predecessor was lost is refused, never stored out of order. Records whose input
/// sequence the output already holds (re-delivered input) are published with the Msg-Id and an
/// expectation that cannot hold, so the stream answers "duplicate" (shown in stats().duplicates)
/// and never stores them a second time, even past the duplicate window.
///
/// Acks arrive on libnats' threads and go to the publish_completion of their round; nothing on
/// the publish path takes a lock of rondo's.
///
/// Errors: the constructor throws jetstream::error (cluster unreachable, stream missing).
class publish_sink final : public sink_engine {
 public:
  publish_sink(connection& conn, publish_sink_options options);
  ~publish_sink() override;

  void publish(std::span<const publish_record> records, publish_completion& done) override;
  void recover() override;
  void abandon() override;
  [[nodiscard]] std::uint64_t last_stored_input() const noexcept override;
  [[nodiscard]] std::string last_error() const override;
  [[nodiscard]] sink_stats stats() const noexcept override;

  struct state;

 private:
  std::unique_ptr<state> s_;
};

// ---------------------------------------------------------------------------------------------
// The rondo side: the event, the source pump, the sink stage and the ack stage.

/// A ring slot: the input message (the pump writes it), the compute stage's own state, and the
/// result the sink publishes (its buffer is reused slot by slot).
template <class State>
struct event {
  inbound in;
  State state{};
  std::string out;
};

/// Options of source_pump.
struct source_pump_options {
  /// At most this many messages per fetch (and never more than the ring has room for).
  std::size_t max_fetch = 512;
  /// How long one fetch waits for messages.
  std::chrono::milliseconds fetch_wait{100};
};

namespace detail {
/// Collects one publish round's reports. The report that completes the round requests stop on
/// the round's token; the sink stage waits on an io_context timer cancelled by that token, so a
/// libnats thread resumes the stage through the executor's own cancellation path (it posts to
/// the context; no lock of rondo's on the way) and an unanswered round ends at the timeout.
class round_completion final : public publish_completion {
 public:
  void arm(std::size_t n);
  void record_done(std::size_t index, bool stored) noexcept override;
  /// Every record reported, and no reporter touches this object any more.
  [[nodiscard]] bool complete() const noexcept;
  [[nodiscard]] bool failed() const noexcept;
  /// The last report is under way (stop requested; complete() follows at once).
  [[nodiscard]] bool stopping() const noexcept;
  [[nodiscard]] std::stop_token token() const noexcept { return stop_.get_token(); }

 private:
  std::stop_source stop_;
  std::atomic<std::size_t> remaining_{0};
  std::atomic<bool> failed_{false};
  std::atomic<bool> complete_{false};
};

/// The sink stage's body, for every event type: publishes the records, retries failed rounds
/// after engine.recover() until `give_up_after`, then throws jetstream::error.
struct sink_core {
  sink_engine* engine;
  std::chrono::milliseconds give_up_after;
  std::chrono::milliseconds retry_backoff;
  std::chrono::milliseconds round_timeout;
  round_completion done;
  task<> publish(std::span<const publish_record> records, std::stop_token stop);
};
}  // namespace detail

/// Options of sink.
struct sink_options {
  /// A batch whose results are not all stored this long after its first publish halts the
  /// stage with jetstream::error (the disruptor's close report then counts its events as
  /// unprocessed, and none of them is acknowledged).
  std::chrono::milliseconds give_up_after{15000};
  /// Pause before a failed round is recovered and retried.
  std::chrono::milliseconds retry_backoff{100};
  /// A round the broker has not fully answered after this is abandoned (sink_engine::abandon)
  /// and retried (the only publish timeout: publish_sink sets none per message).
  std::chrono::milliseconds round_timeout{3000};
};

/// The sink stage: `.stage("sink", snk.handler(), rondo::after("compute")).on(i)` on an
/// io_context of a runtime. Each batch's results (event::out) are published; the handler's task
/// completes, so the stage's sequence passes the batch, only once the output holds all of them.
///
/// Errors: a batch not stored within give_up_after throws jetstream::error out of the handler
/// (the stage halts under the default error policy). Thread-safety: the stage's coroutine only.
template <class State>
class sink {
 public:
  sink(sink_engine& engine, sink_options options = {})
      : core_{&engine, options.give_up_after, options.retry_backoff, options.round_timeout, {}} {
    if (options.give_up_after.count() <= 0 || options.round_timeout.count() <= 0 ||
        options.retry_backoff.count() < 0) {
      throw std::invalid_argument(fmt::format(
          "jetstream::sink: give_up_after {} ms, round_timeout {} ms (both > 0), retry_backoff {} "
          "ms (>= 0)",
          options.give_up_after.count(), options.round_timeout.count(),
          options.retry_backoff.count()));
    }
  }
  sink(const sink&) = delete;
  sink& operator=(const sink&) = delete;

  /// The async batch handler for the builder.
  [[nodiscard]] auto handler() {
    return [this](batch<event<State>> b) -> task<> { return publish(b); };
  }

  /// Publishes the batch's results and completes once all are stored.
  task<> publish(batch<event<State>> b) {
    records_.clear();
    records_.reserve(b.size());
    for (event<State>& e : b) records_.push_back(publish_record{e.in.sequence, e.out});
    return core_.publish(records_, b.stop_token());
  }

 private:
  detail::sink_core core_;
  std::vector<publish_record> records_;
};

/// The ack stage (the last one): releases every message and acknowledges the last of each
/// batch. `.stage("ack", rondo::jetstream::ack_handler<State>(engine), rondo::after("sink"))`.
template <class State>
[[nodiscard]] auto ack_handler(source_engine& engine) {
  return [&engine](event<State>& e, std::int64_t, bool end_of_batch) {
    if (end_of_batch) engine.commit(e.in);
    engine.release(e.in);
  };
}

/// The source: a thread that fetches from the engine into the ring, never more than the ring
/// has room for (so nothing is buffered outside the ring and the broker holds the rest).
///
/// Errors: a fetch that throws (the broker unreachable past its give-up time) ends the thread;
/// failure() then has the exception and on_failure (if set) is called on the pump's thread.
/// A disruptor that stops (halt, close) ends it too, without a failure. Messages fetched but not
/// yet in the ring are released.
/// Thread-safety: start/stop from one thread; the counters from any.
template <class State>
class source_pump {
 public:
  source_pump(source_engine& engine, source_pump_options options = {})
      : engine_(&engine), opts_(options) {
    if (options.max_fetch == 0) throw std::invalid_argument("source_pump: max_fetch 0");
  }
  ~source_pump() { stop(); }
  source_pump(const source_pump&) = delete;
  source_pump& operator=(const source_pump&) = delete;

  /// Starts the thread. `on_failure` runs on it when a fetch fails for good.
  void start(publisher<event<State>>& pub,
             std::function<void(std::exception_ptr)> on_failure = {}) {
    if (thread_.joinable()) throw std::logic_error("source_pump::start(): already started");
    on_failure_ = std::move(on_failure);
    thread_ = std::jthread([this, &pub](std::stop_token st) { run(pub, st); });
  }
  /// Stops fetching and joins the thread (the ring keeps what was put in it: drain it next).
  void stop() {
    if (thread_.joinable()) {
      thread_.request_stop();
      thread_.join();
    }
  }
  /// True once the thread has ended (stopped, failed, or the disruptor stopped).
  [[nodiscard]] bool finished() const noexcept {
    return finished_.load(std::memory_order_acquire);  // pairs with the release store in run()
  }
  /// The fetch failure that ended the thread, if any (read after finished()).
  [[nodiscard]] std::exception_ptr failure() const noexcept { return failure_; }
  /// Steady-clock time (ns since its epoch) of the last fetch that returned a message or the
  /// last moment the ring was full, for idle detection.
  [[nodiscard]] std::int64_t last_message_ns() const noexcept {
    return last_message_ns_.load(std::memory_order_relaxed);  // a hint; nothing pairs with it
  }

 private:
  void run(publisher<event<State>>& pub, const std::stop_token& st) {
    std::vector<inbound> got(opts_.max_fetch);
    std::size_t n = 0;
    std::chrono::microseconds backoff{50};
    try {
      while (!st.stop_requested()) {
        const std::int64_t room = pub.remaining_capacity();
        if (room <= 0) {
          if (pub.sequencer().is_closed()) break;  // halted or closed: nothing will free room
          // The ack stage frees room batch by batch; it has no doorbell for this thread, so
          // poll it, backing off from 50 us to 1 ms (the ring is full: the stages have a ring's
          // worth of work, and on a small machine the cluster needs the CPU more than this
          // thread needs to wake). A full ring is busy, not idle.
          touch();
          std::this_thread::sleep_for(backoff);
          backoff = std::min(backoff * 2, std::chrono::microseconds(1000));
          continue;
        }
        backoff = std::chrono::microseconds(50);
        const std::size_t want = std::min(opts_.max_fetch, static_cast<std::size_t>(room));
        n = engine_->fetch(std::span<inbound>(got.data(), want), opts_.fetch_wait);
        if (n == 0) continue;
        // Only this thread publishes, so the room seen above is still there.
        auto c = pub.try_reserve(static_cast<std::int64_t>(n));
        if (!c) throw std::logic_error("source_pump: the ring lost room that it had");
        std::size_t i = 0;
        for (auto [seq, ev] : *c) {
          (void)seq;
          ev.in = got[i++];
        }
        c->publish();
        n = 0;
        touch();
      }
    } catch (const rondo::closed&) {
      // The disruptor stopped (halted or closed): not the pump's failure.
    } catch (...) {
      failure_ = std::current_exception();
    }
    for (std::size_t i = 0; i < n; ++i) engine_->release(got[i]);
    finished_.store(true, std::memory_order_release);  // pairs with finished()'s acquire
    if (failure_ && on_failure_) on_failure_(failure_);
  }

  void touch() noexcept {
    last_message_ns_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                           std::memory_order_relaxed);  // a hint, see last_message_ns()
  }

  source_engine* engine_;
  source_pump_options opts_;
  std::function<void(std::exception_ptr)> on_failure_;
  std::exception_ptr failure_;
  std::atomic<bool> finished_{false};
  std::atomic<std::int64_t> last_message_ns_{0};
  std::jthread thread_;
};

}  // namespace rondo::jetstream
