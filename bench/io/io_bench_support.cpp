// io_bench's shared helpers (io_bench_support.hpp): error texts and raw rings set up like
// rondo's.
#include "io_bench_support.hpp"

#include <array>
#include <cerrno>
#include <cstring>

namespace rondo_io_bench {

std::string errno_text(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

int init_ring(io_uring& ring, unsigned entries) {
  const std::array<unsigned, 4> candidates = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, IORING_SETUP_COOP_TASKRUN, 0U};
  int err = -EINVAL;
  for (unsigned f : candidates) {
    io_uring_params p{};
    p.flags = f;
    err = io_uring_queue_init_params(entries, &ring, &p);
    if (err != -EINVAL) return err;
  }
  return err;
}

io_uring_sqe* next_sqe(io_uring& ring) {
  io_uring_sqe* s = io_uring_get_sqe(&ring);
  while (s == nullptr) {
    (void)io_uring_submit(&ring);
    s = io_uring_get_sqe(&ring);
  }
  return s;
}

int submit_one(io_uring& ring) {
  for (;;) {
    const int r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR) return r;
    io_uring_cqe* cqe = nullptr;
    if (io_uring_peek_cqe(&ring, &cqe) == 0 && cqe != nullptr) {
      const int res = cqe->res;
      io_uring_cqe_seen(&ring, cqe);
      return res;
    }
  }
}

}  // namespace rondo_io_bench
