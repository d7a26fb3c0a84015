#pragma once
// The producer side of a disruptor: reserve slots, fill them in place, publish.
//
//   auto c = pub.reserve(4);                 // claims 4 consecutive sequences
//   for (auto [seq, ev] : c) ev = make(seq);  // writes the events in the ring
//   c.publish();                             // handlers may now see them
//
// Two handles, one per kind of caller, with one naming rule (docs/naming.md): publisher<T> for
// threads, whose reserve(n) blocks the thread while the ring is full, and coro_publisher<T> for
// coroutines, whose reserve(n) is awaitable:
//
//   rondo::coro_publisher<order> publisher = d.coro_publisher();
//   auto c = co_await publisher.reserve(n);  // spins, then suspends while the ring is full
//
// try_reserve never waits; reserve_for takes a timeout, reserve_until a deadline.
//
// A claim dropped without publish() (for instance because filling it threw) is given back:
// with a single producer the sequences are reused by the next reserve; with several producers
// they are published as tombstones that every handler skips. Either way the ring never stalls
// and no handler sees an unfinished event.

#include <rondo/core/multi_producer_sequencer.hpp>
#include <rondo/core/ring_buffer.hpp>
#include <rondo/core/single_producer_sequencer.hpp>
#include <rondo/dsl/entries.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstddef>
#include <coroutine>
#include <cstdint>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>

namespace rondo {

template <class T>
class publisher;
template <class T>
class coro_publisher;
template <class T, bool Maybe>
class publisher_reserve_operation;

/// Consecutive slots reserved by one producer, to fill and then publish(). Move-only.
/// Thread-safety: use a claim from one thread.
template <class T>
class [[nodiscard]] claim {
 public:
  /// One slot of a claim, as iteration yields it: `for (auto [seq, ev] : c)`.
  using entry = sequenced<T>;
  using iterator = detail::slot_iterator<T, true>;

  /// An empty claim, as a moved-from one (is_open() false, size() 0): what an Asio completion
  /// (rondo/asio.hpp) carries beside an error.
  claim() noexcept : pub_(nullptr), lo_(0), hi_(-1) {}
  claim(claim&& o) noexcept : pub_(std::exchange(o.pub_, nullptr)), lo_(o.lo_), hi_(o.hi_) {}
  claim& operator=(claim&& o) noexcept {
    if (this != &o) {
      release();
      pub_ = std::exchange(o.pub_, nullptr);
      lo_ = o.lo_;
      hi_ = o.hi_;
    }
    return *this;
  }
  claim(const claim&) = delete;
  claim& operator=(const claim&) = delete;
  /// Gives an unpublished claim back (see the file comment).
  ~claim() { release(); }

  /// The i-th slot of the claim, i in [0, size()). Unchecked.
  T& operator[](std::size_t i) const noexcept { return (*pub_->ring_)[lo_ + std::int64_t(i)]; }
  /// The slot of sequence seq in [first(), last()]. Throws std::out_of_range otherwise.
  T& at_sequence(std::int64_t seq) const {
    if (seq < lo_ || seq > hi_) {
      throw std::out_of_range(
          fmt::format("claim::at_sequence({}): outside [{}, {}]", seq, lo_, hi_));
    }
    return (*pub_->ring_)[seq];
  }

  [[nodiscard]] std::int64_t first() const noexcept { return lo_; }
  [[nodiscard]] std::int64_t last() const noexcept { return hi_; }
  [[nodiscard]] std::size_t size() const noexcept { return std::size_t(hi_ - lo_ + 1); }
  [[nodiscard]] bool is_open() const noexcept { return pub_ != nullptr; }

  /// The claim's slots as at most two contiguous spans (two when the claim wraps the ring's end):
  /// `for (auto seg : {s.first, s.second}) for (T& ev : seg) ...` fills without a mask per slot.
  [[nodiscard]] typename ring_buffer<T>::segments spans() const noexcept {
    return pub_->ring_->contiguous(lo_, hi_ - lo_ + 1);
  }

  iterator begin() const noexcept { return {pub_ ? pub_->ring_ : nullptr, lo_}; }
  iterator end() const noexcept { return {pub_ ? pub_->ring_ : nullptr, hi_ + 1}; }

  /// Makes the events visible to handlers. Throws std::logic_error if already published.
  [[gnu::always_inline]] void publish() {
    if (pub_ == nullptr) [[unlikely]] throw_not_open();
    std::exchange(pub_, nullptr)->publish_range(lo_, hi_);
  }

 private:
  friend class publisher<T>;
  friend class publisher_reserve_operation<T, false>;
  friend class publisher_reserve_operation<T, true>;
  claim(publisher<T>* p, std::int64_t lo, std::int64_t hi) noexcept : pub_(p), lo_(lo), hi_(hi) {}

  void release() noexcept {
    if (pub_ != nullptr) [[unlikely]] std::exchange(pub_, nullptr)->abandon_range(lo_, hi_);
  }

  [[noreturn]] [[gnu::cold]] [[gnu::noinline]] static void throw_not_open() {
    throw std::logic_error(
        "claim::publish(): the claim is not open (already published or moved from)");
  }

  publisher<T>* pub_;
  std::int64_t lo_;
  std::int64_t hi_;
};

/// Reserves and publishes events into one disruptor's ring.
///
/// Thread-safety: with producer_type::multi any number of threads may use one publisher
/// concurrently; with producer_type::single one thread at a time, and at most one open claim.
///
/// Errors: n outside [1, capacity] -> std::invalid_argument; after drain/close/halt (also while
/// waiting) -> rondo::closed; a second open claim with a single producer -> std::logic_error.
template <class T>
class publisher {
 public:
  /// A stamped ring (ring_buffer::use_stamps, set before) gets its stamps written by every
  /// publish.
  publisher(ring_buffer<T>& ring, single_producer_sequencer& s) noexcept
      : ring_(&ring), single_(&s), multi_(nullptr), stamped_(ring.stamped()) {}
  publisher(ring_buffer<T>& ring, multi_producer_sequencer& m) noexcept
      : ring_(&ring), single_(nullptr), multi_(&m) {}
  publisher(const publisher&) = delete;
  publisher& operator=(const publisher&) = delete;

  /// Claims n consecutive slots, blocking the calling thread (with the disruptor's wait
  /// strategy) while the ring is full. From a coroutine on an executor, a wait is a
  /// std::logic_error naming the awaitable form (coro_publisher::reserve) instead.
  claim<T> reserve(std::int64_t n = 1) {
    const std::int64_t hi = visit([n](auto& s) { return s.reserve(n); });
    return claim<T>(this, hi - n + 1, hi);
  }

  /// Claims n slots if they are free now; nullopt if the ring lacks capacity.
  std::optional<claim<T>> try_reserve(std::int64_t n = 1) {
    const auto hi = visit([n](auto& s) { return s.try_reserve(n); });
    if (!hi) return std::nullopt;
    return claim<T>(this, *hi - n + 1, *hi);
  }

  /// As reserve(), giving up after `timeout` (nullopt). A negative timeout is
  /// std::invalid_argument.
  std::optional<claim<T>> reserve_for(std::int64_t n, std::chrono::nanoseconds timeout) {
    return reserve_until(n, detail::deadline_after(timeout, "publisher::reserve_for"));
  }

  /// As reserve(), giving up at `deadline` (nullopt).
  std::optional<claim<T>> reserve_until(std::int64_t n,
                                        std::chrono::steady_clock::time_point deadline) {
    const auto hi = visit([n, deadline](auto& s) { return s.reserve_until(n, deadline); });
    if (!hi) return std::nullopt;
    return claim<T>(this, *hi - n + 1, *hi);
  }

  /// The coroutine handle on this publisher (see coro_publisher): `co_await
  /// pub.coro().reserve(n)`.
  [[nodiscard]] coro_publisher<T> coro() noexcept { return coro_publisher<T>(*this); }

  /// Reserves one slot, calls fill(event, sequence), publishes. If fill throws, the claim is
  /// given back and the exception propagates.
  template <class Fill>
  void publish_event(Fill&& fill) {
    auto c = reserve(1);
    fill(c[0], c.first());
    c.publish();
  }

  /// Free slots now (a snapshot).
  [[nodiscard]] std::int64_t remaining_capacity() const noexcept {
    return visit([](const auto& s) { return s.remaining_capacity(); });
  }

  [[nodiscard]] std::int64_t capacity() const noexcept { return ring_->capacity(); }

  /// The sequencer behind this publisher.
  [[nodiscard]] const rondo::sequencer& sequencer() const noexcept {
    return visit([](const auto& s) -> const rondo::sequencer& { return s; });
  }

 private:
  friend class claim<T>;
  friend class coro_publisher<T>;
  friend class publisher_reserve_operation<T, false>;
  friend class publisher_reserve_operation<T, true>;

  // The one place that picks the sequencer kind, fixed when the publisher is made (at the
  // disruptor's build()): every operation is written once, generic over the kind, and compiles
  // to a test of a pointer that never changes (predicted; nothing else branches on the kind).
  // Not a template parameter of publisher<T>: the builder's producers() is a run-time setting
  // and publisher<T> is the type users name (docs/core.md, "Sequencer kinds").
  template <class F>
  [[gnu::always_inline]] decltype(auto) visit(F&& f) const {
    if (single_ != nullptr) [[likely]] return f(*single_);
    return f(*multi_);
  }

  void check_async(std::int64_t n) const {
    visit([n](const auto& s) { s.check_reserve(n); });
  }

  // Inlined, so that a claim's publish() is the single producer's one store and signal
  // wherever it is called (clang kept it out of line in a coroutine: 25 % of a reserve loop);
  // the multi producer's flag loop stays out of line. Spelled out rather than through visit():
  // g++ outlines the lambda in a coroutine body (reserve + publish 3.3 -> 4.3 ns).
  [[gnu::always_inline]] void publish_range(std::int64_t lo, std::int64_t hi) noexcept {
    if (single_ != nullptr) [[likely]] {
      // The stamps before the cursor: a stage that waits on a stamp reads the cursor after it.
      if (stamped_) [[unlikely]] ring_->write_stamps(lo, hi);
      single_->publish(lo, hi);
    } else {
      publish_multi(lo, hi);
    }
  }
  [[gnu::noinline]] void publish_multi(std::int64_t lo, std::int64_t hi) noexcept {
    multi_->publish(lo, hi);
  }
  void abandon_range(std::int64_t lo, std::int64_t hi) noexcept {
    visit([lo, hi](auto& s) { s.abandon(lo, hi); });
  }

  ring_buffer<T>* ring_;
  single_producer_sequencer* single_;  // exactly one of the two is set, for the publisher's life
  multi_producer_sequencer* multi_;
  bool stamped_ = false;  // single producer on a stamped ring: publish writes the stamps
};

}  // namespace rondo

// The coroutine handle (coro_publisher) and its awaitable; publisher::coro() returns it.
#include <rondo/dsl/coro_publisher.hpp>
