#!/usr/bin/env bash
# Builds rondo's examples with optimisation and runs the flagship demo (order_flow: two
# producers, a five-stage DAG, throughput, latency and per-stage metrics). Installs missing
# Debian packages first. Extra arguments go to the demo (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
rondo_ensure_packages "${RONDO_BUILD_PACKAGES[@]}"
cmake --preset demo >/dev/null
cmake --build --preset demo -j "$(nproc)" --target rondo_example_order_flow
./build/demo/examples/rondo_example_order_flow "$@"
