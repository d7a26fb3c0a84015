#pragma once
// The shape of a thread-stage handler and its optional hooks.

#include <concepts>
#include <cstdint>

namespace rondo {

/// A handler called once per event: h(event, sequence, end_of_batch). end_of_batch is true for
/// the last event of the batch the stage took from its barrier (a good moment to flush).
template <class H, class T>
concept event_handler = std::invocable<H&, T&, std::int64_t, bool>;

namespace detail {

template <class H>
void call_on_start(H& h) {
  if constexpr (requires { h.on_start(); }) h.on_start();
}
template <class H>
void call_on_shutdown(H& h) {
  if constexpr (requires { h.on_shutdown(); }) h.on_shutdown();
}
template <class H>
void call_on_batch_start(H& h, std::int64_t size) {
  if constexpr (requires { h.on_batch_start(size); }) h.on_batch_start(size);
}
template <class H>
void call_on_timeout(H& h, std::int64_t seq) {
  if constexpr (requires { h.on_timeout(seq); }) h.on_timeout(seq);
}

}  // namespace detail
}  // namespace rondo
