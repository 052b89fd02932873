#!/bin/sh
# run_watch.sh -- notification latency (issue 13): etagkv-server's event
# stream against etcd's watch (JSON gateway) and Redis keyspace
# notifications, in the same run, with 1, 100 and 1,000 watchers on one key
# and on a prefix; prints each line of bench_watch and the p99 ratios.
#
#   bench/run_watch.sh [--writes N] [--watchers "1 100 1000"] [--quick]
#
# Durability as each system is usually run for this: etagkv-server
# --nosync, etcd as it comes (it fsyncs every commit), Redis without
# persistence.  The latency measured is "write sent -> watcher has the
# event", over every watcher and write.  Never part of CTest.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
WRITES=200
COUNTS="1 100 1000"
while [ $# -gt 0 ]; do
    case "$1" in
    --writes) WRITES=$2; shift 2 ;;
    --watchers) COUNTS=$2; shift 2 ;;
    --quick) WRITES=20; COUNTS="1 100"; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "run_watch.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
"$ROOT/tools/install.sh" --no-services run_watch etcd-server redis-server
"$ROOT/tools/setup.sh" "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DETAGKV_BUILD_TESTS=OFF
B="$BUILD/bench/bench_watch"

T=$(mktemp -d "${TMPDIR:-/tmp}/etagkv-watch-XXXXXX")
PIDS=""
stop_all() {
    for pid in $PIDS; do kill "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in $PIDS; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$T"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# A port for etcd and Redis: ask the kernel (bind to 0) through python3.
port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

up() { # up NAME COMMAND...: retry for up to 20 s
    n=$1; shift
    for _ in $(seq 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "run_watch: $n did not come up" >&2; exit 1
}

"$BUILD/server/etagkv-server" --data "$T/kv" --listen 127.0.0.1:0 --nosync \
    --max-connections 4096 --max-connections-per-client 4096 >"$T/kv.out" 2>"$T/kv.log" &
PIDS="$PIDS $!"
up etagkv grep -q listening "$T/kv.out"
KV=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/kv.out")
ETCD=$(port)
PEER=$(port)
etcd --name w --data-dir "$T/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD" \
    --advertise-client-urls "http://127.0.0.1:$ETCD" \
    --listen-peer-urls "http://127.0.0.1:$PEER" \
    --initial-advertise-peer-urls "http://127.0.0.1:$PEER" \
    --initial-cluster "w=http://127.0.0.1:$PEER" \
    --logger zap --log-level warn >"$T/etcd.log" 2>&1 &
PIDS="$PIDS $!"
up etcd curl -sf "http://127.0.0.1:$ETCD/health"
REDIS=$(port)
redis-server --port "$REDIS" --bind 127.0.0.1 --save '' --appendonly no \
    --maxclients 10000 --notify-keyspace-events 'K$' --daemonize no \
    >"$T/redis.log" 2>&1 &
PIDS="$PIDS $!"
up redis sh -c "redis-cli -p $REDIS ping | grep -q PONG"

p99() { sed -n 's/.*p99_us=\([0-9]*\).*/\1/p'; }
# CPU ticks (utime + stime) of every server so far.
ticks() {
    t=0
    for pid in $PIDS; do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
# Wait (up to 10 s) until no server burns CPU: a system still tearing
# down its last 1,000 watchers would otherwise slow the next one measured.
settle() {
    for _ in $(seq 20); do
        a=$(ticks); sleep 0.5; b=$(ticks)
        [ $((b - a)) -le 2 ] && return 0
    done
}

for scope in key prefix; do
    for n in $COUNTS; do
        # Each line printed, and its p99 kept.  Not "tee /dev/stderr":
        # with stderr redirected to a file, tee would truncate it.
        settle
        k=$("$B" etagkv "$KV" "$n" "$WRITES" "$scope")
        echo "$k"
        settle
        e=$("$B" etcd "$ETCD" "$n" "$WRITES" "$scope")
        echo "$e"
        settle
        r=$("$B" redis "$REDIS" "$n" "$WRITES" "$scope")
        echo "$r"
        k=$(echo "$k" | p99)
        e=$(echo "$e" | p99)
        r=$(echo "$r" | p99)
        awk -v k="$k" -v e="$e" -v r="$r" -v n="$n" -v s="$scope" 'BEGIN {
            printf "%s %5d watchers: p99 etagkv/etcd %.2f  etagkv/redis %.2f\n",
                   s, n, k / e, k / r }'
    done
done
settle
"$B" etagkv "$KV" 0 "$WRITES" | sed 's/^/no watchers: /'

# Write throughput with watchers connected (issue 13: >= 0.9x the rate
# with none): writes back to back, each waiting for its own
# acknowledgement only, the watchers drained on a thread of the program's
# own.  "other": the watchers follow b/k and the writes go to c/k, so they
# only idle (what a connected watcher costs the writers); "key": every
# write goes to each of them (the fan-out's cost, FLOOD / 25 writes).
# Interleaved with the same run without watchers, three times; medians.
wps() { sed -n 's/.*writes_per_s=\([0-9]*\).*/\1/p'; }
FLOOD=$((WRITES * 25))
MAXW=$(echo "$COUNTS" | awk '{print $NF}')
for scope in other key; do
    writes=$FLOOD
    [ "$scope" = key ] && writes=$((FLOOD / 25))
    for sys in etagkv etcd redis; do
        case $sys in etagkv) p=$KV ;; etcd) p=$ETCD ;; redis) p=$REDIS ;; esac
        with=""
        without=""
        for _ in 1 2 3; do
            settle
            without="$without $("$B" "$sys" "$p" 0 "$writes" "$scope" flood | wps)"
            settle
            with="$with $("$B" "$sys" "$p" "$MAXW" "$writes" "$scope" flood | wps)"
        done
        echo "$sys $without | $with" | awk -v n="$MAXW" -v f="$writes" -v s="$scope" '
            function med(a, b, c) { return a < b ? (b < c ? b : (a < c ? c : a)) \
                                                 : (a < c ? a : (b < c ? c : b)) }
            { w0 = med($2, $3, $4); w1 = med($6, $7, $8)
              printf "flood %-5s %-6s %d writes: %d/s with no watcher, %d/s with %d: %.2fx\n",
                     s, $1, f, w0, w1, n, (w0 > 0 ? w1 / w0 : 0) }'
    done
done
