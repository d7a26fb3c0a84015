#pragma once
// Asymmetric Dekker fences. Some handshakes need store-then-load ordering on both sides, but one
// side is a hot path (a producer's reserve) and the other is rare (drain/close). The hot side
// issues only a compiler barrier; the rare side calls membarrier(PRIVATE_EXPEDITED), which runs a
// full barrier on every CPU currently running a thread of this process. Either the hot side's
// store is visible to the rare side's later load, or the rare side's store is visible to the hot
// side's later load: the same guarantee as two seq_cst fences. This is the technique of
// liburcu and folly's asymmetric_thread_fence_heavy.
//
// Where membarrier is unavailable (seccomp, very old kernels) light() becomes a real seq_cst
// fence, decided once per process.

#include <rondo/detail/config.hpp>

#include <atomic>
#include <mutex>

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace rondo::detail {

class asymmetric_fence {
 public:
  /// Must be called once before the hot side may rely on light() (the disruptor calls it at
  /// construction, before any producer exists).
  static void init() noexcept {
    static std::once_flag once;
    std::call_once(once, [] {
      const bool ok = ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
      // Written once before any thread that calls light() is started (thread creation
      // synchronises), so relaxed is enough; pairs with the relaxed load in light().
      need_real_fence_flag().store(!ok, std::memory_order_relaxed);
    });
  }

  /// The hot side: a compiler barrier when membarrier works, else a seq_cst fence.
  [[gnu::always_inline]] static void light() noexcept {
    // Set once in init() before this thread started; see there.
    if (need_real_fence_flag().load(std::memory_order_relaxed)) {
      seq_cst_fence();
    } else {
      std::atomic_signal_fence(std::memory_order_seq_cst);
    }
  }

  /// As light(), but where membarrier works the compiler barrier covers only `stored` (whose
  /// store comes before) and `loaded` (whose loads come after), instead of all memory. A
  /// coroutine's locals live in its frame, in memory: a full compiler barrier on every claim and
  /// publish made the compiler reload them all, a third of a coroutine reserve's cost.
  template <class S, class L>
  [[gnu::always_inline]] static void light(S& stored, const L& loaded) noexcept {
    // Set once in init() before this thread started; see there.
    if (need_real_fence_flag().load(std::memory_order_relaxed)) {
      seq_cst_fence();
    } else {
      // "+m": the asm may read `stored` (earlier stores to it stay before) and may write
      // `loaded` (later loads of it stay after). It emits no instruction.
      asm volatile("" : "+m"(stored), "+m"(const_cast<L&>(loaded)));
    }
  }
  /// As light(stored, loaded) for two objects loaded after the barrier.
  template <class S, class L1, class L2>
  [[gnu::always_inline]] static void light(S& stored, const L1& loaded1,
                                           const L2& loaded2) noexcept {
    // Set once in init() before this thread started; see there.
    if (need_real_fence_flag().load(std::memory_order_relaxed)) {
      seq_cst_fence();
    } else {
      asm volatile("" : "+m"(stored), "+m"(const_cast<L1&>(loaded1)),
                   "+m"(const_cast<L2&>(loaded2)));
    }
  }

  /// Whether light() is only a compiler barrier (membarrier works here).
  [[nodiscard]] static bool is_asymmetric() noexcept {
    init();
    // Set once in init(); see there.
    return !need_real_fence_flag().load(std::memory_order_relaxed);
  }

  /// The rare side: a barrier on every CPU running this process, then our own seq_cst fence.
  static void heavy() noexcept {
    init();
    // Pairs with light() on the hot side (see the file comment).
    if (!need_real_fence_flag().load(std::memory_order_relaxed)) {
      ::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
    }
    seq_cst_fence();
  }

 private:
  static std::atomic<bool>& need_real_fence_flag() noexcept {
    static std::atomic<bool> flag{true};
    return flag;
  }
};

}  // namespace rondo::detail
