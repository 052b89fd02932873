/*
 * test_diagnose_http.c -- diagnosing 412s over real HTTP (issue 18),
 * against the real etagkv-server, with libcurl: the 412 body says what was
 * sent ("sent", each condition header as received), which condition
 * decided ("decided_by", one test per RFC 9110 §13.2.2 step and
 * ETagKV-If-Revision) and when the sent validator was superseded
 * ("superseded" from the change log, or never current within its window,
 * also after the window was trimmed); a transaction's 409 says the same of
 * its failing operation; /metrics counts 412s by condition; the access log
 * writes one line per request in JSON Lines or the combined format, holds
 * no token and no value, and is reopened on SIGHUP.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "httputil.h"
#include "testutil.h"

#ifndef ETAGKV_SERVER_BIN
#error "ETAGKV_SERVER_BIN must name the etagkv-server binary"
#endif

static struct hu_fixture fx;

static void fixture_init(void)
{
    hu_fixture_init(&fx);
}

static void fixture_start(void)
{
    static const char *const opts[] = {"--threads", "4", "--nosync", NULL};

    fixture_init();
    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
}

static void fixture_stop(void)
{
    hu_fixture_stop(&fx);
}

/* One request; header lines NULL-terminated (may be NULL). */
static void http(struct hu_resp *r, const char *method, const char *path,
                 const char *const *headers, const char *body)
{
    hu_fixture_call(&fx, r, method, path, headers, body,
                    body != NULL ? strlen(body) : 0);
}

/* PUT body to path unconditionally; its ETag into etag and its revision
 * returned. */
static uint64_t put(const char *path, const char *body, char *etag)
{
    struct hu_resp r;
    uint64_t rev;

    http(&r, "PUT", path, NULL, body);
    ck_assert_int_le(r.code, 201);
    ck_assert_ptr_nonnull(hu_hdr(&r, "ETag"));
    if (etag != NULL)
        snprintf(etag, ETAGKV_ETAG_SIZE, "%s", hu_hdr(&r, "ETag"));
    rev = strtoull(hu_hdr(&r, "ETagKV-Revision"), NULL, 10);
    hu_resp_free(&r);
    return rev;
}

/* A conditional PUT that must be 412; its body parsed. */
static json_t *refused(const char *path, const char *const *headers)
{
    struct hu_resp r;
    json_t *j;

    http(&r, "PUT", path, headers, "new");
    ck_assert_int_eq(r.code, 412);
    ck_assert_str_eq(hu_hdr(&r, "Content-Type"), "application/problem+json");
    j = json_loads(r.body, 0, NULL);
    ck_assert_ptr_nonnull(j);
    hu_resp_free(&r);
    return j;
}

static const char *str(const json_t *j, const char *path1, const char *path2)
{
    const json_t *v = json_object_get(j, path1);

    if (path2 != NULL)
        v = json_object_get(v, path2);
    ck_assert_msg(json_is_string(v), "%s%s%s is not a string", path1,
                  path2 != NULL ? "." : "", path2 != NULL ? path2 : "");
    return json_string_value(v);
}

static json_int_t num(const json_t *j, const char *name, const char *member)
{
    const json_t *v = json_object_get(json_object_get(j, name), member);

    ck_assert_msg(json_is_integer(v), "%s.%s is not an integer", name, member);
    return json_integer_value(v);
}

/* ---- the 412 body -------------------------------------------------------- */

/* RFC 9110 §13.2.2 step 1, and the "write between read and mutate" the
 * issue's procedure asks for: the body names the write that replaced the
 * ETag the client sent, and how long before the PUT it was. */
START_TEST(if_match_412_says_what_was_sent_and_which_write_superseded_it)
{
    char etag_a[ETAGKV_ETAG_SIZE], etag_b[ETAGKV_ETAG_SIZE], h[96];
    const char *hdrs[] = {h, NULL};
    uint64_t rev_a = put("/kv/k", "a", etag_a);
    uint64_t rev_b = put("/kv/k", "b", etag_b);
    json_t *j;

    snprintf(h, sizeof h, "If-Match: %s", etag_a);
    j = refused("/kv/k", hdrs);
    ck_assert_str_eq(str(j, "sent", "If-Match"), etag_a);
    ck_assert_int_eq(json_object_size(json_object_get(j, "sent")), 1);
    ck_assert_str_eq(str(j, "decided_by", NULL), "If-Match");
    ck_assert_str_eq(str(j, "etag", NULL), etag_b); /* what is current */
    ck_assert_int_eq(num(j, "superseded", "revision"), (json_int_t)rev_b);
    ck_assert_int_eq(num(j, "superseded", "held_revision"), (json_int_t)rev_a);
    ck_assert_int_ge(num(j, "superseded", "age_ms"), 0);
    ck_assert_int_lt(num(j, "superseded", "age_ms"), 60000);
    ck_assert_ptr_nonnull(strstr(str(j, "superseded", "modified"), " GMT"));
    json_decref(j);
}
END_TEST

/* Two lines of one header are one list (RFC 9110 §5.3): sent joined. */
START_TEST(several_if_match_lines_are_sent_back_joined)
{
    const char *hdrs[] = {"If-Match: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
                          "If-Match: \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"",
                          NULL};
    json_t *j;

    put("/kv/k", "a", NULL);
    j = refused("/kv/k", hdrs);
    ck_assert_str_eq(str(j, "sent", "If-Match"),
                     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", "
                     "\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"");
    /* Never the key's ETag: never current within the window. */
    ck_assert(json_is_null(json_object_get(j, "superseded")));
    ck_assert_ptr_nonnull(
        strstr(str(j, "superseded_detail", NULL), "never current"));
    json_decref(j);
}
END_TEST

/* DESIGN §2: ETagKV-If-Revision decides before If-Match; the revision sent
 * was superseded by the key's next change. */
START_TEST(if_revision_412_is_decided_by_the_revision_and_traced_in_the_log)
{
    char etag_b[ETAGKV_ETAG_SIZE], h1[64], h2[96];
    const char *hdrs[] = {h1, h2, NULL};
    uint64_t rev_a = put("/kv/k", "a", NULL);
    uint64_t rev_b;
    json_t *j;

    put("/kv/other", "x", NULL);
    rev_b = put("/kv/k", "b", etag_b);
    snprintf(h1, sizeof h1, "ETagKV-If-Revision: %llu",
             (unsigned long long)rev_a);
    snprintf(h2, sizeof h2, "If-Match: %s", etag_b); /* true: not decisive */
    j = refused("/kv/k", hdrs);
    ck_assert_str_eq(str(j, "decided_by", NULL), "ETagKV-If-Revision");
    ck_assert_str_eq(str(j, "sent", "If-Match"), etag_b);
    ck_assert_int_eq(strtoll(str(j, "sent", "ETagKV-If-Revision"), NULL, 10),
                     (long long)rev_a);
    ck_assert_int_eq(num(j, "superseded", "revision"), (json_int_t)rev_b);
    ck_assert_int_eq(num(j, "superseded", "held_revision"), (json_int_t)rev_a);
    json_decref(j);
}
END_TEST

/* Step 2: If-Unmodified-Since, ignored while the key was absent (RFC 9110
 * §13.1.4), was superseded by the creation. */
START_TEST(if_unmodified_since_412_is_superseded_by_the_creation)
{
    const char *hdrs[] = {"If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT",
                          NULL};
    uint64_t rev = put("/kv/k", "a", NULL);
    json_t *j = refused("/kv/k", hdrs);

    ck_assert_str_eq(str(j, "decided_by", NULL), "If-Unmodified-Since");
    ck_assert_str_eq(str(j, "sent", "If-Unmodified-Since"),
                     "Sun, 06 Nov 1994 08:49:37 GMT");
    ck_assert_int_eq(num(j, "superseded", "revision"), (json_int_t)rev);
    ck_assert_int_eq(num(j, "superseded", "held_revision"), 0);
    json_decref(j);
}
END_TEST

/* Step 3: If-None-Match: * (create only) was true until the key was
 * created, and again after a delete until its re-creation. */
START_TEST(if_none_match_412_is_superseded_by_the_latest_creation)
{
    const char *hdrs[] = {"If-None-Match: *", NULL};
    struct hu_resp r;
    uint64_t rev_del, rev;
    json_t *j;

    put("/kv/k", "a", NULL);
    http(&r, "DELETE", "/kv/k", NULL, NULL);
    ck_assert_int_eq(r.code, 204);
    rev_del = strtoull(hu_hdr(&r, "ETagKV-Revision"), NULL, 10);
    hu_resp_free(&r);
    rev = put("/kv/k", "b", NULL);
    j = refused("/kv/k", hdrs);
    ck_assert_str_eq(str(j, "decided_by", NULL), "If-None-Match");
    ck_assert_str_eq(str(j, "sent", "If-None-Match"), "*");
    ck_assert_int_eq(num(j, "superseded", "revision"), (json_int_t)rev);
    ck_assert_int_eq(num(j, "superseded", "held_revision"),
                     (json_int_t)rev_del);
    json_decref(j);
}
END_TEST

/* A GET's 412 says the same (If-Match on a read). */
START_TEST(a_read_412_carries_the_diagnosis_too)
{
    const char *hdrs[] = {"If-Match: \"cccccccccccccccccccccccccccccccc\"",
                          NULL};
    struct hu_resp r;
    json_t *j;

    put("/kv/k", "a", NULL);
    http(&r, "GET", "/kv/k", hdrs, NULL);
    ck_assert_int_eq(r.code, 412);
    j = json_loads(r.body, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(str(j, "decided_by", NULL), "If-Match");
    ck_assert_ptr_nonnull(json_object_get(j, "sent"));
    json_decref(j);
    hu_resp_free(&r);
}
END_TEST

/* The log keeps 2 events: the ETag current before them cannot be traced,
 * and the body says from where the window starts. */
START_TEST(a_validator_older_than_the_window_is_never_current_within_it)
{
    static const char *const opts[] = {"--nosync", "--changes-max-events", "2",
                                       NULL};
    char etag_a[ETAGKV_ETAG_SIZE], h[96];
    const char *hdrs[] = {h, NULL};
    json_t *j;

    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
    put("/kv/k", "a", etag_a);
    put("/kv/k", "b", NULL);
    put("/kv/o1", "x", NULL);
    put("/kv/o2", "x", NULL);
    put("/kv/o3", "x", NULL);
    snprintf(h, sizeof h, "If-Match: %s", etag_a);
    j = refused("/kv/k", hdrs);
    ck_assert(json_is_null(json_object_get(j, "superseded")));
    ck_assert_str_eq(str(j, "superseded_detail", NULL),
                     "never current within the change log's window "
                     "(revisions after 3)");
    json_decref(j);
}
END_TEST

/* A transaction's 409: its failing operation's conditions as sent, the
 * deciding condition and the supersession. */
START_TEST(a_transaction_409_says_what_its_failing_operation_sent)
{
    char etag_a[ETAGKV_ETAG_SIZE], body[256];
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    uint64_t rev_a = put("/kv/k", "a", etag_a);
    uint64_t rev_b = put("/kv/k", "b", NULL);
    struct hu_resp r;
    json_t *j, *esc = json_string(etag_a);
    char *etag_json = json_dumps(esc, JSON_ENCODE_ANY);

    snprintf(body, sizeof body,
             "{\"ops\":[{\"op\":\"put\",\"key\":\"other\",\"value\":\"1\"},"
             "{\"op\":\"put\",\"key\":\"k\",\"value\":\"c\","
             "\"if_match\":%s}]}",
             etag_json);
    free(etag_json);
    json_decref(esc);
    http(&r, "POST", "/txn", hdrs, body);
    ck_assert_int_eq(r.code, 409);
    j = json_loads(r.body, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "failed")), 1);
    ck_assert_str_eq(str(j, "sent", "if_match"), etag_a);
    ck_assert_str_eq(str(j, "decided_by", NULL), "If-Match");
    ck_assert_int_eq(num(j, "superseded", "revision"), (json_int_t)rev_b);
    ck_assert_int_eq(num(j, "superseded", "held_revision"), (json_int_t)rev_a);
    json_decref(j);
    hu_resp_free(&r);
}
END_TEST

START_TEST(metrics_count_412s_by_the_condition_that_decided)
{
    const char *im[] = {"If-Match: \"dddddddddddddddddddddddddddddddd\"", NULL};
    const char *inm[] = {"If-None-Match: *", NULL};
    static const char by_match[] =
        "etagkv_http_precondition_failed_by_condition_total{condition="
        "\"If-Match\"}";
    static const char by_none[] =
        "etagkv_http_precondition_failed_by_condition_total{condition="
        "\"If-None-Match\"}";

    put("/kv/k", "a", NULL);
    json_decref(refused("/kv/k", im));
    json_decref(refused("/kv/k", im));
    json_decref(refused("/kv/k", inm));
    ck_assert_int_eq(hu_metric_await(fx.ua, fx.srv.port, by_match, 2, 10), 2);
    ck_assert_int_eq(hu_metric_await(fx.ua, fx.srv.port, by_none, 1, 10), 1);
    ck_assert_int_eq(
        hu_metric_await(fx.ua, fx.srv.port,
                        "etagkv_http_precondition_never_current_total", 2, 10),
        2);
    ck_assert_int_eq(
        hu_metric_await(fx.ua, fx.srv.port,
                        "etagkv_http_precondition_superseded_age_seconds_count",
                        1, 10),
        1);
}
END_TEST

/* The samples of the group commit's histograms, from one scrape. */
struct commit_figures {
    int64_t txns, commits, syncs, batches, single, inf;
};

static void commit_figures(struct commit_figures *c)
{
    struct hu_resp r;

    http(&r, "GET", "/metrics", NULL, NULL);
    ck_assert_int_eq(r.code, 200);
    c->txns = hu_metric(r.body, "etagkv_store_write_txns_total");
    c->commits =
        hu_metric(r.body, "etagkv_store_commit_duration_seconds_count");
    c->syncs = hu_metric(r.body, "etagkv_store_sync_duration_seconds_count");
    c->batches = hu_metric(r.body, "etagkv_store_commit_batch_ops_count");
    c->single =
        hu_metric(r.body, "etagkv_store_commit_batch_ops_bucket{le=\"1\"}");
    c->inf =
        hu_metric(r.body, "etagkv_store_commit_batch_ops_bucket{le=\"+Inf\"}");
    hu_resp_free(&r);
}

/* /metrics: 412s and 409s by route and method, and the group commit's
 * histograms (etagkv_store_commit_stats), move with the requests that
 * cause them.  One client at a time: every batch holds one operation. */
START_TEST(metrics_count_refusals_by_route_and_method_and_every_commit)
{
    static const char put_412[] = "etagkv_http_refusals_total{route="
                                  "\"/kv/{key}\",method=\"PUT\",code=\"412\"}";
    static const char delete_412[] =
        "etagkv_http_refusals_total{route=\"/kv/{key}\",method=\"DELETE\","
        "code=\"412\"}";
    static const char txn_409[] = "etagkv_http_refusals_total{route="
                                  "\"/txn\",method=\"POST\",code=\"409\"}";
    const char *im[] = {"If-Match: \"dddddddddddddddddddddddddddddddd\"", NULL};
    const char *json[] = {"Content-Type: application/json", NULL};
    struct commit_figures before, after;
    struct hu_resp r;

    put("/kv/k", "a", NULL);
    commit_figures(&before);
    ck_assert_int_ge(before.commits, 1);
    ck_assert_int_eq(before.commits, before.txns);
    ck_assert_int_eq(before.syncs, before.commits);
    ck_assert_int_ge(before.batches, before.commits);
    ck_assert_int_eq(before.single, before.batches);
    ck_assert_int_eq(before.inf, before.batches);
    ck_assert_int_eq(hu_metric_await(fx.ua, fx.srv.port, put_412, 0, 0), -1);

    put("/kv/k", "b", NULL);
    json_decref(refused("/kv/k", im));
    json_decref(refused("/kv/k", im));
    http(&r, "DELETE", "/kv/k", im, NULL);
    ck_assert_int_eq(r.code, 412);
    hu_resp_free(&r);
    http(&r, "POST", "/txn", json,
         "{\"ops\":[{\"op\":\"check\",\"key\":\"k\","
         "\"if_none_match\":\"*\"}]}");
    ck_assert_int_eq(r.code, 409);
    hu_resp_free(&r);
    ck_assert_int_eq(hu_metric_await(fx.ua, fx.srv.port, put_412, 2, 10), 2);
    ck_assert_int_eq(hu_metric_await(fx.ua, fx.srv.port, delete_412, 1, 10), 1);
    ck_assert_int_eq(hu_metric_await(fx.ua, fx.srv.port, txn_409, 1, 10), 1);

    /* One more committed transaction (the PUT of "b"); the refusals are
     * batches that commit nothing. */
    commit_figures(&after);
    ck_assert_int_eq(after.commits, before.commits + 1);
    ck_assert_int_eq(after.syncs, before.syncs + 1);
    ck_assert_int_eq(after.txns, before.txns + 1);
    ck_assert_int_ge(after.batches, before.batches + 1);
    ck_assert_int_eq(after.single, after.batches);
}
END_TEST

/* A storm of 412s does not become a storm of change-log scans: at most 100
 * a second are searched, the rest say so, and only searched ones count as
 * never current. */
START_TEST(superseded_is_searched_at_most_100_times_a_second)
{
    const char *im[] = {"If-Match: \"ffffffffffffffffffffffffffffffff\"", NULL};
    int skipped = 0, searched = 0;
    double start, elapsed;

    put("/kv/k", "a", NULL);
    start = tu_now_s();
    for (int i = 0; i < 250; i++) {
        json_t *j = refused("/kv/k", im);
        const char *d = str(j, "superseded_detail", NULL);

        if (strstr(d, "not searched") != NULL)
            skipped++;
        else if (strstr(d, "never current") != NULL)
            searched++;
        json_decref(j);
    }
    elapsed = tu_now_s() - start;
    ck_assert_int_eq(skipped + searched, 250);
    /* The refusals touched at most elapsed + 2 calendar seconds. */
    ck_assert_int_le(searched, 100 * ((int)elapsed + 2));
    ck_assert_int_ge(searched, 100);
    if (elapsed < 1.0) /* a slow (sanitizer) build may spread them out */
        ck_assert_int_ge(skipped, 50);
    ck_assert_int_eq(
        hu_metric_await(fx.ua, fx.srv.port,
                        "etagkv_http_precondition_never_current_total",
                        searched, 10),
        searched);
}
END_TEST

/* ---- the access log --------------------------------------------------------
 */

/* The file's lines but those of the fixture's health checks (at least
 * want of them, waiting up to 10 s: a line is written when libmicrohttpd
 * reports the request complete), as a NULL-terminated array of malloc'd
 * strings. */
static char **read_lines(const char *path, int want)
{
    char **lines = NULL;

    for (int tries = 0; tries < 200; tries++) {
        FILE *f = fopen(path, "r");
        char buf[4096];
        int n = 0;

        for (int i = 0; lines != NULL && lines[i] != NULL; i++)
            free(lines[i]);
        free(lines);
        lines = calloc(256, sizeof *lines);
        ck_assert_ptr_nonnull(lines);
        while (f != NULL && n < 255 && fgets(buf, sizeof buf, f) != NULL)
            if (strstr(buf, "HEAD /healthz") == NULL &&
                strstr(buf, "\"target\":\"/healthz\"") == NULL)
                lines[n++] = strdup(buf);
        if (f != NULL)
            fclose(f);
        if (n >= want)
            return lines;
        usleep(50000);
    }
    return lines;
}

static void free_lines(char **lines)
{
    for (int i = 0; lines[i] != NULL; i++)
        free(lines[i]);
    free(lines);
}

START_TEST(the_json_access_log_has_one_line_per_request_and_no_secrets)
{
    char log[600], tokens[600], opt_log[620];
    const char *opts[] = {"--nosync",     "--token-file", tokens,
                          "--access-log", opt_log,        NULL};
    const char *put_hdrs[] = {"Authorization: Bearer s3cret-token-value",
                              "Idempotency-Key: idem-1", NULL};
    const char *bad_hdrs[] = {"Authorization: Bearer s3cret-token-value",
                              "If-Match: \"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\"",
                              NULL};
    struct hu_resp r;
    char **lines;
    json_t *j;
    FILE *f;

    snprintf(tokens, sizeof tokens, "%s/tokens", fx.dir);
    f = fopen(tokens, "w");
    ck_assert_ptr_nonnull(f);
    fputs("s3cret-token-value\n", f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(tokens, 0600), 0);
    snprintf(log, sizeof log, "%s/access.log", fx.dir);
    snprintf(opt_log, sizeof opt_log, "%s", log);
    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);

    http(&r, "PUT", "/kv/a%20key", put_hdrs, "the-secret-value");
    ck_assert_int_eq(r.code, 201);
    hu_resp_free(&r);
    http(&r, "PUT", "/kv/a%20key", bad_hdrs, "other-secret-value");
    ck_assert_int_eq(r.code, 412);
    hu_resp_free(&r);
    lines = read_lines(log, 2);
    ck_assert_ptr_nonnull(lines[1]);
    ck_assert_ptr_null(lines[2]);
    for (int i = 0; lines[i] != NULL; i++) {
        ck_assert_ptr_null(strstr(lines[i], "s3cret"));
        ck_assert_ptr_null(strstr(lines[i], "secret-value"));
    }
    j = json_loads(lines[0], 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(str(j, "method", NULL), "PUT");
    ck_assert_str_eq(str(j, "target", NULL), "/kv/a%20key");
    ck_assert_str_eq(str(j, "client", NULL), "127.0.0.1");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 201);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "bytes_in")), 16);
    ck_assert_str_eq(str(j, "idempotency_key", NULL), "idem-1");
    ck_assert_str_eq(str(j, "revision", NULL), "1");
    ck_assert_int_eq(strlen(str(j, "etag", NULL)), ETAGKV_ETAG_SIZE - 1);
    ck_assert(json_is_null(json_object_get(j, "etag_sent")));
    ck_assert(json_is_real(json_object_get(j, "duration_ms")));
    ck_assert_int_eq(strlen(str(j, "time", NULL)), 24); /* ...T..:..:...mmmZ */
    json_decref(j);
    j = json_loads(lines[1], 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 412);
    ck_assert_str_eq(str(j, "etag_sent", NULL),
                     "\"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\"");
    json_decref(j);
    free_lines(lines);
}
END_TEST

/* A field value may hold obs-text (RFC 9110 §5.5), which JSON cannot
 * carry: the 412's "sent" and the log's etag_sent show such bytes as
 * U+FFFD, and neither the answer nor the log line is lost over them (the
 * server used to close the connection without an answer, and to drop the
 * line -- also of a write that succeeded). */
START_TEST(condition_bytes_that_are_not_utf8_still_get_an_answer_and_a_line)
{
    char log[600], opt_log[620], long_inm[160];
    const char *opts[] = {"--nosync", "--access-log", opt_log, NULL};
    const char *latin1[] = {"If-Match: \"\xe9t\xe9\"", NULL};
    const char *ff[] = {"If-None-Match: \"\xff\"", NULL};
    const char *cut[] = {long_inm, NULL};
    struct hu_resp r;
    char **lines;
    json_t *j;

    snprintf(log, sizeof log, "%s/access.log", fx.dir);
    snprintf(opt_log, sizeof opt_log, "%s", log);
    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
    put("/kv/u8", "v", NULL);

    /* A read's 412 and a write's. */
    http(&r, "GET", "/kv/u8", latin1, NULL);
    ck_assert_int_eq(r.err, CURLE_OK);
    ck_assert_int_eq(r.code, 412);
    j = json_loads(r.body, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(str(j, "sent", "If-Match"),
                     "\"\xef\xbf\xbdt\xef\xbf\xbd\"");
    ck_assert_str_eq(str(j, "decided_by", NULL), "If-Match");
    json_decref(j);
    hu_resp_free(&r);
    j = refused("/kv/u8", latin1);
    ck_assert_str_eq(str(j, "sent", "If-Match"),
                     "\"\xef\xbf\xbdt\xef\xbf\xbd\"");
    json_decref(j);

    /* Writes that succeed: their lines are kept. */
    http(&r, "DELETE", "/kv/u8", ff, NULL);
    ck_assert_int_eq(r.code, 204);
    hu_resp_free(&r);
    /* A 2-byte character cut by the log's 127-byte field. */
    snprintf(long_inm, sizeof long_inm, "If-None-Match: \"%0125d\xc3\xa9\"", 0);
    http(&r, "PUT", "/kv/u8", cut, "w");
    ck_assert_int_eq(r.code, 201);
    hu_resp_free(&r);

    lines = read_lines(log, 5);
    ck_assert_ptr_nonnull(lines[4]);
    ck_assert_ptr_null(lines[5]);
    for (int i = 1; i < 5; i++) {
        static const int status[] = {0, 412, 412, 204, 201};

        j = json_loads(lines[i], 0, NULL);
        ck_assert_ptr_nonnull(j);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "status")),
                         status[i]);
        if (i < 3)
            ck_assert_str_eq(str(j, "etag_sent", NULL),
                             "\"\xef\xbf\xbdt\xef\xbf\xbd\"");
        else if (i == 3)
            ck_assert_str_eq(str(j, "etag_sent", NULL), "\"\xef\xbf\xbd\"");
        else
            ck_assert_str_eq(str(j, "etag_sent", NULL) + 126, "\xef\xbf\xbd");
        json_decref(j);
    }
    free_lines(lines);
}
END_TEST

/* bytes_in is every body byte received, also when the body's buffer went
 * to the reply (a PUT with Prefer: return=representation) or was given
 * back before it (POST /txn); a request refused at its headers has its
 * body left unread. */
START_TEST(bytes_in_counts_the_body_whatever_became_of_it)
{
    char log[600], opt_log[620];
    const char *opts[] = {"--nosync", "--access-log", opt_log, NULL};
    const char *repr[] = {"Prefer: return=representation", NULL};
    const char *json[] = {"Content-Type: application/json", NULL};
    const char *wrong[] = {"Content-Type: text/plain", NULL};
    static const char txn[] =
        "{\"ops\":[{\"op\":\"put\",\"key\":\"t\",\"value\":\"v\"}]}";
    static const int status[] = {201, 200, 415};
    const size_t in[] = {16, sizeof txn - 1, 0};
    struct hu_resp r;
    char **lines;

    snprintf(log, sizeof log, "%s/access.log", fx.dir);
    snprintf(opt_log, sizeof opt_log, "%s", log);
    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
    http(&r, "PUT", "/kv/k", repr, "sixteen bytes in");
    ck_assert_int_eq(r.code, 201);
    ck_assert_uint_eq(r.len, 16); /* the body went to the reply */
    hu_resp_free(&r);
    http(&r, "POST", "/txn", json, txn);
    ck_assert_int_eq(r.code, 200);
    hu_resp_free(&r);
    http(&r, "POST", "/txn", wrong, txn);
    ck_assert_int_eq(r.code, 415);
    hu_resp_free(&r);
    lines = read_lines(log, 3);
    for (int i = 0; i < 3; i++) {
        json_t *j;

        ck_assert_ptr_nonnull(lines[i]);
        j = json_loads(lines[i], 0, NULL);
        ck_assert_ptr_nonnull(j);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "status")),
                         status[i]);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "bytes_in")),
                         (json_int_t)in[i]);
        json_decref(j);
    }
    free_lines(lines);
}
END_TEST

/* A request-target may hold '"' (visible ASCII): in the combined format it
 * is escaped as the User-Agent is, so that it cannot end the quoted
 * request field and make up the fields after it. */
START_TEST(the_combined_log_escapes_quotes_in_the_target)
{
    char log[600], opt_log[620], reply[512];
    const char *opts[] = {"--nosync", "--access-log",
                          opt_log,    "--access-log-format",
                          "combined", NULL};
    static const char req[] = "GET /changes?prefix=a\"%20200%20- HTTP/1.1\r\n"
                              "Host: t\r\nConnection: close\r\n\r\n";
    char **lines;
    ssize_t n;
    int fd;

    snprintf(log, sizeof log, "%s/access.log", fx.dir);
    snprintf(opt_log, sizeof opt_log, "%s", log);
    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
    fd = hu_connect(fx.srv.port);
    ck_assert_int_eq(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    n = read(fd, reply, sizeof reply - 1);
    ck_assert_int_gt(n, 12);
    reply[n] = '\0';
    ck_assert_msg(strncmp(reply, "HTTP/1.1 200", 12) == 0, "%s", reply);
    close(fd);
    lines = read_lines(log, 1);
    ck_assert_ptr_nonnull(lines[0]);
    ck_assert_msg(strstr(lines[0], "\"GET /changes?prefix=a\\\"%20200%20- "
                                   "HTTP/1.1\" 200 ") != NULL,
                  "%s", lines[0]);
    free_lines(lines);
}
END_TEST

/* The lease routes came after the access log: each is logged with its own
 * path (the id as routed), not read past the log's table of paths. */
START_TEST(the_access_log_names_the_lease_routes)
{
    char log[600], opt_log[620];
    const char *opts[] = {"--nosync", "--access-log", opt_log, NULL};
    const char *json[] = {"Content-Type: application/json", NULL};
    static const char *const want[] = {"/leases", "/leases/1",
                                       "/leases/1/keepalive", "/leases/1"};
    struct hu_resp r;
    char **lines;

    snprintf(log, sizeof log, "%s/access.log", fx.dir);
    snprintf(opt_log, sizeof opt_log, "%s", log);
    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
    http(&r, "POST", "/leases", json, "{\"ttl_ms\": 60000}");
    ck_assert_int_eq(r.code, 201);
    ck_assert_str_eq(hu_hdr(&r, "Location"), "/leases/1");
    hu_resp_free(&r);
    http(&r, "GET", "/leases/1", NULL, NULL);
    ck_assert_int_eq(r.code, 200);
    hu_resp_free(&r);
    http(&r, "POST", "/leases/1/keepalive", NULL, NULL);
    ck_assert_int_eq(r.code, 200);
    hu_resp_free(&r);
    http(&r, "DELETE", "/leases/1", NULL, NULL);
    ck_assert_int_eq(r.code, 204);
    hu_resp_free(&r);
    lines = read_lines(log, 4);
    for (int i = 0; i < 4; i++) {
        json_t *j;

        ck_assert_msg(lines[i] != NULL, "line %d is missing", i);
        j = json_loads(lines[i], 0, NULL);
        ck_assert_msg(j != NULL, "%s", lines[i]);
        ck_assert_str_eq(str(j, "target", NULL), want[i]);
        json_decref(j);
    }
    free_lines(lines);
}
END_TEST

START_TEST(the_combined_log_is_reopened_on_sighup)
{
    char log[600], moved[620], opt_log[620];
    const char *opts[] = {"--nosync", "--access-log",
                          opt_log,    "--access-log-format",
                          "combined", NULL};
    const char *ua[] = {"User-Agent: test \"agent\"", NULL};
    struct hu_resp r;
    char **lines;

    snprintf(log, sizeof log, "%s/access.log", fx.dir);
    snprintf(opt_log, sizeof opt_log, "%s", log);
    snprintf(moved, sizeof moved, "%s.1", log);
    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
    http(&r, "GET", "/kv/missing", ua, NULL);
    ck_assert_int_eq(r.code, 404);
    hu_resp_free(&r);
    lines = read_lines(log, 1);
    ck_assert_ptr_nonnull(lines[0]);
    ck_assert_msg(strstr(lines[0], "127.0.0.1 - - [") == lines[0], "%s",
                  lines[0]);
    ck_assert_msg(strstr(lines[0],
                         " +0000] \"GET /kv/missing HTTP/1.1\" "
                         "404 - \"-\" \"test \\\"agent\\\"\"\n") != NULL,
                  "%s", lines[0]);
    free_lines(lines);
    /* logrotate: move the file, SIGHUP, and the next line is in a new one. */
    ck_assert_int_eq(rename(log, moved), 0);
    ck_assert_int_eq(kill(fx.srv.pid, SIGHUP), 0);
    for (int tries = 0; tries < 200 && access(log, F_OK) != 0; tries++)
        usleep(20000);
    http(&r, "GET", "/metrics", NULL, NULL);
    ck_assert_int_eq(r.code, 200);
    hu_resp_free(&r);
    lines = read_lines(log, 1);
    ck_assert_ptr_nonnull(lines[0]);
    ck_assert_ptr_nonnull(strstr(lines[0], "\"GET /metrics HTTP/1.1\" 200"));
    free_lines(lines);
    lines = read_lines(moved, 1);
    ck_assert_ptr_null(lines[1]); /* the old file got no more */
    free_lines(lines);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("diagnose_http");
    TCase *tc = tcase_create("412");
    TCase *own = tcase_create("own server");

    tcase_add_checked_fixture(tc, fixture_start, fixture_stop);
    tcase_add_test(
        tc, if_match_412_says_what_was_sent_and_which_write_superseded_it);
    tcase_add_test(tc, several_if_match_lines_are_sent_back_joined);
    tcase_add_test(
        tc, if_revision_412_is_decided_by_the_revision_and_traced_in_the_log);
    tcase_add_test(tc, if_unmodified_since_412_is_superseded_by_the_creation);
    tcase_add_test(tc, if_none_match_412_is_superseded_by_the_latest_creation);
    tcase_add_test(tc, a_read_412_carries_the_diagnosis_too);
    tcase_add_test(tc, a_transaction_409_says_what_its_failing_operation_sent);
    tcase_add_test(tc, metrics_count_412s_by_the_condition_that_decided);
    tcase_add_test(tc,
                   metrics_count_refusals_by_route_and_method_and_every_commit);
    tcase_add_test(tc, superseded_is_searched_at_most_100_times_a_second);
    suite_add_tcase(s, tc);
    tcase_add_checked_fixture(own, fixture_init, fixture_stop);
    tcase_add_test(
        own, a_validator_older_than_the_window_is_never_current_within_it);
    tcase_add_test(own,
                   the_json_access_log_has_one_line_per_request_and_no_secrets);
    tcase_add_test(own, the_combined_log_is_reopened_on_sighup);
    tcase_add_test(own, the_access_log_names_the_lease_routes);
    tcase_add_test(own, the_combined_log_escapes_quotes_in_the_target);
    tcase_add_test(own, bytes_in_counts_the_body_whatever_became_of_it);
    tcase_add_test(
        own, condition_bytes_that_are_not_utf8_still_get_an_answer_and_a_line);
    suite_add_tcase(s, own);
    return tu_run(s);
}
