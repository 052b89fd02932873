#!/bin/sh
# test_eventsource.sh -- the /changes event stream read by a real
# EventSource implementation (the npm "eventsource" package under node).
#
#   test_eventsource.sh SERVER_BIN WORKDIR
#
# Installs the package with npm into WORKDIR (once), starts etagkv-server
# on a free port with a fresh data directory, runs eventsource_client.js.
set -eu
bin=${1:?usage: test_eventsource.sh SERVER_BIN WORKDIR}
work=${2:?usage: test_eventsource.sh SERVER_BIN WORKDIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
if [ ! -d "$work/node_modules/eventsource" ]; then
    (cd "$work" && npm install --no-audit --no-fund --silent eventsource@3)
fi
data=$(mktemp -d)
log=$data.log
: >"$log" # exists before the server's first line, for the sed below
"$bin" --data "$data/d" --listen 127.0.0.1:0 --nosync >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data" "$log"' EXIT
port=
for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "server did not start"; cat "$log"; exit 1; }
NODE_PATH="$work/node_modules" node "$here/eventsource_client.js" "$port"
