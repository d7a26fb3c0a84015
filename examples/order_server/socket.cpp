// Loopback TCP for the server and the load generator (socket.hpp): the listening socket and
// TCP_NODELAY.
#include "socket.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace order_server {

void set_nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // small frames: no Nagle
}

int listen_on_loopback(int port, sockaddr_in& addr) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  socklen_t len = sizeof addr;
  auto* sa = reinterpret_cast<sockaddr*>(&addr);
  if (fd < 0 || ::bind(fd, sa, sizeof addr) != 0 || ::listen(fd, 128) != 0 ||
      ::getsockname(fd, sa, &len) != 0) {
    throw std::runtime_error(
        fmt::format("listen on 127.0.0.1:{}: {}", port, std::strerror(errno)));
  }
  return fd;
}

}  // namespace order_server
