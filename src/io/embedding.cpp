// Embedding an io_context in a foreign event loop: wait_handle(), prepare_wait() and
// finish_wait() (why the ring is replaced for it: leave_defer_taskrun() in ring_setup.cpp).

#include "context_impl.hpp"

#include <liburing.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <system_error>

#include <sys/eventfd.h>
#include <unistd.h>

namespace rondo {

int io_context::wait_handle() {
  check_owner(*this, "wait_handle");
  if (impl_->wait_fd < 0) {
    // A DEFER_TASKRUN ring would wake the loop 13-31 ms late (see leave_defer_taskrun()).
    if ((impl_->flags & IORING_SETUP_DEFER_TASKRUN) != 0) impl_->leave_defer_taskrun();
    const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) {
      throw std::system_error(errno, std::system_category(), "rondo::io_context: eventfd");
    }
    const int r = io_uring_register_eventfd(&impl_->ring, fd);
    if (r < 0) {
      ::close(fd);
      throw std::system_error(-r, std::system_category(),
                              "rondo::io_context: io_uring_register_eventfd");
    }
    impl_->wait_fd = fd;
  }
  return impl_->wait_fd;
}

bool io_context::prepare_wait() {
  check_owner(*this, "prepare_wait");
  impl_->flush();
  // Run whatever task work the kernel holds for us, flagged or not, before blocking outside
  // the ring, so that what it completes is seen by the check below instead of costing the
  // loop a wake-up. (On the rings a foreign loop runs, work queued later interrupts the wait:
  // see leave_defer_taskrun().)
  if ((impl_->flags & (IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN)) != 0) {
    (void)io_uring_get_events(&impl_->ring);
  }
  if (impl_->ready_head != nullptr || io_uring_cq_ready(&impl_->ring) != 0) return false;
  // As in wait_for_work(): either a poster sees `sleeping` and rings, or we see its node; the
  // parked waits are announced and re-checked the same way. A poster that rang while we called
  // it off left a doorbell read that the next prepare_wait()'s io_uring_get_events collects.
  impl_->waiting_elsewhere = impl_->announce_sleep(asleep_elsewhere);
  return impl_->waiting_elsewhere;
}

void io_context::finish_wait() noexcept {
  impl_->waiting_elsewhere = false;
  // Relaxed: only the owner reads its own flag back; posters re-check after their push.
  impl_->sleeping.store(awake, std::memory_order_relaxed);
  impl_->lot.finish_sleep();
  if (impl_->wait_fd >= 0) {
    std::uint64_t count = 0;  // reset: what woke the loop is handled by its next poll()
    (void)!::read(impl_->wait_fd, &count, sizeof count);
  }
}

}  // namespace rondo
