// io_context operations against real files and loopback sockets, success and failure:
// readv/writev, openat/close, accept (single and multishot), connect, recv, send, sleep_until,
// a timeout on any operation, cancellation through std::stop_token (one that wins, one that
// loses, one from another thread), and the backlog that keeps the completion queue from
// overflowing.
// (Above ~400 lines on purpose: one TEST_CASE per behaviour of one component, each standing
// alone; split, the component's specification would be scattered over files.)

#include "support.hpp"

#include <rondo/io/io_context.hpp>
#include <rondo/rondo.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <set>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace std::chrono_literals;
using rondo_test::detached;

namespace {

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}
std::span<std::byte> buffer_of(std::string& s) {
  return std::as_writable_bytes(std::span<char>(s.data(), s.size()));
}

// Runs `body` on the context until it finished.
void run_to_end(rondo::io_context& io, const std::function<rondo::task<>()>& body) {
  bool finished = false;
  std::exception_ptr error;
  auto run = [&]() -> detached {
    try {
      co_await body();
    } catch (...) {
      error = std::current_exception();
    }
    finished = true;
  };
  run();
  while (!finished) REQUIRE(io.run_one());
  if (error) std::rethrow_exception(error);
}

// A TCP listener on 127.0.0.1 at an ephemeral port.
struct listener {
  int fd = -1;
  sockaddr_in addr{};
  explicit listener(bool listening = true) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    if (listening) REQUIRE(::listen(fd, 64) == 0);
  }
  ~listener() { ::close(fd); }
  [[nodiscard]] const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&addr); }
};

int tcp_socket() {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(s >= 0);
  return s;
}

}  // namespace

TEST_CASE("io ops: openat, writev, readv, close on a file", "[io][deterministic]") {
  rondo::io_context io;
  char tmpl[] = "/tmp/rondo-io-ops-XXXXXX";
  const int made = ::mkstemp(tmpl);
  REQUIRE(made >= 0);
  ::close(made);
  const std::string path = tmpl;

  std::string a = "alpha-", b = "beta-", c = "gamma";
  std::string ra(6, '\0'), rb(5, '\0'), rc(5, '\0');
  std::vector<rondo::io_result> r;
  run_to_end(io, [&]() -> rondo::task<> {
    rondo::io_result opened = co_await io.openat(AT_FDCWD, path.c_str(), O_RDWR | O_TRUNC);
    r.push_back(opened);
    const int fd = opened.res;
    const ::iovec out[] = {{a.data(), a.size()}, {b.data(), b.size()}, {c.data(), c.size()}};
    r.push_back(co_await io.writev(fd, out, 0));
    const ::iovec in[] = {{ra.data(), ra.size()}, {rb.data(), rb.size()}, {rc.data(), rc.size()}};
    r.push_back(co_await io.readv(fd, in, 0));
    r.push_back(co_await io.close(fd));
    r.push_back(co_await io.close(fd));  // already closed
    r.push_back(co_await io.openat(AT_FDCWD, "/nonexistent/rondo", O_RDONLY));
  });
  ::unlink(path.c_str());
  REQUIRE(r.size() == 6);
  CHECK(r[0].ok());
  CHECK(r[0].value() > 2);
  CHECK(r[1].value() == 16);
  CHECK(r[2].value() == 16);
  CHECK(ra + rb + rc == "alpha-beta-gamma");
  CHECK(r[3].ok());
  CHECK(r[4].error() == std::error_code(EBADF, std::system_category()));
  CHECK(r[5].error() == std::error_code(ENOENT, std::system_category()));
  CHECK_THROWS_WITH(r[5].value(), Catch::Contains("openat(fd -100)"));
  CHECK_THROWS_WITH(r[4].value(), Catch::Contains("close(fd"));
}

TEST_CASE("io ops: accept, connect, send, recv on loopback", "[io][deterministic]") {
  rondo::io_context io;
  listener l;
  const int client = tcp_socket();
  std::string got_server(5, '\0'), got_client(4, '\0');
  rondo::io_result accepted, connected, sent, received, replied, echoed, eof;
  bool server_done = false;
  auto server = [&]() -> detached {
    accepted = co_await io.accept(l.fd);
    received = co_await io.recv(accepted.res, buffer_of(got_server));
    replied = co_await io.send(accepted.res, bytes_of("pong"));
    ::close(accepted.res);
    server_done = true;
  };
  server();
  run_to_end(io, [&]() -> rondo::task<> {
    connected = co_await io.connect(client, l.sa(), sizeof l.addr);
    sent = co_await io.send(client, bytes_of("ping!"));
    echoed = co_await io.recv(client, buffer_of(got_client), MSG_WAITALL);
    std::string rest(4, '\0');
    eof = co_await io.recv(client, buffer_of(rest));
  });
  ::close(client);
  CHECK(server_done);
  CHECK(connected.ok());
  CHECK(accepted.ok());
  CHECK(sent.value() == 5);
  CHECK(received.value() == 5);
  CHECK(got_server == "ping!");
  CHECK(replied.value() == 4);
  CHECK(echoed.value() == 4);
  CHECK(got_client == "pong");
  CHECK(eof.res == 0);  // the server closed: end of stream
}

TEST_CASE("io ops: a refused connect, a send to a closed peer, recv on a bad fd",
          "[io][deterministic]") {
  rondo::io_context io;
  listener not_listening(false);  // bound, never listening: connects are refused
  const int s = tcp_socket();
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  ::close(pair[1]);
  rondo::io_result refused, epipe, badf;
  run_to_end(io, [&]() -> rondo::task<> {
    refused = co_await io.connect(s, not_listening.sa(), sizeof not_listening.addr);
    epipe = co_await io.send(pair[0], bytes_of("x"));  // MSG_NOSIGNAL: a value, no SIGPIPE
    std::string buf(4, '\0');
    badf = co_await io.recv(-1, buffer_of(buf));
  });
  ::close(s);
  ::close(pair[0]);
  CHECK(refused.error() == std::error_code(ECONNREFUSED, std::system_category()));
  CHECK_THROWS_WITH(refused.value(), Catch::Contains("connect(fd"));
  CHECK(epipe.error() == std::error_code(EPIPE, std::system_category()));
  CHECK(badf.error() == std::error_code(EBADF, std::system_category()));
}

TEST_CASE("io ops: a timeout that fires and one that does not", "[io][deterministic]") {
  rondo::io_context io;
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  std::string buf(3, '\0');
  rondo::io_result fired, in_time;
  std::chrono::steady_clock::duration took{};
  run_to_end(io, [&]() -> rondo::task<> {
    const auto t0 = std::chrono::steady_clock::now();
    fired = co_await io.recv(pair[0], buffer_of(buf)).timeout(5ms);  // nothing to read
    took = std::chrono::steady_clock::now() - t0;
    REQUIRE(::write(pair[1], "abc", 3) == 3);
    in_time = co_await io.recv(pair[0], buffer_of(buf)).timeout(10s);
  });
  ::close(pair[0]);
  ::close(pair[1]);
  CHECK(fired.timed_out());
  CHECK(fired.error() == std::error_code(ETIME, std::system_category()));
  CHECK(took >= 5ms);
  CHECK(in_time.value() == 3);
  CHECK(buf == "abc");
  CHECK(io.in_flight() == 0);  // the unfired timeout's completion was waited for too
}

TEST_CASE("io ops: sleep_until, and a deadline already past", "[io][deterministic]") {
  rondo::io_context io;
  rondo::io_result later, past;
  std::chrono::steady_clock::time_point woke{};
  const auto deadline = std::chrono::steady_clock::now() + 3ms;
  run_to_end(io, [&]() -> rondo::task<> {
    later = co_await io.sleep_until(deadline);
    woke = std::chrono::steady_clock::now();
    past = co_await io.sleep_until(deadline - 1s);
  });
  CHECK(later.res == 0);
  CHECK(woke >= deadline);
  CHECK(past.res == 0);
}

TEST_CASE("io ops: cancellation through a stop token wins, loses, or comes first",
          "[io][deterministic]") {
  rondo::io_context io;
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  std::string buf(1, '\0');

  SECTION("wins: a recv with nothing to read is cancelled") {
    std::stop_source stop;
    rondo::io_result r;
    bool canceller_ran = false;
    auto canceller = [&]() -> detached {
      (void)co_await io.sleep_for(2ms);
      stop.request_stop();
      canceller_ran = true;
    };
    canceller();
    run_to_end(io, [&]() -> rondo::task<> {
      r = co_await io.recv(pair[0], buffer_of(buf)).cancel_on(stop.get_token());
    });
    CHECK(canceller_ran);
    CHECK(r.cancelled());
    CHECK(r.error() == std::error_code(ECANCELED, std::system_category()));
  }
  SECTION("loses: stop requested after the completion, before the coroutine resumed") {
    std::stop_source stop;
    rondo::io_result first, second;
    REQUIRE(::write(pair[1], "z", 1) == 1);
    // Both complete in one reap; `first` resumes first and requests stop, too late for
    // `second`, whose result stands.
    auto a = [&]() -> detached {
      first = co_await io.nop();
      stop.request_stop();
    };
    bool finished = false;
    auto b = [&]() -> detached {
      second = co_await io.recv(pair[0], buffer_of(buf)).cancel_on(stop.get_token());
      finished = true;
    };
    a();
    b();
    while (!finished) REQUIRE(io.run_one());
    CHECK(first.ok());
    CHECK(second.value() == 1);
    CHECK(buf == "z");
  }
  SECTION("comes first: a token already stopped submits nothing") {
    std::stop_source stop;
    stop.request_stop();
    rondo::io_result r;
    run_to_end(io, [&]() -> rondo::task<> {
      r = co_await io.recv(pair[0], buffer_of(buf)).cancel_on(stop.get_token());
    });
    CHECK(r.cancelled());
    CHECK(io.in_flight() == 0);
  }
  SECTION("from another thread, while the context sleeps in the kernel") {
    std::stop_source stop;
    rondo::io_result r;
    std::thread other([&] {
      std::this_thread::sleep_for(5ms);  // not a synchronisation: the result is the same either way
      stop.request_stop();
    });
    run_to_end(io, [&]() -> rondo::task<> {
      r = co_await io.recv(pair[0], buffer_of(buf)).cancel_on(stop.get_token()).timeout(10s);
    });
    other.join();
    CHECK(r.cancelled());
  }
  ::close(pair[0]);
  ::close(pair[1]);
  CHECK(io.in_flight() == 0);
}

TEST_CASE("io ops: cancellations racing completions from another thread (stress)",
          "[io][stress]") {
  rondo::io_context io;
  constexpr int rounds = RONDO_TSAN ? 300 : 3000;
  int ok = 0, cancelled = 0;
  for (int i = 0; i < rounds; ++i) {
    std::stop_source stop;
    std::atomic<bool> go{false};
    std::thread other([&] {
      // Acquire: pairs with the release store below (the operation is about to be awaited).
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      stop.request_stop();
    });
    rondo::io_result r;
    run_to_end(io, [&]() -> rondo::task<> {
      // Release: pairs with the acquire load above.
      go.store(true, std::memory_order_release);
      r = co_await io.sleep_for(std::chrono::microseconds(i % 50)).cancel_on(stop.get_token());
    });
    other.join();
    REQUIRE((r.res == 0 || r.cancelled()));
    (r.res == 0 ? ok : cancelled)++;
    REQUIRE(io.in_flight() == 0);
  }
  CHECK(ok + cancelled == rounds);
  CHECK(io.poll() == 0);  // no stray cancel node left behind
}

TEST_CASE("io ops: more operations than max_in_flight wait in the backlog, none is lost",
          "[io][deterministic]") {
  rondo::io_context io(rondo::io_options{
      .entries = 2, .idle_spin = std::chrono::microseconds(0), .max_in_flight = 2, .msg_ring_doorbell = true, .idle_spin_with_file_io = false});
  constexpr int n = 64;
  int done = 0;
  std::size_t max_backlog = 0;
  std::stop_source stop;
  rondo::io_result cancelled_in_backlog;
  auto one = [&](int i) -> detached {
    rondo::io_result r = co_await io.sleep_for(std::chrono::microseconds(100 + i));
    REQUIRE(r.res == 0);
    r = co_await io.nop();
    REQUIRE(r.res == 0);
    ++done;
  };
  for (int i = 0; i < n; ++i) one(i);
  auto victim = [&]() -> detached {
    cancelled_in_backlog = co_await io.sleep_for(1h).cancel_on(stop.get_token());
    ++done;
  };
  victim();
  max_backlog = io.backlog();
  stop.request_stop();  // the victim is still in the backlog: it completes without the kernel
  while (done < n + 1) {
    REQUIRE(io.run_one());
    max_backlog = std::max(max_backlog, io.backlog());
    REQUIRE(io.in_flight() <= 2);
  }
  CHECK(max_backlog > 0);
  CHECK(cancelled_in_backlog.cancelled());
  CHECK(io.backlog() == 0);
}

TEST_CASE("io ops: multishot accept hands out every connection once", "[io][deterministic]") {
  rondo::io_context io;
  listener l;
  constexpr int clients = 8;
  std::vector<int> client_fds;
  std::vector<rondo::io_result> got, connects;
  {
    auto acc = io.accept_multishot(l.fd);
    bool finished = false;
    auto server = [&]() -> detached {
      for (int i = 0; i < clients; ++i) got.push_back(co_await acc.next());
      finished = true;
    };
    server();
    auto connector = [&]() -> detached {
      for (int i = 0; i < clients; ++i) {
        const int s = tcp_socket();
        client_fds.push_back(s);
        connects.push_back(co_await io.connect(s, l.sa(), sizeof l.addr));
      }
    };
    connector();
    while (!finished) REQUIRE(io.run_one());
    // One more connection arrives while nobody asks: destroying the acceptor closes it.
    const int late = tcp_socket();
    client_fds.push_back(late);
    REQUIRE(::connect(late, l.sa(), sizeof l.addr) == 0);
    (void)io.poll();
  }  // acceptor destroyed while armed: cancelled, the rest is closed by the context
  for (int i = 0; i < 20 && io.in_flight() != 0; ++i) {
    (void)io.poll();
    std::this_thread::sleep_for(1ms);  // the cancel's completion comes back asynchronously
  }
  CHECK(io.in_flight() == 0);
  for (const auto& r : connects) CHECK(r.error().message() == "Success");
  std::set<int> fds;
  for (const auto& r : got) {
    REQUIRE(r.ok());
    fds.insert(r.res);
  }
  CHECK(fds.size() == static_cast<std::size_t>(clients));
  for (int fd : fds) ::close(fd);
  for (int fd : client_fds) ::close(fd);
}

TEST_CASE("io ops: cancelling a multishot acceptor ends a waiting next()", "[io][deterministic]") {
  rondo::io_context io;
  listener l;
  auto acc = io.accept_multishot(l.fd);
  rondo::io_result first, waiting, later;
  bool finished = false;
  const int client = tcp_socket();
  auto server = [&]() -> detached {
    first = co_await acc.next();
    waiting = co_await acc.next();  // nobody else connects: ended by cancel()
    later = co_await acc.next();    // after cancel(): at once
    finished = true;
  };
  server();
  auto canceller = [&]() -> detached {
    const rondo::io_result c = co_await io.connect(client, l.sa(), sizeof l.addr);
    INFO(c.error().message());
    REQUIRE(c.ok());
    (void)co_await io.sleep_for(2ms);
    acc.cancel();
  };
  canceller();
  while (!finished) REQUIRE(io.run_one());
  CHECK(first.ok());
  CHECK(waiting.cancelled());
  CHECK(later.cancelled());
  ::close(first.res);
  ::close(client);
}

TEST_CASE("io ops: completions that overflow the completion queue are not lost",
          "[io][deterministic]") {
  // 2 SQ entries, 8 CQ entries, no cap: 200 timeouts expire together and overflow the CQ; the
  // kernel keeps the overflow (IORING_FEAT_NODROP) and the loop reaps it.
  rondo::io_context io(rondo::io_options{
      .entries = 2, .idle_spin = std::chrono::microseconds(0), .max_in_flight = 0, .msg_ring_doorbell = true, .idle_spin_with_file_io = false});
  constexpr int n = 200;
  int done = 0;
  auto one = [&]() -> detached {
    const rondo::io_result r = co_await io.sleep_for(2ms);
    REQUIRE(r.res == 0);
    ++done;
  };
  for (int i = 0; i < n; ++i) one();
  CHECK(io.backlog() == 0);  // nothing held back: no cap
  while (done < n) REQUIRE(io.run_one());
  CHECK(io.in_flight() == 0);
}
