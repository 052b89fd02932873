/*
 * bench_watch.c -- notification latency (issue 13): a write is sent, and
 * each of N watchers receives its event; p50/p99 of "write sent -> watcher
 * has the event" over every watcher and write, and the writes per second
 * with those watchers connected.  One program for the three systems, so
 * the client side is the same code (raw sockets and poll(), no library):
 *
 *   etagkv  SSE streams on GET /changes (key= or prefix=), writes by PUT
 *   etcd    JSON gateway streams POST /v3/watch, writes by POST /v3/kv/put
 *   redis   SUBSCRIBE to keyspace notifications (notify-keyspace-events
 *           must include K and $; run_watch.sh sets it), writes by SET
 *
 *   bench_watch SYSTEM PORT WATCHERS WRITES [key|prefix|other] [flood]
 *
 * Prints one line: system, watchers, key|prefix, p50 and p99 in µs, and
 * writes per second.  With "flood" the writes go back to back (each
 * waits for its own acknowledgement, not for the watchers), the watchers
 * drained meanwhile, and the line gives the write rate with that many
 * watchers connected (issue 13: >= 0.9x the rate with none; "other"
 * writes a key they do not follow, so they only idle) and the
 * latency of the last event's arrival; every watcher must still see every
 * event.  bench/run_watch.sh starts the servers and prints the
 * ratios; it is never part of CTest.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum sys { ETAGKV, ETCD, REDIS };

/* "other": the watchers follow b/k and every write goes to c/k, so none
 * of them has an event: what idle watchers cost the writers. */
static int other;

struct watcher {
    int fd;
    size_t seen; /* events counted */
    char tail[64];
    size_t tail_len; /* the last bytes, for markers split across reads */
};

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int dial(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w <= 0) {
            perror("write");
            exit(1);
        }
        p += w;
        n -= (size_t)w;
    }
}

/* The byte string that marks one event in each system's stream. */
static const char *marker(enum sys s)
{
    switch (s) {
    case ETAGKV: return "\nid: ";
    case ETCD: return "\"kv\":";
    case REDIS: return "$3\r\nset\r\n";
    }
    return "";
}

/* Count markers in new bytes (with the tail of the previous read). */
static size_t count_markers(struct watcher *w, const char *buf, size_t n,
                            const char *m)
{
    char tmp[65536 + 64];
    size_t len = w->tail_len + n, c = 0, ml = strlen(m);

    memcpy(tmp, w->tail, w->tail_len);
    memcpy(tmp + w->tail_len, buf, n);
    for (size_t i = 0; i + ml <= len; i++)
        if (memcmp(tmp + i, m, ml) == 0)
            c++, i += ml - 1;
    w->tail_len = len < ml - 1 ? len : ml - 1;
    memcpy(w->tail, tmp + len - w->tail_len, w->tail_len);
    return c;
}

/* base64 of a short ASCII string, for etcd's JSON gateway. */
static void b64(const char *s, char *out)
{
    static const char t[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s), o = 0, i;

    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)s[i] << 16 |
                     (uint32_t)(unsigned char)s[i + 1] << 8 |
                     (unsigned char)s[i + 2];
        out[o++] = t[v >> 18], out[o++] = t[(v >> 12) & 63];
        out[o++] = t[(v >> 6) & 63], out[o++] = t[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)(unsigned char)s[i] << 16 |
                     (i + 1 < n ? (uint32_t)(unsigned char)s[i + 1] << 8 : 0);
        out[o++] = t[v >> 18], out[o++] = t[(v >> 12) & 63];
        out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
}

static void subscribe(enum sys s, int fd, int prefix)
{
    char req[1024], k64[64], e64[64];

    switch (s) {
    case ETAGKV:
        snprintf(req, sizeof req,
                 "GET /changes?%s HTTP/1.1\r\nHost: b\r\n"
                 "Accept: text/event-stream\r\n\r\n",
                 prefix ? "prefix=b/" : "key=b/k");
        break;
    case ETCD: {
        char body[256];

        b64(prefix ? "b/" : "b/k", k64);
        b64("b0", e64); /* range_end of the prefix "b/" */
        snprintf(body, sizeof body,
                 "{\"create_request\":{\"key\":\"%s\"%s%s%s}}", k64,
                 prefix ? ",\"range_end\":\"" : "", prefix ? e64 : "",
                 prefix ? "\"" : "");
        snprintf(req, sizeof req,
                 "POST /v3/watch HTTP/1.1\r\nHost: b\r\nContent-Type: "
                 "application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(body), body);
        break;
    }
    case REDIS:
        snprintf(req, sizeof req, "*2\r\n$%s\r\n%s\r\n$%zu\r\n%s\r\n",
                 prefix ? "10" : "9", prefix ? "PSUBSCRIBE" : "SUBSCRIBE",
                 strlen(prefix ? "__keyspace@0__:b/*" : "__keyspace@0__:b/k"),
                 prefix ? "__keyspace@0__:b/*" : "__keyspace@0__:b/k");
        break;
    }
    send_all(fd, req, strlen(req));
}

/* Send one write and read its whole answer (one read suffices on
 * loopback for these small replies). */
static void write_one(enum sys s, int fd, int prefix, int i)
{
    char req[512], key[32], buf[4096], k64[64], v64[64];

    snprintf(key, sizeof key, prefix ? "b/%d" : other ? "c/k" : "b/k", i % 64);
    switch (s) {
    case ETAGKV:
        snprintf(req, sizeof req,
                 "PUT /kv/%s HTTP/1.1\r\nHost: b\r\nContent-Length: 8\r\n\r\n"
                 "%08d",
                 key, i);
        break;
    case ETCD: {
        char body[256], v[16];

        snprintf(v, sizeof v, "%08d", i);
        b64(key, k64);
        b64(v, v64);
        snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"%s\"}", k64,
                 v64);
        snprintf(req, sizeof req,
                 "POST /v3/kv/put HTTP/1.1\r\nHost: b\r\nContent-Type: "
                 "application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(body), body);
        break;
    }
    case REDIS:
        snprintf(req, sizeof req,
                 "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$8\r\n%08d\r\n", strlen(key),
                 key, i);
        break;
    }
    send_all(fd, req, strlen(req));
    if (read(fd, buf, sizeof buf) <= 0) {
        perror("read ack");
        exit(1);
    }
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Read every watcher until each has seen `want` events; the arrival times
 * of the last go to lat[] (µs after t0).  Returns the number timed out. */
static size_t await_all(struct watcher *ws, size_t n, struct pollfd *pf,
                        enum sys s, size_t want, double t0, double *lat)
{
    size_t pending = 0;
    double deadline = now_us() + 5e6;
    char buf[65536];

    for (size_t i = 0; i < n; i++)
        pending += ws[i].seen < want;
    while (pending > 0 && now_us() < deadline) {
        if (poll(pf, n, 100) <= 0)
            continue;
        for (size_t i = 0; i < n; i++) {
            ssize_t r;

            if (!(pf[i].revents & POLLIN))
                continue;
            r = read(ws[i].fd, buf, sizeof buf);
            if (r <= 0)
                continue;
            if (ws[i].seen < want) {
                ws[i].seen += count_markers(&ws[i], buf, (size_t)r, marker(s));
                if (ws[i].seen >= want) {
                    lat[i] = now_us() - t0;
                    pending--;
                }
            }
        }
    }
    return pending;
}

/* The flood's reader: the watchers drained on a thread of their own while
 * the writes go, so that their sockets never fill (the server would drop
 * them as slow readers) and the writer pays nothing for them. */
struct drainer {
    struct watcher *ws;
    struct pollfd *pf;
    size_t n;
    enum sys s;
    atomic_int stop;
};

static void *drain_main(void *arg)
{
    struct drainer *d = arg;
    char buf[65536];

    while (!atomic_load(&d->stop)) {
        if (poll(d->pf, d->n, 50) <= 0)
            continue;
        for (size_t i = 0; i < d->n; i++) {
            ssize_t r;

            if (!(d->pf[i].revents & POLLIN))
                continue;
            r = read(d->ws[i].fd, buf, sizeof buf);
            if (r > 0)
                d->ws[i].seen +=
                    count_markers(&d->ws[i], buf, (size_t)r, marker(d->s));
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    enum sys s;
    int port, prefix, flood, wfd;
    size_t n, writes, lost = 0, nl = 0;
    struct watcher *ws;
    struct pollfd *pf;
    double *lat, *all, t_start, secs;
    char junk[65536];

    if (argc < 5) {
        fprintf(stderr, "usage: bench_watch etagkv|etcd|redis PORT WATCHERS "
                        "WRITES [prefix]\n");
        return 2;
    }
    s = strcmp(argv[1], "etcd") == 0    ? ETCD
        : strcmp(argv[1], "redis") == 0 ? REDIS
                                        : ETAGKV;
    port = atoi(argv[2]);
    n = (size_t)atol(argv[3]);
    writes = (size_t)atol(argv[4]);
    prefix = argc > 5 && strcmp(argv[5], "prefix") == 0;
    other = argc > 5 && strcmp(argv[5], "other") == 0;
    flood = argc > 6 && strcmp(argv[6], "flood") == 0;
    ws = calloc(n + 1, sizeof *ws);
    pf = calloc(n + 1, sizeof *pf);
    lat = calloc(n + 1, sizeof *lat);
    all = calloc(n * writes + 1, sizeof *all);
    for (size_t i = 0; i < n; i++) {
        ws[i].fd = dial(port);
        pf[i].fd = ws[i].fd;
        pf[i].events = POLLIN;
        subscribe(s, ws[i].fd, prefix);
    }
    /* Let every subscription settle, and drop its greeting. */
    usleep(300000 + 1000 * (useconds_t)n);
    for (size_t i = 0; i < n; i++)
        while (recv(ws[i].fd, junk, sizeof junk, MSG_DONTWAIT) > 0)
            ;
    wfd = dial(port);
    t_start = now_us();
    if (flood) {
        struct drainer d = {.ws = ws, .pf = pf, .n = n, .s = s};
        pthread_t tid;
        double t_writes;

        if (pthread_create(&tid, NULL, drain_main, &d) != 0) {
            perror("pthread_create");
            return 1;
        }
        for (size_t k = 0; k < writes; k++)
            write_one(s, wfd, prefix, (int)k);
        t_writes = now_us();
        atomic_store(&d.stop, 1);
        (void)pthread_join(tid, NULL);
        lost = await_all(ws, n, pf, s, other ? 0 : writes, t_writes, lat);
        for (size_t i = 0; i < n; i++)
            all[nl++] = lat[i];
        secs = (t_writes - t_start) / 1e6;
        qsort(all, nl, sizeof *all, cmp);
        printf("%-6s watchers=%-5zu %-6s flood writes_per_s=%.0f "
               "last_event_after_writes_us p50=%.0f p99=%.0f timed_out=%zu\n",
               argv[1], n,
               prefix  ? "prefix"
               : other ? "other"
                       : "key",
               (double)writes / secs, nl ? all[nl / 2] : 0.0,
               nl ? all[(nl * 99) / 100] : 0.0, lost);
        return lost > 0;
    }
    for (size_t k = 0; k < writes; k++) {
        double t0 = now_us();

        write_one(s, wfd, prefix, (int)k);
        lost += await_all(ws, n, pf, s, k + 1, t0, lat);
        for (size_t i = 0; i < n; i++)
            all[nl++] = lat[i];
    }
    secs = (now_us() - t_start) / 1e6;
    qsort(all, nl, sizeof *all, cmp);
    printf("%-6s watchers=%-5zu %-6s p50_us=%.0f p99_us=%.0f writes_per_s=%.0f "
           "timed_out=%zu\n",
           argv[1], n, prefix ? "prefix" : "key", nl ? all[nl / 2] : 0.0,
           nl ? all[(nl * 99) / 100] : 0.0, (double)writes / secs, lost);
    return lost > 0;
}
