/*
 * test_history.c -- no lost updates under contention (DESIGN §2, §4;
 * issue 5), checked on the full history of requests and responses.
 *
 * Many clients (threads, each with its own keep-alive libcurl connection)
 * do optimistic read-modify-write over HTTP on a few hot keys: GET, then
 * PUT If-Match: <the ETag read> with a value no other write uses.  Every
 * request is recorded with the validator it sent, the status, and the ETag
 * and ETagKV-Revision answered.  Because every value is unique, every ETag
 * names exactly one value, so for each key:
 *  - each ETag is consumed by at most one successful If-Match write: two
 *    2xx answers to writes sent with the same validator are a lost update;
 *  - following validator -> new ETag from the key's initial value visits
 *    every successful write exactly once, with increasing revisions, and
 *    ends at the ETag and value the server holds at the end (one unbroken
 *    chain: nothing acknowledged was dropped or forked);
 *  - a 2xx answer carries the ETag of the bytes sent; a 412 carries the
 *    current ETag, which is never the validator that was refused and is
 *    always one of the chain's.
 *
 * The idempotent variant sends every write with its own Idempotency-Key,
 * twice, as a client does whose first response was lost: one write in two
 * retries after the first answer (which the client then ignores), the other
 * sends both copies at once on two connections (a retry racing the
 * original).  Exactly one copy executes and the other must be a replay
 * (Idempotent-Replayed: true) of the same status, ETag and revision -- a
 * replayed 412 included; the chain built from the executions must be as
 * unbroken as above, and the metrics must count one replay per write.
 *
 * The key of the choices is printed as a seed (ETAGKV_TEST_SEED repeats
 * it); which write wins a race is up to the scheduler.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "httputil.h"
#include "testutil.h"

#ifndef ETAGKV_SERVER_BIN
#error "ETAGKV_SERVER_BIN must name the etagkv-server binary"
#endif

#define SEED_DEFAULT UINT64_C(20260125)
#define CLIENTS 16
#define HOT_KEYS 3
#define ATTEMPTS 50 /* read-modify-write attempts per client */
#define OPS (CLIENTS * ATTEMPTS)

static uint64_t seed;

/* One response as recorded. */
struct answer {
    long code;
    int replayed;
    char etag[ETAGKV_ETAG_SIZE]; /* "" when none */
    uint64_t rev;                /* ETagKV-Revision, 0 when none */
};

/* One attempted write. */
struct op {
    int key;
    int done;                         /* the write was sent */
    char validator[ETAGKV_ETAG_SIZE]; /* If-Match sent */
    char sent[ETAGKV_ETAG_SIZE];      /* the ETag of the body sent */
    int concurrent;                   /* idempotent: copies sent at once */
    struct answer a[2];               /* [1]: the duplicate, if any */
    int exec;                         /* which copy executed: 0 or 1 */
};

struct client {
    pthread_t tid;
    int id, port, idempotent;
    uint64_t rng;
    struct op ops[ATTEMPTS];
    char err[256];
};

static void key_path(int k, char *buf, size_t cap)
{
    snprintf(buf, cap, "/kv/hot-%d", k);
}

static void value_of(int client, int seq, char *buf, size_t cap)
{
    snprintf(buf, cap, "history c%02d s%04d", client, seq);
}

static void record(struct answer *a, const struct hu_resp *r)
{
    const char *e = hu_hdr(r, "ETag"), *rev = hu_hdr(r, "ETagKV-Revision"),
               *rep = hu_hdr(r, "Idempotent-Replayed");

    a->code = r->code;
    a->replayed = rep != NULL && strcmp(rep, "true") == 0;
    snprintf(a->etag, sizeof a->etag, "%s", e != NULL ? e : "");
    a->rev = rev != NULL ? strtoull(rev, NULL, 10) : 0;
}

/* Send both copies of a write at once, on h and h2, with curl_multi. */
static int send_pair(CURL *h, CURL *h2, int port, const struct hu_req *q,
                     struct hu_resp r[2])
{
    CURLM *m = curl_multi_init();
    struct hu_call call[2];
    int running = 1, ok = m != NULL;

    if (ok && hu_prepare(&call[0], h, port, q, &r[0], 30) != 0)
        ok = 0;
    if (ok && hu_prepare(&call[1], h2, port, q, &r[1], 30) != 0) {
        hu_finish(&call[0], CURLE_OUT_OF_MEMORY);
        ok = 0;
    }
    if (!ok) {
        curl_multi_cleanup(m);
        return -1;
    }
    curl_multi_add_handle(m, h);
    curl_multi_add_handle(m, h2);
    while (running > 0) {
        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        if (running > 0 && curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK)
            break;
    }
    {
        CURLcode err[2] = {CURLE_RECV_ERROR, CURLE_RECV_ERROR};
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(m, &left)) != NULL)
            if (msg->msg == CURLMSG_DONE)
                err[msg->easy_handle == h ? 0 : 1] = msg->data.result;
        curl_multi_remove_handle(m, h);
        curl_multi_remove_handle(m, h2);
        for (int i = 0; i < 2; i++)
            hu_finish(&call[i], err[i]);
    }
    curl_multi_cleanup(m);
    return 0;
}

/* GET the key, PUT a unique value If-Match the ETag read (twice with an
 * Idempotency-Key in the idempotent variant).  Returns 0, or -1 with
 * c->err set. */
static int attempt(struct client *c, CURL *h, CURL *h2, int seq)
{
    struct op *op = &c->ops[seq];
    char path[32], value[64], im[80], ik[80];
    const char *hdrs[3] = {im, c->idempotent ? ik : NULL, NULL};
    struct hu_req get = {"GET", path, NULL, NULL, 0};
    struct hu_req put = {"PUT", path, hdrs, value, 0};
    struct hu_resp r[2];
    const char *e;

    op->key = (int)(tu_rng_next(&c->rng) % HOT_KEYS);
    key_path(op->key, path, sizeof path);
    hu_perform(h, c->port, &get, &r[0], 30);
    e = hu_hdr(&r[0], "ETag");
    if (r[0].err != CURLE_OK || r[0].code != 200 || e == NULL) {
        snprintf(c->err, sizeof c->err, "GET %s: %s %ld", path,
                 curl_easy_strerror(r[0].err), r[0].code);
        hu_resp_free(&r[0]);
        return -1;
    }
    snprintf(op->validator, sizeof op->validator, "%s", e);
    etagkv_etag_compute(r[0].body != NULL ? r[0].body : "", r[0].len, im);
    if (strcmp(im, e) != 0)
        snprintf(c->err, sizeof c->err,
                 "GET %s: ETag %s, the body hashes to %s", path, e, im);
    hu_resp_free(&r[0]);
    if (c->err[0] != '\0')
        return -1;
    snprintf(im, sizeof im, "If-Match: %s", op->validator);
    snprintf(ik, sizeof ik, "Idempotency-Key: \"history-c%02d-s%04d\"", c->id,
             seq);
    value_of(c->id, seq, value, sizeof value);
    put.body_len = strlen(value);
    etagkv_etag_compute(value, put.body_len, op->sent);
    op->concurrent = c->idempotent && seq % 2 == 1;
    if (op->concurrent) {
        if (send_pair(h, h2, c->port, &put, r) != 0) {
            snprintf(c->err, sizeof c->err, "out of memory");
            return -1;
        }
    } else {
        hu_perform(h, c->port, &put, &r[0], 30);
        if (c->idempotent) /* the first answer is "lost": send it again */
            hu_perform(h, c->port, &put, &r[1], 30);
    }
    op->done = 1;
    for (int i = 0; i < (c->idempotent ? 2 : 1); i++) {
        if (r[i].err != CURLE_OK)
            snprintf(c->err, sizeof c->err, "PUT %s (copy %d): %s", path, i,
                     curl_easy_strerror(r[i].err));
        record(&op->a[i], &r[i]);
        hu_resp_free(&r[i]);
    }
    return c->err[0] != '\0' ? -1 : 0;
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    CURL *h = curl_easy_init(), *h2 = curl_easy_init();

    if (h == NULL || h2 == NULL)
        snprintf(c->err, sizeof c->err, "out of memory");
    for (int i = 0; i < ATTEMPTS && c->err[0] == '\0'; i++)
        (void)attempt(c, h, h2, i);
    curl_easy_cleanup(h);
    curl_easy_cleanup(h2);
    return NULL;
}

/* ---- checking the history ------------------------------------------------ */

static int is_2xx(long code)
{
    return code == 200 || code == 201;
}

/* Which copy of op executed (idempotent variant): exactly one copy is not
 * a replay, and the other repeats its status, ETag and revision. */
static void check_pair(const struct client *c, int seq, struct op *op)
{
    const struct answer *a = op->a;
    int fresh = !a[0].replayed + !a[1].replayed;

    ck_assert_msg(fresh == 1,
                  "c%02d s%04d (%s): %d of the two copies executed (statuses "
                  "%ld%s, %ld%s)",
                  c->id, seq, op->concurrent ? "sent at once" : "retried",
                  fresh, a[0].code, a[0].replayed ? " replayed" : "", a[1].code,
                  a[1].replayed ? " replayed" : "");
    op->exec = a[0].replayed ? 1 : 0;
    ck_assert_msg(!op->concurrent ? op->exec == 0 : 1,
                  "c%02d s%04d: the retry executed and the original was the "
                  "replay",
                  c->id, seq);
    ck_assert_msg(a[0].code == a[1].code && strcmp(a[0].etag, a[1].etag) == 0 &&
                      a[0].rev == a[1].rev,
                  "c%02d s%04d: the replay differs: %ld %s rev %" PRIu64
                  " vs %ld %s rev %" PRIu64,
                  c->id, seq, a[0].code, a[0].etag, a[0].rev, a[1].code,
                  a[1].etag, a[1].rev);
}

/* Check the history of key k, which started at initial and ends at final
 * (the server's ETag after all clients finished).  Returns the number of
 * successful writes. */
static int check_key(struct client *cl, int k, const char *initial,
                     const char *final)
{
    struct op *succ[OPS];
    int owner[OPS], owner_seq[OPS], used[OPS], n = 0, steps = 0;
    char cur[128];
    uint64_t rev = 0;

    for (int c = 0; c < CLIENTS; c++)
        for (int i = 0; i < ATTEMPTS; i++) {
            struct op *op = &cl[c].ops[i];
            const struct answer *a = &op->a[op->exec];

            if (!op->done || op->key != k)
                continue;
            ck_assert_msg(is_2xx(a->code) || a->code == 412,
                          "c%02d s%04d: PUT answered %ld", c, i, a->code);
            if (a->code == 412) {
                ck_assert_msg(strcmp(a->etag, op->validator) != 0,
                              "c%02d s%04d: 412 although its validator %s "
                              "is the current ETag",
                              c, i, op->validator);
                continue;
            }
            ck_assert_msg(strcmp(a->etag, op->sent) == 0,
                          "c%02d s%04d: 2xx with ETag %s, the value sent "
                          "hashes to %s",
                          c, i, a->etag, op->sent);
            /* Two successes from one validator: a lost update. */
            for (int j = 0; j < n; j++)
                ck_assert_msg(strcmp(succ[j]->validator, op->validator) != 0,
                              "lost update on hot-%d: validator %s consumed "
                              "by two successful writes, c%02d s%04d and "
                              "c%02d s%04d",
                              k, op->validator, owner[j], owner_seq[j], c, i);
            owner[n] = c;
            owner_seq[n] = i;
            used[n] = 0;
            succ[n++] = op;
        }
    /* Follow the chain from the initial value. */
    snprintf(cur, sizeof cur, "%s", initial);
    for (;;) {
        int next = -1;

        for (int j = 0; j < n && next < 0; j++)
            if (!used[j] && strcmp(succ[j]->validator, cur) == 0)
                next = j;
        if (next < 0)
            break;
        used[next] = 1;
        ck_assert_msg(succ[next]->a[succ[next]->exec].rev > rev,
                      "hot-%d: revision %" PRIu64 " after %" PRIu64
                      " along the chain",
                      k, succ[next]->a[succ[next]->exec].rev, rev);
        rev = succ[next]->a[succ[next]->exec].rev;
        snprintf(cur, sizeof cur, "%s", succ[next]->sent);
        steps++;
    }
    ck_assert_msg(steps == n,
                  "hot-%d: the chain from the initial value breaks after %d "
                  "of %d successful writes, at %s",
                  k, steps, n, cur);
    ck_assert_msg(strcmp(cur, final) == 0,
                  "hot-%d: the chain ends at %s, the server holds %s", k, cur,
                  final);
    /* Every 412 named a state that really existed: one of the chain's. */
    for (int c = 0; c < CLIENTS; c++)
        for (int i = 0; i < ATTEMPTS; i++) {
            const struct op *op = &cl[c].ops[i];
            const struct answer *a = &op->a[op->exec];
            int known = strcmp(a->etag, initial) == 0;

            if (!op->done || op->key != k || a->code != 412)
                continue;
            for (int j = 0; j < n && !known; j++)
                known = strcmp(a->etag, succ[j]->sent) == 0;
            ck_assert_msg(known,
                          "c%02d s%04d: 412 names ETag %s, which hot-%d never "
                          "had",
                          c, i, a->etag, k);
        }
    return n;
}

static void run_history(int idempotent)
{
    static const char *const opts[] = {"--sync", "--threads", "4", NULL};
    static struct client cl[CLIENTS];
    char *tmp = tu_mkdtemp(), data[512];
    char initial[HOT_KEYS][ETAGKV_ETAG_SIZE];
    struct hu_server srv = {0};
    CURL *h = curl_easy_init();
    int wins = 0, refused = 0, total_ok = 0;

    ck_assert_ptr_nonnull(h);
    snprintf(data, sizeof data, "%s/data", tmp);
    hu_server_start(&srv, ETAGKV_SERVER_BIN, data, opts);
    for (int k = 0; k < HOT_KEYS; k++) {
        static const char *const create[] = {"If-None-Match: *", NULL};
        char path[32], value[32];
        struct hu_req q = {"PUT", path, create, value, 0};
        struct hu_resp r;

        key_path(k, path, sizeof path);
        snprintf(value, sizeof value, "initial %d", k);
        q.body_len = strlen(value);
        hu_perform(h, srv.port, &q, &r, 30);
        ck_assert_int_eq(r.err, CURLE_OK);
        ck_assert_int_eq(r.code, 201);
        ck_assert_ptr_nonnull(hu_hdr(&r, "ETag"));
        snprintf(initial[k], sizeof initial[k], "%s", hu_hdr(&r, "ETag"));
        hu_resp_free(&r);
    }
    memset(cl, 0, sizeof cl);
    for (int i = 0; i < CLIENTS; i++) {
        cl[i].id = i;
        cl[i].port = srv.port;
        cl[i].idempotent = idempotent;
        cl[i].rng = seed ^ ((uint64_t)i << 8) ^ (uint64_t)idempotent;
        ck_assert_int_eq(pthread_create(&cl[i].tid, NULL, client_main, &cl[i]),
                         0);
    }
    for (int i = 0; i < CLIENTS; i++)
        ck_assert_int_eq(pthread_join(cl[i].tid, NULL), 0);
    for (int i = 0; i < CLIENTS; i++)
        ck_assert_msg(cl[i].err[0] == '\0', "client %d: %s", i, cl[i].err);
    if (idempotent)
        for (int i = 0; i < CLIENTS; i++)
            for (int s = 0; s < ATTEMPTS; s++)
                check_pair(&cl[i], s, &cl[i].ops[s]);
    for (int k = 0; k < HOT_KEYS; k++) {
        char path[32], want[64];
        struct hu_req q = {"GET", path, NULL, NULL, 0};
        struct hu_resp r;
        int n;

        key_path(k, path, sizeof path);
        hu_perform(h, srv.port, &q, &r, 30);
        ck_assert_int_eq(r.err, CURLE_OK);
        ck_assert_int_eq(r.code, 200);
        ck_assert_ptr_nonnull(hu_hdr(&r, "ETag"));
        n = check_key(cl, k, initial[k], hu_hdr(&r, "ETag"));
        if (n > 0) { /* the value too, not only its ETag */
            int c, s;

            ck_assert_int_eq(sscanf(r.body, "history c%d s%d", &c, &s), 2);
            value_of(c, s, want, sizeof want);
            ck_assert_str_eq(r.body, want);
        }
        total_ok += n;
        hu_resp_free(&r);
    }
    for (int i = 0; i < CLIENTS; i++)
        for (int s = 0; s < ATTEMPTS; s++)
            refused += cl[i].ops[s].a[cl[i].ops[s].exec].code == 412;
    wins = total_ok;
    ck_assert_int_eq(wins + refused, OPS);
    ck_assert_int_gt(wins, HOT_KEYS); /* the race was real both ways */
    ck_assert_int_gt(refused, 0);
    if (idempotent) {
        struct hu_req q = {"GET", "/metrics", NULL, NULL, 0};
        struct hu_resp r;

        hu_perform(h, srv.port, &q, &r, 30);
        ck_assert_int_eq(r.code, 200);
        ck_assert_int_eq(
            hu_metric(r.body, "etagkv_http_idempotent_replays_total"), OPS);
        ck_assert_int_eq(
            hu_metric(r.body, "etagkv_http_idempotency_mismatches_total"), 0);
        hu_resp_free(&r);
    }
    fprintf(stderr,
            "test_history: %s: seed %" PRIu64 ", %d clients, %d writes on %d "
            "keys: %d succeeded in unbroken chains, %d refused with 412\n",
            idempotent ? "idempotent, each sent twice" : "If-Match", seed,
            CLIENTS, OPS, HOT_KEYS, wins, refused);
    curl_easy_cleanup(h);
    hu_server_stop(&srv);
    tu_rmdir_free(tmp);
}

START_TEST(concurrent_if_match_writes_consume_each_etag_once_in_one_chain)
{
    run_history(0);
}
END_TEST

START_TEST(
    idempotent_writes_sent_twice_execute_once_and_replay_once_in_one_chain)
{
    run_history(1);
}
END_TEST

static Suite *history_suite(void)
{
    Suite *s = suite_create("history");
    TCase *tc = tcase_create("http");

    tcase_set_timeout(tc, 300);
    tcase_add_test(
        tc, concurrent_if_match_writes_consume_each_etag_once_in_one_chain);
    tcase_add_test(
        tc,
        idempotent_writes_sent_twice_execute_once_and_replay_once_in_one_chain);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *v = getenv("ETAGKV_TEST_SEED");
    int rc;

    seed = v != NULL && *v != '\0' ? strtoull(v, NULL, 0) : SEED_DEFAULT;
    fprintf(stderr,
            "test_history: seed %" PRIu64 " (ETAGKV_TEST_SEED=%" PRIu64
            " repeats it)\n",
            seed, seed);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return EXIT_FAILURE;
    rc = tu_run(history_suite());
    curl_global_cleanup();
    return rc;
}
