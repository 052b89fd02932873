/*
 * test_txn_http.c -- POST /txn (DESIGN §7) and ETagKV-If-Revision on
 * /kv/{key} (DESIGN §2) over real HTTP, against the real etagkv-server,
 * with libcurl.
 *
 * The evaluation rules are proven row by row in test_cond and test_txn;
 * here each is shown over the wire.  If-Revision: the A->B->A sequence that
 * fools If-Match but not the revision, 0 for "absent", the §13.2.1 rule,
 * malformed values (400, nothing written) and require-conditions mode.
 * /txn: success, a conflict with everything needed to rebase, an atomic
 * rename and a transfer with requests a curl user would send, hostile
 * bodies (400/413/415, nothing applied, the server alive), 428,
 * Idempotency-Key, the metrics, and 32 connections of conditional
 * transfers conserving the total and applying every acknowledged one
 * exactly once.
 */
#include <pthread.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "httputil.h"
#include "testutil.h"

#ifndef ETAGKV_SERVER_BIN
#error "ETAGKV_SERVER_BIN must name the etagkv-server binary"
#endif

#define REQUEST_TIMEOUT_S 60

static struct hu_fixture fx;

/* Tests that start their own server (other options) initialise only. */
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

static void http(struct hu_resp *r, const char *method, const char *path,
                 const char *const *headers, const char *body)
{
    hu_fixture_call(&fx, r, method, path, headers, body,
                    body != NULL ? strlen(body) : 0);
}

/* The status of a request; its mod_revision (ETagKV-Revision) into *rev
 * when rev is not NULL and the header is there. */
static long call(const char *method, const char *path, const char *if_rev,
                 const char *body, uint64_t *rev)
{
    char h[128];
    const char *hdrs[] = {h, NULL};
    struct hu_resp r;
    long code;

    /* "Name;" is how libcurl sends a header with an empty value. */
    if (if_rev != NULL && *if_rev == '\0')
        snprintf(h, sizeof(h), "ETagKV-If-Revision;");
    else
        snprintf(h, sizeof(h), "ETagKV-If-Revision: %s", if_rev ? if_rev : "");
    http(&r, method, path, if_rev != NULL ? hdrs : NULL, body);
    code = r.code;
    if (rev != NULL && hu_hdr(&r, "ETagKV-Revision") != NULL)
        *rev = strtoull(hu_hdr(&r, "ETagKV-Revision"), NULL, 10);
    hu_resp_free(&r);
    return code;
}

/* PUT value to /kv/key without conditions; the status. */
static long put_plain(const char *key, const char *value)
{
    char path[128];

    snprintf(path, sizeof path, "/kv/%s", key);
    return call("PUT", path, NULL, value, NULL);
}

static const char *num(char *buf, uint64_t n)
{
    snprintf(buf, 24, "%llu", (unsigned long long)n);
    return buf;
}

/* ---- ETagKV-If-Revision on /kv/{key} ---------------------------------------
 */

START_TEST(a_to_b_to_a_passes_if_match_but_fails_if_revision)
{
    char etag_a[ETAGKV_ETAG_SIZE], h[128], b[24];
    const char *hdrs[] = {h, NULL};
    uint64_t rev_a = 0, rev_now = 0;
    struct hu_resp r;

    http(&r, "PUT", "/kv/aba", NULL, "A");
    ck_assert_int_eq(r.code, 201);
    snprintf(etag_a, sizeof(etag_a), "%s", hu_hdr(&r, "ETag"));
    rev_a = strtoull(hu_hdr(&r, "ETagKV-Revision"), NULL, 10);
    hu_resp_free(&r);
    ck_assert_int_eq(call("PUT", "/kv/aba", NULL, "B", NULL), 200);
    ck_assert_int_eq(call("PUT", "/kv/aba", NULL, "A", &rev_now), 200);
    ck_assert_uint_gt(rev_now, rev_a);

    /* The content hash is back to A's: If-Match cannot tell. */
    snprintf(h, sizeof(h), "If-Match: %s", etag_a);
    http(&r, "HEAD", "/kv/aba", hdrs, NULL);
    ck_assert_int_eq(r.code, 200);
    hu_resp_free(&r);
    /* The revision can: 412 for a write and for a read, nothing written. */
    ck_assert_int_eq(call("PUT", "/kv/aba", num(b, rev_a), "C", NULL), 412);
    ck_assert_int_eq(call("GET", "/kv/aba", num(b, rev_a), NULL, NULL), 412);
    ck_assert_int_eq(call("DELETE", "/kv/aba", num(b, rev_a), NULL, NULL), 412);
    ck_assert_int_eq(call("GET", "/kv/aba", num(b, rev_now), NULL, NULL), 200);
    ck_assert_int_eq(call("PUT", "/kv/aba", num(b, rev_now), "C", &rev_a), 200);
    ck_assert_uint_eq(rev_a, rev_now + 1);
    ck_assert_int_eq(call("DELETE", "/kv/aba", num(b, rev_a), NULL, NULL), 204);
}
END_TEST

START_TEST(if_revision_0_creates_a_missing_key_once_and_13_2_1_holds)
{
    ck_assert_int_eq(call("PUT", "/kv/new", "0", "x", NULL), 201);
    ck_assert_int_eq(call("PUT", "/kv/new", "0", "y", NULL), 412);
    /* RFC 9110 §13.2.1: a read or delete of nothing is 404 whatever the
     * condition; a PUT of nothing with a nonzero revision is 412. */
    ck_assert_int_eq(call("GET", "/kv/none", "0", NULL, NULL), 404);
    ck_assert_int_eq(call("HEAD", "/kv/none", "5", NULL, NULL), 404);
    ck_assert_int_eq(call("DELETE", "/kv/none", "5", NULL, NULL), 404);
    ck_assert_int_eq(call("PUT", "/kv/none", "5", "x", NULL), 412);
    ck_assert_int_eq(call("GET", "/kv/none", NULL, NULL, NULL), 404);
}
END_TEST

START_TEST(malformed_if_revision_is_400_and_writes_nothing)
{
    static const char *const bad[] = {
        "-1", "+1", "abc", "1.5", "0x1", "1 2", "18446744073709551616", "",
    };
    const char *two[] = {"ETagKV-If-Revision: 1", "ETagKV-If-Revision: 2",
                         NULL};
    const char *same[] = {"ETagKV-If-Revision: 0", "ETagKV-If-Revision: 0",
                          NULL};
    struct hu_resp r;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(call("PUT", "/kv/k", bad[i], "x", NULL) == 400,
                      "value '%s'", bad[i]);
        ck_assert_int_eq(call("GET", "/kv/k", bad[i], NULL, NULL), 400);
        ck_assert_int_eq(call("DELETE", "/kv/k", bad[i], NULL, NULL), 400);
    }
    /* Several lines that disagree are 400; lines that agree are one. */
    http(&r, "PUT", "/kv/k", two, "x");
    ck_assert_int_eq(r.code, 400);
    hu_resp_free(&r);
    ck_assert_int_eq(call("GET", "/kv/k", NULL, NULL, NULL), 404);
    http(&r, "PUT", "/kv/k", same, "x");
    ck_assert_int_eq(r.code, 201);
    hu_resp_free(&r);
}
END_TEST

START_TEST(if_revision_counts_as_a_condition_in_require_conditions_mode)
{
    static const char *const opts[] = {"--require-conditions", "--nosync",
                                       NULL};

    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
    ck_assert_int_eq(call("PUT", "/kv/k", NULL, "x", NULL), 428);
    ck_assert_int_eq(call("PUT", "/kv/k", "0", "x", NULL), 201);
}
END_TEST

/* ---- POST /txn ------------------------------------------------------------
 */

static const char *const json_ct[] = {"Content-Type: application/json", NULL};

/* POST body to /txn; the caller frees r. */
static void post_txn(struct hu_resp *r, const char *body)
{
    http(r, "POST", "/txn", json_ct, body);
}

/* The body of r as JSON; fails the test otherwise. */
static json_t *body_json(const struct hu_resp *r)
{
    json_error_t err;
    json_t *j = json_loadb(r->body != NULL ? r->body : "", r->len, 0, &err);

    ck_assert_msg(j != NULL, "not JSON (%s): %.*s", err.text, (int)r->len,
                  r->body != NULL ? r->body : "");
    return j;
}

/* POST body and expect status; returns the parsed reply (json_decref). */
static json_t *txn_expect(const char *body, long status)
{
    struct hu_resp r;
    json_t *j;

    post_txn(&r, body);
    ck_assert_msg(r.code == status, "POST /txn %s: %ld, wanted %ld: %s", body,
                  r.code, status, r.body != NULL ? r.body : "");
    if (status == 200)
        ck_assert_str_eq(hu_hdr(&r, "Content-Type"), "application/json");
    else
        ck_assert_str_eq(hu_hdr(&r, "Content-Type"),
                         "application/problem+json");
    j = body_json(&r);
    hu_resp_free(&r);
    return j;
}

static json_t *result_at(json_t *reply, size_t i)
{
    json_t *o = json_array_get(json_object_get(reply, "results"), i);

    ck_assert_ptr_nonnull(o);
    return o;
}

static long long jint(json_t *o, const char *member)
{
    json_t *v = json_object_get(o, member);

    ck_assert_msg(json_is_integer(v), "%s is not an integer", member);
    return json_integer_value(v);
}

static const char *jstr(json_t *o, const char *member)
{
    const char *v = json_string_value(json_object_get(o, member));

    ck_assert_msg(v != NULL, "%s is not a string", member);
    return v;
}

/* GET /kv/key: its status, and value and ETag into the buffers. */
static long get_kv(const char *key, char *value, size_t cap,
                   char etag[ETAGKV_ETAG_SIZE])
{
    char path[128];
    struct hu_resp r;
    long code;

    snprintf(path, sizeof path, "/kv/%s", key);
    http(&r, "GET", path, NULL, NULL);
    code = r.code;
    if (value != NULL) {
        /* Bytes, NUL included, then a terminator. */
        size_t n = r.len < cap - 1 ? r.len : cap - 1;

        memcpy(value, r.body != NULL ? r.body : "", n);
        value[n] = '\0';
    }
    if (etag != NULL)
        snprintf(etag, ETAGKV_ETAG_SIZE, "%s",
                 hu_hdr(&r, "ETag") != NULL ? hu_hdr(&r, "ETag") : "");
    hu_resp_free(&r);
    return code;
}

/* The store's revision, from /metrics. */
static int64_t store_revision(void)
{
    struct hu_resp r;
    int64_t rev;

    http(&r, "GET", "/metrics", NULL, NULL);
    rev = hu_metric(r.body, "etagkv_store_revision");
    hu_resp_free(&r);
    return rev;
}

START_TEST(a_transaction_commits_every_write_under_one_revision)
{
    json_t *j = txn_expect(
        "{\"ops\":[{\"op\":\"put\",\"key\":\"a\",\"value\":\"10\","
        "\"content_type\":\"text/plain\"},"
        "{\"op\":\"put\",\"key_base64\":\"AP8=\",\"value_base64\":\"AAEC\"},"
        "{\"op\":\"get\",\"key\":\"a\"},{\"op\":\"check\",\"key\":\"zz\","
        "\"if_none_match\":\"*\",\"if_revision\":0}]}",
        200);
    char etag[ETAGKV_ETAG_SIZE], v[16];
    long long rev = jint(j, "revision");

    ck_assert_int_eq(jint(result_at(j, 0), "status"), 201);
    ck_assert_int_eq(jint(result_at(j, 0), "mod_revision"), rev);
    ck_assert_int_eq(jint(result_at(j, 1), "mod_revision"), rev);
    ck_assert_str_eq(jstr(result_at(j, 1), "key_base64"), "AP8=");
    ck_assert_int_eq(jint(result_at(j, 2), "status"), 200);
    ck_assert_str_eq(jstr(result_at(j, 2), "value"), "10");
    ck_assert_str_eq(jstr(result_at(j, 2), "content_type"), "text/plain");
    ck_assert_int_eq(jint(result_at(j, 3), "status"), 200);
    ck_assert(json_is_false(json_object_get(result_at(j, 3), "exists")));
    ck_assert(json_is_null(json_object_get(result_at(j, 3), "etag")));
    ck_assert_int_eq(store_revision(), rev);
    ck_assert_int_eq(get_kv("a", v, sizeof v, etag), 200);
    ck_assert_str_eq(v, "10");
    ck_assert_str_eq(etag, jstr(result_at(j, 0), "etag"));
    ck_assert_int_eq(get_kv("%00%FF", v, sizeof v, NULL), 200);
    ck_assert_int_eq(memcmp(v, "\0\1\2", 3), 0);
    json_decref(j);
}
END_TEST

START_TEST(a_conflict_is_409_with_what_the_client_needs_to_rebase)
{
    json_t *j;
    char body[512], etag_b[ETAGKV_ETAG_SIZE], *etag_a;

    json_decref(txn_expect("{\"ops\":[{\"op\":\"put\",\"key\":\"a\","
                           "\"value\":\"1\"},{\"op\":\"put\",\"key\":\"b\","
                           "\"value\":\"2\"}]}",
                           200));
    ck_assert_int_eq(get_kv("b", NULL, 0, etag_b), 200);
    /* a's ETag is stale: the first op fails, the second is not evaluated. */
    snprintf(body, sizeof body,
             "{\"ops\":[{\"op\":\"put\",\"key\":\"a\",\"value\":\"x\","
             "\"if_match\":\"\\\"00000000000000000000000000000000\\\"\"},"
             "{\"op\":\"delete\",\"key\":\"b\",\"if_match\":\"%s\"},"
             "{\"op\":\"put\",\"key\":\"new\",\"value\":\"n\"}]}",
             "\\\"x\\\"");
    j = txn_expect(body, 409);
    ck_assert_str_eq(jstr(j, "type"), "urn:etagkv:problem:conflict");
    ck_assert_int_eq(jint(j, "status"), 409);
    ck_assert_int_eq(jint(j, "failed"), 0);
    ck_assert_int_eq(jint(result_at(j, 0), "status"), 412);
    ck_assert(json_is_null(json_object_get(result_at(j, 1), "status")));
    ck_assert(json_is_null(json_object_get(result_at(j, 2), "status")));
    /* The current state of every key, evaluated or not. */
    ck_assert(json_is_true(json_object_get(result_at(j, 0), "exists")));
    ck_assert_str_eq(jstr(result_at(j, 1), "etag"), etag_b);
    ck_assert_ptr_nonnull(jstr(result_at(j, 1), "last_modified"));
    ck_assert(json_is_false(json_object_get(result_at(j, 2), "exists")));
    ck_assert_int_eq(get_kv("new", NULL, 0, NULL), 404);
    ck_assert_int_eq(get_kv("b", NULL, 0, NULL), 200);

    /* The rebase: the 409 carries a's current ETag and b's revision; retry
     * with them. */
    etag_a =
        json_dumps(json_object_get(result_at(j, 0), "etag"), JSON_ENCODE_ANY);
    ck_assert_ptr_nonnull(etag_a);
    snprintf(body, sizeof body,
             "{\"ops\":[{\"op\":\"put\",\"key\":\"a\",\"value\":\"x\","
             "\"if_match\":%s},{\"op\":\"delete\",\"key\":\"b\","
             "\"if_revision\":%lld}]}",
             etag_a, jint(result_at(j, 1), "mod_revision"));
    free(etag_a);
    json_decref(j);
    j = txn_expect(body, 200);
    ck_assert_int_eq(jint(result_at(j, 1), "status"), 204);
    ck_assert_int_eq(get_kv("b", NULL, 0, NULL), 404);
    json_decref(j);
}
END_TEST

START_TEST(a_conflict_with_prefer_return_representation_carries_the_values)
{
    static const char *const prefer[] = {"Content-Type: application/json",
                                         "Prefer: return=representation", NULL};
    static const char *const keyed[] = {"Content-Type: application/json",
                                        "Prefer: return=representation",
                                        "Idempotency-Key: \"tx-repr\"", NULL};
    const char *stale =
        "{\"ops\":[{\"op\":\"put\",\"key\":\"a\",\"value\":\"9\","
        "\"if_match\":\"\\\"00000000000000000000000000000000\\\"\"},"
        "{\"op\":\"check\",\"key_base64\":\"AP8=\"},"
        "{\"op\":\"check\",\"key\":\"missing\"}]}";
    char body[512], *etag_a;
    struct hu_resp r;
    json_t *j;

    json_decref(txn_expect("{\"ops\":[{\"op\":\"put\",\"key\":\"a\","
                           "\"value\":\"1\",\"content_type\":\"text/plain\"},"
                           "{\"op\":\"put\",\"key_base64\":\"AP8=\","
                           "\"value_base64\":\"AAEC\"}]}",
                           200));
    /* Without the preference: states, no values. */
    j = txn_expect(stale, 409);
    ck_assert_ptr_null(json_object_get(result_at(j, 0), "value"));
    ck_assert_ptr_null(json_object_get(result_at(j, 1), "value_base64"));
    json_decref(j);

    /* With it: every existing key's value and content type, evaluated or
     * not, text or base64; none for an absent key. */
    http(&r, "POST", "/txn", prefer, stale);
    ck_assert_int_eq(r.code, 409);
    ck_assert_str_eq(hu_hdr(&r, "Preference-Applied"), "return=representation");
    j = body_json(&r);
    hu_resp_free(&r);
    ck_assert_int_eq(jint(j, "failed"), 0);
    ck_assert_str_eq(jstr(result_at(j, 0), "value"), "1");
    ck_assert_str_eq(jstr(result_at(j, 0), "content_type"), "text/plain");
    ck_assert(json_is_null(json_object_get(result_at(j, 1), "status")));
    ck_assert_str_eq(jstr(result_at(j, 1), "value_base64"), "AAEC");
    ck_assert_ptr_null(json_object_get(result_at(j, 2), "value"));
    ck_assert_ptr_null(json_object_get(result_at(j, 2), "value_base64"));

    /* The rebase, without another read: a's value and ETag from the 409. */
    etag_a =
        json_dumps(json_object_get(result_at(j, 0), "etag"), JSON_ENCODE_ANY);
    ck_assert_ptr_nonnull(etag_a);
    snprintf(body, sizeof body,
             "{\"ops\":[{\"op\":\"put\",\"key\":\"a\",\"value\":\"%d\","
             "\"if_match\":%s}]}",
             atoi(jstr(result_at(j, 0), "value")) + 1, etag_a);
    free(etag_a);
    json_decref(j);
    json_decref(txn_expect(body, 200));
    ck_assert_int_eq(get_kv("a", body, sizeof body, NULL), 200);
    ck_assert_str_eq(body, "2");

    /* A replayed 409 has no values to give (its outcome was recorded, not
     * the values). */
    http(&r, "POST", "/txn", keyed, stale);
    ck_assert_int_eq(r.code, 409);
    ck_assert_ptr_nonnull(hu_hdr(&r, "Preference-Applied"));
    hu_resp_free(&r);
    http(&r, "POST", "/txn", keyed, stale);
    ck_assert_int_eq(r.code, 409);
    ck_assert_str_eq(hu_hdr(&r, "Idempotent-Replayed"), "true");
    ck_assert_ptr_null(hu_hdr(&r, "Preference-Applied"));
    j = body_json(&r);
    hu_resp_free(&r);
    ck_assert_ptr_null(json_object_get(result_at(j, 0), "value"));
    json_decref(j);
    /* A 200 is the same with or without it. */
    http(&r, "POST", "/txn", prefer,
         "{\"ops\":[{\"op\":\"put\",\"key\":\"c\",\"value\":\"3\"}]}");
    ck_assert_int_eq(r.code, 200);
    ck_assert_ptr_null(hu_hdr(&r, "Preference-Applied"));
    hu_resp_free(&r);
}
END_TEST

/* Read a whole small file into buf (NUL-terminated). */
static void slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n;

    ck_assert_ptr_nonnull(f);
    n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(conflict_values_stay_out_of_replays_of_absent_keys_and_the_log)
{
    static const char *const keyed[] = {"Content-Type: application/json",
                                        "Prefer: return=representation",
                                        "Idempotency-Key: \"tx-absent\"", NULL};
    static const char *const prefer[] = {"Content-Type: application/json",
                                         "Prefer: return=representation", NULL};
    static const char *const opts[] = {"--threads", "4", "--nosync", NULL};
    const char *gone = "{\"ops\":[{\"op\":\"delete\",\"key\":\"nope\"}]}";
    char log[16384];
    struct hu_resp r;
    json_t *j;

    /* The server again, its stderr (the refusal log) into a file. */
    hu_server_stop(&fx.srv);
    snprintf(fx.srv.err, sizeof fx.srv.err, "%s/stderr", fx.dir);
    hu_server_restart(&fx.srv, opts);

    /* Every key absent: the first 409 gives every value there is (none),
     * the replay has none to give and says nothing of the preference. */
    http(&r, "POST", "/txn", keyed, gone);
    ck_assert_int_eq(r.code, 409);
    ck_assert_str_eq(hu_hdr(&r, "Preference-Applied"), "return=representation");
    hu_resp_free(&r);
    http(&r, "POST", "/txn", keyed, gone);
    ck_assert_int_eq(r.code, 409);
    ck_assert_str_eq(hu_hdr(&r, "Idempotent-Replayed"), "true");
    ck_assert_ptr_null(hu_hdr(&r, "Preference-Applied"));
    hu_resp_free(&r);

    /* A transaction of checks alone (answered from a read snapshot): the
     * same values; the log names the key, never its value. */
    ck_assert_int_eq(put_plain("secret", "s3cr3t-value"), 201);
    http(&r, "POST", "/txn", prefer,
         "{\"ops\":[{\"op\":\"check\",\"key\":\"secret\","
         "\"if_none_match\":\"*\"}]}");
    ck_assert_int_eq(r.code, 409);
    ck_assert_str_eq(hu_hdr(&r, "Preference-Applied"), "return=representation");
    j = body_json(&r);
    hu_resp_free(&r);
    ck_assert_str_eq(jstr(result_at(j, 0), "value"), "s3cr3t-value");
    json_decref(j);
    hu_server_stop(&fx.srv); /* the log is complete */
    slurp(fx.srv.err, log, sizeof log);
    ck_assert_msg(strstr(log, "\"key\":\"secret\"") != NULL,
                  "the 409 is not in the log: %s", log);
    ck_assert_msg(strstr(log, "s3cr3t-value") == NULL,
                  "the log holds the value: %s", log);
    hu_server_restart(&fx.srv, opts); /* for the fixture's stop */
}
END_TEST

START_TEST(an_atomic_rename_moves_a_key_once)
{
    char etag[ETAGKV_ETAG_SIZE], body[512], v[16];
    struct hu_resp r;
    json_t *j;

    http(&r, "PUT", "/kv/old", NULL, "payload");
    ck_assert_int_eq(r.code, 201);
    hu_resp_free(&r);
    ck_assert_int_eq(get_kv("old", NULL, 0, etag), 200);
    /* Create the new name only if absent, delete the old only if
     * unchanged, as docs/http.md shows with curl. */
    snprintf(body, sizeof body,
             "{\"ops\":[{\"op\":\"put\",\"key\":\"new\",\"value\":\"payload\","
             "\"if_none_match\":\"*\"},{\"op\":\"delete\",\"key\":\"old\","
             "\"if_match\":\"\\\"%.32s\\\"\"}]}",
             etag + 1);
    j = txn_expect(body, 200);
    ck_assert_int_eq(jint(result_at(j, 0), "status"), 201);
    ck_assert_int_eq(jint(result_at(j, 1), "status"), 204);
    json_decref(j);
    ck_assert_int_eq(get_kv("old", NULL, 0, NULL), 404);
    ck_assert_int_eq(get_kv("new", v, sizeof v, NULL), 200);
    ck_assert_str_eq(v, "payload");
    /* Again: new exists now, so nothing happens. */
    j = txn_expect(body, 409);
    ck_assert_int_eq(jint(j, "failed"), 0);
    json_decref(j);
}
END_TEST

/* Bodies that must be refused, each with its status. */
static const struct hostile {
    const char *body;
    long status;
} hostile[] = {
    {"", 400},
    {"not json", 400},
    {"[]", 400},
    {"{}", 400},
    {"{\"ops\":{}}", 400},
    {"{\"ops\":[],\"extra\":1}", 400},
    {"{\"ops\":[],\"ops\":[]}", 400}, /* duplicate */
    {"{\"ops\":[{\"op\":\"put\",\"key\":\"k\",\"key\":\"j\",\"value\":\"v\"}]}",
     400}, /* duplicate */
    {"{\"ops\":[{\"op\":\"frobnicate\",\"key\":\"k\"}]}", 400},
    {"{\"ops\":[{\"op\":\"put\",\"key\":\"k\",\"value\":\"v\",\"ttl\":1}]}",
     400}, /* unknown member */
    {"{\"ops\":[{\"op\":\"put\",\"key\":\"k\",\"value\":\"v\",\"lease\":"
     "\"one\"}]}",
     400}, /* not a lease id */
    /* DESIGN §9: an unknown lease is a conflict, nothing applied. */
    {"{\"ops\":[{\"op\":\"put\",\"key\":\"k\",\"value\":\"v\",\"lease\":1}]}",
     409},
    {"{\"ops\":[{\"op\":1,\"key\":\"k\"}]}", 400},
    {"{\"ops\":[{\"op\":\"put\",\"key\":5,\"value\":\"v\"}]}", 400},
    {"{\"ops\":[{\"op\":\"put\",\"key\":\"k\",\"value\":5}]}", 400},
    {"{\"ops\":[{\"op\":\"put\",\"key\":\"k\"}]}", 400},
    {"{\"ops\":[{\"op\":\"get\"}]}", 400},
    {"{\"ops\":[{\"op\":\"get\",\"key\":\"\"}]}", 400},
    {"{\"ops\":[{\"op\":\"delete\",\"key\":\"k\",\"value\":\"v\"}]}", 400},
    {"{\"ops\":[{\"op\":\"put\",\"key\":\"k\",\"key_base64\":\"aw==\","
     "\"value\":\"v\"}]}",
     400},
    {"{\"ops\":[{\"op\":\"put\",\"key_base64\":\"a\",\"value\":\"v\"}]}", 400},
    {"{\"ops\":[{\"op\":\"put\",\"key_base64\":\"a===\",\"value\":\"v\"}]}",
     400},
    /* Not canonical (RFC 4648 §3.5): "YR==" and "YQ==" would both be "a";
     * "YWI=" is "ab", "YWJ=" is not. */
    {"{\"ops\":[{\"op\":\"put\",\"key_base64\":\"YR==\",\"value\":\"v\"}]}",
     400},
    {"{\"ops\":[{\"op\":\"put\",\"key\":\"k\",\"value_base64\":\"YWJ=\"}]}",
     400},
    {"{\"ops\":[{\"op\":\"put\",\"key\":\"k\",\"value\":\"v\","
     "\"if_match\":\"nope\"}]}",
     400},
    {"{\"ops\":[{\"op\":\"put\",\"key\":\"k\",\"value\":\"v\","
     "\"if_match\":[\"*\"]}]}",
     400},
    {"{\"ops\":[{\"op\":\"put\",\"key\":\"k\",\"value\":\"v\","
     "\"if_revision\":-1}]}",
     400},
    {"{\"ops\":[{\"op\":\"put\",\"key\":\"k\",\"value\":\"v\","
     "\"if_revision\":1.5}]}",
     400},
    {"{\"ops\":[{\"op\":\"put\",\"key\":\"k\",\"value\":\"v\","
     "\"if_revision\":\"3\"}]}",
     400},
    {"{\"ops\":[{\"op\":\"put\",\"key\":\"k\",\"value\":\"v\","
     "\"if_revision\":99999999999999999999999}]}",
     400},
    {"{\"ops\":[{\"op\":\"put\",\"key\":\"k\",\"value\":\"v\","
     "\"content_type\":\"a\\nb\"}]}",
     400},
    {"{\"ops\":[{\"op\":\"put\",\"key\":\"\\u0000\",\"value\":\"v\"}]}", 400},
    {"{\"ops\":[{\"op\":\"put\",\"key\":\"k\",\"value\":\"v\"}]", 400},
    {"{\"ops\":[{\"op\":\"put\",\"key\":\"k\xff\",\"value\":\"v\"}]}", 400},
};

START_TEST(hostile_bodies_are_refused_and_nothing_is_applied)
{
    int64_t rev0 = store_revision();
    size_t deep_n = 100000, big_n = 200;
    char *deep = malloc(2 * deep_n + 1), *big = malloc(big_n * 40 + 32);
    size_t o;
    json_t *j;

    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        struct hu_resp r;

        post_txn(&r, hostile[i].body);
        ck_assert_msg(r.code == hostile[i].status, "body %zu (%s): %ld", i,
                      hostile[i].body, r.code);
        hu_resp_free(&r);
    }
    /* Deep nesting. */
    ck_assert_ptr_nonnull(deep);
    memset(deep, '[', deep_n);
    memset(deep + deep_n, ']', deep_n);
    deep[2 * deep_n] = '\0';
    json_decref(txn_expect(deep, 400));
    /* A huge array: more operations than the limit (128) is 413. */
    ck_assert_ptr_nonnull(big);
    o = (size_t)sprintf(big, "{\"ops\":[");
    for (size_t i = 0; i < big_n; i++)
        o += (size_t)sprintf(big + o,
                             "%s{\"op\":\"put\",\"key\":\"k%zu\","
                             "\"value\":\"v\"}",
                             i > 0 ? "," : "", i);
    strcpy(big + o, "]}");
    j = txn_expect(big, 413);
    json_decref(j);
    /* Not JSON's media type: 415; header conditions: 400; GET: 405. */
    {
        const char *plain[] = {"Content-Type: text/plain", NULL};
        const char *cond[] = {"Content-Type: application/json",
                              "ETagKV-If-Revision: 0", NULL};
        struct hu_resp r;

        http(&r, "POST", "/txn", plain, "{\"ops\":[]}");
        ck_assert_int_eq(r.code, 415);
        hu_resp_free(&r);
        http(&r, "POST", "/txn", NULL, "{\"ops\":[]}");
        ck_assert_int_eq(r.code, 415);
        hu_resp_free(&r);
        http(&r, "POST", "/txn", cond, "{\"ops\":[]}");
        ck_assert_int_eq(r.code, 400);
        hu_resp_free(&r);
        http(&r, "GET", "/txn", NULL, NULL);
        ck_assert_int_eq(r.code, 405);
        ck_assert_str_eq(hu_hdr(&r, "Allow"), "POST");
        hu_resp_free(&r);
        http(&r, "POST", "/kv/k", json_ct, "x");
        ck_assert_int_eq(r.code, 405);
        hu_resp_free(&r);
    }
    /* Nothing applied, and the server still serves. */
    ck_assert_int_eq(store_revision(), rev0);
    ck_assert_int_eq(get_kv("k", NULL, 0, NULL), 404);
    ck_assert_int_eq(get_kv("k0", NULL, 0, NULL), 404);
    json_decref(txn_expect("{\"ops\":[]}", 200));
    free(deep);
    free(big);
}
END_TEST

START_TEST(a_body_over_the_limit_is_413_and_nothing_is_applied)
{
    static const char *const opts[] = {
        "--nosync", "--max-txn-bytes", "256", "--max-txn-ops", "2", NULL};
    char body[1024];
    struct hu_resp r;
    const char *chunked[] = {"Content-Type: application/json",
                             "Transfer-Encoding: chunked", NULL};

    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
    snprintf(body, sizeof body,
             "{\"ops\":[{\"op\":\"put\",\"key\":\"k\",\"value\":\"%0300d\"}]}",
             0);
    json_decref(txn_expect(body, 413));
    http(&r, "POST", "/txn", chunked, body);
    ck_assert_int_eq(r.code, 413);
    hu_resp_free(&r);
    json_decref(txn_expect("{\"ops\":[{\"op\":\"get\",\"key\":\"a\"},{\"op\":"
                           "\"get\",\"key\":\"b\"},{\"op\":\"get\",\"key\":"
                           "\"c\"}]}",
                           413));
    ck_assert_int_eq(get_kv("k", NULL, 0, NULL), 404);
    json_decref(txn_expect("{\"ops\":[{\"op\":\"put\",\"key\":\"k\","
                           "\"value\":\"v\"}]}",
                           200));
}
END_TEST

/* The values a transaction's gets read count against --max-txn-bytes, as
 * its puts' values do: else a body of a few KiB (128 gets of one 64 MiB
 * value) made the server copy 8 GiB and send it as one JSON reply, outside
 * the memory budget. */
START_TEST(the_values_gets_read_are_bounded_by_max_txn_bytes)
{
    static const char *const opts[] = {"--nosync", "--max-txn-bytes", "65536",
                                       NULL};
    static const char two[] = "{\"ops\":[{\"op\":\"get\",\"key\":\"big\"},"
                              "{\"op\":\"get\",\"key\":\"big\"}]}";
    static const char one[] =
        "{\"ops\":[{\"op\":\"get\",\"key\":\"big\"},"
        "{\"op\":\"put\",\"key\":\"k\",\"value\":\"v\"}]}";
    char *value = malloc(40001);
    json_t *j;

    ck_assert_ptr_nonnull(value);
    memset(value, 'a', 40000);
    value[40000] = '\0';
    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
    ck_assert_int_eq(put_plain("big", value), 201);
    free(value);
    {
        struct hu_resp r;

        post_txn(&r, two); /* its body, if 200, is too long to print */
        ck_assert_int_eq(r.code, 413);
        ck_assert_ptr_nonnull(strstr(r.body, "TXN_TOO_LARGE"));
        hu_resp_free(&r);
    }
    ck_assert_int_eq(get_kv("k", NULL, 0, NULL), 404);
    j = txn_expect(one, 200);
    ck_assert_uint_eq(
        strlen(json_string_value(json_object_get(result_at(j, 0), "value"))),
        40000);
    json_decref(j);
}
END_TEST

START_TEST(a_full_store_is_507_and_no_transaction_is_half_applied)
{
    static const char *const opts[] = {"--threads", "4", "--nosync", NULL};
    static char body[8192];
    struct rlimit old, lim;
    long code = 200;
    int n;

    /* A file size limit fills the disk for the server (as test_server). */
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = (struct rlimit){1 << 20, old.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    /* Each transaction creates two keys of 3,000 bytes. */
    for (n = 0; n < 1000 && code == 200; n++) {
        struct hu_resp r;

        snprintf(body, sizeof body,
                 "{\"ops\":[{\"op\":\"put\",\"key\":\"a%04d\","
                 "\"value\":\"%03000d\"},{\"op\":\"put\",\"key\":"
                 "\"b%04d\",\"value\":\"%03000d\"}]}",
                 n, n, n, n);
        post_txn(&r, body);
        code = r.code;
        hu_resp_free(&r);
    }
    ck_assert_msg(code == 507, "transaction %d got %ld, want 507", n - 1, code);
    ck_assert_int_gt(n, 10);
    /* The failed one left neither key; every committed one has both. */
    for (int i = 0; i < n; i++) {
        char a[16], b[16];

        snprintf(a, sizeof a, "a%04d", i);
        snprintf(b, sizeof b, "b%04d", i);
        ck_assert_int_eq(get_kv(a, NULL, 0, NULL), i < n - 1 ? 200 : 404);
        ck_assert_int_eq(get_kv(b, NULL, 0, NULL), i < n - 1 ? 200 : 404);
    }
    json_decref(
        txn_expect("{\"ops\":[{\"op\":\"get\",\"key\":\"a0000\"}]}", 200));
}
END_TEST

START_TEST(require_conditions_mode_refuses_an_unconditional_write_with_428)
{
    static const char *const opts[] = {"--nosync", "--require-conditions",
                                       NULL};

    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
    json_decref(txn_expect("{\"ops\":[{\"op\":\"put\",\"key\":\"a\","
                           "\"value\":\"1\",\"if_none_match\":\"*\"},"
                           "{\"op\":\"delete\",\"key\":\"b\"}]}",
                           428));
    json_decref(txn_expect("{\"ops\":[{\"op\":\"get\",\"key\":\"a\"},"
                           "{\"op\":\"put\",\"key\":\"a\",\"value\":\"1\","
                           "\"if_revision\":0}]}",
                           200));
}
END_TEST

START_TEST(an_idempotency_key_replays_a_transaction_and_refuses_another)
{
    const char *h[] = {"Content-Type: application/json",
                       "Idempotency-Key: \"tx-1\"", NULL};
    const char *body = "{\"ops\":[{\"op\":\"put\",\"key\":\"a\","
                       "\"value\":\"1\"}]}";
    struct hu_resp r;
    json_t *first, *again;

    http(&r, "POST", "/txn", h, body);
    ck_assert_int_eq(r.code, 200);
    ck_assert_ptr_null(hu_hdr(&r, "Idempotent-Replayed"));
    first = body_json(&r);
    hu_resp_free(&r);
    ck_assert_int_eq(put_plain("a", "changed"), 200);
    http(&r, "POST", "/txn", h, body);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(hu_hdr(&r, "Idempotent-Replayed"), "true");
    again = body_json(&r);
    hu_resp_free(&r);
    ck_assert(json_equal(first, again));
    json_decref(first);
    json_decref(again);
    /* The same key, another body: 422, nothing written. */
    http(&r, "POST", "/txn", h,
         "{\"ops\":[{\"op\":\"put\",\"key\":\"a\",\"value\":\"2\"}]}");
    ck_assert_int_eq(r.code, 422);
    hu_resp_free(&r);
    /* A get with a key: 400. */
    http(&r, "POST", "/txn", h, "{\"ops\":[{\"op\":\"get\",\"key\":\"a\"}]}");
    ck_assert_int_eq(r.code, 400);
    hu_resp_free(&r);
}
END_TEST

START_TEST(metrics_count_transactions_by_outcome_and_size)
{
    struct hu_resp r;

    json_decref(txn_expect("{\"ops\":[{\"op\":\"put\",\"key\":\"a\","
                           "\"value\":\"1\"},{\"op\":\"put\",\"key\":\"b\","
                           "\"value\":\"1\"},{\"op\":\"get\",\"key\":\"c\"}]}",
                           200));
    json_decref(
        txn_expect("{\"ops\":[{\"op\":\"delete\",\"key\":\"c\"}]}", 409));
    json_decref(txn_expect("{\"ops\":[{\"op\":\"nope\"}]}", 400));
    http(&r, "GET", "/metrics", NULL, NULL);
    ck_assert_int_eq(
        hu_metric(r.body, "etagkv_http_transactions_total{outcome=\"ok\"}"), 1);
    ck_assert_int_eq(
        hu_metric(r.body,
                  "etagkv_http_transactions_total{outcome=\"conflict\"}"),
        1);
    ck_assert_int_eq(
        hu_metric(r.body, "etagkv_http_transactions_total{outcome=\"error\"}"),
        1);
    ck_assert_int_eq(
        hu_metric(r.body, "etagkv_http_transaction_ops_bucket{le=\"1\"}"), 1);
    ck_assert_int_eq(
        hu_metric(r.body, "etagkv_http_transaction_ops_bucket{le=\"4\"}"), 2);
    ck_assert_int_eq(hu_metric(r.body, "etagkv_http_transaction_ops_sum"), 4);
    ck_assert_int_eq(
        hu_metric(r.body,
                  "etagkv_http_requests_total{method=\"POST\",code=\"409\"}"),
        1);
    hu_resp_free(&r);
}
END_TEST

/* ---- transfers over 32 connections ----------------------------------------
 */

#define H_ACCOUNTS 1000
#define H_CLIENTS 32
#define H_TRANSFERS 25
#define H_BALANCE 1000

struct h_transfer {
    int from, to, amount;
};

struct h_client {
    pthread_t tid;
    int port;
    uint64_t seed;
    struct h_transfer done[H_TRANSFERS];
    int n_done, conflicts, errors;
};

/* GET one account with h: balance and ETag; -1 on failure. */
static int h_read(CURL *h, int port, int a, long *bal, char *etag)
{
    char path[32];
    struct hu_req q = {"GET", path, NULL, NULL, 0};
    struct hu_resp r;
    int rc = -1;

    snprintf(path, sizeof path, "/kv/acct%d", a);
    hu_perform(h, port, &q, &r, REQUEST_TIMEOUT_S);
    if (r.err == CURLE_OK && r.code == 200 && hu_hdr(&r, "ETag") != NULL) {
        *bal = strtol(r.body, NULL, 10);
        snprintf(etag, ETAGKV_ETAG_SIZE, "%s", hu_hdr(&r, "ETag"));
        rc = 0;
    }
    hu_resp_free(&r);
    return rc;
}

/* One attempt: read both, POST both puts with If-Match on what was read.
 * The HTTP status, or -1 on a transport or read failure. */
static long h_attempt(CURL *h, int port, const struct h_transfer *x)
{
    long ba, bb, code = -1;
    char ea[ETAGKV_ETAG_SIZE], eb[ETAGKV_ETAG_SIZE], body[512];
    struct hu_req q = {"POST", "/txn", json_ct, body, 0};
    struct hu_resp r;

    if (h_read(h, port, x->from, &ba, ea) != 0 ||
        h_read(h, port, x->to, &bb, eb) != 0)
        return -1;
    q.body_len = (size_t)snprintf(
        body, sizeof body,
        "{\"ops\":[{\"op\":\"put\",\"key\":\"acct%d\",\"value\":\"%ld\","
        "\"if_match\":\"\\\"%.32s\\\"\"},{\"op\":\"put\",\"key\":\"acct%d\","
        "\"value\":\"%ld\",\"if_match\":\"\\\"%.32s\\\"\"}]}",
        x->from, ba - x->amount, ea + 1, x->to, bb + x->amount, eb + 1);
    hu_perform(h, port, &q, &r, REQUEST_TIMEOUT_S);
    if (r.err == CURLE_OK)
        code = r.code;
    hu_resp_free(&r);
    return code;
}

static void *h_client_main(void *arg)
{
    struct h_client *c = arg;
    CURL *h = curl_easy_init();

    for (int i = 0; h != NULL && i < H_TRANSFERS; i++) {
        struct h_transfer x;
        long code;

        x.from = (int)(tu_rng_next(&c->seed) % H_ACCOUNTS);
        x.to = (int)(tu_rng_next(&c->seed) % (H_ACCOUNTS - 1));
        x.to += x.to >= x.from;
        x.amount = 1 + (int)(tu_rng_next(&c->seed) % 20);
        while ((code = h_attempt(h, c->port, &x)) == 409)
            c->conflicts++;
        if (code == 200)
            c->done[c->n_done++] = x;
        else
            c->errors++;
    }
    curl_easy_cleanup(h);
    return NULL;
}

START_TEST(transfers_over_32_connections_conserve_the_sum_and_apply_once)
{
    static struct h_client cl[H_CLIENTS];
    static long expected[H_ACCOUNTS];
    static char body[H_ACCOUNTS / 10 * 64 + 32];
    long sum = 0;
    int conflicts = 0;

    for (int i = 0; i < H_ACCOUNTS; i += 100) {
        size_t o = (size_t)sprintf(body, "{\"ops\":[");

        for (int a = i; a < i + 100; a++)
            o += (size_t)sprintf(body + o,
                                 "%s{\"op\":\"put\",\"key\":\"acct%d\","
                                 "\"value\":\"%d\"}",
                                 a > i ? "," : "", a, H_BALANCE);
        strcpy(body + o, "]}");
        json_decref(txn_expect(body, 200));
    }
    for (int i = 0; i < H_CLIENTS; i++) {
        memset(&cl[i], 0, sizeof cl[i]);
        cl[i].port = fx.srv.port;
        cl[i].seed = 0xabc000u + (uint64_t)i * 104729u;
        ck_assert_int_eq(
            pthread_create(&cl[i].tid, NULL, h_client_main, &cl[i]), 0);
    }
    for (int i = 0; i < H_CLIENTS; i++)
        ck_assert_int_eq(pthread_join(cl[i].tid, NULL), 0);
    for (int a = 0; a < H_ACCOUNTS; a++)
        expected[a] = H_BALANCE;
    for (int i = 0; i < H_CLIENTS; i++) {
        ck_assert_int_eq(cl[i].errors, 0);
        conflicts += cl[i].conflicts;
        for (int k = 0; k < cl[i].n_done; k++) {
            expected[cl[i].done[k].from] -= cl[i].done[k].amount;
            expected[cl[i].done[k].to] += cl[i].done[k].amount;
        }
    }
    for (int a = 0; a < H_ACCOUNTS; a++) {
        char key[16], v[32];

        snprintf(key, sizeof key, "acct%d", a);
        ck_assert_int_eq(get_kv(key, v, sizeof v, NULL), 200);
        ck_assert_msg(strtol(v, NULL, 10) == expected[a],
                      "account %d: %s, expected %ld", a, v, expected[a]);
        sum += strtol(v, NULL, 10);
    }
    ck_assert_int_eq(sum, (long)H_ACCOUNTS * H_BALANCE);
    printf("http transfers: %d acknowledged, %d conflicts retried\n",
           H_CLIENTS * H_TRANSFERS, conflicts);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("txn_http");
    TCase *tc = tcase_create("if_revision");

    tcase_add_checked_fixture(tc, fixture_start, fixture_stop);
    tcase_add_test(tc, a_to_b_to_a_passes_if_match_but_fails_if_revision);
    tcase_add_test(tc,
                   if_revision_0_creates_a_missing_key_once_and_13_2_1_holds);
    tcase_add_test(tc, malformed_if_revision_is_400_and_writes_nothing);
    suite_add_tcase(s, tc);
    tc = tcase_create("if_revision_modes");
    tcase_add_checked_fixture(tc, fixture_init, fixture_stop);
    tcase_add_test(
        tc, if_revision_counts_as_a_condition_in_require_conditions_mode);
    tcase_add_test(tc, a_body_over_the_limit_is_413_and_nothing_is_applied);
    tcase_add_test(tc, the_values_gets_read_are_bounded_by_max_txn_bytes);
    /* LMDB's map (a store on etcd has none). */
    if (!tu_on_etcd())
        tcase_add_test(tc,
                       a_full_store_is_507_and_no_transaction_is_half_applied);
    tcase_add_test(
        tc, require_conditions_mode_refuses_an_unconditional_write_with_428);
    suite_add_tcase(s, tc);
    tc = tcase_create("txn");
    tcase_add_checked_fixture(tc, fixture_start, fixture_stop);
    tcase_add_test(tc, a_transaction_commits_every_write_under_one_revision);
    tcase_add_test(tc, a_conflict_is_409_with_what_the_client_needs_to_rebase);
    tcase_add_test(
        tc, a_conflict_with_prefer_return_representation_carries_the_values);
    tcase_add_test(
        tc, conflict_values_stay_out_of_replays_of_absent_keys_and_the_log);
    tcase_add_test(tc, an_atomic_rename_moves_a_key_once);
    tcase_add_test(tc, hostile_bodies_are_refused_and_nothing_is_applied);
    tcase_add_test(
        tc, an_idempotency_key_replays_a_transaction_and_refuses_another);
    tcase_add_test(tc, metrics_count_transactions_by_outcome_and_size);
    tcase_add_test(
        tc, transfers_over_32_connections_conserve_the_sum_and_apply_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int rc;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return EXIT_FAILURE;
    rc = tu_run(suite());
    curl_global_cleanup();
    return rc;
}
