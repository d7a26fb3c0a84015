#!/usr/bin/env bash
# CI smoke run of the benchmarks: runs every bench binary of a build folder once and fails if
# any benchmark reported an error (each one verifies its results and calls SkipWithError on a
# mismatch, which Google Benchmark prints as "ERROR OCCURRED" without failing the exit code).
# It proves the benchmarks work; the figures from a noisy CI machine mean little.
#
# Usage: bench/smoke.sh BUILD_DIR      (e.g. build/release)
set -euo pipefail
build=${1:?usage: bench/smoke.sh BUILD_DIR}
status=0
for exe in "$build"/bench/*_bench; do
  log=$(mktemp)
  if ! "$exe" >"$log" 2>&1; then
    echo "bench smoke: $exe exited with an error"; cat "$log"; status=1
  elif grep -q "ERROR OCCURRED" "$log"; then
    echo "bench smoke: $exe reported a failed check:"; grep "ERROR OCCURRED" "$log"; status=1
  else
    echo "bench smoke: $(basename "$exe") ok ($(grep -c '^[a-z_]*[<]*.*/' "$log" || true) runs)"
  fi
  rm -f "$log"
done
exit $status
