#!/bin/sh
# builds.sh -- build everything (library, programs, tests, benchmarks,
# examples) with each compiler and build type, -Werror on: a warning any
# of them gives fails.  Builds only; the suites run in test.sh's own build.
#
#   tools/builds.sh          gcc Release and clang Debug (test.sh runs this)
#   tools/builds.sh --all    gcc and clang, each of Debug, Release,
#                            RelWithDebInfo and MinSizeRel
#
# Each combination builds into build-matrix/<compiler>-<type>/ (kept, so a
# second run rebuilds only what changed).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)

# What setup.sh installs, and clang.
PACKAGES="gcc clang make cmake pkg-config liblmdb-dev libxxhash-dev check \
libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev"
# shellcheck disable=SC2086 # a word list on purpose
"$ROOT/tools/install.sh" builds $PACKAGES

case "${1:-}" in
"") COMBOS="gcc:Release clang:Debug" ;;
--all)
    COMBOS=""
    for cc in gcc clang; do
        for type in Debug Release RelWithDebInfo MinSizeRel; do
            COMBOS="$COMBOS $cc:$type"
        done
    done
    ;;
*)
    echo "usage: tools/builds.sh [--all]" >&2
    exit 2
    ;;
esac

failed=""
for combo in $COMBOS; do
    cc=${combo%%:*}
    type=${combo#*:}
    build="$ROOT/build-matrix/$cc-$type"
    log="$build.log"
    mkdir -p "$build"
    start=$(date +%s)
    if cmake -S "$ROOT" -B "$build" -DCMAKE_C_COMPILER="$cc" \
        -DCMAKE_BUILD_TYPE="$type" -DETAGKV_WERROR=ON >"$log" 2>&1 &&
        cmake --build "$build" -j "$(nproc)" >>"$log" 2>&1; then
        echo "builds: $cc $type clean ($(($(date +%s) - start)) s)"
    else
        echo "builds: $cc $type FAILED; $log ends:" >&2
        grep -a -E 'error|warning' "$log" | head -n 40 >&2 || tail -n 40 "$log" >&2
        failed="$failed $cc-$type"
    fi
done
if [ -n "$failed" ]; then
    echo "builds: failed:$failed" >&2
    exit 1
fi
