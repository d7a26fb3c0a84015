// The latency histogram (histogram.hpp): 8 linear sub-buckets per power of two, percentiles and
// a bar chart; human_ns().
#include "histogram.hpp"

#include <fmt/format.h>

namespace order_server {

std::string human_ns(std::uint64_t ns) {
  const double v = static_cast<double>(ns);
  if (ns < 1'000) return fmt::format("{:.0f} ns", v);
  if (ns < 1'000'000) return fmt::format("{:.{}f} us", v / 1e3, ns < 100'000 ? 1 : 0);
  return fmt::format("{:.{}f} ms", v / 1e6, ns < 100'000'000 ? 1 : 0);
}

std::uint64_t latency_histogram::percentile(double q) const {
  const auto rank = static_cast<std::int64_t>(q * static_cast<double>(count_));
  std::int64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen > rank) return std::min(upper_edge(i), max_);
  }
  return max_;
}

void latency_histogram::print(const char* title) const {
  fmt::print("{}: p50 {}, p90 {}, p99 {}, p99.9 {}, max {}\n", title, human_ns(percentile(0.5)),
             human_ns(percentile(0.9)), human_ns(percentile(0.99)), human_ns(percentile(0.999)),
             human_ns(max_));
  std::array<std::int64_t, 64> per_power{};  // [2^p, 2^(p+1)) ns; 0 ns counts in p = 0
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    const std::uint64_t low = i < 8 ? i : upper_edge(i - 1);
    per_power[low == 0 ? 0 : static_cast<std::size_t>(std::bit_width(low)) - 1] += counts_[i];
  }
  for (std::size_t p = 0; p < per_power.size(); ++p) {
    const double share = static_cast<double>(per_power[p]) / static_cast<double>(count_);
    if (share < 0.0005) continue;
    fmt::print("  {:>8} .. {:<8} {:6.2f}% {}\n", human_ns(std::uint64_t{1} << p),
               human_ns(std::uint64_t{2} << p), 100 * share,
               std::string(static_cast<std::size_t>(share * 50 + 0.5), '#'));
  }
}

std::uint64_t latency_histogram::upper_edge(std::size_t i) {
  if (i < 8) return i + 1;
  const std::size_t e = i / 8 + 2, m = i % 8 + 8;
  return std::uint64_t{m + 1} << (e - 3);
}

}  // namespace order_server
