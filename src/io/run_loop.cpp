// The io_context's run loop: submitting and reaping in batches, a round of ready work, the idle
// spin and the sleep in the kernel, run() / poll() / run_one() / stop(), and the failures of
// spawned tasks that they rethrow (see include/rondo/io/io_context.hpp for the model).

#include "context_impl.hpp"

#include <rondo/detail/asymmetric_fence.hpp>
#include <rondo/detail/config.hpp>

#include <liburing.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace rondo {

namespace {

thread_local io_context* running_context = nullptr;

// Marks the calling thread as running `c` (nested runs restore the outer one).
class running_scope {
 public:
  explicit running_scope(io_context& c) noexcept : saved_(std::exchange(running_context, &c)) {}
  running_scope(const running_scope&) = delete;
  running_scope& operator=(const running_scope&) = delete;
  ~running_scope() { running_context = saved_; }

 private:
  io_context* saved_;
};

}  // namespace

io_context* current_io_context_or_null() noexcept { return running_context; }

io_context& current_io_context() {
  if (running_context == nullptr) {
    throw std::logic_error(
        "rondo::current_io_context(): this thread is not running an io_context");
  }
  return *running_context;
}

// ---- Submitting and reaping

io_uring_sqe* io_context::impl::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring);
  while (s == nullptr) {  // SQ full: submit what is there, then retry
    flush();
    s = io_uring_get_sqe(&ring);
  }
  return s;
}

void io_context::impl::flush() {
  // The SQ itself, not a counter: a partial submit leaves entries behind.
  if (io_uring_sq_ready(&ring) == 0) return;
  for (;;) {
    const int r = io_uring_submit(&ring);
    if (r >= 0) break;
    if (r == -EINTR) continue;
    if (r == -EBUSY || r == -EAGAIN) {  // CQ overflow / no resources: make room, then retry
      reap();
      continue;
    }
    throw std::system_error(-r, std::system_category(), "rondo::io_context: io_uring_submit");
  }
}

// Whether completions may be waiting as task work that only an io_uring_enter by the owner
// runs (DEFER_TASKRUN; COOP_TASKRUN's deferred work). Nothing in flight: nothing to ask for,
// and a compute-only context must not pay a syscall per round (io_uring_get_events alone was
// 6 % of a coroutine pipeline's profile). The doorbell's read is not counted: it completes only after a
// poster saw `sleeping`, and the sleep's own io_uring_submit_and_wait runs that task work.
// With TASKRUN_FLAG the kernel says so in the SQ flags (a plain load); without it, a
// deferring ring must ask.
bool io_context::impl::kernel_has_work() const noexcept {
  if (in_flight == 0 && !doorbell_work) return false;
  if ((flags & IORING_SETUP_TASKRUN_FLAG) != 0) {
    return (IO_URING_READ_ONCE(*ring.sq.kflags) & IORING_SQ_TASKRUN) != 0;
  }
  return (flags & (IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN)) != 0;
}

// Moves finished I/O to the ready queue; returns how many completions it saw.
std::size_t io_context::impl::reap() {
  if (kernel_has_work()) {
    doorbell_work = false;
    (void)io_uring_get_events(&ring);
  }
  return reap_cq();
}

// What reap() does once completions are in the CQ: no syscall.
std::size_t io_context::impl::reap_cq() {
  std::size_t n = 0;
  io_uring_cqe* cqe = nullptr;
  while (io_uring_peek_cqe(&ring, &cqe) == 0 && cqe != nullptr) {
    const std::uint64_t data = io_uring_cqe_get_data64(cqe);
    const int res = cqe->res;
    const unsigned cflags = cqe->flags;
    io_uring_cqe_seen(&ring, cqe);
    ++n;
    if (data == doorbell_tag) {
      arm_doorbell();
      continue;
    }
    if (data == ignore_tag || data == msg_doorbell_tag) continue;  // the wake was the point
    if ((data & tag_mask) == msg_sent_tag) {  // its result was read in ring_by_msg()
      --in_flight;
      continue;
    }
    void* obj = reinterpret_cast<void*>(data & ~tag_mask);
    switch (data & tag_mask) {
      case op_main: on_main(*static_cast<io_operation*>(obj), res); break;
      case op_timeout: on_timeout(*static_cast<io_operation*>(obj), res); break;
      case op_cancel: on_cancel(*static_cast<io_operation*>(obj)); break;
      case op_multishot:
        on_multishot(*static_cast<detail::multishot_state*>(obj), res, cflags);
        break;
      default: break;
    }
  }
  if (backlog_head != nullptr) drain_backlog();
  return n;
}

// ---- The loop

// Runs what is ready now (not what it makes ready); returns how many ran.
std::size_t io_context::impl::run_ready(io_context& self) {
  std::size_t ran = 0;
  schedule_node* batch = ready_head;
  ready_head = ready_tail = nullptr;
  const scheduler_scope scope(self);
  const running_scope running(self);
  while (batch != nullptr) {
    schedule_node* n = batch;
    batch = n->next;
    n->run();  // may post more (to the fresh local queue), or free n
    ++ran;
  }
  return ran;
}

// One round without sleeping: remote -> ready, run, submit, reap. Returns nodes run.
std::size_t io_context::impl::round(io_context& self) {
  (void)take_remote();
  (void)lot.poll();  // ready parked waits join the local queue
  std::size_t ran = run_ready(self);
  flush();
  (void)reap();
  if (ready_head != nullptr) ran += run_ready(self);
  flush();
  return ran;
}

bool io_context::impl::idle() const noexcept {
  return ready_head == nullptr && remote.empty() && io_uring_cq_ready(&ring) == 0;
}

// Polls for work for idle_spin, then sleeps in the kernel until a completion (I/O or doorbell).
void io_context::impl::wait_for_work() {
  // idle_spin 0: straight to the sleep below (which still re-checks everything first). Also
  // while io_uring's workers run our writes or syncs (unless told otherwise): polling would
  // hold a CPU they need (a journal stage lost 15-25 % of its throughput on 2 cores).
  const bool poll_first =
      opts.idle_spin.count() > 0 && (worker_ops == 0 || opts.idle_spin_with_file_io);
  const auto until = std::chrono::steady_clock::now() + opts.idle_spin;
  const bool flagged = (flags & IORING_SETUP_TASKRUN_FLAG) != 0;
  for (std::uint32_t i = 0; poll_first; ++i) {
    if (!idle() || lot.poll() > 0 || stopped.load(std::memory_order_relaxed)) return;
    // Completions waiting as task work appear only when the owner enters the kernel: with
    // TASKRUN_FLAG the kernel flags them (checked every round, a load); without it, ask
    // every 64 rounds.
    if (flagged ? kernel_has_work() : ((i & 63) == 63 && kernel_has_work())) {
      (void)io_uring_get_events(&ring);
      if (io_uring_cq_ready(&ring) != 0) return;
    }
    if ((i & 63) == 63 && std::chrono::steady_clock::now() >= until) break;
    detail::cpu_relax();
  }
  // Relaxed store, then a fence: pairs with the fence in post() (Dekker): either the poster
  // sees `sleeping` and rings, or we see its node below.
  if (!announce_sleep(asleep_in_ring)) return;
  try {
    flush();
  } catch (...) {
    call_off_sleep();
    throw;
  }
  // flush() may have reaped (CQ overflow): then there is work and no reason to sleep.
  if (ready_head != nullptr || io_uring_cq_ready(&ring) != 0) {
    call_off_sleep();
    return;
  }
  const int r = io_uring_submit_and_wait(&ring, 1);
  // Relaxed: only the owner reads its own flag back; posters re-check after their push.
  sleeping.store(awake, std::memory_order_relaxed);
  lot.finish_sleep();
  if (r < 0 && r != -EINTR && r != -ETIME && r != -EBUSY) {
    throw std::system_error(-r, std::system_category(),
                            "rondo::io_context: io_uring_submit_and_wait");
  }
}

// Owner, about to sleep (`how`: in the ring or in a foreign loop): announces it to posters
// and to the notifiers of the parked waits, runs one fence for both handshakes and re-checks.
// Returns true if the owner may sleep (then sleeping is set and the waits are announced:
// call_off_sleep() or, after the sleep, sleeping = awake and lot.finish_sleep()); false if
// there is work (nothing stays announced).
bool io_context::impl::announce_sleep(std::uint8_t how) {
  // Relaxed: the fence below orders it; pairs with the fence in post() and stop() (Dekker:
  // either the poster sees `sleeping` and rings, or we see its node below), and with the
  // notifiers' compiler barrier (the lot's announcements, docs/wakeup-protocol.md).
  sleeping.store(how, std::memory_order_relaxed);
  if (lot.empty()) {
    detail::seq_cst_fence();
  } else {
    lot.announce();
    // One membarrier per sleep, only when coroutine waits are parked here: notifiers run no
    // fence at all.
    detail::asymmetric_fence::heavy();
    lot.count_fence();
  }
  // Acquire: pairs with the release store in stop().
  if (!remote.empty() || stopped.load(std::memory_order_acquire) || lot.recheck()) {
    call_off_sleep();
    return false;
  }
  return true;
}

// Owner: the sleep announced by announce_sleep() does not happen. A poster or notifier that
// saw `sleeping` may have rung (doorbell_work). Relaxed store of `awake`: only the owner reads
// its own flag back; a poster that still sees a stale "asleep" rings once too often, which is
// harmless.
void io_context::impl::call_off_sleep() noexcept {
  sleeping.store(awake, std::memory_order_relaxed);
  lot.finish_sleep();
  doorbell_work = true;
}

// ---- io_context: stop, spawned tasks' failures, run

void io_context::stop() noexcept {
  // stop() from another thread is how a context is shut down, and its owner may destroy it as
  // soon as run() returns: the destructor waits for `stoppers` to drop to zero, and the
  // decrement is the last thing stop() touches. acq_rel: the increment happens before the store
  // of `stopped` that lets run() return.
  impl_->stoppers.fetch_add(1, std::memory_order_acq_rel);
  // Release: pairs with the acquire loads in the run loop.
  impl_->stopped.store(true, std::memory_order_release);
  detail::seq_cst_fence();  // as in post(): either the loop sees `stopped` or we see `sleeping`
  if (impl_->sleeping.load(std::memory_order_relaxed) != awake) impl_->ring_doorbell();
  // Release: pairs with the acquire load in ~io_context().
  impl_->stoppers.fetch_sub(1, std::memory_order_release);
}

void io_context::restart() noexcept {
  // Relaxed: owner thread, before it runs again.
  impl_->stopped.store(false, std::memory_order_relaxed);
}

bool io_context::stopped() const noexcept {
  // Acquire: pairs with the release store in stop().
  return impl_->stopped.load(std::memory_order_acquire);
}

void io_context::spawn_done(std::exception_ptr failure) noexcept {
  // Owner thread (the job runs here). A failure that cannot be kept (no memory for the queue
  // entry) terminates rather than vanish.
  if (failure) {
    if (impl_->spawn_failure_handler) {
      impl_->spawn_failure_handler(std::move(failure));
    } else {
      impl_->spawn_failures.push_back(std::move(failure));
    }
  }
  // Release: pairs with the acquire load in spawned(): a thread that sees 0 sees every spawned
  // task's effects. (The task's frames are destroyed after this, on this thread, inside the
  // run loop: the context must still not be destroyed while its owner runs it.)
  spawned_.fetch_sub(1, std::memory_order_release);
}

void io_context::on_spawn_failure(std::function<void(std::exception_ptr)> h) {
  check_owner(*this, "on_spawn_failure");
  impl_->spawn_failure_handler = std::move(h);
}

void io_context::rethrow_spawn_failure() {
  if (impl_->spawn_failures.empty()) [[likely]] return;
  std::exception_ptr e = std::move(impl_->spawn_failures.front());
  impl_->spawn_failures.pop_front();
  std::rethrow_exception(e);
}

std::size_t io_context::run() {
  check_owner(*this, "run");
  rethrow_spawn_failure();  // one left by an earlier call
  std::size_t ran = 0;
  // Acquire: pairs with the release store in stop().
  while (!impl_->stopped.load(std::memory_order_acquire)) {
    const std::size_t r = impl_->round(*this);
    rethrow_spawn_failure();
    ran += r;
    if (r == 0) impl_->wait_for_work();
  }
  return ran;
}

std::size_t io_context::poll() {
  check_owner(*this, "poll");
  rethrow_spawn_failure();  // one left by an earlier call
  std::size_t ran = 0;
  for (;;) {
    const std::size_t r = impl_->round(*this);
    rethrow_spawn_failure();
    if (r == 0) return ran;
    ran += r;
  }
}

bool io_context::run_one() {
  check_owner(*this, "run_one");
  rethrow_spawn_failure();  // one left by an earlier call
  // Acquire: pairs with the release store in stop().
  while (!impl_->stopped.load(std::memory_order_acquire)) {
    (void)impl_->take_remote();
    (void)impl_->lot.poll();
    if (impl_->ready_head == nullptr) {
      impl_->flush();
      (void)impl_->reap();
    }
    if (impl_->ready_head != nullptr) {
      schedule_node* n = impl_->ready_head;
      impl_->ready_head = n->next;
      if (impl_->ready_head == nullptr) impl_->ready_tail = nullptr;
      const scheduler_scope scope(*this);
      const running_scope running(*this);
      n->run();
      impl_->flush();
      rethrow_spawn_failure();
      return true;
    }
    impl_->wait_for_work();
  }
  return false;
}

}  // namespace rondo
