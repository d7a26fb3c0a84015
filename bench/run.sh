#!/usr/bin/env bash
# Builds the release preset, runs every benchmark binary, and keeps the results.
#
#   cmake --preset release ─▶ cmake --build --preset release ─▶ build/release/bench/<topology>_bench
#       ─▶ console table (stdout) + build/release/bench-results/<topology>.json
#
# Usage: bench/run.sh [extra Google Benchmark flags...]
#   e.g. bench/run.sh --benchmark_filter=rondo      (the flags go to every binary)
#        RONDO_BENCHES="one_to_one ping_pong" bench/run.sh   (run only those topologies)
# The whole suite runs in about 45 s on the 2-core machine (plus the build: 2-3 min from clean).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

cmake --preset release
cmake --build --preset release

bin_dir=build/release/bench
out_dir=build/release/bench-results
mkdir -p "$out_dir"

benches=${RONDO_BENCHES:-"reserve_publish one_to_one ping_pong many_to_one pipeline diamond io"}
status=0
for topology in $benches; do
  exe="$bin_dir/${topology}_bench"
  if [[ ! -x "$exe" ]]; then
    echo "run.sh: $exe was not built" >&2
    status=1
    continue
  fi
  echo
  echo "=== ${topology} ==="
  if ! "$exe" --benchmark_out="$out_dir/${topology}.json" --benchmark_out_format=json "$@"; then
    echo "run.sh: ${topology}_bench failed" >&2
    status=1
  fi
done
echo
echo "JSON results: $out_dir/"
exit "$status"
