#!/bin/sh
# fuzz.sh -- build the libFuzzer targets of tests/fuzz/ with clang and run
# each one for SECONDS (default 60), starting from its committed seed
# corpus.  Fails on any crash, sanitizer report (ASan, UBSan, leaks),
# timeout or broken invariant.
#
#   tools/fuzz.sh [SECONDS]
#
# SECONDS 0 only replays the seed corpora (a quick regression check).
# Installs clang and libFuzzer (Debian: clang, libclang-rt-14-dev) when
# missing, so that the normal build never needs clang.  Builds into
# build-fuzz/.  Inputs that found new coverage go to
# build-fuzz/corpus/<target>/ (not committed; reused by the next run).  A
# failing input is saved as build-fuzz/artifacts/<target>-crash-<sha1> (or
# -leak-, -timeout-, -oom-); reproduce it with
#   build-fuzz/tests/fuzz/fuzz_<target> build-fuzz/artifacts/<file>
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$ROOT/build-fuzz"
SECS=${1:-60}
TARGETS="taglist httpdate cond txn"

case "$SECS" in
'' | *[!0-9]*)
    echo "usage: tools/fuzz.sh [SECONDS]" >&2
    exit 2
    ;;
esac

# clang and libFuzzer, plus what the library itself needs.
PACKAGES="clang libclang-rt-14-dev cmake pkg-config liblmdb-dev libxxhash-dev libjansson-dev"
# shellcheck disable=SC2086 # a word list on purpose
"$ROOT/tools/install.sh" fuzz $PACKAGES

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DETAGKV_WERROR=ON -DETAGKV_FUZZ=ON -DETAGKV_BUILD_SERVER=OFF \
    -DETAGKV_BUILD_TESTS=OFF -DETAGKV_BUILD_BENCH=OFF >/dev/null
for t in $TARGETS; do
    cmake --build "$BUILD" -j "$(nproc)" --target "fuzz_$t"
done

mkdir -p "$BUILD/artifacts" "$BUILD/tmp"
failed=""
for t in $TARGETS; do
    work="$BUILD/corpus/$t"
    log="$BUILD/fuzz_$t.log"
    dict=""
    budget="-max_total_time=$SECS"
    if [ "$SECS" -eq 0 ]; then
        budget="-runs=0" # libFuzzer: run the corpora, then stop
    fi
    mkdir -p "$work"
    if [ -f "$ROOT/tests/fuzz/$t.dict" ]; then
        dict="-dict=$ROOT/tests/fuzz/$t.dict"
    fi
    # New inputs are written to the first corpus directory only, so the
    # committed seeds stay as they are.  fuzz_cond keeps its store in
    # ETAGKV_FUZZ_TMP.
    # shellcheck disable=SC2086 # $dict is empty or one word
    if ETAGKV_FUZZ_TMP="$BUILD/tmp" \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$BUILD/tests/fuzz/fuzz_$t" "$budget" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$BUILD/artifacts/$t-" $dict \
        "$work" "$ROOT/tests/fuzz/corpus/$t" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        if [ "$SECS" -eq 0 ]; then
            echo "fuzz: $t: ${runs:-?} corpus inputs replayed, no failure"
        else
            echo "fuzz: $t: ${runs:-?} inputs in ${SECS} s, no failure"
        fi
    else
        echo "fuzz: $t FAILED; the end of $log:" >&2
        tail -n 60 "$log" >&2
        failed="$failed $t"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed (inputs in $BUILD/artifacts/)" >&2
    exit 1
fi
