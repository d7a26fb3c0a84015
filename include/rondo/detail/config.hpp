#pragma once

#include <atomic>
#include <cstddef>

#if defined(__SANITIZE_THREAD__)
#define RONDO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RONDO_TSAN 1
#endif
#endif
#ifndef RONDO_TSAN
#define RONDO_TSAN 0
#endif

namespace rondo::detail {

// Our own constant rather than std::hardware_destructive_interference_size: that one is
// ABI-unstable (g++ warns when it appears in headers) and is 64 on x86, while the adjacent-line
// prefetcher pulls pairs of lines, so two hot fields need 128 bytes between them.
inline constexpr std::size_t cache_line_size = 128;

// A hint to the CPU that we are in a spin loop: it saves power and, on SMT cores, yields the
// pipeline to the sibling thread.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

/// A full (seq_cst) fence, for store-then-load handshakes. ThreadSanitizer does not model
/// standalone fences (g++ refuses them under -Werror=tsan); there a seq_cst read-modify-write on
/// a private word stands in, which is a full barrier on the hardware and an atomic TSan knows.
inline void seq_cst_fence() noexcept {
#if RONDO_TSAN
  static std::atomic<int> word{0};
  // Pairs with the other side's seq_cst fence of the same handshake.
  word.fetch_add(0, std::memory_order_seq_cst);
#elif defined(__x86_64__)
  // Pairs with the other side's seq_cst fence of the same handshake. A locked no-op on the stack
  // is a full barrier for ordinary (write-back) memory, which is all rondo orders, and costs a
  // fraction of mfence on AMD cores (measured here: ~6 ns vs ~28 ns per publish; clang emits
  // mfence for atomic_thread_fence, g++ a locked or). Linux's smp_mb() uses the same trick.
  asm volatile("lock orq $0, (%%rsp)" ::: "memory", "cc");
#else
  // Pairs with the other side's seq_cst fence of the same handshake.
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

/// Whether the calling thread is running coroutines for a scheduler (an io_context, a
/// thread_scheduler, sync_wait...): set by rondo::scheduler_scope. Thread-blocking waits refuse
/// to wait there (they would stall every coroutine of that executor).
inline bool& on_executor_thread() noexcept {
  thread_local bool flag = false;
  return flag;
}

}  // namespace rondo::detail
