// The io_context's ring: the setup flags it asks for and the fallbacks (io_ring_setup), the
// feature probes, the context's construction and destruction, and the ring that replaces a
// DEFER_TASKRUN one when a foreign loop waits on the context (leave_defer_taskrun()).

#include "context_impl.hpp"

#include <rondo/detail/config.hpp>

#include <fmt/format.h>

#include <liburing.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include <sys/eventfd.h>
#include <unistd.h>

namespace rondo {

namespace {

[[noreturn]] void throw_setup_error(int err, io_ring_setup asked) {
  std::string why = std::strerror(err);
  std::string hint;
  if (err == EINVAL && asked != io_ring_setup::automatic) {
    hint = " (the kernel refuses the setup flags io_options::ring_setup names)";
  }
  if (err == ENOSYS) hint = " (the kernel has no io_uring)";
  if (err == EPERM || err == EACCES) {
    hint = " (io_uring is blocked: kernel.io_uring_disabled, or a seccomp profile such as "
           "Docker's default)";
  }
  throw std::system_error(err, std::system_category(),
                          fmt::format("rondo::io_context: io_uring_setup failed: {}{}", why, hint));
}

// The ring setups, best first (io_ring_setup::automatic tries them all in this order).
// SUBMIT_ALL (5.18, older than DEFER_TASKRUN) keeps a submission going past an SQE that fails
// at prep time, so a linked timeout is never cut from its operation.
// Not TASKRUN_FLAG with DEFER_TASKRUN: it would let the loop skip io_uring_get_events while the
// kernel flags no work, but an epoll loop driving the context (wait_handle()) then lost
// wake-ups (1 run in 4 of the embedding test slept its 2 s epoll timeout every round); the
// kernel's flag is not a complete account of pending task work.
constexpr unsigned defer_setup = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
constexpr std::array<unsigned, 5> setup_order = {
    defer_setup | IORING_SETUP_SUBMIT_ALL, defer_setup,
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, IORING_SETUP_COOP_TASKRUN, 0U};
constexpr std::size_t first_non_deferring = 2;  // setup_order[2..]: without DEFER_TASKRUN

std::span<const unsigned> setup_candidates(io_ring_setup s) noexcept {
  const std::span<const unsigned> all(setup_order);
  switch (s) {
    case io_ring_setup::automatic: return all;
    case io_ring_setup::defer_taskrun: return all.first(first_non_deferring);
    case io_ring_setup::coop_taskrun_flag: return all.subspan(2, 1);
    case io_ring_setup::coop_taskrun: return all.subspan(3, 1);
    case io_ring_setup::plain: return all.subspan(4, 1);
  }
  return all;
}

// Sets up `ring` with the first of `candidates` the kernel accepts (the CQ 4x the SQ). Returns 0
// or -errno; on success `flags` is the accepted candidate and `params` what the kernel said.
int open_ring(std::span<const unsigned> candidates, unsigned entries, io_uring& ring,
              unsigned& flags, io_uring_params& params) noexcept {
  int err = -EINVAL;
  for (unsigned f : candidates) {
    io_uring_params p{};
    p.flags = f | IORING_SETUP_CQSIZE;
    p.cq_entries = entries * 4;
    err = io_uring_queue_init_params(entries, &ring, &p);
    if (err == 0) {
      flags = f;
      params = p;
      return 0;
    }
    if (err != -EINVAL) break;  // only "flag unknown" is worth another try
  }
  return err;
}

}  // namespace

io_context::impl::impl(io_options o) : opts(o) {
  if (o.entries < 2 || o.entries > 32768 || (o.entries & (o.entries - 1)) != 0) {
    throw std::invalid_argument(
        fmt::format("io_options::entries {} must be a power of two in [2, 32768]", o.entries));
  }
  if (o.max_in_flight == 1) {
    throw std::invalid_argument(
        "io_options::max_in_flight 1 is too small: an operation with a timeout needs 2 "
        "(use 0 for no cap, or >= 2)");
  }
  if (o.idle_spin.count() < 0) {
    throw std::invalid_argument(
        fmt::format("io_options::idle_spin {} us is negative", o.idle_spin.count()));
  }
  io_uring_params accepted{};
  const int err = open_ring(setup_candidates(o.ring_setup), o.entries, ring, flags, accepted);
  if (err != 0) throw_setup_error(-err, o.ring_setup);
  set_in_flight_cap(accepted);
  doorbell = ::eventfd(0, EFD_CLOEXEC);
  if (doorbell < 0) {
    const int e = errno;
    io_uring_queue_exit(&ring);
    throw std::system_error(e, std::system_category(), "rondo::io_context: eventfd");
  }
  arm_doorbell();
  if (o.msg_ring_doorbell && (flags & IORING_SETUP_DEFER_TASKRUN) != 0) {
    if (io_uring_probe* probe = io_uring_get_probe_ring(&ring)) {
      msg_ring = io_uring_opcode_supported(probe, IORING_OP_MSG_RING) != 0;
      io_uring_free_probe(probe);
    }
  }
}

void io_context::impl::set_in_flight_cap(const io_uring_params& accepted) noexcept {
  if (opts.max_in_flight != 0) {
    in_flight_cap = opts.max_in_flight;
  } else if ((accepted.features & IORING_FEAT_NODROP) != 0) {
    in_flight_cap = std::numeric_limits<std::size_t>::max();
  } else {
    in_flight_cap = accepted.cq_entries;
  }
}

// ---- The wake-up of a foreign loop (wait_handle())
//
// A foreign loop blocks in epoll_wait, not in io_uring_enter, so it learns of a completion
// only through a file the kernel wakes. On a DEFER_TASKRUN ring no file is woken in time:
//
//  - The kernel queues a completion as task work on the ring (io_req_local_work_add) and
//    signals a registered eventfd when that list turns non-empty, but for completions raised
//    by a wait-queue wake-up (a socket, pipe or eventfd becoming ready: every recv, send,
//    accept, and the doorbell's read) it does not signal in place: the signal goes out from
//    an RCU callback (io_eventfd_do_signal, run by rcu_do_batch in the RCU softirq; seen with
//    perf on 6.18.44). A bare liburing loop woke 13-31 ms after a byte was sent to a
//    socketpair (15-19 ms typical, HZ=250); a post() took as long (the doorbell is an
//    eventfd read); issue 14's echo of 4 x 2,500 messages took 625-665 ms against 7-8 ms in
//    run(). Completions raised elsewhere (a timeout's timer, another ring's MSG_RING) were
//    signalled at once: 30-180 us.
//  - The ring fd is no way round: it polls readable once task work is pending, but nothing
//    wakes a poller when the work is queued (an epoll on it slept its whole 500 ms timeout
//    through a finished recv, and a fresh epoll_wait(0) still said nothing).
//  - IORING_REGISTER_EVENTFD_ASYNC signals only from io-wq workers: never, for a recv (the
//    loop slept its 1 s timeout).
//  - Running io_uring_get_events in prepare_wait() (done below anyway) collects work queued
//    before the loop blocks, not what the kernel queues while it sleeps.
//
// Without DEFER_TASKRUN the kernel adds task work to the owner thread itself (task_work_add
// with TWA_SIGNAL / TWA_SIGNAL_NO_IPI): a thread blocked in epoll_wait is interrupted at once
// (EINTR), runs the work on its way out of the kernel, which posts the CQE, and posting a CQE
// signals the registered eventfd from that thread, directly. Measured with the same loop:
// 30-180 us on COOP_TASKRUN | TASKRUN_FLAG, COOP_TASKRUN and no flags, for a recv, a pipe
// read, the doorbell's eventfd read, a timeout and a MSG_RING alike (one 2.7 ms outlier
// while another build shared the 2 cores); through this context, the kernel woke the loop
// 3-100 us after a byte or a post (tests/io/io_context_test.cpp, [embedding]). The loop's
// epoll_wait then returns EINTR.
// Nothing is lost: work queued before the loop blocks makes epoll_wait return at once too.
//
// So the first wait_handle() on a DEFER_TASKRUN ring sets up the next ring of setup_order
// (COOP_TASKRUN | TASKRUN_FLAG, else COOP_TASKRUN, else no flags) and replaces the old one.
// That is safe only with nothing in the kernel but the doorbell's read, which the new ring
// re-arms (a doorbell rung meanwhile left the eventfd's counter set: the new read completes
// at once, a harmless wake-up). MSG_RING doorbells stop (they need DEFER_TASKRUN here);
// posters fall back to the eventfd, as they do for any foreign loop.
void io_context::impl::leave_defer_taskrun() {
  // Our own MSG_RING doorbells to other contexts complete within their submit: collect them,
  // and whatever else already finished, before counting what is still in the kernel.
  flush();
  (void)reap();
  if (in_flight != 0 || backlog_head != nullptr || orphans != nullptr) {
    throw std::logic_error(
        fmt::format("rondo::io_context::wait_handle(): first called with {} completion(s) "
                    "still owed by a DEFER_TASKRUN ring, which a foreign loop cannot wait on; "
                    "call wait_handle() before starting I/O, so the ring can be replaced",
                    in_flight));
  }
  io_uring fresh{};
  unsigned fresh_flags = 0;
  io_uring_params accepted{};
  const int err = open_ring(std::span<const unsigned>(setup_order).subspan(first_non_deferring),
                            opts.entries, fresh, fresh_flags, accepted);
  if (err != 0) throw_setup_error(-err, io_ring_setup::automatic);
  // A poster reads the ring (MSG_RING: its fd, msg_ring) only after it saw `sleeping` at
  // asleep_in_ring, and we are awake. The fence pairs with the fence in post() (Dekker on
  // `sleeping` / `posters`): a poster that increments `posters` after the load below sees
  // `awake`; one that did before is waited for. Acquire: pairs with the release decrement
  // at the end of post(), so its reads of the old ring happen before we close it.
  detail::seq_cst_fence();
  while (posters.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  io_uring_queue_exit(&ring);  // cancels the doorbell's read
  ring = fresh;                // liburing's handle holds no pointer to itself
  flags = fresh_flags;
  msg_ring = false;
  doorbell_work = false;
  set_in_flight_cap(accepted);
  arm_doorbell();
}

io_context::impl::~impl() {
  // Ring exit cancels whatever is still in the kernel; orphaned acceptors die with it.
  io_uring_queue_exit(&ring);
  ::close(doorbell);
  if (wait_fd >= 0) ::close(wait_fd);
  while (orphans != nullptr) {
    detail::multishot_state* n = orphans->next_orphan;
    for (int fd : orphans->results) {
      if (fd >= 0) ::close(fd);
    }
    delete orphans;
    orphans = n;
  }
}

io_context::io_context(io_options opts)
    : impl_(std::make_unique<impl>(opts)), owner_(std::this_thread::get_id()) {}

io_context::~io_context() {
  // Acquire: pairs with the release decrement at the end of stop().
  while (impl_->stoppers.load(std::memory_order_acquire) != 0 ||
         impl_->posters.load(std::memory_order_acquire) != 0) {
    std::this_thread::yield();
  }
}

unsigned io_context::setup_flags() const noexcept { return impl_->flags; }
int io_context::native_handle() const noexcept { return impl_->ring.ring_fd; }

}  // namespace rondo
