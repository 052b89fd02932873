/*
 * test_cond.c -- RFC 9110 §13 precondition evaluation, table-driven.
 *
 * Every row is one request: a method, whether the key exists, the raw
 * header values, and the outcome RFC 9110 §13.2.2 prescribes.  "$E" in a
 * header value stands for the current record's ETag without its quotes, so
 * the table reads like the requests a client would send.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"

/* The record every row is evaluated against: Last-Modified is
 * Sun, 06 Nov 1994 08:49:37 GMT (784111777), plus a fraction of a second
 * that Last-Modified truncates away (DESIGN §1). */
#define LM 784111777
#define D_EQ "Sun, 06 Nov 1994 08:49:37 GMT"
#define D_BEFORE "Sun, 06 Nov 1994 08:49:36 GMT"
#define D_AFTER "Sun, 06 Nov 1994 08:49:38 GMT"
#define D_EQ_850 "Sunday, 06-Nov-94 08:49:37 GMT"
#define D_EQ_ASC "Sun Nov  6 08:49:37 1994"
#define D_BEFORE_850 "Sunday, 06-Nov-94 08:49:36 GMT"
#define D_BEFORE_ASC "Sun Nov  6 08:49:36 1994"
#define D_BAD "yesterday"

enum {
    GET = ETAGKV_METHOD_GET,
    HEAD = ETAGKV_METHOD_HEAD,
    PUT = ETAGKV_METHOD_PUT,
    DEL = ETAGKV_METHOD_DELETE
};
enum { ABSENT = 0, EXISTS = 1 };

struct row {
    int line;
    int method;
    int exists;
    const char *im, *inm, *ims, *ius; /* NULL: header absent */
    etagkv_status want;
};

#define R(...)                                                                 \
    {                                                                          \
        __LINE__, __VA_ARGS__                                                  \
    }
#define OK ETAGKV_OK
#define NF ETAGKV_NOT_FOUND
#define NM ETAGKV_NOT_MODIFIED
#define PF ETAGKV_PRECONDITION_FAILED

static const struct row rows[] = {
    /* No conditions: the plain outcome. */
    R(GET, EXISTS, NULL, NULL, NULL, NULL, OK),
    R(PUT, ABSENT, NULL, NULL, NULL, NULL, OK),
    R(PUT, EXISTS, NULL, NULL, NULL, NULL, OK),
    R(DEL, EXISTS, NULL, NULL, NULL, NULL, OK),

    /* §13.2.1: GET/HEAD/DELETE of a missing key is 404 whatever the
     * conditions, because the unconditional request would not succeed. */
    R(GET, ABSENT, NULL, NULL, NULL, NULL, NF),
    R(GET, ABSENT, "*", NULL, NULL, NULL, NF),
    R(GET, ABSENT, "\"$E\"", NULL, NULL, NULL, NF),
    R(GET, ABSENT, NULL, "*", NULL, NULL, NF),
    R(GET, ABSENT, NULL, NULL, D_AFTER, D_BEFORE, NF),
    R(HEAD, ABSENT, "\"x\"", NULL, NULL, NULL, NF),
    R(DEL, ABSENT, NULL, NULL, NULL, NULL, NF),
    R(DEL, ABSENT, "*", NULL, NULL, NULL, NF),
    R(DEL, ABSENT, "\"$E\"", NULL, NULL, NULL, NF),
    R(DEL, ABSENT, NULL, "*", NULL, NULL, NF),

    /* §13.1.1 If-Match: strong comparison; W/ never matches; "*" is
     * true iff the key exists. */
    R(GET, EXISTS, "\"$E\"", NULL, NULL, NULL, OK),
    R(GET, EXISTS, "W/\"$E\"", NULL, NULL, NULL, PF),
    R(GET, EXISTS, "\"other\"", NULL, NULL, NULL, PF),
    R(GET, EXISTS, "\"other\", \"$E\"", NULL, NULL, NULL, OK),
    R(GET, EXISTS, "*", NULL, NULL, NULL, OK),
    R(HEAD, EXISTS, "W/\"$E\"", NULL, NULL, NULL, PF),
    R(PUT, EXISTS, "\"$E\"", NULL, NULL, NULL, OK),
    R(PUT, EXISTS, "W/\"$E\"", NULL, NULL, NULL, PF),
    R(PUT, EXISTS, "\"other\"", NULL, NULL, NULL, PF),
    R(PUT, EXISTS, "*", NULL, NULL, NULL, OK),
    R(PUT, ABSENT, "*", NULL, NULL, NULL, PF),      /* update-only */
    R(PUT, ABSENT, "\"$E\"", NULL, NULL, NULL, PF), /* creates nothing */
    R(DEL, EXISTS, "\"$E\"", NULL, NULL, NULL, OK),
    R(DEL, EXISTS, "\"other\"", NULL, NULL, NULL, PF),
    R(DEL, EXISTS, "W/\"$E\"", NULL, NULL, NULL, PF),
    /* An ETag differing in case is a different opaque-tag (§8.8.3). */
    R(PUT, EXISTS, "\"$U\"", NULL, NULL, NULL, PF),

    /* §13.1.2 If-None-Match: weak comparison; "*" is false iff the key
     * exists; false is 304 for GET/HEAD, 412 for other methods. */
    R(GET, EXISTS, NULL, "\"$E\"", NULL, NULL, NM),
    R(GET, EXISTS, NULL, "W/\"$E\"", NULL, NULL, NM),
    R(GET, EXISTS, NULL, "\"other\"", NULL, NULL, OK),
    R(GET, EXISTS, NULL, "\"a\", W/\"$E\"", NULL, NULL, NM),
    R(GET, EXISTS, NULL, "*", NULL, NULL, NM),
    R(HEAD, EXISTS, NULL, "\"$E\"", NULL, NULL, NM),
    R(HEAD, EXISTS, NULL, "*", NULL, NULL, NM),
    R(PUT, EXISTS, NULL, "\"$E\"", NULL, NULL, PF),
    R(PUT, EXISTS, NULL, "W/\"$E\"", NULL, NULL, PF),
    R(PUT, EXISTS, NULL, "*", NULL, NULL, PF), /* create-only */
    R(PUT, ABSENT, NULL, "*", NULL, NULL, OK),
    R(PUT, ABSENT, NULL, "\"$E\"", NULL, NULL, OK),
    R(PUT, EXISTS, NULL, "\"other\"", NULL, NULL, OK),
    R(DEL, EXISTS, NULL, "\"$E\"", NULL, NULL, PF),
    R(DEL, EXISTS, NULL, "*", NULL, NULL, PF),
    R(DEL, EXISTS, NULL, "\"other\"", NULL, NULL, OK),

    /* §13.1.4 If-Unmodified-Since: true iff Last-Modified <= date; the
     * equal second is true; ignored for a missing key and when invalid. */
    R(GET, EXISTS, NULL, NULL, NULL, D_BEFORE, PF),
    R(GET, EXISTS, NULL, NULL, NULL, D_EQ, OK),
    R(GET, EXISTS, NULL, NULL, NULL, D_AFTER, OK),
    R(PUT, EXISTS, NULL, NULL, NULL, D_BEFORE, PF),
    R(PUT, EXISTS, NULL, NULL, NULL, D_EQ, OK),
    R(PUT, EXISTS, NULL, NULL, NULL, D_EQ_850, OK),
    R(PUT, EXISTS, NULL, NULL, NULL, D_EQ_ASC, OK),
    R(PUT, EXISTS, NULL, NULL, NULL, D_BEFORE_850, PF),
    R(PUT, EXISTS, NULL, NULL, NULL, D_BEFORE_ASC, PF),
    R(PUT, EXISTS, NULL, NULL, NULL, D_BAD, OK),
    R(PUT, ABSENT, NULL, NULL, NULL, D_BEFORE, OK),
    R(DEL, EXISTS, NULL, NULL, NULL, D_BEFORE, PF),
    R(DEL, EXISTS, NULL, NULL, NULL, D_AFTER, OK),

    /* §13.2.2 step 2 runs only when If-Match is absent. */
    R(PUT, EXISTS, "\"$E\"", NULL, NULL, D_BEFORE, OK),
    R(GET, EXISTS, "*", NULL, NULL, D_BEFORE, OK),
    R(PUT, EXISTS, "\"other\"", NULL, NULL, D_AFTER, PF),

    /* §13.1.3 If-Modified-Since: GET/HEAD only; false iff Last-Modified
     * <= date (304); the equal second is "not modified". */
    R(GET, EXISTS, NULL, NULL, D_EQ, NULL, NM),
    R(GET, EXISTS, NULL, NULL, D_AFTER, NULL, NM),
    R(GET, EXISTS, NULL, NULL, D_BEFORE, NULL, OK),
    R(GET, EXISTS, NULL, NULL, D_EQ_850, NULL, NM),
    R(GET, EXISTS, NULL, NULL, D_EQ_ASC, NULL, NM),
    R(GET, EXISTS, NULL, NULL, D_BEFORE_ASC, NULL, OK),
    R(GET, EXISTS, NULL, NULL, D_BAD, NULL, OK),
    R(HEAD, EXISTS, NULL, NULL, D_EQ, NULL, NM),
    R(PUT, EXISTS, NULL, NULL, D_AFTER, NULL, OK),
    R(DEL, EXISTS, NULL, NULL, D_AFTER, NULL, OK),

    /* §13.2.2 step 4 runs only when If-None-Match is absent. */
    R(GET, EXISTS, NULL, "\"other\"", D_AFTER, NULL, OK),
    R(GET, EXISTS, NULL, "\"$E\"", D_BEFORE, NULL, NM),

    /* Order: step 1 before step 3, step 2 before step 3. */
    R(GET, EXISTS, "\"$E\"", "\"$E\"", NULL, NULL, NM),
    R(PUT, EXISTS, "\"$E\"", "\"$E\"", NULL, NULL, PF),
    R(GET, EXISTS, "\"other\"", "\"$E\"", NULL, NULL, PF),
    R(GET, EXISTS, NULL, "\"$E\"", NULL, D_BEFORE, PF),
    R(PUT, EXISTS, "*", "\"other\"", D_AFTER, D_BEFORE, OK),
};

/* Replace "$E" by the ETag's opaque hex and "$U" by it in upper case. */
static char *expand(const char *tmpl, const char *etag)
{
    char hex[33], upper[33];
    size_t cap = strlen(tmpl) * 40 + 1, o = 0;
    char *out = malloc(cap);

    ck_assert_ptr_nonnull(out);
    memcpy(hex, etag + 1, 32);
    hex[32] = '\0';
    for (int i = 0; i < 33; i++)
        upper[i] =
            (char)(hex[i] >= 'a' && hex[i] <= 'f' ? hex[i] - 32 : hex[i]);
    for (const char *p = tmpl; *p; p++) {
        if (p[0] == '$' && (p[1] == 'E' || p[1] == 'U')) {
            memcpy(out + o, p[1] == 'E' ? hex : upper, 32);
            o += 32;
            p++;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    return out;
}

static void current_record(etagkv_meta *m)
{
    memset(m, 0, sizeof(*m));
    m->exists = 1;
    etagkv_etag_compute("v1", 2, m->etag);
    m->modified_ns = (uint64_t)LM * 1000000000u + 999999999u;
    m->created_ns = m->modified_ns;
    m->version = 1;
}

START_TEST(every_rfc9110_precondition_row_gives_the_prescribed_outcome)
{
    const struct row *r = &rows[_i];
    const char *tmpl[4] = {r->im, r->inm, r->ims, r->ius};
    char *val[4] = {NULL, NULL, NULL, NULL};
    etagkv_meta cur;
    etagkv_cond *c;
    etagkv_status st;

    current_record(&cur);
    for (int h = 0; h < 4; h++)
        if (tmpl[h] != NULL)
            val[h] = expand(tmpl[h], cur.etag);
    ck_assert_int_eq(etagkv_cond_parse(val[0], val[1], val[2], val[3], &c),
                     ETAGKV_OK);
    st = etagkv_cond_evaluate(c, (etagkv_method)r->method,
                              r->exists ? &cur : NULL);
    ck_assert_msg(st == r->want, "row at line %d: got %s, want %s", r->line,
                  etagkv_status_name(st), etagkv_status_name(r->want));
    /* An absent key may also be passed as a meta with exists == 0. */
    if (!r->exists) {
        etagkv_meta none;

        memset(&none, 0, sizeof(none));
        ck_assert_int_eq(
            etagkv_cond_evaluate(c, (etagkv_method)r->method, &none), r->want);
    }
    etagkv_cond_free(c);
    for (int h = 0; h < 4; h++)
        free(val[h]);
}
END_TEST

/* Header values that must be refused with 400 (RFC 9110 §8.8.3, §13.1.1):
 * a syntactically invalid list is never silently "true". */
static const char *const bad_lists[] = {
    "",            /* no element */
    " ",           /* no element */
    ",,",          /* no element */
    "abc",         /* unquoted */
    "\"abc",       /* unterminated */
    "W/",          /* no opaque-tag */
    "w/\"a\"",     /* W/ is case-sensitive */
    "\"a\" \"b\"", /* missing comma */
    "*, \"a\"",    /* "*" only alone */
    "\"a\", *",    /* "*" only alone */
    "**",          /* not "*" */
    "\"a\"b",      /* junk after a tag */
    "\"a b\"",     /* SP is not etagc */
};

START_TEST(invalid_entity_tag_lists_are_invalid_header_for_both_headers)
{
    etagkv_cond *c = NULL;
    const char *v = bad_lists[_i];

    ck_assert_int_eq(etagkv_cond_new(&c), ETAGKV_OK);
    ck_assert_int_eq(etagkv_cond_add(c, ETAGKV_IF_MATCH, v, strlen(v)),
                     ETAGKV_INVALID_HEADER);
    ck_assert_int_eq(etagkv_cond_add(c, ETAGKV_IF_NONE_MATCH, v, strlen(v)),
                     ETAGKV_INVALID_HEADER);
    /* The failed adds left the set unconditional. */
    ck_assert_int_eq(etagkv_cond_is_conditional(c), 0);
    etagkv_cond_free(c);
    ck_assert_int_eq(etagkv_cond_parse(v, NULL, NULL, NULL, &c),
                     ETAGKV_INVALID_HEADER);
    ck_assert_ptr_null(c);
}
END_TEST

START_TEST(several_if_match_lines_form_one_list)
{
    etagkv_meta cur;
    etagkv_cond *c;
    char *mine;

    current_record(&cur);
    mine = expand("\"$E\"", cur.etag);
    ck_assert_int_eq(etagkv_cond_new(&c), ETAGKV_OK);
    ck_assert_int_eq(etagkv_cond_add(c, ETAGKV_IF_MATCH, "\"a\"", 3), OK);
    ck_assert_int_eq(etagkv_cond_evaluate(c, ETAGKV_METHOD_PUT, &cur), PF);
    ck_assert_int_eq(etagkv_cond_add(c, ETAGKV_IF_MATCH, mine, strlen(mine)),
                     OK);
    ck_assert_int_eq(etagkv_cond_evaluate(c, ETAGKV_METHOD_PUT, &cur), OK);
    etagkv_cond_free(c);
    free(mine);
}
END_TEST

START_TEST(star_on_a_second_line_is_invalid)
{
    etagkv_cond *c;

    ck_assert_int_eq(etagkv_cond_new(&c), ETAGKV_OK);
    ck_assert_int_eq(etagkv_cond_add(c, ETAGKV_IF_NONE_MATCH, "*", 1), OK);
    ck_assert_int_eq(etagkv_cond_add(c, ETAGKV_IF_NONE_MATCH, "*", 1),
                     ETAGKV_INVALID_HEADER);
    ck_assert_int_eq(etagkv_cond_add(c, ETAGKV_IF_NONE_MATCH, "\"a\"", 3),
                     ETAGKV_INVALID_HEADER);
    etagkv_cond_free(c);
}
END_TEST

START_TEST(a_repeated_date_header_is_ignored)
{
    etagkv_meta cur;
    etagkv_cond *c;

    /* RFC 9110 §13.1.3: more than one member makes If-Modified-Since
     * invalid, and an invalid one is ignored. */
    current_record(&cur);
    ck_assert_int_eq(etagkv_cond_new(&c), ETAGKV_OK);
    ck_assert_int_eq(
        etagkv_cond_add(c, ETAGKV_IF_MODIFIED_SINCE, D_AFTER, strlen(D_AFTER)),
        OK);
    ck_assert_int_eq(etagkv_cond_evaluate(c, ETAGKV_METHOD_GET, &cur), NM);
    ck_assert_int_eq(
        etagkv_cond_add(c, ETAGKV_IF_MODIFIED_SINCE, D_AFTER, strlen(D_AFTER)),
        OK);
    ck_assert_int_eq(etagkv_cond_evaluate(c, ETAGKV_METHOD_GET, &cur), OK);
    etagkv_cond_free(c);
}
END_TEST

START_TEST(is_conditional_counts_only_headers_that_apply_to_writes)
{
    struct {
        const char *im, *inm, *ims, *ius;
        int want;
    } t[] = {
        {NULL, NULL, NULL, NULL, 0},
        {"*", NULL, NULL, NULL, 1},
        {NULL, "*", NULL, NULL, 1},
        {NULL, NULL, D_EQ, NULL, 0}, /* If-Modified-Since: reads only */
        {NULL, NULL, NULL, D_EQ, 1},
        {NULL, NULL, NULL, D_BAD, 0}, /* ignored, so unconditional */
        /* Later than now: holds for every record, conditions nothing. */
        {NULL, NULL, NULL, "Fri, 31 Dec 9999 23:59:59 GMT", 0},
        {"*", NULL, NULL, "Fri, 31 Dec 9999 23:59:59 GMT", 1},
    };

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        etagkv_cond *c;

        ck_assert_int_eq(
            etagkv_cond_parse(t[i].im, t[i].inm, t[i].ims, t[i].ius, &c), OK);
        ck_assert_int_eq(etagkv_cond_is_conditional(c), t[i].want);
        etagkv_cond_free(c);
    }
    ck_assert_int_eq(etagkv_cond_is_conditional(NULL), 0);
}
END_TEST

/* ETagKV-If-Revision (DESIGN §2) against a record at mod_revision 7: one
 * row per request, with an optional If-Match beside it. */
static const struct rev_row {
    int line;
    int method;
    int exists;
    const char *rev; /* the raw header value */
    const char *im;  /* If-Match, or NULL */
    etagkv_status want;
} rev_rows[] = {
    /* True iff mod_revision is N. */
    R(PUT, EXISTS, "7", NULL, OK),
    R(PUT, EXISTS, "6", NULL, PF),
    R(GET, EXISTS, "7", NULL, OK),
    R(GET, EXISTS, "8", NULL, PF), /* 412 for reads too, as If-Match */
    R(HEAD, EXISTS, "8", NULL, PF),
    R(DEL, EXISTS, "7", NULL, OK),
    R(DEL, EXISTS, "70", NULL, PF),
    /* 0 means "absent". */
    R(PUT, ABSENT, "0", NULL, OK),
    R(PUT, EXISTS, "0", NULL, PF),
    R(PUT, ABSENT, "7", NULL, PF),
    /* RFC 9110 §13.2.1: GET/HEAD/DELETE of nothing is 404 whatever it says. */
    R(GET, ABSENT, "0", NULL, NF),
    R(GET, ABSENT, "7", NULL, NF),
    R(DEL, ABSENT, "0", NULL, NF),
    R(DEL, ABSENT, "3", NULL, NF),
    /* Whitespace around the number is not part of the field value. */
    R(PUT, EXISTS, " 7\t", NULL, OK),
    R(PUT, EXISTS, "007", NULL, OK),
    /* Evaluated first: a true If-Match does not rescue a false revision,
     * and a false If-Match still fails after a true revision. */
    R(PUT, EXISTS, "6", "\"$E\"", PF),
    R(PUT, EXISTS, "7", "\"$E\"", OK),
    R(PUT, EXISTS, "7", "\"other\"", PF),
    R(GET, EXISTS, "6", "*", PF),
};

START_TEST(every_if_revision_row_gives_the_prescribed_outcome)
{
    const struct rev_row *r = &rev_rows[_i];
    etagkv_meta cur;
    etagkv_cond *c;
    char *im = NULL;

    current_record(&cur);
    cur.mod_revision = 7;
    if (!r->exists)
        memset(&cur, 0, sizeof(cur));
    ck_assert_int_eq(etagkv_cond_new(&c), OK);
    ck_assert_int_eq(
        etagkv_cond_add(c, ETAGKV_IF_REVISION, r->rev, strlen(r->rev)), OK);
    if (r->im != NULL) {
        etagkv_meta v1;

        current_record(&v1);
        im = expand(r->im, v1.etag);
        ck_assert_int_eq(etagkv_cond_add(c, ETAGKV_IF_MATCH, im, strlen(im)),
                         OK);
    }
    ck_assert_msg(etagkv_cond_evaluate(c, (etagkv_method)r->method, &cur) ==
                      r->want,
                  "row at line %d", r->line);
    free(im);
    etagkv_cond_free(c);
}
END_TEST

/* Malformed revisions are 400, never an ignored header: ignoring one would
 * make a conditional write unconditional. */
static const char *const bad_revisions[] = {
    "",
    " ",
    "-1",
    "+1",
    "1.0",
    "0x10",
    "1 2",
    "abc",
    "7,8",
    "1e3",
    "\"7\"",
    "18446744073709551616",
    "99999999999999999999",
};

START_TEST(malformed_if_revision_values_are_invalid_header)
{
    const char *v = bad_revisions[_i];
    etagkv_cond *c;

    ck_assert_int_eq(etagkv_cond_new(&c), OK);
    ck_assert_msg(etagkv_cond_add(c, ETAGKV_IF_REVISION, v, strlen(v)) ==
                      ETAGKV_INVALID_HEADER,
                  "value \"%s\"", v);
    /* On failure c is unchanged: still unconditional. */
    ck_assert_int_eq(etagkv_cond_is_conditional(c), 0);
    etagkv_cond_free(c);
}
END_TEST

START_TEST(if_revision_lines_must_agree_and_the_largest_value_parses)
{
    etagkv_meta cur;
    etagkv_cond *c;

    current_record(&cur);
    cur.mod_revision = UINT64_MAX;
    ck_assert_int_eq(etagkv_cond_new(&c), OK);
    ck_assert_int_eq(
        etagkv_cond_add(c, ETAGKV_IF_REVISION, "18446744073709551615", 20), OK);
    ck_assert_int_eq(etagkv_cond_evaluate(c, ETAGKV_METHOD_PUT, &cur), OK);
    /* The same revision again is one condition; another is a contradiction. */
    ck_assert_int_eq(
        etagkv_cond_add(c, ETAGKV_IF_REVISION, " 18446744073709551615", 21),
        OK);
    ck_assert_int_eq(etagkv_cond_add(c, ETAGKV_IF_REVISION, "5", 1),
                     ETAGKV_INVALID_HEADER);
    ck_assert_int_eq(etagkv_cond_evaluate(c, ETAGKV_METHOD_PUT, &cur), OK);
    ck_assert_int_eq(etagkv_cond_is_conditional(c), 1);
    /* The setter replaces; NULL is refused. */
    ck_assert_int_eq(etagkv_cond_set_if_revision(c, 5), OK);
    ck_assert_int_eq(etagkv_cond_evaluate(c, ETAGKV_METHOD_PUT, &cur), PF);
    ck_assert_int_eq(etagkv_cond_set_if_revision(NULL, 5),
                     ETAGKV_INVALID_ARGUMENT);
    etagkv_cond_free(c);
}
END_TEST

START_TEST(bad_arguments_are_refused_without_crashing)
{
    etagkv_cond *c;
    etagkv_meta cur;

    current_record(&cur);
    ck_assert_int_eq(etagkv_cond_new(NULL), ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_cond_new(&c), OK);
    ck_assert_int_eq(etagkv_cond_add(NULL, ETAGKV_IF_MATCH, "*", 1),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_cond_add(c, ETAGKV_IF_MATCH, NULL, 3),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_cond_add(c, (etagkv_header)42, "*", 1),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_cond_evaluate(c, (etagkv_method)9, &cur),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_cond_parse(NULL, NULL, NULL, NULL, NULL),
                     ETAGKV_INVALID_ARGUMENT);
    /* A NULL condition set is "no conditions". */
    ck_assert_int_eq(etagkv_cond_evaluate(NULL, ETAGKV_METHOD_PUT, &cur), OK);
    ck_assert_int_eq(etagkv_cond_evaluate(NULL, ETAGKV_METHOD_GET, NULL), NF);
    etagkv_cond_free(c);
    etagkv_cond_free(NULL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cond");
    TCase *tc = tcase_create("rfc9110");

    tcase_add_loop_test(
        tc, every_rfc9110_precondition_row_gives_the_prescribed_outcome, 0,
        (int)(sizeof(rows) / sizeof(rows[0])));
    tcase_add_loop_test(
        tc, invalid_entity_tag_lists_are_invalid_header_for_both_headers, 0,
        (int)(sizeof(bad_lists) / sizeof(bad_lists[0])));
    tcase_add_test(tc, several_if_match_lines_form_one_list);
    tcase_add_test(tc, star_on_a_second_line_is_invalid);
    tcase_add_test(tc, a_repeated_date_header_is_ignored);
    tcase_add_test(tc, is_conditional_counts_only_headers_that_apply_to_writes);
    tcase_add_test(tc, bad_arguments_are_refused_without_crashing);
    suite_add_tcase(s, tc);
    tc = tcase_create("if_revision");
    tcase_add_loop_test(tc, every_if_revision_row_gives_the_prescribed_outcome,
                        0, (int)(sizeof(rev_rows) / sizeof(rev_rows[0])));
    tcase_add_loop_test(
        tc, malformed_if_revision_values_are_invalid_header, 0,
        (int)(sizeof(bad_revisions) / sizeof(bad_revisions[0])));
    tcase_add_test(tc,
                   if_revision_lines_must_agree_and_the_largest_value_parses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
