#include <rondo/core/wait_strategy.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <limits>
#include <chrono>
#include <thread>

using namespace std::chrono_literals;

namespace {
std::vector<rondo::wait_config> all_strategies() {
  return {rondo::busy_spin{}, rondo::yielding{.spins = 10},
          rondo::sleeping{.spins = 10, .yields = 10, .sleep = 10us}, rondo::blocking{.spins = 10}};
}
}  // namespace

TEST_CASE("a ready condition returns at once, stop is reported", "[wait_strategy][deterministic]") {
  for (const auto& cfg : all_strategies()) {
    rondo::wait_strategy w{cfg};
    CHECK(w.wait([] { return true; }, [] { return false; }) == rondo::wait_status::ready);
    CHECK(w.wait([] { return false; }, [] { return true; }) == rondo::wait_status::stopped);
    CHECK(w.is_blocking() == std::holds_alternative<rondo::blocking>(cfg));
  }
}

TEST_CASE("timed variants time out", "[wait_strategy][deterministic]") {
  const std::vector<rondo::wait_config> timed{
      rondo::busy_spin{.timeout = 1ms}, rondo::yielding{.spins = 10, .timeout = 1ms},
      rondo::sleeping{.spins = 1, .yields = 1, .sleep = 50us, .timeout = 1ms},
      rondo::blocking{.spins = 10, .timeout = 1ms}};
  for (const auto& cfg : timed) {
    rondo::wait_strategy w{cfg};
    CHECK(w.timeout() == 1ms);
    CHECK(w.wait([] { return false; }, [] { return false; }) == rondo::wait_status::timed_out);
    const auto deadline = rondo::wait_strategy::clock::now() + 1ms;
    CHECK(w.wait_until([] { return false; }, [] { return false; }, deadline) ==
          rondo::wait_status::timed_out);
    CHECK(rondo::wait_strategy::clock::now() >= deadline);
  }
}

// Lost wake-up stress: a waiter blocks until a flag is set by another thread, which signals once
// after setting it. If the protocol lost a wake-up the waiter would sleep until the 10 s guard
// deadline and report timed_out. Forbidden outcome count: zero.
TEST_CASE("blocking: a signal racing with the waiter's registration is never lost",
          "[wait_strategy][stress]") {
  rondo::wait_strategy w{rondo::blocking{.spins = 0}};
  constexpr int rounds = 20000;
  std::atomic<int> value{0};
  std::atomic<int> ack{0};
  long lost = 0;
  std::thread signaller([&] {
    for (int r = 1; r <= rounds; ++r) {
      // Wait for the waiter to be done with the previous round.
      // Pairs with the release store of ack below.
      while (ack.load(std::memory_order_acquire) != r - 1) std::this_thread::yield();
      // Pairs with the acquire load in the waiter's ready().
      value.store(r, std::memory_order_release);
      w.signal(std::numeric_limits<std::int64_t>::max());
    }
  });
  for (int r = 1; r <= rounds; ++r) {
    const auto st = w.wait_until(
        [&] {
          // Pairs with the release store in the signaller.
          return value.load(std::memory_order_acquire) >= r;
        },
        [] { return false; }, rondo::wait_strategy::clock::now() + 10s);
    if (st != rondo::wait_status::ready) ++lost;
    // Pairs with the signaller's acquire load.
    ack.store(r, std::memory_order_release);
  }
  signaller.join();
  CHECK(lost == 0);
}

TEST_CASE("wake_all releases every blocked waiter", "[wait_strategy][deterministic]") {
  rondo::wait_strategy w{rondo::blocking{.spins = 0}};
  std::atomic<bool> stop{false};
  std::atomic<int> returned{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; ++i) {
    ts.emplace_back([&] {
      const auto st = w.wait([] { return false; },
                             [&] {
                               // Pairs with the release store below.
                               return stop.load(std::memory_order_acquire);
                             });
      if (st == rondo::wait_status::stopped) returned.fetch_add(1, std::memory_order_relaxed);
    });
  }
  // Pairs with the acquire loads in the stop predicates.
  stop.store(true, std::memory_order_release);
  w.wake_all();
  for (auto& t : ts) t.join();
  CHECK(returned.load(std::memory_order_relaxed) == 3);
}
