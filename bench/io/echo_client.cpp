// echo_client.cpp: the TCP echo benchmark's client (echo.hpp), 16 sockets driven through an
// io_uring of its own, closed loop, checking every reply byte for byte.
#include "echo.hpp"

#include <liburing.h>

#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <unistd.h>

namespace rondo_io_bench {
namespace {

struct echo_peer {
  int fd = -1;
  std::uint64_t counter = 0;
  std::size_t got = 0;  // reply bytes received so far
  message out{};
  message in{};
};

class echo_client {
 public:
  explicit echo_client(std::uint16_t port) : port_(port) {}

  echo_client_report run() {
    echo_client_report rep;
    rep.error = connect_all();
    if (rep.error.empty()) {
      const int err = init_ring(ring_, 64);
      if (err != 0) {
        rep.error = errno_text("client io_uring_queue_init", -err);
      } else {
        rep = drive();
        io_uring_queue_exit(&ring_);
      }
    }
    // Closing is the shutdown signal: every server connection reads 0 and ends.
    for (echo_peer& p : peers_) {
      if (p.fd >= 0) ::close(p.fd);
      p.fd = -1;
    }
    return rep;
  }

 private:
  std::string connect_all() {
    for (echo_peer& p : peers_) {
      p.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (p.fd < 0) return errno_text("client socket", errno);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(port_);
      if (::connect(p.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        return errno_text("client connect", errno);
      }
      set_nodelay(p.fd);
    }
    return {};
  }

  // Sends the next message of peer i and arms the recv of its reply.
  void start(std::size_t i) {
    echo_peer& p = peers_[i];
    ++p.counter;
    for (std::size_t k = 0; k < message_size; ++k) {
      p.out[k] = static_cast<std::byte>((p.counter + k * 7 + i) & 0xff);
    }
    std::memcpy(p.out.data(), &p.counter, sizeof p.counter);
    p.got = 0;
    io_uring_sqe* s = next_sqe(ring_);
    io_uring_prep_send(s, p.fd, p.out.data(), message_size, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, i * 2 + tag_send);
    arm_recv(i);
    ++outstanding_;
  }
  void arm_recv(std::size_t i) {
    echo_peer& p = peers_[i];
    io_uring_sqe* s = next_sqe(ring_);
    io_uring_prep_recv(s, p.fd, p.in.data() + p.got, message_size - p.got, 0);
    io_uring_sqe_set_data64(s, i * 2 + tag_recv);
  }

  // Handles one completion; returns an error text, empty when fine.
  std::string complete(std::uint64_t data, int res, bool keep_going) {
    const std::size_t i = data / 2;
    echo_peer& p = peers_[i];
    if ((data & 1) == tag_send) {
      if (res != static_cast<int>(message_size)) {
        return res < 0 ? errno_text("client send", -res) : std::string("client send: short send");
      }
      return {};
    }
    if (res <= 0) {
      return res < 0 ? errno_text("client recv", -res) : std::string("server closed a connection");
    }
    p.got += static_cast<std::size_t>(res);
    if (p.got < message_size) {
      arm_recv(i);
      return {};
    }
    if (p.in != p.out) return "an echo differs from the message sent";
    --outstanding_;
    ++completed_;
    if (keep_going) start(i);
    return {};
  }

  echo_client_report drive() {
    echo_client_report rep;
    for (std::size_t i = 0; i < peers_.size(); ++i) start(i);
    enum class phase { warmup, measured, draining } ph = phase::warmup;
    const auto begin = clock::now();
    clock::time_point t0 = begin;
    std::int64_t completed0 = 0;
    clock::time_point last_progress = begin;
    std::array<io_uring_cqe*, cqe_batch> cqes{};
    for (;;) {
      const auto now = clock::now();
      if (ph == phase::warmup && now - begin >= echo_warmup) {
        ph = phase::measured;
        t0 = now;
        completed0 = completed_;
      } else if (ph == phase::measured && now - t0 >= echo_measured) {
        ph = phase::draining;
        rep.seconds = rondo_bench::seconds_between(t0, now);
        rep.messages = completed_ - completed0;
      }
      if (ph == phase::draining && outstanding_ == 0) return rep;
      // Submits and runs the ring's task work (DEFER_TASKRUN: completions appear only then),
      // never sleeping: the client spins, so the server's speed is what is measured.
      const int r = io_uring_submit_and_get_events(&ring_);
      if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
        rep.error = errno_text("client io_uring_submit_and_get_events", -r);
        return rep;
      }
      const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes.data(), cqe_batch);
      if (n == 0) {
        if (now - last_progress > echo_stall) {
          rep.error = "client: no completion for 5 s (the server stalled)";
          return rep;
        }
        rondo_bench::spin_pause();
        continue;
      }
      last_progress = now;
      for (unsigned k = 0; k < n; ++k) {
        const std::string e = complete(io_uring_cqe_get_data64(cqes[k]), cqes[k]->res,
                                       ph != phase::draining);
        if (!e.empty()) {
          rep.error = e;
          return rep;
        }
      }
      io_uring_cq_advance(&ring_, n);
    }
  }

  std::uint16_t port_;
  io_uring ring_{};
  std::array<echo_peer, echo_connections> peers_{};
  int outstanding_ = 0;  // messages whose reply is not complete
  std::int64_t completed_ = 0;
};

}  // namespace

echo_client_report run_echo_client(std::uint16_t port) {
  echo_client client(port);
  return client.run();
}

}  // namespace rondo_io_bench
