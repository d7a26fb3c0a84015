#!/usr/bin/env bash
# Runs every example and the test binaries under tests/tools/no_uring (a seccomp filter that
# refuses io_uring) and fails on a signal (an abort, an uncaught exception), a hang, or a
# failure whose output does not say that io_uring is refused. Programs that never need io_uring
# must still pass; the io_uring tests must skip (exit 77) saying why.
#
#   usage: no_uring_check.sh NO_URING_BINARY BUILD_DIR
set -u
launcher=$1
build=$2
failures=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# check NAME ERRNO PROGRAM [ARGS...]
check() {
  local name=$1 err=$2
  shift 2
  local rc=0
  timeout 120 "$launcher" --errno "$err" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  local verdict=""
  if [[ $rc -eq 124 ]]; then
    verdict="FAILED: hangs (killed after 120 s)"
  elif [[ $rc -ge 128 ]]; then
    verdict="FAILED: killed by signal $((rc - 128))"
  elif [[ $rc -eq 0 ]]; then
    verdict="ok: runs without io_uring"
  elif grep -qi "io_uring" "$tmp/out" "$tmp/err" && ! grep -q "terminate called" "$tmp/err"; then
    verdict="ok: exit $rc, says: $(grep -hi -m1 io_uring "$tmp/err" "$tmp/out" | head -1 | cut -c1-110)"
  else
    verdict="FAILED: exit $rc without a clear message: $(tail -c 200 "$tmp/err")"
  fi
  if [[ $verdict == FAILED* ]]; then
    failures=$((failures + 1))
    echo "--- stderr of $name:"; tail -n 20 "$tmp/err"
  fi
  printf '%-34s %-6s %s\n' "$name" "$err" "$verdict"
}

for bin in "$build"/examples/rondo_example_*; do
  [[ -x $bin ]] || continue
  name=$(basename "$bin")
  args=()
  case $name in
    *order_flow | *order_server) args=(--seconds 1) ;;
  esac
  check "$name" EPERM "$bin" "${args[@]}"
done
check rondo_example_order_server ENOSYS "$build/examples/rondo_example_order_server" --seconds 1

# The test binaries. The core suite needs no io_uring at all (its stress and litmus tiers are
# left out here for time: they run in the normal suite and use no io_uring either).
check rondo_tests EPERM "$build/tests/rondo_tests" '~[stress]~[litmus]'
if [[ -x $build/tests/rondo_allocation_tests ]]; then
  check rondo_allocation_tests EPERM "$build/tests/rondo_allocation_tests"
fi
for err in EPERM ENOSYS; do
  rc=0
  timeout 120 "$launcher" --errno "$err" "$build/tests/rondo_io_tests" >"$tmp/out" 2>&1 || rc=$?
  if [[ $rc -eq 77 ]] && grep -qi "io_uring" "$tmp/out"; then
    printf '%-34s %-6s %s\n' rondo_io_tests "$err" "ok: skipped (77): $(head -c 100 "$tmp/out")"
  else
    printf '%-34s %-6s %s\n' rondo_io_tests "$err" "FAILED: exit $rc (expected 77 and a reason)"
    failures=$((failures + 1))
  fi
done

if [[ $failures -ne 0 ]]; then
  echo "$failures program(s) do not fail cleanly when io_uring is refused"
  exit 1
fi
echo "every program fails cleanly (or runs) when io_uring is refused"
