#!/bin/sh
# run.sh -- build (Release) and run the benchmark suite: the embedded
# scenarios, then the HTTP ones against nginx, etcd and Redis
# (bench/run_http.sh, which installs and starts those).  The tables go to
# stdout, JSON lines to bench-results.jsonl.
#
#   bench/run.sh [SCALE] [--no-http] [run_http.sh options...]
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCALE=1
case "${1:-}" in
[0-9]*) SCALE=$1; shift ;;
esac
HTTP=1
if [ "${1:-}" = "--no-http" ]; then
    HTTP=0
    shift
fi
"$ROOT/tools/setup.sh" "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release \
    -DETAGKV_BUILD_TESTS=OFF
OUT="$ROOT/bench-results.jsonl"
: >"$OUT"
for b in "$ROOT"/build-bench/bench/bench_*; do
    [ -x "$b" ] || continue
    # bench_http is a load generator driven by run_http.sh.
    [ "$(basename "$b")" = bench_http ] && continue
    "$b" "$SCALE" 2>>"$OUT"
done
if [ "$HTTP" -eq 1 ]; then
    "$ROOT/bench/run_http.sh" --out "$OUT" --append "$@"
fi
echo "JSON lines: $OUT"
