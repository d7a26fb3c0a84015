#pragma once
// sync_wait(task): run a task from plain (non-coroutine) code and block the calling thread until
// it completes, wherever it completes. While it waits, the calling thread is the task's current
// scheduler: a wait inside the task that suspends without naming a scheduler resumes here. The
// thread sleeps on an eventcount (futex) when there is nothing to run, so a task that suspends
// on another thread's executor costs the caller no CPU while it waits.

#include <rondo/coro/scheduler.hpp>
#include <rondo/coro/task.hpp>
#include <rondo/detail/eventcount.hpp>

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <optional>
#include <thread>
#include <utility>

namespace rondo {

namespace detail {

// The calling thread's loop while sync_wait waits: a scheduler (posts from any thread) plus a
// one-shot "done" flag set by the driver's final suspend.
class sync_wait_event {
 public:
  void post(schedule_node& n) noexcept {
    (void)incoming_.push(n);
    events_.notify();
  }
  // The waiting thread may return (and free this object, which lives on its stack) as soon as it
  // sees `done_`; `set_finished_` is the last thing set() touches, and wait() returns only after
  // seeing it.
  void set() noexcept {
    // Release: publishes the task's result; pairs with the acquire loads in wait().
    done_.store(true, std::memory_order_release);
    events_.notify();
    // Release: pairs with the acquire load at the end of wait(); nothing is touched after it.
    set_finished_.store(true, std::memory_order_release);
  }
  // Runs what is posted until set(); sleeps when there is nothing.
  // On the calling thread, inside a scheduler_scope of this loop.
  void wait() noexcept {
    for (;;) {
      for (schedule_node* n = incoming_.take_all(); n != nullptr;) {
        schedule_node* next = n->next;  // n may be gone after it runs
        n->run();
        n = next;
      }
      // Acquire: pairs with the release store in set().
      if (done_.load(std::memory_order_acquire)) break;
      // Arm, then re-check both conditions: a post or set() after the arm notifies us.
      const std::uint32_t key = events_.prepare_wait();
      // Acquire: as above.
      if (!incoming_.empty() || done_.load(std::memory_order_acquire)) continue;
      events_.wait(key);
    }
    // set() is past its store of done_ and finishing its notify(): a few instructions, unless
    // its thread was preempted.
    // Acquire: pairs with the last release store in set().
    while (!set_finished_.load(std::memory_order_acquire)) std::this_thread::yield();
  }

 private:
  intrusive_mpsc_queue incoming_;
  eventcount events_;
  std::atomic<bool> done_{false};
  std::atomic<bool> set_finished_{false};
};

// The coroutine that awaits the user's task on sync_wait's behalf and sets the event when done.
class sync_wait_driver {
 public:
  struct promise_type {
    sync_wait_event* event = nullptr;
    std::exception_ptr error;

    sync_wait_driver get_return_object() noexcept {
      return sync_wait_driver{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() const noexcept { return {}; }
    struct final_awaiter {
      bool await_ready() const noexcept { return false; }
      // The frame is suspended before the event is set, so the waiting thread may destroy it
      // as soon as wait() returns.
      void await_suspend(std::coroutine_handle<promise_type> h) noexcept { h.promise().event->set(); }
      void await_resume() const noexcept {}
    };
    final_awaiter final_suspend() const noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { error = std::current_exception(); }
  };

  sync_wait_driver(sync_wait_driver&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  sync_wait_driver(const sync_wait_driver&) = delete;
  sync_wait_driver& operator=(const sync_wait_driver&) = delete;
  sync_wait_driver& operator=(sync_wait_driver&&) = delete;
  ~sync_wait_driver() {
    if (h_) h_.destroy();
  }

  void run(sync_wait_event& e) {
    h_.promise().event = &e;
    const scheduler_scope scope(e);  // the task's waits resume on this thread's loop
    h_.resume();
    e.wait();
    if (h_.promise().error) std::rethrow_exception(h_.promise().error);
  }

 private:
  explicit sync_wait_driver(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

template <class T>
sync_wait_driver drive(task<T>& t, std::optional<T>& out) {
  out.emplace(co_await std::move(t));
}
inline sync_wait_driver drive(task<void>& t) { co_await std::move(t); }

}  // namespace detail

/// Runs `t` to completion, blocking the calling thread, and returns its value (or rethrows its
/// exception). Must not be called from a thread whose executor the task needs to make progress.
template <class T>
T sync_wait(task<T> t) {
  detail::sync_wait_event e;
  if constexpr (std::is_void_v<T>) {
    detail::drive(t).run(e);
  } else {
    std::optional<T> out;
    detail::drive(t, out).run(e);
    return std::move(*out);
  }
}

}  // namespace rondo
