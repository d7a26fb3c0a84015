#pragma once
// The order server's clock: steady-clock nanosecond stamps (orders, acks and latencies carry
// them) and main's polling wait.
#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>

namespace order_server {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

inline std::int64_t ns_of(steady::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
inline std::int64_t now_ns() { return ns_of(steady::now()); }

// Sleeps in small steps until done() or the deadline; false on the deadline.
inline bool wait_until(const std::function<bool()>& done, steady::time_point deadline) {
  while (!done()) {
    if (steady::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

}  // namespace order_server
