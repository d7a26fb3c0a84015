// rondo::jetstream's rondo side without a cluster: the source pump, the sink stage's rounds
// (acks from another thread, failed rounds, rounds nobody answers, giving up) and the ack stage,
// against fake engines that check the contract: nothing acknowledged before it is stored, the
// output exactly once and in order, never more messages outside the broker than the ring holds.
// Also the errors for bad input. Exits 77 when the host refuses io_uring (CTest: skipped).
#include <rondo/io/runtime.hpp>
#include <rondo/jetstream.hpp>
#include <rondo/rondo.hpp>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace js = rondo::jetstream;

namespace {

int g_failures = 0;
void check(bool ok, const std::string& what) {
  if (!ok) {
    std::printf("FAIL: %s\n", what.c_str());
    ++g_failures;
  }
}

// The output "stream": what the fake sink stored, in order.
struct output {
  std::mutex mu;
  std::vector<std::pair<std::uint64_t, std::string>> stored;
  std::uint64_t last() {
    std::lock_guard lk(mu);
    return stored.empty() ? 0 : stored.back().first;
  }
};

class fake_source final : public js::source_engine {
 public:
  fake_source(std::uint64_t n, output& out, std::int64_t ring) : n_(n), out_(&out), ring_(ring) {
    for (std::uint64_t i = 1; i <= n; ++i) data_.push_back(fmt::format("m{}", i));
  }
  std::size_t fetch(std::span<js::inbound> out, std::chrono::milliseconds) override {
    // Between 1 and out.size() messages (a broker hands out what it has).
    const std::size_t want = 1 + (next_ * 7) % out.size();
    std::size_t k = 0;
    while (k < want && next_ <= n_) {
      js::inbound& m = out[k++];
      m.sequence = next_;
      m.subject = "in.0";
      m.data = data_[next_ - 1];
      m.handle = &data_[next_ - 1];
      ++next_;
      // Relaxed: counters; the check below is a bound, read on this thread.
      const auto held = outstanding_.fetch_add(1, std::memory_order_relaxed) + 1;
      if (held > max_held_) max_held_ = held;
    }
    if (k == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return k;
  }
  void commit(const js::inbound& last) noexcept override {
    // Nothing acknowledged that the output does not hold.
    // Relaxed flags and counters below: read after the pipeline is joined.
    if (last.sequence > out_->last()) bad_commit_.store(true, std::memory_order_relaxed);
    if (last.sequence < committed_.load(std::memory_order_relaxed)) {
      bad_commit_.store(true, std::memory_order_relaxed);  // a flag, read after join
    }
    committed_.store(last.sequence, std::memory_order_release);  // pairs with committed()
  }
  void release(js::inbound& m) noexcept override {
    if (m.handle != nullptr) {
      outstanding_.fetch_sub(1, std::memory_order_relaxed);  // a counter
      released_.fetch_add(1, std::memory_order_relaxed);  // a counter
    }
    m = js::inbound{};
  }
  [[nodiscard]] js::source_stats stats() const noexcept override { return {}; }

  // Acquire: pairs with commit()'s release store.
  std::uint64_t committed() const { return committed_.load(std::memory_order_acquire); }
  // Relaxed: read after join (the pump and the ack stage are done).
  std::uint64_t released() const { return released_.load(std::memory_order_relaxed); }
  bool bad_commit() const { return bad_commit_.load(std::memory_order_relaxed); }
  std::int64_t max_held() const { return max_held_; }
  std::int64_t ring() const { return ring_; }

 private:
  std::uint64_t n_;
  output* out_;
  std::int64_t ring_;
  std::vector<std::string> data_;
  std::uint64_t next_ = 1;
  std::atomic<std::int64_t> outstanding_{0};
  std::int64_t max_held_ = 0;
  std::atomic<std::uint64_t> committed_{0};
  std::atomic<std::uint64_t> released_{0};
  std::atomic<bool> bad_commit_{false};
};

// The broker side of the sink: a thread that stores records in order and reports them, failing
// some rounds part way (storing a prefix) and leaving one round unanswered.
class fake_sink final : public js::sink_engine {
 public:
  enum class mode { flaky, dead };
  fake_sink(output& out, mode m) : out_(&out), mode_(m), worker_([this] { run(); }) {}
  ~fake_sink() override {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  void publish(std::span<const js::publish_record> records, js::publish_completion& done) override {
    ++rounds_;
    std::lock_guard lk(mu_);
    for (std::size_t i = 0; i < records.size(); ++i) {
      bool fail = mode_ == mode::dead || (rounds_ % 5 == 2 && i >= records.size() / 2);
      const bool silent = mode_ == mode::flaky && rounds_ == 4 && i + 1 == records.size();
      work_.push_back({records[i].input_sequence, std::string(records[i].payload), i, &done, fail,
                       silent});
    }
    cv_.notify_all();
  }
  void recover() override { known_ = out_->last(); }
  // The engine contract: every record not reported yet is reported now, as failed. That is the
  // unanswered ones and those still queued for the worker (on a loaded machine the worker may
  // not have reached them; leaving them to it made the dead-broker case time out instead of
  // give up with its reason). The worker reports outside the lock only what it already took.
  void abandon() override {
    std::lock_guard lk(mu_);
    for (auto& w : silent_) w.done->record_done(w.index, false);
    for (auto& w : work_) w.done->record_done(w.index, false);
    abandoned_ += silent_.size() + work_.size();
    silent_.clear();
    work_.clear();
  }
  [[nodiscard]] std::uint64_t last_stored_input() const noexcept override { return known_; }
  [[nodiscard]] std::string last_error() const override { return "fake broker said no"; }
  [[nodiscard]] js::sink_stats stats() const noexcept override { return {}; }
  std::size_t abandoned() const { return abandoned_; }

 private:
  struct item {
    std::uint64_t input;
    std::string payload;
    std::size_t index;
    js::publish_completion* done;
    bool fail, silent;
  };
  void run() {
    std::unique_lock lk(mu_);
    for (;;) {
      cv_.wait(lk, [this] { return stop_ || !work_.empty(); });
      if (stop_) return;
      item w = std::move(work_.front());
      work_.pop_front();
      if (w.silent) {
        silent_.push_back(w);
        continue;
      }
      // The order guard's rule: stored only right after its predecessor (inputs here are
      // 1..n); a duplicate is dropped and reported stored; a failure stores nothing.
      bool stored = false;
      if (!w.fail) {
        std::lock_guard ok(out_->mu);
        const std::uint64_t last = out_->stored.empty() ? 0 : out_->stored.back().first;
        if (w.input <= last) {
          stored = true;
        } else if (w.input == last + 1) {
          out_->stored.emplace_back(w.input, w.payload);
          stored = true;
        }
      }
      lk.unlock();
      w.done->record_done(w.index, stored);
      lk.lock();
    }
  }

  output* out_;
  mode mode_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<item> work_;
  std::vector<item> silent_;
  bool stop_ = false;
  std::uint64_t known_ = 0;
  int rounds_ = 0;
  std::size_t abandoned_ = 0;
  std::thread worker_;
};

struct work {};
using ev = js::event<work>;

void pipeline_exactly_once() {
  constexpr std::uint64_t n = 20000;
  constexpr std::int64_t ring = 64;
  output out;
  fake_source src(n, out, ring);
  fake_sink snk(out, fake_sink::mode::flaky);
  js::sink<work> sink(snk, {.give_up_after = std::chrono::seconds(20),
                            .retry_backoff = std::chrono::milliseconds(1),
                            .round_timeout = std::chrono::milliseconds(50)});
  rondo::runtime rt(1);
  auto d = rondo::disruptor<ev>::builder()
               .capacity(ring)
               .executor(rt)
               .stage("compute",
                      [](ev& e, std::int64_t, bool) { e.out = fmt::format("r:{}", e.in.data); })
               .stage("sink", sink.handler(), rondo::after("compute"))
               .stage("ack", js::ack_handler<work>(src), rondo::after("sink"))
               .build();
  d.start();
  js::source_pump<work> pump(src, {.max_fetch = 16});
  pump.start(d.publisher());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (src.committed() < n && std::chrono::steady_clock::now() < deadline && !pump.finished()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pump.stop();
  d.drain();
  d.join();
  check(src.committed() == n, fmt::format("committed {} of {}", src.committed(), n));
  check(src.released() == n, fmt::format("released {} of {}", src.released(), n));
  check(!src.bad_commit(), "a commit before its result was stored, or going backwards");
  check(src.max_held() <= ring,
        fmt::format("{} messages outside the broker, ring {}", src.max_held(), ring));
  check(snk.abandoned() >= 1, "the unanswered round was not abandoned");
  bool in_order = out.stored.size() == n;
  for (std::size_t i = 0; in_order && i < out.stored.size(); ++i) {
    in_order = out.stored[i].first == i + 1 && out.stored[i].second == fmt::format("r:m{}", i + 1);
  }
  check(in_order, fmt::format("output not exactly once in order ({} stored)", out.stored.size()));
  std::printf("fake broker: %llu events exactly once, in order; %zu abandoned; at most %lld "
              "outside the broker (ring %lld)\n",
              static_cast<unsigned long long>(n), snk.abandoned(),
              static_cast<long long>(src.max_held()), static_cast<long long>(ring));
}

void dead_broker_gives_up() {
  output out;
  fake_source src(5000, out, 64);
  fake_sink snk(out, fake_sink::mode::dead);
  js::sink<work> sink(snk, {.give_up_after = std::chrono::milliseconds(200),
                            .retry_backoff = std::chrono::milliseconds(5),
                            .round_timeout = std::chrono::milliseconds(50)});
  rondo::runtime rt(1);
  auto d = rondo::disruptor<ev>::builder()
               .capacity(64)
               .executor(rt)
               .stage("compute", [](ev& e, std::int64_t, bool) { e.out = "x"; })
               .stage("sink", sink.handler(), rondo::after("compute"))
               .stage("ack", js::ack_handler<work>(src), rondo::after("sink"))
               .build();
  d.start();
  js::source_pump<work> pump(src, {.max_fetch = 16});
  pump.start(d.publisher());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!pump.finished() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  check(pump.finished(), "the pump did not stop when the sink gave up");
  pump.stop();
  const auto rep = d.close();
  std::string why;
  try {
    d.join();
  } catch (const std::exception& e) {
    why = e.what();
  }
  check(rep.failed_stages == 1 && rep.unprocessed > 0,
        fmt::format("close report: failed {}, unprocessed {}", rep.failed_stages,
                    rep.unprocessed));
  check(why.find("not stored after") != std::string::npos &&
            why.find("fake broker said no") != std::string::npos,
        "the error does not say what was not stored and why: " + why);
  check(src.committed() == 0 && out.stored.empty(), "acknowledged input that was not stored");
  std::printf("dead broker: the sink halts with \"%s\"; close report: published %lld, "
              "unprocessed %lld, failed stages %d; nothing acknowledged\n",
              why.c_str(), static_cast<long long>(rep.published),
              static_cast<long long>(rep.unprocessed), rep.failed_stages);
}

template <class E, class F>
void expect_throw(const char* what, const std::string& needle, F&& f) {
  try {
    f();
  } catch (const E& e) {
    check(std::string(e.what()).find(needle) != std::string::npos,
          fmt::format("{}: message '{}' lacks '{}'", what, e.what(), needle));
    return;
  }
  check(false, fmt::format("{}: no exception", what));
}

void bad_input() {
  output out;
  fake_source src(1, out, 64);
  fake_sink snk(out, fake_sink::mode::flaky);
  expect_throw<std::invalid_argument>("max_fetch 0", "max_fetch 0", [&] {
    js::source_pump<work> p(src, {.max_fetch = 0});
  });
  expect_throw<std::invalid_argument>("round_timeout 0", "round_timeout 0 ms", [&] {
    js::sink<work> s(snk, {.round_timeout = std::chrono::milliseconds(0)});
  });
  expect_throw<std::invalid_argument>("no servers", "no server in ''", [] {
    js::connection c({.servers = ""});
  });
  expect_throw<js::error>("unreachable", "nats://127.0.0.1:1", [] {
    js::connection c({.servers = "nats://127.0.0.1:1", .timeout = std::chrono::milliseconds(200)});
  });
  std::printf("bad input: clear errors naming the value\n");
}

}  // namespace

int main() {
  try {
    rondo::io_context probe;
  } catch (const std::system_error& e) {
    std::printf("io_uring refused (%s): skipped\n", e.what());
    return 77;
  }
  bad_input();
  pipeline_exactly_once();
  dead_broker_gives_up();
  if (g_failures > 0) {
    std::printf("%d checks failed\n", g_failures);
    return 1;
  }
  std::printf("PASS\n");
  return 0;
}
