/*
 * test_async.c -- etagkv_submit(): queued writes, completed once each,
 * after they are durable, batched with blocking writes.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define N 400

static char *dir;
static etagkv_store *store;

static void setup(void)
{
    dir = tu_mkdtemp();
    store = tu_open(dir, NULL); /* sync mode */
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

/* What the test waits for: a count of completions under a lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int completed;

struct slot {
    char key[16];
    char value[16];
    int calls;
    etagkv_result res;
    int visible;      /* the record was readable from the callback */
    int order;        /* completions before this one */
    char detail[256]; /* etagkv_last_error_detail() in the callback */
};

static struct slot slots[N];

static void done_fn(void *ctx, const etagkv_result *res)
{
    struct slot *sl = ctx;
    etagkv_meta m;

    /* First: the read below starts a new call, which clears the text. */
    snprintf(sl->detail, sizeof(sl->detail), "%s", etagkv_last_error_detail());
    /* Acknowledged means committed: a read from the callback sees it. */
    sl->visible = etagkv_get(store, sl->key, strlen(sl->key), NULL, NULL, NULL,
                             &m) == ETAGKV_OK &&
                  strcmp(m.etag, res->meta.etag) == 0;
    sl->res = *res;
    pthread_mutex_lock(&lock);
    sl->order = completed;
    sl->calls++;
    completed++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&lock);
}

static void wait_for(int n)
{
    pthread_mutex_lock(&lock);
    while (completed < n)
        pthread_cond_wait(&cv, &lock);
    pthread_mutex_unlock(&lock);
}

static etagkv_status submit_put(struct slot *sl, int i)
{
    etagkv_request rq;

    snprintf(sl->key, sizeof(sl->key), "k%04d", i);
    snprintf(sl->value, sizeof(sl->value), "v%04d", i);
    rq = (etagkv_request){.method = ETAGKV_METHOD_PUT,
                          .key = sl->key,
                          .key_len = strlen(sl->key),
                          .value = sl->value,
                          .value_len = strlen(sl->value)};
    return etagkv_submit(store, &rq, done_fn, sl);
}

START_TEST(every_submitted_write_completes_once_after_it_is_durable)
{
    etagkv_stats s;

    completed = 0;
    memset(slots, 0, sizeof(slots));
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(submit_put(&slots[i], i), ETAGKV_OK);
    wait_for(N);
    for (int i = 0; i < N; i++) {
        char etag[ETAGKV_ETAG_SIZE];

        ck_assert_int_eq(slots[i].calls, 1);
        ck_assert_int_eq(slots[i].res.status, ETAGKV_CREATED);
        etagkv_etag_compute(slots[i].value, strlen(slots[i].value), etag);
        ck_assert_str_eq(slots[i].res.meta.etag, etag);
        ck_assert_int_eq(slots[i].visible, 1);
        /* Callbacks come in submission order, within a batch too. */
        ck_assert_int_eq(slots[i].order, i);
        ck_assert_str_eq(slots[i].detail, "");
    }
    ck_assert_int_eq(etagkv_store_stats(store, &s), ETAGKV_OK);
    ck_assert_uint_eq(s.records, N);
    ck_assert_uint_eq(s.revision, N);
    /* Queued together, committed together: fewer transactions than
     * writes (one sync per write would make them equal). */
    ck_assert_uint_lt(s.write_txns, s.write_ops);
    fprintf(stderr, "async: %llu writes in %llu transactions\n",
            (unsigned long long)s.write_ops, (unsigned long long)s.write_txns);
}
END_TEST

START_TEST(close_completes_submitted_writes_first)
{
    completed = 0;
    memset(slots, 0, sizeof(slots));
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(submit_put(&slots[i], i), ETAGKV_OK);
    etagkv_store_close(store);
    ck_assert_int_eq(completed, N); /* all called before close returned */
    store = tu_open(dir, NULL);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(etagkv_get(store, slots[i].key, strlen(slots[i].key),
                                    NULL, NULL, NULL, NULL),
                         ETAGKV_OK);
}
END_TEST

/* Conditional submits with outcomes that depend on order: arrival order
 * is the serial order. */
START_TEST(submitted_conditional_writes_apply_in_arrival_order)
{
    etagkv_cond *create_only;
    etagkv_request rq;

    completed = 0;
    memset(slots, 0, sizeof(slots));
    ck_assert_int_eq(etagkv_cond_parse(NULL, "*", NULL, NULL, &create_only),
                     ETAGKV_OK);
    for (int i = 0; i < 10; i++) {
        snprintf(slots[i].key, sizeof(slots[i].key), "same");
        snprintf(slots[i].value, sizeof(slots[i].value), "v%d", i);
        rq = (etagkv_request){.method = ETAGKV_METHOD_PUT,
                              .key = slots[i].key,
                              .key_len = 4,
                              .value = slots[i].value,
                              .value_len = strlen(slots[i].value),
                              .cond = create_only};
        ck_assert_int_eq(etagkv_submit(store, &rq, done_fn, &slots[i]),
                         ETAGKV_OK);
    }
    wait_for(10);
    ck_assert_int_eq(slots[0].res.status, ETAGKV_CREATED);
    for (int i = 1; i < 10; i++) {
        ck_assert_int_eq(slots[i].res.status, ETAGKV_PRECONDITION_FAILED);
        ck_assert_str_eq(slots[i].res.meta.etag, slots[0].res.meta.etag);
    }
    etagkv_cond_free(create_only);
}
END_TEST

/* ETAGKV_WRITE_KEEP_CONTENT_TYPE through the queue: a replaced record
 * keeps its type, a created one gets the default, and an explicit type
 * wins over the flag. */
START_TEST(a_submitted_write_can_keep_the_content_type)
{
    static const char *const keys[3] = {"typed", "fresh", "typed"};
    static const char *const types[3] = {NULL, NULL, "text/plain"};
    etagkv_request rq;

    completed = 0;
    memset(slots, 0, sizeof(slots));
    ck_assert_int_eq(
        etagkv_put(store, "typed", 5, "{}", 2, "application/json", NULL, NULL),
        ETAGKV_CREATED);
    for (int i = 0; i < 3; i++) {
        snprintf(slots[i].key, sizeof(slots[i].key), "%s", keys[i]);
        rq = (etagkv_request){.method = ETAGKV_METHOD_PUT,
                              .key = slots[i].key,
                              .key_len = strlen(slots[i].key),
                              .value = "[]",
                              .value_len = 2,
                              .content_type = types[i],
                              .flags = ETAGKV_WRITE_KEEP_CONTENT_TYPE};
        ck_assert_int_eq(etagkv_submit(store, &rq, done_fn, &slots[i]),
                         ETAGKV_OK);
    }
    wait_for(3);
    ck_assert_int_eq(slots[0].res.status, ETAGKV_OK);
    ck_assert_str_eq(slots[0].res.meta.content_type, "application/json");
    ck_assert_int_eq(slots[1].res.status, ETAGKV_CREATED);
    ck_assert_str_eq(slots[1].res.meta.content_type,
                     ETAGKV_CONTENT_TYPE_DEFAULT);
    ck_assert_int_eq(slots[2].res.status, ETAGKV_OK);
    ck_assert_str_eq(slots[2].res.meta.content_type, "text/plain");
}
END_TEST

/* A store-level failure reaches the callback as a status, with its text
 * readable from etagkv_last_error_detail() during the call, like after a
 * blocking write; the writes before it stay acknowledged. */
START_TEST(a_full_store_fails_the_submitted_write_with_its_detail)
{
    static char big[64 << 10];
    etagkv_options o;
    etagkv_request rq;
    int n = 0;

    etagkv_store_close(store);
    etagkv_options_init(&o);
    o.sync_mode = ETAGKV_NOSYNC;
    o.map_size_bytes = 1 << 20;
    o.map_max_bytes = 1 << 20;
    store = tu_open(dir, &o);
    completed = 0;
    memset(slots, 0, sizeof(slots));
    memset(big, 'x', sizeof(big));
    for (n = 0; n < N; n++) {
        snprintf(slots[n].key, sizeof(slots[n].key), "big%02d", n);
        rq = (etagkv_request){.method = ETAGKV_METHOD_PUT,
                              .key = slots[n].key,
                              .key_len = strlen(slots[n].key),
                              .value = big,
                              .value_len = sizeof(big)};
        ck_assert_int_eq(etagkv_submit(store, &rq, done_fn, &slots[n]),
                         ETAGKV_OK);
        wait_for(n + 1);
        if (slots[n].res.status != ETAGKV_CREATED)
            break;
        ck_assert_str_eq(slots[n].detail, "");
    }
    ck_assert_int_lt(n, N); /* 1 MiB cannot hold N * 64 KiB */
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(slots[n].res.status, ETAGKV_STORE_FULL);
    ck_assert_int_eq(slots[n].res.meta.exists, 0);
    ck_assert_msg(slots[n].detail[0] != '\0', "no detail in the callback");
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(etagkv_get(store, slots[i].key, strlen(slots[i].key),
                                    NULL, NULL, NULL, NULL),
                         ETAGKV_OK);
}
END_TEST

/* A callback may submit the next write: a chain of N writes. */
static int chain_left;
static char chain_key[] = "chain";

static void chain_fn(void *ctx, const etagkv_result *res)
{
    etagkv_request rq = {.method = ETAGKV_METHOD_PUT,
                         .key = chain_key,
                         .key_len = 5,
                         .value = chain_key,
                         .value_len = 5};

    (void)ctx;
    ck_assert(res->status == ETAGKV_OK || res->status == ETAGKV_CREATED);
    pthread_mutex_lock(&lock);
    completed++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&lock);
    if (--chain_left > 0)
        ck_assert_int_eq(etagkv_submit(store, &rq, chain_fn, NULL), ETAGKV_OK);
}

START_TEST(a_callback_may_submit_the_next_write)
{
    etagkv_request rq = {.method = ETAGKV_METHOD_PUT,
                         .key = chain_key,
                         .key_len = 5,
                         .value = chain_key,
                         .value_len = 5};
    etagkv_meta m;

    completed = 0;
    chain_left = 20;
    ck_assert_int_eq(etagkv_submit(store, &rq, chain_fn, NULL), ETAGKV_OK);
    wait_for(20);
    ck_assert_int_eq(etagkv_get(store, "chain", 5, NULL, NULL, NULL, &m),
                     ETAGKV_OK);
    ck_assert_uint_eq(m.version, 20);
}
END_TEST

/* Blocking and submitted writes from several threads share batches. */
static void *blocking_writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    char key[32];

    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "b-%d-%d", id, i);
        ck_assert_int_eq(
            etagkv_put(store, key, strlen(key), "x", 1, NULL, NULL, NULL),
            ETAGKV_CREATED);
    }
    return NULL;
}

START_TEST(blocking_and_submitted_writes_mix)
{
    pthread_t t[4];
    etagkv_stats s;

    completed = 0;
    memset(slots, 0, sizeof(slots));
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(
            pthread_create(&t[i], NULL, blocking_writer, (void *)(intptr_t)i),
            0);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(submit_put(&slots[i], i), ETAGKV_OK);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    wait_for(N);
    ck_assert_int_eq(etagkv_store_stats(store, &s), ETAGKV_OK);
    ck_assert_uint_eq(s.records, N + 200);
    ck_assert_uint_eq(s.revision, N + 200);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(slots[i].calls, 1);
}
END_TEST

static void never_called(void *ctx, const etagkv_result *res)
{
    (void)ctx;
    (void)res;
    ck_abort_msg("done called for a refused submit");
}

/* A thread's blocking write comes after the writes it submitted before
 * it, in every mode (a fast path that skipped the queue would break this,
 * and did in an experiment; commit.c). */
START_TEST(a_blocking_write_follows_the_threads_submitted_writes)
{
    static const etagkv_sync_mode modes[] = {ETAGKV_SYNC, ETAGKV_NOSYNC,
                                             ETAGKV_SYNC_PIPELINED};
    etagkv_cond *create_only;
    etagkv_meta m;

    ck_assert_int_eq(etagkv_cond_parse(NULL, "*", NULL, NULL, &create_only),
                     ETAGKV_OK);
    for (int mode = 0; mode < 3; mode++) {
        if (mode > 0) {
            etagkv_store_close(store);
            store = tu_open_mode(dir, modes[mode]);
        }
        for (int round = 0; round < 50; round++) {
            completed = 0;
            memset(slots, 0, sizeof(slots));
            for (int i = 0; i < 20; i++)
                ck_assert_int_eq(
                    submit_put(&slots[i], mode * 10000 + round * 20 + i),
                    ETAGKV_OK);
            /* Create-only on the last submitted key: it must find it. */
            ck_assert_int_eq(etagkv_put(store, slots[19].key,
                                        strlen(slots[19].key), "late", 4, NULL,
                                        create_only, &m),
                             ETAGKV_PRECONDITION_FAILED);
            ck_assert_int_eq(m.version, 1);
            wait_for(20);
            ck_assert_int_eq(slots[19].res.status, ETAGKV_CREATED);
        }
    }
    etagkv_cond_free(create_only);
}
END_TEST

/* A thread that submits a put and then a write conditional on the put's
 * ETag (computable from the bytes) gets them applied in that order, the
 * second submitted or blocking: never refused early against the state
 * before the first (found by review: a 412 answered before the put it
 * depended on).  With ETAGKV_WRITE_INDEPENDENT the thread says it does
 * not depend on them, and a 412 may come at once. */
START_TEST(a_conditional_write_follows_the_threads_submitted_writes)
{
    for (int round = 0; round < 50; round++) {
        /* What a submitted write points to stays until it is done. */
        char etag0[ETAGKV_ETAG_SIZE], etag2[ETAGKV_ETAG_SIZE];
        etagkv_cond *c0 = NULL, *c2 = NULL;
        etagkv_request rq;

        completed = 0;
        memset(slots, 0, sizeof(slots));
        for (int i = 0; i < 3; i++) {
            snprintf(slots[i].key, sizeof(slots[i].key), "dep");
            snprintf(slots[i].value, sizeof(slots[i].value), "r%d-%d", round,
                     i);
        }
        etagkv_etag_compute(slots[0].value, strlen(slots[0].value), etag0);
        etagkv_etag_compute(slots[2].value, strlen(slots[2].value), etag2);
        ck_assert_int_eq(etagkv_cond_if_match(etag0, &c0), ETAGKV_OK);
        ck_assert_int_eq(etagkv_cond_if_match(etag2, &c2), ETAGKV_OK);
        /* 0: put; 1: If-Match on 0's bytes; 2: put; all submitted. */
        for (int i = 0; i < 3; i++) {
            rq = (etagkv_request){.method = ETAGKV_METHOD_PUT,
                                  .key = "dep",
                                  .key_len = 3,
                                  .value = slots[i].value,
                                  .value_len = strlen(slots[i].value),
                                  .cond = i == 1 ? c0 : NULL};
            ck_assert_int_eq(etagkv_submit(store, &rq, done_fn, &slots[i]),
                             ETAGKV_OK);
        }
        /* Blocking, If-Match on 2's bytes. */
        ck_assert_int_eq(etagkv_put(store, "dep", 3, "last", 4, NULL, c2, NULL),
                         ETAGKV_OK);
        wait_for(3);
        ck_assert(slots[0].res.status == ETAGKV_OK ||
                  slots[0].res.status == ETAGKV_CREATED);
        ck_assert_int_eq(slots[1].res.status, ETAGKV_OK);
        ck_assert_int_eq(slots[2].res.status, ETAGKV_OK);
        ck_assert_int_lt(slots[0].order, slots[1].order);
        /* Independent: refused against the latest committed state, which
         * the blocking put left ("last"). */
        rq.value = "x";
        rq.value_len = 1;
        rq.cond = c2;
        rq.flags = ETAGKV_WRITE_INDEPENDENT;
        ck_assert_int_eq(etagkv_write(store, &rq, NULL),
                         ETAGKV_PRECONDITION_FAILED);
        /* An independent write still counts for the thread's later ones:
         * submitted, then a blocking If-Match on its bytes follows it. */
        etagkv_cond_free(c0);
        etagkv_etag_compute("ind", 3, etag0);
        ck_assert_int_eq(etagkv_cond_if_match(etag0, &c0), ETAGKV_OK);
        rq = (etagkv_request){.method = ETAGKV_METHOD_PUT,
                              .key = "dep",
                              .key_len = 3,
                              .value = "ind",
                              .value_len = 3,
                              .flags = ETAGKV_WRITE_INDEPENDENT};
        ck_assert_int_eq(etagkv_submit(store, &rq, done_fn, &slots[3]),
                         ETAGKV_OK);
        ck_assert_int_eq(
            etagkv_put(store, "dep", 3, "after", 5, NULL, c0, NULL), ETAGKV_OK);
        wait_for(4);
        ck_assert_int_eq(slots[3].res.status, ETAGKV_OK);
        etagkv_cond_free(c0);
        etagkv_cond_free(c2);
    }
}
END_TEST

START_TEST(a_submitted_412_hands_the_current_value_to_the_callback)
{
    etagkv_cond *c;
    etagkv_request rq = {.method = ETAGKV_METHOD_PUT,
                         .key = "k",
                         .key_len = 1,
                         .value = "new",
                         .value_len = 3,
                         .flags = ETAGKV_WRITE_RETURN_CURRENT};
    char stale[ETAGKV_ETAG_SIZE];

    completed = 0;
    memset(slots, 0, sizeof(slots));
    snprintf(slots[0].key, sizeof(slots[0].key), "k");
    etagkv_etag_compute("old", 3, stale);
    ck_assert_int_eq(etagkv_put(store, "k", 1, "now", 3, NULL, NULL, NULL),
                     ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_cond_if_match(stale, &c), ETAGKV_OK);
    rq.cond = c;
    ck_assert_int_eq(etagkv_submit(store, &rq, done_fn, &slots[0]), ETAGKV_OK);
    wait_for(1);
    ck_assert_int_eq(slots[0].res.status, ETAGKV_PRECONDITION_FAILED);
    /* The callback's to keep (done_fn copied the pointer). */
    ck_assert_ptr_nonnull(slots[0].res.current_value);
    ck_assert_uint_eq(slots[0].res.current_len, 3);
    ck_assert_mem_eq(slots[0].res.current_value, "now", 3);
    etagkv_free(slots[0].res.current_value);
    etagkv_cond_free(c);
}
END_TEST

START_TEST(a_refused_submit_never_calls_back)
{
    char big[ETAGKV_KEY_MAX + 1];
    etagkv_request rq = {.method = ETAGKV_METHOD_PUT, .key = big};

    memset(big, 'k', sizeof(big));
    rq.key_len = 0;
    ck_assert_int_eq(etagkv_submit(store, &rq, never_called, NULL),
                     ETAGKV_INVALID_KEY);
    rq.key_len = sizeof(big);
    ck_assert_int_eq(etagkv_submit(store, &rq, never_called, NULL),
                     ETAGKV_KEY_TOO_LONG);
    rq.key_len = 1;
    ck_assert_int_eq(etagkv_submit(store, &rq, NULL, NULL),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_submit(NULL, &rq, never_called, NULL),
                     ETAGKV_INVALID_ARGUMENT);
    rq.content_type = "bad\r\n";
    ck_assert_int_eq(etagkv_submit(store, &rq, never_called, NULL),
                     ETAGKV_INVALID_HEADER);
    rq.content_type = NULL;
    rq.flags = ~ETAGKV_WRITE_KEEP_CONTENT_TYPE;
    ck_assert_int_eq(etagkv_submit(store, &rq, never_called, NULL),
                     ETAGKV_INVALID_ARGUMENT);
}
END_TEST

/* The tests that run in every sync mode.  In nosync, a blocking leader
 * leads several batches, stopping at a submitted write's; in pipelined,
 * batches wait for a later flush, the committer's and blocking writers'
 * alike (commit.c); writes of both kinds must all complete, once, and in
 * order, and a close must complete them first. */
static TCase *mode_case(const char *name, void (*setup_fn)(void))
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, setup_fn, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc,
                   every_submitted_write_completes_once_after_it_is_durable);
    tcase_add_test(tc, submitted_conditional_writes_apply_in_arrival_order);
    tcase_add_test(tc,
                   a_conditional_write_follows_the_threads_submitted_writes);
    tcase_add_test(tc, blocking_and_submitted_writes_mix);
    tcase_add_test(tc, close_completes_submitted_writes_first);
    return tc;
}

static Suite *suite(void)
{
    Suite *s = suite_create("async");
    TCase *tc = mode_case("submit", setup);

    /* Behaviour that does not depend on the sync mode: sync only. */
    tcase_add_test(tc, a_submitted_write_can_keep_the_content_type);
    /* Fills LMDB's map (a store on etcd has none). */
    if (!tu_on_etcd())
        tcase_add_test(tc,
                       a_full_store_fails_the_submitted_write_with_its_detail);
    tcase_add_test(tc, a_callback_may_submit_the_next_write);
    tcase_add_test(tc, a_blocking_write_follows_the_threads_submitted_writes);
    tcase_add_test(tc, a_refused_submit_never_calls_back);
    tcase_add_test(tc, a_submitted_412_hands_the_current_value_to_the_callback);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, mode_case("submit-nosync", setup_nosync));
    suite_add_tcase(s, mode_case("submit-pipelined", setup_pipelined));
    return s;
}

int main(void)
{
    return tu_run(suite());
}
