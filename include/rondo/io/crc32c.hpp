#pragma once
// CRC32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum of the journal's frames.
// The SSE4.2 crc32 instruction when the CPU has it (checked once at start-up), else a
// slicing-by-8 table. Both give the same value; the tests pin the standard check values.

#include <cstddef>
#include <cstdint>

namespace rondo::detail {

/// The CRC32C of `n` bytes at `data` appended to a message whose CRC32C is `crc` (0 for the
/// empty message): crc32c_extend(crc32c_extend(0, a), b) == CRC32C of a followed by b.
/// Thread-safe (pure).
[[nodiscard]] std::uint32_t crc32c_extend(std::uint32_t crc, const void* data,
                                          std::size_t n) noexcept;

[[nodiscard]] inline std::uint32_t crc32c(const void* data, std::size_t n) noexcept {
  return crc32c_extend(0, data, n);
}

/// Whether crc32c_extend uses the SSE4.2 instruction (else the table), for tests and benches.
[[nodiscard]] bool crc32c_hardware() noexcept;
/// The table version, whatever the CPU: tests compare the two.
[[nodiscard]] std::uint32_t crc32c_extend_portable(std::uint32_t crc, const void* data,
                                                   std::size_t n) noexcept;

}  // namespace rondo::detail
