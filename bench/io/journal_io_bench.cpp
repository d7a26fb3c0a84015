// journal_io_bench.cpp: io_bench's buffered journal rows, rondo's journal stage (writev +
// fdatasync per batch) against the same file traffic on a raw ring. Registered in io_bench.cpp;
// the O_DIRECT row is in journal_odirect_bench.cpp.
//
// 3. Journal throughput to a file on a real disk (/tmp unless it is tmpfs, else the directory
//    of this binary; the label names it). 1.5 s of publishing, then a drain.
//
//    journal_rondo      64-byte events published in claims of 64 by the benchmark thread
//                       (CPU a) into a disruptor of 4,096 slots; an async batch stage on an
//                       io_context (CPU b) does one writev of the batch's spans() (one or two
//                       iovecs) and one fdatasync per batch: group commit, batches as large as
//                       the producer made them while the previous fdatasync ran.
//                       min_batch / max_batch: the smallest and largest; io_share: the part
//                       of the wall time the stage spent inside writev + fdatasync (the rest
//                       is the hand-off between batches: producer wake-up, stage wake-up).
//    journal_raw_uring  one thread, one ring: writev of a batch then fdatasync, each awaited, in
//                       a loop. /replay: the batch sizes journal_rondo made, in the same order
//                       (the like-for-like row); /steady: all of journal_rondo's mean size (what
//                       the same bytes cost when the batches are even).
//                       rondo/raw (events/s) is reported on these rows, since they run after.
//    journal_rondo_polling  journal_rondo with io_options::idle_spin_with_file_io on: the
//                       context polls for idle_spin while its writev / fdatasync run in
//                       io_uring's workers (by default it sleeps at once then). rondo/raw
//                       against the replay row, vs_default against journal_rondo.
//    The buffered journals wrap at 64 MiB (an overwrite from offset 0), so the run does not
//    write gigabytes; both buffered rows do the same. Every event is checked on its way out.

#include "io_bench_rows.hpp"
#include "journal_io.hpp"

#include <rondo/coro/task.hpp>
#include <rondo/disruptor.hpp>
#include <rondo/io/io_context.hpp>
#include <rondo/io/runtime.hpp>

#include <benchmark/benchmark.h>
#include <liburing.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <sys/uio.h>

namespace rondo_io_bench {
namespace {

// Same-run baselines (benchmarks run one after another on the main thread, in registration
// order): a baseline row stores its result here and a later row reports its ratio to it.
double rondo_journal_events_per_s = 0;
std::vector<std::int64_t> rondo_journal_batches;  // journal_rondo's batch sizes, in order
double raw_replay_events_per_s = 0;  // journal_raw_uring/replay, for journal_rondo_polling

// The rondo journal: a producer thread, a disruptor, an async writev + fdatasync stage.
// poll_file_io: io_options::idle_spin_with_file_io (the context polls while its I/O runs).
void run_journal_rondo(benchmark::State& state, bool poll_file_io) {
  const std::string dir = journal_dir();
  const std::pair<int, int> cpus = rondo_bench::pair_cpus();
  const rondo_bench::scoped_pin pin(cpus.first);
  for (auto _ : state) {
    temp_file f(dir);
    if (!f.error.empty()) {
      state.SkipWithError(f.error.c_str());
      return;
    }
    journal_stats st;
    rondo_bench::sequence_check check;
    std::uint64_t offset = 0;
    std::vector<std::int64_t> sizes;  // every batch's size, for journal_raw_uring to replay
    sizes.reserve(std::size_t{1} << 16);
    try {
      rondo::runtime_options opts;
      opts.threads = 1;
      opts.pin = cpus.second >= 0;
      if (opts.pin) opts.cpus = {cpus.second};
      opts.io.idle_spin_with_file_io = poll_file_io;
      rondo::runtime rt(opts);
      const int fd = f.fd;
      auto d = rondo::disruptor<journal_event>::builder()
                   .capacity(journal_capacity)
                   .wait(rondo::spin_then_suspend{})
                   .executor(rt)
                   .stage("journal",
                          [&st, &check, &offset, &sizes, fd](rondo::batch<journal_event> b) -> rondo::task<> {
                            if (b.empty()) co_return;
                            const auto parts = b.spans();
                            std::array<::iovec, 2> iov{};
                            iov[0].iov_base = parts.first.data();
                            iov[0].iov_len = parts.first.size_bytes();
                            iov[1].iov_base = parts.second.data();
                            iov[1].iov_len = parts.second.size_bytes();
                            const std::size_t n_iov = parts.second.empty() ? 1 : 2;
                            const std::size_t bytes = b.size() * sizeof(journal_event);
                            if (offset + bytes > journal_wrap) offset = 0;
                            rondo::io_context& io = rondo::current_io_context();
                            const auto io0 = clock::now();
                            const rondo::io_result w = co_await io.writev(
                                fd, std::span<const ::iovec>(iov.data(), n_iov), offset);
                            const rondo::io_result s = co_await io.fdatasync(fd);
                            st.io_seconds += rondo_bench::seconds_between(io0, clock::now());
                            if (w.res != static_cast<int>(bytes)) {
                              st.error = w.ok() ? "short writev" : w.error().message();
                            }
                            if (!s.ok()) st.error = "fdatasync: " + s.error().message();
                            for (auto [seq, ev] : b.entries()) check.add(ev.seq, seq);
                            offset += bytes;
                            st.bytes += bytes;
                            const auto n = static_cast<std::int64_t>(b.size());
                            st.min_batch = st.min_batch == 0 ? n : std::min(st.min_batch, n);
                            st.max_batch = std::max(st.max_batch, n);
                            st.events += n;
                            sizes.push_back(n);
                            ++st.writes;
                            ++st.syncs;
                          })
                   .build();
      d.start();
      auto& pub = d.publisher();
      const auto t0 = clock::now();
      const auto deadline = t0 + journal_run;
      while (clock::now() < deadline) {
        auto c = pub.reserve(publish_claim);
        for (auto [seq, ev] : c) ev.seq = seq;
        c.publish();
      }
      d.drain();
      st.seconds = rondo_bench::seconds_between(t0, clock::now());
    } catch (const std::exception& e) {
      st.error = e.what();
    }
    if (st.error.empty() && !check.ok(st.events)) st.error = "the journal saw wrong events";
    if (!st.error.empty()) {
      state.SkipWithError(st.error.c_str());
      return;
    }
    st.report(state, dir);
    const double events_per_s = static_cast<double>(st.events) / st.seconds;
    if (!poll_file_io) {
      rondo_journal_events_per_s = events_per_s;
      rondo_journal_batches = std::move(sizes);
    } else {
      if (raw_replay_events_per_s > 0) {
        state.counters["rondo/raw"] = events_per_s / raw_replay_events_per_s;
      }
      if (rondo_journal_events_per_s > 0) {
        state.counters["vs_default"] = events_per_s / rondo_journal_events_per_s;
      }
    }
  }
}

}  // namespace

void journal_rondo(benchmark::State& state) { run_journal_rondo(state, false); }
void journal_rondo_polling(benchmark::State& state) { run_journal_rondo(state, true); }

// The same file traffic by hand: writev(batch) then fdatasync, each awaited, in a loop.
// replay: journal_rondo's batch sizes, in order (from the start again if this row gets
// further); steady: every batch of journal_rondo's mean size. 2,048 each when that row did not
// run.
void journal_raw_uring(benchmark::State& state, bool replay) {
  const std::string dir = journal_dir();
  const std::pair<int, int> cpus = rondo_bench::pair_cpus();
  const rondo_bench::scoped_pin pin(cpus.second);  // where rondo's context ran
  std::vector<std::int64_t> batches{2048};
  if (!rondo_journal_batches.empty()) {
    std::int64_t total = 0;
    for (const std::int64_t b : rondo_journal_batches) total += b;
    if (replay) {
      batches = rondo_journal_batches;
    } else {
      batches = {total / static_cast<std::int64_t>(rondo_journal_batches.size())};
    }
  }
  const std::int64_t largest = *std::max_element(batches.begin(), batches.end());
  for (auto _ : state) {
    temp_file f(dir);
    if (!f.error.empty()) {
      state.SkipWithError(f.error.c_str());
      return;
    }
    io_uring ring{};
    const int err = init_ring(ring, 8);
    if (err != 0) {
      state.SkipWithError(errno_text("io_uring_queue_init", -err).c_str());
      return;
    }
    std::vector<journal_event> buf(static_cast<std::size_t>(largest));
    journal_stats st;
    std::uint64_t offset = 0;
    std::int64_t next = 0;
    std::size_t k = 0;
    const auto t0 = clock::now();
    const auto deadline = t0 + journal_run;
    while (clock::now() < deadline) {
      const std::int64_t batch = batches[k];
      k = k + 1 == batches.size() ? 0 : k + 1;
      const std::size_t bytes = static_cast<std::size_t>(batch) * sizeof(journal_event);
      for (std::int64_t i = 0; i < batch; ++i) buf[static_cast<std::size_t>(i)].seq = next++;
      if (offset + bytes > journal_wrap) offset = 0;
      ::iovec iov{};
      iov.iov_base = buf.data();
      iov.iov_len = bytes;
      io_uring_prep_writev(next_sqe(ring), f.fd, &iov, 1, offset);
      const int w = submit_one(ring);
      io_uring_prep_fsync(next_sqe(ring), f.fd, IORING_FSYNC_DATASYNC);
      const int s = submit_one(ring);
      if (w != static_cast<int>(bytes) || s < 0) {
        st.error = w < 0 ? errno_text("writev", -w) : s < 0 ? errno_text("fdatasync", -s) : "short writev";
        break;
      }
      offset += bytes;
      st.bytes += bytes;
      st.events += batch;
      ++st.writes;
      ++st.syncs;
    }
    st.seconds = rondo_bench::seconds_between(t0, clock::now());
    io_uring_queue_exit(&ring);
    if (!st.error.empty()) {
      state.SkipWithError(st.error.c_str());
      return;
    }
    st.report(state, dir);
    const double events_per_s = static_cast<double>(st.events) / st.seconds;
    if (replay) raw_replay_events_per_s = events_per_s;
    if (rondo_journal_events_per_s > 0) {
      state.counters["rondo/raw"] = rondo_journal_events_per_s / events_per_s;
    }
  }
}

}  // namespace rondo_io_bench
