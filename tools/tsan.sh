#!/bin/sh
# tsan.sh -- build everything with ThreadSanitizer and run the whole test
# suite; any data race or lock-order inversion that TSan reports fails the
# suite (halt_on_error: the process that saw it exits non-zero, and the
# test around it fails, the server's tests included).
#
#   tools/tsan.sh [BUILD_DIR]   (default build-tsan/)
#
# LMDB, libmicrohttpd and libcurl are Debian's, not instrumented: TSan sees
# their pthread calls (so LMDB's writer lock orders our accesses) but not
# their own memory accesses.
#
# Some kernels lay out memory where this gcc's TSan cannot run ("unexpected
# memory mapping"); there the suite is skipped with a notice, and the
# ASan/UBSan run of test.sh still covers memory errors.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-"$ROOT/build-tsan"}

"$ROOT/tools/setup.sh" "$BUILD" -DETAGKV_TSAN=ON -DETAGKV_BUILD_BENCH=OFF

if ! probe=$("$BUILD/tests/test_status" 2>&1); then
    case "$probe" in
    *"ThreadSanitizer"*"memory mapping"* | *"FATAL: ThreadSanitizer"*)
        echo "tsan.sh: SKIPPED, ThreadSanitizer cannot run on this kernel:" >&2
        echo "$probe" | head -3 >&2
        exit 0
        ;;
    esac
    echo "$probe" >&2
    exit 1
fi
cd "$BUILD"
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    ctest --output-on-failure --timeout 900
