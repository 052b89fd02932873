#!/bin/sh
# with_etcd.sh -- run a command against a real etcd of its own: start
# etcd (Debian's etcd-server) on loopback, on free ports, with data
# directories under $TMPDIR; run the command with ETAGKV_TEST_STORE set to
# etcd://127.0.0.1:PORT[,...] (tests/common/testutil.c opens every suite's
# store under a prefix of its own there); stop etcd; exit with the
# command's status.
#
#   [ETCD_MEMBERS=3] tests/etcd/with_etcd.sh COMMAND [ARGS...]
#
# ETCD_MEMBERS (default 1) members form one cluster; the command also gets
# ETAGKV_TEST_ETCD_PIDS, their process ids in the order of the endpoints,
# so that a test can kill one.  etcd runs with --max-txn-ops and
# --max-request-bytes raised: one commit of a group-commit batch is one
# etcd Txn holding every key it writes and compares (docs/design.md);
# ETCD_LIMITS=default keeps etcd's own (128 ops, 1.5 MiB), for the tests
# of what must work within them; ETCD_LIMITS=small allows 4 operations per
# Txn, for the test of what happens past them; ETCD_LIMITS=lowered 64, a
# cluster that lowered the default.
set -eu

ETCD=${ETCD:-etcd}
MEMBERS=${ETCD_MEMBERS:-1}
limits="--max-txn-ops 100000 --max-request-bytes 33554432"
case "${ETCD_LIMITS:-}" in
default) limits= ;;
small) limits="--max-txn-ops 4" ;;
lowered) limits="--max-txn-ops 64" ;;
esac
command -v "$ETCD" >/dev/null 2>&1 || {
    echo "with_etcd.sh: $ETCD not found (Debian package etcd-server)" >&2
    exit 1
}
base=${TMPDIR:-/tmp}
mkdir -p "$base"
dir=$(mktemp -d "$base/etcd-XXXXXX")
pids=
stop() {
    for p in $pids; do
        kill "$p" 2>/dev/null || true
    done
    for p in $pids; do
        wait "$p" 2>/dev/null || true
    done
    pids=
    rm -rf "$dir"
}
trap stop EXIT INT TERM

# 2 * MEMBERS free loopback ports: ask the kernel (bind to port 0), all
# held at once so that none is handed out twice.
ports() {
    python3 -c 'import socket, sys
s = [socket.socket() for _ in range(2 * int(sys.argv[1]))]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))' "$MEMBERS"
}

# Is the member with client port $1 answering?
answers() {
    curl -sf -m 1 -X POST -d '{"key":"AA=="}' \
        "http://127.0.0.1:$1/v3/kv/range" >/dev/null 2>&1
}

start_cluster() {
    # shellcheck disable=SC2046 # a list of numbers
    set -- $(ports)
    cluster= endpoints= clients=
    i=0
    for p in "$@"; do
        [ $((i % 2)) = 1 ] && cluster="$cluster${cluster:+,}m$((i / 2))=http://127.0.0.1:$p"
        i=$((i + 1))
    done
    i=0
    while [ $i -lt "$MEMBERS" ]; do
        client=$(echo "$@" | cut -d' ' -f$((2 * i + 1)))
        peer=$(echo "$@" | cut -d' ' -f$((2 * i + 2)))
        # shellcheck disable=SC2086 # $limits: two options and their values, or none
        "$ETCD" --name "m$i" --data-dir "$dir/data$i" \
            --listen-client-urls "http://127.0.0.1:$client" \
            --advertise-client-urls "http://127.0.0.1:$client" \
            --listen-peer-urls "http://127.0.0.1:$peer" \
            --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
            --initial-cluster "$cluster" \
            $limits \
            --log-level error >"$dir/etcd$i.log" 2>&1 &
        pids="$pids${pids:+ }$!"
        endpoints="$endpoints${endpoints:+,}127.0.0.1:$client"
        clients="$clients $client"
        i=$((i + 1))
    done
    n=0
    while [ $n -lt 150 ]; do
        up=1
        for c in $clients; do
            answers "$c" || up=0
        done
        [ $up = 1 ] && return 0
        for p in $pids; do
            kill -0 "$p" 2>/dev/null || return 1
        done
        sleep 0.1
        n=$((n + 1))
    done
    return 1
}

attempt=0
until start_cluster; do
    attempt=$((attempt + 1))
    if [ $attempt -ge 5 ]; then
        echo "with_etcd.sh: etcd did not start:" >&2
        cat "$dir"/etcd*.log >&2
        exit 1
    fi
    stop
    dir=$(mktemp -d "$base/etcd-XXXXXX")
done

status=0
ETAGKV_TEST_STORE="etcd://$endpoints" ETAGKV_TEST_ETCD_PIDS="$pids" "$@" ||
    status=$?
exit $status
