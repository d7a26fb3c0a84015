#pragma once
// when_all(tasks...): a task that starts every given task, waits until all have completed
// (on whatever threads they complete), and yields their results as a tuple (void results are
// std::monostate). If any failed, the first failure in argument order is rethrown, after all
// have completed.
//
// Theory of operation: a latch counts the children plus the awaiter (n + 1). The awaiter starts
// every child (each runs until it completes or suspends), records itself, then counts down; a
// child counts down when it completes. Whoever brings the count to zero is last: if that is the
// awaiter, it does not suspend; if it is a child, it resumes the awaiter.

#include <rondo/coro/task.hpp>

#include <array>
#include <atomic>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace rondo {

namespace detail {

template <class T>
using non_void_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

class when_all_latch {
 public:
  explicit when_all_latch(std::size_t children) noexcept : count_(children + 1) {}

  // A child completed; the last one resumes the awaiter.
  void arrive() noexcept {
    // acq_rel: release publishes this child's result; acquire (for the last arriver) pairs with
    // the awaiter's release so `awaiter_` is visible.
    if (count_.fetch_sub(1, std::memory_order_acq_rel) == 1) awaiter_.resume();
  }

  // The awaiter's count-down: true means "suspend, the last child resumes you".
  bool try_await(std::coroutine_handle<> h) noexcept {
    awaiter_ = h;
    // acq_rel: release publishes awaiter_; acquire makes the children's results visible when
    // they all finished first.
    return count_.fetch_sub(1, std::memory_order_acq_rel) > 1;
  }

 private:
  std::atomic<std::size_t> count_;
  std::coroutine_handle<> awaiter_;
};

class when_all_child {
 public:
  struct promise_type {
    when_all_latch* latch = nullptr;
    when_all_child get_return_object() noexcept {
      return when_all_child{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() const noexcept { return {}; }
    struct final_awaiter {
      bool await_ready() const noexcept { return false; }
      // Suspended first, then counted: when_all destroys the frame after the last arrival.
      void await_suspend(std::coroutine_handle<promise_type> h) noexcept {
        h.promise().latch->arrive();
      }
      void await_resume() const noexcept {}
    };
    final_awaiter final_suspend() const noexcept { return {}; }
    void return_void() noexcept {}
    // The child body catches everything itself; nothing can reach here.
    void unhandled_exception() noexcept { std::terminate(); }
  };

  when_all_child(when_all_child&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  when_all_child(const when_all_child&) = delete;
  when_all_child& operator=(const when_all_child&) = delete;
  when_all_child& operator=(when_all_child&&) = delete;
  ~when_all_child() {
    if (h_) h_.destroy();
  }

  void start(when_all_latch& l) noexcept {
    h_.promise().latch = &l;
    h_.resume();
  }

 private:
  explicit when_all_child(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

template <class T>
when_all_child run_child(task<T> t, std::optional<non_void_t<T>>& slot, std::exception_ptr& err) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
      slot.emplace();
    } else {
      slot.emplace(co_await std::move(t));
    }
  } catch (...) {
    err = std::current_exception();
  }
}

template <std::size_t N>
struct when_all_start {
  std::array<when_all_child, N>& children;
  when_all_latch& latch;
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) noexcept {
    for (auto& c : children) c.start(latch);
    return latch.try_await(h);
  }
  void await_resume() const noexcept {}
};

template <class... Ts, std::size_t... I>
task<std::tuple<non_void_t<Ts>...>> when_all_impl(std::index_sequence<I...>, task<Ts>... ts) {
  std::tuple<std::optional<non_void_t<Ts>>...> slots;
  std::array<std::exception_ptr, sizeof...(Ts)> errors{};
  when_all_latch latch(sizeof...(Ts));
  std::array<when_all_child, sizeof...(Ts)> children{
      run_child<Ts>(std::move(ts), std::get<I>(slots), errors[I])...};
  co_await when_all_start<sizeof...(Ts)>{children, latch};
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  co_return std::tuple<non_void_t<Ts>...>{std::move(*std::get<I>(slots))...};
}

}  // namespace detail

/// Awaits every task concurrently; see the file comment. At least one task.
template <class... Ts>
  requires(sizeof...(Ts) > 0)
task<std::tuple<detail::non_void_t<Ts>...>> when_all(task<Ts>... ts) {
  return detail::when_all_impl<Ts...>(std::index_sequence_for<Ts...>{}, std::move(ts)...);
}

}  // namespace rondo
