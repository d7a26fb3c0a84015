// rondo::connection and its outbox reservation (connection_reserve_operation): receiving with
// the read and idle timeouts, the outbox, closing (see include/rondo/io/server.hpp).
#include <rondo/io/server.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include <sys/socket.h>

namespace rondo {

namespace {

using steady = std::chrono::steady_clock;

}  // namespace

// ---- connection_reserve_operation ---------------------------------------------------------------

bool connection_reserve_operation::await_ready() noexcept {
  if (c_->closed_) return true;  // yields false
  if (c_->fits(n_)) {
    c_->reserved_ += n_;
    done_ = true;
    return true;
  }
  return false;
}

void connection_reserve_operation::await_suspend(std::coroutine_handle<> h) noexcept {
  // The writer (as it frees space) or close() posts space_node_; it reserves for us first, so
  // nothing can take the space between the wake-up and the resume.
  c_->space_node_.handle = h;
  c_->space_wanted_ = n_;
}

bool connection_reserve_operation::await_resume() noexcept {
  if (done_) return true;
  c_->space_node_.handle = nullptr;
  c_->space_posted_ = false;
  // Resumed by maybe_wake_space_waiter(): either it reserved n_ for us, or the connection closed.
  return !c_->closed_;
}

// ---- connection
// ----------------------------------------------------------------------------------

connection::connection(server& s, io_context& io) noexcept : srv_(&s), io_(&io), writer_wake_(io) {}

connection::~connection() = default;

const server_limits& connection::limits() const noexcept {
  return srv_->limits_;
}

io_operation connection::receive(std::span<std::byte> buf, bool mid_frame) {
  const server_limits& l = srv_->limits_;
  const auto now = steady::now();
  std::chrono::nanoseconds left = l.idle_timeout;
  if (mid_frame) {
    if (!in_frame_) {
      in_frame_ = true;
      frame_start_ = last_bytes_;  // the frame began with the bytes received last
    }
    left = frame_start_ + l.read_timeout - now;
  } else {
    in_frame_ = false;
  }
  return io_->recv(fd_, buf).timeout(left).cancel_on(srv_->stop_.get_token());
}

bool connection::received(const io_result& r) {
  if (r.res > 0) {
    last_bytes_ = steady::now();
    return true;
  }
  const server_limits& l = srv_->limits_;
  if (closed_) {
    // Closed meanwhile (the writer found a slow reader, the server's owner closed it).
  } else if (r.res == 0 && in_frame_) {
    close(close_reason::bad_input, "truncated frame: end of stream in the middle of a frame");
  } else if (r.res == 0) {
    end_reading(close_reason::peer_closed);
  } else if (r.timed_out() && in_frame_) {
    close(close_reason::read_timeout,
          fmt::format("frame not complete {} ms after its first byte", l.read_timeout.count()));
  } else if (r.timed_out()) {
    close(close_reason::idle_timeout,
          fmt::format("nothing received for {} ms", l.idle_timeout.count()));
  } else if (r.cancelled() && srv_->stopping()) {
    end_reading(close_reason::server_stopping);
  } else {
    close(close_reason::io_error, fmt::format("{}", r.error().message()));
  }
  return false;
}

connection_reserve_operation connection::reserve_outbox(std::size_t n) {
  if (n == 0 || n > out_cap_) {
    throw std::invalid_argument(
        fmt::format("connection::reserve_outbox({}): must be 1..outbox_bytes ({})", n, out_cap_));
  }
  return {*this, n};
}

void connection::unreserve_outbox(std::size_t n) noexcept {
  reserved_ -= std::min(n, reserved_);
  maybe_wake_space_waiter();
  writer_wake_.notify();  // a drained connection may now be finished
}

bool connection::send(std::span<const std::byte> bytes) {
  const std::size_t credit = std::min(reserved_, bytes.size());
  reserved_ -= credit;
  if (closed_) {
    // Relaxed: a statistic.
    srv_->replies_dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (!fits(bytes.size())) {
    close(close_reason::outbox_overflow,
          fmt::format("{} bytes to send, {} queued, {} reserved, outbox {}", bytes.size(),
                      out_size_, reserved_, out_cap_));
    srv_->replies_dropped_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
    return false;
  }
  // Copy in at most two pieces: up to the end of the ring, then from its start.
  const std::size_t tail = (out_head_ + out_size_) % out_cap_;
  const std::size_t first = std::min(bytes.size(), out_cap_ - tail);
  std::memcpy(out_.get() + tail, bytes.data(), first);
  std::memcpy(out_.get(), bytes.data() + first, bytes.size() - first);
  out_size_ += bytes.size();
  writer_wake_.notify();
  return true;
}

void connection::close(close_reason why, std::string_view detail) {
  if (closed_) return;
  closed_ = true;
  srv_->count_close(why);
  if (why != close_reason::peer_closed && why != close_reason::server_stopping) {
    srv_->log(fmt::format("connection (fd {}, slot {}, generation {}) closed: {}{}{}", fd_, slot_,
                          generation_, why, detail.empty() ? "" : ": ", detail));
  }
  // The peer sees the end now, and the reader's recv and the writer's send complete (0 /
  // EPIPE); the fd itself is closed only after both coroutines return.
  ::shutdown(fd_, SHUT_RDWR);
  out_size_ = 0;
  reserved_ = 0;
  writer_wake_.notify();
  maybe_wake_space_waiter();
}

void connection::end_reading(close_reason why) noexcept {
  end_reason_ = why;
  writer_wake_.notify();  // it closes the connection once everything is sent
}

void connection::maybe_wake_space_waiter() noexcept {
  if (!space_node_.handle || space_posted_) return;
  if (!closed_) {
    if (!fits(space_wanted_)) return;
    reserved_ += space_wanted_;  // on the waiter's behalf: see await_suspend()
  }
  // The node keeps the handle until it runs; space_posted_ keeps a second post of the same node
  // (still in the context's queue) from happening meanwhile.
  space_posted_ = true;
  io_->post(space_node_);
}

}  // namespace rondo
