#!/usr/bin/env bash
# The journal rows of issue 13: framed rondo::journal vs the unframed baseline, interleaved at
# random and repeated, then the median items/s of each row and framed / raw per batch size.
#
# Usage: bench/journal_rows.sh [REPETITIONS (5)] [MIN_TIME_S (1)]
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-5}
min_time=${2:-1}
cmake --preset release >/dev/null
cmake --build --preset release --target journal_bench >/dev/null
out=build/release/bench-results
mkdir -p "$out"
./build/release/bench/journal_bench --benchmark_repetitions="$reps" \
  --benchmark_enable_random_interleaving=true --benchmark_min_time="${min_time}" \
  --benchmark_report_aggregates_only=true --benchmark_format=console \
  --benchmark_out="$out/journal.json" --benchmark_out_format=json >/dev/null
python3 - "$out/journal.json" <<'PY'
import json, sys
rows = {}
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    if b.get("aggregate_name") != "median":
        continue
    rows[b["run_name"]] = b["items_per_second"]
for name, v in sorted(rows.items()):
    print(f"{name:50s} {v:12,.0f} records/s")
print()
for mode in ("buffered", "direct"):
    for n in (16, 64, 256):
        raw = rows.get(f"journal_append/raw/{mode}/{n}/real_time")
        for variant in ("framed", "framed_writev"):
            fr = rows.get(f"journal_append/{variant}/{mode}/{n}/real_time")
            if raw and fr:
                print(f"{variant}/{mode}/{n}: {fr / raw:.2f}x raw")
PY
