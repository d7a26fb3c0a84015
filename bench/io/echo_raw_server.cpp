// echo_raw_server.cpp: the TCP echo benchmark's baseline server, written straight against
// liburing (echo.hpp): one ring, per-connection recv then send, completions reaped in batches.
#include "echo.hpp"

#include <liburing.h>

#include <cerrno>
#include <cstddef>

#include <unistd.h>

namespace rondo_io_bench {
namespace {

struct raw_conn {
  int fd = -1;
  std::size_t len = 0;   // bytes received, to echo
  std::size_t sent = 0;  // of them, sent so far
  message buf{};
};

void raw_arm_recv(io_uring& ring, raw_conn& c, std::uint64_t i) {
  io_uring_sqe* s = next_sqe(ring);
  io_uring_prep_recv(s, c.fd, c.buf.data(), message_size, 0);
  io_uring_sqe_set_data64(s, i * 2 + tag_recv);
}
void raw_arm_send(io_uring& ring, raw_conn& c, std::uint64_t i) {
  io_uring_sqe* s = next_sqe(ring);
  io_uring_prep_send(s, c.fd, c.buf.data() + c.sent, c.len - c.sent, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, i * 2 + tag_send);
}

}  // namespace

void raw_echo_server(int listen_fd, echo_server_report& rep) {
  std::array<raw_conn, echo_connections> conns{};
  int live = 0;
  for (raw_conn& c : conns) {
    c.fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c.fd < 0) {
      rep.error = errno_text("raw accept", errno);
      break;
    }
    set_nodelay(c.fd);
    ++live;
  }
  io_uring ring{};
  const int err = rep.error.empty() ? init_ring(ring, 256) : 0;
  if (err != 0) rep.error = errno_text("raw io_uring_queue_init", -err);
  if (!rep.error.empty()) {
    for (raw_conn& c : conns) {
      if (c.fd >= 0) ::close(c.fd);
    }
    return;
  }
  for (std::size_t i = 0; i < conns.size(); ++i) raw_arm_recv(ring, conns[i], i);
  std::array<io_uring_cqe*, cqe_batch> cqes{};
  while (live > 0) {
    const int r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR) {
      rep.error = errno_text("raw io_uring_submit_and_wait", -r);
      break;
    }
    const unsigned n = io_uring_peek_batch_cqe(&ring, cqes.data(), cqe_batch);
    for (unsigned k = 0; k < n; ++k) {
      const std::uint64_t data = io_uring_cqe_get_data64(cqes[k]);
      const int res = cqes[k]->res;
      const std::size_t i = data / 2;
      raw_conn& c = conns[i];
      if ((data & 1) == tag_recv) {
        if (res <= 0) {  // 0: the client closed; < 0: reset
          if (res < 0 && res != -ECONNRESET) rep.error = errno_text("raw recv", -res);
          ::close(c.fd);
          c.fd = -1;
          --live;
          continue;
        }
        c.len = static_cast<std::size_t>(res);
        c.sent = 0;
        raw_arm_send(ring, c, i);
      } else {
        if (res <= 0) {
          ::close(c.fd);
          c.fd = -1;
          --live;
          continue;
        }
        c.sent += static_cast<std::size_t>(res);
        if (c.sent < c.len) {
          raw_arm_send(ring, c, i);
        } else {
          raw_arm_recv(ring, c, i);
        }
      }
    }
    io_uring_cq_advance(&ring, n);
  }
  for (raw_conn& c : conns) {
    if (c.fd >= 0) ::close(c.fd);
  }
  io_uring_queue_exit(&ring);
}

}  // namespace rondo_io_bench
