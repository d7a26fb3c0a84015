// The io_context's queues and doorbells: post() onto the local queue (owner) or the remote
// one (any thread), taking the remote queue, and ringing a sleeping owner awake by eventfd or
// by IORING_OP_MSG_RING (the Dekker handshake: docs/wakeup-protocol.md).

#include "context_impl.hpp"

#include <rondo/detail/config.hpp>

#include <liburing.h>

#include <atomic>
#include <cstdint>
#include <thread>

#include <unistd.h>

namespace rondo {

// Takes the remote queue into the local one.
bool io_context::impl::take_remote() noexcept {
  schedule_node* n = remote.take_all();
  if (n == nullptr) return false;
  while (n != nullptr) {
    schedule_node* next = n->next;
    push_ready(*n);
    n = next;
  }
  return true;
}

void io_context::impl::arm_doorbell() {
  io_uring_sqe* s = sqe();
  io_uring_prep_read(s, doorbell, &doorbell_buf, sizeof doorbell_buf, 0);
  io_uring_sqe_set_data64(s, doorbell_tag);
}

// Any thread (the lot's notifiers and cancellers): rings the doorbell if the owner sleeps.
// A notifier saw our announcement under its registry's lock, which we linked after storing
// `sleeping`; a canceller's seq_cst RMW pairs with the membarrier in announce_sleep().
void io_context::impl::ring_if_asleep() noexcept {
  // Relaxed: ordered as described above.
  if (sleeping.load(std::memory_order_relaxed) != awake) ring_doorbell();
}

void io_context::impl::ring_doorbell() noexcept {
  // Relaxed: a diagnostic counter.
  rung_by_eventfd.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t one = 1;
  // A failed write (the counter at its maximum) still leaves the eventfd readable.
  (void)!::write(doorbell, &one, sizeof one);
}

// Wakes `target` (asleep in its ring) with an IORING_OP_MSG_RING from this ring: one
// io_uring_enter here, and the target wakes to a CQE with nothing to re-arm (the eventfd
// doorbell costs it a read completion and a new SQE per wake). Owner thread of this context.
// Returns whether the kernel said it delivered: sending to a DEFER_TASKRUN ring completes
// within the submit, so the result is in our CQ when flush() returns; anything else (a
// failure, or a result not there yet) and the caller rings the eventfd as well — the target
// is never touched after post() returns.
//
// Nothing here has side effects beyond the send: no SQE when the SQ is full, a plain
// io_uring_submit (no reaping on -EBUSY), and the result is found by looking at the CQ
// without consuming it (reap_cq() consumes it later and only uncounts it). Never throws.
bool io_context::impl::ring_by_msg(const impl& target) noexcept {
  if (io_uring_sq_space_left(&ring) == 0) return false;
  io_uring_sqe* s = io_uring_get_sqe(&ring);
  if (s == nullptr) return false;
  const std::uint64_t id = (++msg_sends << 3) | msg_sent_tag;
  ++in_flight;
  io_uring_prep_msg_ring(s, target.ring.ring_fd, 0, msg_doorbell_tag, 0);
  io_uring_sqe_set_data64(s, id);
  // Now: the target sleeps until it arrives. A failed submit leaves the SQE for the next
  // flush (a late, harmless doorbell); the caller rings the eventfd.
  if (io_uring_submit(&ring) < 0) return false;
  unsigned head = 0;
  io_uring_cqe* cqe = nullptr;
  io_uring_for_each_cqe(&ring, head, cqe) {
    if (io_uring_cqe_get_data64(cqe) == id) return cqe->res >= 0;
  }
  return false;  // not completed within the submit (or in the CQ overflow list)
}

void io_context::post(schedule_node& n) noexcept {
  if (std::this_thread::get_id() == owner_) {
    impl_->push_ready(n);
    // A foreign loop's handler posting while the loop waits on wait_handle(): make the handle
    // readable, or the node would sit in the local queue until some other wake-up.
    if (impl_->waiting_elsewhere) [[unlikely]] impl_->ring_doorbell();
    return;
  }
  // Once pushed, the node may run and its coroutine may stop and destroy this context before
  // we look at `sleeping`: the destructor waits for `posters` to drop to zero, and the
  // decrement is our last touch (as in stop()). acq_rel: ordered before the push.
  impl_->posters.fetch_add(1, std::memory_order_acq_rel);
  (void)impl_->remote.push(n);  // release CAS
  detail::seq_cst_fence();      // pairs with the fence in wait_for_work()
  // Relaxed: ordered by the fence above.
  const std::uint8_t asleep = impl_->sleeping.load(std::memory_order_relaxed);
  if (asleep != awake) {
    // From a coroutine running on another context: MSG_RING from that context's ring when
    // both rings take it and the target sleeps in its ring (a foreign loop's epoll watches the
    // eventfd path). Anything else (plain threads, stop()): the eventfd.
    io_context* from = current_io_context_or_null();
    if (asleep == asleep_in_ring && from != nullptr && from != this && impl_->msg_ring &&
        from->impl_->msg_ring) {
      if (from->impl_->ring_by_msg(*impl_)) {
        // Relaxed: a diagnostic counter.
        impl_->rung_by_msg_ring.fetch_add(1, std::memory_order_relaxed);
      } else {
        impl_->ring_doorbell();
      }
    } else {
      impl_->ring_doorbell();
    }
  }
  // Release: pairs with the acquire load in ~io_context().
  impl_->posters.fetch_sub(1, std::memory_order_release);
}

park_lot* io_context::parking() noexcept { return &impl_->lot; }

bool io_context::has_pending() const noexcept {
  // The local queue is the owner's; other threads see only the remote queue.
  if (std::this_thread::get_id() == owner_ && impl_->ready_head != nullptr) return true;
  return !impl_->remote.empty();
}

io_context::doorbell_counts io_context::doorbells() const noexcept {
  // Relaxed: diagnostic counters.
  return {impl_->rung_by_msg_ring.load(std::memory_order_relaxed),
          impl_->rung_by_eventfd.load(std::memory_order_relaxed)};
}

bool io_context::msg_ring_doorbell() const noexcept { return impl_->msg_ring; }

}  // namespace rondo
