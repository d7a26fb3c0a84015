#pragma once
// The per-slot publication record of a ring whose claims can be published out of order (the
// multi-producer sequencer's): which claimed slots are published, and which of them are
// tombstones (claims dropped without publish()).
//
// Theory of operation
//   flags_[i]:    per slot, (round << 1) | tombstone, round = 31 bits of seq >> log2(capacity).
//                 A producer publishes seq s with a release store of the flag for round(s); a
//                 reader scans forward from its next sequence while the flags match (acquire).
//   tombstones_:  count of slots ever published as tombstones, so that handlers look at flags
//                 for tombstones only while this count is ahead of what they passed.
//
// The flags start at round 0x7fffffff, which no sequence below 2^31 * capacity has; by then every
// slot has been published in an earlier round.
//
// A single producer publishes in order (its cursor says everything), so its sequencer has no
// record; sequencer::published_out_of_order() is null there and readers skip the scan.

#include <rondo/detail/config.hpp>

#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>

namespace rondo {

/// The availability flags of an out-of-order (multi-producer) ring. Thread-safe: producers mark,
/// any reader scans.
class publication_flags {
 public:
  /// capacity: a power of two (validated by the sequencer that owns the record).
  explicit publication_flags(std::int64_t capacity)
      : flags_(std::make_unique<std::atomic<std::uint32_t>[]>(static_cast<std::size_t>(capacity))),
        mask_(capacity - 1),
        shift_(static_cast<int>(std::countr_zero(static_cast<std::uint64_t>(capacity)))) {
    for (std::int64_t i = 0; i < capacity; ++i) {
      // Before any thread can see the array (the sequencer is shared only after construction).
      flags_[static_cast<std::size_t>(i)].store(0xfffffffeU, std::memory_order_relaxed);
    }
  }
  publication_flags(const publication_flags&) = delete;
  publication_flags& operator=(const publication_flags&) = delete;

  /// Marks [lo, hi] published (tomb = 0) or published as tombstones (tomb = 1).
  void mark(std::int64_t lo, std::int64_t hi, std::uint32_t tomb) noexcept {
    for (std::int64_t s = lo; s <= hi; ++s) {
      // Pairs with the acquire loads in highest_published() and is_tombstone().
      flag(s).store((round_of(s) << 1) | tomb, std::memory_order_release);
    }
  }

  /// Counts n more tombstones; call before mark(lo, hi, 1), whose release stores publish it.
  void add_tombstones(std::int64_t n) noexcept {
    // Relaxed: made visible to handlers by the release flag stores in mark() that follow.
    tombstones_.fetch_add(n, std::memory_order_relaxed);
  }

  /// The highest h in [lo - 1, hi] such that every sequence in [lo, h] is published.
  [[nodiscard]] std::int64_t highest_published(std::int64_t lo, std::int64_t hi) const noexcept {
    for (std::int64_t s = lo; s <= hi; ++s) {
      // Pairs with the release store in mark(): seeing the flag makes the slot's contents
      // visible.
      if ((flag(s).load(std::memory_order_acquire) >> 1) != round_of(s)) return s - 1;
    }
    return hi;
  }

  /// Whether published sequence `seq` is a tombstone (meaningful while the caller holds seq).
  [[nodiscard]] bool is_tombstone(std::int64_t seq) const noexcept {
    // Pairs with the release store in mark(); the caller already acquired this flag.
    return (flag(seq).load(std::memory_order_acquire) & 1U) != 0;
  }

  /// Tombstones ever published.
  [[nodiscard]] std::int64_t tombstone_count() const noexcept {
    // Pairs with the relaxed increment in add_tombstones(); ordered for the reader by the
    // acquire load of the slot flag (or of an upstream sequence) that made the slot visible.
    return tombstones_.load(std::memory_order_acquire);
  }

 private:
  [[nodiscard]] std::atomic<std::uint32_t>& flag(std::int64_t seq) const noexcept {
    return flags_[static_cast<std::size_t>(seq & mask_)];
  }
  // 31 bits of seq / capacity, so that one lap's value differs from the previous lap's.
  [[nodiscard]] std::uint32_t round_of(std::int64_t seq) const noexcept {
    return static_cast<std::uint32_t>(static_cast<std::uint64_t>(seq) >> shift_) & 0x7fffffffU;
  }

  std::unique_ptr<std::atomic<std::uint32_t>[]> flags_;
  std::int64_t mask_;
  int shift_;
  // Written by producers that drop a claim, read by handlers once per batch: its own line.
  alignas(detail::cache_line_size) std::atomic<std::int64_t> tombstones_{0};
};

}  // namespace rondo
