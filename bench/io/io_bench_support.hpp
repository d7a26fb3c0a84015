#pragma once
// io_bench's shared helpers: error texts and raw rings set up like rondo's. The rows themselves
// are declared in io_bench_rows.hpp.
#include "../bench_support.hpp"

#include <rondo/coro/detached.hpp>

#include <liburing.h>

#include <chrono>
#include <string>

namespace rondo_io_bench {

using namespace std::chrono_literals;
using rondo_bench::clock;

using rondo::detached;  // fire-and-forget: the O_DIRECT writes start at once

std::string errno_text(const char* what, int err);

// Sets up a ring with the flags rondo's io_context asks for, in the same order of preference
// (SINGLE_ISSUER | DEFER_TASKRUN, else COOP_TASKRUN), so raw and rondo rings behave alike.
// Returns 0 or -errno. The ring belongs to the calling thread.
int init_ring(io_uring& ring, unsigned entries);

// A free SQE, submitting what is queued when the SQ is full.
io_uring_sqe* next_sqe(io_uring& ring);

// Submits and waits for the single operation in flight; returns its result.
int submit_one(io_uring& ring);

}  // namespace rondo_io_bench
