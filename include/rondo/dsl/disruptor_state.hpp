#pragma once
// What a disruptor::builder builds and a disruptor<T> owns: the ring, the sequencer, the
// publisher and the stage runners, with the lifecycle (start, drain, close, join, halt on a
// handler failure) and the reports (close_report, stage_report).

#include <rondo/core/errors.hpp>
#include <rondo/core/event_poller.hpp>
#include <rondo/core/multi_producer_sequencer.hpp>
#include <rondo/core/ring_buffer.hpp>
#include <rondo/core/sequence.hpp>
#include <rondo/core/sequencer.hpp>
#include <rondo/core/single_producer_sequencer.hpp>
#include <rondo/core/stage_metrics.hpp>
#include <rondo/core/wait_strategy.hpp>
#include <rondo/coro/scheduler.hpp>
#include <rondo/dsl/publisher.hpp>
#include <rondo/dsl/stage_runner.hpp>
#include <rondo/dsl/thread_runner.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace rondo {

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

/// The state of one disruptor<T> (which holds it by pointer, so the handle moves cheaply).
/// Lifecycle calls take `lifecycle`; handler failures arrive through halt() from stage threads.
template <class T>
struct disruptor_state {
  enum class phase : std::uint8_t { built, running, draining, drained, closed };

  disruptor_state(wait_config w, std::int64_t capacity, producer_type p,
                  const std::function<T(std::int64_t)>& factory,
                  stamp_member_t<T> stamp = nullptr)
      : waits(w), ring(make_ring(capacity, factory)) {
    // Before the publisher, which reads it when made.
    ring.use_stamps(stamp);
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

}  // namespace detail
}  // namespace rondo
