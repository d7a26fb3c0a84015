#pragma once
// Coroutine stage runners: a stage is one coroutine on a scheduler instead of a thread.
//
//   sync handler   void(T&, seq, end_of_batch)  run inside the coroutine's loop
//   async handler  task<>(batch<T>)             awaited per batch; the stage's sequence advances
//                                               only when the task completes
//   pull loop      task<>(consumer<T>&)         the handler owns the loop: co_await in.next()
//
// Theory of operation
//   start(): create the stage coroutine (its frame is the one allocation of the stage) and post it
//   to the scheduler. Loop (sync and async):
//
//     hi = barrier.available(next)                 (no suspension when work is there)
//     if hi < next: co_await barrier.wait(next)    (spin, yield, park: coro/wait_operation.hpp)
//     clamp to max_batch and the drain limit
//     handle [next, hi]  (sync: batch_core; async: co_await handler(batch) per tombstone-free run,
//                         its frame from the stage's frame_pool)
//     position = hi (release); signal(hi)          (wakes downstream stages and producers)
//
//   When the loop ends (stopped, halted) the coroutine reaches its final suspend and only then
//   announces `done_`, so join() returning means the frame may be destroyed.
//
// Errors follow the stage's error_policy: halt (the disruptor stops; the failure names the stage
// and sequence; for an async handler, the batch's first sequence), skip, call, and rewind (the
// batch runs again from its start, up to the retry limit).

#include <rondo/core/batch_processor.hpp>
#include <rondo/core/errors.hpp>
#include <rondo/core/event_handler.hpp>
#include <rondo/core/ring_buffer.hpp>
#include <rondo/core/sequence.hpp>
#include <rondo/core/sequence_barrier.hpp>
#include <rondo/core/stage_metrics.hpp>
#include <rondo/coro/barrier_wait.hpp>
#include <rondo/coro/scheduler.hpp>
#include <rondo/coro/task.hpp>
#include <rondo/dsl/batch.hpp>
#include <rondo/dsl/stage_runner.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <concepts>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace rondo {

/// An async batch handler: `task<> h(rondo::batch<T>)`.
template <class H, class T>
concept async_batch_handler = std::invocable<H&, batch<T>> &&
                              std::same_as<std::invoke_result_t<H&, batch<T>>, task<void>>;

/// A pull-loop stage: `task<> h(rondo::consumer<T>&)`.
template <class H, class T>
concept pull_handler = std::invocable<H&, consumer<T>&> &&
                       std::same_as<std::invoke_result_t<H&, consumer<T>&>, task<void>>;

namespace detail {

enum class coro_kind : std::uint8_t { sync, async, pull };

template <class T, class H, coro_kind K>
class coro_stage_runner final : public stage_runner {
 public:
  coro_stage_runner(ring_buffer<T>& ring, const sequencer& seqr, std::vector<const sequence*> deps,
                    H handler, stage_options opts, std::string name, bool metrics,
                    scheduler_ref sched)
      : ring_(&ring),
        barrier_(seqr, std::move(deps)),
        sched_(sched),
        core_(ring, std::move(handler), std::move(opts), std::move(name), metrics) {
    if constexpr (K != coro_kind::sync) {
      if (core_.options().errors.action() != error_policy::kind::halt && K == coro_kind::pull) {
        throw std::invalid_argument(
            fmt::format("stage '{}': a pull-loop stage owns its loop; only error_policy::halt "
                        "applies (catch inside the loop to skip or retry)",
                        core_.name()));
      }
    }
  }
  ~coro_stage_runner() override {
    join();
    if (frame_) frame_.destroy();
  }

  void start(std::function<void(const stage_error&)> on_failure) override {
    on_failure_ = std::move(on_failure);
    frame_ = body().handle;
    started_ = true;
    start_node_.handle = frame_;
    sched_.post(start_node_);
  }

  [[nodiscard]] bool finished() const noexcept override {
    // Pairs with the last release store in the final awaiter.
    return !started_ || released_.load(std::memory_order_acquire);
  }

  void join() noexcept override {
    if (!started_) return;
    // Acquire: pairs with the release store in the final awaiter.
    while (!done_.load(std::memory_order_acquire)) done_.wait(false, std::memory_order_acquire);
    // The final awaiter may still be inside notify_all(); `released_` is its last touch.
    // Acquire: pairs with the last release store in the final awaiter.
    while (!released_.load(std::memory_order_acquire)) std::this_thread::yield();
  }

  sequence& position() noexcept override { return position_; }
  sequence_barrier& barrier() noexcept override { return barrier_; }
  stage_metrics_snapshot metrics() const noexcept override { return core_.metrics(); }
  [[nodiscard]] std::int64_t tombstones_passed() const noexcept override {
    if constexpr (K == coro_kind::pull) {
      return input_ ? input_->tombstones_passed() : 0;
    } else {
      return core_.tombstones_passed();
    }
  }
  [[nodiscard]] bool runs_on_calling_thread() const noexcept override {
    return started_ && !finished() && current_scheduler() == sched_;
  }

 private:
  // The stage coroutine: starts when posted; announces completion only once suspended for good.
  struct stage_coroutine {
    struct promise_type {
      coro_stage_runner* runner = nullptr;
      stage_coroutine get_return_object() noexcept {
        return {std::coroutine_handle<promise_type>::from_promise(*this)};
      }
      std::suspend_always initial_suspend() const noexcept { return {}; }
      struct final_awaiter {
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<promise_type> h) const noexcept {
          coro_stage_runner* r = h.promise().runner;
          // Release: pairs with the acquire load in join().
          r->done_.store(true, std::memory_order_release);
          r->done_.notify_all();
          // Release: pairs with the acquire loads in finished() and join(); after this the
          // runner may destroy the frame and itself, so nothing of either is touched.
          r->released_.store(true, std::memory_order_release);
        }
        void await_resume() const noexcept {}
      };
      final_awaiter final_suspend() const noexcept { return {}; }
      void return_void() noexcept {}
      // The body catches everything itself.
      void unhandled_exception() noexcept { std::terminate(); }
    };
    std::coroutine_handle<promise_type> handle;
  };

  stage_coroutine body() {
    co_await bind_promise{this};
    std::exception_ptr failure;
    std::int64_t failed_at = 0;
    try {
      call_on_start(core_.handler());
      if constexpr (K == coro_kind::pull) {
        co_await run_pull(failure, failed_at);
      } else {
        co_await run_loop(failure, failed_at);
      }
    } catch (...) {
      // A hook threw: same as a handler failure.
      failure = std::current_exception();
      failed_at = position_.get_relaxed() + 1;
    }
    try {
      call_on_shutdown(core_.handler());
    } catch (...) {
      if (!failure) {
        failure = std::current_exception();
        failed_at = position_.get_relaxed();
      }
    }
    if (failure) {
      try {
        on_failure_(stage_error(core_.name(), failed_at, failure));
      } catch (...) {
        // Building the error failed (out of memory): still stop the disruptor, with what we have.
        on_failure_(stage_error(core_.name(), failed_at, std::current_exception()));
      }
    }
  }

  // Sets the promise's back pointer without suspending.
  struct bind_promise {
    coro_stage_runner* r;
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<typename stage_coroutine::promise_type> h) const noexcept {
      h.promise().runner = r;
      return false;
    }
    void await_resume() const noexcept {}
  };

  // Calls f (which creates a task) with the stage's frame pool installed: per-batch frames are
  // recycled, so steady state allocates nothing.
  template <class F>
  auto pooled(F&& f) {
    const frame_pool_scope pool(frames_);
    return f();
  }

  // The sync and async loops: one task whose frame is allocated once, at start.
  task<> run_loop(std::exception_ptr& failure, std::int64_t& failed_at) {
    const sequencer& seqr = barrier_.source();
    const stage_options& opts = core_.options();
    stage_metrics* m = core_.metrics_on() ? &core_.counters() : nullptr;
    std::int64_t next = position_.get_relaxed() + 1;
    for (;;) {
      if (barrier_.alerted()) co_return;
      std::int64_t hi = barrier_.available(next);
      if (hi < next) {
        if (m != nullptr) m->add_wait();
        const barrier_wait_result r = co_await sequence_barrier_wait_operation(
            barrier_, next, std::chrono::steady_clock::time_point::max(), {}, m, sched_);
        if (r.status != wait_status::ready) co_return;
        hi = r.available;
      }
      if (opts.max_batch > 0 && hi - next >= opts.max_batch) hi = next + opts.max_batch - 1;
      hi = std::min(hi, barrier_.limit());
      // Past the drain limit (tombstones of claims abandoned at the close can be "available"
      // beyond it): this run is over.
      if (hi < next) co_return;
      call_on_batch_start(core_.handler(), hi - next + 1);
      std::int64_t stop_at = batch_core<T, H>::no_failure;
      if constexpr (K == coro_kind::sync) {
        stop_at = core_.handle(seqr, next, hi);
        if (stop_at != batch_core<T, H>::no_failure) failure = core_.halt_error();
      } else {
        stop_at = co_await pooled([&] { return handle_async(seqr, next, hi, failure); });
      }
      if (stop_at != batch_core<T, H>::no_failure) {
        failed_at = stop_at;
        position_.set(stop_at - 1);
        seqr.waits().signal(stop_at - 1);
        barrier_.alert();
        co_return;
      }
      if (m != nullptr) m->add_batch(hi - next + 1);
      // Pairs with the acquire loads of downstream barriers and of the producers' gating check.
      position_.set(hi);
      seqr.waits().signal_after(hi, position_);
      next = hi + 1;
    }
  }

  // Runs the async handler over every tombstone-free run of [lo, hi]; returns no_failure or the
  // sequence to halt at (failure set).
  task<std::int64_t> handle_async(const sequencer& seqr, std::int64_t lo, std::int64_t hi,
                                  std::exception_ptr& failure) {
    std::int64_t a = lo;
    while (a <= hi) {
      std::int64_t b = hi;
      if (seqr.tombstone_count() > core_.tombstones_passed()) {
        if (seqr.is_tombstone(a)) {
          std::int64_t e = a;
          while (e < hi && seqr.is_tombstone(e + 1)) ++e;
          core_.add_tombstones_passed(e - a + 1);
          a = e + 1;
          continue;
        }
        for (std::int64_t s = a + 1; s <= hi; ++s) {
          if (seqr.is_tombstone(s)) {
            b = s - 1;
            break;
          }
        }
      }
      const std::int64_t r = co_await pooled([&] { return run_handler(a, b, failure); });
      if (r != batch_core<T, H>::no_failure) co_return r;
      a = b + 1;
    }
    co_return batch_core<T, H>::no_failure;
  }

  // One run [a, b] through the async handler, with the error policy.
  task<std::int64_t> run_handler(std::int64_t a, std::int64_t b, std::exception_ptr& failure) {
    const error_policy& policy = core_.options().errors;
    for (std::int64_t attempt = 0;; ++attempt) {
      std::exception_ptr err;
      try {
        co_await pooled([&] { return core_.handler()(batch<T>(*ring_, a, b, closing_)); });
        co_return batch_core<T, H>::no_failure;
      } catch (...) {
        err = std::current_exception();
      }
      if (policy.action() == error_policy::kind::rewind && attempt < policy.max_retries()) {
        if (core_.metrics_on()) core_.counters().add_rewind();
        continue;
      }
      std::exception_ptr halt_with =
          policy.action() == error_policy::kind::rewind
              ? err
              : policy.handle(stage_failure{core_.name(), a, std::move(err)});
      if (!halt_with) {
        if (core_.metrics_on()) core_.counters().add_error_skipped();
        co_return batch_core<T, H>::no_failure;
      }
      failure = std::move(halt_with);
      co_return a;
    }
  }

  task<> run_pull(std::exception_ptr& failure, std::int64_t& failed_at) {
    input_.emplace(*ring_, barrier_, position_, core_.options().max_batch,
                   core_.metrics_on() ? &core_.counters() : nullptr, core_.name(), sched_, closing_);
    try {
      co_await core_.handler()(*input_);
    } catch (...) {
      failure = std::current_exception();
      failed_at = position_.get_relaxed() + 1;
      barrier_.alert();
      co_return;
    }
    if (!input_->ended()) {
      failure = std::make_exception_ptr(std::logic_error(fmt::format(
          "pull-loop stage '{}' returned before its input ended (loop until consumer::next() "
          "yields nothing)",
          core_.name())));
      failed_at = position_.get_relaxed() + 1;
      barrier_.alert();
    }
  }

  ring_buffer<T>* ring_;
  sequence position_;  // the stage's own line
  sequence_barrier barrier_;
  scheduler_ref sched_;
  batch_core<T, H> core_;
  frame_pool frames_;  // declared before anything that may hold a frame from it
  std::optional<consumer<T>> input_;
  std::function<void(const stage_error&)> on_failure_;
  std::coroutine_handle<> frame_;
  schedule_node start_node_;
  bool started_ = false;  // set by the lifecycle thread before anyone reads it
  std::atomic<bool> done_{false};
  std::atomic<bool> released_{false};
};

}  // namespace detail
}  // namespace rondo
