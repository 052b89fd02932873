#!/bin/sh
# stop.sh DIR -- stop what examples/ha/start.sh started in DIR (the
# processes named in DIR/pids, SIGTERM, then SIGKILL after 15 s), then
# remove DIR.  A process already gone (killed by hand) is skipped.
set -eu

if [ $# != 1 ] || [ ! -f "$1/pids" ]; then
    echo "usage: stop.sh DIR (the directory start.sh printed)" >&2
    exit 2
fi
dir=$1
pids=$(cut -d' ' -f2 "$dir/pids")
for p in $pids; do
    kill "$p" 2>/dev/null || true
done
# Not our children: poll until they are gone.
n=0
for p in $pids; do
    while kill -0 "$p" 2>/dev/null; do
        if [ $n -ge 150 ]; then
            kill -9 "$p" 2>/dev/null || true
            break
        fi
        sleep 0.1
        n=$((n + 1))
    done
done
rm -rf "$dir"
echo "stopped; $dir removed"
