#pragma once
// What a stage does when its handler throws.

#include <fmt/format.h>

#include <cstdint>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace rondo {

/// One handler failure, as given to an error callback.
struct stage_failure {
  std::string_view stage;  ///< the stage's name
  std::int64_t sequence;   ///< the event's sequence
  std::exception_ptr error;
};

/// Per-stage policy for exceptions thrown by a handler.
///  - halt (default): the stage records the failure and the whole disruptor stops; drain() and
///    join() rethrow it as rondo::stage_error naming the stage and sequence.
///  - skip: the event counts as handled (metrics count it in errors_skipped) and the stage goes on.
///  - call(fn): fn(failure) runs on the stage's thread; if it returns, the event is skipped; if
///    it throws, the stage halts with what it threw.
///  - rewind(n): the batch is handled again from its first event (the handler sees the events
///    before the failed one again: make it idempotent), up to n times in a row; the n + 1st
///    failure of the same batch halts. For transient failures (an I/O error that a retry fixes).
///    Metrics count each retry in `rewinds`.
class error_policy {
 public:
  enum class kind : std::uint8_t { halt, skip, callback, rewind };

  [[nodiscard]] static error_policy halt() { return error_policy{kind::halt, {}}; }
  [[nodiscard]] static error_policy skip() { return error_policy{kind::skip, {}}; }
  /// Throws std::invalid_argument for an empty function.
  [[nodiscard]] static error_policy call(std::function<void(const stage_failure&)> fn) {
    if (!fn) throw std::invalid_argument("error_policy::call(): the callback is empty");
    return error_policy{kind::callback, std::move(fn)};
  }
  /// Throws std::invalid_argument for max_retries < 1.
  [[nodiscard]] static error_policy rewind(std::int64_t max_retries) {
    if (max_retries < 1) {
      throw std::invalid_argument(fmt::format(
          "error_policy::rewind({}): the retry limit must be at least 1", max_retries));
    }
    error_policy p{kind::rewind, {}};
    p.retries_ = max_retries;
    return p;
  }

  [[nodiscard]] kind action() const noexcept { return kind_; }
  /// rewind: how many times in a row a batch may be retried.
  [[nodiscard]] std::int64_t max_retries() const noexcept { return retries_; }

  /// Applies the policy to a failure; returns the exception to halt with, or null to go on.
  [[nodiscard]] std::exception_ptr handle(const stage_failure& f) const noexcept {
    switch (kind_) {
      case kind::skip:
        return nullptr;
      case kind::callback:
        try {
          fn_(f);
          return nullptr;
        } catch (...) {
          return std::current_exception();
        }
      case kind::rewind:  // retries are the runner's business; once they are spent: halt
      case kind::halt:
      default:
        return f.error;
    }
  }

 private:
  error_policy(kind k, std::function<void(const stage_failure&)> fn)
      : kind_(k), fn_(std::move(fn)) {}

  kind kind_;
  std::function<void(const stage_failure&)> fn_;
  std::int64_t retries_ = 0;
};

}  // namespace rondo
