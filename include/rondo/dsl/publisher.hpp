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
#include <rondo/coro/wait_operation.hpp>
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
  publisher(ring_buffer<T>& ring, single_producer_sequencer& s) noexcept
      : ring_(&ring), single_(&s), multi_(nullptr) {}
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
};

/// The awaitable of coro_publisher::reserve(). co_await yields claim<T> (Maybe = false) or
/// std::optional<claim<T>> (Maybe = true: empty when cancelled or timed out); both throw
/// rondo::closed when the disruptor is closed before the slots are granted. Resumes on the
/// scheduler current when it suspended. Not movable: await it where it is created.
///
/// Two layers, so that the common case costs what the thread reserve costs: the operation
/// itself holds only what a claim that succeeds at once needs (four words in the coroutine
/// frame); the machinery of a wait that must suspend (detail::suspending_wait: spin, yield,
/// park, deadline, stop token) is built in place only when await_ready() found the ring full.
template <class T, bool Maybe>
class [[nodiscard]] publisher_reserve_operation {
  using clock = std::chrono::steady_clock;

 public:
  using result_type = std::conditional_t<Maybe, std::optional<claim<T>>, claim<T>>;

  publisher_reserve_operation(publisher<T>& p, std::int64_t n,
                              clock::time_point deadline = clock::time_point::max(),
                              std::stop_token stop = {}) noexcept
      : pub_(&p), n_(n) {
    if constexpr (Maybe) {
      args_.deadline = deadline;
      args_.stop = std::move(stop);
    }
  }
  publisher_reserve_operation(const publisher_reserve_operation&) = delete;
  publisher_reserve_operation& operator=(const publisher_reserve_operation&) = delete;

  /// The fast path is the thread reserve's: a valid n, no open claim, room in the cached gating
  /// sequence. Anything else validates n (std::invalid_argument, std::logic_error, thrown here,
  /// before any wait) and tries a full claim.
  [[nodiscard]] [[gnu::always_inline]] bool await_ready() {
    // The fast path writes nothing into the operation (the constructor's two stores are all a
    // granted reserve pays in the frame): the claim's end is the sequencer's claimed sequence,
    // read back in await_resume (a single producer has one claim open).
    if (pub_->single_ != nullptr) [[likely]] {
      std::int64_t hi;
      if (pub_->single_->try_reserve_fast(n_, hi)) [[likely]] return true;
    }
    path_ = path::polled;
    pub_->check_async(n_);
    n_ = -n_;  // off the fast path from here on: see n_
    return poll();
  }

  /// Spins, yields, parks (coro/wait_operation.hpp). Throws std::logic_error if it must suspend
  /// and there is no scheduler.
  bool await_suspend(std::coroutine_handle<> h) {
    if constexpr (Maybe) {
      ::new (static_cast<void*>(&slow_)) slow_wait(*this, args_.deadline, std::move(args_.stop));
    } else {
      ::new (static_cast<void*>(&slow_)) slow_wait(*this, clock::time_point::max(), {});
    }
    path_ = path::suspended;
    return slow_.await_suspend(h);
  }

  [[gnu::always_inline]] result_type await_resume() {
    if (n_ > 0) [[likely]] {
      const std::int64_t hi = pub_->single_->last_claimed();
      return claim<T>(pub_, hi - n_ + 1, hi);
    }
    if (status_ == claim_status::granted) return claim<T>(pub_, hi_ - slow_n() + 1, hi_);
    if (status_ == claim_status::closed) sequencer::throw_closed_error();
    if constexpr (Maybe) {
      return std::nullopt;
    } else {
      // Without a stop token or deadline the wait ends only granted or closed.
      sequencer::throw_closed_error();
    }
  }

  ~publisher_reserve_operation() {
    if (n_ < 0 && path_ == path::suspended) [[unlikely]] slow_.~slow_wait();
  }

 private:
  // The wait that suspends, built only when needed; it reports through the operation.
  class slow_wait final : public detail::suspending_wait<slow_wait> {
    using base = detail::suspending_wait<slow_wait>;
    friend base;

   public:
    slow_wait(publisher_reserve_operation& op, clock::time_point deadline,
              std::stop_token stop) noexcept
        : base(op.pub_->sequencer().waits(), deadline, std::move(stop), nullptr, {}), op_(&op) {}

   private:
    bool poll() noexcept { return op_->poll(); }
    static bool registry_ready(const slow_wait& w) noexcept {
      const std::int64_t n = w.op_->slow_n();
      return w.op_->pub_->visit([n](const auto& s) { return s.capacity_or_closed(n); });
    }
    [[nodiscard]] std::int64_t target() const noexcept {
      const std::int64_t n = op_->slow_n();
      return op_->pub_->visit([n](const auto& s) { return s.capacity_target(n); });
    }
    [[nodiscard]] wait_moment moment() const noexcept { return wait_moment::ring_full; }
    // Only the terminal stages' advances free slots.
    [[nodiscard]] std::uint8_t sources() const noexcept { return detail::stage_advance; }
    [[nodiscard]] detail::waiter_registry& registry() const noexcept {
      return op_->pub_->sequencer().waits().waiters();
    }

    publisher_reserve_operation* op_;
  };

  [[gnu::always_inline]] bool poll() noexcept {
    const std::int64_t n = slow_n();
    status_ = pub_->visit([n, this](auto& s) { return s.try_reserve(n, hi_); });
    return status_ != claim_status::full;
  }

  struct cancel_args {
    clock::time_point deadline = clock::time_point::max();
    std::stop_token stop;
  };
  struct no_args {};

  // How the operation went off the fast path (n_ < 0; on the fast path, try_reserve_fast granted
  // and the claim's end is the sequencer's claimed sequence); await_resume and the destructor
  // read it.
  enum class path : std::uint8_t {
    polled,    // validated and tried: hi_ and status_ say how it went
    suspended  // slow_ is alive and reports through hi_ and status_
  };

  // n off the fast path (after validation, so n >= 1 there).
  [[nodiscard]] std::int64_t slow_n() const noexcept { return -n_; }

  publisher<T>* pub_;
  // The requested n, negated once await_ready left the fast path: the sign is the fast path's
  // only mark, so that a granted reserve stores nothing beyond pub_ and n_ into the frame.
  std::int64_t n_;
  path path_;            // written only off the fast path (n_ < 0)
  claim_status status_;  // set by poll() before anything reads it
  std::int64_t hi_;  // set by poll() before anything reads it
  [[no_unique_address]] std::conditional_t<Maybe, cancel_args, no_args> args_;
  union {
    slow_wait slow_;  // constructed by await_suspend only
  };
};

/// The coroutine handle of a publisher: what a producer coroutine holds. Its reserve(n) is
/// awaitable — `auto c = co_await publisher.reserve(n);` — and suspends the coroutine, never
/// the thread, while the ring is full (spin, yield, then park on its executor: the
/// spin_then_suspend policy's ring_full moment); it resumes on the scheduler that was current
/// when it suspended, once a terminal stage frees the slots. A small value (one pointer): copy
/// it freely; the publisher (and its disruptor) must outlive it.
///
/// Errors, thrown by the co_await before any wait: std::invalid_argument for n outside
/// [1, capacity], std::logic_error while this single producer has a claim open; rondo::closed
/// when the disruptor is (or gets) drained, closed or halted (also after a wait). Thread-safety: as publisher<T>.
/// Never allocates.
template <class T>
class coro_publisher {
 public:
  coro_publisher(publisher<T>& p) noexcept : pub_(&p) {}  // NOLINT: a view of `p`, like p&

  /// `co_await reserve(n)` yields claim<T>: n consecutive slots.
  [[nodiscard]] publisher_reserve_operation<T, false> reserve(std::int64_t n = 1) noexcept {
    return publisher_reserve_operation<T, false>(*pub_, n);
  }
  /// As reserve(n), cancellable: yields std::optional<claim<T>>, empty once `stop` is requested
  /// before the slots were granted.
  [[nodiscard]] publisher_reserve_operation<T, true> reserve(std::int64_t n,
                                                             std::stop_token stop) noexcept {
    return publisher_reserve_operation<T, true>(
        *pub_, n, std::chrono::steady_clock::time_point::max(), std::move(stop));
  }
  /// As reserve(n, stop), giving up at `deadline` too (an empty optional).
  [[nodiscard]] publisher_reserve_operation<T, true> reserve_until(
      std::int64_t n, std::chrono::steady_clock::time_point deadline,
      std::stop_token stop = {}) noexcept {
    return publisher_reserve_operation<T, true>(*pub_, n, deadline, std::move(stop));
  }
  /// As reserve(n, stop), giving up after `timeout` too. A negative timeout is
  /// std::invalid_argument.
  [[nodiscard]] publisher_reserve_operation<T, true> reserve_for(std::int64_t n,
                                                                 std::chrono::nanoseconds timeout,
                                                                 std::stop_token stop = {}) {
    return reserve_until(n, detail::deadline_after(timeout, "coro_publisher::reserve_for"),
                         std::move(stop));
  }
  /// Claims n slots if they are free now (never waits); nullopt if the ring lacks capacity.
  std::optional<claim<T>> try_reserve(std::int64_t n = 1) { return pub_->try_reserve(n); }

  [[nodiscard]] std::int64_t remaining_capacity() const noexcept {
    return pub_->remaining_capacity();
  }
  [[nodiscard]] std::int64_t capacity() const noexcept { return pub_->capacity(); }
  /// The thread handle this one is a view of.
  [[nodiscard]] publisher<T>& thread_publisher() const noexcept { return *pub_; }

 private:
  publisher<T>* pub_;
};

}  // namespace rondo
