#!/bin/sh
# start.sh -- the high-availability layout of docs/deploy.md on one machine,
# on loopback: a 3-member etcd cluster (Debian's etcd-server), two
# etagkv-server --etcd front ends on one prefix, and HAProxy balancing them
# with health checks on /healthz (haproxy.cfg, next to this script).
#
#   examples/ha/start.sh [DIR]      then  examples/ha/stop.sh DIR
#
# Everything runs as the calling user, with its data, logs and pid list
# under DIR (default: a new directory under $TMPDIR or /tmp, printed at the
# end).  Ports, all on 127.0.0.1:
#
#   etcd m0, m1, m2   clients 2379, 22379, 32379; peers 2380, 22380, 32380
#   etagkv-server     18081 (front1), 18082 (front2), prefix /ha
#   HAProxy           18080 (clients), 18404/stats (its view of the pool)
#
# ETAGKV_SERVER names the server binary (default: etagkv-server on PATH,
# else build/server/etagkv-server of this source tree).  Run by hand; CI
# runs the same layout, on free ports and this haproxy.cfg, in
# tests/server/test_ha.c (docs/deploy.md).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
server=${ETAGKV_SERVER:-$(command -v etagkv-server ||
    echo "$here/../../build/server/etagkv-server")}
for prog in etcd haproxy curl "$server"; do
    command -v "$prog" >/dev/null 2>&1 || {
        echo "start.sh: $prog not found (Debian: etcd-server, haproxy, curl)" >&2
        exit 1
    }
done
for port in 2379 2380 22379 22380 32379 32380 18080 18081 18082 18404; do
    if curl -s -m 1 -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null ||
        [ $? != 7 ]; then
        echo "start.sh: 127.0.0.1:$port is in use" >&2
        exit 1
    fi
done

dir=${1:-$(mktemp -d "${TMPDIR:-/tmp}/etagkv-ha-XXXXXX")}
mkdir -p "$dir"
: >"$dir/pids"

# started NAME PID: remembered for stop.sh.
started() {
    echo "$1 $2" >>"$dir/pids"
}

# wait_for URL [DATA]: until it answers 2xx, at most 15 s.
wait_for() {
    n=0
    while [ $n -lt 150 ]; do
        if [ $# -gt 1 ]; then
            curl -sf -m 1 -o /dev/null -X POST -d "$2" "$1" && return 0
        else
            curl -sf -m 1 -o /dev/null "$1" && return 0
        fi
        sleep 0.1
        n=$((n + 1))
    done
    echo "start.sh: $1 did not answer; logs in $dir; stop with" \
        "examples/ha/stop.sh $dir" >&2
    exit 1
}

# The cluster: the flags tests/etcd/with_etcd.sh uses, with fixed ports.
# --max-txn-ops and --max-request-bytes are raised because one group commit
# is one etcd Txn holding every key it writes and compares (design.md).
cluster=m0=http://127.0.0.1:2380,m1=http://127.0.0.1:22380,m2=http://127.0.0.1:32380
i=0
for client in 2379 22379 32379; do
    peer=$((client + 1))
    etcd --name "m$i" --data-dir "$dir/etcd$i" \
        --listen-client-urls "http://127.0.0.1:$client" \
        --advertise-client-urls "http://127.0.0.1:$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "$cluster" --initial-cluster-state new \
        --max-txn-ops 100000 --max-request-bytes 33554432 \
        --log-level error >"$dir/etcd$i.log" 2>&1 &
    started "etcd-m$i" $!
    i=$((i + 1))
done
for client in 2379 22379 32379; do
    wait_for "http://127.0.0.1:$client/v3/kv/range" '{"key":"AA=="}'
done

# Two stateless front ends on the prefix /ha, each given every member.
# Behind HAProxy every connection comes from 127.0.0.1: the per-client
# limit (default 64) would cap the balancer, so it is raised to
# --max-connections.
endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379
n=1
for port in 18081 18082; do
    "$server" --etcd "$endpoints/ha" --listen "127.0.0.1:$port" \
        --max-connections 1024 --max-connections-per-client 1024 \
        >"$dir/front$n.log" 2>&1 &
    started "front$n" $!
    n=$((n + 1))
done
wait_for http://127.0.0.1:18081/healthz
wait_for http://127.0.0.1:18082/healthz

# haproxy.cfg takes its addresses from these variables when set (the CI
# suite sets them); unset, it uses the ports above.
unset ETAGKV_HA_LISTEN ETAGKV_HA_FRONT1 ETAGKV_HA_FRONT2 ETAGKV_HA_STATS
haproxy -db -f "$here/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
started haproxy $!
wait_for http://127.0.0.1:18080/healthz

echo "started in $dir:"
cat "$dir/pids"
echo "service: http://127.0.0.1:18080/kv/KEY; stop: $here/stop.sh $dir"
