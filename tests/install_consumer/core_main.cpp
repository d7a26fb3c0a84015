// rondo::core alone (no liburing anywhere, neither at configure nor at link time): a disruptor
// with two thread stages, the second after the first, checked for every event in order.
// Includes only headers of the core layers (rondo/disruptor.hpp: dsl, core, coro, detail).
#include <rondo/disruptor.hpp>

#include <fmt/format.h>

#include <cstdint>

namespace {
struct event {
  std::int64_t value = 0;
  std::int64_t doubled = 0;
};
}  // namespace

int main() {
  constexpr std::int64_t n = 1000;
  std::int64_t sum = 0;
  std::int64_t out_of_order = 0;
  std::int64_t expected_next = 1;
  auto d = rondo::disruptor<event>::builder()
               .capacity(64)
               .stage("double", [](event& e, std::int64_t, bool) { e.doubled = 2 * e.value; })
               .stage(
                   "check",
                   [&](event& e, std::int64_t, bool) {
                     if (e.value != expected_next || e.doubled != 2 * e.value) ++out_of_order;
                     expected_next = e.value + 1;
                     sum += e.doubled;
                   },
                   rondo::after("double"))
               .build();
  d.start();
  for (std::int64_t i = 1; i <= n; ++i) {
    d.publisher().publish_event([i](event& e, std::int64_t) { e.value = i; });
  }
  d.drain();
  const bool ok = sum == n * (n + 1) && out_of_order == 0;
  fmt::print("rondo::core consumer (threads only): sum = {}, out of order = {}: {}\n", sum,
             out_of_order, ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
