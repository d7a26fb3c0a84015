#pragma once
// What coroutine stages see of the ring: a batch<T> (a contiguous run of published events, with
// their sequences) and, for pull-loop stages, a consumer<T> whose next() hands out batches.
//
//   rondo::task<> audit(rondo::consumer<order>& in) {
//     while (auto b = co_await in.next()) {      // releases the previous batch, awaits the next
//       for (order& o : *b) check(o);
//     }                                          // empty optional: the stage is shutting down
//   }

#include <rondo/core/ring_buffer.hpp>
#include <rondo/core/sequence.hpp>
#include <rondo/core/sequence_barrier.hpp>
#include <rondo/core/stage_metrics.hpp>
#include <rondo/coro/barrier_wait.hpp>
#include <rondo/dsl/entries.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>

namespace rondo {

/// A run of consecutive published events [first(), last()] in the ring (possibly empty). A view:
/// cheap to copy, valid while its stage holds the batch (until its handler's task completes, or
/// until the next call of consumer::next()). Events may be modified in place; stages after this
/// one see the changes.
template <class T>
class batch {
 public:
  /// One event with its sequence: `for (auto [seq, ev] : b.entries())`.
  using entry = sequenced<T>;
  using iterator = detail::slot_iterator<T, false>;

  /// The events with their sequences.
  class entry_range {
   public:
    using iterator = detail::slot_iterator<T, true>;
    entry_range(ring_buffer<T>* r, std::int64_t lo, std::int64_t hi) noexcept
        : ring_(r), lo_(lo), hi_(hi) {}
    iterator begin() const noexcept { return {ring_, lo_}; }
    iterator end() const noexcept { return {ring_, hi_ + 1}; }

   private:
    ring_buffer<T>* ring_;
    std::int64_t lo_;
    std::int64_t hi_;
  };

  /// [lo, hi]; hi == lo - 1 is an empty batch. `closing` (may be null) is the disruptor's
  /// close token.
  batch(ring_buffer<T>& ring, std::int64_t lo, std::int64_t hi,
        const std::stop_token* closing = nullptr) noexcept
      : ring_(&ring), lo_(lo), hi_(hi), closing_(closing) {}

  /// Stop is requested on it when the disruptor is closed (not drained): pass it to an I/O
  /// operation's .cancel_on() so close() does not wait for I/O that may never finish. A drain
  /// waits for the I/O instead.
  [[nodiscard]] std::stop_token stop_token() const noexcept {
    return closing_ != nullptr ? *closing_ : std::stop_token{};
  }

  [[nodiscard]] std::int64_t first() const noexcept { return lo_; }
  [[nodiscard]] std::int64_t last() const noexcept { return hi_; }
  [[nodiscard]] std::size_t size() const noexcept { return static_cast<std::size_t>(hi_ - lo_ + 1); }
  [[nodiscard]] bool empty() const noexcept { return hi_ < lo_; }

  /// The i-th event, i in [0, size()). Unchecked.
  T& operator[](std::size_t i) const noexcept { return (*ring_)[lo_ + static_cast<std::int64_t>(i)]; }
  /// The event of sequence seq in [first(), last()]. Throws std::out_of_range otherwise.
  T& at_sequence(std::int64_t seq) const {
    if (seq < lo_ || seq > hi_) {
      throw std::out_of_range(
          fmt::format("batch::at_sequence({}): outside [{}, {}]", seq, lo_, hi_));
    }
    return (*ring_)[seq];
  }

  iterator begin() const noexcept { return {ring_, lo_}; }
  iterator end() const noexcept { return {ring_, hi_ + 1}; }
  /// Events with their sequences.
  [[nodiscard]] entry_range entries() const noexcept { return {ring_, lo_, hi_}; }
  /// The events as at most two contiguous spans (two when the batch wraps the ring's end): what
  /// a writev of the batch wants.
  [[nodiscard]] typename ring_buffer<T>::segments spans() const noexcept {
    return ring_->contiguous(lo_, hi_ - lo_ + 1);
  }

 private:
  ring_buffer<T>* ring_;
  std::int64_t lo_;
  std::int64_t hi_;
  const std::stop_token* closing_;  // a pointer: copying a batch costs no reference count
};

template <class T>
class consumer_next_operation;

/// The input of a pull-loop stage (`task<> (rondo::consumer<T>&)`). Made by the stage runner;
/// used by the stage's coroutine only.
template <class T>
class consumer {
 public:
  /// Construction is the runner's business.
  consumer(ring_buffer<T>& ring, sequence_barrier& barrier, sequence& position,
           std::int64_t max_batch, stage_metrics* metrics, std::string name,
           scheduler_ref sched = {}, const std::stop_token* closing = nullptr) noexcept
      : closing_(closing),
        ring_(&ring),
        barrier_(&barrier),
        position_(&position),
        max_batch_(max_batch),
        metrics_(metrics),
        name_(std::move(name)),
        sched_(sched) {}
  consumer(const consumer&) = delete;
  consumer& operator=(const consumer&) = delete;

  /// Releases the batch handed out last (stages after this one, and producers, may now pass
  /// it), then awaits the next: `co_await in.next()` yields the next batch, or an empty optional
  /// once the stage stops (drain reached its limit, close, a failure elsewhere). A batch may be
  /// empty (claims dropped by other producers are skipped that way). Spins, yields and suspends
  /// per the disruptor's spin_then_suspend policy; resumes on the stage's scheduler.
  [[nodiscard]] consumer_next_operation<T> next() noexcept;

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  /// Stop is requested on it when the disruptor is closed (see batch::stop_token()).
  [[nodiscard]] std::stop_token stop_token() const noexcept {
    return closing_ != nullptr ? *closing_ : std::stop_token{};
  }
  /// Whether next() has reported the end.
  [[nodiscard]] bool ended() const noexcept { return ended_; }
  [[nodiscard]] std::int64_t tombstones_passed() const noexcept {
    // Relaxed: single writer (the stage); read as a statistic or after the stage finished.
    return tombstones_passed_.load(std::memory_order_relaxed);
  }

 private:
  friend class consumer_next_operation<T>;

  void release() noexcept {
    if (held_ <= position_->get_relaxed()) return;
    if (metrics_ != nullptr) metrics_->add_batch(held_ - position_->get_relaxed());
    // Pairs with the acquire loads of downstream barriers and of the producers' gating check.
    position_->set(held_);
    barrier_->source().waits().signal_after(held_, *position_);
  }

  // Turns a finished wait into the batch handed out.
  std::optional<batch<T>> take(barrier_wait_result r) noexcept {
    if (r.status != wait_status::ready) {
      ended_ = true;
      return std::nullopt;
    }
    std::int64_t hi = std::min(r.available, barrier_->limit());
    if (hi < next_) {  // past the drain limit (tombstones beyond it can look available)
      ended_ = true;
      return std::nullopt;
    }
    if (max_batch_ > 0 && hi - next_ >= max_batch_) hi = next_ + max_batch_ - 1;
    const sequencer& seqr = barrier_->source();
    // Tombstones exist only with several producers, after a claim was dropped.
    if (seqr.tombstone_count() > tombstones_passed()) {
      if (seqr.is_tombstone(next_)) {
        // A run of tombstones: an empty batch that skips it.
        std::int64_t e = next_;
        while (e < hi && seqr.is_tombstone(e + 1)) ++e;
        // Relaxed: single writer; see tombstones_passed().
        tombstones_passed_.store(tombstones_passed() + (e - next_ + 1), std::memory_order_relaxed);
        held_ = e;
        next_ = e + 1;
        return batch<T>(*ring_, e + 1, e, closing_);
      }
      for (std::int64_t s = next_ + 1; s <= hi; ++s) {
        if (seqr.is_tombstone(s)) {
          hi = s - 1;
          break;
        }
      }
    }
    batch<T> b(*ring_, next_, hi, closing_);
    held_ = hi;
    next_ = hi + 1;
    return b;
  }

  const std::stop_token* closing_;
  ring_buffer<T>* ring_;
  sequence_barrier* barrier_;
  sequence* position_;
  std::int64_t max_batch_;
  stage_metrics* metrics_;
  std::string name_;
  scheduler_ref sched_;  // where waits resume (empty: the current scheduler)
  std::int64_t next_ = 0;  // the first sequence of the next batch
  std::int64_t held_ = initial_sequence;  // the last sequence handed out
  bool ended_ = false;
  std::atomic<std::int64_t> tombstones_passed_{0};
};

/// The awaitable of consumer::next(). co_await yields std::optional<batch<T>>. Not movable.
template <class T>
class [[nodiscard]] consumer_next_operation {
 public:
  explicit consumer_next_operation(consumer<T>& c) noexcept
      : c_(&c),
        wait_(*c.barrier_, c.next_, std::chrono::steady_clock::time_point::max(), {}, c.metrics_,
              c.sched_) {}
  consumer_next_operation(const consumer_next_operation&) = delete;
  consumer_next_operation& operator=(const consumer_next_operation&) = delete;

  bool await_ready() noexcept {
    if (wait_.await_ready()) return true;
    if (c_->metrics_ != nullptr) c_->metrics_->add_wait();
    return false;
  }
  bool await_suspend(std::coroutine_handle<> h) { return wait_.await_suspend(h); }
  std::optional<batch<T>> await_resume() noexcept { return c_->take(wait_.await_resume()); }

 private:
  consumer<T>* c_;
  sequence_barrier_wait_operation wait_;
};

template <class T>
consumer_next_operation<T> consumer<T>::next() noexcept {
  release();
  if (next_ <= held_) next_ = held_ + 1;
  if (next_ <= position_->get_relaxed()) next_ = position_->get_relaxed() + 1;
  return consumer_next_operation<T>(*this);
}

}  // namespace rondo
