#pragma once
// The stage-runner interface: what the disruptor needs from a stage however it runs (a thread
// of its own, a poller, a coroutine). Thread runners: dsl/thread_runner.hpp; coroutine runners:
// dsl/coro_stage.hpp.

#include <rondo/core/errors.hpp>
#include <rondo/core/sequence.hpp>
#include <rondo/core/sequence_barrier.hpp>
#include <rondo/core/stage_metrics.hpp>

#include <cstdint>
#include <functional>
#include <stop_token>

namespace rondo::detail {

/// What the disruptor needs from a stage, however it runs (thread, poller, coroutine).
class stage_runner {
 public:
  stage_runner() = default;
  stage_runner(const stage_runner&) = delete;
  stage_runner& operator=(const stage_runner&) = delete;
  virtual ~stage_runner() = default;
  /// Starts the stage; on_failure is called (from the stage's thread) when it halts.
  virtual void start(std::function<void(const stage_error&)> on_failure) = 0;
  /// True once the stage will handle nothing more (returned from its loop, or cannot be waited
  /// for: a poller after alert or past its limit).
  [[nodiscard]] virtual bool finished() const noexcept = 0;
  virtual void join() noexcept = 0;
  [[nodiscard]] virtual sequence& position() noexcept = 0;
  [[nodiscard]] virtual sequence_barrier& barrier() noexcept = 0;
  [[nodiscard]] virtual stage_metrics_snapshot metrics() const noexcept = 0;
  /// Tombstones the stage has passed (all at or below its position).
  [[nodiscard]] virtual std::int64_t tombstones_passed() const noexcept = 0;
  /// Whether the calling thread is the one the stage runs on (a lifecycle call from there would
  /// wait for itself).
  [[nodiscard]] virtual bool runs_on_calling_thread() const noexcept = 0;

  /// The disruptor's close token (stop requested by close()); set before start().
  void set_close_token(const std::stop_token* t) noexcept { closing_ = t; }

 protected:
  const std::stop_token* closing_ = nullptr;
};

}  // namespace rondo::detail
