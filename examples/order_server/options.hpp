#pragma once
// The order server's command line: its options, the --help text and the parser (options.cpp).
#include <rondo/rondo.hpp>

#include <string>

namespace order_server {

struct options {
  double seconds = 3;
  int connections = 8;
  double rate = 0;
  std::string journal;  // empty: a temporary file, removed at the end
  int port = 0;
  unsigned threads = 2;
  bool serve = false;   // a standing server: no load generator, stop on SIGTERM / SIGINT
  bool faults = false;  // the demo adds a non-reader, 40 idle and 2 slowloris clients
  double max_ack_gap_ms = 100;  // --faults: the good clients' longest wait between two acks
  rondo::server_limits limits{};
  bool read_timeout_set = false, stall_timeout_set = false;
};

extern const char* const usage;  // the --help text

// Parses argv into o and checks it (std::invalid_argument says what is wrong). False when --help
// was asked for.
bool parse_options(int argc, char** argv, options& o);

}  // namespace order_server
