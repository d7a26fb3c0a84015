#pragma once
// The coroutine handle of a publisher, coro_publisher<T>, and the awaitable of its reserve():
// `auto c = co_await publisher.reserve(n);` spins, then suspends while the ring is full (the
// claim and the thread handle are in <rondo/dsl/publisher.hpp>, which includes this file).

#include <rondo/coro/wait_operation.hpp>
#include <rondo/dsl/publisher.hpp>

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <new>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

namespace rondo {

/// The awaitable of coro_publisher::reserve(). co_await yields claim<T> (Maybe = false) or
/// std::optional<claim<T>> (Maybe = true: empty when cancelled or timed out); both throw
/// rondo::closed when the disruptor is closed before the slots are granted. Resumes on the
/// scheduler current when it suspended. Not movable: await it where it is created.
///
/// Two layers, so that the common case costs what the thread reserve costs: the operation
/// itself holds only what a claim that succeeds at once needs (four words in the coroutine
/// frame); the machinery of a wait that must suspend (detail::suspending_wait: spin, yield,
/// park, deadline, stop token) is built in place only when await_ready() found the ring full.
template <class T, bool Maybe>
class [[nodiscard]] publisher_reserve_operation {
  using clock = std::chrono::steady_clock;

 public:
  using result_type = std::conditional_t<Maybe, std::optional<claim<T>>, claim<T>>;

  publisher_reserve_operation(publisher<T>& p, std::int64_t n,
                              clock::time_point deadline = clock::time_point::max(),
                              std::stop_token stop = {}) noexcept
      : pub_(&p), n_(n) {
    if constexpr (Maybe) {
      args_.deadline = deadline;
      args_.stop = std::move(stop);
    }
  }
  publisher_reserve_operation(const publisher_reserve_operation&) = delete;
  publisher_reserve_operation& operator=(const publisher_reserve_operation&) = delete;

  /// The fast path is the thread reserve's: a valid n, no open claim, room in the cached gating
  /// sequence. Anything else validates n (std::invalid_argument, std::logic_error, thrown here,
  /// before any wait) and tries a full claim.
  [[nodiscard]] [[gnu::always_inline]] bool await_ready() {
    // The fast path writes nothing into the operation (the constructor's two stores are all a
    // granted reserve pays in the frame): the claim's end is the sequencer's claimed sequence,
    // read back in await_resume (a single producer has one claim open).
    if (pub_->single_ != nullptr) [[likely]] {
      std::int64_t hi;
      if (pub_->single_->try_reserve_fast(n_, hi)) [[likely]] return true;
    }
    path_ = path::polled;
    pub_->check_async(n_);
    n_ = -n_;  // off the fast path from here on: see n_
    return poll();
  }

  /// Spins, yields, parks (coro/wait_operation.hpp). Throws std::logic_error if it must suspend
  /// and there is no scheduler.
  bool await_suspend(std::coroutine_handle<> h) {
    if constexpr (Maybe) {
      ::new (static_cast<void*>(&slow_)) slow_wait(*this, args_.deadline, std::move(args_.stop));
    } else {
      ::new (static_cast<void*>(&slow_)) slow_wait(*this, clock::time_point::max(), {});
    }
    path_ = path::suspended;
    return slow_.await_suspend(h);
  }

  [[gnu::always_inline]] result_type await_resume() {
    if (n_ > 0) [[likely]] {
      const std::int64_t hi = pub_->single_->last_claimed();
      return claim<T>(pub_, hi - n_ + 1, hi);
    }
    if (status_ == claim_status::granted) return claim<T>(pub_, hi_ - slow_n() + 1, hi_);
    if (status_ == claim_status::closed) sequencer::throw_closed_error();
    if constexpr (Maybe) {
      return std::nullopt;
    } else {
      // Without a stop token or deadline the wait ends only granted or closed.
      sequencer::throw_closed_error();
    }
  }

  ~publisher_reserve_operation() {
    if (n_ < 0 && path_ == path::suspended) [[unlikely]] slow_.~slow_wait();
  }

 private:
  // The wait that suspends, built only when needed; it reports through the operation.
  class slow_wait final : public detail::suspending_wait<slow_wait> {
    using base = detail::suspending_wait<slow_wait>;
    friend base;

   public:
    slow_wait(publisher_reserve_operation& op, clock::time_point deadline,
              std::stop_token stop) noexcept
        : base(op.pub_->sequencer().waits(), deadline, std::move(stop), nullptr, {}), op_(&op) {}

   private:
    bool poll() noexcept { return op_->poll(); }
    static bool registry_ready(const slow_wait& w) noexcept {
      const std::int64_t n = w.op_->slow_n();
      return w.op_->pub_->visit([n](const auto& s) { return s.capacity_or_closed(n); });
    }
    [[nodiscard]] std::int64_t target() const noexcept {
      const std::int64_t n = op_->slow_n();
      return op_->pub_->visit([n](const auto& s) { return s.capacity_target(n); });
    }
    [[nodiscard]] wait_moment moment() const noexcept { return wait_moment::ring_full; }
    // Only the terminal stages' advances free slots.
    [[nodiscard]] std::uint8_t sources() const noexcept { return detail::stage_advance; }
    [[nodiscard]] detail::waiter_registry& registry() const noexcept {
      return op_->pub_->sequencer().waits().waiters();
    }

    publisher_reserve_operation* op_;
  };

  [[gnu::always_inline]] bool poll() noexcept {
    const std::int64_t n = slow_n();
    status_ = pub_->visit([n, this](auto& s) { return s.try_reserve(n, hi_); });
    return status_ != claim_status::full;
  }

  struct cancel_args {
    clock::time_point deadline = clock::time_point::max();
    std::stop_token stop;
  };
  struct no_args {};

  // How the operation went off the fast path (n_ < 0; on the fast path, try_reserve_fast granted
  // and the claim's end is the sequencer's claimed sequence); await_resume and the destructor
  // read it.
  enum class path : std::uint8_t {
    polled,    // validated and tried: hi_ and status_ say how it went
    suspended  // slow_ is alive and reports through hi_ and status_
  };

  // n off the fast path (after validation, so n >= 1 there).
  [[nodiscard]] std::int64_t slow_n() const noexcept { return -n_; }

  publisher<T>* pub_;
  // The requested n, negated once await_ready left the fast path: the sign is the fast path's
  // only mark, so that a granted reserve stores nothing beyond pub_ and n_ into the frame.
  std::int64_t n_;
  path path_;            // written only off the fast path (n_ < 0)
  claim_status status_;  // set by poll() before anything reads it
  std::int64_t hi_;  // set by poll() before anything reads it
  [[no_unique_address]] std::conditional_t<Maybe, cancel_args, no_args> args_;
  union {
    slow_wait slow_;  // constructed by await_suspend only
  };
};

/// The coroutine handle of a publisher: what a producer coroutine holds. Its reserve(n) is
/// awaitable — `auto c = co_await publisher.reserve(n);` — and suspends the coroutine, never
/// the thread, while the ring is full (spin, yield, then park on its executor: the
/// spin_then_suspend policy's ring_full moment); it resumes on the scheduler that was current
/// when it suspended, once a terminal stage frees the slots. A small value (one pointer): copy
/// it freely; the publisher (and its disruptor) must outlive it.
///
/// Errors, thrown by the co_await before any wait: std::invalid_argument for n outside
/// [1, capacity], std::logic_error while this single producer has a claim open; rondo::closed
/// when the disruptor is (or gets) drained, closed or halted (also after a wait). Thread-safety: as publisher<T>.
/// Never allocates.
template <class T>
class coro_publisher {
 public:
  coro_publisher(publisher<T>& p) noexcept : pub_(&p) {}  // NOLINT: a view of `p`, like p&

  /// `co_await reserve(n)` yields claim<T>: n consecutive slots.
  [[nodiscard]] publisher_reserve_operation<T, false> reserve(std::int64_t n = 1) noexcept {
    return publisher_reserve_operation<T, false>(*pub_, n);
  }
  /// As reserve(n), cancellable: yields std::optional<claim<T>>, empty once `stop` is requested
  /// before the slots were granted.
  [[nodiscard]] publisher_reserve_operation<T, true> reserve(std::int64_t n,
                                                             std::stop_token stop) noexcept {
    return publisher_reserve_operation<T, true>(
        *pub_, n, std::chrono::steady_clock::time_point::max(), std::move(stop));
  }
  /// As reserve(n, stop), giving up at `deadline` too (an empty optional).
  [[nodiscard]] publisher_reserve_operation<T, true> reserve_until(
      std::int64_t n, std::chrono::steady_clock::time_point deadline,
      std::stop_token stop = {}) noexcept {
    return publisher_reserve_operation<T, true>(*pub_, n, deadline, std::move(stop));
  }
  /// As reserve(n, stop), giving up after `timeout` too. A negative timeout is
  /// std::invalid_argument.
  [[nodiscard]] publisher_reserve_operation<T, true> reserve_for(std::int64_t n,
                                                                 std::chrono::nanoseconds timeout,
                                                                 std::stop_token stop = {}) {
    return reserve_until(n, detail::deadline_after(timeout, "coro_publisher::reserve_for"),
                         std::move(stop));
  }
  /// Claims n slots if they are free now (never waits); nullopt if the ring lacks capacity.
  std::optional<claim<T>> try_reserve(std::int64_t n = 1) { return pub_->try_reserve(n); }

  [[nodiscard]] std::int64_t remaining_capacity() const noexcept {
    return pub_->remaining_capacity();
  }
  [[nodiscard]] std::int64_t capacity() const noexcept { return pub_->capacity(); }
  /// The thread handle this one is a view of.
  [[nodiscard]] publisher<T>& thread_publisher() const noexcept { return *pub_; }

 private:
  publisher<T>* pub_;
};

}  // namespace rondo
