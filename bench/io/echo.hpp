#pragma once
// The TCP echo benchmark's shared parts: its sizes and timings, the message, the servers'
// report, and the client and the raw liburing server that echo_bench.cpp runs.
#include "io_bench_support.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace rondo_io_bench {

constexpr int echo_connections = 16;
constexpr std::size_t message_size = 64;
constexpr auto echo_warmup = 200ms;
constexpr auto echo_measured = 1000ms;
constexpr auto echo_stall = std::chrono::seconds(5);  // no completion this long: failed

using message = std::array<std::byte, message_size>;

inline void set_nodelay(int fd) noexcept {
  const int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// What a server thread reports after it was joined.
struct echo_server_report {
  std::string error;
  std::int64_t epoll_waits = -1;  // the foreign-epoll server only
  std::int64_t epoll_timeouts = 0;
  std::int64_t driver_polls = -1;  // the Asio-driven server only
  std::int64_t driver_waits = 0;
};

// ---- The client (echo_client.cpp): 16 sockets on one ring of its own, one message outstanding
// per socket.

struct echo_client_report {
  std::int64_t messages = 0;  // replies completed inside the measured window
  double seconds = 0;
  std::string error;
};

// Connects 16 sockets to 127.0.0.1:port and runs the closed loop: 0.2 s warm-up, 1 s measured,
// then a drain; closing its sockets at the end is the servers' shutdown signal.
echo_client_report run_echo_client(std::uint16_t port);

// user_data of the client's and the raw server's operations: connection * 2 + tag.
constexpr std::uint64_t tag_send = 0;
constexpr unsigned cqe_batch = 64;  // completions reaped per peek
constexpr std::uint64_t tag_recv = 1;

// ---- The raw liburing server (echo_raw_server.cpp): the same loop as rondo's, by hand.
void raw_echo_server(int listen_fd, echo_server_report& rep);

}  // namespace rondo_io_bench
