// basic: the smallest rondo program. This thread publishes events into a ring; one stage, on a
// thread of its own, adds them up. drain() returns once the stage has handled every event.
#include <rondo/rondo.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <cstdio>

struct tick {
  std::int64_t value = 0;
};

int main() {
  constexpr std::int64_t n = 1'000'000;
  std::int64_t sum = 0;  // written by the stage's thread; read here after drain()

  // A stage's handler is called once per event with (event, sequence, end_of_batch).
  auto d = rondo::disruptor<tick>::builder()
               .capacity(1024)
               .wait(rondo::yielding{})
               .stage("sum", [&sum](tick& t, std::int64_t, bool) { sum += t.value; })
               .build();
  d.start();

  auto& pub = d.publisher();
  for (std::int64_t i = 0; i < n; i += 2) {
    auto c = pub.reserve(1);  // claim a slot (waits while the ring is full)
    c[0].value = c.first();   // fill it in place
    c.publish();              // now the stage may see it
    pub.publish_event([](tick& t, std::int64_t seq) { t.value = seq; });  // the same, in one call
  }
  d.drain();  // handle everything published, then stop the stage

  fmt::print("published {} events, sum = {}\n", n, sum);
  if (sum != n * (n - 1) / 2) {
    fmt::print(stderr, "wrong sum: expected {}\n", n * (n - 1) / 2);
    return 1;
  }
}
