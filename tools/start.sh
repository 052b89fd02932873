#!/bin/sh
# start.sh -- install what is missing, build the library, etagkv-server and
# the CLI (into build-server/; the tests' own build is test.sh's build/),
# and run etagkv-server on 127.0.0.1:8080 with its data in etagkv-data/ at
# the top of this tree.  Extra arguments go to the server, and the last of
# a repeated option wins: tools/start.sh --listen 127.0.0.1:9000 --nosync.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/tools/setup.sh" --server-only "$ROOT/build-server"
exec "$ROOT/build-server/server/etagkv-server" --data "$ROOT/etagkv-data" \
    --listen 127.0.0.1:8080 "$@"
