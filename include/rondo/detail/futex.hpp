#pragma once
// Thin wrappers over the Linux futex syscall on a std::atomic<uint32_t>. We do not use
// std::atomic::wait/notify: libstdc++ 12 has no timed wait, and its notify skips the syscall when
// it saw no waiter of its own bookkeeping (DESIGN.md 6a), which we cannot reason about.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace rondo::detail {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));

/// Sleeps while *word == expected, up to `timeout` (negative: no limit). Returns on wake-up,
/// timeout, signal or a changed value; callers re-check their condition in a loop.
inline void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       std::chrono::nanoseconds timeout = std::chrono::nanoseconds{-1}) noexcept {
  timespec ts{};
  timespec* tsp = nullptr;
  if (timeout.count() >= 0) {
    ts.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
    tsp = &ts;
  }
  // The kernel compares *word with expected atomically with queueing us, which closes the
  // window between our last check and the sleep.
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, tsp,
            nullptr, 0);
}

/// Wakes every thread sleeping in futex_wait on `word`.
inline void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT32_MAX,
            nullptr, nullptr, 0);
}

}  // namespace rondo::detail
