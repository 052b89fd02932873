#!/bin/sh
# leader.sh URL NAME -- stand as candidate NAME in the leader election of
# the etagkv-server at URL (docs/recipes.md), with curl only; runs until
# killed or until it loses the leadership it had.
#
# Candidates race to create /kv/leader with their lease (If-None-Match: *,
# ETagKV-Lease).  The winner's ETagKV-Revision (the revision that created
# the key) is its fencing token: everything it writes elsewhere goes in a
# POST /txn that first checks that /kv/leader is still at that revision,
# so a deposed leader's late writes are refused (409) instead of applied.
# Followers long-poll /kv/leader and stand again when it disappears, which
# happens within the TTL once the leader stops renewing (it died, or lost
# the network).
#
# As leader it renews its lease and writes "NAME token T tick N" to
# /kv/config once per period.  It prints "NAME leads with token T" when
# elected.  ETAGKV_LEADER_TTL_MS sets the TTL (default 3000).
set -eu
[ $# -eq 2 ] || { echo "usage: leader.sh URL NAME" >&2; exit 2; }
url=$1
name=$2
ttl=${ETAGKV_LEADER_TTL_MS:-3000}
period=$(printf '%d.%03d' $((ttl / 3000)) $((ttl / 3 % 1000)))
hdr=$(mktemp)
trap 'rm -f "$hdr"' EXIT

grant() {
    lease=$(curl -sf -H 'Content-Type: application/json' \
        --data-binary "{\"ttl_ms\": $ttl}" "$url/leases" |
        sed -n 's/.*"id": *"\([0-9]*\)".*/\1/p')
    [ -n "$lease" ] || { echo "leader.sh: no lease from $url" >&2; exit 1; }
}

# Lead while the lease lives: renew, and write under the fencing token.
lead() {
    token=$1
    tick=0
    echo "$name leads with token $token"
    while curl -sf -o /dev/null -X POST "$url/leases/$lease/keepalive"; do
        tick=$((tick + 1))
        code=$(curl -s -o /dev/null -w '%{http_code}' \
            -H 'Content-Type: application/json' --data-binary \
            "{\"ops\":[{\"op\":\"check\",\"key\":\"leader\",\"if_revision\":$token},
              {\"op\":\"put\",\"key\":\"config\",\"value\":\"$name token $token tick $tick\"}]}" \
            "$url/txn")
        [ "$code" = 200 ] || break  # 409: no longer the leader
        sleep "$period"
    done
    echo "$name lost the leadership of token $token" >&2
    exit 1
}

grant
while :; do
    # Renew before every bid: a follower's long-poll may have outlived a
    # third of the TTL, and a leader must start with its lease well alive.
    curl -sf -o /dev/null -X POST "$url/leases/$lease/keepalive" || grant
    code=$(curl -s -D "$hdr" -o /dev/null -w '%{http_code}' -X PUT \
        -H 'If-None-Match: *' -H "ETagKV-Lease: $lease" \
        --data-binary "$name" "$url/kv/leader")
    case $code in
    201) lead "$(tr -d '\r' <"$hdr" | sed -n 's/^[Ee][Tt][Aa][Gg][Kk][Vv]-[Rr][Ee][Vv][Ii][Ss][Ii][Oo][Nn]: *//p')" ;;
    409) grant; continue ;;  # our lease expired between renewal and bid
    412) ;;
    *) echo "leader.sh: HTTP $code" >&2; exit 1 ;;
    esac
    # Follower: wait for the leader's key to change.
    etag=$(curl -sI "$url/kv/leader" | tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: *//p')
    # 503: the server holds as many requests as --max-watchers allows.
    [ -z "$etag" ] || [ "$(curl -s -o /dev/null -w '%{http_code}' \
        -H "If-None-Match: $etag" \
        -H "Prefer: wait=$(((ttl / 3 + 999) / 1000))" \
        "$url/kv/leader")" != 503 ] || sleep 1
done
