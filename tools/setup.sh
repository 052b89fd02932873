#!/bin/sh
# setup.sh -- install what is missing (Debian 12 packages) and build, with
# warnings as errors (ETAGKV_WERROR; off by default for users).
#
#   tools/setup.sh [--server-only] [BUILD_DIR [CMAKE_ARGS...]]
#
# Run by start.sh (--server-only: what the library, etagkv-server and the
# CLI need, built without the tests, benchmarks and examples) and by
# test.sh (everything); safe to run again (installs only what is missing,
# rebuilds only what changed).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" = "--server-only" ]; then
    shift
    # libgnutls28-dev: the server's SHA-256 (and TLS).
    # shellcheck disable=SC2086 # a word list on purpose
    "$ROOT/tools/install.sh" setup gcc make cmake pkg-config liblmdb-dev \
        libxxhash-dev libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev \
        libgnutls28-dev
    BUILD=${1:-"$ROOT/build-server"}
    [ $# -gt 0 ] && shift
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DETAGKV_BUILD_TESTS=OFF -DETAGKV_BUILD_BENCH=OFF \
        -DETAGKV_BUILD_EXAMPLES=OFF "$@" >/dev/null
    cmake --build "$BUILD" -j "$(nproc)"
    exit 0
fi

# Build and test dependencies.  bench/ needs more (nginx, redis, etcd); its
# own script installs those.  libgnutls28-dev: the server's SHA-256;
# openssl: the limits suite makes a self-signed certificate with it; curl
# and python3-yaml: the curl examples and the check of dist/monitoring/;
# prometheus: its promtool checks and unit-tests the alert rules;
# python3-requests and nodejs (Debian 12: Node 18, with fetch): the Python
# and JavaScript clients of examples/clients/; etcd-server: the suites run
# again on the etcd backend (tests/etcd); haproxy: the HA suite runs
# examples/ha/haproxy.cfg (tests/server/test_ha.c).
PACKAGES="gcc make cmake pkg-config liblmdb-dev libxxhash-dev check \
libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev libgnutls28-dev openssl \
curl python3-yaml prometheus python3-requests nodejs etcd-server haproxy"

# --no-services: installing prometheus, etcd-server or haproxy must not
# start their services (only promtool and the etcd and haproxy binaries
# are wanted).  $PACKAGES is a word list on purpose.
# shellcheck disable=SC2086
"$ROOT/tools/install.sh" --no-services setup $PACKAGES
# npm: the eventsource test installs the npm "eventsource" package with it.
# Debian's nodejs ships without npm (its own package); NodeSource's nodejs
# includes it, and Debian's npm package would conflict with that one.
command -v npm >/dev/null 2>&1 || "$ROOT/tools/install.sh" setup npm

BUILD=${1:-"$ROOT/build"}
[ $# -gt 0 ] && shift
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DETAGKV_WERROR=ON "$@" >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
