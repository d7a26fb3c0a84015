#!/usr/bin/env bash
# Builds the libFuzzer targets (the `fuzz` preset: clang-19, libFuzzer + ASan + UBSan) and runs
# every one for a bounded time, seeded from fuzz/corpus/<name>/.
#
#   bash fuzz/run.sh            # 25 s per target (what scripts/test.sh runs)
#   bash fuzz/run.sh 600        # longer: 10 minutes per target
#   FUZZ_JOBS=2 bash fuzz/run.sh 3600
#
# New inputs that find new coverage go to build/fuzz/corpus-work/<name>/ (not into the repo: copy
# the interesting ones into fuzz/corpus/<name>/ by hand). A crash leaves its input in
# build/fuzz/artifacts/ and makes this script fail: add that file to fuzz/corpus/<name>/, where
# the ordinary test build replays it (a regression test), then fix the bug.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-25}
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$(nproc)"
mkdir -p build/fuzz/artifacts
found=0
for bin in build/fuzz/fuzz/*_fuzz; do
  [ -x "$bin" ] || continue
  found=1
  name=$(basename "$bin" _fuzz)
  work=build/fuzz/corpus-work/$name
  mkdir -p "$work" "fuzz/corpus/$name"
  rm -f build/fuzz/artifacts/"$name"-*
  echo "== fuzz $name: ${seconds}s (seeds: fuzz/corpus/$name, $(ls "fuzz/corpus/$name" | wc -l) files)"
  set +e
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix=build/fuzz/artifacts/"$name"- "$work" "fuzz/corpus/$name" \
    >build/fuzz/"$name".log 2>&1
  rc=$?
  set -e
  grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|stat::number_of_executed_units|stat::peak_rss_mb" \
    build/fuzz/"$name".log || true
  if [ "$rc" -ne 0 ]; then
    tail -n 60 build/fuzz/"$name".log
    echo "fuzz $name: FAILED (exit $rc); the input is in build/fuzz/artifacts/: add it to" \
         "fuzz/corpus/$name/ (the test build replays it) and fix the bug"
    exit 1
  fi
done
[ "$found" = 1 ] || { echo "no fuzz targets built"; exit 1; }
