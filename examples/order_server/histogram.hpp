#pragma once
// The demo's latency histogram (round trips in the clients, frame -> ack in the server) and
// human_ns(), which prints nanoseconds; histogram.cpp.
#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>

namespace order_server {

// ---- Latency histogram: 8 linear sub-buckets per power of two (each at most 12.5% wide) --------

std::string human_ns(std::uint64_t ns);

class latency_histogram {
 public:
  void add(std::int64_t ns) {
    const auto v = static_cast<std::uint64_t>(std::max<std::int64_t>(ns, 0));
    ++counts_[index(v)];
    ++count_;
    max_ = std::max(max_, v);
  }

  // The upper edge of the bucket that holds quantile q (never above the maximum seen).
  [[nodiscard]] std::uint64_t percentile(double q) const;

  // Percentiles, then a bar per power of two.
  void print(const char* title) const;

 private:
  static std::size_t index(std::uint64_t v) {
    if (v < 8) return static_cast<std::size_t>(v);
    const auto e = static_cast<unsigned>(std::bit_width(v) - 1);  // v in [2^e, 2^(e+1))
    return (e - 3) * 8 + static_cast<std::size_t>(v >> (e - 3));  // its top 4 bits: 8..15
  }
  static std::uint64_t upper_edge(std::size_t i);

  std::array<std::int64_t, 496> counts_{};
  std::int64_t count_ = 0;
  std::uint64_t max_ = 0;
};

}  // namespace order_server
