#pragma once
// sync_wait(task): run a task from plain (non-coroutine) code and block the calling thread until
// it completes, wherever it completes. The blocking is a futex wait, so a task that suspends on
// another thread's executor costs the caller no CPU while it waits.

#include <rondo/coro/task.hpp>
#include <rondo/detail/futex.hpp>

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <optional>
#include <utility>

namespace rondo {

namespace detail {

// A one-shot event: set once (by the driver's final suspend), waited on once.
class sync_wait_event {
 public:
  void set() noexcept {
    // Release: publishes the task's result; pairs with the acquire load in wait().
    done_.store(1, std::memory_order_release);
    futex_wake_all(done_);
  }
  void wait() noexcept {
    // Acquire: pairs with the release store in set().
    while (done_.load(std::memory_order_acquire) == 0) futex_wait(done_, 0);
  }

 private:
  std::atomic<std::uint32_t> done_{0};
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
