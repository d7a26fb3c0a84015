#!/usr/bin/env bash
# The layer rules of docs/architecture.md, checked over every header and source under
# include/rondo/ and src/: each #include of a rondo header must name a layer the including
# file's layer may depend on. Prints file:line, the include and the rule for each violation and
# exits 1 if there is any; exits 0 otherwise.
#
#   bash tools/check_layers.sh [ROOT]     (ROOT: the source tree, default: this script's ../)
#
# Layers (a file's layer comes from its path; an include's from the path it names):
#   detail  rondo/detail/*                                    may include: detail
#   core    rondo/core/*                                      may include: detail core
#   coro    rondo/coro/*                                      may include: detail core coro
#   dsl     rondo/dsl/*, rondo/disruptor.hpp                  may include: detail core coro dsl
#   io      rondo/io/*, src/*                                 may include: detail core coro io
#   top     rondo/rondo.hpp, rondo/format.hpp, rondo/asio.hpp, may include: anything
#           rondo/asio/* (the Boost.Asio bridge: on io and dsl),
#           rondo/jetstream.hpp, src/jetstream/* (the NATS JetStream stages: on io and dsl)
# io sits beside dsl, not above it: neither includes the other. <liburing.h> may be included
# only under src/ (liburing is private to rondo::io; rondo::core must never need it). A file or
# an include in no layer (a new directory, a misspelt header) is a violation too, so that the
# table above is kept up to date. No exceptions: forward declarations need no include.
set -euo pipefail

root=$(cd "${1:-$(dirname "$0")/..}" && pwd)
cd "$root"

# The layer of a path relative to include/ ("rondo/core/x.hpp") or to the root ("src/io/x.cpp").
layer_of() {
  case "$1" in
    rondo/detail/*) echo detail ;;
    rondo/core/*) echo core ;;
    rondo/coro/*) echo coro ;;
    rondo/dsl/* | rondo/disruptor.hpp) echo dsl ;;
    rondo/jetstream.hpp | src/jetstream/*) echo top ;;
    rondo/io/* | src/*) echo io ;;
    rondo/rondo.hpp | rondo/format.hpp | rondo/asio.hpp | rondo/asio/*) echo top ;;
    *) echo unknown ;;
  esac
}

# What each layer may include.
declare -A allowed=(
  [detail]="detail"
  [core]="detail core"
  [coro]="detail core coro"
  [dsl]="detail core coro dsl"
  [io]="detail core coro io"
  [top]="detail core coro dsl io top"
)

violations=0
files=0
checked=0
report() {  # file line message
  echo "$1:$2: $3" >&2
  violations=$((violations + 1))
}

while IFS= read -r -d '' file; do
  files=$((files + 1))
  rel=${file#./}
  own=$(layer_of "${rel#include/}")
  if [[ $own == unknown ]]; then
    report "$rel" 1 "in no layer: add its directory to the layer table (docs/architecture.md, tools/check_layers.sh)"
    continue
  fi
  # "<line>:<delimiter><path>" for every #include line (also "# include", leading blanks).
  while IFS= read -r hit; do
    line=${hit%%:*}
    spec=$(sed -E 's/^[^:]*:[[:space:]]*#[[:space:]]*include[[:space:]]*([<"][^>"]*).*/\1/' <<<"$hit")
    delim=${spec:0:1}
    name=${spec:1}
    shown="<$name>"
    [[ $delim == '"' ]] && shown="\"$name\""
    if [[ $name == liburing.h ]]; then
      if [[ $rel != src/* ]]; then
        report "$rel" "$line" "$own file includes <liburing.h>: only src/ may (liburing is private to rondo::io)"
      fi
      continue
    fi
    target=""
    if [[ $delim == '"' && -f $(dirname "$rel")/$name ]]; then
      # A quoted include found beside the file: its layer is where it really is.
      resolved=$(realpath -m --relative-to=. "$(dirname "$rel")/$name")
      case "$resolved" in
        include/rondo/*) target=${resolved#include/} ;;
        src/*) target=$resolved ;;
        *) continue ;;  # outside the library (none today)
      esac
    elif [[ $name == rondo/* ]]; then
      target=$name
    else
      continue  # the standard library, fmt, the system
    fi
    checked=$((checked + 1))
    inc=$(layer_of "$target")
    if [[ $inc == unknown ]]; then
      report "$rel" "$line" "includes $shown, which is in no layer (docs/architecture.md)"
    elif [[ " ${allowed[$own]} " != *" $inc "* ]]; then
      report "$rel" "$line" "$own file includes $shown (layer $inc): $own may include only ${allowed[$own]// /, }"
    fi
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]' "$rel" || true)
done < <(find include/rondo src -type f \( -name '*.hpp' -o -name '*.h' -o -name '*.cpp' \) -print0 | sort -z)

if ((violations > 0)); then
  echo "check_layers: $violations layer violation(s) (rules: docs/architecture.md, Layers)" >&2
  exit 1
fi
echo "check_layers: $files files, $checked rondo includes, no layer violations"
