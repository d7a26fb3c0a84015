// rondo::jetstream from the installed package: a connection to a port nobody listens on must
// fail with jetstream::error naming the server.
#include <rondo/jetstream.hpp>

#include <cstdio>
#include <string>

int main() {
  try {
    rondo::jetstream::connection c({.servers = "nats://127.0.0.1:1",
                                    .timeout = std::chrono::milliseconds(200)});
  } catch (const rondo::jetstream::error& e) {
    const bool names = std::string(e.what()).find("127.0.0.1:1") != std::string::npos;
    std::printf("rondo::jetstream links; unreachable server: %s\n", e.what());
    return names ? 0 : 1;
  }
  return 1;
}
