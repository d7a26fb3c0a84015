#pragma once
// Umbrella header: everything a rondo user names.

#include <rondo/core/batch_processor.hpp>
#include <rondo/core/error_policy.hpp>
#include <rondo/core/errors.hpp>
#include <rondo/core/event_handler.hpp>
#include <rondo/core/event_poller.hpp>
#include <rondo/core/multi_producer_sequencer.hpp>
#include <rondo/core/ring_buffer.hpp>
#include <rondo/core/sequence.hpp>
#include <rondo/core/sequence_barrier.hpp>
#include <rondo/core/sequencer.hpp>
#include <rondo/core/single_producer_sequencer.hpp>
#include <rondo/core/stage_metrics.hpp>
#include <rondo/core/wait_strategy.hpp>
#include <rondo/disruptor.hpp>
#include <rondo/dsl/batch.hpp>
#include <rondo/dsl/coro_stage.hpp>
#include <rondo/dsl/entries.hpp>
#include <rondo/dsl/publisher.hpp>
#include <rondo/coro/barrier_wait.hpp>
#include <rondo/coro/scheduler.hpp>
#include <rondo/coro/sync_wait.hpp>
#include <rondo/coro/task.hpp>
#include <rondo/coro/wait_operation.hpp>
#include <rondo/coro/when_all.hpp>
#include <rondo/io/io_context.hpp>
