#pragma once
// What a stage does when its handler throws.

#include <cstdint>
#include <exception>
#include <functional>
#include <stdexcept>
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
class error_policy {
 public:
  enum class kind : std::uint8_t { halt, skip, callback };

  [[nodiscard]] static error_policy halt() { return error_policy{kind::halt, {}}; }
  [[nodiscard]] static error_policy skip() { return error_policy{kind::skip, {}}; }
  /// Throws std::invalid_argument for an empty function.
  [[nodiscard]] static error_policy call(std::function<void(const stage_failure&)> fn) {
    if (!fn) throw std::invalid_argument("error_policy::call(): the callback is empty");
    return error_policy{kind::callback, std::move(fn)};
  }

  [[nodiscard]] kind action() const noexcept { return kind_; }

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
};

}  // namespace rondo
