#pragma once
// rondo::detached: a fire-and-forget coroutine. It starts running at once on the calling thread
// (usually its first statement is `co_await some_scheduler.schedule()`) and frees its own frame
// when it returns. Nobody awaits it, so nothing can receive its exception: an exception that
// escapes its body calls std::terminate. Catch inside the body, or use io_context::spawn() /
// runtime::spawn(), which own a task<> and report its failure.
//
//   rondo::detached produce(rondo::thread_scheduler& s, rondo::publisher<T>& pub) {
//     co_await s.schedule();
//     ...
//   }

#include <coroutine>
#include <exception>

namespace rondo {

struct detached {
  struct promise_type {
    detached get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() const noexcept { return {}; }
    std::suspend_never final_suspend() const noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

}  // namespace rondo
