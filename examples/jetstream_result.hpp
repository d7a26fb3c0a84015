#pragma once
// The JetStream demo's compute step, in one place: the pipeline (examples/jetstream_pipeline.cpp)
// writes it, the bench (bench/jetstream_bench.cpp) writes it too, and the verifier
// (tests/jetstream/js_tool.cpp) recomputes it, so a result that verifies is byte for byte what the
// pipeline wrote. The result of input sequence s with payload p is "s:<FNV-1a of p, 16 hex>".

#include <fmt/format.h>

#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>

namespace rondo_jetstream_demo {

/// 64-bit FNV-1a of `s`.
[[nodiscard]] inline std::uint64_t fnv1a(std::string_view s) noexcept {
  std::uint64_t h = 1469598103934665603ULL;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

/// Replaces `out` with the result of input `sequence` carrying `payload` (reuses its capacity).
inline void write_result(std::string& out, std::uint64_t sequence, std::string_view payload) {
  out.clear();
  fmt::format_to(std::back_inserter(out), "{}:{:016x}", sequence, fnv1a(payload));
}

}  // namespace rondo_jetstream_demo
