// The io_context run loop on liburing (see include/rondo/io/io_context.hpp for the model).
// liburing stays private to this file: the public header does not include it.

#include <rondo/detail/asymmetric_fence.hpp>
#include <rondo/detail/config.hpp>
#include <rondo/io/io_context.hpp>

#include <fmt/format.h>

#include <liburing.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <limits>
#include <span>
#include <utility>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include <sys/eventfd.h>
#include <unistd.h>

namespace rondo {

namespace {

// user_data of a completion: an operation's address (aligned to 8) with a tag in the low bits,
// or one of two constants (no object has address 0).
constexpr std::uint64_t doorbell_tag = 1;  // the doorbell's eventfd read
constexpr std::uint64_t ignore_tag = 2;    // completions nobody waits for
constexpr std::uint64_t msg_doorbell_tag = 3;  // a doorbell another context sent by MSG_RING
constexpr std::uint64_t msg_sent_tag = 4;      // our own MSG_RING's completion (a send number
                                               // above the tag bits)
constexpr std::uint64_t tag_mask = 7;
constexpr std::uint64_t op_main = 0;       // an io_operation's own completion
constexpr std::uint64_t op_timeout = 1;    // its linked timeout
constexpr std::uint64_t op_cancel = 2;     // its ASYNC_CANCEL
constexpr std::uint64_t op_multishot = 3;  // a multishot_acceptor's accept

// io_context::impl::sleeping
constexpr std::uint8_t awake = 0;
constexpr std::uint8_t asleep_in_ring = 1;     // in io_uring_submit_and_wait
constexpr std::uint8_t asleep_elsewhere = 2;   // a foreign loop's wait (prepare_wait())

std::uint64_t tagged(const void* p, std::uint64_t tag) noexcept {
  return reinterpret_cast<std::uint64_t>(p) | tag;
}

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

thread_local io_context* running_context = nullptr;

// Marks the calling thread as running `c` (nested runs restore the outer one).
class running_scope {
 public:
  explicit running_scope(io_context& c) noexcept : saved_(std::exchange(running_context, &c)) {}
  running_scope(const running_scope&) = delete;
  running_scope& operator=(const running_scope&) = delete;
  ~running_scope() { running_context = saved_; }

 private:
  io_context* saved_;
};

}  // namespace

io_context* current_io_context_or_null() noexcept { return running_context; }

io_context& current_io_context() {
  if (running_context == nullptr) {
    throw std::logic_error(
        "rondo::current_io_context(): this thread is not running an io_context");
  }
  return *running_context;
}

namespace detail {
// A multishot accept's state. On the heap, not in a frame: the kernel may still post
// completions for it after the acceptor is gone (it is then orphaned, and the context frees it
// when the last completion, the one without IORING_CQE_F_MORE, arrives, or at its own end).
struct multishot_state {
  io_context* ctx = nullptr;
  int fd = -1;
  unsigned flags = 0;
  bool armed = false;     // a multishot accept is in the kernel
  bool orphaned = false;  // the acceptor is gone
  bool waiting = false;   // a next() is suspended on `waiter`
  bool cancelled = false; // cancel(): no more accepts
  std::deque<int> results;
  schedule_node waiter{};
  multishot_state* prev_orphan = nullptr;
  multishot_state* next_orphan = nullptr;
};

void io_canceller::operator()() const noexcept {
  // Runs on the thread that requested stop. Release: pairs with the acquire load in
  // on_main(), which must know a cancel node is on its way before it lets the operation go.
  op->cancel_posted_.store(true, std::memory_order_release);
  op->ctx_->post(op->cancel_node_);
}
}  // namespace detail

struct io_context::impl {
  io_uring ring{};
  unsigned flags = 0;
  io_options opts;
  int doorbell = -1;
  std::uint64_t doorbell_buf = 0;
  int wait_fd = -1;  // wait_handle(): an eventfd registered with the ring, for foreign loops
  // Owner-only FIFO of ready nodes.
  schedule_node* ready_head = nullptr;
  schedule_node* ready_tail = nullptr;
  // Owner-only: completions the kernel owes us (ops, their timeouts and cancels, multishot
  // accepts), and operations waiting for room (see io_options::max_in_flight).
  std::size_t in_flight = 0;
  std::size_t in_flight_cap = 0;
  // Owner-only: operations in flight that io_uring hands to its worker threads (see
  // uses_kernel_worker()): while any is, the idle poll is skipped (io_options).
  std::size_t worker_ops = 0;
  io_operation* backlog_head = nullptr;
  io_operation* backlog_tail = nullptr;
  std::size_t backlog_size = 0;
  detail::multishot_state* orphans = nullptr;
  // Owner-only: failures of spawned tasks, oldest first, for run()/run_one()/poll() to rethrow.
  std::deque<std::exception_ptr> spawn_failures;
  std::function<void(std::exception_ptr)> spawn_failure_handler;  // on_spawn_failure()
  // Set up once: this ring can send and take MSG_RING doorbells (a DEFER_TASKRUN ring on a
  // kernel with IORING_OP_MSG_RING, whose remote delivery completes at once on the sender).
  bool msg_ring = false;
  // Owner-only: numbers our MSG_RING doorbells (see ring_by_msg()).
  std::uint64_t msg_sends = 0;
  // Owner-only: a doorbell (an eventfd read or another context's MSG_RING) may be waiting as
  // task work: set when a sleep in the ring is called off after `sleeping` was announced (a
  // poster may have rung meanwhile), so the next reap asks the kernel once even with nothing
  // in flight and such work never piles up on a busy context.
  bool doorbell_work = false;
  // Owner-only: between a prepare_wait() that returned true and its finish_wait(). A foreign
  // loop may run its own handlers on the owner thread meanwhile (Asio does: see
  // rondo/asio.hpp), and a post() from one of them must wake that loop too: nobody else will
  // poll the local queue before the loop's wait ends.
  bool waiting_elsewhere = false;
  detail::intrusive_mpsc_queue remote;
  // The line posters write: `sleeping` (written by the owner only around its kernel sleep,
  // read by posters: Dekker with their push), their in-progress counts and the doorbell
  // counters. Kept off the lines the owner polls while idle (`stopped`, the queue), so a post
  // does not steal them from under the owner's idle loop.
  alignas(detail::cache_line_size) std::atomic<std::uint8_t> sleeping{awake};
  std::atomic<int> stoppers{0};  // stop() calls in progress (see stop())
  std::atomic<int> posters{0};   // remote post() calls in progress (see post())
  // Diagnostics (relaxed counters, bumped by posters on the slow path only).
  std::atomic<std::uint64_t> rung_by_msg_ring{0};
  std::atomic<std::uint64_t> rung_by_eventfd{0};
  // Read by the owner every idle round; written by stop().
  alignas(detail::cache_line_size) std::atomic<bool> stopped{false};
  // Coroutine waits parked on this context (owner-polled); a notifier that finds one of their
  // announcements while we sleep rings the doorbell through ring_if_asleep().
  park_lot lot{[](void* self) noexcept { static_cast<impl*>(self)->ring_if_asleep(); }, this};

  explicit impl(io_options o) : opts(o) {
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

  void set_in_flight_cap(const io_uring_params& accepted) noexcept {
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
  // 3-100 us after a byte or a post (tests/io_context_test.cpp, [embedding]). The loop's
  // epoll_wait then returns EINTR.
  // Nothing is lost: work queued before the loop blocks makes epoll_wait return at once too.
  //
  // So the first wait_handle() on a DEFER_TASKRUN ring sets up the next ring of setup_order
  // (COOP_TASKRUN | TASKRUN_FLAG, else COOP_TASKRUN, else no flags) and replaces the old one.
  // That is safe only with nothing in the kernel but the doorbell's read, which the new ring
  // re-arms (a doorbell rung meanwhile left the eventfd's counter set: the new read completes
  // at once, a harmless wake-up). MSG_RING doorbells stop (they need DEFER_TASKRUN here);
  // posters fall back to the eventfd, as they do for any foreign loop.
  void leave_defer_taskrun() {
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

  ~impl() {
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

  io_uring_sqe* sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring);
    while (s == nullptr) {  // SQ full: submit what is there, then retry
      flush();
      s = io_uring_get_sqe(&ring);
    }
    return s;
  }

  void arm_doorbell() {
    io_uring_sqe* s = sqe();
    io_uring_prep_read(s, doorbell, &doorbell_buf, sizeof doorbell_buf, 0);
    io_uring_sqe_set_data64(s, doorbell_tag);
  }

  void flush() {
    // The SQ itself, not a counter: a partial submit leaves entries behind.
    if (io_uring_sq_ready(&ring) == 0) return;
    for (;;) {
      const int r = io_uring_submit(&ring);
      if (r >= 0) break;
      if (r == -EINTR) continue;
      if (r == -EBUSY || r == -EAGAIN) {  // CQ overflow / no resources: make room, then retry
        reap();
        continue;
      }
      throw std::system_error(-r, std::system_category(), "rondo::io_context: io_uring_submit");
    }
  }

  void push_ready(schedule_node& n) noexcept {
    n.next = nullptr;
    if (ready_tail != nullptr) ready_tail->next = &n; else ready_head = &n;
    ready_tail = &n;
  }

  // ---- Submission

  void start(io_operation& op) {
    if (backlog_head != nullptr || in_flight + needed(op) > in_flight_cap) {
      op.in_backlog_ = true;
      op.backlog_next_ = nullptr;
      if (backlog_tail != nullptr) backlog_tail->backlog_next_ = &op; else backlog_head = &op;
      backlog_tail = &op;
      ++backlog_size;
      return;
    }
    prep(op);
  }

  static std::size_t needed(const io_operation& op) noexcept {
    return op.req_.timeout_ns >= 0 ? 2 : 1;
  }

  // Moves backlog operations into the kernel while there is room (after completions).
  void drain_backlog() {
    while (backlog_head != nullptr && in_flight + needed(*backlog_head) <= in_flight_cap) {
      io_operation& op = *backlog_head;
      backlog_head = op.backlog_next_;
      if (backlog_head == nullptr) backlog_tail = nullptr;
      --backlog_size;
      op.in_backlog_ = false;
      prep(op);
    }
  }

  bool remove_from_backlog(io_operation& op) noexcept {
    io_operation* prev = nullptr;
    for (io_operation* p = backlog_head; p != nullptr; prev = p, p = p->backlog_next_) {
      if (p != &op) continue;
      if (prev != nullptr) prev->backlog_next_ = p->backlog_next_; else backlog_head = p->backlog_next_;
      if (backlog_tail == p) backlog_tail = prev;
      --backlog_size;
      op.in_backlog_ = false;
      return true;
    }
    return false;
  }

  // Buffered writes to a file (ext4 here), fsync/fdatasync and openat run in io_uring's worker
  // threads, which need a CPU of their own for tens to hundreds of microseconds. (A write to a
  // socket or pipe is counted too: the kind does not say what the fd is; the cost is only that
  // the context sleeps sooner.)
  static bool uses_kernel_worker(detail::io_kind k) noexcept {
    return k == detail::io_kind::write || k == detail::io_kind::writev ||
           k == detail::io_kind::fsync || k == detail::io_kind::fdatasync ||
           k == detail::io_kind::openat;
  }

  void prep(io_operation& op) {
    const bool linked = op.req_.timeout_ns >= 0;
    // A linked pair must enter the kernel in one submission: a link cut at the end of a
    // submit would drop the timeout.
    while (linked && io_uring_sq_space_left(&ring) < 2) flush();
    // Counted before any sqe() call: a flush inside it may reap, and a completion must never
    // find the count already at zero while another SQE still names the operation.
    op.pending_ = linked ? 2 : 1;
    in_flight += linked ? 2 : 1;
    if (uses_kernel_worker(op.req_.kind)) ++worker_ops;
    io_uring_sqe* s = sqe();
    const detail::io_request& r = op.req_;
    switch (r.kind) {
      case detail::io_kind::read:
        io_uring_prep_read(s, r.fd, r.buf, static_cast<unsigned>(r.len), r.offset);
        break;
      case detail::io_kind::write:
        io_uring_prep_write(s, r.fd, r.buf, static_cast<unsigned>(r.len), r.offset);
        break;
      case detail::io_kind::readv:
        io_uring_prep_readv(s, r.fd, static_cast<const ::iovec*>(r.buf),
                            static_cast<unsigned>(r.len), r.offset);
        break;
      case detail::io_kind::writev:
        io_uring_prep_writev(s, r.fd, static_cast<const ::iovec*>(r.buf),
                             static_cast<unsigned>(r.len), r.offset);
        break;
      case detail::io_kind::fsync:
        io_uring_prep_fsync(s, r.fd, 0);
        break;
      case detail::io_kind::fdatasync:
        io_uring_prep_fsync(s, r.fd, IORING_FSYNC_DATASYNC);
        break;
      case detail::io_kind::sleep:
      case detail::io_kind::sleep_until:
        op.ts_.tv_sec = r.time_ns / 1'000'000'000;
        op.ts_.tv_nsec = r.time_ns % 1'000'000'000;
        io_uring_prep_timeout(s, &op.ts_, 0,
                              r.kind == detail::io_kind::sleep_until ? IORING_TIMEOUT_ABS : 0U);
        break;
      case detail::io_kind::openat:
        io_uring_prep_openat(s, r.fd, static_cast<const char*>(r.buf), static_cast<int>(r.flags),
                             r.mode);
        break;
      case detail::io_kind::close:
        io_uring_prep_close(s, r.fd);
        break;
      case detail::io_kind::accept:
        io_uring_prep_accept(s, r.fd, static_cast<::sockaddr*>(r.buf),
                             static_cast<::socklen_t*>(r.out), static_cast<int>(r.flags));
        break;
      case detail::io_kind::connect:
        io_uring_prep_connect(s, r.fd, static_cast<const ::sockaddr*>(r.buf),
                              static_cast<::socklen_t>(r.len));
        break;
      case detail::io_kind::recv:
        io_uring_prep_recv(s, r.fd, r.buf, r.len, static_cast<int>(r.flags));
        break;
      case detail::io_kind::send:
        io_uring_prep_send(s, r.fd, r.buf, r.len, static_cast<int>(r.flags));
        break;
      case detail::io_kind::nop:
        io_uring_prep_nop(s);
        break;
    }
    io_uring_sqe_set_data64(s, tagged(&op, op_main));
    if (linked) {
      s->flags |= IOSQE_IO_LINK;
      op.link_ts_.tv_sec = r.timeout_ns / 1'000'000'000;
      op.link_ts_.tv_nsec = r.timeout_ns % 1'000'000'000;
      io_uring_sqe* t = sqe();
      io_uring_prep_link_timeout(t, &op.link_ts_, 0);
      io_uring_sqe_set_data64(t, tagged(&op, op_timeout));
    }
  }

  // ---- Completion

  // Whether completions may be waiting as task work that only an io_uring_enter by the owner
  // runs (DEFER_TASKRUN; COOP_TASKRUN's deferred work). Nothing in flight: nothing to ask for,
  // and a compute-only context must not pay a syscall per round (io_uring_get_events alone was
  // 6 % of a coroutine pipeline's profile). The doorbell's read is not counted: it completes only after a
  // poster saw `sleeping`, and the sleep's own io_uring_submit_and_wait runs that task work.
  // With TASKRUN_FLAG the kernel says so in the SQ flags (a plain load); without it, a
  // deferring ring must ask.
  [[nodiscard]] bool kernel_has_work() const noexcept {
    if (in_flight == 0 && !doorbell_work) return false;
    if ((flags & IORING_SETUP_TASKRUN_FLAG) != 0) {
      return (IO_URING_READ_ONCE(*ring.sq.kflags) & IORING_SQ_TASKRUN) != 0;
    }
    return (flags & (IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN)) != 0;
  }

  // Moves finished I/O to the ready queue; returns how many completions it saw.
  std::size_t reap() {
    if (kernel_has_work()) {
      doorbell_work = false;
      (void)io_uring_get_events(&ring);
    }
    return reap_cq();
  }

  // What reap() does once completions are in the CQ: no syscall.
  std::size_t reap_cq() {
    std::size_t n = 0;
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(&ring, &cqe) == 0 && cqe != nullptr) {
      const std::uint64_t data = io_uring_cqe_get_data64(cqe);
      const int res = cqe->res;
      const unsigned cflags = cqe->flags;
      io_uring_cqe_seen(&ring, cqe);
      ++n;
      if (data == doorbell_tag) {
        arm_doorbell();
        continue;
      }
      if (data == ignore_tag || data == msg_doorbell_tag) continue;  // the wake was the point
      if ((data & tag_mask) == msg_sent_tag) {  // its result was read in ring_by_msg()
        --in_flight;
        continue;
      }
      void* obj = reinterpret_cast<void*>(data & ~tag_mask);
      switch (data & tag_mask) {
        case op_main: on_main(*static_cast<io_operation*>(obj), res); break;
        case op_timeout: on_timeout(*static_cast<io_operation*>(obj), res); break;
        case op_cancel: on_cancel(*static_cast<io_operation*>(obj)); break;
        case op_multishot:
          on_multishot(*static_cast<detail::multishot_state*>(obj), res, cflags);
          break;
        default: break;
      }
    }
    if (backlog_head != nullptr) drain_backlog();
    return n;
  }

  void on_main(io_operation& op, int res) noexcept {
    --in_flight;
    if (uses_kernel_worker(op.req_.kind)) --worker_ops;
    op.res_ = res;
    op.main_done_ = true;
    --op.pending_;
    // After this reset no stop callback runs any more (the destructor waits for one running on
    // another thread). Acquire: pairs with the release store in io_canceller, so a cancel node
    // already posted is known and waited for: it points at this operation.
    op.on_stop_.reset();
    if (op.cancel_posted_.load(std::memory_order_acquire) && !op.cancel_ran_) ++op.pending_;
    finish_if_done(op);
  }

  void on_timeout(io_operation& op, int res) noexcept {
    --in_flight;
    if (res == -ETIME) op.timed_out_ = true;  // it fired (else -ECANCELED / -ENOENT: too late)
    --op.pending_;
    finish_if_done(op);
  }

  void on_cancel(io_operation& op) noexcept {
    --in_flight;
    --op.pending_;
    finish_if_done(op);
  }

  void finish_if_done(io_operation& op) noexcept {
    if (op.pending_ != 0) return;
    const bool sleeping_op =
        op.req_.kind == detail::io_kind::sleep || op.req_.kind == detail::io_kind::sleep_until;
    // A sleep that expires reports -ETIME: for sleep_for/sleep_until that is success.
    if (sleeping_op && op.res_ == -ETIME && !op.timed_out_) op.res_ = 0;
    // A linked timeout that fired cancels the operation: report the timeout, not the cancel.
    if (op.timed_out_ && (op.res_ == -ECANCELED || op.res_ == -EINTR)) op.res_ = -ETIME;
    op.node_.callback = nullptr;
    push_ready(op.node_);
  }

  // The cancel node, on the owner thread (posted by io_canceller).
  void cancel(io_operation& op) {
    op.cancel_ran_ = true;
    if (op.main_done_) {  // completed first: on_main() waited for this node
      --op.pending_;
      finish_if_done(op);
      return;
    }
    if (op.in_backlog_) {  // never reached the kernel
      (void)remove_from_backlog(op);
      op.on_stop_.reset();
      op.res_ = -ECANCELED;
      op.main_done_ = true;
      finish_if_done(op);
      return;
    }
    // Counted first: sqe() may flush and reap this operation's own completion.
    ++op.pending_;
    ++in_flight;
    io_uring_sqe* s = sqe();
    io_uring_prep_cancel64(s, tagged(&op, op_main), 0);
    io_uring_sqe_set_data64(s, tagged(&op, op_cancel));
  }

  // ---- Multishot accept

  void arm_multishot(detail::multishot_state& st) {
    io_uring_sqe* s = sqe();
    io_uring_prep_multishot_accept(s, st.fd, nullptr, nullptr, static_cast<int>(st.flags));
    io_uring_sqe_set_data64(s, tagged(&st, op_multishot));
    st.armed = true;
    ++in_flight;
  }

  void on_multishot(detail::multishot_state& st, int res, unsigned cflags) {
    const bool more = (cflags & IORING_CQE_F_MORE) != 0;
    if (!more) {
      st.armed = false;
      --in_flight;
    }
    if (st.orphaned) {
      if (res >= 0) ::close(res);
      if (!more) {
        unlink_orphan(st);
        delete &st;
      }
      return;
    }
    // A multishot that ended with -ECANCELED after a re-arm race is not news for the user
    // (unless they cancelled: then next() reports it below).
    if (!(res == -ECANCELED && !more)) st.results.push_back(res);
    if (st.waiting && st.results.empty() && st.cancelled && !st.armed) st.results.push_back(-ECANCELED);
    if (st.waiting && !st.results.empty()) {
      st.waiting = false;
      push_ready(st.waiter);
    } else if (st.waiting && !st.armed) {
      arm_multishot(st);
    }
  }

  void orphan(detail::multishot_state& st) noexcept {
    st.orphaned = true;
    for (int fd : st.results) {
      if (fd >= 0) ::close(fd);
    }
    st.results.clear();
    if (!st.armed) {
      delete &st;
      return;
    }
    st.next_orphan = orphans;
    if (orphans != nullptr) orphans->prev_orphan = &st;
    orphans = &st;
    try {
      io_uring_sqe* s = sqe();
      io_uring_prep_cancel64(s, tagged(&st, op_multishot), 0);
      io_uring_sqe_set_data64(s, ignore_tag);
    } catch (...) {
      // Submitting failed: the accept stays armed until the ring exits; its connections are
      // closed as they come (orphaned).
    }
  }

  void unlink_orphan(detail::multishot_state& st) noexcept {
    if (st.prev_orphan != nullptr) st.prev_orphan->next_orphan = st.next_orphan; else orphans = st.next_orphan;
    if (st.next_orphan != nullptr) st.next_orphan->prev_orphan = st.prev_orphan;
  }

  // ---- The loop

  // Takes the remote queue into the local one.
  bool take_remote() noexcept {
    schedule_node* n = remote.take_all();
    if (n == nullptr) return false;
    while (n != nullptr) {
      schedule_node* next = n->next;
      push_ready(*n);
      n = next;
    }
    return true;
  }

  // Runs what is ready now (not what it makes ready); returns how many ran.
  std::size_t run_ready(io_context& self) {
    std::size_t ran = 0;
    schedule_node* batch = ready_head;
    ready_head = ready_tail = nullptr;
    const scheduler_scope scope(self);
    const running_scope running(self);
    while (batch != nullptr) {
      schedule_node* n = batch;
      batch = n->next;
      n->run();  // may post more (to the fresh local queue), or free n
      ++ran;
    }
    return ran;
  }

  // One round without sleeping: remote -> ready, run, submit, reap. Returns nodes run.
  std::size_t round(io_context& self) {
    (void)take_remote();
    (void)lot.poll();  // ready parked waits join the local queue
    std::size_t ran = run_ready(self);
    flush();
    (void)reap();
    if (ready_head != nullptr) ran += run_ready(self);
    flush();
    return ran;
  }

  [[nodiscard]] bool idle() const noexcept {
    return ready_head == nullptr && remote.empty() && io_uring_cq_ready(&ring) == 0;
  }

  // Polls for work for idle_spin, then sleeps in the kernel until a completion (I/O or doorbell).
  void wait_for_work() {
    // idle_spin 0: straight to the sleep below (which still re-checks everything first). Also
    // while io_uring's workers run our writes or syncs (unless told otherwise): polling would
    // hold a CPU they need (a journal stage lost 15-25 % of its throughput on 2 cores).
    const bool poll_first =
        opts.idle_spin.count() > 0 && (worker_ops == 0 || opts.idle_spin_with_file_io);
    const auto until = std::chrono::steady_clock::now() + opts.idle_spin;
    const bool flagged = (flags & IORING_SETUP_TASKRUN_FLAG) != 0;
    for (std::uint32_t i = 0; poll_first; ++i) {
      if (!idle() || lot.poll() > 0 || stopped.load(std::memory_order_relaxed)) return;
      // Completions waiting as task work appear only when the owner enters the kernel: with
      // TASKRUN_FLAG the kernel flags them (checked every round, a load); without it, ask
      // every 64 rounds.
      if (flagged ? kernel_has_work() : ((i & 63) == 63 && kernel_has_work())) {
        (void)io_uring_get_events(&ring);
        if (io_uring_cq_ready(&ring) != 0) return;
      }
      if ((i & 63) == 63 && std::chrono::steady_clock::now() >= until) break;
      detail::cpu_relax();
    }
    // Relaxed store, then a fence: pairs with the fence in post() (Dekker): either the poster
    // sees `sleeping` and rings, or we see its node below.
    if (!announce_sleep(asleep_in_ring)) return;
    try {
      flush();
    } catch (...) {
      call_off_sleep();
      throw;
    }
    // flush() may have reaped (CQ overflow): then there is work and no reason to sleep.
    if (ready_head != nullptr || io_uring_cq_ready(&ring) != 0) {
      call_off_sleep();
      return;
    }
    const int r = io_uring_submit_and_wait(&ring, 1);
    // Relaxed: only the owner reads its own flag back; posters re-check after their push.
    sleeping.store(awake, std::memory_order_relaxed);
    lot.finish_sleep();
    if (r < 0 && r != -EINTR && r != -ETIME && r != -EBUSY) {
      throw std::system_error(-r, std::system_category(),
                              "rondo::io_context: io_uring_submit_and_wait");
    }
  }

  // Owner, about to sleep (`how`: in the ring or in a foreign loop): announces it to posters
  // and to the notifiers of the parked waits, runs one fence for both handshakes and re-checks.
  // Returns true if the owner may sleep (then sleeping is set and the waits are announced:
  // call_off_sleep() or, after the sleep, sleeping = awake and lot.finish_sleep()); false if
  // there is work (nothing stays announced).
  bool announce_sleep(std::uint8_t how) {
    // Relaxed: the fence below orders it; pairs with the fence in post() and stop() (Dekker:
    // either the poster sees `sleeping` and rings, or we see its node below), and with the
    // notifiers' compiler barrier (the lot's announcements, docs/wakeup-protocol.md).
    sleeping.store(how, std::memory_order_relaxed);
    if (lot.empty()) {
      detail::seq_cst_fence();
    } else {
      lot.announce();
      // One membarrier per sleep, only when coroutine waits are parked here: notifiers run no
      // fence at all.
      detail::asymmetric_fence::heavy();
      lot.count_fence();
    }
    // Acquire: pairs with the release store in stop().
    if (!remote.empty() || stopped.load(std::memory_order_acquire) || lot.recheck()) {
      call_off_sleep();
      return false;
    }
    return true;
  }

  // Owner: the sleep announced by announce_sleep() does not happen. A poster or notifier that
  // saw `sleeping` may have rung (doorbell_work). Relaxed store of `awake`: only the owner reads
  // its own flag back; a poster that still sees a stale "asleep" rings once too often, which is
  // harmless.
  void call_off_sleep() noexcept {
    sleeping.store(awake, std::memory_order_relaxed);
    lot.finish_sleep();
    doorbell_work = true;
  }

  // Any thread (the lot's notifiers and cancellers): rings the doorbell if the owner sleeps.
  // A notifier saw our announcement under its registry's lock, which we linked after storing
  // `sleeping`; a canceller's seq_cst RMW pairs with the membarrier in announce_sleep().
  void ring_if_asleep() noexcept {
    // Relaxed: ordered as described above.
    if (sleeping.load(std::memory_order_relaxed) != awake) ring_doorbell();
  }

  void ring_doorbell() noexcept {
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
  bool ring_by_msg(const impl& target) noexcept {
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
};

io_context::io_context(io_options opts)
    : impl_(std::make_unique<impl>(opts)), owner_(std::this_thread::get_id()) {}

io_context::~io_context() {
  // Acquire: pairs with the release decrement at the end of stop().
  while (impl_->stoppers.load(std::memory_order_acquire) != 0 ||
         impl_->posters.load(std::memory_order_acquire) != 0) {
    std::this_thread::yield();
  }
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

void io_context::stop() noexcept {
  // stop() from another thread is how a context is shut down, and its owner may destroy it as
  // soon as run() returns: the destructor waits for `stoppers` to drop to zero, and the
  // decrement is the last thing stop() touches. acq_rel: the increment happens before the store
  // of `stopped` that lets run() return.
  impl_->stoppers.fetch_add(1, std::memory_order_acq_rel);
  // Release: pairs with the acquire loads in the run loop.
  impl_->stopped.store(true, std::memory_order_release);
  detail::seq_cst_fence();  // as in post(): either the loop sees `stopped` or we see `sleeping`
  if (impl_->sleeping.load(std::memory_order_relaxed) != awake) impl_->ring_doorbell();
  // Release: pairs with the acquire load in ~io_context().
  impl_->stoppers.fetch_sub(1, std::memory_order_release);
}

void io_context::restart() noexcept {
  // Relaxed: owner thread, before it runs again.
  impl_->stopped.store(false, std::memory_order_relaxed);
}

bool io_context::stopped() const noexcept {
  // Acquire: pairs with the release store in stop().
  return impl_->stopped.load(std::memory_order_acquire);
}

namespace {
void check_owner(const io_context& c, const char* what) {
  if (std::this_thread::get_id() != c.owner()) {
    throw std::logic_error(fmt::format("rondo::io_context::{}() called from a thread that does "
                                       "not own the context (construct it on the thread that "
                                       "runs it)",
                                       what));
  }
}
}  // namespace

void io_context::spawn_done(std::exception_ptr failure) noexcept {
  // Owner thread (the job runs here). A failure that cannot be kept (no memory for the queue
  // entry) terminates rather than vanish.
  if (failure) {
    if (impl_->spawn_failure_handler) {
      impl_->spawn_failure_handler(std::move(failure));
    } else {
      impl_->spawn_failures.push_back(std::move(failure));
    }
  }
  // Release: pairs with the acquire load in spawned(): a thread that sees 0 sees every spawned
  // task's effects. (The task's frames are destroyed after this, on this thread, inside the
  // run loop: the context must still not be destroyed while its owner runs it.)
  spawned_.fetch_sub(1, std::memory_order_release);
}

void io_context::on_spawn_failure(std::function<void(std::exception_ptr)> h) {
  check_owner(*this, "on_spawn_failure");
  impl_->spawn_failure_handler = std::move(h);
}

void io_context::rethrow_spawn_failure() {
  if (impl_->spawn_failures.empty()) [[likely]] return;
  std::exception_ptr e = std::move(impl_->spawn_failures.front());
  impl_->spawn_failures.pop_front();
  std::rethrow_exception(e);
}

std::size_t io_context::run() {
  check_owner(*this, "run");
  rethrow_spawn_failure();  // one left by an earlier call
  std::size_t ran = 0;
  // Acquire: pairs with the release store in stop().
  while (!impl_->stopped.load(std::memory_order_acquire)) {
    const std::size_t r = impl_->round(*this);
    rethrow_spawn_failure();
    ran += r;
    if (r == 0) impl_->wait_for_work();
  }
  return ran;
}

std::size_t io_context::poll() {
  check_owner(*this, "poll");
  rethrow_spawn_failure();  // one left by an earlier call
  std::size_t ran = 0;
  for (;;) {
    const std::size_t r = impl_->round(*this);
    rethrow_spawn_failure();
    if (r == 0) return ran;
    ran += r;
  }
}

bool io_context::run_one() {
  check_owner(*this, "run_one");
  rethrow_spawn_failure();  // one left by an earlier call
  // Acquire: pairs with the release store in stop().
  while (!impl_->stopped.load(std::memory_order_acquire)) {
    (void)impl_->take_remote();
    (void)impl_->lot.poll();
    if (impl_->ready_head == nullptr) {
      impl_->flush();
      (void)impl_->reap();
    }
    if (impl_->ready_head != nullptr) {
      schedule_node* n = impl_->ready_head;
      impl_->ready_head = n->next;
      if (impl_->ready_head == nullptr) impl_->ready_tail = nullptr;
      const scheduler_scope scope(*this);
      const running_scope running(*this);
      n->run();
      impl_->flush();
      rethrow_spawn_failure();
      return true;
    }
    impl_->wait_for_work();
  }
  return false;
}

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

unsigned io_context::setup_flags() const noexcept { return impl_->flags; }
int io_context::native_handle() const noexcept { return impl_->ring.ring_fd; }
std::size_t io_context::in_flight() const noexcept { return impl_->in_flight; }

io_context::doorbell_counts io_context::doorbells() const noexcept {
  // Relaxed: diagnostic counters.
  return {impl_->rung_by_msg_ring.load(std::memory_order_relaxed),
          impl_->rung_by_eventfd.load(std::memory_order_relaxed)};
}

bool io_context::msg_ring_doorbell() const noexcept { return impl_->msg_ring; }
std::size_t io_context::backlog() const noexcept { return impl_->backlog_size; }

void io_context::start(io_operation& op) { impl_->start(op); }
void io_context::cancel(io_operation& op) { impl_->cancel(op); }

bool io_operation::await_suspend(std::coroutine_handle<> h) {
  check_owner(*ctx_, name());
  if (req_.stop.stop_requested()) {  // nothing submitted: nothing to wait for
    res_ = -ECANCELED;
    return false;
  }
  node_.handle = h;
  ctx_->start(*this);  // submitted with the loop's next batch (one io_uring_enter per round)
  if (req_.stop.stop_possible()) {
    cancel_node_.op = this;
    cancel_node_.callback = [](schedule_node& n) noexcept {
      io_operation& op = *static_cast<detail::io_cancel_node&>(n).op;
      try {
        op.ctx_->cancel(op);
      } catch (...) {
        // No SQE could be submitted (the ring is failing): the operation completes on its own.
      }
    };
    // May run the canceller at once (stop requested meanwhile): it posts to our own queue.
    on_stop_.emplace(req_.stop, detail::io_canceller{this});
  }
  return true;
}

const char* io_operation::name() const noexcept {
  switch (req_.kind) {
    case detail::io_kind::read: return "read";
    case detail::io_kind::write: return "write";
    case detail::io_kind::readv: return "readv";
    case detail::io_kind::writev: return "writev";
    case detail::io_kind::fsync: return "fsync";
    case detail::io_kind::fdatasync: return "fdatasync";
    case detail::io_kind::sleep: return "sleep_for";
    case detail::io_kind::sleep_until: return "sleep_until";
    case detail::io_kind::openat: return "openat";
    case detail::io_kind::close: return "close";
    case detail::io_kind::accept: return "accept";
    case detail::io_kind::connect: return "connect";
    case detail::io_kind::recv: return "recv";
    case detail::io_kind::send: return "send";
    case detail::io_kind::nop: return "nop";
  }
  return "io";
}

// ---- multishot_acceptor

multishot_acceptor::multishot_acceptor(io_context& ctx, int listen_fd, unsigned flags)
    : s_(new detail::multishot_state) {
  s_->ctx = &ctx;
  s_->fd = listen_fd;
  s_->flags = flags;
}

multishot_acceptor::~multishot_acceptor() { s_->ctx->impl_->orphan(*s_); }

void multishot_acceptor::cancel() {
  check_owner(*s_->ctx, "multishot_acceptor::cancel");
  if (s_->cancelled) return;
  s_->cancelled = true;
  if (s_->armed) {
    io_uring_sqe* s = s_->ctx->impl_->sqe();
    io_uring_prep_cancel64(s, tagged(s_, op_multishot), 0);
    io_uring_sqe_set_data64(s, ignore_tag);  // the accept's last completion tells the waiter
  } else if (s_->waiting) {
    s_->results.push_back(-ECANCELED);
    s_->waiting = false;
    s_->ctx->impl_->push_ready(s_->waiter);
  }
}

bool accept_next_operation::await_ready() const noexcept {
  if (s_->results.empty() && s_->cancelled && !s_->armed) s_->results.push_back(-ECANCELED);
  return !s_->results.empty();
}

bool accept_next_operation::await_suspend(std::coroutine_handle<> h) {
  check_owner(*s_->ctx, "accept_multishot");
  if (s_->waiting) {
    throw std::logic_error("rondo::multishot_acceptor::next(): another next() is already waiting");
  }
  s_->waiter.handle = h;
  s_->waiter.callback = nullptr;
  s_->waiting = true;
  if (!s_->armed && !s_->cancelled) s_->ctx->impl_->arm_multishot(*s_);
  return true;
}

io_result accept_next_operation::await_resume() noexcept {
  const int res = s_->results.front();
  s_->results.pop_front();
  return {res, "accept_multishot", s_->fd};
}

}  // namespace rondo
