// batch: batching on both sides of the ring.
//  - The producer reserves 16 slots at a time and fills them with `for (auto [seq, ev] : claim)`.
//  - "writer" buffers events and flushes the buffer when end_of_batch says the batch it took
//    from the ring is over (the Disruptor's way to amortise a write or a syscall).
//  - "stats" is a class handler with the optional hooks on_start, on_batch_start and
//    on_shutdown, and stage_options{.max_batch = 64} caps the batches it is given.
#include <rondo/rondo.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

struct reading {
  std::int64_t value = 0;
};

// What each stage reports; the handlers are moved into the disruptor, so they write here.
struct writer_report {
  std::int64_t flushes = 0, written = 0, total = 0;
};
struct stats_report {
  bool started = false;
  std::int64_t batches = 0, largest = 0, sized = 0, events = 0;  // sized: sum of batch sizes
};

class batch_stats {
 public:
  explicit batch_stats(stats_report& out) : out_(&out) {}
  void on_start() { out_->started = true; }
  void on_batch_start(std::int64_t size) {
    ++batches_;
    sized_ += size;
    largest_ = std::max(largest_, size);
  }
  void operator()(const reading&, std::int64_t, bool) { ++events_; }
  void on_shutdown() { *out_ = {out_->started, batches_, largest_, sized_, events_}; }

 private:
  stats_report* out_;
  std::int64_t batches_ = 0, largest_ = 0, sized_ = 0, events_ = 0;
};

int main() {
  constexpr std::int64_t n = 1 << 18, claim_size = 16, max_batch = 64;
  writer_report wr;
  stats_report st;

  std::vector<std::int64_t> buffer;  // the writer's; this thread reads it only after drain()
  auto writer = [&](reading& r, std::int64_t, bool end_of_batch) {
    buffer.push_back(r.value);
    if (!end_of_batch) return;
    for (std::int64_t v : buffer) wr.total += v;  // "write" the whole buffer at once
    wr.written += static_cast<std::int64_t>(buffer.size());
    ++wr.flushes;
    buffer.clear();
  };

  auto d = rondo::disruptor<reading>::builder()
               .capacity(256)
               .wait(rondo::blocking{})
               .stage("writer", writer)
               .stage("stats", batch_stats{st}, rondo::stage_options{.max_batch = max_batch})
               .build();
  d.start();

  auto& pub = d.publisher();
  for (std::int64_t i = 0; i < n; i += claim_size) {
    auto claim = pub.reserve(claim_size);
    for (auto [seq, ev] : claim) ev.value = 3 * seq;
    claim.publish();
  }
  d.drain();

  fmt::print("writer: {} events in {} flushes ({} per flush on average)\n", wr.written,
             wr.flushes, wr.written / std::max<std::int64_t>(wr.flushes, 1));
  fmt::print("stats:  {} events in {} batches, largest {} (max_batch {})\n", st.events,
             st.batches, st.largest, max_batch);
  const std::int64_t expected = 3 * n * (n - 1) / 2;
  if (wr.written != n || wr.total != expected || !buffer.empty() || !st.started || st.events != n ||
      st.sized != n || st.largest > max_batch || st.largest < 1) {
    fmt::print(stderr, "wrong result: expected {} events totalling {}\n", n, expected);
    return 1;
  }
}
