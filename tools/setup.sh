#!/bin/sh
# setup.sh -- install what is missing (Debian 12 packages) and build, with
# warnings as errors (ETAGKV_WERROR; off by default for users).
#
#   tools/setup.sh [BUILD_DIR [CMAKE_ARGS...]]
#
# Sourced by start.sh and test.sh; safe to run again (installs only what is
# missing, rebuilds only what changed).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)

# Build and test dependencies.  bench/ needs more (nginx, redis, etcd); its
# own script installs those.  libgnutls28-dev: the server's SHA-256;
# openssl: the limits suite makes a self-signed certificate with it; curl
# and python3-yaml: the curl examples and the check of dist/monitoring/;
# etcd-server: the suites run again on the etcd backend (tests/etcd).
PACKAGES="gcc make cmake pkg-config liblmdb-dev libxxhash-dev check \
libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev libgnutls28-dev openssl \
curl python3-yaml etcd-server"

# $PACKAGES is a word list on purpose.
# shellcheck disable=SC2086
"$ROOT/tools/install.sh" setup $PACKAGES

BUILD=${1:-"$ROOT/build"}
[ $# -gt 0 ] && shift
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DETAGKV_WERROR=ON "$@" >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
