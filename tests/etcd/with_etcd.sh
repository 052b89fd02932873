#!/bin/sh
# with_etcd.sh -- run a command against a real etcd of its own: start
# etcd (Debian's etcd-server) on loopback, on free ports, with a data
# directory under $TMPDIR; run the command with ETAGKV_TEST_STORE set to
# etcd://127.0.0.1:PORT (tests/common/testutil.c opens every suite's store
# under a prefix of its own there); stop etcd; exit with the command's
# status.
#
#   tests/etcd/with_etcd.sh COMMAND [ARGS...]
#
# etcd runs with --max-txn-ops and --max-request-bytes raised: one commit
# of a group-commit batch is one etcd Txn holding every key it writes and
# compares (docs/design.md).
set -eu

ETCD=${ETCD:-etcd}
command -v "$ETCD" >/dev/null 2>&1 || {
    echo "with_etcd.sh: $ETCD not found (Debian package etcd-server)" >&2
    exit 1
}
base=${TMPDIR:-/tmp}
mkdir -p "$base"
dir=$(mktemp -d "$base/etcd-XXXXXX")
pid=
stop() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap stop EXIT INT TERM

# Two free loopback ports: ask the kernel (bind to port 0), in one program.
ports() {
    python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))'
}

up=0
for attempt in 1 2 3 4 5; do
    read -r client peer <<PORTS
$(ports)
PORTS
    rm -rf "$dir/data"
    "$ETCD" --name test --data-dir "$dir/data" \
        --listen-client-urls "http://127.0.0.1:$client" \
        --advertise-client-urls "http://127.0.0.1:$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "test=http://127.0.0.1:$peer" \
        --max-txn-ops 100000 --max-request-bytes 33554432 \
        --log-level error >"$dir/etcd.log" 2>&1 &
    pid=$!
    i=0
    while [ $i -lt 100 ]; do
        if curl -sf -X POST -d '{"key":"AA=="}' \
            "http://127.0.0.1:$client/v3/kv/range" >/dev/null 2>&1; then
            up=1
            break
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    [ $up = 1 ] && break
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
done
if [ $up != 1 ]; then
    echo "with_etcd.sh: etcd did not start:" >&2
    cat "$dir/etcd.log" >&2
    exit 1
fi

status=0
ETAGKV_TEST_STORE="etcd://127.0.0.1:$client" "$@" || status=$?
exit $status
