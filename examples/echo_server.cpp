// echo_server: embedding rondo in a server that already has its own event loop. The loop below
// owns an epoll set (here with a timerfd of its own that prints a tick) and drives an
// io_context through wait_handle() / prepare_wait() / poll(). On that context, tasks started
// with io.spawn() (the context owns them until they return) accept connections (multishot
// accept), echo what they read, and publish one record per message into a disruptor with
// co_await publisher.reserve(1); a coroutine stage on the same context keeps per-connection
// statistics. A client thread checks every echo.
//
//   your epoll loop ──poll()──▶ io_context ──▶ accept loop ──▶ session per connection
//                                                             recv → send → co_await reserve(1)
//                                                                              │
//                                                      "stats" stage (coroutine) ◀┘
#include <rondo/rondo.hpp>

#include <fmt/format.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <string>
#include <thread>
#include <vector>

struct message {
  int fd = -1;
  std::uint32_t bytes = 0;
};

// One connection; started with io.spawn(), which owns it until it returns.
rondo::task<> session(rondo::io_context& io, int fd, rondo::coro_publisher<message> publisher,
                      int& open) {
  ++open;
  std::byte buf[512];
  for (;;) {
    const rondo::io_result r = co_await io.recv(fd, buf);
    if (r.res <= 0) break;  // the peer closed (0) or failed
    const auto n = static_cast<std::size_t>(r.res);
    if (!(co_await io.send(fd, std::span<const std::byte>(buf, n))).ok()) break;
    auto c = co_await publisher.reserve(1);  // suspends only if the ring is full
    c[0] = message{fd, static_cast<std::uint32_t>(n)};
    c.publish();
  }
  (void)co_await io.close(fd);
  --open;
}

rondo::task<> accept_loop(rondo::io_context& io, rondo::multishot_acceptor& acc,
                          rondo::publisher<message>& pub, int& open) {
  for (;;) {
    const rondo::io_result r = co_await acc.next();
    if (!r.ok()) break;  // cancelled at shutdown
    io.spawn(session(io, r.res, pub, open));
  }
}

// The client: `conns` connections, `rounds` messages each, every echo checked.
bool run_client(sockaddr_in addr, int conns, int rounds) {
  std::vector<int> fds;
  for (int i = 0; i < conns; ++i) {
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return false;
    fds.push_back(s);
  }
  bool ok = true;
  for (int r = 0; r < rounds && ok; ++r) {
    for (int i = 0; i < conns && ok; ++i) {
      const std::string msg = fmt::format("hello {} #{}", i, r);
      ok = ::send(fds[static_cast<std::size_t>(i)], msg.data(), msg.size(), 0) ==
           static_cast<ssize_t>(msg.size());
      std::string back(msg.size(), '\0');
      ok = ok && ::recv(fds[static_cast<std::size_t>(i)], back.data(), back.size(), MSG_WAITALL) ==
                     static_cast<ssize_t>(back.size()) &&
           back == msg;
    }
  }
  for (int s : fds) ::close(s);
  return ok;
}

int main() try {
  constexpr int conns = 8;
  constexpr int rounds = 500;
  rondo::io_context io;  // this thread owns it and drives it from its own loop

  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 64) != 0 ||
      ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("listen");
    return 1;
  }

  std::map<int, std::uint64_t> bytes_by_fd;  // the stage's state (only the stage touches it)
  std::uint64_t messages = 0;
  auto d = rondo::disruptor<message>::builder()
               .capacity(256)
               .wait(rondo::spin_then_suspend{})
               .stage("stats",
                      [&](message& m, std::int64_t, bool) {
                        bytes_by_fd[m.fd] += m.bytes;
                        ++messages;
                      })
               .on(io)  // a coroutine stage on the same context
               .build();
  d.start();

  int open = 0;
  auto acc = io.accept_multishot(lfd);
  io.spawn(accept_loop(io, acc, d.publisher(), open));

  std::atomic<int> client_result{-1};  // -1 running, 0 failed, 1 ok
  rondo::schedule_node wake_loop;      // posted by the client when it is done: a no-op
  wake_loop.callback = [](rondo::schedule_node&) noexcept {};
  std::thread client([&] {
    // Release: pairs with the acquire load in the loop below.
    client_result.store(run_client(addr, conns, rounds) ? 1 : 0, std::memory_order_release);
    io.post(wake_loop);  // the loop may be asleep in epoll_wait: wake it to see the result
  });

  // ---- The "existing" event loop: epoll over its own timerfd and rondo's wait handle.
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  const int tick = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  itimerspec every{{0, 100'000'000}, {0, 100'000'000}};
  ::timerfd_settime(tick, 0, &every, nullptr);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = tick;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, tick, &ev);
  ev.data.fd = io.wait_handle();
  ::epoll_ctl(ep, EPOLL_CTL_ADD, io.wait_handle(), &ev);
  int ticks = 0;
  bool shutting_down = false;
  while (io.spawned() != 0) {  // the accept loop and every session have returned
    (void)io.poll();  // run what is ready, submit, reap: never blocks
    // Acquire: pairs with the release store in the client thread.
    if (!shutting_down && client_result.load(std::memory_order_acquire) >= 0 && open == 0) {
      acc.cancel();  // ends the accept loop
      shutting_down = true;
      continue;
    }
    if (!io.prepare_wait()) continue;  // work arrived meanwhile
    epoll_event out[4];
    const int n = ::epoll_wait(ep, out, 4, 1000);
    io.finish_wait();
    for (int i = 0; i < n; ++i) {
      if (out[i].data.fd != tick) continue;
      std::uint64_t expirations = 0;
      (void)!::read(tick, &expirations, sizeof expirations);
      ++ticks;
    }
  }
  client.join();
  // The stats stage runs on this loop's context: keep polling while the drain completes.
  while (!d.drain_for(std::chrono::milliseconds(0))) (void)io.poll();
  ::close(tick);
  ::close(ep);
  ::close(lfd);

  std::uint64_t total_bytes = 0;
  for (const auto& [fd, b] : bytes_by_fd) total_bytes += b;
  const bool ok = client_result.load(std::memory_order_acquire) == 1 &&
                  messages >= static_cast<std::uint64_t>(conns * rounds);
  fmt::print("echo_server: {} connections x {} echoes checked by the client; the stats stage "
             "saw {} messages, {} bytes; the loop's own timer ticked {} times: {}\n",
             conns, rounds, messages, total_bytes, ticks, ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  // io_uring refused (seccomp, kernel.io_uring_disabled, an old kernel): say so, exit 2.
  fmt::print(stderr, "echo_server: {}\n", e.what());
  return 2;
}
