#!/bin/sh
# run_concurrent.sh COPIES N CLIENT [ARGS...] URL -- run COPIES copies of
# a read-modify-write client at once, each adding 1 to the counter
# "concurrent-<pid>" N times (CLIENT ARGS... URL KEY N), then check that the
# counter equals the increments the copies report as made ("ok=<n>"): no
# lost update, no double count, whatever the 412s and retries.  Used by
# CTest under with-server.sh, which appends URL.
set -eu
copies=$1
n=$2
shift 2
url=$(eval "echo \${$#}")
client=""
while [ $# -gt 1 ]; do
    client="$client $1" # split again below: no spaces in these arguments
    shift
done
key=concurrent-$$
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

pids=""
i=0
while [ "$i" -lt "$copies" ]; do
    # shellcheck disable=SC2086 # $client is a command and its arguments
    $client "$url" "$key" "$n" >"$out/$i" 2>"$out/$i.err" &
    pids="$pids $!"
    i=$((i + 1))
done
rc=0
for pid in $pids; do
    wait "$pid" || { s=$?; [ "$s" -eq 3 ] || rc=1; }
done
made=0
i=0
while [ "$i" -lt "$copies" ]; do
    ok=$(sed -n 's/^ok=\([0-9]*\) .*/\1/p' "$out/$i")
    [ -n "$ok" ] || { echo "copy $i printed no count:"; cat "$out/$i" "$out/$i.err"; rc=1; ok=0; }
    made=$((made + ok))
    i=$((i + 1))
done
final=$(curl -s "$url/kv/$key")
echo "$copies copies x $n: $made increments made, counter $final"
cat "$out"/*.err >&2 || true
[ "$rc" -eq 0 ] && [ "$made" -gt 0 ] && [ "$final" = "$made" ]
