#pragma once
// The thread-based stage loop: wait on a barrier, hand each available event to the handler,
// advance the stage's sequence once per batch.
//
//   next = position + 1
//   loop:  hi = barrier.available(next)             (one read of the shared lines per batch)
//          if hi < next: hi = barrier.wait_blocking(next) (strategy: spin / yield / sleep / block)
//          handle [next, min(hi, next + max_batch - 1)]
//          position = hi (release); signal            (downstream stages and producers see it)
//
// Handlers may be classes with optional hooks: on_start(), on_shutdown(),
// on_batch_start(std::int64_t size), on_timeout(std::int64_t last_sequence) (the latter when the
// wait strategy has a timeout and it passes).

#include <rondo/core/error_policy.hpp>
#include <rondo/core/errors.hpp>
#include <rondo/core/event_handler.hpp>
#include <rondo/core/ring_buffer.hpp>
#include <rondo/core/sequence.hpp>
#include <rondo/core/sequence_barrier.hpp>
#include <rondo/core/stage_metrics.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <string>
#include <utility>

namespace rondo {

/// Options of one stage.
struct stage_options {
  std::int64_t max_batch = 0;                  ///< 0: unbounded; else at most this many per batch
  error_policy errors = error_policy::halt();  ///< what a handler exception does
  /// Throughput over latency (off by default): after a batch of fewer than `linger_below`
  /// events, pause `linger_pauses` times (x86 `pause`, ~20 ns each here) before looking at the
  /// barrier again. A stage that keeps up with its producer otherwise re-reads the cursor after
  /// every event or two, pulling the cursor and slot lines away from the producer's core on each
  /// read; lingering lets a batch build up first. Costs up to linger_pauses * ~20 ns of latency.
  std::int64_t linger_below = 0;
  std::uint32_t linger_pauses = 0;
  /// Placement on an executor pool (disruptor::builder::executor): a heavy stage — one whose
  /// handler does much more per event than pass it on (parsing, matching, hashing), or waits
  /// on slow I/O (fdatasync) — gets a scheduler apart from the light stages, which share the
  /// pool's first scheduler (docs/tuning.md, "Placement").
  bool heavy = false;
};

namespace detail {

/// What every stage does with a batch, whatever runs it (a thread, a coroutine): call a sync
/// handler per event, skip tombstones, apply the error policy (including rewind), keep the
/// counters. Coroutine stages with async handlers use it for the name, options and counters
/// only (handle() is instantiated for sync handlers alone). Single-threaded: one stage drives it.
template <class T, class Handler>
class batch_core {
 public:
  static constexpr std::int64_t no_failure = -2;

  /// Throws std::invalid_argument for a negative max_batch or linger_below.
  batch_core(ring_buffer<T>& ring, Handler h, stage_options opts, std::string name,
             bool metrics)
      : ring_(&ring),
        handler_(std::move(h)),
        opts_(std::move(opts)),
        name_(std::move(name)),
        metrics_on_(metrics) {
    if (opts_.linger_below < 0) {
      throw std::invalid_argument(
          fmt::format("stage '{}': linger_below {} is negative", name_, opts_.linger_below));
    }
    if (opts_.max_batch < 0) {
      throw std::invalid_argument(
          fmt::format("stage '{}': max_batch {} is negative", name_, opts_.max_batch));
    }
  }

  /// Handles [lo, hi]; returns no_failure, or the sequence whose failure halts the stage (the
  /// exception is then halt_error()). Under rewind, retries the batch from lo.
  std::int64_t handle(const sequencer& seqr, std::int64_t lo, std::int64_t hi) {
    for (std::int64_t retries = 0;; ++retries) {
      const std::int64_t failed = handle_once(seqr, lo, hi);
      if (failed == no_failure) return no_failure;
      if (failed >= 0) return failed;
      // A rewind: the failure is at -(failed) - 3 (see on_error()).
      if (retries >= opts_.errors.max_retries()) return -(failed + 3);
      if (metrics_on_) metrics_.add_rewind();
    }
  }

  [[nodiscard]] Handler& handler() noexcept { return handler_; }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const stage_options& options() const noexcept { return opts_; }
  [[nodiscard]] bool metrics_on() const noexcept { return metrics_on_; }
  [[nodiscard]] stage_metrics& counters() noexcept { return metrics_; }
  [[nodiscard]] stage_metrics_snapshot metrics() const noexcept { return metrics_.snapshot(); }
  [[nodiscard]] std::exception_ptr halt_error() const noexcept { return halt_error_; }

  /// How many tombstones (claims given back) this stage has passed; all are at or below its
  /// position.
  [[nodiscard]] std::int64_t tombstones_passed() const noexcept {
    // Relaxed: single writer; readers use it after joining the stage or as a statistic.
    return tombstones_passed_.load(std::memory_order_relaxed);
  }
  void add_tombstones_passed(std::int64_t n) noexcept {
    // Relaxed: single writer (the stage); see tombstones_passed().
    tombstones_passed_.store(tombstones_passed() + n, std::memory_order_relaxed);
    if (metrics_on_) {
      for (std::int64_t i = 0; i < n; ++i) metrics_.add_tombstone();
    }
  }

 private:
  // One pass over [lo, hi]: no_failure; a failed sequence s >= 0 (halt); or -(s + 3) when the
  // failure at s asks for a rewind.
  std::int64_t handle_once(const sequencer& seqr, std::int64_t lo, std::int64_t hi) {
    // Tombstones exist only with several producers, and only after a claim was dropped.
    if (seqr.tombstone_count() > tombstones_passed()) return handle_with_tombstones(seqr, lo, hi);
    std::int64_t s = lo;
    while (s <= hi) {
      try {
        // Over the batch's contiguous runs: the ring's base and mask are read once per run, not
        // once per event (a handler's stores may alias them, so the compiler reloads them).
        while (s <= hi) {
          const auto run = ring_->contiguous(s, hi - s + 1).first;
          T* ev = run.data();
          const std::int64_t run_end = s + static_cast<std::int64_t>(run.size());
          for (; s < run_end; ++s, ++ev) handler_(*ev, s, s == hi);
        }
      } catch (...) {
        const std::int64_t r = on_error(s, std::current_exception());
        if (r != no_failure) return r;
        ++s;
      }
    }
    return no_failure;
  }

  std::int64_t handle_with_tombstones(const sequencer& seqr, std::int64_t lo, std::int64_t hi) {
    std::int64_t last_real = hi;
    while (last_real >= lo && seqr.is_tombstone(last_real)) --last_real;
    std::int64_t passed = 0;
    std::int64_t result = no_failure;
    for (std::int64_t s = lo; s <= hi; ++s) {
      if (seqr.is_tombstone(s)) {
        ++passed;
        continue;
      }
      try {
        handler_((*ring_)[s], s, s == last_real);
      } catch (...) {
        const std::int64_t r = on_error(s, std::current_exception());
        if (r != no_failure) {
          result = r;
          break;
        }
      }
    }
    // Counted once the batch is done with (a rewound batch passes its tombstones again).
    if (result == no_failure) add_tombstones_passed(passed);
    return result;
  }

  // no_failure to go on with the next event; s to halt at s; -(s + 3) to rewind.
  std::int64_t on_error(std::int64_t seq, std::exception_ptr e) {
    if (opts_.errors.action() == error_policy::kind::rewind) {
      halt_error_ = std::move(e);
      return -(seq + 3);
    }
    std::exception_ptr halt_with = opts_.errors.handle(stage_failure{name_, seq, std::move(e)});
    if (!halt_with) {
      if (metrics_on_) metrics_.add_error_skipped();
      return no_failure;
    }
    halt_error_ = std::move(halt_with);
    return seq;
  }

  ring_buffer<T>* ring_;
  Handler handler_;
  stage_options opts_;
  std::string name_;
  bool metrics_on_;
  std::atomic<std::int64_t> tombstones_passed_{0};
  std::exception_ptr halt_error_;
  stage_metrics metrics_;
};

}  // namespace detail

/// Runs `Handler` over the events a barrier makes available, on the calling thread.
///
/// Thread-safety: run() on one thread; halt(), position() and metrics() from any thread.
template <class T, class Handler>
  requires event_handler<Handler, T>
class batch_processor {
 public:
  /// The ring and barrier must outlive the processor. Throws std::invalid_argument for a
  /// negative max_batch.
  batch_processor(ring_buffer<T>& ring, sequence_barrier& barrier, Handler h,
                  stage_options opts = {}, std::string name = "stage", bool metrics = false)
      : barrier_(&barrier),
        core_(ring, std::move(h), std::move(opts), std::move(name), metrics) {}

  /// The stage's sequence: everything up to it is handled. Add it as a gating sequence (terminal
  /// stage) or as a dependency of later stages.
  [[nodiscard]] sequence& position() noexcept { return position_; }
  [[nodiscard]] const sequence& position() const noexcept { return position_; }

  /// Processes until the barrier is alerted or passes its limit. Throws rondo::stage_error when
  /// a handler exception halts the stage (its position is then the last handled sequence).
  void run() {
    std::exception_ptr failure;
    std::int64_t failed_at = 0;
    try {
      detail::call_on_start(core_.handler());
      loop(failure, failed_at);
    } catch (...) {
      // A hook (on_start, on_batch_start, on_timeout) threw: same as a handler failure.
      failure = std::current_exception();
      failed_at = position_.get_relaxed() + 1;
    }
    try {
      detail::call_on_shutdown(core_.handler());
    } catch (...) {
      if (!failure) {
        failure = std::current_exception();
        failed_at = position_.get_relaxed();
      }
    }
    if (failure) throw stage_error(core_.name(), failed_at, failure);
  }

  /// Asks run() to return after the current batch.
  void halt() noexcept { barrier_->alert(); }

  [[nodiscard]] Handler& handler() noexcept { return core_.handler(); }
  [[nodiscard]] const std::string& name() const noexcept { return core_.name(); }
  [[nodiscard]] stage_metrics_snapshot metrics() const noexcept { return core_.metrics(); }

  /// How many tombstones (claims given back) this stage has passed; all are at or below
  /// position().
  [[nodiscard]] std::int64_t tombstones_passed() const noexcept {
    return core_.tombstones_passed();
  }

 private:
  void loop(std::exception_ptr& failure, std::int64_t& failed_at) {
    const sequencer& seqr = barrier_->source();
    const stage_options& opts = core_.options();
    std::int64_t next = position_.get_relaxed() + 1;
    for (;;) {
      if (barrier_->alerted()) return;
      std::int64_t hi = barrier_->available(next);
      if (hi < next) {
        if (core_.metrics_on()) core_.counters().add_wait();
        const auto r = barrier_->wait_blocking(next);
        if (r.status == wait_status::stopped) return;
        if (r.status == wait_status::timed_out) {
          detail::call_on_timeout(core_.handler(), next - 1);
          continue;
        }
        hi = r.available;
      }
      if (opts.max_batch > 0 && hi - next >= opts.max_batch) hi = next + opts.max_batch - 1;
      // Never past a drain/close limit: what lies beyond is not part of this run.
      hi = std::min(hi, barrier_->limit());
      // Past the drain limit (tombstones of claims abandoned at the close can be "available"
      // beyond it): this run is over.
      if (hi < next) return;
      detail::call_on_batch_start(core_.handler(), hi - next + 1);
      const std::int64_t stop_at = core_.handle(seqr, next, hi);
      if (stop_at != core_.no_failure) {
        // Everything before the failed event is handled; the disruptor halts.
        failed_at = stop_at;
        failure = core_.halt_error();
        position_.set(stop_at - 1);
        seqr.waits().signal(stop_at - 1);
        barrier_->alert();
        return;
      }
      if (core_.metrics_on()) core_.counters().add_batch(hi - next + 1);
      // Pairs with the acquire loads of downstream barriers and of the producers' gating check.
      position_.set(hi);
      seqr.waits().signal_after(hi, position_);
      if (hi - next + 1 < opts.linger_below) {
        for (std::uint32_t i = 0; i < opts.linger_pauses; ++i) detail::cpu_relax();
      }
      next = hi + 1;
    }
  }

  // The stage's own line: written by this thread, read by downstream stages and producers.
  sequence position_;
  sequence_barrier* barrier_;
  detail::batch_core<T, Handler> core_;
};

}  // namespace rondo
