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

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <map>
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

// ---- Wire format: small frames in host byte order (both ends share the machine) ----------------

constexpr std::uint16_t wire_magic = 0x4f52;  // "RO"
enum class msg_type : std::uint8_t { new_order = 1, ack = 2 };
constexpr std::uint32_t max_payload = 256;  // a longer length field is an oversized frame

struct frame_header {
  std::uint16_t magic;
  std::uint8_t type;  // msg_type
  std::uint8_t reserved;
  std::uint32_t length;  // payload bytes after the header
};
struct new_order_msg {  // client -> server
  std::uint32_t client_id;
  std::uint8_t side;  // 0 buy, 1 sell
  std::uint8_t pad[3];
  std::uint64_t client_order_id;  // 1, 2, 3, ... per client
  std::int64_t sent_ns;           // the client's clock, echoed in the ack
  std::uint32_t price;            // ticks
  std::uint32_t qty;
};
enum order_status : std::uint8_t { accepted = 0, rejected = 1 };
struct ack_msg {  // server -> client
  std::uint64_t client_order_id;
  std::int64_t sent_ns;
  std::int64_t server_sequence;  // where the order sits in the journal
  std::uint32_t filled;          // quantity filled on arrival
  std::uint8_t status;           // order_status
  std::uint8_t pad[3];
};
static_assert(sizeof(frame_header) == 8 && sizeof(new_order_msg) == 32 && sizeof(ack_msg) == 32);
constexpr std::size_t order_frame_size = sizeof(frame_header) + sizeof(new_order_msg);
constexpr std::size_t ack_frame_size = sizeof(frame_header) + sizeof(ack_msg);

template <class Msg>
void append_frame(std::vector<std::byte>& out, msg_type type, const Msg& body) {
  frame_header h{};
  h.magic = wire_magic;
  h.type = static_cast<std::uint8_t>(type);
  h.length = sizeof(Msg);
  const std::size_t at = out.size();
  out.resize(at + sizeof h + sizeof body);
  std::memcpy(out.data() + at, &h, sizeof h);
  std::memcpy(out.data() + at + sizeof h, &body, sizeof body);
}

template <class Msg>
Msg read_as(const std::byte* p) {
  Msg m{};
  std::memcpy(&m, p, sizeof m);
  return m;
}

// What a connection reader makes of the bytes at the front of its buffer: a whole frame of
// `size` bytes, not enough bytes yet (size 0), or a broken stream (`error`: a byte stream cannot
// be resynchronised after a bad header, so the connection is closed).
struct frame_check {
  std::size_t size = 0;
  std::string error;
};

frame_check check_frame(std::span<const std::byte> in) {
  frame_check r;
  if (in.size() < sizeof(frame_header)) return r;
  const auto h = read_as<frame_header>(in.data());
  if (h.magic != wire_magic) {
    r.error = fmt::format("bad magic 0x{:04x}", unsigned{h.magic});
  } else if (h.type != static_cast<std::uint8_t>(msg_type::new_order)) {
    r.error = fmt::format("unknown message type {}", unsigned{h.type});
  } else if (h.length > max_payload) {
    r.error = fmt::format("oversized length {} (max {})", h.length, max_payload);
  } else if (h.length != sizeof(new_order_msg)) {
    r.error = fmt::format("length {} is not a new_order's {}", h.length, sizeof(new_order_msg));
  } else if (in.size() >= order_frame_size) {
    r.size = order_frame_size;
  }
  return r;
}

// ---- The event: one ring slot, filled in place by each stage in turn ---------------------------

// What the journal writes per order: 32 bytes, straight from the ring slot.
struct journal_record {
  std::int64_t sequence;  // the ring sequence: the journal holds 0, 1, 2, ... in order
  std::uint64_t client_order_id;
  std::uint32_t client_id;
  std::uint32_t price;
  std::uint32_t qty;
  std::uint8_t side;
  std::uint8_t status;  // order_status
  std::uint8_t pad[2];
};
static_assert(sizeof(journal_record) == 32);

struct order_event {
  // Written by the connection reader (the producer):
  std::uint32_t slot = 0;        // the connection's slot in the server's table ...
  std::uint32_t generation = 0;  // ... and the slot's generation: no ack reaches a reused slot
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
  static constexpr std::uint32_t max_price = 200;
  static constexpr std::uint32_t max_qty = 1000;

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

// decode: parse the frame. Bad field values are rejected (the ack says so); unlike bad framing
// they do not close the connection.
void decode_order(order_event& ev, std::int64_t seq) {
  const auto m = read_as<new_order_msg>(ev.frame.data() + sizeof(frame_header));
  journal_record& r = ev.record;
  r.sequence = seq;
  r.client_order_id = m.client_order_id;
  r.client_id = m.client_id;
  r.price = m.price;
  r.qty = m.qty;
  r.side = m.side;
  const bool valid = m.side <= 1 && m.qty >= 1 && m.qty <= order_book::max_qty &&
                     m.price >= 1 && m.price <= order_book::max_price;
  r.status = valid ? accepted : rejected;
  ev.client_sent_ns = m.sent_ns;
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

// ---- The server: connection table, accept loop and readers, all on context 0 -------------------

enum class slot_state : std::uint8_t { free, open, closing };

// One connection as the server sees it. Only context 0 touches it (the accept loop, the
// connection's reader and the reply stage all run there), so nothing here is atomic.
struct connection_slot {
  int fd = -1;
  std::uint32_t generation = 0;  // bumped on every reuse; events carry the one they came from
  slot_state state = slot_state::free;
  bool sending = false;           // the reply stage has a send in flight on fd
  std::vector<std::byte> outbox;  // acks the reply stage gathered for the batch at hand
  std::uint32_t outbox_generation = 0;
};

struct server {
  int listen_fd = -1;
  rondo::runtime* rt = nullptr;
  std::optional<rondo::coro_publisher<order_event>> publisher;
  std::vector<connection_slot> slots;  // sized once: references stay valid across co_await
  std::vector<std::uint32_t> touched;  // reply stage: slots with acks in their outbox
  std::stop_source stop;               // requested by main: ends the accept loop and readers
  latency_histogram latency;           // reply stage: frame received -> ack ready to send

  // Counters main reads while the server runs: statistics, relaxed throughout.
  std::atomic<std::int64_t> orders_in{0}, acks_sent{0}, acks_dropped{0}, bad_closed{0};
  std::atomic<int> open_connections{0};
  // The accept loop and the readers still running. Each task's decrement is release and main's
  // load is acquire: once main sees 0, everything those tasks did is visible to it.
  std::atomic<int> live_tasks{0};
};

void release_slot(connection_slot& slot) {
  ::close(slot.fd);
  slot.fd = -1;
  slot.state = slot_state::free;
}

// A reader is done with its connection. The fd is closed by whoever touches it last: here, or by
// the reply stage once its send in flight completes (so no send can land on a reused fd).
void end_connection(server& srv, std::uint32_t index, const std::string& reason, bool bad_input) {
  connection_slot& slot = srv.slots[index];
  if (bad_input) {
    fmt::print("  [server] connection in slot {} (fd {}) closed: {}\n", index, slot.fd, reason);
    srv.bad_closed.fetch_add(1, std::memory_order_relaxed);  // statistic
  }
  ::shutdown(slot.fd, SHUT_RDWR);  // the peer sees the close now; a send in flight fails fast
  slot.state = slot_state::closing;
  if (!slot.sending) release_slot(slot);
  srv.open_connections.fetch_sub(1, std::memory_order_relaxed);  // statistic
}

// One connection: read, check the framing, publish each whole frame as an order event.
rondo::task<> serve_connection(server& srv, std::uint32_t index) {
  rondo::io_context& io = rondo::current_io_context();
  connection_slot& slot = srv.slots[index];
  const std::uint32_t generation = slot.generation;
  std::array<std::byte, 16 * 1024> buf;  // in the coroutine frame
  std::size_t have = 0;
  std::string reason;  // set when the connection must end
  bool bad_input = false;
  try {
    while (reason.empty()) {
      const rondo::io_result r = co_await io.recv(slot.fd, std::span(buf).subspan(have))
                                     .cancel_on(srv.stop.get_token());
      if (r.res == 0 && have > 0) {
        reason = fmt::format("truncated frame: end of stream after {} of {} bytes", have,
                             order_frame_size);
        bad_input = true;
      } else if (r.res == 0) {
        reason = "closed by the peer";
      } else if (!r.ok()) {
        reason = r.cancelled() ? "server stopping" : r.error().message();
      } else {
        have += static_cast<std::size_t>(r.res);
        std::size_t used = 0;
        for (;;) {
          frame_check f = check_frame(std::span<const std::byte>(buf.data() + used, have - used));
          if (!f.error.empty()) {
            reason = std::move(f.error);
            bad_input = true;
            break;
          }
          if (f.size == 0) break;
          // Suspends this reader (not the thread) while the ring is full: backpressure reaches
          // the client through TCP.
          auto reserved = co_await srv.publisher->reserve(1);
          order_event& ev = reserved[0];
          ev.slot = index;
          ev.generation = generation;
          ev.received_ns = now_ns();
          std::memcpy(ev.frame.data(), buf.data() + used, f.size);
          reserved.publish();
          used += f.size;
          srv.orders_in.fetch_add(1, std::memory_order_relaxed);  // statistic
        }
        std::memmove(buf.data(), buf.data() + used, have - used);
        have -= used;
      }
    }
  } catch (const std::exception& e) {  // rondo::closed, if the disruptor shut down under us
    reason = e.what();
  }
  end_connection(srv, index, reason, bad_input);
  srv.live_tasks.fetch_sub(1, std::memory_order_release);  // pairs with main's acquire load
}

void set_nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // small frames: no Nagle
}

rondo::task<> accept_connections(server& srv) {
  rondo::io_context& io = rondo::current_io_context();
  for (;;) {
    const rondo::io_result r =
        co_await io.accept(srv.listen_fd).cancel_on(srv.stop.get_token());
    if (r.cancelled()) break;
    if (!r.ok()) {
      fmt::print("  [server] accept failed: {}\n", r.error().message());
      break;
    }
    set_nodelay(r.res);
    const auto it = std::find_if(srv.slots.begin(), srv.slots.end(), [](const auto& s) {
      return s.state == slot_state::free;
    });
    if (it == srv.slots.end()) {
      fmt::print("  [server] connection refused: all {} slots in use\n", srv.slots.size());
      ::close(r.res);
      continue;
    }
    it->fd = r.res;
    ++it->generation;
    it->state = slot_state::open;
    srv.open_connections.fetch_add(1, std::memory_order_relaxed);  // statistic
    // Relaxed: the read-modify-writes of one atomic are totally ordered, and this one comes
    // before the reader's own release decrement; main needs only the decrements.
    srv.live_tasks.fetch_add(1, std::memory_order_relaxed);
    srv.rt->spawn(serve_connection(srv, static_cast<std::uint32_t>(it - srv.slots.begin())), 0);
  }
  srv.live_tasks.fetch_sub(1, std::memory_order_release);  // pairs with main's acquire load
}

// ---- journal and reply: the two stages that do I/O ---------------------------------------------

constexpr std::int64_t journal_max_batch = 256;  // iovecs per writev (IOV_MAX is 1024)

struct journal_file {
  int fd = -1;
  std::uint64_t offset = 0;
  std::int64_t syncs = 0;    // writev + fdatasync rounds
  std::int64_t sync_ns = 0;  // time spent in fdatasync
};

// journal: one writev of the batch's records straight from the ring slots (they cannot be
// reused before this task completes: only then does the stage's sequence advance), then one
// fdatasync. A batch of 100 orders costs one fdatasync, not 100.
auto journal_stage(journal_file& j) {
  return [&j](rondo::batch<order_event> b) -> rondo::task<> {
    if (b.empty()) co_return;
    rondo::io_context& io = rondo::current_io_context();
    std::array<::iovec, journal_max_batch> iov;
    std::size_t n = 0;
    for (order_event& ev : b) iov[n++] = {&ev.record, sizeof ev.record};
    const std::size_t bytes = n * sizeof(journal_record);
    const rondo::io_result w =
        co_await io.writev(j.fd, std::span(iov.data(), n), j.offset).cancel_on(b.stop_token());
    if (w.value() != bytes) throw std::runtime_error("journal: short write");
    const std::int64_t t0 = now_ns();
    (void)(co_await io.fdatasync(j.fd).cancel_on(b.stop_token())).value();
    j.sync_ns += now_ns() - t0;
    j.offset += bytes;
    ++j.syncs;
  };
}

// Puts the order's ack in its connection's outbox, unless that connection is gone.
void gather_ack(server& srv, const order_event& ev, std::int64_t seq) {
  connection_slot& slot = srv.slots[ev.slot];
  if (slot.state != slot_state::open || slot.generation != ev.generation) {
    srv.acks_dropped.fetch_add(1, std::memory_order_relaxed);  // statistic
    return;
  }
  if (slot.outbox.empty()) {
    srv.touched.push_back(ev.slot);
    slot.outbox_generation = ev.generation;
  }
  ack_msg a{};
  a.client_order_id = ev.record.client_order_id;
  a.sent_ns = ev.client_sent_ns;
  a.server_sequence = seq;
  a.filled = ev.filled;
  a.status = ev.record.status;
  append_frame(slot.outbox, msg_type::ack, a);
  srv.latency.add(now_ns() - ev.received_ns);
}

// reply: gathers the batch's acks per connection, then sends each connection's acks with one
// send. This coroutine is the only writer of every socket, so sends run one after another and
// the acks of a connection never interleave (a client that stops reading would stall the
// others: a real server would give each connection a writer of its own).
auto reply_stage(server& srv) {
  return [&srv](rondo::batch<order_event> b) -> rondo::task<> {
    rondo::io_context& io = rondo::current_io_context();
    for (auto [seq, ev] : b.entries()) gather_ack(srv, ev, seq);
    for (const std::uint32_t index : srv.touched) {
      connection_slot& slot = srv.slots[index];
      std::size_t sent = 0;
      // The connection may end, and its slot be reused, while we send to another one.
      while (sent < slot.outbox.size() && slot.state == slot_state::open &&
             slot.generation == slot.outbox_generation) {
        slot.sending = true;
        const rondo::io_result r =
            co_await io.send(slot.fd, std::span<const std::byte>(slot.outbox).subspan(sent));
        slot.sending = false;
        if (!r.ok()) break;  // EPIPE, ECONNRESET: the reader sees the end as well
        sent += static_cast<std::size_t>(r.res);
      }
      const auto acks = static_cast<std::int64_t>(slot.outbox.size() / ack_frame_size);
      const auto delivered = static_cast<std::int64_t>(sent / ack_frame_size);
      srv.acks_sent.fetch_add(delivered, std::memory_order_relaxed);            // statistic
      srv.acks_dropped.fetch_add(acks - delivered, std::memory_order_relaxed);  // statistic
      slot.outbox.clear();
      if (slot.state == slot_state::closing) release_slot(slot);  // the reader left it to us
    }
    srv.touched.clear();
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
    last_ack = steady::now();
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

rondo::task<> connect_client(load_client& c, const load_plan& plan) {
  c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c.fd < 0) throw std::runtime_error(fmt::format("socket: {}", std::strerror(errno)));
  set_nodelay(c.fd);
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

// ---- Command line, checks and reports ----------------------------------------------------------

struct options {
  double seconds = 3;
  int connections = 8;
  double rate = 0;
  std::string journal;  // empty: a temporary file, removed at the end
  int port = 0;
  unsigned threads = 2;
};

constexpr const char* usage =
    "usage: rondo_example_order_server [options]\n"
    "  --seconds S       how long the load generator sends orders (default 3)\n"
    "  --connections N   client connections (default 8); 4 misbehaving ones come on top\n"
    "  --rate R          orders per second over all connections (open loop);\n"
    "                    0 (default): closed loop, 8 orders in flight per connection\n"
    "  --journal PATH    the journal file (default: a temporary file, removed at the end)\n"
    "  --port P          the server's loopback port (default 0: any free port)\n"
    "  --threads T       the server's runtime threads (default 2: decode and reply on\n"
    "                    context 0 with the sockets, the heavy stages journal and match\n"
    "                    on context 1)\n";

// False when --help was asked for.
bool parse_options(int argc, char** argv, options& o) {
  const std::vector<std::string> known = {"--seconds", "--connections", "--rate",
                                          "--journal", "--port",        "--threads"};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") return false;
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
  }
  if (!(o.seconds > 0)) throw std::invalid_argument("--seconds must be > 0");
  if (o.connections < 1 || o.connections > 1000) {
    throw std::invalid_argument("--connections: 1..1000");
  }
  if (o.rate < 0) throw std::invalid_argument("--rate must be >= 0");
  if (o.port < 0 || o.port > 65535) throw std::invalid_argument("--port: 0..65535");
  if (o.threads < 1 || o.threads > 64) throw std::invalid_argument("--threads: 1..64");
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

// Reads the journal back: records 0, 1, 2, ... in order; per client, order ids 1, 2, 3, ...,
// none missing or repeated; and exactly the orders each client got acks for.
std::string verify_journal(const std::string& path, std::int64_t published,
                           const std::deque<load_client>& clients) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return fmt::format("cannot open {}", path);
  std::map<std::uint32_t, std::uint64_t> last_id;  // per client
  std::vector<journal_record> chunk(4096);
  std::int64_t next = 0;
  std::string why;
  std::size_t n = 0;
  while (why.empty() && (n = std::fread(chunk.data(), sizeof chunk[0], chunk.size(), f)) > 0) {
    for (std::size_t i = 0; i < n && why.empty(); ++i, ++next) {
      std::uint64_t& last = last_id[chunk[i].client_id];
      if (chunk[i].sequence != next) {
        why = fmt::format("record {} has sequence {}", next, chunk[i].sequence);
      } else if (chunk[i].client_order_id != last + 1) {
        why = fmt::format("client {}: order {} after {}", chunk[i].client_id,
                          chunk[i].client_order_id, last);
      }
      last = chunk[i].client_order_id;
    }
  }
  std::fclose(f);
  if (why.empty() && next != published) {
    why = fmt::format("{} records for {} orders", next, published);
  }
  for (const load_client& c : clients) {
    if (why.empty() && last_id[c.id] != c.acked) {
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

}  // namespace

int main(int argc, char** argv) try {
  options opt;
  if (!parse_options(argc, argv, opt)) {
    fmt::print("{}", usage);
    return 0;
  }
  const bool temporary_journal = opt.journal.empty();
  if (temporary_journal) {
    opt.journal = fmt::format("/tmp/rondo-order-server-{}.journal", ::getpid());
  }
  constexpr int bad_clients = 4;

  // Declared before the runtime: the tasks on its threads use them until it stops.
  journal_file journal;
  order_book book;
  server srv;
  srv.slots.resize(static_cast<std::size_t>(opt.connections + bad_clients + 16));
  srv.touched.reserve(srv.slots.size());
  journal.fd = ::open(opt.journal.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (journal.fd < 0) throw std::runtime_error("open " + opt.journal + ": " + std::strerror(errno));

  rondo::runtime rt(opt.threads);
  // Placement: the builder's default. Light stages share context 0, which owns the sockets:
  // the readers (the producers), decode (it reads the frames the readers just wrote, still in
  // this core's cache) and reply (it sends on those sockets). The stages marked heavy go to the
  // other contexts: journal, so that waiting for fdatasync never holds up reading orders or
  // acking earlier batches, and match, which runs while the journal waits for the disk.
  rondo::stage_options journal_options;
  journal_options.max_batch = journal_max_batch;
  journal_options.heavy = true;
  rondo::stage_options match_options;
  match_options.heavy = true;
  // Every publisher runs on context 0, so producer_type::single would do; multi keeps the
  // server correct if readers are ever spread over contexts.
  auto d = rondo::disruptor<order_event>::builder()
               .capacity(4096)
               .producers(rondo::producer_type::multi)
               .wait(rondo::spin_then_suspend{})
               .metrics()
               .executor(rt)
               .stage("decode",
                      [](order_event& ev, std::int64_t seq, bool) { decode_order(ev, seq); })
               .stage("journal", journal_stage(journal), rondo::after("decode"), journal_options)
               .stage(
                   "match",
                   [&book](order_event& ev, std::int64_t seq, bool) {
                     const journal_record& r = ev.record;
                     if (r.status != accepted) return;
                     ev.filled = book.execute(seq, r.side, r.price, r.qty);
                   },
                   rondo::after("decode"), match_options)
               .stage("reply", reply_stage(srv), rondo::after("journal", "match"))
               .build();
  d.start();

  sockaddr_in addr{};
  srv.listen_fd = listen_on_loopback(opt.port, addr);
  srv.rt = &rt;
  srv.publisher = d.coro_publisher();
  // Relaxed: spawn() hands the task to context 0 through its queue, which orders this before it.
  srv.live_tasks.store(1, std::memory_order_relaxed);
  rt.spawn(accept_connections(srv), 0);
  fmt::print("order_server on 127.0.0.1:{}, journal {}, {} server threads\n",
             unsigned{ntohs(addr.sin_port)}, opt.journal, opt.threads);
  const std::string mode = opt.rate > 0
                               ? fmt::format("open loop at {} orders/s", std::lround(opt.rate))
                               : "closed loop (8 orders in flight each)";
  fmt::print("load: {} connections + {} misbehaving, {}, for {:.1f} s\n", opt.connections,
             bad_clients, mode, opt.seconds);

  // The load generator: good clients 1..N, bad clients 1001..1004 a third into the run.
  std::deque<load_client> clients;  // a deque: the clients' coroutines hold references
  load_stats stats;
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

  // A progress line once a second until every client has finished.
  const auto all_finished = [&] {
    // Acquire: pairs with the release increment in finish_client().
    return stats.finished.load(std::memory_order_acquire) == static_cast<int>(clients.size());
  };
  std::int64_t last_acks = 0;
  for (int tick = 1; !wait_until(all_finished, plan.start + tick * 1s); ++tick) {
    // Relaxed loads: statistics.
    const std::int64_t acks = stats.acks.load(std::memory_order_relaxed);
    fmt::print("  {:2} s: {:9} acks ({:6.1f} k/s), {:2} connections open, {} closed for bad "
               "input\n",
               tick, acks, static_cast<double>(acks - last_acks) / 1e3,
               srv.open_connections.load(std::memory_order_relaxed),
               srv.bad_closed.load(std::memory_order_relaxed));
    last_acks = acks;
    if (steady::now() > plan.end + 30s) {
      // Tasks still running use what an orderly exit would destroy.
      fmt::print(stderr, "FAILED: the load generator hangs\n");
      std::_Exit(1);
    }
  }
  const double elapsed = std::chrono::duration<double>(steady::now() - plan.start).count();
  load_rt.stop();

  // Shut down: end the accept loop and the readers (the clients are gone, so the readers have
  // seen their streams end already), then drain: every published order goes through every
  // stage, so each is journaled and acked (or its ack dropped, if its connection is gone).
  srv.stop.request_stop();
  // Acquire: pairs with the release decrements at the end of the server's tasks.
  if (!wait_until([&] { return srv.live_tasks.load(std::memory_order_acquire) == 0; },
                  steady::now() + 10s)) {
    fmt::print(stderr, "FAILED: the server's connections do not end\n");
    std::_Exit(1);
  }
  d.drain();
  ::close(srv.listen_fd);
  ::close(journal.fd);

  // Report.
  std::int64_t acked = 0, rejected_acks = 0, filled_in_acks = 0;
  std::vector<std::string> problems;
  for (const load_client& c : clients) {
    acked += static_cast<std::int64_t>(c.acked);
    rejected_acks += static_cast<std::int64_t>(c.rejected);
    filled_in_acks += static_cast<std::int64_t>(c.filled);
    if (!c.error.empty()) problems.push_back(fmt::format("client {}: {}", c.id, c.error));
  }
  const std::int64_t published = d.metrics("reply").position + 1;
  const auto records = static_cast<std::int64_t>(journal.offset / sizeof(journal_record));
  const std::int64_t syncs = std::max<std::int64_t>(journal.syncs, 1);
  // Relaxed loads: the server's tasks have ended (live_tasks, acquire) and drain() joined the
  // stages, so these are final.
  const std::int64_t bad_closed = srv.bad_closed.load(std::memory_order_relaxed);
  const std::int64_t dropped = srv.acks_dropped.load(std::memory_order_relaxed);
  const std::int64_t acks_sent = srv.acks_sent.load(std::memory_order_relaxed);
  fmt::print("\n{} orders acked in {:.2f} s = {:.1f} k orders/s; {} rejected (by design), "
             "{} trades, {} orders resting\n",
             acked, elapsed, static_cast<double>(acked) / elapsed / 1e3, rejected_acks,
             book.trades(), book.resting());
  stats.round_trip.print("round trip (client send -> ack received)");
  srv.latency.print("in the server (frame received -> journaled, matched, ack ready)");
  fmt::print("journal: {} records in {} writev + fdatasync rounds (mean {:.1f} records, "
             "fdatasync mean {})\n",
             records, journal.syncs, static_cast<double>(records) / static_cast<double>(syncs),
             human_ns(static_cast<std::uint64_t>(journal.sync_ns / syncs)));
  fmt::print("bad input: {} connections closed (reasons logged above), {} acks dropped\n",
             bad_closed, dropped);
  print_stage_metrics(d, rt);

  // Checks.
  if (published != acked || acks_sent != acked) {
    problems.push_back(fmt::format("{} orders published, {} acks sent, {} received", published,
                                   acks_sent, acked));
  }
  if (bad_closed != bad_clients) problems.push_back("not every bad connection was closed");
  if (dropped != 0) problems.push_back("acks dropped");
  if (filled_in_acks != book.filled()) problems.push_back("the acks' fills differ from the book's");
  for (const rondo::stage_report& r : d.metrics()) {
    if (r.metrics.events != published) {
      problems.push_back(fmt::format("stage {} missed orders", r.name));
    }
  }
  if (const std::string why = verify_journal(opt.journal, published, clients); why.empty()) {
    fmt::print("\njournal verified: {} records in sequence order; every acked order of the {} "
               "clients is in it exactly once, in order\n",
               published, clients.size());
  } else {
    problems.push_back(fmt::format("journal: {}", why));
  }
  if (temporary_journal) ::unlink(opt.journal.c_str());
  if (const std::size_t abandoned = rt.stop(); abandoned != 0) {
    problems.push_back(fmt::format("{} server tasks never finished", abandoned));
  }
  for (const std::string& p : problems) fmt::print(stderr, "FAILED: {}\n", p);
  return problems.empty() ? 0 : 1;
} catch (const std::exception& e) {
  fmt::print(stderr, "order_server: {}\n", e.what());
  return 2;
}
