#pragma once
// fmt formatters for the values a rondo user prints (core, coroutine and DSL types; the io
// layer's are in rondo/io/format.hpp, so that this header asks nothing of liburing):
//
//   fmt::print("{}\n", d.metrics());    // one line per stage
//   fmt::print("{:t}\n", d.metrics());  // an aligned table with a header row
//   fmt::print("close(): {}\n", d.close());
//
// Every formatter is a pure function of the value (no locale, no trailing newline). The specs:
//
//   stage_metrics_snapshot         {} one line; {:t} one "name value" line per counter
//   stage_report                   {} "name at position: <metrics>"; {:t} a table of one stage
//   std::vector<stage_report>      {} one line per stage; {:t} the table (d.metrics())
//   close_report, stage_error, barrier_wait_result, claim<T>, batch<T>, park_lot   {} only
//   wait_status, claim_status, poll_state, producer_type, placement, wait_moment
//                                  the enumerator's name, with fmt's string specs ({:>9})
//
// A vector of stage_report is a range, which fmt/ranges.h would print as a list "[...]" of
// elements; rondo's formatter (a full specialization, with range formatting turned off for the
// type) prints it as the table every example used to build by hand. claim<T> and batch<T> are
// ranges of events too: they print as their sequence ranges, not their events.
//
// Errors: a spec that a formatter does not take throws fmt::format_error naming the spec (or,
// in a format string checked at compile time, fails to compile). Thread-safety: formatting
// reads the value only; a park_lot's counters may be read from any thread.

#include <rondo/core/errors.hpp>
#include <rondo/core/event_poller.hpp>
#include <rondo/core/sequence_barrier.hpp>
#include <rondo/core/sequencer.hpp>
#include <rondo/core/stage_metrics.hpp>
#include <rondo/core/wait_strategy.hpp>
#include <rondo/coro/park_lot.hpp>
#include <rondo/disruptor.hpp>
#include <rondo/dsl/batch.hpp>
#include <rondo/dsl/publisher.hpp>
#include <rondo/detail/format_spec.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstddef>
#include <string_view>
#include <type_traits>
#include <vector>

namespace rondo::detail {

/// The name of an enumerator, for the formatters below.
[[nodiscard]] constexpr std::string_view enum_name(wait_status s) noexcept {
  switch (s) {
    case wait_status::ready: return "ready";
    case wait_status::stopped: return "stopped";
    case wait_status::timed_out: return "timed_out";
    case wait_status::cancelled: return "cancelled";
  }
  return "wait_status(?)";
}
[[nodiscard]] constexpr std::string_view enum_name(claim_status s) noexcept {
  switch (s) {
    case claim_status::granted: return "granted";
    case claim_status::full: return "full";
    case claim_status::closed: return "closed";
  }
  return "claim_status(?)";
}
[[nodiscard]] constexpr std::string_view enum_name(poll_state s) noexcept {
  switch (s) {
    case poll_state::processing: return "processing";
    case poll_state::gating: return "gating";
    case poll_state::idle: return "idle";
    case poll_state::stopped: return "stopped";
  }
  return "poll_state(?)";
}
[[nodiscard]] constexpr std::string_view enum_name(producer_type p) noexcept {
  switch (p) {
    case producer_type::single: return "single";
    case producer_type::multi: return "multi";
  }
  return "producer_type(?)";
}
[[nodiscard]] constexpr std::string_view enum_name(placement p) noexcept {
  switch (p) {
    case placement::colocate: return "colocate";
    case placement::round_robin: return "round_robin";
  }
  return "placement(?)";
}
[[nodiscard]] constexpr std::string_view enum_name(wait_moment m) noexcept {
  switch (m) {
    case wait_moment::upstream_behind: return "upstream_behind";
    case wait_moment::ring_idle: return "ring_idle";
    case wait_moment::ring_full: return "ring_full";
  }
  return "wait_moment(?)";
}

/// Formats an enumerator as its name; fmt's string specs (width, alignment) apply.
template <class E>
struct enum_formatter : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(E e, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::formatter<std::string_view>::format(enum_name(e), ctx);
  }
};

[[nodiscard]] inline std::size_t metrics_table_name_width(const stage_report* first,
                                                          const stage_report* last) noexcept {
  std::size_t w = 5;  // "stage"
  for (; first != last; ++first) w = std::max(w, first->name.size());
  return w;
}

// The header's widths and the row's below are the same columns: change them together.
template <class Out>
Out format_metrics_table_header(Out out, std::size_t name_width) {
  return fmt::format_to(out, "{:<{}} {:>9} {:>10} {:>9} {:>10} {:>8} {:>8} {:>11} {:>8} {:>12}",
                        "stage", name_width,
                        "position", "events", "batches", "mean batch", "waits", "skipped",
                        "suspensions", "resumes", "suspended ms");
}

template <class Out>
Out format_metrics_table_row(Out out, const stage_report& r, std::size_t name_width) {
  const stage_metrics_snapshot& m = r.metrics;
  return fmt::format_to(out,
                        "{:<{}} {:>9} {:>10} {:>9} {:>10.1f} {:>8} {:>8} {:>11} {:>8} {:>12.1f}",
                        r.name, name_width, r.position, m.events, m.batches, m.mean_batch(),
                        m.waits, m.errors_skipped, m.suspensions, m.resumes,
                        static_cast<double>(m.suspended_ns) / 1e6);
}

/// The table: a header row, then one row per report, rows separated by '\n'.
template <class Out>
Out format_metrics_table(Out out, const stage_report* first, const stage_report* last) {
  const std::size_t w = metrics_table_name_width(first, last);
  out = format_metrics_table_header(out, w);
  for (; first != last; ++first) {
    *out++ = '\n';
    out = format_metrics_table_row(out, *first, w);
  }
  return out;
}

}  // namespace rondo::detail

// Range formatting off for the ranges that have formatters of their own: otherwise fmt/ranges.h's
// partial specialization would match them too (ambiguous for claim<T> and batch<T>).
template <>
struct fmt::range_format_kind<std::vector<rondo::stage_report>, char>
    : std::integral_constant<fmt::range_format, fmt::range_format::disabled> {};
template <class T>
struct fmt::range_format_kind<rondo::claim<T>, char>
    : std::integral_constant<fmt::range_format, fmt::range_format::disabled> {};
template <class T>
struct fmt::range_format_kind<rondo::batch<T>, char>
    : std::integral_constant<fmt::range_format, fmt::range_format::disabled> {};

// The enumerations first: the formatters below print some of them.
template <>
struct fmt::formatter<rondo::wait_status> : rondo::detail::enum_formatter<rondo::wait_status> {};
template <>
struct fmt::formatter<rondo::claim_status> : rondo::detail::enum_formatter<rondo::claim_status> {
};
template <>
struct fmt::formatter<rondo::poll_state> : rondo::detail::enum_formatter<rondo::poll_state> {};
template <>
struct fmt::formatter<rondo::producer_type>
    : rondo::detail::enum_formatter<rondo::producer_type> {};
template <>
struct fmt::formatter<rondo::placement> : rondo::detail::enum_formatter<rondo::placement> {};
template <>
struct fmt::formatter<rondo::wait_moment> : rondo::detail::enum_formatter<rondo::wait_moment> {};

/// `events 1000, batches 10, mean batch 100.0, waits 3`, followed by each of the other counters
/// that is not zero (`skipped 2, tombstones 1, rewinds 1, spins succeeded 4, suspensions 3,
/// resumes 3, suspended 1200 ns`). `{:t}`: one line per counter, "name value", all of them.
template <>
struct fmt::formatter<rondo::stage_metrics_snapshot> {
  bool table = false;

  template <class ParseContext>
  constexpr auto parse(ParseContext& ctx) -> decltype(ctx.begin()) {
    table = rondo::detail::parse_letter_spec(ctx, "rondo::stage_metrics_snapshot", 't',
                                             "'{}' or '{:t}'");
    return ctx.begin();
  }

  template <class FormatContext>
  auto format(const rondo::stage_metrics_snapshot& m, FormatContext& ctx) const
      -> decltype(ctx.out()) {
    auto out = ctx.out();
    if (table) {
      return fmt::format_to(out,
                            "events          {:>12}\nbatches         {:>12}\n"
                            "mean batch      {:>12.1f}\nwaits           {:>12}\n"
                            "errors skipped  {:>12}\ntombstones      {:>12}\n"
                            "rewinds         {:>12}\nspins succeeded {:>12}\n"
                            "suspensions     {:>12}\nresumes         {:>12}\n"
                            "suspended ns    {:>12}",
                            m.events, m.batches, m.mean_batch(), m.waits, m.errors_skipped,
                            m.tombstones, m.rewinds, m.spins_succeeded, m.suspensions, m.resumes,
                            m.suspended_ns);
    }
    out = fmt::format_to(out, "events {}, batches {}, mean batch {:.1f}, waits {}", m.events,
                         m.batches, m.mean_batch(), m.waits);
    // The rarer counters only where they say something: the common line stays short.
    if (m.errors_skipped != 0) out = fmt::format_to(out, ", skipped {}", m.errors_skipped);
    if (m.tombstones != 0) out = fmt::format_to(out, ", tombstones {}", m.tombstones);
    if (m.rewinds != 0) out = fmt::format_to(out, ", rewinds {}", m.rewinds);
    if (m.spins_succeeded != 0) {
      out = fmt::format_to(out, ", spins succeeded {}", m.spins_succeeded);
    }
    if (m.suspensions != 0) out = fmt::format_to(out, ", suspensions {}", m.suspensions);
    if (m.resumes != 0) out = fmt::format_to(out, ", resumes {}", m.resumes);
    if (m.suspended_ns != 0) out = fmt::format_to(out, ", suspended {} ns", m.suspended_ns);
    return out;
  }
};

/// `decode at 999: <the metrics' one-line form>`. `{:t}`: the metrics table with this stage as
/// its only row.
template <>
struct fmt::formatter<rondo::stage_report> {
  bool table = false;

  template <class ParseContext>
  constexpr auto parse(ParseContext& ctx) -> decltype(ctx.begin()) {
    table = rondo::detail::parse_letter_spec(ctx, "rondo::stage_report", 't', "'{}' or '{:t}'");
    return ctx.begin();
  }

  template <class FormatContext>
  auto format(const rondo::stage_report& r, FormatContext& ctx) const -> decltype(ctx.out()) {
    if (table) return rondo::detail::format_metrics_table(ctx.out(), &r, &r + 1);
    return fmt::format_to(ctx.out(), "{} at {}: {}", r.name, r.position, r.metrics);
  }
};

/// What disruptor::metrics() returns. `{}`: one line per stage (as stage_report's `{}`), lines
/// separated by '\n'; `{:t}`: a header row and one aligned row per stage, columns stage,
/// position, events, batches, mean batch, waits, skipped, suspensions, resumes, suspended ms.
template <>
struct fmt::formatter<std::vector<rondo::stage_report>> {
  bool table = false;

  template <class ParseContext>
  constexpr auto parse(ParseContext& ctx) -> decltype(ctx.begin()) {
    table = rondo::detail::parse_letter_spec(ctx, "std::vector<rondo::stage_report>", 't',
                                             "'{}' or '{:t}'");
    return ctx.begin();
  }

  template <class FormatContext>
  auto format(const std::vector<rondo::stage_report>& v, FormatContext& ctx) const
      -> decltype(ctx.out()) {
    auto out = ctx.out();
    if (table) return rondo::detail::format_metrics_table(out, v.data(), v.data() + v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i != 0) *out++ = '\n';
      out = fmt::format_to(out, "{}", v[i]);
    }
    return out;
  }
};

/// `published 1000, unprocessed 10, failed stages 0`.
template <>
struct fmt::formatter<rondo::close_report>
    : rondo::detail::plain_formatter<fmt::formatter<rondo::close_report>> {
  static constexpr std::string_view type_name = "rondo::close_report";

  template <class FormatContext>
  auto format(const rondo::close_report& r, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::format_to(ctx.out(), "published {}, unprocessed {}, failed stages {}",
                          r.published, r.unprocessed, r.failed_stages);
  }
};

/// Its what(): `stage 'decode' failed at sequence 7: <the cause's what()>`.
template <>
struct fmt::formatter<rondo::stage_error>
    : rondo::detail::plain_formatter<fmt::formatter<rondo::stage_error>> {
  static constexpr std::string_view type_name = "rondo::stage_error";

  template <class FormatContext>
  auto format(const rondo::stage_error& e, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::format_to(ctx.out(), "{}", e.what());
  }
};

/// `available 41, ready`.
template <>
struct fmt::formatter<rondo::barrier_wait_result>
    : rondo::detail::plain_formatter<fmt::formatter<rondo::barrier_wait_result>> {
  static constexpr std::string_view type_name = "rondo::barrier_wait_result";

  template <class FormatContext>
  auto format(const rondo::barrier_wait_result& r, FormatContext& ctx) const
      -> decltype(ctx.out()) {
    return fmt::format_to(ctx.out(), "available {}, {}", r.available, r.status);
  }
};

/// `claim [5, 8], 4 slots` (its sequences, not its events; also once published or moved from).
template <class T>
struct fmt::formatter<rondo::claim<T>>
    : rondo::detail::plain_formatter<fmt::formatter<rondo::claim<T>>> {
  static constexpr std::string_view type_name = "rondo::claim";

  template <class FormatContext>
  auto format(const rondo::claim<T>& c, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::format_to(ctx.out(), "claim [{}, {}], {} slot{}", c.first(), c.last(), c.size(),
                          c.size() == 1 ? "" : "s");
  }
};

/// `batch [5, 8], 4 events`; an empty batch prints `batch [5, 4], 0 events`.
template <class T>
struct fmt::formatter<rondo::batch<T>>
    : rondo::detail::plain_formatter<fmt::formatter<rondo::batch<T>>> {
  static constexpr std::string_view type_name = "rondo::batch";

  template <class FormatContext>
  auto format(const rondo::batch<T>& b, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::format_to(ctx.out(), "batch [{}, {}], {} event{}", b.first(), b.last(), b.size(),
                          b.size() == 1 ? "" : "s");
  }
};

/// A park lot's statistics: `parks 12, sleep fences 3`.
template <>
struct fmt::formatter<rondo::park_lot>
    : rondo::detail::plain_formatter<fmt::formatter<rondo::park_lot>> {
  static constexpr std::string_view type_name = "rondo::park_lot";

  template <class FormatContext>
  auto format(const rondo::park_lot& lot, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::format_to(ctx.out(), "parks {}, sleep fences {}", lot.parks(), lot.sleep_fences());
  }
};
