#pragma once
// The order server's pipeline: decode -> (journal, match) -> reply on a rondo::disruptor of
// order events, and where each stage runs (stages.cpp).
#include "book.hpp"
#include "event.hpp"
#include "server.hpp"

#include <rondo/rondo.hpp>

#include <cstddef>
#include <cstdint>

namespace order_server {

constexpr std::int64_t journal_max_batch = 256;  // records per append

struct journal_stats {
  std::int64_t appends = 0;    // append_durable calls: one write + fdatasync round each
  std::int64_t append_ns = 0;  // time spent in them
};

// Builds the disruptor (not started): decode and reply on context 0 with the sockets, journal
// (appending to `journal`, counted in jstats) on journal_context, match (into `book`) on the
// other heavy context. Sequences continue after app.sequence_base.
rondo::disruptor<order_event> build_pipeline(rondo::runtime& rt, rondo::journal& journal,
                                             std::size_t journal_context, journal_stats& jstats,
                                             order_book& book, order_app& app);

}  // namespace order_server
