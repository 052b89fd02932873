/*
 * test_fronts.c -- two etagkv-servers in front of one store on etcd
 * (etagkv-server --etcd), as two front ends behind a balancer would be:
 * compare-and-set increments through both lose no update, a long-poll on
 * one is woken by a write through the other, an Idempotency-Key
 * retried through the other gets the recorded outcome, and a front end
 * that cannot reach etcd says 503 with when to retry.  Runs only under
 * tests/etcd/with_etcd.sh (an LMDB store has one server per directory).
 */
#include <dirent.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httputil.h"
#include "testutil.h"

#ifndef ETAGKV_SERVER_BIN
#error "ETAGKV_SERVER_BIN must name the etagkv-server binary"
#endif

static char *dir;
static struct hu_server front[2];

static void setup(void)
{
    char data[512];

    ck_assert_msg(tu_on_etcd(), "run me with tests/etcd/with_etcd.sh");
    dir = tu_mkdtemp();
    snprintf(data, sizeof(data), "%s/data", dir);
    /* The same data path: the same prefix on etcd (tu_store_where()). */
    hu_server_start(&front[0], ETAGKV_SERVER_BIN, data, NULL);
    hu_server_start(&front[1], ETAGKV_SERVER_BIN, data, NULL);
}

static void teardown(void)
{
    hu_server_stop(&front[0]);
    hu_server_stop(&front[1]);
    tu_rmdir_free(dir);
}

static void call(CURL *h, int port, struct hu_resp *r, const char *method,
                 const char *path, const char *const *headers, const char *body)
{
    struct hu_req q = {method, path, headers, body,
                       body != NULL ? strlen(body) : 0};

    hu_perform(h, port, &q, r, 60);
}

/* ---- no lost update through two front ends ----------------------------------
 */

struct client {
    int port;
    int goal, acked, lost;
    int failed; /* a response that is neither 2xx nor 412 */
};

static void *increment(void *arg)
{
    struct client *c = arg;
    CURL *h = curl_easy_init();

    while (h != NULL && c->acked < c->goal && !c->failed) {
        struct hu_resp r;
        char cond[96], body[32];
        const char *hdr[2] = {cond, NULL};
        long n = 0;

        call(h, c->port, &r, "GET", "/kv/counter", NULL, NULL);
        if (r.code == 200) {
            n = strtol(r.body, NULL, 10);
            snprintf(cond, sizeof(cond), "If-Match: %s", hu_hdr(&r, "ETag"));
        } else {
            snprintf(cond, sizeof(cond), "If-None-Match: *");
        }
        c->failed = r.code != 200 && r.code != 404;
        hu_resp_free(&r);
        snprintf(body, sizeof(body), "%ld", n + 1);
        call(h, c->port, &r, "PUT", "/kv/counter", hdr, body);
        if (r.code == 200 || r.code == 201)
            c->acked++;
        else if (r.code == 412)
            c->lost++;
        else
            c->failed = 1;
        hu_resp_free(&r);
    }
    curl_easy_cleanup(h);
    return NULL;
}

START_TEST(cas_increments_through_two_front_ends_lose_no_update)
{
    enum { CLIENTS = 6, EACH = 15 };
    struct client c[CLIENTS];
    pthread_t th[CLIENTS];
    struct hu_resp r;
    CURL *h = curl_easy_init();
    int acked = 0, lost = 0;

    for (int i = 0; i < CLIENTS; i++) {
        c[i] = (struct client){.port = front[i % 2].port, .goal = EACH};
        ck_assert_int_eq(pthread_create(&th[i], NULL, increment, &c[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_msg(!c[i].failed, "client %d got an unexpected status", i);
        acked += c[i].acked;
        lost += c[i].lost;
    }
    printf("two front ends: %d increments acknowledged, %d lost races (412) "
           "retried\n",
           acked, lost);
    for (int i = 0; i < 2; i++) {
        call(h, front[i].port, &r, "GET", "/kv/counter", NULL, NULL);
        ck_assert_int_eq(r.code, 200);
        ck_assert_int_eq(strtol(r.body, NULL, 10), CLIENTS * EACH);
        ck_assert_str_eq(hu_hdr(&r, "ETagKV-Version"), "90");
        hu_resp_free(&r);
    }
    curl_easy_cleanup(h);
}
END_TEST

/* ---- a long-poll woken through the other front end
 * ----------------------------- */

struct poll_arg {
    int port;
    char cond[96];
    struct hu_resp r;
    double took_s;
};

static void *long_poll(void *arg)
{
    struct poll_arg *p = arg;
    const char *hdr[] = {p->cond, "Prefer: wait=20", NULL};
    CURL *h = curl_easy_init();
    double t0 = tu_now_s();

    call(h, p->port, &p->r, "GET", "/kv/k", hdr, NULL);
    p->took_s = tu_now_s() - t0;
    curl_easy_cleanup(h);
    return NULL;
}

START_TEST(a_long_poll_on_one_front_end_is_woken_by_a_write_through_the_other)
{
    struct poll_arg p = {.port = front[0].port};
    struct hu_resp r;
    pthread_t th;
    CURL *h = curl_easy_init();

    call(h, front[1].port, &r, "PUT", "/kv/k", NULL, "v1");
    ck_assert_int_eq(r.code, 201);
    snprintf(p.cond, sizeof(p.cond), "If-None-Match: %s", hu_hdr(&r, "ETag"));
    hu_resp_free(&r);
    ck_assert_int_eq(pthread_create(&th, NULL, long_poll, &p), 0);
    /* The poll is held once front 0's metric says so. */
    ck_assert_int_eq(
        hu_metric_await(h, front[0].port, "etagkv_watchers_held", 1, 10), 1);
    call(h, front[1].port, &r, "PUT", "/kv/k", NULL, "v2");
    ck_assert_int_eq(r.code, 200);
    hu_resp_free(&r);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(p.r.code, 200);
    ck_assert_str_eq(p.r.body, "v2");
    ck_assert_msg(p.took_s < 10, "woken after %.1f s", p.took_s);
    hu_resp_free(&p.r);
    curl_easy_cleanup(h);
}
END_TEST

/* ---- Idempotency-Key through the other front end
 * ----------------------------- */

START_TEST(an_idempotency_key_retried_through_the_other_front_end_replays)
{
    const char *hdr[] = {"Idempotency-Key: \"order-1\"", "If-None-Match: *",
                         NULL};
    struct hu_resp first, again, now;
    CURL *h = curl_easy_init();

    call(h, front[0].port, &first, "PUT", "/kv/order", hdr, "placed");
    ck_assert_int_eq(first.code, 201);
    /* The retry: same request, the other server.  Executed afresh, the
     * If-None-Match would fail (412); the recorded outcome is 201. */
    call(h, front[1].port, &again, "PUT", "/kv/order", hdr, "placed");
    ck_assert_int_eq(again.code, 201);
    ck_assert_str_eq(hu_hdr(&again, "Idempotent-Replayed"), "true");
    ck_assert_str_eq(hu_hdr(&again, "ETag"), hu_hdr(&first, "ETag"));
    call(h, front[1].port, &now, "GET", "/kv/order", NULL, NULL);
    ck_assert_str_eq(hu_hdr(&now, "ETagKV-Version"), "1");
    hu_resp_free(&first);
    hu_resp_free(&again);
    hu_resp_free(&now);
    curl_easy_cleanup(h);
}
END_TEST

/* ---- etcd out of reach ------------------------------------------------------
 */

/* Has every thread of process pid stopped (SIGSTOP)?  Waits up to 10 s
 * for /proc/pid/task/<each>/stat to say 'T'. */
static int stopped(pid_t pid)
{
    char path[64];

    for (int tries = 0; tries < 1000; tries++) {
        DIR *d;
        struct dirent *e;
        int all = 1;

        snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
        d = opendir(path);
        if (d == NULL)
            return 0;
        while (all && (e = readdir(d)) != NULL) {
            char stat[512], *p;
            FILE *f;
            size_t n;

            if (e->d_name[0] == '.')
                continue;
            snprintf(stat, sizeof(stat), "/proc/%d/task/%s/stat", (int)pid,
                     e->d_name);
            f = fopen(stat, "r");
            if (f == NULL)
                continue; /* the thread ended */
            n = fread(stat, 1, sizeof(stat) - 1, f);
            (void)fclose(f);
            stat[n] = '\0';
            p = strrchr(stat, ')'); /* the state follows "(comm) " */
            all = p != NULL && p[1] == ' ' && p[2] == 'T';
        }
        (void)closedir(d);
        if (all)
            return 1;
        (void)usleep(10 * 1000);
    }
    return 0;
}

/* With every etcd member stopped (SIGSTOP: the connections stay open, no
 * answer comes), a read fails over through every endpoint and gives up:
 * 503 UNAVAILABLE with Retry-After: 1, the cluster being worth retrying
 * within a second (an election takes about that), not the minute a full
 * Idempotency-Key table asks for.  The members are resumed before the
 * assertions so that a failure leaves the suite's etcd running. */
START_TEST(a_front_end_that_cannot_reach_etcd_answers_503_with_retry_after)
{
    const char *pids = getenv("ETAGKV_TEST_ETCD_PIDS");
    char where[1024], url[1100], data[512];
    const char *extra[] = {"--etcd", url, NULL};
    struct hu_server quick;
    struct hu_resp r;
    CURL *h = curl_easy_init();
    pid_t pid;

    ck_assert_ptr_nonnull(pids);
    pid = (pid_t)strtol(pids, NULL, 10);
    ck_assert_int_gt(pid, 0);
    snprintf(data, sizeof(data), "%s/data", dir);
    /* The same prefix, with a short request timeout (the last --etcd wins). */
    snprintf(url, sizeof(url), "%s?timeout_ms=300",
             tu_store_where(data, where, sizeof(where)) + 7);
    hu_server_start(&quick, ETAGKV_SERVER_BIN, data, extra);

    ck_assert_int_eq(kill(pid, SIGSTOP), 0);
    /* kill() returns before every thread of etcd has stopped: a request
     * sent at once may still be answered. */
    ck_assert_msg(stopped(pid), "etcd (pid %d) did not stop", (int)pid);
    call(h, quick.port, &r, "GET", "/kv/k", NULL, NULL);
    ck_assert_int_eq(kill(pid, SIGCONT), 0);

    ck_assert_int_eq(r.code, 503);
    ck_assert_pstr_eq(hu_hdr(&r, "Retry-After"), "1");
    ck_assert_msg(strstr(r.body, "\"UNAVAILABLE\"") != NULL, "%s", r.body);
    hu_resp_free(&r);
    /* And it serves again once the cluster answers: within a few tries,
     * each held to 300 ms (a resumed etcd on a loaded machine may take
     * longer to answer one), the first that lands 201, a later one 200. */
    {
        double until = tu_now_s() + 20;

        for (;;) {
            call(h, quick.port, &r, "PUT", "/kv/k", NULL, "back");
            if (r.code != 503 || tu_now_s() >= until)
                break;
            hu_resp_free(&r);
            (void)poll(NULL, 0, 100);
        }
        ck_assert_msg(r.code == 201 || r.code == 200, "%ld: %s", r.code,
                      r.body);
        hu_resp_free(&r);
    }
    hu_server_stop(&quick);
    curl_easy_cleanup(h);
}
END_TEST

/* The sockets etagkv-server pid has open. */
static int sockets_of(pid_t pid)
{
    char path[32], link[64];
    struct dirent *e;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    d = opendir(path);
    ck_assert_msg(d != NULL, "%s: cannot list", path);
    while ((e = readdir(d)) != NULL) {
        char fd[320];
        ssize_t len;

        snprintf(fd, sizeof(fd), "%s/%s", path, e->d_name);
        len = readlink(fd, link, sizeof link - 1);
        if (len > 0 && strncmp(link, "socket:", 7) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* Wait (2 s at most) until server pid has at most n sockets open. */
static void wait_sockets(pid_t pid, int n)
{
    for (int i = 0; i < 200 && sockets_of(pid) > n; i++)
        (void)usleep(10 * 1000);
}

/* Send a request on fd that has no body and read its whole response. */
static void ask(int fd, const char *request, const char *status)
{
    char reply[512];
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n;

    ck_assert_int_eq(write(fd, request, strlen(request)),
                     (ssize_t)strlen(request));
    ck_assert_int_eq(poll(&p, 1, 20000), 1);
    n = read(fd, reply, sizeof reply - 1);
    ck_assert_int_gt(n, 12);
    reply[n] = '\0';
    ck_assert_msg(strncmp(reply, status, strlen(status)) == 0, "%s", reply);
}

/* A GET waits for etcd in its libmicrohttpd worker (docs/http.md,
 * --threads), so connections opened together must land on different
 * workers: then one connection's wait for etcd holds up no other.  The
 * server is stopped while sixteen connections queue in its backlog, so
 * that it finds them all at once (when libmicrohttpd accepted by itself,
 * the first worker to wake took ten of them).  Before, every other one of
 * sixteen earlier connections ended, leaving holes in the server's
 * descriptor table that the new sockets fill first: libmicrohttpd, which
 * picks a worker by the socket's number, would put two of them on one
 * worker (server/accept.c).  With etcd stopped too, the first
 * connection's GET hangs, and each of the others is answered at once. */
START_TEST(a_read_waiting_for_etcd_holds_up_no_other_connection)
{
    enum { CONNS = 16 }; /* the workers: --threads 16, below */
    static const char get[] = "GET /kv/k HTTP/1.1\r\nHost: t\r\n\r\n";
    static const char other[] = "GET /elsewhere HTTP/1.1\r\nHost: t\r\n\r\n";
    const char *pids = getenv("ETAGKV_TEST_ETCD_PIDS");
    char where[1024], url[1100], data[512], reply[512];
    /* As many workers as connections, whatever the CPUs. */
    const char *extra[] = {"--etcd", url, "--threads", "16", NULL};
    struct hu_server quick;
    int held[CONNS], fd[CONNS], answered = 0, busy;
    pid_t etcd;
    ssize_t n;

    ck_assert_ptr_nonnull(pids);
    etcd = (pid_t)strtol(pids, NULL, 10);
    ck_assert_int_gt(etcd, 0);
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(url, sizeof(url), "%s?timeout_ms=5000",
             tu_store_where(data, where, sizeof(where)) + 7);
    hu_server_start(&quick, ETAGKV_SERVER_BIN, data, extra);

    for (int i = 0; i < CONNS; i++) {
        held[i] = hu_connect(quick.port);
        ask(held[i], other, "HTTP/1.1 404");
    }
    busy = sockets_of(quick.pid);
    for (int i = 1; i < CONNS; i += 2) {
        char rest[512];
        struct pollfd p = {held[i], POLLIN, 0};

        ck_assert_int_eq(shutdown(held[i], SHUT_WR), 0);
        do /* the rest of the 404, then the server's end */
            ck_assert_int_eq(poll(&p, 1, 20000), 1);
        while ((n = read(held[i], rest, sizeof rest)) > 0);
        ck_assert_int_eq(n, 0);
        close(held[i]);
    }
    /* The server closes a socket just after it has ended the connection.
     * Only the old way of dealing out needs the holes to fail: the wait
     * is not checked. */
    wait_sockets(quick.pid, busy - CONNS / 2);

    ck_assert_int_eq(kill(quick.pid, SIGSTOP), 0);
    ck_assert_msg(stopped(quick.pid), "the server did not stop");
    for (int i = 0; i < CONNS; i++)
        fd[i] = hu_connect(quick.port); /* complete in the backlog */
    ck_assert_int_eq(kill(quick.pid, SIGCONT), 0);

    ck_assert_int_eq(kill(etcd, SIGSTOP), 0);
    ck_assert_msg(stopped(etcd), "etcd (pid %d) did not stop", (int)etcd);
    ck_assert_int_eq(write(fd[0], get, sizeof get - 1),
                     (ssize_t)sizeof get - 1);
    /* Its worker reads it and waits for etcd: for 5 s, etcd being stopped.
     * (On a machine so slow that the others went first, they would pass
     * without showing anything; they cannot fail for it.) */
    (void)usleep(300 * 1000);
    for (int i = 1; i < CONNS; i++)
        ck_assert_int_eq(write(fd[i], other, sizeof other - 1),
                         (ssize_t)sizeof other - 1);
    for (int i = 1; i < CONNS; i++) {
        struct pollfd p = {fd[i], POLLIN, 0};

        if (poll(&p, 1, 2000) == 1 &&
            (n = read(fd[i], reply, sizeof reply - 1)) > 12 &&
            strncmp(reply, "HTTP/1.1 404", 12) == 0)
            answered++;
    }
    ck_assert_int_eq(kill(etcd, SIGCONT), 0);

    ck_assert_msg(answered == CONNS - 1,
                  "%d of %d connections were answered while another waited "
                  "for etcd",
                  answered, CONNS - 1);
    /* The GET itself gets an answer once etcd is back (or gives up). */
    {
        struct pollfd p = {fd[0], POLLIN, 0};

        ck_assert_int_eq(poll(&p, 1, 20000), 1);
        n = read(fd[0], reply, sizeof reply - 1);
        ck_assert_int_gt(n, 12);
        ck_assert_int_eq(strncmp(reply, "HTTP/1.1 ", 9), 0);
    }
    for (int i = 0; i < CONNS; i++)
        close(fd[i]);
    for (int i = 0; i < CONNS; i += 2)
        close(held[i]);
    hu_server_stop(&quick);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fronts");
    TCase *tc = tcase_create("fronts");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, cas_increments_through_two_front_ends_lose_no_update);
    tcase_add_test(
        tc, a_long_poll_on_one_front_end_is_woken_by_a_write_through_the_other);
    tcase_add_test(
        tc, an_idempotency_key_retried_through_the_other_front_end_replays);
    tcase_add_test(
        tc, a_front_end_that_cannot_reach_etcd_answers_503_with_retry_after);
    tcase_add_test(tc, a_read_waiting_for_etcd_holds_up_no_other_connection);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
