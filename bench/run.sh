#!/bin/sh
# run.sh -- build (Release) and run the benchmark suite: the embedded
# scenarios RUNS times (default 3) with a table of their medians, then the
# HTTP ones against nginx, etcd and Redis (bench/run_http.sh, which
# installs and starts those, and takes its own medians).  Each run's tables
# go to stdout; all JSON lines to bench-results.jsonl.
#
#   bench/run.sh [SCALE] [--runs N] [--no-http] [run_http.sh options...]
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCALE=1
case "${1:-}" in
[0-9]*) SCALE=$1; shift ;;
esac
RUNS=3
if [ "${1:-}" = "--runs" ]; then
    RUNS=${2:-}
    [ $# -ge 2 ] && shift 2 || shift
    case "$RUNS" in
    '' | 0 | *[!0-9]*)
        echo "run.sh: --runs needs a number of runs, 1 or more" >&2
        exit 2
        ;;
    esac
fi
HTTP=1
if [ "${1:-}" = "--no-http" ]; then
    HTTP=0
    shift
fi
"$ROOT/tools/install.sh" bench python3
"$ROOT/tools/setup.sh" "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release \
    -DETAGKV_BUILD_TESTS=OFF
OUT="$ROOT/bench-results.jsonl"
: >"$OUT"
runs=""
i=1
while [ "$i" -le "$RUNS" ]; do
    echo "== embedded run $i of $RUNS"
    run="$ROOT/build-bench/embedded-run-$i.jsonl"
    : >"$run"
    for b in "$ROOT"/build-bench/bench/bench_*; do
        [ -x "$b" ] || continue
        # bench_http and bench_watch are load generators driven by
        # run_http.sh and run_watch.sh.
        case "$(basename "$b")" in
        bench_http | bench_watch) continue ;;
        esac
        "$b" "$SCALE" 2>>"$run"
    done
    cat "$run" >>"$OUT"
    runs="$runs $run"
    i=$((i + 1))
done
echo "== embedded: medians of $RUNS runs"
# shellcheck disable=SC2086 # a list of files
python3 "$ROOT/bench/median.py" $runs
if [ "$HTTP" -eq 1 ]; then
    "$ROOT/bench/run_http.sh" --out "$OUT" --append "$@"
fi
echo "JSON lines: $OUT"
