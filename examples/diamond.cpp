// diamond: a stage graph. "decode" runs first; "journal" and "match" both run after it, in
// parallel on their own threads; "reply" runs after both (rondo::after("journal", "match")).
//
//                 ┌─▶ journal ─┐
//   producer ─▶ decode         ├─▶ reply
//                 └─▶ match ───┘
//
// Each stage writes its own fields of the event in place. The producer clears those fields, so
// "reply" can check, for every event, that it sees the results of both stages before it.
#include <rondo/rondo.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <cstdio>

struct order {
  std::int64_t wire = 0;            // producer: price * 1000 + quantity, as on the wire
  std::int64_t price = 0, qty = 0;  // decode
  std::int64_t journal_seq = -1;    // journal: the sequence it was written under
  std::int64_t notional = -1;       // match: price * quantity
};

int main() {
  constexpr std::int64_t n = 200'000;
  std::int64_t journaled = 0, replies = 0, missing = 0, notional_total = 0;

  auto decode = [](order& o, std::int64_t, bool) {
    o.price = o.wire / 1000;
    o.qty = o.wire % 1000;
  };
  auto journal = [&journaled](order& o, std::int64_t seq, bool) {
    o.journal_seq = seq;
    ++journaled;
  };
  auto match = [](order& o, std::int64_t, bool) { o.notional = o.price * o.qty; };
  auto reply = [&](const order& o, std::int64_t seq, bool) {
    if (o.journal_seq != seq || o.notional != o.price * o.qty) ++missing;
    notional_total += o.notional;
    ++replies;
  };

  // More threads than cores: waiting stages yield the core rather than spin.
  auto d = rondo::disruptor<order>::builder()
               .capacity(512)
               .wait(rondo::yielding{})
               .stage("decode", decode)
               .stage("journal", journal, rondo::after("decode"))
               .stage("match", match, rondo::after("decode"))
               .stage("reply", reply, rondo::after("journal", "match"))
               .build();
  d.start();

  std::int64_t expected_total = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t price = 100 + i % 50, qty = 1 + i % 7;
    expected_total += price * qty;
    d.publisher().publish_event([&](order& o, std::int64_t) {
      o = order{.wire = price * 1000 + qty};  // clears the fields the stages fill in
    });
  }
  d.drain();

  for (const auto& s : d.metrics()) {
    fmt::print("{} passed sequence {}\n", s.name, s.position);
  }
  fmt::print("reply: {} orders, notional {}, {} without journal or match result\n", replies,
             notional_total, missing);
  if (replies != n || journaled != n || missing != 0 || notional_total != expected_total) {
    fmt::print(stderr, "wrong result: expected {} complete orders, notional {}\n", n,
               expected_total);
    return 1;
  }
}
