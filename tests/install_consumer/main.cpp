#include <rondo/rondo.hpp>

#include <cstdio>

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
  return sum == 5050 ? 0 : 1;
}
