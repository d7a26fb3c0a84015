#pragma once
// io_context::impl, the private state of an io_context, declared here for the src/io/ files
// that define it (see include/rondo/io/io_context.hpp for the model). liburing stays private
// to these files: the public headers do not include it.
//
// Where each part is defined:
//   ring_setup.cpp        the ring: setup flags, fallbacks, feature probes, construction;
//                         the ring a foreign loop can wait on (leave_defer_taskrun())
//   queues.cpp            the remote queue, post() and the doorbells (eventfd, MSG_RING)
//   run_loop.cpp          submit and reap, the rounds, idle spin and sleep, run/poll/stop
//   embedding.cpp         a foreign loop's wait: wait_handle(), prepare_wait(), finish_wait()
//   operations.cpp        each operation's SQE, its completion, cancellation, the backlog
//   multishot_accept.cpp  multishot_acceptor

#include <rondo/detail/config.hpp>
#include <rondo/io/io_context.hpp>

#include <fmt/format.h>

#include <liburing.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <span>
#include <stdexcept>
#include <thread>

namespace rondo {

// Internal to the io_context sources (each of them gets its own copy, as when they were one
// file's).
namespace {

// user_data of a completion: an operation's address (aligned to 8) with a tag in the low bits,
// or one of two constants (no object has address 0).
constexpr std::uint64_t doorbell_tag = 1;  // the doorbell's eventfd read
constexpr std::uint64_t ignore_tag = 2;    // completions nobody waits for
constexpr std::uint64_t msg_doorbell_tag = 3;  // a doorbell another context sent by MSG_RING
constexpr std::uint64_t msg_sent_tag = 4;      // our own MSG_RING's completion (a send number
                                               // above the tag bits)
constexpr std::uint64_t tag_mask = 7;
constexpr std::uint64_t op_main = 0;       // an io_operation's own completion
constexpr std::uint64_t op_timeout = 1;    // its linked timeout
constexpr std::uint64_t op_cancel = 2;     // its ASYNC_CANCEL
constexpr std::uint64_t op_multishot = 3;  // a multishot_acceptor's accept

// io_context::impl::sleeping
constexpr std::uint8_t awake = 0;
constexpr std::uint8_t asleep_in_ring = 1;     // in io_uring_submit_and_wait
constexpr std::uint8_t asleep_elsewhere = 2;   // a foreign loop's wait (prepare_wait())

inline std::uint64_t tagged(const void* p, std::uint64_t tag) noexcept {
  return reinterpret_cast<std::uint64_t>(p) | tag;
}

inline void check_owner(const io_context& c, const char* what) {
  if (std::this_thread::get_id() != c.owner()) {
    throw std::logic_error(fmt::format("rondo::io_context::{}() called from a thread that does "
                                       "not own the context (construct it on the thread that "
                                       "runs it)",
                                       what));
  }
}

}  // namespace

namespace detail {
// A multishot accept's state. On the heap, not in a frame: the kernel may still post
// completions for it after the acceptor is gone (it is then orphaned, and the context frees it
// when the last completion, the one without IORING_CQE_F_MORE, arrives, or at its own end).
struct multishot_state {
  io_context* ctx = nullptr;
  int fd = -1;
  unsigned flags = 0;
  bool armed = false;     // a multishot accept is in the kernel
  bool orphaned = false;  // the acceptor is gone
  bool waiting = false;   // a next() is suspended on `waiter`
  bool cancelled = false; // cancel(): no more accepts
  std::deque<int> results;
  schedule_node waiter{};
  multishot_state* prev_orphan = nullptr;
  multishot_state* next_orphan = nullptr;
};
}  // namespace detail

struct io_context::impl {
  io_uring ring{};
  unsigned flags = 0;
  io_options opts;
  int doorbell = -1;
  std::uint64_t doorbell_buf = 0;
  int wait_fd = -1;  // wait_handle(): an eventfd registered with the ring, for foreign loops
  // Owner-only FIFO of ready nodes.
  schedule_node* ready_head = nullptr;
  schedule_node* ready_tail = nullptr;
  // Owner-only: completions the kernel owes us (ops, their timeouts and cancels, multishot
  // accepts), and operations waiting for room (see io_options::max_in_flight).
  std::size_t in_flight = 0;
  std::size_t in_flight_cap = 0;
  // Owner-only: operations in flight that io_uring hands to its worker threads (see
  // uses_kernel_worker()): while any is, the idle poll is skipped (io_options).
  std::size_t worker_ops = 0;
  io_operation* backlog_head = nullptr;
  io_operation* backlog_tail = nullptr;
  std::size_t backlog_size = 0;
  detail::multishot_state* orphans = nullptr;
  // Owner-only: failures of spawned tasks, oldest first, for run()/run_one()/poll() to rethrow.
  std::deque<std::exception_ptr> spawn_failures;
  std::function<void(std::exception_ptr)> spawn_failure_handler;  // on_spawn_failure()
  // Set up once: this ring can send and take MSG_RING doorbells (a DEFER_TASKRUN ring on a
  // kernel with IORING_OP_MSG_RING, whose remote delivery completes at once on the sender).
  bool msg_ring = false;
  // Owner-only: numbers our MSG_RING doorbells (see ring_by_msg()).
  std::uint64_t msg_sends = 0;
  // Owner-only: a doorbell (an eventfd read or another context's MSG_RING) may be waiting as
  // task work: set when a sleep in the ring is called off after `sleeping` was announced (a
  // poster may have rung meanwhile), so the next reap asks the kernel once even with nothing
  // in flight and such work never piles up on a busy context.
  bool doorbell_work = false;
  // Owner-only: between a prepare_wait() that returned true and its finish_wait(). A foreign
  // loop may run its own handlers on the owner thread meanwhile (Asio does: see
  // rondo/asio.hpp), and a post() from one of them must wake that loop too: nobody else will
  // poll the local queue before the loop's wait ends.
  bool waiting_elsewhere = false;
  detail::intrusive_mpsc_queue remote;
  // The line posters write: `sleeping` (written by the owner only around its kernel sleep,
  // read by posters: Dekker with their push), their in-progress counts and the doorbell
  // counters. Kept off the lines the owner polls while idle (`stopped`, the queue), so a post
  // does not steal them from under the owner's idle loop.
  alignas(detail::cache_line_size) std::atomic<std::uint8_t> sleeping{awake};
  std::atomic<int> stoppers{0};  // stop() calls in progress (see stop())
  std::atomic<int> posters{0};   // remote post() calls in progress (see post())
  // Diagnostics (relaxed counters, bumped by posters on the slow path only).
  std::atomic<std::uint64_t> rung_by_msg_ring{0};
  std::atomic<std::uint64_t> rung_by_eventfd{0};
  // Read by the owner every idle round; written by stop().
  alignas(detail::cache_line_size) std::atomic<bool> stopped{false};
  // Coroutine waits parked on this context (owner-polled); a notifier that finds one of their
  // announcements while we sleep rings the doorbell through ring_if_asleep().
  park_lot lot{[](void* self) noexcept { static_cast<impl*>(self)->ring_if_asleep(); }, this};

  // ---- The ring: setup, fallbacks, replacement for a foreign loop (ring_setup.cpp)

  explicit impl(io_options o);
  ~impl();
  void set_in_flight_cap(const io_uring_params& accepted) noexcept;
  void leave_defer_taskrun();

  // ---- Queues and doorbells (queues.cpp)

  void push_ready(schedule_node& n) noexcept {
    n.next = nullptr;
    if (ready_tail != nullptr) ready_tail->next = &n; else ready_head = &n;
    ready_tail = &n;
  }
  bool take_remote() noexcept;
  void arm_doorbell();
  void ring_if_asleep() noexcept;
  void ring_doorbell() noexcept;
  bool ring_by_msg(const impl& target) noexcept;

  // ---- Submitting, reaping and the loop (run_loop.cpp)

  io_uring_sqe* sqe();
  void flush();
  [[nodiscard]] bool kernel_has_work() const noexcept;
  std::size_t reap();
  std::size_t reap_cq();
  std::size_t run_ready(io_context& self);
  std::size_t round(io_context& self);
  [[nodiscard]] bool idle() const noexcept;
  void wait_for_work();
  bool announce_sleep(std::uint8_t how);
  void call_off_sleep() noexcept;

  // ---- Operations (operations.cpp)

  void start(io_operation& op);
  static std::size_t needed(const io_operation& op) noexcept;
  void drain_backlog();
  bool remove_from_backlog(io_operation& op) noexcept;
  static bool uses_kernel_worker(detail::io_kind k) noexcept;
  void prep(io_operation& op);
  void on_main(io_operation& op, int res) noexcept;
  void on_timeout(io_operation& op, int res) noexcept;
  void on_cancel(io_operation& op) noexcept;
  void finish_if_done(io_operation& op) noexcept;
  void cancel(io_operation& op);

  // ---- Multishot accept (multishot_accept.cpp)

  void arm_multishot(detail::multishot_state& st);
  void on_multishot(detail::multishot_state& st, int res, unsigned cflags);
  void orphan(detail::multishot_state& st) noexcept;
  void unlink_orphan(detail::multishot_state& st) noexcept;
};

}  // namespace rondo
