// echo_bench.cpp: io_bench's TCP echo rows, rondo's echo server (run by its io_context, by a
// foreign epoll loop, by Asio) against the same server written on liburing. Registered in
// io_bench.cpp; the client and the raw server are in echo_client.cpp and echo_raw_server.cpp.
//
// 2. TCP echo on loopback: 16 connections, 64-byte messages, one server thread (CPU b) and one
//    client thread (CPU a, the benchmark thread). The client drives all 16 sockets through an
//    io_uring of its own, closed loop: each connection has one message outstanding; a reply is
//    checked byte for byte and the next message goes out. It never sleeps (it polls its ring
//    with io_uring_submit_and_get_events), so its own kernel wake-ups do not set the pace.
//    Both sides share 2 CPUs with the kernel's loopback TCP path, which does most of the work.
//    0.2 s warm-up, 1 s measured.
//
//      client ring ── send 64 B ──▶ server: recv ─▶ send ── 64 B ──▶ client: check, send next
//
//    echo_raw_liburing  the server written straight against liburing: one ring (same setup
//                       flags as rondo's), per-connection recv then send, a submit_and_wait(1)
//                       loop reaping completions in batches
//    echo_rondo         one io_context; one coroutine per connection: co_await recv, co_await
//                       send, until recv returns 0. /polling: default idle_spin (50 us), the
//                       context polls its queues and ring before it sleeps; /sleeping:
//                       idle_spin = 0, it sleeps almost at once, as the raw loop does
//    echo_rondo_foreign_epoll  the same coroutines on an io_context that a plain epoll loop
//                       drives, as a server with its own event loop embeds rondo: poll(), then
//                       prepare_wait(), epoll_wait on wait_handle() (100 ms timeout, counted:
//                       a wake-up lost would show there), finish_wait(). vs_run_polling and
//                       vs_run_sleeping: its rate over echo_rondo/polling's and /sleeping's
//                       from this run (they run first). epoll_waits: epoll_wait calls in the
//                       whole run (warm-up and drain included), epoll_timeouts: of them, ended
//                       by the timeout.
//    echo_rondo_asio    the same coroutines on an io_context that a boost::asio::io_context
//                       drives (rondo::asio_bridge::driver, rondo/asio.hpp): Asio's run() waits
//                       on wait_handle() through a posix::stream_descriptor, the driver polls
//                       on readiness. vs_foreign_epoll: its rate over echo_rondo_foreign_epoll's
//                       from this run (the native embedding; the target is >= 1/1.1 =
//                       0.909, i.e. a cost <= 1.1x), vs_run_sleeping as above. driver_polls,
//                       driver_waits: the driver's poll() calls and handle waits in the run.
//                       (Built when Boost's CMake package is found: RONDO_BENCH_ASIO.)
//    msgs_per_s, and rondo/raw on the rondo rows (same-run ratio; the raw row runs first).
//    Shutdown: the client closes its sockets, every server recv returns 0, the connection
//    ends; the last one stops the context (or ends the raw loop) and the thread is joined.

#include "echo.hpp"
#include "io_bench_rows.hpp"

#include <rondo/coro/task.hpp>
#include <rondo/io/io_context.hpp>

#if RONDO_BENCH_ASIO
#include <rondo/asio.hpp>

#include <boost/asio/io_context.hpp>
#endif

#include <benchmark/benchmark.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <thread>
#include <utility>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace rondo_io_bench {
namespace {

// Same-run baselines (benchmarks run one after another on the main thread, in registration
// order): a baseline row stores its rate here and a later row reports its ratio to it.
double raw_echo_msgs_per_s = 0;
double rondo_echo_polling_msgs_per_s = 0;   // echo_rondo/polling
double rondo_echo_sleeping_msgs_per_s = 0;  // echo_rondo/sleeping
double rondo_echo_foreign_epoll_msgs_per_s = 0;  // echo_rondo_foreign_epoll

// A listening socket on 127.0.0.1 and an ephemeral port.
struct listener {
  int fd = -1;
  std::uint16_t port = 0;
  std::string error;

  listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      error = errno_text("socket", errno);
      return;
    }
    const int one = 1;
    (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      error = errno_text("bind/listen", errno);
      return;
    }
    port = ntohs(a.sin_port);
  }
  ~listener() {
    if (fd >= 0) ::close(fd);
  }
  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;
};

// ---- The rondo server: one io_context, one coroutine per connection.

// The last connection to end stops the context.
struct rondo_echo_state {
  rondo::io_context* io = nullptr;
  int live = 0;
  echo_server_report* report = nullptr;

  void connection_ended() {
    if (--live == 0) io->stop();
  }
};

detached rondo_echo_connection(rondo_echo_state& st, int fd) {
  rondo::io_context& io = *st.io;
  message buf{};
  bool open = true;
  while (open) {
    const rondo::io_result r = co_await io.recv(fd, buf);
    if (r.res <= 0) {
      if (r.res < 0 && r.res != -ECONNRESET) st.report->error = r.error().message();
      break;
    }
    const auto n = static_cast<std::size_t>(r.res);
    std::size_t sent = 0;
    while (sent < n) {
      const rondo::io_result s =
          co_await io.send(fd, std::span<const std::byte>(buf).subspan(sent, n - sent));
      if (s.res <= 0) {
        open = false;
        break;
      }
      sent += static_cast<std::size_t>(s.res);
    }
  }
  ::close(fd);
  st.connection_ended();
}

detached rondo_echo_accept(rondo_echo_state& st, int listen_fd) {
  for (int i = 0; i < echo_connections; ++i) {
    const rondo::io_result r = co_await st.io->accept(listen_fd);
    if (!r.ok()) {
      st.report->error = "rondo accept: " + r.error().message();
      for (int k = i; k < echo_connections; ++k) st.connection_ended();
      co_return;
    }
    set_nodelay(r.res);
    rondo_echo_connection(st, r.res);
  }
}

void rondo_echo_server(int listen_fd, echo_server_report& rep, std::chrono::microseconds idle_spin) {
  try {
    rondo::io_options opts;
    opts.idle_spin = idle_spin;
    rondo::io_context io(opts);
    rondo_echo_state st;
    st.io = &io;
    st.live = echo_connections;
    st.report = &rep;
    rondo_echo_accept(st, listen_fd);
    io.run();
  } catch (const std::exception& e) {
    rep.error = e.what();
  }
}

// The same server on an io_context driven by a foreign epoll loop (docs/embedding.md, way 3).
// wait_handle() comes first: on a DEFER_TASKRUN ring it replaces the ring, which it can do only
// before any I/O. The last connection's stop() ends the loop.
void rondo_echo_server_epoll(int listen_fd, echo_server_report& rep) {
  try {
    rondo::io_context io;
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
      rep.error = errno_text("epoll_create1", errno);
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, io.wait_handle(), &ev) != 0) {
      rep.error = errno_text("epoll_ctl", errno);
      ::close(ep);
      return;
    }
    rondo_echo_state st;
    st.io = &io;
    st.live = echo_connections;
    st.report = &rep;
    rondo_echo_accept(st, listen_fd);
    rep.epoll_waits = 0;
    std::array<epoll_event, 8> out{};
    while (!io.stopped()) {
      (void)io.poll();
      if (io.stopped() || !io.prepare_wait()) continue;
      const int n = ::epoll_wait(ep, out.data(), static_cast<int>(out.size()), 100);
      const int err = errno;
      io.finish_wait();
      ++rep.epoll_waits;
      if (n == 0) ++rep.epoll_timeouts;
      if (n < 0 && err != EINTR) {  // EINTR: a completion's task work interrupted the wait
        rep.error = errno_text("epoll_wait", err);
        break;
      }
    }
    ::close(ep);
  } catch (const std::exception& e) {
    rep.error = e.what();
  }
}

#if RONDO_BENCH_ASIO
// The same server on an io_context that an asio::io_context drives (rondo/asio.hpp): the
// driver comes first (it calls wait_handle(), before any I/O); the last connection's stop()
// makes it let go, and Asio's run() returns with nothing else to do.
void rondo_echo_server_asio(int listen_fd, echo_server_report& rep) {
  try {
    boost::asio::io_context ax(1);
    rondo::io_context io;
    rondo::asio_bridge::driver drv(ax, io);
    rondo_echo_state st;
    st.io = &io;
    st.live = echo_connections;
    st.report = &rep;
    rondo_echo_accept(st, listen_fd);
    ax.run();
    rep.driver_polls = static_cast<std::int64_t>(drv.polls());
    rep.driver_waits = static_cast<std::int64_t>(drv.waits());
  } catch (const std::exception& e) {
    rep.error = e.what();
  }
}
#endif

// One echo run per iteration: server(listen_fd, report) on CPU b, the client here on CPU a.
// Returns messages per second (0 on failure, reported through SkipWithError).
template <class Server>
double echo_bench(benchmark::State& state, Server server) {
  const std::pair<int, int> cpus = rondo_bench::pair_cpus();
  const rondo_bench::scoped_pin pin(cpus.first);
  double rate = 0;
  for (auto _ : state) {
    listener l;
    if (!l.error.empty()) {
      state.SkipWithError(l.error.c_str());
      return 0;
    }
    echo_server_report srep;
    const int lfd = l.fd;
    std::thread t = rondo_bench::start_thread(cpus.second, [server, lfd, &srep] { server(lfd, srep); });
    const echo_client_report crep = run_echo_client(l.port);
    // Wakes an accept still waiting (a client that failed before connecting all 16): it fails
    // with EINVAL and the server winds down. Harmless once all were accepted.
    (void)::shutdown(l.fd, SHUT_RDWR);
    t.join();
    if (!crep.error.empty() || !srep.error.empty()) {
      const std::string e = crep.error.empty() ? "server: " + srep.error : crep.error;
      state.SkipWithError(e.c_str());
      return 0;
    }
    state.SetIterationTime(crep.seconds);
    rate = static_cast<double>(crep.messages) / crep.seconds;
    state.counters["msgs_per_s"] = rate;
    if (srep.epoll_waits >= 0) {
      state.counters["epoll_waits"] = static_cast<double>(srep.epoll_waits);
      state.counters["epoll_timeouts"] = static_cast<double>(srep.epoll_timeouts);
    }
    if (srep.driver_polls >= 0) {
      state.counters["driver_polls"] = static_cast<double>(srep.driver_polls);
      state.counters["driver_waits"] = static_cast<double>(srep.driver_waits);
    }
    state.SetItemsProcessed(crep.messages);
  }
  return rate;
}

}  // namespace

void echo_raw_liburing(benchmark::State& state) {
  raw_echo_msgs_per_s = echo_bench(state, raw_echo_server);
}

void echo_rondo(benchmark::State& state, std::chrono::microseconds idle_spin) {
  const double rate = echo_bench(state, [idle_spin](int lfd, echo_server_report& rep) {
    rondo_echo_server(lfd, rep, idle_spin);
  });
  if (rate > 0 && raw_echo_msgs_per_s > 0) {
    state.counters["rondo/raw"] = rate / raw_echo_msgs_per_s;
  }
  (idle_spin.count() > 0 ? rondo_echo_polling_msgs_per_s : rondo_echo_sleeping_msgs_per_s) = rate;
}

void echo_rondo_foreign_epoll(benchmark::State& state) {
  const double rate = echo_bench(state, rondo_echo_server_epoll);
  rondo_echo_foreign_epoll_msgs_per_s = rate;
  if (rate > 0 && raw_echo_msgs_per_s > 0) {
    state.counters["rondo/raw"] = rate / raw_echo_msgs_per_s;
  }
  if (rate > 0 && rondo_echo_polling_msgs_per_s > 0) {
    state.counters["vs_run_polling"] = rate / rondo_echo_polling_msgs_per_s;
  }
  if (rate > 0 && rondo_echo_sleeping_msgs_per_s > 0) {
    state.counters["vs_run_sleeping"] = rate / rondo_echo_sleeping_msgs_per_s;
  }
}

#if RONDO_BENCH_ASIO
void echo_rondo_asio(benchmark::State& state) {
  const double rate = echo_bench(state, rondo_echo_server_asio);
  if (rate > 0 && raw_echo_msgs_per_s > 0) {
    state.counters["rondo/raw"] = rate / raw_echo_msgs_per_s;
  }
  if (rate > 0 && rondo_echo_foreign_epoll_msgs_per_s > 0) {
    state.counters["vs_foreign_epoll"] = rate / rondo_echo_foreign_epoll_msgs_per_s;
  }
  if (rate > 0 && rondo_echo_sleeping_msgs_per_s > 0) {
    state.counters["vs_run_sleeping"] = rate / rondo_echo_sleeping_msgs_per_s;
  }
}
#endif

}  // namespace rondo_io_bench
