#!/bin/sh
# failover.sh DIR -- with examples/ha/start.sh's layout running in DIR:
# compare-and-set increments through HAProxy from a few clients, and after
# a few seconds SIGKILL the etcd leader and the front end front1 (a lost
# machine, not a clean stop).  Then check that no acknowledged increment
# was lost and none invented (each counter lies between its acknowledged
# increments and those plus the ones whose outcome is unknown: 503
# OUTCOME_UNKNOWN, or HAProxy's 502/504 for a request it had sent), and
# print the longest time without an acknowledged write.  Run by hand; CI
# runs the same failure, and more, in tests/server/test_ha.c
# (docs/deploy.md).
#
#   examples/ha/failover.sh DIR [SECONDS] [CLIENTS]     (default 12, 3)
set -eu

if [ $# -lt 1 ] || [ ! -f "$1/pids" ]; then
    echo "usage: failover.sh DIR [SECONDS] [CLIENTS]" >&2
    exit 2
fi
dir=$1
secs=${2:-12}
clients=${3:-3}
url=http://127.0.0.1:18080
work=$(mktemp -d "$dir/failover-XXXXXX")
now() { date +%s.%N; }

# The member that is the cluster's leader: each member's status names the
# leader's id and its own.
leader() {
    for c in 2379 22379 32379; do
        st=$(curl -s -m 1 -X POST -d '{}' \
            "http://127.0.0.1:$c/v3/maintenance/status" | tr -d ' \n' || true)
        me=$(echo "$st" | sed -n 's/.*"member_id":"\([0-9]*\)".*/\1/p')
        lead=$(echo "$st" | sed -n 's/.*"leader":"\([0-9]*\)".*/\1/p')
        if [ -n "$me" ] && [ "$me" = "$lead" ]; then echo "$c"; fi
    done
    return 0
}

# One client: read the counter, PUT value+1 If-Match its ETag (or
# If-None-Match: * while absent); a 412 re-reads.  Logs "time outcome".
client() {
    key=c$1
    log=$work/$key.log
    end=$(($(date +%s) + secs))
    while [ "$(date +%s)" -lt "$end" ]; do
        code=$(curl -s -m 5 -o "$work/$key.body" -D "$work/$key.hdr" \
            -w '%{http_code}' "$url/kv/$key") || code=000
        case $code in
        200)
            v=$(cat "$work/$key.body")
            cond="If-Match: $(sed -n 's/^[Ee][Tt][Aa][Gg]: *\([^\r]*\).*/\1/p' "$work/$key.hdr")"
            ;;
        404) v=0 cond='If-None-Match: *' ;;
        *)
            echo "$(now) get-$code" >>"$log"
            sleep 0.05
            continue
            ;;
        esac
        code=$(curl -s -m 5 -o "$work/$key.body" -w '%{http_code}' -X PUT \
            -H "$cond" --data-binary $((v + 1)) "$url/kv/$key") || code=000
        case $code in
        200 | 201) echo "$(now) ack" >>"$log" ;;
        412) ;;
        503)
            if grep -q OUTCOME_UNKNOWN "$work/$key.body"; then
                echo "$(now) unknown 503-outcome-unknown" >>"$log"
            else
                echo "$(now) refused 503" >>"$log"
            fi
            ;;
        # Sent, and no answer from the front end: HAProxy's 502 (the
        # connection broke) or 504 (timeout), or curl's own timeout.  The
        # write may have been applied, as with OUTCOME_UNKNOWN.
        502 | 504 | 000) echo "$(now) unknown $code" >>"$log" ;;
        *) echo "$(now) refused $code" >>"$log" ;;
        esac
    done
}

echo "$(date +%T) PUT and GET through HAProxy:"
curl -si -X PUT --data-binary hello "$url/kv/greeting" | sed -n '1p;/^[Ee][Tt]ag/p'
curl -s "$url/kv/greeting"
echo

i=1
cpids=
while [ $i -le "$clients" ]; do
    client $i &
    cpids="$cpids $!"
    i=$((i + 1))
done
sleep 3
lead=$(leader)
[ -n "$lead" ] || {
    echo "failover.sh: no etcd member says it is the leader" >&2
    exit 1
}
epid=$(awk -v m="etcd-m$(case $lead in 2379) echo 0 ;; 22379) echo 1 ;; *) echo 2 ;; esac)" '$1 == m {print $2}' "$dir/pids")
fpid=$(awk '$1 == "front1" {print $2}' "$dir/pids")
killed=$(now)
echo "$(date +%T) SIGKILL etcd leader (client port $lead, pid $epid) and front1 (pid $fpid)"
kill -9 "$epid" "$fpid"
for p in $cpids; do
    wait "$p"
done
echo "$(date +%T) clients done; leader now on client port $(leader)"

status=0
i=1
while [ $i -le "$clients" ]; do
    key=c$i
    log=$work/$key.log
    acked=$(grep -c ' ack$' "$log" || true)
    unknown=$(grep -c ' unknown ' "$log" || true)
    others=$(grep -v ' ack$' "$log" | cut -d' ' -f2- | sort | uniq -c |
        awk '{printf " %s x%s", $2 ($3 != "" ? " " $3 : ""), $1}' || true)
    value=$(curl -s "$url/kv/$key")
    verdict=ok
    if [ "$value" -lt "$acked" ] || [ "$value" -gt $((acked + unknown)) ]; then
        verdict=WRONG
        status=1
    fi
    echo "$key: value $value, acknowledged $acked, outcome unknown $unknown ->" \
        "$verdict; not acknowledged:${others:- none}"
    i=$((i + 1))
done
sort -n "$work"/c*.log | awk -v k="$killed" '
    $2 == "ack" { if (last != "" && $1 - last > gap) { gap = $1 - last; at = last - k } last = $1 }
    END { printf "longest time without an acknowledged write: %.2f s, from %.2f s %s the kill\n",
                 gap, at < 0 ? -at : at, at < 0 ? "before" : "after" }'
echo "HAProxy's view:"
curl -s "http://127.0.0.1:18404/stats;csv" | awk -F, '$1 == "etagkv_fronts" && $2 ~ /^front/ {print "  " $2 ": " $18}'
rm -rf "$work"
exit $status
