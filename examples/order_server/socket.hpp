#pragma once
// Loopback TCP for the server and the load generator: the listening socket and TCP_NODELAY
// (socket.cpp).
#include <netinet/in.h>

namespace order_server {

void set_nodelay(int fd);

// A listening socket on 127.0.0.1:port (0: any free port); addr receives the address it got.
// Throws std::runtime_error naming the port and the error.
int listen_on_loopback(int port, sockaddr_in& addr);

}  // namespace order_server
