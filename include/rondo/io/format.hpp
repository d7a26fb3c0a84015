#pragma once
// fmt formatters for the io layer's values (the core's are in rondo/format.hpp):
//
//   io_result                      `read(fd 7) = 128`, or on failure
//                                  `read(fd 7): Bad file descriptor` (what value() would throw)
//   io_context::doorbell_counts    `msg_ring 5, eventfd 2`
//   io_ring_setup                  the enumerator's name, with fmt's string specs ({:>9})
//   recovery_report                `journal /j: 2 segments, 1000 records verified, sequences
//                                  [0, 999], next 1000, clean` (or `..., dropped 57 bytes and 0
//                                  segments: torn tail in ...`)
//
// Each takes `{}` only (io_ring_setup: fmt's string specs); another spec throws
// fmt::format_error naming it, or fails to compile in a format string checked at compile time.
// Thread-safety: formatting reads the value only.

#include <rondo/detail/format_spec.hpp>
#include <rondo/io/io_context.hpp>
#include <rondo/io/journal_reader.hpp>

#include <fmt/format.h>

#include <string_view>

namespace rondo::detail {

[[nodiscard]] constexpr std::string_view enum_name(io_ring_setup s) noexcept {
  switch (s) {
    case io_ring_setup::automatic: return "automatic";
    case io_ring_setup::defer_taskrun: return "defer_taskrun";
    case io_ring_setup::coop_taskrun_flag: return "coop_taskrun_flag";
    case io_ring_setup::coop_taskrun: return "coop_taskrun";
    case io_ring_setup::plain: return "plain";
  }
  return "io_ring_setup(?)";
}

}  // namespace rondo::detail

/// `read(fd 7) = 128` when the operation succeeded; its error message otherwise, worded as the
/// std::system_error that io_result::value() throws: `read(fd 7): Bad file descriptor`.
template <>
struct fmt::formatter<rondo::io_result>
    : rondo::detail::plain_formatter<fmt::formatter<rondo::io_result>> {
  static constexpr std::string_view type_name = "rondo::io_result";

  template <class FormatContext>
  auto format(const rondo::io_result& r, FormatContext& ctx) const -> decltype(ctx.out()) {
    if (r.ok()) return fmt::format_to(ctx.out(), "{}(fd {}) = {}", r.op, r.fd, r.res);
    return fmt::format_to(ctx.out(), "{}(fd {}): {}", r.op, r.fd, r.error().message());
  }
};

/// `msg_ring 5, eventfd 2`.
template <>
struct fmt::formatter<rondo::io_context::doorbell_counts>
    : rondo::detail::plain_formatter<fmt::formatter<rondo::io_context::doorbell_counts>> {
  static constexpr std::string_view type_name = "rondo::io_context::doorbell_counts";

  template <class FormatContext>
  auto format(const rondo::io_context::doorbell_counts& d, FormatContext& ctx) const
      -> decltype(ctx.out()) {
    return fmt::format_to(ctx.out(), "msg_ring {}, eventfd {}", d.msg_ring, d.eventfd);
  }
};

/// The enumerator's name; fmt's string specs (width, alignment) apply.
template <>
struct fmt::formatter<rondo::io_ring_setup> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(rondo::io_ring_setup s, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::formatter<std::string_view>::format(rondo::detail::enum_name(s), ctx);
  }
};

/// `journal /j: 2 segments, 1000 records verified, sequences [0, 999], next 1000, clean`; an
/// empty journal says `empty, next 0`; what recovery dropped follows instead of `clean`.
template <>
struct fmt::formatter<rondo::recovery_report>
    : rondo::detail::plain_formatter<fmt::formatter<rondo::recovery_report>> {
  static constexpr std::string_view type_name = "rondo::recovery_report";

  template <class FormatContext>
  auto format(const rondo::recovery_report& r, FormatContext& ctx) const
      -> decltype(ctx.out()) {
    auto out = fmt::format_to(ctx.out(), "journal {}: {} segment{}, {} record{} verified, ", r.dir,
                              r.segments, r.segments == 1 ? "" : "s", r.records,
                              r.records == 1 ? "" : "s");
    if (r.empty()) {
      out = fmt::format_to(out, "empty, next {}", r.next_sequence);
    } else {
      out = fmt::format_to(out, "sequences [{}, {}], next {}", r.first_sequence,
                           r.last_sequence(), r.next_sequence);
    }
    if (r.clean()) return fmt::format_to(out, ", clean");
    return fmt::format_to(out, ", {} {} bytes and {} segment{}: {}",
                          r.dry_run ? "would drop" : "dropped", r.bytes_dropped,
                          r.segments_dropped, r.segments_dropped == 1 ? "" : "s", r.why);
  }
};
