#include <rondo/rondo.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <system_error>

int main() {
  std::int64_t sum = 0;
  auto d = rondo::disruptor<std::int64_t>::builder()
               .capacity(64)
               .wait(rondo::yielding{})
               .stage("sum", [&sum](std::int64_t& v, std::int64_t, bool) { sum += v; })
               .build();
  d.start();
  for (std::int64_t i = 1; i <= 100; ++i) {
    d.publisher().publish_event([i](std::int64_t& v, std::int64_t) { v = i; });
  }
  d.drain();
  // fmt comes with rondo::rondo (find_dependency in the package config): include path, link
  // and rondo's formatters.
  fmt::print("installed rondo works: sum = {}; {}\n", sum, d.metrics("sum"));
  // The compiled part (the io_uring executor) links and runs, where the host allows io_uring.
  try {
    rondo::io_context io;
    fmt::print("io_context up (setup flags {:#x})\n", io.setup_flags());
  } catch (const std::system_error& e) {
    fmt::print("io_context unavailable here: {}\n", e.what());
  }
  return sum == 5050 ? 0 : 1;
}
