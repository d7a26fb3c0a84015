#pragma once
// The stage runners that are not coroutines: thread_stage_runner (a batch_processor on a thread
// of its own) and poller_stage_runner (an event_poller its owner drives).

#include <rondo/core/batch_processor.hpp>
#include <rondo/core/errors.hpp>
#include <rondo/core/event_handler.hpp>
#include <rondo/core/event_poller.hpp>
#include <rondo/core/ring_buffer.hpp>
#include <rondo/core/sequence.hpp>
#include <rondo/core/sequence_barrier.hpp>
#include <rondo/core/sequencer.hpp>
#include <rondo/core/stage_metrics.hpp>
#include <rondo/dsl/stage_runner.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace rondo::detail {

template <class T, class H>
class thread_stage_runner final : public stage_runner {
 public:
  thread_stage_runner(ring_buffer<T>& ring, const sequencer& seqr,
                      std::vector<const sequence*> deps, H handler, stage_options opts,
                      std::string name, bool metrics)
      : barrier_(seqr, std::move(deps)),
        proc_(ring, barrier_, std::move(handler), std::move(opts), std::move(name), metrics) {}
  ~thread_stage_runner() override { join(); }

  void start(std::function<void(const stage_error&)> on_failure) override {
    thread_ = std::thread([this, cb = std::move(on_failure)] {
      // Release: pairs with the acquire load in thread_id() (lifecycle calls made on this
      // thread are refused by comparing against it).
      id_.store(std::this_thread::get_id(), std::memory_order_release);
      try {
        proc_.run();
      } catch (const stage_error& e) {
        cb(e);
      } catch (...) {
        // run() turns handler and hook failures into stage_error; anything else (a bad_alloc
        // building the error) still halts rather than terminating the process.
        cb(stage_error(proc_.name(), proc_.position().get_relaxed() + 1, std::current_exception()));
      }
      // Pairs with the acquire load in finished().
      done_.store(true, std::memory_order_release);
    });
    started_ = true;
  }
  [[nodiscard]] bool finished() const noexcept override {
    // A stage that never started has nothing in flight. Pairs with the release store at the end
    // of the thread.
    return !started_ || done_.load(std::memory_order_acquire);
  }
  [[nodiscard]] std::int64_t tombstones_passed() const noexcept override {
    return proc_.tombstones_passed();
  }
  [[nodiscard]] bool runs_on_calling_thread() const noexcept override {
    // Pairs with the release store at the start of the thread.
    return id_.load(std::memory_order_acquire) == std::this_thread::get_id();
  }
  void join() noexcept override {
    if (thread_.joinable()) thread_.join();
  }
  sequence& position() noexcept override { return proc_.position(); }
  sequence_barrier& barrier() noexcept override { return barrier_; }
  stage_metrics_snapshot metrics() const noexcept override { return proc_.metrics(); }

 private:
  sequence_barrier barrier_;
  batch_processor<T, H> proc_;
  std::thread thread_;
  bool started_ = false;  // set by the lifecycle thread before anyone reads it
  std::atomic<bool> done_{false};
  std::atomic<std::thread::id> id_{};
};

template <class T>
class poller_stage_runner final : public stage_runner {
 public:
  poller_stage_runner(ring_buffer<T>& ring, const sequencer& seqr,
                      std::vector<const sequence*> deps, bool metrics)
      : poller_(ring, seqr, std::move(deps), metrics) {}
  void start(std::function<void(const stage_error&)>) override {}
  // A poller is driven by its owner; the disruptor cannot wait for it once it is alerted or its
  // owner has polled past the drain limit.
  [[nodiscard]] bool finished() const noexcept override {
    return poller_.barrier().should_stop(poller_.position().get() + 1);
  }
  void join() noexcept override {}
  [[nodiscard]] bool runs_on_calling_thread() const noexcept override { return false; }
  sequence& position() noexcept override { return poller_.position(); }
  sequence_barrier& barrier() noexcept override { return poller_.barrier(); }
  stage_metrics_snapshot metrics() const noexcept override { return poller_.metrics(); }
  [[nodiscard]] std::int64_t tombstones_passed() const noexcept override {
    return poller_.tombstones_passed();
  }
  event_poller<T>& poller() noexcept { return poller_; }

 private:
  event_poller<T> poller_;
};

}  // namespace rondo::detail
