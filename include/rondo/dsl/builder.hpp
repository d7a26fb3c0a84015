#pragma once
// disruptor<T>::builder: configures a disruptor (capacity, producers, wait strategy, stages and
// their order, where coroutine stages run), validates the topology and builds it; with after()
// and placement, the words it takes.

#include <rondo/core/batch_processor.hpp>
#include <rondo/core/event_handler.hpp>
#include <rondo/core/ring_buffer.hpp>
#include <rondo/core/sequence.hpp>
#include <rondo/core/sequencer.hpp>
#include <rondo/core/wait_strategy.hpp>
#include <rondo/coro/scheduler.hpp>
#include <rondo/dsl/coro_stage.hpp>
#include <rondo/dsl/disruptor.hpp>
#include <rondo/dsl/disruptor_state.hpp>
#include <rondo/dsl/publisher.hpp>
#include <rondo/dsl/stage_runner.hpp>
#include <rondo/dsl/thread_runner.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace rondo {

/// The stages a stage runs after: `rondo::after("decode", "match")`.
struct after_t {
  std::vector<std::string> names;
};
template <class... Names>
[[nodiscard]] after_t after(Names&&... names) {
  return after_t{{std::string(std::forward<Names>(names))...}};
}

/// How disruptor::builder::executor() spreads stages that have no .on() (see placement()).
enum class placement : std::uint8_t {
  colocate,    ///< light stages on scheduler 0, stage_options::heavy ones round-robin on the rest
  round_robin  ///< every stage in turn, in the order added
};

/// Configures and builds a disruptor. Every error is reported by build() as
/// std::invalid_argument naming the offending value or stage.
template <class T>
class disruptor<T>::builder {
 public:
  builder() = default;
  builder(builder&&) noexcept = default;
  builder& operator=(builder&&) noexcept = default;
  // Handlers are moved into the disruptor at build(): copies would share them.
  builder(const builder&) = delete;
  builder& operator=(const builder&) = delete;

  /// Ring capacity: a power of two >= 1 (default 1024).
  builder& capacity(std::int64_t n) {
    capacity_ = n;
    return *this;
  }
  /// producer_type::single (default: one producing thread) or producer_type::multi.
  builder& producers(producer_type p) {
    producers_ = p;
    return *this;
  }
  /// The wait strategy of every stage and of producers waiting for capacity. Default:
  /// spin_then_suspend{} (spin, yield, then suspend or sleep; docs/tuning.md says why it is not
  /// busy_spin, which collapses when producers and stages outnumber the cores).
  builder& wait(wait_config w) {
    wait_ = w;
    return *this;
  }
  /// Per-stage counters (default off).
  builder& metrics(bool on = true) {
    metrics_ = on;
    return *this;
  }
  /// Slot stamps (core/slot_stamp.hpp): `member` is the event's rondo::slot_stamp. Each publish
  /// writes the slots' sequences into it, and the stages right behind the producer wait on the
  /// slot instead of the cursor: one cache line per hop instead of two (the ping-pong round trip
  /// at ~1.2x of two plain atomics instead of ~2.3x; docs/tuning.md, "Latency"). Costs a store
  /// per published slot. Single producer only: build() throws std::invalid_argument with
  /// producer_type::multi, or for a null member.
  builder& stamps(stamp_member_t<T> member)
    requires std::is_class_v<T>
  {
    stamp_ = member;
    stamps_set_ = true;
    return *this;
  }
  /// Constructs slot i as factory(i) instead of default construction.
  builder& event_factory(std::function<T(std::int64_t)> f) {
    factory_ = std::move(f);
    return *this;
  }

  /// A stage calling handler(event, sequence, end_of_batch) for every event, after the stages
  /// named in `deps` (none: right after the producers). It runs on a thread of its own, unless
  /// .on(scheduler) follows: then it is a coroutine on that scheduler.
  template <class H>
    requires event_handler<H, T>
  builder& stage(std::string name, H handler, after_t deps = {}, stage_options opts = {}) {
    return add_stage<H, detail::coro_kind::sync>(std::move(name), std::move(handler),
                                                 std::move(deps), std::move(opts));
  }

  /// An async batch stage: `task<> handler(rondo::batch<T>)` is awaited once per batch and the
  /// stage's sequence advances only when its task completes (stages after it see only completed
  /// work). A coroutine stage: .on(scheduler) must follow. The handler's frame is recycled per
  /// batch (steady state allocates nothing).
  template <class H>
    requires(async_batch_handler<H, T> && !event_handler<H, T>)
  builder& stage(std::string name, H handler, after_t deps = {}, stage_options opts = {}) {
    return add_stage<H, detail::coro_kind::async>(std::move(name), std::move(handler),
                                                        std::move(deps), std::move(opts));
  }

  /// A pull-loop stage: `task<> handler(rondo::consumer<T>& in)` runs once and loops on
  /// `co_await in.next()` until it yields nothing. A coroutine stage: .on(scheduler) must follow.
  template <class H>
    requires(pull_handler<H, T> && !event_handler<H, T> && !async_batch_handler<H, T>)
  builder& stage(std::string name, H handler, after_t deps = {}, stage_options opts = {}) {
    return add_stage<H, detail::coro_kind::pull>(std::move(name), std::move(handler),
                                                       std::move(deps), std::move(opts));
  }

  template <class H>
    requires(event_handler<H, T> || async_batch_handler<H, T> || pull_handler<H, T>)
  builder& stage(std::string name, H handler, stage_options opts) {
    return stage(std::move(name), std::move(handler), after_t{}, std::move(opts));
  }

  /// Runs the stage added last as a coroutine on `s` (its waits spin, yield, then suspend per
  /// the spin_then_suspend policy, and resume on `s`). `s` must outlive the disruptor. Throws
  /// std::logic_error if no stage was added yet or the last one is a poller.
  builder& on(scheduler_ref s) {
    if (!specs_.empty()) specs_.back().pool_index.reset();
    if (specs_.empty()) throw std::logic_error("disruptor::builder::on(): add a stage() first");
    if (specs_.back().is_poller) {
      throw std::logic_error(fmt::format(
          "disruptor::builder::on(): '{}' is a poller; its owner drives it", specs_.back().name));
    }
    specs_.back().sched = s;
    return *this;
  }

  /// Runs the stage added last as a coroutine on scheduler i of the executor (see executor()).
  /// build() throws std::invalid_argument when i is out of range. Throws std::logic_error if no
  /// stage was added yet or the last one is a poller.
  builder& on(std::size_t i) {
    (void)on(scheduler_ref{});
    specs_.back().pool_index = i;
    return *this;
  }

  /// A pool of schedulers (the contexts of a rondo::runtime, say) for coroutine stages: every
  /// handler stage without an explicit .on() becomes a coroutine on the pool, placed by
  /// `placement()` (by default: light stages together on the first scheduler, heavy ones —
  /// stage_options::heavy — round-robin over the others); .on(i) picks pool entry i. The
  /// schedulers must outlive the disruptor. Throws std::invalid_argument for an empty pool.
  builder& executor(std::vector<scheduler_ref> pool) {
    if (pool.empty()) throw std::invalid_argument("disruptor::builder::executor(): empty pool");
    pool_ = std::move(pool);
    return *this;
  }
  /// Anything with schedulers() (rondo::runtime): `.executor(rt)`.
  template <class E>
    requires requires(E& e) {
      { e.schedulers() } -> std::convertible_to<std::vector<scheduler_ref>>;
    }
  builder& executor(E& e) {
    return executor(std::vector<scheduler_ref>(e.schedulers()));
  }

  /// How stages without .on() are spread over the executor pool (docs/tuning.md, "Placement"):
  /// placement::colocate (the default: every hop between schedulers moves the event's cache
  /// lines between cores, so light stages share scheduler 0 and only stage_options::heavy
  /// stages go round-robin over schedulers 1..n-1) or placement::round_robin (every stage in
  /// turn, in the order added).
  builder& placement(rondo::placement p) noexcept {
    placement_ = p;
    return *this;
  }

  /// A stage driven by the user's calls to disruptor::poller(name).poll(handler).
  builder& poller(std::string name, after_t deps = {}) {
    specs_.push_back(spec{std::move(name), std::move(deps.names),
                          [](ring_buffer<T>& ring, const sequencer& seqr,
                             std::vector<const sequence*> d, const std::string&, bool metrics,
                             scheduler_ref) -> std::unique_ptr<detail::stage_runner> {
                            return std::make_unique<detail::poller_stage_runner<T>>(
                                ring, seqr, std::move(d), metrics);
                          },
                          {}, true, false, std::nullopt});
    return *this;
  }

  /// Validates the topology and builds the disruptor (not started). Throws
  /// std::invalid_argument for: a capacity that is not a power of two, no stages, an empty or
  /// duplicate stage name, a dependency on an unknown stage, a dependency cycle. A builder builds
  /// once (std::logic_error after).
  disruptor build() {
    if (used_) throw std::logic_error("disruptor::builder::build(): this builder was already used");
    detail::validate_capacity(capacity_);
    if (specs_.empty()) {
      throw std::invalid_argument("disruptor has no stages: add at least one stage() or poller()");
    }
    if (stamps_set_ && stamp_ == nullptr) {
      throw std::invalid_argument("builder::stamps(): the stamp member is a null pointer");
    }
    if (stamp_ != nullptr && producers_ != producer_type::single) {
      throw std::invalid_argument(
          "builder::stamps() needs producer_type::single: several producers publish out of "
          "order and give claims back as tombstones, which carry no stamp");
    }
    std::map<std::string, std::size_t, std::less<>> index;
    std::size_t round_robin = 0;
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      if (specs_[i].name.empty()) {
        throw std::invalid_argument(fmt::format("stage #{} has an empty name", i));
      }
      if (specs_[i].pool_index) {
        const std::size_t k = *specs_[i].pool_index;
        if (k >= pool_.size()) {
          throw std::invalid_argument(
              fmt::format("stage '{}': .on({}) but the executor has {} schedulers{}",
                          specs_[i].name, k, pool_.size(),
                          pool_.empty() ? " (call .executor() first)" : ""));
        }
        specs_[i].sched = pool_[k];
      } else if (!specs_[i].sched && !specs_[i].is_poller && !pool_.empty()) {
        if (placement_ == rondo::placement::round_robin) {
          specs_[i].sched = pool_[round_robin++ % pool_.size()];
        } else if (!specs_[i].heavy || pool_.size() == 1) {
          specs_[i].sched = pool_[0];
        } else {
          specs_[i].sched = pool_[1 + round_robin++ % (pool_.size() - 1)];
        }
      }
      if (specs_[i].needs_scheduler && !specs_[i].sched) {
        throw std::invalid_argument(fmt::format(
            "stage '{}' has a coroutine handler but no scheduler: call .on(s) after .stage()",
            specs_[i].name));
      }
      if (!index.emplace(specs_[i].name, i).second) {
        throw std::invalid_argument(fmt::format("duplicate stage name '{}'", specs_[i].name));
      }
    }
    std::vector<std::vector<std::size_t>> deps(specs_.size());
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      for (const auto& d : specs_[i].deps) {
        auto it = index.find(d);
        if (it == index.end()) {
          throw std::invalid_argument(
              fmt::format("stage '{}' runs after unknown stage '{}'", specs_[i].name, d));
        }
        if (std::find(deps[i].begin(), deps[i].end(), it->second) == deps[i].end()) {
          deps[i].push_back(it->second);
        }
      }
    }
    const std::vector<std::size_t> order = topological_order(deps);

    used_ = true;
    auto st = std::make_unique<state>(wait_, capacity_, producers_, factory_, stamp_);
    std::vector<std::size_t> slot(specs_.size());
    std::vector<bool> has_dependent(specs_.size(), false);
    for (std::size_t i : order) {
      std::vector<const sequence*> dep_seqs;
      for (std::size_t d : deps[i]) {
        dep_seqs.push_back(&st->runners[slot[d]]->position());
        has_dependent[d] = true;
      }
      slot[i] = st->runners.size();
      st->names.push_back(specs_[i].name);
      st->schedulers.push_back(specs_[i].sched);
      st->runners.push_back(
          specs_[i].make(st->ring, *st->seqr, std::move(dep_seqs), specs_[i].name, metrics_,
                         specs_[i].sched));
      st->runners.back()->set_close_token(&st->closing_token);
      // Right behind the producer: wait on the slots, not the cursor.
      if (stamp_ != nullptr && deps[i].empty()) {
        st->runners.back()->barrier().use_stamps(st->ring.stamps());
      }
    }
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      if (!has_dependent[i]) st->seqr->add_gating_sequence(st->runners[slot[i]]->position());
    }
    return disruptor(std::move(st));
  }

 private:
  using factory_fn = std::function<std::unique_ptr<detail::stage_runner>(
      ring_buffer<T>&, const sequencer&, std::vector<const sequence*>, const std::string&, bool,
      scheduler_ref)>;
  struct spec {
    std::string name;
    std::vector<std::string> deps;
    factory_fn make;
    scheduler_ref sched;  // set by on(): a coroutine stage
    bool is_poller = false;
    bool needs_scheduler = false;  // async and pull-loop handlers
    std::optional<std::size_t> pool_index;  // set by on(i): entry i of the executor's pool
    bool heavy = false;                     // stage_options::heavy (placement)
  };

  // Every handler stage: a coroutine when it has a scheduler (set by on()), else, for a sync
  // handler, a thread of its own. Async and pull-loop handlers need a scheduler (build() checks).
  template <class H, detail::coro_kind K>
  builder& add_stage(std::string name, H handler, after_t deps, stage_options opts) {
    auto h = std::make_shared<H>(std::move(handler));
    specs_.push_back(spec{std::move(name), std::move(deps.names),
                          [h, opts](ring_buffer<T>& ring, const sequencer& seqr,
                                    std::vector<const sequence*> d, const std::string& n,
                                    bool metrics,
                                    scheduler_ref s) -> std::unique_ptr<detail::stage_runner> {
                            if constexpr (K == detail::coro_kind::sync) {
                              if (!s) {
                                return std::make_unique<detail::thread_stage_runner<T, H>>(
                                    ring, seqr, std::move(d), std::move(*h), opts, n, metrics);
                              }
                            }
                            return std::make_unique<detail::coro_stage_runner<T, H, K>>(
                                ring, seqr, std::move(d), std::move(*h), opts, n, metrics, s);
                          },
                          {}, false, K != detail::coro_kind::sync, std::nullopt, opts.heavy});
    return *this;
  }

  // Depth-first topological sort; a back edge is a cycle, reported with its path.
  std::vector<std::size_t> topological_order(const std::vector<std::vector<std::size_t>>& deps) const {
    enum class mark : std::uint8_t { none, active, done };
    std::vector<mark> marks(deps.size(), mark::none);
    std::vector<std::size_t> order;
    std::vector<std::size_t> path;
    std::function<void(std::size_t)> visit = [&](std::size_t i) {
      if (marks[i] == mark::done) return;
      if (marks[i] == mark::active) {
        std::string cycle;
        auto from = std::find(path.begin(), path.end(), i);
        for (auto it = from; it != path.end(); ++it) {
          fmt::format_to(std::back_inserter(cycle), "{} -> ", specs_[*it].name);
        }
        throw std::invalid_argument(fmt::format("dependency cycle: {}{}", cycle, specs_[i].name));
      }
      marks[i] = mark::active;
      path.push_back(i);
      for (std::size_t d : deps[i]) visit(d);
      path.pop_back();
      marks[i] = mark::done;
      order.push_back(i);
    };
    for (std::size_t i = 0; i < deps.size(); ++i) visit(i);
    return order;
  }

  std::int64_t capacity_ = 1024;
  producer_type producers_ = producer_type::single;
  wait_config wait_ = spin_then_suspend{};
  bool metrics_ = false;
  std::function<T(std::int64_t)> factory_;
  stamp_member_t<T> stamp_ = nullptr;  // stamps(): the events' stamp member
  bool stamps_set_ = false;
  std::vector<scheduler_ref> pool_;  // executor(): where stages without .on(s) run
  rondo::placement placement_ = rondo::placement::colocate;
  std::vector<spec> specs_;
  bool used_ = false;
};

}  // namespace rondo
