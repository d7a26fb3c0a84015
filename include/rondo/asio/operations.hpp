#pragma once
// rondo's waits as Asio completion-token operations: async_reserve, async_wait_for_position,
// async_drain (part of <rondo/asio.hpp>, whose file comment describes the component).

#include <rondo/asio/driver.hpp>

namespace rondo::asio_bridge {

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
