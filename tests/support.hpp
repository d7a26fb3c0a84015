#pragma once
// Shared test helpers: self-checking events and an exactly-once / in-order / after-dependencies
// recorder for stages.

#include <rondo/rondo.hpp>

#include <atomic>
#include <coroutine>
#include <exception>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace rondo_test {

/// spin_then_suspend with these spins and yields at every moment (g++ 12 warns about designated
/// initializers that leave members out, so tests build it this way).
inline rondo::spin_then_suspend suspend_policy(std::uint32_t spins, std::uint32_t yields) {
  rondo::spin_then_suspend p;
  p.spins = spins;
  p.yields = yields;
  return p;
}

/// The library's fire-and-forget coroutine; a test body records its own failures.
using detached = rondo::detached;

/// A payload derived from (producer, counter) so any stage can verify an event it reads.
constexpr std::int64_t check_of(std::int64_t producer, std::int64_t counter) noexcept {
  auto x = static_cast<std::uint64_t>(producer * 1'000'003 + counter);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return static_cast<std::int64_t>(x >> 1);
}

struct event {
  std::int64_t producer = -1;
  std::int64_t counter = -1;
  std::int64_t check = -1;

  void fill(std::int64_t p, std::int64_t c) noexcept {
    producer = p;
    counter = c;
    check = check_of(p, c);
  }
};

/// What one stage saw. Written by the stage's thread only; read by the test after drain (the
/// join makes it visible) or, for `last`, by downstream stages while running.
struct stage_record {
  explicit stage_record(int producers) : next_counter(static_cast<std::size_t>(producers), 0) {}
  std::vector<std::int64_t> next_counter;  // per producer: the counter expected next
  std::int64_t next_sequence = 0;
  std::int64_t handled = 0;
  std::int64_t errors = 0;  // any violation seen (bad payload, gap, reorder, early)
  std::string first_error;
  // Highest sequence this stage handled; downstream stages check theirs against it.
  std::atomic<std::int64_t> last{-1};
  std::vector<const stage_record*> deps;

  void fail(std::string why) {
    if (errors++ == 0) first_error = std::move(why);
  }

  void on_event(const event& e, std::int64_t seq) {
    if (seq != next_sequence) {
      fail("sequence " + std::to_string(seq) + " where " + std::to_string(next_sequence) +
           " was expected");
    }
    next_sequence = seq + 1;
    if (e.producer < 0 || e.producer >= static_cast<std::int64_t>(next_counter.size()) ||
        e.check != check_of(e.producer, e.counter)) {
      fail("corrupt payload at sequence " + std::to_string(seq));
    } else {
      auto& nc = next_counter[static_cast<std::size_t>(e.producer)];
      if (e.counter != nc) {
        fail("producer " + std::to_string(e.producer) + " counter " + std::to_string(e.counter) +
             " where " + std::to_string(nc) + " was expected");
      }
      nc = e.counter + 1;
    }
    for (const stage_record* d : deps) {
      // Pairs with the release store below in the upstream stage's handler: the upstream
      // stage handled seq before its position (and so our barrier) passed it.
      if (d->last.load(std::memory_order_acquire) < seq) {
        fail("sequence " + std::to_string(seq) + " handled before a dependency handled it");
      }
    }
    ++handled;
    // Pairs with the acquire load above in downstream stages.
    last.store(seq, std::memory_order_release);
  }
};

}  // namespace rondo_test
