// The order server's stages (stages.hpp): decode parses each frame, journal makes the batch
// durable (rondo::journal: one write + fdatasync), match runs the order book, reply queues the
// acks; and build_pipeline(), which wires them and places them on the runtime's contexts.
#include "stages.hpp"

#include "clock.hpp"

#include <fmt/format.h>

#include <array>
#include <cstring>
#include <exception>
#include <span>
#include <stdexcept>
#include <string>

#include <sys/uio.h>

namespace order_server {
namespace {

// decode: parse the frame into its journal record. Sequences continue after the records a
// restarted server recovered from its journal.
void decode_order(order_event& ev, std::int64_t seq, std::int64_t base) {
  ev.record = order_protocol::decode_order(std::span<const std::byte, order_frame_size>(ev.frame),
                                           base + seq, ev.client_sent_ns);
  ev.filled = 0;
}

// ---- journal and reply: the two stages that do I/O ---------------------------------------------

// journal: one append of the batch's records straight from the ring slots (they cannot be
// reused before this task completes: only then does the stage's sequence advance): one write
// and one fdatasync for the whole batch, each record framed (length, sequence, CRC32C) by
// rondo::journal. The journal's sequences are the records' own: base + ring sequence.
auto journal_stage(rondo::journal& j, journal_stats& st, order_app& app) {
  return [&j, &st, &app](rondo::batch<order_event> b) -> rondo::task<> {
    if (b.empty()) co_return;
    std::array<::iovec, journal_max_batch> iov;
    std::size_t n = 0;
    std::int64_t first = -1;
    for (order_event& ev : b) {
      if (n == 0) first = ev.record.sequence;
      iov[n++] = {&ev.record, sizeof ev.record};
    }
    if (first != j.next_sequence()) {
      throw std::logic_error(fmt::format("journal: record {} would get journal sequence {}",
                                         first, j.next_sequence()));
    }
    const std::int64_t t0 = now_ns();
    std::string failure;
    try {
      co_await j.append_durable(std::span<const ::iovec>(iov.data(), n));
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (!failure.empty()) {
      // Once: later batches never come (the stage's failure halts the disruptor).
      if (!app.halted.exchange(true, std::memory_order_relaxed)) {  // relaxed: a one-shot flag
        app.rt->spawn(stop_taking_orders(app, failure), 0);
      }
      throw std::runtime_error(failure);
    }
    st.append_ns += now_ns() - t0;
    ++st.appends;
  };
}

// reply: queues each order's ack in its connection's outbox (a copy into the reserved room,
// never a wait); the connection's own writer coroutine sends it. A connection that has gone
// away (find() refuses its id) drops the ack. So a client that stops reading holds up nobody.
auto reply_stage(order_app& app) {
  return [&app](rondo::batch<order_event> b) -> rondo::task<> {
    if (&rondo::current_io_context() != app.home) {
      throw std::logic_error("reply: must run on context 0, with the server's connections");
    }
    std::array<std::byte, ack_frame_size> frame{};
    for (auto [seq, ev] : b.entries()) {
      ack_msg a{};
      a.client_order_id = ev.record.client_order_id;
      a.sent_ns = ev.client_sent_ns;
      a.server_sequence = ev.record.sequence;
      a.filled = ev.filled;
      a.status = ev.record.status;
      frame_header h{};
      h.magic = wire_magic;
      h.type = static_cast<std::uint8_t>(msg_type::ack);
      h.length = sizeof a;
      std::memcpy(frame.data(), &h, sizeof h);
      std::memcpy(frame.data() + sizeof h, &a, sizeof a);
      rondo::connection* c = app.net->find(ev.conn);
      if (c != nullptr && c->send(frame)) {
        app.acks_sent.fetch_add(1, std::memory_order_relaxed);  // statistic
        app.latency.add(now_ns() - ev.received_ns);
      } else {
        app.acks_dropped.fetch_add(1, std::memory_order_relaxed);  // statistic
      }
      (void)seq;
    }
    co_return;
  };
}

}  // namespace

rondo::disruptor<order_event> build_pipeline(rondo::runtime& rt, rondo::journal& journal,
                                             std::size_t journal_context, journal_stats& jstats,
                                             order_book& book, order_app& app) {
  // Placement: the builder's default. Light stages share context 0, which owns the sockets:
  // the readers (the producers), decode (it reads the frames the readers just wrote, still in
  // this core's cache) and reply (it queues acks on those connections). The stages marked heavy
  // go to the other contexts: journal, so that waiting for fdatasync never holds up reading
  // orders or acking earlier batches, and match, which runs while the journal waits for the disk.
  rondo::stage_options journal_options;
  journal_options.max_batch = journal_max_batch;
  journal_options.heavy = true;
  rondo::stage_options match_options;
  match_options.heavy = true;
  // Every publisher runs on context 0, so producer_type::single would do; multi keeps the
  // server correct if readers are ever spread over contexts.
  const std::int64_t base = app.sequence_base;
  return rondo::disruptor<order_event>::builder()
      .capacity(4096)
      .producers(rondo::producer_type::multi)
      .wait(rondo::spin_then_suspend{})
      .metrics()
      .executor(rt)
      .stage("decode",
             [base](order_event& ev, std::int64_t seq, bool) { decode_order(ev, seq, base); })
      .stage("journal", journal_stage(journal, jstats, app), rondo::after("decode"),
             journal_options)
      .on(journal_context)
      .stage(
          "match",
          [&book](order_event& ev, std::int64_t seq, bool) {
            const journal_record& r = ev.record;
            if (r.status != accepted) return;
            ev.filled = book.execute(seq, r.side, r.price, r.qty);
          },
          rondo::after("decode"), match_options)
      .stage("reply", reply_stage(app), rondo::after("journal", "match"))
      .build();
}

}  // namespace order_server
