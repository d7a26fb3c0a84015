#pragma once
// runtime: N io_contexts on N threads (optionally pinned to cores), with spawn() and
// block_on(). The disruptor builder's .executor(rt) places coroutine stages on its contexts.
//
//   rondo::runtime rt(2);
//   auto d = rondo::disruptor<tick>::builder().executor(rt)
//                .stage("decode", decode).stage("score", score, rondo::after("decode"))
//                .build();                       // stages round-robin on the 2 contexts
//   rt.spawn(feed(d.publisher()), 0);            // a coroutine producer on context 0
//   int n = rt.block_on(count_something(), 1);   // runs on context 1, waits here
//
// Threads and ownership: thread i constructs context i (an io_uring belongs to the thread that
// creates it) and runs it until stop(). Spawned tasks are owned by the runtime: their frames
// are freed when they finish. stop() first requests stop on stop_token() (tasks that pass it
// to .cancel_on() end their waits), waits up to a grace period for spawned tasks to finish,
// then stops the contexts and joins the threads.

#include <rondo/coro/detached.hpp>
#include <rondo/coro/scheduler.hpp>
#include <rondo/coro/task.hpp>
#include <rondo/io/io_context.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <semaphore>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace rondo {

/// Construction options of a runtime.
struct runtime_options {
  unsigned threads = 2;  ///< contexts (one thread each), >= 1
  bool pin = false;      ///< pin thread i to cpus[i] (or to cpu i when cpus is empty)
  std::vector<int> cpus;
  io_options io;         ///< options of every context
};

/// N io_contexts on N threads. Thread-safety: every member from any thread that is not one of
/// the runtime's own, except spawn() and context(), which any thread may call.
class runtime {
 public:
  /// Starts the threads and their contexts. Throws std::invalid_argument for threads == 0 or a
  /// negative cpu, and what a context or a pinning threw (std::system_error naming the cause
  /// and the cpu) after stopping the threads already started.
  explicit runtime(runtime_options opts = {});
  /// `threads` contexts with options `io`, not pinned.
  explicit runtime(unsigned threads, io_options io = {}) : runtime(options_of(threads, io)) {}
  /// stop(), swallowing (and printing) a failure of a spawned task.
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  [[nodiscard]] std::size_t size() const noexcept { return workers_.size(); }
  /// Context i. Throws std::out_of_range naming i and size().
  [[nodiscard]] io_context& context(std::size_t i) const;
  /// The contexts as schedulers, in order (what disruptor::builder::executor() takes).
  [[nodiscard]] std::vector<scheduler_ref> schedulers() const;
  /// Requested at the start of stop(): pass it to .cancel_on() so stop() ends long waits.
  [[nodiscard]] std::stop_token stop_token() const noexcept { return stop_.get_token(); }

  /// Runs `t` on context `on` (any thread). The runtime owns it: a failure is kept and rethrown
  /// by stop(). Throws std::out_of_range for a bad index, std::logic_error after stop().
  template <class T>
  void spawn(task<T> t, std::size_t on) {
    io_context& ctx = context(on);
    if (!enter()) throw std::logic_error("rondo::runtime::spawn(): the runtime is stopping");
    spawned(ctx, std::move(t));
  }
  /// Round-robin over the contexts.
  template <class T>
  void spawn(task<T> t) {
    // Relaxed: only spreads the load.
    spawn(std::move(t), next_.fetch_add(1, std::memory_order_relaxed) % size());
  }

  /// Runs `t` on context `on` and waits for it on the calling thread; returns its value or
  /// rethrows its exception. Throws std::logic_error when called from one of the runtime's
  /// threads (it would wait on itself) or after stop(), and std::runtime_error if stop()
  /// abandoned the task.
  template <class T>
  T block_on(task<T> t, std::size_t on = 0) {
    io_context& ctx = context(on);
    check_not_worker("block_on");
    if (!enter()) throw std::logic_error("rondo::runtime::block_on(): the runtime is stopping");
    outcome<T> out;
    blocked(ctx, std::move(t), out);
    // A stop() whose grace ran out abandons the job: once the threads are joined nothing can
    // complete it any more, and waiting would be for ever.
    while (!out.done.try_acquire_for(std::chrono::milliseconds(10))) {
      // Acquire: pairs with the release store in stop() after the join.
      if (joined_.load(std::memory_order_acquire) && !out.done.try_acquire()) {
        throw std::runtime_error(
            "rondo::runtime::block_on(): the runtime stopped before the task finished");
      }
    }
    if (out.error) std::rethrow_exception(out.error);
    if constexpr (!std::is_void_v<T>) return std::move(*out.value);
  }

  /// Requests stop on stop_token(), waits up to `grace` for spawned tasks to finish (those of
  /// spawn() and those spawned on a context directly with io_context::spawn()), stops the
  /// contexts and joins the threads. Returns how many spawned tasks were still suspended (they
  /// are abandoned: their frames are never resumed). Rethrows the first failure of a spawned
  /// task of either kind. Idempotent. Throws std::logic_error from one of the runtime's threads.
  std::size_t stop(std::chrono::milliseconds grace = std::chrono::seconds(1));

 private:
  struct worker {
    std::thread thread;
    std::optional<io_context> ctx_storage;  // constructed by the thread, destroyed by ~runtime
    std::atomic<io_context*> ctx{nullptr};
    std::exception_ptr setup_error;
  };

  template <class T>
  struct outcome {
    std::binary_semaphore done{0};
    std::exception_ptr error;
    std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> value{};
  };

  template <class T>
  detached spawned(io_context& ctx, task<T> t) {
    co_await ctx.schedule();
    try {
      (void)co_await std::move(t);
    } catch (...) {
      record_failure(std::current_exception());
    }
    leave();
  }

  template <class T>
  detached blocked(io_context& ctx, task<T> t, outcome<T>& out) {
    co_await ctx.schedule();
    try {
      if constexpr (std::is_void_v<T>) {
        co_await std::move(t);
      } else {
        out.value.emplace(co_await std::move(t));
      }
    } catch (...) {
      out.error = std::current_exception();
    }
    leave();
    out.done.release();  // the waiter may destroy `out` at once: our last touch of it
  }

  // Counts a spawned or blocked job in (false: the runtime is stopping) and out.
  bool enter() noexcept;
  void leave() noexcept;

  static runtime_options options_of(unsigned threads, io_options io) {
    runtime_options o;
    o.threads = threads;
    o.io = io;
    return o;
  }
  void record_failure(std::exception_ptr e) noexcept;
  void check_not_worker(const char* what) const;
  void join_all() noexcept;

  std::vector<std::unique_ptr<worker>> workers_;
  std::stop_source stop_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> joined_{false};  // stop() joined the threads
  std::atomic<std::size_t> live_{0};
  std::atomic<std::size_t> next_{0};
  std::mutex failure_mutex_;
  std::exception_ptr failure_;
  std::mutex stop_mutex_;
  bool stopped_ = false;
};

}  // namespace rondo
