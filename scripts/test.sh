#!/bin/sh
# Runs the busted suite (tests/*_spec.lua, settings in .busted) with Lua
# 5.4 and ends with busted's summary reworded as `N passed, N failed`
# (failures and errors both count as failed). Exits non-zero on any
# failure. Extra arguments go to busted (e.g. a single spec file).
set -u
cd "$(dirname "$0")/.." || exit 1

preload=""
cpath=""
if [ "${1:-}" = "--sanitize" ]; then
  shift
  # The sanitized module (build-sanitize/lvae/core.so) needs the ASan
  # runtime loaded before lua5.4 itself.
  preload=$(gcc -print-file-name=libasan.so)
  cpath="--cpath=build-sanitize/?.so"
  # options already in ASAN_OPTIONS come after ours, so they win
  export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# shellcheck disable=SC2086
LD_PRELOAD="$preload" lua5.4 /usr/bin/busted $cpath "$@" 2>&1 | tee "$out"
summary=$(grep -E '[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$out" | tail -n 1)
if [ -z "$summary" ]; then
  echo "0 passed, 1 failed"
  exit 1
fi
passed=$(echo "$summary" | sed -E 's/.*\b([0-9]+) success.*/\1/')
failures=$(echo "$summary" | sed -E 's/.* ([0-9]+) failures?.*/\1/')
errors=$(echo "$summary" | sed -E 's/.* ([0-9]+) errors?.*/\1/')
failed=$((failures + errors))
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
