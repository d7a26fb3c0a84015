#pragma once
// The disruptor handle, disruptor<T>: a move-only owner of the state its builder built
// (dsl/disruptor_state.hpp), with the lifecycle calls. The builder is in dsl/builder.hpp;
// <rondo/disruptor.hpp> includes both.

#include <rondo/core/event_poller.hpp>
#include <rondo/core/ring_buffer.hpp>
#include <rondo/core/sequence.hpp>
#include <rondo/core/sequence_barrier.hpp>
#include <rondo/core/sequencer.hpp>
#include <rondo/core/wait_strategy.hpp>
#include <rondo/dsl/disruptor_state.hpp>
#include <rondo/dsl/publisher.hpp>

#include <fmt/format.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

namespace rondo {

/// A disruptor of events of type T. Move-only; see <rondo/disruptor.hpp> for the model.
template <class T>
class disruptor {
  using state = detail::disruptor_state<T>;

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

  std::unique_ptr<state> s_;
};

}  // namespace rondo
