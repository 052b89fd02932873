#!/bin/sh
# rmw.sh URL KEY N [MAX_ATTEMPTS] -- add 1 to the decimal counter under
# /kv/KEY of etagkv-server at URL, N times, each a read-modify-write that
# handles 412 deterministically:
#
#   read (GET: value and ETag; 404: 0 and "absent")
#   write the new value If-Match: the ETag read (If-None-Match: * when
#     absent)
#   200/201: done.  412: wait a jittered, doubling backoff, then rebase
#     from the 412 -- its body has the current state ("exists", "etag"); a
#     key that is absent needs no read, else re-read the value -- and try
#     again, at most MAX_ATTEMPTS (default 10) times; past that, a clear
#     error naming the key, what decided and how stale the ETag was, and
#     the increment counts as failed.  Anything else: stop (exit 1).
#
# Prints "ok=<increments made> failed=<increments given up>" and exits 0,
# or 3 when some increment was given up.  Needs curl and sed only.
set -eu
url=${1:?usage: rmw.sh URL KEY N [MAX_ATTEMPTS]}/kv/${2:?key}
n=${3:?count}
max=${4:-10}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok=0
failed=0

# GET the counter: $value and $etag ("" when absent).
read_state() {
    code=$(curl -s -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' "$url")
    case $code in
    200)
        value=$(cat "$tmp/body")
        etag=$(tr -d '\r' <"$tmp/hdr" | sed -n 's/^[Ee][Tt][Aa][Gg]: *//p')
        ;;
    404) value=0 etag="" ;;
    *) echo "rmw.sh: GET $url: $code" >&2; exit 1 ;;
    esac
}

# Sleep a random time in [0, 2^attempt * 5 ms), at most ~1.3 s ("full
# jitter"): copies that collided do not collide again in step.
backoff() {
    cap=$((5 << ($1 < 8 ? $1 : 8)))
    r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
    ms=$((r % cap))
    sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
}

# One member of the 412 body (a string, number or boolean), or "".
member() {
    tr -d '\n' <"$tmp/body" | sed -n "s/.*\"$1\": *\\(\"[^\"]*\"\\|[^,}]*\\).*/\\1/p" |
        sed 's/^"//; s/"$//; s/\\"/"/g'
}

i=0
while [ "$i" -lt "$n" ]; do
    i=$((i + 1))
    read_state
    attempt=0
    while :; do
        if [ -n "$etag" ]; then
            cond="If-Match: $etag"
        else
            cond="If-None-Match: *"
        fi
        code=$(curl -s -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' \
            -X PUT -H "$cond" --data-binary "$((value + 1))" "$url")
        case $code in
        200 | 201) ok=$((ok + 1)); break ;;
        412) ;;
        *) echo "rmw.sh: PUT $url: $code" >&2; cat "$tmp/body" >&2; exit 1 ;;
        esac
        attempt=$((attempt + 1))
        if [ "$attempt" -ge "$max" ]; then
            echo "rmw.sh: $url: gave up after $max attempts (412: $(member decided_by) false; sent ETag superseded $(member age_ms) ms before)" >&2
            failed=$((failed + 1))
            break
        fi
        # Back off first, so that the state rebased on is fresh when used.
        backoff "$attempt"
        # Rebase: the 412 body says what is current.
        if [ "$(member exists)" = "false" ]; then
            value=0 etag=""
        else
            read_state
        fi
    done
done
echo "ok=$ok failed=$failed"
[ "$failed" -eq 0 ] || exit 3
