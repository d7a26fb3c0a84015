// order_server: the flagship demo. An order-entry server on loopback built on rondo alone, and a
// load generator that drives it for a few seconds.
//
//   server: a rondo::runtime with contexts 0 and 1; load generator: its own io_context
//
//   N clients ── orders ──▶ accept loop + a reader coroutine per connection (ctx 0): checks
//       ▲                   the framing, publishes each order with co_await publisher.reserve(1)
//       │                     │
//       │                   decode (ctx 0) ─┬─▶ journal (ctx 1): writev + fdatasync ─┬─▶ reply
//       │                                   └─▶ match (ctx 1): price-time order book ┘  (ctx 0)
//       └─────────────────────────────────────────── acks ◀────────────────────────────────┘
//
// An ack leaves only after the journal made its order durable and the book matched it: reply
// runs rondo::after("journal", "match"). Each client measures send -> ack latency. Four
// misbehaving clients get three orders acked, then send a bad magic, an unknown type, an
// oversized length or a truncated frame: the server logs why and closes just that connection.
// At the end the demo prints throughput, latency histograms and per-stage metrics, drains, reads
// the journal back (every acked order is in it, exactly once, in order) and exits 0; 1 if a
// check failed.
//
//   usage: rondo_example_order_server [--seconds S] [--connections N] [--rate ORDERS_PER_S]
//          [--journal PATH] [--port P] [--threads T]                 (--help says more)
#include <rondo/rondo.hpp>

#include "order_protocol.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

std::int64_t ns_of(steady::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
std::int64_t now_ns() { return ns_of(steady::now()); }

// ---- Wire format and journal record: order_protocol.hpp (the fuzzer includes it too) ---------

using namespace order_protocol;

// ---- The event: one ring slot, filled in place by each stage in turn ---------------------------

struct order_event {
  // Written by the connection reader (the producer):
  rondo::connection_id conn{};  // where the ack goes (rondo::server::find() refuses a stale one)
  std::int64_t received_ns = 0;
  std::array<std::byte, order_frame_size> frame{};  // the frame as it came off the wire
  // Written by decode:
  journal_record record{};
  std::int64_t client_sent_ns = 0;
  // Written by match:
  std::uint32_t filled = 0;
};

// ---- match: a price-time priority order book ---------------------------------------------------

// One FIFO of resting orders per price and side. An incoming order takes from the best opposite
// price first, oldest order first; what is left rests at its own price.
class order_book {
 public:
  static constexpr std::uint32_t max_price = order_protocol::max_price;

  // Returns the quantity filled on arrival.
  std::uint32_t execute(std::int64_t id, std::uint8_t side, std::uint32_t price,
                        std::uint32_t qty) {
    std::uint32_t left = qty;
    if (side == 0) {  // a buy takes asks from the lowest price up to its limit
      for (std::uint32_t p = 1; p <= price && left > 0; ++p) left = take(asks_[p], left);
    } else {  // a sell takes bids from the highest price down to its limit
      for (std::uint32_t p = max_price; p >= price && left > 0; --p) left = take(bids_[p], left);
    }
    if (left > 0) {
      (side == 0 ? bids_ : asks_)[price].push_back({id, left});
      ++resting_;
    }
    filled_ += qty - left;
    return qty - left;
  }
  [[nodiscard]] std::int64_t trades() const { return trades_; }
  [[nodiscard]] std::int64_t resting() const { return resting_; }
  [[nodiscard]] std::int64_t filled() const { return filled_; }

 private:
  struct resting_order {
    std::int64_t id;
    std::uint32_t qty;
  };
  using level = std::deque<resting_order>;

  std::uint32_t take(level& l, std::uint32_t left) {
    while (left > 0 && !l.empty()) {
      const std::uint32_t n = std::min(left, l.front().qty);
      left -= n;
      l.front().qty -= n;
      ++trades_;
      if (l.front().qty == 0) {
        l.pop_front();
        --resting_;
      }
    }
    return left;
  }

  std::array<level, max_price + 1> bids_, asks_;
  std::int64_t trades_ = 0, resting_ = 0, filled_ = 0;
};

// decode: parse the frame into its journal record. Sequences continue after the records a
// restarted server recovered from its journal.
void decode_order(order_event& ev, std::int64_t seq, std::int64_t base) {
  ev.record = order_protocol::decode_order(std::span<const std::byte, order_frame_size>(ev.frame),
                                           base + seq, ev.client_sent_ns);
  ev.filled = 0;
}

// ---- Latency histogram: 8 linear sub-buckets per power of two (each at most 12.5% wide) --------

std::string human_ns(std::uint64_t ns) {
  const double v = static_cast<double>(ns);
  if (ns < 1'000) return fmt::format("{:.0f} ns", v);
  if (ns < 1'000'000) return fmt::format("{:.{}f} us", v / 1e3, ns < 100'000 ? 1 : 0);
  return fmt::format("{:.{}f} ms", v / 1e6, ns < 100'000'000 ? 1 : 0);
}

class latency_histogram {
 public:
  void add(std::int64_t ns) {
    const auto v = static_cast<std::uint64_t>(std::max<std::int64_t>(ns, 0));
    ++counts_[index(v)];
    ++count_;
    max_ = std::max(max_, v);
  }

  // The upper edge of the bucket that holds quantile q (never above the maximum seen).
  [[nodiscard]] std::uint64_t percentile(double q) const {
    const auto rank = static_cast<std::int64_t>(q * static_cast<double>(count_));
    std::int64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen > rank) return std::min(upper_edge(i), max_);
    }
    return max_;
  }

  // Percentiles, then a bar per power of two.
  void print(const char* title) const {
    fmt::print("{}: p50 {}, p90 {}, p99 {}, p99.9 {}, max {}\n", title, human_ns(percentile(0.5)),
               human_ns(percentile(0.9)), human_ns(percentile(0.99)), human_ns(percentile(0.999)),
               human_ns(max_));
    std::array<std::int64_t, 64> per_power{};  // [2^p, 2^(p+1)) ns; 0 ns counts in p = 0
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      const std::uint64_t low = i < 8 ? i : upper_edge(i - 1);
      per_power[low == 0 ? 0 : static_cast<std::size_t>(std::bit_width(low)) - 1] += counts_[i];
    }
    for (std::size_t p = 0; p < per_power.size(); ++p) {
      const double share = static_cast<double>(per_power[p]) / static_cast<double>(count_);
      if (share < 0.0005) continue;
      fmt::print("  {:>8} .. {:<8} {:6.2f}% {}\n", human_ns(std::uint64_t{1} << p),
                 human_ns(std::uint64_t{2} << p), 100 * share,
                 std::string(static_cast<std::size_t>(share * 50 + 0.5), '#'));
    }
  }

 private:
  static std::size_t index(std::uint64_t v) {
    if (v < 8) return static_cast<std::size_t>(v);
    const auto e = static_cast<unsigned>(std::bit_width(v) - 1);  // v in [2^e, 2^(e+1))
    return (e - 3) * 8 + static_cast<std::size_t>(v >> (e - 3));  // its top 4 bits: 8..15
  }
  static std::uint64_t upper_edge(std::size_t i) {
    if (i < 8) return i + 1;
    const std::size_t e = i / 8 + 2, m = i % 8 + 8;
    return std::uint64_t{m + 1} << (e - 3);
  }

  std::array<std::int64_t, 496> counts_{};
  std::int64_t count_ = 0;
  std::uint64_t max_ = 0;
};

// ---- The server: rondo::server (accept loop, connections, outboxes, timeouts) on context 0 -----

// What the server's coroutines and stages share. rondo::server and the reply stage run on
// context 0 only, so the connections need no locking.
struct order_app {
  rondo::server* net = nullptr;  // constructed by main, run on context 0
  std::optional<rondo::coro_publisher<order_event>> publisher;
  rondo::io_context* home = nullptr;  // context 0: where the server and the reply stage run
  std::int64_t sequence_base = 0;     // records recovered from the journal (--serve restarts)
  rondo::runtime* rt = nullptr;
  bool wake_main_on_halt = false;     // --serve: main waits for SIGUSR1 as well
  std::atomic<bool> halted{false};    // the journal failed: no more orders
  latency_histogram latency;          // reply stage: frame received -> ack queued
  // Counters main reads while the server runs: statistics, relaxed throughout.
  std::atomic<std::int64_t> orders_in{0}, acks_sent{0}, acks_dropped{0};
  // Set (release) by the task that ran the server once rondo::server::run() returned; main
  // reads it with acquire, and then every connection has ended.
  std::atomic<bool> server_done{false};
};

void set_nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // small frames: no Nagle
}

// One connection: read, check the framing, publish each whole frame as an order event. Each
// order first reserves its ack's room in the connection's outbox: a client that stops reading
// its acks fills its own outbox, and then only its own reader waits (and the server closes it
// when its writer's send stalls), never the ring that every client shares.
rondo::task<> serve_connection(order_app& app, rondo::connection& c) {
  set_nodelay(c.fd());
  std::array<std::byte, 16 * 1024> buf;  // in the coroutine frame
  std::size_t have = 0;
  for (;;) {
    const rondo::io_result r = co_await c.receive(std::span(buf).subspan(have), have > 0);
    if (!c.received(r)) co_return;  // the reason is recorded (and logged if abnormal)
    have += static_cast<std::size_t>(r.res);
    std::size_t used = 0;
    for (;;) {
      frame_check f = check_frame(std::span<const std::byte>(buf.data() + used, have - used));
      if (!f.error.empty()) {
        c.close(rondo::close_reason::bad_input, f.error);
        co_return;
      }
      if (f.size == 0) break;
      // Relaxed: set by the journal stage before it spawns stop_taking_orders() here; once
      // that ran on this context, the spawn's queue has made the store visible to this
      // thread. Until then an order may still be published: stop_taking_orders() gives its
      // ack credit back with all the others.
      if (app.halted.load(std::memory_order_relaxed)) {
        c.close(rondo::close_reason::server_stopping, "the server stopped taking orders");
        co_return;
      }
      if (!co_await c.reserve_outbox(ack_frame_size)) co_return;  // closed while waiting
      bool published = false;
      try {
        // Suspends this reader (not the thread) while the ring is full: backpressure reaches
        // the client through TCP.
        auto reserved = co_await app.publisher->reserve(1);
        order_event& ev = reserved[0];
        ev.conn = c.id();
        ev.received_ns = now_ns();
        std::memcpy(ev.frame.data(), buf.data() + used, f.size);
        reserved.publish();
        published = true;
      } catch (const std::exception& e) {  // rondo::closed: the disruptor shut down under us
        c.unreserve_outbox(ack_frame_size);
        c.close(rondo::close_reason::server_stopping, e.what());
      }
      if (!published) co_return;
      used += f.size;
      app.orders_in.fetch_add(1, std::memory_order_relaxed);  // statistic
    }
    std::memmove(buf.data(), buf.data() + used, have - used);
    have -= used;
  }
}

rondo::task<> run_server(order_app& app) {
  try {
    co_await app.net->run();
  } catch (const std::exception& e) {
    fmt::print(stderr, "  [server] {}\n", e.what());
  }
  app.server_done.store(true, std::memory_order_release);  // pairs with main's acquire load
}

// ---- journal and reply: the two stages that do I/O ---------------------------------------------

constexpr std::int64_t journal_max_batch = 256;  // records per append

struct journal_stats {
  std::int64_t appends = 0;    // append_durable calls: one write + fdatasync round each
  std::int64_t append_ns = 0;  // time spent in them
};

// A failed journal means no order can be made durable any more: the server stops taking
// orders at once. The journal stage calls this (on its context); the rest runs on context 0,
// where the connections are: stop accepting and reading, give back every connection's ack
// credit (those orders will never be acked), send each client a notice with the reason, and
// let the connections drain and close. In --serve mode main is then woken (SIGUSR1) to report.
rondo::task<> stop_taking_orders(order_app& app, std::string why) {
  app.net->log(fmt::format("no more orders: {}", why));
  app.net->stop();
  std::vector<std::byte> notice;
  append_notice(notice, fmt::format("order server stopped taking orders: {}", why));
  app.net->for_each_connection([&](rondo::connection& c) {
    c.unreserve_outbox(c.outbox_reserved());
    (void)c.send(notice);
  });
  if (app.wake_main_on_halt) ::kill(::getpid(), SIGUSR1);
  co_return;
}

// journal: one append of the batch's records straight from the ring slots (they cannot be
// reused before this task completes: only then does the stage's sequence advance): one write
// and one fdatasync for the whole batch, each record framed (length, sequence, CRC32C) by
// rondo::journal. The journal's sequences are the records' own: base + ring sequence.
auto journal_stage(rondo::journal& j, journal_stats& st, order_app& app) {
  return [&j, &st, &app](rondo::batch<order_event> b) -> rondo::task<> {
    if (b.empty()) co_return;
    std::array<::iovec, journal_max_batch> iov;
    std::size_t n = 0;
    std::int64_t first = -1;
    for (order_event& ev : b) {
      if (n == 0) first = ev.record.sequence;
      iov[n++] = {&ev.record, sizeof ev.record};
    }
    if (first != j.next_sequence()) {
      throw std::logic_error(fmt::format("journal: record {} would get journal sequence {}",
                                         first, j.next_sequence()));
    }
    const std::int64_t t0 = now_ns();
    std::string failure;
    try {
      co_await j.append_durable(std::span<const ::iovec>(iov.data(), n));
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (!failure.empty()) {
      // Once: later batches never come (the stage's failure halts the disruptor).
      if (!app.halted.exchange(true, std::memory_order_relaxed)) {  // relaxed: a one-shot flag
        app.rt->spawn(stop_taking_orders(app, failure), 0);
      }
      throw std::runtime_error(failure);
    }
    st.append_ns += now_ns() - t0;
    ++st.appends;
  };
}

// reply: queues each order's ack in its connection's outbox (a copy into the reserved room,
// never a wait); the connection's own writer coroutine sends it. A connection that has gone
// away (find() refuses its id) drops the ack. So a client that stops reading holds up nobody.
auto reply_stage(order_app& app) {
  return [&app](rondo::batch<order_event> b) -> rondo::task<> {
    if (&rondo::current_io_context() != app.home) {
      throw std::logic_error("reply: must run on context 0, with the server's connections");
    }
    std::array<std::byte, ack_frame_size> frame{};
    for (auto [seq, ev] : b.entries()) {
      ack_msg a{};
      a.client_order_id = ev.record.client_order_id;
      a.sent_ns = ev.client_sent_ns;
      a.server_sequence = ev.record.sequence;
      a.filled = ev.filled;
      a.status = ev.record.status;
      frame_header h{};
      h.magic = wire_magic;
      h.type = static_cast<std::uint8_t>(msg_type::ack);
      h.length = sizeof a;
      std::memcpy(frame.data(), &h, sizeof h);
      std::memcpy(frame.data() + sizeof h, &a, sizeof a);
      rondo::connection* c = app.net->find(ev.conn);
      if (c != nullptr && c->send(frame)) {
        app.acks_sent.fetch_add(1, std::memory_order_relaxed);  // statistic
        app.latency.add(now_ns() - ev.received_ns);
      } else {
        app.acks_dropped.fetch_add(1, std::memory_order_relaxed);  // statistic
      }
      (void)seq;
    }
    co_return;
  };
}

// ---- The load generator: its own io_context on its own thread ----------------------------------

struct load_client {
  std::uint32_t id = 0;
  int fd = -1;
  std::uint64_t sent = 0, acked = 0, rejected = 0, filled = 0;
  std::uint64_t rng = 0;
  bool done_sending = false;
  std::string error;           // what went wrong, if anything
  std::vector<std::byte> out;  // frames waiting to be sent
  // The longest wait between two acks while orders were in flight, before the fault clients
  // came (the control: what this machine does anyway) and after.
  std::int64_t max_ack_gap_ns = 0, control_ack_gap_ns = 0;
  std::int64_t reconnects = 0;      // fault clients: times the server closed them
  bool verify = true;               // its acks must match the journal (not the non-reader's)
};

struct load_stats {
  latency_histogram round_trip;  // the generator's thread; main reads it after `finished`
  std::atomic<std::int64_t> acks{0};  // progress line: a relaxed statistic
  // Clients finished: each adds 1 with release; main's acquire load then sees their results.
  std::atomic<int> finished{0};
};

struct load_plan {
  sockaddr_in server{};
  double rate = 0;  // orders per second over all good clients; 0: closed loop
  int connections = 1;
  std::size_t window = 8;  // closed loop: orders in flight per client
  steady::time_point start, end, bad_at;
};

// Every 64th order has quantity 0: decode must reject it (take_acks checks).
bool invalid_by_design(std::uint64_t client_order_id) { return client_order_id % 64 == 0; }

void append_orders(load_client& c, std::size_t n, std::int64_t stamp_ns) {
  for (std::size_t i = 0; i < n; ++i) {
    c.rng ^= c.rng << 13, c.rng ^= c.rng >> 7, c.rng ^= c.rng << 17;  // xorshift64
    new_order_msg m{};
    m.client_id = c.id;
    m.client_order_id = ++c.sent;
    m.sent_ns = stamp_ns;
    m.side = static_cast<std::uint8_t>(c.rng & 1);
    m.price = 95 + static_cast<std::uint32_t>((c.rng >> 1) % 10);  // a tight market: many fills
    m.qty = 1 + static_cast<std::uint32_t>((c.rng >> 8) % 10);
    if (invalid_by_design(m.client_order_id)) m.qty = 0;
    append_frame(c.out, msg_type::new_order, m);
  }
}

rondo::task<> send_all(rondo::io_context& io, int fd, std::vector<std::byte>& out) {
  std::size_t done = 0;
  while (done < out.size()) {
    const rondo::io_result r =
        co_await io.send(fd, std::span<const std::byte>(out).subspan(done));
    done += r.value();  // throws "send(fd N): ..." on failure
  }
  out.clear();
}

// Consumes the whole acks at the front of `in`, checks each, returns how many.
std::size_t take_acks(load_client& c, load_stats& stats, std::span<const std::byte> in) {
  const std::int64_t now = now_ns();
  std::size_t n = 0;
  for (; (n + 1) * ack_frame_size <= in.size(); ++n) {
    const auto h = read_as<frame_header>(in.data() + n * ack_frame_size);
    const auto a = read_as<ack_msg>(in.data() + n * ack_frame_size + sizeof h);
    if (h.magic != wire_magic || h.type != static_cast<std::uint8_t>(msg_type::ack)) {
      throw std::runtime_error("malformed ack");
    }
    if (a.client_order_id != c.acked + 1) {  // acks come in order, none missing
      throw std::runtime_error(
          fmt::format("ack for order {}, expected {}", a.client_order_id, c.acked + 1));
    }
    if ((a.status == rejected) != invalid_by_design(a.client_order_id)) {
      throw std::runtime_error(fmt::format("wrong status in the ack of {}", a.client_order_id));
    }
    ++c.acked;
    c.rejected += a.status == rejected ? 1 : 0;
    c.filled += a.filled;
    stats.round_trip.add(now - a.sent_ns);
  }
  stats.acks.fetch_add(static_cast<std::int64_t>(n), std::memory_order_relaxed);  // statistic
  return n;
}

// Reads acks until sending has ended and every order sent is acked. Closed loop: each ack sends
// a new order, until the end time.
rondo::task<> receive_acks(load_client& c, load_stats& stats, const load_plan& plan,
                           bool closed_loop) {
  rondo::io_context& io = rondo::current_io_context();
  std::array<std::byte, 8192> buf;
  std::size_t have = 0;
  auto last_ack = steady::now();
  bool first_ack = true;  // the gap clock starts at the first ack (not at connect)
  while (!(c.done_sending && c.acked == c.sent)) {
    if (closed_loop && steady::now() >= plan.end) c.done_sending = true;
    // The timeout lets an open-loop client notice that its pacer has finished.
    const rondo::io_result r =
        co_await io.recv(c.fd, std::span(buf).subspan(have)).timeout(20ms);
    if (r.timed_out()) {
      if (steady::now() - last_ack > 5s) throw std::runtime_error("no ack for 5 s");
      continue;
    }
    if (r.res == 0) throw std::runtime_error("the server closed the connection");
    have += r.value();
    const auto now = steady::now();
    // Orders are in flight all the time (closed loop), so a long wait between two acks is the
    // server holding this client up.
    if (!first_ack && !c.done_sending) {
      const std::int64_t gap =
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_ack).count();
      std::int64_t& worst = now < plan.bad_at ? c.control_ack_gap_ns : c.max_ack_gap_ns;
      worst = std::max(worst, gap);
    }
    first_ack = false;
    last_ack = now;
    const std::size_t n = take_acks(c, stats, std::span<const std::byte>(buf.data(), have));
    have -= n * ack_frame_size;
    std::memmove(buf.data(), buf.data() + n * ack_frame_size, have);
    if (closed_loop && !c.done_sending && n > 0) {
      append_orders(c, n, now_ns());
      co_await send_all(io, c.fd, c.out);
    }
  }
}

// Open loop: orders at fixed times. Each is stamped with the time it was due, so a server that
// falls behind shows up as latency, not as fewer orders sent (no coordinated omission).
rondo::task<> pace_orders(load_client& c, const load_plan& plan) {
  rondo::io_context& io = rondo::current_io_context();
  const auto interval = std::chrono::nanoseconds(
      std::max<std::int64_t>(1, static_cast<std::int64_t>(1e9 * plan.connections / plan.rate)));
  std::int64_t due = 0;  // orders sent so far
  while (plan.start + interval * due < plan.end) {
    (void)co_await io.sleep_until(plan.start + interval * due);
    const auto now = steady::now();
    for (int i = 0; i < 256; ++i, ++due) {  // all that are due, 256 at most per send
      const auto at = plan.start + interval * due;
      if (at > now || at >= plan.end) break;
      append_orders(c, 1, ns_of(at));
    }
    co_await send_all(io, c.fd, c.out);
  }
  c.done_sending = true;
}

rondo::task<> connect_client(load_client& c, const load_plan& plan, int rcvbuf = 0) {
  c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c.fd < 0) throw std::runtime_error(fmt::format("socket: {}", std::strerror(errno)));
  set_nodelay(c.fd);
  // Before connect: the window the client advertises follows from it.
  if (rcvbuf > 0) ::setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  const auto* addr = reinterpret_cast<const sockaddr*>(&plan.server);
  (void)(co_await rondo::current_io_context().connect(c.fd, addr, sizeof plan.server)).value();
}

void finish_client(load_client& c, load_stats& stats) {
  if (c.fd >= 0) ::close(c.fd);
  c.fd = -1;
  stats.finished.fetch_add(1, std::memory_order_release);  // pairs with main's acquire load
}

rondo::task<> run_client(load_client& c, load_stats& stats, const load_plan& plan) {
  try {
    co_await connect_client(c, plan);
    if (plan.rate > 0) {
      (void)co_await rondo::when_all(pace_orders(c, plan), receive_acks(c, stats, plan, false));
    } else {
      append_orders(c, plan.window, now_ns());
      co_await send_all(rondo::current_io_context(), c.fd, c.out);
      co_await receive_acks(c, stats, plan, true);
    }
  } catch (const std::exception& e) {
    c.error = e.what();
  }
  finish_client(c, stats);
}

enum class bad_kind : std::uint8_t { magic, type, oversized, truncated };

// A misbehaving client: three good orders (acked, so they must be journaled), then bad input;
// then it waits for the server to hang up.
rondo::task<> run_bad_client(load_client& c, bad_kind kind, load_stats& stats,
                             const load_plan& plan) {
  rondo::io_context& io = rondo::current_io_context();
  try {
    (void)co_await io.sleep_until(plan.bad_at);
    co_await connect_client(c, plan);
    append_orders(c, 3, now_ns());
    co_await send_all(io, c.fd, c.out);
    std::array<std::byte, 3 * ack_frame_size> acks;
    const rondo::io_result got = co_await io.recv(c.fd, acks, MSG_WAITALL).timeout(5s);
    if (got.value() != acks.size()) throw std::runtime_error("acks missing");
    (void)take_acks(c, stats, acks);
    c.done_sending = true;
    append_orders(c, 1, now_ns());  // a good frame, broken below; it is never acked
    c.sent -= 1;
    auto h = read_as<frame_header>(c.out.data());
    if (kind == bad_kind::magic) h.magic = 0xdead;
    if (kind == bad_kind::type) h.type = 9;
    if (kind == bad_kind::oversized) h.length = 1 << 20;
    std::memcpy(c.out.data(), &h, sizeof h);
    if (kind == bad_kind::truncated) c.out.resize(20);  // half a frame, then end of stream
    co_await send_all(io, c.fd, c.out);
    if (kind == bad_kind::truncated) ::shutdown(c.fd, SHUT_WR);
    std::array<std::byte, 64> rest;
    const rondo::io_result end = co_await io.recv(c.fd, rest).timeout(5s);
    if (end.res != 0 && end.res != -ECONNRESET) {
      throw std::runtime_error(fmt::format("the server did not hang up: {}", end.res));
    }
  } catch (const std::exception& e) {
    c.error = fmt::format("bad client: {}", e.what());
  }
  finish_client(c, stats);
}

// ---- Fault clients (--faults): they try to hurt the good clients; the server must isolate them

// Never reads its acks: sends orders until the server closes it (its outbox stays full, so its
// writer's send stalls: close_reason::slow_reader), then connects again under a new client id,
// until the end of the run. Its sends time out rather than block for ever.
rondo::task<> run_non_reader(load_client& c, load_stats& stats, const load_plan& plan,
                             std::uint32_t first_id) {
  rondo::io_context& io = rondo::current_io_context();
  try {
    (void)co_await io.sleep_until(plan.bad_at);  // after the good clients' control phase
    while (steady::now() < plan.end) {
      c.id = first_id + static_cast<std::uint32_t>(c.reconnects);
      c.sent = 0;
      co_await connect_client(c, plan, 4096);  // a small receive buffer: it fills sooner
      while (steady::now() < plan.end) {
        if (c.out.empty()) append_orders(c, 64, now_ns());
        const rondo::io_result r = co_await io.send(c.fd, c.out).timeout(200ms);
        if (r.timed_out()) continue;  // the server reads no more from us: stay stuck
        if (!r.ok()) break;           // closed by the server
        c.out.erase(c.out.begin(), c.out.begin() + r.res);  // a short send: the rest next
      }
      c.out.clear();
      ::close(c.fd);
      c.fd = -1;
      ++c.reconnects;
    }
  } catch (const std::exception& e) {
    c.error = fmt::format("non-reader: {}", e.what());
  }
  --c.reconnects;  // the last loop ended with the run, not with the server
  finish_client(c, stats);
}

// Slowloris: one byte of a frame at a time, 100 ms apart, so no frame ever completes; the
// server must close it (close_reason::read_timeout); it connects again until the end.
rondo::task<> run_slowloris(load_client& c, load_stats& stats, const load_plan& plan) {
  rondo::io_context& io = rondo::current_io_context();
  try {
    (void)co_await io.sleep_until(plan.bad_at);
    while (steady::now() < plan.end) {
      co_await connect_client(c, plan);
      append_orders(c, 1, now_ns());
      for (std::size_t i = 0; steady::now() < plan.end; i = (i + 1) % c.out.size()) {
        (void)co_await io.sleep_for(100ms);
        const rondo::io_result r = co_await io.send(c.fd, std::span(c.out).subspan(i, 1));
        if (!r.ok()) break;  // closed by the server
      }
      c.out.clear();
      ::close(c.fd);
      c.fd = -1;
      ++c.reconnects;
    }
  } catch (const std::exception& e) {
    c.error = fmt::format("slowloris: {}", e.what());
  }
  --c.reconnects;
  finish_client(c, stats);
}

// Idle: connects and sends nothing until the end of the run.
rondo::task<> run_idle(load_client& c, load_stats& stats, const load_plan& plan) {
  try {
    (void)co_await rondo::current_io_context().sleep_until(plan.bad_at);
    co_await connect_client(c, plan);
    (void)co_await rondo::current_io_context().sleep_until(plan.end);
  } catch (const std::exception& e) {
    c.error = fmt::format("idle: {}", e.what());
  }
  finish_client(c, stats);
}

// ---- Command line, checks and reports ----------------------------------------------------------

struct options {
  double seconds = 3;
  int connections = 8;
  double rate = 0;
  std::string journal;  // empty: a temporary file, removed at the end
  int port = 0;
  unsigned threads = 2;
  bool serve = false;   // a standing server: no load generator, stop on SIGTERM / SIGINT
  bool faults = false;  // the demo adds a non-reader, 40 idle and 2 slowloris clients
  double max_ack_gap_ms = 100;  // --faults: the good clients' longest wait between two acks
  rondo::server_limits limits{};
  bool read_timeout_set = false, stall_timeout_set = false;
};

constexpr const char* usage =
    "usage: rondo_example_order_server [options]\n"
    "  --seconds S       how long the load generator sends orders (default 3)\n"
    "  --connections N   client connections (default 8); 4 misbehaving ones come on top\n"
    "  --rate R          orders per second over all connections (open loop);\n"
    "                    0 (default): closed loop, 8 orders in flight per connection\n"
    "  --journal PATH    the journal file (default: a temporary file, removed at the end);\n"
    "                    with --serve an existing journal is recovered and continued\n"
    "  --port P          the server's loopback port (default 0: any free port)\n"
    "  --threads T       the server's runtime threads (default 2: decode and reply on\n"
    "                    context 0 with the sockets, the heavy stages journal and match\n"
    "                    on context 1)\n"
    "  --serve           a standing server on --port: no load generator; SIGTERM or SIGINT\n"
    "                    stops accepting, drains every order and connection, prints a report\n"
    "  --faults          the demo adds a client that never reads its acks, 40 idle\n"
    "                    connections and 2 slowloris clients, and checks that the good\n"
    "                    clients' longest wait between two acks stays within --max-ack-gap-ms\n"
    "  --max-ack-gap-ms MS  the --faults bound (default 100)\n"
    "  server limits (rondo::server_limits):\n"
    "  --max-connections N   connections at once (default 1024); more are refused, logged\n"
    "  --outbox-bytes N      acks queued per connection (default 65536)\n"
    "  --stall-timeout-ms MS a send stuck this long closes a slow reader (default 2000;\n"
    "                        --faults: 500)\n"
    "  --idle-timeout-ms MS  nothing received this long closes a connection (default 60000)\n"
    "  --read-timeout-ms MS  a frame must complete this long after its first byte (default\n"
    "                        5000; --faults: 1000)\n";

// False when --help was asked for.
bool parse_options(int argc, char** argv, options& o) {
  const std::vector<std::string> flags = {"--serve", "--faults"};
  const std::vector<std::string> known = {
      "--seconds",         "--connections",     "--rate",            "--journal",
      "--port",            "--threads",         "--max-ack-gap-ms",  "--max-connections",
      "--outbox-bytes",    "--stall-timeout-ms", "--idle-timeout-ms", "--read-timeout-ms"};
  const auto ms = [](const std::string& v) { return std::chrono::milliseconds(std::stol(v)); };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") return false;
    if (a == "--serve") o.serve = true;
    if (a == "--faults") o.faults = true;
    if (std::find(flags.begin(), flags.end(), a) != flags.end()) continue;
    if (std::find(known.begin(), known.end(), a) == known.end()) {
      throw std::invalid_argument(fmt::format("unknown option {} (try --help)", a));
    }
    if (i + 1 >= argc) throw std::invalid_argument(fmt::format("{}: missing value", a));
    const std::string v = argv[++i];
    if (a == "--seconds") o.seconds = std::stod(v);
    if (a == "--connections") o.connections = std::stoi(v);
    if (a == "--rate") o.rate = std::stod(v);
    if (a == "--journal") o.journal = v;
    if (a == "--port") o.port = std::stoi(v);
    if (a == "--threads") o.threads = static_cast<unsigned>(std::stoul(v));
    if (a == "--max-ack-gap-ms") o.max_ack_gap_ms = std::stod(v);
    if (a == "--max-connections") o.limits.max_connections = std::stoul(v);
    if (a == "--outbox-bytes") o.limits.outbox_bytes = std::stoul(v);
    if (a == "--stall-timeout-ms") {
      o.limits.outbox_stall_timeout = ms(v);
      o.stall_timeout_set = true;
    }
    if (a == "--idle-timeout-ms") o.limits.idle_timeout = ms(v);
    if (a == "--read-timeout-ms") {
      o.limits.read_timeout = ms(v);
      o.read_timeout_set = true;
    }
  }
  if (o.faults && !o.stall_timeout_set) o.limits.outbox_stall_timeout = 500ms;
  if (o.faults && !o.read_timeout_set) o.limits.read_timeout = 1000ms;
  if (o.serve && o.faults) throw std::invalid_argument("--faults is a demo mode, not --serve's");
  if (o.serve && o.journal.empty()) throw std::invalid_argument("--serve needs --journal PATH");
  if (!(o.seconds > 0)) throw std::invalid_argument("--seconds must be > 0");
  if (o.connections < 1 || o.connections > 1000) {
    throw std::invalid_argument("--connections: 1..1000");
  }
  if (o.rate < 0) throw std::invalid_argument("--rate must be >= 0");
  if (o.port < 0 || o.port > 65535) throw std::invalid_argument("--port: 0..65535");
  if (o.threads < 1 || o.threads > 64) throw std::invalid_argument("--threads: 1..64");
  o.limits.validate();  // std::invalid_argument naming the limit
  return true;
}

int listen_on_loopback(int port, sockaddr_in& addr) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  socklen_t len = sizeof addr;
  auto* sa = reinterpret_cast<sockaddr*>(&addr);
  if (fd < 0 || ::bind(fd, sa, sizeof addr) != 0 || ::listen(fd, 128) != 0 ||
      ::getsockname(fd, sa, &len) != 0) {
    throw std::runtime_error(
        fmt::format("listen on 127.0.0.1:{}: {}", port, std::strerror(errno)));
  }
  return fd;
}

// Sleeps in small steps until done() or the deadline; false on the deadline.
bool wait_until(const std::function<bool()>& done, steady::time_point deadline) {
  while (!done()) {
    if (steady::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// Reads the journal back (rondo::journal_reader: every record's frame and CRC checked): records
// 0, 1, 2, ... in order, each a 32-byte order whose own sequence is the journal's; per client,
// order ids 1, 2, 3, ..., none missing or repeated; and exactly the orders each client got
// acks for.
std::string verify_journal(const std::string& dir, std::int64_t published,
                           const std::deque<load_client>& clients) {
  std::map<std::uint32_t, std::uint64_t> last_id;  // per client
  std::int64_t next = 0;
  std::string why;
  try {
    rondo::journal_reader reader(dir);
    while (why.empty()) {
      const std::optional<rondo::record_view> rec = reader.next();
      if (!rec) break;
      if (rec->payload.size() != sizeof(journal_record)) {
        why = fmt::format("record {} has {} bytes", rec->sequence, rec->payload.size());
        break;
      }
      const auto r = read_as<journal_record>(rec->payload.data());
      std::uint64_t& last = last_id[r.client_id];
      if (rec->sequence != next || r.sequence != next) {
        why = fmt::format("record {} has sequence {} (in the frame) and {} (in the order)", next,
                          rec->sequence, r.sequence);
      } else if (r.client_order_id != last + 1) {
        why = fmt::format("client {}: order {} after {}", r.client_id, r.client_order_id, last);
      }
      last = r.client_order_id;
      ++next;
    }
    if (why.empty() && reader.torn_bytes() != 0) {
      why = fmt::format("a torn tail of {} bytes", reader.torn_bytes());
    }
  } catch (const std::exception& e) {
    why = e.what();
  }
  if (why.empty() && next != published) {
    why = fmt::format("{} records for {} orders", next, published);
  }
  for (const load_client& c : clients) {
    if (why.empty() && c.verify && last_id[c.id] != c.acked) {
      why = fmt::format("client {}: {} orders acked, {} journaled", c.id, c.acked, last_id[c.id]);
    }
  }
  return why;
}

void print_stage_metrics(const rondo::disruptor<order_event>& d, rondo::runtime& rt) {
  const std::vector<rondo::scheduler_ref> contexts = rt.schedulers();
  // Not rondo/format.hpp's table ({:t}): this one has a ctx column, from the runtime.
  fmt::print("\n{:<8} {:>3} {:>9} {:>8} {:>10} {:>8} {:>11} {:>8} {:>12}\n", "stage", "ctx",
             "events", "batches", "mean batch", "waits", "suspensions", "resumes",
             "suspended ms");
  for (const rondo::stage_report& r : d.metrics()) {
    const rondo::stage_metrics_snapshot& m = r.metrics;
    const auto ctx = static_cast<std::size_t>(
        std::find(contexts.begin(), contexts.end(), r.scheduler) - contexts.begin());
    fmt::print("{:<8} {:3} {:9} {:8} {:10.1f} {:8} {:11} {:8} {:12.1f}\n", r.name, ctx, m.events,
               m.batches, m.mean_batch(), m.waits, m.suspensions, m.resumes,
               static_cast<double>(m.suspended_ns) / 1e6);
  }
  for (std::size_t i = 0; i < contexts.size(); ++i) {
    const rondo::park_lot& lot = *rt.context(i).parking();
    fmt::print("context {}: {} waits parked, {} membarriers (one per sleep with waits parked)\n",
               i, lot.parks(), lot.sleep_fences());
  }
}


// SIGTERM, SIGINT (stop) and SIGUSR1 (the journal failed: stop_taking_orders()).
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  return set;
}

// Blocks until one of stop_signals() (blocked in every thread since the start of main).
int wait_for_stop_signal() {
  const sigset_t set = stop_signals();
  int sig = 0;
  while (::sigwait(&set, &sig) != 0) {
  }
  return sig;
}

void print_server_stats(const rondo::server_stats& st, const rondo::server_limits& l) {
  fmt::print("connections: {} accepted, {} refused (max {}), {} accept errors ({} back-offs); "
             "closed:",
             st.accepted, st.refused, l.max_connections, st.accept_errors, st.accept_backoffs);
  for (std::size_t i = 0; i < rondo::close_reason_count; ++i) {
    if (st.closed[i] != 0) {
      fmt::print(" {} {},", static_cast<rondo::close_reason>(i), st.closed[i]);
    }
  }
  fmt::print(" {} acks dropped\n", st.replies_dropped);
}

}  // namespace

int main(int argc, char** argv) try {
  options opt;
  if (!parse_options(argc, argv, opt)) {
    fmt::print("{}", usage);
    return 0;
  }
  if (opt.serve) {
    // Before any thread starts, so that every thread inherits the mask and the signals wait
    // for main's sigwait().
    const sigset_t set = stop_signals();
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  }
  const bool temporary_journal = opt.journal.empty();
  if (temporary_journal) {
    opt.journal = fmt::format("/tmp/rondo-order-server-{}.journal", ::getpid());  // a directory
  }
  constexpr int bad_clients = 4;
  constexpr int idle_clients = 40, slowloris_clients = 2;

  // Declared before the runtime: the tasks on its threads use them until it stops.
  journal_stats jstats;
  order_book book;
  order_app app;
  app.wake_main_on_halt = opt.serve;

  rondo::runtime rt(opt.threads);
  app.home = &rt.context(0);
  app.rt = &rt;
  // The journal (a directory of segments) on the context that runs the journal stage. --serve
  // recovers what is there (a torn tail from a crash is dropped) and continues the sequence;
  // the demo starts empty.
  const std::size_t journal_context = opt.threads > 1 ? 1 : 0;
  rondo::journal_options jopts;
  jopts.mode = opt.serve ? rondo::open_mode::recover : rondo::open_mode::truncate;
  rondo::journal journal(rt.context(journal_context), opt.journal, jopts);
  app.sequence_base = journal.next_sequence();
  if (opt.serve) fmt::print("journal recovery: {}\n", journal.recovery());
  // Placement: the builder's default. Light stages share context 0, which owns the sockets:
  // the readers (the producers), decode (it reads the frames the readers just wrote, still in
  // this core's cache) and reply (it queues acks on those connections). The stages marked heavy
  // go to the other contexts: journal, so that waiting for fdatasync never holds up reading
  // orders or acking earlier batches, and match, which runs while the journal waits for the disk.
  rondo::stage_options journal_options;
  journal_options.max_batch = journal_max_batch;
  journal_options.heavy = true;
  rondo::stage_options match_options;
  match_options.heavy = true;
  // Every publisher runs on context 0, so producer_type::single would do; multi keeps the
  // server correct if readers are ever spread over contexts.
  const std::int64_t base = app.sequence_base;
  auto d = rondo::disruptor<order_event>::builder()
               .capacity(4096)
               .producers(rondo::producer_type::multi)
               .wait(rondo::spin_then_suspend{})
               .metrics()
               .executor(rt)
               .stage("decode",
                      [base](order_event& ev, std::int64_t seq, bool) {
                        decode_order(ev, seq, base);
                      })
               .stage("journal", journal_stage(journal, jstats, app), rondo::after("decode"),
                      journal_options)
               .on(journal_context)
               .stage(
                   "match",
                   [&book](order_event& ev, std::int64_t seq, bool) {
                     const journal_record& r = ev.record;
                     if (r.status != accepted) return;
                     ev.filled = book.execute(seq, r.side, r.price, r.qty);
                   },
                   rondo::after("decode"), match_options)
               .stage("reply", reply_stage(app), rondo::after("journal", "match"))
               .build();
  d.start();

  sockaddr_in addr{};
  const int listen_fd = listen_on_loopback(opt.port, addr);
  rondo::server net(rt.context(0), listen_fd, opt.limits,
                    [&app](rondo::connection& c) { return serve_connection(app, c); },
                    [](std::string_view line) { fmt::print("  [server] {}\n", line); });
  app.net = &net;
  app.publisher = d.coro_publisher();
  rt.spawn(run_server(app), 0);
  fmt::print("order_server on 127.0.0.1:{}, journal {}, {} server threads\n",
             unsigned{ntohs(addr.sin_port)}, opt.journal, opt.threads);

  std::deque<load_client> clients;  // a deque: the clients' coroutines hold references
  load_stats stats;
  double elapsed = 0;
  if (opt.serve) {
    // ---- A standing server: until SIGTERM / SIGINT.
    fmt::print("serving: {} records recovered from the journal, the next order is sequence {}; "
               "limits: max {} connections, outbox {} bytes, stall {} ms, idle {} ms, read {} ms\n",
               app.sequence_base, app.sequence_base, opt.limits.max_connections,
               opt.limits.outbox_bytes, opt.limits.outbox_stall_timeout.count(),
               opt.limits.idle_timeout.count(), opt.limits.read_timeout.count());
    std::fflush(stdout);  // a supervisor (or the kill -9 test) waits for this line
    const auto start = steady::now();
    const int sig = wait_for_stop_signal();
    elapsed = std::chrono::duration<double>(steady::now() - start).count();
    fmt::print("\n{}: draining\n", sig == SIGTERM  ? "SIGTERM"
                                    : sig == SIGINT ? "SIGINT"
                                                    : "the journal failed");
  } else {
    // ---- The demo: the built-in load generator.
    const std::string mode = opt.rate > 0
                                 ? fmt::format("open loop at {} orders/s", std::lround(opt.rate))
                                 : "closed loop (8 orders in flight each)";
    fmt::print("load: {} connections + {} misbehaving{}, {}, for {:.1f} s\n", opt.connections,
               bad_clients,
               opt.faults ? fmt::format(" + a non-reader, {} idle, {} slowloris", idle_clients,
                                        slowloris_clients)
                          : std::string(),
               mode, opt.seconds);

    // Good clients 1..N, bad clients 1001..1004 a third into the run; with --faults the fault
    // clients (ids from 2001) from the start.
    load_plan plan;
    plan.server = addr;
    plan.rate = opt.rate;
    plan.connections = opt.connections;
    plan.start = steady::now();
    plan.end = plan.start + std::chrono::duration_cast<steady::duration>(
                                std::chrono::duration<double>(opt.seconds));
    plan.bad_at = plan.start + (plan.end - plan.start) / 3;
    rondo::runtime load_rt(1);
    for (int i = 0; i < opt.connections + bad_clients; ++i) {
      load_client& c = clients.emplace_back();
      const int bad = i - opt.connections;  // >= 0: a misbehaving client
      c.id = static_cast<std::uint32_t>(bad >= 0 ? 1001 + bad : i + 1);
      c.rng = 0x9E3779B97F4A7C15ULL * c.id;
      if (bad >= 0) {
        load_rt.spawn(run_bad_client(c, static_cast<bad_kind>(bad), stats, plan), 0);
      } else {
        load_rt.spawn(run_client(c, stats, plan), 0);
      }
    }
    if (opt.faults) {
      load_client& nr = clients.emplace_back();
      nr.verify = false;
      nr.rng = 12345;
      load_rt.spawn(run_non_reader(nr, stats, plan, 100'000), 0);
      for (int i = 0; i < slowloris_clients; ++i) {
        load_client& c = clients.emplace_back();
        c.id = static_cast<std::uint32_t>(2001 + i);
        load_rt.spawn(run_slowloris(c, stats, plan), 0);
      }
      for (int i = 0; i < idle_clients; ++i) {
        load_client& c = clients.emplace_back();
        c.id = static_cast<std::uint32_t>(3001 + i);
        load_rt.spawn(run_idle(c, stats, plan), 0);
      }
    }

    // A progress line once a second until every client has finished.
    const auto all_finished = [&] {
      // Acquire: pairs with the release increment in finish_client().
      return stats.finished.load(std::memory_order_acquire) == static_cast<int>(clients.size());
    };
    std::int64_t last_acks = 0;
    for (int tick = 1; !wait_until(all_finished, plan.start + tick * 1s); ++tick) {
      // Relaxed loads: statistics.
      const std::int64_t acks = stats.acks.load(std::memory_order_relaxed);
      const rondo::server_stats st = net.stats();
      fmt::print("  {:2} s: {:9} acks ({:6.1f} k/s), {:2} connections open, {} closed for bad "
                 "input\n",
                 tick, acks, static_cast<double>(acks - last_acks) / 1e3, st.open,
                 st.closed_for(rondo::close_reason::bad_input));
      last_acks = acks;
      if (steady::now() > plan.end + 30s) {
        // Tasks still running use what an orderly exit would destroy.
        fmt::print(stderr, "FAILED: the load generator hangs\n");
        std::_Exit(1);
      }
    }
    elapsed = std::chrono::duration<double>(steady::now() - plan.start).count();
    load_rt.stop();
  }

  // Shut down: stop accepting and end the readers; each connection then sends the acks of the
  // orders it published (every published order still goes through every stage) and closes, and
  // run() returns. Then drain the disruptor.
  net.stop();
  // Acquire: pairs with the release store at the end of run_server().
  if (!wait_until([&] { return app.server_done.load(std::memory_order_acquire); },
                  steady::now() + 30s)) {
    fmt::print(stderr, "FAILED: the server's connections do not end\n");
    std::_Exit(1);
  }
  std::string stage_failure;  // the journal's failure, rethrown by drain() with the stage's name
  try {
    d.drain();
  } catch (const std::exception& e) {
    stage_failure = e.what();
  }
  ::close(listen_fd);

  // Report.
  std::int64_t acked = 0, rejected_acks = 0, filled_in_acks = 0, max_gap = 0, control_gap = 0;
  std::int64_t non_reader_closes = 0, slowloris_closes = 0;
  std::vector<std::string> problems;
  for (const load_client& c : clients) {
    acked += static_cast<std::int64_t>(c.acked);
    rejected_acks += static_cast<std::int64_t>(c.rejected);
    filled_in_acks += static_cast<std::int64_t>(c.filled);
    if (c.id <= 1000) {
      max_gap = std::max(max_gap, c.max_ack_gap_ns);
      control_gap = std::max(control_gap, c.control_ack_gap_ns);
    }
    if (!c.verify) non_reader_closes += c.reconnects;
    if (c.id >= 2001 && c.id < 3000) slowloris_closes += c.reconnects;
    if (!c.error.empty()) problems.push_back(fmt::format("client {}: {}", c.id, c.error));
  }
  const std::int64_t published = d.metrics("reply").position + 1;
  const std::int64_t records = journal.next_sequence();
  const std::int64_t syncs = std::max<std::int64_t>(jstats.appends, 1);
  // Relaxed loads: the server's tasks have ended (server_done, acquire) and drain() joined the
  // stages, so these are final.
  const rondo::server_stats st = net.stats();
  const std::int64_t dropped = app.acks_dropped.load(std::memory_order_relaxed);
  const std::int64_t acks_sent = app.acks_sent.load(std::memory_order_relaxed);
  if (opt.serve) {
    fmt::print("\n{} orders in {:.1f} s, {} acks sent, {} dropped (their connection had gone); "
               "{} trades, {} orders resting\n",
               published, elapsed, acks_sent, dropped, book.trades(), book.resting());
  } else {
    fmt::print("\n{} orders acked in {:.2f} s = {:.1f} k orders/s; {} rejected (by design), "
               "{} trades, {} orders resting\n",
               acked, elapsed, static_cast<double>(acked) / elapsed / 1e3, rejected_acks,
               book.trades(), book.resting());
    stats.round_trip.print("round trip (client send -> ack received)");
  }
  if (published > 0) {
    app.latency.print("in the server (frame received -> journaled, matched, ack queued)");
  }
  fmt::print("journal: {} records ({} recovered at start) in {} appends (write + fdatasync; "
             "mean {:.1f} records, {} each), {} segments rolled, {}\n",
             records, app.sequence_base, jstats.appends,
             static_cast<double>(records - app.sequence_base) / static_cast<double>(syncs),
             human_ns(static_cast<std::uint64_t>(jstats.append_ns / syncs)), journal.rolls(),
             opt.journal);
  print_server_stats(st, opt.limits);
  if (opt.faults) {
    fmt::print("faults: the non-reader was closed {} times, the slowloris clients {} times; "
               "good clients' longest wait between two acks: {} with the fault clients "
               "connected (bound {} ms), {} before they came\n",
               non_reader_closes, slowloris_closes,
               human_ns(static_cast<std::uint64_t>(max_gap)), opt.max_ack_gap_ms,
               human_ns(static_cast<std::uint64_t>(control_gap)));
  }
  print_stage_metrics(d, rt);

  // Checks.
  if (!stage_failure.empty()) {
    // The journal failed: the server stopped taking orders (logged, and each client was sent
    // the reason); the orders after the failure were never acked. That is the report.
    problems.push_back(fmt::format("stopped taking orders: {}", stage_failure));
  } else if (published != acks_sent + dropped) {
    problems.push_back(fmt::format("{} orders published, {} acks sent + {} dropped", published,
                                   acks_sent, dropped));
  }
  if (stage_failure.empty() && published + app.sequence_base != records) {
    problems.push_back(fmt::format("{} orders published, {} new journal records", published,
                                   records - app.sequence_base));
  }
  for (const rondo::stage_report& r : d.metrics()) {
    if (stage_failure.empty() && r.metrics.events != published) {
      problems.push_back(fmt::format("stage {} missed orders", r.name));
    }
  }
  if (!opt.serve) {
    const std::int64_t bad_closed =
        static_cast<std::int64_t>(st.closed_for(rondo::close_reason::bad_input));
    // --faults: a slowloris client cut off by the end of the run leaves a truncated frame too.
    if (opt.faults ? bad_closed < bad_clients : bad_closed != bad_clients) {
      problems.push_back(fmt::format("{} connections closed for bad input, expected {}",
                                     bad_closed, bad_clients));
    }
    if (!opt.faults && (published != acked || dropped != 0)) {
      problems.push_back(fmt::format("{} orders published, {} acks received, {} dropped",
                                     published, acked, dropped));
    }
    if (filled_in_acks != book.filled() && !opt.faults) {
      problems.push_back("the acks' fills differ from the book's");
    }
    if (opt.faults) {
      if (st.closed_for(rondo::close_reason::slow_reader) < 1) {
        problems.push_back("the non-reader was never closed as a slow reader");
      }
      if (st.closed_for(rondo::close_reason::read_timeout) < slowloris_clients) {
        problems.push_back("the slowloris clients were not closed by the read timeout");
      }
      // The bound is the 100 ms. A machine that stalls the good clients by itself
      // (others' builds on 2 cores) shows it in the control phase, before any fault client
      // came: then the bound is 3x that control gap, and the report says so. A server that
      // lets one client hold up the others stalls them for seconds, far above either.
      const double bound_ns =
          std::max(opt.max_ack_gap_ms * 1e6, 3.0 * static_cast<double>(control_gap));
      if (bound_ns > opt.max_ack_gap_ms * 1e6) {
        fmt::print("note: this machine stalled the good clients for {} with no fault client "
                   "connected; the gap bound is raised to 3x that\n",
                   human_ns(static_cast<std::uint64_t>(control_gap)));
      }
      if (static_cast<double>(max_gap) > bound_ns) {
        problems.push_back(fmt::format(
            "a good client waited {} between two acks with the fault clients connected (bound "
            "{} ms; {} before they came)",
            human_ns(static_cast<std::uint64_t>(max_gap)), bound_ns / 1e6,
            human_ns(static_cast<std::uint64_t>(control_gap))));
      }
    }
    if (const std::string why = verify_journal(opt.journal, published, clients); why.empty()) {
      fmt::print("\njournal verified: {} records in sequence order; every acked order of the {} "
                 "clients is in it exactly once, in order\n",
                 published, clients.size());
    } else {
      problems.push_back(fmt::format("journal: {}", why));
    }
  }
  if (temporary_journal) {
    std::error_code ignored;
    std::filesystem::remove_all(opt.journal, ignored);
  }
  if (const std::size_t abandoned = rt.stop(); abandoned != 0) {
    problems.push_back(fmt::format("{} server tasks never finished", abandoned));
  }
  for (const std::string& p : problems) fmt::print(stderr, "FAILED: {}\n", p);
  return problems.empty() ? 0 : 1;
} catch (const std::exception& e) {
  fmt::print(stderr, "order_server: {}\n", e.what());
  return 2;
}
