/*
 * test_diagnose.c -- diagnosing a failed conditional write: the step of
 * RFC 9110 §13.2.2 that decided (etagkv_cond_explain(), etagkv_result.step,
 * etagkv_txn_op_result.step) and when the sent validator was superseded
 * (etagkv_cond_superseded(), from the change log of DESIGN §8).  A fresh
 * store per test, on a real LMDB environment, with a fake clock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>

#include "testutil.h"

static char *dir;
static etagkv_store *store;
/* Read by the library's threads too (the committer, the lease sweeper). */
static _Atomic uint64_t fake_now;

static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

static void open_with(uint64_t max_events)
{
    etagkv_options o;

    etagkv_options_init(&o);
    o.sync_mode = ETAGKV_NOSYNC;
    o.clock = fake_clock;
    o.changes_max_events = max_events;
    store = tu_open(dir, &o);
}

static void setup(void)
{
    fake_now = 1700000000ull * 1000000000ull;
    dir = tu_mkdtemp();
    open_with(0);
}

static void teardown(void)
{
    etagkv_store_close(store);
    store = NULL;
    tu_rmdir_free(dir);
    dir = NULL;
}

/* Put v under k unconditionally, one second after the last write. */
static etagkv_meta put(const char *k, const char *v)
{
    etagkv_meta m;

    fake_now += 1000000000ull;
    ck_assert_int_le(
        etagkv_put(store, k, strlen(k), v, strlen(v), NULL, NULL, &m),
        ETAGKV_CREATED);
    return m;
}

static etagkv_cond *cond_of(etagkv_header h, const char *value)
{
    etagkv_cond *c;

    ck_assert_int_eq(etagkv_cond_new(&c), ETAGKV_OK);
    ck_assert_int_eq(etagkv_cond_add(c, h, value, strlen(value)), ETAGKV_OK);
    return c;
}

/* A conditional PUT of k through etagkv_write(); returns the result. */
static etagkv_result write_if(const char *k, const etagkv_cond *c)
{
    etagkv_request rq = {.method = ETAGKV_METHOD_PUT,
                         .key = k,
                         .key_len = strlen(k),
                         .value = "x",
                         .value_len = 1,
                         .cond = c};
    etagkv_result res;

    fake_now += 1000000000ull;
    (void)etagkv_write(store, &rq, &res);
    return res;
}

/* ---- the deciding step ----------------------------------------------------
 */

static const etagkv_meta current = {
    .exists = 1,
    .etag = "\"0123456789abcdef0123456789abcdef\"",
    .modified_ns = 1700000000ull * 1000000000ull,
    .mod_revision = 7,
};

static const struct step_row {
    int line;
    etagkv_method method;
    int absent; /* evaluate against an absent key */
    const char *if_match, *if_none_match, *if_modified_since,
        *if_unmodified_since, *if_revision;
    etagkv_status want;
    etagkv_cond_step step;
} step_rows[] = {
    /* DESIGN §2: ETagKV-If-Revision is evaluated first. */
    {__LINE__, ETAGKV_METHOD_PUT, 0, "\"x\"", NULL, NULL, NULL, "6",
     ETAGKV_PRECONDITION_FAILED, ETAGKV_STEP_IF_REVISION},
    {__LINE__, ETAGKV_METHOD_PUT, 1, NULL, NULL, NULL, NULL, "7",
     ETAGKV_PRECONDITION_FAILED, ETAGKV_STEP_IF_REVISION},
    /* RFC 9110 §13.2.2 step 1: If-Match false. */
    {__LINE__, ETAGKV_METHOD_PUT, 0, "\"x\"", NULL, NULL, NULL, "7",
     ETAGKV_PRECONDITION_FAILED, ETAGKV_STEP_IF_MATCH},
    {__LINE__, ETAGKV_METHOD_DELETE, 0, "\"x\"", NULL, NULL, NULL, NULL,
     ETAGKV_PRECONDITION_FAILED, ETAGKV_STEP_IF_MATCH},
    {__LINE__, ETAGKV_METHOD_PUT, 1, "*", NULL, NULL, NULL, NULL,
     ETAGKV_PRECONDITION_FAILED, ETAGKV_STEP_IF_MATCH},
    /* Step 2: If-Unmodified-Since false (only without If-Match). */
    {__LINE__, ETAGKV_METHOD_PUT, 0, NULL, NULL, NULL,
     "Sun, 06 Nov 1994 08:49:37 GMT", NULL, ETAGKV_PRECONDITION_FAILED,
     ETAGKV_STEP_IF_UNMODIFIED_SINCE},
    {__LINE__, ETAGKV_METHOD_PUT, 0, "*", NULL, NULL,
     "Sun, 06 Nov 1994 08:49:37 GMT", NULL, ETAGKV_OK, ETAGKV_STEP_NONE},
    /* Step 3: If-None-Match false: 412 for writes, 304 for reads. */
    {__LINE__, ETAGKV_METHOD_PUT, 0, NULL, "*", NULL, NULL, NULL,
     ETAGKV_PRECONDITION_FAILED, ETAGKV_STEP_IF_NONE_MATCH},
    {__LINE__, ETAGKV_METHOD_GET, 0, NULL,
     "\"0123456789abcdef0123456789abcdef\"", NULL, NULL, NULL,
     ETAGKV_NOT_MODIFIED, ETAGKV_STEP_IF_NONE_MATCH},
    /* Step 4: If-Modified-Since false (reads only). */
    {__LINE__, ETAGKV_METHOD_HEAD, 0, NULL, NULL,
     "Sun, 06 Nov 2050 08:49:37 GMT", NULL, NULL, ETAGKV_NOT_MODIFIED,
     ETAGKV_STEP_IF_MODIFIED_SINCE},
    /* Step 0 (§13.2.1) and success: no step decided. */
    {__LINE__, ETAGKV_METHOD_DELETE, 1, "\"x\"", NULL, NULL, NULL, NULL,
     ETAGKV_NOT_FOUND, ETAGKV_STEP_NONE},
    {__LINE__, ETAGKV_METHOD_PUT, 1, NULL, "*", NULL, NULL, "0", ETAGKV_OK,
     ETAGKV_STEP_NONE},
};

START_TEST(explain_names_the_step_that_decided_and_agrees_with_evaluate)
{
    const struct step_row *row = &step_rows[_i];
    const char *v[5] = {row->if_match, row->if_none_match,
                        row->if_modified_since, row->if_unmodified_since,
                        row->if_revision};
    const etagkv_meta *cur = row->absent ? NULL : &current;
    etagkv_cond *c;
    etagkv_cond_step step = (etagkv_cond_step)99;

    ck_assert_int_eq(etagkv_cond_new(&c), ETAGKV_OK);
    for (int h = 0; h < 5; h++)
        if (v[h] != NULL)
            ck_assert_int_eq(
                etagkv_cond_add(c, (etagkv_header)h, v[h], strlen(v[h])),
                ETAGKV_OK);
    ck_assert_msg(etagkv_cond_explain(c, row->method, cur, &step) == row->want,
                  "row at line %d", row->line);
    ck_assert_msg(step == row->step, "row at line %d: step %s", row->line,
                  etagkv_cond_step_name(step));
    ck_assert_int_eq(etagkv_cond_evaluate(c, row->method, cur), row->want);
    ck_assert_int_eq(etagkv_cond_explain(c, row->method, cur, NULL), row->want);
    etagkv_cond_free(c);
}
END_TEST

START_TEST(step_names_are_the_header_names)
{
    ck_assert_str_eq(etagkv_cond_step_name(ETAGKV_STEP_NONE), "none");
    ck_assert_str_eq(etagkv_cond_step_name(ETAGKV_STEP_IF_REVISION),
                     "ETagKV-If-Revision");
    ck_assert_str_eq(etagkv_cond_step_name(ETAGKV_STEP_IF_MATCH), "If-Match");
    ck_assert_str_eq(etagkv_cond_step_name(ETAGKV_STEP_IF_UNMODIFIED_SINCE),
                     "If-Unmodified-Since");
    ck_assert_str_eq(etagkv_cond_step_name(ETAGKV_STEP_IF_NONE_MATCH),
                     "If-None-Match");
    ck_assert_str_eq(etagkv_cond_step_name(ETAGKV_STEP_IF_MODIFIED_SINCE),
                     "If-Modified-Since");
    ck_assert_str_eq(etagkv_cond_step_name((etagkv_cond_step)42), "unknown");
}
END_TEST

START_TEST(a_failed_write_reports_its_step_and_a_replay_reports_it_again)
{
    etagkv_meta m = put("k", "1");
    etagkv_cond *c = cond_of(ETAGKV_IF_NONE_MATCH, "*");
    etagkv_request rq = {.method = ETAGKV_METHOD_PUT,
                         .key = "k",
                         .key_len = 1,
                         .value = "2",
                         .value_len = 1,
                         .cond = c,
                         .idempotency_key = "idem-1",
                         .idempotency_key_len = 6};
    etagkv_result res;

    ck_assert_int_eq(etagkv_write(store, &rq, &res),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_int_eq(res.step, ETAGKV_STEP_IF_NONE_MATCH);
    ck_assert_str_eq(res.meta.etag, m.etag);
    put("k", "3"); /* the replay still says what the first execution saw */
    ck_assert_int_eq(etagkv_write(store, &rq, &res),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_int_eq(res.replayed, 1);
    ck_assert_int_eq(res.step, ETAGKV_STEP_IF_NONE_MATCH);
    etagkv_cond_free(c);
    /* A success decides no step. */
    res = write_if("other", NULL);
    ck_assert_int_eq(res.status, ETAGKV_CREATED);
    ck_assert_int_eq(res.step, ETAGKV_STEP_NONE);
}
END_TEST

struct done {
    etagkv_result res;
    int called;
};

static void on_done(void *ctx, const etagkv_result *res)
{
    struct done *d = ctx;

    d->res = *res;
    d->called = 1;
}

START_TEST(a_submitted_write_reports_its_step_to_the_callback)
{
    etagkv_cond *c;
    struct done d = {0};
    etagkv_request rq = {
        .method = ETAGKV_METHOD_DELETE, .key = "k", .key_len = 1};

    put("k", "1");
    ck_assert_int_eq(etagkv_cond_new(&c), ETAGKV_OK);
    ck_assert_int_eq(etagkv_cond_set_if_revision(c, 99), ETAGKV_OK);
    rq.cond = c;
    ck_assert_int_eq(etagkv_submit(store, &rq, on_done, &d), ETAGKV_OK);
    etagkv_store_close(store); /* waits for every submitted write */
    store = NULL;
    ck_assert_int_eq(d.called, 1);
    ck_assert_int_eq(d.res.status, ETAGKV_PRECONDITION_FAILED);
    ck_assert_int_eq(d.res.step, ETAGKV_STEP_IF_REVISION);
    etagkv_cond_free(c);
    open_with(0);
}
END_TEST

START_TEST(a_conflicting_transaction_reports_the_step_over_the_state_it_saw)
{
    etagkv_txn *t;
    etagkv_cond *create_only;
    etagkv_txn_outcome o;
    const etagkv_txn_op_result *r;

    ck_assert_int_eq(etagkv_cond_create_only(&create_only), ETAGKV_OK);
    ck_assert_int_eq(etagkv_txn_new(&t), ETAGKV_OK);
    /* The second op sees the first op's put (absent in the store). */
    ck_assert_int_eq(etagkv_txn_put(t, "a", 1, "1", 1, NULL, NULL), ETAGKV_OK);
    ck_assert_int_eq(etagkv_txn_put(t, "a", 1, "2", 1, NULL, create_only),
                     ETAGKV_OK);
    ck_assert_int_eq(etagkv_txn_put(t, "b", 1, "1", 1, NULL, NULL), ETAGKV_OK);
    ck_assert_int_eq(etagkv_txn_commit(store, t), ETAGKV_CONFLICT);
    etagkv_txn_report(t, &o);
    ck_assert_uint_eq(o.failed, 1);
    r = etagkv_txn_op(t, 0);
    ck_assert_int_eq(r->step, ETAGKV_STEP_NONE);
    r = etagkv_txn_op(t, 1);
    ck_assert_int_eq(r->status, ETAGKV_PRECONDITION_FAILED);
    ck_assert_int_eq(r->step, ETAGKV_STEP_IF_NONE_MATCH);
    ck_assert_int_eq(r->meta.exists, 0); /* the store's state: still absent */
    ck_assert_int_eq(etagkv_txn_op(t, 2)->step, ETAGKV_STEP_NONE);
    /* Recorded with an idempotency key, and replayed with its step. */
    ck_assert_int_eq(etagkv_txn_set_idempotency_key(t, "t1", 2), ETAGKV_OK);
    ck_assert_int_eq(etagkv_txn_commit(store, t), ETAGKV_CONFLICT);
    ck_assert_int_eq(etagkv_txn_commit(store, t), ETAGKV_CONFLICT);
    etagkv_txn_report(t, &o);
    ck_assert_int_eq(o.replayed, 1);
    ck_assert_int_eq(etagkv_txn_op(t, 1)->step, ETAGKV_STEP_IF_NONE_MATCH);
    etagkv_txn_free(t);
    etagkv_cond_free(create_only);
}
END_TEST

/* ---- superseded ------------------------------------------------------------
 */

START_TEST(an_if_match_is_superseded_by_the_write_that_replaced_the_etag)
{
    etagkv_meta a = put("k", "a");
    etagkv_meta b = put("k", "b");
    etagkv_cond *c = cond_of(ETAGKV_IF_MATCH, a.etag);
    etagkv_result res;
    etagkv_supersession sup;

    put("other", "x");
    res = write_if("k", c);
    ck_assert_int_eq(res.status, ETAGKV_PRECONDITION_FAILED);
    ck_assert_int_eq(res.step, ETAGKV_STEP_IF_MATCH);
    ck_assert_int_eq(etagkv_cond_superseded(store, "k", 1, c, ETAGKV_STEP_NONE,
                                            ETAGKV_METHOD_PUT,
                                            res.meta.mod_revision, &sup),
                     ETAGKV_OK);
    ck_assert_uint_eq(sup.revision, b.mod_revision);
    ck_assert_uint_eq(sup.modified_ns, b.modified_ns);
    ck_assert_uint_eq(sup.held_revision, a.mod_revision);
    ck_assert_uint_eq(sup.min_after, 0);
    etagkv_cond_free(c);
}
END_TEST

/* A->B->A->C: the ETag A was current twice; the later supersession is the
 * one that matters, and writes after the refusal (upto) are not its cause. */
START_TEST(the_latest_supersession_at_or_before_upto_is_reported)
{
    etagkv_meta a1, c2, a3;
    etagkv_cond *c;
    etagkv_supersession sup;

    a1 = put("k", "A");
    (void)put("k", "B");
    a3 = put("k", "A");
    c2 = put("k", "C");
    c = cond_of(ETAGKV_IF_MATCH, a1.etag);
    ck_assert_int_eq(etagkv_cond_superseded(store, "k", 1, c, ETAGKV_STEP_NONE,
                                            ETAGKV_METHOD_PUT, c2.mod_revision,
                                            &sup),
                     ETAGKV_OK);
    ck_assert_uint_eq(sup.revision, c2.mod_revision);
    ck_assert_uint_eq(sup.held_revision, a3.mod_revision);
    /* Later: A again, then D.  Bounded at C's revision, C is still it. */
    (void)put("k", "A");
    (void)put("k", "D");
    ck_assert_int_eq(etagkv_cond_superseded(store, "k", 1, c, ETAGKV_STEP_NONE,
                                            ETAGKV_METHOD_PUT, c2.mod_revision,
                                            &sup),
                     ETAGKV_OK);
    ck_assert_uint_eq(sup.revision, c2.mod_revision);
    ck_assert_int_eq(etagkv_cond_superseded(store, "k", 1, c, ETAGKV_STEP_NONE,
                                            ETAGKV_METHOD_PUT, 0, &sup),
                     ETAGKV_OK);
    ck_assert_uint_gt(sup.revision, c2.mod_revision);
    etagkv_cond_free(c);
}
END_TEST

START_TEST(an_if_revision_is_superseded_by_the_next_change_of_the_key)
{
    etagkv_meta a = put("k", "a");
    etagkv_meta m;
    etagkv_cond *c;
    etagkv_supersession sup;
    char rev[24];

    put("other", "x");
    fake_now += 1000000000ull;
    ck_assert_int_eq(etagkv_delete(store, "k", 1, NULL, &m), ETAGKV_OK);
    snprintf(rev, sizeof rev, "%llu", (unsigned long long)a.mod_revision);
    c = cond_of(ETAGKV_IF_REVISION, rev);
    ck_assert_int_eq(etagkv_cond_superseded(store, "k", 1, c, ETAGKV_STEP_NONE,
                                            ETAGKV_METHOD_PUT, 0, &sup),
                     ETAGKV_OK);
    ck_assert_uint_eq(sup.revision, m.mod_revision);
    ck_assert_uint_eq(sup.modified_ns, fake_now); /* the delete's clock */
    ck_assert_uint_eq(sup.held_revision, a.mod_revision);
    etagkv_cond_free(c);
}
END_TEST

/* If-None-Match: * held while the key was absent: the creation (or a
 * re-creation after a delete) superseded it; If-Match: * is superseded by
 * the delete. */
START_TEST(
    create_only_is_superseded_by_the_creation_and_update_only_by_a_delete)
{
    etagkv_meta a, m;
    etagkv_cond *none = cond_of(ETAGKV_IF_NONE_MATCH, "*");
    etagkv_cond *any = cond_of(ETAGKV_IF_MATCH, "*");
    etagkv_supersession sup;

    a = put("k", "a");
    ck_assert_int_eq(etagkv_cond_superseded(store, "k", 1, none,
                                            ETAGKV_STEP_NONE, ETAGKV_METHOD_PUT,
                                            0, &sup),
                     ETAGKV_OK);
    ck_assert_uint_eq(sup.revision, a.mod_revision);
    ck_assert_uint_eq(sup.held_revision, 0);
    fake_now += 1000000000ull;
    ck_assert_int_eq(etagkv_delete(store, "k", 1, NULL, &m), ETAGKV_OK);
    ck_assert_int_eq(etagkv_cond_superseded(store, "k", 1, any,
                                            ETAGKV_STEP_NONE, ETAGKV_METHOD_PUT,
                                            0, &sup),
                     ETAGKV_OK);
    ck_assert_uint_eq(sup.revision, m.mod_revision);
    ck_assert_uint_eq(sup.held_revision, a.mod_revision);
    a = put("k", "b");
    ck_assert_int_eq(etagkv_cond_superseded(store, "k", 1, none,
                                            ETAGKV_STEP_NONE, ETAGKV_METHOD_PUT,
                                            0, &sup),
                     ETAGKV_OK);
    ck_assert_uint_eq(sup.revision, a.mod_revision);
    ck_assert_uint_eq(sup.held_revision, m.mod_revision);
    etagkv_cond_free(none);
    etagkv_cond_free(any);
}
END_TEST

/* The search reads the last revisions first and reaches further back
 * only when it must: a supersession 3,000 revisions before the refusal,
 * behind other keys' events, is still the one found, as is a creation
 * that long ago. */
START_TEST(a_supersession_thousands_of_revisions_back_is_found)
{
    etagkv_meta a = put("k", "a");
    etagkv_meta b = put("k", "b");
    etagkv_cond *im = cond_of(ETAGKV_IF_MATCH, a.etag);
    etagkv_cond *none = cond_of(ETAGKV_IF_NONE_MATCH, "*");
    etagkv_supersession sup;
    etagkv_meta last = b;
    char k[16];

    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof k, "o%d", i % 100);
        last = put(k, k);
    }
    ck_assert_int_eq(etagkv_cond_superseded(store, "k", 1, im, ETAGKV_STEP_NONE,
                                            ETAGKV_METHOD_PUT,
                                            last.mod_revision, &sup),
                     ETAGKV_OK);
    ck_assert_uint_eq(sup.revision, b.mod_revision);
    ck_assert_uint_eq(sup.held_revision, a.mod_revision);
    ck_assert_int_eq(etagkv_cond_superseded(store, "k", 1, none,
                                            ETAGKV_STEP_NONE, ETAGKV_METHOD_PUT,
                                            last.mod_revision, &sup),
                     ETAGKV_OK);
    ck_assert_uint_eq(sup.revision, a.mod_revision);
    ck_assert_uint_eq(sup.held_revision, 0);
    etagkv_cond_free(im);
    etagkv_cond_free(none);
}
END_TEST

START_TEST(a_validator_that_was_never_current_is_not_found)
{
    etagkv_cond *c =
        cond_of(ETAGKV_IF_MATCH, "\"00000000000000000000000000000000\"");
    etagkv_supersession sup;

    put("k", "a");
    put("k", "b");
    ck_assert_int_eq(etagkv_cond_superseded(store, "k", 1, c, ETAGKV_STEP_NONE,
                                            ETAGKV_METHOD_PUT, 0, &sup),
                     ETAGKV_NOT_FOUND);
    ck_assert_uint_eq(sup.revision, 0);
    ck_assert_uint_eq(sup.min_after, 0);
    /* A key with no events at all. */
    ck_assert_int_eq(etagkv_cond_superseded(store, "none", 4, c,
                                            ETAGKV_STEP_NONE, ETAGKV_METHOD_PUT,
                                            0, &sup),
                     ETAGKV_NOT_FOUND);
    etagkv_cond_free(c);
}
END_TEST

/* The validator was current only before the log's window: not found, and
 * min_after says where the window starts. */
START_TEST(a_validator_current_only_before_the_window_is_not_found)
{
    etagkv_meta a;
    etagkv_cond *c;
    etagkv_supersession sup;
    char k[16];

    etagkv_store_close(store);
    open_with(3);
    a = put("k", "a");
    put("k", "b");
    for (int i = 0; i < 5; i++) {
        snprintf(k, sizeof k, "o%d", i);
        put(k, "x");
    }
    c = cond_of(ETAGKV_IF_MATCH, a.etag);
    ck_assert_int_eq(etagkv_cond_superseded(store, "k", 1, c, ETAGKV_STEP_NONE,
                                            ETAGKV_METHOD_PUT, 0, &sup),
                     ETAGKV_NOT_FOUND);
    ck_assert_uint_eq(sup.min_after, 4);
    ck_assert_uint_eq(sup.revision, 0);
    etagkv_cond_free(c);
}
END_TEST

START_TEST(superseded_refuses_bad_arguments)
{
    etagkv_cond *c = cond_of(ETAGKV_IF_MATCH, "*");
    etagkv_supersession sup;

    ck_assert_int_eq(etagkv_cond_superseded(NULL, "k", 1, c, ETAGKV_STEP_NONE,
                                            ETAGKV_METHOD_PUT, 0, &sup),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_cond_superseded(store, "k", 1, NULL,
                                            ETAGKV_STEP_NONE, ETAGKV_METHOD_PUT,
                                            0, &sup),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_cond_superseded(store, "k", 1, c, ETAGKV_STEP_NONE,
                                            ETAGKV_METHOD_PUT, 0, NULL),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_cond_superseded(store, "k", 1, c, ETAGKV_STEP_NONE,
                                            (etagkv_method)9, 0, &sup),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_cond_superseded(store, "k", 0, c, ETAGKV_STEP_NONE,
                                            ETAGKV_METHOD_PUT, 0, &sup),
                     ETAGKV_INVALID_KEY);
    etagkv_cond_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("diagnose");
    TCase *tc = tcase_create("diagnose");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(
        tc, explain_names_the_step_that_decided_and_agrees_with_evaluate, 0,
        (int)(sizeof step_rows / sizeof step_rows[0]));
    tcase_add_test(tc, step_names_are_the_header_names);
    tcase_add_test(
        tc, a_failed_write_reports_its_step_and_a_replay_reports_it_again);
    tcase_add_test(tc, a_submitted_write_reports_its_step_to_the_callback);
    tcase_add_test(
        tc, a_conflicting_transaction_reports_the_step_over_the_state_it_saw);
    tcase_add_test(
        tc, an_if_match_is_superseded_by_the_write_that_replaced_the_etag);
    tcase_add_test(tc, the_latest_supersession_at_or_before_upto_is_reported);
    tcase_add_test(tc,
                   an_if_revision_is_superseded_by_the_next_change_of_the_key);
    tcase_add_test(
        tc,
        create_only_is_superseded_by_the_creation_and_update_only_by_a_delete);
    tcase_add_test(tc, a_supersession_thousands_of_revisions_back_is_found);
    tcase_add_test(tc, a_validator_that_was_never_current_is_not_found);
    tcase_add_test(tc, a_validator_current_only_before_the_window_is_not_found);
    tcase_add_test(tc, superseded_refuses_bad_arguments);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
