// Fuzz target: disruptor<T>::builder's validation. The input describes a random topology and
// random settings: a capacity (valid powers of two up to 4096, or values that are not), a
// producer type, a wait strategy, up to 6 stages of every kind (thread, coroutine on a
// scheduler, async batch, poller) with names from a small set (empty and duplicate names
// included), dependencies on any name (unknown ones and cycles included), .on(i) indices in and
// out of range, an executor pool or none, stage options with negative values.
//
// A model written here, independently of the builder, says whether the configuration is valid.
// The invariants: a valid one builds (and a second build() is a std::logic_error); an invalid
// one makes build() throw std::invalid_argument with a message, never another exception, never
// a crash (ASan, UBSan). Nothing is started: the target checks validation, not running stages.
#include <rondo/rondo.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

[[noreturn]] void broken(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "dsl_builder_fuzz: invariant broken: %s %s\n", what, detail.c_str());
  std::abort();
}

// Reads the input a byte at a time; zeros once it runs out.
struct bytes {
  const std::uint8_t* p;
  std::size_t n;
  std::uint8_t next() noexcept {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
};

enum class kind : std::uint8_t { thread, coroutine_on, async_on, async_pool, poller };

struct stage_plan {
  std::string name;
  kind k = kind::thread;
  std::vector<std::string> deps;
  std::size_t on = 0;  // coroutine_on / async_on: pool index
  rondo::stage_options opts;
};

const char* const names[] = {"decode", "journal", "match", "reply", "audit", "x", ""};

std::int64_t pick_capacity(std::uint8_t b, bytes& in) {
  if (b < 200) return std::int64_t{1} << (b % 13);  // 1 .. 4096: valid
  switch (b % 8) {
    case 0:
      return 0;
    case 1:
      return -1;
    case 2:
      return 3;
    case 3:
      return 1000;
    case 4:
      return std::numeric_limits<std::int64_t>::min();
    case 5:
      return (std::int64_t{1} << 41);  // a power of two above the maximum
    case 6:
      return std::numeric_limits<std::int64_t>::max();
    default:
      return 4096 + 1 + in.next();
  }
}

bool valid_capacity(std::int64_t c) {
  return c >= 1 && c <= (std::int64_t{1} << 40) && (c & (c - 1)) == 0;
}

// The model: true when the builder must accept the plan.
bool model_valid(std::int64_t capacity, const std::vector<stage_plan>& stages, std::size_t pool) {
  if (!valid_capacity(capacity) || stages.empty()) return false;
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < stages.size(); ++i) {
    const stage_plan& s = stages[i];
    if (s.name.empty()) return false;
    if ((s.k == kind::coroutine_on || s.k == kind::async_on) && s.on >= pool) return false;
    if (s.k == kind::async_pool && pool == 0) return false;  // a coroutine with no scheduler
    if (!index.emplace(s.name, i).second) return false;      // duplicate
    if (s.opts.max_batch < 0 || s.opts.linger_below < 0) return false;
  }
  std::vector<std::vector<std::size_t>> deps(stages.size());
  for (std::size_t i = 0; i < stages.size(); ++i) {
    for (const std::string& d : stages[i].deps) {
      const auto it = index.find(d);
      if (it == index.end()) return false;  // unknown
      deps[i].push_back(it->second);
    }
  }
  // A cycle (a stage after itself included): depth-first search with three colours.
  std::vector<int> colour(stages.size(), 0);
  const auto cyclic = [&](auto&& self, std::size_t v) -> bool {
    colour[v] = 1;
    for (std::size_t w : deps[v]) {
      if (colour[w] == 1) return true;
      if (colour[w] == 0 && self(self, w)) return true;
    }
    colour[v] = 2;
    return false;
  };
  for (std::size_t v = 0; v < stages.size(); ++v) {
    if (colour[v] == 0 && cyclic(cyclic, v)) return false;
  }
  return true;
}

// Named handlers: g++ 12 gives two coroutine lambdas in one extern "C" function the same
// symbol.
struct sync_noop {
  void operator()(std::int64_t&, std::int64_t, bool) const noexcept {}
};
struct async_noop {
  rondo::task<> operator()(rondo::batch<std::int64_t>) const { co_return; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  bytes in{data, size};
  const std::int64_t capacity = pick_capacity(in.next(), in);
  const auto producers =
      (in.next() & 1) != 0 ? rondo::producer_type::multi : rondo::producer_type::single;
  rondo::wait_config wait;
  switch (in.next() % 5) {
    case 0:
      wait = rondo::busy_spin{};
      break;
    case 1:
      wait = rondo::yielding{};
      break;
    case 2:
      wait = rondo::sleeping{};
      break;
    case 3:
      wait = rondo::blocking{};
      break;
    default:
      wait = rondo::spin_then_suspend{};
      break;
  }
  const std::size_t pool = in.next() % 3;  // executor pool size (0: no executor)
  const std::size_t count = in.next() % 7;
  std::vector<stage_plan> stages(count);
  for (stage_plan& s : stages) {
    s.name = names[in.next() % std::size(names)];
    s.k = static_cast<kind>(in.next() % 5);
    const std::size_t ndeps = in.next() % 4;
    for (std::size_t d = 0; d < ndeps; ++d)
      s.deps.emplace_back(names[in.next() % std::size(names)]);
    s.on = in.next() % 4;
    const std::uint8_t o = in.next();
    s.opts.max_batch = (o & 0x0f) == 0x0f ? -1 : o % 8;
    s.opts.linger_below = (o & 0xf0) == 0xf0 ? -1 : 0;
    s.opts.heavy = (o & 0x10) != 0;
  }
  // Pollers take no stage options.
  for (stage_plan& s : stages) {
    if (s.k == kind::poller) s.opts = {};
  }

  std::vector<rondo::manual_scheduler> schedulers(2);
  std::vector<rondo::scheduler_ref> refs;
  for (std::size_t i = 0; i < pool; ++i) refs.emplace_back(schedulers[i]);

  auto b = rondo::disruptor<std::int64_t>::builder();
  b.capacity(capacity).producers(producers).wait(wait).metrics((size & 1) != 0);
  if (!refs.empty()) b.executor(refs);
  for (const stage_plan& s : stages) {
    rondo::after_t deps{s.deps};
    switch (s.k) {
      case kind::thread:
        b.stage(s.name, sync_noop{}, deps, s.opts);
        break;
      case kind::coroutine_on:
        b.stage(s.name, sync_noop{}, deps, s.opts).on(s.on);
        break;
      case kind::async_on:
        b.stage(s.name, async_noop{}, deps, s.opts).on(s.on);
        break;
      case kind::async_pool:
        b.stage(s.name, async_noop{}, deps, s.opts);
        break;
      case kind::poller:
        b.poller(s.name, deps);
        break;
    }
  }
  // A thread stage is valid without a pool; with one it becomes a coroutine on it. Its
  // validity does not depend on the pool, and neither does a poller's.
  const bool expect_ok = model_valid(capacity, stages, pool);
  try {
    auto d = b.build();
    if (!expect_ok) broken("an invalid configuration was built");
    try {
      (void)b.build();
      broken("a second build() succeeded");
    } catch (const std::logic_error& e) {
      if (dynamic_cast<const std::invalid_argument*>(&e) != nullptr) {
        broken("a second build() is not a logic_error", e.what());
      }
    }
  } catch (const std::invalid_argument& e) {
    if (expect_ok) broken("a valid configuration was refused:", e.what());
    if (std::string(e.what()).empty()) broken("an error without a message");
  }
  // Anything else escapes: libFuzzer reports an uncaught exception as a crash.
  return 0;
}
