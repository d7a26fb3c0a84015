#pragma once
// The I/O operations an io_context performs, as the awaitables a coroutine co_awaits:
// io_result (what one returns), io_operation (read, write, accept, recv, sleep_for, ...:
// io_context's factories make them; .timeout() and .cancel_on() modify them) and the
// multishot accept (multishot_acceptor, accept_next_operation). See io_context.hpp for the
// context that submits them; it includes this header.

#include <rondo/coro/scheduler.hpp>

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stop_token>
#include <system_error>
#include <utility>

#include <linux/time_types.h>

namespace rondo {

/// The outcome of one I/O operation: the kernel's result (bytes, a new fd, or -errno) and what
/// it was.
struct io_result {
  int res = 0;
  const char* op = "";
  int fd = -1;

  [[nodiscard]] bool ok() const noexcept { return res >= 0; }
  /// The error, or an empty error_code.
  [[nodiscard]] std::error_code error() const noexcept {
    return res < 0 ? std::error_code(-res, std::system_category()) : std::error_code{};
  }
  /// The operation's .timeout() fired first (the error is ETIME).
  [[nodiscard]] bool timed_out() const noexcept { return res == -ETIME; }
  /// The operation was cancelled through its stop token (the error is ECANCELED).
  [[nodiscard]] bool cancelled() const noexcept { return res == -ECANCELED; }
  /// The byte count (or new fd, or 0); throws std::system_error naming the operation and fd on
  /// failure: "read(fd 7): Bad file descriptor".
  std::size_t value() const {
    if (res < 0) throw std::system_error(error(), fmt::format("{}(fd {})", op, fd));
    return static_cast<std::size_t>(res);
  }
};

class io_context;
class io_operation;

namespace detail {
enum class io_kind : std::uint8_t {
  read, write, readv, writev, fsync, fdatasync, sleep, sleep_until, openat, close, accept, connect,
  recv, send, nop
};

// Everything an operation needs before it is submitted (copied into the next operation by
// .timeout() and .cancel_on()).
struct io_request {
  io_kind kind = io_kind::nop;
  int fd = -1;
  void* buf = nullptr;          // buffer, iovec array, path or sockaddr
  std::size_t len = 0;          // bytes, iovec count or socklen
  std::uint64_t offset = 0;
  unsigned flags = 0;           // open / msg / accept flags
  unsigned mode = 0;            // openat mode
  void* out = nullptr;          // accept: socklen_t* of the peer address
  std::int64_t time_ns = 0;     // sleep_for duration / sleep_until deadline (steady_clock)
  std::int64_t timeout_ns = -1; // .timeout(): linked timeout, -1 when none
  std::stop_token stop;         // .cancel_on()
};

// Called on the thread that requests stop: hands the cancellation to the context's thread.
struct io_canceller {
  io_operation* op;
  void operator()() const noexcept;
};

struct io_cancel_node : schedule_node {
  io_operation* op = nullptr;
};

struct multishot_state;
}  // namespace detail

/// An I/O operation: `io_result r = co_await io.read(fd, buf, offset);`. Submitted when awaited
/// (from the context's own thread; else std::logic_error); the coroutine resumes on the context
/// when the kernel completes it. Await it where it is created (it is not movable; it is the
/// node the kernel's completion points at).
///
/// Modifiers, chained on the expression before it is awaited:
///   co_await io.recv(fd, buf).timeout(5ms);      // -ETIME (r.timed_out()) if it did not finish
///   co_await io.recv(fd, buf).cancel_on(token);  // -ECANCELED (r.cancelled()) once stop is
///                                                // requested; a cancellation can lose the race
///                                                // to the completion: then the result stands.
class [[nodiscard]] io_operation {
 public:
  io_operation(const io_operation&) = delete;
  io_operation& operator=(const io_operation&) = delete;
  ~io_operation() = default;

  /// The same operation, cancelled if it has not completed within `d` (IORING_OP_LINK_TIMEOUT).
  /// A negative d counts as 0.
  [[nodiscard]] io_operation timeout(std::chrono::nanoseconds d) && noexcept {
    detail::io_request r = req_;
    r.timeout_ns = d.count() < 0 ? 0 : d.count();
    return {*ctx_, std::move(r)};
  }
  /// The same operation, cancelled (IORING_OP_ASYNC_CANCEL) when stop is requested on `t`;
  /// a token already stopped completes at once with -ECANCELED, submitting nothing.
  [[nodiscard]] io_operation cancel_on(std::stop_token t) && noexcept {
    detail::io_request r = req_;
    r.stop = std::move(t);
    return {*ctx_, std::move(r)};
  }

  [[nodiscard]] bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h);
  [[nodiscard]] io_result await_resume() const noexcept { return {res_, name(), req_.fd}; }

 private:
  friend class io_context;
  friend struct detail::io_canceller;
  io_operation(io_context& ctx, detail::io_request r) noexcept : ctx_(&ctx), req_(std::move(r)) {}
  [[nodiscard]] const char* name() const noexcept;

  io_context* ctx_;
  detail::io_request req_;
  int res_ = 0;
  // Owner-thread bookkeeping: completions still expected (the operation's own, its linked
  // timeout's, a cancel's) and what they said. The coroutine resumes when pending_ drops to 0,
  // so no completion ever points at a destroyed operation.
  int pending_ = 0;
  bool main_done_ = false;
  bool timed_out_ = false;
  bool cancel_ran_ = false;
  bool in_backlog_ = false;
  io_operation* backlog_next_ = nullptr;
  __kernel_timespec ts_{};       // sleep: read by the kernel when it takes the SQE
  __kernel_timespec link_ts_{};  // .timeout()
  schedule_node node_{};         // resumes the coroutine
  detail::io_cancel_node cancel_node_{};
  std::atomic<bool> cancel_posted_{false};
  std::optional<std::stop_callback<detail::io_canceller>> on_stop_;
};

/// The awaitable of multishot_acceptor::next().
class [[nodiscard]] accept_next_operation {
 public:
  accept_next_operation(const accept_next_operation&) = delete;
  accept_next_operation& operator=(const accept_next_operation&) = delete;
  [[nodiscard]] bool await_ready() const noexcept;
  bool await_suspend(std::coroutine_handle<> h);
  [[nodiscard]] io_result await_resume() noexcept;

 private:
  friend class multishot_acceptor;
  explicit accept_next_operation(detail::multishot_state& s) noexcept : s_(&s) {}
  detail::multishot_state* s_;
};

/// A listening socket accepted with one multishot accept (IORING_ACCEPT_MULTISHOT): the kernel
/// keeps accepting, and `co_await acc.next()` hands out one connection (io_result::res is the
/// new fd, or -errno) at a time, in arrival order. Owner thread only. Destroying it cancels the
/// accept; connections accepted but never handed out are closed. Destroy it only while no
/// next() waits on it (cancel() first and let the waiter return).
class multishot_acceptor {
 public:
  multishot_acceptor(io_context& ctx, int listen_fd, unsigned flags);
  ~multishot_acceptor();
  multishot_acceptor(const multishot_acceptor&) = delete;
  multishot_acceptor& operator=(const multishot_acceptor&) = delete;

  /// The next accepted connection. One next() at a time (std::logic_error otherwise).
  [[nodiscard]] accept_next_operation next() noexcept { return accept_next_operation(*s_); }
  /// Stops accepting (owner thread): the kernel's accept is cancelled, a next() waiting now and
  /// every later one completes with -ECANCELED once the connections already accepted are
  /// handed out.
  void cancel();

 private:
  detail::multishot_state* s_;
};

}  // namespace rondo
