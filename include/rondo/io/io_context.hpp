#pragma once
// io_context: one io_uring driven by one thread. It is a rondo scheduler (coroutine stages and
// waits resume on it) and it performs their I/O: the run loop, the local and remote queues, the
// doorbell, the I/O operations (their awaitable types: rondo/io/operations.hpp), spawn().
//
// Theory of operation
//
//   owner thread (run / run_one / poll)                other threads
//   ------------------------------------               -------------
//   local ready queue  <- post() from the owner         post(): push on the remote queue
//   remote queue (intrusive MPSC) -> taken in batches   (lock-free); ring the doorbell only if
//   reap CQEs -> finished I/O operations become ready   the owner announced it sleeps
//   submit SQEs (batched: one io_uring_enter per loop)
//   parked coroutine waits (park_lot): polled every round and every idle-spin round
//   nothing ready: spin `idle_spin` polling the queues, the CQ and the parked waits, then
//     sleeping = true; announce the parked waits; fence (a membarrier when waits are parked);
//     re-check the remote queue and the waits; io_uring_submit_and_wait(1)
//
//   The doorbell, rung by a poster that sees `sleeping` (after its own fence: the Dekker
//   handshake of docs/wakeup-protocol.md): from a coroutine on another context, an
//   IORING_OP_MSG_RING sent from that context's ring; from anywhere else, a write to an eventfd
//   with a read kept armed on the ring. Either way a completion arrives and the owner wakes.
//
// The ring uses IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN when the kernel has them, else
// COOP_TASKRUN, else no flags (io_options::ring_setup names one instead). With SINGLE_ISSUER
// the ring belongs to the thread that created it: construct the context on the thread that will
// run it. I/O operations are started from the owner thread (a coroutine running on this
// context). A context that a foreign loop drives gives DEFER_TASKRUN up (see wait_handle()).

#include <rondo/coro/detached.hpp>
#include <rondo/coro/scheduler.hpp>
#include <rondo/coro/task.hpp>
#include <rondo/io/operations.hpp>

#include <fmt/format.h>

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include <atomic>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>

namespace rondo {

/// The io_uring setup an io_context asks the kernel for (io_options::ring_setup).
enum class io_ring_setup : std::uint8_t {
  /// The first of the four below that the kernel accepts, in their order.
  automatic,
  /// IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN (| SUBMIT_ALL where the kernel has it):
  /// completions wait as task work until the owner asks for them. wait_handle() leaves it.
  defer_taskrun,
  /// IORING_SETUP_COOP_TASKRUN | TASKRUN_FLAG: task work runs when the owner next enters or
  /// leaves the kernel, and the kernel flags it in the SQ ring.
  coop_taskrun_flag,
  /// IORING_SETUP_COOP_TASKRUN.
  coop_taskrun,
  /// No setup flags: task work interrupts the owner (a signal-like notification).
  plain,
};

/// Construction options of an io_context.
struct io_options {
  /// Submission queue size (a power of two, 2..32768). The completion queue has 4x as many.
  unsigned entries = 256;
  /// How long the run loop polls for work before it sleeps in the kernel (0: it sleeps as soon
  /// as it finds nothing to do). A wake-up through the kernel costs 15-33 us one way on the
  /// development VM; polling costs ~150 ns a round.
  std::chrono::microseconds idle_spin{50};
  /// At most this many operations in the kernel at once; the rest wait in a local FIFO
  /// backlog. 0 (default): no cap where the kernel keeps completions that overflow the
  /// completion queue (IORING_FEAT_NODROP, Linux 5.5+), else the completion queue's size.
  /// A cap deadlocks if every slot holds an operation that waits for one still in the backlog
  /// (recvs on idle sockets vs the send that would answer them): size it above the number of
  /// long-lived operations.
  unsigned max_in_flight = 0;
  /// Doorbells between contexts by IORING_OP_MSG_RING: a coroutine on this context that posts
  /// to another one asleep in its ring sends a message from this ring instead of writing the
  /// other's eventfd, and this context takes such messages (both sides must have it on and a
  /// DEFER_TASKRUN ring on a kernel with MSG_RING). The woken side then has no eventfd read to
  /// complete and re-arm. Off: always the eventfd (the A/B row in bench/io/wakeup_bench.cpp).
  bool msg_ring_doorbell = true;
  /// Poll for idle_spin also while a write, writev, fsync, fdatasync or openat is in flight.
  /// Off (default): the context sleeps at once then, because io_uring runs those in kernel
  /// worker threads that need a CPU, and a polling context holds one (measured on 2 cores: a
  /// journal stage at 0.63-0.73x raw io_uring with polling, 0.81-0.87x without). Turn it on
  /// where cores are plentiful and the wake-up after each sync matters more.
  bool idle_spin_with_file_io = false;
  /// The ring's setup. A named one that the kernel refuses makes the constructor throw
  /// std::system_error (EINVAL); `automatic` falls back instead.
  io_ring_setup ring_setup = io_ring_setup::automatic;
};

/// One io_uring and the thread that runs it. Models the scheduler concept.
///
/// Thread-safety: post(), stop(), has_pending(), spawn(), spawned(), spawned_total(),
/// doorbells() and stopped() from any thread; run(), run_one(), poll(), on_spawn_failure(),
/// the embedding calls and the I/O operations from the owner thread (the one that constructed
/// it).
class io_context {
 public:
  /// Sets up the ring. Throws std::system_error naming the cause when io_uring is unavailable
  /// (ENOSYS: kernel too old; EPERM: blocked by seccomp or kernel.io_uring_disabled; ENOMEM)
  /// and std::invalid_argument for bad options.
  explicit io_context(io_options opts = {});
  ~io_context();
  io_context(const io_context&) = delete;
  io_context& operator=(const io_context&) = delete;

  /// Any thread; never allocates. Resumes the node on this context's thread.
  void post(schedule_node& n) noexcept;
  /// A hint: posted work not yet run (see scheduler_ref::has_pending). Any thread; only the
  /// owner sees its local queue.
  [[nodiscard]] bool has_pending() const noexcept;
  /// Where coroutine waits suspended on this context park (see park_lot). The context polls
  /// them every round and announces them only before it sleeps in the kernel. Its statistics
  /// (parks(), sleep_fences()) may be read from any thread.
  [[nodiscard]] park_lot* parking() noexcept;

  /// Runs until stop(): returns how many nodes ran. Owner thread.
  std::size_t run();
  /// Runs ready work and finished I/O without blocking; returns how many nodes ran.
  std::size_t poll();
  /// Runs at least one node, sleeping until one is ready (or stop()); returns false if stopped.
  bool run_one();
  /// Makes run() return after the node it is running (and run_one() return false). Any thread.
  void stop() noexcept;
  /// Clears a stop() so the context can run again. Owner thread.
  void restart() noexcept;
  /// Whether stop() was called (and not cleared by restart()). Any thread.
  [[nodiscard]] bool stopped() const noexcept;

  /// `co_await io.schedule()` moves the caller onto this context.
  [[nodiscard]] auto schedule() noexcept {
    return manual_scheduler::schedule_operation<io_context>{*this};
  }

  /// Starts `t` on this context, fire-and-forget: it is posted (it runs when the owner next
  /// runs the loop, never inside spawn()) and the context owns it until it finishes. Any
  /// thread. An exception escaping `t` is kept and rethrown, on the owner thread, by the
  /// run(), run_one() or poll() that ran it (one per call, in order; call again to go on: the
  /// context stays usable, as with asio). Allocates the wrapper's frame (std::bad_alloc
  /// propagates, nothing started). A task still suspended when the context is destroyed is
  /// never resumed and its frame is not freed (freeing it could free buffers the kernel is
  /// still writing): run until spawned() is 0 first. Throws std::logic_error while the context
  /// is stopped (the task would not run before a restart(); on a runtime's context, never).
  template <class T>
  void spawn(task<T> t) {
    if (stopped()) {
      throw std::logic_error(
          "rondo::io_context::spawn(): the context is stopped; the task would never run (call "
          "restart() first, or spawn before runtime::stop())");
    }
    // Relaxed: counts. The task's own release decrement in spawn_done() comes after both in
    // its thread's order, so a reader that acquires that decrement sees them (runtime::stop()).
    spawned_.fetch_add(1, std::memory_order_relaxed);
    spawned_total_.fetch_add(1, std::memory_order_relaxed);
    try {
      (void)run_spawned(*this, std::move(t));
    } catch (...) {
      // Release: pairs with the acquire load in spawned().
      spawned_.fetch_sub(1, std::memory_order_release);
      throw;
    }
  }
  /// Sends failures of spawned tasks to `h` (called on the owner thread as each task ends; it
  /// must not throw) instead of rethrowing them from run() / run_one() / poll(). Owner thread
  /// (std::logic_error otherwise). rondo::runtime sets it on its contexts, so a task
  /// spawned with current_io_context().spawn() that fails is rethrown by runtime::stop() and
  /// the context goes on running.
  void on_spawn_failure(std::function<void(std::exception_ptr)> h);
  /// Tasks started by spawn() that have not finished. Any thread.
  [[nodiscard]] std::size_t spawned() const noexcept {
    // Acquire: pairs with the release decrement in spawn_done(): a 0 here means every spawned
    // task's effects are visible.
    return spawned_.load(std::memory_order_acquire);
  }
  /// Tasks ever started by spawn() (monotonic; runtime::stop() compares two readings to know
  /// that no task spawned another meanwhile). Any thread.
  [[nodiscard]] std::uint64_t spawned_total() const noexcept {
    // Acquire: as spawned().
    return spawned_total_.load(std::memory_order_acquire);
  }

  // ---- File operations. `offset` as in pread/pwrite; (std::uint64_t)-1 means the file position.
  [[nodiscard]] io_operation read(int fd, std::span<std::byte> buf, std::uint64_t offset) noexcept {
    return make(detail::io_kind::read, fd, buf.data(), buf.size(), offset);
  }
  [[nodiscard]] io_operation write(int fd, std::span<const std::byte> buf,
                                   std::uint64_t offset) noexcept {
    return make(detail::io_kind::write, fd, const_cast<std::byte*>(buf.data()), buf.size(), offset);
  }
  /// The iovec array (and the buffers) must stay valid until the operation completes.
  [[nodiscard]] io_operation readv(int fd, std::span<const ::iovec> iov,
                                   std::uint64_t offset) noexcept {
    return make(detail::io_kind::readv, fd, const_cast<::iovec*>(iov.data()), iov.size(), offset);
  }
  [[nodiscard]] io_operation writev(int fd, std::span<const ::iovec> iov,
                                    std::uint64_t offset) noexcept {
    return make(detail::io_kind::writev, fd, const_cast<::iovec*>(iov.data()), iov.size(), offset);
  }
  [[nodiscard]] io_operation fsync(int fd) noexcept {
    return make(detail::io_kind::fsync, fd);
  }
  [[nodiscard]] io_operation fdatasync(int fd) noexcept {
    return make(detail::io_kind::fdatasync, fd);
  }
  /// Result: the new fd. `path` must stay valid until the operation completes. O_CLOEXEC is
  /// added to `flags`.
  [[nodiscard]] io_operation openat(int dirfd, const char* path, int flags,
                                    unsigned mode = 0644) noexcept {
    return make(detail::io_kind::openat, dirfd, const_cast<char*>(path), 0, 0, static_cast<unsigned>(flags) | O_CLOEXEC, mode);
  }
  [[nodiscard]] io_operation close(int fd) noexcept {
    return make(detail::io_kind::close, fd);
  }

  // ---- Sockets. Addresses and buffers must stay valid until the operation completes.
  /// Result: the connected socket's fd (SOCK_CLOEXEC is added to `flags`). `addr`/`addrlen`
  /// may be null.
  [[nodiscard]] io_operation accept(int fd, ::sockaddr* addr = nullptr,
                                    ::socklen_t* addrlen = nullptr, int flags = 0) noexcept {
    return make(detail::io_kind::accept, fd, addr, 0, 0, static_cast<unsigned>(flags) | SOCK_CLOEXEC, 0, addrlen);
  }
  /// Keeps accepting on `fd` with one submission (see multishot_acceptor).
  [[nodiscard]] multishot_acceptor accept_multishot(int fd, int flags = 0) {
    return {*this, fd, static_cast<unsigned>(flags) | SOCK_CLOEXEC};
  }
  [[nodiscard]] io_operation connect(int fd, const ::sockaddr* addr, ::socklen_t len) noexcept {
    return make(detail::io_kind::connect, fd, const_cast<::sockaddr*>(addr), len);
  }
  [[nodiscard]] io_operation recv(int fd, std::span<std::byte> buf, int flags = 0) noexcept {
    return make(detail::io_kind::recv, fd, buf.data(), buf.size(), 0, static_cast<unsigned>(flags));
  }
  /// MSG_NOSIGNAL is added to `flags`: a closed peer is an EPIPE result, not a signal.
  [[nodiscard]] io_operation send(int fd, std::span<const std::byte> buf, int flags = 0) noexcept {
    return make(detail::io_kind::send, fd, const_cast<std::byte*>(buf.data()), buf.size(), 0, static_cast<unsigned>(flags) | MSG_NOSIGNAL);
  }

  // ---- Time.
  /// Completes after `d` (its result is 0, not -ETIME). A negative d counts as 0.
  [[nodiscard]] io_operation sleep_for(std::chrono::nanoseconds d) noexcept {
    return make(detail::io_kind::sleep, -1, nullptr, 0, 0, 0, 0, nullptr,
                d.count() < 0 ? 0 : d.count());
  }
  /// Completes at `t` (result 0); a time already past completes at once.
  [[nodiscard]] io_operation sleep_until(std::chrono::steady_clock::time_point t) noexcept {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
    return make(detail::io_kind::sleep_until, -1, nullptr, 0, 0, 0, 0, nullptr,
                ns.count() < 0 ? 0 : ns.count());
  }
  /// A no-op through the ring (completes with 0): a round trip through the kernel.
  [[nodiscard]] io_operation nop() noexcept { return make(detail::io_kind::nop, -1); }

  // ---- Embedding in a foreign event loop (owner thread):
  //
  //   for (;;) {
  //     io.poll();                                   // run what is ready, submit, reap
  //     if (io.prepare_wait()) {                     // nothing ready: posters will ring
  //       epoll_wait(ep, ...);                       // ep watches io.wait_handle() + yours
  //       io.finish_wait();
  //     }
  //   }

  /// An eventfd (non-blocking) that becomes readable when the context has work: a completion
  /// (it is registered with the ring) or, after prepare_wait(), a post() from another thread.
  /// Created on first call; finish_wait() resets it.
  ///
  /// A DEFER_TASKRUN ring cannot wake a foreign loop in time (for a completion raised by a
  /// socket, pipe or eventfd becoming ready, the kernel signals the eventfd only from an RCU
  /// callback, 13-31 ms later; the ring fd itself is never woken: docs/io.md, "Embedding in a
  /// foreign loop: the wake-up"). So
  /// the first call on such a ring replaces it with a COOP_TASKRUN | TASKRUN_FLAG one (else
  /// COOP_TASKRUN, else no flags; setup_flags() and native_handle() change), which it can do
  /// only while no I/O is in flight: call it before starting any (std::logic_error otherwise).
  /// On the rings it keeps or makes, a completion's task work interrupts the owner, so the
  /// foreign loop's epoll_wait may return EINTR: a wake-up like any other.
  /// Throws std::system_error if the eventfd or the new ring cannot be set up.
  [[nodiscard]] int wait_handle();
  /// Announces that the owner is about to block outside the context (epoll on
  /// wait_handle()): from now on a post() from another thread rings the doorbell, which makes
  /// wait_handle() readable — and so does a post() (or spawn()) from the owner thread itself,
  /// made by the foreign loop's own handlers before finish_wait() (Asio runs its handlers
  /// there: rondo/asio.hpp). Returns false (and announces nothing) when work is already
  /// waiting: call poll() instead of blocking. Every true must be followed by finish_wait().
  [[nodiscard]] bool prepare_wait();
  /// Ends what prepare_wait() announced.
  void finish_wait() noexcept;

  /// The setup flags the kernel accepted (IORING_SETUP_*), for diagnostics. Owner thread once
  /// wait_handle() may have replaced the ring.
  [[nodiscard]] unsigned setup_flags() const noexcept;
  /// The ring's file descriptor (diagnostics, registration; to wait on, use wait_handle()).
  [[nodiscard]] int native_handle() const noexcept;
  [[nodiscard]] std::thread::id owner() const noexcept { return owner_; }
  /// Operations submitted to the kernel and not yet completed, and those waiting in the
  /// backlog because `entries` were already in flight (diagnostics). Owner thread.
  [[nodiscard]] std::size_t in_flight() const noexcept;
  [[nodiscard]] std::size_t backlog() const noexcept;

  /// How the doorbell of this context was rung (diagnostics; any thread): by IORING_OP_MSG_RING
  /// from another context's ring (a coroutine on context A posting to context B asleep in its
  /// ring, when both rings take MSG_RING), or by a write to its eventfd (posts from plain
  /// threads, stop(), a foreign loop's wait, or a MSG_RING that was refused).
  struct doorbell_counts {
    std::uint64_t msg_ring = 0;
    std::uint64_t eventfd = 0;
  };
  [[nodiscard]] doorbell_counts doorbells() const noexcept;
  /// Whether this context sends and takes MSG_RING doorbells (a DEFER_TASKRUN ring on a kernel
  /// with IORING_OP_MSG_RING).
  [[nodiscard]] bool msg_ring_doorbell() const noexcept;

 private:
  friend class io_operation;
  friend class multishot_acceptor;
  friend class accept_next_operation;
  friend struct detail::io_canceller;
  struct impl;
  io_operation make(detail::io_kind k, int fd, void* buf = nullptr, std::size_t len = 0,
                    std::uint64_t offset = 0, unsigned flags = 0, unsigned mode = 0,
                    void* out = nullptr, std::int64_t time_ns = 0) noexcept {
    detail::io_request r;
    r.kind = k;
    r.fd = fd;
    r.buf = buf;
    r.len = len;
    r.offset = offset;
    r.flags = flags;
    r.mode = mode;
    r.out = out;
    r.time_ns = time_ns;
    return {*this, std::move(r)};
  }
  void start(io_operation& op);
  void cancel(io_operation& op);

  template <class T>
  static detached run_spawned(io_context& ctx, task<T> t) {
    co_await ctx.schedule();
    std::exception_ptr failure;
    try {
      (void)co_await std::move(t);
    } catch (...) {
      failure = std::current_exception();
    }
    ctx.spawn_done(std::move(failure));
  }
  // Owner thread: keeps a failure for run()/run_one()/poll() to rethrow, and counts one out.
  void spawn_done(std::exception_ptr failure) noexcept;
  // Owner thread: rethrows the oldest kept failure, if any.
  void rethrow_spawn_failure();

  std::unique_ptr<impl> impl_;
  std::thread::id owner_;
  std::atomic<std::size_t> spawned_{0};
  std::atomic<std::uint64_t> spawned_total_{0};
};

static_assert(scheduler<io_context>);

/// The io_context running the calling code (inside run(), run_one() or poll()). Throws
/// std::logic_error on a thread that is not running one.
[[nodiscard]] io_context& current_io_context();
/// As above, or null.
[[nodiscard]] io_context* current_io_context_or_null() noexcept;

}  // namespace rondo
