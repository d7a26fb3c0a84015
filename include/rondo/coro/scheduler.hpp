#pragma once
// What a suspended wait resumes on: the scheduler concept, and two schedulers that model it
// without io_uring — manual_scheduler (driven step by step, for tests and for users who own their
// loop) and thread_scheduler (one thread running whatever is posted to it). The io_context of
// the executor issue models the same concept.
//
// Theory of operation
//   A coroutine is handed to a scheduler as a schedule_node: an intrusive list node holding its
//   handle. The node lives in the awaiting operation (in the coroutine frame), so posting never
//   allocates. Posting is lock-free from any thread: a Treiber-stack push onto `incoming_`
//   (release CAS). The scheduler's own thread takes the whole stack at once (acquire exchange),
//   reverses it into FIFO order and resumes the nodes one by one.
//
//     any thread:  node.next = head; CAS(head, node)        (push, release)
//     owner:       batch = exchange(head, null)             (take all, acquire)
//                  reverse(batch); for n in batch: n.handle.resume()
//
//   thread_scheduler sleeps when it finds nothing on the eventcount of detail/eventcount.hpp:
//   a poster that finds nobody asleep pays a compiler barrier and one load.
//
//   A scheduler may also own a park_lot (coro/park_lot.hpp, returned by `parking()`): the waits
//   of the coroutines it runs park there and it re-polls them itself, so notifiers need no
//   fence. manual_scheduler polls its lot in run_one(); thread_scheduler polls it in its loop
//   and idle spin and announces its waits only before it sleeps on the futex.

#include <rondo/coro/park_lot.hpp>
#include <rondo/detail/config.hpp>
#include <rondo/detail/eventcount.hpp>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <concepts>
#include <coroutine>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

namespace rondo {

/// An intrusive node for posting a coroutine to a scheduler. Owned by the operation that posts
/// it; must stay alive until it has run.
struct schedule_node {
  schedule_node* next = nullptr;
  std::coroutine_handle<> handle;
  /// When set, running the node calls this instead of resuming `handle` directly: a wait
  /// operation re-checks its condition first and may park again without resuming anybody.
  void (*callback)(schedule_node&) noexcept = nullptr;

  /// Runs the node on the scheduler's thread. The node may be destroyed by the time it returns.
  void run() noexcept {
    if (callback != nullptr) callback(*this); else handle.resume();
  }
};

/// A scheduler runs posted nodes. post() must be callable from any thread and must not
/// allocate; the node runs later, on the scheduler's own thread(s), never inside post().
///
/// Optionally `park_lot* parking() noexcept`: the scheduler's park lot (coro/park_lot.hpp),
/// which it polls on its own thread. Waits that suspend on such a scheduler, from its own
/// thread, park there (no fence for anybody while it is awake); on a scheduler without one,
/// every park pays a membarrier instead (docs/wakeup-protocol.md).
template <class S>
concept scheduler = requires(S& s, schedule_node& n) {
  { s.post(n) } noexcept;
};

/// A non-owning, type-erased reference to any scheduler (two pointers; copying it is free).
/// The scheduler must outlive every use.
class scheduler_ref {
 public:
  scheduler_ref() noexcept = default;
  template <class S>
    requires(scheduler<S> && !std::same_as<std::remove_cv_t<S>, scheduler_ref>)
  scheduler_ref(S& s) noexcept  // NOLINT(google-explicit-constructor): a reference, like S&
      : obj_(&s), post_([](void* o, schedule_node& n) noexcept { static_cast<S*>(o)->post(n); }) {
    if constexpr (requires(const S& c) {
                    { c.has_pending() } noexcept -> std::convertible_to<bool>;
                  }) {
      pending_ = [](const void* o) noexcept -> bool {
        return static_cast<const S*>(o)->has_pending();
      };
    }
    if constexpr (requires(S& m) {
                    { m.parking() } noexcept -> std::convertible_to<park_lot*>;
                  }) {
      lot_ = s.parking();
    }
  }

  /// The scheduler's park lot, or null when it has none.
  [[nodiscard]] park_lot* parking() const noexcept { return lot_; }

  /// Posts to the referenced scheduler. Precondition: not empty.
  void post(schedule_node& n) const noexcept { post_(obj_, n); }

  /// Whether the scheduler has other coroutines waiting to run (a hint, from its own thread;
  /// false when the scheduler cannot tell). A wait skips its spinning when this is true: the
  /// work it waits for may be one of them.
  [[nodiscard]] bool has_pending() const noexcept {
    return pending_ != nullptr && pending_(obj_);
  }

  [[nodiscard]] explicit operator bool() const noexcept { return obj_ != nullptr; }
  [[nodiscard]] const void* address() const noexcept { return obj_; }
  friend bool operator==(const scheduler_ref& a, const scheduler_ref& b) noexcept {
    return a.obj_ == b.obj_;
  }

 private:
  void* obj_ = nullptr;
  void (*post_)(void*, schedule_node&) noexcept = nullptr;
  bool (*pending_)(const void*) noexcept = nullptr;
  park_lot* lot_ = nullptr;
};

namespace detail {
inline scheduler_ref& current_scheduler_slot() noexcept {
  thread_local scheduler_ref slot;
  return slot;
}
}  // namespace detail

/// The scheduler running the calling code (set by manual_scheduler::run_one, thread_scheduler's
/// thread, sync_wait and the io_context); empty on a plain thread. A wait that must suspend and
/// was given no scheduler resumes on this one.
[[nodiscard]] inline scheduler_ref current_scheduler() noexcept {
  return detail::current_scheduler_slot();
}

/// Makes `s` the current scheduler of this thread until the scope ends (for users who run
/// coroutines from their own loop).
class scheduler_scope {
 public:
  explicit scheduler_scope(scheduler_ref s) noexcept
      : saved_(std::exchange(detail::current_scheduler_slot(), s)),
        saved_flag_(std::exchange(detail::on_executor_thread(), static_cast<bool>(s))) {}
  scheduler_scope(const scheduler_scope&) = delete;
  scheduler_scope& operator=(const scheduler_scope&) = delete;
  ~scheduler_scope() {
    detail::current_scheduler_slot() = saved_;
    detail::on_executor_thread() = saved_flag_;
  }

 private:
  scheduler_ref saved_;
  bool saved_flag_;
};

namespace detail {

/// Multi-producer, single-consumer intrusive queue (see the file comment).
class intrusive_mpsc_queue {
 public:
  /// Any thread. Returns true if the queue was empty before (the consumer may need waking).
  bool push(schedule_node& n) noexcept {
    // Relaxed initial read: the CAS below validates it.
    schedule_node* head = head_.load(std::memory_order_relaxed);
    do {
      n.next = head;
      // Release: publishes n (and what the poster wrote before) to the consumer's acquire
      // exchange in take_all().
    } while (!head_.compare_exchange_weak(head, &n, std::memory_order_release,
                                          std::memory_order_relaxed));
    return head == nullptr;
  }

  /// Consumer only: everything pushed so far, oldest first (null when empty).
  schedule_node* take_all() noexcept {
    // Acquire: pairs with the release CAS in push().
    schedule_node* lifo = head_.exchange(nullptr, std::memory_order_acquire);
    schedule_node* fifo = nullptr;
    while (lifo != nullptr) {
      schedule_node* next = lifo->next;
      lifo->next = fifo;
      fifo = lifo;
      lifo = next;
    }
    return fifo;
  }

  [[nodiscard]] bool empty() const noexcept {
    // Advisory: the consumer's take_all() is authoritative.
    return head_.load(std::memory_order_relaxed) == nullptr;
  }

 private:
  std::atomic<schedule_node*> head_{nullptr};
};

}  // namespace detail

/// A scheduler driven by explicit calls: post() from anywhere, run_one()/run_all() from the
/// thread that owns it. For deterministic tests and for embedding in a user's loop.
class manual_scheduler {
 public:
  manual_scheduler() = default;
  /// For an owner that sleeps between run_one() calls (a loop of the user's own): it calls
  /// parking()->prepare_sleep() before sleeping and finish_sleep() after, and `wake(ctx)` is
  /// how notifiers and cancellations end that sleep (any thread; must not block).
  manual_scheduler(void (*wake)(void*) noexcept, void* ctx) noexcept : lot_(wake, ctx) {}
  manual_scheduler(const manual_scheduler&) = delete;
  manual_scheduler& operator=(const manual_scheduler&) = delete;

  /// Any thread; never allocates.
  void post(schedule_node& n) noexcept { (void)incoming_.push(n); }

  /// Owner thread: resumes the oldest posted coroutine, if any; with none posted, first hands
  /// back the parked waits that are ready now (park_lot::poll). Returns whether one ran.
  bool run_one() {
    if (ready_ == nullptr) ready_ = incoming_.take_all();
    if (ready_ == nullptr && lot_.poll() > 0) ready_ = incoming_.take_all();
    if (ready_ == nullptr) return false;
    schedule_node* n = ready_;
    ready_ = n->next;
    const scheduler_scope scope(*this);
    n->run();  // may post more, or free n's frame: n is not touched afterwards
    return true;
  }

  /// Owner thread: runs until nothing is posted; returns how many coroutines ran.
  std::size_t run_all() {
    std::size_t ran = 0;
    while (run_one()) ++ran;
    return ran;
  }

  /// Owner thread: whether anything is posted and not yet run (parked waits do not count).
  [[nodiscard]] bool idle() const noexcept { return ready_ == nullptr && incoming_.empty(); }
  /// Owner thread: the opposite of idle() (see scheduler_ref::has_pending).
  [[nodiscard]] bool has_pending() const noexcept { return !idle(); }

  /// `co_await s.schedule()` suspends the caller and resumes it from this scheduler.
  [[nodiscard]] auto schedule() noexcept { return schedule_operation<manual_scheduler>{*this}; }

  /// Where waits suspended from run_one() park (see park_lot). run_one() polls it; the owner
  /// decides when to call run_one() again (and, if it sleeps meanwhile, announces the waits:
  /// see the two-argument constructor).
  [[nodiscard]] park_lot* parking() noexcept { return &lot_; }

  /// The awaitable of schedule(); it is its own schedule_node, so it never allocates.
  template <class S>
  struct schedule_operation {
    S& sched;
    schedule_node node{};
    [[nodiscard]] bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept {
      node.handle = h;
      sched.post(node);  // resumed on the scheduler; nothing of ours is touched afterwards
    }
    void await_resume() const noexcept {}
  };

 private:
  detail::intrusive_mpsc_queue incoming_;
  schedule_node* ready_ = nullptr;  // owner-only: taken from incoming_, not yet run
  // By default the owner never sleeps with waits announced, so there is nothing to wake.
  park_lot lot_{[](void*) noexcept {}, nullptr};
};

/// One thread that resumes whatever is posted to it, sleeping (futex) when there is nothing.
/// Waits suspended on it park in its park_lot; with waits parked and nothing to run it polls
/// them for `idle_spin` before it sleeps. stop() (or the destructor) finishes what was posted
/// before it, then joins the thread.
class thread_scheduler {
 public:
  /// Throws std::invalid_argument for a negative idle_spin, std::system_error if the thread
  /// cannot start.
  explicit thread_scheduler(std::chrono::nanoseconds idle_spin = std::chrono::microseconds{50})
      : idle_spin_(checked_idle_spin(idle_spin)), thread_([this] { run(); }) {}
  thread_scheduler(const thread_scheduler&) = delete;
  thread_scheduler& operator=(const thread_scheduler&) = delete;
  ~thread_scheduler() { stop(); }

  /// Any thread; never allocates. Wakes the thread only if it announced it sleeps.
  void post(schedule_node& n) noexcept {
    (void)incoming_.push(n);
    wake();
  }

  /// Runs everything already posted, then stops and joins the thread. Idempotent; not from the
  /// scheduler's own thread (std::logic_error).
  void stop() {
    if (!thread_.joinable()) return;
    if (std::this_thread::get_id() == thread_.get_id()) {
      throw std::logic_error("thread_scheduler::stop() called from its own thread");
    }
    // Release: pairs with the acquire load in run(); posts before this are drained first.
    stopping_.store(true, std::memory_order_release);
    wake_always();
    thread_.join();
  }

  [[nodiscard]] std::thread::id thread_id() const noexcept { return thread_.get_id(); }

  /// Whether coroutines are posted and not yet taken (a hint; see scheduler_ref::has_pending).
  /// Counts only posts since the thread last took its queue: those it is running now are not.
  [[nodiscard]] bool has_pending() const noexcept { return !incoming_.empty(); }

  /// `co_await s.schedule()` moves the caller onto this scheduler's thread.
  [[nodiscard]] auto schedule() noexcept {
    return manual_scheduler::schedule_operation<thread_scheduler>{*this};
  }

  /// The scheduler's park lot (see park_lot): its statistics may be read from any thread.
  [[nodiscard]] park_lot* parking() noexcept { return &lot_; }

 private:
  static std::chrono::nanoseconds checked_idle_spin(std::chrono::nanoseconds t) {
    if (t.count() < 0) {
      throw std::invalid_argument(
          fmt::format("thread_scheduler: idle_spin {} ns is negative", t.count()));
    }
    return t;
  }

  void run() {
    const scheduler_scope scope(*this);
    for (;;) {
      schedule_node* batch = incoming_.take_all();
      if (batch != nullptr) {
        while (batch != nullptr) {
          schedule_node* n = batch;
          batch = n->next;
          n->run();
        }
        continue;
      }
      if (lot_.poll() > 0 || idle_poll()) continue;
      // Arm, announce the parked waits, one heavy fence for both, then re-check: a post or a
      // publish after the fence sees us asleep and wakes us; one before it is seen here.
      const std::uint32_t key = events_.arm();
      lot_.announce();
      detail::asymmetric_fence::heavy();  // pairs with light() in post() and in the notifiers
      if (!lot_.empty()) lot_.count_fence();
      if (!incoming_.empty() || lot_.recheck()) {
        lot_.withdraw();
        continue;
      }
      // Acquire: pairs with the release store in stop().
      if (stopping_.load(std::memory_order_acquire)) {
        lot_.withdraw();
        if (incoming_.empty()) return;
        continue;
      }
      events_.wait(key);
      lot_.withdraw();
    }
  }

  // With waits parked, poll them (and the queue) for idle_spin_ before sleeping: a wake-up
  // through the kernel costs tens of microseconds here, a poll tens of nanoseconds. Returns
  // whether there is something to run.
  bool idle_poll() noexcept {
    if (lot_.empty() || idle_spin_.count() == 0) return false;
    const auto until = std::chrono::steady_clock::now() + idle_spin_;
    for (std::uint32_t i = 1;; ++i) {
      detail::cpu_relax();
      if (!incoming_.empty() || lot_.poll() > 0) return true;
      // Relaxed: pairs with the release store in stop(); a late look only spins a little longer.
      if ((i & 63) == 0 && (stopping_.load(std::memory_order_relaxed) ||
                            std::chrono::steady_clock::now() >= until)) {
        return false;
      }
    }
  }

  void wake() noexcept { events_.notify(); }
  void wake_always() noexcept { events_.notify_all(); }

  detail::intrusive_mpsc_queue incoming_;
  detail::eventcount events_;
  std::atomic<bool> stopping_{false};
  std::chrono::nanoseconds idle_spin_;
  // A notifier that found one of our announcements, or a cancelled wait: end the futex sleep.
  park_lot lot_{[](void* self) noexcept { static_cast<thread_scheduler*>(self)->wake(); }, this};
  std::thread thread_;  // last: started after every other member is ready
};

static_assert(scheduler<manual_scheduler>);
static_assert(scheduler<scheduler_ref>);
static_assert(scheduler<thread_scheduler>);

}  // namespace rondo
