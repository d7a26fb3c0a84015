#!/usr/bin/env bash
# The coroutine-path rows of the README ("Coroutine stages and waits"), from one or two builds in
# one run: each row runs for every build given, one after the other, so that old and new (or two
# compilers) see the same machine minutes.
#
#   bash bench/coroutine_rows.sh build/release                    # this tree
#   bash bench/coroutine_rows.sh OLD/build/release build/release  # before / after, interleaved
#
# Rows: one_to_one (thread stage vs coroutine stage that parks, batch 1 and 32), reserve +
# publish (thread, thread through references like the coroutine, co_await, with and without a
# stage parked elsewhere), ping-pong with the one-way wake-up (echo stage
# as a thread, a spinning coroutine, a parked coroutine whose executor polls, one whose executor
# sleeps), the runtime pipeline with 3 and 6 stages under each placement, and the idle CPU of a
# runtime with 6 parked stages, and the wake-up latency of a sleeping context beside a raw futex
# round trip. Output: Google Benchmark's console lines (medians of REPETITIONS=3 where the rows
# are throughputs), prefixed by the build.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [BUILD_DIR...]" >&2; exit 2; }

rows=(
  "one_to_one_bench|one_to_one_rondo_(dsl/batch:(1|32)/events:[0-9]+/linger:0|coro_sync|coro_async)"
  "reserve_publish_bench|reserve_publish_(publisher_claim|thread_by_reference|coroutine)"
  "ping_pong_bench|ping_pong_(harness_atomics|rondo_dsl|rondo_coroutine)"
  "pipeline_bench|pipeline_rondo_runtime/batch:32/events:[0-9]+/stages:(3|6)/coro_producer:1/placement:[0-3]/ring:16384"
  "pipeline_bench|idle_parked_stages"
  "io_bench|wakeup_(futex|rondo)"
)
# Medians over repetitions for the throughput rows (batch-1 rows swing run to run on 2 cores).
reps=${REPETITIONS:-3}

for row in "${rows[@]}"; do
  bin=${row%%|*}
  filter=${row#*|}
  for build in "$@"; do
    if [ ! -x "$build/bench/$bin" ]; then
      echo "[$build] $bin: not built" >&2
      continue
    fi
    extra=()
    case "$bin" in
      one_to_one_bench|reserve_publish_bench|pipeline_bench)
        [ "$filter" = idle_parked_stages ] ||
          extra=(--benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true) ;;
    esac
    "$build/bench/$bin" --benchmark_filter="$filter" "${extra[@]}" 2>/dev/null |
      grep -E '^(one_to_one|reserve_publish|ping_pong|pipeline|idle|wakeup)' |
      grep -vE '_(mean|stddev|cv)( |$)' | sed "s|^|[$build] |" || true
  done
done
