// rondo::server: the accept loop, the connection table, each connection's reader and writer
// coroutines (see include/rondo/io/server.hpp for the design; the connection: connection.cpp).
#include <rondo/io/server.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <system_error>
#include <utility>

#include <sys/socket.h>
#include <unistd.h>

namespace rondo {

namespace {

using steady = std::chrono::steady_clock;

void check_positive(std::chrono::milliseconds v, const char* name) {
  if (v.count() <= 0) {
    throw std::invalid_argument(
        fmt::format("server_limits::{} {} ms must be > 0", name, v.count()));
  }
}

enum class accept_verdict : std::uint8_t { retry_now, back_off, fatal };

// accept(2): "Linux accept() passes already-pending network errors on the new socket as an
// error code from accept()... the application should treat them like EAGAIN and retry".
accept_verdict classify_accept_error(int err) noexcept {
  switch (err) {
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
      return accept_verdict::back_off;  // resources: retrying at once would spin
    case ECONNABORTED:
    case EPROTO:
    case EINTR:
    case EAGAIN:
    case EPERM:  // a firewall rule refused this one connection
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case ETIMEDOUT:
      return accept_verdict::retry_now;
    default:
      return accept_verdict::fatal;  // EBADF, EINVAL, ENOTSOCK, EFAULT: the socket is broken
  }
}

std::int64_t ms_of(steady::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace

void server_limits::validate() const {
  if (max_connections < 1 || max_connections > 1'000'000) {
    throw std::invalid_argument(
        fmt::format("server_limits::max_connections {} is outside 1..1000000", max_connections));
  }
  if (outbox_bytes < 64) {
    throw std::invalid_argument(
        fmt::format("server_limits::outbox_bytes {} must be >= 64", outbox_bytes));
  }
  check_positive(outbox_stall_timeout, "outbox_stall_timeout");
  check_positive(idle_timeout, "idle_timeout");
  check_positive(read_timeout, "read_timeout");
  check_positive(accept_backoff_min, "accept_backoff_min");
  if (accept_backoff_max < accept_backoff_min) {
    throw std::invalid_argument(
        fmt::format("server_limits::accept_backoff_max {} ms is below accept_backoff_min {} ms",
                    accept_backoff_max.count(), accept_backoff_min.count()));
  }
}

// ---- server
// --------------------------------------------------------------------------------------

namespace {
const char* errno_name(int err) noexcept {
  switch (err) {
    case EMFILE:
      return "EMFILE";
    case ENFILE:
      return "ENFILE";
    case ENOBUFS:
      return "ENOBUFS";
    case ENOMEM:
      return "ENOMEM";
    case ECONNABORTED:
      return "ECONNABORTED";
    case EPROTO:
      return "EPROTO";
    case EINTR:
      return "EINTR";
    case EAGAIN:
      return "EAGAIN";
    case EBADF:
      return "EBADF";
    case EINVAL:
      return "EINVAL";
    case ENOTSOCK:
      return "ENOTSOCK";
    default:
      return "errno";
  }
}
std::string describe_errno(int err) {
  return fmt::format("{} ({} {})", std::system_category().message(err), errno_name(err), err);
}
}  // namespace

server::server(io_context& io, int listen_fd, server_limits limits, handler h, server_log log)
    : io_(io),
      listen_fd_(listen_fd),
      limits_(limits),
      handler_(std::move(h)),
      log_(std::move(log)),
      drained_(io) {
  limits_.validate();
  if (!handler_) throw std::invalid_argument("rondo::server: the handler is empty");
  if (listen_fd < 0) {
    throw std::invalid_argument(
        fmt::format("rondo::server: listen fd {} is not a socket", listen_fd));
  }
  slots_.resize(limits_.max_connections);  // null pointers: a connection is made on first use
  free_.reserve(limits_.max_connections);
}

server::~server() = default;

void server::log(std::string_view line) const {
  if (log_) {
    log_(line);
  } else {
    fmt::print(stderr, "[rondo::server] {}\n", line);
  }
}

connection* server::find(connection_id id) noexcept {
  if (id.slot >= slots_.size()) return nullptr;
  connection* c = slots_[id.slot].get();
  if (c == nullptr || c->fd_ < 0 || c->generation_ != id.generation) return nullptr;
  return c;
}

void server::for_each_connection(const std::function<void(connection&)>& f) {
  for (std::uint32_t i = 0; i < next_unused_; ++i) {
    connection* c = slots_[i].get();
    if (c != nullptr && c->fd_ >= 0 && !c->closed_) f(*c);
  }
}

server_stats server::stats() const noexcept {
  // Relaxed loads: statistics (see the header).
  server_stats s;
  s.accepted = accepted_.load(std::memory_order_relaxed);
  s.refused = refused_.load(std::memory_order_relaxed);
  s.accept_errors = accept_errors_.load(std::memory_order_relaxed);
  s.accept_backoffs = accept_backoffs_.load(std::memory_order_relaxed);
  s.replies_dropped = replies_dropped_.load(std::memory_order_relaxed);
  s.open =
      static_cast<std::uint64_t>(std::max<std::int64_t>(0, open_.load(std::memory_order_relaxed)));
  for (std::size_t i = 0; i < close_reason_count; ++i) {
    s.closed[i] = closed_[i].load(std::memory_order_relaxed);
  }
  return s;
}

task<> server::run() {
  const std::stop_token token = stop_.get_token();
  std::chrono::milliseconds backoff = limits_.accept_backoff_min;
  std::uint64_t failures = 0;  // resource failures in a row
  steady::time_point first_failure{};
  std::exception_ptr fatal;
  while (!token.stop_requested()) {
    const io_result r = co_await io_.accept(listen_fd_).cancel_on(token);
    if (r.cancelled() && token.stop_requested()) break;
    if (!r.ok()) {
      bump(accept_errors_);
      const int err = -r.res;
      const accept_verdict v = classify_accept_error(err);
      if (v == accept_verdict::retry_now) continue;
      if (v == accept_verdict::fatal) {
        log(fmt::format("accept on fd {} failed for good: {}; stopping", listen_fd_,
                        describe_errno(err)));
        fatal = std::make_exception_ptr(std::system_error(
            err, std::system_category(), fmt::format("rondo::server: accept(fd {})", listen_fd_)));
        stop_.request_stop();  // the connections drain, then run() rethrows
        break;
      }
      if (failures++ == 0) first_failure = steady::now();
      bump(accept_backoffs_);
      log(
          fmt::format("accept failed: {}; {} connections open; retrying in {} ms (failure {} in "
                      "a row)",
                      describe_errno(err), open_connections(), backoff.count(), failures));
      (void)co_await io_.sleep_for(backoff).cancel_on(token);
      backoff = std::min(backoff * 2, limits_.accept_backoff_max);
      continue;
    }
    if (failures > 0) {
      log(fmt::format("accept recovered after {} failures in {} ms", failures,
                      ms_of(steady::now() - first_failure)));
      failures = 0;
      backoff = limits_.accept_backoff_min;
    }
    const int fd = r.res;
    std::uint32_t index = 0;
    if (!free_.empty()) {
      index = free_.back();
      free_.pop_back();
    } else if (next_unused_ < slots_.size()) {
      index = next_unused_++;
      slots_[index].reset(new connection(*this, io_));
    } else {
      bump(refused_);
      log(fmt::format("connection refused: all {} slots in use (server_limits::max_connections)",
                      limits_.max_connections));
      ::close(fd);
      continue;
    }
    connection& c = *slots_[index];
    c.fd_ = fd;
    c.slot_ = index;
    ++c.generation_;
    c.closed_ = false;
    c.reader_done_ = false;
    c.writer_done_ = false;
    c.end_reason_ = close_reason::peer_closed;
    c.in_frame_ = false;
    c.last_bytes_ = steady::now();
    c.out_cap_ = limits_.outbox_bytes;
    c.out_ = std::make_unique_for_overwrite<std::byte[]>(c.out_cap_);
    c.out_head_ = 0;
    c.out_size_ = 0;
    c.reserved_ = 0;
    c.space_wanted_ = 0;
    bump(accepted_);
    // Relaxed: a statistic (open_connections()); run() reads it on this thread.
    open_.fetch_add(1, std::memory_order_relaxed);
    io_.spawn(run_writer(c));
    io_.spawn(run_reader(c));
  }
  // Stopping: the readers' receives are cancelled through the same token; wait for the
  // connections to drain (each writer sends what is queued, bounded by outbox_stall_timeout).
  while (open_.load(std::memory_order_relaxed) > 0) co_await drained_.wait();
  if (fatal) std::rethrow_exception(fatal);
}

task<> server::run_reader(connection& c) {
  try {
    co_await handler_(c);
  } catch (const std::exception& e) {
    c.close(close_reason::io_error, fmt::format("the handler threw: {}", e.what()));
  } catch (...) {
    c.close(close_reason::io_error, "the handler threw");
  }
  c.reader_done_ = true;
  c.writer_wake_.notify();  // a drained connection closes once the writer has sent everything
  coroutine_done(c);
}

task<> server::run_writer(connection& c) {
  for (;;) {
    if (c.closed_) break;
    if (c.out_size_ == 0) {
      if (c.reader_done_ && c.reserved_ == 0) {
        c.close(c.end_reason_);  // drained: every reply is out
        break;
      }
      co_await c.writer_wake_.wait();
      continue;
    }
    // Send the queued bytes in place, from the head up to the end of the ring at most.
    const std::size_t n = std::min(c.out_size_, c.out_cap_ - c.out_head_);
    const io_result r =
        co_await io_.send(c.fd_, std::span<const std::byte>(c.out_.get() + c.out_head_, n))
            .timeout(limits_.outbox_stall_timeout);
    if (c.closed_) break;
    if (r.timed_out()) {
      c.close(close_reason::slow_reader,
              fmt::format("the peer read nothing for {} ms; {} bytes queued, {} reserved",
                          limits_.outbox_stall_timeout.count(), c.out_size_, c.reserved_));
      break;
    }
    if (!r.ok()) {
      c.close(close_reason::io_error, fmt::format("send: {}", r.error().message()));
      break;
    }
    const auto sent = static_cast<std::size_t>(r.res);
    c.out_head_ = (c.out_head_ + sent) % c.out_cap_;
    c.out_size_ -= sent;
    c.maybe_wake_space_waiter();
  }
  c.writer_done_ = true;
  coroutine_done(c);
}

void server::coroutine_done(connection& c) {
  if (!c.reader_done_ || !c.writer_done_) return;
  // Both coroutines are past their last operation on the fd: closing it cannot race one.
  ::close(c.fd_);
  c.fd_ = -1;
  c.out_.reset();
  free_.push_back(c.slot_);
  // Relaxed: a statistic; run()'s drain loop reads it on this same thread.
  if (open_.fetch_sub(1, std::memory_order_relaxed) == 1) drained_.notify();
}

}  // namespace rondo
