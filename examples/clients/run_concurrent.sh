#!/bin/sh
# run_concurrent.sh COPIES N CLIENT [ARGS...] URL -- run COPIES copies of
# a read-modify-write client at once, each adding 1 to the counter
# "concurrent-<pid>" N times (CLIENT ARGS... URL KEY N), then check that the
# counter equals the increments the copies report as made ("ok=<n>"): no
# lost update, no double count, whatever the 412s and retries.  Then, from
# the server's /metrics: the copies met 412s (else the run proved nothing
# about them), and rebased from the 412s themselves (Prefer:
# return=representation): one GET per increment, none per 412.  Used by
# CTest under with-server.sh (a fresh server), which appends URL.
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
    # Every copy waits for $out/go, so that they all start together and
    # race (a fast client could otherwise finish before the next starts).
    # shellcheck disable=SC2016,SC2086 # $0 is sh -c's; $client is split
    # (30 s at most: this script may die before it creates go.)
    sh -c 'n=0; while [ ! -e "$0" ]; do
        n=$((n + 1)); [ "$n" -lt 3000 ] || exit 1; sleep 0.01; done
        exec "$@"' "$out/go" \
        $client "$url" "$key" "$n" >"$out/$i" 2>"$out/$i.err" &
    pids="$pids $!"
    i=$((i + 1))
done
: >"$out/go"
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

# A sample of the scrape in $out/metrics, 0 when absent.
sample() {
    v=$(grep -F "etagkv_http_requests_total{method=\"$1\",code=\"$2\"} " "$out/metrics" |
        sed 's/.* //')
    echo "${v:-0}"
}
# The one scrape: GETs are counted as they complete, so a second scrape
# would count the first.  The final GET above may not be counted yet.
curl -sf "$url/metrics" >"$out/metrics"
gets=$(($(sample GET 200) + $(sample GET 404)))
refused=$(sample PUT 412)
echo "$copies copies x $n: $made increments made, counter $final;" \
    "$refused 412s, $gets GETs"
cat "$out"/*.err >&2 || true
[ "$rc" -eq 0 ] && [ "$made" -gt 0 ] && [ "$final" = "$made" ] &&
    [ "$refused" -gt 0 ] && [ "$gets" -le $((copies * n + 1)) ]
