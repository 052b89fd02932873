#!/bin/sh
# test_eventsource.sh -- the /changes event stream read by a real
# EventSource implementation (the npm "eventsource" package under node).
#
#   test_eventsource.sh SERVER_BIN WORKDIR
#
# Installs the package with npm into WORKDIR (once: a pinned version,
# three tries, put in place only when whole), starts etagkv-server on a
# free port with a fresh data directory, runs eventsource_client.js.
set -eu
bin=${1:?usage: test_eventsource.sh SERVER_BIN WORKDIR}
work=${2:?usage: test_eventsource.sh SERVER_BIN WORKDIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
if [ ! -d "$work/node_modules/eventsource" ]; then
    for try in 1 2 3; do
        rm -rf "$work/npm.tmp"
        mkdir "$work/npm.tmp"
        # --prefix: npm would otherwise install into the first folder
        # above with a node_modules (a $work/node_modules cut short).
        if npm install --prefix "$work/npm.tmp" --no-audit --no-fund \
            --fetch-retries=4 eventsource@3.0.7 >"$work/npm.log" 2>&1; then
            rm -rf "$work/node_modules"
            mv "$work/npm.tmp/node_modules" "$work/node_modules"
            break
        fi
        cat "$work/npm.log" >&2
        [ "$try" -lt 3 ] || { echo "npm install failed 3 times" >&2; exit 1; }
        sleep 10
    done
    rm -rf "$work/npm.tmp"
fi
data=$(mktemp -d)
log=$data.log
: >"$log" # exists before the server's first line, for the sed below
"$bin" --data "$data/d" --listen 127.0.0.1:0 --nosync >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data" "$log"' EXIT
port=
for _ in $(seq 300); do
    port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "server did not start"; cat "$log"; exit 1; }
NODE_PATH="$work/node_modules" node "$here/eventsource_client.js" "$port"
