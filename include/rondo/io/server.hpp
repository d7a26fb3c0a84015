#pragma once
// server: what every rondo TCP server needs so that one bad client cannot hurt the others.
//
//   rondo::server srv(io, listen_fd, limits, [&](rondo::connection& c) -> rondo::task<> {
//     std::array<std::byte, 4096> buf;
//     std::size_t have = 0;
//     for (;;) {
//       const rondo::io_result r = co_await c.receive(std::span(buf).subspan(have), have > 0);
//       if (!c.received(r)) co_return;            // ended: the reason is recorded (and logged)
//       ...                                       // for each whole request:
//       if (!co_await c.reserve_outbox(reply_size)) co_return;  // waits while the outbox is full
//       publish(request, c.id());                 // later, anywhere on `io`'s thread:
//     }                                           //   if (auto* c = srv.find(id)) c->send(reply);
//   });
//   io.spawn(srv.run());                          // accepts until stop(), then waits for the
//                                                 // connections to drain
//
// Theory of operation (everything runs on one io_context's thread; nothing here is atomic but
// the statistics and the stop request)
//
//   accept loop ──▶ connection slot (fixed table of max_connections, reused by generation)
//                     ├─ reader: the user's handler; receive() applies the idle timeout (no
//                     │  bytes for idle_timeout) or, inside a frame, the read timeout (the frame
//                     │  must complete within read_timeout of its first byte: slowloris)
//                     └─ writer: its own coroutine; sends the bounded outbox. A send that moves
//                        no byte for outbox_stall_timeout closes the connection (slow reader).
//
//   Outbox credit. A request that will be answered reserves its reply's bytes first
//   (reserve_outbox), and send() spends that credit, so a reply always fits and the code that
//   produces replies (a disruptor stage) never waits on a socket. When a client stops reading,
//   its outbox fills, its reader waits for credit (so the server stops reading that client and
//   TCP pushes back on it alone), and its writer's stalled send closes it. Other connections,
//   and the ring they share, are not held up.
//
//   A connection ends in one of two ways:
//     - closed (close()): timeouts, slow reader, bad input, errors. The socket is shut down at
//       once (the peer sees it; the reader's and writer's pending operations complete) and
//       replies still to come are dropped (send() returns false).
//     - drained: the reader ended cleanly (the peer closed its side, or the server stops). The
//       writer still sends what is queued and what the outstanding credit brings, then closes.
//   The fd is closed and the slot freed only when both coroutines have returned, so no
//   operation can land on a reused fd; find() refuses an id whose slot has moved on.
//
//   Accept errors: EMFILE / ENFILE / ENOBUFS / ENOMEM are logged and retried after a back-off
//   (accept_backoff_min, doubling up to accept_backoff_max, reset by the next success);
//   ECONNABORTED, EPROTO, EINTR, EAGAIN and the network errors accept(2) lists as transient are
//   retried at once; anything else (EBADF, EINVAL, ENOTSOCK: a broken listening socket) ends
//   run() with std::system_error. A connection beyond max_connections is accepted and closed at
//   once (the client sees a reset, not a hang in the backlog), and logged.
//
// Thread-safety: construct it, run(), find() and every connection member on the io_context's
// thread (the one that runs the server's tasks). stop(), stats() and open_connections() from
// any thread. Logging goes through the server_log callback on the context's thread.

#include <rondo/coro/scheduler.hpp>
#include <rondo/coro/task.hpp>
#include <rondo/io/io_context.hpp>

#include <fmt/format.h>

#include <array>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace rondo {

/// What a server allows each connection, and how it treats accept errors. Every member is a
/// setting with a documented default; validate() (called by the server's constructor) throws
/// std::invalid_argument naming a bad value.
struct server_limits {
  /// Connections open at once (1..1,000,000). One beyond is accepted, logged and closed.
  std::size_t max_connections = 1024;
  /// Bytes queued for sending per connection (>= 64): a fixed buffer allocated when the
  /// connection opens.
  std::size_t outbox_bytes = 64 * 1024;
  /// A send that moves no byte for this long closes the connection as a slow reader (> 0).
  std::chrono::milliseconds outbox_stall_timeout{2000};
  /// No byte received for this long, outside a frame, closes the connection (> 0): idle and
  /// half-open peers.
  std::chrono::milliseconds idle_timeout{60000};
  /// A frame must be complete within this long of its first byte (> 0): slowloris peers.
  std::chrono::milliseconds read_timeout{5000};
  /// Back-off after EMFILE / ENFILE / ENOBUFS / ENOMEM: starts here, doubles per failure up to
  /// the maximum (0 < min <= max).
  std::chrono::milliseconds accept_backoff_min{10};
  std::chrono::milliseconds accept_backoff_max{1000};

  /// Throws std::invalid_argument naming the member, its value and the rule.
  void validate() const;
};

/// Why a connection ended.
enum class close_reason : std::uint8_t {
  peer_closed,      ///< the peer closed its side; queued replies were sent first
  server_stopping,  ///< server::stop(); queued replies were sent first
  idle_timeout,     ///< nothing received for idle_timeout
  read_timeout,     ///< a frame not complete within read_timeout of its first byte
  slow_reader,      ///< a send moved nothing for outbox_stall_timeout
  outbox_overflow,  ///< send() of more than the outbox holds (no credit reserved for it)
  bad_input,        ///< the application's verdict (close(close_reason::bad_input, why))
  io_error,         ///< a receive or send failed (reset by the peer, ...), or the handler threw
};
inline constexpr std::size_t close_reason_count = 8;

/// A connection's name that stays valid (and unambiguous) after the connection is gone:
/// server::find() refuses it once its slot has been reused.
struct connection_id {
  std::uint32_t slot = 0;
  std::uint32_t generation = 0;
  friend bool operator==(connection_id, connection_id) = default;
};

/// Counters of a server, for reports and tests (relaxed reads: each is exact once the server's
/// run() has returned, approximate while it runs).
struct server_stats {
  std::uint64_t accepted = 0;         ///< connections taken into a slot
  std::uint64_t refused = 0;          ///< accepted beyond max_connections and closed at once
  std::uint64_t accept_errors = 0;    ///< failed accepts (every kind)
  std::uint64_t accept_backoffs = 0;  ///< back-offs after EMFILE / ENFILE / ENOBUFS / ENOMEM
  std::uint64_t replies_dropped = 0;  ///< send() calls on a closed connection or a stale id
  std::uint64_t open = 0;             ///< connections holding a slot now
  std::array<std::uint64_t, close_reason_count> closed{};  ///< by close_reason

  [[nodiscard]] std::uint64_t closed_for(close_reason r) const noexcept {
    return closed[static_cast<std::size_t>(r)];
  }
};

/// Receives each log line (no trailing newline), on the server's thread. It must not throw.
/// Empty: lines go to stderr as "[rondo::server] ...".
using server_log = std::function<void(std::string_view)>;

class server;

namespace detail {
// One waiting coroutine on the owner thread, resumed through the context's queue (never inside
// notify(), which runs in the middle of someone else's code). The waiter always re-checks its
// condition after resuming, so a notify that finds nobody waiting is simply lost.
class local_wakeup {
 public:
  explicit local_wakeup(io_context& io) noexcept : io_(&io) {}
  [[nodiscard]] bool waiting() const noexcept { return static_cast<bool>(node_.handle); }
  void notify() noexcept {
    if (!node_.handle || posted_) return;
    posted_ = true;
    io_->post(node_);
  }
  /// co_await: suspends until the next notify().
  [[nodiscard]] auto wait() noexcept {
    struct awaiter {
      local_wakeup* w;
      [[nodiscard]] bool await_ready() const noexcept { return false; }
      void await_suspend(std::coroutine_handle<> h) noexcept { w->node_.handle = h; }
      void await_resume() const noexcept {
        w->node_.handle = nullptr;
        w->posted_ = false;
      }
    };
    return awaiter{this};
  }

 private:
  io_context* io_;
  schedule_node node_{};
  bool posted_ = false;
};
}  // namespace detail

/// The awaitable of connection::reserve_outbox(). `co_await` yields true once the credit is
/// reserved (at once when it fits), false when the connection is closed; it resumes on the
/// connection's context. At most one at a time per connection (the reader's).
class [[nodiscard]] connection_reserve_operation {
 public:
  [[nodiscard]] bool await_ready() noexcept;
  void await_suspend(std::coroutine_handle<> h) noexcept;
  [[nodiscard]] bool await_resume() noexcept;

 private:
  friend class connection;
  connection_reserve_operation(class connection& c, std::size_t n) noexcept : c_(&c), n_(n) {}
  class connection* c_;
  std::size_t n_;
  bool done_ = false;
};

/// One accepted TCP connection, owned by its server. Every member on the server's thread.
class connection {
 public:
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  ~connection();

  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] connection_id id() const noexcept { return {slot_, generation_}; }
  /// The server's limits (for messages and sizing).
  [[nodiscard]] const server_limits& limits() const noexcept;

  /// A recv on the socket with the right deadline: `mid_frame` false (no partial request
  /// buffered): idle_timeout from now; true: read_timeout from the arrival of the first bytes of
  /// the frame. Also ends when the server stops. Hand its result to received().
  [[nodiscard]] io_operation receive(std::span<std::byte> buf, bool mid_frame);
  /// True when `r` (a receive() result) brought bytes. Otherwise the reading side is over and
  /// the reason recorded: end of stream (outside a frame: drained, peer_closed; inside one:
  /// closed, bad_input "truncated frame"), a timeout (closed: idle_timeout or read_timeout), the
  /// server stopping (drained), an error (closed: io_error). The handler should return then.
  [[nodiscard]] bool received(const io_result& r);

  /// Reserves `n` bytes of outbox for a reply that send() will queue later. Waits while the
  /// outbox is full (the writer frees space as the peer reads). std::invalid_argument when n is
  /// 0 or more than outbox_bytes. See connection_reserve_operation.
  [[nodiscard]] connection_reserve_operation reserve_outbox(std::size_t n);
  /// Gives back reserved credit that no send() will spend (a request that failed).
  void unreserve_outbox(std::size_t n) noexcept;
  /// Queues `bytes` for the writer; never waits and never fails for want of socket space. Spends
  /// reserved credit first. Returns false (nothing queued) when the connection is closed, or
  /// closes it with outbox_overflow when the bytes do not fit beside the queued and reserved
  /// ones.
  bool send(std::span<const std::byte> bytes);
  /// Closes the connection: logs "connection N (fd F, slot S) closed: <reason>: <detail>" for
  /// every reason but peer_closed and server_stopping, shuts the socket down, drops queued
  /// replies. A second close() does nothing.
  void close(close_reason why, std::string_view detail = {});

  [[nodiscard]] bool closed() const noexcept { return closed_; }
  /// Bytes queued for sending, and reserved credit.
  [[nodiscard]] std::size_t outbox_size() const noexcept { return out_size_; }
  [[nodiscard]] std::size_t outbox_reserved() const noexcept { return reserved_; }

 private:
  friend class server;
  friend class connection_reserve_operation;
  connection(server& s, io_context& io) noexcept;
  [[nodiscard]] bool fits(std::size_t n) const noexcept {
    return out_size_ + reserved_ + n <= out_cap_;
  }
  void end_reading(close_reason why) noexcept;
  void maybe_wake_space_waiter() noexcept;

  server* srv_;
  io_context* io_;
  int fd_ = -1;
  std::uint32_t slot_ = 0;
  std::uint32_t generation_ = 0;
  bool closed_ = false;
  bool reader_done_ = false;  // the handler returned
  bool writer_done_ = false;
  close_reason end_reason_ = close_reason::peer_closed;  // a drained connection's reason
  // receive() deadlines.
  bool in_frame_ = false;
  std::chrono::steady_clock::time_point last_bytes_{};   // the latest bytes received
  std::chrono::steady_clock::time_point frame_start_{};  // the current frame's first bytes
  // The outbox: a ring of out_cap_ bytes; [head, head + size) mod cap is queued. The writer
  // sends from head in place, so queued bytes never move while a send reads them.
  std::unique_ptr<std::byte[]> out_;
  std::size_t out_cap_ = 0;
  std::size_t out_head_ = 0;
  std::size_t out_size_ = 0;
  std::size_t reserved_ = 0;
  detail::local_wakeup writer_wake_;  // data queued, credit returned, closed, reader done
  // The reader waiting in reserve_outbox(): its handle and how much it wants.
  schedule_node space_node_{};
  std::size_t space_wanted_ = 0;
  bool space_posted_ = false;
};

/// A TCP server's accept loop and connection table on one io_context.
class server {
 public:
  /// The application's side of a connection: called once per accepted connection, on the
  /// server's thread; the returned task reads requests (receive / received) and returns when
  /// received() says false or it closed the connection. An exception escaping it closes the
  /// connection (io_error, with the exception's message).
  using handler = std::function<task<>(connection&)>;

  /// Serves connections accepted on `listen_fd` (a listening socket the caller owns and
  /// closes after run() returned). Throws std::invalid_argument for bad limits or an empty
  /// handler. Construct it on `io`'s thread or before `io` runs.
  server(io_context& io, int listen_fd, server_limits limits, handler h, server_log log = {});
  /// run() must have returned (or never started).
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// The accept loop. Start it once, on `io` (io.spawn(srv.run())). Returns after stop(), once
  /// every connection has ended (drained ones send their queued replies first). Throws
  /// std::system_error for an accept error that retrying cannot cure (after the connections have
  /// ended).
  [[nodiscard]] task<> run();
  /// Stops accepting and ends every reader (receive() completes, the connections drain). Any
  /// thread; idempotent.
  void stop() noexcept { stop_.request_stop(); }
  [[nodiscard]] bool stopping() const noexcept { return stop_.stop_requested(); }

  /// The live connection with this id, or null (closed, or its slot reused). Server's thread.
  [[nodiscard]] connection* find(connection_id id) noexcept;
  /// Calls `f` for every connection that holds a slot and is not closed (to tell every client
  /// something: a server that must stop taking requests, say). Server's thread.
  void for_each_connection(const std::function<void(connection&)>& f);
  /// Counters (any thread).
  [[nodiscard]] server_stats stats() const noexcept;
  /// Connections holding a slot (any thread; relaxed: a statistic).
  [[nodiscard]] std::size_t open_connections() const noexcept {
    return static_cast<std::size_t>(open_.load(std::memory_order_relaxed));
  }
  [[nodiscard]] const server_limits& limits() const noexcept { return limits_; }
  /// Writes one line through the server's log (server's thread).
  void log(std::string_view line) const;

 private:
  friend class connection;
  [[nodiscard]] task<> run_reader(connection& c);
  [[nodiscard]] task<> run_writer(connection& c);
  void coroutine_done(connection& c);  // frees the slot after the reader and the writer
  void count_close(close_reason r) noexcept {
    // Relaxed: a statistic.
    closed_[static_cast<std::size_t>(r)].fetch_add(1, std::memory_order_relaxed);
  }
  void bump(std::atomic<std::uint64_t>& counter) noexcept {
    // Relaxed: a statistic, read by stats().
    counter.fetch_add(1, std::memory_order_relaxed);
  }

  io_context& io_;
  int listen_fd_;
  server_limits limits_;
  handler handler_;
  server_log log_;
  std::stop_source stop_;
  std::vector<std::unique_ptr<connection>> slots_;  // created on first use, then reused
  std::vector<std::uint32_t> free_;                 // free slot indices (a stack)
  std::uint32_t next_unused_ = 0;                   // slots_[next_unused_..] never used yet
  detail::local_wakeup drained_;                    // run() waits here for the last close

  // Statistics: written on the server's thread, read by stats() from any thread (relaxed).
  std::atomic<std::int64_t> open_{0};
  std::atomic<std::uint64_t> accepted_{0}, refused_{0}, accept_errors_{0}, accept_backoffs_{0},
      replies_dropped_{0};
  std::array<std::atomic<std::uint64_t>, close_reason_count> closed_{};
};

}  // namespace rondo

namespace rondo::detail {
[[nodiscard]] constexpr std::string_view enum_name(close_reason r) noexcept {
  switch (r) {
    case close_reason::peer_closed:
      return "peer closed";
    case close_reason::server_stopping:
      return "server stopping";
    case close_reason::idle_timeout:
      return "idle timeout";
    case close_reason::read_timeout:
      return "read timeout";
    case close_reason::slow_reader:
      return "slow reader";
    case close_reason::outbox_overflow:
      return "outbox overflow";
    case close_reason::bad_input:
      return "bad input";
    case close_reason::io_error:
      return "I/O error";
  }
  return "close_reason(?)";
}
}  // namespace rondo::detail

/// The reason in words ("slow reader"); fmt's string specs (width, alignment) apply.
template <>
struct fmt::formatter<rondo::close_reason> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(rondo::close_reason r, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::formatter<std::string_view>::format(rondo::detail::enum_name(r), ctx);
  }
};
