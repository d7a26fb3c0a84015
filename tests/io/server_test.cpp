// rondo::server: bad clients are isolated and closed with their reason, the accept loop
// survives EMFILE, the connection limit is a setting. Server and clients are coroutines on one
// io_context driven by this thread; every wait has a generous deadline (a hang fails, it does
// not block the suite).
#include <rondo/io/server.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr std::size_t frame = 8;  // the test protocol: 8-byte requests, each echoed back

int listen_any(sockaddr_in& addr) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(fd >= 0);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd, 64) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  return fd;
}

// Echoes every whole 8-byte request (reserving its reply's room first).
rondo::task<> echo_handler(rondo::connection& c) {
  std::array<std::byte, 256> buf;
  std::size_t have = 0;
  for (;;) {
    const rondo::io_result r = co_await c.receive(std::span(buf).subspan(have), have > 0);
    if (!c.received(r)) co_return;
    have += static_cast<std::size_t>(r.res);
    std::size_t used = 0;
    for (; have - used >= frame; used += frame) {
      if (!co_await c.reserve_outbox(frame)) co_return;
      (void)c.send(std::span<const std::byte>(buf.data() + used, frame));
    }
    std::memmove(buf.data(), buf.data() + used, have - used);
    have -= used;
  }
}

struct fixture {
  rondo::io_context io;
  sockaddr_in addr{};
  int listen_fd = listen_any(addr);
  std::vector<std::string> log;
  std::unique_ptr<rondo::server> srv;
  bool server_done = false;

  bool closing = false;

  explicit fixture(rondo::server_limits l, rondo::server::handler h = echo_handler) {
    srv = std::make_unique<rondo::server>(
        io, listen_fd, l, std::move(h), [this](std::string_view line) { log.emplace_back(line); });
    io.spawn(run());
    // Keeps run_one() from sleeping past a deadline of drive() when nothing else is due.
    io.spawn([](rondo::io_context& ctx, bool& stop) -> rondo::task<> {
      while (!stop) (void)co_await ctx.sleep_for(5ms);
    }(io, closing));
  }
  ~fixture() {
    srv->stop();
    closing = true;
    // Every task (server, connections, clients, ticker) ends: each has a bounded wait.
    (void)drive([&] { return io.spawned() == 0; }, 30s);
    ::close(listen_fd);
  }
  std::string run_error;  // what run() threw (it must not: its errors are values here)
  rondo::task<> run() {
    try {
      co_await srv->run();
    } catch (const std::exception& e) {
      run_error = e.what();
    }
    server_done = true;
  }
  // Runs the context until done() (true) or the deadline (false).
  bool drive(const std::function<bool()>& done, steady::duration limit) {
    const auto deadline = steady::now() + limit;
    while (!done()) {
      if (steady::now() > deadline) return false;
      (void)io.run_one();
    }
    return true;
  }
  bool logged(std::string_view what) const {
    for (const std::string& l : log) {
      if (l.find(what) != std::string::npos) return true;
    }
    return false;
  }
};

int client_socket(int rcvbuf = 0) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  return fd;
}

// Connects, then sends one request and waits for its echo `rounds` times; counts the echoes.
rondo::task<> good_client(rondo::io_context& io, sockaddr_in addr, int rounds, int& echoed,
                          bool& done) {
  const int fd = client_socket();
  if ((co_await io.connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr)).ok()) {
    for (int i = 0; i < rounds; ++i) {
      std::array<std::byte, frame> req{}, back{};
      req[0] = static_cast<std::byte>(i);
      if (!(co_await io.send(fd, req)).ok()) break;
      const rondo::io_result r = co_await io.recv(fd, back, MSG_WAITALL).timeout(5s);
      if (r.res != static_cast<int>(frame) || back != req) break;
      ++echoed;
    }
  }
  ::close(fd);
  done = true;
}

// Sends requests and never reads an echo, until the server hangs up.
rondo::task<> non_reader(rondo::io_context& io, sockaddr_in addr, bool& hung_up) {
  const int fd = client_socket(4096);
  if ((co_await io.connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr)).ok()) {
    std::array<std::byte, 64 * frame> burst{};
    for (const auto end = steady::now() + 20s; steady::now() < end;) {
      const rondo::io_result r = co_await io.send(fd, burst).timeout(100ms);
      if (r.timed_out()) continue;  // the server stopped reading us: good, stay stuck
      if (!r.ok()) break;           // EPIPE / ECONNRESET: the server closed us
    }
  }
  ::close(fd);
  hung_up = true;
}

// Waits for the server to close the connection (recv 0 or a reset), or 10 s of silence.
rondo::task<> wait_hang_up(rondo::io_context& io, int fd, bool& hung_up) {
  std::array<std::byte, 64> sink;
  for (int i = 0; i < 1000; ++i) {
    const rondo::io_result r = co_await io.recv(fd, sink).timeout(10s);
    if (r.res <= 0) break;
  }
  hung_up = true;
}

}  // namespace

TEST_CASE("server_limits: a bad setting throws naming it", "[server][deterministic]") {
  rondo::server_limits l;
  l.max_connections = 0;
  CHECK_THROWS_WITH(l.validate(), Catch::Contains("max_connections 0"));
  l = {};
  l.outbox_bytes = 8;
  CHECK_THROWS_WITH(l.validate(), Catch::Contains("outbox_bytes 8"));
  l = {};
  l.idle_timeout = 0ms;
  CHECK_THROWS_WITH(l.validate(), Catch::Contains("idle_timeout 0 ms"));
  l = {};
  l.accept_backoff_max = 1ms;
  CHECK_THROWS_WITH(l.validate(), Catch::Contains("accept_backoff_max 1 ms"));
  CHECK(fmt::format("{}", rondo::close_reason::slow_reader) == "slow reader");
}

TEST_CASE(
    "server: a client that never reads is closed as a slow reader; others keep getting "
    "replies",
    "[server][io]") {
  rondo::server_limits l;
  l.outbox_bytes = 4096;
  l.outbox_stall_timeout = 300ms;
  fixture f(l);
  bool non_reader_gone = false, good_done = false;
  int echoed = 0;
  f.io.spawn(non_reader(f.io, f.addr, non_reader_gone));
  // The non-reader's outbox fills first; then a good client runs its rounds beside it. With one
  // shared writer (the old order server), its echoes would wait behind the stuck send.
  REQUIRE(f.drive([&] { return f.srv->stats().accepted == 1; }, 10s));
  f.io.spawn(good_client(f.io, f.addr, 200, echoed, good_done));
  REQUIRE(f.drive([&] { return good_done && non_reader_gone; }, 20s));
  CHECK(echoed == 200);
  CHECK(f.srv->stats().closed_for(rondo::close_reason::slow_reader) == 1);
  CHECK(f.logged("slow reader"));
}

TEST_CASE("server: idle, half-open and slowloris connections are closed with their reason",
          "[server][io]") {
  rondo::server_limits l;
  l.idle_timeout = 200ms;
  l.read_timeout = 300ms;
  fixture f(l);
  // Idle (a half-open peer looks the same to the server: nothing arrives).
  const int idle = client_socket();
  REQUIRE(::connect(idle, reinterpret_cast<sockaddr*>(&f.addr), sizeof f.addr) == 0);
  // Slowloris: 3 bytes of a frame, then a byte every 50 ms, never 8.
  const int slow = client_socket();
  REQUIRE(::connect(slow, reinterpret_cast<sockaddr*>(&f.addr), sizeof f.addr) == 0);
  bool idle_closed = false, slow_closed = false;
  f.io.spawn(wait_hang_up(f.io, idle, idle_closed));
  f.io.spawn(wait_hang_up(f.io, slow, slow_closed));
  f.io.spawn([](rondo::io_context& io, int fd, bool& closed) -> rondo::task<> {
    const std::array<std::byte, 3> start{};
    (void)co_await io.send(fd, start);
    for (int i = 0; i < 4 && !closed; ++i) {  // 3 + 4 = 7 bytes: one short of a frame
      (void)co_await io.sleep_for(50ms);
      (void)co_await io.send(fd, std::span(start).first(1));
    }
  }(f.io, slow, slow_closed));
  REQUIRE(f.drive([&] { return idle_closed && slow_closed; }, 10s));
  const rondo::server_stats st = f.srv->stats();
  CHECK(st.closed_for(rondo::close_reason::idle_timeout) == 1);
  CHECK(st.closed_for(rondo::close_reason::read_timeout) == 1);
  CHECK(f.logged("idle timeout"));
  CHECK(f.logged("read timeout"));
  ::close(idle);
  ::close(slow);
}

TEST_CASE("server: max_connections is a setting; one more is refused and logged", "[server][io]") {
  rondo::server_limits l;
  l.max_connections = 2;
  fixture f(l);
  std::array<int, 3> fds{};
  for (int& fd : fds) {
    fd = client_socket();
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&f.addr), sizeof f.addr) == 0);
  }
  bool third_closed = false;
  f.io.spawn(wait_hang_up(f.io, fds[2], third_closed));
  REQUIRE(f.drive([&] { return third_closed; }, 10s));
  CHECK(f.srv->stats().refused == 1);
  CHECK(f.srv->stats().open == 2);
  CHECK(f.logged("max_connections"));
  for (int fd : fds) ::close(fd);
  // The slots come back: a new client is served.
  REQUIRE(f.drive([&] { return f.srv->stats().open == 0; }, 10s));
  bool done = false;
  int echoed = 0;
  f.io.spawn(good_client(f.io, f.addr, 3, echoed, done));
  REQUIRE(f.drive([&] { return done; }, 10s));
  CHECK(echoed == 3);
}

TEST_CASE("server: EMFILE makes the accept loop back off, and it recovers by itself",
          "[server][io]") {
  rondo::server_limits l;
  l.accept_backoff_min = 5ms;
  l.accept_backoff_max = 40ms;
  fixture f(l);
  const int client = client_socket();  // made before the table fills
  // Fills every descriptor below a lowered RLIMIT_NOFILE; gives them and the limit back when
  // it goes out of scope, even when a REQUIRE throws (later tests need descriptors).
  struct descriptor_hog {
    rlimit old{};
    std::vector<int> fds;
    explicit descriptor_hog(int any_fd) {
      REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
      rlimit low = old;
      low.rlim_cur = 256;
      REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
      for (int fd; (fd = ::dup(any_fd)) >= 0;) fds.push_back(fd);
    }
    void release() {
      for (int fd : fds) ::close(fd);
      fds.clear();
      (void)::setrlimit(RLIMIT_NOFILE, &old);
    }
    ~descriptor_hog() { release(); }
    descriptor_hog(const descriptor_hog&) = delete;
    descriptor_hog& operator=(const descriptor_hog&) = delete;
  };
  descriptor_hog hog(f.listen_fd);
  REQUIRE(errno == EMFILE);
  REQUIRE(::connect(client, reinterpret_cast<sockaddr*>(&f.addr), sizeof f.addr) == 0);
  const bool backed_off = f.drive([&] { return f.srv->stats().accept_backoffs >= 3; }, 10s);
  hog.release();
  REQUIRE(backed_off);
  CHECK(f.logged("EMFILE"));
  // The pending connection is accepted once descriptors are free, and served.
  REQUIRE(f.drive([&] { return f.srv->stats().accepted == 1; }, 10s));
  CHECK(f.logged("accept recovered"));
  std::array<std::byte, frame> req{}, back{};
  req[1] = std::byte{42};
  REQUIRE(::send(client, req.data(), req.size(), 0) == static_cast<ssize_t>(frame));
  bool got = false;
  f.io.spawn(
      [](rondo::io_context& io, int fd, std::array<std::byte, frame>& b, bool& g) -> rondo::task<> {
        (void)co_await io.recv(fd, b, MSG_WAITALL).timeout(5s);
        g = true;
      }(f.io, client, back, got));
  REQUIRE(f.drive([&] { return got; }, 10s));
  CHECK(back == req);
  CHECK(f.run_error.empty());
  ::close(client);
}

// Replies 100 ms after each request, from another coroutine (as a disruptor stage would).
rondo::task<> late_reply(rondo::io_context& io, rondo::server& srv, rondo::connection_id id) {
  (void)co_await io.sleep_for(100ms);
  const std::array<std::byte, frame> reply{std::byte{7}};
  if (rondo::connection* c = srv.find(id)) (void)c->send(reply);
}

TEST_CASE("server: stop() drains: replies still owed are sent before the connection closes",
          "[server][io]") {
  rondo::server* srv = nullptr;
  int requests = 0;
  fixture f(rondo::server_limits{}, [&](rondo::connection& c) -> rondo::task<> {
    std::array<std::byte, frame> buf;
    for (;;) {
      const rondo::io_result r = co_await c.receive(buf, false);
      if (!c.received(r)) co_return;
      if (!co_await c.reserve_outbox(frame)) co_return;
      ++requests;
      rondo::current_io_context().spawn(late_reply(rondo::current_io_context(), *srv, c.id()));
    }
  });
  srv = f.srv.get();
  const int c = client_socket();
  REQUIRE(::connect(c, reinterpret_cast<sockaddr*>(&f.addr), sizeof f.addr) == 0);
  std::array<std::byte, frame> req{};
  REQUIRE(::send(c, req.data(), req.size(), 0) == static_cast<ssize_t>(frame));
  REQUIRE(f.drive([&] { return requests == 1; }, 10s));
  f.srv->stop();  // the reply is still 100 ms away: the connection must wait for it
  REQUIRE(f.drive([&] { return f.server_done; }, 10s));
  std::array<std::byte, 2 * frame> back{};
  std::size_t got = 0;
  for (ssize_t n; (n = ::recv(c, back.data() + got, back.size() - got, 0)) > 0;) {
    got += static_cast<std::size_t>(n);
  }
  CHECK(got == frame);  // the reply, then the end of the stream
  CHECK(back[0] == std::byte{7});
  CHECK(f.srv->stats().closed_for(rondo::close_reason::server_stopping) == 1);
  ::close(c);
}
