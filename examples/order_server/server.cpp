// The order server's network side (server.hpp): a reader coroutine per connection publishes
// orders with co_await reserve(1); rondo::server runs the accept loop, the connections, their
// outboxes and timeouts on context 0.
#include "server.hpp"

#include "clock.hpp"
#include "socket.hpp"

#include <fmt/format.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <exception>
#include <span>
#include <vector>

#include <unistd.h>

namespace order_server {

// One connection: read, check the framing, publish each whole frame as an order event. Each
// order first reserves its ack's room in the connection's outbox: a client that stops reading
// its acks fills its own outbox, and then only its own reader waits (and the server closes it
// when its writer's send stalls), never the ring that every client shares.
rondo::task<> serve_connection(order_app& app, rondo::connection& c) {
  set_nodelay(c.fd());
  std::array<std::byte, 16 * 1024> buf;  // in the coroutine frame
  std::size_t have = 0;
  for (;;) {
    const rondo::io_result r = co_await c.receive(std::span(buf).subspan(have), have > 0);
    if (!c.received(r)) co_return;  // the reason is recorded (and logged if abnormal)
    have += static_cast<std::size_t>(r.res);
    std::size_t used = 0;
    for (;;) {
      frame_check f = check_frame(std::span<const std::byte>(buf.data() + used, have - used));
      if (!f.error.empty()) {
        c.close(rondo::close_reason::bad_input, f.error);
        co_return;
      }
      if (f.size == 0) break;
      // Relaxed: set by the journal stage before it spawns stop_taking_orders() here; once
      // that ran on this context, the spawn's queue has made the store visible to this
      // thread. Until then an order may still be published: stop_taking_orders() gives its
      // ack credit back with all the others.
      if (app.halted.load(std::memory_order_relaxed)) {
        c.close(rondo::close_reason::server_stopping, "the server stopped taking orders");
        co_return;
      }
      if (!co_await c.reserve_outbox(ack_frame_size)) co_return;  // closed while waiting
      bool published = false;
      try {
        // Suspends this reader (not the thread) while the ring is full: backpressure reaches
        // the client through TCP.
        auto reserved = co_await app.publisher->reserve(1);
        order_event& ev = reserved[0];
        ev.conn = c.id();
        ev.received_ns = now_ns();
        std::memcpy(ev.frame.data(), buf.data() + used, f.size);
        reserved.publish();
        published = true;
      } catch (const std::exception& e) {  // rondo::closed: the disruptor shut down under us
        c.unreserve_outbox(ack_frame_size);
        c.close(rondo::close_reason::server_stopping, e.what());
      }
      if (!published) co_return;
      used += f.size;
      app.orders_in.fetch_add(1, std::memory_order_relaxed);  // statistic
    }
    std::memmove(buf.data(), buf.data() + used, have - used);
    have -= used;
  }
}

rondo::task<> run_server(order_app& app) {
  try {
    co_await app.net->run();
  } catch (const std::exception& e) {
    fmt::print(stderr, "  [server] {}\n", e.what());
  }
  app.server_done.store(true, std::memory_order_release);  // pairs with main's acquire load
}

// A failed journal means no order can be made durable any more: the server stops taking
// orders at once. The journal stage calls this (on its context); the rest runs on context 0,
// where the connections are: stop accepting and reading, give back every connection's ack
// credit (those orders will never be acked), send each client a notice with the reason, and
// let the connections drain and close. In --serve mode main is then woken (SIGUSR1) to report.
rondo::task<> stop_taking_orders(order_app& app, std::string why) {
  app.net->log(fmt::format("no more orders: {}", why));
  app.net->stop();
  std::vector<std::byte> notice;
  append_notice(notice, fmt::format("order server stopped taking orders: {}", why));
  app.net->for_each_connection([&](rondo::connection& c) {
    c.unreserve_outbox(c.outbox_reserved());
    (void)c.send(notice);
  });
  if (app.wake_main_on_halt) ::kill(::getpid(), SIGUSR1);
  co_return;
}

// SIGTERM, SIGINT (stop) and SIGUSR1 (the journal failed: stop_taking_orders()).
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  return set;
}

// Blocks until one of stop_signals() (blocked in every thread since the start of main).
int wait_for_stop_signal() {
  const sigset_t set = stop_signals();
  int sig = 0;
  while (::sigwait(&set, &sig) != 0) {
  }
  return sig;
}

double serve_until_stopped(const order_app& app, const options& opt) {
  // ---- A standing server: until SIGTERM / SIGINT.
  fmt::print("serving: {} records recovered from the journal, the next order is sequence {}; "
             "limits: max {} connections, outbox {} bytes, stall {} ms, idle {} ms, read {} ms\n",
             app.sequence_base, app.sequence_base, opt.limits.max_connections,
             opt.limits.outbox_bytes, opt.limits.outbox_stall_timeout.count(),
             opt.limits.idle_timeout.count(), opt.limits.read_timeout.count());
  std::fflush(stdout);  // a supervisor (or the kill -9 test) waits for this line
  const auto start = steady::now();
  const int sig = wait_for_stop_signal();
  const double elapsed = std::chrono::duration<double>(steady::now() - start).count();
  fmt::print("\n{}: draining\n", sig == SIGTERM  ? "SIGTERM"
                                  : sig == SIGINT ? "SIGINT"
                                                  : "the journal failed");
  return elapsed;
}

}  // namespace order_server
