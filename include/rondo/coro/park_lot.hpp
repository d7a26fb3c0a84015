#pragma once
// park_lot: where an executor keeps the coroutine waits it runs that could not finish (a stage
// waiting for a sequence, a producer waiting for free slots), and re-polls them itself.
//
// Theory of operation (docs/wakeup-protocol.md has the protocol and its proof)
//   Parking is not sleeping. A wait that gives up spinning links its entry here, on the thread
//   that runs the executor: no lock, no RMW, no fence. The executor calls poll() in its loop and
//   idle spin; poll() reads each wait's condition (acquire loads) and hands the ones that hold
//   back to the executor (a post on its own thread). Notifiers know nothing of it: a publish
//   costs a compiler barrier and one load however many waits are parked.
//
//   Only when the executor is about to sleep in the kernel does anybody else need to know:
//
//     executor                                   notifier (publish / stage advance to v)
//     --------                                   ---------------------------------------
//     announce(): per parked wait, link an       store the sequence (release)
//       announcement in its disruptor's          compiler barrier
//       waiter_registry (target, ready())        if v < registry.min_target: done
//     heavy fence: membarrier (one per sleep)    else: lock; unlink the announcements that are
//     recheck(): re-poll every wait               ready; unlock; wake their executors
//     if one is ready: withdraw(), don't sleep
//     sleep in the kernel; withdraw()
//
//   Cancellation (a std::stop_token, a deadline's timer) never resumes anything itself: it flags
//   the wait and calls wake(), which ends the executor's sleep; the executor's poll sees the flag.
//   So every resumption happens on the executor's thread, exactly once, and nothing but the
//   executor ever touches a parked wait's frame, except a notifier reading an announcement's
//   condition under the registry lock while the executor sleeps.
//
// Used by io_context, thread_scheduler and manual_scheduler. A foreign loop gets the same by
// owning a park_lot, returning it from `parking()` (see the scheduler concept), calling poll()
// in its loop and prepare_sleep()/finish_sleep() around its blocking wait.

#include <rondo/detail/asymmetric_fence.hpp>
#include <rondo/detail/config.hpp>
#include <rondo/detail/waiter_registry.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace rondo {

/// The parked waits of one executor. Every member but wake() and the statistics is for the
/// executor's own thread (the owner) only.
class park_lot : private detail::sleeper {
 public:
  /// A parked wait. Lives in the waiting operation (in the coroutine frame): parking never
  /// allocates. The owner of the entry sets ready, resume and the announcement before park().
  struct entry {
    entry* prev = nullptr;  // owner thread only
    entry* next = nullptr;  // owner thread only
    /// Owner thread: has the wait ended (its condition holds, or it was stopped or cancelled)?
    /// Reads only. The announcement's ready() answers the same question on a notifier's thread.
    bool (*ready)(entry&) noexcept = nullptr;
    /// Owner thread, after poll() unlinked the entry: hand the wait back to the executor. Must
    /// post, not run the coroutine inline (poll() is iterating).
    void (*resume)(entry&) noexcept = nullptr;
    /// Where the announcement goes while the executor sleeps.
    detail::waiter_registry* registry = nullptr;
    /// Linked in `registry` between announce() and withdraw(). Its target and ready are the
    /// wait's; its owner is set by the lot.
    detail::wait_node announcement;

    /// The entry whose announcement `n` is (for the announcement's ready()).
    static entry& of(detail::wait_node& n) noexcept {
      static_assert(std::is_standard_layout_v<entry>);
      return *reinterpret_cast<entry*>(reinterpret_cast<char*>(&n) - offsetof(entry, announcement));
    }
  };

  /// `wake_fn(ctx)`: from any thread, end the owner's kernel sleep if it is in one (its doorbell);
  /// must not block and must not allocate.
  park_lot(void (*wake_fn)(void*) noexcept, void* ctx) noexcept : wake_(wake_fn), ctx_(ctx) {
    detail::sleeper::wake = &wake_thunk;
  }
  park_lot(const park_lot&) = delete;
  park_lot& operator=(const park_lot&) = delete;

  /// Parks `e` (not parked already). Owner thread.
  void park(entry& e) noexcept {
    // A loop that runs coroutines again without finish_sleep() (a foreign loop's misuse of the
    // embedding calls): withdraw first, so no announcement outlives its wait.
    if (announced_) [[unlikely]] withdraw();
    e.announcement.owner = this;
    e.prev = tail_;
    e.next = nullptr;
    if (tail_ != nullptr) tail_->next = &e; else head_ = &e;
    tail_ = &e;
    ++size_;
    // Relaxed: a statistic, owner-written.
    parks_.store(parks_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  /// Unparks `e` without resuming it (a wait that goes away). Owner thread.
  void unpark(entry& e) noexcept {
    if (announced_) [[unlikely]] withdraw();  // as in park()
    unlink(e);
  }

  [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }
  /// Waits parked now. Owner thread.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

  /// Owner thread: hands back every parked wait whose ready() holds; returns how many. Plain
  /// loads only: call it every round of the executor's loop and of its idle spin.
  std::size_t poll() noexcept {
    if (announced_) [[unlikely]] withdraw();  // as in park()
    std::size_t n = 0;
    for (entry* e = head_; e != nullptr;) {
      entry* next = e->next;
      if (e->ready(*e)) {
        unlink(*e);
        e->resume(*e);
        ++n;
      }
      e = next;
    }
    return n;
  }

  /// Owner thread, about to sleep in the kernel: announce(), the asymmetric fence, recheck().
  /// Returns true if the caller may sleep (then call finish_sleep() after the sleep, or to call
  /// it off); false if a wait is ready (nothing stays announced: poll() next). The caller stores
  /// its own "asleep" flag, which wake() reads, before calling this.
  [[nodiscard]] bool prepare_sleep() noexcept {
    announce();
    detail::asymmetric_fence::heavy();  // pairs with light() in the notifiers (file comment)
    count_fence();
    if (recheck()) {
      withdraw();
      return false;
    }
    return true;
  }

  /// Owner thread: after the sleep that prepare_sleep() allowed (or instead of it).
  void finish_sleep() noexcept { withdraw(); }

  /// The steps of prepare_sleep(), for an executor that runs one fence for several handshakes
  /// (its own "asleep" flag and this lot's announcements): announce(), then its fence, then
  /// count_fence() and recheck(); withdraw() when the sleep ends or is called off.
  void announce() noexcept {
    for (entry* e = head_; e != nullptr; e = e->next) e->registry->add(e->announcement);
    announced_ = true;
  }
  /// Whether any parked wait is ready now (reads only).
  [[nodiscard]] bool recheck() noexcept {
    for (entry* e = head_; e != nullptr; e = e->next) {
      if (e->ready(*e)) return true;
    }
    return false;
  }
  void withdraw() noexcept {
    if (!announced_) return;
    bool woken = false;
    for (entry* e = head_; e != nullptr; e = e->next) woken |= !e->registry->remove(e->announcement);
    announced_ = false;
    // A notifier that unlinked one of ours may still be ringing our doorbell.
    if (woken) wait_unpinned();
  }
  /// Counts one heavy fence run for a sleep (the statistic below).
  void count_fence() noexcept {
    // Relaxed: a statistic, owner-written.
    fences_.store(fences_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  /// Any thread: ends the owner's sleep (what a stop callback or a deadline calls after flagging
  /// its wait).
  void wake() noexcept { wake_(ctx_); }

  /// Statistics (any thread, relaxed): waits parked so far, and heavy fences (membarriers) run
  /// before sleeps — one per sleep at most, none while the executor stays awake.
  [[nodiscard]] std::uint64_t parks() const noexcept {
    // Relaxed: statistics only.
    return parks_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t sleep_fences() const noexcept {
    // Relaxed: statistics only.
    return fences_.load(std::memory_order_relaxed);
  }

 private:
  static void wake_thunk(detail::sleeper& s) noexcept {
    auto& lot = static_cast<park_lot&>(s);
    lot.wake_(lot.ctx_);
  }

  void unlink(entry& e) noexcept {
    if (e.prev != nullptr) e.prev->next = e.next; else head_ = e.next;
    if (e.next != nullptr) e.next->prev = e.prev; else tail_ = e.prev;
    e.prev = e.next = nullptr;
    --size_;
  }

  void (*wake_)(void*) noexcept;
  void* ctx_;
  entry* head_ = nullptr;
  entry* tail_ = nullptr;
  std::size_t size_ = 0;
  bool announced_ = false;
  std::atomic<std::uint64_t> parks_{0};
  std::atomic<std::uint64_t> fences_{0};
};

}  // namespace rondo
