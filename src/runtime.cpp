// runtime: N io_contexts on N threads (see include/rondo/io/runtime.hpp).

#include <rondo/io/runtime.hpp>

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
    throw std::invalid_argument("rondo::runtime: cpu " + std::to_string(cpu) + " of thread " +
                                std::to_string(index) + " is beyond CPU_SETSIZE");
  }
  CPU_SET(static_cast<unsigned>(cpu), &set);
  const int err = ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
  if (err != 0) {
    throw std::system_error(err, std::system_category(),
                            "rondo::runtime: cannot pin thread " + std::to_string(index) +
                                " to cpu " + std::to_string(cpu));
  }
}

thread_local const runtime* this_thread_runtime = nullptr;
}  // namespace

runtime::runtime(runtime_options opts) {
  if (opts.threads == 0) throw std::invalid_argument("rondo::runtime: threads must be >= 1, got 0");
  for (int cpu : opts.cpus) {
    if (cpu < 0) {
      throw std::invalid_argument("rondo::runtime: cpu " + std::to_string(cpu) + " is negative");
    }
  }
  workers_.reserve(opts.threads);
  for (unsigned i = 0; i < opts.threads; ++i) workers_.push_back(std::make_unique<worker>());
  std::atomic<unsigned> ready{0};
  for (unsigned i = 0; i < opts.threads; ++i) {
    worker& w = *workers_[i];
    w.thread = std::thread([this, &w, &ready, &opts, i] {
      this_thread_runtime = this;
      std::optional<io_context> ctx;
      try {
        if (opts.pin) pin_to(opts.cpus.empty() ? static_cast<int>(i) : opts.cpus[i % opts.cpus.size()], i);
        ctx.emplace(opts.io);
      } catch (...) {
        w.setup_error = std::current_exception();
      }
      if (ctx) {
        // Release: pairs with the acquire loads in context() and below.
        w.ctx.store(&*ctx, std::memory_order_release);
      }
      // Release: pairs with the acquire load in the constructor (setup_error is visible).
      ready.fetch_add(1, std::memory_order_release);
      if (!ctx) return;
      ctx->run();
      (void)ctx->poll();  // what stop() interrupted (node already posted)
      // Relaxed: the join in stop() orders it for every reader.
      w.ctx.store(nullptr, std::memory_order_relaxed);
    });
  }
  // Acquire: pairs with the release increments above.
  while (ready.load(std::memory_order_acquire) != opts.threads) std::this_thread::yield();
  for (auto& w : workers_) {
    if (!w->setup_error) continue;
    const std::exception_ptr e = w->setup_error;
    stopping_.store(true, std::memory_order_release);
    join_all();
    std::rethrow_exception(e);
  }
}

runtime::~runtime() {
  try {
    (void)stop();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rondo::runtime: a spawned task failed: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "rondo::runtime: a spawned task failed\n");
  }
}

io_context& runtime::context(std::size_t i) const {
  if (i >= workers_.size()) {
    throw std::out_of_range("rondo::runtime::context(" + std::to_string(i) + "): the runtime has " +
                            std::to_string(workers_.size()) + " contexts");
  }
  // Acquire: pairs with the release store on the worker thread.
  io_context* c = workers_[i]->ctx.load(std::memory_order_acquire);
  if (c == nullptr) {
    throw std::logic_error("rondo::runtime::context(" + std::to_string(i) + "): stopped");
  }
  return *c;
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
    throw std::logic_error(std::string("rondo::runtime::") + what +
                           "() called from one of the runtime's own threads (it would wait on "
                           "itself)");
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

std::size_t runtime::stop(std::chrono::milliseconds grace) {
  check_not_worker("stop");
  std::size_t abandoned = 0;
  {
    const std::lock_guard lk(stop_mutex_);
    if (!stopped_) {
      stopped_ = true;
      // Release: pairs with the acquire load in spawn().
      stopping_.store(true, std::memory_order_release);
      stop_.request_stop();
      const auto until = std::chrono::steady_clock::now() + grace;
      // Acquire: pairs with the release decrement at the end of each spawned task.
      while (live_.load(std::memory_order_acquire) != 0 &&
             std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      abandoned = live_.load(std::memory_order_acquire);
      join_all();
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
