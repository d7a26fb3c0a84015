#pragma once
// The disruptor DSL: a ring, a sequencer, and named stages arranged in a dependency graph, with
// a lifecycle (start, drain, close, join) and an error policy.
//
//   auto d = rondo::disruptor<order>::builder()
//                .capacity(4096)
//                .producers(rondo::producer_type::multi)
//                .wait(rondo::blocking{})
//                .stage("decode", decode)
//                .stage("journal", journal, rondo::after("decode"))
//                .stage("match", match, rondo::after("decode"))
//                .stage("reply", reply, rondo::after("journal", "match"))
//                .build();
//   d.start();
//   d.publisher().publish_event([](order& o, std::int64_t seq) { ... });
//   d.drain();
//
// Each stage reads a sequence only after the producers published it and every stage it runs
// after has passed it; producers gate on the terminal stages (those nobody runs after).
// Each stage runs on a thread of its own (stage runners are pluggable; coroutine stages are
// another runner).
//
// Lifecycle calls (start, drain, drain_for, close, join) are meant for one owning thread; a
// mutex makes concurrent misuse an error rather than a race. Handler failures arrive from stage
// threads at any time.

#include <rondo/core/batch_processor.hpp>
#include <rondo/core/errors.hpp>
#include <rondo/core/event_poller.hpp>
#include <rondo/core/multi_producer_sequencer.hpp>
#include <rondo/core/ring_buffer.hpp>
#include <rondo/core/sequence.hpp>
#include <rondo/core/sequence_barrier.hpp>
#include <rondo/core/single_producer_sequencer.hpp>
#include <rondo/core/stage_metrics.hpp>
#include <rondo/core/wait_strategy.hpp>
#include <rondo/coro/scheduler.hpp>
#include <rondo/dsl/batch.hpp>
#include <rondo/dsl/coro_stage.hpp>
#include <rondo/dsl/publisher.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace rondo {

/// The stages a stage runs after: `rondo::after("decode", "match")`.
struct after_t {
  std::vector<std::string> names;
};
template <class... Names>
[[nodiscard]] after_t after(Names&&... names) {
  return after_t{{std::string(std::forward<Names>(names))...}};
}

/// What close() reports.
struct close_report {
  std::int64_t published = 0;    ///< events published (claims given back are not counted)
  std::int64_t unprocessed = 0;  ///< published events not handled by every stage
  /// Stages that halted on a handler failure (an I/O cancelled by the close, say: its batch is
  /// among the unprocessed events). join() rethrows the first failure.
  int failed_stages = 0;
};

/// One stage's name, position and counters.
struct stage_report {
  std::string name;
  std::int64_t position = initial_sequence;
  stage_metrics_snapshot metrics;
  /// Where the stage runs as a coroutine (compare with a runtime's schedulers()); empty for a
  /// stage on a thread of its own and for a poller.
  scheduler_ref scheduler;
};

namespace detail {

template <class T, class H>
class thread_stage_runner final : public stage_runner {
 public:
  thread_stage_runner(ring_buffer<T>& ring, const sequencer& seqr,
                      std::vector<const sequence*> deps, H handler, stage_options opts,
                      std::string name, bool metrics)
      : barrier_(seqr, std::move(deps)),
        proc_(ring, barrier_, std::move(handler), std::move(opts), std::move(name), metrics) {}
  ~thread_stage_runner() override { join(); }

  void start(std::function<void(const stage_error&)> on_failure) override {
    thread_ = std::thread([this, cb = std::move(on_failure)] {
      // Release: pairs with the acquire load in thread_id() (lifecycle calls made on this
      // thread are refused by comparing against it).
      id_.store(std::this_thread::get_id(), std::memory_order_release);
      try {
        proc_.run();
      } catch (const stage_error& e) {
        cb(e);
      } catch (...) {
        // run() turns handler and hook failures into stage_error; anything else (a bad_alloc
        // building the error) still halts rather than terminating the process.
        cb(stage_error(proc_.name(), proc_.position().get_relaxed() + 1, std::current_exception()));
      }
      // Pairs with the acquire load in finished().
      done_.store(true, std::memory_order_release);
    });
    started_ = true;
  }
  [[nodiscard]] bool finished() const noexcept override {
    // A stage that never started has nothing in flight. Pairs with the release store at the end
    // of the thread.
    return !started_ || done_.load(std::memory_order_acquire);
  }
  [[nodiscard]] std::int64_t tombstones_passed() const noexcept override {
    return proc_.tombstones_passed();
  }
  [[nodiscard]] bool runs_on_calling_thread() const noexcept override {
    // Pairs with the release store at the start of the thread.
    return id_.load(std::memory_order_acquire) == std::this_thread::get_id();
  }
  void join() noexcept override {
    if (thread_.joinable()) thread_.join();
  }
  sequence& position() noexcept override { return proc_.position(); }
  sequence_barrier& barrier() noexcept override { return barrier_; }
  stage_metrics_snapshot metrics() const noexcept override { return proc_.metrics(); }

 private:
  sequence_barrier barrier_;
  batch_processor<T, H> proc_;
  std::thread thread_;
  bool started_ = false;  // set by the lifecycle thread before anyone reads it
  std::atomic<bool> done_{false};
  std::atomic<std::thread::id> id_{};
};

template <class T>
class poller_stage_runner final : public stage_runner {
 public:
  poller_stage_runner(ring_buffer<T>& ring, const sequencer& seqr,
                      std::vector<const sequence*> deps, bool metrics)
      : poller_(ring, seqr, std::move(deps), metrics) {}
  void start(std::function<void(const stage_error&)>) override {}
  // A poller is driven by its owner; the disruptor cannot wait for it once it is alerted or its
  // owner has polled past the drain limit.
  [[nodiscard]] bool finished() const noexcept override {
    return poller_.barrier().should_stop(poller_.position().get() + 1);
  }
  void join() noexcept override {}
  [[nodiscard]] bool runs_on_calling_thread() const noexcept override { return false; }
  sequence& position() noexcept override { return poller_.position(); }
  sequence_barrier& barrier() noexcept override { return poller_.barrier(); }
  stage_metrics_snapshot metrics() const noexcept override { return poller_.metrics(); }
  [[nodiscard]] std::int64_t tombstones_passed() const noexcept override {
    return poller_.tombstones_passed();
  }
  event_poller<T>& poller() noexcept { return poller_; }

 private:
  event_poller<T> poller_;
};

}  // namespace detail

/// How disruptor::builder::executor() spreads stages that have no .on() (see placement()).
enum class placement : std::uint8_t {
  colocate,    ///< light stages on scheduler 0, stage_options::heavy ones round-robin on the rest
  round_robin  ///< every stage in turn, in the order added
};

/// A disruptor of events of type T. Move-only; see the file comment for the model.
template <class T>
class disruptor {
  struct state;

 public:
  class builder;

  disruptor(disruptor&&) noexcept = default;
  /// Shuts down the disruptor being replaced (as the destructor does) before taking `o`'s.
  disruptor& operator=(disruptor&& o) noexcept {
    if (this != &o) {
      if (s_) s_->shutdown_quietly();
      s_ = std::move(o.s_);
    }
    return *this;
  }
  /// Closes (if still running) and joins every stage thread. Never throws. Waits for in-flight
  /// batches and for claims already granted to be published or dropped.
  ~disruptor() {
    if (s_) s_->shutdown_quietly();
  }

  /// Starts every stage. Throws std::logic_error if already started.
  void start() { st().start(); }

  /// The producer handle (thread-safe for producer_type::multi).
  [[nodiscard]] rondo::publisher<T>& publisher() { return *st().pub; }
  /// The coroutine handle on the same publisher: `co_await d.coro_publisher().reserve(n)`.
  [[nodiscard]] rondo::coro_publisher<T> coro_publisher() { return st().pub->coro(); }

  /// Stops new reservations, waits until every stage has handled every published event, stops
  /// the stages. Throws rondo::stage_error if a handler halted the disruptor (before or during
  /// the drain), std::logic_error if never started, already drained or closed.
  void drain() { (void)st().drain_until(wait_strategy::clock::time_point::max()); }

  /// As drain(), giving up after `timeout`: returns false if granted claims are still open or
  /// the stages have not finished by then (the disruptor stays draining; call drain_for again,
  /// or close()). Throws std::invalid_argument for a negative timeout.
  [[nodiscard]] bool drain_for(std::chrono::nanoseconds timeout) {
    return st().drain_until(detail::deadline_after(timeout, "disruptor::drain_for"));
  }

  /// Stops new reservations and stops every stage after its in-flight batch; reports how many
  /// events were published and how many of them were not handled by every stage. Producers waiting in reserve() get
  /// rondo::closed. Throws std::logic_error if already drained or closed. Does not throw a
  /// handler failure: join() does.
  close_report close() { return st().close(); }

  /// Waits for every stage thread to exit (after drain, close or a handler failure), then
  /// rethrows the first handler failure as rondo::stage_error, if any.
  void join() { st().join(); }

  /// The poller stage registered under `name`. Throws std::invalid_argument for an unknown name
  /// or a name that is not a poller.
  ///
  /// drain() waits for pollers too, and only their owners can move them: if the thread that
  /// drains also polls, begin with drain_for(0ns) (stops producers, sets the limit, returns at
  /// once), poll until poll_state::stopped, then drain().
  [[nodiscard]] event_poller<T>& poller(std::string_view name) { return st().poller(name); }

  /// Names, positions and counters of every stage, in topological order (counters are zero
  /// unless the builder enabled metrics).
  [[nodiscard]] std::vector<stage_report> metrics() const { return st().metrics(); }

  /// The report of one stage. Throws std::invalid_argument for an unknown name.
  [[nodiscard]] stage_report metrics(std::string_view name) const {
    for (auto& r : st().metrics()) {
      if (r.name == name) return r;
    }
    throw std::invalid_argument(
        fmt::format("disruptor::metrics(\"{}\"): no stage of that name", name));
  }

  /// The position of the stage registered under `name`: the last sequence it has finished
  /// (initial_sequence before any). Read it with get() (acquire: the stage's work on the events
  /// up to it is visible). For waits outside the stages (rondo/asio.hpp's
  /// async_wait_for_position). Throws std::invalid_argument for an unknown name.
  [[nodiscard]] const sequence& stage_position(std::string_view name) const {
    return st().runner(name, "stage_position").position();
  }
  /// The barrier that stage waits on: its should_stop(s) tells a waiter that the stage will not
  /// go on to s (past the drain limit, closed or halted). Throws as stage_position().
  [[nodiscard]] const sequence_barrier& stage_barrier(std::string_view name) const {
    return st().runner(name, "stage_barrier").barrier();
  }

  [[nodiscard]] ring_buffer<T>& ring() { return st().ring; }
  [[nodiscard]] const sequencer& sequencer_of() const { return *st().seqr; }

 private:
  explicit disruptor(std::unique_ptr<state> s) : s_(std::move(s)) {}

  state& st() const {
    if (!s_) throw std::logic_error("rondo::disruptor: used after it was moved from");
    return *s_;
  }

  enum class phase : std::uint8_t { built, running, draining, drained, closed };

  struct state {
    state(wait_config w, std::int64_t capacity, producer_type p,
          const std::function<T(std::int64_t)>& factory)
        : waits(w), ring(make_ring(capacity, factory)) {
      if (p == producer_type::single) {
        single = std::make_unique<single_producer_sequencer>(capacity, waits);
        seqr = single.get();
        pub.emplace(ring, *single);
      } else {
        multi = std::make_unique<multi_producer_sequencer>(capacity, waits);
        seqr = multi.get();
        pub.emplace(ring, *multi);
      }
    }

    static ring_buffer<T> make_ring(std::int64_t capacity,
                                    const std::function<T(std::int64_t)>& factory) {
      if (factory) return ring_buffer<T>(capacity, factory);
      if constexpr (std::default_initializable<T>) {
        return ring_buffer<T>(capacity);
      } else {
        throw std::invalid_argument(
            "the event type is not default-constructible: give the builder an event_factory");
      }
    }

    void start() {
      check_not_stage_thread("start");
      std::lock_guard lk(lifecycle);
      if (ph != phase::built) throw std::logic_error("disruptor::start(): already started");
      ph = phase::running;
      try {
        for (auto& r : runners) {
          r->start([this](const stage_error& e) { halt(e); });
        }
      } catch (...) {
        // A thread could not be created: stop the stages already running, as close() would.
        ph = phase::closed;
        seqr->close();
        for (auto& r : runners) r->barrier().alert();
        join_threads();
        throw;
      }
    }

    // A lifecycle call on a stage's own thread would wait for itself.
    void check_not_stage_thread(const char* what) const {
      for (std::size_t i = 0; i < runners.size(); ++i) {
        if (runners[i]->runs_on_calling_thread()) {
          throw std::logic_error(fmt::format(
              "disruptor::{}() called from the thread of stage '{}': it would wait for itself",
              what, names[i]));
        }
      }
    }

    // Called on a stage thread whose handler failed under the halt policy.
    void halt(const stage_error& e) {
      {
        std::lock_guard lk(failure_mu);
        if (!failure) failure = e;
      }
      // Release: pairs with the acquire load in close().
      failures.fetch_add(1, std::memory_order_release);
      // Pairs with the acquire loads in drain_until()/close() waits.
      halted.store(true, std::memory_order_release);
      seqr->close();
      for (auto& r : runners) r->barrier().alert();
    }

    [[nodiscard]] bool is_halted() const noexcept {
      // Pairs with the release store in halt().
      return halted.load(std::memory_order_acquire);
    }

    [[nodiscard]] bool all_finished() const noexcept {
      return std::all_of(runners.begin(), runners.end(),
                         [](const auto& r) { return r->finished(); });
    }

    // Waits (backing off from yield to 1 ms sleeps) until every stage finished or the deadline.
    bool wait_finished(wait_strategy::clock::time_point deadline) const {
      auto pause = std::chrono::microseconds{20};
      while (!all_finished()) {
        if (wait_strategy::clock::now() >= deadline) return false;
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::microseconds{1000});
      }
      return true;
    }

    void join_threads() noexcept {
      for (auto& r : runners) r->join();
    }

    void rethrow_failure() {
      std::lock_guard lk(failure_mu);
      if (failure) throw *failure;
    }

    bool drain_until(wait_strategy::clock::time_point deadline) {
      check_not_stage_thread("drain");
      std::lock_guard lk(lifecycle);
      switch (ph) {
        case phase::built:
          throw std::logic_error("disruptor::drain(): the disruptor was never started");
        case phase::drained:
          throw std::logic_error("disruptor::drain(): already drained");
        case phase::closed:
          throw std::logic_error("disruptor::drain(): already closed");
        case phase::running:
          ph = phase::draining;
          seqr->close();
          break;
        case phase::draining:
          break;
      }
      if (!limit_set) {
        const auto f = seqr->settle_until(deadline);
        if (!f) return false;  // a granted claim is still open; the next call goes on from here
        final_sequence = *f;
        for (auto& r : runners) r->barrier().set_limit(final_sequence);
        limit_set = true;
      }
      if (!wait_finished(deadline)) return false;
      join_threads();
      ph = phase::drained;
      rethrow_failure();
      return true;
    }

    close_report close() {
      check_not_stage_thread("close");
      std::lock_guard lk(lifecycle);
      if (ph == phase::drained) throw std::logic_error("disruptor::close(): already drained");
      if (ph == phase::closed) throw std::logic_error("disruptor::close(): already closed");
      ph = phase::closed;
      seqr->close();
      // I/O in flight in coroutine stages that passed the token to .cancel_on() ends now.
      closing_source.request_stop();
      // Waits for claims already granted: their producers are filling them right now.
      final_sequence = *seqr->settle_until(wait_strategy::clock::time_point::max());
      for (auto& r : runners) {
        // The limit keeps stages from walking onto tombstones that producers racing with the
        // close publish past the final sequence.
        r->barrier().set_limit(final_sequence);
        r->barrier().alert();
      }
      (void)wait_finished(wait_strategy::clock::time_point::max());
      join_threads();
      // Tombstones (claims given back) are sequences, not events: the report leaves them out.
      // The slowest stage has passed tombstones_passed() of them; the rest up to the final
      // sequence are counted from the flags.
      detail::stage_runner* slowest = nullptr;
      for (auto& r : runners) {
        if (slowest == nullptr || r->position().get() < slowest->position().get()) {
          slowest = r.get();
        }
      }
      const std::int64_t done = slowest->position().get();
      const std::int64_t pending_tombs = seqr->count_tombstones(done + 1, final_sequence);
      close_report rep;
      rep.published = final_sequence + 1 - slowest->tombstones_passed() - pending_tombs;
      rep.unprocessed = final_sequence - done - pending_tombs;
      // Acquire: pairs with the release increment in halt().
      rep.failed_stages = failures.load(std::memory_order_acquire);
      return rep;
    }

    void join() {
      check_not_stage_thread("join");
      std::lock_guard lk(lifecycle);
      join_threads();
      rethrow_failure();
    }

    void shutdown_quietly() noexcept {
      try {
        check_not_stage_thread("~disruptor");
        bool need_close = false;
        {
          std::lock_guard lk(lifecycle);
          need_close = ph == phase::running || ph == phase::draining;
        }
        if (need_close) (void)close();
      } catch (const std::logic_error& e) {
        // Destroyed on one of its own stage threads: joining would wait for ever and not joining
        // would free what that thread is running on. Neither is acceptable; say so and stop.
        // std::fprintf: fmt::print throws when the write fails, and this path must reach abort.
        std::fprintf(stderr, "rondo: %s\n", e.what());
        std::abort();
      } catch (...) {
      }
      join_threads();
    }

    event_poller<T>& poller(std::string_view name) {
      for (std::size_t i = 0; i < names.size(); ++i) {
        if (names[i] != name) continue;
        auto* p = dynamic_cast<detail::poller_stage_runner<T>*>(runners[i].get());
        if (p == nullptr) {
          throw std::invalid_argument(
              fmt::format("disruptor::poller(\"{}\"): that stage is not a poller", name));
        }
        return p->poller();
      }
      throw std::invalid_argument(
          fmt::format("disruptor::poller(\"{}\"): no stage of that name", name));
    }

    detail::stage_runner& runner(std::string_view name, const char* what) const {
      for (std::size_t i = 0; i < names.size(); ++i) {
        if (names[i] == name) return *runners[i];
      }
      throw std::invalid_argument(
          fmt::format("disruptor::{}(\"{}\"): no stage of that name", what, name));
    }

    std::vector<stage_report> metrics() const {
      std::vector<stage_report> out;
      for (std::size_t i = 0; i < names.size(); ++i) {
        out.push_back(
            {names[i], runners[i]->position().get(), runners[i]->metrics(), schedulers[i]});
      }
      return out;
    }

    wait_strategy waits;
    ring_buffer<T> ring;
    std::unique_ptr<single_producer_sequencer> single;
    std::unique_ptr<multi_producer_sequencer> multi;
    sequencer* seqr = nullptr;
    std::optional<rondo::publisher<T>> pub;
    std::vector<std::string> names;  // topological order, parallel to runners
    std::vector<scheduler_ref> schedulers;  // parallel to names (empty: a thread or a poller)
    // Before the runners, which point at the token. close() requests stop: coroutine stages pass the token to their I/O (batch::stop_token()).
    std::stop_source closing_source;
    std::stop_token closing_token = closing_source.get_token();
    std::vector<std::unique_ptr<detail::stage_runner>> runners;
    std::mutex lifecycle;
    phase ph = phase::built;
    std::int64_t final_sequence = initial_sequence;
    bool limit_set = false;  // drain: the final sequence is known and every stage has its limit
    std::atomic<bool> halted{false};
    std::mutex failure_mu;
    std::atomic<int> failures{0};  // halts, counted for close_report
    std::optional<stage_error> failure;
  };

  std::unique_ptr<state> s_;
};

/// Configures and builds a disruptor. Every error is reported by build() as
/// std::invalid_argument naming the offending value or stage.
template <class T>
class disruptor<T>::builder {
 public:
  builder() = default;
  builder(builder&&) noexcept = default;
  builder& operator=(builder&&) noexcept = default;
  // Handlers are moved into the disruptor at build(): copies would share them.
  builder(const builder&) = delete;
  builder& operator=(const builder&) = delete;

  /// Ring capacity: a power of two >= 1 (default 1024).
  builder& capacity(std::int64_t n) {
    capacity_ = n;
    return *this;
  }
  /// producer_type::single (default: one producing thread) or producer_type::multi.
  builder& producers(producer_type p) {
    producers_ = p;
    return *this;
  }
  /// The wait strategy of every stage and of producers waiting for capacity. Default:
  /// spin_then_suspend{} (spin, yield, then suspend or sleep; docs/tuning.md says why it is not
  /// busy_spin, which collapses when producers and stages outnumber the cores).
  builder& wait(wait_config w) {
    wait_ = w;
    return *this;
  }
  /// Per-stage counters (default off).
  builder& metrics(bool on = true) {
    metrics_ = on;
    return *this;
  }
  /// Constructs slot i as factory(i) instead of default construction.
  builder& event_factory(std::function<T(std::int64_t)> f) {
    factory_ = std::move(f);
    return *this;
  }

  /// A stage calling handler(event, sequence, end_of_batch) for every event, after the stages
  /// named in `deps` (none: right after the producers). It runs on a thread of its own, unless
  /// .on(scheduler) follows: then it is a coroutine on that scheduler.
  template <class H>
    requires event_handler<H, T>
  builder& stage(std::string name, H handler, after_t deps = {}, stage_options opts = {}) {
    return add_stage<H, detail::coro_kind::sync>(std::move(name), std::move(handler),
                                                 std::move(deps), std::move(opts));
  }

  /// An async batch stage: `task<> handler(rondo::batch<T>)` is awaited once per batch and the
  /// stage's sequence advances only when its task completes (stages after it see only completed
  /// work). A coroutine stage: .on(scheduler) must follow. The handler's frame is recycled per
  /// batch (steady state allocates nothing).
  template <class H>
    requires(async_batch_handler<H, T> && !event_handler<H, T>)
  builder& stage(std::string name, H handler, after_t deps = {}, stage_options opts = {}) {
    return add_stage<H, detail::coro_kind::async>(std::move(name), std::move(handler),
                                                        std::move(deps), std::move(opts));
  }

  /// A pull-loop stage: `task<> handler(rondo::consumer<T>& in)` runs once and loops on
  /// `co_await in.next()` until it yields nothing. A coroutine stage: .on(scheduler) must follow.
  template <class H>
    requires(pull_handler<H, T> && !event_handler<H, T> && !async_batch_handler<H, T>)
  builder& stage(std::string name, H handler, after_t deps = {}, stage_options opts = {}) {
    return add_stage<H, detail::coro_kind::pull>(std::move(name), std::move(handler),
                                                       std::move(deps), std::move(opts));
  }

  template <class H>
    requires(event_handler<H, T> || async_batch_handler<H, T> || pull_handler<H, T>)
  builder& stage(std::string name, H handler, stage_options opts) {
    return stage(std::move(name), std::move(handler), after_t{}, std::move(opts));
  }

  /// Runs the stage added last as a coroutine on `s` (its waits spin, yield, then suspend per
  /// the spin_then_suspend policy, and resume on `s`). `s` must outlive the disruptor. Throws
  /// std::logic_error if no stage was added yet or the last one is a poller.
  builder& on(scheduler_ref s) {
    if (!specs_.empty()) specs_.back().pool_index.reset();
    if (specs_.empty()) throw std::logic_error("disruptor::builder::on(): add a stage() first");
    if (specs_.back().is_poller) {
      throw std::logic_error(fmt::format(
          "disruptor::builder::on(): '{}' is a poller; its owner drives it", specs_.back().name));
    }
    specs_.back().sched = s;
    return *this;
  }

  /// Runs the stage added last as a coroutine on scheduler i of the executor (see executor()).
  /// build() throws std::invalid_argument when i is out of range. Throws std::logic_error if no
  /// stage was added yet or the last one is a poller.
  builder& on(std::size_t i) {
    (void)on(scheduler_ref{});
    specs_.back().pool_index = i;
    return *this;
  }

  /// A pool of schedulers (the contexts of a rondo::runtime, say) for coroutine stages: every
  /// handler stage without an explicit .on() becomes a coroutine on the pool, placed by
  /// `placement()` (by default: light stages together on the first scheduler, heavy ones —
  /// stage_options::heavy — round-robin over the others); .on(i) picks pool entry i. The
  /// schedulers must outlive the disruptor. Throws std::invalid_argument for an empty pool.
  builder& executor(std::vector<scheduler_ref> pool) {
    if (pool.empty()) throw std::invalid_argument("disruptor::builder::executor(): empty pool");
    pool_ = std::move(pool);
    return *this;
  }
  /// Anything with schedulers() (rondo::runtime): `.executor(rt)`.
  template <class E>
    requires requires(E& e) {
      { e.schedulers() } -> std::convertible_to<std::vector<scheduler_ref>>;
    }
  builder& executor(E& e) {
    return executor(std::vector<scheduler_ref>(e.schedulers()));
  }

  /// How stages without .on() are spread over the executor pool (docs/tuning.md, "Placement"):
  /// placement::colocate (the default: every hop between schedulers moves the event's cache
  /// lines between cores, so light stages share scheduler 0 and only stage_options::heavy
  /// stages go round-robin over schedulers 1..n-1) or placement::round_robin (every stage in
  /// turn, in the order added).
  builder& placement(rondo::placement p) noexcept {
    placement_ = p;
    return *this;
  }

  /// A stage driven by the user's calls to disruptor::poller(name).poll(handler).
  builder& poller(std::string name, after_t deps = {}) {
    specs_.push_back(spec{std::move(name), std::move(deps.names),
                          [](ring_buffer<T>& ring, const sequencer& seqr,
                             std::vector<const sequence*> d, const std::string&, bool metrics,
                             scheduler_ref) -> std::unique_ptr<detail::stage_runner> {
                            return std::make_unique<detail::poller_stage_runner<T>>(
                                ring, seqr, std::move(d), metrics);
                          },
                          {}, true, false, std::nullopt});
    return *this;
  }

  /// Validates the topology and builds the disruptor (not started). Throws
  /// std::invalid_argument for: a capacity that is not a power of two, no stages, an empty or
  /// duplicate stage name, a dependency on an unknown stage, a dependency cycle. A builder builds
  /// once (std::logic_error after).
  disruptor build() {
    if (used_) throw std::logic_error("disruptor::builder::build(): this builder was already used");
    detail::validate_capacity(capacity_);
    if (specs_.empty()) {
      throw std::invalid_argument("disruptor has no stages: add at least one stage() or poller()");
    }
    std::map<std::string, std::size_t, std::less<>> index;
    std::size_t round_robin = 0;
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      if (specs_[i].name.empty()) {
        throw std::invalid_argument(fmt::format("stage #{} has an empty name", i));
      }
      if (specs_[i].pool_index) {
        const std::size_t k = *specs_[i].pool_index;
        if (k >= pool_.size()) {
          throw std::invalid_argument(
              fmt::format("stage '{}': .on({}) but the executor has {} schedulers{}",
                          specs_[i].name, k, pool_.size(),
                          pool_.empty() ? " (call .executor() first)" : ""));
        }
        specs_[i].sched = pool_[k];
      } else if (!specs_[i].sched && !specs_[i].is_poller && !pool_.empty()) {
        if (placement_ == rondo::placement::round_robin) {
          specs_[i].sched = pool_[round_robin++ % pool_.size()];
        } else if (!specs_[i].heavy || pool_.size() == 1) {
          specs_[i].sched = pool_[0];
        } else {
          specs_[i].sched = pool_[1 + round_robin++ % (pool_.size() - 1)];
        }
      }
      if (specs_[i].needs_scheduler && !specs_[i].sched) {
        throw std::invalid_argument(fmt::format(
            "stage '{}' has a coroutine handler but no scheduler: call .on(s) after .stage()",
            specs_[i].name));
      }
      if (!index.emplace(specs_[i].name, i).second) {
        throw std::invalid_argument(fmt::format("duplicate stage name '{}'", specs_[i].name));
      }
    }
    std::vector<std::vector<std::size_t>> deps(specs_.size());
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      for (const auto& d : specs_[i].deps) {
        auto it = index.find(d);
        if (it == index.end()) {
          throw std::invalid_argument(
              fmt::format("stage '{}' runs after unknown stage '{}'", specs_[i].name, d));
        }
        if (std::find(deps[i].begin(), deps[i].end(), it->second) == deps[i].end()) {
          deps[i].push_back(it->second);
        }
      }
    }
    const std::vector<std::size_t> order = topological_order(deps);

    used_ = true;
    auto st = std::make_unique<state>(wait_, capacity_, producers_, factory_);
    std::vector<std::size_t> slot(specs_.size());
    std::vector<bool> has_dependent(specs_.size(), false);
    for (std::size_t i : order) {
      std::vector<const sequence*> dep_seqs;
      for (std::size_t d : deps[i]) {
        dep_seqs.push_back(&st->runners[slot[d]]->position());
        has_dependent[d] = true;
      }
      slot[i] = st->runners.size();
      st->names.push_back(specs_[i].name);
      st->schedulers.push_back(specs_[i].sched);
      st->runners.push_back(
          specs_[i].make(st->ring, *st->seqr, std::move(dep_seqs), specs_[i].name, metrics_,
                         specs_[i].sched));
      st->runners.back()->set_close_token(&st->closing_token);
    }
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      if (!has_dependent[i]) st->seqr->add_gating_sequence(st->runners[slot[i]]->position());
    }
    return disruptor(std::move(st));
  }

 private:
  using factory_fn = std::function<std::unique_ptr<detail::stage_runner>(
      ring_buffer<T>&, const sequencer&, std::vector<const sequence*>, const std::string&, bool,
      scheduler_ref)>;
  struct spec {
    std::string name;
    std::vector<std::string> deps;
    factory_fn make;
    scheduler_ref sched;  // set by on(): a coroutine stage
    bool is_poller = false;
    bool needs_scheduler = false;  // async and pull-loop handlers
    std::optional<std::size_t> pool_index;  // set by on(i): entry i of the executor's pool
    bool heavy = false;                     // stage_options::heavy (placement)
  };

  // Every handler stage: a coroutine when it has a scheduler (set by on()), else, for a sync
  // handler, a thread of its own. Async and pull-loop handlers need a scheduler (build() checks).
  template <class H, detail::coro_kind K>
  builder& add_stage(std::string name, H handler, after_t deps, stage_options opts) {
    auto h = std::make_shared<H>(std::move(handler));
    specs_.push_back(spec{std::move(name), std::move(deps.names),
                          [h, opts](ring_buffer<T>& ring, const sequencer& seqr,
                                    std::vector<const sequence*> d, const std::string& n,
                                    bool metrics,
                                    scheduler_ref s) -> std::unique_ptr<detail::stage_runner> {
                            if constexpr (K == detail::coro_kind::sync) {
                              if (!s) {
                                return std::make_unique<detail::thread_stage_runner<T, H>>(
                                    ring, seqr, std::move(d), std::move(*h), opts, n, metrics);
                              }
                            }
                            return std::make_unique<detail::coro_stage_runner<T, H, K>>(
                                ring, seqr, std::move(d), std::move(*h), opts, n, metrics, s);
                          },
                          {}, false, K != detail::coro_kind::sync, std::nullopt, opts.heavy});
    return *this;
  }

  // Depth-first topological sort; a back edge is a cycle, reported with its path.
  std::vector<std::size_t> topological_order(const std::vector<std::vector<std::size_t>>& deps) const {
    enum class mark : std::uint8_t { none, active, done };
    std::vector<mark> marks(deps.size(), mark::none);
    std::vector<std::size_t> order;
    std::vector<std::size_t> path;
    std::function<void(std::size_t)> visit = [&](std::size_t i) {
      if (marks[i] == mark::done) return;
      if (marks[i] == mark::active) {
        std::string cycle;
        auto from = std::find(path.begin(), path.end(), i);
        for (auto it = from; it != path.end(); ++it) {
          fmt::format_to(std::back_inserter(cycle), "{} -> ", specs_[*it].name);
        }
        throw std::invalid_argument(fmt::format("dependency cycle: {}{}", cycle, specs_[i].name));
      }
      marks[i] = mark::active;
      path.push_back(i);
      for (std::size_t d : deps[i]) visit(d);
      path.pop_back();
      marks[i] = mark::done;
      order.push_back(i);
    };
    for (std::size_t i = 0; i < deps.size(); ++i) visit(i);
    return order;
  }

  std::int64_t capacity_ = 1024;
  producer_type producers_ = producer_type::single;
  wait_config wait_ = spin_then_suspend{};
  bool metrics_ = false;
  std::function<T(std::int64_t)> factory_;
  std::vector<scheduler_ref> pool_;  // executor(): where stages without .on(s) run
  rondo::placement placement_ = rondo::placement::colocate;
  std::vector<spec> specs_;
  bool used_ = false;
};

}  // namespace rondo
