#!/bin/sh
# run_http.sh -- the HTTP benchmark (issue 4, part 3): etagkv-server against
# nginx (GET 200 / 304), etcd v3 (compare-and-swap through its JSON gateway)
# and Redis (WATCH/MULTI/EXEC, appendfsync always), all started here on
# 127.0.0.1 with their data in a temporary directory and stopped on exit.
#
#   bench/run_http.sh [--runs N] [--seconds S] [--threads T] [--quick]
#                     [--growth-seconds S] [--out FILE] [--append]
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

while [ $# -gt 0 ]; do
    case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --growth-seconds) GROWTH=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --append) APPEND=1; shift ;;
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_http.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
START_TIME=$(date +%s)

# ---- packages (only what is missing) ----------------------------------------
"$ROOT/tools/install.sh" --no-services run_http nginx etcd-server redis-server

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
PIDS="$PIDS $!"
wait_for nginx curl -sf "http://127.0.0.1:$NGX_PORT/v100"

# etcd: single member, data in the temp dir (etcd fsyncs every commit).
ETCD_PORT=$(free_port)
ETCD_PEER=$(free_port)
etcd --name bench --data-dir "$T/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-cluster "bench=http://127.0.0.1:$ETCD_PEER" \
    --quota-backend-bytes 8589934592 --logger zap --log-level warn \
    >"$T/etcd.log" 2>&1 &
PIDS="$PIDS $!"
wait_for etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"

# Redis: append-only file fsynced on every write, no RDB snapshots.
REDIS_PORT=$(free_port)
mkdir -p "$T/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$T/redis" \
    --appendonly yes --appendfsync always --save '' --daemonize no \
    >"$T/redis.log" 2>&1 &
PIDS="$PIDS $!"
wait_for redis sh -c "redis-cli -p $REDIS_PORT ping | grep -q PONG"

port_of() {
    case "$1" in
    etagkv) echo "$KV_PORT" ;;
    nginx) echo "$NGX_PORT" ;;
    etcd) echo "$ETCD_PORT" ;;
    redis) echo "$REDIS_PORT" ;;
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
echo "nginx: $(nginx -v 2>&1 | sed 's/.*version: //') (Debian $(dpkg-query -W -f='${Version}' nginx))"
echo "etcd: $(etcd --version | head -1 | sed 's/.*Version: //') (Debian $(dpkg-query -W -f='${Version}' etcd-server))"
echo "redis: $(redis-server --version | sed 's/.* v=\([^ ]*\).*/\1/') (Debian $(dpkg-query -W -f='${Version}' redis-server))"
echo "load generator: bench_http, $(curl-config --version 2>/dev/null || echo libcurl), $THREADS threads"

# ---- the matrix ---------------------------------------------------------------
[ "$APPEND" -eq 1 ] || : >"$OUT"
RAW="$T/raw.jsonl"
: >"$RAW"

# bench TARGET SCENARIO SIZE CONNS RUN
bench() {
    if ! line=$("$BENCH" "$1" "$2" -a "127.0.0.1:$(port_of "$1")" -s "$3" \
        -c "$4" -d "$SECS" -t "$THREADS" 2>"$T/bench.err"); then
        echo "run_http: bench_http $1 $2 -s $3 -c $4 failed:" >&2
        cat "$T/bench.err" >&2
        exit 1
    fi
    echo "$line" | sed "s/^{/{\"run\":$5,\"loadavg\":\"$(cut -d' ' -f1 /proc/loadavg)\",/" >>"$RAW"
    cat "$T/bench.err" >&2
    [ "$1" = etcd ] && etcd_compact
    return 0
}

echo "== $RUNS runs x 43 scenarios of ${SECS} s (progress on stderr)"
run=1
while [ "$run" -le "$RUNS" ]; do
    echo "-- run $run of $RUNS" >&2
    for size in 100 4096; do
        for conns in 16 64; do
            for scen in rmw-1000 rmw-hot; do
                for tgt in etagkv etcd redis; do
                    bench "$tgt" "$scen" "$size" "$conns" "$run"
                done
            done
            for scen in get get304; do
                for tgt in etagkv nginx; do
                    bench "$tgt" "$scen" "$size" "$conns" "$run"
                done
            done
        done
    done
    # Transfers (issue 12): 64 clients, 1,000 accounts, 100-byte values.
    for tgt in etagkv etcd redis; do
        bench "$tgt" transfer 100 64 "$run"
    done
    run=$((run + 1))
done
cat "$RAW" >>"$OUT"

# ---- medians and ratios ---------------------------------------------------------
# Flat JSON from bench_http: pull fields by name, group, take medians.
awk -v out="$OUT" '
function field(name,    re, s) {
    re = "\"" name "\":\"?[^,\"}]*"
    if (!match($0, re)) return ""
    s = substr($0, RSTART, RLENGTH)
    sub("\"" name "\":\"?", "", s)
    return s
}
function median(list,    n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) {
            t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
        }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
    k = field("scenario") SUBSEP field("value_bytes") SUBSEP field("conns") SUBSEP field("target")
    ok[k] = ok[k] " " field("ok_per_s")
    f412[k] = f412[k] " " field("fail_412_per_s")
    p50[k] = p50[k] " " field("p50_ms")
    p99[k] = p99[k] " " field("p99_ms")
    n[k]++
    seen[k] = 1
}
function row(s, size, conns, base,    kk, kb, r) {
    kk = s SUBSEP size SUBSEP conns SUBSEP "etagkv"
    kb = s SUBSEP size SUBSEP conns SUBSEP base
    if (!(kk in seen) || !(kb in seen)) return
    r = median(ok[kb]) > 0 ? median(ok[kk]) / median(ok[kb]) : 0
    printf "%-9s %5s %5s | %9.0f %8.0f %7.2f %7.2f | %-6s %9.0f %8.0f %7.2f %7.2f | %6.2fx\n", \
        s, size, conns, median(ok[kk]), median(f412[kk]), median(p50[kk]), median(p99[kk]), \
        base, median(ok[kb]), median(f412[kb]), median(p50[kb]), median(p99[kb]), r
    printf "{\"bench\":\"http-median\",\"scenario\":\"http/%s/%sB/sync/%sc\",\"runs\":%d,\"etagkv_ok_per_s\":%.0f,\"etagkv_412_per_s\":%.0f,\"etagkv_p50_ms\":%.3f,\"etagkv_p99_ms\":%.3f,\"baseline\":\"%s\",\"baseline_ok_per_s\":%.0f,\"baseline_412_per_s\":%.0f,\"baseline_p50_ms\":%.3f,\"baseline_p99_ms\":%.3f,\"ratio\":%.3f}\n", \
        s, size, conns, n[kk], median(ok[kk]), median(f412[kk]), median(p50[kk]), median(p99[kk]), \
        base, median(ok[kb]), median(f412[kb]), median(p50[kb]), median(p99[kb]), r >> out
    ratio[s, size, conns, base] = r
}
END {
    print ""
    print "== HTTP, sync, medians of the runs; ratio = etagkv / baseline, both from this run"
    print "ok/s: successful read-modify-writes (rmw), transfers (transfer; 412/s: failed"
    print "compares, retried) or 200/304 answers (get, get304);"
    print "p50/p99: latency of a successful operation in ms (rmw: first read to acknowledged write)"
    printf "%-9s %5s %5s | %9s %8s %7s %7s | %-6s %9s %8s %7s %7s | %7s\n", \
        "scenario", "bytes", "conns", "etagkv/s", "412/s", "p50", "p99", \
        "peer", "peer/s", "412/s", "p50", "p99", "ratio"
    split("rmw-1000 rmw-hot get get304", S, " ")
    row("transfer", 100, 64, "etcd")
    row("transfer", 100, 64, "redis")
    for (i = 1; i <= 4; i++)
        for (z = 1; z <= 2; z++)
            for (conns = 16; conns <= 64; conns *= 4) {
                size = z == 1 ? 100 : 4096
                if (S[i] ~ /^rmw/) {
                    row(S[i], size, conns, "etcd")
                    row(S[i], size, conns, "redis")
                } else {
                    row(S[i], size, conns, "nginx")
                }
            }
    print ""
    print "== targets (issue 4), 64 connections"
    for (z = 1; z <= 2; z++) {
        size = z == 1 ? 100 : 4096
        check("rmw-1000 vs etcd", "rmw-1000", "etcd", 5.0, size)
        check("rmw-1000 vs Redis", "rmw-1000", "redis", 1.0, size)
        check("rmw-hot vs Redis", "rmw-hot", "redis", 3.0, size)
        check("GET 200 vs nginx", "get", "nginx", 0.8, size)
        check("GET 304 vs nginx", "get304", "nginx", 0.8, size)
    }
    check("transfer vs etcd", "transfer", "etcd", 5.0, 100)
    check("transfer vs Redis", "transfer", "redis", 1.0, 100)
}
function check(what, s, base, want, size,    r) {
    if (!((s, size, 64, base) in ratio)) {
        printf "  %-20s %5sB  not measured\n", what, size
        return
    }
    r = ratio[s, size, 64, base]
    printf "  %-20s %5sB  %6.2fx  (target >= %.1fx)  %s\n", what, size, r, want, \
        (r >= want ? "met" : "MISSED")
}
' "$RAW"

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
