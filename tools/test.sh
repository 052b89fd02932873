#!/bin/sh
# test.sh -- install what is missing, build, and run the whole test suite
# three times: the normal build, the AddressSanitizer + UBSan build (leaks
# are failures), and the ThreadSanitizer build (tools/tsan.sh).  Then fuzz
# each libFuzzer target for ETAGKV_FUZZ_SECONDS (default 60; tools/fuzz.sh)
# and run the library suites under Valgrind (tools/valgrind.sh).  Then
# build with gcc in Release and clang in Debug, warnings as errors
# (tools/builds.sh), and build, install, use and remove the Debian packages
# (tools/package.sh).  First of all, every C file must be formatted
# (tools/format.sh --check).  Exits non-zero if anything fails.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)

"$ROOT/tools/format.sh" --check

"$ROOT/tools/setup.sh" "$ROOT/build"
(cd "$ROOT/build" && ctest --output-on-failure --timeout 600)

"$ROOT/tools/setup.sh" "$ROOT/build-asan" -DETAGKV_SANITIZE=ON \
    -DETAGKV_BUILD_BENCH=OFF
# CK_TIMEOUT_MULTIPLIER: Check's per-test timeouts, meant for the normal
# build, doubled for the sanitizers' slowdown (tools/tsan.sh: three times).
(cd "$ROOT/build-asan" &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    CK_TIMEOUT_MULTIPLIER=2 \
    ctest --output-on-failure --timeout 900)

"$ROOT/tools/tsan.sh" "$ROOT/build-tsan"
"$ROOT/tools/fuzz.sh" "${ETAGKV_FUZZ_SECONDS:-60}"
"$ROOT/tools/valgrind.sh" "$ROOT/build"
"$ROOT/tools/builds.sh"
"$ROOT/tools/package.sh"
