#!/bin/sh
# rmw.sh URL KEY N [MAX_ATTEMPTS] -- add 1 to the decimal counter under
# /kv/KEY of etagkv-server at URL, N times, each a read-modify-write that
# handles 412 deterministically:
#
#   read (GET: value and ETag; 404: 0 and "absent")
#   write the new value If-Match: the ETag read (If-None-Match: * when
#     absent), with Prefer: return=representation
#   200/201: done.  412: rebase from the 412 itself -- it carries the
#     current value and ETag (Preference-Applied), or, for an absent key,
#     a problem+json body with "exists": false -- so no second read; wait
#     a jittered, doubling backoff and try again, at most MAX_ATTEMPTS
#     (default 10) times.  The last attempt asks for no representation, so
#     that its 412 is the diagnosis: the error names the key, the condition
#     that decided and how stale the ETag was, and the increment counts as
#     failed.  Anything else: stop (exit 1).
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

# One response header's value (case-insensitive name), or "".
header() {
    tr -d '\r' <"$tmp/hdr" | sed -n "s/^$1: *//Ip" | tail -n 1
}

# GET the counter: $value and $etag ("" when absent).
read_state() {
    code=$(curl -s -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' "$url")
    case $code in
    200) value=$(cat "$tmp/body") etag=$(header ETag) ;;
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

# One member of a problem+json body (a string, number or boolean), or "".
member() {
    tr -d '\n' <"$tmp/body" | sed -n "s/.*\"$1\": *\\(\"[^\"]*\"\\|[^,}]*\\).*/\\1/p" |
        sed 's/^"//; s/"$//; s/\\"/"/g'
}

# Rebase $value and $etag on the 412 in $tmp: its representation when the
# server applied the preference, else its problem+json ("exists": false:
# the key is absent).  A key that exists without a representation (the
# server had no memory to spare for it) is read again.
rebase() {
    if [ -n "$(header Preference-Applied)" ]; then
        value=$(cat "$tmp/body") etag=$(header ETag)
    elif [ "$(member exists)" = "false" ]; then
        value=0 etag=""
    else
        read_state
    fi
}

i=0
while [ "$i" -lt "$n" ]; do
    i=$((i + 1))
    read_state
    attempt=0
    while :; do
        attempt=$((attempt + 1))
        if [ -n "$etag" ]; then
            cond="If-Match: $etag"
        else
            cond="If-None-Match: *"
        fi
        prefer="Prefer: return=representation"
        [ "$attempt" -lt "$max" ] || prefer="Prefer: return=minimal"
        code=$(curl -s -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' \
            -X PUT -H "$cond" -H "$prefer" -H 'Content-Type: text/plain' \
            --data-binary "$((value + 1))" "$url")
        case $code in
        200 | 201) ok=$((ok + 1)); break ;;
        412) ;;
        *) echo "rmw.sh: PUT $url: $code" >&2; cat "$tmp/body" >&2; exit 1 ;;
        esac
        if [ "$attempt" -ge "$max" ]; then
            echo "rmw.sh: $url: gave up after $max attempts (412: $(member decided_by) false; sent ETag superseded $(member age_ms) ms before)" >&2
            failed=$((failed + 1))
            break
        fi
        rebase
        backoff "$attempt"
    done
done
echo "ok=$ok failed=$failed"
[ "$failed" -eq 0 ] || exit 3
