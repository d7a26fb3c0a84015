// mixed: compute stages and I/O stages in one pipeline, six stages on a two-thread runtime.
// builder.executor(rt) places the stages round-robin on the two io_contexts; compute stages are
// plain handlers (run as coroutines there), I/O stages are async batch handlers that co_await
// the kernel. A stage's sequence advances only when its work is done, so "publish" sees a
// reading only after it was both journalled and mirrored.
//
//   producer (coroutine, context 0)
//     └▶ parse ─▶ enrich ─┬▶ journal (rondo::journal: a record per reading, fdatasync) ─┬▶ publish
//                         └▶ mirror  (socket: send to a peer, one send per batch) ┘
//                         └▶ stats (pull loop)
//
// Exit codes: 0 checked, 1 wrong or failed (the message says why), 77 io_uring unavailable.
#include <rondo/rondo.hpp>

#include <fmt/format.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

struct reading {
  std::uint64_t raw = 0;
  double value = 0;
  double smoothed = 0;
};

// The batch as one journal record per reading.
std::vector<::iovec> as_iovecs(const rondo::batch<reading>& b) {
  std::vector<::iovec> out;
  out.reserve(b.size());
  for (reading& r : b) out.push_back(::iovec{&r, sizeof r});
  return out;
}

rondo::task<> produce(rondo::coro_publisher<reading> publisher, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; i += 32) {
    auto c = co_await publisher.reserve(32);
    for (auto [seq, r] : c) r.raw = static_cast<std::uint64_t>(seq) * 7 % 1000;
    c.publish();
  }
}

namespace {

int run() {
  constexpr std::uint64_t n = 200'000;
  rondo::runtime rt(2);
  int peer[2];  // the mirror's "network": a socket pair, drained by a thread
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, peer) != 0) return 1;
  std::uint64_t mirrored_bytes = 0;
  std::thread sink([&] {
    char buf[65536];
    for (;;) {
      const ssize_t r = ::recv(peer[1], buf, sizeof buf, 0);
      if (r <= 0) break;
      mirrored_bytes += static_cast<std::uint64_t>(r);
    }
  });
  const std::string path = "rondo-example-mixed.journal";
  rondo::journal_options jo;
  jo.mode = rondo::open_mode::truncate;  // a demo: start empty
  rondo::journal j(rt.context(0), path, jo);  // its appends run where the journal stage runs (0)

  double ema = 0;
  std::uint64_t published = 0, audited = 0;
  auto d = rondo::disruptor<reading>::builder()
               .capacity(4096)
               .wait(rondo::spin_then_suspend{})
               .metrics()
               .executor(rt)  // round-robin over the runtime's two contexts
               .stage("parse", [](reading& r, std::int64_t, bool) { r.value = static_cast<double>(r.raw) * 0.5; })
               .stage("enrich",
                      [&ema](reading& r, std::int64_t, bool) {
                        ema = 0.99 * ema + 0.01 * r.value;
                        r.smoothed = ema;
                      },
                      rondo::after("parse"))
               .stage("journal",
                      [&j](rondo::batch<reading> b) -> rondo::task<> {
                        co_await j.append_durable(as_iovecs(b));
                      },
                      rondo::after("enrich"))
               .on(0)  // the journal's context
               .stage("mirror",
                      [fd = peer[0]](rondo::batch<reading> b) -> rondo::task<> {
                        const auto [first, second] = b.spans();
                        for (auto span : {first, second}) {
                          auto bytes = std::as_bytes(span);
                          while (!bytes.empty()) {
                            const std::size_t sent =
                                (co_await rondo::current_io_context().send(fd, bytes)).value();
                            bytes = bytes.subspan(sent);
                          }
                        }
                      },
                      rondo::after("enrich"))
               .stage("stats",
                      [&audited](rondo::consumer<reading>& in) -> rondo::task<> {
                        while (auto b = co_await in.next()) audited += b->size();
                      },
                      rondo::after("enrich"))
               .stage("publish", [&published](reading&, std::int64_t, bool) { ++published; },
                      rondo::after("journal", "mirror"))
               .build();
  d.start();
  rt.block_on(produce(d.publisher(), n), 0);
  d.drain();
  ::shutdown(peer[0], SHUT_WR);
  sink.join();
  ::close(peer[0]);
  ::close(peer[1]);
  const auto journalled = static_cast<std::uint64_t>(j.next_sequence());
  std::filesystem::remove_all(path);

  fmt::print("mixed: {} readings through 6 stages on 2 threads\n", n);
  for (const auto& s : d.metrics()) {
    fmt::print("  {:<8} events {:>8}  mean batch {:>7.1f}  suspensions {}\n", s.name,
               s.metrics.events, s.metrics.mean_batch(), s.metrics.suspensions);
  }
  const bool ok = published == n && audited == n && journalled == n &&
                  mirrored_bytes == n * sizeof(reading);
  fmt::print("  journalled {} records, mirrored {} bytes: {}\n", journalled, mirrored_bytes,
             ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

}  // namespace

int main() {
  try {
    rondo::io_context probe;
  } catch (const std::system_error& e) {
    fmt::print(stderr, "rondo_example_mixed: io_uring is unavailable here ({}): skipped\n",
               e.what());
    return 77;
  }
  try {
    return run();
  } catch (const std::exception& e) {
    fmt::print(stderr, "rondo_example_mixed: {}\n", e.what());
    return 1;
  }
}
