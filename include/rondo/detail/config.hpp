#pragma once

#include <cstddef>

namespace rondo::detail {

// Our own constant rather than std::hardware_destructive_interference_size: that one is
// ABI-unstable (g++ warns when it appears in headers) and is 64 on x86, while the adjacent-line
// prefetcher pulls pairs of lines, so two hot fields need 128 bytes between them.
inline constexpr std::size_t cache_line_size = 128;

// A hint to the CPU that we are in a spin loop: it saves power and, on SMT cores, yields the
// pipeline to the sibling thread.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

}  // namespace rondo::detail
