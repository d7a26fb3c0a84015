// io_context: the run loop, cross-thread posts and the doorbell, and each I/O operation against
// real files, success and failure; a journal stage (write + fdatasync per batch) on the context.

#include "support.hpp"

#include <rondo/io/io_context.hpp>
#include <rondo/rondo.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

using namespace std::chrono_literals;
using rondo_test::detached;

namespace {

// A temporary file, removed at the end.
struct temp_file {
  std::string path;
  int fd = -1;
  temp_file() {
    char name[] = "/tmp/rondo-io-test-XXXXXX";
    fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    path = name;
  }
  ~temp_file() {
    ::close(fd);
    ::unlink(path.c_str());
  }
};

// An io_context constructed and run on a thread of its own (SINGLE_ISSUER rings belong to the
// thread that creates them).
class context_thread {
 public:
  context_thread() {
    thread_ = std::thread([this] {
      rondo::io_context ctx;
      // Release: pairs with the acquire load in the constructor's wait below.
      ctx_.store(&ctx, std::memory_order_release);
      ctx.run();
      ctx.poll();  // finish what stop() interrupted
      // Relaxed: the join in the destructor orders it.
      ctx_.store(nullptr, std::memory_order_relaxed);
    });
    // Acquire: pairs with the release store above.
    while (ctx_.load(std::memory_order_acquire) == nullptr) std::this_thread::yield();
  }
  ~context_thread() {
    ctx().stop();
    thread_.join();
  }
  rondo::io_context& ctx() { return *ctx_.load(std::memory_order_acquire); }

 private:
  std::atomic<rondo::io_context*> ctx_{nullptr};
  std::thread thread_;
};

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

}  // namespace

TEST_CASE("io_context runs what is posted, on its own thread", "[io][deterministic]") {
  rondo::io_context io;
  std::vector<int> order;
  auto hop = [&](int id) -> detached {
    co_await io.schedule();
    order.push_back(id);
  };
  hop(1);
  hop(2);
  CHECK(order.empty());
  CHECK(io.poll() == 2);
  CHECK(order == std::vector<int>{1, 2});
  CHECK(io.poll() == 0);
  io.stop();
  CHECK_FALSE(io.run_one());  // stopped: returns at once
  io.restart();
}

TEST_CASE("io_context: a post from another thread wakes a sleeping context",
          "[io][stress]") {
  context_thread t;
  constexpr int rounds = RONDO_TSAN ? 200 : 2000;
  std::atomic<int> done{0};
  for (int i = 0; i < rounds; ++i) {
    auto hop = [&]() -> detached {
      co_await t.ctx().schedule();
      // Release: pairs with the acquire load below.
      done.fetch_add(1, std::memory_order_release);
    };
    hop();
    // Each round: the context may be polling, or asleep in the kernel; either way it runs it.
    // Acquire: pairs with the release increment above.
    while (done.load(std::memory_order_acquire) <= i) std::this_thread::yield();
    if (i % 100 == 0) std::this_thread::sleep_for(200us);  // let it fall asleep sometimes
  }
  // Acquire: pairs with the release increments of the hops.
  CHECK(done.load(std::memory_order_acquire) == rounds);
}

TEST_CASE("io_context: read, write, fsync, fdatasync on a file", "[io][deterministic]") {
  rondo::io_context io;
  temp_file f;
  std::string got(11, '\0');
  std::vector<rondo::io_result> results;
  auto body = [&]() -> rondo::task<> {
    results.push_back(co_await io.write(f.fd, bytes_of("hello world"), 0));
    results.push_back(co_await io.fdatasync(f.fd));
    results.push_back(co_await io.fsync(f.fd));
    results.push_back(co_await io.read(
        f.fd, std::as_writable_bytes(std::span<char>(got.data(), got.size())), 0));
  };
  bool finished = false;
  auto run = [&]() -> detached {
    co_await body();
    finished = true;
  };
  run();
  while (!finished) io.run_one();
  REQUIRE(results.size() == 4);
  CHECK(results[0].value() == 11);
  CHECK(results[1].ok());
  CHECK(results[2].ok());
  CHECK(results[3].value() == 11);
  CHECK(got == "hello world");
}

TEST_CASE("io_context: failures are values that name the operation and the fd",
          "[io][deterministic]") {
  rondo::io_context io;
  std::vector<rondo::io_result> results;
  const int full = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  REQUIRE(full >= 0);
  char buf[4] = {};
  bool finished = false;
  auto run = [&]() -> detached {
    results.push_back(co_await io.read(-1, std::as_writable_bytes(std::span<char>(buf)), 0));
    results.push_back(co_await io.write(full, bytes_of("data"), 0));
    finished = true;
  };
  run();
  while (!finished) io.run_one();
  ::close(full);
  REQUIRE(results.size() == 2);
  CHECK(results[0].error() == std::error_code(EBADF, std::system_category()));
  CHECK_THROWS_WITH(results[0].value(), Catch::Contains("read(fd -1)"));
  CHECK(results[1].error() == std::error_code(ENOSPC, std::system_category()));
  CHECK_THROWS_AS(results[1].value(), std::system_error);
}

// Runs the context until every spawned task finished, then once more (a failure kept by the
// last one is rethrown by that call).
static void run_until_spawned_done(rondo::io_context& io) {
  while (io.spawned() != 0) (void)io.run_one();
  (void)io.poll();
}

TEST_CASE("io_context::spawn: fire-and-forget tasks, posted, counted, failures rethrown in order",
          "[io][deterministic]") {
  rondo::io_context io;
  std::vector<int> order;
  auto work = [&](int id) -> rondo::task<> {
    (void)co_await io.sleep_for(1ms);  // real I/O: the task is suspended in the kernel meanwhile
    order.push_back(id);
  };
  auto value = [&]() -> rondo::task<int> {
    (void)co_await io.nop();
    co_return 7;
  };
  auto fail = [&](int id) -> rondo::task<> {
    (void)co_await io.nop();
    throw std::runtime_error("spawned task " + std::to_string(id) + " failed");
  };
  io.spawn(work(1));
  io.spawn(value());
  std::thread other([&] { io.spawn(work(2)); });  // any thread may spawn
  other.join();
  CHECK(order.empty());  // posted: nothing ran inside spawn()
  CHECK(io.spawned() == 3);
  run_until_spawned_done(io);
  CHECK(io.spawned() == 0);
  CHECK(order.size() == 2);

  io.spawn(fail(1));
  io.spawn(fail(2));
  io.spawn(work(3));
  // Each failure comes out of one call, oldest first; the context goes on afterwards.
  CHECK_THROWS_WITH(run_until_spawned_done(io), Catch::Contains("spawned task 1 failed"));
  CHECK_THROWS_WITH(run_until_spawned_done(io), Catch::Contains("spawned task 2 failed"));
  CHECK_NOTHROW(run_until_spawned_done(io));
  CHECK(io.spawned() == 0);
  CHECK(order == std::vector<int>{1, 2, 3});
  CHECK(io.spawn_count() == 6);

  // A stopped context refuses: the task would not run before a restart().
  io.stop();
  CHECK_THROWS_WITH(io.spawn(work(4)), Catch::Contains("stopped"));
  CHECK(io.spawned() == 0);
  io.restart();
  io.spawn(work(4));
  run_until_spawned_done(io);
  CHECK(order.back() == 4);
}

TEST_CASE("io_context::spawn from another thread onto a running context", "[io][stress]") {
  context_thread t;
  constexpr int tasks = RONDO_TSAN ? 200 : 5000;
  std::atomic<int> done{0};
  auto body = [&]() -> rondo::task<> {
    // Relaxed: only picks which tasks do I/O.
    if (done.load(std::memory_order_relaxed) % 8 == 0) (void)co_await t.ctx().nop();
    // Relaxed: the acquire load of spawned() == 0 below orders it (release decrement).
    done.fetch_add(1, std::memory_order_relaxed);
  };
  for (int i = 0; i < tasks; ++i) {
    t.ctx().spawn(body());
    if (i % 500 == 0) std::this_thread::sleep_for(200us);  // let it fall asleep sometimes
  }
  // A lost wake-up or task shows as spawned() stuck above 0: fail after 60 s, do not hang.
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  while (t.ctx().spawned() != 0 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::yield();
  }
  REQUIRE(t.ctx().spawned() == 0);
  // Relaxed: ordered by the acquire load of spawned() == 0 above.
  CHECK(done.load(std::memory_order_relaxed) == tasks);
}

TEST_CASE("io_context: sleep_for completes; I/O from a foreign thread is refused",
          "[io][deterministic]") {
  rondo::io_context io;
  rondo::io_result r{-1, "", -1};
  bool finished = false;
  auto run = [&]() -> detached {
    r = co_await io.sleep_for(2ms);
    finished = true;
  };
  run();
  while (!finished) io.run_one();
  CHECK(r.ok());
  CHECK(r.res == 0);

  bool refused = false;
  std::thread other([&] {
    auto body = [&]() -> detached {
      try {
        (void)co_await io.sleep_for(1ms);
      } catch (const std::logic_error&) {
        refused = true;
      }
    };
    body();
  });
  other.join();
  CHECK(refused);
  CHECK_THROWS_AS(rondo::io_context(rondo::io_options{.entries = 3, .idle_spin = std::chrono::microseconds(50), .max_in_flight = 0, .msg_ring_doorbell = true, .idle_spin_with_file_io = false}), std::invalid_argument);
  CHECK_THROWS_WITH(rondo::io_context(rondo::io_options{.entries = 8, .idle_spin = std::chrono::microseconds(50), .max_in_flight = 1, .msg_ring_doorbell = true, .idle_spin_with_file_io = false}),
                    Catch::Contains("max_in_flight 1"));
}

TEST_CASE("journal stage on an io_context: write + fdatasync per batch, in order, before "
          "downstream sees it",
          "[io][stress]") {
  struct record {
    std::int64_t seq = -1;
    std::int64_t value = 0;
  };
  constexpr std::int64_t n = RONDO_TSAN ? 2000 : 20000;
  temp_file f;
  context_thread t;
  rondo::io_context& io = t.ctx();
  std::atomic<std::int64_t> synced{-1};  // highest sequence known to be on disk
  std::int64_t early = 0;                // downstream saw an event before its fdatasync
  std::int64_t downstream = 0;
  std::uint64_t offset = 0;
  std::vector<record> buffer;  // the journal's staging buffer, sized once
  buffer.reserve(1024);
  rondo::io_result failure{0, "", -1};
  auto d = rondo::disruptor<record>::builder()
               .capacity(1024)
               .wait(rondo::spin_then_suspend{})
               .stage("journal",
                      [&](rondo::batch<record> b) -> rondo::task<> {
                        buffer.assign(b.begin(), b.end());
                        const auto bytes = std::as_bytes(std::span<const record>(buffer));
                        const rondo::io_result w = co_await io.write(f.fd, bytes, offset);
                        const rondo::io_result s = co_await io.fdatasync(f.fd);
                        if (!w.ok() || w.res != static_cast<int>(bytes.size())) failure = w;
                        if (!s.ok()) failure = s;
                        offset += bytes.size();
                        // Release: pairs with the acquire load in "reply".
                        synced.store(b.last(), std::memory_order_release);
                      })
               .on(io)
               .stage("reply",
                      [&](record& r, std::int64_t seq, bool) {
                        // Acquire: pairs with the release store in "journal".
                        if (synced.load(std::memory_order_acquire) < seq) ++early;
                        if (r.seq == seq) ++downstream;
                      },
                      rondo::after("journal"))
               .on(io)
               .build();
  d.start();
  for (std::int64_t i = 0; i < n; ++i) {
    auto c = d.publisher().reserve(1);
    c[0] = record{c.first(), c.first() * 7};
    c.publish();
  }
  d.drain();
  CHECK(failure.res == 0);
  CHECK(early == 0);
  CHECK(downstream == n);
  // The file holds every event exactly once, in order.
  std::vector<record> file(static_cast<std::size_t>(n));
  REQUIRE(::pread(f.fd, file.data(), file.size() * sizeof(record), 0) ==
          static_cast<ssize_t>(file.size() * sizeof(record)));
  std::int64_t bad = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const record& r = file[static_cast<std::size_t>(i)];
    if (r.seq != i || r.value != i * 7) ++bad;
  }
  CHECK(bad == 0);
  CHECK(::lseek(f.fd, 0, SEEK_END) == static_cast<off_t>(n * static_cast<std::int64_t>(sizeof(record))));
}

TEST_CASE("io_context embedded in a foreign epoll loop: posts and completions wake it",
          "[io][deterministic]") {
  std::atomic<rondo::io_context*> ctx_ptr{nullptr};
  std::atomic<bool> quit{false};
  std::atomic<int> hops{0};
  int woke_by_epoll = 0;
  std::atomic<bool> slept_ok{false};
  bool epoll_setup_ok = false;  // checked after the join (Catch2 asserts on this thread only)
  std::thread loop([&] {
    rondo::io_context io(rondo::io_options{.entries = 8, .idle_spin = std::chrono::microseconds(0), .max_in_flight = 0, .msg_ring_doorbell = true, .idle_spin_with_file_io = false});
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    epoll_setup_ok = ep >= 0 && ::epoll_ctl(ep, EPOLL_CTL_ADD, io.wait_handle(), &ev) == 0;
    // A completion of the context's own I/O must wake the loop too.
    auto sleeper = [&]() -> detached {
      const bool ok = (co_await io.sleep_for(3ms)).ok();
      // Release: pairs with the acquire load on the test thread.
      slept_ok.store(ok, std::memory_order_release);
    };
    sleeper();
    // Release: pairs with the acquire load on the test thread.
    ctx_ptr.store(&io, std::memory_order_release);
    // Relaxed: set on this thread, by the last hop (which runs inside poll()).
    while (!quit.load(std::memory_order_relaxed)) {
      (void)io.poll();
      if (io.prepare_wait()) {
        epoll_event out{};
        // Without a working epoll set the loop just polls (the test then fails below).
        if (epoll_setup_ok && ::epoll_wait(ep, &out, 1, 2000) > 0) ++woke_by_epoll;
        io.finish_wait();
      }
    }
    if (ep >= 0) ::close(ep);
  });
  // Acquire: pairs with the release store in the loop thread.
  while (ctx_ptr.load(std::memory_order_acquire) == nullptr) std::this_thread::yield();
  rondo::io_context& io = *ctx_ptr.load(std::memory_order_acquire);
  constexpr int rounds = 200;
  for (int i = 0; i < rounds; ++i) {
    auto hop = [&]() -> detached {
      co_await io.schedule();
      // Release: pairs with the acquire load below.
      hops.fetch_add(1, std::memory_order_release);
    };
    hop();
    // Acquire: pairs with the release increment above. Without the doorbell the loop would
    // sit in epoll_wait for its 2 s timeout each round: the test's own timeout catches that.
    while (hops.load(std::memory_order_acquire) <= i) std::this_thread::yield();
  }
  const auto t0 = std::chrono::steady_clock::now();
  // Acquire: pairs with the release store in the sleeper.
  while (!slept_ok.load(std::memory_order_acquire) && std::chrono::steady_clock::now() - t0 < 5s) {
    std::this_thread::sleep_for(1ms);
  }
  // The loop ends once this hop ran on it (so no posted node is left behind).
  auto last = [&]() -> detached {
    co_await io.schedule();
    // Relaxed: read on this (the loop's) thread.
    quit.store(true, std::memory_order_relaxed);
  };
  last();
  loop.join();
  CHECK(epoll_setup_ok);
  CHECK(hops.load(std::memory_order_acquire) == rounds);
  CHECK(slept_ok.load(std::memory_order_acquire));
  CHECK(woke_by_epoll > 0);
}
