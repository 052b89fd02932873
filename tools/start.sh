#!/bin/sh
# start.sh -- install what is missing, build, and run etagkv-server on
# 127.0.0.1:8080 with its data in ./etagkv-data (override with the usual
# server options, e.g. tools/start.sh --listen 127.0.0.1:9000).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/tools/setup.sh" "$ROOT/build"
exec "$ROOT/build/server/etagkv-server" --data "$ROOT/etagkv-data" \
    --listen 127.0.0.1:8080 "$@"
