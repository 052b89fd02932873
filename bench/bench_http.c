/*
 * bench_http.c -- HTTP load generator: the read -> If-Match write -> retry
 * on 412 loop, GET 200 and conditional GET 304, against etagkv-server and
 * the peers it is measured against (bench/run_http.sh starts them all).
 *
 *   bench_http TARGET SCENARIO [-a HOST:PORT[,HOST:PORT...]] [-c CONNS]
 *              [-s VALUE_BYTES] [-d SECONDS] [-w WARMUP_SECONDS]
 *              [-t THREADS] [-p PATH] [-k lean|libcurl] [-P PID[,PID...]]
 *              [-B PID[,PID...]] [-n NAME]
 *
 * TARGET (one protocol adapter each):
 *   etagkv  GET /kv/K; PUT /kv/K with If-Match: <the ETag read>
 *   nginx   GET PATH (a static file, default /v<VALUE_BYTES>): 200 and 304
 *           scenarios only
 *   etcd    v3 JSON gateway: POST /v3/kv/range (value and mod_revision);
 *           POST /v3/kv/txn comparing mod_revision with the one read, put
 *           on success; keys and values base64
 *   redis   RESP over a raw non-blocking socket: WATCH K + GET K, then
 *           MULTI + SET K V + EXEC; a null EXEC reply is the failed
 *           compare (counted as a 412)
 * SCENARIO:
 *   rmw-hot   read -> conditional write -> on 412 re-read and retry, 1 key;
 *             etagkv's writes ask for Prefer: return=representation and
 *             rebase from the 412's current representation instead of
 *             re-reading (one round trip per retry; issue 14), unless -R.
 *             etcd could rebase from ranges in its Txn's failure branch,
 *             but is slower so (docs/benchmarks.md, stop 31), so its
 *             baseline re-reads; Redis's null EXEC says nothing
 *   rmw-1000  the same over 1,000 keys, one picked at random per update
 *   transfer  move 1 unit between two random accounts of 1,000: read both,
 *             write both conditionally in one transaction, on a failed
 *             compare retry (issue 12):
 *               etagkv  POST /txn of two gets, then POST /txn of two puts
 *                       with if_match on the ETags read and Prefer:
 *                       return=representation (409: rebase from the
 *                       values and ETags it carries; -R: re-read)
 *               etcd    POST /v3/kv/txn of two range requests, then one
 *                       comparing both mod_revisions and putting both
 *                       (failed: re-read, its faster way, as for rmw-hot)
 *               redis   WATCH a b + GET a + GET b, then MULTI + SET a +
 *                       SET b + EXEC (null EXEC: re-read both)
 *             At the end the balances must sum to what they started at.
 *   lock      one lock, CONNS contenders; an operation is one acquire +
 *             release cycle, a failed acquire retried at once (counted as
 *             a 412) -- issue 19:
 *               etagkv  a lease per client (POST /leases), then PUT
 *                       /kv/lock with If-None-Match: * and ETagKV-Lease
 *                       and Prefer: wait=10 (-W): held until the lock is
 *                       free and taken with its release (201), or 412
 *                       after 10 s; DELETE /kv/lock with If-Match: the
 *                       ETag the acquire returned (204).  -W 0: no wait,
 *                       a 412 at once, retried at once as on the others
 *               etcd    a lease per client (POST /v3/lease/grant), then
 *                       a Txn putting the key with the lease if its
 *                       create_revision is 0 (etcd's lock recipe, without
 *                       its wait queue), and a Txn deleting it if its
 *                       mod_revision is still the acquire's
 *               redis   SET lock TOKEN NX PX, then EVAL of the compare-
 *                       and-delete script (DEL if GET equals TOKEN)
 *             Waiters on etcd and Redis retry at once (etagkv's too with
 *             -W 0), so what is measured there is the server's create-if-
 *             absent and safe-delete path under contention; etagkv's
 *             waiters are held by the server (its lock recipe).  A holder
 *             count checks mutual exclusion.
 *   get       GET of one value (200); etcd: a Range of its key
 *   get304    GET with If-None-Match: <its current ETag> (304)
 *
 * Every value starts with an 18-digit decimal counter that each update
 * reads and increments, so an update is a real read-modify-write and, on
 * the hot key, the final counter must equal the number of successful
 * updates: a lost update (or a client bug) fails the run instead of giving
 * a figure; for transfers the counters are the balances, and their sum
 * must not change.  Keys are seeded before the timed part.
 *
 * HTTP targets use one of two clients (-k).  lean (the default) is built
 * like the RESP client: raw non-blocking sockets on epoll, each request
 * formatted into one buffer, each response parsed in place (status,
 * Content-Length or chunked, ETag, body), keep-alive.  libcurl, the
 * "typical client": libcurl multi (socket API on epoll), one easy handle
 * per connection.  Either way one request is in flight per connection and
 * all connections at once.  CONNS connections are shared out between
 * THREADS threads (default 1), each with its own epoll set (or multi
 * handle).
 *
 * -a: several addresses (front ends of one store: etagkv-server --etcd
 * twice on one prefix) share the load, connection i going to address
 * i mod their number; seeding and the final verification use the first.
 *
 * -P: the server's processes; their CPU time (utime + stime, their
 * children's included: nginx's workers) over the measured window, divided
 * by the successful operations, is reported as server_cpu_us_per_op, a
 * figure that does not depend on the client.  -B: the processes behind the
 * server that serve the same requests (the etcd under etagkv-server
 * --etcd), reported the same way as backend_cpu_us_per_op.  -n: the
 * name the output gives the target (default TARGET), so that one target
 * run against several set-ups ("etagkv-etcd") stays apart in the results.  The
 * first WARMUP seconds (default 0.3) are not counted; then SECONDS (default 2)
 * are measured; requests in flight at the end are drained (bounded) but not
 * counted.
 *
 * Output: one JSON line on stdout (successful operations/s, 412s/s, p50 and
 * p99 latency of a successful operation: for rmw from the first read to
 * the acknowledged write, retries included; server and client CPU per
 * successful operation; acknowledged writes over the whole run); a
 * readable line on stderr.
 * Exit status 0, or 1 with a message when anything unexpected happened (an
 * unexpected status, a transport error, a failed verification): a figure
 * from a broken run is worse than none.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <dirent.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "benchutil.h"

#define PREFIX 18 /* counter digits; a multiple of 3 (base64 groups) */
#define NKEYS_MANY 1000
#define MAX_THREADS 2
#define MAX_CONNS 1024
#define MAX_ADDRS 4
#define LAT_CAP (1L << 21) /* latency samples kept per thread */
#define DRAIN_SECONDS 10.0 /* in-flight requests must end within this */
#define SEED_SECONDS 60.0  /* seeding must end within this */
#define TRANSFER_START 1000000000ull /* every account's starting balance */

enum target { T_ETAGKV, T_NGINX, T_ETCD, T_REDIS };
enum scenario { S_RMW, S_GET, S_GET304 };
enum phase { PH_IDLE, PH_SEED, PH_READ, PH_WRITE, PH_GET, PH_UNWATCH };
enum outcome { OUT_OK, OUT_412 };

static const char *const target_names[] = {"etagkv", "nginx", "etcd", "redis"};

static struct {
    enum target target;
    enum scenario scen;
    const char *scen_name;
    int nkeys;
    struct {
        char host[64];
        int port;
    } addr[MAX_ADDRS]; /* -a; connection i uses addr[i % naddr] */
    int naddr;
    const char *name; /* -n: the target's name in the output */
    int conns, threads;
    size_t value_bytes;
    double seconds, warmup;
    char path[256]; /* nginx */
    char etag[128]; /* get304: the current ETag */
    int transfer;   /* the transfer scenario (an S_RMW on two keys) */
    int lock;       /* the lock scenario (an S_RMW: acquire, release) */
    int lean;       /* HTTP over raw sockets (-k lean), not libcurl */
    int rebase;     /* etagkv rmw-hot, transfer: retry from the 412's or
                       409's representation */
    int lock_wait;  /* etagkv lock: Prefer: wait=N on the acquire (-W) */
    int npids;      /* server processes whose CPU time is measured (-P) */
    long pids[8];
    int nbackend; /* processes behind the server (-B) */
    long backend[8];
} cfg;

/* Window of the timed part; t_end is also when clients stop starting
 * operations.  Written by the main thread between two barriers. */
static double t_start, t_end = 1e300;

struct buf {
    char *p;
    size_t len, cap;
};

struct worker;

struct client {
    struct worker *w;
    int idx; /* 0 .. conns-1, over all threads */
    enum phase phase;
    unsigned seed;
    int key, seed_next;
    int key2;  /* transfer: the second account */
    double t0; /* start of the current operation */
    struct buf body, out;
    char etag[128]; /* HTTP: the response's ETag */
    int rebased;    /* the last 412 carried the current representation */
    char lease[32]; /* lock: this client's lease id (etagkv, etcd) */
    char held[48];  /* lock: the acquire's revision (etcd) or token (redis) */
    unsigned long cycles; /* lock: acquires, for the redis token */
    /* libcurl */
    CURL *easy;
    struct curl_slist *hdrs;
    char hdrs_key[256]; /* what hdrs was built from */
    /* raw sockets: RESP, lean HTTP */
    int fd, want, got, wantout, watched;
    struct buf req; /* the bytes to send */
    size_t req_off; /* ... of which sent */
    struct buf in;  /* received, not yet parsed */
    enum outcome res;
};

struct worker {
    pthread_t tid;
    struct client *c;
    int n, busy;
    int epfd;
    CURLM *multi;
    double timer_at; /* curl's timeout, absolute; < 0 none */
    long ok, failed, ok_total;
    double *lat;
    long nlat;
};

static pthread_barrier_t seeded, started;

/* ---- small helpers ------------------------------------------------------- */

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt,
                                                                ...)
{
    va_list ap;

    fprintf(stderr, "bench_http: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* Append n bytes; the buffer always stays NUL-terminated. */
static void buf_add(struct buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;

        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        BU_CHECK(b->p != NULL);
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void
buf_printf(struct buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    BU_CHECK(n >= 0 && (size_t)n < sizeof tmp);
    buf_add(b, tmp, (size_t)n);
}

static void key_name(int k, char *buf, size_t n)
{
    snprintf(buf, n, "k%05d", k);
}

static unsigned long long counter_get(const char *p)
{
    unsigned long long v = 0;

    for (int i = 0; i < PREFIX; i++) {
        if (p[i] < '0' || p[i] > '9')
            die("value does not start with a %d-digit counter", PREFIX);
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    return v;
}

static void counter_put(char *p, unsigned long long v)
{
    for (int i = PREFIX; i-- > 0; v /= 10)
        p[i] = (char)('0' + v % 10);
}

/* The seeded value: counter 0 (a transfer's accounts: TRANSFER_START),
 * then filler. */
static void seed_value(struct buf *b)
{
    b->len = 0;
    for (size_t i = 0; i < cfg.value_bytes; i++)
        buf_add(b, i < PREFIX ? "0" : "v", 1);
    if (cfg.transfer)
        counter_put(b->p, TRANSFER_START);
}

/* The keys of c's operation into keys; how many: the one key of a
 * read-modify-write, or a transfer's two accounts. */
static int op_keys(const struct client *c, int keys[2])
{
    keys[0] = c->key;
    keys[1] = c->key2;
    return cfg.transfer ? 2 : 1;
}

/* The new counter of the operation's key i whose counter was n: a
 * read-modify-write adds 1; a transfer moves one unit from its first
 * account to its second. */
static unsigned long long next_counter(unsigned long long n, int i)
{
    return cfg.transfer && i == 0 ? n - 1 : n + 1;
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_encode(struct buf *b, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        char q[4];

        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        q[0] = b64[v >> 18];
        q[1] = b64[(v >> 12) & 63];
        q[2] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? b64[v & 63] : '=';
        buf_add(b, q, 4);
    }
}

/* Decode exactly n chars (a multiple of 4, no padding) into out. */
static void b64_decode(const char *s, size_t n, unsigned char *out)
{
    for (size_t i = 0; i < n; i += 4) {
        unsigned v = 0;

        for (int j = 0; j < 4; j++) {
            const char *q =
                s[i + (size_t)j] ? strchr(b64, s[i + (size_t)j]) : NULL;

            if (q == NULL)
                die("bad base64 from the server");
            v = v << 6 | (unsigned)(q - b64);
        }
        *out++ = (unsigned char)(v >> 16);
        *out++ = (unsigned char)(v >> 8);
        *out++ = (unsigned char)v;
    }
}

/* The string of the next "name": "..." (etagkv's indented JSON) or
 * "name":"..." (etcd's compact JSON) at or after *from, and its length;
 * *from moves past it.  NULL when there is none. */
static const char *json_next(const char **from, const char *name, size_t *len)
{
    char pat[48];
    const char *p, *q;

    snprintf(pat, sizeof pat, "\"%s\":", name);
    p = strstr(*from, pat);
    if (p == NULL)
        return NULL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p != '"')
        return NULL;
    /* The closing quote is the first one not escaped (an ETag's own
     * quotes are \"). */
    for (q = ++p; *q != '\0' && !(*q == '"' && q[-1] != '\\'); q++)
        ;
    if (*q == '\0')
        return NULL;
    *len = (size_t)(q - p);
    *from = q + 1;
    return p;
}

/* ---- statistics ------------------------------------------------------------
 */

static void count_success(struct client *c, double now)
{
    struct worker *w = c->w;

    w->ok_total++;
    if (now < t_start || now >= t_end)
        return;
    w->ok++;
    if (w->nlat < LAT_CAP)
        w->lat[w->nlat++] = now - c->t0;
}

static void count_412(struct client *c, double now)
{
    if (now >= t_start && now < t_end)
        c->w->failed++;
}

/* ---- protocol adapters ------------------------------------------------------
 * Each adapter starts requests; its completion handler checks the reply and
 * calls finished() with OUT_OK or OUT_412 (anything else ends the run). */

struct proto {
    void (*seed)(struct client *c);
    void (*read)(struct client *c);
    void (*write)(struct client *c);
    void (*get)(struct client *c);
    int (*unwatch)(struct client *c); /* 1 if it sent something */
};

static const struct proto *proto;
static void finished(struct client *c, enum outcome o);

/* ---- HTTP through libcurl --------------------------------------------------
 */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    buf_add(&((struct client *)ud)->body, p, sz * n);
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct client *c = ud;
    size_t len = sz * n;

    if (len > 5 && strncasecmp(p, "etag:", 5) == 0) {
        size_t i = 5, j;

        while (i < len && (p[i] == ' ' || p[i] == '\t'))
            i++;
        j = len;
        while (j > i &&
               (p[j - 1] == '\r' || p[j - 1] == '\n' || p[j - 1] == ' '))
            j--;
        if (j - i < sizeof c->etag) {
            memcpy(c->etag, p + i, j - i);
            c->etag[j - i] = '\0';
        }
    }
    return len;
}

/* Start one request on the client's easy handle.  method NULL is GET. */
static void http_start(struct client *c, const char *url, const char *method,
                       const struct buf *body, struct curl_slist *hdrs)
{
    CURL *e = c->easy;

    c->body.len = 0;
    c->etag[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, url);
    if (method == NULL) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
    } else {
        /* A DELETE has no body: an empty one (Content-Length: 0). */
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body != NULL ? body->p : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE,
                         body != NULL ? (long)body->len : 0L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
                         strcmp(method, "POST") == 0 ? NULL : method);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    if (curl_multi_add_handle(c->w->multi, e) != CURLM_OK)
        die("curl_multi_add_handle failed");
}

/* Replace the client's header list: Expect: off (no 100-continue round
 * trip), the content type, and an optional extra header. */
static struct curl_slist *http_headers(struct client *c, const char *ctype,
                                       const char *extra)
{
    char line[192];

    curl_slist_free_all(c->hdrs);
    c->hdrs = curl_slist_append(NULL, "Expect:");
    if (ctype != NULL) {
        snprintf(line, sizeof line, "Content-Type: %s", ctype);
        c->hdrs = curl_slist_append(c->hdrs, line);
    }
    /* extra may be several lines, separated by CRLF (req_start). */
    while (extra != NULL && *extra != '\0') {
        const char *eol = strstr(extra, "\r\n");
        size_t n = eol != NULL ? (size_t)(eol - extra) : strlen(extra);

        snprintf(line, sizeof line, "%.*s", (int)n, extra);
        c->hdrs = curl_slist_append(c->hdrs, line);
        extra = eol != NULL ? eol + 2 : extra + n;
    }
    BU_CHECK(c->hdrs != NULL);
    return c->hdrs;
}

/* The URL of path at address a (cfg.addr). */
static void url_of(char *url, size_t n, int a, const char *path)
{
    int k = snprintf(url, n, "http://%s:%d%s", cfg.addr[a].host,
                     cfg.addr[a].port, path);

    BU_CHECK(k > 0 && (size_t)k < n);
}

/* Headers for libcurl: Expect: off (no 100-continue round trip), the
 * content type, an optional extra header.  The list is rebuilt only when
 * they differ from the previous request's. */
static struct curl_slist *curl_headers(struct client *c, const char *ctype,
                                       const char *extra)
{
    char key[sizeof c->hdrs_key];

    if (ctype == NULL && extra == NULL)
        return NULL;
    snprintf(key, sizeof key, "%s\n%s", ctype ? ctype : "", extra ? extra : "");
    if (c->hdrs != NULL && strcmp(key, c->hdrs_key) == 0)
        return c->hdrs;
    snprintf(c->hdrs_key, sizeof c->hdrs_key, "%s", key);
    return http_headers(c, ctype, extra);
}

static void lean_start(struct client *c, const char *method, const char *path,
                       const char *ctype, const char *extra,
                       const struct buf *body);

/* Start one HTTP request on c's connection, through the lean adapter or
 * libcurl (-k).  method "GET" has no body; ctype and extra (header lines
 * separated by CRLF, without a final one) may be NULL. */
static void req_start(struct client *c, const char *method, const char *path,
                      const char *ctype, const char *extra,
                      const struct buf *body)
{
    char url[320];

    if (cfg.lean) {
        lean_start(c, method, path, ctype, extra, body);
        return;
    }
    url_of(url, sizeof url, c->idx % cfg.naddr, path);
    http_start(c, url, strcmp(method, "GET") == 0 ? NULL : method, body,
               curl_headers(c, ctype, extra));
}

/* -- etagkv-server -- */

static void kv_path(char *path, size_t n, int k)
{
    char key[16];

    key_name(k, key, sizeof key);
    snprintf(path, n, "/kv/%s", key);
}

static void kv_seed(struct client *c)
{
    char path[32];

    kv_path(path, sizeof path, c->seed_next);
    seed_value(&c->out);
    req_start(c, "PUT", path, "application/octet-stream", NULL, &c->out);
}

static void kv_read(struct client *c)
{
    char path[32];

    kv_path(path, sizeof path, c->key);
    req_start(c, "GET", path, NULL, NULL, NULL);
}

static void kv_write(struct client *c)
{
    char path[32], im[200];

    kv_path(path, sizeof path, c->key);
    snprintf(im, sizeof im, "If-Match: %s%s", c->etag,
             cfg.rebase ? "\r\nPrefer: return=representation" : "");
    req_start(c, "PUT", path, "application/octet-stream", im, &c->out);
}

static void plain_get(struct client *c)
{
    char path[32], inm[160];

    kv_path(path, sizeof path, 0);
    snprintf(inm, sizeof inm, "If-None-Match: %s", cfg.etag);
    req_start(c, "GET", cfg.target == T_NGINX ? cfg.path : path, NULL,
              cfg.scen == S_GET304 ? inm : NULL, NULL);
}

/* The value just read, with its counter incremented, becomes c->out. */
static void next_value(struct client *c, const char *old, size_t len)
{
    if (len != cfg.value_bytes)
        die("read %zu bytes, expected %zu", len, cfg.value_bytes);
    c->out.len = 0;
    buf_add(&c->out, old, len);
    counter_put(c->out.p, counter_get(old) + 1);
}

/* -- etagkv-server: transfers through POST /txn -- */

/* Read both accounts in one transaction of two gets. */
static void kvx_read(struct client *c)
{
    char ka[16], kb[16];

    key_name(c->key, ka, sizeof ka);
    key_name(c->key2, kb, sizeof kb);
    c->out.len = 0;
    buf_printf(&c->out,
               "{\"ops\":[{\"op\":\"get\",\"key\":\"%s\"},"
               "{\"op\":\"get\",\"key\":\"%s\"}]}",
               ka, kb);
    req_start(c, "POST", "/txn", "application/json", NULL, &c->out);
}

/* The transaction kvx_parse() built: both puts, or none (409).  Rebasing,
 * it asks for a 409 that carries both values. */
static void kvx_write(struct client *c)
{
    req_start(c, "POST", "/txn", "application/json",
              cfg.rebase ? "Prefer: return=representation" : NULL, &c->out);
}

/* From the reply of the two gets (or a 409 that carries both values), the
 * transaction that moves one unit (into c->out): each put carries the
 * value read with its new balance, If-Match on the ETag read. */
static void kvx_parse(struct client *c)
{
    const char *from = c->body.p;
    int keys[2], n = op_keys(c, keys);

    c->out.len = 0;
    buf_str(&c->out, "{\"ops\":[");
    for (int i = 0; i < n; i++) {
        size_t elen, vlen, at;
        const char *etag = json_next(&from, "etag", &elen);
        const char *val = json_next(&from, "value", &vlen);
        char key[16];

        /* etag: \"<32 hex digits>\"; the value has nothing to escape. */
        if (etag == NULL || elen != 36 || val == NULL ||
            vlen != cfg.value_bytes)
            die("etagkv /txn get: unexpected reply: %.300s", c->body.p);
        key_name(keys[i], key, sizeof key);
        buf_printf(&c->out, "%s{\"op\":\"put\",\"key\":\"%s\",\"value\":\"",
                   i ? "," : "", key);
        at = c->out.len;
        buf_add(&c->out, val, vlen);
        counter_put(c->out.p + at, next_counter(counter_get(val), i));
        buf_printf(&c->out, "\",\"if_match\":\"%.36s\"}", etag);
    }
    buf_str(&c->out, "]}");
}

static void kv_done(struct client *c, long code)
{
    switch (c->phase) {
    case PH_SEED:
        if (code != 200 && code != 201)
            die("seeding PUT: HTTP %ld", code);
        finished(c, OUT_OK);
        return;
    case PH_READ:
        if (cfg.transfer) {
            if (code != 200)
                die("etagkv /txn get: HTTP %ld: %.300s", code, c->body.p);
            kvx_parse(c);
            finished(c, OUT_OK);
            return;
        }
        if (code != 200 || c->etag[0] == '\0')
            die("GET: HTTP %ld%s", code, c->etag[0] ? "" : " without ETag");
        next_value(c, c->body.p, c->body.len);
        finished(c, OUT_OK);
        return;
    case PH_WRITE:
        /* A failed compare: 412, or a transaction's 409.  A 412 that
         * carries the current representation (cfg.rebase) is the next
         * write's read: its value, and its ETag as the next If-Match. */
        if (code == 200) {
            finished(c, OUT_OK);
        } else if (cfg.transfer && code == 409) {
            c->rebased = cfg.rebase && c->body.p != NULL &&
                         strstr(c->body.p, "\"value\":") != NULL;
            if (c->rebased)
                kvx_parse(c);
            finished(c, OUT_412);
        } else if (code == 412) {
            c->rebased = cfg.rebase && c->etag[0] != '\0' &&
                         c->body.len == cfg.value_bytes;
            if (c->rebased)
                next_value(c, c->body.p, c->body.len);
            finished(c, OUT_412);
        } else
            die("%s: HTTP %ld: %s",
                cfg.transfer ? "etagkv /txn put" : "PUT If-Match", code,
                c->body.p);
        return;
    case PH_GET:
        if (code != (cfg.scen == S_GET304 ? 304 : 200))
            die("GET: HTTP %ld", code);
        if (cfg.scen == S_GET && c->body.len != cfg.value_bytes)
            die("GET: %zu bytes, expected %zu", c->body.len, cfg.value_bytes);
        finished(c, OUT_OK);
        return;
    default: die("completion in phase %d", (int)c->phase);
    }
}

/* -- etcd v3 JSON gateway -- */

static void etcd_key(struct buf *b, int k)
{
    char key[16];

    key_name(k, key, sizeof key);
    b64_encode(b, (const unsigned char *)key, strlen(key));
}

static void etcd_post(struct client *c, const char *path)
{
    req_start(c, "POST", path, "application/json", NULL, &c->out);
}

/* The body of a /v3/kv/put of key k with its seed value, into b. */
static void etcd_put_body(struct buf *b, int k)
{
    struct buf v = {0};

    seed_value(&v);
    b->len = 0;
    buf_str(b, "{\"key\":\"");
    etcd_key(b, k);
    buf_str(b, "\",\"value\":\"");
    b64_encode(b, (unsigned char *)v.p, v.len);
    buf_str(b, "\"}");
    free(v.p);
}

static void etcd_seed(struct client *c)
{
    etcd_put_body(&c->out, c->seed_next);
    etcd_post(c, "/v3/kv/put");
}

/* A range of the key; a transfer's two accounts in one Txn of two ranges
 * (no compare). */
static void etcd_read(struct client *c)
{
    c->out.len = 0;
    if (!cfg.transfer) {
        buf_str(&c->out, "{\"key\":\"");
        etcd_key(&c->out, c->key);
        buf_str(&c->out, "\"}");
        etcd_post(c, "/v3/kv/range");
        return;
    }
    buf_str(&c->out, "{\"success\":[{\"request_range\":{\"key\":\"");
    etcd_key(&c->out, c->key);
    buf_str(&c->out, "\"}},{\"request_range\":{\"key\":\"");
    etcd_key(&c->out, c->key2);
    buf_str(&c->out, "\"}}]}");
    etcd_post(c, "/v3/kv/txn");
}

/* From a reply holding n keys (a range, or a transfer's Txn of two
 * ranges), in the order of op_keys(): the counter of the first, and if
 * build, the Txn that writes each key's new counter if every mod_revision
 * is still the one read (into c->out).  The values' tails are reused as
 * they came, still base64: only the counter is decoded and encoded. */
static unsigned long long etcd_parse(struct client *c, int n, int build)
{
    const char *from = c->body.p, *rev[2], *val[2];
    size_t rlen[2], vlen[2], want = (cfg.value_bytes + 2) / 3 * 4;
    unsigned char prefix[2][PREFIX];
    unsigned long long count[2];
    int keys[2] = {c->key, c->key2};

    for (int i = 0; i < n; i++) {
        rev[i] = json_next(&from, "mod_revision", &rlen[i]);
        val[i] = json_next(&from, "value", &vlen[i]);
        if (rev[i] == NULL || val[i] == NULL || vlen[i] != want || rlen[i] > 20)
            die("etcd range: unexpected reply: %.200s", c->body.p);
        b64_decode(val[i], PREFIX / 3 * 4, prefix[i]);
        count[i] = counter_get((const char *)prefix[i]);
    }
    if (!build)
        return count[0];
    c->out.len = 0;
    buf_str(&c->out, "{\"compare\":[");
    for (int i = 0; i < n; i++) {
        buf_str(&c->out, i ? ",{\"key\":\"" : "{\"key\":\"");
        etcd_key(&c->out, keys[i]);
        buf_str(&c->out, "\",\"result\":\"EQUAL\",\"target\":\"MOD\",");
        buf_printf(&c->out, "\"mod_revision\":\"%.*s\"}", (int)rlen[i], rev[i]);
    }
    buf_str(&c->out, "],\"success\":[");
    for (int i = 0; i < n; i++) {
        counter_put((char *)prefix[i], next_counter(count[i], i));
        buf_str(&c->out, i ? ",{\"request_put\":{\"key\":\""
                           : "{\"request_put\":{\"key\":\"");
        etcd_key(&c->out, keys[i]);
        buf_str(&c->out, "\",\"value\":\"");
        b64_encode(&c->out, prefix[i], PREFIX);
        buf_add(&c->out, val[i] + PREFIX / 3 * 4, vlen[i] - PREFIX / 3 * 4);
        buf_str(&c->out, "\"}}");
    }
    buf_str(&c->out, "]}");
    return count[0];
}

static void etcd_write(struct client *c)
{
    etcd_post(c, "/v3/kv/txn");
}

/* get: a Range of key 0, as etcd's clients read a key (linearizable). */
static void etcd_get(struct client *c)
{
    c->out.len = 0;
    buf_str(&c->out, "{\"key\":\"");
    etcd_key(&c->out, 0);
    buf_str(&c->out, "\"}");
    etcd_post(c, "/v3/kv/range");
}

static void etcd_done(struct client *c, long code)
{
    if (code != 200)
        die("etcd: HTTP %ld in phase %d: %.200s", code, (int)c->phase,
            c->body.p ? c->body.p : "");
    switch (c->phase) {
    case PH_SEED: finished(c, OUT_OK); return;
    case PH_READ:
        etcd_parse(c, cfg.transfer ? 2 : 1, 1);
        finished(c, OUT_OK);
        return;
    case PH_GET:
        etcd_parse(c, 1, 0); /* the value, of the size seeded */
        finished(c, OUT_OK);
        return;
    case PH_WRITE:
        /* proto3 JSON leaves out a false "succeeded". */
        finished(c, strstr(c->body.p, "\"succeeded\":true") ? OUT_OK : OUT_412);
        return;
    default: die("etcd: completion in phase %d", (int)c->phase);
    }
}

/* A response with status code arrived, its body in c->body and its ETag
 * in c->etag (either adapter). */
static void lock_http_done(struct client *c, long code);

static void http_completed(struct client *c, long code)
{
    if (cfg.lock)
        lock_http_done(c, code);
    else if (cfg.target == T_ETCD)
        etcd_done(c, code);
    else
        kv_done(c, code);
}

static void http_done(struct client *c, CURLcode rc)
{
    long code = 0;

    if (rc != CURLE_OK)
        die("transfer failed: %s", curl_easy_strerror(rc));
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
    http_completed(c, code);
}

/* -- the curl multi loop (socket API on epoll) -- */

static int on_socket(CURL *e, curl_socket_t s, int what, void *ud, void *sp)
{
    struct worker *w = ud;
    struct epoll_event ev;

    (void)e;
    (void)sp;
    if (what == CURL_POLL_REMOVE) {
        (void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    memset(&ev, 0, sizeof ev);
    ev.data.fd = s;
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) |
                (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
    if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, s, &ev) != 0 &&
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, s, &ev) != 0)
        die("epoll_ctl: %s", strerror(errno));
    return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *ud)
{
    struct worker *w = ud;

    (void)m;
    w->timer_at = timeout_ms < 0 ? -1 : bu_now() + (double)timeout_ms / 1e3;
    return 0;
}

static void http_completions(struct worker *w)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(w->multi, &left)) != NULL) {
        struct client *c;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;

        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&c);
        curl_multi_remove_handle(w->multi, e);
        http_done(c, rc);
    }
}

/* Run until every client of w is idle, or die at the limit. */
static void http_loop(struct worker *w, double limit)
{
    struct epoll_event ev[64];
    int running;

    while (w->busy > 0) {
        double now = bu_now();
        int ms = 50, n;

        if (now > limit)
            die("requests still in flight at the time limit");
        if (w->timer_at >= 0) {
            double d = (w->timer_at - now) * 1e3;

            ms = d <= 0 ? 0 : d < 50 ? (int)d + 1 : 50;
        }
        n = epoll_wait(w->epfd, ev, 64, ms);
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            int f =
                (ev[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                (ev[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                (ev[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);

            curl_multi_socket_action(w->multi, ev[i].data.fd, f, &running);
        }
        if (w->timer_at >= 0 && bu_now() >= w->timer_at) {
            w->timer_at = -1;
            curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0,
                                     &running);
        }
        http_completions(w);
    }
}

static void http_init(struct worker *w)
{
    w->multi = curl_multi_init();
    BU_CHECK(w->multi != NULL);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    /* Exactly one connection per easy handle, all kept alive. */
    curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, (long)w->n);
    curl_multi_setopt(w->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)w->n);
    for (int i = 0; i < w->n; i++) {
        CURL *e = curl_easy_init();

        BU_CHECK(e != NULL);
        curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)&w->c[i]);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &w->c[i]);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, &w->c[i]);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
        w->c[i].easy = e;
    }
}

static void http_fini(struct worker *w)
{
    for (int i = 0; i < w->n; i++) {
        curl_easy_cleanup(w->c[i].easy);
        curl_slist_free_all(w->c[i].hdrs);
    }
    curl_multi_cleanup(w->multi);
}

static const struct proto proto_etagkv = {kv_seed, kv_read, kv_write, plain_get,
                                          NULL};
static const struct proto proto_nginx = {NULL, NULL, NULL, plain_get, NULL};
static const struct proto proto_etcd = {etcd_seed, etcd_read, etcd_write,
                                        etcd_get, NULL};
static const struct proto proto_etagkv_transfer = {kv_seed, kvx_read, kvx_write,
                                                   NULL, NULL};

/* ---- raw sockets: non-blocking, one epoll set per thread ----------------
 * The transport of the lean clients: Redis (RESP) and HTTP/1.1.  Each
 * client has one connection and one request (or command group) in
 * flight, formatted into c->req and sent in as few send() calls as the
 * socket allows; replies are parsed from c->in as they arrive. */

static void raw_events(struct client *c, unsigned events)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.ptr = c;
    if (epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        die("epoll_ctl: %s", strerror(errno));
}

/* Write what is pending; wait for EPOLLOUT only while some is left. */
static void raw_flush(struct client *c)
{
    while (c->req_off < c->req.len) {
        ssize_t k = send(c->fd, c->req.p + c->req_off, c->req.len - c->req_off,
                         MSG_NOSIGNAL);

        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (k < 0)
            die("send: %s", strerror(errno));
        c->req_off += (size_t)k;
    }
    if ((c->req_off < c->req.len) != c->wantout) {
        c->wantout = c->req_off < c->req.len;
        raw_events(c, EPOLLIN | (c->wantout ? EPOLLOUT : 0u));
    }
}

/* Send c->req, expecting want replies (RESP; 1 for HTTP). */
static void raw_send(struct client *c, int want)
{
    c->want = want;
    c->got = 0;
    c->req_off = 0;
    c->res = OUT_OK;
    raw_flush(c);
}

/* ---- HTTP/1.1 on raw sockets (the lean adapter) ---------------------------
 * What a lean HTTP client does: the request formatted into one buffer and
 * sent with one send(); the response parsed in place for the status, the
 * framing (Content-Length or chunked), the ETag and the body; keep-alive.
 * No pipelining: one request in flight per connection, as with libcurl. */

static void lean_start(struct client *c, const char *method, const char *path,
                       const char *ctype, const char *extra,
                       const struct buf *body)
{
    c->req.len = 0;
    buf_printf(&c->req, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n", method, path,
               cfg.addr[c->idx % cfg.naddr].host,
               cfg.addr[c->idx % cfg.naddr].port);
    if (ctype != NULL)
        buf_printf(&c->req, "Content-Type: %s\r\n", ctype);
    if (extra != NULL)
        buf_printf(&c->req, "%s\r\n", extra);
    if (body != NULL)
        buf_printf(&c->req, "Content-Length: %zu\r\n\r\n", body->len);
    else
        buf_str(&c->req, "\r\n");
    if (body != NULL)
        buf_add(&c->req, body->p, body->len);
    raw_send(c, 1);
}

/* The CRLF at or after p, before end; NULL if none. */
static const char *find_crlf(const char *p, const char *end)
{
    while (p + 1 < end) {
        const char *r = memchr(p, '\r', (size_t)(end - p - 1));

        if (r == NULL)
            return NULL;
        if (r[1] == '\n')
            return r;
        p = r + 1;
    }
    return NULL;
}

/* A header line "name: value" (without CRLF): the value, trimmed, if the
 * name is `name` (case-insensitive), else NULL. */
static const char *header_value(const char *line, const char *eol,
                                const char *name, size_t *len)
{
    size_t n = strlen(name);
    const char *v;

    if ((size_t)(eol - line) <= n || line[n] != ':' ||
        strncasecmp(line, name, n) != 0)
        return NULL;
    v = line + n + 1;
    while (v < eol && (*v == ' ' || *v == '\t'))
        v++;
    while (eol > v && (eol[-1] == ' ' || eol[-1] == '\t'))
        eol--;
    *len = (size_t)(eol - v);
    return v;
}

/* A chunked body at p[0..len): its decoded bytes into body; the bytes it
 * takes (trailers included), or 0 while incomplete. */
static size_t chunked_body(const char *p, size_t len, struct buf *body)
{
    const char *end = p + len;
    size_t off = 0;

    body->len = 0;
    for (;;) {
        const char *eol = find_crlf(p + off, end);
        unsigned long n;
        char *stop;

        if (eol == NULL)
            return 0;
        n = strtoul(p + off, &stop, 16);
        if (stop == p + off)
            die("HTTP: bad chunk size");
        off = (size_t)(eol - p) + 2;
        if (n == 0)
            break;
        if (len < off + n + 2)
            return 0;
        buf_add(body, p + off, n);
        off += n + 2;
    }
    for (;;) { /* trailer fields, up to the empty line */
        const char *eol = find_crlf(p + off, end);

        if (eol == NULL)
            return 0;
        if (eol == p + off)
            return off + 2;
        off = (size_t)(eol - p) + 2;
    }
}

/* One header line [line, eol) of a response: what the client needs of it. */
static void lean_header(struct client *c, const char *line, const char *eol,
                        long *clen, int *chunked)
{
    size_t n;
    const char *v = header_value(line, eol, "content-length", &n);

    if (v != NULL) {
        *clen = strtol(v, NULL, 10);
        return;
    }
    v = header_value(line, eol, "transfer-encoding", &n);
    if (v != NULL) {
        *chunked = n >= 7 && strncasecmp(v + n - 7, "chunked", 7) == 0;
        return;
    }
    v = header_value(line, eol, "etag", &n);
    if (v != NULL && n < sizeof c->etag) {
        memcpy(c->etag, v, n);
        c->etag[n] = '\0';
        return;
    }
    v = header_value(line, eol, "connection", &n);
    if (v != NULL && n == 5 && strncasecmp(v, "close", 5) == 0)
        die("HTTP: the server closes the connection");
}

/* One complete response at p[0..len): its status in *code, its body in
 * c->body, its ETag in c->etag; the bytes it takes, or 0 while
 * incomplete (parsed again from the start when more arrives: responses
 * here are a few KiB). */
static size_t lean_parse(struct client *c, const char *p, size_t len,
                         long *code)
{
    const char *end = p + len, *line = p, *eol;
    long clen = -1;
    int chunked = 0;
    size_t head = 0, taken;

    for (eol = find_crlf(line, end); eol != NULL; eol = find_crlf(line, end)) {
        if (eol == line) {
            head = (size_t)(eol + 2 - p);
            break;
        }
        line = eol + 2;
    }
    if (head == 0)
        return 0;
    if (len < 12 || memcmp(p, "HTTP/1.1 ", 9) != 0)
        die("HTTP: bad status line: %.40s", p);
    *code = strtol(p + 9, NULL, 10);
    c->etag[0] = '\0';
    for (line = find_crlf(p, end) + 2; line < p + head - 2; line = eol + 2) {
        eol = find_crlf(line, end);
        lean_header(c, line, eol, &clen, &chunked);
    }
    if (*code == 304 || *code == 204 || *code < 200) {
        c->body.len = 0;
        return head;
    }
    if (chunked) {
        taken = chunked_body(p + head, len - head, &c->body);
        return taken == 0 ? 0 : head + taken;
    }
    if (clen < 0)
        die("HTTP: a response without Content-Length or chunked framing");
    if (len < head + (size_t)clen)
        return 0;
    c->body.len = 0;
    buf_add(&c->body, p + head, (size_t)clen);
    return head + (size_t)clen;
}

static void lean_input(struct client *c)
{
    long code = 0;
    size_t used = lean_parse(c, c->in.p, c->in.len, &code);

    if (used == 0)
        return;
    if (used != c->in.len)
        die("HTTP: %zu bytes after the response", c->in.len - used);
    c->in.len = 0;
    http_completed(c, code);
}

/* ---- Redis: a minimal RESP2 client on raw sockets ------------------------ */

struct reply {
    char type;     /* + - : $ * */
    long long n;   /* integer, bulk length or array count (-1: null) */
    const char *s; /* simple string / bulk data */
    size_t slen;
};

/* Parse one complete reply at p[0..len): bytes consumed, 0 when incomplete.
 * Elements of an array are checked but only the count is returned. */
static size_t resp_parse(const char *p, size_t len, struct reply *r)
{
    const char *cr = memchr(p, '\r', len);
    size_t line, used;

    if (cr == NULL || (size_t)(cr - p) + 2 > len)
        return 0;
    if (cr[1] != '\n' || len < 3)
        die("redis: malformed reply");
    line = (size_t)(cr - p) + 2;
    r->type = p[0];
    r->s = p + 1;
    r->slen = (size_t)(cr - p) - 1;
    switch (r->type) {
    case '+':
    case '-': return line;
    case ':':
    case '$':
    case '*': r->n = strtoll(p + 1, NULL, 10); break;
    default: die("redis: unknown reply type '%c'", r->type);
    }
    if (r->type == ':' || r->n < 0)
        return line;
    if (r->type == '$') {
        if (len < line + (size_t)r->n + 2)
            return 0;
        r->s = p + line;
        r->slen = (size_t)r->n;
        return line + (size_t)r->n + 2;
    }
    used = line;
    for (long long i = 0; i < r->n; i++) {
        struct reply e;
        size_t k = resp_parse(p + used, len - used, &e);

        if (k == 0)
            return 0;
        used += k;
    }
    return used;
}

/* Append one command (argc bulk strings) in RESP. */
static void resp_cmd(struct buf *b, int argc, const char *const *argv,
                     const size_t *lens)
{
    buf_printf(b, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        buf_printf(b, "$%zu\r\n", lens[i]);
        buf_add(b, argv[i], lens[i]);
        buf_str(b, "\r\n");
    }
}

static void resp_cmd2(struct buf *b, const char *cmd, const char *arg)
{
    const char *argv[2] = {cmd, arg};
    size_t lens[2] = {strlen(cmd), arg ? strlen(arg) : 0};

    resp_cmd(b, arg ? 2 : 1, argv, lens);
}

/* Append SET key v (the value's n bytes). */
static void resp_set(struct buf *b, int k, const char *v, size_t n)
{
    char key[16];
    const char *argv[3] = {"SET", key, v};
    size_t lens[3] = {3, 0, n};

    key_name(k, key, sizeof key);
    lens[1] = strlen(key);
    resp_cmd(b, 3, argv, lens);
}

static void redis_seed(struct client *c)
{
    struct buf v = {0};

    seed_value(&v);
    c->req.len = 0;
    resp_set(&c->req, c->seed_next, v.p, v.len);
    free(v.p);
    raw_send(c, 1);
}

/* WATCH the operation's keys and GET each, in one write: the reads happen
 * under the watch. */
static void redis_read(struct client *c)
{
    int keys[2], n = op_keys(c, keys);
    char names[2][16];
    const char *argv[3] = {"WATCH", NULL, NULL};
    size_t lens[3] = {5, 0, 0};

    for (int i = 0; i < n; i++) {
        key_name(keys[i], names[i], sizeof names[i]);
        argv[i + 1] = names[i];
        lens[i + 1] = strlen(names[i]);
    }
    c->req.len = 0;
    resp_cmd(&c->req, n + 1, argv, lens);
    for (int i = 0; i < n; i++)
        resp_cmd2(&c->req, "GET", names[i]);
    c->watched = 1;
    raw_send(c, n + 1);
}

/* MULTI, a SET of each key, EXEC, in one write; c->body holds the new
 * values, one after the other. */
static void redis_write(struct client *c)
{
    int keys[2], n = op_keys(c, keys);

    c->req.len = 0;
    resp_cmd2(&c->req, "MULTI", NULL);
    for (int i = 0; i < n; i++)
        resp_set(&c->req, keys[i], c->body.p + (size_t)i * cfg.value_bytes,
                 cfg.value_bytes);
    resp_cmd2(&c->req, "EXEC", NULL);
    c->watched = 0; /* EXEC unwatches, whatever its outcome */
    raw_send(c, n + 2);
}

/* Stopping between the read and the write: drop the watch. */
static int redis_unwatch(struct client *c)
{
    if (!c->watched)
        return 0;
    c->req.len = 0;
    resp_cmd2(&c->req, "UNWATCH", NULL);
    c->watched = 0;
    raw_send(c, 1);
    return 1;
}

static void expect_status(const struct reply *r, const char *what)
{
    if (r->type != '+' || r->slen != strlen(what) ||
        memcmp(r->s, what, r->slen) != 0)
        die("redis: expected +%s, got %c%.*s", what, r->type,
            (int)(r->slen > 200 ? 200 : r->slen), r->s);
}

static void lock_redis_reply(struct client *c, const struct reply *r);

/* One reply of the command group in flight. */
static void redis_reply(struct client *c, const struct reply *r, int i)
{
    if (r->type == '-')
        die("redis: %.*s", (int)r->slen, r->s);
    if (cfg.lock) {
        lock_redis_reply(c, r);
        return;
    }
    switch (c->phase) {
    case PH_SEED:
    case PH_UNWATCH: expect_status(r, "OK"); break;
    case PH_READ:
        if (i == 0) {
            expect_status(r, "OK");
        } else {
            size_t at = (size_t)(i - 1) * cfg.value_bytes;

            if (r->type != '$' || r->n < 0)
                die("redis: GET of a seeded key found nothing");
            if (r->slen != cfg.value_bytes)
                die("redis: read %zu bytes", r->slen);
            /* req still holds the commands; build the new values in
             * body, one after the other. */
            if (i == 1)
                c->body.len = 0;
            buf_add(&c->body, r->s, r->slen);
            counter_put(c->body.p + at, next_counter(counter_get(r->s), i - 1));
        }
        break;
    case PH_WRITE:
        /* MULTI, a QUEUED per SET, then EXEC with a reply per SET. */
        if (i == 0)
            expect_status(r, "OK");
        else if (i < c->want - 1)
            expect_status(r, "QUEUED");
        else if (r->type == '*' && r->n < 0)
            c->res = OUT_412; /* a watched key changed: EXEC did nothing */
        else if (r->type != '*' || r->n != c->want - 2)
            die("redis: unexpected EXEC reply");
        break;
    default: die("redis: reply in phase %d", (int)c->phase);
    }
}

/* Replies that arrived in c->in: each checked; the group done once all
 * arrived. */
static void resp_input(struct client *c)
{
    size_t off = 0;

    while (off < c->in.len && c->got < c->want) {
        struct reply r;
        size_t used = resp_parse(c->in.p + off, c->in.len - off, &r);

        if (used == 0)
            break;
        off += used;
        redis_reply(c, &r, c->got++);
        if (c->got == c->want) {
            if (off != c->in.len)
                die("redis: more replies than commands");
            c->in.len = 0;
            finished(c, c->res);
            return;
        }
    }
    memmove(c->in.p, c->in.p + off, c->in.len - off);
    c->in.len -= off;
}

/* ---- raw sockets, continued: input, connection, loop -------------------- */

static void raw_input(struct client *c)
{
    char tmp[16384];
    ssize_t k;

    k = recv(c->fd, tmp, sizeof tmp, 0);
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (k <= 0)
        die("%s: connection lost: %s", target_names[cfg.target],
            k ? strerror(errno) : "EOF");
    buf_add(&c->in, tmp, (size_t)k);
    if (cfg.target == T_REDIS)
        resp_input(c);
    else
        lean_input(c);
}

/* A connection to address i (cfg.addr). */
static int raw_connect(int i)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    if (fd < 0)
        die("socket: %s", strerror(errno));
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)cfg.addr[i].port);
    if (inet_pton(AF_INET, cfg.addr[i].host, &a.sin_addr) != 1)
        die("the host must be an IPv4 address, not %s", cfg.addr[i].host);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("connect %s:%d: %s", cfg.addr[i].host, cfg.addr[i].port,
            strerror(errno));
    BU_CHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
    return fd;
}

static void raw_init(struct worker *w)
{
    for (int i = 0; i < w->n; i++) {
        struct client *c = &w->c[i];
        struct epoll_event ev;

        c->fd = raw_connect(c->idx % cfg.naddr);
        BU_CHECK(fcntl(c->fd, F_SETFL, O_NONBLOCK) == 0);
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        BU_CHECK(epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) == 0);
    }
}

static void raw_loop(struct worker *w, double limit)
{
    struct epoll_event ev[64];

    while (w->busy > 0) {
        int n;

        if (bu_now() > limit)
            die("requests still in flight at the time limit");
        n = epoll_wait(w->epfd, ev, 64, 50);
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            struct client *c = ev[i].data.ptr;

            if (ev[i].events & EPOLLOUT)
                raw_flush(c);
            if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                raw_input(c);
        }
    }
}

static const struct proto proto_redis = {redis_seed, redis_read, redis_write,
                                         NULL, redis_unwatch};

/* ---- the lock scenario (issue 19; see the top) -------------------------- */

/* Longer than any run: no keepalive is needed while it lasts. */
#define LOCK_TTL_S 600

/* Holders of the lock as the clients see it: +1 once an acquire is
 * acknowledged, -1 before the release is sent.  Above 1, the server let
 * two clients hold the lock at once. */
static atomic_int lock_holders;
static atomic_long lock_overlaps;

static void lock_taken(void)
{
    if (atomic_fetch_add(&lock_holders, 1) != 0)
        atomic_fetch_add(&lock_overlaps, 1);
}

static void lock_giving(void)
{
    atomic_fetch_sub(&lock_holders, 1);
}

/* etagkv: the client's lease. */
static void kvl_seed(struct client *c)
{
    c->out.len = 0;
    buf_printf(&c->out, "{\"ttl_ms\": %d}", LOCK_TTL_S * 1000);
    req_start(c, "POST", "/leases", "application/json", NULL, &c->out);
}

static void kvl_acquire(struct client *c)
{
    char hdrs[128], wait[32] = "";

    if (cfg.lock_wait > 0)
        snprintf(wait, sizeof wait, "\r\nPrefer: wait=%d", cfg.lock_wait);
    snprintf(hdrs, sizeof hdrs, "If-None-Match: *\r\nETagKV-Lease: %s%s",
             c->lease, wait);
    c->out.len = 0;
    buf_printf(&c->out, "client %d", c->idx);
    req_start(c, "PUT", "/kv/lock", "application/octet-stream", hdrs, &c->out);
}

static void kvl_release(struct client *c)
{
    char im[160];

    snprintf(im, sizeof im, "If-Match: %s", c->etag);
    lock_giving();
    req_start(c, "DELETE", "/kv/lock", NULL, im, NULL);
}

/* etcd: the key "lock", base64. */
#define ETCD_LOCK_KEY "bG9jaw=="

static void etcdl_seed(struct client *c)
{
    c->out.len = 0;
    buf_printf(&c->out, "{\"TTL\":\"%d\"}", LOCK_TTL_S);
    etcd_post(c, "/v3/lease/grant");
}

static void etcdl_acquire(struct client *c)
{
    c->out.len = 0;
    buf_printf(&c->out,
               "{\"compare\":[{\"key\":\"" ETCD_LOCK_KEY "\","
               "\"result\":\"EQUAL\",\"target\":\"CREATE\","
               "\"create_revision\":\"0\"}],"
               "\"success\":[{\"request_put\":{\"key\":\"" ETCD_LOCK_KEY "\","
               "\"value\":\"\",\"lease\":\"%s\"}}]}",
               c->lease);
    etcd_post(c, "/v3/kv/txn");
}

static void etcdl_release(struct client *c)
{
    c->out.len = 0;
    buf_printf(
        &c->out,
        "{\"compare\":[{\"key\":\"" ETCD_LOCK_KEY "\","
        "\"result\":\"EQUAL\",\"target\":\"MOD\","
        "\"mod_revision\":\"%s\"}],"
        "\"success\":[{\"request_delete_range\":{\"key\":\"" ETCD_LOCK_KEY
        "\"}}]}",
        c->held);
    lock_giving();
    etcd_post(c, "/v3/kv/txn");
}

/* The first JSON member `name` of c's reply body (a string or a number),
 * into out; dies if absent. */
static void json_member(struct client *c, const char *name, char *out,
                        size_t cap)
{
    const char *from = c->body.p;
    size_t n;
    const char *v = json_next(&from, name, &n);

    if (v == NULL || n == 0 || n >= cap)
        die("%s: no \"%s\" in %.200s", target_names[cfg.target], name,
            c->body.p);
    memcpy(out, v, n);
    out[n] = '\0';
}

static void lock_http_done(struct client *c, long code)
{
    int etcd = cfg.target == T_ETCD;
    int won;

    switch (c->phase) {
    case PH_SEED:
        if (code != (etcd ? 200 : 201))
            die("lease grant: HTTP %ld: %.200s", code, c->body.p);
        json_member(c, etcd ? "ID" : "id", c->lease, sizeof c->lease);
        finished(c, OUT_OK);
        return;
    case PH_READ:
        /* proto3 JSON leaves out a false "succeeded". */
        won = etcd ? code == 200 && strstr(c->body.p, "\"succeeded\":true")
                   : code == 201;
        if (!won && code != (etcd ? 200 : 412))
            die("acquire: HTTP %ld: %.200s", code, c->body.p);
        if (won && etcd) /* the header's revision: the put's */
            json_member(c, "revision", c->held, sizeof c->held);
        if (won)
            lock_taken();
        finished(c, won ? OUT_OK : OUT_412);
        return;
    case PH_WRITE:
        if (etcd ? code != 200 || !strstr(c->body.p, "\"succeeded\":true")
                 : code != 204)
            die("release: HTTP %ld: %.200s", code, c->body.p);
        finished(c, OUT_OK);
        return;
    default: die("lock: completion in phase %d", (int)c->phase);
    }
}

/* redis: nothing to set up; DEL a lock left by an earlier run. */
static void redisl_seed(struct client *c)
{
    c->req.len = 0;
    resp_cmd2(&c->req, "DEL", "lock");
    raw_send(c, 1);
}

static void redisl_acquire(struct client *c)
{
    char px[24];
    const char *argv[6] = {"SET", "lock", c->held, "NX", "PX", px};
    size_t lens[6];

    snprintf(c->held, sizeof c->held, "%d.%lu", c->idx, ++c->cycles);
    snprintf(px, sizeof px, "%d", LOCK_TTL_S * 1000);
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    c->req.len = 0;
    resp_cmd(&c->req, 6, argv, lens);
    raw_send(c, 1);
}

static void redisl_release(struct client *c)
{
    static const char script[] =
        "if redis.call('get', KEYS[1]) == ARGV[1] then "
        "return redis.call('del', KEYS[1]) else return 0 end";
    const char *argv[5] = {"EVAL", script, "1", "lock", c->held};
    size_t lens[5];

    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    c->req.len = 0;
    resp_cmd(&c->req, 5, argv, lens);
    lock_giving();
    raw_send(c, 1);
}

static void lock_redis_reply(struct client *c, const struct reply *r)
{
    switch (c->phase) {
    case PH_SEED:
        if (r->type != ':')
            die("redis: DEL: unexpected reply %c", r->type);
        break;
    case PH_READ:
        if (r->type == '$' && r->n < 0) {
            c->res = OUT_412; /* NX: held by someone else */
            break;
        }
        expect_status(r, "OK");
        lock_taken();
        break;
    case PH_WRITE:
        if (r->type != ':' || r->n != 1)
            die("redis: the compare-and-delete deleted nothing");
        break;
    default: die("redis: reply in phase %d", (int)c->phase);
    }
}

static const struct proto proto_etagkv_lock = {kvl_seed, kvl_acquire,
                                               kvl_release, NULL, NULL};
static const struct proto proto_etcd_lock = {etcdl_seed, etcdl_acquire,
                                             etcdl_release, NULL, NULL};
static const struct proto proto_redis_lock = {redisl_seed, redisl_acquire,
                                              redisl_release, NULL, NULL};

/* ---- the client state machine (all protocols) ------------------------------
 */

static void go_idle(struct client *c)
{
    c->phase = PH_IDLE;
    c->w->busy--;
}

static int pick_key(struct client *c)
{
    return cfg.nkeys == 1 ? 0 : (int)(rand_r(&c->seed) % (unsigned)cfg.nkeys);
}

/* Seed this client's share of the keys, one at a time. */
static void seed_next(struct client *c)
{
    if (c->seed_next >= cfg.nkeys) {
        go_idle(c);
        return;
    }
    c->phase = PH_SEED;
    proto->seed(c);
}

/* Start the next operation, or stop once the window is over. */
static void next_op(struct client *c)
{
    double now = bu_now();

    if (now >= t_end) {
        go_idle(c);
        return;
    }
    c->t0 = now;
    if (cfg.scen == S_RMW) {
        c->key = pick_key(c);
        if (cfg.transfer) { /* a second, distinct account */
            c->key2 = (int)(rand_r(&c->seed) % (unsigned)(cfg.nkeys - 1));
            c->key2 += c->key2 >= c->key;
        }
        c->phase = PH_READ;
        proto->read(c);
    } else {
        c->phase = PH_GET;
        proto->get(c);
    }
}

/* A request (or command group) of c completed with o. */
static void finished(struct client *c, enum outcome o)
{
    double now = bu_now();

    switch (c->phase) {
    case PH_SEED:
        c->seed_next += cfg.conns;
        seed_next(c);
        return;
    case PH_UNWATCH: go_idle(c); return;
    case PH_READ:
        if (cfg.lock && o == OUT_412) { /* contended: try again */
            count_412(c, now);
            if (now >= t_end)
                go_idle(c);
            else
                proto->read(c);
            return;
        }
        if (now >= t_end && !cfg.lock) {
            /* Abandon the update; drop the watch first (Redis).  (A lock
             * just acquired is released whatever the time.) */
            c->phase = PH_UNWATCH;
            if (proto->unwatch == NULL || !proto->unwatch(c))
                go_idle(c);
            return;
        }
        c->phase = PH_WRITE;
        proto->write(c);
        return;
    case PH_WRITE:
        if (o == OUT_OK) {
            count_success(c, now);
            next_op(c);
            return;
        }
        count_412(c, now);
        if (now >= t_end) {
            go_idle(c);
            return;
        }
        if (c->rebased) { /* rebased from the 412: write again */
            c->rebased = 0;
            proto->write(c);
            return;
        }
        c->phase = PH_READ; /* re-read, same key, same t0 */
        proto->read(c);
        return;
    case PH_GET:
        count_success(c, now);
        next_op(c);
        return;
    case PH_IDLE: break;
    }
    die("completion of an idle client");
}

/* ---- threads ---------------------------------------------------------------
 */

static void run_loop(struct worker *w, double limit)
{
    if (cfg.target == T_REDIS || cfg.lean)
        raw_loop(w, limit);
    else
        http_loop(w, limit);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    /* Seed (every client its share), then wait for the others. */
    if (proto->seed != NULL && cfg.scen == S_RMW) {
        double limit = bu_now() + SEED_SECONDS;

        for (int i = 0; i < w->n; i++) {
            w->busy++;
            seed_next(&w->c[i]);
        }
        run_loop(w, limit);
    }
    pthread_barrier_wait(&seeded);
    pthread_barrier_wait(&started);
    for (int i = 0; i < w->n; i++) {
        w->busy++;
        next_op(&w->c[i]);
    }
    run_loop(w, t_end + DRAIN_SECONDS);
    return NULL;
}

/* ---- set-up and verification done by the main thread (blocking) ---------- */

static size_t easy_body(char *p, size_t sz, size_t n, void *ud)
{
    buf_add(ud, p, sz * n);
    return sz * n;
}

/* One blocking HTTP request; returns the status, fills body and etag. */
static long easy_request(const char *path, const char *method,
                         const struct buf *req, const char *ctype,
                         struct buf *body, char *etag, size_t etag_cap)
{
    struct client tmp;
    char url[320];
    long code = 0;
    CURL *e = curl_easy_init();
    struct curl_slist *h = NULL;
    CURLcode rc;

    BU_CHECK(e != NULL);
    memset(&tmp, 0, sizeof tmp);
    url_of(url, sizeof url, 0, path);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, easy_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &tmp);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
    if (method != NULL) {
        char line[160];

        snprintf(line, sizeof line, "Content-Type: %s", ctype);
        h = curl_slist_append(curl_slist_append(NULL, "Expect:"), line);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->p);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)req->len);
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    rc = curl_easy_perform(e);
    if (rc != CURLE_OK)
        die("%s %s: %s", method ? method : "GET", url, curl_easy_strerror(rc));
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    if (etag != NULL)
        snprintf(etag, etag_cap, "%s", tmp.etag);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    return code;
}

/* GET scenarios: store the value (etagkv) and learn its current ETag. */
static void setup_get(void)
{
    struct buf v = {0}, body = {0};
    long code;

    if (cfg.target == T_ETCD) { /* no ETag: the value, put */
        etcd_put_body(&v, 0);
        code = easy_request("/v3/kv/put", "POST", &v, "application/json", &body,
                            NULL, 0);
        if (code != 200)
            die("etcd put: HTTP %ld", code);
        free(v.p);
        free(body.p);
        return;
    }
    if (cfg.target == T_ETAGKV) {
        seed_value(&v);
        code = easy_request("/kv/k00000", "PUT", &v, "application/octet-stream",
                            &body, NULL, 0);
        if (code != 200 && code != 201)
            die("PUT /kv/k00000: HTTP %ld", code);
    }
    body.len = 0;
    code = easy_request(cfg.target == T_NGINX ? cfg.path : "/kv/k00000", NULL,
                        NULL, NULL, &body, cfg.etag, sizeof cfg.etag);
    if (code != 200 || cfg.etag[0] == '\0' || body.len != cfg.value_bytes)
        die("GET: HTTP %ld, %zu bytes, ETag '%s' (expected 200, %zu bytes, "
            "an ETag)",
            code, body.len, cfg.etag, cfg.value_bytes);
    free(v.p);
    free(body.p);
}

/* The counter of key k, read after the run. */
static unsigned long long counter_of(int k)
{
    struct buf body = {0}, req = {0};
    char key[16], path[32];
    unsigned long long n;

    key_name(k, key, sizeof key);
    if (cfg.target == T_REDIS) {
        int fd = raw_connect(0);
        struct reply r;
        size_t used = 0;

        resp_cmd2(&req, "GET", key);
        BU_CHECK(send(fd, req.p, req.len, MSG_NOSIGNAL) == (ssize_t)req.len);
        while (used == 0) {
            char tmp[8192];
            ssize_t got = recv(fd, tmp, sizeof tmp, 0);

            if (got <= 0)
                die("redis: verification read failed");
            buf_add(&body, tmp, (size_t)got);
            used = resp_parse(body.p, body.len, &r);
        }
        close(fd);
        if (r.type != '$' || r.slen != cfg.value_bytes)
            die("redis: verification GET: bad reply");
        n = counter_get(r.s);
    } else if (cfg.target == T_ETCD) {
        struct client c;

        memset(&c, 0, sizeof c);
        buf_str(&req, "{\"key\":\"");
        etcd_key(&req, k);
        buf_str(&req, "\"}");
        if (easy_request("/v3/kv/range", "POST", &req, "application/json",
                         &c.body, NULL, 0) != 200)
            die("etcd: verification range failed");
        n = etcd_parse(&c, 1, 0);
        free(c.body.p);
        free(c.out.p);
    } else {
        kv_path(path, sizeof path, k);
        if (easy_request(path, NULL, NULL, NULL, &body, NULL, 0) != 200 ||
            body.len != cfg.value_bytes)
            die("verification GET failed");
        n = counter_get(body.p);
    }
    free(body.p);
    free(req.p);
    return n;
}

/* Transfers: every account read back; they must sum to the start. */
static void check_transfers(void)
{
    unsigned long long sum = 0, want = TRANSFER_START * (unsigned)cfg.nkeys;

    for (int k = 0; k < cfg.nkeys; k++)
        sum += counter_of(k);
    if (sum != want)
        die("the balances sum to %llu, not %llu: a transfer was half "
            "applied, lost or invented",
            sum, want);
}

/* ---- CPU time ---------------------------------------------------------------
 * Server CPU per operation does not depend on the client: utime + stime of
 * each -P process and of its children (nginx's workers), from /proc, at
 * the start and the end of the measured window. */

/* utime + stime of pid from /proc/PID/stat, in clock ticks, and its parent
 * in *ppid; -1 if it has gone. */
static long long proc_ticks(long pid, long *ppid)
{
    char path[64], line[1024], *p;
    unsigned long long ut, st;
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    /* After the command name, which may hold spaces and parentheses:
     * state ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime stime. */
    p = strrchr(line, ')');
    if (p == NULL ||
        sscanf(p + 1, " %*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               ppid, &ut, &st) != 3)
        return -1;
    return (long long)(ut + st);
}

/* Ticks of the processes pids[0..n) and their children, now. */
static long long server_ticks(const long *pids, int n)
{
    long long sum = 0;
    DIR *d;
    struct dirent *e;

    if (n == 0)
        return 0;
    d = opendir("/proc");
    BU_CHECK(d != NULL);
    while ((e = readdir(d)) != NULL) {
        long pid = strtol(e->d_name, NULL, 10), ppid = 0;
        long long t;

        if (pid <= 0)
            continue;
        t = proc_ticks(pid, &ppid);
        if (t < 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (pid == pids[i] || ppid == pids[i]) {
                sum += t;
                break;
            }
        }
    }
    closedir(d);
    return sum;
}

/* This process's CPU time (the load generator's), in seconds. */
static double self_cpu(void)
{
    struct rusage ru;

    BU_CHECK(getrusage(RUSAGE_SELF, &ru) == 0);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void sleep_until(double t)
{
    for (double d = t - bu_now(); d > 0; d = t - bu_now()) {
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};

        (void)nanosleep(&ts, NULL);
    }
}

/* ---- main -------------------------------------------------------------------
 */

static const char *client_name(void)
{
    if (cfg.target == T_REDIS)
        return "resp";
    return cfg.lean ? "lean" : "libcurl";
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_http etagkv|nginx|etcd|redis "
            "rmw-hot|rmw-1000|transfer|lock|get|get304\n"
            "       [-a HOST:PORT] [-c CONNS] [-s VALUE_BYTES] [-d SECONDS]\n"
            "       [-w WARMUP_SECONDS] [-t THREADS (1-2)] [-p PATH (nginx)]\n"
            "       [-a HOST:PORT[,HOST:PORT...] (connections dealt out)]\n"
            "       [-k lean|libcurl (HTTP client)] [-P PID[,PID...]]\n"
            "       [-B PID[,PID...] (behind the server)] [-n NAME]\n"
            "       [-R (etagkv rmw-hot, transfer: re-read after a 412 or 409, "
            "no rebase)]\n"
            "       [-W SECONDS (etagkv lock: Prefer: wait on the acquire;\n"
            "        default 10, 0: retry at once like the others)]\n");
    exit(2);
}

/* -P or -B PID[,PID...]: processes to measure, into pids[0..*n). */
static void parse_pids(const char *list, long pids[8], int *n)
{
    const char *p = list;

    while (*p != '\0') {
        char *end;
        long pid = strtol(p, &end, 10);

        if (end == p || pid <= 0 || *n == 8)
            usage();
        pids[(*n)++] = pid;
        p = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end != '\0')
            usage();
    }
}

/* -a HOST:PORT[,HOST:PORT...] into cfg.addr. */
static void parse_addrs(const char *list)
{
    const char *p = list;

    cfg.naddr = 0;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        const char *colon = memchr(p, ':', len);

        if (colon == NULL || (size_t)(colon - p) >= sizeof cfg.addr[0].host ||
            cfg.naddr == MAX_ADDRS)
            usage();
        memcpy(cfg.addr[cfg.naddr].host, p, (size_t)(colon - p));
        cfg.addr[cfg.naddr].host[colon - p] = '\0';
        cfg.addr[cfg.naddr].port = atoi(colon + 1);
        if (cfg.addr[cfg.naddr].port <= 0)
            usage();
        cfg.naddr++;
        p = comma != NULL ? comma + 1 : p + len;
    }
    if (cfg.naddr == 0)
        usage();
}

static void parse_args(int argc, char **argv)
{
    const char *addr = "127.0.0.1:8080";
    int ch, t, no_rebase = 0, lock_wait = 10;

    cfg.conns = 16;
    cfg.threads = 1;
    cfg.value_bytes = 100;
    cfg.seconds = 2;
    cfg.warmup = 0.3;
    if (argc < 3)
        usage();
    optind = 3; /* TARGET SCENARIO first; POSIX getopt does not permute */
    cfg.lean = 1;
    while ((ch = getopt(argc, argv, "a:c:s:d:w:t:p:k:P:B:n:RW:")) != -1) {
        switch (ch) {
        case 'a': addr = optarg; break;
        case 'c': cfg.conns = atoi(optarg); break;
        case 's': cfg.value_bytes = (size_t)atol(optarg); break;
        case 'd': cfg.seconds = atof(optarg); break;
        case 'w': cfg.warmup = atof(optarg); break;
        case 't': cfg.threads = atoi(optarg); break;
        case 'p': snprintf(cfg.path, sizeof cfg.path, "%s", optarg); break;
        case 'k':
            if (strcmp(optarg, "lean") != 0 && strcmp(optarg, "libcurl") != 0)
                usage();
            cfg.lean = strcmp(optarg, "lean") == 0;
            break;
        case 'P': parse_pids(optarg, cfg.pids, &cfg.npids); break;
        case 'B': parse_pids(optarg, cfg.backend, &cfg.nbackend); break;
        case 'n': cfg.name = optarg; break;
        case 'R': no_rebase = 1; break;
        case 'W':
            lock_wait = atoi(optarg);
            if (lock_wait < 0)
                usage();
            break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    for (t = 0; t < 4 && strcmp(argv[1], target_names[t]) != 0; t++)
        ;
    if (t == 4)
        usage();
    cfg.target = (enum target)t;
    cfg.scen_name = argv[2];
    if (strcmp(cfg.scen_name, "rmw-hot") == 0) {
        cfg.scen = S_RMW;
        cfg.nkeys = 1;
        cfg.rebase = cfg.target == T_ETAGKV && !no_rebase;
    } else if (strcmp(cfg.scen_name, "rmw-1000") == 0) {
        cfg.scen = S_RMW;
        cfg.nkeys = NKEYS_MANY;
    } else if (strcmp(cfg.scen_name, "transfer") == 0) {
        cfg.scen = S_RMW;
        cfg.nkeys = NKEYS_MANY;
        cfg.transfer = 1;
        cfg.rebase = cfg.target == T_ETAGKV && !no_rebase;
    } else if (strcmp(cfg.scen_name, "lock") == 0) {
        cfg.scen = S_RMW;
        cfg.lock = 1;
        cfg.nkeys = -1; /* one seed (session) per client: set below */
        cfg.lock_wait = cfg.target == T_ETAGKV ? lock_wait : 0;
    } else if (strcmp(cfg.scen_name, "get") == 0) {
        cfg.scen = S_GET;
        cfg.nkeys = 1;
    } else if (strcmp(cfg.scen_name, "get304") == 0) {
        cfg.scen = S_GET304;
        cfg.nkeys = 1;
    } else {
        usage();
    }
    parse_addrs(addr);
    if (cfg.conns < 1 || cfg.conns > MAX_CONNS || cfg.threads < 1 ||
        cfg.threads > MAX_THREADS || cfg.threads > cfg.conns ||
        cfg.value_bytes < PREFIX || cfg.seconds <= 0 || cfg.warmup < 0 ||
        (cfg.naddr > 1 && cfg.target != T_ETAGKV))
        usage();
    if (cfg.name == NULL)
        cfg.name = target_names[cfg.target];
    if (cfg.lock)
        cfg.nkeys = cfg.conns;
    if (cfg.path[0] == '\0')
        snprintf(cfg.path, sizeof cfg.path, "/v%zu", cfg.value_bytes);
    if (cfg.target == T_REDIS)
        cfg.lean = 1; /* RESP has its one client */
    if ((cfg.target == T_NGINX && cfg.scen == S_RMW) ||
        (cfg.target == T_ETCD && cfg.scen == S_GET304) ||
        (cfg.target == T_REDIS && cfg.scen != S_RMW)) {
        fprintf(stderr, "bench_http: %s does not run %s\n",
                target_names[cfg.target], cfg.scen_name);
        exit(2);
    }
}

static void setup_workers(struct worker *w)
{
    int next = 0;

    for (int i = 0; i < cfg.threads; i++) {
        w[i].n = cfg.conns / cfg.threads + (i < cfg.conns % cfg.threads);
        w[i].c = calloc((size_t)w[i].n, sizeof(struct client));
        w[i].lat = malloc(sizeof(double) * LAT_CAP);
        w[i].epfd = epoll_create1(EPOLL_CLOEXEC);
        w[i].timer_at = -1;
        BU_CHECK(w[i].c != NULL && w[i].lat != NULL && w[i].epfd >= 0);
        for (int j = 0; j < w[i].n; j++) {
            struct client *c = &w[i].c[j];

            c->w = &w[i];
            c->idx = next++;
            c->seed = 7919u * (unsigned)c->idx + 1;
            c->seed_next = c->idx;
            c->fd = -1;
        }
        if (cfg.target == T_REDIS || cfg.lean)
            raw_init(&w[i]);
        else
            http_init(&w[i]);
    }
}

int main(int argc, char **argv)
{
    static const struct proto *const protos[] = {&proto_etagkv, &proto_nginx,
                                                 &proto_etcd, &proto_redis};
    struct worker w[MAX_THREADS];
    long ok = 0, failed = 0, ok_total = 0, nlat = 0;
    double *lat, p50, p99, cpu0, cpu1, srv_us = -1, cli_us;
    long long ticks0 = 0, ticks1 = 0, bticks0 = 0, bticks1 = 0;
    double back_us = -1;
    const char *verified = "n/a";

    parse_args(argc, argv);
    proto = protos[cfg.target];
    if (cfg.transfer && cfg.target == T_ETAGKV)
        proto = &proto_etagkv_transfer; /* etcd and Redis: their RMW, n = 2 */
    if (cfg.lock) {
        static const struct proto *const lock_protos[] = {
            &proto_etagkv_lock, NULL, &proto_etcd_lock, &proto_redis_lock};

        proto = lock_protos[cfg.target];
    }
    BU_CHECK(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK);
    if (cfg.scen != S_RMW)
        setup_get();
    memset(w, 0, sizeof w);
    setup_workers(w);
    BU_CHECK(pthread_barrier_init(&seeded, NULL, (unsigned)cfg.threads + 1) ==
             0);
    BU_CHECK(pthread_barrier_init(&started, NULL, (unsigned)cfg.threads + 1) ==
             0);
    for (int i = 0; i < cfg.threads; i++)
        BU_CHECK(pthread_create(&w[i].tid, NULL, worker_main, &w[i]) == 0);
    pthread_barrier_wait(&seeded);
    t_start = bu_now() + cfg.warmup;
    t_end = t_start + cfg.seconds;
    pthread_barrier_wait(&started);
    /* The measured window, on the clocks of both sides. */
    sleep_until(t_start);
    ticks0 = server_ticks(cfg.pids, cfg.npids);
    bticks0 = server_ticks(cfg.backend, cfg.nbackend);
    cpu0 = self_cpu();
    sleep_until(t_end);
    ticks1 = server_ticks(cfg.pids, cfg.npids);
    bticks1 = server_ticks(cfg.backend, cfg.nbackend);
    cpu1 = self_cpu();
    for (int i = 0; i < cfg.threads; i++) {
        BU_CHECK(pthread_join(w[i].tid, NULL) == 0);
        ok += w[i].ok;
        failed += w[i].failed;
        ok_total += w[i].ok_total;
        nlat += w[i].nlat;
    }
    lat = malloc(sizeof(double) * (size_t)(nlat ? nlat : 1));
    BU_CHECK(lat != NULL);
    nlat = 0;
    for (int i = 0; i < cfg.threads; i++) {
        memcpy(lat + nlat, w[i].lat, sizeof(double) * (size_t)w[i].nlat);
        nlat += w[i].nlat;
    }
    qsort(lat, (size_t)nlat, sizeof(double), cmp_double);
    p50 = nlat ? lat[nlat / 2] * 1e3 : 0;
    p99 = nlat ? lat[nlat * 99 / 100] * 1e3 : 0;
    cli_us = ok > 0 ? (cpu1 - cpu0) * 1e6 / (double)ok : 0;
    if (cfg.npids > 0 && ok > 0)
        srv_us = (double)(ticks1 - ticks0) * 1e6 /
                 (double)sysconf(_SC_CLK_TCK) / (double)ok;
    if (cfg.nbackend > 0 && ok > 0)
        back_us = (double)(bticks1 - bticks0) * 1e6 /
                  (double)sysconf(_SC_CLK_TCK) / (double)ok;
    if (cfg.lock) {
        if (atomic_load(&lock_overlaps) != 0)
            die("mutual exclusion broken: %ld acquires while the lock was "
                "held",
                atomic_load(&lock_overlaps));
        verified = "yes";
    } else if (cfg.scen == S_RMW && cfg.nkeys == 1) {
        unsigned long long n = counter_of(0);

        if (n != (unsigned long long)ok_total)
            die("lost or phantom updates: the hot key's counter is %llu "
                "after %ld acknowledged updates",
                n, ok_total);
        verified = "yes";
    }
    if (cfg.transfer) {
        check_transfers();
        verified = "yes";
    }
    /* acked_writes: every acknowledged write of the run, seeding, warm-up
     * and drain included (the denominator of a flush count over a whole
     * server run). */
    printf("{\"bench\":\"http\",\"target\":\"%s\",\"client\":\"%s\","
           "\"scenario\":\"%s\",\"value_bytes\":%zu,\"conns\":%d,"
           "\"threads\":%d,\"seconds\":%.2f,\"ok_per_s\":%.1f,"
           "\"fail_412_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"server_cpu_us_per_op\":%.2f,\"backend_cpu_us_per_op\":%.2f,"
           "\"client_cpu_us_per_op\":%.2f,\"front_ends\":%d,"
           "\"acked_writes\":%ld,\"lock_wait_s\":%d,\"verified\":\"%s\"}\n",
           cfg.name, client_name(), cfg.scen_name, cfg.value_bytes, cfg.conns,
           cfg.threads, cfg.seconds, (double)ok / cfg.seconds,
           (double)failed / cfg.seconds, p50, p99, srv_us, back_us, cli_us,
           cfg.naddr,
           cfg.lock            ? 2 * ok_total + cfg.conns
           : cfg.scen == S_RMW ? ok_total + cfg.nkeys
                               : (long)(cfg.target == T_ETAGKV),
           cfg.lock_wait, verified);
    fprintf(stderr,
            "%-7s %-7s %-9s %5zuB %3d conns: %10.0f ok/s %9.0f 412/s  p50 %.3f "
            "ms  p99 %.3f ms  CPU/op server %.1f us backend %.1f us client "
            "%.1f us  verified %s\n",
            cfg.name, client_name(), cfg.scen_name, cfg.value_bytes, cfg.conns,
            (double)ok / cfg.seconds, (double)failed / cfg.seconds, p50, p99,
            srv_us, back_us, cli_us, verified);
    for (int i = 0; i < cfg.threads; i++) {
        if (cfg.target == T_REDIS || cfg.lean) {
            for (int j = 0; j < w[i].n; j++)
                close(w[i].c[j].fd);
        } else {
            http_fini(&w[i]);
        }
        for (int j = 0; j < w[i].n; j++) {
            free(w[i].c[j].body.p);
            free(w[i].c[j].out.p);
            free(w[i].c[j].in.p);
            free(w[i].c[j].req.p);
        }
        close(w[i].epfd);
        free(w[i].c);
        free(w[i].lat);
    }
    free(lat);
    curl_global_cleanup();
    return 0;
}
