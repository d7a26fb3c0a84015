#!/usr/bin/env bash
# Builds and runs every rondo test: the dev build (g++, warnings as errors) with all unit,
# stress, litmus and allocation tests plus every example; the stress and litmus tests again under
# ThreadSanitizer; the whole suite under AddressSanitizer + UBSan; a clang-19 build of
# everything; the benchmarks (built, and run once briefly as a smoke test); a consumer
# project built against the installed package; the libFuzzer targets for a bounded time
# (fuzz/run.sh); and the model check of the wake-up protocol
# (verify/run.sh: spin proves the protocol, and its broken variants must fail). Installs missing
# Debian packages first.
# The server fault tests (a non-reader, idle and slowloris clients, EMFILE, 12 kill -9 of
# order_server --serve, a full journal) and the run of every program under a seccomp filter that
# refuses io_uring are CTest entries, so the ctest steps below run them (docs/servers.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
rondo_ensure_packages "${RONDO_BUILD_PACKAGES[@]}" "${RONDO_TEST_PACKAGES[@]}"

jobs=$(nproc)
step() { echo; echo "== $*"; }

step "model check: the wake-up protocol in Promela (x86-TSO), correct variants pass, broken ones fail"
bash verify/run.sh

step "clang-19: build everything (tests, examples, benchmarks) with warnings as errors"
cmake --preset clang >/dev/null
cmake --build --preset clang -j "$jobs"
ctest --preset clang -j "$jobs" --timeout 300

step "ThreadSanitizer: stress and litmus tests, and the io_uring tests"
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j "$jobs" --target rondo_tests rondo_io_tests
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ./build/tsan/tests/rondo_tests '[stress],[litmus]'
# Exit 77: this host refuses io_uring (the binary says why); that is a skip, not a failure.
io_rc=0
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ./build/tsan/tests/rondo_io_tests || io_rc=$?
if [[ $io_rc -ne 0 && $io_rc -ne 77 ]]; then exit "$io_rc"; fi

step "AddressSanitizer + UBSan: every test"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs"
ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1" \
  ctest --preset asan -j "$jobs" --timeout 300

step "fuzzing: every libFuzzer target in fuzz/ for 25 s each (longer: bash fuzz/run.sh 600)"
bash fuzz/run.sh 25

step "benchmarks: release build and a short smoke run"
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
if [ -x bench/smoke.sh ]; then bench/smoke.sh build/release; fi

step "a consumer project: find_package(rondo CONFIG) after install, and add_subdirectory"
rm -rf build/install build/consumer build/consumer-subdir build/consumer-core \
  build/consumer-core-subdir build/consumer-core-io
cmake --preset dev >/dev/null
cmake --build --preset dev -j "$jobs"
cmake --install build/dev --prefix build/install >/dev/null
cmake -S tests/install_consumer -B build/consumer -G Ninja -DCMAKE_PREFIX_PATH="$PWD/build/install" >/dev/null
cmake --build build/consumer
./build/consumer/rondo_consumer
./build/consumer/rondo_core_consumer
cmake -S tests/install_consumer -B build/consumer-subdir -G Ninja -DRONDO_SOURCE_DIR="$PWD" >/dev/null
cmake --build build/consumer-subdir
./build/consumer-subdir/rondo_consumer
./build/consumer-subdir/rondo_core_consumer
# rondo::core needs no liburing: the thread-only consumer, configured where pkg-config cannot
# find liburing, from the install and through add_subdirectory; nothing on its link line or in
# ldd may name liburing (the full consumer's link line, above, does: the grep is not blind).
grep -q liburing build/consumer/build.ninja
no_uring_env=(env PKG_CONFIG_LIBDIR=/nonexistent PKG_CONFIG_PATH=)
"${no_uring_env[@]}" cmake -S tests/install_consumer -B build/consumer-core -G Ninja \
  -DRONDO_CONSUMER_CORE_ONLY=ON -DCMAKE_PREFIX_PATH="$PWD/build/install" >/dev/null
"${no_uring_env[@]}" cmake -S tests/install_consumer -B build/consumer-core-subdir -G Ninja \
  -DRONDO_CONSUMER_CORE_ONLY=ON -DRONDO_SOURCE_DIR="$PWD" >/dev/null
for dir in build/consumer-core build/consumer-core-subdir; do
  cmake --build "$dir"
  "./$dir/rondo_core_consumer"
  ldd "$dir/rondo_core_consumer" >"$dir/ldd.txt"
  if grep -qi liburing "$dir/build.ninja" "$dir/ldd.txt"; then
    echo "$dir: rondo_core_consumer links liburing" >&2
    exit 1
  fi
done
# Asking for component io there fails, and says why.
if "${no_uring_env[@]}" cmake -S tests/install_consumer -B build/consumer-core-io -G Ninja \
     -DRONDO_CONSUMER_CORE_ONLY=ON -DRONDO_CONSUMER_COMPONENTS=io \
     -DCMAKE_PREFIX_PATH="$PWD/build/install" >build/consumer-core-io.log 2>&1 ||
   ! grep -q "component 'io' is not available: liburing was not found" build/consumer-core-io.log; then
  echo "find_package(rondo COMPONENTS io) without liburing did not fail with its reason:" >&2
  cat build/consumer-core-io.log >&2
  exit 1
fi

step "dev build (g++ 12, warnings as errors): every test and example"
ctest --preset dev -j "$jobs" --timeout 300
