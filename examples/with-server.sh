#!/bin/sh
# with-server.sh DATA_DIR SERVER [ARGS...] -- COMMAND [ARGS...]
#
# Start SERVER [ARGS...] --data DATA_DIR --listen 127.0.0.1:0 (a free port),
# run COMMAND [ARGS...] with the server's URL as its last argument, stop
# the server (SIGTERM) and exit with COMMAND's status.  Used by CTest for
# rebase.sh and by tools/package.sh for the installed server.
set -eu
data=$1
shift
server=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    server="$server $1" # split again below: no spaces in these arguments
    shift
done
[ $# -gt 1 ] || { echo "usage: with-server.sh DATA SERVER... -- CMD..." >&2; exit 2; }
shift

out=$(mktemp)
# shellcheck disable=SC2086 # $server is a command and its arguments
$server --data "$data" --listen 127.0.0.1:0 >"$out" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$out"' EXIT

# The server prints "etagkv-server listening on URL" once it accepts.
url=""
for _ in $(seq 300); do
    url=$(sed -n 's/^etagkv-server listening on //p' "$out")
    [ -z "$url" ] || break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$url" ]; then
    echo "with-server.sh: the server did not start:" >&2
    cat "$out" >&2
    exit 1
fi

rc=0
"$@" "$url" || rc=$?
kill -TERM "$pid"
wait "$pid" || { echo "with-server.sh: the server exited $?" >&2; rc=1; }
exit "$rc"
