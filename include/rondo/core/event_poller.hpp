#pragma once
// The pull API: a handler for users who own their thread (or event loop). Each poll() handles
// what is available now and returns at once; it never waits.
//
//   user loop:  while (poller.poll(h) != poll_state::stopped) { other work / own waiting }

#include <rondo/core/ring_buffer.hpp>
#include <rondo/core/sequence.hpp>
#include <rondo/core/sequence_barrier.hpp>
#include <rondo/core/stage_metrics.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

namespace rondo {

/// What one poll() found.
enum class poll_state : std::uint8_t {
  processing,  ///< events were handled
  gating,      ///< events are claimed or published but an upstream stage has not passed them
  idle,        ///< nothing new was even claimed
  stopped      ///< the disruptor is closed or drained past this poller: stop polling
};

/// A stage driven by its owner's calls to poll(). Thread-safety: poll() from one thread at a
/// time; position() from any.
template <class T>
class event_poller {
 public:
  /// The ring and sequencer (and dependencies) must outlive the poller. Add position() to the
  /// sequencer's gating sequences if the poller is a terminal stage.
  /// With `metrics`, each poll that handles events counts as a batch and each empty poll as a
  /// wait in metrics().
  event_poller(ring_buffer<T>& ring, const sequencer& seqr, std::vector<const sequence*> deps = {},
               bool metrics = false)
      : ring_(&ring), barrier_(seqr, std::move(deps)), metrics_on_(metrics) {}

  /// Calls h(event, sequence, end_of_batch) -> bool for each available event, in order, until it
  /// returns false (the poll stops after that event). If h throws, the exception propagates and
  /// position() stays at the last event h completed; the next poll() retries the failed event.
  template <class Handler>
  poll_state poll(Handler&& h) {
    const sequencer& seqr = barrier_.source();
    const std::int64_t next = position_.get_relaxed() + 1;
    if (barrier_.alerted()) return poll_state::stopped;
    // Never past a drain/close limit: what lies beyond is not part of this run.
    const std::int64_t hi = std::min(barrier_.available(next), barrier_.limit());
    if (hi < next) {
      if (barrier_.should_stop(next)) return poll_state::stopped;
      if (metrics_on_) metrics_.add_wait();
      // Right after an in-order producer, available() was the cursor: nothing is gating, and a
      // second read of the producer's line (which may be in flight to the producer) would only
      // cost a ping-pong poller another transfer.
      if (barrier_.dependencies().empty() && seqr.published_out_of_order() == nullptr) {
        return poll_state::idle;
      }
      return seqr.cursor().get() >= next ? poll_state::gating : poll_state::idle;
    }
    const bool tombs = seqr.tombstone_count() > tombstones_passed();
    std::int64_t last_real = hi;
    while (tombs && last_real >= next && seqr.is_tombstone(last_real)) --last_real;
    std::int64_t s = next;
    for (; s <= hi; ++s) {
      if (tombs && seqr.is_tombstone(s)) {
        // Relaxed: single writer (the polling thread); see tombstones_passed().
        tombstones_passed_.store(tombstones_passed() + 1, std::memory_order_relaxed);
        if (metrics_on_) metrics_.add_tombstone();
        continue;
      }
      bool more = true;
      try {
        more = h((*ring_)[s], s, s == last_real);
      } catch (...) {
        finish(s - 1);
        throw;
      }
      if (!more) {
        ++s;
        break;
      }
    }
    finish(s - 1);
    return poll_state::processing;
  }

  [[nodiscard]] sequence& position() noexcept { return position_; }
  [[nodiscard]] const sequence& position() const noexcept { return position_; }
  [[nodiscard]] sequence_barrier& barrier() noexcept { return barrier_; }
  [[nodiscard]] const sequence_barrier& barrier() const noexcept { return barrier_; }
  [[nodiscard]] stage_metrics_snapshot metrics() const noexcept { return metrics_.snapshot(); }

  /// How many tombstones (claims given back) this poller has passed.
  [[nodiscard]] std::int64_t tombstones_passed() const noexcept {
    // Relaxed: single writer; a statistic or read after the owner stopped polling.
    return tombstones_passed_.load(std::memory_order_relaxed);
  }

 private:
  void finish(std::int64_t last) noexcept {
    const std::int64_t before = position_.get_relaxed();
    if (last <= before) return;  // nothing new
    if (metrics_on_) metrics_.add_batch(last - before);
    // Pairs with the acquire loads of downstream barriers and of the producers' gating check.
    position_.set(last);
    barrier_.source().waits().signal(last);
  }

  sequence position_;
  ring_buffer<T>* ring_;
  sequence_barrier barrier_;
  std::atomic<std::int64_t> tombstones_passed_{0};
  bool metrics_on_;
  stage_metrics metrics_;
};

}  // namespace rondo
