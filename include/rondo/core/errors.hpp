#pragma once
// The error types a rondo user catches.

#include <fmt/format.h>

#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

namespace rondo {

/// Thrown to a producer that reserves (or is waiting to reserve) after the disruptor was drained,
/// closed or halted by a handler failure. The claim was not granted: nothing was published.
class closed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A handler failure under the halt policy, rethrown from drain() / join(). Names the stage and
/// the sequence of the event that failed; cause() is the original exception.
class stage_error : public std::runtime_error {
 public:
  stage_error(std::string stage, std::int64_t seq, std::exception_ptr cause)
      : std::runtime_error(make_message(stage, seq, cause)),
        stage_(std::move(stage)),
        sequence_(seq),
        cause_(std::move(cause)) {}

  [[nodiscard]] const std::string& stage() const noexcept { return stage_; }
  [[nodiscard]] std::int64_t sequence() const noexcept { return sequence_; }
  [[nodiscard]] std::exception_ptr cause() const noexcept { return cause_; }

 private:
  static std::string make_message(const std::string& stage, std::int64_t seq,
                                  const std::exception_ptr& cause) {
    std::string what = "unknown exception";
    try {
      if (cause) std::rethrow_exception(cause);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    return fmt::format("stage '{}' failed at sequence {}: {}", stage, seq, what);
  }

  std::string stage_;
  std::int64_t sequence_;
  std::exception_ptr cause_;
};

}  // namespace rondo
