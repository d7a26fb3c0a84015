// The order server's command line (options.hpp): the --help text and the parser, which also
// checks the values and fills in the --faults defaults.
#include "options.hpp"

#include "clock.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <vector>

namespace order_server {

const char* const usage =
    "usage: rondo_example_order_server [options]\n"
    "  --seconds S       how long the load generator sends orders (default 3)\n"
    "  --connections N   client connections (default 8); 4 misbehaving ones come on top\n"
    "  --rate R          orders per second over all connections (open loop);\n"
    "                    0 (default): closed loop, 8 orders in flight per connection\n"
    "  --journal PATH    the journal file (default: a temporary file, removed at the end);\n"
    "                    with --serve an existing journal is recovered and continued\n"
    "  --port P          the server's loopback port (default 0: any free port)\n"
    "  --threads T       the server's runtime threads (default 2: decode and reply on\n"
    "                    context 0 with the sockets, the heavy stages journal and match\n"
    "                    on context 1)\n"
    "  --serve           a standing server on --port: no load generator; SIGTERM or SIGINT\n"
    "                    stops accepting, drains every order and connection, prints a report\n"
    "  --faults          the demo adds a client that never reads its acks, 40 idle\n"
    "                    connections and 2 slowloris clients, and checks that the good\n"
    "                    clients' longest wait between two acks stays within --max-ack-gap-ms\n"
    "  --max-ack-gap-ms MS  the --faults bound (default 100)\n"
    "  server limits (rondo::server_limits):\n"
    "  --max-connections N   connections at once (default 1024); more are refused, logged\n"
    "  --outbox-bytes N      acks queued per connection (default 65536)\n"
    "  --stall-timeout-ms MS a send stuck this long closes a slow reader (default 2000;\n"
    "                        --faults: 500)\n"
    "  --idle-timeout-ms MS  nothing received this long closes a connection (default 60000)\n"
    "  --read-timeout-ms MS  a frame must complete this long after its first byte (default\n"
    "                        5000; --faults: 1000)\n";

// False when --help was asked for.
bool parse_options(int argc, char** argv, options& o) {
  const std::vector<std::string> flags = {"--serve", "--faults"};
  const std::vector<std::string> known = {
      "--seconds",         "--connections",     "--rate",            "--journal",
      "--port",            "--threads",         "--max-ack-gap-ms",  "--max-connections",
      "--outbox-bytes",    "--stall-timeout-ms", "--idle-timeout-ms", "--read-timeout-ms"};
  const auto ms = [](const std::string& v) { return std::chrono::milliseconds(std::stol(v)); };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") return false;
    if (a == "--serve") o.serve = true;
    if (a == "--faults") o.faults = true;
    if (std::find(flags.begin(), flags.end(), a) != flags.end()) continue;
    if (std::find(known.begin(), known.end(), a) == known.end()) {
      throw std::invalid_argument(fmt::format("unknown option {} (try --help)", a));
    }
    if (i + 1 >= argc) throw std::invalid_argument(fmt::format("{}: missing value", a));
    const std::string v = argv[++i];
    if (a == "--seconds") o.seconds = std::stod(v);
    if (a == "--connections") o.connections = std::stoi(v);
    if (a == "--rate") o.rate = std::stod(v);
    if (a == "--journal") o.journal = v;
    if (a == "--port") o.port = std::stoi(v);
    if (a == "--threads") o.threads = static_cast<unsigned>(std::stoul(v));
    if (a == "--max-ack-gap-ms") o.max_ack_gap_ms = std::stod(v);
    if (a == "--max-connections") o.limits.max_connections = std::stoul(v);
    if (a == "--outbox-bytes") o.limits.outbox_bytes = std::stoul(v);
    if (a == "--stall-timeout-ms") {
      o.limits.outbox_stall_timeout = ms(v);
      o.stall_timeout_set = true;
    }
    if (a == "--idle-timeout-ms") o.limits.idle_timeout = ms(v);
    if (a == "--read-timeout-ms") {
      o.limits.read_timeout = ms(v);
      o.read_timeout_set = true;
    }
  }
  if (o.faults && !o.stall_timeout_set) o.limits.outbox_stall_timeout = 500ms;
  if (o.faults && !o.read_timeout_set) o.limits.read_timeout = 1000ms;
  if (o.serve && o.faults) throw std::invalid_argument("--faults is a demo mode, not --serve's");
  if (o.serve && o.journal.empty()) throw std::invalid_argument("--serve needs --journal PATH");
  if (!(o.seconds > 0)) throw std::invalid_argument("--seconds must be > 0");
  if (o.connections < 1 || o.connections > 1000) {
    throw std::invalid_argument("--connections: 1..1000");
  }
  if (o.rate < 0) throw std::invalid_argument("--rate must be >= 0");
  if (o.port < 0 || o.port > 65535) throw std::invalid_argument("--port: 0..65535");
  if (o.threads < 1 || o.threads > 64) throw std::invalid_argument("--threads: 1..64");
  o.limits.validate();  // std::invalid_argument naming the limit
  return true;
}

}  // namespace order_server
