/*
 * test_txn.c -- multi-key transactions (DESIGN §7) and ETagKV-If-Revision
 * on single writes (DESIGN §2), on a real LMDB store.
 *
 * The rows prove that each operation gets the status its single request
 * would get and which of them fail the transaction; then the promises of
 * the whole: a conflict leaves every key byte for byte as it was and
 * reports the current state of each, later operations see earlier ones,
 * one revision per transaction, bounds, idempotency keys, the asynchronous
 * path, a conflict inside a batch leaving its neighbours alone, and 16
 * threads of conditional transfers conserving the total and applying every
 * acknowledged transfer exactly once.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h" /* ekv_test_before_batch */
#include "testutil.h"

static char *dir;
static etagkv_store *store;

static void setup(void)
{
    dir = tu_mkdtemp();
    store = tu_open_mode(dir, ETAGKV_NOSYNC);
}

static void setup_sync(void)
{
    dir = tu_mkdtemp();
    store = tu_open(dir, NULL);
}

static void teardown(void)
{
    etagkv_store_close(store);
    tu_rmdir_free(dir);
}

#define OK ETAGKV_OK
#define CR ETAGKV_CREATED
#define NM ETAGKV_NOT_MODIFIED
#define NF ETAGKV_NOT_FOUND
#define PF ETAGKV_PRECONDITION_FAILED
#define CF ETAGKV_CONFLICT

static void put(const char *k, const char *v, etagkv_meta *m)
{
    etagkv_status s =
        etagkv_put(store, k, strlen(k), v, strlen(v), NULL, NULL, m);

    ck_assert_msg(s == OK || s == CR, "put %s: %s", k, etagkv_strerror(s));
}

static etagkv_meta head(const char *k)
{
    etagkv_meta m;
    etagkv_status s = etagkv_get(store, k, strlen(k), NULL, NULL, NULL, &m);

    ck_assert(s == OK || s == NF);
    return m;
}

static uint64_t store_revision(void)
{
    etagkv_stats x;

    ck_assert_int_eq(etagkv_store_stats(store, &x), OK);
    return x.revision;
}

static etagkv_txn *txn_new(void)
{
    etagkv_txn *t;

    ck_assert_int_eq(etagkv_txn_new(&t), OK);
    return t;
}

static etagkv_txn_outcome report(const etagkv_txn *t)
{
    etagkv_txn_outcome o;

    etagkv_txn_report(t, &o);
    return o;
}

/* ---- every row of DESIGN §7 -----------------------------------------------
 */

enum op { GET, CHECK, PUT, DEL };
enum cond {
    NONE,
    IM_CUR,
    IM_STALE,
    IM_ANY,
    INM_ANY,
    INM_CUR,
    REV_CUR,
    REV_STALE,
    REV_ABSENT
};

static const struct row {
    int line;
    int exists; /* "k" holds "v1" before the transaction */
    enum op op;
    enum cond cond;
    etagkv_status op_status, txn_status;
} rows[] = {
#define R(...)                                                                 \
    {                                                                          \
        __LINE__, __VA_ARGS__                                                  \
    }
    /* get: 404 and 304 are answers, 412 fails the transaction. */
    R(1, GET, NONE, OK, OK),
    R(0, GET, NONE, NF, OK),
    R(1, GET, INM_CUR, NM, OK),
    R(1, GET, IM_STALE, PF, CF),
    R(1, GET, REV_STALE, PF, CF),
    R(0, GET, IM_ANY, NF, OK), /* RFC 9110 §13.2.1 */
    /* check: a PUT that writes nothing, so a missing key is no 404. */
    R(0, CHECK, NONE, OK, OK),
    R(0, CHECK, INM_ANY, OK, OK),
    R(1, CHECK, INM_ANY, PF, CF),
    R(1, CHECK, IM_CUR, OK, OK),
    R(1, CHECK, IM_STALE, PF, CF),
    R(0, CHECK, IM_ANY, PF, CF),
    R(0, CHECK, REV_ABSENT, OK, OK),
    R(1, CHECK, REV_CUR, OK, OK),
    /* put */
    R(0, PUT, NONE, CR, OK),
    R(1, PUT, NONE, OK, OK),
    R(0, PUT, IM_ANY, PF, CF),
    R(1, PUT, IM_CUR, OK, OK),
    R(1, PUT, INM_ANY, PF, CF),
    R(0, PUT, REV_ABSENT, CR, OK),
    R(1, PUT, REV_STALE, PF, CF),
    /* delete: a 404 fails the transaction, whatever the conditions. */
    R(1, DEL, NONE, OK, OK),
    R(0, DEL, NONE, NF, CF),
    R(0, DEL, REV_ABSENT, NF, CF), /* RFC 9110 §13.2.1 */
    R(1, DEL, IM_STALE, PF, CF),
    R(1, DEL, REV_CUR, OK, OK),
#undef R
};

static etagkv_cond *make_cond(enum cond k, const etagkv_meta *cur)
{
    etagkv_cond *c = NULL;

    switch (k) {
    case NONE: return NULL;
    case IM_CUR:
        ck_assert_int_eq(etagkv_cond_if_match(cur->etag, &c), OK);
        break;
    case IM_STALE:
        ck_assert_int_eq(
            etagkv_cond_if_match("\"00000000000000000000000000000000\"", &c),
            OK);
        break;
    case IM_ANY: ck_assert_int_eq(etagkv_cond_update_only(&c), OK); break;
    case INM_ANY: ck_assert_int_eq(etagkv_cond_create_only(&c), OK); break;
    case INM_CUR:
        ck_assert_int_eq(etagkv_cond_parse(NULL, cur->etag, NULL, NULL, &c),
                         OK);
        break;
    case REV_CUR:
    case REV_STALE:
    case REV_ABSENT:
        ck_assert_int_eq(etagkv_cond_new(&c), OK);
        ck_assert_int_eq(etagkv_cond_set_if_revision(
                             c, k == REV_CUR     ? cur->mod_revision
                                : k == REV_STALE ? cur->mod_revision + 100
                                                 : 0),
                         OK);
        break;
    }
    return c;
}

START_TEST(
    every_operation_gets_its_single_request_status_and_fails_as_design_7_says)
{
    const struct row *r = &rows[_i];
    etagkv_meta before = {0}, after;
    etagkv_txn *t = txn_new();
    etagkv_cond *c;
    const etagkv_txn_op_result *res;
    etagkv_status s;
    uint64_t rev0;

    if (r->exists)
        put("k", "v1", &before);
    rev0 = store_revision();
    c = make_cond(r->cond, &before);
    switch (r->op) {
    case GET: s = etagkv_txn_get(t, "k", 1, c); break;
    case CHECK: s = etagkv_txn_check(t, "k", 1, c); break;
    case PUT: s = etagkv_txn_put(t, "k", 1, "v2", 2, NULL, c); break;
    default: s = etagkv_txn_delete(t, "k", 1, c); break;
    }
    etagkv_cond_free(c); /* the transaction holds a copy */
    ck_assert_int_eq(s, OK);
    s = etagkv_txn_commit(store, t);
    ck_assert_msg(s == r->txn_status, "row at line %d: commit %s", r->line,
                  etagkv_status_name(s));
    res = etagkv_txn_op(t, 0);
    ck_assert_msg(res->evaluated && res->status == r->op_status,
                  "row at line %d: op %s", r->line,
                  etagkv_status_name(res->status));
    ck_assert_int_eq(report(t).failed, s == CF ? 0 : ETAGKV_TXN_NONE);
    after = head("k");
    if (s == CF || r->op == GET || r->op == CHECK) {
        /* Nothing written: the store and its revision as before. */
        ck_assert_int_eq(memcmp(&after, &before, sizeof(after)), 0);
        ck_assert_uint_eq(store_revision(), rev0);
        ck_assert_uint_eq(report(t).revision, rev0);
    } else {
        ck_assert_uint_eq(store_revision(), rev0 + 1);
        ck_assert_uint_eq(report(t).revision, rev0 + 1);
        if (r->op == DEL) {
            /* As a single delete reports it: absent, at its revision. */
            ck_assert_int_eq(after.exists, 0);
            ck_assert_int_eq(res->meta.exists, 0);
            ck_assert_uint_eq(res->meta.mod_revision, rev0 + 1);
        } else {
            ck_assert_int_eq(memcmp(&after, &res->meta, sizeof(after)), 0);
        }
    }
    if (r->op == GET && r->op_status == OK) {
        ck_assert_uint_eq(res->value_len, 2);
        ck_assert_int_eq(memcmp(res->value, "v1", 2), 0);
    } else {
        ck_assert_ptr_null(res->value);
    }
    etagkv_txn_free(t);
}
END_TEST

/* ---- conflicts ------------------------------------------------------------
 */

START_TEST(a_conflict_leaves_every_key_byte_for_byte_unchanged_and_reports_them)
{
    etagkv_meta ma, mb, mc, now;
    etagkv_txn *t = txn_new();
    etagkv_cond *stale;
    uint64_t rev0;
    void *v;
    size_t n;

    put("a", "A", &ma);
    put("b", "B", &mb);
    put("c", "C", &mc);
    rev0 = store_revision();
    ck_assert_int_eq(
        etagkv_cond_if_match("\"11111111111111111111111111111111\"", &stale),
        OK);
    ck_assert_int_eq(etagkv_txn_put(t, "a", 1, "A2", 2, "text/plain", NULL),
                     OK);
    ck_assert_int_eq(etagkv_txn_delete(t, "b", 1, NULL), OK);
    ck_assert_int_eq(etagkv_txn_put(t, "new", 3, "N", 1, NULL, NULL), OK);
    ck_assert_int_eq(etagkv_txn_put(t, "c", 1, "C2", 2, NULL, stale), OK);
    ck_assert_int_eq(etagkv_txn_delete(t, "a", 1, NULL), OK);
    etagkv_cond_free(stale);

    ck_assert_int_eq(etagkv_txn_commit(store, t), CF);
    ck_assert_uint_eq(report(t).failed, 3);
    ck_assert_uint_eq(report(t).revision, rev0);
    ck_assert_uint_eq(store_revision(), rev0);
    /* Byte for byte: ETag, revisions, version, timestamps, content type. */
    now = head("a");
    ck_assert_int_eq(memcmp(&now, &ma, sizeof(now)), 0);
    now = head("b");
    ck_assert_int_eq(memcmp(&now, &mb, sizeof(now)), 0);
    now = head("c");
    ck_assert_int_eq(memcmp(&now, &mc, sizeof(now)), 0);
    ck_assert_int_eq(head("new").exists, 0);
    ck_assert_int_eq(etagkv_get(store, "a", 1, NULL, &v, &n, NULL), OK);
    ck_assert(n == 1 && memcmp(v, "A", 1) == 0);
    etagkv_free(v);

    /* Results: statuses up to the failing one, then not evaluated; every
     * meta is the key as it is now, for the rebase. */
    ck_assert_int_eq(etagkv_txn_op(t, 0)->status, OK);
    ck_assert_int_eq(etagkv_txn_op(t, 1)->status, OK);
    ck_assert_int_eq(etagkv_txn_op(t, 2)->status, CR);
    ck_assert_int_eq(etagkv_txn_op(t, 3)->status, PF);
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(etagkv_txn_op(t, i)->evaluated, 1);
    ck_assert_int_eq(etagkv_txn_op(t, 4)->evaluated, 0);
    ck_assert_ptr_null(etagkv_txn_op(t, 5));
    ck_assert_int_eq(memcmp(&etagkv_txn_op(t, 0)->meta, &ma, sizeof(ma)), 0);
    ck_assert_int_eq(memcmp(&etagkv_txn_op(t, 1)->meta, &mb, sizeof(mb)), 0);
    ck_assert_int_eq(etagkv_txn_op(t, 2)->meta.exists, 0);
    ck_assert_int_eq(memcmp(&etagkv_txn_op(t, 3)->meta, &mc, sizeof(mc)), 0);
    ck_assert_int_eq(memcmp(&etagkv_txn_op(t, 4)->meta, &ma, sizeof(ma)), 0);
    etagkv_txn_free(t);
}
END_TEST

/* The value of op i is v (NULL: none). */
static void value_is(const etagkv_txn *t, size_t i, const char *v)
{
    const etagkv_txn_op_result *r = etagkv_txn_op(t, i);

    if (v == NULL) {
        ck_assert_ptr_null(r->value);
        ck_assert_uint_eq(r->value_len, 0);
        return;
    }
    ck_assert_ptr_nonnull(r->value);
    ck_assert_uint_eq(r->value_len, strlen(v));
    ck_assert_int_eq(memcmp(r->value, v, strlen(v)), 0);
}

START_TEST(a_conflict_asked_for_values_carries_every_existing_keys_value)
{
    etagkv_txn *t = txn_new();
    etagkv_cond *stale;
    etagkv_meta ma;

    put("a", "A-now", &ma);
    ck_assert_int_eq(
        etagkv_put(store, "b", 1, "B-now", 5, "text/x-b", NULL, NULL), CR);
    ck_assert_int_eq(
        etagkv_cond_if_match("\"11111111111111111111111111111111\"", &stale),
        OK);
    /* The put of b comes first: the values are the store's, not the
     * transaction's own writes. */
    ck_assert_int_eq(etagkv_txn_put(t, "b", 1, "mine", 4, NULL, NULL), OK);
    ck_assert_int_eq(etagkv_txn_get(t, "none", 4, NULL), OK);
    ck_assert_int_eq(etagkv_txn_put(t, "a", 1, "A2", 2, NULL, stale), OK);
    ck_assert_int_eq(etagkv_txn_check(t, "b", 1, NULL), OK);
    etagkv_cond_free(stale);

    /* Not asked: no value. */
    ck_assert_int_eq(etagkv_txn_commit(store, t), CF);
    ck_assert_int_eq(etagkv_txn_has_conflict_values(t), 0);
    for (size_t i = 0; i < 4; i++)
        value_is(t, i, NULL);

    /* Asked: every existing key's current value, evaluated or not. */
    ck_assert_int_eq(etagkv_txn_set_conflict_values(t, 1), OK);
    ck_assert_int_eq(etagkv_txn_commit(store, t), CF);
    ck_assert_uint_eq(report(t).failed, 2);
    ck_assert_int_eq(etagkv_txn_has_conflict_values(t), 1);
    value_is(t, 0, "B-now");
    ck_assert_str_eq(etagkv_txn_op(t, 0)->meta.content_type, "text/x-b");
    value_is(t, 1, NULL);
    ck_assert_int_eq(etagkv_txn_op(t, 1)->meta.exists, 0);
    value_is(t, 2, "A-now");
    ck_assert_int_eq(memcmp(&etagkv_txn_op(t, 2)->meta, &ma, sizeof(ma)), 0);
    value_is(t, 3, "B-now");
    ck_assert_int_eq(etagkv_txn_op(t, 3)->evaluated, 0);

    /* Kept across commits of the same transaction: a's new value. */
    put("a", "A-later", NULL);
    ck_assert_int_eq(etagkv_txn_commit(store, t), CF);
    value_is(t, 0, "B-now");
    value_is(t, 2, "A-later");
    /* Turned off: none again. */
    ck_assert_int_eq(etagkv_txn_set_conflict_values(t, 0), OK);
    ck_assert_int_eq(etagkv_txn_commit(store, t), CF);
    ck_assert_int_eq(etagkv_txn_has_conflict_values(t), 0);
    value_is(t, 0, NULL);
    value_is(t, 2, NULL);
    etagkv_txn_free(t);

    /* A commit that passes has only its gets' values. */
    t = txn_new();
    ck_assert_int_eq(etagkv_txn_set_conflict_values(t, 1), OK);
    ck_assert_int_eq(etagkv_txn_get(t, "b", 1, NULL), OK);
    ck_assert_int_eq(etagkv_txn_put(t, "a", 1, "A3", 2, NULL, NULL), OK);
    ck_assert_int_eq(etagkv_txn_commit(store, t), OK);
    ck_assert_int_eq(etagkv_txn_has_conflict_values(t), 0);
    value_is(t, 0, "B-now");
    value_is(t, 1, NULL);
    etagkv_txn_free(t);
    ck_assert_int_eq(etagkv_txn_set_conflict_values(NULL, 1),
                     ETAGKV_INVALID_ARGUMENT);
}
END_TEST

/* Two checks of x and y (40-byte values), the second failing, on a store
 * whose transactions may hold `bound` bytes: the conflict's values. */
static etagkv_txn *bounded_conflict(uint64_t bound)
{
    static const char big[] = "0123456789012345678901234567890123456789";
    etagkv_options o;
    etagkv_txn *t = txn_new();
    etagkv_cond *absent;

    etagkv_store_close(store);
    etagkv_options_init(&o);
    o.sync_mode = ETAGKV_NOSYNC;
    o.max_txn_bytes = bound;
    store = tu_open(dir, &o);
    put("x", big, NULL);
    put("y", big, NULL);
    ck_assert_int_eq(etagkv_cond_create_only(&absent), OK);
    ck_assert_int_eq(etagkv_txn_set_conflict_values(t, 1), OK);
    ck_assert_int_eq(etagkv_txn_check(t, "x", 1, NULL), OK);
    ck_assert_int_eq(etagkv_txn_check(t, "y", 1, absent), OK);
    etagkv_cond_free(absent);
    ck_assert_int_eq(etagkv_txn_commit(store, t), CF);
    ck_assert_uint_eq(report(t).failed, 1);
    ck_assert_int_eq(etagkv_txn_op(t, 0)->meta.exists, 1);
    ck_assert_int_eq(etagkv_txn_op(t, 1)->meta.exists, 1);
    return t;
}

START_TEST(conflict_values_past_the_byte_bound_are_all_left_out)
{
    /* The keys' 2 bytes and both values: 82 bytes fit exactly... */
    etagkv_txn *t = bounded_conflict(82);

    ck_assert_int_eq(etagkv_txn_has_conflict_values(t), 1);
    value_is(t, 0, "0123456789012345678901234567890123456789");
    value_is(t, 1, "0123456789012345678901234567890123456789");
    etagkv_txn_free(t);
    /* ...81 do not: the first value would fit, and none is given. */
    t = bounded_conflict(81);
    ck_assert_int_eq(etagkv_txn_has_conflict_values(t), 0);
    value_is(t, 0, NULL);
    value_is(t, 1, NULL);
    etagkv_txn_free(t);
}
END_TEST

START_TEST(a_delete_of_a_missing_key_fails_the_transaction_at_its_index)
{
    etagkv_txn *t = txn_new();

    ck_assert_int_eq(etagkv_txn_put(t, "x", 1, "1", 1, NULL, NULL), OK);
    ck_assert_int_eq(etagkv_txn_delete(t, "gone", 4, NULL), OK);
    ck_assert_int_eq(etagkv_txn_commit(store, t), CF);
    ck_assert_uint_eq(report(t).failed, 1);
    ck_assert_int_eq(etagkv_txn_op(t, 1)->status, NF);
    ck_assert_int_eq(head("x").exists, 0);
    etagkv_txn_free(t);
}
END_TEST

/* ---- order and revisions --------------------------------------------------
 */

START_TEST(later_operations_see_the_writes_of_earlier_ones)
{
    etagkv_txn *t = txn_new();
    etagkv_cond *im, *absent;
    char etag[ETAGKV_ETAG_SIZE];
    etagkv_meta now;

    etagkv_etag_compute("fresh", 5, etag);
    ck_assert_int_eq(etagkv_cond_if_match(etag, &im), OK);
    ck_assert_int_eq(etagkv_cond_create_only(&absent), OK);
    ck_assert_int_eq(etagkv_txn_put(t, "k", 1, "fresh", 5, NULL, absent), OK);
    ck_assert_int_eq(etagkv_txn_get(t, "k", 1, NULL), OK);
    ck_assert_int_eq(etagkv_txn_check(t, "k", 1, im), OK);
    ck_assert_int_eq(etagkv_txn_put(t, "k", 1, "again", 5, NULL, im), OK);
    ck_assert_int_eq(etagkv_txn_delete(t, "k", 1, NULL), OK);
    ck_assert_int_eq(etagkv_txn_get(t, "k", 1, NULL), OK);
    ck_assert_int_eq(etagkv_txn_put(t, "k", 1, "last", 4, NULL, absent), OK);
    etagkv_cond_free(im);
    etagkv_cond_free(absent);

    ck_assert_int_eq(etagkv_txn_commit(store, t), OK);
    ck_assert_int_eq(etagkv_txn_op(t, 0)->status, CR);
    ck_assert_int_eq(etagkv_txn_op(t, 1)->status, OK);
    ck_assert_uint_eq(etagkv_txn_op(t, 1)->value_len, 5);
    ck_assert_int_eq(memcmp(etagkv_txn_op(t, 1)->value, "fresh", 5), 0);
    ck_assert_str_eq(etagkv_txn_op(t, 1)->meta.etag, etag);
    ck_assert_int_eq(etagkv_txn_op(t, 2)->status, OK);
    ck_assert_int_eq(etagkv_txn_op(t, 3)->status, OK);
    ck_assert_uint_eq(etagkv_txn_op(t, 3)->meta.version, 2);
    ck_assert_int_eq(etagkv_txn_op(t, 4)->status, OK);
    ck_assert_int_eq(etagkv_txn_op(t, 5)->status, NF);
    ck_assert_int_eq(etagkv_txn_op(t, 6)->status, CR);
    /* The store holds the last write, as a new record (version 1). */
    now = head("k");
    ck_assert_int_eq(
        memcmp(&now, &etagkv_txn_op(t, 6)->meta, sizeof(etagkv_meta)), 0);
    ck_assert_uint_eq(now.version, 1);
    etagkv_txn_free(t);
}
END_TEST

START_TEST(a_committed_transaction_is_one_revision_for_all_its_writes)
{
    etagkv_txn *t = txn_new();
    etagkv_stats x0, x1;
    uint64_t rev0;

    put("c", "C", NULL);
    rev0 = store_revision();
    ck_assert_int_eq(etagkv_store_stats(store, &x0), OK);
    ck_assert_int_eq(etagkv_txn_put(t, "a", 1, "A", 1, NULL, NULL), OK);
    ck_assert_int_eq(etagkv_txn_put(t, "b", 1, "B", 1, NULL, NULL), OK);
    ck_assert_int_eq(etagkv_txn_delete(t, "c", 1, NULL), OK);
    ck_assert_int_eq(etagkv_txn_commit(store, t), OK);
    ck_assert_uint_eq(report(t).revision, rev0 + 1);
    ck_assert_uint_eq(store_revision(), rev0 + 1);
    ck_assert_uint_eq(head("a").mod_revision, rev0 + 1);
    ck_assert_uint_eq(head("b").mod_revision, rev0 + 1);
    ck_assert_uint_eq(head("a").create_revision, rev0 + 1);
    ck_assert_uint_eq(etagkv_txn_op(t, 2)->meta.mod_revision, rev0 + 1);
    ck_assert_int_eq(head("c").exists, 0);
    ck_assert_int_eq(etagkv_store_stats(store, &x1), OK);
    ck_assert_uint_eq(x1.write_txns, x0.write_txns + 1);
    etagkv_txn_free(t);
}
END_TEST

START_TEST(a_transaction_that_writes_nothing_commits_nothing)
{
    etagkv_txn *t = txn_new();
    etagkv_stats x0, x1;

    put("a", "A", NULL);
    ck_assert_int_eq(etagkv_store_stats(store, &x0), OK);
    ck_assert_int_eq(etagkv_txn_get(t, "a", 1, NULL), OK);
    ck_assert_int_eq(etagkv_txn_check(t, "b", 1, NULL), OK);
    ck_assert_int_eq(etagkv_txn_commit(store, t), OK);
    ck_assert_uint_eq(report(t).revision, x0.revision);
    ck_assert_int_eq(etagkv_store_stats(store, &x1), OK);
    ck_assert_uint_eq(x1.revision, x0.revision);
    ck_assert_uint_eq(x1.write_txns, x0.write_txns);
    etagkv_txn_free(t);

    /* The empty transaction too. */
    t = txn_new();
    ck_assert_int_eq(etagkv_txn_commit(store, t), OK);
    ck_assert_uint_eq(report(t).revision, x0.revision);
    etagkv_txn_free(t);
}
END_TEST

/* ekv_test_before_batch: hold the batch until the test lets it go. */
static atomic_int batch_held, batch_release;

static void hold_batch(etagkv_store *s)
{
    double deadline = tu_now_s() + 30;

    (void)s;
    ekv_test_before_batch = NULL;
    atomic_store(&batch_held, 1);
    while (!atomic_load(&batch_release)) {
        ck_assert_msg(tu_now_s() < deadline,
                      "a transaction that writes nothing waited for the "
                      "held batch");
        usleep(1000);
    }
}

static void *held_writer(void *arg)
{
    (void)arg;
    put("a", "A2", NULL);
    return NULL;
}

static void on_reads_done(void *ctx, const etagkv_result *res)
{
    *(etagkv_status *)ctx = res->status;
}

/* Gets and checks alone take no place in a batch: while the committer is
 * held with a write in hand, they commit at once, blocking or submitted,
 * and see the store as it was before that unacknowledged write. */
START_TEST(a_transaction_that_writes_nothing_does_not_wait_for_a_batch)
{
    etagkv_txn *t = txn_new();
    etagkv_meta before;
    etagkv_cond *c;
    etagkv_status sub = ETAGKV_INVALID_ARGUMENT;
    pthread_t w;

    put("a", "A", &before);
    atomic_store(&batch_held, 0);
    atomic_store(&batch_release, 0);
    ekv_test_before_batch = hold_batch;
    ck_assert_int_eq(pthread_create(&w, NULL, held_writer, NULL), 0);
    while (!atomic_load(&batch_held))
        usleep(1000);

    ck_assert_int_eq(etagkv_cond_if_match(before.etag, &c), OK);
    ck_assert_int_eq(etagkv_txn_get(t, "a", 1, NULL), OK);
    ck_assert_int_eq(etagkv_txn_check(t, "a", 1, c), OK);
    ck_assert_int_eq(etagkv_txn_commit(store, t), OK);
    ck_assert_uint_eq(report(t).revision, before.mod_revision);
    ck_assert_uint_eq(etagkv_txn_op(t, 0)->value_len, 1);
    ck_assert_int_eq(etagkv_txn_submit(store, t, on_reads_done, &sub), OK);
    ck_assert_int_eq(sub, OK); /* done ran before the return */

    atomic_store(&batch_release, 1);
    ck_assert_int_eq(pthread_join(w, NULL), 0);
    /* Now the check fails: a conflict, answered from a snapshot too. */
    ck_assert_int_eq(etagkv_txn_commit(store, t), CF);
    ck_assert_uint_eq(report(t).failed, 1);
    ck_assert_int_eq(etagkv_txn_op(t, 1)->status, PF);
    etagkv_cond_free(c);
    etagkv_txn_free(t);
}
END_TEST

/* ---- refusals and bounds ---------------------------------------------------
 */

START_TEST(past_the_bounds_is_txn_too_large_and_nothing_is_applied)
{
    etagkv_options o;
    etagkv_txn *t = txn_new();
    char key[16];

    etagkv_store_close(store);
    etagkv_options_init(&o);
    o.sync_mode = ETAGKV_NOSYNC;
    o.max_txn_ops = 4;
    o.max_txn_bytes = 64;
    store = tu_open(dir, &o);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(
            etagkv_txn_put(t, key, strlen(key), "v", 1, NULL, NULL), OK);
    }
    ck_assert_int_eq(etagkv_txn_commit(store, t), ETAGKV_TXN_TOO_LARGE);
    ck_assert_int_eq(report(t).status, ETAGKV_TXN_TOO_LARGE);
    ck_assert_int_eq(etagkv_txn_op(t, 0)->evaluated, 0);
    ck_assert_int_eq(head("k0").exists, 0);
    ck_assert_uint_eq(store_revision(), 0);
    etagkv_txn_free(t);

    /* 3 operations, but 2 + 70 bytes. */
    t = txn_new();
    ck_assert_int_eq(etagkv_txn_put(t, "a", 1, "1", 1, NULL, NULL), OK);
    ck_assert_int_eq(etagkv_txn_put(t, "b", 1,
                                    "0123456789012345678901234567890123456789"
                                    "012345678901234567890123456789",
                                    70, "x/y", NULL),
                     OK);
    ck_assert_int_eq(etagkv_txn_commit(store, t), ETAGKV_TXN_TOO_LARGE);
    ck_assert_int_eq(head("a").exists, 0);
    etagkv_txn_free(t);
}
END_TEST

START_TEST(the_default_bound_is_128_operations)
{
    etagkv_txn *t = txn_new();
    char key[16];

    for (int i = 0; i < 128; i++) {
        snprintf(key, sizeof(key), "k%03d", i);
        ck_assert_int_eq(
            etagkv_txn_put(t, key, strlen(key), "v", 1, NULL, NULL), OK);
    }
    ck_assert_int_eq(etagkv_txn_commit(store, t), OK);
    ck_assert_int_eq(etagkv_txn_delete(t, "k000", 4, NULL), OK);
    ck_assert_uint_eq(etagkv_txn_count(t), 129);
    ck_assert_int_eq(etagkv_txn_commit(store, t), ETAGKV_TXN_TOO_LARGE);
    ck_assert_int_eq(head("k000").exists, 1);
    etagkv_txn_free(t);
}
END_TEST

START_TEST(a_refused_add_is_remembered_and_the_commit_applies_nothing)
{
    etagkv_txn *t = txn_new();
    char long_key[ETAGKV_KEY_MAX + 1];

    memset(long_key, 'x', sizeof(long_key));
    ck_assert_int_eq(etagkv_txn_put(t, "a", 1, "1", 1, NULL, NULL), OK);
    ck_assert_int_eq(etagkv_txn_put(t, "", 0, "1", 1, NULL, NULL),
                     ETAGKV_INVALID_KEY);
    ck_assert_int_eq(etagkv_txn_get(t, long_key, sizeof(long_key), NULL),
                     ETAGKV_KEY_TOO_LONG);
    ck_assert_int_eq(etagkv_txn_put(t, "b", 1, "1", 1, "bad\ntype", NULL),
                     ETAGKV_INVALID_HEADER);
    ck_assert_int_eq(etagkv_txn_put(t, "b", 1, NULL, 3, NULL, NULL),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_uint_eq(etagkv_txn_count(t), 1);
    ck_assert_int_eq(etagkv_txn_commit(store, t), ETAGKV_INVALID_KEY);
    ck_assert_int_eq(head("a").exists, 0);
    ck_assert_int_eq(etagkv_txn_commit(NULL, t), ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_txn_commit(store, NULL), ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_txn_new(NULL), ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_txn_get(NULL, "a", 1, NULL),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_ptr_null(etagkv_txn_op(NULL, 0));
    ck_assert_uint_eq(etagkv_txn_count(NULL), 0);
    etagkv_txn_free(t);
    etagkv_txn_free(NULL);
}
END_TEST

START_TEST(a_value_over_the_store_limit_is_value_too_large)
{
    etagkv_options o;
    etagkv_txn *t = txn_new();

    etagkv_store_close(store);
    etagkv_options_init(&o);
    o.max_value_bytes = 4;
    store = tu_open(dir, &o);
    ck_assert_int_eq(etagkv_txn_put(t, "a", 1, "12345", 5, NULL, NULL), OK);
    ck_assert_int_eq(etagkv_txn_commit(store, t), ETAGKV_VALUE_TOO_LARGE);
    ck_assert_int_eq(head("a").exists, 0);
    etagkv_txn_free(t);
}
END_TEST

/* ---- idempotency keys -------------------------------------------------------
 */

/* A transfer-shaped transaction with an idempotency key. */
static etagkv_txn *keyed(const char *idem, const char *va)
{
    etagkv_txn *t = txn_new();

    ck_assert_int_eq(etagkv_txn_put(t, "a", 1, va, strlen(va), NULL, NULL), OK);
    ck_assert_int_eq(etagkv_txn_put(t, "b", 1, "B", 1, NULL, NULL), OK);
    ck_assert_int_eq(etagkv_txn_set_idempotency_key(t, idem, strlen(idem)), OK);
    return t;
}

START_TEST(a_repeated_keyed_transaction_replays_its_outcome_and_writes_nothing)
{
    etagkv_txn *t1 = keyed("K1", "A"), *t2 = keyed("K1", "A"), *t3;
    uint64_t rev;

    ck_assert_int_eq(etagkv_txn_commit(store, t1), OK);
    ck_assert_int_eq(report(t1).replayed, 0);
    rev = store_revision();
    put("a", "changed since", NULL);
    ck_assert_int_eq(etagkv_txn_commit(store, t2), OK);
    ck_assert_int_eq(report(t2).replayed, 1);
    ck_assert_uint_eq(report(t2).revision, report(t1).revision);
    ck_assert_uint_eq(store_revision(), rev + 1); /* only the put above */
    for (size_t i = 0; i < 2; i++) {
        ck_assert_int_eq(etagkv_txn_op(t2, i)->status,
                         etagkv_txn_op(t1, i)->status);
        ck_assert_int_eq(memcmp(&etagkv_txn_op(t2, i)->meta,
                                &etagkv_txn_op(t1, i)->meta,
                                sizeof(etagkv_meta)),
                         0);
    }
    /* Other operations under the same key: 422, nothing written. */
    t3 = keyed("K1", "other");
    ck_assert_int_eq(etagkv_txn_commit(store, t3), ETAGKV_IDEMPOTENCY_MISMATCH);
    ck_assert_uint_eq(store_revision(), rev + 1);
    etagkv_txn_free(t3);
    /* A single write under a transaction's key is another request too. */
    {
        etagkv_request req = {.method = ETAGKV_METHOD_PUT,
                              .key = "a",
                              .key_len = 1,
                              .value = "A",
                              .value_len = 1,
                              .idempotency_key = "K1",
                              .idempotency_key_len = 2};

        ck_assert_int_eq(etagkv_write(store, &req, NULL),
                         ETAGKV_IDEMPOTENCY_MISMATCH);
    }
    etagkv_txn_free(t1);
    etagkv_txn_free(t2);
}
END_TEST

START_TEST(a_keyed_conflict_is_recorded_like_a_keyed_412)
{
    etagkv_txn *t1 = txn_new(), *t2 = txn_new();
    etagkv_cond *absent;

    put("a", "A", NULL);
    ck_assert_int_eq(etagkv_cond_create_only(&absent), OK);
    for (int i = 0; i < 2; i++) {
        etagkv_txn *t = i == 0 ? t1 : t2;

        ck_assert_int_eq(etagkv_txn_put(t, "a", 1, "X", 1, NULL, absent), OK);
        ck_assert_int_eq(etagkv_txn_set_idempotency_key(t, "C", 1), OK);
        ck_assert_int_eq(etagkv_txn_set_conflict_values(t, 1), OK);
    }
    etagkv_cond_free(absent);
    ck_assert_int_eq(etagkv_txn_commit(store, t1), CF);
    ck_assert_int_eq(etagkv_txn_has_conflict_values(t1), 1);
    value_is(t1, 0, "A");
    /* Now the transaction would succeed; the key replays the conflict. */
    ck_assert_int_eq(etagkv_delete(store, "a", 1, NULL, NULL), OK);
    ck_assert_int_eq(etagkv_txn_commit(store, t2), CF);
    ck_assert_int_eq(report(t2).replayed, 1);
    ck_assert_int_eq(etagkv_txn_has_conflict_values(t2),
                     0); /* not recorded: none */
    value_is(t2, 0, NULL);
    ck_assert_uint_eq(report(t2).failed, 0);
    ck_assert_int_eq(etagkv_txn_op(t2, 0)->status, PF);
    ck_assert_int_eq(etagkv_txn_op(t2, 0)->meta.exists, 1);
    ck_assert_int_eq(head("a").exists, 0);
    etagkv_txn_free(t1);
    etagkv_txn_free(t2);
}
END_TEST

START_TEST(a_keyed_transaction_with_a_get_is_refused)
{
    etagkv_txn *t = txn_new();

    ck_assert_int_eq(etagkv_txn_get(t, "a", 1, NULL), OK);
    ck_assert_int_eq(etagkv_txn_put(t, "b", 1, "B", 1, NULL, NULL), OK);
    ck_assert_int_eq(etagkv_txn_set_idempotency_key(t, "G", 1), OK);
    ck_assert_int_eq(etagkv_txn_commit(store, t), ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(head("b").exists, 0);
    /* Removing the key makes it valid. */
    ck_assert_int_eq(etagkv_txn_set_idempotency_key(t, NULL, 0), OK);
    ck_assert_int_eq(etagkv_txn_commit(store, t), OK);
    etagkv_txn_free(t);
}
END_TEST

/* ---- the asynchronous path and batches ------------------------------------
 */

struct done {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    int calls;
    etagkv_status status[4];
};

static void on_done(void *ctx, const etagkv_result *res)
{
    struct done *d = ctx;

    pthread_mutex_lock(&d->lock);
    d->status[d->calls++] = res->status;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->lock);
}

START_TEST(a_submitted_conflict_leaves_its_batch_neighbours_applied)
{
    struct done d = {
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
    etagkv_request w1 = {.method = ETAGKV_METHOD_PUT,
                         .key = "n1",
                         .key_len = 2,
                         .value = "1",
                         .value_len = 1};
    etagkv_request w2 = w1;
    etagkv_txn *bad = txn_new(), *good = txn_new();
    etagkv_cond *im;

    w2.key = "n2";
    ck_assert_int_eq(etagkv_cond_update_only(&im), OK);
    ck_assert_int_eq(etagkv_txn_put(bad, "t1", 2, "x", 1, NULL, NULL), OK);
    ck_assert_int_eq(etagkv_txn_put(bad, "absent", 6, "x", 1, NULL, im), OK);
    ck_assert_int_eq(etagkv_txn_put(good, "t2", 2, "y", 1, NULL, NULL), OK);
    ck_assert_int_eq(etagkv_txn_check(good, "n1", 2, im), OK);
    etagkv_cond_free(im);
    /* Queued back to back: they ride in as few batches as the committer
     * makes, in this order; the conflict must stay local. */
    ck_assert_int_eq(etagkv_submit(store, &w1, on_done, &d), OK);
    ck_assert_int_eq(etagkv_txn_submit(store, bad, on_done, &d), OK);
    ck_assert_int_eq(etagkv_txn_submit(store, good, on_done, &d), OK);
    ck_assert_int_eq(etagkv_submit(store, &w2, on_done, &d), OK);
    pthread_mutex_lock(&d.lock);
    while (d.calls < 4)
        pthread_cond_wait(&d.cv, &d.lock);
    pthread_mutex_unlock(&d.lock);
    ck_assert_int_eq(d.status[0], CR);
    ck_assert_int_eq(d.status[1], CF);
    ck_assert_int_eq(d.status[2], OK); /* its check saw n1, written before */
    ck_assert_int_eq(d.status[3], CR);
    ck_assert_uint_eq(report(bad).failed, 1);
    ck_assert_int_eq(head("t1").exists, 0);
    ck_assert_int_eq(head("t2").exists, 1);
    ck_assert_int_eq(head("n2").exists, 1);
    ck_assert_int_eq(etagkv_txn_submit(store, good, NULL, NULL),
                     ETAGKV_INVALID_ARGUMENT);
    etagkv_txn_free(bad);
    etagkv_txn_free(good);
}
END_TEST

/* ---- ETagKV-If-Revision on single writes (DESIGN §2) -----------------------
 */

START_TEST(a_to_b_to_a_passes_if_match_but_fails_if_revision)
{
    etagkv_meta a1, m;
    etagkv_cond *im, *rev;

    put("k", "A", &a1);
    put("k", "B", NULL);
    put("k", "A", NULL);
    ck_assert_int_eq(etagkv_cond_if_match(a1.etag, &im), OK);
    ck_assert_int_eq(etagkv_cond_new(&rev), OK);
    ck_assert_int_eq(etagkv_cond_set_if_revision(rev, a1.mod_revision), OK);
    /* The ETag is A's again, so If-Match holds; the revision does not. */
    ck_assert_int_eq(etagkv_put(store, "k", 1, "C", 1, NULL, rev, &m), PF);
    ck_assert_uint_eq(m.mod_revision, a1.mod_revision + 2);
    ck_assert_int_eq(etagkv_put(store, "k", 1, "C", 1, NULL, im, NULL), OK);
    ck_assert_int_eq(etagkv_cond_set_if_revision(rev, 0), OK);
    ck_assert_int_eq(etagkv_put(store, "new", 3, "N", 1, NULL, rev, NULL), CR);
    ck_assert_int_eq(etagkv_put(store, "new", 3, "N", 1, NULL, rev, NULL), PF);
    /* RFC 9110 §13.2.1 */
    ck_assert_int_eq(etagkv_delete(store, "none", 4, rev, NULL), NF);
    etagkv_cond_free(im);
    etagkv_cond_free(rev);
}
END_TEST

/* ---- concurrency: conditional transfers
 * -------------------------------------- */

#define ACCOUNTS 1000
#define THREADS 16
#define TRANSFERS 200
#define START_BALANCE 1000

struct transfer {
    int from, to, amount;
};

struct teller {
    pthread_t tid;
    uint64_t seed;
    struct transfer done[TRANSFERS]; /* acknowledged, in order */
    int n_done, conflicts, errors;
};

static void account_key(char *buf, int i)
{
    snprintf(buf, 16, "acct/%04d", i);
}

/* Read an account: its balance and ETag.  0, or -1 on an error. */
static int read_account(int i, long *balance, etagkv_meta *m)
{
    char key[16], tmp[32];
    void *v;
    size_t n;

    account_key(key, i);
    if (etagkv_get(store, key, strlen(key), NULL, &v, &n, m) != OK ||
        n >= sizeof(tmp)) {
        return -1;
    }
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    etagkv_free(v);
    *balance = strtol(tmp, NULL, 10);
    return 0;
}

/* One attempt: read both, write both with If-Match on what was read. */
static etagkv_status transfer_once(const struct transfer *x)
{
    long ba, bb;
    etagkv_meta ma, mb;
    etagkv_cond *ca = NULL, *cb = NULL;
    etagkv_txn *t = NULL;
    char ka[16], kb[16], va[32], vb[32];
    etagkv_status s = ETAGKV_INTERNAL;

    if (read_account(x->from, &ba, &ma) != 0 ||
        read_account(x->to, &bb, &mb) != 0)
        return ETAGKV_INTERNAL;
    account_key(ka, x->from);
    account_key(kb, x->to);
    snprintf(va, sizeof(va), "%ld", ba - x->amount);
    snprintf(vb, sizeof(vb), "%ld", bb + x->amount);
    if (etagkv_cond_if_match(ma.etag, &ca) == OK &&
        etagkv_cond_if_match(mb.etag, &cb) == OK && etagkv_txn_new(&t) == OK &&
        etagkv_txn_check(t, ka, strlen(ka), ca) == OK &&
        etagkv_txn_put(t, ka, strlen(ka), va, strlen(va), NULL, ca) == OK &&
        etagkv_txn_put(t, kb, strlen(kb), vb, strlen(vb), NULL, cb) == OK)
        s = etagkv_txn_commit(store, t);
    etagkv_txn_free(t);
    etagkv_cond_free(ca);
    etagkv_cond_free(cb);
    return s;
}

static void *teller_main(void *arg)
{
    struct teller *w = arg;

    for (int i = 0; i < TRANSFERS; i++) {
        struct transfer x;
        etagkv_status s;

        x.from = (int)(tu_rng_next(&w->seed) % ACCOUNTS);
        x.to = (int)(tu_rng_next(&w->seed) % (ACCOUNTS - 1));
        x.to += x.to >= x.from;
        x.amount = 1 + (int)(tu_rng_next(&w->seed) % 50);
        while ((s = transfer_once(&x)) == CF)
            w->conflicts++;
        if (s == OK)
            w->done[w->n_done++] = x;
        else
            w->errors++;
    }
    return NULL;
}

static void run_transfers(int sync)
{
    static struct teller w[THREADS];
    static long expected[ACCOUNTS];
    long sum = 0;
    int conflicts = 0;
    etagkv_txn *t = txn_new();
    char key[16], v[16];

    /* All accounts created by one transaction: one revision. */
    for (int i = 0; i < ACCOUNTS; i += 100) {
        etagkv_txn_free(t);
        t = txn_new();
        for (int j = i; j < i + 100; j++) {
            account_key(key, j);
            snprintf(v, sizeof(v), "%d", START_BALANCE);
            ck_assert_int_eq(
                etagkv_txn_put(t, key, strlen(key), v, strlen(v), NULL, NULL),
                OK);
        }
        ck_assert_int_eq(etagkv_txn_commit(store, t), OK);
    }
    etagkv_txn_free(t);
    for (int i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].seed = 0x5eed0000u + (uint64_t)i * 7919u;
        ck_assert_int_eq(pthread_create(&w[i].tid, NULL, teller_main, &w[i]),
                         0);
    }
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_join(w[i].tid, NULL), 0);

    /* Every acknowledged transfer applied exactly once, nothing else. */
    for (int i = 0; i < ACCOUNTS; i++)
        expected[i] = START_BALANCE;
    for (int i = 0; i < THREADS; i++) {
        ck_assert_int_eq(w[i].errors, 0);
        ck_assert_int_eq(w[i].n_done, TRANSFERS);
        conflicts += w[i].conflicts;
        for (int j = 0; j < w[i].n_done; j++) {
            expected[w[i].done[j].from] -= w[i].done[j].amount;
            expected[w[i].done[j].to] += w[i].done[j].amount;
        }
    }
    for (int i = 0; i < ACCOUNTS; i++) {
        long b;
        etagkv_meta m;

        ck_assert_int_eq(read_account(i, &b, &m), 0);
        ck_assert_msg(b == expected[i], "account %d: %ld, expected %ld", i, b,
                      expected[i]);
        sum += b;
    }
    ck_assert_int_eq(sum, (long)ACCOUNTS * START_BALANCE);
    printf("transfers (%s): %d acknowledged, %d conflicts retried\n",
           sync ? "sync" : "nosync", THREADS * TRANSFERS, conflicts);
}

START_TEST(concurrent_conditional_transfers_conserve_the_sum_and_apply_once)
{
    run_transfers(0);
}
END_TEST

START_TEST(concurrent_transfers_in_sync_mode_conserve_the_sum)
{
    run_transfers(1);
}
END_TEST

/* DESIGN §7-§8: a committed transaction is one revision, and the change
 * log holds one event per write of it, all of that revision, in the order
 * the transaction wrote them; a conflict logs nothing. */
struct seen_events {
    int n;
    uint64_t rev[8];
    etagkv_event_type type[8];
    char key[8][8];
};

static int record_event(void *ctx, const etagkv_event *ev)
{
    struct seen_events *e = ctx;

    ck_assert_int_lt(e->n, 8);
    e->rev[e->n] = ev->revision;
    e->type[e->n] = ev->type;
    ck_assert_uint_lt(ev->key_len, sizeof(e->key[0]));
    memcpy(e->key[e->n], ev->key, ev->key_len);
    e->key[e->n][ev->key_len] = '\0';
    e->n++;
    return 0;
}

START_TEST(a_transaction_is_one_revision_in_the_change_log)
{
    etagkv_txn *t = NULL;
    etagkv_cond *stale = NULL;
    etagkv_txn_outcome o;
    etagkv_changes_page page;
    struct seen_events e = {0};
    etagkv_meta m;

    put("c", "gone soon", &m);
    ck_assert_int_eq(etagkv_txn_new(&t), ETAGKV_OK);
    ck_assert_int_eq(etagkv_txn_put(t, "a", 1, "1", 1, NULL, NULL), ETAGKV_OK);
    ck_assert_int_eq(etagkv_txn_put(t, "b", 1, "2", 1, NULL, NULL), ETAGKV_OK);
    ck_assert_int_eq(etagkv_txn_delete(t, "c", 1, NULL), ETAGKV_OK);
    ck_assert_int_eq(etagkv_txn_commit(store, t), ETAGKV_OK);
    etagkv_txn_report(t, &o);
    ck_assert_uint_eq(o.revision, m.mod_revision + 1);
    ck_assert_int_eq(etagkv_changes(store, NULL, 0, 0, m.mod_revision, 0,
                                    record_event, &e, &page),
                     ETAGKV_OK);
    ck_assert_int_eq(e.n, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(e.rev[i], o.revision);
    ck_assert_str_eq(e.key[0], "a");
    ck_assert_str_eq(e.key[1], "b");
    ck_assert_str_eq(e.key[2], "c");
    ck_assert_int_eq(e.type[0], ETAGKV_EVENT_PUT);
    ck_assert_int_eq(e.type[2], ETAGKV_EVENT_DELETE);
    etagkv_txn_free(t);

    /* A conflict writes nothing, so it logs nothing. */
    ck_assert_int_eq(etagkv_txn_new(&t), ETAGKV_OK);
    ck_assert_int_eq(etagkv_cond_create_only(&stale), ETAGKV_OK);
    ck_assert_int_eq(etagkv_txn_put(t, "z", 1, "9", 1, NULL, NULL), ETAGKV_OK);
    ck_assert_int_eq(etagkv_txn_put(t, "a", 1, "3", 1, NULL, stale), ETAGKV_OK);
    ck_assert_int_eq(etagkv_txn_commit(store, t), ETAGKV_CONFLICT);
    e.n = 0;
    ck_assert_int_eq(etagkv_changes(store, NULL, 0, 0, o.revision, 0,
                                    record_event, &e, &page),
                     ETAGKV_OK);
    ck_assert_int_eq(e.n, 0);
    etagkv_cond_free(stale);
    etagkv_txn_free(t);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("txn");
    TCase *tc = tcase_create("design7");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(
        tc,
        every_operation_gets_its_single_request_status_and_fails_as_design_7_says,
        0, (int)(sizeof(rows) / sizeof(rows[0])));
    tcase_add_test(
        tc,
        a_conflict_leaves_every_key_byte_for_byte_unchanged_and_reports_them);
    tcase_add_test(
        tc, a_delete_of_a_missing_key_fails_the_transaction_at_its_index);
    tcase_add_test(
        tc, a_conflict_asked_for_values_carries_every_existing_keys_value);
    tcase_add_test(tc, conflict_values_past_the_byte_bound_are_all_left_out);
    tcase_add_test(tc, later_operations_see_the_writes_of_earlier_ones);
    tcase_add_test(tc, a_transaction_is_one_revision_in_the_change_log);
    tcase_add_test(tc,
                   a_committed_transaction_is_one_revision_for_all_its_writes);
    tcase_add_test(tc, a_transaction_that_writes_nothing_commits_nothing);
    tcase_add_test(tc, past_the_bounds_is_txn_too_large_and_nothing_is_applied);
    tcase_add_test(tc, the_default_bound_is_128_operations);
    tcase_add_test(tc,
                   a_refused_add_is_remembered_and_the_commit_applies_nothing);
    tcase_add_test(tc, a_value_over_the_store_limit_is_value_too_large);
    tcase_add_test(
        tc,
        a_repeated_keyed_transaction_replays_its_outcome_and_writes_nothing);
    tcase_add_test(tc, a_keyed_conflict_is_recorded_like_a_keyed_412);
    tcase_add_test(tc, a_keyed_transaction_with_a_get_is_refused);
    tcase_add_test(tc,
                   a_submitted_conflict_leaves_its_batch_neighbours_applied);
    tcase_add_test(tc, a_to_b_to_a_passes_if_match_but_fails_if_revision);
    suite_add_tcase(s, tc);

    tc = tcase_create("concurrency");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(
        tc, concurrent_conditional_transfers_conserve_the_sum_and_apply_once);
    suite_add_tcase(s, tc);
    tc = tcase_create("concurrency_sync");
    tcase_add_checked_fixture(tc, setup_sync, teardown);
    tcase_add_test(tc, concurrent_transfers_in_sync_mode_conserve_the_sum);
    tcase_add_test(tc,
                   a_transaction_that_writes_nothing_does_not_wait_for_a_batch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
