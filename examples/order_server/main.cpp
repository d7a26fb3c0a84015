// order_server: the flagship demo. An order-entry server on loopback built on rondo alone, and a
// load generator that drives it for a few seconds.
//
//   server: a rondo::runtime with contexts 0 and 1; load generator: its own io_context
//
//   N clients ── orders ──▶ accept loop + a reader coroutine per connection (ctx 0): checks
//       ▲                   the framing, publishes each order with co_await publisher.reserve(1)
//       │                     │
//       │                   decode (ctx 0) ─┬─▶ journal (ctx 1): writev + fdatasync ─┬─▶ reply
//       │                                   └─▶ match (ctx 1): price-time order book ┘  (ctx 0)
//       └─────────────────────────────────────────── acks ◀────────────────────────────────┘
//
// An ack leaves only after the journal made its order durable and the book matched it: reply
// runs rondo::after("journal", "match"). Each client measures send -> ack latency. Four
// misbehaving clients get three orders acked, then send a bad magic, an unknown type, an
// oversized length or a truncated frame: the server logs why and closes just that connection.
// At the end the demo prints throughput, latency histograms and per-stage metrics, drains, reads
// the journal back (every acked order is in it, exactly once, in order) and exits 0; 1 if a
// check failed.
//
//   usage: rondo_example_order_server [--seconds S] [--connections N] [--rate ORDERS_PER_S]
//          [--journal PATH] [--port P] [--threads T]                 (--help says more)
//
// The pieces, one file each:
//   main.cpp            this: start the server, run the load (or serve), drain, report, check
//   options.hpp/.cpp    the command line
//   protocol.hpp        the wire format and the journal record (the fuzzer and the kill -9 test
//                       include it too)
//   event.hpp           the ring slot that each stage fills in turn
//   server.hpp/.cpp     order_app, the connection readers that publish, stopping on a journal
//                       failure, --serve's wait for a signal
//   stages.hpp/.cpp     decode -> (journal, match) -> reply, and where each stage runs
//   book.hpp/.cpp       match's price-time order book
//   load_generator.hpp/.cpp, fault_clients.cpp   the clients: good, misbehaving, --faults
//   report.hpp/.cpp     the report and the checks; journal_check.hpp/.cpp reads the journal back
//   histogram.hpp/.cpp, clock.hpp, socket.hpp/.cpp   latency histograms, time, loopback TCP
#include "book.hpp"
#include "clock.hpp"
#include "event.hpp"
#include "load_generator.hpp"
#include "options.hpp"
#include "report.hpp"
#include "server.hpp"
#include "socket.hpp"
#include "stages.hpp"

#include <rondo/rondo.hpp>

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

using namespace order_server;

int main(int argc, char** argv) try {
  options opt;
  if (!parse_options(argc, argv, opt)) {
    fmt::print("{}", usage);
    return 0;
  }
  if (opt.serve) {
    // Before any thread starts, so that every thread inherits the mask and the signals wait
    // for main's sigwait().
    const sigset_t set = stop_signals();
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  }
  const bool temporary_journal = opt.journal.empty();
  if (temporary_journal) {
    opt.journal = fmt::format("/tmp/rondo-order-server-{}.journal", ::getpid());  // a directory
  }

  // Declared before the runtime: the tasks on its threads use them until it stops.
  journal_stats jstats;
  order_book book;
  order_app app;
  app.wake_main_on_halt = opt.serve;

  rondo::runtime rt(opt.threads);
  app.home = &rt.context(0);
  app.rt = &rt;
  // The journal (a directory of segments) on the context that runs the journal stage. --serve
  // recovers what is there (a torn tail from a crash is dropped) and continues the sequence;
  // the demo starts empty.
  const std::size_t journal_context = opt.threads > 1 ? 1 : 0;
  rondo::journal_options jopts;
  jopts.mode = opt.serve ? rondo::open_mode::recover : rondo::open_mode::truncate;
  rondo::journal journal(rt.context(journal_context), opt.journal, jopts);
  app.sequence_base = journal.next_sequence();
  if (opt.serve) fmt::print("journal recovery: {}\n", journal.recovery());
  // decode -> (journal, match) -> reply: an ack leaves only once its order is durable and matched.
  auto d = build_pipeline(rt, journal, journal_context, jstats, book, app);
  d.start();

  // The server: an accept loop and a reader coroutine per connection on context 0; the readers
  // publish the orders.
  sockaddr_in addr{};
  const int listen_fd = listen_on_loopback(opt.port, addr);
  rondo::server net(rt.context(0), listen_fd, opt.limits,
                    [&app](rondo::connection& c) { return serve_connection(app, c); },
                    [](std::string_view line) { fmt::print("  [server] {}\n", line); });
  app.net = &net;
  app.publisher = d.coro_publisher();
  rt.spawn(run_server(app), 0);
  fmt::print("order_server on 127.0.0.1:{}, journal {}, {} server threads\n",
             unsigned{ntohs(addr.sin_port)}, opt.journal, opt.threads);

  // A standing server until SIGTERM / SIGINT (--serve), or the demo: the built-in load
  // generator, good and misbehaving clients, for --seconds.
  std::deque<load_client> clients;  // a deque: the clients' coroutines hold references
  load_stats stats;
  const double elapsed =
      opt.serve ? serve_until_stopped(app, opt) : generate_load(opt, addr, net, clients, stats);

  // Shut down: stop accepting and end the readers; each connection then sends the acks of the
  // orders it published (every published order still goes through every stage) and closes, and
  // run() returns. Then drain the disruptor.
  net.stop();
  // Acquire: pairs with the release store at the end of run_server().
  if (!wait_until([&] { return app.server_done.load(std::memory_order_acquire); },
                  steady::now() + 30s)) {
    fmt::print(stderr, "FAILED: the server's connections do not end\n");
    std::_Exit(1);
  }
  std::string stage_failure;  // the journal's failure, rethrown by drain() with the stage's name
  try {
    d.drain();
  } catch (const std::exception& e) {
    stage_failure = e.what();
  }
  ::close(listen_fd);

  // Report, then the checks (the demo's read the journal back).
  std::vector<std::string> problems;
  const run_result run = gather_result(elapsed, stage_failure, clients, d, journal, jstats, net,
                                       app, problems);
  print_report(opt, run, app, book, stats, journal, jstats, d, rt);
  check_run(opt, run, app, book, d, clients, problems);
  if (temporary_journal) {
    std::error_code ignored;
    std::filesystem::remove_all(opt.journal, ignored);
  }
  if (const std::size_t abandoned = rt.stop(); abandoned != 0) {
    problems.push_back(fmt::format("{} server tasks never finished", abandoned));
  }
  for (const std::string& p : problems) fmt::print(stderr, "FAILED: {}\n", p);
  return problems.empty() ? 0 : 1;
} catch (const std::exception& e) {
  fmt::print(stderr, "order_server: {}\n", e.what());
  return 2;
}
