#!/bin/sh
# run_http.sh -- the HTTP benchmark (issue 4, part 3): etagkv-server against
# nginx (GET 200 / 304), etcd v3 (compare-and-swap through its JSON gateway)
# and Redis (WATCH/MULTI/EXEC, appendfsync always), all started here on
# 127.0.0.1 with their data in a temporary directory and stopped on exit.
#
#   bench/run_http.sh [--runs N] [--seconds S] [--threads T] [--quick]
#                     [--growth-seconds S] [--out FILE] [--append]
#                     [--no-libcurl] [--no-flushes] [--only SCENARIOS]
#                     [--lock-only] [--etcd-only]
#
#   --runs N            runs of every scenario (default 3; medians reported)
#   --seconds S         measured seconds per scenario and run (default 2)
#   --threads T         load-generator threads (1 or 2, default 2)
#   --quick             skip the 60 s memory-growth run (a 10 s run still
#                       measures the server's memory under load)
#   --growth-seconds S  length of the growth run (default 60)
#   --out FILE          where the JSON lines go (default
#                       build-bench/bench-http-results.jsonl); truncated
#   --append            ... unless this is given
#   --no-libcurl        skip the libcurl column (the "typical client")
#   --no-flushes        skip the flush count (servers run again under strace)
#   --only SCENARIOS    run only these scenarios (a space-separated list of
#                       rmw-1000 rmw-hot get get304 transfer lock)
#   --lock-only         run only the lock scenario (issue 19: acquire +
#                       release cycles of one lock, 16 contending clients;
#                       etagkv lease + create-only PUT, etcd lease + Txn
#                       create, Redis SET NX PX + compare-and-delete Lua),
#                       no flush count, no memory run
#   --etcd-only         run only the etcd backend's comparison (issue 17):
#                       rmw-1000, rmw-hot and get (etcd: a Range of the
#                       key), 100 B, 16 and 64 connections,
#                       lean client, against etagkv-server --etcd (one front
#                       end: etagkv-etcd; two on the same prefix, the
#                       connections dealt out between them: etagkv-etcd2),
#                       etcd's own Txn CAS on the same etcd (its keys
#                       outside the front ends' prefix) and etagkv on LMDB;
#                       no nginx, Redis, flush count or memory run.  The
#                       table gives each target's median ops/s, p99, ratio
#                       to etcd's own CAS or Range (per run, then the
#                       median), the front ends' CPU/op and etcd's CPU/op
#                       (both serve an etagkv-on-etcd request)
#
# Every HTTP scenario runs with two load generators: the lean one (raw
# non-blocking sockets on epoll, like the RESP client for Redis), whose
# figures make the headline ratios, and libcurl, a typical client.  Each
# line also carries the server's CPU time per successful operation
# (utime + stime over the measured window from /proc, nginx's workers
# included), which does not depend on the client.  The flush count runs
# etagkv-server, Redis and etcd once more, each under strace, for a short
# RMW run, and counts the calls that flush to stable storage
# (bench/flushes.py).
#
# Installs nginx, etcd-server and redis-server with apt-get when missing
# (bench set-up only; tools/test.sh never needs them), without letting the
# packages start their system services.  Builds Release into build-bench/.
# Every scenario runs --runs times, targets interleaved within each run so
# that drift on a shared machine hits all of them; the table shows medians
# and ratios against the baselines measured in this same run.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$ROOT/build-bench"
RUNS=3
SECS=2
THREADS=2
GROWTH=60
QUICK=0
OUT="$BUILD/bench-http-results.jsonl"
APPEND=0
LIBCURL=1
FLUSHES=1
ONLY="rmw-1000 rmw-hot get get304 transfer lock"
LOCK_ONLY=0
ETCD_ONLY=0

while [ $# -gt 0 ]; do
    case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --growth-seconds) GROWTH=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --append) APPEND=1; shift ;;
    --no-libcurl) LIBCURL=0; shift ;;
    --no-flushes) FLUSHES=0; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --lock-only) ONLY=lock; LOCK_ONLY=1; FLUSHES=0; shift ;;
    --etcd-only) ONLY="rmw-1000 rmw-hot get"; ETCD_ONLY=1; FLUSHES=0; LIBCURL=0
        shift ;;
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_http.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
START_TIME=$(date +%s)

# ---- packages (only what is missing) ----------------------------------------
if [ "$ETCD_ONLY" -eq 1 ]; then
    "$ROOT/tools/install.sh" --no-services run_http etcd-server python3
else
    "$ROOT/tools/install.sh" --no-services run_http nginx etcd-server \
        redis-server strace python3
fi

# ---- build --------------------------------------------------------------------
"$ROOT/tools/setup.sh" "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DETAGKV_BUILD_TESTS=OFF
BENCH="$BUILD/bench/bench_http"
SERVER="$BUILD/server/etagkv-server"

# ---- servers ------------------------------------------------------------------
T=$(mktemp -d "${TMPDIR:-/tmp}/etagkv-http-XXXXXX")
PIDS=""
cleanup() {
    for pid in $PIDS; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $PIDS; do
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A TCP port nobody listens on (checked in /proc, bounded attempts).
free_port() {
    i=0
    while [ $i -lt 100 ]; do
        p=$(( ($(od -An -N2 -tu2 /dev/urandom) % 30000) + 20000 ))
        hex=$(printf ':%04X ' "$p")
        if ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -q "$hex"; then
            echo "$p"
            return 0
        fi
        i=$((i + 1))
    done
    echo "run_http: no free port found" >&2
    return 1
}

# wait_for NAME COMMAND...: retry COMMAND for up to 20 s.
wait_for() {
    name=$1
    shift
    i=0
    while ! "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -ge 200 ]; then
            echo "run_http: $name did not come up; its log:" >&2
            cat "$T/$name.log" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
}

# etagkv-server: sync mode (the default), port chosen by the server.  The
# load generator is one address with 64 connections and more: lift the
# per-address limit (default 64), as nginx has none.
"$SERVER" --data "$T/etagkv" --listen 127.0.0.1:0 --sync \
    --max-connections-per-client 1024 \
    >"$T/etagkv.out" 2>"$T/etagkv.log" &
KV_PID=$!
PIDS="$PIDS $KV_PID"
wait_for etagkv grep -q listening "$T/etagkv.out"
KV_PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/etagkv.out")
wait_for etagkv curl -sf "http://127.0.0.1:$KV_PORT/healthz"

start_nginx() {
# nginx: a minimal configuration close to Debian's stock one (sendfile,
# workers = CPUs), as the current user, prefix in the temp dir; no access
# log (etagkv-server has none) and keep-alive connections not recycled
# after 1,000 requests (ours never are).
NGX_PORT=$(free_port)
mkdir -p "$T/nginx/www" "$T/nginx/tmp"
for n in 100 4096; do
    {
        printf '%018d' 0
        head -c $((n - 18)) /dev/zero | tr '\0' v
    } >"$T/nginx/www/v$n"
done
{
    [ "$(id -u)" -eq 0 ] && echo "user $(id -un) $(id -gn);"
    cat <<EOF
worker_processes auto;
pid $T/nginx/nginx.pid;
daemon off;
error_log $T/nginx.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 100000000;
    client_body_temp_path $T/nginx/tmp/body;
    proxy_temp_path $T/nginx/tmp/proxy;
    fastcgi_temp_path $T/nginx/tmp/fastcgi;
    uwsgi_temp_path $T/nginx/tmp/uwsgi;
    scgi_temp_path $T/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$NGX_PORT;
        root $T/nginx/www;
    }
}
EOF
} >"$T/nginx/nginx.conf"
nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx.log" \
    >>"$T/nginx.log" 2>&1 &
NGX_PID=$!
PIDS="$PIDS $NGX_PID"
wait_for nginx curl -sf "http://127.0.0.1:$NGX_PORT/v100"
}
NGX_PORT=
NGX_PID=
[ "$ETCD_ONLY" -eq 1 ] || start_nginx

# run_etcd NAME PORT PEER_PORT [WRAPPER...]: a single etcd member, data in
# $T/NAME (etcd fsyncs every commit), run through WRAPPER (strace) if given.
run_etcd() {
    en=$1
    ep=$2
    epp=$3
    shift 3
    exec "$@" etcd --name "$en" --data-dir "$T/$en" \
        --listen-client-urls "http://127.0.0.1:$ep" \
        --advertise-client-urls "http://127.0.0.1:$ep" \
        --listen-peer-urls "http://127.0.0.1:$epp" \
        --initial-advertise-peer-urls "http://127.0.0.1:$epp" \
        --initial-cluster "$en=http://127.0.0.1:$epp" \
        --quota-backend-bytes 8589934592 --logger zap --log-level warn \
        $ETCD_LIMITS
}

# run_redis NAME PORT [WRAPPER...]: Redis with an append-only file fsynced
# on every write, no RDB snapshots, data in $T/NAME.
run_redis() {
    rn=$1
    rp=$2
    shift 2
    mkdir -p "$T/$rn"
    exec "$@" redis-server --port "$rp" --bind 127.0.0.1 --dir "$T/$rn" \
        --appendonly yes --appendfsync always --save '' --daemonize no
}

# With --etcd-only, etcd's limits on one Txn raised as docs/deploy.md says
# for a store on etcd (a group commit of 64 writes is one Txn of about 200
# operations); etcd's own CAS never comes near either limit.
ETCD_LIMITS=
[ "$ETCD_ONLY" -eq 1 ] &&
    ETCD_LIMITS="--max-txn-ops 100000 --max-request-bytes 33554432"
ETCD_PORT=$(free_port)
ETCD_PEER=$(free_port)
run_etcd etcd "$ETCD_PORT" "$ETCD_PEER" >"$T/etcd.log" 2>&1 &
ETCD_PID=$!
PIDS="$PIDS $ETCD_PID"
wait_for etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"

REDIS_PORT=
REDIS_PID=
if [ "$ETCD_ONLY" -eq 0 ]; then
    REDIS_PORT=$(free_port)
    run_redis redis "$REDIS_PORT" >"$T/redis.log" 2>&1 &
    REDIS_PID=$!
    PIDS="$PIDS $REDIS_PID"
    wait_for redis sh -c "redis-cli -p $REDIS_PORT ping | grep -q PONG"
fi

# etagkv-server --etcd, twice on one prefix of the etcd above (etcd's own
# CAS uses keys outside it): FE1 alone is the target etagkv-etcd, FE1 and
# FE2 together etagkv-etcd2.
FE1_PORT=
FE2_PORT=
FE1_PID=
FE2_PID=
if [ "$ETCD_ONLY" -eq 1 ]; then
    for fe in 1 2; do
        "$SERVER" --etcd "127.0.0.1:$ETCD_PORT/etagkv-bench" \
            --listen 127.0.0.1:0 --max-connections-per-client 1024 \
            >"$T/fe$fe.out" 2>"$T/fe$fe.log" &
        eval "FE${fe}_PID=\$!"
        PIDS="$PIDS $!"
        wait_for "fe$fe" grep -q listening "$T/fe$fe.out"
        p=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/fe$fe.out")
        eval "FE${fe}_PORT=$p"
        wait_for "fe$fe" curl -sf "http://127.0.0.1:$p/healthz"
    done
fi

port_of() {
    case "$1" in
    etagkv) echo "$KV_PORT" ;;
    etagkv-etcd) echo "$FE1_PORT" ;;
    etagkv-etcd2) echo "$FE1_PORT,127.0.0.1:$FE2_PORT" ;;
    nginx) echo "$NGX_PORT" ;;
    etcd) echo "$ETCD_PORT" ;;
    redis) echo "$REDIS_PORT" ;;
    esac
}

# The process whose CPU time is measured (bench_http adds its children:
# nginx's workers).
pid_of() {
    case "$1" in
    etagkv) echo "$KV_PID" ;;
    etagkv-etcd) echo "$FE1_PID" ;;
    etagkv-etcd2) echo "$FE1_PID,$FE2_PID" ;;
    nginx) echo "$NGX_PID" ;;
    etcd) echo "$ETCD_PID" ;;
    redis) echo "$REDIS_PID" ;;
    esac
}

# etcd keeps every revision until compacted; compact after each etcd
# scenario so that history never reaches the quota and each run starts
# from the same state (production etcd compacts too).
etcd_compact() {
    rev=$(curl -s -X POST "http://127.0.0.1:$ETCD_PORT/v3/kv/range" \
        -d '{"key":"AA=="}' |
        sed -n 's/.*"revision":"\([0-9]*\)".*/\1/p')
    [ -n "$rev" ] && curl -s -X POST \
        "http://127.0.0.1:$ETCD_PORT/v3/kv/compaction" \
        -d "{\"revision\":\"$rev\"}" >/dev/null
    return 0
}

# ---- versions -----------------------------------------------------------------
echo "== machine: $(nproc) CPUs, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== versions"
echo "etagkv-server: $("$SERVER" --version) (libmicrohttpd $(dpkg-query -W -f='${Version}' libmicrohttpd12 2>/dev/null || echo '?'), LMDB $(dpkg-query -W -f='${Version}' liblmdb0 2>/dev/null || echo '?'))"
[ "$ETCD_ONLY" -eq 1 ] || echo "nginx: $(nginx -v 2>&1 | sed 's/.*version: //') (Debian $(dpkg-query -W -f='${Version}' nginx))"
echo "etcd: $(etcd --version | head -1 | sed 's/.*Version: //') (Debian $(dpkg-query -W -f='${Version}' etcd-server))"
[ "$ETCD_ONLY" -eq 1 ] || echo "redis: $(redis-server --version | sed 's/.* v=\([^ ]*\).*/\1/') (Debian $(dpkg-query -W -f='${Version}' redis-server))"
echo "load generators: bench_http, lean (raw sockets on epoll: HTTP/1.1, RESP) and $(curl-config --version 2>/dev/null || echo libcurl), $THREADS threads"

# ---- the matrix ---------------------------------------------------------------
[ "$APPEND" -eq 1 ] || : >"$OUT"
RAW="$T/raw.jsonl"
: >"$RAW"

# bench TARGET SCENARIO SIZE CONNS RUN CLIENT; the targets etagkv-etcd and
# etagkv-etcd2 are bench_http's etagkv on the front ends, etcd's CPU
# measured beside theirs.  etagkv's rmw-hot rebases from the 412's
# representation (issue 14's hot-key target asks for it); through the
# front ends it re-reads (-R) like etcd's CAS it is compared with there.
bench() {
    case "$1" in
    etagkv-etcd*) proto=etagkv; extra="-n $1 -B $ETCD_PID -R" ;;
    *) proto=$1; extra= ;;
    esac
    # shellcheck disable=SC2086 # extra is a list of options
    if ! line=$("$BENCH" "$proto" "$2" -a "127.0.0.1:$(port_of "$1")" \
        -s "$3" -c "$4" -d "$SECS" -t "$THREADS" -k "$6" \
        -P "$(pid_of "$1")" $extra 2>"$T/bench.err"); then
        echo "run_http: bench_http $1 $2 -s $3 -c $4 -k $6 failed:" >&2
        cat "$T/bench.err" >&2
        exit 1
    fi
    echo "$line" | sed "s/^{/{\"run\":$5,\"loadavg\":\"$(cut -d' ' -f1 /proc/loadavg)\",/" >>"$RAW"
    cat "$T/bench.err" >&2
    case "$1" in etcd | etagkv-etcd*) etcd_compact ;; esac
    return 0
}

# bench_http TARGET SCENARIO ... with every client: lean, then libcurl;
# nothing for a scenario left out by --only.
bench_all() {
    case " $ONLY " in *" $2 "*) ;; *) return 0 ;; esac
    bench "$@" lean
    [ "$LIBCURL" -eq 1 ] && [ "$1" != redis ] && bench "$@" libcurl
    return 0
}

if [ "$ETCD_ONLY" -eq 1 ]; then
    echo "== $RUNS runs x 3 scenarios x 2 connection counts (100 B) x 4 targets of ${SECS} s, lean client (progress on stderr)"
else
echo "== $RUNS runs x 4 sizes/connections x 6 scenarios (and transfers, 100 B x 64; locks, 16 clients) of ${SECS} s, lean$([ "$LIBCURL" -eq 1 ] && echo " and libcurl") clients (progress on stderr)"
fi
run=1
while [ "$run" -le "$RUNS" ]; do
    echo "-- run $run of $RUNS" >&2
    if [ "$ETCD_ONLY" -eq 1 ]; then
        for conns in 16 64; do
            for scen in rmw-1000 rmw-hot get; do
                for tgt in etagkv-etcd etagkv-etcd2 etcd etagkv; do
                    bench_all "$tgt" "$scen" 100 "$conns" "$run"
                done
            done
        done
        run=$((run + 1))
        continue
    fi
    # The lock (issue 19): 16 clients contend for one lock, 100-byte
    # bodies (the -s of bench_http is unused by this scenario).
    for tgt in etagkv etcd redis; do
        bench_all "$tgt" lock 100 16 "$run"
    done
    if [ "$LOCK_ONLY" -eq 1 ]; then
        run=$((run + 1))
        continue
    fi
    for size in 100 4096; do
        for conns in 16 64; do
            for scen in rmw-1000 rmw-hot; do
                for tgt in etagkv etcd redis; do
                    bench_all "$tgt" "$scen" "$size" "$conns" "$run"
                done
            done
            for scen in get get304; do
                for tgt in etagkv nginx; do
                    bench_all "$tgt" "$scen" "$size" "$conns" "$run"
                done
            done
        done
    done
    # Transfers (issue 12): 64 clients, 1,000 accounts, 100-byte values.
    for tgt in etagkv etcd redis; do
        bench_all "$tgt" transfer 100 64 "$run"
    done
    run=$((run + 1))
done
cat "$RAW" >>"$OUT"

# ---- flushes per durable write ---------------------------------------------------
# Each durable server once more, alone and under strace (--seccomp-bpf: only
# the traced calls stop the server, but they do stop it, so this run's
# throughput is not a result), for a short rmw-1000 run, 100 B, 64
# connections.  Counted over the server's whole run, seeding included:
# the calls that flush (bench/flushes.py) per acknowledged write, and for
# etagkv per write transaction too (/metrics).
FLUSHES_OUT="$T/flushes.jsonl"
: >"$FLUSHES_OUT"
TRACE="openat,fsync,fdatasync,syncfs,sync,sync_file_range,msync,pwrite64,pwritev,pwritev2"

# flush_count NAME TARGET PORT PID: run the load on the traced server PID
# (strace is TR_PID, its log $T/NAME.strace), stop it, count.
flush_count() {
    name=$1
    tgt=$2
    port=$3
    pid=$4
    line=$("$BENCH" "$tgt" rmw-1000 -a "127.0.0.1:$port" -s 100 -c 64 \
        -d "$SECS" -t "$THREADS" 2>/dev/null) ||
        { echo "run_http: flush run of $name failed" >&2; exit 1; }
    acked=$(echo "$line" | sed 's/.*"acked_writes":\([0-9]*\).*/\1/')
    txns=-
    if [ "$tgt" = etagkv ]; then
        txns=$(curl -s "http://127.0.0.1:$port/metrics" |
            sed -n 's/^etagkv_store_write_txns_total \([0-9]*\).*/\1/p')
    fi
    kill "$pid"
    wait "$TR_PID" 2>/dev/null || true
    python3 "$ROOT/bench/flushes.py" "$tgt" "$T/$name.strace" "$acked" \
        "${txns:--}" >>"$FLUSHES_OUT"
}

if [ "$FLUSHES" -eq 1 ]; then
    echo "== flushes per durable write (a separate run of each server under strace)"
    p=$(free_port)
    strace -f -qq --seccomp-bpf -e trace="$TRACE" -o "$T/etagkv-fl.strace" \
        "$SERVER" --data "$T/etagkv-fl" --listen "127.0.0.1:$p" --sync \
        --max-connections-per-client 1024 >"$T/etagkv-fl.log" 2>&1 &
    TR_PID=$!
    PIDS="$PIDS $TR_PID"
    wait_for etagkv-fl curl -sf "http://127.0.0.1:$p/healthz"
    flush_count etagkv-fl etagkv "$p" "$(pgrep -P "$TR_PID")"

    p=$(free_port)
    run_redis redis-fl "$p" strace -f -qq --seccomp-bpf -e trace="$TRACE" \
        -o "$T/redis-fl.strace" >"$T/redis-fl.log" 2>&1 &
    TR_PID=$!
    PIDS="$PIDS $TR_PID"
    wait_for redis-fl sh -c "redis-cli -p $p ping | grep -q PONG"
    flush_count redis-fl redis "$p" "$(pgrep -P "$TR_PID")"

    p=$(free_port)
    pp=$(free_port)
    run_etcd etcd-fl "$p" "$pp" strace -f -qq --seccomp-bpf \
        -e trace="$TRACE" -o "$T/etcd-fl.strace" >"$T/etcd-fl.log" 2>&1 &
    TR_PID=$!
    PIDS="$PIDS $TR_PID"
    wait_for etcd-fl curl -sf "http://127.0.0.1:$p/health"
    flush_count etcd-fl etcd "$p" "$(pgrep -P "$TR_PID")"
    cat "$FLUSHES_OUT" >>"$OUT"
fi

# ---- medians and ratios ---------------------------------------------------------
echo ""
echo "== HTTP, sync, medians of $RUNS runs; ratio = etagkv / peer, per run, then the median"
echo "ops/s: successful read-modify-writes (rmw) or 200/304 answers (get, get304)"
echo "with the lean client (raw sockets; RESP for Redis) and with libcurl;"
echo "server µs/op: the server's CPU time (utime + stime) per successful operation"
if [ "$ETCD_ONLY" -eq 1 ]; then
    python3 "$ROOT/bench/median.py" --etcd --jsonl "$OUT" "$RAW"
    echo ""
    echo "JSON lines: $OUT"
    echo "total time: $(( $(date +%s) - START_TIME )) s; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
    exit 0
elif [ "$FLUSHES" -eq 1 ]; then
    python3 "$ROOT/bench/median.py" --http --jsonl "$OUT" "$RAW" "$FLUSHES_OUT"
else
    python3 "$ROOT/bench/median.py" --http --jsonl "$OUT" "$RAW"
fi

if [ "$LOCK_ONLY" -eq 1 ]; then
    echo ""
    echo "JSON lines: $OUT"
    exit 0
fi

# ---- server memory ----------------------------------------------------------------
# /proc/PID/status: VmHWM (peak RSS), VmRSS, RssAnon, RssFile;
# /proc/PID/smaps_rollup: Private_Clean + Private_Dirty.  LMDB's map is a
# shared file mapping, so RssFile counts store pages (not leaks): growth
# is judged on RssAnon.
mem() {
    st=/proc/$KV_PID/status
    sr=/proc/$KV_PID/smaps_rollup
    printf '%s VmHWM=%s VmRSS=%s RssAnon=%s RssFile=%s Private_Clean=%s Private_Dirty=%s (kB)\n' \
        "$1" \
        "$(awk '/^VmHWM/{print $2}' "$st")" "$(awk '/^VmRSS/{print $2}' "$st")" \
        "$(awk '/^RssAnon/{print $2}' "$st")" "$(awk '/^RssFile/{print $2}' "$st")" \
        "$(awk '/^Private_Clean/{print $2}' "$sr")" "$(awk '/^Private_Dirty/{print $2}' "$sr")"
}
anon() {
    awk '/^RssAnon/{print $2}' "/proc/$KV_PID/status"
}

LEN=$GROWTH
[ "$QUICK" -eq 1 ] && LEN=10
echo ""
echo "== etagkv-server memory: rmw-1000, 4 KiB, 64 connections, ${LEN} s"
mem "after the matrix:"
"$BENCH" etagkv rmw-1000 -a "127.0.0.1:$KV_PORT" -s 4096 -c 64 -d "$LEN" \
    -w 0 -t "$THREADS" >"$T/growth.json" 2>"$T/growth.err" &
GPID=$!
PIDS="$GPID $PIDS"
G0=$(date +%s)
sleep 3
A0=$(anon)
A1=""
mem "start (t=3 s):"
last=3
# Time-based: bench_http ends by itself (its drain is bounded).
while :; do
    sleep 1
    el=$(($(date +%s) - G0))
    if [ "$el" -ge $((LEN - 1)) ]; then
        A1=$(anon)
        mem "end (t=$el s):"
        break
    fi
    [ $((el / 10)) -gt $((last / 10)) ] && mem "t=$el s:"
    last=$el
done
wait "$GPID" || { cat "$T/growth.err" >&2; exit 1; }
cat "$T/growth.err"
mem "after the load:"
echo "RssAnon growth from start to end of the load: $((A1 - A0)) kB ($A0 -> $A1 kB)"
printf '{"bench":"http-memory","seconds":%s,"vmhwm_kb":%s,"rss_anon_start_kb":%s,"rss_anon_end_kb":%s}\n' \
    "$LEN" "$(awk '/^VmHWM/{print $2}' "/proc/$KV_PID/status")" "$A0" "$A1" >>"$OUT"

echo ""
echo "JSON lines: $OUT"
echo "total time: $(( $(date +%s) - START_TIME )) s; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
