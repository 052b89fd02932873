#!/bin/sh
# rebase.sh [URL] -- the 412 round trip with curl against etagkv-server
# (default http://127.0.0.1:8080): two clients read the same ETag and both
# write If-Match it; one gets 200, the other 412 with the current ETag, and
# rebases: re-reads, recomputes, writes If-Match the fresh ETag.
set -eu
url=${1:-http://127.0.0.1:8080}/kv/rebase-example
h=$(mktemp)
trap 'rm -f "$h"' EXIT

# Print a request's HTTP status; its response headers go to $h.
req() { curl -s -o /dev/null -D "$h" -w '%{http_code}' "$@" "$url"; }
etag() { tr -d '\r' <"$h" | sed -n 's/^[Ee][Tt][Aa][Gg]: *//p'; }

req -X PUT --data-binary 5 >/dev/null
e=$(etag)                                      # both clients read 5, ETag $e
a=$(req -X PUT -H "If-Match: $e" --data-binary 6)   # client A: 200
b=$(req -X PUT -H "If-Match: $e" --data-binary 6)   # client B: 412
v=$(curl -s -D "$h" "$url")                    # B re-reads: 6, and its ETag
c=$(req -X PUT -H "If-Match: $(etag)" --data-binary $((v + 1)))   # 200
v=$(curl -s "$url")
echo "A $a, B $b, B after the rebase $c; the value is $v"
[ "$a $b $c $v" = "200 412 200 7" ]
