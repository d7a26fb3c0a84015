// asio_server: rondo inside a Boost.Asio server. The server is plain Asio — an acceptor and one
// C++20 coroutine per connection (co_spawn, use_awaitable) — run by asio::io_context::run().
// A rondo::asio_bridge::driver makes that same loop drive a rondo io_context, on which a
// two-stage rondo pipeline runs: "journal", a coroutine stage that writes every batch of
// requests to a file with rondo's io_uring I/O, then "reply", which computes each answer. A
// session publishes its request with co_await async_reserve(publisher, 1, use_awaitable),
// waits with co_await async_wait_for_position(d, "reply", seq, use_awaitable) until the last
// stage has passed it, and writes the reply.
//
//   asio::io_context::run() ── driver ──▶ rondo::io_context::poll()
//     session (Asio coroutine, one per connection)
//       read line ─▶ async_reserve ─▶ publish ─▶ async_wait_for_position("reply") ─▶ write
//                                         │
//                     "journal" (io.write, batch) ─▶ "reply" (answer into the session)
//
// By default it tests itself on loopback: a client thread opens 64 connections; first every
// connection sends 50 requests one at a time, each reply checked; then every connection sends
// 8 requests at once and, with them in flight, the client asks the server to shut down. The
// server stops accepting, drains the pipeline (sessions waiting to publish get rondo::closed;
// every request already published is journaled and answered), closes the connections and
// returns from run(). The client checks that each connection's replies are, in order, the
// answers to a prefix of its requests; the server checks that every published request was
// answered and journaled. --connections N and --rounds R change the load.
// (Above ~400 lines: an example that tests itself end to end; the checks belong beside the code.)
#include <rondo/asio.hpp>
#include <rondo/rondo.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <fmt/format.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <list>
#include <stdexcept>
#include <system_error>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr std::size_t record_size = 32;  // one journal line per request

// What a session owns and the "reply" stage writes: the answer to its one request in flight.
struct session_state {
  std::string reply;
};

struct request {
  session_state* session = nullptr;
  std::uint64_t conn = 0;
  std::uint64_t index = 0;
  std::uint64_t value = 0;
};

// The answer: anything the client can recompute.
std::uint64_t answer(std::uint64_t value) { return value * value % 1'000'003; }

struct server {
  rondo::io_context& io;
  rondo::disruptor<request>& d;
  tcp::acceptor acceptor;
  std::list<tcp::socket*> sockets;  // open sessions' sockets, closed at shutdown
  int live = 0;                     // sessions running
  bool drained = false;             // shutdown drained the pipeline
  std::uint64_t published = 0;  // requests published by sessions
  std::uint64_t answered = 0;   // replies written
  std::string failure;          // the first unexpected error
};

// "req <conn> <index> <value>" -> request; false when malformed.
bool parse(std::string_view line, request& r) {
  std::uint64_t f[3] = {};
  if (!line.starts_with("req ")) return false;
  line.remove_prefix(4);
  for (std::uint64_t& x : f) {
    const auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), x);
    if (ec != std::errc()) return false;
    line.remove_prefix(static_cast<std::size_t>(p - line.data()));
    if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  }
  r.conn = f[0];
  r.index = f[1];
  r.value = f[2];
  return true;
}

asio::awaitable<void> session(tcp::socket sock, server& srv) {
  ++srv.live;
  auto it = srv.sockets.insert(srv.sockets.end(), &sock);
  session_state st;
  std::string in;
  try {
    for (;;) {
      const std::size_t n =
          co_await asio::async_read_until(sock, asio::dynamic_buffer(in), '\n', asio::use_awaitable);
      request r;
      if (!parse(std::string_view(in).substr(0, n - 1), r)) {
        co_await asio::async_write(sock, asio::buffer(std::string_view("error: bad request\n")),
                                   asio::use_awaitable);
        break;
      }
      in.erase(0, n);
      r.session = &st;
      // Suspends this Asio coroutine only while the ring is full; rondo::closed at shutdown.
      rondo::claim<request> c =
          co_await rondo::asio_bridge::async_reserve(srv.d.coro_publisher(), 1, asio::use_awaitable);
      const std::int64_t seq = c.first();
      c[0] = r;
      c.publish();
      ++srv.published;
      // The last stage has passed our event: st.reply is written (and the request journaled).
      (void)co_await rondo::asio_bridge::async_wait_for_position(srv.d, "reply", seq,
                                                                 asio::use_awaitable);
      co_await asio::async_write(sock, asio::buffer(st.reply), asio::use_awaitable);
      ++srv.answered;
    }
  } catch (const rondo::closed&) {
    // Shutdown: the pipeline no longer takes requests.
  } catch (const boost::system::system_error& e) {
    // The peer closed (eof), or shutdown closed the socket (operation_aborted).
    if (e.code() != asio::error::eof && e.code() != asio::error::operation_aborted &&
        srv.failure.empty()) {
      srv.failure = e.what();
    }
  }
  srv.sockets.erase(it);
  boost::system::error_code ignored;
  (void)sock.close(ignored);
  // The last session after the drain: the driver lets go, and run() returns once nothing else
  // is pending in Asio.
  if (--srv.live == 0 && srv.drained) srv.io.stop();
}

asio::awaitable<void> accept_loop(server& srv) {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket s =
        co_await srv.acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;  // operation_aborted: shutdown closed the acceptor
    s.set_option(tcp::no_delay(true));
    asio::co_spawn(srv.acceptor.get_executor(), session(std::move(s), srv), asio::detached);
  }
}

// Stop accepting, drain the pipeline (every published request is answered), then end the
// sessions' reads; the last session to return lets the driver go.
asio::awaitable<void> shutdown(server& srv) {
  boost::system::error_code ignored;
  (void)srv.acceptor.close(ignored);
  co_await rondo::asio_bridge::async_drain(srv.d, asio::use_awaitable);
  // Drained: no session can publish. Each one writes the reply it may still owe, then its
  // next read ends (eof from the shutdown below, or rondo::closed for a request already read).
  srv.drained = true;
  for (tcp::socket* s : srv.sockets) (void)s->shutdown(tcp::socket::shutdown_receive, ignored);
  if (srv.live == 0) srv.io.stop();
}

// ---- The client (a plain thread, blocking sockets).

std::string request_line(int conn, std::uint64_t index) {
  return fmt::format("req {} {} {}\n", conn, index, index * 7919 + static_cast<std::uint64_t>(conn));
}
std::string reply_line(int conn, std::uint64_t index) {
  return fmt::format("ok {} {} {}\n", conn, index,
                     answer(index * 7919 + static_cast<std::uint64_t>(conn)));
}

// Reads one '\n'-terminated line ("" at eof or error).
std::string read_line(int fd, std::string& pending) {
  for (;;) {
    const auto nl = pending.find('\n');
    if (nl != std::string::npos) {
      std::string line = pending.substr(0, nl + 1);
      pending.erase(0, nl + 1);
      return line;
    }
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return "";
    pending.append(buf, static_cast<std::size_t>(n));
  }
}

bool send_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

struct client_report {
  std::string error;
  std::uint64_t checked = 0;     // replies checked
  std::uint64_t in_flight = 0;   // phase-2 requests sent
  std::uint64_t answered_late = 0;  // of them, answered
};

client_report run_client(std::uint16_t port, int conns, int rounds, int burst,
                         const std::function<void()>& ask_shutdown) {
  client_report rep;
  std::vector<int> fds;
  std::vector<std::string> pending(static_cast<std::size_t>(conns));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  for (int i = 0; i < conns; ++i) {
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      rep.error = fmt::format("client: connect: {}", std::strerror(errno));
      if (s >= 0) ::close(s);
      break;
    }
    fds.push_back(s);
  }
  // Phase 1: every connection has one request outstanding; replies checked in order.
  for (int r = 0; r < rounds && rep.error.empty(); ++r) {
    for (int i = 0; i < static_cast<int>(fds.size()) && rep.error.empty(); ++i) {
      if (!send_all(fds[static_cast<std::size_t>(i)], request_line(i, static_cast<std::uint64_t>(r)))) {
        rep.error = "client: send failed";
      }
    }
    for (int i = 0; i < static_cast<int>(fds.size()) && rep.error.empty(); ++i) {
      const auto k = static_cast<std::size_t>(i);
      const std::string got = read_line(fds[k], pending[k]);
      const std::string want = reply_line(i, static_cast<std::uint64_t>(r));
      if (got != want) {
        rep.error = fmt::format("client: connection {} round {}: got '{}', want '{}'", i, r,
                                got.substr(0, got.size() - (got.empty() ? 0 : 1)),
                                want.substr(0, want.size() - 1));
      }
      ++rep.checked;
    }
  }
  // Phase 2: `burst` requests per connection at once, then shutdown with them in flight.
  if (rep.error.empty()) {
    for (int i = 0; i < static_cast<int>(fds.size()); ++i) {
      std::string lines;
      for (int b = 0; b < burst; ++b) {
        lines += request_line(i, static_cast<std::uint64_t>(rounds + b));
      }
      if (!send_all(fds[static_cast<std::size_t>(i)], lines)) rep.error = "client: send failed";
      rep.in_flight += static_cast<std::uint64_t>(burst);
    }
  }
  ask_shutdown();
  // Each connection: replies to a prefix of the burst, in order, then eof.
  for (int i = 0; i < static_cast<int>(fds.size()) && rep.error.empty(); ++i) {
    const auto k = static_cast<std::size_t>(i);
    for (int b = 0;; ++b) {
      const std::string got = read_line(fds[k], pending[k]);
      if (got.empty()) break;  // eof: the server closed the connection
      const std::string want = reply_line(i, static_cast<std::uint64_t>(rounds + b));
      if (b >= burst || got != want) {
        rep.error = fmt::format("client: connection {} after shutdown: got '{}', want '{}'", i,
                                got.substr(0, got.size() - 1),
                                b >= burst ? "eof" : want.substr(0, want.size() - 1));
        break;
      }
      ++rep.checked;
      ++rep.answered_late;
    }
  }
  for (int s : fds) ::close(s);
  return rep;
}

int arg(int argc, char** argv, std::string_view name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (name == argv[i]) {
      const int v = std::atoi(argv[i + 1]);
      if (v <= 0) {
        throw std::invalid_argument(fmt::format("{} {}: must be a positive number", name, argv[i + 1]));
      }
      return v;
    }
  }
  return fallback;
}

}  // namespace

static int run(int argc, char** argv) {
  const int conns = arg(argc, argv, "--connections", 64);
  const int rounds = arg(argc, argv, "--rounds", 50);
  constexpr int burst = 8;

  asio::io_context ax(1);
  rondo::io_context io;
  rondo::asio_bridge::driver drv(ax, io);  // before any rondo I/O

  char path[] = "/tmp/rondo-asio-server-XXXXXX";
  const int journal_fd = ::mkstemp(path);
  if (journal_fd < 0) {
    std::perror("mkstemp");
    return 1;
  }
  ::unlink(path);

  auto d = rondo::disruptor<request>::builder()
               .capacity(256)
               .producers(rondo::producer_type::multi)  // one producer per session
               .wait(rondo::spin_then_suspend{})
               .stage("journal",
                      [&io, journal_fd](rondo::batch<request> b) -> rondo::task<> {
                        // One write per batch, at the batch's place in the file.
                        std::string text;
                        for (const request& r : b) {
                          std::string line = fmt::format("{} {} {}", r.conn, r.index, r.value);
                          line.resize(record_size - 1, ' ');
                          text += line;
                          text += '\n';
                        }
                        const auto bytes = std::as_bytes(std::span(text));
                        const auto offset = static_cast<std::uint64_t>(b.first()) * record_size;
                        if ((co_await io.write(journal_fd, bytes, offset)).value() != bytes.size()) {
                          throw std::runtime_error("journal: short write");
                        }
                      })
               .on(io)
               .stage("reply",
                      [](request& r, std::int64_t, bool) {
                        r.session->reply =
                            fmt::format("ok {} {} {}\n", r.conn, r.index, answer(r.value));
                      },
                      rondo::after("journal"))
               .on(io)
               .build();
  d.start();

  server srv{io, d, tcp::acceptor(ax, tcp::endpoint(asio::ip::address_v4::loopback(), 0)), {}, 0,
             false, 0, 0, {}};
  const std::uint16_t port = srv.acceptor.local_endpoint().port();
  asio::co_spawn(ax, accept_loop(srv), asio::detached);

  client_report crep;
  std::thread client([&] {
    crep = run_client(port, conns, rounds, burst, [&] {
      // Any thread may post to the Asio context: the shutdown starts there.
      asio::co_spawn(ax, shutdown(srv), asio::detached);
    });
  });
  ax.run();  // Asio's loop, driving rondo's context too, until shutdown lets it go
  client.join();

  struct stat st{};
  const bool journal_ok = ::fstat(journal_fd, &st) == 0 &&
                          static_cast<std::uint64_t>(st.st_size) == srv.published * record_size;
  ::close(journal_fd);
  std::string error = crep.error.empty() ? srv.failure : crep.error;
  if (error.empty() && srv.answered != srv.published) {
    error = fmt::format("server: {} requests published, {} answered", srv.published, srv.answered);
  }
  if (error.empty() && !journal_ok) {
    error = fmt::format("server: the journal holds {} bytes, want {}", st.st_size,
                        srv.published * record_size);
  }
  const std::uint64_t expected = static_cast<std::uint64_t>(conns) * static_cast<std::uint64_t>(rounds);
  if (error.empty() && crep.checked < expected) {
    error = fmt::format("client: {} replies checked, want at least {}", crep.checked, expected);
  }
  fmt::print("asio_server: {} connections x {} requests answered in order through a rondo "
             "pipeline (journal, reply) driven by asio::io_context; shutdown with {} requests "
             "in flight: {} answered before the drain, the rest refused; {} requests journaled; "
             "driver polls {}: {}\n",
             conns, rounds, crep.in_flight, crep.answered_late, srv.published, drv.polls(),
             error.empty() ? "ok" : "FAILED: " + error);
  return error.empty() ? 0 : 1;
}

int main(int argc, char** argv) {
  try {
    rondo::io_context probe;
  } catch (const std::system_error& e) {
    // CTest reads 77 as skipped (examples/CMakeLists.txt).
    fmt::print(stderr, "asio_server: io_uring is unavailable here ({}): skipped\n", e.what());
    return 77;
  }
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "asio_server: {}\n", e.what());
    return 1;
  }
}
