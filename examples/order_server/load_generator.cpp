// The demo's load generator (load_generator.hpp): good clients that measure send -> ack and
// check every ack, four clients that send bad input a third into the run, and generate_load(),
// which starts them all on an io_context of its own and reports progress.
#include "load_generator.hpp"

#include "protocol.hpp"
#include "socket.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <span>
#include <stdexcept>

#include <sys/socket.h>
#include <unistd.h>

namespace order_server {

using namespace order_protocol;

namespace {

// Every 64th order has quantity 0: decode must reject it (take_acks checks).
bool invalid_by_design(std::uint64_t client_order_id) { return client_order_id % 64 == 0; }

}  // namespace

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

namespace {

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

}  // namespace

rondo::task<> connect_client(load_client& c, const load_plan& plan, int rcvbuf) {
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

namespace {

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

}  // namespace

double generate_load(const options& opt, const sockaddr_in& addr, rondo::server& net,
                     std::deque<load_client>& clients, load_stats& stats) {
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
  const double elapsed = std::chrono::duration<double>(steady::now() - plan.start).count();
  load_rt.stop();
  return elapsed;
}

}  // namespace order_server
