#pragma once
// Per-stage counters. Written by the stage (its thread, or its coroutine wherever it runs) once
// per batch (load + store, no RMW);
// read by anyone as a snapshot. When a stage runs without metrics the only cost is one
// predictable branch per batch.

#include <atomic>
#include <cstdint>

namespace rondo {

/// A point-in-time copy of one stage's counters.
struct stage_metrics_snapshot {
  std::int64_t events = 0;          ///< events handled (tombstones and skipped errors included)
  std::int64_t batches = 0;         ///< batches handled
  std::int64_t waits = 0;           ///< times the stage found nothing available and waited
  std::int64_t errors_skipped = 0;  ///< handler exceptions skipped by the error policy
  std::int64_t tombstones = 0;      ///< abandoned claims passed over (multi producer)
  std::int64_t rewinds = 0;         ///< batches retried under error_policy::rewind
  // Coroutine stages only:
  std::int64_t spins_succeeded = 0;  ///< waits that ended while spinning (no suspension)
  std::int64_t suspensions = 0;      ///< waits that gave the executor away (yield or park)
  std::int64_t resumes = 0;          ///< times a publish or stage advance woke the parked stage
  std::int64_t suspended_ns = 0;     ///< total time between suspension and resumption

  [[nodiscard]] double mean_batch() const noexcept {
    return batches == 0 ? 0.0 : static_cast<double>(events) / static_cast<double>(batches);
  }
};

/// Single-writer counters (the stage's thread); any thread may take a snapshot().
class stage_metrics {
 public:
  void add_batch(std::int64_t events) noexcept {
    bump(events_, events);
    bump(batches_, 1);
  }
  void add_wait() noexcept { bump(waits_, 1); }
  void add_error_skipped() noexcept { bump(errors_skipped_, 1); }
  void add_tombstone() noexcept { bump(tombstones_, 1); }
  void add_rewind() noexcept { bump(rewinds_, 1); }
  void add_spin_success() noexcept { bump(spins_succeeded_, 1); }
  void add_suspension() noexcept { bump(suspensions_, 1); }
  void add_resume() noexcept { bump(resumes_, 1); }
  void add_suspended(std::int64_t ns) noexcept { bump(suspended_ns_, ns); }

  [[nodiscard]] stage_metrics_snapshot snapshot() const noexcept {
    // Relaxed: statistics, no data is read on the strength of them.
    return {events_.load(std::memory_order_relaxed), batches_.load(std::memory_order_relaxed),
            waits_.load(std::memory_order_relaxed), errors_skipped_.load(std::memory_order_relaxed),
            tombstones_.load(std::memory_order_relaxed), rewinds_.load(std::memory_order_relaxed),
            spins_succeeded_.load(std::memory_order_relaxed),
            suspensions_.load(std::memory_order_relaxed), resumes_.load(std::memory_order_relaxed),
            suspended_ns_.load(std::memory_order_relaxed)};
  }

 private:
  static void bump(std::atomic<std::int64_t>& c, std::int64_t by) noexcept {
    // Single writer: a relaxed load + store is enough and avoids a locked RMW.
    c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }

  std::atomic<std::int64_t> events_{0};
  std::atomic<std::int64_t> batches_{0};
  std::atomic<std::int64_t> waits_{0};
  std::atomic<std::int64_t> errors_skipped_{0};
  std::atomic<std::int64_t> tombstones_{0};
  std::atomic<std::int64_t> rewinds_{0};
  std::atomic<std::int64_t> spins_succeeded_{0};
  std::atomic<std::int64_t> suspensions_{0};
  std::atomic<std::int64_t> resumes_{0};
  std::atomic<std::int64_t> suspended_ns_{0};
};

}  // namespace rondo
