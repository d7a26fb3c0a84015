// Slot stamps (core/slot_stamp.hpp, builder::stamps): the stages right behind a single producer
// wait on the event's own line instead of the cursor. What must hold: a stamped barrier sees a
// sequence only once its stamp is written (never by the cursor alone), assigning events leaves
// the stamps alone, every kind of head stage sees every event exactly once and in order, and the
// configurations that cannot work are refused with a message naming the problem.

#include <rondo/disruptor.hpp>

#include "support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using rondo_test::event;
using rondo_test::stage_record;

constexpr std::int64_t scale = RONDO_TSAN ? 8 : 1;

// The test event plus a stamp; `fill` assigns a whole event, as users do.
struct stamped_event {
  event e;
  rondo::slot_stamp stamp;
};

}  // namespace

TEST_CASE("slot stamps: a copy starts unpublished and assignment leaves the stamp",
          "[stamps][deterministic]") {
  rondo::slot_stamp a;
  CHECK(a.published() == rondo::initial_sequence);
  a.mark(41);
  const rondo::slot_stamp b = a;
  CHECK(b.published() == rondo::initial_sequence);
  rondo::slot_stamp c;
  c.mark(7);
  c = a;
  CHECK(c.published() == 7);

  rondo::ring_buffer<stamped_event> ring(4);
  ring.use_stamps(&stamped_event::stamp);
  REQUIRE(ring.stamped());
  ring.write_stamps(3, 6);  // wraps: slots 3, 0, 1, 2
  const rondo::slot_stamps s = ring.stamps();
  CHECK(s.at(3).published() == 3);
  CHECK(s.at(4).published() == 4);
  CHECK(s.at(6).published() == 6);
  ring[5] = stamped_event{};  // a whole-event assignment, as a producer's fill does
  CHECK(s.at(5).published() == 5);
}

TEST_CASE("slot stamps: a stamped barrier sees a sequence by its stamp, not by the cursor",
          "[stamps][deterministic]") {
  rondo::wait_strategy waits{rondo::busy_spin{}};
  rondo::ring_buffer<stamped_event> ring(16);
  ring.use_stamps(&stamped_event::stamp);
  rondo::single_producer_sequencer seqr(16, waits);
  rondo::sequence_barrier barrier(seqr);
  barrier.use_stamps(ring.stamps());
  REQUIRE(barrier.stamped());

  // Published through the sequencer alone: the cursor moved, no stamp was written.
  const std::int64_t hi = seqr.reserve(3);
  seqr.publish(hi - 2, hi);
  CHECK(seqr.cursor().get() == 2);
  CHECK(barrier.available(0) == -1);

  // One stamp: exactly that sequence, without a batch (the cursor is not consulted).
  ring.write_stamps(0, 0);
  CHECK(barrier.available(0) == 0);
  // Two: a batch is forming, and the cursor says how far it goes.
  ring.write_stamps(1, 1);
  CHECK(barrier.available(0) == 2);
  // The producer streams: the barrier now follows the cursor (stamps written or not)...
  CHECK(barrier.available(3) == 2);
  // ...until looks in a row find a single event each: then back to the stamps.
  std::int64_t next = 3;
  for (int i = 0; i < 8; ++i, ++next) {
    const std::int64_t one = seqr.reserve(1);
    seqr.publish(one, one);
    CHECK(barrier.available(next) == next);
  }
  // Back on the stamps: a sequence published without its stamp is not seen.
  const std::int64_t unstamped = seqr.reserve(1);
  seqr.publish(unstamped, unstamped);
  CHECK(barrier.available(next) == next - 1);
  ring.write_stamps(next, next);
  CHECK(barrier.available(next) == next);
}

TEST_CASE("slot stamps: refused where they cannot work, with the reason",
          "[stamps][deterministic]") {
  auto noop = [](stamped_event&, std::int64_t, bool) {};
  SECTION("several producers") {
    auto b = rondo::disruptor<stamped_event>::builder();
    b.producers(rondo::producer_type::multi).stamps(&stamped_event::stamp).stage("a", noop);
    REQUIRE_THROWS_WITH(b.build(), Catch::Contains("producer_type::single"));
  }
  SECTION("a null member") {
    auto b = rondo::disruptor<stamped_event>::builder();
    b.stamps(nullptr).stage("a", noop);
    REQUIRE_THROWS_WITH(b.build(), Catch::Contains("null pointer"));
  }
  SECTION("a barrier behind another stage, or behind several producers") {
    rondo::wait_strategy waits{rondo::busy_spin{}};
    rondo::ring_buffer<stamped_event> ring(8);
    ring.use_stamps(&stamped_event::stamp);
    rondo::single_producer_sequencer single(8, waits);
    rondo::sequence upstream;
    rondo::sequence_barrier behind(single, {&upstream});
    REQUIRE_THROWS_WITH(behind.use_stamps(ring.stamps()), Catch::Contains("1 upstream stage"));
    rondo::multi_producer_sequencer multi(8, waits);
    rondo::sequence_barrier many(multi);
    REQUIRE_THROWS_WITH(many.use_stamps(ring.stamps()), Catch::Contains("several producers"));
  }
}

// Every kind of stage right behind the producer (thread, coroutine, poller), one stage after
// them, every wait strategy, rings down to one slot: exactly once, in order, payload intact.
TEST_CASE("slot stamps: every head stage sees every event once, in order", "[stamps][stress]") {
  const std::int64_t events = 10'000 / scale;
  // Not busy_spin: five threads spinning on two cores is the configuration docs/tuning.md says
  // to avoid (each hop waits for a scheduler slice); the ping-pong bench runs it on two.
  const std::vector<rondo::wait_config> waits = {rondo::yielding{}, rondo::blocking{},
                                                 rondo::spin_then_suspend{}};
  for (const std::int64_t capacity : {1, 8, 256}) {
    for (std::size_t w = 0; w < waits.size(); ++w) {
      CAPTURE(capacity, w);
      stage_record thread_rec(1), coro_rec(1), poll_rec(1), after_rec(1);
      after_rec.deps = {&thread_rec, &coro_rec};
      rondo::thread_scheduler sched;
      auto d = rondo::disruptor<stamped_event>::builder()
                   .capacity(capacity)
                   .wait(waits[w])
                   .stamps(&stamped_event::stamp)
                   .stage("thread",
                          [&](stamped_event& ev, std::int64_t seq, bool) {
                            thread_rec.on_event(ev.e, seq);
                          })
                   .stage("coro",
                          [&](stamped_event& ev, std::int64_t seq, bool) {
                            coro_rec.on_event(ev.e, seq);
                          })
                   .on(sched)
                   .poller("poll")
                   .stage("after",
                          [&](stamped_event& ev, std::int64_t seq, bool) {
                            after_rec.on_event(ev.e, seq);
                          },
                          rondo::after("thread", "coro"))
                   .build();
      d.start();
      auto& poller = d.poller("poll");
      std::atomic<bool> producing{true};
      std::thread polling([&] {
        for (;;) {
          const auto st = poller.poll([&](stamped_event& ev, std::int64_t seq, bool) {
            poll_rec.on_event(ev.e, seq);
            return true;
          });
          if (st == rondo::poll_state::stopped) return;
          // Acquire: pairs with the release store after the last publish.
          if (st != rondo::poll_state::processing && !producing.load(std::memory_order_acquire) &&
              poll_rec.handled == events) {
            return;
          }
          if (st != rondo::poll_state::processing) std::this_thread::yield();
        }
      });
      auto& pub = d.publisher();
      std::int64_t counter = 0;
      while (counter < events) {
        const std::int64_t n = std::min<std::int64_t>(1 + counter % 3, capacity);
        const std::int64_t take = std::min(n, events - counter);
        auto c = pub.reserve(take);
        for (auto [seq, ev] : c) {
          stamped_event fresh;
          fresh.e.fill(0, counter++);
          ev = fresh;  // a whole-event assignment: must not touch the slot's stamp
        }
        c.publish();
      }
      // Release: pairs with the poller thread's acquire load.
      producing.store(false, std::memory_order_release);
      polling.join();
      d.drain();
      for (const stage_record* r : {&thread_rec, &coro_rec, &poll_rec, &after_rec}) {
        INFO(r->first_error);
        CHECK(r->errors == 0);
        CHECK(r->handled == events);
      }
    }
  }
}
