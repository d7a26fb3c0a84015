#pragma once
// The demo's load generator: good clients (closed or open loop) and four misbehaving ones on an
// io_context of its own (load_generator.cpp), and the --faults clients (fault_clients.cpp).
#include "clock.hpp"
#include "histogram.hpp"
#include "options.hpp"

#include <rondo/rondo.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include <netinet/in.h>

namespace order_server {

inline constexpr int bad_clients = 4;
inline constexpr int idle_clients = 40, slowloris_clients = 2;

struct load_client {
  std::uint32_t id = 0;
  int fd = -1;
  std::uint64_t sent = 0, acked = 0, rejected = 0, filled = 0;
  std::uint64_t rng = 0;
  bool done_sending = false;
  std::string error;           // what went wrong, if anything
  std::vector<std::byte> out;  // frames waiting to be sent
  // The longest wait between two acks while orders were in flight, before the fault clients
  // came (the control: what this machine does anyway) and after.
  std::int64_t max_ack_gap_ns = 0, control_ack_gap_ns = 0;
  std::int64_t reconnects = 0;      // fault clients: times the server closed them
  bool verify = true;               // its acks must match the journal (not the non-reader's)
};

struct load_stats {
  latency_histogram round_trip;  // the generator's thread; main reads it after `finished`
  std::atomic<std::int64_t> acks{0};  // progress line: a relaxed statistic
  // Clients finished: each adds 1 with release; main's acquire load then sees their results.
  std::atomic<int> finished{0};
};

struct load_plan {
  sockaddr_in server{};
  double rate = 0;  // orders per second over all good clients; 0: closed loop
  int connections = 1;
  std::size_t window = 8;  // closed loop: orders in flight per client
  steady::time_point start, end, bad_at;
};

// Runs the load: good clients 1..N and the misbehaving ones (with --faults the fault clients as
// well) against the server at addr, a progress line once a second; returns when every client
// has finished, with the seconds since the start. clients and stats hold the results.
double generate_load(const options& opt, const sockaddr_in& addr, rondo::server& net,
                     std::deque<load_client>& clients, load_stats& stats);

// ---- The clients' common steps (load_generator.cpp)

// Appends n new orders to c.out, each stamped with stamp_ns.
void append_orders(load_client& c, std::size_t n, std::int64_t stamp_ns);
// Connects c to the server (rcvbuf > 0: that SO_RCVBUF first).
rondo::task<> connect_client(load_client& c, const load_plan& plan, int rcvbuf = 0);
// Closes c's socket and counts it finished.
void finish_client(load_client& c, load_stats& stats);

// ---- Fault clients (fault_clients.cpp)

rondo::task<> run_non_reader(load_client& c, load_stats& stats, const load_plan& plan,
                             std::uint32_t first_id);
rondo::task<> run_slowloris(load_client& c, load_stats& stats, const load_plan& plan);
rondo::task<> run_idle(load_client& c, load_stats& stats, const load_plan& plan);

}  // namespace order_server
