// The multishot accept: multishot_acceptor and its next(), and the context's side of it
// (arming, completions, acceptors destroyed while the kernel still accepts).

#include "context_impl.hpp"

#include <liburing.h>

#include <cerrno>
#include <coroutine>
#include <stdexcept>

#include <unistd.h>

namespace rondo {

void io_context::impl::arm_multishot(detail::multishot_state& st) {
  io_uring_sqe* s = sqe();
  io_uring_prep_multishot_accept(s, st.fd, nullptr, nullptr, static_cast<int>(st.flags));
  io_uring_sqe_set_data64(s, tagged(&st, op_multishot));
  st.armed = true;
  ++in_flight;
}

void io_context::impl::on_multishot(detail::multishot_state& st, int res, unsigned cflags) {
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

void io_context::impl::orphan(detail::multishot_state& st) noexcept {
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

void io_context::impl::unlink_orphan(detail::multishot_state& st) noexcept {
  if (st.prev_orphan != nullptr) st.prev_orphan->next_orphan = st.next_orphan; else orphans = st.next_orphan;
  if (st.next_orphan != nullptr) st.next_orphan->prev_orphan = st.prev_orphan;
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
