#!/usr/bin/env bash
# rondo::jetstream against a real 3-node JetStream cluster (R3 streams), one shard per test:
#
#   shard 0  throughput: COUNT events through source -> compute -> sink -> ack, exactly once
#   shard 1  kill -9 of a NATS node mid-stream, KILLS times (a different node each time, each
#            restarted), then: 0 lost, 0 duplicated, order kept
#   shard 2  kill -9 of the rondo process mid-stream, KILLS times, restarted each time; same check
#   shard 3  the whole cluster stopped mid-stream: the process exits 1 with the error and its
#            close report, nothing is acknowledged that is not stored; after a restart of the
#            cluster the shard completes exactly once
# and first a pull_source re-positioned after a gap: acknowledging the replaced consumer's
# messages would freeze the new consumer's ack floor (rondo_jetstream_tool reset-check)
#
# Usage: cluster_test.sh BIN_DIR (where rondo_jetstream_pipeline and rondo_jetstream_tool are).
# Environment: RONDO_JS_COUNT (default 300000; RONDO_JS_COUNT=1000000 for the million, ~2 min
# more on the 2-core VM), RONDO_JS_KILL_COUNT (200000), RONDO_JS_KILLS (5), RONDO_JS_CORE_DIR
# (where to keep the core of a process that dies of a signal; default: not kept).
# A rondo process that dies of a signal gets a post-mortem: every thread's stack from its core
# (gdb, when installed and the kernel writes cores to the working directory).
# Exits 77 (CTest: skipped) when nats-server is not installed. Everything it started is killed on
# exit, failure included.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=$(cd "${1:?usage: cluster_test.sh BIN_DIR}" && pwd)
count=${RONDO_JS_COUNT:-300000}
kill_count=${RONDO_JS_KILL_COUNT:-200000}
kills=${RONDO_JS_KILLS:-5}
# How long a run's input must stay idle before the pipeline exits. 1.5 s let a pipeline exit
# before its input was done while a loaded host held up a consumer-info request (a helper's
# 1 M loop, run 5 of 15); a longer wait costs only seconds.
idle_ms=4000
idle_s=4

if ! command -v nats-server >/dev/null 2>&1; then
  echo "SKIP: nats-server is not installed (Debian: apt-get install nats-server libnats-dev," \
       "or scripts/deps.sh); the JetStream cluster tests need it"
  exit 77
fi

work=$(mktemp -d /tmp/rondo-js-test.XXXXXX)
cluster="$work/cluster"
# Every process runs in $work, so a core ("core" or "core.<pid>" patterns) lands there.
cd "$work"
ulimit -c unlimited 2>/dev/null || true
bg=()
cleanup() {
  local rc=$?
  for p in "${bg[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  bash "$root/scripts/nats-cluster.sh" stop "$cluster" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

pipeline="$bin/rondo_jetstream_pipeline"
tool="$bin/rondo_jetstream_tool"
step() { echo; echo "== $*"; }
fail() { echo "FAIL: $*"; exit 1; }

# After a process ended with status $1 (> 128: a signal): its stacks from the newest core.
postmortem() {  # status what executable
  local rc=$1 what=$2 exe=$3 core
  (( rc > 128 )) || return 0
  echo "== post-mortem: $what died of signal $((rc - 128))"
  core=$(ls -t "$work"/core* 2>/dev/null | head -n 1 || true)
  if [[ -z "$core" ]]; then
    echo "(no core in $work: core_pattern '$(cat /proc/sys/kernel/core_pattern 2>/dev/null)'," \
         "ulimit -c $(ulimit -c))"
    return 0
  fi
  if command -v gdb >/dev/null 2>&1; then
    gdb -batch -q -ex "info threads" -ex "thread apply all bt" "$exe" "$core" 2>&1 | tail -n 400
  else
    echo "(gdb not installed: no stacks)"
  fi
  if [[ -n "${RONDO_JS_CORE_DIR:-}" ]]; then
    mkdir -p "$RONDO_JS_CORE_DIR"
    cp "$core" "$RONDO_JS_CORE_DIR/$(basename "$exe").$(date +%s).core"
    echo "core kept in $RONDO_JS_CORE_DIR (binary: $exe)"
  fi
  rm -f "$core"
}
# Runs a command in the foreground; a death by a signal gets its post-mortem. Keeps the status.
run() {  # what command...
  local what=$1 rc=0
  shift
  "$@" || rc=$?
  postmortem "$rc" "$what" "$1"
  return "$rc"
}

step "a 3-node JetStream cluster on 127.0.0.1"
bash "$root/scripts/nats-cluster.sh" start "$cluster"
urls=$(bash "$root/scripts/nats-cluster.sh" urls "$cluster")

# Waits for a background pipeline; prints its output.
wait_pipeline() {  # pid log -> its exit status in $rc
  rc=0
  wait "$1" || rc=$?
  cat "$2"
  postmortem "$rc" "the pipeline" "$pipeline"
}

step "consumer re-positioning: the replaced consumer's messages are not acknowledged to the new one"
run "reset-check" "$tool" reset-check "$urls" 0 ||
  fail "after a re-positioning the durable's ack floor does not follow the new consumer's acks"

step "shard 0: $count events, source -> compute -> sink -> ack"
run "produce" "$tool" produce "$urls" 0 "$count"
t0=$(date +%s.%N)
run "the shard 0 pipeline" "$pipeline" --servers "$urls" --shard 0 --idle-exit-ms "$idle_ms"
t1=$(date +%s.%N)
run "verify" "$tool" verify "$urls" 0 || fail "shard 0 not exactly once"
echo "shard 0: $(awk -v n="$count" -v a="$t0" -v b="$t1" -v i="$idle_s" 'BEGIN { printf "%.0f events/s end to end (process start to exit, minus the idle wait)", n / (b - a - i) }')"

step "shard 1: $kills x kill -9 of a NATS node while $kill_count events flow"
run "produce" "$tool" produce "$urls" 1 "$kill_count"
"$pipeline" --servers "$urls" --shard 1 --idle-exit-ms 8000 --give-up-ms 60000 >"$work/p1.log" 2>&1 &
p=$!
bg+=("$p")
for _ in $(seq 1 200); do [[ -s "$work/p1.log" ]] && break; sleep 0.05; done
for k in $(seq 1 "$kills"); do
  sleep "0.$((3 + RANDOM % 7))"
  node=$(( (k - 1) % 3 ))
  echo "kill -9 node $node (kill $k of $kills)"
  bash "$root/scripts/nats-cluster.sh" kill "$cluster" "$node"
  sleep 0.5
  bash "$root/scripts/nats-cluster.sh" restart "$cluster" "$node"
done
wait_pipeline "$p" "$work/p1.log"
[[ $rc -eq 0 ]] || fail "the shard 1 process did not ride through the node kills (exit $rc)"
run "verify" "$tool" verify "$urls" 1 || fail "shard 1 not exactly once after $kills node kills"

step "shard 2: $kills x kill -9 of the rondo process while $kill_count events flow"
run "produce" "$tool" produce "$urls" 2 "$kill_count"
for k in $(seq 1 "$kills"); do
  "$pipeline" --servers "$urls" --shard 2 --idle-exit-ms 0 >"$work/p2.log" 2>&1 &
  p=$!
  bg+=("$p")
  # Mid-stream: once it has started (its first line), then 0.2-1.1 s into the stream.
  for _ in $(seq 1 100); do [[ -s "$work/p2.log" ]] && break; sleep 0.05; done
  sleep "$((RANDOM % 2)).$((2 + RANDOM % 8))"
  kill -9 "$p"
  wait "$p" 2>/dev/null || true
  echo "kill -9 rondo (kill $k of $kills): $(head -n 1 "$work/p2.log")"
done
run "the shard 2 pipeline" "$pipeline" --servers "$urls" --shard 2 --idle-exit-ms "$idle_ms" | tee "$work/p2-final.log"
run "verify" "$tool" verify "$urls" 2 || fail "shard 2 not exactly once after $kills process kills"

step "shard 3: the cluster stopped mid-stream"
run "produce" "$tool" produce "$urls" 3 200000
"$pipeline" --servers "$urls" --shard 3 --idle-exit-ms 0 --give-up-ms 3000 >"$work/p3.log" 2>&1 &
p=$!
bg+=("$p")
for _ in $(seq 1 100); do [[ -s "$work/p3.log" ]] && break; sleep 0.05; done
sleep 0.5
for node in 0 1 2; do bash "$root/scripts/nats-cluster.sh" kill "$cluster" "$node"; done
wait_pipeline "$p" "$work/p3.log"
[[ $rc -eq 1 ]] || fail "the pipeline exited $rc with the cluster down (expected 1)"
grep -q "FAILED: " "$work/p3.log" || fail "no error message"
grep -q "close report: " "$work/p3.log" || fail "no close report"
for node in 0 1 2; do
  nats_pid_file="$cluster/n$node.pid"
  nats-server -c "$cluster/n$node.conf" >>"$cluster/n$node.log" 2>&1 &
  echo $! >"$nats_pid_file"
done
sleep 1
run "acked" "$tool" acked "$urls" 3 || fail "acknowledged input whose result is not stored"
run "the shard 3 pipeline after the outage" "$pipeline" --servers "$urls" --shard 3 \
  --idle-exit-ms "$idle_ms"
run "verify" "$tool" verify "$urls" 3 || fail "shard 3 not exactly once after the outage"

step "all shards again"
run "verify" "$tool" verify "$urls" 0,1,2,3
echo
echo "PASS"
