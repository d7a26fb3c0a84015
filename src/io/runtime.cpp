// runtime: N io_contexts on N threads (see include/rondo/io/runtime.hpp).

#include <rondo/io/runtime.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

#include <pthread.h>
#include <sched.h>

namespace rondo {

namespace {
void pin_to(int cpu, std::size_t index) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu >= CPU_SETSIZE) {
    throw std::invalid_argument(
        fmt::format("rondo::runtime: cpu {} of thread {} is beyond CPU_SETSIZE", cpu, index));
  }
  CPU_SET(static_cast<unsigned>(cpu), &set);
  const int err = ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
  if (err != 0) {
    throw std::system_error(err, std::system_category(),
                            fmt::format("rondo::runtime: cannot pin thread {} to cpu {}", index,
                                        cpu));
  }
}

thread_local const runtime* this_thread_runtime = nullptr;
}  // namespace

runtime::runtime(runtime_options opts) {
  if (opts.threads == 0) throw std::invalid_argument("rondo::runtime: threads must be >= 1, got 0");
  for (int cpu : opts.cpus) {
    if (cpu < 0) {
      throw std::invalid_argument(fmt::format("rondo::runtime: cpu {} is negative", cpu));
    }
  }
  workers_.reserve(opts.threads);
  for (unsigned i = 0; i < opts.threads; ++i) workers_.push_back(std::make_unique<worker>());
  std::atomic<unsigned> ready{0};
  unsigned started = 0;
  try {
    for (unsigned i = 0; i < opts.threads; ++i) {
      worker& w = *workers_[i];
      w.thread = std::thread([this, &w, &ready, &opts, i] {
        this_thread_runtime = this;
        try {
          if (opts.pin) {
            pin_to(opts.cpus.empty() ? static_cast<int>(i) : opts.cpus[i % opts.cpus.size()], i);
          }
          // In the worker, not on this thread's stack: the context outlives its thread (until
          // ~runtime), so a late post() or stop callback never touches a destroyed context.
          w.ctx_storage.emplace(opts.io);
          // Tasks spawned on the context directly (an accept loop's sessions): a failure is
          // kept for stop() like rt.spawn()'s, and the context goes on. Installed before the
          // context is published, on its owner thread.
          w.ctx_storage->on_spawn_failure(
              [this](std::exception_ptr e) { record_failure(std::move(e)); });
        } catch (...) {
          w.setup_error = std::current_exception();
        }
        io_context* ctx = w.ctx_storage ? &*w.ctx_storage : nullptr;
        // Release: pairs with the acquire loads in context() and the constructor.
        if (ctx != nullptr) w.ctx.store(ctx, std::memory_order_release);
        // Release: pairs with the acquire load in the constructor (setup_error is visible).
        ready.fetch_add(1, std::memory_order_release);
        if (ctx == nullptr) return;
        try {
          ctx->run();
          (void)ctx->poll();  // what stop() interrupted (nodes already posted)
        } catch (...) {
          // The ring failed (io_uring_submit refused): the context cannot go on. stop()
          // rethrows the failure; its tasks are abandoned.
          record_failure(std::current_exception());
        }
      });
      ++started;
    }
  } catch (...) {
    // A thread could not be created: wait for those that were, stop them, rethrow.
    // Acquire: pairs with the release increments in the threads.
    while (ready.load(std::memory_order_acquire) != started) std::this_thread::yield();
    join_all();
    throw;
  }
  // Acquire: pairs with the release increments above.
  while (ready.load(std::memory_order_acquire) != opts.threads) std::this_thread::yield();
  for (auto& w : workers_) {
    if (!w->setup_error) continue;
    const std::exception_ptr e = w->setup_error;
    // seq_cst: the Dekker pair with spawn()/block_on() (see stop()).
    stopping_.store(true, std::memory_order_seq_cst);
    join_all();
    std::rethrow_exception(e);
  }
}

runtime::~runtime() {
  try {
    (void)stop();
  } catch (const std::exception& e) {
    // std::fprintf, not fmt::print: fmt reports a failed write by throwing, and this is a
    // destructor.
    std::fprintf(stderr, "rondo::runtime: a spawned task failed: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "rondo::runtime: a spawned task failed\n");
  }
}

io_context& runtime::context(std::size_t i) const {
  if (i >= workers_.size()) {
    throw std::out_of_range(fmt::format("rondo::runtime::context({}): the runtime has {} contexts",
                                        i, workers_.size()));
  }
  // Acquire: pairs with the release store on the worker thread. Never null once constructed
  // (the context lives until ~runtime, stopped or not).
  return *workers_[i]->ctx.load(std::memory_order_acquire);
}

std::vector<scheduler_ref> runtime::schedulers() const {
  std::vector<scheduler_ref> out;
  out.reserve(size());
  for (std::size_t i = 0; i < size(); ++i) out.emplace_back(context(i));
  return out;
}

void runtime::record_failure(std::exception_ptr e) noexcept {
  const std::lock_guard lk(failure_mutex_);
  if (!failure_) failure_ = std::move(e);
}

void runtime::check_not_worker(const char* what) const {
  if (this_thread_runtime == this) {
    throw std::logic_error(fmt::format(
        "rondo::runtime::{}() called from one of the runtime's own threads (it would wait on "
        "itself)",
        what));
  }
}

void runtime::join_all() noexcept {
  for (auto& w : workers_) {
    // Acquire: pairs with the release store on the worker thread.
    if (io_context* c = w->ctx.load(std::memory_order_acquire)) c->stop();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

bool runtime::enter() noexcept {
  // seq_cst increment, then seq_cst load of `stopping_`: a Dekker pair with stop(), which
  // stores `stopping_` and then reads `live_`. Either stop() sees this job (and waits for it
  // up to its grace), or this call sees `stopping_` and backs out.
  live_.fetch_add(1, std::memory_order_seq_cst);
  if (stopping_.load(std::memory_order_seq_cst)) {
    // Release: pairs with the acquire loads of `live_` in stop().
    live_.fetch_sub(1, std::memory_order_release);
    return false;
  }
  return true;
}

void runtime::leave() noexcept {
  // Release: pairs with the acquire load in stop() (the job's effects are done).
  live_.fetch_sub(1, std::memory_order_release);
}

std::size_t runtime::stop(std::chrono::milliseconds grace) {
  check_not_worker("stop");
  std::size_t abandoned = 0;
  {
    const std::lock_guard lk(stop_mutex_);
    if (!stopped_) {
      stopped_ = true;
      // seq_cst: see enter().
      stopping_.store(true, std::memory_order_seq_cst);
      stop_.request_stop();
      const auto until = std::chrono::steady_clock::now() + grace;
      // Waits for rt.spawn()'s tasks and for those spawned on the contexts directly. One scan
      // of the contexts is not a snapshot (a task on context 1 may spawn on context 0, already
      // scanned, and end before context 1 is read), so quiet means two scans in a row that see
      // nothing running and the same number of spawns ever made.
      struct scan {
        std::size_t running = 0;
        std::uint64_t spawns = 0;
      };
      const auto take = [this] {
        scan s;
        // seq_cst: see enter(); the tasks' release decrements make their effects visible.
        s.running = live_.load(std::memory_order_seq_cst);
        for (const auto& w : workers_) {
          // Acquire: pairs with the release store in the worker thread.
          if (io_context* c = w->ctx.load(std::memory_order_acquire)) {
            s.running += c->spawned();
            s.spawns += c->spawned_total();
          }
        }
        return s;
      };
      scan last = take();
      for (;;) {
        const scan now = take();
        if (last.running == 0 && now.running == 0 && now.spawns == last.spawns) break;
        last = now;
        if (std::chrono::steady_clock::now() >= until) break;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      abandoned = last.running;
      join_all();
      // Release: pairs with the acquire load in block_on(): no job can run any more.
      joined_.store(true, std::memory_order_release);
    }
  }
  std::exception_ptr e;
  {
    const std::lock_guard lk(failure_mutex_);
    e = std::exchange(failure_, nullptr);
  }
  if (e) std::rethrow_exception(e);
  return abandoned;
}

}  // namespace rondo
