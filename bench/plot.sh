#!/usr/bin/env bash
# Runs the benchmarks with JSON output (bench/run.sh) and draws the README's plots with gnuplot
# into docs/img/: throughput by topology, coroutine vs thread stages as stages grow, latency
# percentiles. Installs gnuplot-nox and python3 from Debian if missing.
#
# Usage: bench/plot.sh            (runs every benchmark first: ~2 min plus the build)
#        RONDO_PLOT_ONLY=1 bench/plot.sh   (redraws from build/release/bench-results/*.json)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
source scripts/deps.sh
rondo_ensure_packages gnuplot-nox python3
if [[ -z "${RONDO_PLOT_ONLY:-}" ]]; then
  bash bench/run.sh
fi
python3 bench/plot.py build/release/bench-results docs/img
