#!/bin/sh
# run.sh -- build (Release) and run the benchmark suite.  The table goes to
# stdout, JSON lines to bench-results.jsonl.  Usage: bench/run.sh [SCALE]
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/tools/setup.sh" "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release \
    -DETAGKV_BUILD_TESTS=OFF
OUT="$ROOT/bench-results.jsonl"
: >"$OUT"
for b in "$ROOT"/build-bench/bench/bench_*; do
    [ -x "$b" ] || continue
    "$b" "${1:-1}" 2>>"$OUT"
done
echo "JSON lines: $OUT"
