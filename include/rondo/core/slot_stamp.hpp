#pragma once
// Slot stamps: the sequence of an event, published inside the event's own cache line.
//
// A hop through a disruptor normally moves two cache lines from the producer's core to the
// handler's: the cursor (is there something?) and then the slot (what is it?), one after the
// other. A queue or two atomics move one. With stamps, the producer's publish also writes each
// slot's sequence into a word of the event (release), and the stages right behind the producer
// wait on that word instead of the cursor: the line that says "published" is the line that holds
// the data. Measured (bench/ping_pong_bench.cpp, docs/core.md "Ping-pong"): the round trip drops
// from about 2.3x to about 1.2x of the two-atomics floor. The cost: one more store per published
// slot, and a word per event.
//
//   struct order { std::int64_t id; double price; rondo::slot_stamp stamp; };
//   auto d = rondo::disruptor<order>::builder().stamps(&order::stamp)...build();
//
// The stamp belongs to rondo. Copying or assigning an event neither copies nor changes it (so
// `c[0] = order{...}` is safe), and a copy starts unpublished. Single producer only: several
// producers publish out of order and give claims back as tombstones, which carry no stamp.

#include <rondo/core/sequence.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>

namespace rondo {

/// A word inside an event that carries the sequence the event was last published as. See the
/// file comment. Thread-safety: one writer (the producer, through publish), any readers.
class slot_stamp {
 public:
  slot_stamp() noexcept = default;
  /// A copy is a different slot's (or no slot's) stamp: it starts unpublished.
  slot_stamp(const slot_stamp& /*other*/) noexcept {}
  /// Assigning an event leaves its slot's stamp as it was.
  slot_stamp& operator=(const slot_stamp& /*other*/) noexcept { return *this; }
  ~slot_stamp() = default;

  /// The sequence this slot was last published as (initial_sequence: never).
  [[nodiscard]] std::int64_t published() const noexcept {
    // Acquire: pairs with the release store in mark(): the event's other fields, written before
    // the publish, are visible to a reader that sees its sequence here.
    return seq_.load(std::memory_order_acquire);
  }

  /// Marks the slot as holding sequence `seq`, after the event was written. For producers built
  /// from core parts (ring_buffer::write_stamps does it for a run); the DSL's publisher calls it.
  void mark(std::int64_t seq) noexcept {
    // Release: pairs with the acquire load in published().
    seq_.store(seq, std::memory_order_release);
  }

 private:
  std::atomic<std::int64_t> seq_{initial_sequence};
};

/// A ring's slot stamps without the event type (what a sequence_barrier holds): where slot 0's
/// stamp is, the distance between two slots, the ring's index mask. `first` null: no stamps.
struct slot_stamps {
  const std::byte* first = nullptr;
  std::size_t stride = 0;
  std::int64_t mask = 0;

  [[nodiscard]] explicit operator bool() const noexcept { return first != nullptr; }
  /// The stamp of sequence seq's slot.
  [[nodiscard]] const slot_stamp& at(std::int64_t seq) const noexcept {
    return *std::launder(reinterpret_cast<const slot_stamp*>(
        first + static_cast<std::size_t>(seq & mask) * stride));
  }
};


namespace detail {
template <class T, bool = std::is_class_v<T>>
struct stamp_member {
  using type = std::nullptr_t;  // an event that is not a class has no stamp
};
template <class T>
struct stamp_member<T, true> {
  using type = slot_stamp T::*;
};
}  // namespace detail

/// `slot_stamp T::*` for a class T (std::nullptr_t otherwise): how a ring, a builder and a
/// publisher name an event's stamp member.
template <class T>
using stamp_member_t = typename detail::stamp_member<T>::type;

}  // namespace rondo
