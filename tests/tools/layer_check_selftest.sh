#!/usr/bin/env bash
# CTest layer_check_detects_violation: tools/check_layers.sh must catch what it is for. Copies
# include/ and src/ to a temporary tree, checks that the copy passes, then plants one violation
# per rule and wants the script to fail naming each file:line. Passes only then.
#
#   bash tests/tools/layer_check_selftest.sh ROOT
set -euo pipefail

root=$(cd "$1" && pwd)
check="$root/tools/check_layers.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$root/include" "$root/src" "$tmp/"

fail() { echo "layer_check_selftest: $*" >&2; exit 1; }

# The untouched copy passes: a failure below is the planted include's, not the tree's.
bash "$check" "$tmp" >/dev/null 2>&1 || fail "the unmodified copy of the tree already fails"

# plant FILE INCLUDE: appends the include, prints file:line as the script should name it.
plant() {
  echo "#include $2" >>"$tmp/$1"
  echo "$1:$(wc -l <"$tmp/$1")"
}
expected=(
  "$(plant include/rondo/core/sequence.hpp '<rondo/io/io_context.hpp>')"      # core -> io
  "$(plant include/rondo/detail/config.hpp '<rondo/core/sequence.hpp>')"      # detail -> core
  "$(plant include/rondo/coro/task.hpp '<rondo/disruptor.hpp>')"              # coro -> dsl
  "$(plant include/rondo/dsl/entries.hpp '<rondo/io/runtime.hpp>')"           # dsl -> io
  "$(plant include/rondo/io/runtime.hpp '<rondo/dsl/publisher.hpp>')"         # io -> dsl
  "$(plant src/journal/journal.cpp '<rondo/rondo.hpp>')"                      # io -> top
  "$(plant include/rondo/core/ring_buffer.hpp '<liburing.h>')"                # liburing in a header
)

rc=0
out=$(bash "$check" "$tmp" 2>&1) || rc=$?
[[ $rc -ne 0 ]] || fail "check_layers.sh passed a tree with ${#expected[@]} planted violations"
for where in "${expected[@]}"; do
  grep -qF "$where: " <<<"$out" || fail "check_layers.sh did not name $where; it said:"$'\n'"$out"
done
count=$(grep -c ': .*includes' <<<"$out" || true)
[[ $count -eq ${#expected[@]} ]] ||
  fail "expected ${#expected[@]} violations, check_layers.sh reported $count:"$'\n'"$out"
echo "layer_check_selftest: every planted violation named:"
echo "$out"
