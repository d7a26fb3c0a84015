// order_kill_test: crash tests of `order_server --serve --journal DIR`, verified from the client
// side with rondo::journal_reader.
//
//   order_kill_test SERVER [--kills N] [--seed S]     kill -9 loop (default 12 kills)
//   order_kill_test SERVER --journal-full             the journal's file system fills up
//
// kill -9 loop. Each round starts the server on the same journal directory, checks that it
// recovered at least every order acked so far (an ack means durable), runs 4 clients (each a
// new client id, closed loop, 8 orders in flight) for a random 50-300 ms, and kills the server
// with SIGKILL mid-load. A last round ends with SIGTERM instead: the server must drain and exit
// 0. Then the journal is read back: sequences 0, 1, 2, ... with no gap and no torn record;
// every acked order is in it exactly once, intact (its fields are what the client sent), at the
// sequence its ack named; no order is in it twice; each client's orders form a prefix of what
// it sent. Each restart also checks that the sequence continues after the recovered records
// (the first ack of a round names the recovered count or more).
//
// Journal full: the server runs with RLIMIT_FSIZE = 256 KiB (SIGXFSZ ignored, so a write past
// it fails with EFBIG, as a full disk fails with ENOSPC). A client sends orders until the server
// stops taking them: it must get a notice frame naming the cause, the server must exit 1 with
// the reason on stderr (no signal), and every acked order must be in the journal.
//
// Exit status: 0 passed, 1 failed (why on stderr), 77 when the host refuses io_uring.
// (Above ~400 lines: one driver program whose crash loop, client and checks share its state.)
#include <rondo/io/journal_reader.hpp>

#include "../../examples/order_server/protocol.hpp"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

namespace op = order_protocol;
using namespace std::chrono_literals;

namespace {

struct failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A running server: its pid, the port it printed, and its stdout/stderr in files.
struct server_process {
  pid_t pid = -1;
  int port = 0;
  std::int64_t recovered = -1;
  std::string out_path, err_path;
};

std::string read_file(const std::string& path) {
  std::string s;
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) s.append(buf, n);
    std::fclose(f);
  }
  return s;
}

server_process start_server(const std::string& binary, const std::string& dir,
                            const std::string& journal, int round, rlim_t fsize_limit = 0) {
  server_process p;
  p.out_path = fmt::format("{}/server-{}.out", dir, round);
  p.err_path = fmt::format("{}/server-{}.err", dir, round);
  std::fflush(stdout);  // else the child would write our buffered lines again
  std::fflush(stderr);
  p.pid = ::fork();
  if (p.pid < 0) throw failure(fmt::format("fork: {}", std::strerror(errno)));
  if (p.pid == 0) {
    std::freopen(p.out_path.c_str(), "w", stdout);
    std::freopen(p.err_path.c_str(), "w", stderr);
    if (fsize_limit > 0) {
      std::signal(SIGXFSZ, SIG_IGN);  // kept across exec: a write past the limit fails (EFBIG)
      const rlimit l{fsize_limit, fsize_limit};
      ::setrlimit(RLIMIT_FSIZE, &l);
    }
    ::execl(binary.c_str(), binary.c_str(), "--serve", "--journal", journal.c_str(), "--port", "0",
            static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  // Wait for "order_server on 127.0.0.1:PORT" and the recovery line (or the process's end).
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string out = read_file(p.out_path);
    const auto at = out.find("order_server on 127.0.0.1:");
    const auto rec = out.find("serving: ");
    if (at != std::string::npos && rec != std::string::npos) {
      p.port = std::atoi(out.c_str() + at + std::strlen("order_server on 127.0.0.1:"));
      p.recovered = std::atoll(out.c_str() + rec + std::strlen("serving: "));
      return p;
    }
    int status = 0;
    if (::waitpid(p.pid, &status, WNOHANG) == p.pid) {
      const std::string err = read_file(p.err_path);
      if (err.find("io_uring") != std::string::npos) {
        fmt::print("skipped: the server cannot use io_uring here: {}", err);
        std::exit(77);
      }
      throw failure(fmt::format("the server exited at start (status {}): {}", status, err));
    }
    std::this_thread::sleep_for(10ms);  // polling a file for a line: no race is hidden
  }
  ::kill(p.pid, SIGKILL);
  throw failure("the server did not start within 20 s");
}

int stop_server(server_process& p, int sig) {
  ::kill(p.pid, sig);
  int status = 0;
  ::waitpid(p.pid, &status, 0);
  return status;
}

// One client connection's history.
struct client_log {
  std::uint32_t id = 0;
  std::vector<op::new_order_msg> sent;  // index = client_order_id - 1
  std::vector<op::ack_msg> acks;        // in order
  std::string notice;                   // a notice frame's text, if one came
  std::string error;
};

int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const timeval tv{5, 0};  // a server that stops answering fails the round, never hangs it
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Closed loop, 8 orders in flight, until `stop` or the connection ends (the server was killed).
void run_client(client_log& c, int port, const std::atomic<bool>& stop, std::uint64_t seed) {
  const int fd = connect_to(port);
  if (fd < 0) {
    c.error = "connect failed";
    return;
  }
  std::mt19937_64 rng(seed);
  std::vector<std::byte> out, in;
  const auto send_orders = [&](std::size_t n) {
    out.clear();
    for (std::size_t i = 0; i < n; ++i) {
      op::new_order_msg m{};
      m.client_id = c.id;
      m.client_order_id = c.sent.size() + 1;
      m.side = static_cast<std::uint8_t>(rng() & 1);
      m.price = 1 + static_cast<std::uint32_t>(rng() % 200);
      m.qty = static_cast<std::uint32_t>(rng() % 1001);  // 0: rejected by design
      c.sent.push_back(m);
      op::append_frame(out, op::msg_type::new_order, m);
    }
    return ::send(fd, out.data(), out.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(out.size());
  };
  bool alive = send_orders(8);
  // Acquire: pairs with the release store of main.
  while (alive && !stop.load(std::memory_order_acquire)) {
    std::byte buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;  // killed (EOF / reset), or 5 s of silence (a failure: acks missing)
    in.insert(in.end(), buf, buf + n);
    std::size_t used = 0, acked = 0;
    while (in.size() - used >= sizeof(op::frame_header)) {
      const auto h = op::read_as<op::frame_header>(in.data() + used);
      if (in.size() - used < sizeof h + h.length) break;
      if (h.type == static_cast<std::uint8_t>(op::msg_type::notice)) {
        c.notice.assign(reinterpret_cast<const char*>(in.data() + used + sizeof h), h.length);
      } else if (h.type == static_cast<std::uint8_t>(op::msg_type::ack) &&
                 h.length == sizeof(op::ack_msg)) {
        c.acks.push_back(op::read_as<op::ack_msg>(in.data() + used + sizeof h));
        ++acked;
      } else {
        c.error = fmt::format("unexpected frame type {}", unsigned{h.type});
        alive = false;
        break;
      }
      used += sizeof h + h.length;
    }
    in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(used));
    if (alive && acked > 0) alive = send_orders(acked);
  }
  ::close(fd);
}

// Runs `clients` clients (ids from first_id) against the server until `stop_after`, then calls
// `stop_server` while they run (a kill -9 lands mid-load).
template <class StopServer>
std::vector<client_log> run_round(int port, std::uint32_t first_id, int clients,
                                  std::chrono::milliseconds stop_after, StopServer stop_server_fn,
                                  std::uint64_t seed) {
  std::vector<client_log> logs(static_cast<std::size_t>(clients));
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < logs.size(); ++i) {
    logs[i].id = first_id + static_cast<std::uint32_t>(i);
    threads.emplace_back(run_client, std::ref(logs[i]), port, std::cref(stop), seed + i);
  }
  std::this_thread::sleep_for(stop_after);  // the load runs this long before the stop lands
  stop_server_fn();
  stop.store(true, std::memory_order_release);  // pairs with the clients' acquire loads
  for (std::thread& t : threads) t.join();
  return logs;
}

// The client-side checks of one client's acks (in order, each for the next order).
void check_acks(const client_log& c, std::int64_t& max_acked_sequence,
                std::int64_t min_first_sequence) {
  for (std::size_t i = 0; i < c.acks.size(); ++i) {
    const op::ack_msg& a = c.acks[i];
    if (a.client_order_id != i + 1) {
      throw failure(
          fmt::format("client {}: ack {} is for order {}", c.id, i + 1, a.client_order_id));
    }
    if (a.server_sequence < min_first_sequence) {
      throw failure(
          fmt::format("client {}: order {} acked at sequence {}, below the {} "
                      "records recovered: the sequence did not continue",
                      c.id, a.client_order_id, a.server_sequence, min_first_sequence));
    }
    max_acked_sequence = std::max(max_acked_sequence, a.server_sequence);
  }
}

// Reads the whole journal and checks it against every client's history.
std::int64_t verify(const std::string& journal, const std::vector<client_log>& all) {
  std::map<std::uint32_t, const client_log*> by_id;
  for (const client_log& c : all) by_id[c.id] = &c;
  std::map<std::pair<std::uint32_t, std::uint64_t>, std::int64_t> where;  // order -> sequence
  std::map<std::uint32_t, std::uint64_t> last;                            // per client
  rondo::journal_reader reader(journal);
  std::int64_t next = 0;
  while (const std::optional<rondo::record_view> rec = reader.next()) {
    if (rec->sequence != next)
      throw failure(fmt::format("record {} after {}", rec->sequence, next - 1));
    if (rec->payload.size() != sizeof(op::journal_record)) {
      throw failure(fmt::format("record {}: {} bytes", next, rec->payload.size()));
    }
    const auto r = op::read_as<op::journal_record>(rec->payload.data());
    if (r.sequence != next) {
      throw failure(fmt::format("record {} holds an order stamped {}", next, r.sequence));
    }
    const auto it = by_id.find(r.client_id);
    if (it == by_id.end())
      throw failure(fmt::format("record {}: unknown client {}", next, r.client_id));
    const client_log& c = *it->second;
    if (r.client_order_id != last[r.client_id] + 1) {
      throw failure(fmt::format("record {}: client {} order {} after {} (a duplicate or a gap)",
                                next, r.client_id, r.client_order_id, last[r.client_id]));
    }
    last[r.client_id] = r.client_order_id;
    if (r.client_order_id > c.sent.size()) {
      throw failure(
          fmt::format("record {}: client {} never sent order {}", next, c.id, r.client_order_id));
    }
    const op::new_order_msg& m = c.sent[r.client_order_id - 1];
    if (r.price != m.price || r.qty != m.qty || r.side != m.side) {
      throw failure(fmt::format("record {}: client {} order {} is not what was sent", next, c.id,
                                r.client_order_id));
    }
    where[{r.client_id, r.client_order_id}] = next;
    ++next;
  }
  if (reader.torn_bytes() != 0) {
    throw failure(
        fmt::format("a torn tail of {} bytes after a clean shutdown", reader.torn_bytes()));
  }
  std::int64_t acked = 0;
  for (const client_log& c : all) {
    for (const op::ack_msg& a : c.acks) {
      const auto it = where.find({c.id, a.client_order_id});
      if (it == where.end()) {
        throw failure(fmt::format("client {}: order {} was acked but is not in the journal", c.id,
                                  a.client_order_id));
      }
      if (it->second != a.server_sequence) {
        throw failure(fmt::format("client {}: order {} acked at {} but journaled at {}", c.id,
                                  a.client_order_id, a.server_sequence, it->second));
      }
      ++acked;
    }
  }
  fmt::print(
      "journal verified: {} records, sequences 0..{} without a gap; all {} acked orders "
      "in it exactly once, intact, at their acked sequence\n",
      next, next - 1, acked);
  return next;
}

int kill_loop(const std::string& binary, int kills, std::uint64_t seed) {
  char tmpl[] = "/tmp/rondo-kill-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw failure("mkdtemp failed");
  const std::string dir = tmpl;
  const std::string journal = dir + "/journal";
  std::mt19937_64 rng(seed);
  std::vector<client_log> all;
  std::int64_t max_acked = -1;  // the highest acked sequence so far
  for (int round = 0; round <= kills; ++round) {
    server_process p = start_server(binary, dir, journal, round);
    if (p.recovered <= max_acked) {
      throw failure(fmt::format("round {}: {} records recovered, but sequence {} was acked", round,
                                p.recovered, max_acked));
    }
    const bool last = round == kills;
    const auto run_for = std::chrono::milliseconds(50 + static_cast<int>(rng() % 250));
    int status = 0;
    std::vector<client_log> logs = run_round(
        p.port, static_cast<std::uint32_t>(round * 10 + 1), 4, run_for,
        [&] { status = stop_server(p, last ? SIGTERM : SIGKILL); }, rng());
    std::int64_t acks = 0;
    for (const client_log& c : logs) {
      if (!c.error.empty())
        throw failure(fmt::format("round {} client {}: {}", round, c.id, c.error));
      check_acks(c, max_acked, p.recovered);
      acks += static_cast<std::int64_t>(c.acks.size());
    }
    if (last && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      throw failure(fmt::format("SIGTERM: the server did not drain and exit 0 (status {}): {}",
                                status, read_file(p.err_path)));
    }
    if (!last && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
      throw failure(fmt::format("round {}: the server was not killed (status {})", round, status));
    }
    fmt::print("round {:2}: {} records recovered, {} acks in {} ms, then {}\n", round, p.recovered,
               acks, run_for.count(), last ? "SIGTERM (drained, exit 0)" : "kill -9");
    all.insert(all.end(), logs.begin(), logs.end());
  }
  verify(journal, all);
  std::filesystem::remove_all(dir);
  return 0;
}

int journal_full(const std::string& binary) {
  char tmpl[] = "/tmp/rondo-full-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw failure("mkdtemp failed");
  const std::string dir = tmpl;
  const std::string journal = dir + "/journal";
  server_process p = start_server(binary, dir, journal, 0, 256 * 1024);
  // Enough orders to pass 256 KiB of journal (each record ~50 bytes framed): the client runs
  // until the server stops taking orders and hangs up.
  std::vector<client_log> logs = run_round(
      p.port, 1, 2, 4000ms, [] {}, 7);
  int status = 0;
  ::waitpid(p.pid, &status, 0);  // the server exits by itself
  const std::string err = read_file(p.err_path);
  const std::string out = read_file(p.out_path);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 1) {
    throw failure(fmt::format("the server's exit status is {} (expected exit 1): {}", status, err));
  }
  if (err.find("stopped taking orders") == std::string::npos ||
      err.find("File too large") == std::string::npos) {
    throw failure(fmt::format("the server's stderr does not say why it stopped: {}", err));
  }
  if (out.find("no more orders") == std::string::npos) {
    throw failure("the server did not log that it stopped taking orders");
  }
  bool told = false;
  for (const client_log& c : logs) {
    if (c.notice.find("File too large") != std::string::npos) told = true;
    std::int64_t ignored = -1;
    check_acks(c, ignored, 0);
  }
  if (!told) throw failure("no client got a notice naming the cause");
  // Every acked order is in the journal (recovery on a fresh read: the torn tail is allowed).
  std::map<std::pair<std::uint32_t, std::uint64_t>, bool> journaled;
  rondo::journal_reader reader(journal);
  std::int64_t records = 0;
  while (const auto rec = reader.next()) {
    const auto r = op::read_as<op::journal_record>(rec->payload.data());
    journaled[{r.client_id, r.client_order_id}] = true;
    ++records;
  }
  std::int64_t acked = 0;
  for (const client_log& c : logs) {
    for (const op::ack_msg& a : c.acks) {
      if (!journaled.count({c.id, a.client_order_id})) {
        throw failure(
            fmt::format("client {}: order {} acked but not journaled", c.id, a.client_order_id));
      }
      ++acked;
    }
  }
  fmt::print(
      "journal full: the server stopped taking orders (exit 1), the clients were told "
      "\"{}\"; {} acked orders all among the {} journaled records\n",
      logs[0].notice.empty() ? logs[1].notice : logs[0].notice, acked, records);
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: order_kill_test SERVER [--kills N] [--seed S] | --journal-full\n");
    return 2;
  }
  const std::string binary = argv[1];
  int kills = 12;
  std::uint64_t seed = 1;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--journal-full") return journal_full(binary);
    if (a == "--kills" && i + 1 < argc) kills = std::atoi(argv[++i]);
    if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
  }
  return kill_loop(binary, kills, seed);
} catch (const std::exception& e) {
  std::fprintf(stderr, "order_kill_test: FAILED: %s\n", e.what());
  return 1;
}
