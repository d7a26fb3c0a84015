// CRC32C: SSE4.2 where the CPU has it, slicing-by-8 elsewhere (see rondo/io/crc32c.hpp).

#include <rondo/io/crc32c.hpp>

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace rondo::detail {

namespace {

constexpr std::uint32_t poly = 0x82F63B78U;  // Castagnoli, bit-reflected

// tables[k][b]: the CRC state after byte b followed by k zero bytes, so eight bytes are folded
// with eight independent lookups instead of a chain of eight.
constexpr auto make_tables() {
  std::array<std::array<std::uint32_t, 256>, 8> t{};
  for (std::uint32_t b = 0; b < 256; ++b) {
    std::uint32_t c = b;
    for (int i = 0; i < 8; ++i) c = (c >> 1) ^ ((c & 1U) != 0 ? poly : 0U);
    t[0][b] = c;
  }
  for (std::size_t k = 1; k < 8; ++k) {
    for (std::uint32_t b = 0; b < 256; ++b)
      t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFFU];
  }
  return t;
}
constexpr auto tables = make_tables();

std::uint32_t portable(std::uint32_t state, const unsigned char* p, std::size_t n) noexcept {
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);  // little-endian: the first byte is the low byte
    w ^= state;
    state = tables[7][w & 0xFF] ^ tables[6][(w >> 8) & 0xFF] ^ tables[5][(w >> 16) & 0xFF] ^
            tables[4][(w >> 24) & 0xFF] ^ tables[3][(w >> 32) & 0xFF] ^
            tables[2][(w >> 40) & 0xFF] ^ tables[1][(w >> 48) & 0xFF] ^ tables[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) state = (state >> 8) ^ tables[0][(state ^ *p++) & 0xFFU];
  return state;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t hardware(std::uint32_t state,
                                                         const unsigned char* p,
                                                         std::size_t n) noexcept {
  std::uint64_t s = state;
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    s = _mm_crc32_u64(s, w);
    p += 8;
    n -= 8;
  }
  auto s32 = static_cast<std::uint32_t>(s);
  while (n-- > 0) s32 = _mm_crc32_u8(s32, *p++);
  return s32;
}

bool has_sse42() noexcept {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2") != 0;
}
#endif

using impl_fn = std::uint32_t (*)(std::uint32_t, const unsigned char*, std::size_t) noexcept;

impl_fn pick() noexcept {
#if defined(__x86_64__)
  if (has_sse42()) return &hardware;
#endif
  return &portable;
}

// Chosen once; a function-local static would put a guard check on every call.
const impl_fn chosen = pick();

}  // namespace

std::uint32_t crc32c_extend(std::uint32_t crc, const void* data, std::size_t n) noexcept {
  // The register holds the complement (initial value ~0, final xor ~0).
  return ~chosen(~crc, static_cast<const unsigned char*>(data), n);
}

std::uint32_t crc32c_extend_portable(std::uint32_t crc, const void* data, std::size_t n) noexcept {
  return ~portable(~crc, static_cast<const unsigned char*>(data), n);
}

bool crc32c_hardware() noexcept {
  return chosen != &portable;
}

}  // namespace rondo::detail
