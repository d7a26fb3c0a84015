// The io_context's I/O operations: each one's SQE (and its linked timeout), the backlog beyond
// io_options::max_in_flight, completion and cancellation (see include/rondo/io/operations.hpp).

#include "context_impl.hpp"

#include <liburing.h>

#include <atomic>
#include <cerrno>
#include <coroutine>

#include <sys/socket.h>
#include <sys/uio.h>

namespace rondo {

namespace detail {
void io_canceller::operator()() const noexcept {
  // Runs on the thread that requested stop. Release: pairs with the acquire load in
  // on_main(), which must know a cancel node is on its way before it lets the operation go.
  op->cancel_posted_.store(true, std::memory_order_release);
  op->ctx_->post(op->cancel_node_);
}
}  // namespace detail

// ---- Submission

void io_context::impl::start(io_operation& op) {
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

std::size_t io_context::impl::needed(const io_operation& op) noexcept {
  return op.req_.timeout_ns >= 0 ? 2 : 1;
}

// Moves backlog operations into the kernel while there is room (after completions).
void io_context::impl::drain_backlog() {
  while (backlog_head != nullptr && in_flight + needed(*backlog_head) <= in_flight_cap) {
    io_operation& op = *backlog_head;
    backlog_head = op.backlog_next_;
    if (backlog_head == nullptr) backlog_tail = nullptr;
    --backlog_size;
    op.in_backlog_ = false;
    prep(op);
  }
}

bool io_context::impl::remove_from_backlog(io_operation& op) noexcept {
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
bool io_context::impl::uses_kernel_worker(detail::io_kind k) noexcept {
  return k == detail::io_kind::write || k == detail::io_kind::writev ||
         k == detail::io_kind::fsync || k == detail::io_kind::fdatasync ||
         k == detail::io_kind::openat;
}

void io_context::impl::prep(io_operation& op) {
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

void io_context::impl::on_main(io_operation& op, int res) noexcept {
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

void io_context::impl::on_timeout(io_operation& op, int res) noexcept {
  --in_flight;
  if (res == -ETIME) op.timed_out_ = true;  // it fired (else -ECANCELED / -ENOENT: too late)
  --op.pending_;
  finish_if_done(op);
}

void io_context::impl::on_cancel(io_operation& op) noexcept {
  --in_flight;
  --op.pending_;
  finish_if_done(op);
}

void io_context::impl::finish_if_done(io_operation& op) noexcept {
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
void io_context::impl::cancel(io_operation& op) {
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

void io_context::start(io_operation& op) { impl_->start(op); }
void io_context::cancel(io_operation& op) { impl_->cancel(op); }

std::size_t io_context::in_flight() const noexcept { return impl_->in_flight; }
std::size_t io_context::backlog() const noexcept { return impl_->backlog_size; }

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

}  // namespace rondo
