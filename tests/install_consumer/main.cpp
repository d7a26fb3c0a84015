#include <rondo/rondo.hpp>

#include <cstdio>
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
  std::printf("installed rondo works: sum = %lld\n", static_cast<long long>(sum));
  // The compiled part (the io_uring executor) links and runs, where the host allows io_uring.
  try {
    rondo::io_context io;
    std::printf("io_context up (setup flags 0x%x)\n", io.setup_flags());
  } catch (const std::system_error& e) {
    std::printf("io_context unavailable here: %s\n", e.what());
  }
  return sum == 5050 ? 0 : 1;
}
