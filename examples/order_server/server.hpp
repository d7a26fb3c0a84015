#pragma once
// The order server's network side: what its coroutines and stages share (order_app), the
// connection readers that publish orders, stopping when the journal fails, and --serve's wait
// for a stop signal (server.cpp). The stages are in stages.cpp.
#include "event.hpp"
#include "histogram.hpp"
#include "options.hpp"

#include <rondo/rondo.hpp>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include <signal.h>

namespace order_server {

// ---- The server: rondo::server (accept loop, connections, outboxes, timeouts) on context 0 -----

// What the server's coroutines and stages share. rondo::server and the reply stage run on
// context 0 only, so the connections need no locking.
struct order_app {
  rondo::server* net = nullptr;  // constructed by main, run on context 0
  std::optional<rondo::coro_publisher<order_event>> publisher;
  rondo::io_context* home = nullptr;  // context 0: where the server and the reply stage run
  std::int64_t sequence_base = 0;     // records recovered from the journal (--serve restarts)
  rondo::runtime* rt = nullptr;
  bool wake_main_on_halt = false;     // --serve: main waits for SIGUSR1 as well
  std::atomic<bool> halted{false};    // the journal failed: no more orders
  latency_histogram latency;          // reply stage: frame received -> ack queued
  // Counters main reads while the server runs: statistics, relaxed throughout.
  std::atomic<std::int64_t> orders_in{0}, acks_sent{0}, acks_dropped{0};
  // Set (release) by the task that ran the server once rondo::server::run() returned; main
  // reads it with acquire, and then every connection has ended.
  std::atomic<bool> server_done{false};
};

// One connection's reader: checks the framing, publishes each whole frame as an order event.
rondo::task<> serve_connection(order_app& app, rondo::connection& c);

// Runs app.net on context 0 until it stops (every connection has ended), then sets
// app.server_done.
rondo::task<> run_server(order_app& app);

// The journal failed: no more orders (spawned on context 0 by the journal stage).
rondo::task<> stop_taking_orders(order_app& app, std::string why);

// SIGTERM, SIGINT (stop) and SIGUSR1 (the journal failed: stop_taking_orders()).
sigset_t stop_signals();

// --serve: a standing server until SIGTERM / SIGINT (or the journal failed); prints the serving
// line, waits, and returns the seconds it served.
double serve_until_stopped(const order_app& app, const options& opt);

}  // namespace order_server
