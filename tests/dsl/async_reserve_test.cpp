// coro_publisher::reserve on the manual scheduler: suspends while the ring is full, resumes when
// a terminal stage frees slots, ends with rondo::closed or an empty optional.

#include "support.hpp"

#include <rondo/rondo.hpp>

#include <catch2/catch.hpp>

#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>

using rondo_test::detached;

namespace {

struct producer_state {
  int granted = 0;
  bool closed = false;
  bool gave_up = false;
  std::int64_t last_seq = -1;
};

detached produce(rondo::manual_scheduler& s, rondo::publisher<std::int64_t>& pub, int count,
                 std::int64_t n, producer_state& st) {
  co_await s.schedule();
  try {
    for (int i = 0; i < count; ++i) {
      auto c = co_await pub.coro().reserve(n);
      for (auto [seq, ev] : c) ev = seq;
      st.last_seq = c.last();
      c.publish();
      ++st.granted;
    }
  } catch (const rondo::closed&) {
    st.closed = true;
  }
}

detached produce_cancellable(rondo::manual_scheduler& s, rondo::publisher<std::int64_t>& pub,
                             std::stop_token tok, producer_state& st) {
  co_await s.schedule();
  for (;;) {
    auto c = co_await pub.coro().reserve(1, tok);
    if (!c) {
      st.gave_up = true;
      co_return;
    }
    c->publish();
    ++st.granted;
  }
}

struct fixture {
  rondo::wait_strategy w{rondo_test::suspend_policy(0, 0)};
  rondo::ring_buffer<std::int64_t> ring{4};
  rondo::single_producer_sequencer sp{4, w};
  rondo::publisher<std::int64_t> pub{ring, sp};
  rondo::sequence consumer;  // a terminal stage the test moves by hand
  rondo::manual_scheduler s;
  fixture() { sp.add_gating_sequence(consumer); }
  void consume_to(std::int64_t seq) {
    consumer.set(seq);
    w.signal(seq);
  }
};

}  // namespace

TEST_CASE("coro_publisher::reserve suspends while the ring is full and resumes when a stage frees slots",
          "[coro_publisher][deterministic]") {
  fixture f;
  producer_state st;
  produce(f.s, f.pub, 6, 1, st);
  f.s.run_all();
  CHECK(st.granted == 4);  // the ring holds 4; the fifth reserve parks
  CHECK(f.s.parking()->size() == 1);
  f.consume_to(0);  // frees one slot
  CHECK(f.s.run_all() == 1);
  CHECK(st.granted == 5);
  CHECK(f.s.parking()->size() == 1);  // parked again for the sixth
  f.consume_to(5);
  f.s.run_all();
  CHECK(st.granted == 6);
  CHECK(st.last_seq == 5);
  CHECK(f.ring[5] == 5);
}

TEST_CASE("coro_publisher::reserve: a stage advance below the target does not wake the producer",
          "[coro_publisher][deterministic]") {
  fixture f;
  producer_state st;
  produce(f.s, f.pub, 2, 4, st);  // two claims of 4 on a ring of 4
  f.s.run_all();
  CHECK(st.granted == 1);
  f.consume_to(1);  // 2 slots free, 4 needed: still parked
  CHECK(f.s.run_all() == 0);  // the poll of the parked wait finds it not ready
  CHECK(f.s.parking()->size() == 1);
  f.consume_to(3);
  CHECK(f.s.run_all() == 1);
  CHECK(st.granted == 2);
  CHECK(st.last_seq == 7);
}

TEST_CASE("coro_publisher::reserve: close wakes a parked producer with rondo::closed",
          "[coro_publisher][deterministic]") {
  fixture f;
  producer_state st;
  produce(f.s, f.pub, 10, 1, st);
  f.s.run_all();
  CHECK(st.granted == 4);
  f.sp.close();
  CHECK(f.s.run_all() == 1);
  CHECK(st.closed);
  CHECK(st.granted == 4);
  CHECK(f.sp.settle() == 3);  // nothing claimed after the close
}

TEST_CASE("coro_publisher::reserve: cancellation yields an empty optional", "[coro_publisher][deterministic]") {
  fixture f;
  producer_state st;
  std::stop_source src;
  produce_cancellable(f.s, f.pub, src.get_token(), st);
  f.s.run_all();
  CHECK(st.granted == 4);
  src.request_stop();
  CHECK(f.s.run_all() == 1);
  CHECK(st.gave_up);
  CHECK(f.s.parking()->size() == 0);
}

TEST_CASE("coro_publisher::reserve rejects bad input before waiting",
          "[coro_publisher][deterministic]") {
  fixture f;
  // Thrown by the co_await (its await_ready), before any wait.
  auto outcome_of = [&f](std::int64_t n) {
    std::string what = "no exception";
    auto body = [&]() -> detached {
      co_await f.s.schedule();
      try {
        auto c = co_await f.pub.coro().reserve(n);
        c.publish();
      } catch (const std::invalid_argument& e) {
        what = std::string("invalid_argument: ") + e.what();
      } catch (const std::logic_error& e) {
        what = std::string("logic_error: ") + e.what();
      }
    };
    body();
    f.s.run_all();
    return what;
  };
  CHECK_THAT(outcome_of(0), Catch::StartsWith("invalid_argument"));
  CHECK_THAT(outcome_of(5), Catch::StartsWith("invalid_argument"));
  auto c = f.pub.reserve(1);  // an open claim: a single producer may not reserve again
  CHECK_THAT(outcome_of(1), Catch::StartsWith("logic_error"));
  c.publish();
  CHECK(outcome_of(1) == "no exception");
}

TEST_CASE("coro_publisher::reserve with several producers: the one that loses the freed slot parks again",
          "[coro_publisher][deterministic]") {
  rondo::wait_strategy w{rondo_test::suspend_policy(0, 0)};
  rondo::ring_buffer<std::int64_t> ring{2};
  rondo::multi_producer_sequencer mp{2, w};
  rondo::publisher<std::int64_t> pub{ring, mp};
  rondo::sequence consumer;
  mp.add_gating_sequence(consumer);
  rondo::manual_scheduler s;
  producer_state a;
  producer_state b;
  produce(s, pub, 3, 1, a);  // a fills the ring and parks for its third
  produce(s, pub, 1, 1, b);  // b parks for its first
  s.run_all();
  CHECK(a.granted == 2);
  CHECK(b.granted == 0);
  CHECK(s.parking()->size() == 2);
  consumer.set(0);
  w.signal(0);  // one slot: both are woken, one claims it, the other parks again
  s.run_all();
  CHECK(a.granted + b.granted == 3);
  CHECK(s.parking()->size() == 1);
  consumer.set(1);
  w.signal(1);
  s.run_all();
  CHECK(a.granted + b.granted == 4);
  CHECK(s.parking()->size() == 0);
}
