// multiwriter: producer_type::multi lets several threads publish into one ring. Three producer
// threads tag each event with their id and a per-producer counter; one consumer checks that it
// sees every event exactly once and each producer's events in the order they were published.
#include <rondo/rondo.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

struct message {
  int producer = 0;
  std::int64_t counter = 0;
};

int main() {
  constexpr int producers = 3;
  constexpr std::int64_t per_producer = 100'000;
  std::array<std::int64_t, producers> seen{};  // next counter expected from each producer
  std::int64_t out_of_order = 0;

  // More threads than cores: waiting stages yield the core rather than spin.
  auto d = rondo::disruptor<message>::builder()
               .capacity(1024)
               .producers(rondo::producer_type::multi)
               .wait(rondo::yielding{})
               .stage("check",
                      [&](message& m, std::int64_t, bool) {
                        auto& next = seen[static_cast<std::size_t>(m.producer)];
                        if (m.counter != next) ++out_of_order;
                        next = m.counter + 1;
                      })
               .build();
  d.start();

  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&pub = d.publisher(), p] {
      // Producer p claims p + 1 slots at a time, so claims of different sizes interleave.
      const std::int64_t step = p + 1;
      for (std::int64_t i = 0; i < per_producer; i += step) {
        auto claim = pub.reserve(std::min(step, per_producer - i));
        std::int64_t counter = i;
        for (auto [seq, m] : claim) m = message{p, counter++};
        claim.publish();
      }
    });
  }
  for (auto& t : threads) t.join();
  d.drain();

  bool ok = out_of_order == 0;
  for (int p = 0; p < producers; ++p) {
    const std::int64_t got = seen[static_cast<std::size_t>(p)];
    fmt::print("producer {}: {} events\n", p, got);
    ok = ok && got == per_producer;
  }
  if (!ok) {
    fmt::print(stderr, "wrong result: {} events out of order, missing or repeated\n", out_of_order);
    return 1;
  }
  fmt::print("all {} sequences seen exactly once, each producer's in order\n",
             d.metrics().front().position + 1);
}
