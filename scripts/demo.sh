#!/usr/bin/env bash
# Builds rondo's examples with optimisation and runs the flagship demo (order_server: an
# order-entry server on loopback over io_uring, driven by a built-in load generator; prints
# throughput, latency, per-stage metrics, and verifies its journal). Installs missing Debian
# packages first. Extra arguments go to the demo (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
rondo_ensure_packages "${RONDO_BUILD_PACKAGES[@]}"
cmake --preset demo >/dev/null
cmake --build --preset demo -j "$(nproc)" --target rondo_example_order_server
./build/demo/examples/rondo_example_order_server "$@"
