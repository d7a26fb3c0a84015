#pragma once
// io_context: one io_uring driven by one thread. It is a rondo scheduler (coroutine stages and
// waits resume on it) and it performs their I/O. First slice of the executor: the run loop, the
// local and remote queues, the doorbell, and read / write / fsync / fdatasync / sleep_for.
//
// Theory of operation
//
//   owner thread (run / run_one / poll)                other threads
//   ------------------------------------               -------------
//   local ready queue  <- post() from the owner         post(): push on the remote queue
//   remote queue (intrusive MPSC) -> taken in batches   (lock-free); ring the doorbell only if
//   reap CQEs -> finished I/O operations become ready   the owner announced it sleeps
//   submit SQEs (batched: one io_uring_enter per loop)
//   nothing ready: spin `idle_spin` polling the queues and the CQ, then
//     sleeping = true; fence; re-check the remote queue; io_uring_submit_and_wait(1)
//
//   The doorbell is an eventfd with a read kept armed on the ring: a poster that sees
//   `sleeping` (after its own fence: the Dekker handshake of docs/wakeup-protocol.md) writes it,
//   the read completes and the owner wakes.
//
// The ring uses IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN when the kernel has them, else
// COOP_TASKRUN, else no flags. With SINGLE_ISSUER the ring belongs to the thread that created
// it: construct the context on the thread that will run it. I/O operations are started from
// the owner thread (a coroutine running on this context).

#include <rondo/coro/scheduler.hpp>

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <thread>

#include <linux/time_types.h>

namespace rondo {

/// Construction options of an io_context.
struct io_options {
  unsigned entries = 256;  ///< submission queue size (a power of two, 1..32768)
  /// How long the run loop polls for work before it sleeps in the kernel. A wake-up through the
  /// kernel costs 15-33 us one way on the development VM; polling costs ~150 ns a round.
  std::chrono::microseconds idle_spin{50};
};

/// The outcome of one I/O operation: the kernel's result (bytes, or -errno) and what it was.
struct io_result {
  int res = 0;
  const char* op = "";
  int fd = -1;

  [[nodiscard]] bool ok() const noexcept { return res >= 0; }
  /// The error, or an empty error_code.
  [[nodiscard]] std::error_code error() const noexcept {
    return res < 0 ? std::error_code(-res, std::system_category()) : std::error_code{};
  }
  /// The byte count (or 0); throws std::system_error naming the operation and fd on failure.
  std::size_t value() const {
    if (res < 0) throw std::system_error(error(), std::string(op) + "(fd " + std::to_string(fd) + ")");
    return static_cast<std::size_t>(res);
  }
};

class io_context;

namespace detail {
enum class io_kind : std::uint8_t { read, write, fsync, fdatasync, sleep };
}  // namespace detail

/// An I/O operation: `io_result r = co_await io.read(fd, buf, offset);`. Submitted when awaited
/// (from the context's own thread; else std::logic_error); the coroutine resumes on the context
/// when the kernel completes it. Not movable: await it where it is created.
class [[nodiscard]] io_operation {
 public:
  io_operation(const io_operation&) = delete;
  io_operation& operator=(const io_operation&) = delete;

  [[nodiscard]] bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h);
  [[nodiscard]] io_result await_resume() const noexcept { return {res_, name(), fd_}; }

 private:
  friend class io_context;
  io_operation(io_context& ctx, detail::io_kind k, int fd, void* buf, std::size_t len,
               std::uint64_t offset, std::int64_t timeout_ns = 0) noexcept
      : ctx_(&ctx), kind_(k), fd_(fd), buf_(buf), len_(len), offset_(offset) {
    timeout_.tv_sec = timeout_ns / 1'000'000'000;
    timeout_.tv_nsec = timeout_ns % 1'000'000'000;
  }
  [[nodiscard]] const char* name() const noexcept;

  io_context* ctx_;
  detail::io_kind kind_;
  int fd_;
  void* buf_;
  std::size_t len_;
  std::uint64_t offset_;
  int res_ = 0;
  __kernel_timespec timeout_{};  // sleep_for: the kernel reads it until the timeout completes
  schedule_node node_{};
};

/// One io_uring and the thread that runs it. Models the scheduler concept.
///
/// Thread-safety: post(), stop() and has_pending() from any thread; run(), run_one(), poll()
/// and the I/O operations from the owner thread (the one that constructed it).
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

  /// `co_await io.schedule()` moves the caller onto this context.
  [[nodiscard]] auto schedule() noexcept {
    return manual_scheduler::schedule_operation<io_context>{*this};
  }

  [[nodiscard]] io_operation read(int fd, std::span<std::byte> buf, std::uint64_t offset) noexcept {
    return {*this, detail::io_kind::read, fd, buf.data(), buf.size(), offset};
  }
  [[nodiscard]] io_operation write(int fd, std::span<const std::byte> buf,
                                   std::uint64_t offset) noexcept {
    return {*this, detail::io_kind::write, fd, const_cast<std::byte*>(buf.data()), buf.size(),
            offset};
  }
  [[nodiscard]] io_operation fsync(int fd) noexcept {
    return {*this, detail::io_kind::fsync, fd, nullptr, 0, 0};
  }
  [[nodiscard]] io_operation fdatasync(int fd) noexcept {
    return {*this, detail::io_kind::fdatasync, fd, nullptr, 0, 0};
  }
  /// Completes after `d` (its result is 0, not -ETIME). A negative d counts as 0.
  [[nodiscard]] io_operation sleep_for(std::chrono::nanoseconds d) noexcept {
    return {*this, detail::io_kind::sleep, -1, nullptr, 0, 0, d.count() < 0 ? 0 : d.count()};
  }

  /// The setup flags the kernel accepted (IORING_SETUP_*), for diagnostics.
  [[nodiscard]] unsigned setup_flags() const noexcept;
  /// The ring's file descriptor: readable when completions are waiting (for embedding the
  /// context in a foreign loop; with DEFER_TASKRUN, call poll() when it is).
  [[nodiscard]] int native_handle() const noexcept;
  [[nodiscard]] std::thread::id owner() const noexcept { return owner_; }

 private:
  friend class io_operation;
  struct impl;
  void submit(io_operation& op);

  std::unique_ptr<impl> impl_;
  std::thread::id owner_;
};

static_assert(scheduler<io_context>);

}  // namespace rondo
