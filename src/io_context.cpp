// The io_context run loop on liburing (see include/rondo/io/io_context.hpp for the model).
// liburing stays private to this file: the public header does not include it.

#include <rondo/detail/config.hpp>
#include <rondo/io/io_context.hpp>

#include <liburing.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

#include <sys/eventfd.h>
#include <unistd.h>

namespace rondo {

namespace {

constexpr std::uint64_t doorbell_tag = 1;  // user_data of the doorbell read; ops use their address

[[noreturn]] void throw_setup_error(int err) {
  std::string why = std::strerror(err);
  std::string hint;
  if (err == ENOSYS) hint = " (the kernel has no io_uring)";
  if (err == EPERM || err == EACCES) {
    hint = " (io_uring is blocked: kernel.io_uring_disabled, or a seccomp profile such as "
           "Docker's default)";
  }
  throw std::system_error(err, std::system_category(),
                          "rondo::io_context: io_uring_setup failed: " + why + hint);
}

}  // namespace

struct io_context::impl {
  io_uring ring{};
  unsigned flags = 0;
  io_options opts;
  int doorbell = -1;
  std::uint64_t doorbell_buf = 0;
  // Owner-only FIFO of ready nodes.
  schedule_node* ready_head = nullptr;
  schedule_node* ready_tail = nullptr;
  detail::intrusive_mpsc_queue remote;
  // Written by the owner around its kernel sleep, read by posters (Dekker with their push).
  alignas(detail::cache_line_size) std::atomic<bool> sleeping{false};
  std::atomic<bool> stopped{false};
  std::atomic<int> stoppers{0};  // stop() calls in progress (see stop())
  std::atomic<int> posters{0};   // remote post() calls in progress (see post())

  explicit impl(io_options o) : opts(o) {
    if (o.entries == 0 || o.entries > 32768 || (o.entries & (o.entries - 1)) != 0) {
      throw std::invalid_argument("io_options::entries " + std::to_string(o.entries) +
                                  " must be a power of two in [1, 32768]");
    }
    if (o.idle_spin.count() < 0) {
      throw std::invalid_argument("io_options::idle_spin " + std::to_string(o.idle_spin.count()) +
                                  " us is negative");
    }
    const unsigned candidates[] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                                   IORING_SETUP_COOP_TASKRUN, 0U};
    int err = 0;
    for (unsigned f : candidates) {
      io_uring_params p{};
      p.flags = f;
      err = io_uring_queue_init_params(o.entries, &ring, &p);
      if (err == 0) {
        flags = f;
        break;
      }
      if (err != -EINVAL) break;  // only "flag unknown" is worth another try
    }
    if (err != 0) throw_setup_error(-err);
    doorbell = ::eventfd(0, EFD_CLOEXEC);
    if (doorbell < 0) {
      const int e = errno;
      io_uring_queue_exit(&ring);
      throw std::system_error(e, std::system_category(), "rondo::io_context: eventfd");
    }
    arm_doorbell();
  }

  ~impl() {
    io_uring_queue_exit(&ring);
    ::close(doorbell);
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

  // Moves finished I/O to the ready queue; returns how many completions it saw.
  std::size_t reap() {
    if ((flags & IORING_SETUP_DEFER_TASKRUN) != 0) (void)io_uring_get_events(&ring);
    std::size_t n = 0;
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(&ring, &cqe) == 0 && cqe != nullptr) {
      const std::uint64_t tag = io_uring_cqe_get_data64(cqe);
      const int res = cqe->res;
      io_uring_cqe_seen(&ring, cqe);
      ++n;
      if (tag == doorbell_tag) {
        arm_doorbell();
        continue;
      }
      auto* op = reinterpret_cast<io_operation*>(tag);
      complete(*op, res);
    }
    return n;
  }

  static void complete(io_operation& op, int res) noexcept;

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
    const auto until = std::chrono::steady_clock::now() + opts.idle_spin;
    for (std::uint32_t i = 0;; ++i) {
      if (!idle() || stopped.load(std::memory_order_relaxed)) return;
      if ((flags & IORING_SETUP_DEFER_TASKRUN) != 0 && (i & 63) == 63) {
        // Completions of a DEFER_TASKRUN ring appear only when the owner asks for them.
        (void)io_uring_get_events(&ring);
        if (io_uring_cq_ready(&ring) != 0) return;
      }
      if ((i & 63) == 63 && std::chrono::steady_clock::now() >= until) break;
      detail::cpu_relax();
    }
    // Relaxed store, then a fence: pairs with the fence in post() (Dekker): either the poster
    // sees `sleeping` and rings, or we see its node below.
    sleeping.store(true, std::memory_order_relaxed);
    detail::seq_cst_fence();
    // Acquire: pairs with the release store in stop().
    if (!remote.empty() || stopped.load(std::memory_order_acquire)) {
      sleeping.store(false, std::memory_order_relaxed);
      return;
    }
    flush();
    // flush() may have reaped (CQ overflow): then there is work and no reason to sleep.
    if (ready_head != nullptr || io_uring_cq_ready(&ring) != 0) {
      sleeping.store(false, std::memory_order_relaxed);
      return;
    }
    const int r = io_uring_submit_and_wait(&ring, 1);
    // Relaxed: only the owner reads its own flag back; posters re-check after their push.
    sleeping.store(false, std::memory_order_relaxed);
    if (r < 0 && r != -EINTR && r != -ETIME && r != -EBUSY) {
      throw std::system_error(-r, std::system_category(),
                              "rondo::io_context: io_uring_submit_and_wait");
    }
  }

  void ring_doorbell() noexcept {
    const std::uint64_t one = 1;
    // A failed write (the counter at its maximum) still leaves the eventfd readable.
    (void)!::write(doorbell, &one, sizeof one);
  }
};

void io_context::impl::complete(io_operation& op, int res) noexcept {
  // A timeout that expires reports -ETIME: for sleep_for that is success.
  op.res_ = (op.kind_ == detail::io_kind::sleep && res == -ETIME) ? 0 : res;
  op.node_.callback = nullptr;
  op.ctx_->impl_->push_ready(op.node_);
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

void io_context::post(schedule_node& n) noexcept {
  if (std::this_thread::get_id() == owner_) {
    impl_->push_ready(n);
    return;
  }
  // Once pushed, the node may run and its coroutine may stop and destroy this context before
  // we look at `sleeping`: the destructor waits for `posters` to drop to zero, and the
  // decrement is our last touch (as in stop()). acq_rel: ordered before the push.
  impl_->posters.fetch_add(1, std::memory_order_acq_rel);
  (void)impl_->remote.push(n);  // release CAS
  detail::seq_cst_fence();      // pairs with the fence in wait_for_work()
  // Relaxed: ordered by the fence above.
  if (impl_->sleeping.load(std::memory_order_relaxed)) impl_->ring_doorbell();
  // Release: pairs with the acquire load in ~io_context().
  impl_->posters.fetch_sub(1, std::memory_order_release);
}

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
  if (impl_->sleeping.load(std::memory_order_relaxed)) impl_->ring_doorbell();
  // Release: pairs with the acquire load in ~io_context().
  impl_->stoppers.fetch_sub(1, std::memory_order_release);
}

void io_context::restart() noexcept {
  // Relaxed: owner thread, before it runs again.
  impl_->stopped.store(false, std::memory_order_relaxed);
}

namespace {
void check_owner(const io_context& c, const char* what) {
  if (std::this_thread::get_id() != c.owner()) {
    throw std::logic_error(std::string("rondo::io_context::") + what +
                           "() called from a thread that does not own the context (construct "
                           "it on the thread that runs it)");
  }
}
}  // namespace

std::size_t io_context::run() {
  check_owner(*this, "run");
  std::size_t ran = 0;
  // Acquire: pairs with the release store in stop().
  while (!impl_->stopped.load(std::memory_order_acquire)) {
    const std::size_t r = impl_->round(*this);
    ran += r;
    if (r == 0) impl_->wait_for_work();
  }
  return ran;
}

std::size_t io_context::poll() {
  check_owner(*this, "poll");
  std::size_t ran = 0;
  for (;;) {
    const std::size_t r = impl_->round(*this);
    if (r == 0) return ran;
    ran += r;
  }
}

bool io_context::run_one() {
  check_owner(*this, "run_one");
  // Acquire: pairs with the release store in stop().
  while (!impl_->stopped.load(std::memory_order_acquire)) {
    (void)impl_->take_remote();
    if (impl_->ready_head == nullptr) {
      impl_->flush();
      (void)impl_->reap();
    }
    if (impl_->ready_head != nullptr) {
      schedule_node* n = impl_->ready_head;
      impl_->ready_head = n->next;
      if (impl_->ready_head == nullptr) impl_->ready_tail = nullptr;
      const scheduler_scope scope(*this);
      n->run();
      impl_->flush();
      return true;
    }
    impl_->wait_for_work();
  }
  return false;
}

unsigned io_context::setup_flags() const noexcept { return impl_->flags; }
int io_context::native_handle() const noexcept { return impl_->ring.ring_fd; }

void io_context::submit(io_operation& op) {
  io_uring_sqe* s = impl_->sqe();
  switch (op.kind_) {
    case detail::io_kind::read:
      io_uring_prep_read(s, op.fd_, op.buf_, static_cast<unsigned>(op.len_), op.offset_);
      break;
    case detail::io_kind::write:
      io_uring_prep_write(s, op.fd_, op.buf_, static_cast<unsigned>(op.len_), op.offset_);
      break;
    case detail::io_kind::fsync:
      io_uring_prep_fsync(s, op.fd_, 0);
      break;
    case detail::io_kind::fdatasync:
      io_uring_prep_fsync(s, op.fd_, IORING_FSYNC_DATASYNC);
      break;
    case detail::io_kind::sleep:
      io_uring_prep_timeout(s, &op.timeout_, 0, 0);
      break;
  }
  io_uring_sqe_set_data64(s, reinterpret_cast<std::uint64_t>(&op));
}

void io_operation::await_suspend(std::coroutine_handle<> h) {
  check_owner(*ctx_, name());
  node_.handle = h;
  ctx_->submit(*this);  // submitted with the loop's next batch (one io_uring_enter per round)
}

const char* io_operation::name() const noexcept {
  switch (kind_) {
    case detail::io_kind::read: return "read";
    case detail::io_kind::write: return "write";
    case detail::io_kind::fsync: return "fsync";
    case detail::io_kind::fdatasync: return "fdatasync";
    case detail::io_kind::sleep: return "sleep_for";
  }
  return "io";
}

}  // namespace rondo
