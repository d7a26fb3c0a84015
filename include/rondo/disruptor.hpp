#pragma once
// The disruptor DSL: a ring, a sequencer, and named stages arranged in a dependency graph, with
// a lifecycle (start, drain, close, join) and an error policy.
//
//   auto d = rondo::disruptor<order>::builder()
//                .capacity(4096)
//                .producers(rondo::producer_type::multi)
//                .wait(rondo::blocking{})
//                .stage("decode", decode)
//                .stage("journal", journal, rondo::after("decode"))
//                .stage("match", match, rondo::after("decode"))
//                .stage("reply", reply, rondo::after("journal", "match"))
//                .build();
//   d.start();
//   d.publisher().publish_event([](order& o, std::int64_t seq) { ... });
//   d.drain();
//
// Each stage reads a sequence only after the producers published it and every stage it runs
// after has passed it; producers gate on the terminal stages (those nobody runs after).
// Each stage runs on a thread of its own (stage runners are pluggable; coroutine stages are
// another runner).
//
// Lifecycle calls (start, drain, drain_for, close, join) are meant for one owning thread; a
// mutex makes concurrent misuse an error rather than a race. Handler failures arrive from stage
// threads at any time.
//
// Where it lives (this header includes all of it):
//   dsl/builder.hpp          disruptor<T>::builder, after(), placement
//   dsl/disruptor.hpp        the handle, disruptor<T>
//   dsl/disruptor_state.hpp  what the builder builds: lifecycle, close_report, stage_report
//   dsl/stage_runner.hpp     the stage-runner interface
//   dsl/thread_runner.hpp    thread and poller stage runners
//   dsl/coro_stage.hpp       coroutine stage runners
//   dsl/publisher.hpp        publisher<T>, coro_publisher<T>, claim<T>
//   dsl/batch.hpp            batch<T>, consumer<T> (coroutine stages' views of the ring)

#include <rondo/dsl/batch.hpp>
#include <rondo/dsl/builder.hpp>
#include <rondo/dsl/coro_stage.hpp>
#include <rondo/dsl/disruptor.hpp>
#include <rondo/dsl/disruptor_state.hpp>
#include <rondo/dsl/publisher.hpp>
#include <rondo/dsl/stage_runner.hpp>
#include <rondo/dsl/thread_runner.hpp>
