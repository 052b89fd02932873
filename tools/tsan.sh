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
# Some kernels randomise mmap more than gcc 12's TSan expects ("unexpected
# memory mapping"); there the suite runs without address randomisation
# (setarch -R), and only if even that is not allowed (some containers
# forbid it) is it skipped, with a notice; the ASan/UBSan run of test.sh
# still covers memory errors then.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-"$ROOT/build-tsan"}

"$ROOT/tools/setup.sh" "$BUILD" -DETAGKV_TSAN=ON -DETAGKV_BUILD_BENCH=OFF

NOASLR=""
if ! probe=$("$BUILD/tests/test_status" 2>&1); then
    case "$probe" in
    *"unexpected memory mapping"*)
        if setarch "$(uname -m)" -R "$BUILD/tests/test_status" >/dev/null 2>&1
        then
            NOASLR="setarch $(uname -m) -R"
            echo "tsan.sh: this kernel's memory layout needs" \
                "address randomisation off for TSan: $NOASLR" >&2
        else
            echo "tsan.sh: SKIPPED, ThreadSanitizer cannot run here," \
                "even without address randomisation:" >&2
            echo "$probe" | head -3 >&2
            exit 0
        fi
        ;;
    *)
        echo "$probe" >&2
        exit 1
        ;;
    esac
fi
cd "$BUILD"
# Check's per-test timeouts are for the normal build: three times them
# here (CK_TIMEOUT_MULTIPLIER), where everything runs 5-15 times slower.
# $NOASLR is a command and its arguments, or nothing.
# shellcheck disable=SC2086
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    CK_TIMEOUT_MULTIPLIER=3 \
    $NOASLR ctest --output-on-failure --timeout 900
