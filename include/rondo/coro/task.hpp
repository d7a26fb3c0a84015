#pragma once
// task<T>: a lazy, move-only coroutine that produces a T (or an exception) when awaited.
//
// Theory of operation
//   A task starts only when awaited. The awaiter's await_suspend() resumes the task right away,
//   on the awaiter's own stack, and the task runs until it completes or first suspends. Then the
//   two sides meet on one atomic flag in the promise, `state_`:
//
//     awaiter (await_suspend)                      task (final_suspend)
//     ------------------------                     ---------------------
//     task.resume()                                ...
//     continuation_ = awaiter                      if state_.exchange(true) was true:
//     if state_.exchange(true) was true:               transfer to continuation_
//        the task already finished: don't suspend  else: return to whoever resumed us
//     else: suspend (the task resumes us later)
//
//   Whoever sets state_ second knows the other side is done with it. A task that completes
//   synchronously therefore returns through await_suspend(), which answers "don't suspend", and
//   the awaiter goes on in the same frame: a loop awaiting millions of such tasks uses constant
//   stack. (Plain handle-returning symmetric transfer would too, but g++ 12 does not make it a
//   tail call at -O0 or under AddressSanitizer, and such a loop overflows the stack there.)
//
// Exceptions thrown in the task are stored and rethrown from the co_await.
//
// Frames: a task's frame comes from the calling thread's current detail::frame_pool when one is
// installed (a coroutine stage installs its own around each call of an async batch handler, so
// per-batch frames are recycled and steady state allocates nothing), else from operator new.
// Each frame carries a 16-byte header saying where it came from.

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <new>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace rondo {

template <class T = void>
class task;

namespace detail {

/// A small cache of coroutine frame blocks, owned by one stage and used by one coroutine at a
/// time (no locking). Blocks keep their size; a request takes the first cached block big enough,
/// else allocates. Every block returns to the pool that gave it, which frees them all when it is
/// destroyed (all its frames must be gone by then).
class frame_pool {
 public:
  frame_pool() = default;
  frame_pool(const frame_pool&) = delete;
  frame_pool& operator=(const frame_pool&) = delete;
  ~frame_pool() {
    while (free_ != nullptr) {
      block* b = free_;
      free_ = b->next;
      ::operator delete(b);
    }
  }

  /// The pool new task frames on this thread come from (null: operator new).
  static frame_pool*& current() noexcept {
    thread_local frame_pool* p = nullptr;
    return p;
  }

  /// How many blocks were ever allocated (stays flat in steady state).
  [[nodiscard]] std::size_t blocks_allocated() const noexcept { return allocated_; }

  /// A block of at least `bytes`; `bytes` becomes the block's real size (give it back with it).
  /// Best fit: the smallest cached block that is big enough, so a stage whose frames come in a
  /// few fixed sizes (its loop's nested tasks and the handler) reaches a fixed set of blocks and
  /// stops allocating, whatever order the frames are freed in.
  void* allocate(std::size_t& bytes) {
    block** best = nullptr;
    for (block** p = &free_; *p != nullptr; p = &(*p)->next) {
      if ((*p)->size >= bytes && (best == nullptr || (*p)->size < (*best)->size)) best = p;
    }
    if (best != nullptr) {
      block* b = *best;
      *best = b->next;
      bytes = b->size;
      return b;
    }
    if (bytes < sizeof(block)) bytes = sizeof(block);
    void* raw = ::operator new(bytes);
    ++allocated_;
    return raw;
  }

  void release(void* p, std::size_t bytes) noexcept {
    auto* b = static_cast<block*>(p);
    b->size = bytes;
    b->next = free_;
    free_ = b;
  }

 private:
  struct block {
    block* next;
    std::size_t size;
  };
  block* free_ = nullptr;
  std::size_t allocated_ = 0;
};

/// Installs a frame pool on this thread for its lifetime.
class frame_pool_scope {
 public:
  explicit frame_pool_scope(frame_pool& p) noexcept
      : saved_(std::exchange(frame_pool::current(), &p)) {}
  frame_pool_scope(const frame_pool_scope&) = delete;
  frame_pool_scope& operator=(const frame_pool_scope&) = delete;
  ~frame_pool_scope() { frame_pool::current() = saved_; }

 private:
  frame_pool* saved_;
};

class task_promise_base {
 public:
  // The header in front of every task frame: the pool it came from (or null) and its size.
  struct alignas(__STDCPP_DEFAULT_NEW_ALIGNMENT__) frame_header {
    frame_pool* pool;
    std::size_t bytes;
  };

  static void* operator new(std::size_t n) {
    frame_pool* pool = frame_pool::current();
    std::size_t bytes = n + sizeof(frame_header);
    void* raw = pool != nullptr ? pool->allocate(bytes) : ::operator new(bytes);
    return ::new (raw) frame_header{pool, bytes} + 1;
  }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
// g++ 12 at -O3, once a task is inlined into its caller, traces `h` back to this class's
// operator new and calls ::operator delete on it a mismatch; `h` is the block that
// ::operator new returned there (the frame starts one header further).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
  static void operator delete(void* p) noexcept {
    frame_header* h = static_cast<frame_header*>(p) - 1;
    if (h->pool != nullptr) h->pool->release(h, h->bytes); else ::operator delete(h);
  }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

  struct final_awaiter {
    [[nodiscard]] bool await_ready() const noexcept { return false; }
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) noexcept {
      task_promise_base& p = h.promise();
      // acq_rel: acquire pairs with the release half of the awaiter's exchange (so continuation_
      // is visible); release publishes the task's result to an awaiter that sees `true`.
      if (p.state_.exchange(true, std::memory_order_acq_rel)) return p.continuation_;
      return std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };

  [[nodiscard]] std::suspend_always initial_suspend() const noexcept { return {}; }
  [[nodiscard]] final_awaiter final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { error_ = std::current_exception(); }

  // The awaiter's half of the handshake: true means "suspend; the task will resume you".
  bool try_set_continuation(std::coroutine_handle<> awaiter) noexcept {
    continuation_ = awaiter;
    // acq_rel: release publishes continuation_ to the final awaiter; acquire pairs with its
    // release so the result is visible when the task finished first.
    return !state_.exchange(true, std::memory_order_acq_rel);
  }

 protected:
  void rethrow_if_failed() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::coroutine_handle<> continuation_;
  std::exception_ptr error_;
  // false: nobody has finished their half; true: one side has (see the file comment).
  std::atomic<bool> state_{false};
};

template <class T>
class task_promise final : public task_promise_base {
 public:
  task<T> get_return_object() noexcept;

  template <class U>
    requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    value_.emplace(std::forward<U>(v));
  }

  T result() && {
    rethrow_if_failed();
    return std::move(*value_);
  }

 private:
  std::optional<T> value_;
};

template <>
class task_promise<void> final : public task_promise_base {
 public:
  task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void result() && { rethrow_if_failed(); }
};

}  // namespace detail

/// A lazy coroutine producing T. Start it by co_awaiting it (once) or with sync_wait().
/// Move-only; destroying a task that was never awaited destroys its frame without running it.
///
/// Thread-safety: a task may complete on a different thread than the one that awaited it (it
/// resumes the awaiter there); the handshake is lock-free.
template <class T>
class [[nodiscard]] task {
 public:
  using promise_type = detail::task_promise<T>;
  using value_type = T;

  task() noexcept = default;
  task(task&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  task& operator=(task&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() {
    if (h_) h_.destroy();
  }

  /// True when the task holds a coroutine (not default-constructed or moved from).
  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(h_); }

  struct awaiter {
    std::coroutine_handle<promise_type> h;
    [[nodiscard]] bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> awaiting) noexcept {
      h.resume();
      return h.promise().try_set_continuation(awaiting);
    }
    T await_resume() { return std::move(h.promise()).result(); }
  };

  /// Runs the task; yields its value or rethrows its exception. Throws std::logic_error for an
  /// empty task. A task is awaited once (it is an rvalue: `co_await std::move(t)`).
  awaiter operator co_await() && {
    if (!h_) throw std::logic_error("rondo::task: co_await on an empty (moved-from) task");
    return awaiter{h_};
  }

 private:
  friend class detail::task_promise<T>;
  explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

namespace detail {
template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
  return task<T>(std::coroutine_handle<task_promise<T>>::from_promise(*this));
}
inline task<void> task_promise<void>::get_return_object() noexcept {
  return task<void>(std::coroutine_handle<task_promise<void>>::from_promise(*this));
}
}  // namespace detail

}  // namespace rondo
