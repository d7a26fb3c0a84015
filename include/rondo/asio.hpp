#pragma once
// rondo::asio (CMake target rondo::asio, built when Boost is found): rondo inside a Boost.Asio
// program. Two pieces:
//
//  1. driver: an asio::io_context drives a rondo::io_context. The rondo context's wait handle
//     (an eventfd) is wrapped in a posix::stream_descriptor; Asio waits for it to become
//     readable together with its own sockets and timers, and on readiness the driver runs
//     rondo's poll() and waits again.
//  2. completion-token operations: rondo's waits from Asio code (callbacks, use_awaitable,
//     use_future, ...): async_reserve(publisher, n, token), async_wait_for_position(d, stage,
//     seq, token), async_drain(d, token). Asio's own convention names them: the `async_`
//     prefix marks the completion-token form (docs/naming.md).
//
// Theory of operation (the driver)
//
//   Asio thread == the rondo context's owner (one thread runs both)
//
//     step():  finish_wait() if a wait was announced
//              poll()                       run ready coroutines, submit, reap; never blocks
//              prepare_wait() ─ true  ──▶   async_wait(wait_read) on the eventfd; Asio goes on
//                             │             with its own handlers and sleeps in epoll when it
//                             │             has none; readiness ──▶ step()
//                             └ false ──▶   post(step): work is ready; Asio's own handlers get
//                                           their turn first (no loop inside one handler)
//
//   Nothing is lost: between prepare_wait() and the readiness handler, every way work reaches
//   the rondo context makes the eventfd readable — another thread's post() or stop() (the
//   Dekker handshake of docs/wakeup-protocol.md), an I/O completion (the eventfd is registered
//   with the ring), a parked coroutine wait becoming ready (announced by prepare_wait()), and a
//   post() or spawn() from one of Asio's handlers on this very thread (io_context::post rings
//   the doorbell while a foreign loop waits). Asio registers descriptors edge-triggered; only
//   this thread runs the Asio context, so no epoll_wait can consume an edge between the
//   handler's poll() and its next async_wait: an edge seen while no wait is pending belongs to
//   work that the next poll() runs anyway. No busy loop: with nothing ready the driver has
//   exactly one async_wait pending and runs nothing until the eventfd is written.
//
// The operations: each first tries rondo's never-waiting form on the calling thread (a free
// slot, a stage already past the sequence) and then completes through asio::post to the
// handler's associated executor (Asio's rule: never inside the initiating call). Otherwise the
// wait runs as a rondo coroutine spawned on the driver's rondo context (spin, park, resume as
// any coroutine wait) and completes the same way. Which driver: the one attached to the Asio
// execution context of the handler's associated executor (a handler without one: the driver
// of the calling thread).
//
// Completion signatures carry std::exception_ptr first (Asio's convention for errors that are
// exceptions): use_awaitable rethrows it at the co_await, a callback gets it. Cancellation: an
// overload takes a std::stop_token (Boost 1.74's Asio has no per-operation cancellation
// slots); a cancelled wait completes with boost::system::system_error(operation_aborted).
//
// Namespace rondo::asio_bridge, not rondo::asio: with `namespace asio = boost::asio;` (the
// usual alias) and `using namespace rondo;`, a rondo::asio would make every `asio::` ambiguous.

#include <rondo/coro/task.hpp>
#include <rondo/coro/wait_operation.hpp>
#include <rondo/disruptor.hpp>
#include <rondo/io/io_context.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/system/system_error.hpp>

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

#include <unistd.h>

namespace rondo::asio_bridge {

class driver;

namespace detail {

// Where the operations find the driver of an Asio execution context: a service of that context
// (created on first use, destroyed with it) holding a pointer the driver sets and clears.
class driver_registry final : public boost::asio::execution_context::service {
 public:
  static inline boost::asio::execution_context::id id;  // Asio's service key

  explicit driver_registry(boost::asio::execution_context& owner) : service(owner) {}

  // Release: pairs with the acquire load in get(): a reader that finds the driver sees it
  // constructed.
  void set(driver* d) noexcept { current_.store(d, std::memory_order_release); }
  [[nodiscard]] driver* get() const noexcept {
    // Acquire: pairs with the release store in set().
    return current_.load(std::memory_order_acquire);
  }

 private:
  void shutdown() override {}
  std::atomic<driver*> current_{nullptr};
};

// The driver constructed on this thread (the fallback for handlers without an executor).
inline driver*& thread_driver() noexcept {
  thread_local driver* d = nullptr;
  return d;
}

}  // namespace detail

/// Drives a rondo::io_context from a boost::asio::io_context (see the file comment): construct
/// it, then run the Asio context as usual (`asio_ctx.run()`); rondo's coroutines, I/O and
/// coroutine stages on `io` run from Asio's loop, beside Asio's own handlers.
///
///   boost::asio::io_context ax;
///   rondo::io_context io;                          // same thread
///   rondo::asio_bridge::driver drv(ax, io);        // before any rondo I/O (wait_handle())
///   io.spawn(my_rondo_task());  co_spawn(ax, my_asio_session(), detached);
///   ax.run();
///
/// It lets go — no more waits on the handle, so ax.run() can return once Asio has nothing else
/// — when stop() is called or when the rondo context is stopped (io.stop(), from any thread).
/// An exception escaping a task spawned on `io` comes out of ax.run() (Asio's rule for a
/// handler that throws); the driver is already re-armed, call ax.run() again to go on.
///
/// Errors: the constructor throws std::logic_error when not called on `io`'s owner thread, when
/// `io` already has I/O in flight on a ring that must be replaced (io_context::wait_handle), or
/// when another driver is attached to `ax`; std::system_error when the handle cannot be set up.
///
/// Thread-safety: construct, stop() and destroy it on `io`'s owner thread, and run `ax` on
/// that thread only (the handlers call io.poll(), which is owner-only: one on another thread
/// throws std::logic_error out of that thread's ax.run()). Destroy it before `ax` and `io`.
class driver {
 public:
  driver(boost::asio::io_context& ax, rondo::io_context& io)
      : ax_(&ax), io_(&io), registry_(&boost::asio::use_service<detail::driver_registry>(ax)) {
    if (std::this_thread::get_id() != io.owner()) {
      throw std::logic_error(
          "rondo::asio_bridge::driver: constructed on a thread that does not own the "
          "rondo::io_context (construct it, and run the asio::io_context, on the owner thread)");
    }
    if (registry_->get() != nullptr) {
      throw std::logic_error(
          "rondo::asio_bridge::driver: this asio::io_context already drives a rondo "
          "io_context (one driver per asio::io_context)");
    }
    // dup: the descriptor object closes what it holds; the eventfd itself stays rondo's.
    const int fd = ::dup(io.wait_handle());
    if (fd < 0) {
      throw std::system_error(errno, std::system_category(),
                              "rondo::asio_bridge::driver: dup(wait_handle())");
    }
    try {
      handle_.emplace(ax, fd);  // registers it with Asio's reactor (epoll)
    } catch (...) {
      ::close(fd);
      throw;
    }
    state_ = std::make_shared<shared>();
    state_->self = this;
    registry_->set(this);
    previous_thread_driver_ = std::exchange(detail::thread_driver(), this);
    post_step();  // the first poll runs from Asio's loop, like every other
  }

  driver(const driver&) = delete;
  driver& operator=(const driver&) = delete;

  /// Lets go (stop()). Owner thread.
  ~driver() {
    stop();
    if (detail::thread_driver() == this) detail::thread_driver() = previous_thread_driver_;
  }

  /// Lets go of the rondo context: cancels the pending wait; pending and later handlers of
  /// this driver do nothing, and the Asio context has no driver any more (operations started
  /// from now on fail with std::logic_error; a new driver may attach). The rondo context keeps
  /// what it had. Idempotent. Owner thread.
  void stop() noexcept {
    if (!attached_) return;
    attached_ = false;
    if (registry_->get() == this) registry_->set(nullptr);
    state_->self = nullptr;  // handlers still queued in Asio find no driver and return
    if (waiting_) {
      waiting_ = false;
      io_->finish_wait();
    }
    boost::system::error_code ignored;
    (void)handle_->cancel(ignored);
  }

  /// Whether the driver still drives the context (not stopped, the rondo context not stopped).
  /// Owner thread.
  [[nodiscard]] bool attached() const noexcept { return attached_; }
  /// How many times the driver ran io.poll(), and how many waits on the handle it started
  /// (diagnostics, owner thread: a driver that is idle adds to neither).
  [[nodiscard]] std::uint64_t polls() const noexcept { return polls_; }
  [[nodiscard]] std::uint64_t waits() const noexcept { return waits_; }

  [[nodiscard]] rondo::io_context& context() const noexcept { return *io_; }
  [[nodiscard]] boost::asio::io_context& asio_context() const noexcept { return *ax_; }

  /// The driver attached to `ctx` (null when none): how the operations find theirs.
  [[nodiscard]] static driver* of(boost::asio::execution_context& ctx) {
    if (!boost::asio::has_service<detail::driver_registry>(ctx)) return nullptr;
    return boost::asio::use_service<detail::driver_registry>(ctx).get();
  }
  /// The driver constructed on the calling thread and still alive (null when none).
  [[nodiscard]] static driver* of_this_thread() noexcept { return detail::thread_driver(); }

 private:
  // What Asio's queued handlers hold: they run after the driver is gone only to find `self`
  // null (the driver clears it in stop()). Owner thread only.
  struct shared {
    driver* self = nullptr;
  };

  void post_step() {
    boost::asio::post(*ax_, [s = state_] {
      if (s->self != nullptr) s->self->step();
    });
  }

  void arm() {
    ++waits_;
    handle_->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                        [s = state_](const boost::system::error_code& ec) {
                          if (s->self == nullptr) return;  // stopped: cancelled, or came late
                          if (ec) s->self->fail(ec);
                          s->self->step();
                        });
  }

  [[noreturn]] void fail(const boost::system::error_code& ec) {
    stop();
    throw boost::system::system_error(
        ec, "rondo::asio_bridge::driver: waiting for the rondo io_context's wait handle");
  }

  void step() {
    if (waiting_) {
      waiting_ = false;
      io_->finish_wait();
    }
    if (io_->stopped()) {
      stop();
      return;
    }
    ++polls_;
    try {
      (void)io_->poll();
    } catch (...) {
      // A spawned task's failure (or a poll() on the wrong thread): it leaves through ax.run(),
      // and the driver stays armed for the next run().
      post_step();
      throw;
    }
    // prepare_wait() is false when the context is stopped too: never re-post for that.
    if (io_->stopped()) {
      stop();
      return;
    }
    if (io_->prepare_wait()) {
      waiting_ = true;
      arm();
    } else {
      post_step();
    }
  }

  boost::asio::io_context* ax_;
  rondo::io_context* io_;
  detail::driver_registry* registry_;
  std::optional<boost::asio::posix::stream_descriptor> handle_;
  std::shared_ptr<shared> state_;
  driver* previous_thread_driver_ = nullptr;
  bool attached_ = true;
  bool waiting_ = false;  // prepare_wait() said true; finish_wait() not yet called
  std::uint64_t polls_ = 0;
  std::uint64_t waits_ = 0;
};

namespace detail {

// The handler's associated executor (default: the Asio context of the calling thread's
// driver), tracked as outstanding work: the Asio context's run() does not return while a wait
// it will complete is pending.
template <class Handler>
boost::asio::any_io_executor tracked_executor_of(const Handler& h) {
  driver* d = driver::of_this_thread();
  const boost::asio::any_io_executor fallback =
      d != nullptr ? boost::asio::any_io_executor(d->asio_context().get_executor())
                   : boost::asio::any_io_executor(boost::asio::system_executor());
  return boost::asio::prefer(boost::asio::any_io_executor(boost::asio::get_associated_executor(h, fallback)),
                             boost::asio::execution::outstanding_work.tracked);
}

inline driver& driver_of(const boost::asio::any_io_executor& ex, const char* op) {
  boost::asio::execution_context& ctx = boost::asio::query(ex, boost::asio::execution::context);
  driver* d = driver::of(ctx);
  if (d == nullptr) d = driver::of_this_thread();
  if (d == nullptr) {
    throw std::logic_error(fmt::format(
        "rondo::asio_bridge::{}: no driver is attached to the handler's asio execution context "
        "(construct a rondo::asio_bridge::driver for it)",
        op));
  }
  return *d;
}

// Posts handler(args...) to `work` (the handler's executor, tracked): never runs it inline.
template <class Work, class Handler, class... Args>
void post_completion(const Work& work, Handler&& h, Args&&... args) {
  boost::asio::post(work, [h = std::forward<Handler>(h),
                           ... args = std::forward<Args>(args)]() mutable {
    std::move(h)(std::move(args)...);
  });
}

inline std::exception_ptr cancelled(const char* op) {
  return std::make_exception_ptr(boost::system::system_error(
      boost::asio::error::operation_aborted,
      fmt::format("rondo::asio_bridge::{}: cancelled through its stop token", op)));
}

// For an operation that has to wait: the driver whose rondo context will run the wait, or
// nullptr with `failure` set when `stop` was already requested. Throws std::logic_error when
// there is no driver, or its context is stopped (the wait could never run).
inline driver* driver_for_wait(const boost::asio::any_io_executor& work,
                               const std::stop_token& stop, const char* op,
                               std::exception_ptr& failure) {
  if (stop.stop_requested()) {
    failure = cancelled(op);
    return nullptr;
  }
  driver& d = driver_of(work, op);
  if (d.context().stopped()) {
    throw std::logic_error(fmt::format(
        "rondo::asio_bridge::{}: the driver's rondo io_context is stopped; the wait could never "
        "run",
        op));
  }
  return &d;
}

// Waits until a stage's position reaches `target`, or the stage will not get there (its
// barrier says stop: past the drain limit, closed, halted). A coroutine wait like the stages'
// own (spin, park on the rondo context, woken by the stage's advances and by shutdown's
// wake_all()); co_await yields {position, ready | stopped | cancelled}.
class [[nodiscard]] position_wait_operation final
    : public rondo::detail::suspending_wait<position_wait_operation> {
  using base = rondo::detail::suspending_wait<position_wait_operation>;

 public:
  position_wait_operation(const sequencer& seqr, const sequence& position,
                          const sequence_barrier& stops, std::int64_t target,
                          std::stop_token stop) noexcept
      : base(seqr.waits(), clock::time_point::max(), std::move(stop), nullptr, {}),
        seqr_(&seqr),
        position_(&position),
        stops_(&stops),
        target_(target) {}

  barrier_wait_result await_resume() const noexcept {
    if (done_) return {at_, status_};
    return {at_, end_reason()};
  }

 private:
  friend base;

  bool poll() noexcept {
    // Acquire (in sequence::get): pairs with the stage's release store of its position.
    at_ = position_->get();
    if (at_ >= target_) {
      status_ = wait_status::ready;
      done_ = true;
    } else if (stops_->should_stop(target_)) {
      at_ = position_->get();  // it may have got there while stopping
      status_ = at_ >= target_ ? wait_status::ready : wait_status::stopped;
      done_ = true;
    }
    return done_;
  }
  static bool registry_ready(const position_wait_operation& op) noexcept {
    return op.position_->get() >= op.target_ || op.stops_->should_stop(op.target_);
  }
  [[nodiscard]] std::int64_t target() const noexcept { return target_; }
  // Only a stage's advance moves a position.
  [[nodiscard]] std::uint8_t sources() const noexcept { return rondo::detail::stage_advance; }
  [[nodiscard]] wait_moment moment() const noexcept { return wait_moment::upstream_behind; }
  [[nodiscard]] rondo::detail::waiter_registry& registry() const noexcept {
    return seqr_->waits().waiters();
  }

  const sequencer* seqr_;
  const sequence* position_;
  const sequence_barrier* stops_;
  std::int64_t target_;
  std::int64_t at_ = initial_sequence;
  wait_status status_ = wait_status::ready;
  bool done_ = false;
};

template <class T, class Handler>
rondo::task<> reserve_later(boost::asio::any_io_executor work, Handler h, coro_publisher<T> pub,
                            std::int64_t n, std::stop_token stop) {
  std::exception_ptr failure;
  claim<T> granted;
  try {
    std::optional<claim<T>> c = co_await pub.reserve(n, std::move(stop));
    if (c) {
      granted = std::move(*c);
    } else {
      failure = cancelled("async_reserve");
    }
  } catch (...) {
    failure = std::current_exception();
  }
  post_completion(work, std::move(h), failure, std::move(granted));
}

template <class T, class Handler>
void start_reserve(Handler&& h, coro_publisher<T> pub, std::int64_t n, std::stop_token stop) {
  const boost::asio::any_io_executor work = tracked_executor_of(h);
  std::exception_ptr failure;
  driver* d = nullptr;
  try {
    // The fast path: free slots now (it also validates n: std::invalid_argument).
    if (std::optional<claim<T>> c = pub.try_reserve(n)) {
      post_completion(work, std::forward<Handler>(h), std::exception_ptr{}, std::move(*c));
      return;
    }
    d = driver_for_wait(work, stop, "async_reserve", failure);
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    post_completion(work, std::forward<Handler>(h), failure, claim<T>{});
    return;
  }
  // Outside the try: once the handler is moved into the task, only the task completes it.
  d->context().spawn(reserve_later<T, std::decay_t<Handler>>(work, std::forward<Handler>(h), pub,
                                                             n, std::move(stop)));
}

template <class Handler>
rondo::task<> position_later(boost::asio::any_io_executor work, Handler h, const sequencer& seqr,
                             const sequence& position, const sequence_barrier& stops,
                             std::string stage, std::int64_t target, std::stop_token stop) {
  std::exception_ptr failure;
  const barrier_wait_result r =
      co_await position_wait_operation(seqr, position, stops, target, std::move(stop));
  if (r.status == wait_status::cancelled) {
    failure = cancelled("async_wait_for_position");
  } else if (r.status != wait_status::ready) {
    failure = std::make_exception_ptr(closed(fmt::format(
        "rondo::asio_bridge::async_wait_for_position: stage '{}' stopped at {} before sequence "
        "{} (drained past it, closed or halted)",
        stage, r.available, target)));
  }
  post_completion(work, std::move(h), failure, r.available);
}

template <class T, class Handler>
void start_position(Handler&& h, disruptor<T>& dis, std::string_view stage, std::int64_t target,
                    std::stop_token stop) {
  const boost::asio::any_io_executor work = tracked_executor_of(h);
  std::exception_ptr failure;
  driver* d = nullptr;
  const sequence* position = nullptr;
  const sequence_barrier* stops = nullptr;
  std::int64_t at = initial_sequence;
  try {
    if (target < 0) {
      throw std::invalid_argument(fmt::format(
          "rondo::asio_bridge::async_wait_for_position: sequence {} is negative (sequences "
          "start at 0)",
          target));
    }
    position = &dis.stage_position(stage);  // std::invalid_argument for an unknown stage
    stops = &dis.stage_barrier(stage);
    // Acquire (in sequence::get): pairs with the stage's release store of its position.
    at = position->get();
    if (at < target) {
      d = driver_for_wait(work, stop, "async_wait_for_position", failure);
    }
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure || at >= target) {
    post_completion(work, std::forward<Handler>(h), failure, at);
    return;
  }
  d->context().spawn(position_later<std::decay_t<Handler>>(
      work, std::forward<Handler>(h), dis.sequencer_of(), *position, *stops, std::string(stage),
      target, std::move(stop)));
}

// drain() is a lifecycle call that blocks its thread; from Asio it becomes drain_for(0ns)
// retried on an Asio timer, outside rondo's poll() (where the lifecycle calls belong: the
// stages on the driver's context keep running between the tries).
inline constexpr std::chrono::microseconds drain_retry{100};

template <class T, class Handler>
struct drain_op {
  disruptor<T>* dis;
  Handler h;
  boost::asio::any_io_executor work;
  std::unique_ptr<boost::asio::steady_timer> timer;

  void operator()(const boost::system::error_code& = {}) {
    std::exception_ptr failure;
    try {
      if (!dis->drain_for(std::chrono::nanoseconds(0))) {
        boost::asio::steady_timer& t = *timer;  // heap: stays put while *this moves
        t.expires_after(drain_retry);
        t.async_wait(std::move(*this));
        return;
      }
    } catch (...) {
      failure = std::current_exception();
    }
    post_completion(work, std::move(h), failure);
  }
};

}  // namespace detail

/// `co_await async_reserve(publisher, n, asio::use_awaitable)` yields claim<T>: n consecutive
/// slots of the publisher's ring, to fill and publish() (coro_publisher::reserve, from Asio).
/// Completion signature void(std::exception_ptr, rondo::claim<T>): on error the claim is empty
/// and the exception says why — std::invalid_argument for n outside [1, capacity],
/// std::logic_error for a second open claim of a single producer or no driver for the
/// handler's Asio context, rondo::closed when the disruptor is (or gets) drained, closed or
/// halted. Free slots now: completes through a post, no wait. A full ring: waits as a rondo
/// coroutine on the driver's context, and completes on the handler's associated executor once
/// a terminal stage frees the slots. Thread-safety: as the publisher (a single producer: one
/// thread at a time, e.g. the Asio thread). The publisher must outlive the operation.
template <class T, class CompletionToken>
auto async_reserve(coro_publisher<T> pub, std::int64_t n, CompletionToken&& token) {
  return boost::asio::async_initiate<CompletionToken, void(std::exception_ptr, claim<T>)>(
      [](auto&& handler, coro_publisher<T> p, std::int64_t count) {
        detail::start_reserve<T>(std::forward<decltype(handler)>(handler), p, count,
                                 std::stop_token{});
      },
      token, pub, n);
}

/// As async_reserve(pub, n, token), cancellable: once `stop` is requested before the slots
/// were granted it completes with boost::system::system_error(asio::error::operation_aborted).
template <class T, class CompletionToken>
auto async_reserve(coro_publisher<T> pub, std::int64_t n, std::stop_token stop,
                   CompletionToken&& token) {
  return boost::asio::async_initiate<CompletionToken, void(std::exception_ptr, claim<T>)>(
      [](auto&& handler, coro_publisher<T> p, std::int64_t count, std::stop_token st) {
        detail::start_reserve<T>(std::forward<decltype(handler)>(handler), p, count,
                                 std::move(st));
      },
      token, pub, n, std::move(stop));
}

/// Completes when the stage `stage` of `d` has passed sequence `seq` (its position >= seq):
/// what a session awaits before it answers the request it published at seq. Completion
/// signature void(std::exception_ptr, std::int64_t): the stage's position then (>= seq; it may
/// be further). Errors: std::invalid_argument for a negative seq or an unknown stage (naming
/// it); rondo::closed when the stage will not get there (the disruptor was drained before seq
/// was published, closed or halted); std::logic_error with no driver. Already passed:
/// completes through a post. Else waits as a rondo coroutine on the driver's context, woken by
/// the stage's advance. `d` must outlive the operation.
template <class T, class CompletionToken>
auto async_wait_for_position(disruptor<T>& d, std::string_view stage, std::int64_t seq,
                             CompletionToken&& token) {
  return boost::asio::async_initiate<CompletionToken, void(std::exception_ptr, std::int64_t)>(
      [](auto&& handler, disruptor<T>* dis, std::string_view name, std::int64_t target) {
        detail::start_position(std::forward<decltype(handler)>(handler), *dis, name, target,
                               std::stop_token{});
      },
      token, &d, stage, seq);
}

/// As above, cancellable through `stop` (boost::system::system_error(operation_aborted)).
template <class T, class CompletionToken>
auto async_wait_for_position(disruptor<T>& d, std::string_view stage, std::int64_t seq,
                             std::stop_token stop, CompletionToken&& token) {
  return boost::asio::async_initiate<CompletionToken, void(std::exception_ptr, std::int64_t)>(
      [](auto&& handler, disruptor<T>* dis, std::string_view name, std::int64_t target,
         std::stop_token st) {
        detail::start_position(std::forward<decltype(handler)>(handler), *dis, name, target,
                               std::move(st));
      },
      token, &d, stage, seq, std::move(stop));
}

/// disruptor::drain() from Asio: stops the producers (waiting async_reserves complete with
/// rondo::closed), lets the stages finish every published event, and completes. Completion
/// signature void(std::exception_ptr): a stage failure under the halt policy
/// (rondo::stage_error), std::logic_error if never started, already drained or closed. It
/// retries drain_for(0ns) on an Asio timer every 100 us (outside rondo's poll(); the stages on
/// the driver's context run in between). From the thread that owns the disruptor's lifecycle.
template <class T, class CompletionToken>
auto async_drain(disruptor<T>& d, CompletionToken&& token) {
  return boost::asio::async_initiate<CompletionToken, void(std::exception_ptr)>(
      [](auto&& handler, disruptor<T>* dis) {
        using handler_t = std::decay_t<decltype(handler)>;
        boost::asio::any_io_executor work = detail::tracked_executor_of(handler);
        auto timer = std::make_unique<boost::asio::steady_timer>(work);
        // The first try runs from a post too: never inside the initiating call.
        boost::asio::post(work, detail::drain_op<T, handler_t>{
                                    dis, std::forward<decltype(handler)>(handler), work,
                                    std::move(timer)});
      },
      token, &d);
}

}  // namespace rondo::asio_bridge
