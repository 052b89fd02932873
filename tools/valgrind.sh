#!/bin/sh
# valgrind.sh -- run every library test suite (CTest label "lib") under
# Valgrind's memcheck; fails on any memory error or leak.
#
#   tools/valgrind.sh [BUILD_DIR]
#
# Installs valgrind when missing, builds BUILD_DIR (default build/, the
# normal build: memcheck needs a build without ASan) and runs each suite
# as
#   valgrind --error-exitcode=1 --leak-check=full ... tests/test_NAME
# with CK_FORK=no, so that the tests run in the process valgrind watches
# rather than in Check's forked children.  Leaks of the kinds "definite",
# "indirect" and "possible" are errors; tests/valgrind.supp holds the
# suppressions for known false positives, each with its reason.
#
# Suites that are too slow under memcheck are listed in SKIP below, each
# with its reason; none is skipped today.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-"$ROOT/build"}
SKIP=""

"$ROOT/tools/install.sh" valgrind valgrind

"$ROOT/tools/setup.sh" "$BUILD"

# The suites with the "lib" label, by name (tests/CMakeLists.txt builds
# suite NAME as tests/test_NAME).
names=$(cd "$BUILD" && ctest -N -L '^lib$' |
    sed -n 's/^ *Test *#[0-9]*: *\([A-Za-z0-9_]*\)$/\1/p')
if [ -z "$names" ]; then
    echo "valgrind: ctest lists no suite with the lib label" >&2
    exit 1
fi

tmp="$BUILD/tests/tmp-valgrind"
mkdir -p "$tmp"
failed=""
for name in $names; do
    case " $SKIP " in
    *" $name "*)
        echo "valgrind: $name skipped (see SKIP in tools/valgrind.sh)"
        continue
        ;;
    esac
    exe="$BUILD/tests/test_$name"
    log="$BUILD/tests/valgrind-$name.log"
    if [ ! -x "$exe" ]; then
        echo "valgrind: $exe is missing" >&2
        failed="$failed $name"
        continue
    fi
    start=$(date +%s)
    if CK_FORK=no ETAGKV_TEST_TMP="$tmp" \
        valgrind --error-exitcode=1 --leak-check=full \
        --show-leak-kinds=definite,indirect,possible \
        --errors-for-leak-kinds=definite,indirect,possible \
        --suppressions="$ROOT/tests/valgrind.supp" \
        --log-file="$log" "$exe" >"$log.out" 2>&1; then
        echo "valgrind: $name clean ($(($(date +%s) - start)) s)"
    else
        echo "valgrind: $name FAILED; $log says:" >&2
        grep -v '^==[0-9]*== *$' "$log" | tail -n 80 >&2
        tail -n 20 "$log.out" >&2
        failed="$failed $name"
    fi
done
if [ -n "$failed" ]; then
    echo "valgrind: failed:$failed" >&2
    exit 1
fi
