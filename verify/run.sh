#!/usr/bin/env bash
# verify/run.sh -- model-check rondo's wake-up protocol (verify/wakeup.pml) with SPIN.
#
# Runs every configuration listed below: the correct protocol must pass (no assertion
# violation, no invalid end state, no acceptance cycle under weak fairness), and every broken
# variant and witness must make SPIN report the error named in its entry. One summary line per
# run, then "N passed, M failed"; the exit status is non-zero if any run did not behave as
# expected. Works in a temporary directory (removed on exit); nothing is written to the repo.
#
# Environment: JOBS=n        runs in parallel (default 2)
#              TRAILS=1      print the annotated trail of every run that found an error
#              KEEP=1        keep the temporary directory (its path is printed)
#              EXTENDED=1    also run the larger configurations (10-15 million states each,
#                            about 3 minutes and 2-3 GB of memory more)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
model=$here/wakeup.pml
jobs_max=${JOBS:-2}

if ! command -v spin >/dev/null 2>&1; then
  echo "spin not found: installing the Debian package 'spin'" >&2
  apt-get update -qq
  apt-get install -y -qq spin >/dev/null
fi
if ! command -v gcc >/dev/null 2>&1; then
  echo "gcc is required to compile SPIN's verifier" >&2
  exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/rondo-spin.XXXXXX")
if [[ ${KEEP:-0} == 1 ]]; then
  echo "work directory: $work"
else
  trap 'rm -rf "$work"' EXIT
fi

# name | expectation | mode | spin defines [| extra gcc flags for pan]
#   expectation: ok             no error at all
#                error:REGEX    SPIN must report an error whose first line matches REGEX
#   mode: safety               assertions + invalid end states (pan -DSAFETY)
#         live                 LTL 'live' (<> e_exited) under weak fairness (pan -a -f)
#         live-unfair          LTL 'live' without fairness (pan -a)
runs=(
  "safety base: W1+W2, stages A B G|ok|safety|"
  "safety W1, A advances twice, 1 publisher|ok|safety|-DW2=0 -DA_ADV=2 -DNPUB=1"
  "safety W1, 2 publishers|ok|safety|-DW2=0 -DNPUB=2"
  "safety W1, canceller + closer|ok|safety|-DW2=0 -DCANCEL=1 -DCLOSE=1"
  "safety W2, 1 publisher + closer|ok|safety|-DW1=0 -DNPUB=1 -DCLOSE=1"
  "safety base, fine-grained (reductions undone)|ok|safety|-DFINE_GRAIN"
  "safety fallback fences: base|ok|safety|-DFALLBACK_FENCES"
  "safety fallback fences: W1, 2 publishers|ok|safety|-DFALLBACK_FENCES -DW2=0 -DNPUB=2"
  "liveness (weak fairness) W1, stages A B|ok|live|-DW2=0 -DBUSYWAIT"
  "liveness (weak fairness) W2, closer|ok|live|-DW1=0 -DCLOSE=1 -DBUSYWAIT"
  "liveness without fairness must fail (busy-wait starvation)|error:acceptance cycle|live-unfair|-DW2=0 -DBUSYWAIT"
  "witness: a ring ends a real sleep|error:assertion violated|safety|-DWITNESS_DOORBELL -DSPURIOUS=0"
  "witness: call-off while a waker holds a pin|error:assertion violated|safety|-DWITNESS_CALLOFF_PINNED -DSPURIOUS=0"
  "broken: no fence at all -> lost wake-up|error:invalid end state|safety|-DBROKEN_NO_FENCE"
  "broken: own fence, no membarrier -> lost wake-up|error:invalid end state|safety|-DBROKEN_NO_MEMBARRIER"
  "broken: no re-check -> lost wake-up|error:invalid end state|safety|-DBROKEN_NO_RECHECK"
  "broken: call-off without pin wait -> touch after free|error:assertion violated  !\(e_freed\)|safety|-DBROKEN_CALLOFF_NO_PINWAIT"
  "broken: no fence, liveness -> E never exits|error:acceptance cycle|live|-DW2=0 -DBUSYWAIT -DBROKEN_NO_FENCE"
  "alternative fix: call-off without pin wait, teardown waits|ok|safety|-DBROKEN_CALLOFF_NO_PINWAIT -DEXIT_WAITS_PINS"
)
if [[ ${EXTENDED:-0} == 1 ]]; then
  runs+=(
    "extended: W1+W2, stages A B G, 1 publisher|ok|safety|-DNPUB=1|-DCOLLAPSE"
    "extended: W1+W2, stages A B G, canceller|ok|safety|-DCANCEL=1|-DCOLLAPSE"
    "extended: W1+W2, stages A B G, closer|ok|safety|-DCLOSE=1|-DCOLLAPSE"
    "extended: W1, canceller + closer, fine-grained|ok|safety|-DW2=0 -DCANCEL=1 -DCLOSE=1 -DFINE_GRAIN|-DCOLLAPSE"
    "extended: fallback fences, W1+W2, 1 publisher|ok|safety|-DFALLBACK_FENCES -DNPUB=1|-DCOLLAPSE"
    "extended: liveness (weak fairness) W1+W2, stages A B G|ok|live|-DBUSYWAIT -DSPURIOUS=0|-DCOLLAPSE"
  )
fi

# run_one INDEX: writes $work/INDEX/result = "ok|FAIL <summary line>"
run_one() {
  local i=$1
  local name expect mode defs gccx
  IFS='|' read -r name expect mode defs gccx <<<"${runs[$i]}"
  local dir=$work/$i
  mkdir -p "$dir"
  cp "$model" "$dir/wakeup.pml"
  cd "$dir"

  local cflags panflags
  case $mode in
    safety)      cflags="-DSAFETY -DNOCLAIM"; panflags="" ;;
    live)        cflags="-DNFAIR=4";          panflags="-a -f" ;;
    live-unfair) cflags="-DNFAIR=4";          panflags="-a" ;;
  esac
  # -O1: compiles in half the time of -O2 and runs as fast; the runs that must find an error
  # stop after a few thousand states: -O0
  if [[ $expect == ok ]]; then cflags="-O1 $cflags"; else cflags="-O0 $cflags"; fi

  # shellcheck disable=SC2086
  if ! spin -a $defs wakeup.pml >spin.out 2>&1; then
    echo "FAIL $name: spin -a failed: $(tail -1 spin.out)" >result; return
  fi
  # shellcheck disable=SC2086
  if ! gcc -w -DMEMLIM=4096 $cflags $gccx -o pan pan.c >gcc.out 2>&1; then
    echo "FAIL $name: gcc failed: $(head -1 gcc.out)" >result; return
  fi
  # shellcheck disable=SC2086
  ./pan -m200000 $panflags >pan.out 2>&1 || true

  local errors states secs first
  errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' pan.out | head -1)
  states=$(awk '/states, stored/ {print $1; exit}' pan.out)
  secs=$(sed -n 's/^pan: elapsed time \([0-9.e+-]*\) seconds.*/\1/p' pan.out | head -1)
  first=$(grep -m1 -E '^pan:[0-9]+: ' pan.out | sed 's/^pan:[0-9]*: //; s/ (at depth [0-9]*)//' || true)
  local stats
  stats=$(printf '%9s states %6ss' "${states:-?}" "${secs:-?}")

  if [[ -z $errors ]]; then
    echo "FAIL $name: no verdict from pan: $(tail -1 pan.out)" >result; return
  fi
  if grep -qE 'max search depth too small|reached -DMEMLIM bound|out of memory' pan.out; then
    echo "FAIL $name: incomplete search ($stats)" >result; return
  fi
  if [[ $expect == ok ]]; then
    if [[ $errors == 0 ]]; then
      echo "ok   $stats  $name: no errors" >result
    else
      echo "FAIL $stats  $name: $first" >result
      touch show_trail
    fi
  else
    local want=${expect#error:}
    if [[ $errors != 0 ]] && grep -qE "^pan:[0-9]+: ($want)" pan.out; then
      echo "ok   $stats  $name: spin reports \"$first\" as required" >result
      touch show_trail
    elif [[ $errors != 0 ]]; then
      echo "FAIL $stats  $name: expected \"$want\", got \"$first\"" >result
    else
      echo "FAIL $stats  $name: expected \"$want\", spin found no error" >result
    fi
  fi
  if [[ -f show_trail && ${TRAILS:-0} == 1 && -f wakeup.pml.trail ]]; then
    # shellcheck disable=SC2086
    spin -T -t $defs wakeup.pml 2>/dev/null | grep '^@@' | sed 's/^@@ /      /' >trail.txt || true
    echo "      => $first" >>trail.txt
  fi
}

start=$(date +%s)
for i in "${!runs[@]}"; do
  while (( $(jobs -rp | wc -l) >= jobs_max )); do
    wait -n || true
  done
  ( run_one "$i" ) &
done
wait || true

passed=0
failed=0
for i in "${!runs[@]}"; do
  line=$(cat "$work/$i/result" 2>/dev/null || echo "FAIL ${runs[$i]%%|*}: no result")
  echo "$line"
  if [[ ${TRAILS:-0} == 1 && -s $work/$i/trail.txt ]]; then
    cat "$work/$i/trail.txt"
  fi
  if [[ $line == ok* ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
done
echo "($(( $(date +%s) - start )) s wall, $(spin -V | head -1))"
echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
