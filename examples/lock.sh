#!/bin/sh
# lock.sh URL NAME COMMAND [ARGS...] -- run COMMAND while holding the lock
# NAME of the etagkv-server at URL (docs/recipes.md), with curl only.
#
# Acquire = a lease plus a create-only PUT of /kv/locks/NAME attached to it
# (If-None-Match: *, ETagKV-Lease) with Prefer: wait: while someone else
# holds the lock, the server holds the PUT and applies it in the commit
# that frees the lock (docs/http.md, "Writes that wait"), first come first
# served; a 412 means the wait ended with the lock still taken: renew our
# lease and ask again (after a pause if the server was too busy to hold
# it: no Preference-Applied).  The wait is half our TTL, so that our lease, which
# the PUT attaches, is still alive when the lock comes.  Held: renew the lease every
# third of its TTL while COMMAND runs, then release by revoking the lease
# (which deletes the lock key).  If this shell dies, even by SIGKILL, the
# renewer notices within a third of the TTL and stops, nobody renews, and
# the lock frees itself within the TTL.
#
# ETAGKV_LOCK_TTL_MS sets the TTL (default 5000).  Exits with COMMAND's
# status, or 1 if the server refuses something unexpectedly.
set -eu
[ $# -ge 3 ] || { echo "usage: lock.sh URL NAME COMMAND [ARGS...]" >&2; exit 2; }
url=$1
key=$url/kv/locks/$2
shift 2
ttl=${ETAGKV_LOCK_TTL_MS:-5000}
wait=$((ttl / 2000))
[ "$wait" -ge 1 ] || wait=1
lease=""

# Renew our lease, or grant a new one if we have none or it died (a
# waiter may wait longer than its TTL).
lease_up() {
    if [ -n "$lease" ] &&
        curl -sf -o /dev/null -X POST "$url/leases/$lease/keepalive"; then
        return 0
    fi
    lease=$(curl -sf -H 'Content-Type: application/json' \
        --data-binary "{\"ttl_ms\": $ttl}" "$url/leases" |
        sed -n 's/.*"id": *"\([0-9]*\)".*/\1/p')
    [ -n "$lease" ] || { echo "lock.sh: no lease from $url" >&2; exit 1; }
}

while :; do
    lease_up
    out=$(curl -s -o /dev/null \
        -w '%{http_code} %header{preference-applied}' -X PUT \
        -H 'If-None-Match: *' -H "ETagKV-Lease: $lease" \
        -H "Prefer: wait=$wait" --data-binary "$(hostname) pid $$" "$key")
    case ${out%% *} in
    201) break ;;  # ours
    409) lease="" ;;  # our lease died (a TTL shorter than a second)
    # Still held when the wait ended: renew, and wait again.  Without
    # Preference-Applied the server did not hold the PUT (as many requests
    # wait as --max-watchers allows): pause before asking again.
    412) [ -n "${out#* }" ] || sleep 1 ;;
    *) echo "lock.sh: acquire $key: HTTP ${out%% *}" >&2; exit 1 ;;
    esac
done
echo "lock.sh: holding $key (lease $lease)" >&2

# Renew every TTL/3 while this shell ($$, also inside the subshell) lives.
period=$(printf '%d.%03d' $((ttl / 3000)) $((ttl / 3 % 1000)))
(
    while sleep "$period" && kill -0 $$ 2>/dev/null; do
        curl -sf -o /dev/null -X POST "$url/leases/$lease/keepalive" || exit 0
    done
) &
renewer=$!

rc=0
"$@" || rc=$?
kill "$renewer" 2>/dev/null || true
# Release: revoking the lease deletes the lock key in one change.
curl -s -o /dev/null -X DELETE "$url/leases/$lease"
exit "$rc"
