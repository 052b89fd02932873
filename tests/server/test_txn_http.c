/*
 * test_txn_http.c -- ETagKV-If-Revision on /kv/{key} (DESIGN §2) over real
 * HTTP, against the real etagkv-server, with libcurl.
 *
 * The evaluation rules are proven row by row in test_cond; here each is
 * shown once over the wire: the A->B->A sequence that fools If-Match but
 * not the revision, 0 for "absent", the §13.2.1 rule, malformed values
 * (400, nothing written) and require-conditions mode.
 */
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
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
