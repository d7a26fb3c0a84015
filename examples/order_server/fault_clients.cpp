// The --faults clients (load_generator.hpp): a client that never reads its acks, slowloris
// clients and idle connections, each trying to hold up the good clients; the server must
// isolate them.
#include "load_generator.hpp"

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>

#include <unistd.h>

namespace order_server {

// ---- Fault clients (--faults): they try to hurt the good clients; the server must isolate them

// Never reads its acks: sends orders until the server closes it (its outbox stays full, so its
// writer's send stalls: close_reason::slow_reader), then connects again under a new client id,
// until the end of the run. Its sends time out rather than block for ever.
rondo::task<> run_non_reader(load_client& c, load_stats& stats, const load_plan& plan,
                             std::uint32_t first_id) {
  rondo::io_context& io = rondo::current_io_context();
  try {
    (void)co_await io.sleep_until(plan.bad_at);  // after the good clients' control phase
    while (steady::now() < plan.end) {
      c.id = first_id + static_cast<std::uint32_t>(c.reconnects);
      c.sent = 0;
      co_await connect_client(c, plan, 4096);  // a small receive buffer: it fills sooner
      while (steady::now() < plan.end) {
        if (c.out.empty()) append_orders(c, 64, now_ns());
        const rondo::io_result r = co_await io.send(c.fd, c.out).timeout(200ms);
        if (r.timed_out()) continue;  // the server reads no more from us: stay stuck
        if (!r.ok()) break;           // closed by the server
        c.out.erase(c.out.begin(), c.out.begin() + r.res);  // a short send: the rest next
      }
      c.out.clear();
      ::close(c.fd);
      c.fd = -1;
      ++c.reconnects;
    }
  } catch (const std::exception& e) {
    c.error = fmt::format("non-reader: {}", e.what());
  }
  --c.reconnects;  // the last loop ended with the run, not with the server
  finish_client(c, stats);
}

// Slowloris: one byte of a frame at a time, 100 ms apart, so no frame ever completes; the
// server must close it (close_reason::read_timeout); it connects again until the end.
rondo::task<> run_slowloris(load_client& c, load_stats& stats, const load_plan& plan) {
  rondo::io_context& io = rondo::current_io_context();
  try {
    (void)co_await io.sleep_until(plan.bad_at);
    while (steady::now() < plan.end) {
      co_await connect_client(c, plan);
      append_orders(c, 1, now_ns());
      for (std::size_t i = 0; steady::now() < plan.end; i = (i + 1) % c.out.size()) {
        (void)co_await io.sleep_for(100ms);
        const rondo::io_result r = co_await io.send(c.fd, std::span(c.out).subspan(i, 1));
        if (!r.ok()) break;  // closed by the server
      }
      c.out.clear();
      ::close(c.fd);
      c.fd = -1;
      ++c.reconnects;
    }
  } catch (const std::exception& e) {
    c.error = fmt::format("slowloris: {}", e.what());
  }
  --c.reconnects;
  finish_client(c, stats);
}

// Idle: connects and sends nothing until the end of the run.
rondo::task<> run_idle(load_client& c, load_stats& stats, const load_plan& plan) {
  try {
    (void)co_await rondo::current_io_context().sleep_until(plan.bad_at);
    co_await connect_client(c, plan);
    (void)co_await rondo::current_io_context().sleep_until(plan.end);
  } catch (const std::exception& e) {
    c.error = fmt::format("idle: {}", e.what());
  }
  finish_client(c, stats);
}

}  // namespace order_server
