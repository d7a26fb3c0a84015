// fanout: multicast. Every stage sees every event: three independent stages on their own
// threads each compute something different from the same stream, and a poller stage ("audit")
// is driven from this thread with the pull API, d.poller(name).poll(handler), which handles
// what is available and returns at once instead of waiting.
//
//              ┌─▶ sum
//   producer ──┼─▶ max
//              ├─▶ histogram
//              └─▶ audit (polled by main)
#include <rondo/rondo.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <thread>

struct sample {
  std::int64_t value = 0;
};

static std::int64_t value_of(std::int64_t seq) {
  return seq * 7919 % 1000;
}

int main() {
  constexpr std::int64_t n = 300'000;
  std::int64_t sum = 0, top = 0;
  std::array<std::int64_t, 10> histogram{};  // by hundreds

  auto count = [&](sample& s, std::int64_t, bool) {
    ++histogram[static_cast<std::size_t>(s.value / 100)];
  };

  // More threads than cores: waiting stages yield the core rather than spin.
  auto d = rondo::disruptor<sample>::builder()
               .capacity(1024)
               .wait(rondo::yielding{})
               .stage("sum", [&](sample& s, std::int64_t, bool) { sum += s.value; })
               .stage("max", [&](sample& s, std::int64_t, bool) { top = std::max(top, s.value); })
               .stage("histogram", count)
               .poller("audit")
               .build();
  d.start();

  // The poller is a terminal stage like the others: the producer cannot lap it, so this thread
  // must keep polling while another thread publishes.
  std::thread producer([&pub = d.publisher()] {
    for (std::int64_t i = 0; i < n; ++i) {
      pub.publish_event([](sample& s, std::int64_t seq) { s.value = value_of(seq); });
    }
  });

  rondo::event_poller<sample>& audit = d.poller("audit");
  std::int64_t audited = 0, bad = 0, idle_polls = 0;
  while (audited < n) {
    const auto state = audit.poll([&](const sample& s, std::int64_t seq, bool) {
      if (s.value != value_of(seq)) ++bad;
      ++audited;
      return true;  // keep going; false would end this poll() after this event
    });
    if (state != rondo::poll_state::processing) {
      ++idle_polls;
      std::this_thread::yield();  // a real loop would do other work here
    }
  }
  producer.join();
  d.drain();

  std::int64_t expected_sum = 0, expected_max = 0, counted = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    expected_sum += value_of(i);
    expected_max = std::max(expected_max, value_of(i));
  }
  for (std::int64_t c : histogram) counted += c;
  fmt::print("sum {}, max {}, histogram[0..2] {} {} {} (total {})\n", sum, top, histogram[0],
             histogram[1], histogram[2], counted);
  fmt::print("audit polled {} events, {} bad, {} empty polls\n", audited, bad, idle_polls);
  if (sum != expected_sum || top != expected_max || counted != n || audited != n || bad != 0) {
    fmt::print(stderr, "wrong result: expected sum {}, max {}, {} events everywhere\n",
               expected_sum, expected_max, n);
    return 1;
  }
}
