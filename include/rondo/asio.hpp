#pragma once
// rondo::asio (CMake target rondo::asio, built when Boost is found): rondo inside a Boost.Asio
// program. Two pieces:
//
//  1. driver: an asio::io_context drives a rondo::io_context. The rondo context's wait handle
//     (an eventfd) is wrapped in a posix::stream_descriptor; Asio waits for it to become
//     readable together with its own sockets and timers, and on readiness the driver runs
//     rondo's poll() and waits again.
//  2. completion-token operations: rondo's waits from Asio code (callbacks, use_awaitable,
//     use_future, ...): async_reserve(publisher, n, token), async_wait_for_position(d, stage,
//     seq, token), async_drain(d, token). Asio's own convention names them: the `async_`
//     prefix marks the completion-token form (docs/naming.md).
//
// Theory of operation (the driver)
//
//   Asio thread == the rondo context's owner (one thread runs both)
//
//     step():  finish_wait() if a wait was announced
//              poll()                       run ready coroutines, submit, reap; never blocks
//              prepare_wait() ─ true  ──▶   async_wait(wait_read) on the eventfd; Asio goes on
//                             │             with its own handlers and sleeps in epoll when it
//                             │             has none; readiness ──▶ step()
//                             └ false ──▶   post(step): work is ready; Asio's own handlers get
//                                           their turn first (no loop inside one handler)
//
//   Nothing is lost: between prepare_wait() and the readiness handler, every way work reaches
//   the rondo context makes the eventfd readable — another thread's post() or stop() (the
//   Dekker handshake of docs/wakeup-protocol.md), an I/O completion (the eventfd is registered
//   with the ring), a parked coroutine wait becoming ready (announced by prepare_wait()), and a
//   post() or spawn() from one of Asio's handlers on this very thread (io_context::post rings
//   the doorbell while a foreign loop waits). Asio registers descriptors edge-triggered; only
//   this thread runs the Asio context, so no epoll_wait can consume an edge between the
//   handler's poll() and its next async_wait: an edge seen while no wait is pending belongs to
//   work that the next poll() runs anyway. No busy loop: with nothing ready the driver has
//   exactly one async_wait pending and runs nothing until the eventfd is written.
//
// The operations: each first tries rondo's never-waiting form on the calling thread (a free
// slot, a stage already past the sequence) and then completes through asio::post to the
// handler's associated executor (Asio's rule: never inside the initiating call). Otherwise the
// wait runs as a rondo coroutine spawned on the driver's rondo context (spin, park, resume as
// any coroutine wait) and completes the same way. Which driver: the one attached to the Asio
// execution context of the handler's associated executor (a handler without one: the driver
// of the calling thread).
//
// Completion signatures carry std::exception_ptr first (Asio's convention for errors that are
// exceptions): use_awaitable rethrows it at the co_await, a callback gets it. Cancellation: an
// overload takes a std::stop_token (Boost 1.74's Asio has no per-operation cancellation
// slots); a cancelled wait completes with boost::system::system_error(operation_aborted).
//
// Namespace rondo::asio_bridge, not rondo::asio: with `namespace asio = boost::asio;` (the
// usual alias) and `using namespace rondo;`, a rondo::asio would make every `asio::` ambiguous.

#include <rondo/asio/driver.hpp>
#include <rondo/asio/operations.hpp>
