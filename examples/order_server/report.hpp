#pragma once
// The end of a run: what it produced (run_result, gathered once the server has stopped and the
// disruptor drained), the report printed from it, and the checks that decide the exit code
// (report.cpp).
#include "book.hpp"
#include "event.hpp"
#include "load_generator.hpp"
#include "options.hpp"
#include "server.hpp"
#include "stages.hpp"

#include <rondo/rondo.hpp>

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace order_server {

struct run_result {
  double elapsed = 0;  // seconds of load (the demo) or of serving (--serve)
  std::string stage_failure;  // the journal's failure, rethrown by drain() with the stage's name
  // Summed over the load generator's clients (none with --serve); the gaps are the good
  // clients' longest waits between two acks, with the fault clients connected and before.
  std::int64_t acked = 0, rejected_acks = 0, filled_in_acks = 0, max_gap = 0, control_gap = 0;
  std::int64_t non_reader_closes = 0, slowloris_closes = 0;
  // The server's side: orders through the reply stage, journal records and appends, acks.
  std::int64_t published = 0, records = 0, syncs = 0, dropped = 0, acks_sent = 0;
  rondo::server_stats st{};
};

// Gathers the run's result once the server's tasks have ended and drain() returned; each client
// that failed adds a problem.
run_result gather_result(double elapsed, std::string stage_failure,
                         const std::deque<load_client>& clients,
                         const rondo::disruptor<order_event>& d, const rondo::journal& journal,
                         const journal_stats& jstats, const rondo::server& net,
                         const order_app& app, std::vector<std::string>& problems);

// Throughput, latency histograms, the journal's appends, the connections, the stages' metrics.
void print_report(const options& opt, const run_result& run, const order_app& app,
                  const order_book& book, const load_stats& stats, const rondo::journal& journal,
                  const journal_stats& jstats, const rondo::disruptor<order_event>& d,
                  rondo::runtime& rt);

// The checks: each failure adds a problem. The demo's end with the journal read back.
void check_run(const options& opt, const run_result& run, const order_app& app,
               const order_book& book, const rondo::disruptor<order_event>& d,
               const std::deque<load_client>& clients, std::vector<std::string>& problems);

}  // namespace order_server
