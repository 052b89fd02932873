/*
 * test_idem.c -- exactly-once writes with an idempotency key (DESIGN §2,
 * "Retries: already succeeded only when it is proven").
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <lmdb.h>

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

static void open_store(uint64_t max_keys)
{
    etagkv_options o;

    etagkv_options_init(&o);
    o.sync_mode = ETAGKV_NOSYNC;
    o.clock = fake_clock;
    o.idempotency_retention_s = 10;
    if (max_keys > 0)
        o.idempotency_max_keys = max_keys;
    store = tu_open(dir, &o);
}

static void setup(void)
{
    fake_now = 1700000000ull * 1000000000ull;
    dir = tu_mkdtemp();
    open_store(0);
}

static void teardown(void)
{
    etagkv_store_close(store);
    tu_rmdir_free(dir);
}

static uint64_t revision(void)
{
    etagkv_stats s;

    ck_assert_int_eq(etagkv_store_stats(store, &s), ETAGKV_OK);
    return s.revision;
}

/* A keyed PUT of value under key "k" with optional If-Match. */
static etagkv_status kput(const char *idem, const char *key, const char *value,
                          const char *if_match, etagkv_result *res)
{
    etagkv_cond *c = NULL;
    etagkv_request rq = {
        .method = ETAGKV_METHOD_PUT,
        .key = key,
        .key_len = strlen(key),
        .value = value,
        .value_len = strlen(value),
        .idempotency_key = idem,
        .idempotency_key_len = idem ? strlen(idem) : 0,
    };
    etagkv_status s;

    if (if_match != NULL) {
        ck_assert_int_eq(etagkv_cond_parse(if_match, NULL, NULL, NULL, &c),
                         ETAGKV_OK);
        rq.cond = c;
    }
    s = etagkv_write(store, &rq, res);
    etagkv_cond_free(c);
    ck_assert_int_eq(res->status, s);
    return s;
}

static etagkv_status kdel(const char *idem, const char *key, etagkv_result *res)
{
    etagkv_request rq = {
        .method = ETAGKV_METHOD_DELETE,
        .key = key,
        .key_len = strlen(key),
        .idempotency_key = idem,
        .idempotency_key_len = strlen(idem),
    };

    return etagkv_write(store, &rq, res);
}

START_TEST(a_repeat_after_success_replays_the_outcome_and_writes_nothing)
{
    etagkv_result a, b;

    ck_assert_int_eq(kput("id-1", "k", "v1", NULL, &a), ETAGKV_CREATED);
    ck_assert_int_eq(a.replayed, 0);
    ck_assert_int_eq(kput("id-1", "k", "v1", NULL, &b), ETAGKV_CREATED);
    ck_assert_int_eq(b.replayed, 1);
    ck_assert_mem_eq(&a.meta, &b.meta, sizeof(a.meta));
    ck_assert_uint_eq(revision(), 1);
}
END_TEST

START_TEST(a_repeat_after_another_writer_returns_the_recorded_outcome)
{
    etagkv_result a, b;
    etagkv_meta now;

    ck_assert_int_eq(kput("id-1", "k", "v1", NULL, &a), ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_put(store, "k", 1, "other", 5, NULL, NULL, &now),
                     ETAGKV_OK);
    ck_assert_int_eq(kput("id-1", "k", "v1", NULL, &b), ETAGKV_CREATED);
    ck_assert_int_eq(b.replayed, 1);
    ck_assert_str_eq(b.meta.etag, a.meta.etag); /* as recorded */
    ck_assert_uint_eq(b.meta.mod_revision, 1);
    /* The record is untouched by the replay. */
    ck_assert_int_eq(etagkv_get(store, "k", 1, NULL, NULL, NULL, &b.meta),
                     ETAGKV_OK);
    ck_assert_str_eq(b.meta.etag, now.etag);
    ck_assert_uint_eq(revision(), 2);
}
END_TEST

START_TEST(a_failed_precondition_is_an_outcome_and_is_replayed)
{
    etagkv_result a, b, c;

    ck_assert_int_eq(kput(NULL, "k", "v1", NULL, &a), ETAGKV_CREATED);
    ck_assert_int_eq(kput("id-412", "k", "v2", "\"stale\"", &b),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_str_eq(b.meta.etag, a.meta.etag); /* current, for rebasing */
    ck_assert_uint_eq(revision(), 1);
    /* The same request replays its 412 without being evaluated again. */
    ck_assert_int_eq(kput("id-412", "k", "v2", "\"stale\"", &c),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_int_eq(c.replayed, 1);
    ck_assert_str_eq(c.meta.etag, a.meta.etag);
}
END_TEST

START_TEST(delete_and_not_found_are_replayed)
{
    etagkv_result a, b;

    ck_assert_int_eq(kput(NULL, "k", "v", NULL, &a), ETAGKV_CREATED);
    ck_assert_int_eq(kdel("del-1", "k", &a), ETAGKV_OK);
    ck_assert_int_eq(a.meta.exists, 0);
    ck_assert_uint_eq(a.meta.mod_revision, 2);
    /* Re-created meanwhile: the repeated delete must not delete it. */
    ck_assert_int_eq(kput(NULL, "k", "again", NULL, &b), ETAGKV_CREATED);
    ck_assert_int_eq(kdel("del-1", "k", &b), ETAGKV_OK);
    ck_assert_int_eq(b.replayed, 1);
    ck_assert_uint_eq(b.meta.mod_revision, 2);
    ck_assert_int_eq(etagkv_get(store, "k", 1, NULL, NULL, NULL, &b.meta),
                     ETAGKV_OK);
    /* A 404 is recorded too. */
    ck_assert_int_eq(kdel("del-2", "nope", &a), ETAGKV_NOT_FOUND);
    ck_assert_int_eq(kput(NULL, "nope", "now it exists", NULL, &b),
                     ETAGKV_CREATED);
    ck_assert_int_eq(kdel("del-2", "nope", &a), ETAGKV_NOT_FOUND);
    ck_assert_int_eq(a.replayed, 1);
}
END_TEST

START_TEST(the_same_key_for_a_different_request_is_a_mismatch)
{
    etagkv_result r;
    etagkv_request rq = {.method = ETAGKV_METHOD_PUT,
                         .key = "k",
                         .key_len = 1,
                         .value = "v1",
                         .value_len = 2,
                         .content_type = "text/plain",
                         .idempotency_key = "id",
                         .idempotency_key_len = 2};

    ck_assert_int_eq(kput("id", "k", "v1", NULL, &r), ETAGKV_CREATED);
    /* body, record key, conditions, content type, method */
    ck_assert_int_eq(kput("id", "k", "v2", NULL, &r),
                     ETAGKV_IDEMPOTENCY_MISMATCH);
    ck_assert_int_eq(kput("id", "other", "v1", NULL, &r),
                     ETAGKV_IDEMPOTENCY_MISMATCH);
    ck_assert_int_eq(kput("id", "k", "v1", "*", &r),
                     ETAGKV_IDEMPOTENCY_MISMATCH);
    ck_assert_int_eq(etagkv_write(store, &rq, &r), ETAGKV_IDEMPOTENCY_MISMATCH);
    ck_assert_int_eq(etagkv_status_http(r.status), 422);
    /* Keeping the content type is a different request from setting the
     * default... */
    rq.content_type = NULL;
    rq.flags = ETAGKV_WRITE_KEEP_CONTENT_TYPE;
    ck_assert_int_eq(etagkv_write(store, &rq, &r), ETAGKV_IDEMPOTENCY_MISMATCH);
    /* ...but the flag beside an explicit type changes nothing (the type
     * wins), so that is the first request again: a replay. */
    rq.content_type = ETAGKV_CONTENT_TYPE_DEFAULT;
    ck_assert_int_eq(etagkv_write(store, &rq, &r), ETAGKV_CREATED);
    ck_assert_int_eq(r.replayed, 1);
    ck_assert_int_eq(kdel("id", "k", &r), ETAGKV_IDEMPOTENCY_MISMATCH);
    ck_assert_uint_eq(revision(), 1);
    ck_assert_int_eq(etagkv_get(store, "k", 1, NULL, NULL, NULL, &r.meta),
                     ETAGKV_OK);
    ck_assert_uint_eq(r.meta.version, 1);
}
END_TEST

START_TEST(an_expired_key_executes_afresh)
{
    etagkv_result r;

    ck_assert_int_eq(kput("id", "k", "v1", NULL, &r), ETAGKV_CREATED);
    fake_now += 10ull * 1000000000ull; /* exactly the retention: live */
    ck_assert_int_eq(kput("id", "k", "v1", NULL, &r), ETAGKV_CREATED);
    ck_assert_int_eq(r.replayed, 1);
    fake_now += 1; /* past it */
    ck_assert_int_eq(kput("id", "k", "v1", NULL, &r), ETAGKV_OK);
    ck_assert_int_eq(r.replayed, 0);
    ck_assert_uint_eq(revision(), 2);
    /* ... and a different request may now use the key. */
    fake_now += 11ull * 1000000000ull;
    ck_assert_int_eq(kput("id", "k", "v2", NULL, &r), ETAGKV_OK);
}
END_TEST

START_TEST(recorded_outcomes_survive_a_restart)
{
    etagkv_result a, b;

    ck_assert_int_eq(kput("id", "k", "v1", NULL, &a), ETAGKV_CREATED);
    etagkv_store_close(store);
    open_store(0);
    ck_assert_int_eq(kput("id", "k", "v1", NULL, &b), ETAGKV_CREATED);
    ck_assert_int_eq(b.replayed, 1);
    ck_assert_mem_eq(&a.meta, &b.meta, sizeof(a.meta));
}
END_TEST

START_TEST(a_full_table_refuses_new_keys_until_old_ones_expire)
{
    etagkv_result r;
    char idem[16];

    etagkv_store_close(store);
    open_store(4);
    for (int i = 0; i < 4; i++) {
        snprintf(idem, sizeof(idem), "id-%d", i);
        ck_assert_int_eq(kput(idem, idem, "v", NULL, &r), ETAGKV_CREATED);
    }
    ck_assert_int_eq(kput("id-new", "k", "v", NULL, &r),
                     ETAGKV_IDEMPOTENCY_FULL);
    ck_assert_int_eq(etagkv_status_http(r.status), 503);
    ck_assert_int_eq(etagkv_get(store, "k", 1, NULL, NULL, NULL, &r.meta),
                     ETAGKV_NOT_FOUND);
    /* Known keys still replay; writes without a key are unaffected. */
    ck_assert_int_eq(kput("id-0", "id-0", "v", NULL, &r), ETAGKV_CREATED);
    ck_assert_int_eq(r.replayed, 1);
    ck_assert_int_eq(kput(NULL, "k2", "v", NULL, &r), ETAGKV_CREATED);
    fake_now += 11ull * 1000000000ull;
    ck_assert_int_eq(kput("id-new", "k", "v", NULL, &r), ETAGKV_CREATED);
}
END_TEST

static uint64_t idem_keys(void)
{
    etagkv_stats s;

    ck_assert_int_eq(etagkv_store_stats(store, &s), ETAGKV_OK);
    return s.idempotency_keys;
}

/* A full table looks at all of itself before refusing a new key: the
 * rolling purge had left its cursor among the newer entries, and the full
 * purge used to run from there to the table's end, never seeing the
 * expired ones before it (IDEMPOTENCY_FULL, then OK on a retry). */
START_TEST(a_full_table_purges_expired_keys_before_its_purge_cursor)
{
    etagkv_result r;
    char idem[16];

    etagkv_store_close(store);
    open_store(200);
    for (int i = 0; i < 100; i++) {
        snprintf(idem, sizeof(idem), "a%03d", i);
        ck_assert_int_eq(kput(idem, "k", "v", NULL, &r),
                         i == 0 ? ETAGKV_CREATED : ETAGKV_OK);
    }
    fake_now += 9ull * 1000000000ull;
    for (int i = 0; i < 100; i++) {
        snprintf(idem, sizeof(idem), "z%03d", i);
        ck_assert_int_eq(kput(idem, "k", "v", NULL, &r), ETAGKV_OK);
    }
    fake_now += 2ull * 1000000000ull; /* every a... expired, no z... */
    ck_assert_uint_eq(idem_keys(), 200);
    ck_assert_int_eq(kput("m", "k", "v", NULL, &r), ETAGKV_OK);
    ck_assert_int_eq(r.replayed, 0);
}
END_TEST

START_TEST(expired_keys_are_purged_by_later_writes)
{
    etagkv_result r;
    char idem[16];
    int live = 0;

    for (int i = 0; i < 40; i++) {
        snprintf(idem, sizeof(idem), "id-%02d", i);
        ck_assert_int_eq(kput(idem, "k", idem, NULL, &r),
                         i == 0 ? ETAGKV_CREATED : ETAGKV_OK);
    }
    ck_assert_uint_eq(idem_keys(), 40);
    fake_now += 11ull * 1000000000ull;
    /* A write without a key purges at most 4 ... */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(kput(NULL, "k", "x", NULL, &r), ETAGKV_OK);
    ck_assert_uint_eq(idem_keys(), 40 - 3 * 4);
    /* ... one that records a key 4 more, so purging outpaces new keys. */
    for (int i = 0; i < 2; i++) {
        snprintf(idem, sizeof(idem), "new-%d", i);
        ck_assert_int_eq(kput(idem, "k", "y", NULL, &r), ETAGKV_OK);
    }
    ck_assert_uint_eq(idem_keys(), 28 - 2 * 8 + 2);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(kput(NULL, "k", "x", NULL, &r), ETAGKV_OK);
    ck_assert_uint_eq(idem_keys(), 2); /* the live ones stay */
    /* Every old key now executes afresh. */
    for (int i = 0; i < 40; i++) {
        snprintf(idem, sizeof(idem), "id-%02d", i);
        ck_assert_int_eq(kput(idem, "k", idem, NULL, &r), ETAGKV_OK);
        live += r.replayed;
    }
    ck_assert_int_eq(live, 0);
}
END_TEST

START_TEST(an_overlong_or_malformed_idempotency_key_is_refused)
{
    char big[ETAGKV_IDEMPOTENCY_KEY_MAX + 2];
    etagkv_result r;
    etagkv_request rq = {.method = ETAGKV_METHOD_PUT, .key = "k", .key_len = 1};

    memset(big, 'i', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(kput(big, "k", "v", NULL, &r), ETAGKV_INVALID_HEADER);
    big[ETAGKV_IDEMPOTENCY_KEY_MAX] = '\0';
    ck_assert_int_eq(kput(big, "k", "v", NULL, &r), ETAGKV_CREATED);
    rq.idempotency_key_len = 3; /* NULL key with a length */
    ck_assert_int_eq(etagkv_write(store, &rq, &r), ETAGKV_INVALID_ARGUMENT);
    rq.idempotency_key_len = 0;
    rq.method = (etagkv_method)ETAGKV_METHOD_GET;
    ck_assert_int_eq(etagkv_write(store, &rq, &r), ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_write(NULL, &rq, NULL), ETAGKV_INVALID_ARGUMENT);
    ck_assert_uint_eq(revision(), 1);
}
END_TEST

/* ---- concurrency
 * ------------------------------------------------------------- */

#define DUPS 16

struct dup {
    pthread_t tid;
    etagkv_result r;
};

static pthread_barrier_t barrier;

static void *send_duplicate(void *arg)
{
    struct dup *d = arg;
    etagkv_request rq = {.method = ETAGKV_METHOD_PUT,
                         .key = "k",
                         .key_len = 1,
                         .value = "once",
                         .value_len = 4,
                         .idempotency_key = "the-one",
                         .idempotency_key_len = 7};

    pthread_barrier_wait(&barrier);
    (void)etagkv_write(store, &rq, &d->r);
    return NULL;
}

START_TEST(concurrent_duplicates_execute_exactly_once)
{
    struct dup d[DUPS];
    int replays = 0;

    ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, DUPS), 0);
    for (int i = 0; i < DUPS; i++)
        ck_assert_int_eq(pthread_create(&d[i].tid, NULL, send_duplicate, &d[i]),
                         0);
    for (int i = 0; i < DUPS; i++)
        ck_assert_int_eq(pthread_join(d[i].tid, NULL), 0);
    pthread_barrier_destroy(&barrier);
    for (int i = 0; i < DUPS; i++) {
        ck_assert_int_eq(d[i].r.status, ETAGKV_CREATED);
        ck_assert_str_eq(d[i].r.meta.etag, d[0].r.meta.etag);
        ck_assert_uint_eq(d[i].r.meta.mod_revision, 1);
        replays += d[i].r.replayed;
    }
    ck_assert_int_eq(replays, DUPS - 1);
    ck_assert_uint_eq(revision(), 1);
}
END_TEST

/* Every increment is sent twice with the same key, as a client would after
 * a lost response: the counter must still end exact. */
static void *double_sender(void *arg)
{
    int id = (int)(intptr_t)arg;

    for (int i = 0; i < 25; i++) {
        char idem[48], val[32];
        etagkv_result r;

        for (int attempt = 0;; attempt++) {
            etagkv_meta m;
            void *v;
            size_t n;
            long x;
            etagkv_cond *c;
            etagkv_request rq;

            /* A rebased attempt is a new request, so it gets a new key. */
            snprintf(idem, sizeof(idem), "inc-%d-%d-%d", id, i, attempt);
            rq = (etagkv_request){.method = ETAGKV_METHOD_PUT,
                                  .key = "n",
                                  .key_len = 1,
                                  .idempotency_key = idem,
                                  .idempotency_key_len = strlen(idem)};

            ck_assert_int_eq(etagkv_get(store, "n", 1, NULL, &v, &n, &m),
                             ETAGKV_OK);
            snprintf(val, sizeof(val), "%.*s", (int)n, (char *)v);
            etagkv_free(v);
            x = strtol(val, NULL, 10);
            snprintf(val, sizeof(val), "%ld", x + 1);
            ck_assert_int_eq(etagkv_cond_parse(m.etag, NULL, NULL, NULL, &c),
                             ETAGKV_OK);
            rq.value = val;
            rq.value_len = strlen(val);
            rq.cond = c;
            (void)etagkv_write(store, &rq, &r); /* response "lost" */
            (void)etagkv_write(store, &rq, &r); /* the retry */
            etagkv_cond_free(c);
            if (r.status == ETAGKV_OK)
                break;
            ck_assert_int_eq(r.status, ETAGKV_PRECONDITION_FAILED);
        }
    }
    return NULL;
}

START_TEST(a_counter_with_every_write_sent_twice_ends_exact)
{
    pthread_t t[8];
    void *v;
    size_t n;

    ck_assert_int_eq(etagkv_put(store, "n", 1, "0", 1, NULL, NULL, NULL),
                     ETAGKV_CREATED);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(
            pthread_create(&t[i], NULL, double_sender, (void *)(intptr_t)i), 0);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    ck_assert_int_eq(etagkv_get(store, "n", 1, NULL, &v, &n, NULL), ETAGKV_OK);
    ck_assert_int_eq((int)n, 3);
    ck_assert_mem_eq(v, "200", 3);
    etagkv_free(v);
}
END_TEST

/* ---- keys recorded by an older version ------------------------------------
 */

/* Idempotency entries exactly as the library at commit 8a728e1 (before
 * If-Revision, transactions and leases) recorded them, taken from a store
 * it made: K1 a PUT of "v1" to "idem/a" as text/plain (201, revision 5),
 * K2 a DELETE of "b" (200), K3 a PUT of "zz" to "a" with If-Match:
 * "nope" (412).  Bytes 8..16, the time of recording, are set to now. */
static const char *const old_entries[][2] = {
    {"K1", "010101000a000000403d6d5ca65ded1859258857d515a6843e99c35c04b3cdf9"
           "02000000000000001b106d5ca65ded181b106d5ca65ded180500000000000000"
           "0500000000000000010000000000000064b3b2e89f274d11699a96a965cd390d"
           "746578742f706c61696e"},
    {"K2", "0100000000000000553b7e5ca65ded1803fe1978f392d96a407c233b481ccd79"
           "0000000000000000000000000000000000000000000000000000000000000000"
           "0600000000000000000000000000000000000000000000000000000000000000"},
    {"K3", "010103000a000000f7228b5ca65ded18701c9088ef073a56c176a1373f62e520"
           "050000000000000020a47157a65ded1820a47157a65ded180100000000000000"
           "01000000000000000100000000000000b5e9c1ad071b3e7fc779cfaa5e523818"
           "746578742f706c61696e"},
};

/* Write old_entries into the closed store at dir, through LMDB. */
static void plant_old_entries(void)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;

    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "idempotency", 0, &dbi), 0);
    for (size_t i = 0; i < sizeof(old_entries) / sizeof(old_entries[0]); i++) {
        uint8_t buf[128];
        size_t n = strlen(old_entries[i][1]) / 2;
        MDB_val k = {strlen(old_entries[i][0]), (void *)old_entries[i][0]};
        MDB_val v = {n, buf};

        ck_assert_uint_le(n, sizeof(buf));
        for (size_t j = 0; j < n; j++)
            ck_assert_int_eq(
                sscanf(old_entries[i][1] + 2 * j, "%2hhx", &buf[j]), 1);
        for (int j = 0; j < 8; j++)
            buf[8 + j] = (uint8_t)(fake_now >> (8 * j));
        ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    }
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

START_TEST(keys_recorded_by_an_older_version_still_replay)
{
    etagkv_cond *c = NULL;
    etagkv_result r;
    etagkv_request put = {.method = ETAGKV_METHOD_PUT,
                          .key = "idem/a",
                          .key_len = 6,
                          .value = "v1",
                          .value_len = 2,
                          .content_type = "text/plain",
                          .idempotency_key = "K1",
                          .idempotency_key_len = 2};
    etagkv_request del = {.method = ETAGKV_METHOD_DELETE,
                          .key = "b",
                          .key_len = 1,
                          .idempotency_key = "K2",
                          .idempotency_key_len = 2};
    etagkv_request refused = {.method = ETAGKV_METHOD_PUT,
                              .key = "a",
                              .key_len = 1,
                              .value = "zz",
                              .value_len = 2,
                              .idempotency_key = "K3",
                              .idempotency_key_len = 2};

    etagkv_store_close(store);
    plant_old_entries();
    open_store(0);
    ck_assert_int_eq(etagkv_write(store, &put, &r), ETAGKV_CREATED);
    ck_assert_int_eq(r.replayed, 1);
    ck_assert_uint_eq(r.meta.mod_revision, 5);
    ck_assert_str_eq(r.meta.etag, "\"64b3b2e89f274d11699a96a965cd390d\"");
    ck_assert_str_eq(r.meta.content_type, "text/plain");
    ck_assert_int_eq(etagkv_write(store, &del, &r), ETAGKV_OK);
    ck_assert_int_eq(r.replayed, 1);
    ck_assert_int_eq(etagkv_cond_parse("\"nope\"", NULL, NULL, NULL, &c),
                     ETAGKV_OK);
    refused.cond = c;
    ck_assert_int_eq(etagkv_write(store, &refused, &r),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_int_eq(r.replayed, 1);
    etagkv_cond_free(c);
    /* Nothing was executed: the store is as new. */
    ck_assert_uint_eq(revision(), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("idempotency");
    TCase *tc = tcase_create("idem");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(
        tc, a_repeat_after_success_replays_the_outcome_and_writes_nothing);
    tcase_add_test(tc,
                   a_repeat_after_another_writer_returns_the_recorded_outcome);
    tcase_add_test(tc, a_failed_precondition_is_an_outcome_and_is_replayed);
    tcase_add_test(tc, delete_and_not_found_are_replayed);
    tcase_add_test(tc, the_same_key_for_a_different_request_is_a_mismatch);
    tcase_add_test(tc, an_expired_key_executes_afresh);
    tcase_add_test(tc, recorded_outcomes_survive_a_restart);
    tcase_add_test(tc, a_full_table_refuses_new_keys_until_old_ones_expire);
    tcase_add_test(tc,
                   a_full_table_purges_expired_keys_before_its_purge_cursor);
    tcase_add_test(tc, expired_keys_are_purged_by_later_writes);
    tcase_add_test(tc, an_overlong_or_malformed_idempotency_key_is_refused);
    tcase_add_test(tc, concurrent_duplicates_execute_exactly_once);
    tcase_add_test(tc, a_counter_with_every_write_sent_twice_ends_exact);
    /* Writes an older version's entries into the LMDB file itself. */
    if (!tu_on_etcd())
        tcase_add_test(tc, keys_recorded_by_an_older_version_still_replay);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
