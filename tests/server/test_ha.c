/*
 * test_ha.c -- the high-availability layout of docs/deploy.md, whole: a
 * 3-member etcd cluster (ETCD_MEMBERS=3 tests/etcd/with_etcd.sh), two
 * etagkv-server --etcd front ends on one prefix and a real HAProxy running
 * examples/ha/haproxy.cfg itself (its addresses set through the
 * environment, see that file).  Through the balancer: the HTTP surface,
 * and compare-and-set increments that lose no update and form a
 * linearizable history.  Then the etcd leader and a front end are
 * SIGKILLed under that load: no acknowledged increment lost, none
 * invented, the recorded history still linearizable (tests/common/wgl.c,
 * unknown outcomes allowed to land or not), writes acknowledged again
 * within a bound.  And a front end killed while its commit is in etcd but
 * the answer is not back (tests/common/relay.c holds it): the same
 * request with its Idempotency-Key, retried through the balancer, which
 * now sends it to the other front end, gets the recorded outcome.
 */
#define _GNU_SOURCE /* memmem, environ */
#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etcdutil.h"
#include "httputil.h"
#include "relay.h"
#include "testutil.h"
#include "wgl.h"

#ifndef ETAGKV_SERVER_BIN
#error "ETAGKV_SERVER_BIN must name the etagkv-server binary"
#endif
#ifndef ETAGKV_HAPROXY_BIN
#error "ETAGKV_HAPROXY_BIN must name the haproxy binary"
#endif
#ifndef ETAGKV_HAPROXY_CFG
#error "ETAGKV_HAPROXY_CFG must name examples/ha/haproxy.cfg"
#endif

/* How long the layout gets to come up; the sanitizer builds start several
 * times slower. */
#define START_TIMEOUT_S 30.0

static char *dir;
static struct hu_server front[2];
static pid_t haproxy;
static int ha_port, stats_port;

static void msleep(long ms)
{
    (void)nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L},
                    NULL);
}

/* A port that was free a moment ago (the kernel's choice), for HAProxy,
 * which cannot announce one it picked itself. */
static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    ck_assert_int_ge(fd, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* One request through the balancer, with a client timeout of timeout_s. */
static void ha(CURL *h, struct hu_resp *r, const char *method, const char *path,
               const char *const *headers, const char *body, long timeout_s)
{
    struct hu_req q = {method, path, headers, body,
                       body != NULL ? strlen(body) : 0};

    hu_perform(h, ha_port, &q, r, timeout_s);
}

/* HAProxy's last word on the front ends (their stats lines, or why there
 * were none), kept for the failure report of haproxy_start(). */
static char last_view[1024];

/* Where the running HAProxy's lines start in its log (each instance
 * appends to the one file). */
static long log_from;

/* Field i (from 0) of the CSV line of n bytes, into buf. */
static const char *csv_field(const char *line, size_t n, int i, char *buf,
                             size_t cap)
{
    const char *end = line + n, *p = line, *comma;

    while (i-- > 0 && p != NULL)
        p = memchr(p, ',', (size_t)(end - p)) != NULL
                ? (const char *)memchr(p, ',', (size_t)(end - p)) + 1
                : NULL;
    if (p == NULL)
        p = end;
    comma = memchr(p, ',', (size_t)(end - p));
    snprintf(buf, cap, "%.*s", (int)((comma != NULL ? comma : end) - p), p);
    return buf;
}

/* Whether HAProxy's stats say both front ends are up. */
static int both_up(CURL *h)
{
    struct hu_req q = {"GET", "/stats;csv", NULL, NULL, 0};
    struct hu_resp r;
    char f[6][64];
    size_t used;
    int up = 0;

    hu_perform(h, stats_port, &q, &r, 5);
    snprintf(last_view, sizeof(last_view), "stats: curl %d, HTTP %ld\n",
             (int)r.err, r.code);
    for (const char *p = r.body; r.code == 200 && p != NULL;
         p = strchr(p + 1, '\n')) {
        const char *line = *p == '\n' ? p + 1 : p;
        const char *end = strchr(line, '\n');
        size_t n = end != NULL ? (size_t)(end - line) : strlen(line);

        if (strncmp(line, "etagkv_fronts,front", 19) != 0)
            continue;
        if (memmem(line, n, ",UP,", 4) != NULL)
            up++;
        used = strlen(last_view);
        snprintf(last_view + used, sizeof(last_view) - used,
                 "%s: status %s, check %s %s in %s ms, %s\n",
                 csv_field(line, n, 1, f[0], sizeof(f[0])),
                 csv_field(line, n, 17, f[1], sizeof(f[1])),
                 csv_field(line, n, 36, f[2], sizeof(f[2])),
                 csv_field(line, n, 37, f[3], sizeof(f[3])),
                 csv_field(line, n, 38, f[4], sizeof(f[4])),
                 csv_field(line, n, 56, f[5], sizeof(f[5])));
    }
    hu_resp_free(&r);
    return up == 2;
}

/* Print what HAProxy saw and its log, but for the stats requests of
 * both_up(), so that a failure in CI (where the log is gone with the
 * machine) says why: the health checks' results are in both. */
static void haproxy_report(const char *log)
{
    char line[1024];
    FILE *f = fopen(log, "r");
    int shown = 0;

    fprintf(stderr,
            "test_ha: HAProxy on :%d (stats :%d), front ends :%d :%d\n%s"
            "test_ha: %s, this HAProxy's lines but the stats requests:\n",
            ha_port, stats_port, front[0].port, front[1].port, last_view, log);
    if (f != NULL && fseek(f, log_from, SEEK_SET) != 0) {
        (void)fclose(f);
        f = NULL;
    }
    while (f != NULL && shown < 60 && fgets(line, sizeof(line), f) != NULL)
        if (strstr(line, "stats/<STATS>") == NULL) {
            fputs(line, stderr);
            shown++;
        }
    if (f != NULL)
        (void)fclose(f);
    (void)fflush(stderr);
}

/* Run HAProxy on examples/ha/haproxy.cfg with its four addresses set to
 * free loopback ports and the two front ends (see that file), logging to
 * log. */
static pid_t haproxy_spawn(const char *log)
{
    char listen[64], f1[64], f2[64], stats[64];
    const char *argv[] = {ETAGKV_HAPROXY_BIN, "-db", "-f", ETAGKV_HAPROXY_CFG,
                          NULL};
    size_t n = 0;
    char **env;
    pid_t pid;

    {
        FILE *f = fopen(log, "r");

        log_from = 0;
        if (f != NULL && fseek(f, 0, SEEK_END) == 0)
            log_from = ftell(f) > 0 ? ftell(f) : 0;
        if (f != NULL)
            (void)fclose(f);
    }
    ha_port = free_port();
    do
        stats_port = free_port();
    while (stats_port == ha_port);
    snprintf(listen, sizeof(listen), "ETAGKV_HA_LISTEN=127.0.0.1:%d", ha_port);
    snprintf(f1, sizeof(f1), "ETAGKV_HA_FRONT1=127.0.0.1:%d", front[0].port);
    snprintf(f2, sizeof(f2), "ETAGKV_HA_FRONT2=127.0.0.1:%d", front[1].port);
    snprintf(stats, sizeof(stats), "ETAGKV_HA_STATS=127.0.0.1:%d", stats_port);
    while (environ[n] != NULL)
        n++;
    env = calloc(n + 5, sizeof(*env));
    ck_assert_ptr_nonnull(env);
    memcpy(env, environ, n * sizeof(*env));
    env[n] = listen;
    env[n + 1] = f1;
    env[n + 2] = f2;
    env[n + 3] = stats;
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        for (int k = 3; k < 1024; k++)
            close(k);
        execve(argv[0], (char *const *)argv, env);
        _exit(127);
    }
    free(env);
    return pid;
}

/* Start HAProxy and wait until it serves and has seen both front ends
 * healthy.  A port taken by someone else between free_port() and
 * HAProxy's bind makes it exit: then again, on other ports.  One that
 * runs but does not see both front ends up in time is reported and
 * replaced once, on other ports, before the test fails: a port clash
 * that HAProxy's SO_REUSEPORT binds survive would look like that. */
static void haproxy_start(void)
{
    char log[600];
    double deadline = tu_now_s() + START_TIMEOUT_S;
    CURL *h = curl_easy_init();
    int attempts = 1, replaced = 0;

    ck_assert_ptr_nonnull(h);
    snprintf(log, sizeof(log), "%s/haproxy.log", dir);
    haproxy = haproxy_spawn(log);
    while (!both_up(h)) {
        if (waitpid(haproxy, NULL, WNOHANG) != 0) {
            ck_assert_msg(attempts < 5, "haproxy exited; see %s", log);
            haproxy = haproxy_spawn(log);
            attempts++;
        }
        if (tu_now_s() >= deadline) {
            haproxy_report(log);
            ck_assert_msg(!replaced,
                          "haproxy did not see both front ends up (twice); "
                          "its view and log are above");
            ck_assert_int_eq(kill(haproxy, SIGKILL), 0);
            ck_assert_int_eq(waitpid(haproxy, NULL, 0), haproxy);
            haproxy = haproxy_spawn(log);
            replaced = 1;
            deadline = tu_now_s() + START_TIMEOUT_S;
        }
        msleep(50);
    }
    curl_easy_cleanup(h);
}

/* The layout on a fresh prefix: front[0] reaches etcd through front1_etcd
 * ("HOST:PORT,...", "" for the cluster's own endpoints), front[1] through
 * the cluster's endpoints; HAProxy before both.  The options are those of
 * docs/deploy.md. */
static void layout_start(const char *front1_etcd)
{
    static const char *const opts[] = {"--max-connections", "1024",
                                       "--max-connections-per-client", "1024",
                                       NULL};
    char data[512];

    snprintf(data, sizeof(data), "%s/data", dir);
    hu_server_start_via(&front[0], ETAGKV_SERVER_BIN, data, front1_etcd, opts);
    hu_server_start(&front[1], ETAGKV_SERVER_BIN, data, opts);
    haproxy_start();
}

static void setup(void)
{
    const char *pids = getenv("ETAGKV_TEST_ETCD_PIDS");

    ck_assert_msg(tu_on_etcd() && pids != NULL && strchr(pids, ' ') != NULL,
                  "run me with ETCD_MEMBERS=3 tests/etcd/with_etcd.sh");
    dir = tu_mkdtemp();
    haproxy = 0;
}

static void teardown(void)
{
    if (haproxy > 0) {
        int status = 0;

        ck_assert_int_eq(kill(haproxy, SIGTERM), 0);
        ck_assert_int_eq(waitpid(haproxy, &status, 0), haproxy);
        ck_assert_msg(WIFEXITED(status) || WTERMSIG(status) == SIGTERM,
                      "haproxy died of signal %d", WTERMSIG(status));
        haproxy = 0;
    }
    hu_server_stop(&front[0]);
    hu_server_stop(&front[1]);
    tu_rmdir_free(dir);
}

/* ---- the HTTP surface through the balancer -------------------------------
 */

/* The problem body's member `name` (a string), for a 412 or 409. */
static void problem_str(const struct hu_resp *r, const char *name, char *out,
                        size_t cap)
{
    json_t *j = json_loads(r->body != NULL ? r->body : "", 0, NULL);

    ck_assert_msg(j != NULL, "not JSON: %s", r->body);
    ck_assert_ptr_nonnull(json_string_value(json_object_get(j, name)));
    snprintf(out, cap, "%s", json_string_value(json_object_get(j, name)));
    json_decref(j);
}

/* Each request goes to either front end (round robin): the answers are
 * those of test_server.c's suite on one server.  A representative set,
 * not all of it: the balancer passes requests through, and what this
 * checks is that nothing in HAProxy's configuration changes them. */
START_TEST(the_http_surface_is_the_same_through_the_balancer)
{
    CURL *h = curl_easy_init();
    struct hu_resp r;
    char etag1[ETAGKV_ETAG_SIZE], etag2[ETAGKV_ETAG_SIZE], cond[96], s[96];
    const char *hdr[] = {cond, NULL};
    const char *idem[] = {"Idempotency-Key: \"order-1\"", "If-None-Match: *",
                          NULL};

    layout_start("");
    ha(h, &r, "PUT", "/kv/greeting", NULL, "hello", 30);
    ck_assert_int_eq(r.code, 201);
    snprintf(etag1, sizeof(etag1), "%s", hu_hdr(&r, "ETag"));
    hu_resp_free(&r);
    ha(h, &r, "PUT", "/kv/greeting", NULL, "hello, world", 30);
    ck_assert_int_eq(r.code, 200);
    snprintf(etag2, sizeof(etag2), "%s", hu_hdr(&r, "ETag"));
    ck_assert_str_ne(etag1, etag2);
    hu_resp_free(&r);

    ha(h, &r, "GET", "/kv/greeting", NULL, NULL, 30);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(r.body, "hello, world");
    ck_assert_str_eq(hu_hdr(&r, "ETag"), etag2);
    ck_assert_ptr_nonnull(hu_hdr(&r, "Last-Modified"));
    ck_assert_str_eq(hu_hdr(&r, "ETagKV-Version"), "2");
    hu_resp_free(&r);

    /* RFC 9110 §13.1.1: a stale If-Match is 412, with the current state
     * to rebase on. */
    snprintf(cond, sizeof(cond), "If-Match: %s", etag1);
    ha(h, &r, "PUT", "/kv/greeting", hdr, "lost", 30);
    ck_assert_int_eq(r.code, 412);
    ck_assert_str_eq(hu_hdr(&r, "ETag"), etag2);
    problem_str(&r, "etag", s, sizeof(s));
    ck_assert_str_eq(s, etag2);
    hu_resp_free(&r);

    /* §13.1.2: If-None-Match is 304 for a GET, 412 for a PUT. */
    snprintf(cond, sizeof(cond), "If-None-Match: %s", etag2);
    ha(h, &r, "GET", "/kv/greeting", hdr, NULL, 30);
    ck_assert_int_eq(r.code, 304);
    ck_assert_str_eq(hu_hdr(&r, "ETag"), etag2);
    ck_assert_uint_eq(r.len, 0);
    hu_resp_free(&r);
    snprintf(cond, sizeof(cond), "If-None-Match: *");
    ha(h, &r, "PUT", "/kv/greeting", hdr, "again", 30);
    ck_assert_int_eq(r.code, 412);
    hu_resp_free(&r);

    /* Idempotency-Key: the repeats, spread over both front ends, get the
     * recorded 201 (afresh, If-None-Match would be 412). */
    for (int i = 0; i < 4; i++) {
        ha(h, &r, "PUT", "/kv/order", idem, "placed", 30);
        ck_assert_int_eq(r.code, 201);
        if (i > 0)
            ck_assert_str_eq(hu_hdr(&r, "Idempotent-Replayed"), "true");
        hu_resp_free(&r);
    }

    /* A transaction: both writes under one revision. */
    ha(h, &r, "POST", "/txn",
       (const char *const[]){"Content-Type: application/json", NULL},
       "{\"ops\":[{\"op\":\"put\",\"key\":\"a\",\"value\":\"1\"},"
       "{\"op\":\"put\",\"key\":\"b\",\"value\":\"2\"}]}",
       30);
    ck_assert_int_eq(r.code, 200);
    hu_resp_free(&r);
    ha(h, &r, "GET", "/kv/a", NULL, NULL, 30);
    ck_assert_int_eq(r.code, 200);
    snprintf(s, sizeof(s), "%s", hu_hdr(&r, "ETagKV-Revision"));
    hu_resp_free(&r);
    ha(h, &r, "GET", "/kv/b", NULL, NULL, 30);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(r.body, "2");
    ck_assert_str_eq(hu_hdr(&r, "ETagKV-Revision"), s);
    hu_resp_free(&r);

    /* DELETE: If-Match a stale tag is 412, the current one 204; then 404. */
    snprintf(cond, sizeof(cond), "If-Match: %s", etag1);
    ha(h, &r, "DELETE", "/kv/greeting", hdr, NULL, 30);
    ck_assert_int_eq(r.code, 412);
    hu_resp_free(&r);
    snprintf(cond, sizeof(cond), "If-Match: %s", etag2);
    ha(h, &r, "DELETE", "/kv/greeting", hdr, NULL, 30);
    ck_assert_int_eq(r.code, 204);
    hu_resp_free(&r);
    ha(h, &r, "GET", "/kv/greeting", NULL, NULL, 30);
    ck_assert_int_eq(r.code, 404);
    hu_resp_free(&r);
    curl_easy_cleanup(h);
}
END_TEST

/* ---- compare-and-set load, recorded --------------------------------------
 */

#define KEYS 2
#define PER_KEY 3
#define CLIENTS (KEYS * PER_KEY)

/* One client: read counter `key`, PUT value + 1 If-Match its ETag
 * (If-None-Match: * while absent), until told to stop.  Every read that
 * answered and every write that was sent is recorded for the checker. */
struct client {
    int key;
    long timeout_s; /* of each request */
    struct wgl_op *ops;
    size_t n, cap;
    long acked;    /* 200/201 */
    long lost;     /* 412: another client got in between */
    long unknown;  /* sent, no answer: 503 OUTCOME_UNKNOWN, 502, 504, timeout */
    long refused;  /* 503 UNAVAILABLE: nothing written */
    char bad[200]; /* the first answer that no outcome explains */
    char note[200]; /* the first 503 refusal, for the log */
};

static atomic_int stop_load;
static pthread_mutex_t ack_lock = PTHREAD_MUTEX_INITIALIZER;
static double killed_at, last_ack, worst_gap;
static long acks, acks_after_kill;

/* An acknowledgement at now: the longest time without one since the
 * kill. */
static void acked_at(double now)
{
    (void)pthread_mutex_lock(&ack_lock);
    acks++;
    if (killed_at > 0 && now > killed_at) {
        double since = last_ack > killed_at ? last_ack : killed_at;

        if (now - since > worst_gap)
            worst_gap = now - since;
        acks_after_kill++;
    }
    last_ack = now;
    (void)pthread_mutex_unlock(&ack_lock);
}

static int record(struct client *c, struct wgl_op op)
{
    if (c->n == c->cap) {
        size_t cap = c->cap != 0 ? c->cap * 2 : 256;
        struct wgl_op *ops = realloc(c->ops, cap * sizeof(*ops));

        if (ops == NULL)
            return -1;
        c->ops = ops;
        c->cap = cap;
    }
    c->ops[c->n++] = op;
    return 0;
}

/* Whether r is a write that may or may not have been applied: the front
 * end says so (503 OUTCOME_UNKNOWN), or HAProxy had sent it and got no
 * answer (502, 504), or the client gave up waiting. */
static int outcome_unknown(const struct hu_resp *r)
{
    return r->err != CURLE_OK || r->code == 502 || r->code == 504 ||
           (r->code == 503 && r->body != NULL &&
            strstr(r->body, "OUTCOME_UNKNOWN") != NULL);
}

/* A PUT through the balancer on a connection of its own.  On a reused
 * keep-alive connection, a request that is not the connection's first and
 * whose front end dies before answering is not answered 502: HAProxy
 * closes the client's connection without a response, as after an idle
 * timeout, and libcurl then sends the request again on a new connection,
 * silently.  That second run of an If-Match PUT whose first run was
 * applied is a 412 (seen here before this function: a counter one above
 * its acknowledged increments, and a history that is not linearizable).
 * The first request of a connection gets the 502 and is never resent.
 * docs/deploy.md tells clients the same. */
static void put_fresh(CURL *h, struct hu_resp *r, const char *path,
                      const char *const *headers, const char *body,
                      long timeout_s)
{
    struct hu_req q = {"PUT", path, headers, body, strlen(body)};
    struct hu_call call;

    if (hu_prepare(&call, h, ha_port, &q, r, timeout_s) != 0) {
        r->err = CURLE_OUT_OF_MEMORY;
        return;
    }
    (void)curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
    hu_finish(&call, curl_easy_perform(h));
}

/* One read-modify-write; 0, or -1 to stop (c->bad says why). */
static int increment(struct client *c, CURL *h, const char *path)
{
    struct hu_resp r;
    char cond[96], body[32];
    const char *hdr[] = {cond, NULL};
    struct wgl_op op = {.kind = WGL_READ, .outcome = WGL_OK};
    int ok = 0;

    op.invoke_s = tu_now_s();
    ha(h, &r, "GET", path, NULL, NULL, c->timeout_s);
    op.complete_s = tu_now_s();
    if (r.err == CURLE_OK && (r.code == 200 || r.code == 404)) {
        op.value = r.code == 200 ? strtol(r.body, NULL, 10) : 0;
        if (r.code == 200)
            snprintf(cond, sizeof(cond), "If-Match: %s", hu_hdr(&r, "ETag"));
        else
            snprintf(cond, sizeof(cond), "If-None-Match: *");
        ok = record(c, op) == 0;
    } else if (r.err != CURLE_OK || r.code == 502 || r.code == 503 ||
               r.code == 504) {
        /* A read that did not answer tells nothing and changed nothing;
         * back off a little while the cluster elects. */
        hu_resp_free(&r);
        msleep(10);
        return 0;
    }
    if (!ok)
        snprintf(c->bad, sizeof(c->bad), "GET: %ld %s", r.code,
                 curl_easy_strerror(r.err));
    hu_resp_free(&r);
    if (!ok)
        return -1;

    snprintf(body, sizeof(body), "%ld", op.value + 1);
    op = (struct wgl_op){.kind = WGL_CAS,
                         .value = op.value,
                         .to = op.value + 1,
                         .invoke_s = tu_now_s()};
    put_fresh(h, &r, path, hdr, body, c->timeout_s);
    op.complete_s = tu_now_s();
    if (r.err == CURLE_OK && (r.code == 200 || r.code == 201)) {
        op.outcome = WGL_OK;
        c->acked++;
        acked_at(op.complete_s);
    } else if (r.err == CURLE_OK && r.code == 412) {
        op.outcome = WGL_FAILED;
        c->lost++;
    } else if (outcome_unknown(&r)) {
        op.outcome = WGL_UNKNOWN;
        c->unknown++;
    } else if (r.code == 503) {
        /* UNAVAILABLE: nothing written, so nothing to record */
        if (c->refused++ == 0)
            snprintf(c->note, sizeof(c->note), "%.150s",
                     r.body != NULL ? r.body : "");
        hu_resp_free(&r);
        return 0;
    } else {
        snprintf(c->bad, sizeof(c->bad), "PUT: %ld %.100s", r.code,
                 r.body != NULL ? r.body : "");
        hu_resp_free(&r);
        return -1;
    }
    hu_resp_free(&r);
    return record(c, op);
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    CURL *h = curl_easy_init();
    char path[32];

    snprintf(path, sizeof(path), "/kv/counter-%d", c->key);
    if (h == NULL)
        snprintf(c->bad, sizeof(c->bad), "curl_easy_init failed");
    while (h != NULL && !atomic_load(&stop_load) && increment(c, h, path) == 0)
        ;
    curl_easy_cleanup(h);
    return NULL;
}

static void load_start(struct client *c, pthread_t *th, long timeout_s)
{
    atomic_store(&stop_load, 0);
    killed_at = last_ack = worst_gap = 0;
    acks = acks_after_kill = 0;
    for (int i = 0; i < CLIENTS; i++) {
        memset(&c[i], 0, sizeof(c[i]));
        c[i].key = i % KEYS;
        c[i].timeout_s = timeout_s;
        ck_assert_int_eq(pthread_create(&th[i], NULL, client_main, &c[i]), 0);
    }
}

static void load_stop(struct client *c, pthread_t *th)
{
    atomic_store(&stop_load, 1);
    for (int i = 0; i < CLIENTS; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < CLIENTS; i++)
        ck_assert_msg(c[i].bad[0] == '\0', "client %d: %s", i, c[i].bad);
}

/* For a failure report: every value up to `final` that no acknowledged
 * compare-and-set wrote, with the writes that could have (times from the
 * kill, if any). */
static void explain(const struct wgl_op *ops, size_t n, long final)
{
    for (long w = 1; w <= final; w++) {
        int acked = 0;

        for (size_t i = 0; i < n && !acked; i++)
            acked = ops[i].kind == WGL_CAS && ops[i].outcome == WGL_OK &&
                    ops[i].to == w;
        for (size_t i = 0; i < n && !acked; i++)
            if (ops[i].kind == WGL_CAS && ops[i].to == w)
                printf("  value %ld, acknowledged to nobody: a %s write "
                       "[%.3f, %.3f] s\n",
                       w, ops[i].outcome == WGL_FAILED ? "412" : "unknown",
                       ops[i].invoke_s - killed_at,
                       ops[i].complete_s - killed_at);
    }
}

/* Per counter: read it through the balancer (recorded as one more read,
 * after every other operation), check that it lies between the
 * acknowledged increments and those plus the unknown ones, and that the
 * recorded history is linearizable.  Returns the unknown outcomes. */
static long load_check(struct client *c)
{
    CURL *h = curl_easy_init();
    long unknown_all = 0;

    for (int k = 0; k < KEYS; k++) {
        struct client all = {.key = k};
        long acked = 0, lost = 0, unknown = 0, refused = 0, steps = 0;
        struct wgl_op last = {.kind = WGL_READ, .outcome = WGL_OK};
        double deadline = tu_now_s() + 20, t0;
        enum wgl_verdict v;
        char path[32];
        struct hu_resp r;

        for (int i = k; i < CLIENTS; i += KEYS) {
            acked += c[i].acked;
            lost += c[i].lost;
            unknown += c[i].unknown;
            refused += c[i].refused;
            for (size_t j = 0; j < c[i].n; j++)
                ck_assert_int_eq(record(&all, c[i].ops[j]), 0);
        }
        snprintf(path, sizeof(path), "/kv/counter-%d", k);
        for (;;) {
            last.invoke_s = tu_now_s();
            ha(h, &r, "GET", path, NULL, NULL, 10);
            last.complete_s = tu_now_s();
            if (r.err == CURLE_OK && r.code == 200)
                break;
            ck_assert_msg(tu_now_s() < deadline, "GET %s: %ld", path, r.code);
            hu_resp_free(&r);
            msleep(50);
        }
        last.value = strtol(r.body, NULL, 10);
        /* Each increment is one write: the version counts them. */
        ck_assert_int_eq(strtol(hu_hdr(&r, "ETagKV-Version"), NULL, 10),
                         last.value);
        hu_resp_free(&r);
        ck_assert_int_eq(record(&all, last), 0);
        t0 = tu_now_s();
        v = wgl_check(all.ops, all.n, 0, 5000000L, &steps);
        printf("counter-%d: value %ld; %ld acknowledged, %ld lost races "
               "(412), %ld outcome unknown, %ld refused (503); history of "
               "%zu operations %s (%ld steps, %.3f s)\n",
               k, last.value, acked, lost, unknown, refused, all.n,
               v == WGL_LINEARIZABLE       ? "linearizable"
               : v == WGL_NOT_LINEARIZABLE ? "NOT LINEARIZABLE"
                                           : "undecided",
               steps, tu_now_s() - t0);
        if (v != WGL_LINEARIZABLE || last.value > acked + unknown)
            explain(all.ops, all.n, last.value);
        for (int i = k; i < CLIENTS; i += KEYS)
            if (c[i].note[0] != '\0')
                printf("  client %d, first 503: %s\n", i, c[i].note);
        /* Check's fork mode loses what is buffered when an assertion
         * fails. */
        (void)fflush(stdout);
        ck_assert_int_ge(last.value, acked);
        ck_assert_int_le(last.value, acked + unknown);
        ck_assert_int_eq(v, WGL_LINEARIZABLE);
        free(all.ops);
        unknown_all += unknown;
    }
    for (int i = 0; i < CLIENTS; i++)
        free(c[i].ops);
    curl_easy_cleanup(h);
    return unknown_all;
}

START_TEST(cas_increments_through_the_balancer_lose_no_update)
{
    struct client c[CLIENTS];
    pthread_t th[CLIENTS];
    long acked = 0;
    double deadline;

    layout_start("");
    /* Nothing fails here: a generous timeout, so that a slow machine is
     * not taken for a lost answer. */
    load_start(c, th, 60);
    /* Until 60 increments per counter, or 60 s on a slow machine. */
    deadline = tu_now_s() + 60;
    while (acked < 60L * KEYS && tu_now_s() < deadline) {
        msleep(50);
        (void)pthread_mutex_lock(&ack_lock);
        acked = acks;
        (void)pthread_mutex_unlock(&ack_lock);
    }
    load_stop(c, th);
    /* Nothing failed: every write has its answer, and the counters are
     * exactly their acknowledged increments. */
    ck_assert_int_eq(load_check(c), 0);
}
END_TEST

START_TEST(killing_the_etcd_leader_and_a_front_end_loses_no_acknowledged_write)
{
    struct client c[CLIENTS];
    pthread_t th[CLIENTS];
    double t0;
    pid_t leader;
    long after;

    layout_start("");
    /* A request that hangs on the failure counts as unknown after 10 s,
     * and the client goes on. */
    load_start(c, th, 10);
    t0 = tu_now_s();
    while (tu_now_s() - t0 < 1.5)
        msleep(50);
    leader = tu_etcd_leader_pid();
    (void)pthread_mutex_lock(&ack_lock);
    killed_at = tu_now_s();
    (void)pthread_mutex_unlock(&ack_lock);
    ck_assert_int_eq(kill(leader, SIGKILL), 0);
    hu_server_kill(&front[0]);
    /* Run on until writes have been acknowledged again for a while, and at
     * least 4 s; give up at 20 s (the bound below fails then). */
    for (;;) {
        double now = tu_now_s();

        (void)pthread_mutex_lock(&ack_lock);
        after = acks_after_kill;
        (void)pthread_mutex_unlock(&ack_lock);
        if ((now - killed_at >= 4 && after >= 20) || now - killed_at >= 20)
            break;
        msleep(50);
    }
    load_stop(c, th);
    (void)pthread_mutex_lock(&ack_lock);
    printf("after the kill: %ld writes acknowledged, the longest time "
           "without one %.2f s\n",
           acks_after_kill, worst_gap);
    (void)fflush(stdout);
    ck_assert_int_gt(acks_after_kill, 0);
    /* docs/deploy.md: the service answers again within a few seconds
     * (1 to 3 s measured; about 1 run in 5, 7 s: a write a follower had
     * forwarded to the dead leader waits for etcd 3.4's own request
     * timeout, 5 s plus two election ticks).  The bound leaves room for
     * that on a loaded machine and the sanitizer builds. */
    ck_assert_msg(worst_gap < 15.0, "no write acknowledged for %.2f s",
                  worst_gap);
    (void)pthread_mutex_unlock(&ack_lock);
    (void)load_check(c);
}
END_TEST

/* ---- Idempotency-Key after a front end dies mid-request ------------------
 */

struct pending {
    int port;
    struct hu_resp r;
};

static const char *const order_hdr[] = {"Idempotency-Key: \"ha-order-1\"",
                                        "If-None-Match: *", NULL};

static void *put_order(void *arg)
{
    struct pending *p = arg;
    struct hu_req q = {"PUT", "/kv/order", order_hdr, "placed", 6};
    CURL *h = curl_easy_init();

    if (h != NULL)
        hu_perform(h, p->port, &q, &p->r, 60);
    curl_easy_cleanup(h);
    return NULL;
}

START_TEST(
    an_idempotency_key_retried_after_its_front_end_died_mid_request_replays)
{
    const char *store = getenv("ETAGKV_TEST_STORE") + strlen("etcd://");
    struct tu_relay relay;
    struct pending first = {0};
    struct hu_resp r;
    pthread_t th;
    char via[64];
    double deadline;
    CURL *h = curl_easy_init();

    /* front[0] reaches the first member through the relay only. */
    tu_relay_start(&relay, atoi(strchr(store, ':') + 1));
    snprintf(via, sizeof(via), "127.0.0.1:%d", relay.port);
    layout_start(via);
    atomic_store(&relay.drop_txn_answers, 1);
    first.port = front[0].port;
    ck_assert_int_eq(pthread_create(&th, NULL, put_order, &first), 0);
    /* etcd has applied the commit and answered; the answer stays in the
     * relay, the front end waits for it (15 s before it would give up). */
    deadline = tu_now_s() + 30;
    while (atomic_load(&relay.answers_dropped) == 0) {
        ck_assert_msg(tu_now_s() < deadline, "the commit never reached etcd");
        msleep(5);
    }
    hu_server_kill(&front[0]);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    /* Killed mid-request: the client got no answer at all. */
    ck_assert_msg(first.r.err != CURLE_OK, "the first attempt answered %ld",
                  first.r.code);
    hu_resp_free(&first.r);

    /* The same request through the balancer: front[0] refuses the
     * connection, HAProxy redispatches to front[1], which finds the
     * recorded outcome.  Afresh, If-None-Match: * would be 412. */
    ha(h, &r, "PUT", "/kv/order", order_hdr, "placed", 30);
    ck_assert_int_eq(r.err, CURLE_OK);
    ck_assert_int_eq(r.code, 201);
    ck_assert_str_eq(hu_hdr(&r, "Idempotent-Replayed"), "true");
    hu_resp_free(&r);
    ha(h, &r, "GET", "/kv/order", NULL, NULL, 30);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(r.body, "placed");
    ck_assert_str_eq(hu_hdr(&r, "ETagKV-Version"), "1");
    hu_resp_free(&r);
    curl_easy_cleanup(h);
    tu_relay_stop(&relay);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ha");
    TCase *tc = tcase_create("ha");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, the_http_surface_is_the_same_through_the_balancer);
    tcase_add_test(tc, cas_increments_through_the_balancer_lose_no_update);
    tcase_add_test(
        tc,
        an_idempotency_key_retried_after_its_front_end_died_mid_request_replays);
    /* Last: it leaves the cluster with two members. */
    tcase_add_test(
        tc,
        killing_the_etcd_leader_and_a_front_end_loses_no_acknowledged_write);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
