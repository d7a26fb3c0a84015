#pragma once
// The machinery shared by every coroutine wait (a stage waiting for a sequence, a producer
// waiting for capacity): spin, then yield through the scheduler, then park in the waiter
// registry; deadlines and std::stop_token cancellation; the handshake that decides who resumes
// the coroutine. Users meet it through sequence_barrier::wait() and coro_publisher::reserve().
//
// One file above the house's ~400 lines on purpose: suspending_wait is one state machine (spin,
// yield, park, cancel, time out, resume exactly once), and its proof (docs/wakeup-protocol.md,
// verify/wakeup.pml) follows the states in this order; split, a reader would have to hold the
// transitions of one object across files.
//
// Theory of operation
//
//   await_ready:   poll()                       (the fast path: no scheduler, no atomics RMW)
//   await_suspend: spin `spins` times polling   → done: continue without suspending
//                  yield `yields` times:  post ourselves to the scheduler; on_step() polls again
//                  park(), on a scheduler with a park lot, from its own thread (the usual case):
//                     link our park_lot::entry in the lot; arm the deadline timer and the stop
//                     callback (once); suspended. No fence, no lock, no RMW: the executor polls
//                     the entry (plain loads) and, when it is ready, posts on_wake; it announces
//                     the entry in the waiter registry only before it sleeps in the kernel
//                     (coro/park_lot.hpp). A deadline or a stop flags end_ and wakes the lot;
//                     the executor's poll sees the flag. Only the executor resumes us.
//                  park(), direct (a scheduler without a park lot, or a wait that resumes on
//                     another scheduler than the one running it):
//                     state_ = running
//                     registry.add(node); heavy fence (a membarrier per park)
//                     poll() again              → done: remove(node); if we still owned it,
//                                                  continue without suspending
//                     arm deadline timer and stop callback (once)
//                     if state_.exchange(suspended) == woken: a waker came first; poll again
//                                                  and continue, or park again
//                     else: suspended
//   a direct waker (notifier, timer, stop callback) that unlinked the node:
//                     if state_.exchange(woken) == suspended: post on_wake to the scheduler
//                     else: the waiter is still inside park() and will see `woken`
//   on_wake (on the scheduler): poll() again; a producer may have lost the freed slots to
//                     another producer, then it parks again; else resume the coroutine.
//
// Direct mode: whoever exchanges state_ second resumes the coroutine, so it is resumed exactly
// once, and a waker never touches the operation after handing it over (the frame may be gone
// right after). Everything the operation owns (the entry, wait_node, schedule_node, timer_node,
// stop callback) lives in the coroutine frame: no allocation.
//
// Deadlines use detail::timer_service (one process-wide thread), armed only by waits that park.

#include <rondo/core/wait_strategy.hpp>
#include <rondo/core/stage_metrics.hpp>
#include <rondo/coro/park_lot.hpp>
#include <rondo/coro/scheduler.hpp>
#include <rondo/coro/timer_service.hpp>
#include <rondo/detail/asymmetric_fence.hpp>
#include <rondo/detail/config.hpp>
#include <rondo/detail/waiter_registry.hpp>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <stop_token>

namespace rondo::detail {

/// CRTP base of the coroutine wait operations. Derived provides:
///   bool poll() noexcept            - try to finish (store the result); true when done,
///                                     including "stopped"/"closed"
///   static bool registry_ready(const Derived&) noexcept
///                                   - reads only: would poll() finish now?
///   std::int64_t target() const noexcept - the registry target (see waiter_registry.hpp)
///   std::uint8_t sources() const noexcept - which advances can end the wait (advance_kind bits)
///   wait_moment moment() const noexcept
///   waiter_registry& registry() const noexcept
template <class Derived>
class suspending_wait {
 public:
  using clock = std::chrono::steady_clock;

  // Not movable: the nodes point back at the operation. Returned by value through guaranteed
  // copy elision, awaited where it was created.
  suspending_wait(const suspending_wait&) = delete;
  suspending_wait& operator=(const suspending_wait&) = delete;
  [[gnu::always_inline]] ~suspending_wait() {
    if (slow_) [[unlikely]] cleanup();
  }

  [[nodiscard]] [[gnu::always_inline]] bool await_ready() noexcept {
    return completed_ = self().poll();
  }

  /// Spins, yields, parks. Throws std::logic_error if it must suspend and there is neither an
  /// explicit scheduler nor a current one.
  bool await_suspend(std::coroutine_handle<> h) {
    handle_ = h;
    const wait_phase ph = waits_->suspend_policy().phase(self().moment());
    if (!sched_) sched_ = current_scheduler();
    // Spinning while other coroutines wait on our scheduler would only delay them (and the work
    // we wait for may be theirs): then go straight to yielding.
    for (std::uint32_t i = 0; i < ph.spins; ++i) {
      if ((i & 63) == 0 && sched_.has_pending()) break;
      cpu_relax();
      if ((completed_ = self().poll())) {
        if (metrics_ != nullptr) metrics_->add_spin_success();
        return false;
      }
    }
    if (!sched_) {
      throw std::logic_error(
          "rondo: a coroutine wait must suspend but has no scheduler: run the coroutine on one "
          "(sync_wait, manual_scheduler, thread_scheduler, io_context, a coroutine stage)");
    }
    if (ended_by_caller()) return false;
    if (!slow_) slow_.emplace(this);
    if (metrics_ != nullptr) {
      metrics_->add_suspension();
      slow_->suspended_at = clock::now();
    }
    if (ph.yields > 0) {
      slow_->yields_left = ph.yields - 1;
      slow_->snode.handle = h;
      slow_->snode.callback = &on_step;
      sched_.post(slow_->snode);  // nothing of ours is touched after this
      return true;
    }
    if (park()) return true;
    finish();  // ended while parking: disarm, count the time
    return false;
  }


 protected:
  // Cheap on purpose: an operation that completes in await_ready() (the common case) never
  // builds its slow-path state (nodes, timer, stop callback).
  // `sched`: where to resume (empty: the current scheduler when suspending).
  suspending_wait(wait_strategy& waits, clock::time_point deadline, std::stop_token stop,
                  stage_metrics* metrics, scheduler_ref sched) noexcept
      : waits_(&waits),
        sched_(sched),
        deadline_(deadline),
        stop_(std::move(stop)),
        metrics_(metrics) {}

  /// The caller's cancellation or deadline, if it ended the wait (cancelled / timed_out), else
  /// ready (meaning: look at the derived result).
  [[nodiscard]] wait_status end_reason() const noexcept {
    // Relaxed: read by the waiter after the state handshake ordered any canceller's write.
    return end_.load(std::memory_order_relaxed);
  }

 private:
  Derived& self() noexcept { return static_cast<Derived&>(*this); }
  waiter_registry& registry() noexcept { return self().registry(); }

  // The operation goes away with its slow-path state built. Normally it is finished (nothing
  // armed, not linked). A coroutine destroyed while parked is not supported (a waker may
  // already hold the node): the cancellation sources are disarmed first so none of them can
  // start a wake-up, then the node is withdrawn.
  [[gnu::noinline]] void cleanup() noexcept {
    if (slow_->timer_armed) timer_service::instance().disarm(slow_->timer);
    slow_->stop_cb.reset();
    if (!slow_->parked) return;
    if (slow_->lot != nullptr) {
      slow_->lot->unpark(slow_->entry);
    } else {
      (void)registry().remove(slow_->node);
    }
  }

  // Has the caller's stop token or deadline ended the wait? Records why.
  // end_ is atomic: a canceller (timer thread, stop callback) that unlinked the node writes it
  // while the waiter, re-parking, may be reading it here. Relaxed: the state exchange orders
  // what matters; a cancel noticed one poll late is still noticed.
  bool ended_by_caller() noexcept {
    if (end_.load(std::memory_order_relaxed) != wait_status::ready) return true;
    if (stop_.stop_possible() && stop_.stop_requested()) {
      end_.store(wait_status::cancelled, std::memory_order_relaxed);
      return true;
    }
    if (deadline_ != clock::time_point::max() && clock::now() >= deadline_) {
      end_.store(wait_status::timed_out, std::memory_order_relaxed);
      return true;
    }
    return false;
  }

  // Has the wait ended: completed earlier, completes now, or ended by the caller's stop token or
  // deadline? A completed poll is never repeated (a reserve's poll claims slots).
  bool try_finish() noexcept {
    if (completed_) return true;
    if (self().poll()) {
      completed_ = true;
      return true;
    }
    return ended_by_caller();
  }

  // Returns true if suspended (the executor or a waker will post us), false to go on now.
  bool park() noexcept {
    slow_state& st = *slow_;
    if (!st.mode_chosen) {
      // The lot is the executor's own: only from the thread that runs it (its current
      // scheduler). Chosen once, before any canceller (which reads st.lot) is armed.
      park_lot* lot = sched_.parking();
      st.lot = lot != nullptr && sched_ == current_scheduler() ? lot : nullptr;
      st.mode_chosen = true;
    }
    if (st.lot != nullptr) {
      st.entry.registry = &registry();
      st.entry.announcement.target = self().target();
      st.entry.announcement.sources = self().sources();
      arm_cancellation();
      st.parked = true;
      st.lot->park(st.entry);
      return true;
    }
    return park_direct();
  }

  bool park_direct() noexcept {
    slow_state& st = *slow_;
    for (;;) {
      // Relaxed: only this operation's wakers read it, after unlinking the node under the
      // registry lock that add() below takes after this store.
      st.state.store(running, std::memory_order_relaxed);
      st.node.target = self().target();
      st.node.sources = self().sources();
      st.parked = true;
      registry().add(st.node);
      asymmetric_fence::heavy();  // pairs with light() in the notifiers (waiter_registry.hpp)
      if (try_finish()) {
        if (registry().remove(st.node)) {
          st.parked = false;
          return false;
        }
        // A waker unlinked us first and is on its way to the handshake below.
      } else {
        arm_cancellation();
      }
      // acq_rel: release publishes our state to the waker; acquire pairs with its exchange so
      // that what it wrote (end_) is visible if it came first.
      if (st.state.exchange(suspended, std::memory_order_acq_rel) != woken) return true;
      // The waker came first and left the resumption to us: it may have been a producer that
      // then lost the slots to another, so look again, and park again if needed.
      st.parked = false;
      if (try_finish()) return false;
    }
  }

  void arm_cancellation() noexcept {
    slow_state& st = *slow_;
    if (deadline_ != clock::time_point::max() && !st.timer_armed) {
      st.timer.deadline = deadline_;
      st.timer.fire = &on_timer;
      st.timer_armed = true;
      try {
        timer_service::instance().arm(st.timer);
      } catch (...) {
        // The timer thread could not start: the wait stays correct but its deadline is only
        // noticed on the next wake-up. Unlikely enough (thread creation failed) to accept.
        st.timer_armed = false;
      }
    }
    if (stop_.stop_possible() && !st.stop_cb) {
      // May run the callback right here if stop was already requested.
      st.stop_cb.emplace(stop_, stop_callback_fn{this});
    }
  }

  // Called by whoever unlinked the node (notifier, timer, stop callback).
  void wake_from_outside() noexcept {
    slow_state& st = *slow_;
    // acq_rel: see park().
    if (st.state.exchange(woken, std::memory_order_acq_rel) == suspended) {
      st.snode.handle = handle_;
      st.snode.callback = &on_wake;
      sched_.post(st.snode);
    }
  }

  // From a timer or a stop callback, on any thread.
  void cancel(wait_status why) noexcept {
    if (slow_->lot != nullptr) {
      // Parked on an executor: flag the wait and end the executor's sleep; its poll sees the
      // flag. The first reason wins. seq_cst: a store-then-load handshake with the executor's
      // "asleep" flag, read by wake() (the executor stores that flag, runs a membarrier, then
      // re-polls us).
      wait_status expected = wait_status::ready;
      (void)end_.compare_exchange_strong(expected, why, std::memory_order_seq_cst,
                                         std::memory_order_relaxed);
      slow_->lot->wake();
      return;
    }
    // Not parked: the next poll (on_step, on_wake, park's re-check) sees the cause itself.
    if (!registry().remove(slow_->node)) return;
    // Relaxed: published to the waiter by the acq_rel exchange in wake_from_outside().
    end_.store(why, std::memory_order_relaxed);
    wake_from_outside();
  }

  void finish() noexcept {
    slow_state& st = *slow_;
    st.parked = false;
    if (st.timer_armed) {
      timer_service::instance().disarm(st.timer);  // waits for a fire() in progress
      st.timer_armed = false;
    }
    st.stop_cb.reset();  // waits for a callback running on another thread
    if (metrics_ != nullptr) {
      metrics_->add_suspended(
          std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - st.suspended_at)
              .count());
    }
  }

  // Each node knows its operation (set before the node is handed to anybody).
  struct owned_schedule_node : schedule_node {
    suspending_wait* owner = nullptr;
  };
  struct owned_wait_node : wait_node {
    suspending_wait* owner = nullptr;
  };
  struct owned_timer_node : timer_node {
    suspending_wait* owner = nullptr;
  };
  struct owned_entry : park_lot::entry {
    suspending_wait* owner = nullptr;
  };
  static Derived& from_snode(schedule_node& n) noexcept {
    return static_cast<Derived&>(*static_cast<owned_schedule_node&>(n).owner);
  }
  static Derived& from_wnode(wait_node& n) noexcept {
    return static_cast<Derived&>(*static_cast<owned_wait_node&>(n).owner);
  }
  static Derived& from_tnode(timer_node& n) noexcept {
    return static_cast<Derived&>(*static_cast<owned_timer_node&>(n).owner);
  }
  static Derived& from_entry(park_lot::entry& e) noexcept {
    return static_cast<Derived&>(*static_cast<owned_entry&>(e).owner);
  }


  // A yield came back: poll, yield again, or park.
  static void on_step(schedule_node& n) noexcept {
    Derived& op = from_snode(n);
    if (op.try_finish()) {
      op.resume_now(false);
      return;
    }
    slow_state& st = *op.slow_;
    if (st.yields_left > 0) {
      --st.yields_left;
      op.sched_.post(st.snode);
      return;
    }
    if (!op.park()) op.resume_now(false);
  }

  // A waker posted us: re-check (and park again if we lost the race), else resume.
  static void on_wake(schedule_node& n) noexcept {
    Derived& op = from_snode(n);
    if (op.try_finish()) {
      op.resume_now(true);
      return;
    }
    if (!op.park()) op.resume_now(true);
  }

  void resume_now(bool woken_by_registry) noexcept {
    if (woken_by_registry && metrics_ != nullptr) metrics_->add_resume();
    finish();
    handle_.resume();
  }

  static bool registry_ready_thunk(wait_node& n) noexcept {
    return Derived::registry_ready(from_wnode(n));
  }
  // The executor's poll (its own thread) and a notifier reading an announcement (under the
  // registry lock): has the wait ended? A cancel's flag counts.
  static bool ended(const Derived& op) noexcept {
    // Relaxed: a flag set by cancel() (seq_cst there); a late look is caught by the next poll,
    // and the executor's sleep is ended by cancel()'s wake().
    return Derived::registry_ready(op) ||
           op.end_.load(std::memory_order_relaxed) != wait_status::ready;
  }
  static bool entry_ready(park_lot::entry& e) noexcept { return ended(from_entry(e)); }
  static bool announcement_ready(wait_node& n) noexcept {
    return ended(from_entry(park_lot::entry::of(n)));
  }
  // The executor's poll found us ready and unlinked us: run on_wake on its thread.
  static void entry_resume(park_lot::entry& e) noexcept {
    Derived& op = from_entry(e);
    slow_state& st = *op.slow_;
    st.parked = false;
    st.snode.handle = op.handle_;
    st.snode.callback = &on_wake;
    op.sched_.post(st.snode);
  }
  static void on_registry_wake(wait_node& n) noexcept { from_wnode(n).wake_from_outside(); }
  static void on_timer(timer_node& t) noexcept { from_tnode(t).cancel(wait_status::timed_out); }

  struct stop_callback_fn {
    suspending_wait* op;
    void operator()() const noexcept { op->cancel(wait_status::cancelled); }
  };

  // state_ encoding: running (inside park), suspended (park returned true), woken (a waker
  // unlinked the node). See the file comment.
  static constexpr std::uint8_t running = 0;
  static constexpr std::uint8_t suspended = 1;
  static constexpr std::uint8_t woken = 2;

  // Built on the first suspension only.
  struct slow_state {
    explicit slow_state(suspending_wait* op) noexcept {
      node.owner = op;
      node.ready = &registry_ready_thunk;
      node.wake = &on_registry_wake;
      snode.owner = op;
      timer.owner = op;
      entry.owner = op;
      entry.ready = &entry_ready;
      entry.resume = &entry_resume;
      entry.announcement.ready = &announcement_ready;
    }
    std::atomic<std::uint8_t> state{running};  // direct mode; see the file comment
    park_lot* lot = nullptr;  // parks in this executor's lot; null: direct (see park())
    bool mode_chosen = false;
    bool parked = false;
    bool timer_armed = false;
    std::uint32_t yields_left = 0;
    clock::time_point suspended_at{};
    owned_wait_node node;
    owned_schedule_node snode;
    owned_timer_node timer;
    owned_entry entry;
    std::optional<std::stop_callback<stop_callback_fn>> stop_cb;
  };

  wait_strategy* waits_;
  scheduler_ref sched_;
  clock::time_point deadline_;
  std::stop_token stop_;
  stage_metrics* metrics_;
  std::coroutine_handle<> handle_;
  std::atomic<wait_status> end_{wait_status::ready};
  bool completed_ = false;  // poll() returned true: the derived result is final
  std::optional<slow_state> slow_;
};

}  // namespace rondo::detail
