/*
 * test_concurrency.c -- no lost update: many threads doing read-modify-write
 * through etagkv_update() on one hot key and on disjoint keys, in sync and
 * nosync mode (where group commit's leader leads several batches in a row)
 * on a real LMDB environment.  The counter's final value must equal the
 * number of increments the library reported as successful.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define THREADS 8
#define INCREMENTS 60

static char *dir;
static etagkv_store *store;

static void setup(void)
{
    dir = tu_mkdtemp();
    store = tu_open(dir, NULL); /* sync mode: the default */
}

static void setup_nosync(void)
{
    dir = tu_mkdtemp();
    store = tu_open_mode(dir, ETAGKV_NOSYNC);
}

/* pipelined: acknowledgements wait for a later flush (commit.c). */
static void setup_pipelined(void)
{
    dir = tu_mkdtemp();
    store = tu_open_mode(dir, ETAGKV_SYNC_PIPELINED);
}

static void teardown(void)
{
    etagkv_store_close(store);
    tu_rmdir_free(dir);
}

struct counter_ctx {
    char buf[32];
};

/* Parse the decimal counter (absent = 0) and write it plus one. */
static etagkv_status increment(void *vctx, const void *old, size_t old_len,
                               const etagkv_meta *meta, const void **nv,
                               size_t *nv_len)
{
    struct counter_ctx *ctx = vctx;
    char tmp[32];
    unsigned long n = 0;

    (void)meta;
    if (old_len >= sizeof(tmp))
        return ETAGKV_CORRUPT;
    if (old_len > 0) {
        memcpy(tmp, old, old_len);
        tmp[old_len] = '\0';
        n = strtoul(tmp, NULL, 10);
    }
    *nv_len = (size_t)snprintf(ctx->buf, sizeof(ctx->buf), "%lu", n + 1);
    *nv = ctx->buf;
    return ETAGKV_OK;
}

struct worker {
    pthread_t tid;
    char key[16];
    int ok, lost_race, errors;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct counter_ctx ctx;

    for (int i = 0; i < INCREMENTS; i++) {
        /* Few attempts, so that some increments give up: the test then
         * also proves that a give-up leaves nothing behind. */
        etagkv_status s = etagkv_update(store, w->key, strlen(w->key),
                                        increment, &ctx, 3, NULL);

        if (s == ETAGKV_OK || s == ETAGKV_CREATED)
            w->ok++;
        else if (s == ETAGKV_PRECONDITION_FAILED)
            w->lost_race++;
        else
            w->errors++;
    }
    return NULL;
}

static unsigned long counter(const char *key)
{
    void *v;
    size_t n;
    char tmp[32];

    ck_assert_int_eq(etagkv_get(store, key, strlen(key), NULL, &v, &n, NULL),
                     ETAGKV_OK);
    ck_assert_uint_lt(n, sizeof(tmp));
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    etagkv_free(v);
    return strtoul(tmp, NULL, 10);
}

static void run(struct worker *w)
{
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&w[i].tid, NULL, work, &w[i]), 0);
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_join(w[i].tid, NULL), 0);
}

START_TEST(hot_key_counter_equals_successful_increments)
{
    struct worker w[THREADS];
    int ok = 0, lost = 0;
    etagkv_meta m;

    memset(w, 0, sizeof(w));
    for (int i = 0; i < THREADS; i++)
        strcpy(w[i].key, "counter");
    run(w);
    for (int i = 0; i < THREADS; i++) {
        ck_assert_int_eq(w[i].errors, 0);
        ok += w[i].ok;
        lost += w[i].lost_race;
    }
    ck_assert_int_eq(ok + lost, THREADS * INCREMENTS);
    ck_assert_uint_eq(counter("counter"), (unsigned long)ok);
    /* Every successful increment was exactly one write of the key. */
    ck_assert_int_eq(etagkv_get(store, "counter", 7, NULL, NULL, NULL, &m),
                     ETAGKV_OK);
    ck_assert_uint_eq(m.version, (uint64_t)ok);
    ck_assert_uint_eq(m.mod_revision, (uint64_t)ok);
    fprintf(stderr, "hot key: %d increments committed, %d gave up\n", ok, lost);
}
END_TEST

START_TEST(disjoint_keys_never_lose_a_race)
{
    struct worker w[THREADS];
    etagkv_stats s;

    memset(w, 0, sizeof(w));
    for (int i = 0; i < THREADS; i++)
        snprintf(w[i].key, sizeof(w[i].key), "counter-%d", i);
    run(w);
    for (int i = 0; i < THREADS; i++) {
        ck_assert_int_eq(w[i].errors, 0);
        ck_assert_int_eq(w[i].lost_race, 0);
        ck_assert_int_eq(w[i].ok, INCREMENTS);
        ck_assert_uint_eq(counter(w[i].key), INCREMENTS);
    }
    ck_assert_int_eq(etagkv_store_stats(store, &s), ETAGKV_OK);
    ck_assert_uint_eq(s.records, THREADS);
    ck_assert_uint_eq(s.revision, THREADS * INCREMENTS);
}
END_TEST

/* Readers run while writers commit: every read sees a whole record whose
 * ETag matches its value (no torn reads, MVCC snapshots). */
static void *reader(void *arg)
{
    int *bad = arg;

    for (int i = 0; i < 2000; i++) {
        void *v;
        size_t n;
        etagkv_meta m;
        char etag[ETAGKV_ETAG_SIZE];
        etagkv_status s = etagkv_get(store, "counter", 7, NULL, &v, &n, &m);

        if (s == ETAGKV_NOT_FOUND)
            continue;
        if (s != ETAGKV_OK) {
            (*bad)++;
            continue;
        }
        etagkv_etag_compute(v, n, etag);
        if (strcmp(etag, m.etag) != 0 || n != m.value_bytes)
            (*bad)++;
        etagkv_free(v);
    }
    return NULL;
}

START_TEST(readers_see_consistent_records_during_writes)
{
    struct worker w[THREADS];
    pthread_t r[2];
    int bad[2] = {0, 0};

    memset(w, 0, sizeof(w));
    for (int i = 0; i < THREADS; i++)
        strcpy(w[i].key, "counter");
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&r[i], NULL, reader, &bad[i]), 0);
    run(w);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(pthread_join(r[i], NULL), 0);
        ck_assert_int_eq(bad[i], 0);
    }
}
END_TEST

static TCase *mode_case(const char *name, void (*setup_fn)(void))
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, setup_fn, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, hot_key_counter_equals_successful_increments);
    tcase_add_test(tc, disjoint_keys_never_lose_a_race);
    tcase_add_test(tc, readers_see_consistent_records_during_writes);
    return tc;
}

static Suite *suite(void)
{
    Suite *s = suite_create("concurrency");

    suite_add_tcase(s, mode_case("rmw", setup));
    suite_add_tcase(s, mode_case("rmw-nosync", setup_nosync));
    suite_add_tcase(s, mode_case("rmw-pipelined", setup_pipelined));
    return s;
}

int main(void)
{
    return tu_run(suite());
}
