#pragma once
// `co_await barrier.wait(next)`: a coroutine waits for a sequence without blocking its thread.
// The operation spins, yields and parks as described in coro/wait_operation.hpp; the publish or
// stage advance that makes `next` available hands it back to its scheduler.

#include <rondo/core/sequence_barrier.hpp>
#include <rondo/core/stage_metrics.hpp>
#include <rondo/core/wait_strategy.hpp>
#include <rondo/coro/wait_operation.hpp>

#include <chrono>
#include <cstdint>
#include <stop_token>
#include <utility>

namespace rondo {

/// The awaitable of sequence_barrier::wait() (made from its barrier_wait_request by the
/// operator co_await below). co_await yields a barrier_wait_result:
///  - {h >= next, ready}: sequences [next, h] are available (h may exceed next);
///  - {next - 1 or less, stopped}: the barrier was alerted or is past its drain limit (closed);
///  - {.., cancelled} / {.., timed_out}: the stop token fired / the deadline passed first.
/// Resumes on the scheduler that was current when it suspended (a stage's own scheduler for
/// stage waits). Not movable: await it where it is created (`co_await barrier.wait(n)`).
class [[nodiscard]] sequence_barrier_wait_operation final
    : public detail::suspending_wait<sequence_barrier_wait_operation> {
  using base = detail::suspending_wait<sequence_barrier_wait_operation>;

 public:
  sequence_barrier_wait_operation(sequence_barrier& b, std::int64_t next,
                                  clock::time_point deadline = clock::time_point::max(),
                                  std::stop_token stop = {}, stage_metrics* metrics = nullptr,
                                  scheduler_ref sched = {}) noexcept
      : base(b.source().waits(), deadline, std::move(stop), metrics, sched),
        barrier_(&b),
        next_(next),
        hi_(next - 1) {}
  /// The wait `r` describes (what `co_await barrier.wait(...)` awaits).
  explicit sequence_barrier_wait_operation(barrier_wait_request r) noexcept
      : sequence_barrier_wait_operation(*r.barrier, r.next, r.deadline, std::move(r.stop)) {}

  barrier_wait_result await_resume() const noexcept {
    if (done_) return {hi_, status_};
    return {hi_, end_reason()};
  }

 private:
  friend base;

  bool poll() noexcept {
    hi_ = barrier_->available(next_);
    if (hi_ >= next_) {
      status_ = wait_status::ready;
      done_ = true;
    } else if (barrier_->should_stop(next_)) {
      status_ = wait_status::stopped;
      done_ = true;
    }
    return done_;
  }

  static bool registry_ready(const sequence_barrier_wait_operation& op) noexcept {
    return op.barrier_->available(op.next_) >= op.next_ || op.barrier_->should_stop(op.next_);
  }

  [[nodiscard]] std::int64_t target() const noexcept { return next_; }

  // Right behind the producers, only a publish can end the wait; behind other stages, only
  // their advances (available() reads only them).
  [[nodiscard]] std::uint8_t sources() const noexcept {
    return barrier_->dependencies().empty() ? detail::cursor_advance : detail::stage_advance;
  }

  [[nodiscard]] wait_moment moment() const noexcept {
    if (barrier_->dependencies().empty()) return wait_moment::ring_idle;
    // The producers are ahead of us: an upstream stage is working on it.
    return barrier_->source().cursor().get() >= next_ ? wait_moment::upstream_behind
                                                      : wait_moment::ring_idle;
  }

  [[nodiscard]] detail::waiter_registry& registry() const noexcept {
    return barrier_->source().waits().waiters();
  }

  sequence_barrier* barrier_;
  std::int64_t next_;
  std::int64_t hi_;
  wait_status status_ = wait_status::ready;
  bool done_ = false;
};

/// `co_await barrier.wait(next[, stop][, deadline])`: the request becomes the operation, in
/// place, where it is awaited (the operation is not movable).
inline sequence_barrier_wait_operation operator co_await(barrier_wait_request r) noexcept {
  return sequence_barrier_wait_operation(std::move(r));
}

}  // namespace rondo
