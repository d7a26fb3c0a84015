#pragma once
// rondo::asio_bridge::driver: a rondo::io_context run from a boost::asio::io_context's loop
// (part of <rondo/asio.hpp>, whose file comment describes the component).

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

}  // namespace rondo::asio_bridge
