#!/usr/bin/env bash
# Past one machine: a 3-node NATS JetStream cluster on 127.0.0.1, two sharded rondo processes
# (shard 0 owns in.0, shard 1 owns in.1), a NATS node killed with kill -9 while they run (and
# started again), one rondo process killed with kill -9 and restarted, then the exactly-once
# verification of both shards' output streams. Installs nats-server and libnats-dev if missing.
#
#   bash scripts/cluster-demo.sh [EVENTS_PER_SHARD]     (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
rondo_ensure_packages "${RONDO_BUILD_PACKAGES[@]}" nats-server libnats-dev
n=${1:-200000}

echo "== build (demo preset: optimised)"
cmake --preset demo >/dev/null
cmake --build --preset demo -j "$(nproc)" --target rondo_jetstream_pipeline rondo_jetstream_tool
bin=build/demo

work=$(mktemp -d /tmp/rondo-cluster-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  bash scripts/nats-cluster.sh stop "$work/cluster" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== a 3-node JetStream cluster"
bash scripts/nats-cluster.sh start "$work/cluster"
urls=$(bash scripts/nats-cluster.sh urls "$work/cluster")

echo "== $n input events per shard (streams are R3: every message on 2 of 3 nodes before its ack)"
"$bin/rondo_jetstream_tool" produce "$urls" 0,1 "$n"

echo "== two rondo processes, one per shard"
for s in 0 1; do
  "$bin/rondo_jetstream_pipeline" --servers "$urls" --shard "$s" --idle-exit-ms 6000 \
    >"$work/shard$s.log" 2>&1 &
  pids+=($!)
done
p0=${pids[0]}
p1=${pids[1]}
for s in 0 1; do
  for _ in $(seq 1 200); do [[ -s "$work/shard$s.log" ]] && break; sleep 0.05; done
done
sleep 1
echo "-- kill -9 NATS node 1"
bash scripts/nats-cluster.sh kill "$work/cluster" 1
sleep 1
echo "-- kill -9 the shard 1 process (pid $p1)"
kill -9 "$p1"
wait "$p1" 2>/dev/null || true
echo "   its last words: $(tail -n 1 "$work/shard1.log")"
echo "-- restart NATS node 1"
bash scripts/nats-cluster.sh restart "$work/cluster" 1
echo "-- restart the shard 1 process"
"$bin/rondo_jetstream_pipeline" --servers "$urls" --shard 1 --idle-exit-ms 3000 \
  >"$work/shard1b.log" 2>&1 &
p1=$!
pids+=("$p1")
rc=0
wait "$p0" || rc=$?
wait "$p1" || rc=$?
echo "== shard 0 (ran through the node kill):"
cat "$work/shard0.log"
echo "== shard 1 (killed, restarted):"
cat "$work/shard1b.log"
if [[ $rc -ne 0 ]]; then
  echo "a shard process failed (exit $rc); running the shards again to finish"
  for s in 0 1; do "$bin/rondo_jetstream_pipeline" --servers "$urls" --shard "$s" --idle-exit-ms 1500; done
fi

echo "== exactly-once verification: every input's result, once, in input order, per shard"
"$bin/rondo_jetstream_tool" verify "$urls" 0,1
